//! `autod replay` and `autod archive prune` (SPEC 14): archived events
//! delivered again under their own eventIds, and the archive's upkeep.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::common::{Project, RECORD, event, today};

/// An RFC 3339 time `hours` before now.
fn ago(hours: i64) -> String {
    format!(
        "{:.3}",
        jiff::Timestamp::now() - jiff::SignedDuration::from_hours(hours)
    )
}

/// An event with its own `ts`.
fn at(event_type: &str, id: &str, ts: &str) -> Value {
    let mut e = event(event_type, id, json!({}));
    e["ts"] = json!(ts);
    e
}

/// photo.added → `photos`, note.saved → `notes`; both record their runs.
fn project() -> Project {
    Project::new()
        .open_schema("photo.added")
        .open_schema("note.saved")
        .config(
            r#"
            [handlers.photos]
            on = ["photo.*"]
            [handlers.notes]
            on = ["note.saved"]
            "#,
        )
        .handler("photos", RECORD)
        .handler("notes", RECORD)
}

/// Dispatches each event (as its own file) and forgets the runs it caused,
/// so a test sees only what the replay ran.
fn dispatched(p: &Project, events: &[Value]) {
    for (i, e) in events.iter().enumerate() {
        let name = format!("in-{i}.json");
        std::fs::write(p.path(&name), e.to_string()).unwrap();
        p.autod(["dispatch", &name]).run().code(0);
    }
    let _ = std::fs::remove_file(p.path("runs.log"));
}

fn replayed_lines(p: &Project) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = p
        .log()
        .iter()
        .filter(|l| l["replay"] == json!(true))
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap().to_owned();
            (s("handler"), s("eventId"), s("result"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn replay_by_type_and_time_window_runs_only_those_and_marks_them() {
    let p = project();
    dispatched(
        &p,
        &[
            at("photo.added", "old-photo", &ago(50)),
            at("photo.added", "photo-1", &ago(5)),
            at("note.saved", "note-1", &ago(4)),
            at("photo.added", "new-photo", &ago(1)),
        ],
    );
    let (since, until) = (ago(6), ago(2));
    p.autod([
        "replay", "--since", &since, "--until", &until, "--type", "photo.*", "--force",
    ])
    .run()
    .code(0)
    .stderr_has("replayed 1 events: 1 ok, 0 skipped, 0 failed, 0 no longer valid");
    assert_eq!(p.runs(), ["photos photo.added photo-1 1"]);
    assert_eq!(
        replayed_lines(&p),
        [("photos".into(), "photo-1".into(), "ok".into())]
    );
    // Lines of ordinary runs carry no `replay` key at all.
    let plain = p
        .log()
        .into_iter()
        .find(|l| l["eventId"] == "note-1")
        .unwrap();
    assert!(plain.get("replay").is_none(), "{plain}");
}

#[test]
fn a_new_handler_runs_over_old_events_and_the_others_are_skipped() {
    let p = project();
    dispatched(
        &p,
        &[
            at("note.saved", "n1", &ago(30)),
            at("note.saved", "n2", &ago(20)),
        ],
    );
    // Added after the events were dispatched.
    let p = p
        .config(
            r#"
            [handlers.photos]
            on = ["photo.*"]
            [handlers.notes]
            on = ["note.saved"]
            [handlers.indexer]
            on = ["note.*"]
            "#,
        )
        .handler("indexer", RECORD);
    p.autod(["replay", "--since", "2d"])
        .run()
        .code(0)
        .stderr_has("replayed 2 events: 2 ok, 2 skipped, 0 failed, 0 no longer valid");
    assert_eq!(
        p.runs(),
        ["indexer note.saved n1 1", "indexer note.saved n2 1"]
    );
    assert_eq!(
        replayed_lines(&p),
        [
            ("indexer".into(), "n1".into(), "ok".into()),
            ("indexer".into(), "n2".into(), "ok".into()),
            ("notes".into(), "n1".into(), "skipped".into()),
            ("notes".into(), "n2".into(), "skipped".into()),
        ]
    );
    // --handler restricts to it: nothing left to run, all skipped.
    p.autod(["replay", "--since", "2d", "--handler", "indexer"])
        .run()
        .code(0)
        .stderr_has("2 events: 0 ok, 2 skipped");
}

#[test]
fn failed_takes_only_pairs_whose_last_result_was_not_ok() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.flaky]
            on = ["job.due"]
            [handlers.steady]
            on = ["job.due"]
            "#,
        )
        .handler("flaky", &format!("[ -e broken ] && exit 1\n{RECORD}"))
        .handler("steady", RECORD)
        .file("broken", "")
        .event("a.json", event("job.due", "a", json!({})))
        .event("b.json", event("job.due", "b", json!({})));
    p.autod(["dispatch", "a.json"]).run().code(1);
    std::fs::remove_file(p.path("broken")).unwrap();
    p.autod(["dispatch", "b.json"]).run().code(0);
    std::fs::remove_file(p.path("runs.log")).unwrap();

    p.autod(["replay", "--since", "1h", "--failed"])
        .run()
        .code(0)
        .stderr_has("replayed 1 events: 1 ok, 0 skipped, 0 failed");
    assert_eq!(p.runs(), ["flaky job.due a 2"]);
    assert!(!p.exists(".autod/dead/flaky/a.json"));
    // Now every pair's last result is ok: nothing is taken.
    p.autod(["replay", "--since", "1h", "--failed"])
        .run()
        .code(0)
        .stderr_has("replayed 0 events");
}

