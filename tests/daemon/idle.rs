//! An idle daemon sleeps: no polling loop burns CPU while nothing happens,
//! with a watch, a schedule and a waiting dead letter to look after.

use std::time::Duration;

use crate::helper::{LIMIT, Project, event, wait_until};

/// Regression: the inbox consumer woke on the open of its own inbox listing,
/// and spun at 100% CPU from the start.
#[test]
fn an_idle_daemon_uses_almost_no_cpu() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.worker]
            on = ["job.due"]

            # Fails, and its retry is an hour away: a dead letter waits.
            [handlers.failing]
            on = ["job.due"]
            retry = { max_attempts = 3, initial = "1h", max = "2h" }

            [[watches]]
            name = "drop"
            path = "watched"
            event_type = "job.due"

            [[schedules]]
            name = "daily"
            cron = "0 9 * * *"
            event_type = "job.due"
            "#,
        )
        .handler("worker", "true")
        .handler("failing", "exit 1");
    std::fs::create_dir(p.path("watched")).unwrap();
    let daemon = p.start(&[]);
    p.inbox_put("e1.json", &event("job.due", "e1"));
    wait_until(LIMIT, "the event to be handled", || {
        p.dead_letter("failing", "e1")
            .is_some_and(|d| d["state"] == "waiting")
            && p.done("e1", "worker")
    });
    wait_until(LIMIT, "inbox/ and processing/ to empty", || p.drained());
    let before = daemon.cpu_ticks();
    // Idling is the point here: a fixed wait is the measurement, not a guess.
    std::thread::sleep(Duration::from_secs(2));
    let used = daemon.cpu_ticks() - before;
    assert!(
        used < 5,
        "the idle daemon used {used} clock ticks of CPU in 2 s"
    );
}
