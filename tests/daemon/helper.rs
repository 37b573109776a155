//! The world of one daemon test: a project in a temp directory, and the real
//! `autod run` started in it as a child process.
//!
//! ```ignore
//! let p = Project::new()
//!     .open_schema("job.due")
//!     .config(r#"[handlers.worker]
//!                on = ["job.due"]"#)
//!     .handler("worker", r#"echo "$AUTOD_EVENT_ID" >> ran.txt"#);
//! let daemon = p.start(&[]);
//! p.inbox_put("e1.json", &event("job.due", "e1"));
//! wait_until(LIMIT, "e1 to run", || p.lines("ran.txt") == ["e1"]);
//! ```
//!
//! A [`Daemon`] is ready once `.autod/daemon.json` names its pid (the daemon
//! writes it after its signal handlers are in place), and is SIGKILLed on drop,
//! so a failing test never leaves one behind. Its stderr goes to a file in the
//! temp directory and is printed when the test panics.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rustix::process::{Pid, Signal, kill_process, test_kill_process};
use serde_json::{Value, json};
use tempfile::TempDir;

/// How long any condition a test waits for may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(20);

const POLL: Duration = Duration::from_millis(20);

/// An event object with the three required fields and an id.
pub fn event(event_type: &str, id: &str) -> Value {
    json!({"eventType": event_type, "eventId": id, "source": "cli", "payload": {}})
}

/// A dead letter of `event` for `handler`, failed once just now (exit 1),
/// waiting until `next_attempt_at`, as autod writes one.
pub fn waiting_record(handler: &str, event: Value, next_attempt_at: &str) -> Value {
    let now = jiff::Timestamp::now().to_string();
    json!({
        "version": 1, "eventId": event["eventId"], "handler": handler,
        "eventType": event["eventType"], "state": "waiting", "attempts": 1,
        "maxAttempts": 5, "firstFailedAt": now, "lastFailedAt": now,
        "lastResult": "failed", "lastExitCode": 1, "lastSignal": null,
        "lastError": null, "stderrTail": "", "stdoutTail": "",
        "nextAttemptAt": next_attempt_at, "event": event,
    })
}

