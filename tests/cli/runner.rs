//! How handler processes are run and stopped: signals, timeouts, leaked
//! background processes, huge output, handlers that cannot be started.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Project, event};

/// One handler `h` for `job.due` with the given extra config lines and script.
fn project(config: &str, body: &str) -> Project {
    Project::new()
        .open_schema("job.due")
        .config(&format!(
            "[handlers.h]\non = [\"job.due\"]\nretry = {{ initial = \"1h\", max = \"1h\" }}\n{config}\n"
        ))
        .handler("h", body)
        .event("e.json", event("job.due", "ev-1", json!({})))
}

/// Kills a process the test's handler left behind, even if the test fails.
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-9")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn handler_killed_by_a_signal_is_a_failure() {
    let p = project("", "echo dying >&2; kill -9 $$");
    p.autod(["dispatch", "e.json"])
        .run()
        .code(1)
        .stderr_has("killed by SIGKILL: dying");
    let d = p.dead_letter("h", "ev-1");
    assert_eq!(d["state"], "waiting");
    assert_eq!(d["lastResult"], "failed");
    assert_eq!(d["lastSignal"], "SIGKILL");
    assert_eq!(d["lastExitCode"], Value::Null);
    let log = p.log();
    assert_eq!(log[0]["result"], "failed");
    assert_eq!(log[0]["signal"], "SIGKILL");
}

#[test]
fn hanging_handler_times_out() {
    let p = project(
        "timeout = \"1s\"\nkill_grace = \"1s\"",
        "echo started >&2; sleep 60",
    );
    let out = p.autod(["dispatch", "e.json"]).run();
    out.code(1)
        .stderr_has("timeout")
        .faster_than(Duration::from_secs(10));
    let d = p.dead_letter("h", "ev-1");
    assert_eq!(d["state"], "waiting");
    assert_eq!(d["lastResult"], "timeout");
    assert_eq!(d["lastSignal"], "SIGTERM");
    assert!(
        d["lastError"]
            .as_str()
            .unwrap()
            .contains("timed out after 1s"),
        "{d:#}"
    );
    assert!(d["stderrTail"].as_str().unwrap().contains("started"));
    let log = p.log();
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(log[0]["result"], "timeout");
}

#[test]
fn handler_that_stops_on_sigterm_does_not_wait_out_the_grace_period() {
    let p = project(
        "timeout = \"1s\"\nkill_grace = \"5s\"",
        "sleep 60 &\nsleep 60",
    );
    let out = p.autod(["dispatch", "e.json"]).run();
    out.code(1).faster_than(Duration::from_secs(4));
    let d = p.dead_letter("h", "ev-1");
    assert_eq!(d["lastResult"], "timeout");
    assert_eq!(d["lastSignal"], "SIGTERM");
}

#[test]
fn handler_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let p = project(
        "timeout = \"1s\"\nkill_grace = \"1s\"",
        r#"
        trap 'echo caught TERM >&2' TERM
        while :; do sleep 60 & wait $!; done
        "#,
    );
    let out = p.autod(["dispatch", "e.json"]).run();
    out.code(1).faster_than(Duration::from_secs(10));
    assert!(
        out.elapsed >= Duration::from_millis(1900),
        "SIGKILL came before timeout + grace\n{out}"
    );
    let d = p.dead_letter("h", "ev-1");
    assert_eq!(d["lastResult"], "timeout");
    assert_eq!(d["lastSignal"], "SIGKILL");
    assert!(
        d["lastError"]
            .as_str()
            .unwrap()
            .contains("SIGTERM, then SIGKILL"),
        "{d:#}"
    );
    assert!(d["stderrTail"].as_str().unwrap().contains("caught TERM"));
    assert_eq!(p.log()[0]["result"], "timeout");
}

#[test]
fn background_grandchild_holding_stdout_does_not_hang_autod() {
    let p = project("", "sleep 30 &\necho $! > bg.pid\necho handled");
    let out = p.autod(["dispatch", "e.json"]).run();
    let _bg = KillOnDrop(p.read("bg.pid").trim().to_owned());
    out.code(0)
        .faster_than(Duration::from_secs(10))
        .stderr_has("background process");
    assert!(p.done("ev-1", "h"));
    assert_eq!(p.log()[0]["result"], "ok");
}

const FIFTY_MB: u64 = 50 * 1024 * 1024;

#[test]
fn fifty_megabytes_of_stdout_is_fine() {
    let p = project(
        "timeout = \"30s\"",
        &format!("yes 'a line of output' | head -c {FIFTY_MB}"),
    );
    p.autod(["dispatch", "e.json"])
        .run()
        .code(0)
        .faster_than(Duration::from_secs(30));
    assert!(p.done("ev-1", "h"));
}

