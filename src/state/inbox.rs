//! The inbox: a maildir-style queue of event files.
//!
//! Writers put a complete file into `inbox/` by rename (autod's own writers stage
//! it in `inbox/tmp/`). The daemon claims a file by renaming it into
//! `processing/`: whoever's rename succeeds owns it. A claimed file is removed
//! only when every pair has an outcome; after a crash it is still in
//! `processing/`, and start-up recovery delivers it again (pairs that succeeded
//! are skipped by their done markers). Dotfiles, `*.tmp` and anything that is not
//! a regular file (symlinks included) are never read.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::{Context, Result, StateDir, StateError, atomic};
use crate::event::{Event, Violation};

/// One pass over the inbox.
#[derive(Debug, Default)]
pub struct Batch {
    pub claimed: Vec<Claimed>,
    /// Files left in the inbox because a file of the same name is still being
    /// processed; claim again once it is done.
    pub skipped: usize,
    /// Files that could not be claimed (a rename failed): they stay in the
    /// inbox for a later pass; every other file of the pass is claimed.
    pub failed: Vec<super::StateError>,
    /// Inbox files whose names are not UTF-8, claimed under a name that is
    /// (old name, new name), so they are not ignored for ever.
    pub renamed: Vec<(String, String)>,
}

/// A file in rejected/ and why it is there.
#[derive(Debug)]
pub struct RejectedFile {
    pub name: String,
    pub path: PathBuf,
    /// Its `.error.json`, if readable: `file`, `rejectedAt`, `errors`.
    pub why: Option<serde_json::Value>,
}

/// A file this process owns, in `processing/`.
#[derive(Debug)]
pub struct Claimed {
    pub path: PathBuf,
    pub name: String,
}

const REPLAY_SUFFIX: &str = ".replay.json";

/// Whether an inbox file was queued by `autod replay`.
pub fn is_replay(name: &str) -> bool {
    name.ends_with(REPLAY_SUFFIX)
}

fn is_candidate(name: &str) -> bool {
    !name.starts_with('.') && !name.ends_with(".tmp")
}

impl StateDir {
    /// Writes an accepted event into the inbox durably: staged in inbox/tmp/
    /// under a name of its own, fsync'd, linked in. Returns the inbox path.
    ///
    /// The eventId is the idempotency key, so an event whose file is already
    /// in inbox/ or processing/ (sent twice, or by many senders at once) is
    /// handed over already: that is success, and nothing is written.
    pub fn inbox_put(&self, event: &Event) -> Result<PathBuf> {
        self.inbox_put_named(event, &format!("{}.json", event.id()))
    }

    /// [`StateDir::inbox_put`] for `autod replay` through a running daemon:
    /// the name (`<eventId>.replay.json`, see [`is_replay`]) tells the daemon
    /// that the runs are a replay, for their run-log lines.
    pub fn inbox_put_replay(&self, event: &Event) -> Result<PathBuf> {
        self.inbox_put_named(event, &format!("{}{REPLAY_SUFFIX}", event.id()))
    }