#[test]
fn force_reruns_pairs_that_succeeded_and_without_it_they_are_skipped() {
    let p = project();
    dispatched(&p, &[at("note.saved", "n1", &ago(1))]);
    p.autod(["replay", "--since", "2h"])
        .run()
        .code(0)
        .stderr_has("1 events: 0 ok, 1 skipped");
    assert!(p.runs().is_empty());
    p.autod(["replay", "--since", "2h", "--force"])
        .run()
        .code(0)
        .stderr_has("1 events: 1 ok, 0 skipped");
    assert_eq!(p.runs(), ["notes note.saved n1 1"]);
}

#[test]
fn dry_run_lists_what_would_run_and_records_nothing() {
    let p = project();
    dispatched(
        &p,
        &[
            at("note.saved", "n1", &ago(1)),
            at("photo.added", "p1", &ago(1)),
        ],
    );
    std::fs::remove_file(p.path(".autod/done/p1.photos.ok")).unwrap();
    let log_before = p.log_raw();
    let out = p.autod(["replay", "--since", "2h", "--dry-run"]).run();
    out.code(0)
        .stdout_has("note.saved n1 → notes (already succeeded: would be skipped)")
        .stdout_has("photo.added p1 → photos")
        .stderr_has("nothing was run or recorded");
    assert_eq!(p.log_raw(), log_before);
    assert!(p.runs().is_empty());

    let out = p
        .autod(["replay", "--since", "2h", "--dry-run", "--json"])
        .run();
    let lines = out.code(0).json_lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["status"], "dry-run");
    assert_eq!(lines[2]["summary"]["via"], "dry-run");
    assert_eq!(p.log_raw(), log_before);
}

#[test]
fn json_gives_one_object_per_event_and_a_summary() {
    let p = project();
    dispatched(&p, &[at("note.saved", "n1", &ago(1))]);
    let out = p
        .autod(["replay", "--since", "2h", "--force", "--json"])
        .run();
    let lines = out.code(0).json_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["eventId"], "n1");
    assert_eq!(lines[0]["status"], "replayed");
    assert_eq!(lines[0]["runs"][0]["result"], "ok");
    assert_eq!(
        lines[1]["summary"],
        json!({"via": "direct", "events": 1, "ok": 1, "skipped": 0, "failed": 0, "noLongerValid": 0, "queued": 0, "followUpRuns": 0})
    );
}