#[test]
fn fifty_megabytes_of_stdout_keeps_only_the_tail_in_the_dead_letter() {
    let p = project(
        "timeout = \"30s\"",
        &format!(
            "yes 0123456789 | head -c {FIFTY_MB}\necho END-OF-OUTPUT\necho err-tail >&2\nexit 1"
        ),
    );
    p.autod(["dispatch", "e.json"])
        .run()
        .code(1)
        .faster_than(Duration::from_secs(30));
    let d = p.dead_letter("h", "ev-1");
    let tail = d["stdoutTail"].as_str().unwrap();
    assert!(
        tail.len() <= 64 * 1024,
        "stdoutTail is {} bytes",
        tail.len()
    );
    assert!(tail.len() > 60 * 1024, "stdoutTail is {} bytes", tail.len());
    assert!(
        tail.ends_with("END-OF-OUTPUT\n"),
        "{}",
        &tail[tail.len() - 40..]
    );
    assert!(
        tail.starts_with(|c: char| c.is_ascii_digit() || c == '\n'),
        "{}",
        &tail[..40]
    );
    assert!(tail.contains("\n0123456789\n"));
    assert_eq!(d["stderrTail"], "err-tail\n");
    let record_size = std::fs::metadata(p.dead_letter_path("h", "ev-1"))
        .unwrap()
        .len();
    assert!(
        record_size < 200 * 1024,
        "dead letter is {record_size} bytes"
    );
}

/// A handler that cannot start is a failed, dead-lettered pair whose message
/// says what to do, and other handlers still run.
#[track_caller]
fn cannot_start(p: &Project, hint: &str) {
    let out = p.autod(["dispatch", "e.json"]).run();
    out.code(1).stderr_has(hint);
    let d = p.dead_letter("h", "ev-1");
    assert_eq!(d["state"], "waiting");
    let error = d["lastError"].as_str().unwrap_or_default();
    assert!(error.contains(hint), "lastError {error:?} lacks {hint:?}");
    assert!(p.done("ev-1", "other"), "the other handler ran\n{out}");
}

fn with_other(p: Project) -> Project {
    let config = p.read("autod.toml") + "[handlers.other]\non = [\"job.*\"]\n";
    p.config(&config).handler("other", "exit 0")
}

#[test]
fn missing_handler_executable() {
    let p = with_other(
        Project::new()
            .open_schema("job.due")
            .config("[handlers.h]\non = [\"job.due\"]\n")
            .event("e.json", event("job.due", "ev-1", json!({}))),
    );
    cannot_start(&p, "chmod +x");
    let d = p.dead_letter("h", "ev-1");
    assert!(
        d["lastError"]
            .as_str()
            .unwrap()
            .contains("handlers/h/main.sh"),
        "{d:#}"
    );
}

#[test]
fn missing_configured_command() {
    let p = with_other(project("command = [\"handlers/h/run.sh\"]", "exit 0"));
    cannot_start(&p, "not found");
}

#[test]
fn handler_that_is_not_executable() {
    let p = with_other(project("", "exit 0")).mode("handlers/h/main.sh", 0o644);
    cannot_start(&p, "chmod +x");
}

/// Whether a process with this pid is still running (not a zombie).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn timeout_reaches_a_grandchild_that_ignores_sigterm() {
    let p = project(
        "timeout = \"1s\"\nkill_grace = \"1s\"",
        r#"
        (trap '' TERM; exec sleep 30) &
        echo $! > bg.pid
        sleep 60
        "#,
    );
    let out = p.autod(["dispatch", "e.json"]).run();
    let pid = p.read("bg.pid").trim().to_owned();
    let _bg = KillOnDrop(pid.clone());
    out.code(1).faster_than(Duration::from_secs(10));
    assert_eq!(p.dead_letter("h", "ev-1")["lastResult"], "timeout");
    // SIGKILL is delivered at once, but give the kernel a moment to finish it.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while alive(&pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !alive(&pid),
        "the handler's grandchild {pid} outlived the timeout's SIGKILL\n{out}"
    );
}

#[test]
fn output_tail_cut_inside_a_character_stays_within_64_kib() {
    // 80,000 bytes of "é" (2 bytes each) and a newline: the last 64 KiB start
    // in the middle of a character.
    let p = project("", "yes é | head -n 40000 | tr -d '\\n'\necho\nexit 1");
    p.autod(["dispatch", "e.json"]).run().code(1);
    let tail = p.dead_letter("h", "ev-1")["stdoutTail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        tail.len() <= 64 * 1024,
        "stdoutTail is {} bytes",
        tail.len()
    );
    assert!(tail.len() > 60 * 1024, "stdoutTail is {} bytes", tail.len());
    assert!(
        tail.trim_end().chars().all(|c| c == 'é'),
        "the tail has something else than the output: {:?}",
        &tail[..12]
    );
}
