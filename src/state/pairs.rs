//! One (event, handler) pair at a time, and its success recorded for good.
//!
//! Two autod processes on one root (a cron overlap, a daemon and `autod retry`)
//! serialize on an flock of `done/<eventId>.<handler>.lock`; the owner checks the
//! `.ok` marker before it runs anything. The marker is written (durably) before
//! the lock is released, so whoever gets the lock next sees it.
//!
//! Only autod holds the lock, never the handler: a handler that outlives its
//! autod (SIGKILL, OOM, a Ctrl-C that reached only autod's process group) must
//! not keep its pair blocked. Instead the owner writes what identifies the run
//! into the lock file once the handler is spawned (the runner's `RunMark`), and
//! whoever owns the pair next reads it and stops what is left of that run
//! before it runs the handler again: a pair is exclusive *and* live.
//!
//! A lock is only a lock while its name still names the locked file: the owner
//! renames the file to `.ok` on success, so a process that was waiting on the
//! old file checks, once it gets it, that the name still leads there, and
//! opens the name again if not (two `--force` runs would overlap otherwise).
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
            lock: file_in(done, event_id, &[".", handler, ".lock"]),
            ok: ok_path(done, event_id, handler),
            legacy_ok: legacy_ok_path(done, event_id, handler),
        }
    }

    pub fn succeeded(&self) -> bool {
        self.ok.exists() || self.legacy_ok.exists()
    }
}

/// Whether the pair succeeded, without the lock's path: a dry run asks this
/// for every event it reads.
pub(super) fn succeeded(done: &Path, event_id: &str, handler: &str) -> bool {
    ok_path(done, event_id, handler).exists() || legacy_ok_path(done, event_id, handler).exists()
}

fn ok_path(done: &Path, event_id: &str, handler: &str) -> PathBuf {
    file_in(done, event_id, &[".", handler, ".ok"])
}

fn legacy_ok_path(done: &Path, event_id: &str, handler: &str) -> PathBuf {
    let len = done.as_os_str().len() + event_id.len() + handler.len() + 5;
    let mut path = PathBuf::with_capacity(len);
    path.push(done);
    path.push(event_id);
    path.push(handler);
    path.as_mut_os_string().push(".ok");
    path
}

