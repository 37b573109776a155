//! `[[schedules]]`: fires become events `cron:<name>:<time>`, and a restart,
//! orderly or not, never delivers a slot twice.

use std::collections::HashSet;
use std::time::Duration;

use crate::helper::{Project, wait_until};

fn project() -> Project {
    Project::new()
        .open_schema("tick.due")
        .config(
            r#"
            [handlers.ticker]
            on = ["tick.due"]

            [[schedules]]
            name = "tick"
            cron = "*/2 * * * * *"
            timezone = "UTC"
            event_type = "tick.due"
            payload = { kind = "test" }
            "#,
        )
        .handler(
            "ticker",
            r#"echo "$AUTOD_EVENT_ID $AUTOD_EVENT_SOURCE" >> ran.txt"#,
        )
}

const FIRES: Duration = Duration::from_secs(10);

#[test]
fn a_schedule_fires_and_restarts_never_deliver_a_slot_twice() {
    let p = project();
    let ok = || p.logged("ok").len();
    let mut daemon = p.start(&[]);
    wait_until(FIRES, "two fires", || ok() >= 2);

    // An orderly restart…
    daemon.terminate();
    assert!(daemon.wait(Duration::from_secs(10)).success());
    let mut daemon = p.start(&[]);
    let before = ok();
    wait_until(FIRES, "a fire after the restart", || ok() > before);
    // …and a crash, just after a fire.
    daemon.kill();
    let _daemon = p.start(&[]);
    let before = ok();
    wait_until(FIRES, "a fire after the crash", || ok() > before);
    wait_until(FIRES, "inbox/ and processing/ to empty", || p.drained());

    let ran = p.lines("ran.txt");
    let id_shape = regex::Regex::new(r"^cron:tick:\d{8}T\d{6}Z$").unwrap();
    for line in &ran {
        let (id, source) = line.split_once(' ').unwrap();
        assert!(id_shape.is_match(id), "{id}");
        assert_eq!(source, "cron:tick");
        // Fires fall on even seconds.
        let seconds: u32 = id[id.len() - 3..id.len() - 1].parse().unwrap();
        assert_eq!(seconds % 2, 0, "{id}");
    }
    let ok = p.logged("ok");
    let unique: HashSet<&String> = ok.iter().collect();
    assert_eq!(unique.len(), ok.len(), "an eventId logged ok twice: {ok:?}");
    assert!(ok.len() >= 4, "{ok:?}");
    for id in &ok {
        assert!(p.done(id, "ticker"), "{id}");
    }
    // (A handler may have run twice for one slot, if the crash came between its
    // end and the record of its success; its success is recorded once.)
    assert!(p.exists(".autod/schedules/tick.json"));
}
