//! One (event, handler) pair at a time, and its success recorded for good.
//!
//! Two autod processes on one root (a cron overlap, a daemon and `autod retry`)
//! serialize on an flock of `done/<eventId>/<handler>.lock`; the owner checks the
//! `.ok` marker before it runs anything. The marker is written (durably) before
//! the lock is released, so whoever gets the lock next sees it.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::{Context, Result, atomic};

/// Ownership of one pair, released on drop.
#[derive(Debug)]
pub struct PairLock {
    file: File,
    lock_path: PathBuf,
    ok_path: PathBuf,
    /// The pair's folder was created by this lock and its entry in `done/` is not
    /// on disk yet: see [`PairLock::folder_sync`].
    new_folder: Option<PathBuf>,
}

impl PairLock {
    pub(super) fn acquire(dir: &Path, handler: &str) -> Result<PairLock> {
        let new_folder = if dir.is_dir() {
            None
        } else {
            if let Some(parent) = dir.parent() {
                atomic::create_dir(parent).at(parent)?;
            }
            atomic::create_dir_fast(dir).at(dir)?;
            dir.parent().map(Path::to_path_buf)
        };
        let lock_path = dir.join(format!("{handler}.lock"));
        let file = atomic::lock_file(&lock_path).at(&lock_path)?;
        file.lock().at(&lock_path)?;
        Ok(PairLock {
            file,
            ok_path: dir.join(format!("{handler}.ok")),
            lock_path,
            new_folder,
        })
    }

    /// The fsync that makes a new pair folder's entry durable, to run while the
    /// handler runs (it is only needed before success is recorded), so the
    /// flush is hidden behind the handler's own time. `None` if there is none.
    pub fn folder_sync(&self) -> Option<impl FnOnce() -> Result<()> + Send + 'static> {
        let parent = self.new_folder.clone()?;
        Some(move || atomic::sync_dir(&parent).at(&parent))
    }

    /// A second descriptor on the lock, for the handler to inherit: the lock is
    /// then held until both this process and the handler are gone (or this
    /// process unlocks explicitly, which it does when the pair is finished).
    pub fn share(&self) -> Result<std::os::fd::OwnedFd> {
        let dup = self.file.try_clone().at(&self.lock_path)?;
        Ok(dup.into())
    }

    /// Whether this pair already succeeded (by any process, at any time).
    pub fn succeeded(&self) -> bool {
        self.ok_path.exists()
    }

    /// Records success durably. The locked file itself becomes the marker:
    /// its content is written first, then it is renamed to `<handler>.ok`, so
    /// a marker is never seen empty and success creates no new file. Whoever
    /// still waits on the old name's lock gets it on this same file and finds
    /// the marker; whoever opens the name afterwards makes a new lock file and
    /// finds the marker too.
    pub fn mark_succeeded(&self, detail: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.set_len(0).at(&self.lock_path)?;
        self.file.write_all_at(detail, 0).at(&self.lock_path)?;
        std::fs::rename(&self.lock_path, &self.ok_path).at(&self.ok_path)?;
        let dir = self.ok_path.parent().unwrap_or(Path::new("."));
        atomic::sync_dir(dir).at(dir)
    }
}

impl Drop for PairLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}
