//! Everything under `.autod/` (SPEC §6). No other module knows this layout.
//!
//! ```text
//! .autod/archive/<day>/<eventId>.json    accepted events (AUTOD_EVENT_FILE, replay),
//! .autod/archive/<day>.jsonl             compacted once the day is over (see `archive.rs`)
//! .autod/done/<eventId>.<handler>.ok     a pair that succeeded: never run again
//! .autod/done/<eventId>.<handler>.lock   held (flock) while the pair runs; names its run
//! .autod/dead/<handler>/<eventId>.json   a pair that failed (see `dead.rs`)
//! .autod/out/<eventId>/<handler>/        the handler's artifacts (AUTOD_OUTPUT_DIR)
//! .autod/log/autod.log                   the run log (see `log.rs`)
//! .autod/inbox/ processing/ rejected/    the daemon's intake
//! ```
//!
//! Every folder is created 0700 and every file 0600: events can hold anything.

pub mod archive;
pub mod atomic;
pub mod census;
pub mod daemon_lock;
pub mod dead;
pub mod inbox;
mod pairs;
pub mod watches;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use pairs::PairLock;

pub const DIR_NAME: &str = ".autod";

/// An I/O failure on autod's own state; the message names the path.
#[derive(Debug, thiserror::Error)]
#[error("state {path}: {source}")]
pub struct StateError {
    pub path: PathBuf,
    // Not `#[source]`: the message already says it, and error chains
    // (`{:#}`) would say it twice.
    pub source: io::Error,
}

pub type Result<T> = std::result::Result<T, StateError>;

pub(crate) trait Context<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| StateError {
            path: path.to_owned(),
            source,
        })
    }
}

/// The `.autod/` folder of one project root.
///
/// No symlink inside it is followed when autod writes: every folder it
/// creates or writes into is checked component by component (see
/// [`atomic::create_dir_below`]), and the run log and lock files are opened
/// with `O_NOFOLLOW`. `.autod` itself may be a link only when
/// `[state] allow_symlink = true` says it was made on purpose.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
    allow_symlink: bool,
}

/// What [`StateDir::open`] looks at: the folders autod writes into and the
/// run log. A link at any of them is refused before anything runs.
const CHECKED_AT_OPEN: &[&str] = &[
    "archive",
    "dead",
    "done",
    "inbox",
    "inbox/tmp",
    "processing",
    "rejected",
    "schedules",
    "watches",
    "out",
    "log",
    "log/autod.log",
    "daemon.lock",
];

impl StateDir {
    /// The state folder of `root`, unchecked; `.autod` must not be a link.
    pub fn new(root: &Path) -> StateDir {
        StateDir {
            dir: root.join(DIR_NAME),
            allow_symlink: false,
        }
    }