#[test]
fn follow_ups_of_replayed_runs_run_too() {
    let p = Project::new()
        .open_schema("order.placed")
        .open_schema("order.checked")
        .config(
            r#"
            [handlers.old]
            on = ["order.placed"]
            "#,
        )
        .handler("old", RECORD)
        .event("o.json", event("order.placed", "o1", json!({})));
    p.autod(["dispatch", "o.json"]).run().code(0);
    let p = p
        .config(
            r#"
            [handlers.old]
            on = ["order.placed"]
            [handlers.checker]
            on = ["order.placed"]
            [handlers.after]
            on = ["order.checked"]
            "#,
        )
        .handler(
            "checker",
            &format!(
                "{RECORD}\necho '{{\"eventType\":\"order.checked\",\"payload\":{{}}}}' >> \"$AUTOD_EMIT\""
            ),
        )
        .handler("after", r#"echo "after $AUTOD_EVENT_SOURCE" >> after.log"#);
    p.autod(["replay", "--since", "1h", "--handler", "checker"])
        .run()
        .code(0)
        .stderr_has("replayed 1 events: 1 ok, 0 skipped, 0 failed, 0 no longer valid (and 1 runs of follow-ups)");
    assert_eq!(p.lines("after.log"), ["after handler:checker"]);
    let after: Vec<Value> = p
        .log()
        .into_iter()
        .filter(|l| l["handler"] == "after")
        .collect();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["replay"], true);
}

#[test]
fn an_event_that_no_longer_validates_is_reported_not_run_and_exits_3() {
    let p = project();
    dispatched(
        &p,
        &[
            at("note.saved", "n1", &ago(1)),
            at("photo.added", "p1", &ago(1)),
        ],
    );
    // Today's schema wants a field the archived event lacks.
    let p = p.schema(
        "photo.added",
        json!({"type": "object", "required": ["path"]}),
    );
    p.autod(["replay", "--since", "2h", "--force"])
        .run()
        .code(3)
        .stderr_has("p1: no longer valid, not replayed")
        .stderr_has("path")
        .stderr_has("replayed 2 events: 1 ok, 0 skipped, 0 failed, 1 no longer valid");
    assert_eq!(p.runs(), ["notes note.saved n1 1"]);
}

#[test]
fn since_that_is_not_a_time_is_a_usage_error() {
    let p = project();
    p.autod(["replay", "--since", "last tuesday"])
        .run()
        .code(2)
        .stderr_has("--since")
        .stderr_has("30m, 2h, 1day");
    p.autod(["replay"]).run().code(2).stderr_has("--since");
}

#[test]
fn until_before_since_is_a_usage_error() {
    let p = project();
    p.autod(["replay", "--since", "1h", "--until", "2h"])
        .run()
        .code(2)
        .stderr_has("--until")
        .stderr_has("is before --since");
}

#[test]
fn a_bad_type_pattern_or_an_unknown_handler_is_a_usage_error() {
    let p = project();
    p.autod(["replay", "--since", "1h", "--type", "photo/*"])
        .run()
        .code(2)
        .stderr_has("--type");
    p.autod(["replay", "--since", "1h", "--handler", "nope"])
        .run()
        .code(2)
        .stderr_has("no such handler")
        .stderr_has("known: notes, photos");
}

#[test]
fn corrupt_or_hand_edited_archive_files_are_reported_and_skipped() {
    let p = project();
    dispatched(&p, &[at("note.saved", "n1", &ago(1))]);
    let day = format!(".autod/archive/{}", today());
    std::fs::write(
        p.path(&format!("{day}/torn.json")),
        "{\"eventType\": \"note.sa",
    )
    .unwrap();
    let mut edited = at("note.saved", "x", &ago(1));
    edited["eventId"] = json!("../../etc/passwd");
    std::fs::write(p.path(&format!("{day}/edited.json")), edited.to_string()).unwrap();
    p.autod(["replay", "--since", "2h", "--force"])
        .run()
        .code(3)
        .stderr_has("torn.json: skipped, not an archived event: not JSON")
        .stderr_has("edited.json: skipped, not an archived event")
        .stderr_has("replayed 3 events: 1 ok, 0 skipped, 0 failed, 2 no longer valid");
    assert_eq!(p.runs(), ["notes note.saved n1 1"]);
    assert!(!p.exists("etc"));
}

