//! Bad durations, huge times, concurrent senders and planted symlinks: autod
//! says what is wrong with a clear message and the right exit code, never
//! panics, and never writes outside the project.

use serde_json::json;

use crate::common::{Project, event};

fn project(handler_config: &str) -> Project {
    Project::new()
        .open_schema("job.due")
        .config(&format!(
            "[handlers.worker]\non = [\"job.due\"]\n{handler_config}\n"
        ))
        .handler("worker", "cat > /dev/null; echo ran >> ran.txt")
        .event("e1.json", event("job.due", "e1", json!({})))
}

#[test]
fn log_since_a_duration_before_year_one_lists_everything() {
    let p = project("");
    p.autod(["dispatch", "e1.json"]).run().code(0);
    let out = p.autod(["log", "--since", "300000y"]).run();
    out.code(0).stdout_has("e1");
    p.autod(["log", "--since", "500000000000y"]).run().code(0);
    p.autod(["log", "--since", "99999999999999999999999y"])
        .run()
        .code(2)
        .stderr_has("cannot read");
}

#[test]
fn a_kill_grace_of_half_a_trillion_years_is_a_config_error_not_a_silent_success() {
    let p = project("timeout = \"50ms\"\nkill_grace = \"500000000000y\"");
    p.autod(["dispatch", "e1.json"])
        .run()
        .code(2)
        .stderr_has("kill_grace is 500000000000years")
        .stderr_has("at most");
    assert!(!p.exists("ran.txt"));
}

#[test]
fn a_retry_delay_of_150000_years_is_a_config_error() {
    let p = project("retry = { initial = \"150000y\", max = \"150000y\" }");
    p.autod(["dispatch", "e1.json"])
        .run()
        .code(2)
        .stderr_has("retry.initial is 150000years, longer than the 365days it may be at most")
        .stderr_has("retry.max is 150000years");
    // lint reports it too, as the CI job.
    p.autod(["lint"]).run().code(1).stdout_has("retry.max");
}

#[test]
fn a_timeout_longer_than_a_week_is_a_config_error() {
    project("timeout = \"8days\"")
        .autod(["dispatch", "e1.json"])
        .run()
        .code(2)
        .stderr_has("timeout is 8days, longer than the 7days it may be at most");
}

/// An old build wrote `+YYYYYY` years for huge delays; such a record counted
/// as due on every pass, so retries fired back to back.
#[test]
fn an_unreadable_next_attempt_is_not_due_at_once() {
    let p = project("retry = { initial = \"1s\", max = \"1h\" }");
    let now = format!("{:.3}", jiff::Timestamp::now());
    let record = json!({
        "version": 1, "eventId": "e1", "handler": "worker", "eventType": "job.due",
        "state": "waiting", "attempts": 1, "maxAttempts": 5,
        "firstFailedAt": now, "lastFailedAt": now, "lastResult": "failed",
        "lastExitCode": 1, "lastSignal": null, "lastError": null,
        "stderrTail": "", "stdoutTail": "",
        "nextAttemptAt": "+275760-09-13T00:00:00.000Z",
        "event": event("job.due", "e1", json!({})),
    });
    let p = p.file(".autod/dead/worker/e1.json", record.to_string());
    p.autod(["retry"])
        .run()
        .code(0)
        .stderr_has("nextAttemptAt \"+275760-09-13T00:00:00.000Z\" is not a time");
    assert!(!p.exists("ran.txt"), "retried at once");
    // A person can still ask for it.
    p.autod(["retry", "e1"]).run().code(0);
    assert_eq!(p.lines("ran.txt"), ["ran"]);
}

#[test]
fn sixty_concurrent_sends_of_one_event_all_succeed_and_queue_it_once() {
    let p = project("");
    let senders: Vec<_> = (0..60)
        .map(|_| p.autod(["send", "e1.json"]).spawn())
        .collect();
    for s in senders {
        s.wait().code(0).stdout_has("e1");
    }
    let inbox: Vec<String> = std::fs::read_dir(p.path(".autod/inbox"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "tmp")
        .collect();
    assert_eq!(inbox, ["e1.json"]);
    let staged = std::fs::read_dir(p.path(".autod/inbox/tmp"))
        .unwrap()
        .count();
    assert_eq!(staged, 0, "temp files left in inbox/tmp");
    let queued: serde_json::Value = serde_json::from_str(&p.read(".autod/inbox/e1.json")).unwrap();
    assert_eq!(queued["eventId"], "e1");
    // Sent again once it is being processed: still success, still one copy.
    std::fs::create_dir_all(p.path(".autod/processing")).unwrap();
    std::fs::rename(
        p.path(".autod/inbox/e1.json"),
        p.path(".autod/processing/e1.json"),
    )
    .unwrap();
    p.autod(["send", "e1.json"]).run().code(0);
    assert!(!p.exists(".autod/inbox/e1.json"));
}

/// A folder outside the project, for planted links to point at; every test
/// below ends by checking that autod wrote nothing there.
struct Outside(tempfile::TempDir);

impl Outside {
    fn new() -> Outside {
        Outside(tempfile::tempdir().unwrap())
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.0.path().join(rel)
    }

    #[track_caller]
    fn assert_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(self.0.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            names.is_empty(),
            "autod wrote outside the project: {names:?}"
        );
    }
}

