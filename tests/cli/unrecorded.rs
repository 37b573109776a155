//! An outcome autod cannot write is no outcome (issue 11, case 1): `dispatch`
//! and `retry` say so and exit 2, nothing is marked done or dead, and the same
//! command succeeds in recording once state is writable again.
//!
//! State is made unwritable by putting a plain file where autod needs a folder
//! (`.autod/dead/<handler>`, `.autod/log`, `.autod/archive`): the same failure a
//! full disk gives autod's writes, without needing a filesystem to fill.

use serde_json::json;

use crate::common::{Project, event};

fn failing() -> Project {
    Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.worker]
            on = ["job.due"]
            retry = { max_attempts = 3, initial = "1h", max = "2h" }
            "#,
        )
        .handler(
            "worker",
            r#"
            echo "$AUTOD_EVENT_ID $AUTOD_ATTEMPT" >> ran.txt
            if [ -f sabotage ]; then
                mkdir -p .autod/dead .autod/log
                mv .autod/dead .autod/dead.away && echo x > .autod/dead
                mv .autod/log .autod/log.away && echo x > .autod/log
            fi
            exit 1
            "#,
        )
        .event("e1.json", event("job.due", "e1", json!({})))
}

/// Puts `.autod/<dir>` back where the handler's sabotage moved it from.
fn restore(p: &Project, dir: &str) {
    std::fs::remove_file(p.path(&format!(".autod/{dir}"))).unwrap();
    std::fs::rename(
        p.path(&format!(".autod/{dir}.away")),
        p.path(&format!(".autod/{dir}")),
    )
    .unwrap();
}

#[test]
fn dispatch_whose_dead_letter_cannot_be_written_exits_2_and_records_nothing() {
    let p = failing().file("sabotage", "");
    p.autod(["dispatch", "e1.json"])
        .run()
        .code(2)
        .stderr_has("could not be recorded")
        .stderr_has("dispatch the same event again")
        .stderr_lacks("autod dead list");
    assert_eq!(p.lines("ran.txt"), ["e1 1"], "the handler ran once");
    assert!(!p.done("e1", "worker"));

    // Writable again: the same command records the failure, as attempt 1.
    std::fs::remove_file(p.path("sabotage")).unwrap();
    restore(&p, "dead");
    restore(&p, "log");
    assert!(!p.dead_letter_path("worker", "e1").exists());
    p.autod(["dispatch", "e1.json"]).run().code(1);
    let record = p.dead_letter("worker", "e1");
    assert_eq!(record["attempts"], 1, "{record}");
    assert_eq!(record["state"], "waiting");
}

#[test]
fn dispatch_json_marks_the_pair_unrecorded() {
    let p = failing().file("sabotage", "");
    let out = p.autod(["--json", "dispatch", "e1.json"]).run();
    out.code(2);
    let line = &out.json_lines()[0];
    assert_eq!(line["runs"][0]["unrecorded"], true, "{line}");
    assert_eq!(line["runs"][0]["result"], "failed", "{line}");
}

/// Succeeds; while `sabotage` exists it first puts a plain file where
/// `.autod/done/` was, so the done marker cannot be written after it exits.
const SABOTEUR: &str = r#"
    echo "$AUTOD_EVENT_ID" >> ran.txt
    if [ -f sabotage ]; then mv .autod/done .autod/done.away && echo x > .autod/done; fi
    [ -f fixed ] || [ ! -f failing ] || exit 1
"#;

fn undo_sabotage(p: &Project) {
    std::fs::remove_file(p.path("sabotage")).unwrap();
    std::fs::remove_file(p.path(".autod/done")).unwrap();
    std::fs::rename(p.path(".autod/done.away"), p.path(".autod/done")).unwrap();
}

#[test]
fn a_success_whose_marker_cannot_be_written_is_not_a_success() {
    let p = Project::new()
        .open_schema("job.due")
        .config("[handlers.worker]\non = [\"job.due\"]\n")
        .handler("worker", SABOTEUR)
        .event("e1.json", event("job.due", "e1", json!({})))
        .file("sabotage", "");
    p.autod(["dispatch", "e1.json"])
        .run()
        .code(2)
        .stderr_has("could not be recorded");
    assert_eq!(p.lines("ran.txt"), ["e1"]);
    undo_sabotage(&p);
    assert!(!p.done("e1", "worker"));
    // At least once: it runs again, and is recorded this time.
    p.autod(["dispatch", "e1.json"]).run().code(0);
    assert_eq!(p.lines("ran.txt"), ["e1", "e1"]);
    assert!(p.done("e1", "worker"));
    p.autod(["dispatch", "e1.json"]).run().code(0);
    assert_eq!(p.lines("ran.txt").len(), 2, "recorded: skipped from now on");
}

#[test]
fn dispatch_that_cannot_archive_runs_nothing_and_exits_2() {
    let p = failing().file(".autod/archive", "not a folder");
    p.autod(["dispatch", "e1.json"])
        .run()
        .code(2)
        .stderr_has("nothing ran")
        .stderr_has("make .autod/ writable");
    assert!(!p.exists("ran.txt"));
}

#[test]
fn retry_whose_success_cannot_be_recorded_keeps_the_dead_letter_and_exits_2() {
    let p = Project::new()
        .open_schema("job.due")
        .config("[handlers.worker]\non = [\"job.due\"]\n")
        .handler("worker", SABOTEUR)
        .event("e1.json", event("job.due", "e1", json!({})))
        .file("failing", "");
    p.autod(["dispatch", "e1.json"]).run().code(1);
    let before = p.dead_letter("worker", "e1");
    std::fs::write(p.path("fixed"), "").unwrap();
    std::fs::write(p.path("sabotage"), "").unwrap();
    p.autod(["retry", "e1", "--handler", "worker"])
        .run()
        .code(2)
        .stderr_has("could not be recorded");
    undo_sabotage(&p);
    assert_eq!(
        p.dead_letter("worker", "e1"),
        before,
        "the record is untouched"
    );
    assert!(!p.done("e1", "worker"));
    p.autod(["retry", "e1", "--handler", "worker"])
        .run()
        .code(0);
    assert!(p.done("e1", "worker"));
    assert!(!p.dead_letter_path("worker", "e1").exists());
}
