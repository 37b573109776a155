//! What each watch has already seen (`.autod/watches/<name>.json`), so a start
//! can tell what changed in its folder while autod was down.
//!
//! A record maps every regular file under the watched folder (by its path
//! relative to the folder) to its size and mtime. It is written crash-safely
//! and only after the events for the changes it records are in the inbox: a
//! crash in between delivers a change again at the next start, never loses one.
//!
//! This module also answers whether a path lies in the state folder, which no
//! watch may see (its own writes would trigger it without end).

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Context, Result, StateDir, atomic};

const VERSION: u32 = 1;

/// One file as a watch last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seen {
    pub size: u64,
    /// Nanoseconds since the Unix epoch (negative before it).
    pub mtime_ns: i64,
}

impl Seen {
    pub fn of(meta: &std::fs::Metadata) -> Seen {
        let mtime_ns =
            meta.modified()
                .ok()
                .map_or(0, |t| match t.duration_since(std::time::UNIX_EPOCH) {
                    Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
                    Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
                });
        Seen {
            size: meta.len(),
            mtime_ns,
        }
    }
}

/// Everything one watch has seen in its folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRecord {
    /// The folder as the watch resolved it: a record of another folder (the
    /// watch's `path` was changed) says nothing about this one.
    pub dir: PathBuf,
    /// relPath → what it was.
    pub files: BTreeMap<String, Seen>,
}

#[derive(Deserialize)]
struct OnDisk {
    version: u32,
    #[serde(flatten)]
    record: WatchRecord,
}

#[derive(Serialize)]
struct ToDisk<'a> {
    version: u32,
    #[serde(flatten)]
    record: &'a WatchRecord,
}

impl StateDir {
    fn watch_record_path(&self, name: &str) -> PathBuf {
        self.dir.join("watches").join(format!("{name}.json"))
    }

    /// The watch's record; `Ok(None)` when it has none yet (its first start).
    /// An unreadable or unknown record is an error: the caller decides.
    pub fn watch_record(&self, name: &str) -> Result<Option<WatchRecord>> {
        let path = self.watch_record_path(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).at(&path),
        };
        let on_disk: OnDisk = serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            .at(&path)?;
        if on_disk.version != VERSION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "record version {} (this autod reads {VERSION})",
                    on_disk.version
                ),
            ))
            .at(&path);
        }
        Ok(Some(on_disk.record))
    }

    /// Replaces the watch's record crash-safely.
    pub fn watch_record_save(&self, name: &str, record: &WatchRecord) -> Result<()> {
        self.ensure("watches")?;
        let path = self.watch_record_path(name);
        let bytes = serde_json::to_vec(&ToDisk {
            version: VERSION,
            record,
        })
        .expect("a record serializes");
        atomic::write(&path, &bytes).at(&path)
    }

    /// Drops the watch's record (a watch with `scan_on_start = false` keeps
    /// none, so turning the scan back on later starts afresh, not from a record
    /// that is long out of date).
    pub fn watch_record_forget(&self, name: &str) -> Result<()> {
        let path = self.watch_record_path(name);
        atomic::remove(&path).at(&path)
    }

    /// Whether `path` (absolute) is the state folder or lies inside it. Paths are
    /// compared as written (after resolving `.` and `..`) and, where they exist,
    /// with symlinks resolved.
    pub fn holds(&self, path: &Path) -> bool {
        let state = normalize(&self.dir);
        if normalize(path).starts_with(&state) {
            return true;
        }
        let real_state = real(&self.dir);
        real(path).starts_with(real_state)
    }

    /// Where the state folder lies inside `dir`, relative to it; `None` when it
    /// does not (or `dir` is inside the state folder: see [`StateDir::holds`]).
    pub fn inside(&self, dir: &Path) -> Option<PathBuf> {
        let state = real(&self.dir);
        let rel = state.strip_prefix(real(dir)).ok()?;
        (!rel.as_os_str().is_empty()).then(|| rel.to_owned())
    }
}

/// `path` with `.` and `..` resolved lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `path` with symlinks resolved as far as it exists, the rest appended.
fn real(path: &Path) -> PathBuf {
    let path = normalize(path);
    let mut existing = path.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(r) = existing.canonicalize() {
            return rest.iter().rev().fold(r, |acc, c| acc.join(c));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path());
        assert_eq!(state.watch_record("notes").unwrap(), None);
        let mut record = WatchRecord {
            dir: d.path().join("notes"),
            files: BTreeMap::new(),
        };
        record.files.insert(
            "a/b.txt".into(),
            Seen {
                size: 3,
                mtime_ns: 1_700_000_000_123_456_789,
            },
        );
        state.watch_record_save("notes", &record).unwrap();
        assert_eq!(state.watch_record("notes").unwrap(), Some(record));
        let path = d.path().join(".autod/watches/notes.json");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        state.watch_record_forget("notes").unwrap();
        assert_eq!(state.watch_record("notes").unwrap(), None);
    }

    #[test]
    fn a_damaged_record_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path());
        state.ensure("watches").unwrap();
        std::fs::write(d.path().join(".autod/watches/notes.json"), "{").unwrap();
        let err = state.watch_record("notes").unwrap_err().to_string();
        assert!(err.contains("watches/notes.json"), "{err}");
    }

    #[test]
    fn the_state_folder_is_found_however_a_path_is_written() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        let state = StateDir::new(&root);
        state.ensure("inbox").unwrap();
        assert!(state.holds(&root.join(".autod")));
        assert!(state.holds(&root.join("./x/../.autod/inbox")));
        assert!(state.holds(&root.join(".autod/not-yet/deeper")));
        assert!(!state.holds(&root.join("notes")));
        assert!(!state.holds(&root.join(".autod-notes")));
        std::os::unix::fs::symlink(root.join(".autod"), root.join("link")).unwrap();
        assert!(state.holds(&root.join("link/inbox")));

        assert_eq!(state.inside(&root), Some(PathBuf::from(".autod")));
        assert_eq!(state.inside(&root.join("x/..")), Some(".autod".into()));
        assert_eq!(state.inside(&root.join("notes")), None);
        assert_eq!(state.inside(&root.join(".autod")), None);
    }
}