fn plant(p: &Project, rel: &str, target: &std::path::Path) {
    let link = p.path(rel);
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn a_state_folder_that_is_a_symlink_is_refused_unless_allowed() {
    let outside = Outside::new();
    let p = project("");
    plant(&p, ".autod", outside.0.path());
    for args in [
        &["dispatch", "e1.json"][..],
        &["send", "e1.json"],
        &["run"],
        &["status"],
    ] {
        p.autod(args)
            .run()
            .code(2)
            .stderr_has("the state folder is a symbolic link")
            .stderr_has("allow_symlink = true");
    }
    assert!(!p.exists("ran.txt"));
    outside.assert_untouched();

    // Made on purpose, and said so: it is used, and stays private.
    let p = p.config("[state]\nallow_symlink = true\n[handlers.worker]\non = [\"job.due\"]\n");
    p.autod(["dispatch", "e1.json"]).run().code(0);
    assert_eq!(p.lines("ran.txt"), ["ran"]);
    assert!(outside.path("log/autod.log").is_file());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(outside.path("done"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn a_run_log_that_is_a_symlink_is_refused_and_nothing_runs() {
    let outside = Outside::new();
    let p = project("");
    plant(&p, ".autod/log/autod.log", &outside.path("victim.log"));
    p.autod(["dispatch", "e1.json"])
        .run()
        .code(2)
        .stderr_has("autod.log is a symbolic link")
        .stderr_has("rm ");
    assert!(!p.exists("ran.txt"));
    outside.assert_untouched();
}

#[test]
fn an_archive_folder_that_is_a_symlink_is_refused() {
    let outside = Outside::new();
    let p = project("");
    plant(&p, ".autod/archive", outside.0.path());
    p.autod(["dispatch", "e1.json"])
        .run()
        .code(2)
        .stderr_has("archive is a symbolic link");
    assert!(!p.exists("ran.txt"));
    outside.assert_untouched();
}

#[test]
fn a_dead_letter_folder_that_is_a_symlink_fails_the_pair_and_writes_nothing_outside() {
    let outside = Outside::new();
    let p = Project::new()
        .open_schema("job.due")
        .config("[handlers.broken]\non = [\"job.due\"]\n")
        .handler("broken", "cat > /dev/null; echo broken >&2; exit 1")
        .event("e1.json", event("job.due", "e1", json!({})));
    plant(&p, ".autod/dead/broken", outside.0.path());
    // The failure could not be recorded as a dead letter: no outcome (exit 2).
    p.autod(["dispatch", "e1.json"])
        .run()
        .code(2)
        .stderr_has("dead/broken is a symbolic link");
    // The failure is still in the run log.
    assert_eq!(p.logged("failed"), [("broken".to_owned(), "e1".to_owned())]);
    // A record planted behind the link is neither listed, nor retried, nor
    // removed through it.
    let record = json!({
        "version": 1, "eventId": "e1", "handler": "broken", "eventType": "job.due",
        "state": "waiting", "attempts": 1, "maxAttempts": 5,
        "firstFailedAt": "2026-01-01T00:00:00.000Z", "lastFailedAt": "2026-01-01T00:00:00.000Z",
        "lastResult": "failed", "lastExitCode": 1, "lastSignal": null, "lastError": null,
        "stderrTail": "", "stdoutTail": "", "nextAttemptAt": null,
        "event": event("job.due", "e1", json!({})),
    })
    .to_string();
    std::fs::write(outside.path("e1.json"), &record).unwrap();
    p.autod(["dead", "list"]).run().code(0).stdout_lacks("e1");
    p.autod(["retry", "--all"]).run().code(0);
    assert_eq!(
        p.logged("failed").len(),
        1,
        "the planted record was retried"
    );
    p.autod(["dead", "drop", "e1"]).run();
    assert_eq!(
        std::fs::read_to_string(outside.path("e1.json")).unwrap(),
        record
    );
    std::fs::remove_file(outside.path("e1.json")).unwrap();
    outside.assert_untouched();
}

#[test]
fn an_artifacts_folder_that_is_a_symlink_fails_the_pair_before_it_runs() {
    let outside = Outside::new();
    let p = project("");
    plant(&p, ".autod/out/e1", outside.0.path());
    let out = p.autod(["dispatch", "e1.json"]).run();
    out.code(2).stderr_has("out/e1 is a symbolic link");
    assert!(!p.exists("ran.txt"), "the handler ran");
    assert!(!p.done("e1", "worker"));
    let failed = p.log();
    let line = failed
        .iter()
        .find(|l| l["result"] == "failed")
        .expect("a failed line");
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("autod could not record the outcome"),
        "{line}"
    );
    outside.assert_untouched();
}

#[test]
fn a_pair_lock_that_is_a_symlink_is_not_followed() {
    let outside = Outside::new();
    let p = project("");
    plant(&p, ".autod/done/e1.worker.lock", &outside.path("victim"));
    p.autod(["dispatch", "e1.json"])
        .run()
        .code(2)
        .stderr_has("e1.worker.lock is a symbolic link");
    assert!(!p.exists("ran.txt"));
    outside.assert_untouched();
}
