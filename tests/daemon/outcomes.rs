//! Nothing accepted is lost, nothing accepted is rejected for the project's
//! fault (issue 11, cases 1–4, 9, 12, 15): an event whose outcome cannot be
//! recorded, whose file cannot be archived or claimed, or that the project
//! cannot take right now stays where recovery finds it, and the daemon
//! delivers it again by itself once it can, without a restart.
//!
//! Unwritable state is a plain file put where autod needs a folder: the same
//! failure a full disk gives autod's writes (faults/run fills a real one).

use std::os::unix::ffi::OsStrExt;

use rustix::process::Signal;
use serde_json::json;

use crate::helper::{LIMIT, Project, event, wait_until};

/// A handler that fails; on its first run with `sabotage` present it puts plain
/// files where `.autod/dead/` and `.autod/log/` were (then removes `sabotage`),
/// so the failure it reports cannot be recorded.
fn saboteur() -> Project {
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
                rm sabotage
                mkdir -p .autod/dead .autod/log
                mv .autod/dead .autod/dead.away && echo x > .autod/dead
                mv .autod/log .autod/log.away && echo x > .autod/log
            fi
            exit 1
            "#,
        )
}

fn restore(p: &Project, dir: &str) {
    std::fs::remove_file(p.path(&format!(".autod/{dir}"))).unwrap();
    std::fs::rename(
        p.path(&format!(".autod/{dir}.away")),
        p.path(&format!(".autod/{dir}")),
    )
    .unwrap();
}

#[test]
fn a_failure_that_cannot_be_recorded_keeps_its_event_and_is_recorded_once_state_is_writable() {
    let p = saboteur();
    p.write("sabotage", "");
    let daemon = p.start(&[]);
    p.autod(["send", "-"])
        .write_stdin(event("job.due", "e1").to_string())
        .assert()
        .code(0);
    wait_until(LIMIT, "the unrecorded outcome to be reported", || {
        daemon.stderr().contains("could not be recorded")
    });
    assert_eq!(
        p.processing(),
        ["e1.json"],
        "the event stays where recovery finds it"
    );
    assert!(p.dead_letter("worker", "e1").is_none());

    // No restart: the daemon tries again by itself once it can write.
    restore(&p, "dead");
    restore(&p, "log");
    wait_until(LIMIT, "the dead letter once state is writable", || {
        p.dead_letter("worker", "e1").is_some()
    });
    wait_until(LIMIT, "processing/ to empty", || p.drained());
    let record = p.dead_letter("worker", "e1").unwrap();
    assert_eq!(record["attempts"], 1, "{record}");
    assert_eq!(
        p.lines("ran.txt"),
        ["e1 1", "e1 1"],
        "ran again: at least once"
    );
    assert_eq!(p.results("e1", "worker").last().unwrap(), "failed");
    p.autod(["retry", "--all"]).assert().code(1);
}