    fn inbox_put_named(&self, event: &Event, name: &str) -> Result<PathBuf> {
        let tmp_dir = self.ensure("inbox/tmp")?;
        let name = name.to_owned();
        let target = self.inbox_dir().join(&name);
        let handed_over = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file());
        if handed_over(&target) || handed_over(&self.processing_dir().join(&name)) {
            return Ok(target);
        }
        let placed = atomic::place_new(&tmp_dir, &target, &event.to_json()).at(&target)?;
        // Not placed: the name was taken. By the same event sent at once
        // (several HTTP requests, or `autod send`s): then it is a file, or
        // gone already, claimed into processing/ and perhaps delivered.
        let not_a_file = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| !m.file_type().is_file());
        if !placed && not_a_file(&target) {
            // A symlink or a folder of that name: the daemon would never read it.
            return Err(std::io::Error::other(
                "something that is not an event file has this name; remove it and send again",
            ))
            .at(&target);
        }
        Ok(target)
    }

    /// Puts an accepted event straight into processing/, durably, for the
    /// process that delivers it itself (the follow-ups of `dispatch` and
    /// `retry`); if that process dies, the next `autod run` recovers it. A
    /// file already there under the name is the same event (follow-up ids are
    /// derived from their parent), so it is kept as it is.
    pub fn processing_put(&self, event: &Event) -> Result<Claimed> {
        let dir = self.ensure("processing")?;
        let name = format!("{}.json", event.id());
        let path = dir.join(&name);
        let placed = atomic::place_new(&dir, &path, &event.to_json()).at(&path)?;
        if !placed && !fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file()) {
            return Err(std::io::Error::other(
                "something that is not an event file has this name; remove it",
            ))
            .at(&path);
        }
        Ok(Claimed { path, name })
    }

    /// Claims every candidate file in the inbox, oldest first. A file that
    /// cannot be claimed is reported in the batch and left where it is; it
    /// does not stop the others.
    pub fn inbox_claim(&self) -> Result<Batch> {
        let inbox = self.ensure("inbox")?;
        let processing = self.ensure("processing")?;
        let mut batch = Batch::default();
        let mut found: Vec<(std::time::SystemTime, String, std::ffi::OsString)> = Vec::new();
        for entry in fs::read_dir(&inbox).at(&inbox)?.flatten() {
            let os_name = entry.file_name();
            let name = match os_name.to_str() {
                Some(n) => n.to_owned(),
                // Not UTF-8: no event id or log line could name it. It gets a
                // name that can (and the caller says so).
                None => utf8_name(&os_name),
            };
            if !is_candidate(&name) {
                continue;
            }
            // symlink_metadata: a symlink is never followed, whatever it points to.
            let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if !meta.file_type().is_file() {
                continue;
            }
            let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            found.push((modified, name, os_name));
        }
        found.sort();
        for (_, name, os_name) in found {
            let from = inbox.join(&os_name);
            let to = processing.join(&name);
            if to.exists() {
                // The same name is already being processed (an event re-sent while
                // its first copy runs): leave it for the next pass.
                batch.skipped += 1;
                continue;
            }
            match fs::rename(&from, &to) {
                Ok(()) => {
                    if os_name.to_str().is_none() {
                        batch
                            .renamed
                            .push((os_name.to_string_lossy().into_owned(), name.clone()));
                    }
                    batch.claimed.push(Claimed { path: to, name });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => batch.failed.push(StateError {
                    path: from,
                    source: e,
                }),
            }
        }
        // No fsync of either folder: a rename is atomic across a crash, so the
        // file is under one of its two names, and start-up reads both. A claim
        // lost to a power cut is claimed again, and pairs that succeeded skip by
        // their (durable) markers. Syncing here put two disk flushes between an
        // event's arrival and its handler's start.
        Ok(batch)
    }

    /// Files left in processing/ by a previous run that stopped mid-way, oldest
    /// first like [`StateDir::inbox_claim`] (a rename keeps the mtime), so events
    /// that share a key are delivered again in the order they came.
    pub fn processing_recover(&self) -> Result<Vec<Claimed>> {
        let dir = self.ensure("processing")?;
        let mut found: Vec<(std::time::SystemTime, String)> = Vec::new();
        for entry in fs::read_dir(&dir).at(&dir)?.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if is_candidate(&name) && meta.file_type().is_file() {
                found.push((meta.modified().unwrap_or(std::time::UNIX_EPOCH), name));
            }
        }
        found.sort();
        Ok(found
            .into_iter()
            .map(|(_, name)| Claimed {
                path: dir.join(&name),
                name,
            })
            .collect())
    }

    /// Every pair of a claimed event has an outcome: the file can go.
    pub fn processing_done(&self, claimed: &Claimed) -> Result<()> {
        self.processing_unhold(&claimed.name);
        atomic::remove(&claimed.path).at(&claimed.path)
    }

    /// [`StateDir::processing_done`] for a file [`StateDir::processing_put`] wrote.
    pub fn processing_forget(&self, event_id: &str) -> Result<()> {
        let name = format!("{event_id}.json");
        let path = self.processing_dir().join(&name);
        self.processing_done(&Claimed { path, name })
    }

    fn held_path(&self, name: &str) -> PathBuf {
        self.processing_dir().join(format!(".{name}.held.json"))
    }

    /// Notes beside a claimed file why it waits: the project cannot take it
    /// now (a broken schema, no route). Read by `autod status`; the file
    /// itself stays in processing/ and is delivered again later.
    pub fn processing_hold(&self, claimed: &Claimed, reason: &str) -> Result<()> {
        let path = self.held_path(&claimed.name);
        let why = json!({
            "file": claimed.name,
            "heldSince": crate::time::now_rfc3339(),
            "reason": reason,
        });
        atomic::write_fast(&path, why.to_string().as_bytes()).at(&path)
    }

    fn processing_unhold(&self, name: &str) {
        let _ = fs::remove_file(self.held_path(name));
    }

    /// Claimed events that wait for the project to be fixed: (file, reason).
    pub fn held(&self) -> Vec<(String, String)> {
        let dir = self.processing_dir();
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out: Vec<(String, String)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let file = name.strip_prefix('.')?.strip_suffix(".held.json")?;
                // A note whose event is gone (delivered, or removed by hand) is stale.
                if !dir.join(file).is_file() {
                    return None;
                }
                let v: serde_json::Value =
                    serde_json::from_slice(&fs::read(e.path()).ok()?).ok()?;
                let reason = v.get("reason")?.as_str()?.to_owned();
                Some((file.to_owned(), reason))
            })
            .collect();
        out.sort();
        out
    }

    /// Whether a small file can be written and synced under `.autod/` now: the
    /// cheap question asked before redelivering events that were stranded by
    /// a full or read-only disk, so their handlers do not run again for nothing.
    pub fn writable(&self) -> Result<()> {
        let path = self.path().join(".write-probe");
        atomic::write(&path, b"ok").at(&path)?;
        atomic::remove(&path).at(&path)
    }

    /// Moves an invalid file to rejected/ beside `<name>.error.json` saying why.
    pub fn processing_reject(
        &self,
        claimed: &Claimed,
        violations: &[Violation],
    ) -> Result<PathBuf> {
        let dir = self.ensure("rejected")?;
        let why = json!({
            "file": claimed.name,
            "rejectedAt": crate::time::now_rfc3339(),
            "errors": violations,
        });
        let error_path = dir.join(format!("{}.error.json", claimed.name));
        let mut bytes = serde_json::to_vec_pretty(&why).expect("serializes");
        bytes.push(b'\n');
        atomic::write(&error_path, &bytes).at(&error_path)?;
        let target = dir.join(&claimed.name);
        atomic::rename(&claimed.path, &target).at(&target)?;
        self.processing_unhold(&claimed.name);
        Ok(target)
    }

    /// The files in rejected/, oldest first, each with its `.error.json`.
    pub fn rejected_list(&self) -> Vec<RejectedFile> {
        let dir = self.path().join("rejected");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out: Vec<(std::time::SystemTime, RejectedFile)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                if !is_candidate(&name) || name.ends_with(".error.json") {
                    return None;
                }
                let meta = fs::symlink_metadata(e.path()).ok()?;
                if !meta.file_type().is_file() {
                    return None;
                }
                let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                Some((modified, self.rejected_file(&dir, name)))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
        out.into_iter().map(|(_, f)| f).collect()
    }

    /// One rejected file by name (as `rejected_list` shows it).
    pub fn rejected_get(&self, name: &str) -> Option<RejectedFile> {
        let dir = self.path().join("rejected");
        let plain = !name.contains('/') && is_candidate(name) && !name.ends_with(".error.json");
        (plain && fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.file_type().is_file()))
            .then(|| self.rejected_file(&dir, name.to_owned()))
    }

    fn rejected_file(&self, dir: &Path, name: String) -> RejectedFile {
        let why: Option<serde_json::Value> = fs::read(dir.join(format!("{name}.error.json")))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        RejectedFile {
            path: dir.join(&name),
            name,
            why,
        }
    }

    /// Puts a rejected file back into the inbox (durably) and removes its
    /// `.error.json`: the daemon validates it again as a new arrival.
    pub fn rejected_requeue(&self, file: &RejectedFile) -> Result<PathBuf> {
        let inbox = self.ensure("inbox")?;
        let target = inbox.join(&file.name);
        if target.exists() || self.processing_dir().join(&file.name).exists() {
            return Err(StateError {
                path: target,
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a file of this name is already queued; wait until it is delivered",
                ),
            });
        }
        atomic::rename(&file.path, &target).at(&target)?;
        let why = file
            .path
            .with_file_name(format!("{}.error.json", file.name));
        atomic::remove(&why).at(&why)?;
        Ok(target)
    }

    /// Removes a rejected file and its `.error.json`, once its event was
    /// handed to a queue that is not this inbox (`autod rejected requeue`
    /// with `[queue] backend = "nats"`).
    pub fn rejected_remove(&self, file: &RejectedFile) -> Result<()> {
        let why = file
            .path
            .with_file_name(format!("{}.error.json", file.name));
        atomic::remove(&file.path).at(&file.path)?;
        atomic::remove(&why).at(&why)
    }

    /// Files waiting in the inbox (for `autod status`).
    pub fn inbox_depth(&self) -> usize {
        count_candidates(&self.inbox_dir())
    }

    /// Files claimed and not yet finished (for `autod status`).
    pub fn processing_depth(&self) -> usize {
        count_candidates(&self.processing_dir())
    }
}

/// A UTF-8 name for an inbox file whose name is not: its readable part, with
/// the bytes that are not UTF-8 written as hex so two such names stay apart.
fn utf8_name(name: &std::ffi::OsStr) -> String {
    if let Some(s) = name.to_str() {
        return s.to_owned();
    }
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for chunk in name.as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn count_candidates(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| is_candidate(&utf8_name(&e.file_name())))
                .filter(|e| fs::symlink_metadata(e.path()).is_ok_and(|m| m.file_type().is_file()))
                .count()
        })
        .unwrap_or(0)
}
