//! Dead letters: one record per failed (event, handler) pair, at
//! `.autod/dead/<handler>/<eventId>.json` (SPEC §6).
//!
//! A record is rewritten after every failed attempt and removed by the success
//! that ends it. Its `state` says whether it will be retried (`waiting`, at
//! `nextAttemptAt`), ran out of attempts (`exhausted`), or failed in a way no
//! retry fixes (`permanent`, exit 65). Only `autod retry --all` or an explicit id
//! runs the last two again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Context, Result, StateDir, StateError, atomic};
use crate::time::Timestamp;

/// The version written into every record, so a later autod can migrate old ones.
pub const RECORD_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeadState {
    Waiting,
    Exhausted,
    Permanent,
}

impl DeadState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadState::Waiting => "waiting",
            DeadState::Exhausted => "exhausted",
            DeadState::Permanent => "permanent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub version: u32,
    pub event_id: String,
    pub handler: String,
    pub event_type: String,
    pub state: DeadState,
    pub attempts: u32,
    pub max_attempts: u32,
    pub first_failed_at: String,
    pub last_failed_at: String,
    /// `failed` or `timeout`, as in the run log.
    pub last_result: String,
    pub last_exit_code: Option<i32>,
    pub last_signal: Option<String>,
    /// What went wrong when there is no exit code to tell: a timeout, a handler
    /// that could not be started.
    pub last_error: Option<String>,
    pub stderr_tail: String,
    pub stdout_tail: String,
    pub next_attempt_at: Option<String>,
    pub event: Value,
}

impl DeadLetter {
    /// Whether a waiting record is due, for one-shot callers (`autod retry`),
    /// who do not know the handler's backoff: an unreadable `nextAttemptAt`
    /// costs the default `retry.max` (see [`DeadLetter::due_at`]).
    pub fn is_due(&self, now: Timestamp) -> bool {
        if self.state == DeadState::Waiting && self.next_attempt_unreadable() {
            tracing::warn!(
                "dead letter {} {}: nextAttemptAt {:?} is not a time; it is retried one default retry.max after its last failure",
                self.handler,
                self.event_id,
                self.next_attempt_at.as_deref().unwrap_or("")
            );
        }
        self.due_at(crate::config::RetryConfig::default().max.0)
            .is_some_and(|t| t <= now)
    }

    /// When a waiting record is due; `None` for one that is not waiting.
    ///
    /// An unreadable `nextAttemptAt` (hand-edited, or the `+YYYYYY` year an
    /// old build wrote for a huge delay) reads as `lastFailedAt + max_backoff`
    /// (the handler's `retry.max`): as long as the handler ever waits, where
    /// "due now" would retry it back to back for as long as it stays
    /// unreadable. With `lastFailedAt` unreadable too, it is due at once: the
    /// run rewrites both. A record with no `nextAttemptAt` at all is due.
    pub fn due_at(&self, max_backoff: Duration) -> Option<Timestamp> {
        if self.state != DeadState::Waiting {
            return None;
        }
        let next = self.next_attempt_at.as_deref().map(crate::time::parse);
        Some(match next {
            // No time set: nothing asked it to wait.
            None => crate::time::earliest(),
            Some(Some(t)) => t,
            Some(None) => crate::time::parse(&self.last_failed_at)
                .map_or_else(crate::time::earliest, |t| crate::time::add(t, max_backoff)),
        })
    }

    /// `nextAttemptAt` is set but is not a time autod can read.
    pub fn next_attempt_unreadable(&self) -> bool {
        self.next_attempt_at
            .as_deref()
            .is_some_and(|t| crate::time::parse(t).is_none())
    }
}

impl StateDir {
    fn dead_path(&self, handler: &str, event_id: &str) -> PathBuf {
        self.dead_dir()
            .join(handler)
            .join(format!("{event_id}.json"))
    }

    pub fn dead_get(&self, handler: &str, event_id: &str) -> Result<Option<DeadLetter>> {
        read_record(&self.dead_path(handler, event_id))
    }

    pub fn dead_put(&self, record: &DeadLetter) -> Result<()> {
        let dir = self.dead_dir().join(&record.handler);
        self.make_dir(&dir, true)?;
        let path = self.dead_path(&record.handler, &record.event_id);
        let mut bytes = serde_json::to_vec_pretty(record).expect("record serializes");
        bytes.push(b'\n');
        atomic::write(&path, &bytes).at(&path)
    }

    pub fn dead_remove(&self, handler: &str, event_id: &str) -> Result<bool> {
        let path = self.dead_path(handler, event_id);
        self.check_path(&path)?;
        let existed = path.exists();
        atomic::remove(&path).at(&path)?;
        Ok(existed)
    }

    /// Every record, sorted by handler then eventId. A record that cannot be read
    /// is returned as an error beside the others, so one bad file hides nothing.
    pub fn dead_list(&self) -> Vec<std::result::Result<DeadLetter, StateError>> {
        let mut paths = Vec::new();
        let Ok(handlers) = std::fs::read_dir(self.dead_dir()) else {
            return Vec::new();
        };
        for h in handlers.flatten() {
            // A linked handler folder is not read: its records could be
            // anyone's, and `retry` would run them.
            if !h.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(files) = std::fs::read_dir(h.path()) else {
                continue;
            };
            for f in files.flatten() {
                let p = f.path();
                let name = f.file_name();
                let name = name.to_string_lossy();
                if name.ends_with(".json") && !name.starts_with('.') {
                    paths.push(p);
                }
            }
        }
        paths.sort();
        paths
            .iter()
            .filter_map(|p| read_record(p).transpose())
            .collect()
    }
}

fn read_record(path: &Path) -> Result<Option<DeadLetter>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StateError {
                path: path.to_owned(),
                source: e,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError {
            path: path.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not a dead-letter record: {e}"),
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(next: Option<&str>, last_failed: &str) -> DeadLetter {
        DeadLetter {
            version: RECORD_VERSION,
            event_id: "e1".into(),
            handler: "h".into(),
            event_type: "x".into(),
            state: DeadState::Waiting,
            attempts: 1,
            max_attempts: 5,
            first_failed_at: last_failed.into(),
            last_failed_at: last_failed.into(),
            last_result: "failed".into(),
            last_exit_code: Some(1),
            last_signal: None,
            last_error: None,
            stderr_tail: String::new(),
            stdout_tail: String::new(),
            next_attempt_at: next.map(str::to_owned),
            event: Value::Null,
        }
    }

    #[test]
    fn an_unreadable_next_attempt_waits_the_max_backoff_not_zero() {
        let now = crate::time::now();
        let failed = crate::time::format(now);
        let r = record(Some("+275760-09-13T00:00:00.000Z"), &failed);
        assert!(r.next_attempt_unreadable());
        let hour = Duration::from_secs(3600);
        let at = r.due_at(hour).unwrap();
        assert!(
            at > crate::time::add(now, Duration::from_secs(59 * 60)),
            "{at}"
        );
        assert!(!r.is_due(now));
        assert!(r.is_due(crate::time::add(now, 2 * hour)));
        // Neither time readable: due at once (the run rewrites both).
        assert!(record(Some("soon"), "earlier").is_due(now));
        // No time at all: nothing asked it to wait.
        assert!(record(None, &failed).is_due(now));
    }
}
