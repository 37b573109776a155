//! `[[schedules]]`: fires become events `cron:<name>:<time>`, and a restart,
//! orderly or not, never delivers a slot twice.

use std::collections::HashSet;
use std::time::Duration;

use crate::helper::{LIMIT, Project, wait_until};

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
    use jiff::{SignedDuration, Timestamp};
    let days = |n: i64| SignedDuration::from_hours(24 * n);

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
    let started = Timestamp::now();
    let last = started - days(3) + SignedDuration::from_secs(1);
    for name in ["all", "last", "none"] {
        p.write(
            &format!(".autod/schedules/{name}.json"),
            serde_json::json!({"version": 1, "lastFire": format!("{last:.3}")}).to_string(),
        );
    }
    let last_fire = |name: &str| -> Option<Timestamp> {
        let v: serde_json::Value =
            serde_json::from_str(&p.read(&format!(".autod/schedules/{name}.json"))).ok()?;
        v["lastFire"].as_str()?.parse().ok()
    };

    let mut daemon = p.start(&[]);
    // Each schedule records its new last fire once its catch-up is queued.
    wait_until(FIRES, "the three schedules to catch up", || {
        ["all", "last", "none"]
            .iter()
            .all(|n| last_fire(n).is_some_and(|t| t > last))
    });
    wait_until(FIRES, "inbox/ and processing/ to empty", || p.drained());

    // The UTC midnight starting the day `days_ago` days before the start.
    let midnight = |days_ago: i64| {
        (started - days(days_ago))
            .strftime("%Y%m%dT000000Z")
            .to_string()
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
    let restarted = Timestamp::now();
    let _daemon = p.start(&[]);
    wait_until(FIRES, "the schedules to start again", || {
        ["all", "last", "none"]
            .iter()
            .all(|n| last_fire(n).is_some_and(|t| t >= restarted - SignedDuration::from_secs(1)))
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
    // A fire between the two calls makes the folder again: until the link
    // is in its place.
    loop {
        let _ = std::fs::remove_dir_all(&tmp);
        match std::os::unix::fs::symlink("/nonexistent", &tmp) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => panic!("cannot link {}: {e}", tmp.display()),
        }
    }
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

/// A POSIX `TZ` whose clock moves by 10 minutes at `change` (UTC): forward
/// (standard UTC to UTC+0:10) or back (UTC+0:10 to UTC), so a daemon meets a
/// real clock change seconds after it starts.
fn tz_changing_at(change: jiff::Timestamp, forward: bool) -> String {
    use jiff::SignedDuration as Span;
    // POSIX gives each change in the local time in force before it, on a
    // zero-based day of the year.
    let ordinal0 =
        |t: jiff::Timestamp| t.to_zoned_datetime(jiff::tz::TimeZone::UTC).day_of_year() - 1;
    let rule =
        |local: jiff::Timestamp| format!("{}/{}", ordinal0(local), local.strftime("%H:%M:%S"));
    let other = |days: i64| format!("{}/0", ordinal0(change + Span::from_hours(24 * days)));
    if forward {
        format!("XST0XDT-0:10,{},{}", rule(change), other(180))
    } else {
        format!(
            "XST0XDT-0:10,{},{}",
            other(-180),
            rule(change + Span::from_mins(10))
        )
    }
}

/// `H M S` of a UTC time as a 6-field line firing at that local time daily.
fn daily_at(t: jiff::Timestamp) -> String {
    t.strftime("%-S %-M %-H * * *").to_string()
}

/// Now plus `d`, in whole seconds (rounded down).
fn whole_seconds_from_now(d: jiff::SignedDuration) -> jiff::Timestamp {
    jiff::Timestamp::from_second((jiff::Timestamp::now() + d).as_second()).unwrap()
}

/// cronie runs a fixed-time job whose time the clock skipped right after the
/// jump. Here the clock jumps from T to T+10min local; the job is at T+5min.
#[test]
fn a_fixed_time_in_a_skipped_window_fires_right_after_the_jump() {
    use jiff::SignedDuration as Span;
    let change = whole_seconds_from_now(Span::from_secs(8));
    let tz = tz_changing_at(change, true);
    let p = Project::new()
        .open_schema("tick.due")
        .config(&format!(
            r#"
            [handlers.ticker]
            on = ["tick.due"]

            [[schedules]]
            name = "skipped"
            cron = "{}"
            event_type = "tick.due"
            "#,
            daily_at(change + Span::from_mins(5))
        ))
        .handler("ticker", r#"echo "$AUTOD_EVENT_ID" >> ran.txt"#);
    let _daemon = p.start_with_env(&[], &[("TZ", &tz)]);
    let want = format!("cron:skipped:{}", change.strftime("%Y%m%dT%H%M%SZ"));
    wait_until(LIMIT, "the skipped fire, right after the jump", || {
        p.logged("ok").contains(&want)
    });
    assert_eq!(p.lines("ran.txt"), [want], "TZ={tz}");
}

/// Issue 12: a daemon started inside a repeated window took the first pass's
/// slot (before its start) as the next fire, fired it at once and stored a
/// last fire older than its start. A fixed-time job does not run again in the
/// second pass; a wildcard job runs by the real clock.
#[test]
fn a_daemon_started_inside_a_repeated_window_fires_no_old_slot() {
    use jiff::{SignedDuration as Span, Timestamp};
    // The clock went back from T+10min to T two seconds ago: local T+5min
    // was 5 minutes ago (first pass) and comes again in 5 minutes.
    let change = whole_seconds_from_now(Span::from_secs(-2));
    let tz = tz_changing_at(change, false);
    let p = Project::new()
        .open_schema("tick.due")
        .config(&format!(
            r#"
            [handlers.ticker]
            on = ["tick.due"]

            [[schedules]]
            name = "fixed"
            cron = "{}"
            event_type = "tick.due"

            [[schedules]]
            name = "tick"
            cron = "* * * * * *"
            event_type = "tick.due"
            "#,
            daily_at(change + Span::from_mins(5))
        ))
        .handler("ticker", r#"echo "$AUTOD_EVENT_ID" >> ran.txt"#);
    let started = Timestamp::now();
    let _daemon = p.start_with_env(&[], &[("TZ", &tz)]);
    // Two fires of the wildcard job: the schedules are running, and an
    // at-once fire of the old slot would have come before them.
    wait_until(LIMIT, "two fires of the every-second job", || {
        p.logged("ok")
            .iter()
            .filter(|id| id.starts_with("cron:tick:"))
            .count()
            >= 2
    });
    let fixed: Vec<String> = p
        .log()
        .iter()
        .filter_map(|l| l["eventId"].as_str().map(str::to_owned))
        .filter(|id| id.starts_with("cron:fixed:"))
        .collect();
    assert!(fixed.is_empty(), "TZ={tz}: {fixed:?}");
    let stored: serde_json::Value =
        serde_json::from_str(&p.read(".autod/schedules/fixed.json")).unwrap();
    let last: Timestamp = stored["lastFire"].as_str().unwrap().parse().unwrap();
    assert!(
        last >= started - Span::from_secs(1),
        "stored last fire {last} is older than the start {started}"
    );
}
