//! Crash-safe file operations: a reader sees the old file or the new one, never
//! half of either, and a completed call survives power loss.
//!
//! write: temp file in the same folder → write → fsync → rename → fsync folder.
//! A failed fsync fails the operation (the "fsyncgate" lesson: the kernel may have
//! dropped the dirty pages, so retrying the fsync proves nothing).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, LazyLock, Mutex, PoisonError};

/// Files under `.autod/` are private: events can hold anything.
pub const FILE_MODE: u32 = 0o600;
pub const DIR_MODE: u32 = 0o700;

/// Replaces `path` crash-safely: temp file, fsync, rename, fsync the folder.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)
}

/// Replaces `path` atomically (temp file + rename) without waiting for the disk:
/// for copies that can be rebuilt from a durable record, where an fsync would
/// only slow the hot path down.
pub fn write_fast(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("no parent folder"))?;
    let tmp = temp_path(dir, path);
    let result = (|| {
        write_temp(&tmp, bytes, durable)?;
        fs::rename(&tmp, path)?;
        if durable { sync_dir(dir) } else { Ok(()) }
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates the private temp file `tmp` (never an existing one) holding
/// `bytes`, on disk when `durable`.
fn write_temp(tmp: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(tmp)?;
    f.write_all(bytes)?;
    if durable {
        f.sync_all()?;
    }
    Ok(())
}

/// A name in `dir` that no other writer uses, `.NAME.PID.HEX.tmp`: a reader
/// skips it, and [`sweep_temp_files`] removes it once PID is gone.
fn temp_path(dir: &Path, path: &Path) -> std::path::PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    dir.join(format!(
        ".{name}.{}.{:x}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ))
}

/// Puts `bytes` at `path` durably unless a file is already there; `Ok(false)`
/// if one was (another writer got there first, which is not an error when
/// they write the same thing). Staged under a name of its own in `staging`
/// (same filesystem), fsync'd, then hard-linked in: a link, unlike a rename,
/// never replaces, and readers never see a partial file. Where the
/// filesystem has no hard links it falls back to a rename, which may replace.
pub fn place_new(staging: &Path, path: &Path, bytes: &[u8]) -> io::Result<bool> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("no parent folder"))?;
    let tmp = temp_path(staging, path);
    let result = (|| {
        write_temp(&tmp, bytes, true)?;
        let placed = match fs::hard_link(&tmp, path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error())
                    || e.kind() == io::ErrorKind::Unsupported =>
            {
                fs::rename(&tmp, path)?;
                true
            }
            Err(e) => return Err(e),
        };
        if placed {
            sync_dir(dir)?;
        }
        Ok(placed)
    })();
    let _ = fs::remove_file(&tmp);
    result
}

/// Removes the temp files that writers killed mid-write left behind under
/// `dir`: `.NAME.PID.HEX.tmp` whose PID no longer runs. Files directly in `spare`
/// (a folder people write into, like the inbox) are never touched. Returns how
/// many were removed.
pub fn sweep_temp_files(dir: &Path, spare: &Path) -> usize {
    let mut removed = 0;
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => removed += sweep_temp_files(&path, spare),
            Ok(t) if t.is_file() && dir != spare => {
                let name = entry.file_name();
                if let Some(pid) = name.to_str().and_then(temp_file_pid)
                    && !Path::new(&format!("/proc/{pid}")).exists()
                    && fs::remove_file(&path).is_ok()
                {
                    removed += 1;
                }
            }
            _ => {}
        }
    }
    removed
}

/// The writer's pid in a temp file name made by [`replace`].
fn temp_file_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = rest.rsplitn(3, '.');
    let hex = parts.next()?;
    let pid = parts.next()?;
    parts.next()?;
    u64::from_str_radix(hex, 16).ok()?;
    pid.parse().ok()
}

/// `O_NOFOLLOW`, for `OpenOptionsExt::custom_flags`: opening a symlink fails
/// (ELOOP) instead of opening (or creating) whatever it points to.
pub fn nofollow() -> i32 {
    i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).expect("O_NOFOLLOW fits an int")
}

/// Opens (creating if needed) a private file used only for its flock; a
/// symlink in its place is refused, not followed.
pub fn lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .custom_flags(nofollow())
        .open(path)
        .map_err(|e| explain_link(e, path))
}

