//! The world of one test: a project in a temp directory and the real `autod`
//! binary run against it.
//!
//! ```ignore
//! let p = Project::new()
//!     .open_schema("note.saved")
//!     .config(r#"[handlers.indexer]
//!                on = ["note.saved"]"#)
//!     .handler("indexer", RECORD)
//!     .event("e.json", event("note.saved", "e1", json!({})));
//! p.autod(["dispatch", "e.json"]).run().code(0);
//! assert_eq!(p.runs(), ["indexer note.saved e1 1"]);
//! ```
//!
//! Every run fails the test if autod panicked, died of a signal, or outlived
//! its time limit (so a hang is a failure with the output so far, not a stuck
//! suite).

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

/// A handler body that records each run as one line of `runs.log` in the root:
/// `<handler> <eventType> <eventId> <attempt>`.
pub const RECORD: &str =
    r#"echo "$AUTOD_HANDLER $AUTOD_EVENT_TYPE $AUTOD_EVENT_ID $AUTOD_ATTEMPT" >> runs.log"#;

/// Today's UTC day as the archive names its folders (`2026-12-01`): where
/// an event accepted now without a `ts` of its own is archived.
pub fn today() -> String {
    jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%d")
        .to_string()
}

/// How long any single autod invocation may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// An event object with the three required fields and an id.
pub fn event(event_type: &str, id: &str, payload: Value) -> Value {
    json!({"eventType": event_type, "eventId": id, "source": "cli", "payload": payload})
}

pub struct Project {
    _tmp: TempDir,
    root: PathBuf,
}

impl Project {
    /// An empty project: a temp directory with an empty autod.toml.
    pub fn new() -> Project {
        Project::bare().file("autod.toml", "")
    }

    /// A temp directory with nothing in it, not even autod.toml.
    pub fn bare() -> Project {
        let tmp = tempfile::Builder::new()
            .prefix("autod-test-")
            .tempdir()
            .expect("temp dir");
        // autod canonicalizes its root; so do we, to compare paths.
        let root = tmp.path().canonicalize().expect("canonical temp dir");
        Project { _tmp: tmp, root }
    }

    /// Writes autod.toml (leading indentation of each line is removed).
    pub fn config(self, text: &str) -> Project {
        self.file("autod.toml", unindent(text))
    }

    pub fn schema(self, event_type: &str, schema: Value) -> Project {
        self.file(
            &format!("schemas/{event_type}.json"),
            serde_json::to_string_pretty(&schema).unwrap(),
        )
    }

    /// A payload schema that accepts anything.
    pub fn open_schema(self, event_type: &str) -> Project {
        self.schema(event_type, json!({}))
    }

    /// `handlers/<name>/main.sh`: `#!/bin/sh` plus `body`, executable.
    pub fn handler(self, name: &str, body: &str) -> Project {
        let rel = format!("handlers/{name}/main.sh");
        self.file(&rel, format!("#!/bin/sh\n{}\n", unindent(body)))
            .mode(&rel, 0o755)
    }

    pub fn file(self, rel: &str, contents: impl AsRef<[u8]>) -> Project {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        self
    }

    pub fn event(self, rel: &str, value: Value) -> Project {
        self.file(rel, value.to_string())
    }

