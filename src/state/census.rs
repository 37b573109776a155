//! Counts of what is under `.autod/` now, for `GET /metrics`: events in the
//! inbox and in processing/, dead letters by handler and state.
//!
//! Cheap enough to run at every scrape over thousands of files: the inbox
//! and processing/ are counted from directory entries alone; a dead
//! letter's state is in the record, so each record is read once and its
//! state remembered by (size, mtime), which every rewrite changes (records
//! are replaced by rename). Only new or changed records are read, at most
//! [`MAX_READS`] per count.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Deserialize;

use super::StateDir;
use super::dead::DeadState;

/// Records read in one count; the rest are `unread` until the next one, so
/// a scrape never reads a huge backlog at once.
pub const MAX_READS: usize = 20_000;

/// The state of a record that cannot be read or is not a record.
pub const UNREADABLE: &str = "unreadable";

/// The state of a record left for the next count (see [`MAX_READS`]).
pub const UNREAD: &str = "unread";

/// Dead-letter states remembered between counts.
#[derive(Default)]
pub struct DeadCensus {
    seen: HashMap<PathBuf, (u64, SystemTime, &'static str)>,
}

#[derive(Deserialize)]
struct StateOnly {
    state: DeadState,
}

impl DeadCensus {
    /// Dead letters now, by (handler folder, state).
    pub fn count(&mut self, state: &StateDir) -> BTreeMap<(String, &'static str), u64> {
        let mut counts = BTreeMap::new();
        let mut seen = HashMap::with_capacity(self.seen.len());
        let mut reads = 0;
        let Ok(handlers) = fs::read_dir(state.dead_dir()) else {
            self.seen = seen;
            return counts;
        };
        for h in handlers.flatten() {
            // As `dead_list`: a linked handler folder is not autod's.
            if !h.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let handler = h.file_name().to_string_lossy().into_owned();
            let Ok(files) = fs::read_dir(h.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name();
                let name = name.to_string_lossy();
                if !name.ends_with(".json") || name.starts_with('.') {
                    continue;
                }
                let path = f.path();
                let Ok(meta) = f.metadata() else {
                    continue; // Removed since the listing (a retry succeeded).
                };
                let stamp = (
                    meta.len(),
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                );
                let known = self
                    .seen
                    .get(&path)
                    .filter(|(len, mtime, _)| (*len, *mtime) == stamp)
                    .map(|(_, _, s)| *s);
                let s = match known {
                    Some(s) => s,
                    None if reads < MAX_READS => {
                        reads += 1;
                        match fs::read(&path) {
                            Ok(bytes) => serde_json::from_slice::<StateOnly>(&bytes)
                                .map_or(UNREADABLE, |r| r.state.as_str()),
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                            Err(_) => UNREADABLE,
                        }
                    }
                    None => UNREAD,
                };
                if s != UNREAD {
                    seen.insert(path, (stamp.0, stamp.1, s));
                }
                *counts.entry((handler.clone(), s)).or_default() += 1;
            }
        }
        self.seen = seen;
        counts
    }
}

/// Events in the inbox, not claimed yet (names the consumer would claim).
pub fn inbox_depth(state: &StateDir) -> u64 {
    files_in(state.inbox_dir())
}

/// Events claimed and not finished: being delivered, waiting, or held.
pub fn processing_depth(state: &StateDir) -> u64 {
    files_in(state.processing_dir())
}

fn files_in(dir: PathBuf) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            // The consumer's rule (inbox.rs): no dot files, no `.tmp` being written.
            !name.starts_with('.')
                && !name.ends_with(".tmp")
                && e.file_type().is_ok_and(|t| t.is_file())
        })
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(state: &StateDir, handler: &str, id: &str, s: &str) {
        let dir = state.dead_dir().join(handler);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("{id}.json")),
            format!(r#"{{"state":"{s}","other":1}}"#),
        )
        .unwrap();
    }

    #[test]
    fn counts_dead_letters_by_handler_and_state_and_sees_rewrites() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path());
        let mut census = DeadCensus::default();
        assert!(census.count(&state).is_empty());
        put(&state, "a", "e1", "waiting");
        put(&state, "a", "e2", "waiting");
        put(&state, "b", "e1", "permanent");
        fs::write(state.dead_dir().join("a").join("bad.json"), "{").unwrap();
        fs::write(state.dead_dir().join("a").join(".e3.json.tmp"), "{").unwrap();
        let c = census.count(&state);
        assert_eq!(c[&("a".to_owned(), "waiting")], 2);
        assert_eq!(c[&("a".to_owned(), UNREADABLE)], 1);
        assert_eq!(c[&("b".to_owned(), "permanent")], 1);
        // A rewrite changes the size: the new state is read.
        put(&state, "a", "e2", "exhausted");
        fs::remove_file(state.dead_dir().join("b").join("e1.json")).unwrap();
        let c = census.count(&state);
        assert_eq!(c[&("a".to_owned(), "waiting")], 1);
        assert_eq!(c[&("a".to_owned(), "exhausted")], 1);
        assert!(!c.contains_key(&("b".to_owned(), "permanent")));
    }

    #[test]
    fn inbox_depth_counts_claimable_files_only() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path());
        assert_eq!(inbox_depth(&state), 0);
        let inbox = state.inbox_dir();
        fs::create_dir_all(inbox.join("tmp")).unwrap();
        fs::write(inbox.join("e1.json"), "{}").unwrap();
        fs::write(inbox.join("e2.json.tmp"), "{}").unwrap();
        fs::write(inbox.join(".e3.json"), "{}").unwrap();
        assert_eq!(inbox_depth(&state), 1);
    }
}