#[test]
fn an_empty_archive_says_so_and_succeeds() {
    let p = project();
    p.autod(["replay", "--since", "7d"])
        .run()
        .code(0)
        .stderr_has("the archive holds no events between");
    assert!(p.log_raw().is_empty());
}

/// Sets a file's mtime to `hours` ago: a per-event file no handler can be
/// reading any more.
fn age(p: &Project, rel: &str, hours: u64) {
    std::fs::File::options()
        .write(true)
        .open(p.path(rel))
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(hours * 3600))
        .unwrap();
}

fn day_of(ts: &str) -> String {
    ts[..10].to_owned()
}

#[test]
fn prune_removes_days_past_retention_compacts_finished_ones_and_replay_still_finds_them() {
    let p = project().config(
        r#"
        [archive]
        retention = "10d"
        [handlers.photos]
        on = ["photo.*"]
        [handlers.notes]
        on = ["note.saved"]
        "#,
    );
    let (old, recent) = (ago(24 * 20), ago(24 * 3));
    dispatched(
        &p,
        &[
            at("note.saved", "ancient", &old),
            at("note.saved", "recent", &recent),
        ],
    );
    // A flat file of an earlier autod build.
    let legacy = at("note.saved", "legacy", &recent);
    std::fs::write(p.path(".autod/archive/legacy.json"), legacy.to_string()).unwrap();
    let (old_day, recent_day) = (day_of(&old), day_of(&recent));
    for rel in [
        format!(".autod/archive/{old_day}/ancient.json"),
        format!(".autod/archive/{recent_day}/recent.json"),
        ".autod/archive/legacy.json".to_owned(),
    ] {
        age(&p, &rel, 3);
    }
    // Found before any compaction, flat file included.
    p.autod(["replay", "--since", "30d", "--dry-run"])
        .run()
        .code(0)
        .stdout_has("ancient")
        .stdout_has("recent")
        .stdout_has("legacy");

    p.autod(["archive", "prune", "--dry-run"])
        .run()
        .code(0)
        .stdout_has(&format!(
            "would remove {old_day} (1 events, past retention)"
        ))
        .stdout_has(&format!("would compact {recent_day} (2 events)"));
    assert!(p.exists(&format!(".autod/archive/{old_day}/ancient.json")));

    let out = p.autod(["archive", "prune", "--json"]).run();
    let v = out.code(0).json();
    assert_eq!(v["removed"], json!([{"day": old_day, "events": 1}]));
    assert_eq!(v["compacted"], json!([{"day": recent_day, "events": 2}]));
    assert_eq!(v["migrated"], 1);
    assert!(!p.exists(&format!(".autod/archive/{old_day}")));
    assert!(!p.exists(&format!(".autod/archive/{recent_day}")));
    assert!(!p.exists(".autod/archive/legacy.json"));
    assert_eq!(
        p.lines(&format!(".autod/archive/{recent_day}.jsonl")).len(),
        2
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(p.path(&format!(".autod/archive/{recent_day}.jsonl")))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // The compacted day replays; a handler still gets a per-event file.
    let p = p.handler(
        "notes",
        &format!("grep -q \"$AUTOD_EVENT_ID\" \"$AUTOD_EVENT_FILE\" || exit 9\n{RECORD}"),
    );
    p.autod(["replay", "--since", "30d", "--force"])
        .run()
        .code(0)
        .stderr_has("replayed 2 events: 2 ok");
    assert_eq!(
        p.runs(),
        ["notes note.saved legacy 1", "notes note.saved recent 1"]
    );
    p.autod(["archive", "prune"])
        .run()
        .code(0)
        .stdout_has("kept 2 per-event files a handler may still be reading");

    // A hand-edited line of a compacted day is reported by its line number.
    let jsonl = p.path(&format!(".autod/archive/{recent_day}.jsonl"));
    let mut text = std::fs::read_to_string(&jsonl).unwrap();
    text.push_str("{\"eventType\": \"note.saved\", \"eventId\": \"a/b\", \"source\": \"cli\"}\n");
    std::fs::write(&jsonl, text).unwrap();
    p.autod(["replay", "--since", "30d", "--dry-run"])
        .run()
        .code(3)
        .stderr_has(&format!(
            "archive/{recent_day}.jsonl:3: skipped, not an archived event"
        ))
        .stdout_has("recent");
}

#[test]
fn prune_of_an_empty_archive_says_there_is_nothing_to_do() {
    let p = project();
    p.autod(["archive", "prune"])
        .run()
        .code(0)
        .stdout_has("nothing to prune or compact");
}

#[test]
fn retention_out_of_bounds_is_a_config_error_naming_the_key() {
    for (value, says) in [
        ("1000y", "archive.retention"),
        ("1h", "shorter than a day"),
        ("soon", "invalid duration"),
    ] {
        let p = project().config(&format!("[archive]\nretention = \"{value}\"\n"));
        p.autod(["archive", "prune"]).run().code(2).stderr_has(says);
    }
}

#[test]
fn a_long_replay_reports_progress_with_verbose() {
    // Long enough (four runs of 0.4s, one at a time) to pass the one-second
    // mark between two progress lines.
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.slow]
            on = ["job.due"]
            "#,
        )
        .handler("slow", "sleep 0.4");
    let events: Vec<Value> = (0..4)
        .map(|i| at("job.due", &format!("j{i}"), &ago(1)))
        .collect();
    dispatched(&p, &events);
    p.autod(["replay", "--since", "2h", "--force", "--jobs", "1", "-v"])
        .run()
        .code(0)
        .stderr_has("/4\n")
        .stderr_has("replayed 4 events: 4 ok");
    // Without a terminal and without -v: only the summary.
    p.autod(["replay", "--since", "2h"])
        .run()
        .code(0)
        .stderr_lacks("/4\n");
}