    pub fn mode(self, rel: &str, mode: u32) -> Project {
        std::fs::set_permissions(self.path(rel), std::fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// `autod --root <root> ARGS...`, run from the root.
    pub fn autod<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Cmd::bare(args);
        cmd.cmd
            .arg("--root")
            .arg(&self.root)
            .current_dir(&self.root);
        cmd
    }

    /// Like [`Project::autod`], under `ulimit -v KIB`: for tests that would eat
    /// the machine's memory if autod regressed.
    pub fn autod_with_memory_limit<I, S>(&self, kib: u64, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let script = format!("ulimit -v {kib} && exec \"$0\" \"$@\"");
        let mut cmd = Cmd::program("sh", ["-c", &script, env!("CARGO_BIN_EXE_autod")]);
        cmd.cmd
            .args(args)
            .arg("--root")
            .arg(&self.root)
            .current_dir(&self.root);
        cmd
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    /// The non-empty lines of a file, or none if it does not exist.
    pub fn lines(&self, rel: &str) -> Vec<String> {
        match std::fs::read_to_string(self.path(rel)) {
            Ok(text) => text
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// What [`RECORD`] handlers wrote, sorted (handlers run concurrently).
    pub fn runs(&self) -> Vec<String> {
        let mut runs = self.lines("runs.log");
        runs.sort();
        runs
    }

    /// The raw lines of `.autod/log/autod.log`.
    pub fn log_raw(&self) -> Vec<String> {
        self.lines(".autod/log/autod.log")
    }

    /// The run log, parsed.
    pub fn log(&self) -> Vec<Value> {
        self.log_raw()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}")))
            .collect()
    }

    /// Run-log entries with this result, as (handler, eventId) pairs.
    pub fn logged(&self, result: &str) -> Vec<(String, String)> {
        let mut out: Vec<_> = self
            .log()
            .iter()
            .filter(|l| l["result"] == result)
            .map(|l| {
                (
                    l["handler"].as_str().unwrap().to_owned(),
                    l["eventId"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    }

    pub fn dead_letter_path(&self, handler: &str, event_id: &str) -> PathBuf {
        self.path(&format!(".autod/dead/{handler}/{event_id}.json"))
    }

    pub fn dead_letter(&self, handler: &str, event_id: &str) -> Value {
        let path = self.dead_letter_path(handler, event_id);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("no dead letter {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    pub fn done(&self, event_id: &str, handler: &str) -> bool {
        self.exists(&format!(".autod/done/{event_id}.{handler}.ok"))
    }
}

/// One autod invocation being prepared.
pub struct Cmd {
    cmd: Command,
    stdin: Vec<u8>,
}

impl Cmd {
    /// `autod ARGS...` with no `--root`, for tests of root discovery.
    pub fn bare<I, S>(args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Cmd::program(env!("CARGO_BIN_EXE_autod"), args)
    }

    fn program<I, S>(program: &str, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(program);
        cmd.args(args);
        // The developer's own settings must not leak into a test.
        for var in ["AUTOD_ROOT", "AUTOD_LOG", "AUTOD_LOG_FORMAT", "AUTOD_HOST"] {
            cmd.env_remove(var);
        }
        Cmd {
            cmd,
            stdin: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.cmd.arg(arg);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Cmd {
        self.cmd.env(key, value);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.cmd.current_dir(dir);
        self
    }

    pub fn stdin(mut self, bytes: impl AsRef<[u8]>) -> Cmd {
        self.stdin = bytes.as_ref().to_vec();
        self
    }

    /// Starts autod and returns at once; [`Running::wait`] collects it.
    pub fn spawn(mut self) -> Running {
        let started = Instant::now();
        let mut child = self
            .cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("autod starts");
        let mut stdin = child.stdin.take().unwrap();
        let input = std::mem::take(&mut self.stdin);
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let (tx, rx) = mpsc::channel();
        for (name, mut pipe) in [
            (
                "stdout",
                Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            ),
            ("stderr", Box::new(child.stderr.take().unwrap())),
        ] {
            let tx = tx.clone();
            thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = pipe.read_to_end(&mut buf);
                let _ = tx.send((name, buf));
            });
        }
        Running {
            child,
            started,
            pipes: rx,
        }
    }

    pub fn run(self) -> Output {
        self.spawn().wait()
    }

    /// Starts a long-running autod (`log -f`) whose stdout is read line by line;
    /// it is killed when the returned value is dropped, even if the test fails.
    pub fn spawn_lines(mut self) -> Lines {
        let mut child = self
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("autod starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines { child, rx }
    }
}

/// A running autod whose stdout lines arrive as it prints them.
pub struct Lines {
    child: Child,
    rx: mpsc::Receiver<String>,
}

impl Lines {
    /// Waits up to `limit` for a line that satisfies `want`; the lines before it
    /// are returned too, for the caller to check.
    #[track_caller]
    pub fn wait_for(&self, limit: Duration, want: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let done = want(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no matching line within {limit:?}; got {seen:#?}"),
            }
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An autod process started by [`Cmd::spawn`].
pub struct Running {
    child: Child,
    started: Instant,
    pipes: mpsc::Receiver<(&'static str, Vec<u8>)>,
}

impl Running {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as a service manager stopping autod would.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {} failed", self.id());
    }

    /// Waits (polling, up to the run limit) for autod to exit and its output to end.
    pub fn wait(mut self) -> Output {
        let deadline = self.started + RUN_LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("autod did not finish within {RUN_LIMIT:?}");
            }
            thread::sleep(Duration::from_millis(5));
        };
        let elapsed = self.started.elapsed();
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            let left = deadline.saturating_duration_since(Instant::now());
            let (name, buf) = self
                .pipes
                .recv_timeout(left.max(Duration::from_secs(1)))
                .expect("autod exited but something still holds its stdout or stderr open");
            if name == "stdout" {
                stdout = buf;
            } else {
                stderr = buf;
            }
        }
        let out = Output {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed,
        };
        assert!(
            out.code.is_some(),
            "autod was killed by a signal ({status})\n{out}"
        );
        assert!(!out.stderr.contains("panicked"), "autod panicked\n{out}");
        out
    }
}

/// A test that fails before [`Running::wait`] does not leave autod behind.
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `condition` every 20 ms until it holds; fails the test after `limit`.
#[track_caller]
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// What one autod run did.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code: {:?} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

impl Output {
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Output {
        assert_eq!(self.code, Some(expected), "unexpected exit code\n{self}");
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Output {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{self}"
        );
        self
    }

    #[track_caller]
    pub fn stderr_lacks(&self, needle: &str) -> &Output {
        assert!(
            !self.stderr.contains(needle),
            "stderr has {needle:?}\n{self}"
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Output {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{self}"
        );
        self
    }

    #[track_caller]
    pub fn stdout_lacks(&self, needle: &str) -> &Output {
        assert!(
            !self.stdout.contains(needle),
            "stdout has {needle:?}\n{self}"
        );
        self
    }

    #[track_caller]
    pub fn faster_than(&self, limit: Duration) -> &Output {
        assert!(
            self.elapsed < limit,
            "took {:?}, expected under {limit:?}\n{self}",
            self.elapsed
        );
        self
    }

    /// stdout as JSON Lines.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}\n{self}"))
            })
            .collect()
    }

    /// stdout as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value: {e}\n{self}"))
    }
}

/// Removes a leading newline and the common indentation, so configs and
/// scripts can be written indented inside a test.
pub fn unindent(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line.get(indent..).unwrap_or("").trim_end());
        out.push('\n');
    }
    out
}
