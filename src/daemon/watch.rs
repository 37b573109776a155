//! Watched folders: each change to a matching file becomes an event with payload
//! `{path, relPath, kind, size, mtime}` and source `watch:<name>`.
//!
//! Changes are debounced per path: events for one path within `debounce` of each
//! other collapse into one. The kind is decided when the quiet period ends, from
//! whether the file exists now and whether it existed before, so an editor's
//! save-by-rename (write a temp file, rename it over the original) is one
//! `modify`, and a temp file that came and went is nothing.
//!
//! No change is lost between starts:
//!
//! - [`start`] registers the folder with inotify and scans it before it
//!   returns, and the daemon announces itself only after every watch started:
//!   once `.autod/daemon.json` exists, every change is seen.
//! - [`Running::stop`] settles and queues the paths still waiting out their
//!   debounce before the watch ends (a reload that changes the watch, SIGTERM).
//! - What the watch has seen is kept in its record (`state/watches.rs`), saved
//!   after the changes are queued; the next start turns what differs from it into
//!   `create`, `modify` and `remove` events (`scan_on_start`, on by default).
//!
//! The state folder is never watched nor scanned: when it lies inside the
//! watched folder, the folders above it are watched one level deep and their
//! other subfolders recursively, and its paths are dropped if they show up
//! anyway. A watch does not follow symlinks.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::Daemon;
use crate::config::WatchConfig;
use crate::state::watches::{Seen, WatchRecord};

const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(500);

/// How long a change that could not be queued waits before it is tried again.
const QUEUE_RETRY: Duration = Duration::from_secs(1);

/// How long changes may wait before the record is saved: a burst of changes is
/// one write of the record, not one per file.
const RECORD_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Create,
    Modify,
    Remove,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Create => "create",
            Kind::Modify => "modify",
            Kind::Remove => "remove",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        [Kind::Create, Kind::Modify, Kind::Remove]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// The changes a watch reports: its `on`, else creations and modifications.
pub fn kinds(w: &WatchConfig) -> Vec<Kind> {
    match &w.on {
        Some(on) => on.iter().filter_map(|k| Kind::parse(k)).collect(),
        None => vec![Kind::Create, Kind::Modify],
    }
}