#[test]
fn an_event_that_cannot_be_archived_at_claim_is_delivered_once_it_can() {
    let p = Project::new()
        .open_schema("job.due")
        .config("[handlers.worker]\non = [\"job.due\"]\n")
        .handler("worker", r#"echo "$AUTOD_EVENT_ID" >> ran.txt"#);
    p.write(".autod/archive", "not a folder");
    let daemon = p.start(&[]);
    p.inbox_put("e1.json", &event("job.due", "e1"));
    wait_until(LIMIT, "the archive failure to be reported", || {
        daemon.stderr().contains("stays in processing/")
    });
    assert_eq!(p.processing(), ["e1.json"]);
    assert!(!p.exists("ran.txt"));
    std::fs::remove_file(p.path(".autod/archive")).unwrap();
    wait_until(LIMIT, "e1 to run without a restart", || {
        p.done("e1", "worker")
    });
    wait_until(LIMIT, "processing/ to empty", || p.drained());
    assert_eq!(p.lines("ran.txt"), ["e1"]);
}

#[test]
fn an_accepted_event_whose_schema_broke_is_held_not_rejected_and_runs_once_it_is_fixed() {
    let p = Project::new()
        .config("[handlers.worker]\non = [\"job.due\"]\n")
        .handler("worker", r#"echo "$AUTOD_EVENT_ID" >> ran.txt"#);
    p.write("schemas/job.due.json", r#"{"type": "object"}"#);
    // Accepted by `send` while the schema was fine...
    p.autod(["send", "-"])
        .write_stdin(event("job.due", "e1").to_string())
        .assert()
        .code(0);
    // ...then half-edited before the daemon claims it.
    p.write("schemas/job.due.json", r#"{"type": "obj"#);
    let daemon = p.start(&[]);
    wait_until(LIMIT, "the hold to be logged", || {
        !p.logged("held").is_empty()
    });
    assert_eq!(p.logged("held"), ["e1"]);
    assert!(
        daemon.stderr().contains("held, not rejected"),
        "{}",
        daemon.stderr()
    );
    assert!(p.names(".autod/rejected").is_empty(), "never rejected");
    assert!(p.processing().contains(&"e1.json".to_owned()));
    let status = p.autod(["--json", "status"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["held"][0]["file"], "e1.json", "{status}");
    assert_eq!(status["inFlight"], 0, "{status}");
    let text = p.autod(["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("held:         1"), "{text}");
    assert!(text.contains("processing/e1.json"), "{text}");

    p.write("schemas/job.due.json", r#"{"type": "object"}"#);
    wait_until(LIMIT, "e1 to run once the schema is fixed", || {
        p.done("e1", "worker")
    });
    wait_until(LIMIT, "processing/ to empty", || p.drained());
    assert_eq!(
        p.logged("held"),
        ["e1"],
        "held is told once, not at every pass"
    );
}

#[test]
fn an_event_no_handler_routes_any_more_is_held_until_a_reload_routes_it() {
    let p = Project::new()
        .open_schema("job.due")
        .open_schema("other")
        .config("[handlers.worker]\non = [\"other\"]\n")
        .handler("worker", r#"echo "$AUTOD_EVENT_ID" >> ran.txt"#);
    p.inbox_put("e1.json", &event("job.due", "e1"));
    let daemon = p.start(&[]);
    wait_until(LIMIT, "the hold", || p.logged("held") == ["e1"]);
    assert!(p.names(".autod/rejected").is_empty());
    p.set_config("[handlers.worker]\non = [\"job.due\"]\n");
    daemon.signal(Signal::HUP);
    wait_until(LIMIT, "e1 to run after the reload", || {
        p.done("e1", "worker")
    });
    wait_until(LIMIT, "processing/ to empty", || p.drained());
}

#[test]
fn an_invalid_event_is_rejected_and_requeued_after_its_schema_is_fixed() {
    let p = Project::new()
        .config("[handlers.worker]\non = [\"job.due\"]\n")
        .handler("worker", r#"echo "$AUTOD_EVENT_ID" >> ran.txt"#);
    p.write(
        "schemas/job.due.json",
        r#"{"type": "object", "required": ["n"]}"#,
    );
    let _daemon = p.start(&[]);
    p.inbox_put("e1.json", &event("job.due", "e1"));
    wait_until(LIMIT, "e1 to be rejected", || {
        p.exists(".autod/rejected/e1.json.error.json")
    });
    let list = p.autod(["rejected", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("e1.json") && list.contains("/payload"),
        "{list}"
    );
    p.autod(["rejected", "show", "e1.json"])
        .assert()
        .code(0)
        .stdout(predicates::str::contains("\"eventId\":\"e1\""));

    // Still invalid: refused with the reason, left where it is.
    p.autod(["rejected", "requeue", "e1.json"])
        .assert()
        .code(3)
        .stderr(predicates::str::contains("still rejected"));
    assert!(p.exists(".autod/rejected/e1.json"));

    p.write("schemas/job.due.json", r#"{"type": "object"}"#);
    p.autod(["rejected", "requeue", "e1.json"]).assert().code(0);
    wait_until(LIMIT, "the requeued event to run", || {
        p.done("e1", "worker")
    });
    assert!(
        p.names(".autod/rejected").is_empty(),
        "its .error.json went too"
    );
    p.autod(["rejected", "show", "nosuch.json"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("autod rejected list"));
}

#[test]
fn a_file_that_cannot_be_claimed_does_not_hold_back_the_others() {
    let p = Project::new()
        .open_schema("job.due")
        .config("[handlers.worker]\non = [\"job.due\"]\n")
        .handler("worker", r#"echo "$AUTOD_EVENT_ID" >> ran.txt"#);
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    p.inbox_put_at("a.json", &event("job.due", "a"), Some(old));
    p.inbox_put("b.json", &event("job.due", "b"));
    // An immutable file cannot be renamed, even by root: the claim of the
    // older file fails part-way through the pass.
    let a = p.path(".autod/inbox/a.json");
    let chattr = |flag: &str| {
        std::process::Command::new("chattr")
            .arg(flag)
            .arg(&a)
            .status()
            .expect("chattr (e2fsprogs) runs")
    };
    assert!(chattr("+i").success(), "chattr +i needs root on ext4/tmpfs");
    let daemon = p.start(&[]);
    wait_until(LIMIT, "b to run although a cannot be claimed", || {
        p.done("b", "worker")
    });
    assert!(
        daemon.stderr().contains("not claimed yet"),
        "{}",
        daemon.stderr()
    );
    assert!(chattr("-i").success());
    wait_until(LIMIT, "a to be claimed and run without a restart", || {
        p.done("a", "worker")
    });
    wait_until(LIMIT, "the inbox to drain", || p.drained());
}

#[test]
fn an_inbox_file_larger_than_memory_is_rejected_without_being_read() {
    let p = Project::new()
        .open_schema("job.due")
        .config("[handlers.worker]\non = [\"job.due\"]\n")
        .handler("worker", "true");
    // Sparse: 64 GiB that cost no disk. Read whole, it would take the daemon
    // down at every start.
    let staged = p.path(".autod/inbox/tmp/huge.json");
    std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
    std::fs::File::create(&staged)
        .unwrap()
        .set_len(64 << 30)
        .unwrap();
    std::fs::rename(&staged, p.path(".autod/inbox/huge.json")).unwrap();
    let _daemon = p.start(&[]);
    wait_until(LIMIT, "the huge file to be rejected", || {
        p.exists(".autod/rejected/huge.json.error.json")
    });
    let why = p.read(".autod/rejected/huge.json.error.json");
    assert!(why.contains("max_event_bytes"), "{why}");
}

#[test]
fn an_inbox_file_whose_name_is_not_utf8_is_delivered_and_named() {
    let p = Project::new()
        .open_schema("job.due")
        .config("[handlers.worker]\non = [\"job.due\"]\n")
        .handler("worker", r#"echo "$AUTOD_EVENT_ID" >> ran.txt"#);
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.json");
    let staged = p.path(".autod/inbox/tmp/x");
    std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
    std::fs::write(&staged, event("job.due", "cafe").to_string()).unwrap();
    std::fs::rename(&staged, p.path(".autod/inbox").join(name)).unwrap();
    let status = p.autod(["--json", "status"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["inbox"], 1, "status counts it: {status}");
    let daemon = p.start(&[]);
    wait_until(LIMIT, "it to run", || p.done("cafe", "worker"));
    assert!(
        daemon.stderr().contains("not UTF-8") && daemon.stderr().contains("caf%E9.json"),
        "{}",
        daemon.stderr()
    );
    wait_until(LIMIT, "the inbox to drain", || p.drained());
}

#[test]
fn concurrency_holds_across_a_reload() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.single]
            on = ["job.due"]
            concurrency = 1
            [handlers.witness]
            on = ["job.due"]
            "#,
        )
        .handler(
            "single",
            r#"
            echo "start $AUTOD_EVENT_ID" >> single.txt
            while [ ! -f "go-$AUTOD_EVENT_ID" ]; do sleep 0.02; done
            echo "end $AUTOD_EVENT_ID" >> single.txt
            "#,
        )
        .handler("witness", r#"echo "$AUTOD_EVENT_ID" >> witness.txt"#);
    let daemon = p.start(&[]);
    p.inbox_put("e1.json", &event("job.due", "e1"));
    wait_until(LIMIT, "e1 to start", || {
        p.lines("single.txt") == ["start e1"]
    });
    daemon.signal(Signal::HUP);
    wait_until(LIMIT, "the reload", || {
        daemon.stderr().contains("SIGHUP: reloaded")
    });
    p.inbox_put("e2.json", &event("job.due", "e2"));
    // The witness ran e2, so e2's `single` pair has been started too: it must
    // be waiting for e1's slot, not running beside it.
    wait_until(LIMIT, "the witness to see e2", || {
        p.lines("witness.txt").contains(&"e2".to_owned())
    });
    assert_eq!(p.lines("single.txt"), ["start e1"], "e2 ran beside e1");
    p.write("go-e1", "");
    p.write("go-e2", "");
    wait_until(LIMIT, "both to finish", || p.done("e2", "single"));
    assert_eq!(
        p.lines("single.txt"),
        ["start e1", "end e1", "start e2", "end e2"]
    );
    let _ = json!({});
}
