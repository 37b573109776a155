//! One (event, handler) pair at a time, and its success recorded for good.
//!
//! Two autod processes on one root (a cron overlap, a daemon and `autod retry`)
//! serialize on an flock of `done/<eventId>.<handler>.lock`; the owner checks the
//! `.ok` marker before it runs anything. The marker is written (durably) before
//! the lock is released, so whoever gets the lock next sees it.
//!
//! The files sit directly in `done/` (a handler name has no `.`, so the name
//! splits one way): a folder per event cost a directory inode per event, on
//! the path of every event. Markers in the earlier layout,
//! `done/<eventId>/<handler>.ok`, still count.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::{Context, Result, atomic};

/// Where a pair's lock and marker live.
#[derive(Debug)]
pub(super) struct PairPaths {
    pub lock: PathBuf,
    pub ok: PathBuf,
    /// The marker where builds before 2026-11-25 wrote it.
    pub legacy_ok: PathBuf,
}

impl PairPaths {
    pub fn new(done: &Path, event_id: &str, handler: &str) -> PairPaths {
        PairPaths {
            lock: done.join(format!("{event_id}.{handler}.lock")),
            ok: done.join(format!("{event_id}.{handler}.ok")),
            legacy_ok: done.join(event_id).join(format!("{handler}.ok")),
        }
    }

    pub fn succeeded(&self) -> bool {
        self.ok.exists() || self.legacy_ok.exists()
    }
}

/// Ownership of one pair, released on drop.
#[derive(Debug)]
pub struct PairLock {
    file: File,
    paths: PairPaths,
}

impl PairLock {
    /// Blocks until the lock is ours; `done/` must exist.
    pub(super) fn acquire(paths: PairPaths) -> Result<PairLock> {
        let file = atomic::lock_file(&paths.lock).at(&paths.lock)?;
        file.lock().at(&paths.lock)?;
        Ok(PairLock { file, paths })
    }

    /// A second descriptor on the lock, for the handler to inherit: the lock is
    /// then held until both this process and the handler are gone (or this
    /// process unlocks explicitly, which it does when the pair is finished).
    pub fn share(&self) -> Result<std::os::fd::OwnedFd> {
        let dup = self.file.try_clone().at(&self.paths.lock)?;
        Ok(dup.into())
    }

    /// Whether this pair already succeeded (by any process, at any time).
    pub fn succeeded(&self) -> bool {
        self.paths.succeeded()
    }

    /// Records success durably. The locked file itself becomes the marker:
    /// its content is written first, then it is renamed to its `.ok` name, so
    /// a marker is never seen empty and success creates no new file. Whoever
    /// still waits on the old name's lock gets it on this same file and finds
    /// the marker; whoever opens the name afterwards makes a new lock file and
    /// finds the marker too.
    pub fn mark_succeeded(&self, detail: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let PairPaths { lock, ok, .. } = &self.paths;
        self.file.set_len(0).at(lock)?;
        self.file.write_all_at(detail, 0).at(lock)?;
        std::fs::rename(lock, ok).at(ok)?;
        let dir = ok.parent().unwrap_or(Path::new("."));
        atomic::sync_dir(dir).at(dir)
    }
}

impl Drop for PairLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}
