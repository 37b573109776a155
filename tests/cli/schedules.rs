//! `autod schedules`: next fire times (the daemon's own computation) and a
//! fire by hand; crontab as cronie reads it, clock changes as cronie runs them.

use std::time::Duration;

use serde_json::Value;

use crate::common::{Project, Running, wait_until};

const LIMIT: Duration = Duration::from_secs(20);

/// One schedule named `job` with this cron line and zone.
fn one(cron: &str, zone: &str) -> Project {
    Project::new().open_schema("job.due").config(&format!(
        r#"
        [[schedules]]
        name = "job"
        cron = "{cron}"
        timezone = "{zone}"
        event_type = "job.due"
        "#
    ))
}

/// The UTC fire times `autod schedules --json` lists for the first schedule.
fn fires(p: &Project, after: &str, n: u16) -> Vec<String> {
    let out = p
        .autod([
            "schedules",
            "--json",
            "--after",
            after,
            "-n",
            &n.to_string(),
        ])
        .run();
    out.code(0);
    out.json()[0]["next"]
        .as_array()
        .expect("next is a list")
        .iter()
        .map(|f| f["utc"].as_str().unwrap().to_owned())
        .collect()
}

/// The event files in `.autod/inbox/`.
fn inbox_events(p: &Project) -> Vec<std::path::PathBuf> {
    let Ok(dir) = std::fs::read_dir(p.path(".autod/inbox")) else {
        return Vec::new();
    };
    dir.map(|e| e.unwrap().path())
        .filter(|f| f.extension().is_some_and(|x| x == "json"))
        .collect()
}

#[test]
fn lists_every_schedule_with_its_next_fires_in_its_zone_and_utc() {
    let p = Project::new().open_schema("digest.due").config(
        r#"
        [[schedules]]
        name = "daily-digest"
        cron = "0 9 * * *"
        timezone = "Europe/Berlin"
        event_type = "digest.due"

        [[schedules]]
        name = "hourly"
        cron = "@hourly"
        timezone = "UTC"
        event_type = "digest.due"
        catch_up = "all"
        "#,
    );
    let out = p
        .autod(["schedules", "--after", "2026-11-24T00:00:00Z"])
        .run();
    out.code(0)
        .stdout_has("daily-digest  0 9 * * *  Europe/Berlin  -> digest.due")
        .stdout_has("  2026-11-24 09:00:00 +01:00 CET  2026-11-24T08:00:00Z")
        .stdout_has("  2026-11-28 09:00:00 +01:00 CET  2026-11-28T08:00:00Z")
        .stdout_lacks("2026-11-29 09:00")
        .stdout_has("hourly  @hourly  UTC  -> digest.due");
    // Five fires each by default.
    assert_eq!(
        out.stdout.lines().filter(|l| l.starts_with("  ")).count(),
        10
    );

    let out = p
        .autod([
            "schedules",
            "--json",
            "-n",
            "2",
            "--after",
            "2026-07-01T00:00:00Z",
        ])
        .run();
    out.code(0);
    let list = out.json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let digest = &list[0];
    assert_eq!(digest["name"], "daily-digest");
    assert_eq!(digest["zone"], "Europe/Berlin");
    assert_eq!(digest["catchUp"], "last");
    assert_eq!(list[1]["catchUp"], "all");
    assert_eq!(
        digest["next"],
        serde_json::json!([
            {"local": "2026-07-01T09:00:00+02:00", "utc": "2026-07-01T07:00:00Z"},
            {"local": "2026-07-02T09:00:00+02:00", "utc": "2026-07-02T07:00:00Z"},
        ])
    );
}

#[test]
fn no_schedules_is_an_empty_list() {
    let p = Project::new();
    p.autod(["schedules", "--json"])
        .run()
        .code(0)
        .stdout_has("[]");
    p.autod(["schedules"])
        .run()
        .code(0)
        .stderr_has("no schedules in autod.toml");
}

#[test]
fn bad_arguments_exit_2_and_say_what_to_write() {
    let p = one("0 9 * * *", "UTC");
    p.autod(["schedules", "--after", "tomorrow"])
        .run()
        .code(2)
        .stderr_has(
            "--after \"tomorrow\" is not an RFC 3339 time; write it like 2026-11-24T09:00:00Z",
        );
    p.autod(["schedules", "-n", "0"])
        .run()
        .code(2)
        .stderr_has("-n");
    p.autod(["schedules", "-n", "x"]).run().code(2);
    p.autod(["schedules", "fire"])
        .run()
        .code(2)
        .stderr_has("<NAME>");
}

