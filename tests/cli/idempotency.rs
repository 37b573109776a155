//! An (eventId, handler) pair that succeeded never runs again, even when two
//! autod processes race for it; `--force` is the one way to rerun it.

use serde_json::json;

use crate::common::{Project, RECORD, event};

fn project(body: &str) -> Project {
    Project::new()
        .open_schema("note.saved")
        .config(
            r#"
            [handlers.indexer]
            on = ["note.saved"]
            "#,
        )
        .handler("indexer", body)
        .event("e.json", event("note.saved", "ev-1", json!({})))
}

#[test]
fn same_event_twice_is_skipped_the_second_time() {
    let p = project(RECORD);
    p.autod(["dispatch", "e.json"]).run().code(0);
    p.autod(["dispatch", "e.json"])
        .run()
        .code(0)
        .stderr_has("already succeeded");
    assert_eq!(p.runs(), ["indexer note.saved ev-1 1"]);
    assert_eq!(p.logged("ok"), [("indexer".into(), "ev-1".into())]);
    assert_eq!(p.logged("skipped"), [("indexer".into(), "ev-1".into())]);
}

#[test]
fn success_leaves_one_complete_marker_and_no_lock_file() {
    let p = project(RECORD);
    let listing = |p: &Project| {
        let mut names: Vec<String> = std::fs::read_dir(p.path(".autod/done"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    p.autod(["dispatch", "e.json"]).run().code(0);
    assert_eq!(listing(&p), ["ev-1.indexer.ok"]);
    let marker: serde_json::Value =
        serde_json::from_str(&p.read(".autod/done/ev-1.indexer.ok")).unwrap();
    assert_eq!(marker["attempt"], 1, "{marker}");
    // Skipping takes no lock, so it leaves nothing behind either; --force
    // replaces the marker.
    p.autod(["dispatch", "e.json"]).run().code(0);
    assert_eq!(listing(&p), ["ev-1.indexer.ok"]);
    p.autod(["dispatch", "--force", "e.json"]).run().code(0);
    assert_eq!(listing(&p), ["ev-1.indexer.ok"]);
    assert_eq!(p.runs().len(), 2);
}

#[test]
fn a_marker_in_the_old_per_event_folder_still_counts() {
    let p = project(RECORD).file(".autod/done/ev-1/indexer.ok", "{}\n");
    p.autod(["dispatch", "e.json"])
        .run()
        .code(0)
        .stderr_has("already succeeded");
    assert!(p.runs().is_empty(), "{:?}", p.runs());
}

#[test]
fn same_event_twice_in_one_command_runs_once() {
    let p = project(RECORD).event("copy.json", event("note.saved", "ev-1", json!({})));
    p.autod(["dispatch", "e.json", "copy.json"]).run().code(0);
    assert_eq!(p.runs(), ["indexer note.saved ev-1 1"]);
}

#[test]
fn force_runs_it_again() {
    let p = project(RECORD);
    p.autod(["dispatch", "e.json"]).run().code(0);
    p.autod(["dispatch", "--force", "e.json"]).run().code(0);
    assert_eq!(
        p.runs(),
        ["indexer note.saved ev-1 1", "indexer note.saved ev-1 1"]
    );
    assert_eq!(p.logged("ok").len(), 2);
}

#[test]
fn a_forced_rerun_that_fails_is_retried_not_skipped_as_done() {
    // Succeeds once, then fails until the file `fixed` exists.
    let p = project(&format!(
        "{RECORD}\n[ -e broken ] && [ ! -e fixed ] && {{ echo 'now broken' >&2; exit 1; }}\nexit 0"
    ));
    p.autod(["dispatch", "e.json"]).run().code(0);
    let p = p.file("broken", "");
    p.autod(["dispatch", "--force", "e.json"])
        .run()
        .code(1)
        .stderr_has("now broken");
    assert!(
        !p.done("ev-1", "indexer"),
        "the failure is the pair's latest outcome"
    );
    assert_eq!(p.dead_letter("indexer", "ev-1")["state"], "waiting");

    // Still broken: retried, and it fails again; the dead letter stays.
    p.autod(["retry", "--all"]).run().code(1);
    assert_eq!(p.runs().len(), 3);
    assert_eq!(p.dead_letter("indexer", "ev-1")["attempts"], 2);

    let p = p.file("fixed", "");
    p.autod(["retry", "--all"]).run().code(0);
    assert_eq!(p.runs().len(), 4);
    assert!(p.done("ev-1", "indexer"));
    assert!(!p.dead_letter_path("indexer", "ev-1").exists());
}

#[test]
fn two_processes_racing_for_one_event_run_it_once() {
    // Slow enough that the second process arrives while the first still runs.
    let p = project(&format!("{RECORD}\nsleep 1"));
    let first = p.autod(["dispatch", "e.json"]).spawn();
    let second = p.autod(["dispatch", "e.json"]).spawn();
    first.wait().code(0);
    second.wait().code(0);
    assert_eq!(p.runs(), ["indexer note.saved ev-1 1"]);
    assert_eq!(p.logged("ok").len(), 1, "{:#?}", p.log());
    assert_eq!(p.logged("skipped").len(), 1, "{:#?}", p.log());
}

#[test]
fn redispatch_after_a_partial_failure_reruns_only_the_failed_pair() {
    let p = Project::new()
        .open_schema("note.saved")
        .config(
            r#"
            [handlers.good]
            on = ["note.saved"]
            [handlers.bad]
            on = ["note.saved"]
            "#,
        )
        .handler("good", RECORD)
        .handler("bad", &format!("{RECORD}\nexit 1"))
        .event("e.json", event("note.saved", "ev-1", json!({})));
    p.autod(["dispatch", "e.json"]).run().code(1);
    p.autod(["dispatch", "e.json"]).run().code(1);
    assert_eq!(
        p.runs(),
        [
            "bad note.saved ev-1 1",
            "bad note.saved ev-1 2",
            "good note.saved ev-1 1"
        ]
    );
    assert_eq!(p.dead_letter("bad", "ev-1")["attempts"], 2);
}
