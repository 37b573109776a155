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

/// Fires missed while autod was down: `all` of them, the `last` one, or `none`.
#[test]
fn missed_fires_are_caught_up_per_catch_up() {
    use chrono::{DateTime, Duration as Days, SecondsFormat, Timelike, Utc};

    let mut config = String::from(
        r#"
        [handlers.ticker]
        on = ["tick.due"]
        "#,
    );
    for name in ["all", "last", "none"] {
        config.push_str(&format!(
            r#"
            [[schedules]]
            name = "{name}"
            cron = "0 0 0 * * *"
            timezone = "UTC"
            event_type = "tick.due"
            catch_up = "{name}"
            "#
        ));
    }
    let p = Project::new()
        .open_schema("tick.due")
        .config(&config)
        .handler("ticker", r#"echo "$AUTOD_EVENT_ID" >> ran.txt"#);
    // Each last fired three days ago (plus a second): three midnights were missed.
    let started = Utc::now();
    let last = started - Days::days(3) + Days::seconds(1);
    for name in ["all", "last", "none"] {
        p.write(
            &format!(".autod/schedules/{name}.json"),
            serde_json::json!({"version": 1, "lastFire": last.to_rfc3339_opts(SecondsFormat::Millis, true)})
                .to_string(),
        );
    }
    let last_fire = |name: &str| -> Option<DateTime<Utc>> {
        let v: serde_json::Value =
            serde_json::from_str(&p.read(&format!(".autod/schedules/{name}.json"))).ok()?;
        DateTime::parse_from_rfc3339(v["lastFire"].as_str()?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };

    let mut daemon = p.start(&[]);
    // Each schedule records its new last fire once its catch-up is queued.
    wait_until(FIRES, "the three schedules to catch up", || {
        ["all", "last", "none"]
            .iter()
            .all(|n| last_fire(n).is_some_and(|t| t > last))
    });
    wait_until(FIRES, "inbox/ and processing/ to empty", || p.drained());

    let midnight = |days_ago: i64| {
        let t = started - Days::days(days_ago);
        let t = t
            .with_hour(0)
            .and_then(|t| t.with_minute(0))
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap();
        t.format("%Y%m%dT%H%M%SZ").to_string()
    };
    let mut ok = p.logged("ok");
    ok.sort();
    let mut want = vec![
        format!("cron:all:{}", midnight(2)),
        format!("cron:all:{}", midnight(1)),
        format!("cron:all:{}", midnight(0)),
        format!("cron:last:{}", midnight(0)),
    ];
    want.sort();
    assert_eq!(ok, want);

    // A restart catches up nothing again.
    daemon.terminate();
    assert!(daemon.wait(Duration::from_secs(10)).success());
    let restarted = Utc::now();
    let _daemon = p.start(&[]);
    wait_until(FIRES, "the schedules to start again", || {
        ["all", "last", "none"]
            .iter()
            .all(|n| last_fire(n).is_some_and(|t| t >= restarted - Days::seconds(1)))
    });
    wait_until(FIRES, "inbox/ and processing/ to empty", || p.drained());
    assert_eq!(p.logged("ok").len(), 4, "{:?}", p.logged("ok"));
    assert!(p.logged("skipped").is_empty(), "{:?}", p.logged("skipped"));
}

/// A fire the inbox cannot take (a full disk, here a dangling link where its
/// staging folder goes) is queued once it can be, not dropped.
#[test]
fn a_fire_that_cannot_be_queued_is_delivered_once_the_inbox_is_writable() {
    let p = project();
    let tmp = p.path(".autod/inbox/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let daemon = p.start(&[]);
    std::fs::remove_dir_all(&tmp).unwrap();
    std::os::unix::fs::symlink("/nonexistent", &tmp).unwrap();
    let failed = regex::Regex::new(r"could not queue (cron:tick:\S+):").unwrap();
    let mut id = String::new();
    wait_until(FIRES, "a fire to fail to queue", || {
        match failed.captures(&daemon.stderr()) {
            Some(c) => {
                id = c[1].to_owned();
                true
            }
            None => false,
        }
    });
    std::fs::remove_file(&tmp).unwrap();
    wait_until(FIRES, "the blocked fire to run", || p.done(&id, "ticker"));
}
