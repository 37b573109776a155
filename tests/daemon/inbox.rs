//! The inbox: renamed-in files are claimed, delivered and removed; files that
//! are not finished events are never read; invalid ones go to rejected/.

use std::os::unix::fs::symlink;

use crate::helper::{LIMIT, Project, event, wait_until};

fn project() -> Project {
    Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.worker]
            on = ["job.due"]
            "#,
        )
        .handler("worker", r#"echo "$AUTOD_EVENT_ID" >> ran.txt"#)
}

#[test]
fn an_event_renamed_into_the_inbox_is_delivered_and_removed() {
    let p = project();
    // Waiting before the daemon starts: picked up at start.
    p.inbox_put("early.json", &event("job.due", "early"));
    let _daemon = p.start(&[]);
    wait_until(LIMIT, "the waiting event to be delivered", || {
        p.done("early", "worker")
    });

    p.inbox_put("live.json", &event("job.due", "live"));
    wait_until(LIMIT, "the new event to be delivered", || {
        p.done("live", "worker")
    });
    wait_until(LIMIT, "inbox/ and processing/ to empty", || p.drained());

    let mut ran = p.lines("ran.txt");
    ran.sort();
    assert_eq!(ran, ["early", "live"]);
    assert_eq!(p.results("early", "worker"), ["ok"]);
    assert_eq!(p.results("live", "worker"), ["ok"]);
    let first = &p.log()[0];
    let keys: Vec<&String> = first.as_object().unwrap().keys().take(4).collect();
    assert_eq!(keys, ["ts", "eventId", "handler", "result"], "{first}");
}

#[test]
fn dotfiles_tmp_files_symlinks_and_staged_files_are_never_read() {
    let p = project();
    p.write(
        ".autod/inbox/.hidden.json",
        event("job.due", "hidden").to_string(),
    );
    p.write(
        ".autod/inbox/x.json.tmp",
        event("job.due", "tmpfile").to_string(),
    );
    p.write(
        ".autod/inbox/tmp/staged.json",
        event("job.due", "staged").to_string(),
    );
    p.write("elsewhere.json", event("job.due", "via-link").to_string());
    symlink(p.path("elsewhere.json"), p.path(".autod/inbox/link.json")).unwrap();
    std::fs::create_dir(p.path(".autod/inbox/a-folder.json")).unwrap();

    let _daemon = p.start(&[]);
    // A real event after them: once it is through, every claim pass has seen them.
    p.inbox_put("real.json", &event("job.due", "real"));
    wait_until(LIMIT, "the real event to be delivered", || {
        p.done("real", "worker")
    });
    wait_until(LIMIT, "processing/ to empty", || p.processing().is_empty());

    assert_eq!(p.lines("ran.txt"), ["real"]);
    assert_eq!(
        p.inbox(),
        [".hidden.json", "a-folder.json", "link.json", "x.json.tmp"]
    );
    assert_eq!(p.names(".autod/inbox/tmp"), ["staged.json"]);
    assert!(
        p.exists("elsewhere.json"),
        "the symlink's target is untouched"
    );
    assert!(p.names(".autod/rejected").is_empty());
}

#[test]
fn an_invalid_file_goes_to_rejected_with_the_reason_beside_it() {
    let p = project();
    let _daemon = p.start(&[]);
    // No `source`: the envelope refuses it.
    p.inbox_put(
        "bad.json",
        &serde_json::json!({"eventType": "job.due", "eventId": "bad-1", "payload": {}}),
    );
    p.inbox_put("garbage.json", &serde_json::json!("not an object"));
    p.write(".autod/inbox/tmp/broken.json", "{ this is not json");
    std::fs::rename(
        p.path(".autod/inbox/tmp/broken.json"),
        p.path(".autod/inbox/broken.json"),
    )
    .unwrap();
    wait_until(LIMIT, "the three files to be rejected", || {
        p.names(".autod/rejected").len() == 6
    });
    wait_until(LIMIT, "inbox/ and processing/ to empty", || p.drained());

    assert_eq!(
        p.names(".autod/rejected"),
        [
            "bad.json",
            "bad.json.error.json",
            "broken.json",
            "broken.json.error.json",
            "garbage.json",
            "garbage.json.error.json"
        ]
    );
    // The file itself is kept as it was.
    assert!(
        p.read(".autod/rejected/broken.json")
            .starts_with("{ this is not json")
    );
    let why: serde_json::Value =
        serde_json::from_str(&p.read(".autod/rejected/bad.json.error.json")).unwrap();
    assert_eq!(why["file"], "bad.json");
    assert!(
        why["errors"].to_string().contains("source"),
        "the error names the missing field: {why}"
    );
    let why = p.read(".autod/rejected/broken.json.error.json");
    assert!(why.to_lowercase().contains("json"), "{why}");
    assert!(!p.exists("ran.txt"), "nothing ran");
    assert_eq!(p.logged("rejected").len(), 3);
    assert!(p.logged("rejected").contains(&"bad-1".to_owned()));
}

#[test]
fn an_event_sent_again_while_its_first_copy_runs_is_skipped_after_it() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.worker]
            on = ["job.due"]
            "#,
        )
        .handler(
            "worker",
            r#"
            echo "$AUTOD_EVENT_ID" >> started.txt
            sleep 0.5
            echo "$AUTOD_EVENT_ID" >> ran.txt
            "#,
        );
    let _daemon = p.start(&[]);
    p.inbox_put("dup.json", &event("job.due", "dup"));
    wait_until(LIMIT, "the first copy to start", || p.exists("started.txt"));
    // Same eventId, same file name, while the first copy is in processing/.
    p.inbox_put("dup.json", &event("job.due", "dup"));
    wait_until(LIMIT, "the second copy to be handled", || {
        p.results("dup", "worker").len() == 2
    });
    wait_until(LIMIT, "inbox/ and processing/ to empty", || p.drained());
    assert_eq!(p.results("dup", "worker"), ["ok", "skipped"]);
    assert_eq!(p.lines("ran.txt"), ["dup"]);
}

/// Was `{"eventId":"-","handler":"-","result":"rejected",…}` with nothing to
/// say which file: the line names the inbox file and the eventType it claimed,
/// and `autod status` shows them.
#[test]
fn a_rejected_inbox_file_is_named_in_the_run_log_and_status() {
    let p = project();
    let _daemon = p.start(&[]);
    p.inbox_put(
        "no-source.json",
        &serde_json::json!({"eventType": "job.due", "payload": {}}),
    );
    wait_until(LIMIT, "the file to be rejected", || {
        !p.logged("rejected").is_empty()
    });
    let line = p
        .log()
        .into_iter()
        .find(|l| l["result"] == "rejected")
        .unwrap();
    assert_eq!(line["eventId"], "-");
    assert_eq!(line["eventType"], "job.due", "{line}");
    assert_eq!(line["file"], "no-source.json", "{line}");
    assert_eq!(line["input"], "inbox/no-source.json", "{line}");
    let status = p.autod(["status"]).assert().success();
    let stdout = String::from_utf8_lossy(&status.get_output().stdout).into_owned();
    let failure = stdout
        .lines()
        .find(|l| l.contains("rejected"))
        .unwrap_or_else(|| panic!("no rejected line in:\n{stdout}"));
    assert!(
        failure.contains("job.due") && failure.contains("inbox/no-source.json"),
        "{stdout}"
    );
}