/// Turns the ELOOP of an `O_NOFOLLOW` open into a message that says what to do.
pub fn explain_link(e: io::Error, path: &Path) -> io::Error {
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        link_refused(path)
    } else {
        e
    }
}

/// The error for a symlink found inside `.autod/`.
pub fn link_refused(path: &Path) -> io::Error {
    let target = fs::read_link(path)
        .map(|t| format!(" (to {})", t.display()))
        .unwrap_or_default();
    io::Error::other(format!(
        "{} is a symbolic link{target}; autod follows no links inside .autod/, so that nothing it writes lands outside the project: remove it (`rm {}`) and autod makes a real one in its place",
        path.display(),
        path.display()
    ))
}

/// Creates the private folder `path` and its missing parents below `base`
/// (which must exist), refusing any component below `base` that is a symlink
/// or not a folder: `DirBuilder::recursive` would follow a planted link and
/// create, and later write, wherever it points. With `durable`, each new
/// entry is fsync'd into its parent.
///
/// Checked component by component with `lstat`, not opened relative to a
/// descriptor: a link swapped in between the check and the use is followed.
/// Only someone who can already write into `.autod/` can do that.
pub fn create_dir_below(base: &Path, path: &Path, durable: bool) -> io::Result<()> {
    let rel = path.strip_prefix(base).map_err(|_| {
        io::Error::other(format!(
            "{} is not under {}",
            path.display(),
            base.display()
        ))
    })?;
    let mut at = base.to_path_buf();
    for part in rel.components() {
        at.push(part);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => continue,
            Ok(m) if m.file_type().is_symlink() => return Err(link_refused(&at)),
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} is not a folder; move it away and autod makes the folder",
                    at.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match fs::DirBuilder::new().mode(DIR_MODE).create(&at) {
            Ok(()) if durable => sync_dir(at.parent().unwrap_or(base))?,
            Ok(()) => {}
            // Made by another process meanwhile: check what it is.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => return Err(link_refused(&at)),
                _ => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fails if a component of `path` below `base` is a symlink (for removals,
/// which would otherwise act on whatever a planted link points to). Missing
/// components end the check: there is nothing to follow.
pub fn check_below(base: &Path, path: &Path) -> io::Result<()> {
    let Ok(rel) = path.strip_prefix(base) else {
        return Ok(());
    };
    let mut at = base.to_path_buf();
    for part in rel.components() {
        at.push(part);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Err(link_refused(&at)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates `path` only if it does not exist; `Ok(false)` if it did.
pub fn create_new(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("no parent folder"))?;
    let mut f = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e),
    };
    f.write_all(bytes)?;
    f.sync_all()?;
    sync_dir(dir)?;
    Ok(true)
}

/// Removes a file durably; a file already gone is not an error.
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Renames durably: both folders' entries are on disk when this returns.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    let to_dir = to.parent().unwrap_or(Path::new("."));
    sync_dir(to_dir)?;
    match from.parent() {
        Some(from_dir) if from_dir != to_dir => sync_dir(from_dir),
        _ => Ok(()),
    }
}

/// Creates a private folder (and missing parents) without syncing: for folders
/// whose loss in a crash loses nothing that matters (handler artifacts).
pub fn create_dir_fast(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

/// Creates a private folder (and missing parents); each new entry is made durable.
pub fn create_dir(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    match fs::DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes every entry change made in `dir` before this call durable.
///
/// Concurrent callers share one fsync (group commit): a folder's fsyncs
/// are serialised by the kernel, so N writers each syncing the inbox took N
/// fsyncs one after another (the HTTP intake topped out at one request per
/// folder fsync). A caller waits for an fsync that *started* after it was
/// called, so what it changed is covered, exactly as its own fsync would.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let group = {
        let mut groups = DIR_SYNCS.lock().unwrap_or_else(PoisonError::into_inner);
        groups.entry(dir.to_path_buf()).or_default().clone()
    };
    group.sync(|| File::open(dir)?.sync_all())
}

/// One [`DirSync`] per folder path (a different spelling of the same folder
/// only batches less). Folders are few: the state layout's, and one per
/// archive day.
static DIR_SYNCS: LazyLock<Mutex<HashMap<PathBuf, Arc<DirSync>>>> = LazyLock::new(Default::default);

/// Group commit for one folder's fsync.
#[derive(Default)]
struct DirSync {
    state: Mutex<SyncRound>,
    done: Condvar,
}

#[derive(Default)]
struct SyncRound {
    /// fsyncs begun so far; the one in progress, if any, is number `started`.
    started: u64,
    /// The number of the last finished fsync, and how it went (the OS error
    /// code, or `None`: success).
    finished: u64,
    outcome: Option<(io::ErrorKind, Option<i32>, String)>,
    running: bool,
}

impl DirSync {
    fn sync(&self, fsync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let mut round = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // The one in progress may have begun before this caller's change.
        let needed = round.started + 1;
        let mut fsync = Some(fsync);
        loop {
            if round.finished >= needed {
                return match &round.outcome {
                    None => Ok(()),
                    Some((_, Some(code), _)) => Err(io::Error::from_raw_os_error(*code)),
                    Some((kind, None, message)) => Err(io::Error::new(*kind, message.clone())),
                };
            }
            if round.running {
                round = self
                    .done
                    .wait(round)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            round.running = true;
            round.started += 1;
            let number = round.started;
            drop(round);
            let result = fsync.take().map_or(Ok(()), |f| f());
            round = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            round.running = false;
            round.finished = number;
            round.outcome = result
                .as_ref()
                .err()
                .map(|e| (e.kind(), e.raw_os_error(), e.to_string()));
            self.done.notify_all();
            return result;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_shared_folder_fsync_starts_after_every_change_it_covers() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let group = DirSync::default();
        let changes = AtomicU64::new(0);
        // What the fsync in progress covers: the changes made before it began.
        let covered = AtomicU64::new(0);
        let rounds = AtomicU64::new(0);
        let start = std::sync::Barrier::new(16);
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| {
                    start.wait();
                    for _ in 0..20 {
                        let mine = changes.fetch_add(1, Ordering::SeqCst) + 1;
                        group
                            .sync(|| {
                                rounds.fetch_add(1, Ordering::SeqCst);
                                covered.fetch_max(changes.load(Ordering::SeqCst), Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_millis(1));
                                Ok(())
                            })
                            .unwrap();
                        assert!(covered.load(Ordering::SeqCst) >= mine);
                    }
                });
            }
        });
        assert!(rounds.load(Ordering::SeqCst) <= 320);
    }

    #[test]
    fn a_failed_shared_fsync_fails_its_callers() {
        let group = DirSync::default();
        let e = group
            .sync(|| Err(io::Error::from_raw_os_error(28)))
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(28));
        group.sync(|| Ok(())).unwrap();
    }

    #[test]
    fn write_replaces_and_is_private() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // No temp files left behind.
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn sweeps_only_dead_writers_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let dead = d.path().join(".x.json.999999999.ab12.tmp");
        let alive = d
            .path()
            .join(format!(".y.json.{}.ab12.tmp", std::process::id()));
        let user = d.path().join("note.json.tmp");
        for p in [&dead, &alive, &user] {
            fs::write(p, b"x").unwrap();
        }
        assert_eq!(sweep_temp_files(d.path(), Path::new("/nonexistent")), 1);
        let spared = d.path().join(".z.json.999999999.ab12.tmp");
        fs::write(&spared, b"x").unwrap();
        assert_eq!(sweep_temp_files(d.path(), d.path()), 0);
        assert!(!dead.exists() && alive.exists() && user.exists());
    }

    #[test]
    fn create_new_does_not_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m");
        assert!(create_new(&p, b"1").unwrap());
        assert!(!create_new(&p, b"2").unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"1");
    }

    #[test]
    fn folders_below_a_base_refuse_symlinked_components() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let base = d.path();
        create_dir_below(base, &base.join("a/b"), true).unwrap();
        assert!(base.join("a/b").is_dir());
        std::os::unix::fs::symlink(outside.path(), base.join("link")).unwrap();
        let err = create_dir_below(base, &base.join("link/x"), false).unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        assert!(err.to_string().contains("link"), "{err}");
        assert!(fs::read_dir(outside.path()).unwrap().next().is_none());
        assert!(check_below(base, &base.join("link/x.json")).is_err());
        assert!(check_below(base, &base.join("a/b/x.json")).is_ok());
        // A planted lock file link is refused, not followed.
        let target = outside.path().join("victim");
        std::os::unix::fs::symlink(&target, base.join("x.lock")).unwrap();
        let err = lock_file(&base.join("x.lock")).unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        assert!(!target.exists());
    }

    #[test]
    fn create_dir_is_private() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x/y");
        create_dir(&p).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
}