/// `folder.join(name + rest…)` in one allocation (`join` and `format!` took
/// several for each of these paths).
fn file_in(folder: &Path, name: &str, rest: &[&str]) -> PathBuf {
    let len =
        folder.as_os_str().len() + 1 + name.len() + rest.iter().map(|s| s.len()).sum::<usize>();
    let mut path = PathBuf::with_capacity(len);
    path.push(folder);
    path.push(name);
    for s in rest {
        path.as_mut_os_string().push(s);
    }
    path
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
        loop {
            let file = atomic::lock_file(&paths.lock).at(&paths.lock)?;
            file.lock().at(&paths.lock)?;
            if names_locked_file(&file, &paths.lock)? {
                return Ok(PairLock { file, paths });
            }
        }
    }

    /// The lock if nobody holds it now, without waiting.
    pub(super) fn try_acquire(paths: PairPaths) -> Result<Option<PairLock>> {
        loop {
            let file = atomic::lock_file(&paths.lock).at(&paths.lock)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => return Err(e).at(&paths.lock),
            }
            if names_locked_file(&file, &paths.lock)? {
                return Ok(Some(PairLock { file, paths }));
            }
        }
    }

    /// Stores what identifies the run now in progress (replacing the last
    /// one's). Not synced: after a power cut no process of it is left.
    pub fn record_run(&self, run: &impl serde::Serialize) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let mut bytes = serde_json::to_vec(run)
            .map_err(std::io::Error::other)
            .at(&self.paths.lock)?;
        bytes.push(b'\n');
        self.file.set_len(0).at(&self.paths.lock)?;
        self.file.write_all_at(&bytes, 0).at(&self.paths.lock)
    }

    /// What the last owner recorded about its run, if anything (a lock file
    /// from an older autod is empty).
    pub fn previous_run<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        use std::io::Read;
        let mut text = Vec::new();
        (&self.file).read_to_end(&mut text).ok()?;
        if text.is_empty() {
            return None;
        }
        serde_json::from_slice(&text).ok()
    }

    /// Forgets the last run, once nothing of it is left.
    pub fn clear_run(&self) -> Result<()> {
        self.file.set_len(0).at(&self.paths.lock)
    }

    /// Whether this pair already succeeded (by any process, at any time).
    pub fn succeeded(&self) -> bool {
        self.paths.succeeded()
    }

    /// Withdraws an earlier success: a forced rerun failed, so the pair's
    /// latest outcome is that failure (its dead letter, written first), and a
    /// retry must run it rather than skip it as done.
    pub fn unmark_succeeded(&self) -> Result<()> {
        for ok in [&self.paths.ok, &self.paths.legacy_ok] {
            atomic::remove(ok).at(ok)?;
        }
        Ok(())
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

/// Whether `path` still names the file `file` has open (same device and
/// inode): the previous owner may have renamed it to `.ok` while we waited.
fn names_locked_file(file: &File, path: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let held = file.metadata().at(path)?;
    match std::fs::symlink_metadata(path) {
        Ok(named) => Ok(named.dev() == held.dev() && named.ino() == held.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).at(path),
    }
}

impl Drop for PairLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_what_join_makes() {
        for done in ["/r/.autod/done", "/r/.autod/done/", "done"] {
            let done = Path::new(done);
            let p = PairPaths::new(done, "ev-1", "h_1");
            assert_eq!(p.lock, done.join("ev-1.h_1.lock"));
            assert_eq!(p.ok, done.join("ev-1.h_1.ok"));
            assert_eq!(p.legacy_ok, done.join("ev-1").join("h_1.ok"));
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(!succeeded(dir.path(), "ev", "h"));
        std::fs::write(dir.path().join("ev.h.ok"), "{}").unwrap();
        assert!(succeeded(dir.path(), "ev", "h"));
        std::fs::create_dir(dir.path().join("e2")).unwrap();
        std::fs::write(dir.path().join("e2").join("h.ok"), "{}").unwrap();
        assert!(succeeded(dir.path(), "e2", "h"));
        assert!(!succeeded(dir.path(), "e2", "g"));
    }

    #[test]
    fn a_waiter_whose_lock_file_was_renamed_to_ok_opens_the_name_again() {
        let dir = tempfile::tempdir().unwrap();
        let first = PairLock::acquire(PairPaths::new(dir.path(), "ev", "h")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let done = dir.path().to_owned();
        let waiter = std::thread::spawn(move || {
            // "<pid>/task/<tid>", to see where this thread sleeps.
            tx.send(std::fs::read_link("/proc/thread-self").unwrap())
                .unwrap();
            PairLock::acquire(PairPaths::new(&done, "ev", "h")).unwrap()
        });
        let task = std::path::Path::new("/proc").join(rx.recv().unwrap());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !std::fs::read_to_string(task.join("wchan"))
            .is_ok_and(|w| w.contains("lock_inode_wait"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the waiter never waited"
            );
            std::thread::yield_now();
        }
        first.mark_succeeded(b"{}").unwrap();
        drop(first);
        let second = waiter.join().unwrap();
        // A third process opening the name now must wait for the second.
        let third = PairLock::try_acquire(PairPaths::new(dir.path(), "ev", "h")).unwrap();
        assert!(third.is_none(), "two owners of one pair");
        second.mark_succeeded(b"{}").unwrap();
    }

    #[test]
    fn the_run_record_is_read_back_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let lock = PairLock::acquire(PairPaths::new(dir.path(), "ev", "h")).unwrap();
        assert_eq!(lock.previous_run::<serde_json::Value>(), None);
        lock.record_run(&serde_json::json!({"pid": 7})).unwrap();
        drop(lock);
        let lock = PairLock::acquire(PairPaths::new(dir.path(), "ev", "h")).unwrap();
        assert_eq!(
            lock.previous_run::<serde_json::Value>(),
            Some(serde_json::json!({"pid": 7}))
        );
        lock.clear_run().unwrap();
        drop(lock);
        let lock = PairLock::acquire(PairPaths::new(dir.path(), "ev", "h")).unwrap();
        assert_eq!(lock.previous_run::<serde_json::Value>(), None);
    }
}
