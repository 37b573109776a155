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

use super::{Context, Result, StateDir, atomic};
use crate::event::{Event, Violation};

/// One pass over the inbox.
#[derive(Debug, Default)]
pub struct Batch {
    pub claimed: Vec<Claimed>,
    /// Files left in the inbox because a file of the same name is still being
    /// processed; claim again once it is done.
    pub skipped: usize,
}

/// A file this process owns, in `processing/`.
#[derive(Debug)]
pub struct Claimed {
    pub path: PathBuf,
    pub name: String,
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
        let tmp_dir = self.ensure("inbox/tmp")?;
        let name = format!("{}.json", event.id());
        let target = self.inbox_dir().join(&name);
        let handed_over = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file());
        if handed_over(&target) || handed_over(&self.processing_dir().join(&name)) {
            return Ok(target);
        }
        let placed = atomic::place_new(&tmp_dir, &target, &event.to_json()).at(&target)?;
        if !placed && !handed_over(&target) {
            // A symlink or a folder of that name: the daemon would never read it.
            return Err(std::io::Error::other(
                "something that is not an event file has this name; remove it and send again",
            ))
            .at(&target);
        }
        Ok(target)
    }

    /// Claims every candidate file in the inbox, oldest first.
    pub fn inbox_claim(&self) -> Result<Batch> {
        let inbox = self.ensure("inbox")?;
        let processing = self.ensure("processing")?;
        let mut found: Vec<(std::time::SystemTime, String)> = Vec::new();
        for entry in fs::read_dir(&inbox).at(&inbox)?.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
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
            found.push((meta.modified().unwrap_or(std::time::UNIX_EPOCH), name));
        }
        found.sort();
        let mut claimed = Vec::with_capacity(found.len());
        let mut skipped = 0;
        for (_, name) in found {
            let from = inbox.join(&name);
            let to = processing.join(&name);
            if to.exists() {
                // The same name is already being processed (an event re-sent while
                // its first copy runs): leave it for the next pass.
                skipped += 1;
                continue;
            }
            match fs::rename(&from, &to) {
                Ok(()) => claimed.push(Claimed { path: to, name }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).at(&from),
            }
        }
        // No fsync of either folder: a rename is atomic across a crash, so the
        // file is under one of its two names, and start-up reads both. A claim
        // lost to a power cut is claimed again, and pairs that succeeded skip by
        // their (durable) markers. Syncing here put two disk flushes between an
        // event's arrival and its handler's start.
        Ok(Batch { claimed, skipped })
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
        atomic::remove(&claimed.path).at(&claimed.path)
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
        Ok(target)
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

fn count_candidates(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_str().is_some_and(is_candidate))
                .filter(|e| fs::symlink_metadata(e.path()).is_ok_and(|m| m.file_type().is_file()))
                .count()
        })
        .unwrap_or(0)
}
