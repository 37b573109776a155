//! Watched folders: each change to a matching file becomes an event with payload
//! `{path, relPath, kind, size, mtime}` and source `watch:<name>`.
//!
//! Changes are debounced per path: events for one path within `debounce` of each
//! other collapse into one. The kind is decided when the quiet period ends, from
//! whether the file exists now and whether it existed before, so an editor's
//! save-by-rename (write a temp file, rename it over the original) is one
//! `modify`, and a temp file that came and went is nothing.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::Daemon;
use crate::config::{self, WatchConfig};

const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Create,
    Modify,
    Remove,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Create => "create",
            Kind::Modify => "modify",
            Kind::Remove => "remove",
        }
    }
}

/// What a quiet period's worth of events on one path amounts to.
pub fn settle(existed: bool, exists: bool) -> Option<Kind> {
    match (existed, exists) {
        (false, true) => Some(Kind::Create),
        (true, true) => Some(Kind::Modify),
        (true, false) => Some(Kind::Remove),
        (false, false) => None,
    }
}

pub async fn run(daemon: Arc<Daemon>, w: WatchConfig) {
    let origin = format!("watch:{}", w.name);
    let dir = {
        let p = config::expand_home(&w.path);
        if p.is_absolute() {
            p
        } else {
            daemon.root.join(p)
        }
    };
    let glob = match w.glob.as_deref().map(globset::Glob::new).transpose() {
        Ok(g) => g.map(|g| g.compile_matcher()),
        Err(e) => {
            tracing::error!("{origin}: bad glob: {e}; this watch is off");
            return;
        }
    };
    let kinds: HashSet<&str> = match &w.on {
        Some(on) => on.iter().map(String::as_str).collect(),
        None => HashSet::from(["create", "modify"]),
    };
    let debounce = w.debounce.map_or(DEFAULT_DEBOUNCE, |d| d.0);

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event
                && super::is_change(event.kind)
            {
                for path in event.paths {
                    let _ = tx.send(path);
                }
            }
        }) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!("{origin}: cannot watch: {e}");
                return;
            }
        };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::Recursive) {
        tracing::error!(
            "{origin}: cannot watch {}: {e} (does the folder exist?)",
            dir.display()
        );
        return;
    }
    let mut known: HashSet<PathBuf> = HashSet::new();
    scan(&dir, &mut known);
    tracing::debug!(
        "{origin}: watching {} ({} files)",
        dir.display(),
        known.len()
    );

    let mut pending: HashMap<PathBuf, Instant> = HashMap::new();
    loop {
        let next_due = pending.values().min().copied();
        tokio::select! {
            path = rx.recv() => {
                let Some(path) = path else { return };
                pending.insert(path, Instant::now() + debounce);
            }
            () = async { tokio::time::sleep_until(next_due.expect("guarded")).await }, if next_due.is_some() => {
                let now = Instant::now();
                let due: Vec<PathBuf> = pending.iter().filter(|(_, t)| **t <= now).map(|(p, _)| p.clone()).collect();
                for path in due {
                    pending.remove(&path);
                    let meta = std::fs::symlink_metadata(&path).ok();
                    if meta.as_ref().is_some_and(|m| !m.file_type().is_file()) {
                        continue; // folders, symlinks, sockets: not files
                    }
                    let existed = known.contains(&path);
                    let Some(kind) = settle(existed, meta.is_some()) else { continue };
                    if meta.is_some() { known.insert(path.clone()); } else { known.remove(&path); }
                    let rel = path.strip_prefix(&dir).unwrap_or(&path).to_string_lossy().into_owned();
                    if !kinds.contains(kind.as_str()) || glob.as_ref().is_some_and(|g| !g.is_match(&rel)) {
                        continue;
                    }
                    super::submit(&daemon, event(&w, &origin, &path, &rel, kind, meta.as_ref()), &origin);
                }
            }
        }
    }
}

fn event(
    w: &WatchConfig,
    origin: &str,
    path: &Path,
    rel: &str,
    kind: Kind,
    meta: Option<&std::fs::Metadata>,
) -> Map<String, Value> {
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .map(|t| crate::time::format(chrono::DateTime::<chrono::Utc>::from(t)));
    let payload = json!({
        "path": path.to_string_lossy(),
        "relPath": rel,
        "kind": kind.as_str(),
        "size": meta.map(std::fs::Metadata::len),
        "mtime": mtime,
    });
    let Value::Object(obj) =
        json!({"eventType": w.event_type, "source": origin, "payload": payload})
    else {
        unreachable!("a json! object")
    };
    obj
}

fn scan(dir: &Path, known: &mut HashSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => scan(&e.path(), known),
            Ok(t) if t.is_file() => {
                known.insert(e.path());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_by_rename_is_a_modify_and_temp_files_vanish() {
        assert_eq!(settle(true, true), Some(Kind::Modify));
        assert_eq!(settle(false, true), Some(Kind::Create));
        assert_eq!(settle(true, false), Some(Kind::Remove));
        assert_eq!(settle(false, false), None);
    }
}
