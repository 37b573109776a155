//! The run log (SPEC §7): `.autod/log/autod.log`, JSON Lines, one line per
//! handler run and per rejected event, `ts, eventId, handler, result` first.
//!
//! Each line is one `write(2)` on an `O_APPEND` file, so lines from concurrent
//! autod processes never interleave. When the file passes `[log] max_bytes` it is
//! rotated to `autod.log.1` (older ones shift up to `[log] keep`) under an flock,
//! so two processes never rotate at once.
//!
//! The same facts go to stderr for people through `tracing` (target `autod::run`).

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::LogConfig;
use crate::state::atomic;

pub const FILE_NAME: &str = "autod.log";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunResult {
    Ok,
    Failed,
    Timeout,
    Skipped,
    Rejected,
    Dead,
    /// An accepted event the project cannot take right now (its schema is
    /// broken, no handler routes its type any more): it waits, and runs once
    /// the project is fixed. Never for a fault of the event's own.
    Held,
    /// autod was stopped (SIGINT/SIGTERM) while the handler ran, and stopped
    /// it: nothing was recorded, so the pair runs again next time.
    Interrupted,
}

impl RunResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Ok => "ok",
            RunResult::Failed => "failed",
            RunResult::Timeout => "timeout",
            RunResult::Skipped => "skipped",
            RunResult::Rejected => "rejected",
            RunResult::Dead => "dead",
            RunResult::Held => "held",
            RunResult::Interrupted => "interrupted",
        }
    }

    pub const ALL: [RunResult; 8] = [
        RunResult::Ok,
        RunResult::Failed,
        RunResult::Timeout,
        RunResult::Skipped,
        RunResult::Rejected,
        RunResult::Dead,
        RunResult::Held,
        RunResult::Interrupted,
    ];
}

/// One line of the run log. Field order is the on-disk order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunLine {
    pub ts: String,
    pub event_id: String,
    /// `-` for a rejected event.
    pub handler: String,
    pub result: RunResult,
    /// The host that wrote it (SPEC 10), with `[queue] backend = "nats"`
    /// only: set by [`RunLog::record`] from [`crate::host`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The input a rejected event came from (file name or `stdin:LINE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Set on follow-ups (SPEC 8): the event whose run emitted this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The file a rejected event was read from or is about: the FILE given to
    /// `dispatch`, the inbox file's name (as `autod rejected` knows it), or a
    /// watched file's path relative to its watched folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The run was asked for by `autod replay` (SPEC 14); absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replay: bool,
}

impl RunLine {
    pub fn new(event_id: &str, handler: &str, result: RunResult) -> RunLine {
        RunLine {
            ts: crate::time::now_rfc3339(),
            event_id: event_id.to_owned(),
            handler: handler.to_owned(),
            result,
            host: None,
            event_type: None,
            source: None,
            attempt: None,
            duration_ms: None,
            exit_code: None,
            signal: None,
            error: None,
            input: None,
            causation_id: None,
            correlation_id: None,
            file: None,
            replay: false,
        }
    }
}

/// Appends run lines; cheap to clone and share between tasks.
#[derive(Debug, Clone)]
pub struct RunLog {
    dir: PathBuf,
    config: LogConfig,
    host: Option<String>,
}

impl RunLog {
    pub fn new(dir: PathBuf, config: LogConfig) -> RunLog {
        RunLog {
            dir,
            config,
            host: None,
        }
    }