/// Polls `cond` until it holds; fails the test, naming `what`, after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// Removes the common leading indentation of `text`'s lines.
fn unindent(text: &str) -> String {
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out: String = text
        .lines()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

pub struct Project {
    _tmp: TempDir,
    root: PathBuf,
}

impl Project {
    /// A temp directory with an empty autod.toml.
    pub fn new() -> Project {
        let tmp = tempfile::Builder::new()
            .prefix("autod-daemon-")
            .tempdir()
            .expect("temp dir");
        let root = tmp.path().canonicalize().expect("canonical temp dir");
        let p = Project { _tmp: tmp, root };
        p.write("autod.toml", "");
        p
    }

    /// A copy of the project at `dir` (relative to the repository), without
    /// its state or outputs: for the examples.
    pub fn copy_of(dir: &str) -> Project {
        fn copy(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap().flatten() {
                let name = entry.file_name();
                if name == ".autod" || name == "out" {
                    continue;
                }
                let (src, dst) = (entry.path(), to.join(&name));
                if entry.file_type().unwrap().is_dir() {
                    copy(&src, &dst);
                } else {
                    std::fs::copy(&src, &dst).unwrap(); // keeps the mode
                }
            }
        }
        let p = Project::new();
        copy(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir), &p.root);
        p
    }

    /// Writes autod.toml (common indentation removed).
    pub fn config(self, text: &str) -> Project {
        self.set_config(text);
        self
    }

    /// Rewrites autod.toml in place (for reload tests).
    pub fn set_config(&self, text: &str) {
        self.write("autod.toml", unindent(text));
    }

    /// A payload schema that accepts anything.
    pub fn open_schema(self, event_type: &str) -> Project {
        self.write(&format!("schemas/{event_type}.json"), "{}");
        self
    }

    /// `handlers/<name>/main.sh`: `#!/bin/sh` plus `body`, executable.
    pub fn handler(self, name: &str, body: &str) -> Project {
        let rel = format!("handlers/{name}/main.sh");
        self.write(&rel, format!("#!/bin/sh\n{}\n", unindent(body)));
        fs::set_permissions(self.path(&rel), fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    /// The non-empty lines of a file; none if it does not exist (yet).
    pub fn lines(&self, rel: &str) -> Vec<String> {
        fs::read_to_string(self.path(rel))
            .map(|t| {
                t.lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The names in a folder, sorted; none if it does not exist.
    pub fn names(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path(rel))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Event files waiting in the inbox (its `tmp/` staging folder aside).
    pub fn inbox(&self) -> Vec<String> {
        self.names(".autod/inbox")
            .into_iter()
            .filter(|n| n != "tmp")
            .collect()
    }

    pub fn processing(&self) -> Vec<String> {
        self.names(".autod/processing")
    }

    /// Whether the daemon has nothing left to do with what it was given.
    pub fn drained(&self) -> bool {
        self.inbox().is_empty() && self.processing().is_empty()
    }

    /// Puts an event into the inbox the way a producer must: written into
    /// `inbox/tmp/`, then renamed in.
    pub fn inbox_put(&self, name: &str, event: &Value) {
        self.inbox_put_at(name, event, None);
    }

    /// Like [`Project::inbox_put`], with the file's mtime set before the rename.
    pub fn inbox_put_at(&self, name: &str, event: &Value, mtime: Option<SystemTime>) {
        let staged = self.path(&format!(".autod/inbox/tmp/{name}"));
        fs::create_dir_all(staged.parent().unwrap()).unwrap();
        fs::write(&staged, event.to_string()).unwrap();
        if let Some(t) = mtime {
            File::options()
                .write(true)
                .open(&staged)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        fs::rename(&staged, self.path(&format!(".autod/inbox/{name}"))).unwrap();
    }

    /// The run log, parsed.
    pub fn log(&self) -> Vec<Value> {
        self.lines(".autod/log/autod.log")
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}")))
            .collect()
    }

    /// The results logged for one (eventId, handler) pair, in order.
    pub fn results(&self, event_id: &str, handler: &str) -> Vec<String> {
        self.log()
            .iter()
            .filter(|l| l["eventId"] == event_id && l["handler"] == handler)
            .map(|l| l["result"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// The eventIds of every run-log line with this result, in log order.
    pub fn logged(&self, result: &str) -> Vec<String> {
        self.log()
            .iter()
            .filter(|l| l["result"] == result)
            .map(|l| l["eventId"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    pub fn done(&self, event_id: &str, handler: &str) -> bool {
        self.exists(&format!(".autod/done/{event_id}.{handler}.ok"))
    }

    pub fn dead_letter(&self, handler: &str, event_id: &str) -> Option<Value> {
        let text = fs::read_to_string(self.path(&format!(".autod/dead/{handler}/{event_id}.json")))
            .ok()?;
        Some(serde_json::from_str(&text).expect("a dead letter is JSON"))
    }

    /// `autod --root <root> ARGS...`, one-shot, from the root, with a time limit.
    pub fn autod<I, S>(&self, args: I) -> assert_cmd::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_autod"));
        clean_env(cmd.args(args).arg("--root").arg(&self.root))
            .current_dir(&self.root)
            .timeout(LIMIT);
        cmd
    }

    /// Starts `autod run --root <root> ARGS...` and waits until it is ready.
    pub fn start(&self, args: &[&str]) -> Daemon {
        let daemon = self.spawn(args);
        daemon.wait_ready(self);
        daemon
    }

    /// Like [`Project::start`], returning the moment the daemon is announced
    /// (polled every millisecond): for tests of what "ready" promises.
    pub fn start_eagerly(&self, args: &[&str]) -> Daemon {
        let daemon = self.spawn(args);
        daemon.wait_ready_every(self, Duration::from_millis(1));
        daemon
    }

    /// Starts `autod run` without waiting for it.
    pub fn spawn(&self, args: &[&str]) -> Daemon {
        self.spawn_with_env(args, &[])
    }

    /// Like [`Project::start`], with these environment variables set (a `TZ`
    /// whose clock changes a few seconds from now, say).
    pub fn start_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let daemon = self.spawn_with_env(args, env);
        daemon.wait_ready(self);
        daemon
    }

    fn spawn_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let stderr_path = self.next_stderr_path();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_autod"));
        cmd.arg("run")
            .args(args)
            .arg("--root")
            .arg(&self.root)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).expect("stderr file"));
        // After the clean-up: what the test sets is meant.
        let child = clean_env(&mut cmd)
            .envs(env.iter().copied())
            .spawn()
            .expect("autod run starts");
        Daemon {
            pid: child.id(),
            child,
            stderr_path,
            status: None,
        }
    }

    /// `daemon-1.stderr`, `daemon-2.stderr`, …: one per start, kept for debugging.
    fn next_stderr_path(&self) -> PathBuf {
        (1..)
            .map(|n| self.path(&format!("daemon-{n}.stderr")))
            .find(|p| !p.exists())
            .expect("a free name")
    }
}

/// The developer's own settings must not leak into a test.
fn clean_env<C: EnvRemove>(cmd: &mut C) -> &mut C {
    for var in ["AUTOD_ROOT", "AUTOD_LOG", "AUTOD_LOG_FORMAT", "AUTOD_HOST"] {
        cmd.remove(var);
    }
    cmd
}

trait EnvRemove {
    fn remove(&mut self, var: &str);
}

impl EnvRemove for Command {
    fn remove(&mut self, var: &str) {
        self.env_remove(var);
    }
}

impl EnvRemove for assert_cmd::Command {
    fn remove(&mut self, var: &str) {
        self.env_remove(var);
    }
}

/// A running `autod run`; SIGKILLed on drop if still alive.
pub struct Daemon {
    child: Child,
    pid: u32,
    stderr_path: PathBuf,
    status: Option<ExitStatus>,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits until `.autod/daemon.json` names this process.
    fn wait_ready(&self, p: &Project) {
        self.wait_ready_every(p, POLL);
    }

    fn wait_ready_every(&self, p: &Project, poll: Duration) {
        let info = p.path(".autod/daemon.json");
        let deadline = Instant::now() + LIMIT;
        loop {
            let pid = fs::read(&info)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v["pid"].as_u64());
            if pid == Some(u64::from(self.pid)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "autod run (pid {}) not ready after {LIMIT:?}; stderr:\n{}",
                self.pid,
                self.stderr()
            );
            std::thread::sleep(poll);
        }
    }

    pub fn signal(&self, signal: Signal) {
        kill_process(pid(self.pid), signal).expect("the daemon is alive to be signalled");
    }

    pub fn terminate(&self) {
        self.signal(Signal::TERM);
    }

    /// SIGKILL, and reaped: the way a crash or an OOM kill ends it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        self.status = Some(self.child.wait().expect("reap the daemon"));
    }

    /// Waits for the daemon to exit by itself; fails the test after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                self.status = Some(s);
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "autod run (pid {}) still running {timeout:?} after being asked to stop; stderr:\n{}",
                self.pid,
                self.stderr()
            );
            std::thread::sleep(POLL);
        }
    }

    pub fn running(&mut self) -> bool {
        self.status.is_none() && self.child.try_wait().expect("try_wait").is_none()
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// CPU time used so far (user + system, all threads), in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid)).expect("/proc stat");
        // "pid (comm) state ppid … utime stime …": utime and stime are fields 14
        // and 15, i.e. the 12th and 13th after the closing parenthesis.
        let rest = stat.rsplit_once(')').expect("comm field").1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- stderr of autod run (pid {}) ---\n{}",
                self.pid,
                self.stderr()
            );
        }
    }
}

fn pid(raw: u32) -> Pid {
    Pid::from_raw(i32::try_from(raw).expect("a pid fits i32")).expect("a pid is not 0")
}

/// Whether a process is alive: `kill -0` reaches it and it is not a zombie (a
/// container's PID 1 may never reap the orphans it inherits).
pub fn alive(raw: u32) -> bool {
    if test_kill_process(pid(raw)).is_err() {
        return false;
    }
    fs::read_to_string(format!("/proc/{raw}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("X");
        !matches!(state, "Z" | "X")
    })
}
