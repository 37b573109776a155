//! A clock set back (it ran ahead, then NTP or a person corrected it): times
//! autod stored while it was ahead are in the future. Schedules and retries
//! resume, with a warning, instead of waiting out the step.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::helper::{LIMIT, Project, event, wait_until, waiting_record};

/// As autod writes times: UTC, three fractional digits.
fn rfc3339(t: Timestamp) -> String {
    format!("{t:.3}")
}

#[test]
fn a_last_fire_in_the_future_is_read_as_now_and_the_schedule_fires() {
    let p = Project::new()
        .open_schema("tick.due")
        .config(
            r#"
            [handlers.ticker]
            on = ["tick.due"]

            [[schedules]]
            name = "every-second"
            cron = "* * * * * *"
            timezone = "UTC"
            event_type = "tick.due"
            "#,
        )
        .handler("ticker", r#"echo "$AUTOD_EVENT_ID" >> ran.txt"#);
    let ahead = Timestamp::now() + SignedDuration::from_hours(24);
    p.write(
        ".autod/schedules/every-second.json",
        json!({"version": 1, "lastFire": rfc3339(ahead)}).to_string(),
    );
    let daemon = p.start(&[]);
    wait_until(LIMIT, "a fire", || !p.lines("ran.txt").is_empty());
    let fired = &p.lines("ran.txt")[0];
    let today = Timestamp::now()
        .strftime("cron:every-second:%Y%m%d")
        .to_string();
    assert!(fired.starts_with(&today), "{fired} is not a slot of today");
    let stderr = daemon.stderr();
    assert!(
        stderr.contains("cron:every-second: its last fire")
            && stderr.contains(&rfc3339(ahead))
            && stderr.contains("the clock was probably set back"),
        "{stderr}"
    );
    // The stored last fire is back in the present.
    let stored: serde_json::Value =
        serde_json::from_str(&p.read(".autod/schedules/every-second.json")).unwrap();
    let stored: Timestamp = stored["lastFire"].as_str().unwrap().parse().unwrap();
    assert!(
        stored < Timestamp::now() + SignedDuration::from_secs(5),
        "{stored}"
    );
}

#[test]
fn a_dead_letter_due_in_2099_is_retried_within_retry_max() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.worker]
            on = ["job.due"]
            retry = { max_attempts = 5, initial = "1s", max = "2s" }
            "#,
        )
        .handler(
            "worker",
            r#"echo "$AUTOD_EVENT_ID $AUTOD_ATTEMPT" >> ran.txt"#,
        );
    let record = waiting_record("worker", event("job.due", "e1"), "2099-01-01T00:00:00.000Z");
    p.write(".autod/dead/worker/e1.json", record.to_string());
    let started = Instant::now();
    let daemon = p.start(&[]);
    wait_until(LIMIT, "e1 to be retried", || p.done("e1", "worker"));
    let took = started.elapsed();
    // retry.max, plus the daemon's start and the handler's run.
    assert!(
        took < Duration::from_secs(2) + Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(p.lines("ran.txt"), ["e1 2"]);
    wait_until(LIMIT, "the dead letter to go", || {
        p.dead_letter("worker", "e1").is_none()
    });
    let stderr = daemon.stderr();
    assert!(
        stderr.contains("dead letter worker e1: nextAttemptAt 2099-01-01T00:00:00.000Z is further ahead than retry.max (2s)")
            && stderr.contains("the clock was probably set back"),
        "{stderr}"
    );
}