    /// Every line this log writes names `host` ([`crate::host::for_log`]).
    pub fn with_host(mut self, host: Option<String>) -> RunLog {
        self.host = host;
        self
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Writes the line to the file and tells people on stderr. A log that cannot be
    /// written is reported but does not undo the run it describes.
    pub fn record(&self, line: &RunLine) {
        let hosted;
        let line = match &self.host {
            Some(host) if line.host.is_none() => {
                hosted = RunLine {
                    host: Some(host.clone()),
                    ..line.clone()
                };
                &hosted
            }
            _ => line,
        };
        announce(line);
        crate::metrics::run_recorded(line);
        if let Err(e) = self.append(line) {
            tracing::error!("cannot write the run log {}: {e}", self.path().display());
        }
    }

    fn append(&self, line: &RunLine) -> io::Result<()> {
        let mut bytes = serde_json::to_vec(line).map_err(io::Error::other)?;
        bytes.push(b'\n');
        // `log/` is checked (and made) below `.autod/`, which the state
        // folder's own check covers; the file is opened without following a
        // link, so a planted one cannot send lines elsewhere.
        let state = self.dir.parent().unwrap_or(Path::new("/"));
        atomic::create_dir_below(state, &self.dir, true)?;
        let path = self.path();
        if let Ok(meta) = std::fs::symlink_metadata(&path)
            && meta.len() + bytes.len() as u64 > self.config.max_bytes
        {
            self.rotate()?;
        }
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(atomic::FILE_MODE)
            .custom_flags(atomic::nofollow())
            .open(&path)
            .map_err(|e| atomic::explain_link(e, &path))?;
        f.write_all(&bytes)
    }

    fn rotate(&self) -> io::Result<()> {
        let lock_path = self.dir.join(".rotate.lock");
        let lock = atomic::lock_file(&lock_path)?;
        lock.lock()?;
        let path = self.path();
        // Another process may have rotated while we waited for the lock.
        let still_big =
            std::fs::metadata(&path).is_ok_and(|m| m.len() >= self.config.max_bytes / 2);
        if still_big {
            let keep = self.config.keep.max(1);
            for n in (1..keep).rev() {
                let from = self.rotated(n);
                if from.symlink_metadata().is_ok() {
                    std::fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            std::fs::rename(&path, self.rotated(1))?;
            atomic::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn rotated(&self, n: u32) -> PathBuf {
        self.dir.join(format!("{FILE_NAME}.{n}"))
    }

    /// The log files, oldest first.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = (1..=self.config.keep.max(1))
            .rev()
            .map(|n| self.rotated(n))
            .filter(|p| p.exists())
            .collect();
        files.push(self.path());
        files
    }
}

/// The same facts for people on stderr: the JSON line itself with
/// `--log-format json`, else one short line (rejections are explained by the
/// intake that saw them, with the input's name).
fn announce(line: &RunLine) {
    if crate::diagnostics::json() {
        if let Ok(json) = serde_json::to_string(line) {
            eprintln!("{json}");
        }
        return;
    }
    // How it ended, then why (a timeout's error already names its signal).
    let how = match (&line.exit_code, &line.signal) {
        _ if line.result == RunResult::Timeout => None,
        (_, Some(s)) => Some(format!("killed by {s}")),
        (Some(c), _) if *c != 0 => Some(format!("exit {c}")),
        _ => None,
    };
    let detail = match (how, &line.error) {
        (Some(how), Some(e)) => format!("{how}: {e}"),
        (Some(how), None) => how,
        (None, Some(e)) => e.clone(),
        (None, None) => String::new(),
    };
    let duration = line
        .duration_ms
        .map(|d| format!(" {d}ms"))
        .unwrap_or_default();
    let event_type = line.event_type.as_deref().unwrap_or("");
    let (result, handler, id) = (line.result.as_str(), &line.handler, &line.event_id);
    match line.result {
        RunResult::Rejected | RunResult::Held => {}
        RunResult::Ok => tracing::info!("{result:<8} {handler} {event_type} {id}{duration}"),
        RunResult::Skipped => {
            tracing::info!("{result:<8} {handler} {event_type} {id} (already succeeded)")
        }
        _ => tracing::warn!("{result:<8} {handler} {event_type} {id}{duration}: {detail}"),
    }
}

/// A run-log line as read back: the four fixed keys plus everything else.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedRun {
    pub ts: String,
    pub event_id: String,
    pub handler: String,
    pub result: String,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl LoggedRun {
    /// The host that wrote the line (SPEC 10), when it says: lines written
    /// with `[queue] backend = "nats"`.
    pub fn host(&self) -> Option<&str> {
        self.rest.get("host").and_then(Value::as_str)
    }
}

/// What a logged line is about beyond its four fixed keys, for people: the
/// eventType and the input (`  photo.added  watch:photos a.png`), so a
/// rejection whose event had no usable id still says which input it was.
pub fn about(run: &LoggedRun) -> String {
    let s = |k: &str| run.rest.get(k).and_then(Value::as_str);
    let mut out = String::new();
    if let Some(t) = s("eventType") {
        out.push_str(&format!("  {t}"));
    }
    match (s("input"), s("file")) {
        (Some(input), Some(file)) if input.starts_with("watch:") => {
            out.push_str(&format!("  {input} {file}"))
        }
        (Some(input), _) => out.push_str(&format!("  {input}")),
        (None, Some(file)) => out.push_str(&format!("  {file}")),
        (None, None) => {}
    }
    out
}

/// Reads every parseable line of `path`, skipping any torn or foreign line.
pub fn read_lines(path: &Path) -> io::Result<Vec<(LoggedRun, String)>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(atomic::nofollow())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(atomic::explain_link(e, path)),
    };
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line?;
        if let Ok(run) = serde_json::from_str::<LoggedRun>(&line) {
            out.push((run, line));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_four_keys_in_order() {
        let mut l = RunLine::new("e1", "h", RunResult::Ok);
        l.event_type = Some("a.b".into());
        l.duration_ms = Some(3);
        let s = serde_json::to_string(&l).unwrap();
        let keys = [
            "\"ts\"",
            "\"eventId\"",
            "\"handler\"",
            "\"result\"",
            "\"eventType\"",
        ];
        let positions: Vec<usize> = keys.iter().map(|k| s.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{s}");
    }

    #[test]
    fn rotates_by_size_and_keeps_n() {
        let d = tempfile::tempdir().unwrap();
        let log = RunLog::new(
            d.path().join("log"),
            LogConfig {
                max_bytes: 300,
                keep: 2,
            },
        );
        for i in 0..40 {
            log.append(&RunLine::new(&format!("e{i}"), "h", RunResult::Ok))
                .unwrap();
        }
        let files = log.files();
        assert_eq!(files.len(), 3, "{files:?}");
        for f in &files {
            assert!(std::fs::metadata(f).unwrap().len() <= 300);
        }
        let last = read_lines(&log.path()).unwrap();
        assert_eq!(last.last().unwrap().0.event_id, "e39");
    }
}
