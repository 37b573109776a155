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

    /// Records success durably. The lock file is removed afterwards: anyone who
    /// still opens or waits on it will find the marker and skip.
    pub fn mark_succeeded(&self, detail: &[u8]) -> Result<()> {
        atomic::mark(&self.ok_path, detail).at(&self.ok_path)?;
        let _ = std::fs::remove_file(&self.lock_path);
        Ok(())
    }
}

impl Drop for PairLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}