/// Issue 12: a start inside the repeated hour (the second 02:10 in Berlin on
/// 25 October 2026) returned the first 02:30, before the start.
#[test]
fn a_start_inside_a_repeated_hour_never_gets_an_earlier_fire() {
    let p = one("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        fires(&p, "2026-10-25T01:10:00Z", 2),
        ["2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"]
    );
    // Before the fold: the first 02:30 (summer time), once.
    assert_eq!(
        fires(&p, "2026-10-24T22:00:00Z", 2),
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
}

/// A fixed time in a skipped hour runs right after the jump, as in cronie.
#[test]
fn a_fixed_time_in_a_skipped_hour_runs_right_after_the_jump() {
    let berlin = one("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        fires(&berlin, "2026-03-28T12:00:00Z", 3),
        [
            "2026-03-29T01:00:00Z", // 03:00 CEST, the first minute after 02:00 CET
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z"
        ]
    );
    // Lord Howe moves by 30 minutes: 02:00 becomes 02:30 (15:30Z the day before).
    let lord_howe = one("0 2 * * *", "Australia/Lord_Howe");
    let out = lord_howe
        .autod(["schedules", "-n", "2", "--after", "2026-10-03T00:00:00Z"])
        .run();
    out.code(0)
        .stdout_has("2026-10-04 02:30:00 +11:00")
        .stdout_has("2026-10-03T15:30:00Z")
        .stdout_has("2026-10-04T15:00:00Z");
}

/// Wildcard jobs (minute or hour field starting with `*`) run by the real
/// clock through a repeated hour: no 75-minute hole, no missed @hourly.
#[test]
fn wildcard_jobs_run_through_a_repeated_hour_by_the_real_clock() {
    let quarter = one("*/15 * * * *", "Europe/Berlin");
    let got = fires(&quarter, "2026-10-25T00:40:00Z", 8);
    let want: Vec<String> = (0..8)
        .map(|i| {
            let m = 45 + 15 * i;
            format!("2026-10-25T{:02}:{:02}:00Z", m / 60, m % 60)
        })
        .collect();
    assert_eq!(got, want);
    let hourly = one("@hourly", "Europe/Berlin");
    assert_eq!(
        fires(&hourly, "2026-10-24T23:30:00Z", 3),
        [
            "2026-10-25T00:00:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T02:00:00Z"
        ]
    );
    // A fixed-time job still fires once in the fold.
    let fixed = one("0 2 * * *", "Europe/Berlin");
    assert_eq!(
        fires(&fixed, "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T00:00:00Z", "2026-10-26T01:00:00Z"]
    );
}

#[test]
fn fires_go_on_after_2100() {
    let yearly = one("@yearly", "UTC");
    assert_eq!(
        fires(&yearly, "2100-06-01T00:00:00Z", 2),
        ["2101-01-01T00:00:00Z", "2102-01-01T00:00:00Z"]
    );
    let leap = one("0 12 29 2 *", "Europe/Berlin");
    assert_eq!(
        fires(&leap, "2399-03-01T00:00:00Z", 1),
        ["2400-02-29T11:00:00Z"]
    );
}

/// Valid crontab the old translation refused: names mixed with numbers in
/// ranges, steps larger than the field, a weekday range wrapping to Sunday.
#[test]
fn crontab_that_cronie_accepts_is_accepted() {
    for (cron, after, first) in [
        (
            "0 0 1 3-apr *",
            "2026-01-01T00:00:00Z",
            "2026-03-01T00:00:00Z",
        ),
        (
            "0 0 1 mar-4 *",
            "2026-03-02T00:00:00Z",
            "2026-04-01T00:00:00Z",
        ),
        (
            "0 12 * * 1-fri",
            "2026-11-28T00:00:00Z",
            "2026-11-30T12:00:00Z",
        ), // Sat → Mon
        (
            "*/60 * * * *",
            "2026-11-24T00:30:00Z",
            "2026-11-24T01:00:00Z",
        ),
        (
            "0 */24 * * *",
            "2026-11-24T00:30:00Z",
            "2026-11-25T00:00:00Z",
        ),
        (
            "0 12 * * fri-sun",
            "2026-11-23T00:00:00Z",
            "2026-11-27T12:00:00Z",
        ), // Mon → Fri
    ] {
        let p = one(cron, "UTC");
        assert_eq!(fires(&p, after, 1), [first], "{cron}");
    }
    let weekend = one("0 12 * * fri-sun", "UTC");
    assert_eq!(
        fires(&weekend, "2026-11-27T13:00:00Z", 3),
        [
            "2026-11-28T12:00:00Z",
            "2026-11-29T12:00:00Z",
            "2026-12-04T12:00:00Z"
        ]
    );
}

/// What cronie refuses, autod refuses, and says what to write instead.
#[test]
fn crontab_that_cronie_refuses_is_a_config_error_saying_what_to_write() {
    for (cron, says) in [
        ("0 12 * * 5/2", "a step needs a range or *; write 5-7/2"),
        ("0 0 ? * mon", "\"?\" is not crontab"),
        ("0 0 * * fri-tue", "only a range ending in Sunday wraps"),
        ("0 0 * * monday", "crontab names are three letters"),
        ("~ * * * *", "random values (~) are not supported"),
    ] {
        let p = one(cron, "UTC");
        let out = p.autod(["schedules"]).run();
        out.code(2).stderr_lacks("panicked");
        assert!(out.stderr.contains(says), "{cron}: {}", out.stderr);
        assert!(
            out.stderr.contains("schedule \"job\""),
            "{cron}: {}",
            out.stderr
        );
        p.autod(["lint"]).run().code(1).stdout_has(says);
    }
}

#[test]
fn fire_queues_the_event_a_real_fire_would_send() {
    let p = Project::new().open_schema("digest.due").config(
        r#"
        [handlers.digest]
        on = ["digest.due"]

        [[schedules]]
        name = "daily-digest"
        cron = "0 9 * * *"
        event_type = "digest.due"
        payload = { kind = "daily" }
        "#,
    );
    let out = p.autod(["schedules", "fire", "daily-digest"]).run();
    out.code(0)
        .stderr_has("no `autod run` is running")
        .stderr_has("the events wait in .autod/inbox/");
    let id = out.stdout.trim().to_owned();
    let shape = regex::Regex::new(r"^cron:daily-digest:manual-[0-9a-f]{32}$").unwrap();
    assert!(shape.is_match(&id), "{id}");

    let files = inbox_events(&p);
    assert_eq!(files.len(), 1, "{files:?}");
    let event: Value = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(event["eventId"], id.as_str());
    assert_eq!(event["eventType"], "digest.due");
    assert_eq!(event["source"], "cron:daily-digest");
    assert_eq!(event["payload"], serde_json::json!({"kind": "daily"}));
    assert!(event["ts"].as_str().unwrap().ends_with('Z'));

    // Each fire by hand is a new event.
    let out = p
        .autod(["schedules", "fire", "daily-digest", "--json"])
        .run();
    out.code(0);
    let second = out.json();
    assert_eq!(second["status"], "queued");
    assert_eq!(second["schedule"], "daily-digest");
    assert_ne!(second["eventId"], id.as_str());
}

#[test]
fn fire_of_an_unknown_schedule_exits_2_naming_the_known_ones() {
    let p = one("0 9 * * *", "UTC");
    p.autod(["schedules", "fire", "nightly"])
        .run()
        .code(2)
        .stderr_has("no schedule \"nightly\" in autod.toml (known: job)");
    assert!(inbox_events(&p).is_empty());
    Project::new()
        .autod(["schedules", "fire", "job"])
        .run()
        .code(2)
        .stderr_has("known: none; add a [[schedules]] section");
}

#[test]
fn fire_whose_event_the_schema_refuses_exits_3_and_queues_nothing() {
    let p = Project::new()
        .schema(
            "job.due",
            serde_json::json!({"type": "object", "required": ["kind"]}),
        )
        .config(
            r#"
            [handlers.worker]
            on = ["job.due"]

            [[schedules]]
            name = "job"
            cron = "0 9 * * *"
            event_type = "job.due"
            "#,
        );
    p.autod(["schedules", "fire", "job"])
        .run()
        .code(3)
        .stderr_has("cron:job: rejected at /payload")
        .stderr_has("kind");
    assert!(inbox_events(&p).is_empty());
}

/// With a daemon running, a fire by hand runs the schedule's handlers.
#[test]
fn fire_with_a_daemon_running_runs_the_handlers() {
    let p = Project::new()
        .open_schema("digest.due")
        .config(
            r#"
            [handlers.digest]
            on = ["digest.due"]

            [[schedules]]
            name = "daily-digest"
            cron = "0 9 1 1 *"
            event_type = "digest.due"
            "#,
        )
        .handler(
            "digest",
            r#"echo "$AUTOD_EVENT_ID $AUTOD_EVENT_SOURCE" >> ran.txt"#,
        );
    let daemon: Running = p.autod(["run", "--grace", "2s"]).spawn();
    let pid = daemon.id();
    wait_until(LIMIT, "the daemon to come up", || {
        p.autod(["status", "--json"]).run().json()["daemon"]["pid"] == pid
    });
    let out = p.autod(["schedules", "fire", "daily-digest"]).run();
    out.code(0).stderr_lacks("no `autod run` is running");
    let id = out.stdout.trim().to_owned();
    // `>>` creates the file before echo writes to it: wait for the line.
    wait_until(LIMIT, "the handler to run", || {
        !p.lines("ran.txt").is_empty()
    });
    assert_eq!(p.lines("ran.txt"), [format!("{id} cron:daily-digest")]);
    daemon.terminate();
}

/// Without `timezone`, the machine's zone (`TZ`, as cron) reads the fields.
#[test]
fn a_schedule_without_a_timezone_uses_the_machines_zone() {
    let p = Project::new().open_schema("job.due").config(
        r#"
        [[schedules]]
        name = "morning"
        cron = "0 9 * * *"
        event_type = "job.due"
        "#,
    );
    let out = p
        .autod([
            "schedules",
            "--json",
            "-n",
            "1",
            "--after",
            "2026-11-23T12:00:00Z",
        ])
        .env("TZ", "Asia/Tokyo")
        .run();
    out.code(0);
    let s = &out.json()[0];
    assert_eq!(s["timezone"], Value::Null);
    assert_eq!(s["zone"], "local (Asia/Tokyo)");
    assert_eq!(
        s["next"][0],
        serde_json::json!({"local": "2026-11-24T09:00:00+09:00", "utc": "2026-11-24T00:00:00Z"})
    );
}