/// The payload of a change (SPEC §4b). `size` and `mtime` are null for a
/// removal: the file is gone. `autod lint` checks schemas against it.
pub fn payload(
    path: &str,
    rel: &str,
    kind: Kind,
    size: Option<u64>,
    mtime: Option<String>,
) -> Value {
    json!({
        "path": path,
        "relPath": rel,
        "kind": kind.as_str(),
        "size": size,
        "mtime": mtime,
    })
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

/// Why a watch could not start; it stays off until a reload.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("bad glob: {0}")]
    Glob(#[from] globset::Error),
    #[error("{} is inside autod's state folder, which is never watched", .0.display())]
    InsideState(PathBuf),
    #[error("cannot watch {}: {source} (does the folder exist?)", .dir.display())]
    Watch { dir: PathBuf, source: notify::Error },
}

/// What the notify thread hands the watch task.
enum Notice {
    Path(PathBuf),
    /// Events were lost (the kernel queue overflowed): compare the folder with
    /// what the watch knows.
    Rescan(String),
}

/// A started watch; [`Running::stop`] ends it without losing what it holds.
pub struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Settles and queues every change still waiting out its debounce, saves
    /// the record, and ends the watch.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Registers the watch and scans its folder, then leaves the rest to a task: a
/// change made after this returns is seen.
pub fn start(daemon: &Arc<Daemon>, w: &WatchConfig) -> Result<Running, StartError> {
    let origin = format!("watch:{}", w.name);
    let dir = w.dir(&daemon.root);
    let glob = w
        .glob
        .as_deref()
        .map(globset::Glob::new)
        .transpose()?
        .map(|g| g.compile_matcher());
    // A symlink made after the config was checked can still lead inside.
    if daemon.state.holds(&dir) {
        return Err(StartError::InsideState(dir));
    }
    let state_rel = daemon.state.inside(&dir);

    let (tx, rx) = mpsc::unbounded_channel();
    let drop_rel = state_rel.clone();
    let prefix = dir.clone();
    let handler = move |event: notify::Result<notify::Event>| match event {
        Ok(event) if event.need_rescan() => {
            let _ = tx.send(Notice::Rescan("the kernel dropped change events".into()));
        }
        Ok(event) if super::is_change(event.kind) => {
            for path in event.paths {
                if !excluded(&prefix, drop_rel.as_deref(), &path) {
                    let _ = tx.send(Notice::Path(path));
                }
            }
        }
        Ok(_) => {}
        Err(e) => {
            let _ = tx.send(Notice::Rescan(e.to_string()));
        }
    };
    let config = notify::Config::default().with_follow_symlinks(false);
    let watch_error = |dir: &Path| {
        let dir = dir.to_owned();
        move |source| StartError::Watch { dir, source }
    };
    let watcher = RecommendedWatcher::new(handler, config).map_err(watch_error(&dir))?;

    let mut watch = Watch {
        daemon: Arc::clone(daemon),
        name: w.name.clone(),
        event_type: w.event_type.clone(),
        origin,
        dir,
        state_rel,
        levels: Vec::new(),
        glob,
        kinds: kinds(w),
        debounce: w.debounce.map_or(DEFAULT_DEBOUNCE, |d| d.0),
        watcher,
        known: WatchRecord::default(),
        persist: w.scan_on_start,
        dirty: false,
        changed: false,
        pending: HashMap::new(),
    };
    watch.register().map_err(watch_error(&watch.dir))?;
    // Registered first, scanned second: a change in between is both found and
    // reported, and the two collapse into one pending path.
    watch.first_scan();

    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(watch.run(rx, stopped));
    Ok(Running { stop, task })
}

/// Whether `path` is in the state folder, which lies at `state_rel` under `dir`.
fn excluded(dir: &Path, state_rel: Option<&Path>, path: &Path) -> bool {
    state_rel.is_some_and(|s| path.strip_prefix(dir).is_ok_and(|r| r.starts_with(s)))
}

struct Watch {
    daemon: Arc<Daemon>,
    name: String,
    event_type: String,
    origin: String,
    dir: PathBuf,
    /// Where the state folder lies under `dir`, if it does.
    state_rel: Option<PathBuf>,
    /// The folders on the way down to the state folder, watched one level
    /// deep: a new subfolder of one is watched by the task, not by notify.
    levels: Vec<PathBuf>,
    glob: Option<globset::GlobMatcher>,
    kinds: Vec<Kind>,
    debounce: Duration,
    watcher: RecommendedWatcher,
    /// Every file the watch knows of, as it was when last settled.
    known: WatchRecord,
    /// Whether `known` is kept on disk (`scan_on_start`).
    persist: bool,
    /// `known` changed since it was last saved.
    dirty: bool,
    /// `known` changed since the last attempt to save it: a save that failed
    /// is tried again with the next change, not every second.
    changed: bool,
    /// Paths waiting out their debounce, with when it ends.
    pending: HashMap<PathBuf, Instant>,
}

impl Watch {
    fn register(&mut self) -> notify::Result<()> {
        let Some(state_rel) = self.state_rel.clone() else {
            return self.watcher.watch(&self.dir, RecursiveMode::Recursive);
        };
        let mut level = self.dir.clone();
        for part in state_rel.components() {
            self.watcher.watch(&level, RecursiveMode::NonRecursive)?;
            let towards_state = level.join(part);
            for entry in std::fs::read_dir(&level).into_iter().flatten().flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) && path != towards_state {
                    self.watch_subfolder(&path);
                }
            }
            self.levels.push(level);
            level = towards_state;
        }
        Ok(())
    }

    fn watch_subfolder(&mut self, path: &Path) {
        if let Err(e) = self.watcher.watch(path, RecursiveMode::Recursive) {
            tracing::warn!(
                "{}: cannot watch {}: {e}; changes in it are missed",
                self.origin,
                path.display()
            );
        }
    }

    /// Every regular file under the folder, the state folder left out.
    fn scan(&self) -> BTreeMap<String, (PathBuf, Seen)> {
        let mut found = BTreeMap::new();
        self.scan_into(&self.dir, &mut found);
        found
    }

    fn scan_into(&self, dir: &Path, found: &mut BTreeMap<String, (PathBuf, Seen)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if excluded(&self.dir, self.state_rel.as_deref(), &path) {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => self.scan_into(&path, found),
                Ok(t) if t.is_file() => {
                    if let Ok(meta) = e.metadata() {
                        found.insert(self.rel(&path), (path, Seen::of(&meta)));
                    }
                }
                _ => {}
            }
        }
    }

    fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.dir)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    /// Learns the folder, and with a record from the last run, marks what
    /// changed since as pending.
    fn first_scan(&mut self) {
        let found = self.scan();
        let fresh = |found: BTreeMap<String, (PathBuf, Seen)>, dir: &Path| WatchRecord {
            dir: dir.to_owned(),
            files: found
                .into_iter()
                .map(|(rel, (_, seen))| (rel, seen))
                .collect(),
        };
        if !self.persist {
            if let Err(e) = self.daemon.state.watch_record_forget(&self.name) {
                tracing::warn!("{}: {e}", self.origin);
            }
            self.known = fresh(found, &self.dir);
            return;
        }
        let why_fresh = match self.daemon.state.watch_record(&self.name) {
            Ok(Some(record)) if record.dir == self.dir => {
                self.known = record;
                let changed = self.mark_differences(found);
                if changed > 0 {
                    tracing::info!(
                        "{}: {changed} files changed while autod was down",
                        self.origin
                    );
                }
                return;
            }
            Ok(Some(record)) => format!("the watch's folder was {} before", record.dir.display()),
            Ok(None) => "first start".to_owned(),
            Err(e) => {
                tracing::warn!(
                    "{}: {e}; changes made while autod was down are not delivered",
                    self.origin
                );
                "the record was unreadable".to_owned()
            }
        };
        self.known = fresh(found, &self.dir);
        tracing::info!(
            "{}: {why_fresh}: recorded the {} files in {} as they are, without events; changes from now on become events",
            self.origin,
            self.known.files.len(),
            self.dir.display()
        );
        self.dirty = true;
        self.save();
    }

    /// Marks pending every file that differs from what the watch knows, and
    /// every known file that is gone. Returns how many.
    fn mark_differences(&mut self, found: BTreeMap<String, (PathBuf, Seen)>) -> usize {
        let due = Instant::now() + self.debounce;
        let mut changed = 0;
        for rel in self.known.files.keys() {
            if !found.contains_key(rel) {
                self.pending.insert(self.dir.join(rel), due);
                changed += 1;
            }
        }
        for (rel, (path, seen)) in found {
            if self.known.files.get(&rel) != Some(&seen) {
                self.pending.insert(path, due);
                changed += 1;
            }
        }
        changed
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Notice>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut save_at: Option<Instant> = None;
        loop {
            let next_due = self.pending.values().min().copied();
            tokio::select! {
                message = rx.recv() => match message {
                    Some(message) => self.receive(message),
                    None => break,
                },
                () = sleep_until(next_due), if next_due.is_some() => {
                    let now = Instant::now();
                    let mut due: Vec<(PathBuf, Instant)> = self
                        .pending
                        .iter()
                        .filter(|(_, t)| **t <= now)
                        .map(|(p, t)| (p.clone(), *t))
                        .collect();
                    due.sort_by_key(|(_, t)| *t);
                    for (path, _) in due {
                        self.pending.remove(&path);
                        self.settle_path(&path).await;
                    }
                }
                () = sleep_until(save_at), if save_at.is_some() => {
                    save_at = None;
                    self.save();
                }
                _ = &mut stop => break,
            }
            if self.changed && self.persist && save_at.is_none() {
                save_at = Some(Instant::now() + RECORD_EVERY);
            }
        }
        self.flush(&mut rx).await;
    }

    fn receive(&mut self, message: Notice) {
        match message {
            Notice::Path(path) => {
                // A new subfolder beside the state folder: notify does not
                // watch it (its parent is watched one level deep), so we do.
                if path
                    .parent()
                    .is_some_and(|p| self.levels.iter().any(|l| l == p))
                    && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
                {
                    self.watch_subfolder(&path);
                }
                if self
                    .pending
                    .insert(path.clone(), Instant::now() + self.debounce)
                    .is_none()
                {
                    tracing::debug!(
                        "{}: {} changed; settling for {}",
                        self.origin,
                        self.rel(&path),
                        humantime::format_duration(self.debounce)
                    );
                }
            }
            Notice::Rescan(why) => {
                tracing::warn!(
                    "{}: {why}; comparing the folder with what the watch knows",
                    self.origin
                );
                let found = self.scan();
                self.mark_differences(found);
            }
        }
    }

    /// Everything pending, settled and queued now; then the record saved.
    async fn flush(&mut self, rx: &mut mpsc::UnboundedReceiver<Notice>) {
        while let Ok(message) = rx.try_recv() {
            self.receive(message);
        }
        if !self.pending.is_empty() {
            tracing::info!(
                "{}: settling {} pending change(s) now, before the watch stops",
                self.origin,
                self.pending.len()
            );
        }
        let mut paths: Vec<(PathBuf, Instant)> = self.pending.drain().collect();
        paths.sort_by_key(|(_, t)| *t);
        for (path, _) in paths {
            self.settle_path(&path).await;
        }
        self.save();
    }

    /// Boxed: a folder settles its files through this too, and a publish to
    /// the queue is awaited (see `submit_about`).
    fn settle_path<'a>(
        &'a mut self,
        path: &'a Path,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(self.settle_path_now(path))
    }

    async fn settle_path_now(&mut self, path: &Path) {
        if excluded(&self.dir, self.state_rel.as_deref(), path) {
            return;
        }
        let meta = std::fs::symlink_metadata(path).ok();
        if meta.as_ref().is_some_and(std::fs::Metadata::is_dir) {
            // A folder created or moved in: the files already in it were never
            // reported one by one. They settle with it, so what was reported
            // after the folder is still delivered after it.
            let mut found = BTreeMap::new();
            self.scan_into(path, &mut found);
            for (rel, (file, seen)) in found {
                if self.known.files.get(&rel) != Some(&seen) {
                    self.pending.remove(&file);
                    self.settle_path(&file).await;
                }
            }
            return;
        }
        // Anything but a regular file (a symlink, a socket) is not a file.
        let meta = meta.filter(|m| m.file_type().is_file());
        let rel = self.rel(path);
        let Some(kind) = settle(self.known.files.contains_key(&rel), meta.is_some()) else {
            return;
        };
        let before = match &meta {
            Some(m) => self.known.files.insert(rel.clone(), Seen::of(m)),
            None => self.known.files.remove(&rel),
        };
        self.dirty = true;
        self.changed = true;
        if !self.kinds.contains(&kind) || self.glob.as_ref().is_some_and(|g| !g.is_match(&rel)) {
            return;
        }
        if path.to_str().is_none() {
            // JSON strings are Unicode: a payload `path` made lossily would
            // name a file that does not exist, and the handler would act on it.
            let why = format!(
                "{} has a name that is not UTF-8, so no event can name it exactly and none was made; rename the file",
                path.display()
            );
            tracing::error!("{}: {why}", self.origin);
            let mut line = crate::log::RunLine::new("-", "-", crate::log::RunResult::Rejected);
            line.event_type = Some(self.event_type.clone());
            line.input = Some(self.origin.clone());
            line.file = Some(rel.clone());
            line.error = Some(why);
            self.daemon.generation().engine.log().record(&line);
            return;
        }
        let event = event(
            &self.event_type,
            &self.origin,
            path,
            &rel,
            kind,
            meta.as_ref(),
        );
        if !super::submit_about(&self.daemon, event, &self.origin, Some(&rel)).await {
            // Not queued (the inbox is unwritable, the NATS server down): the
            // watch has not seen it yet, so the record cannot say so, and it
            // is tried again.
            match before {
                Some(seen) => self.known.files.insert(rel, seen),
                None => self.known.files.remove(&rel),
            };
            self.pending
                .insert(path.to_owned(), Instant::now() + QUEUE_RETRY);
        }
    }

    /// Saves the record, if it is kept and changed. A failure is logged and
    /// tried again after the next change: the events are queued already.
    fn save(&mut self) {
        if !(self.persist && self.dirty) {
            return;
        }
        self.changed = false;
        match self.daemon.state.watch_record_save(&self.name, &self.known) {
            Ok(()) => self.dirty = false,
            Err(e) => tracing::error!(
                "{}: cannot save what the watch has seen: {e}; after a restart, changes already delivered may be delivered again",
                self.origin
            ),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn event(
    event_type: &str,
    origin: &str,
    path: &Path,
    rel: &str,
    kind: Kind,
    meta: Option<&std::fs::Metadata>,
) -> Map<String, Value> {
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(crate::time::from_system)
        .map(crate::time::format);
    let payload = payload(
        &path.to_string_lossy(),
        rel,
        kind,
        meta.map(std::fs::Metadata::len),
        mtime,
    );
    let Value::Object(obj) = json!({"eventType": event_type, "source": origin, "payload": payload})
    else {
        unreachable!("a json! object")
    };
    obj
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

    #[test]
    fn only_paths_under_the_state_folder_are_excluded() {
        let dir = Path::new("/p");
        let state = Some(Path::new(".autod"));
        assert!(excluded(dir, state, Path::new("/p/.autod")));
        assert!(excluded(dir, state, Path::new("/p/.autod/out/x/y.txt")));
        assert!(!excluded(dir, state, Path::new("/p/.autod-notes/a.txt")));
        assert!(!excluded(dir, state, Path::new("/p/notes/.autod")));
        assert!(!excluded(dir, None, Path::new("/p/.autod/inbox/e.json")));
    }
}