    /// The state folder of `root`, refused (a config-level error, exit 2)
    /// if `.autod` is a symlink without `allow_symlink`, or if a link sits
    /// where one of autod's folders or its run log goes.
    pub fn open(root: &Path, allow_symlink: bool) -> Result<StateDir> {
        let state = StateDir {
            dir: root.join(DIR_NAME),
            allow_symlink,
        };
        if !state.check_base().at(&state.dir)? {
            return Ok(state);
        }
        for sub in CHECKED_AT_OPEN {
            let p = state.dir.join(sub);
            if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(atomic::link_refused(&p)).at(&p);
            }
        }
        Ok(state)
    }

    /// Checks `.autod` itself; `Ok(false)` when it does not exist yet.
    fn check_base(&self) -> io::Result<bool> {
        match fs::symlink_metadata(&self.dir) {
            Ok(m) if m.is_dir() => Ok(true),
            Ok(m) if m.file_type().is_symlink() => {
                if !self.allow_symlink {
                    let target = fs::read_link(&self.dir)
                        .map(|t| format!(" (to {})", t.display()))
                        .unwrap_or_default();
                    return Err(io::Error::other(format!(
                        "the state folder is a symbolic link{target}; autod does not follow it unless told to, since a planted link sends every state write elsewhere. Remove it, or if you made it on purpose, set `allow_symlink = true` under [state] in autod.toml"
                    )));
                }
                match fs::metadata(&self.dir) {
                    Ok(m) if m.is_dir() => Ok(true),
                    Ok(_) => Err(io::Error::other(
                        "the state folder's link does not point to a folder",
                    )),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Err(io::Error::other(
                        "the state folder's link points to nothing; create its target folder (mode 0700) or remove the link",
                    )),
                    Err(e) => Err(e),
                }
            }
            Ok(_) => Err(io::Error::other(
                "the state folder is not a folder; move it away and autod makes one",
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates the folder `p` inside `.autod/` (and `.autod/` itself)
    /// privately if missing, refusing symlinked components.
    fn make_dir(&self, p: &Path, durable: bool) -> Result<()> {
        if !self.check_base().at(&self.dir)? {
            atomic::create_dir_below(self.dir.parent().unwrap_or(Path::new("/")), &self.dir, true)
                .at(&self.dir)?;
        }
        atomic::create_dir_below(&self.dir, p, durable).at(p)
    }

    /// Fails if something on the way to `p` inside `.autod/` is a symlink:
    /// for removals, which would act on whatever the link points to.
    pub(crate) fn check_path(&self, p: &Path) -> Result<()> {
        self.check_base().at(&self.dir)?;
        atomic::check_below(&self.dir, p).at(p)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("log")
    }

    pub fn dead_dir(&self) -> PathBuf {
        self.dir.join("dead")
    }

    pub fn inbox_dir(&self) -> PathBuf {
        self.dir.join("inbox")
    }

    pub fn processing_dir(&self) -> PathBuf {
        self.dir.join("processing")
    }

    fn pair_paths(&self, event_id: &str, handler: &str) -> pairs::PairPaths {
        pairs::PairPaths::new(&self.dir.join("done"), event_id, handler)
    }

    /// Creates `.autod/<sub>` (and `.autod/` itself) privately if missing.
    pub fn ensure(&self, sub: &str) -> Result<PathBuf> {
        let p = if sub.is_empty() {
            self.dir.clone()
        } else {
            self.dir.join(sub)
        };
        self.make_dir(&p, true)?;
        Ok(p)
    }

    /// The handler's own artifacts folder for this event, created on demand
    /// (not synced: the artifacts are the handler's business).
    pub fn out_dir(&self, event_id: &str, handler: &str) -> Result<PathBuf> {
        let p = self.out_path(event_id, handler);
        self.make_dir(&p, false)?;
        Ok(p)
    }

    fn out_path(&self, event_id: &str, handler: &str) -> PathBuf {
        self.dir.join("out").join(event_id).join(handler)
    }

    /// Keeps what a run printed, so a successful run's output can be read
    /// later (`autod log --output`): `.stdout.N` / `.stderr.N` for attempt N
    /// in its artifacts folder, at most the runner's tail of each, and only
    /// streams that said something (a quiet handler costs no files). Not
    /// synced: it is for people, never part of an outcome.
    pub fn keep_output(
        &self,
        event_id: &str,
        handler: &str,
        attempt: u32,
        stdout: &[u8],
        stderr: &[u8],
    ) -> Result<()> {
        for (stream, bytes) in [(Stream::Stdout, stdout), (Stream::Stderr, stderr)] {
            if bytes.is_empty() {
                continue;
            }
            let path = self.output_path(event_id, handler, attempt, stream);
            self.make_dir(path.parent().expect("inside out/"), false)?;
            atomic::write_fast(&path, bytes).at(&path)?;
        }
        Ok(())
    }

    /// What attempt `attempt` of the pair printed on `stream`, if it was kept.
    pub fn kept_output(
        &self,
        event_id: &str,
        handler: &str,
        attempt: u32,
        stream: Stream,
    ) -> Option<Vec<u8>> {
        let path = self.output_path(event_id, handler, attempt, stream);
        self.check_path(&path).ok()?;
        std::fs::read(path).ok()
    }

    fn output_path(&self, event_id: &str, handler: &str, attempt: u32, stream: Stream) -> PathBuf {
        self.out_path(event_id, handler)
            .join(format!(".{}.{attempt}", stream.as_str()))
    }

    /// Where a run writes its follow-up events (AUTOD_EMIT, SPEC §8), inside
    /// its artifacts folder: one file per attempt, so a retry starts empty.
    pub fn emit_path(&self, event_id: &str, handler: &str, attempt: u32) -> PathBuf {
        self.out_path(event_id, handler)
            .join(format!(".emit.{attempt}.jsonl"))
    }

    /// Blocks until this process owns the (event, handler) pair. Call from a
    /// blocking thread.
    pub fn lock_pair(&self, event_id: &str, handler: &str) -> Result<PairLock> {
        self.ensure("done")?;
        PairLock::acquire(self.pair_paths(event_id, handler))
    }

    /// The pair, if no other process owns it right now; never waits.
    pub fn try_lock_pair(&self, event_id: &str, handler: &str) -> Result<Option<PairLock>> {
        self.ensure("done")?;
        PairLock::try_acquire(self.pair_paths(event_id, handler))
    }

    /// The (eventId, handler) of every pair with a lock file: those that
    /// have not succeeded, among them any whose run a dead autod left.
    pub fn locked_pairs(&self) -> Vec<(String, String)> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("done")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let (event_id, handler) = name.strip_suffix(".lock")?.rsplit_once('.')?;
                Some((event_id.to_owned(), handler.to_owned()))
            })
            .collect()
    }
}

impl StateDir {
    /// Whether the pair already succeeded, without taking its lock (for display).
    pub fn pair_succeeded(&self, event_id: &str, handler: &str) -> bool {
        pairs::succeeded(&self.dir.join("done"), event_id, handler)
    }
}

impl StateDir {
    /// When a schedule last fired (`.autod/schedules/<name>.json`).
    pub fn schedule_last_fire(&self, name: &str) -> Option<crate::time::Timestamp> {
        let bytes = std::fs::read(self.dir.join("schedules").join(format!("{name}.json"))).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        crate::time::parse(v.get("lastFire")?.as_str()?)
    }

    pub fn schedule_set_last_fire(&self, name: &str, at: crate::time::Timestamp) -> Result<()> {
        let dir = self.ensure("schedules")?;
        let path = dir.join(format!("{name}.json"));
        let body = serde_json::json!({"version": 1, "lastFire": crate::time::format(at)});
        atomic::write(&path, body.to_string().as_bytes()).at(&path)
    }
}

/// A handler's output stream, as kept by [`StateDir::keep_output`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}