#[test]
fn a_day_past_retention_keeps_the_file_of_an_event_a_handler_may_be_reading() {
    let p = project().config(
        r#"
        [archive]
        retention = "1d"
        [handlers.notes]
        on = ["note.saved"]
        "#,
    );
    let old = ago(24 * 5);
    // Retried now, say: its file was (re)written a moment ago.
    dispatched(&p, &[at("note.saved", "busy", &old)]);
    let day = format!(".autod/archive/{}", day_of(&old));
    p.autod(["archive", "prune"])
        .run()
        .code(0)
        .stdout_has(&format!(
            "removed {} (1 events, past retention)",
            day_of(&old)
        ))
        .stdout_has("kept 1 per-event files a handler may still be reading");
    assert!(p.exists(&format!("{day}/busy.json")));
    age(&p, &format!("{day}/busy.json"), 3);
    p.autod(["archive", "prune"]).run().code(0);
    assert!(!p.exists(&day));
}

#[test]
fn a_forced_replay_of_a_chain_runs_each_follow_up_at_most_once() {
    let p = Project::new()
        .open_schema("order.placed")
        .open_schema("order.checked")
        .config("[handlers.first]\non = [\"order.placed\"]\n[handlers.second]\non = [\"order.checked\"]\n")
        .handler(
            "first",
            &format!("{RECORD}\necho '{{\"eventType\":\"order.checked\",\"payload\":{{}}}}' >> \"$AUTOD_EMIT\""),
        )
        .handler("second", RECORD)
        .event("o.json", event("order.placed", "o1", json!({})));
    p.autod(["dispatch", "o.json"]).run().code(0);
    let second = |p: &Project| p.runs().iter().filter(|r| r.starts_with("second ")).count();
    assert_eq!(second(&p), 1);
    p.autod(["replay", "--since", "1h", "--force"])
        .run()
        .code(0)
        .stderr_has("left to their replayed parents");
    assert_eq!(
        p.runs().iter().filter(|r| r.starts_with("first ")).count(),
        2
    );
    assert_eq!(
        second(&p),
        1,
        "the follow-up is its parent's to emit again, and it already succeeded"
    );
}
