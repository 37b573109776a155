//! An idle daemon sleeps: no polling loop burns CPU while nothing happens.

use std::time::Duration;

use crate::helper::Project;

#[test]
fn an_idle_daemon_uses_almost_no_cpu() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.worker]
            on = ["job.due"]

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
        .handler("worker", "true");
    std::fs::create_dir(p.path("watched")).unwrap();
    let daemon = p.start(&[]);
    let before = daemon.cpu_ticks();
    // Idling is the point here: a fixed wait is the measurement, not a guess.
    std::thread::sleep(Duration::from_secs(2));
    let used = daemon.cpu_ticks() - before;
    assert!(
        used < 5,
        "the idle daemon used {used} clock ticks of CPU in 2 s"
    );
}
