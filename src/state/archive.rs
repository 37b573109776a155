//! `.autod/archive/`: every accepted event, kept for replay (SPEC 14).
//!
//! ```text
//! archive/2026-11-30.jsonl          a finished day, compacted: one event a line
//! archive/2026-12-01/<eventId>.json  the current day (and any per-event file a
//!                                    handler reads as AUTOD_EVENT_FILE)
//! archive/<eventId>.json             the flat layout of earlier builds: read by
//!                                    replay, moved into its day by compaction
//! ```
//!
//! The day is the UTC day of the event's `ts`, so a replay window or a
//! retention cut touches only the days it names, never every file of every
//! day. Accepting an event costs what it always did: one file written
//! atomically and not fsync'd, because the archive is a copy (the record of
//! acceptance is the caller's file or processing/). Compaction, which runs
//! off the hot path (`autod archive prune`, the daemon daily), is durable.
//!
//! This module does not decide which archived events are replayed or how:
//! it hands back events and the places it could not read.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::{Context, Result, StateDir, atomic};
use crate::event::Event;
use crate::time::{self, Timestamp};

/// A per-event file older than this is rewritten when a handler is about to
/// read it, so that its age tells compaction whether a run may still be
/// reading it (see [`StateDir::archive_maintain`]).
pub const REFRESH: Duration = Duration::from_secs(3600);

/// One archived event as read back, or why it could not be.
#[derive(Debug)]
pub enum Entry {
    Event(Box<Event>),
    /// A line or file that is not an archived event (torn, hand-edited, an
    /// eventId autod would never accept): `place` names it for a person.
    Unreadable {
        place: String,
        why: String,
    },
}

/// What [`StateDir::archive_maintain`] did, or would do on a dry run.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Maintenance {
    /// Days past retention, removed, with how many events each held.
    pub removed: Vec<DayCount>,
    /// Finished days written into their `.jsonl`.
    pub compacted: Vec<DayCount>,
    /// Flat files of earlier builds moved into their day.
    pub migrated: usize,
    /// Per-event files kept because a handler may still be reading them.
    pub kept_in_use: usize,
    /// Files left in place because they are not archived events.
    pub unreadable: Vec<String>,
}

impl Maintenance {
    /// What was done, for people: one line per day touched, and a summary.
    pub fn describe(&self, dry_run: bool) -> Vec<String> {
        let done = self;
        let (removed, compacted) = if dry_run {
            ("would remove", "would compact")
        } else {
            ("removed", "compacted")
        };
        let mut lines: Vec<String> = done
            .removed
            .iter()
            .map(|d| format!("{removed} {} ({} events, past retention)", d.day, d.events))
            .chain(
                done.compacted
                    .iter()
                    .map(|d| format!("{compacted} {} ({} events)", d.day, d.events)),
            )
            .collect();
        if done.migrated > 0 {
            lines.push(format!(
                "{} {} archived files of an earlier autod into their day",
                if dry_run { "would move" } else { "moved" },
                done.migrated
            ));
        }
        if done.kept_in_use > 0 {
            lines.push(format!(
                "kept {} per-event files a handler may still be reading; the next prune takes them",
                done.kept_in_use
            ));
        }
        for place in &done.unreadable {
            lines.push(format!(
                "left {place} in place: it is not an archived event (look at it, then delete it)"
            ));
        }
        if lines.is_empty() {
            lines.push("nothing to prune or compact".to_owned());
        }
        lines
    }
}

#[derive(Debug, serde::Serialize)]
pub struct DayCount {
    pub day: String,
    pub events: usize,
}

/// What the archive folder holds for one day.
#[derive(Debug, Default)]
struct DayParts {
    compacted: bool,
    folder: bool,
    /// Flat files of earlier builds whose event falls on this day.
    legacy: Vec<PathBuf>,
}

/// One day's entries, by (ts in ms, eventId or place), each with its line of
/// the compacted file when it came from one (kept byte for byte on
/// compaction).
type DayEntries = BTreeMap<(i64, String), (Option<Vec<u8>>, Entry)>;

/// The UTC day an event is filed under: that of its `ts`, which every
/// accepted event has; today for one whose `ts` does not parse (only a
/// hand-edited state file can have that).
pub fn day_of(event: &Event) -> time::Day {
    event
        .fields()
        .get("ts")
        .and_then(Value::as_str)
        .and_then(time::parse)
        .map_or_else(|| time::utc_day(time::now()), time::utc_day)
}

fn day_name(day: time::Day) -> String {
    time::format_day(day)
}

fn parse_day(name: &str) -> Option<time::Day> {
    time::parse_day(name)
}

impl StateDir {
    fn archive_dir(&self) -> PathBuf {
        self.dir.join("archive")
    }

    fn archive_path(&self, event: &Event) -> PathBuf {
        self.archive_dir()
            .join(day_name(day_of(event)))
            .join(format!("{}.json", event.id()))
    }

    /// Stores an accepted event; the path is the handler's AUTOD_EVENT_FILE.
    ///
    /// The archive is a copy, not the record of acceptance: that is the caller's
    /// own file for `dispatch`, the processing/ file for the daemon, and the dead
    /// letter for a failed pair, all durable. So it is written atomically but not
    /// fsync'd, which keeps two disk flushes off every event's path.
    pub fn archive(&self, event: &Event) -> Result<PathBuf> {
        let path = self.archive_path(event);
        self.make_dir(path.parent().expect("inside archive/"), false)?;
        atomic::write_fast(&path, &event.to_json()).at(&path)?;
        Ok(path)
    }

    /// The archived copy of an event, for AUTOD_EVENT_FILE; rewritten from `event`
    /// if compaction, retention (or a crash) removed or emptied it, or if it is
    /// older than [`REFRESH`], so that compaction leaves it alone while the
    /// handler runs.
    pub fn event_file(&self, event: &Event) -> Result<PathBuf> {
        let path = self.archive_path(event);
        // symlink_metadata: a planted link is not an archived event; it is
        // replaced (by rename) with the real one.
        let fresh = fs::symlink_metadata(&path).is_ok_and(|m| {
            m.is_file()
                && m.len() > 0
                && m.modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age < REFRESH)
        });
        if fresh { Ok(path) } else { self.archive(event) }
    }

    /// Every archived event of the UTC days `from..=to`, oldest day first,
    /// each day's events in `ts` order; an eventId appears once.
    pub fn archive_read(&self, from: time::Day, to: time::Day) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for (day, parts) in self.archive_days()?.range(from..=to) {
            out.extend(self.read_day(*day, parts)?.into_values().map(|(_, e)| e));
        }
        Ok(out)
    }

    /// Applies the retention (days that ended before `now - retention` are
    /// removed), then compacts every finished day into its `.jsonl`.
    ///
    /// A per-event file that a handler may still be reading stays beside the
    /// compacted copy: one younger than [`REFRESH`] plus `longest_run` (the
    /// longest a handler may run, timeout and kill grace), since a run
    /// refreshes an older file before it starts. With `dry_run`, only says
    /// what it would do.
    pub fn archive_maintain(
        &self,
        now: Timestamp,
        retention: Duration,
        longest_run: Duration,
        dry_run: bool,
    ) -> Result<Maintenance> {
        let in_use = REFRESH.saturating_add(longest_run);
        let mut done = Maintenance::default();
        let dir = self.archive_dir();
        if !dir.exists() {
            return Ok(done);
        }
        self.check_path(&dir)?;
        let cutoff = time::sub(now, retention);
        let today = time::utc_day(now);
        for (day, parts) in self.archive_days()? {
            let ended = time::end_of_day(day);
            if ended.is_some_and(|end| end <= cutoff) {
                let events = self.read_day(day, &parts)?.len();
                if !dry_run {
                    done.kept_in_use += self.remove_day(day, &parts, in_use)?;
                }
                done.removed.push(DayCount {
                    day: day_name(day),
                    events,
                });
            } else if day < today {
                if parts.folder || !parts.legacy.is_empty() {
                    self.compact_day(day, &parts, in_use, dry_run, &mut done)?;
                }
            } else if !parts.legacy.is_empty() {
                // Not finished: the day's folder is where its files belong.
                for from in &parts.legacy {
                    let to = dir
                        .join(day_name(day))
                        .join(from.file_name().expect("a file"));
                    if !dry_run {
                        self.make_dir(to.parent().expect("inside archive/"), true)?;
                        atomic::rename(from, &to).at(from)?;
                    }
                    done.migrated += 1;
                }
            }
        }
        Ok(done)
    }

    /// What `archive/` holds, by day. Flat files of earlier builds are read
    /// to find their day: only until the first compaction moves them.
    fn archive_days(&self) -> Result<BTreeMap<time::Day, DayParts>> {
        let dir = self.archive_dir();
        let mut days: BTreeMap<time::Day, DayParts> = BTreeMap::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(days),
            Err(e) => return Err(e).at(&dir),
        };
        for entry in entries {
            let entry = entry.at(&dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue; // a writer's temp file
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if let Some(day) = parse_day(name) {
                    days.entry(day).or_default().folder = true;
                }
            } else if !kind.is_file() {
                continue; // a link is not followed
            } else if let Some(day) = name.strip_suffix(".jsonl").and_then(parse_day) {
                days.entry(day).or_default().compacted = true;
            } else if name.ends_with(".json") {
                let path = entry.path();
                // Unreadable flat files are reported by the day they land on
                // (today), which is where replay and compaction look.
                let day = read_event_file(&path)
                    .ok()
                    .map_or_else(|| time::utc_day(time::now()), |e| day_of(&e));
                days.entry(day).or_default().legacy.push(path);
            }
        }
        Ok(days)
    }

    /// One day's events by (ts, eventId): the compacted file first, then the
    /// per-event files (a rewrite of an event already compacted is the same
    /// event). Places that hold no event are keyed after every event.
    fn read_day(&self, day: time::Day, parts: &DayParts) -> Result<DayEntries> {
        let dir = self.archive_dir();
        let mut seen = HashSet::new();
        let mut out = BTreeMap::new();
        let mut add = |place: String,
                       got: std::result::Result<Event, String>,
                       raw: Option<Vec<u8>>| {
            match got {
                Ok(event) => {
                    if seen.insert(event.id().to_owned()) {
                        let ts = event
                            .fields()
                            .get("ts")
                            .and_then(Value::as_str)
                            .and_then(time::parse)
                            .map_or(i64::MIN, time::unix_millis);
                        out.insert(
                            (ts, event.id().to_owned()),
                            (raw, Entry::Event(Box::new(event))),
                        );
                    }
                }
                Err(why) => {
                    out.insert(
                        (i64::MAX, place.clone()),
                        (None, Entry::Unreadable { place, why }),
                    );
                }
            }
        };
        let name = day_name(day);
        if parts.compacted {
            let path = dir.join(format!("{name}.jsonl"));
            self.check_path(&path)?;
            let file = fs::File::open(&path).at(&path)?;
            for (i, line) in io::BufReader::new(file).lines().enumerate() {
                let line = line.at(&path)?;
                if line.trim().is_empty() {
                    continue;
                }
                let place = format!("archive/{name}.jsonl:{}", i + 1);
                let got = parse_event(line.as_bytes());
                add(place, got, Some(line.into_bytes()));
            }
        }
        let mut files = Vec::new();
        if parts.folder {
            let folder = dir.join(&name);
            self.check_path(&folder)?;
            for entry in fs::read_dir(&folder).at(&folder)? {
                let entry = entry.at(&folder)?;
                let n = entry.file_name();
                let is_event = n
                    .to_str()
                    .is_some_and(|n| !n.starts_with('.') && n.ends_with(".json"));
                if is_event && entry.file_type().is_ok_and(|t| t.is_file()) {
                    files.push(entry.path());
                }
            }
        }
        files.extend(parts.legacy.iter().cloned());
        files.sort();
        for path in files {
            let place = path
                .strip_prefix(self.path())
                .unwrap_or(&path)
                .display()
                .to_string();
            add(place, read_event_file(&path), None);
        }
        Ok(out)
    }

    /// Writes a finished day into `<day>.jsonl` (durably: from then on it is
    /// the only copy) and removes the per-event files it now holds.
    fn compact_day(
        &self,
        day: time::Day,
        parts: &DayParts,
        in_use: Duration,
        dry_run: bool,
        done: &mut Maintenance,
    ) -> Result<()> {
        let entries = self.read_day(day, parts)?;
        let mut body = Vec::new();
        let mut events = 0;
        for (raw, entry) in entries.values() {
            match entry {
                Entry::Event(event) => {
                    events += 1;
                    match raw {
                        Some(line) => body.extend_from_slice(line),
                        None => body.extend_from_slice(&event.to_json()),
                    }
                    body.push(b'\n');
                }
                // A line of the compacted file that is not an event is
                // dropped with it (it was reported); a file stays put.
                Entry::Unreadable { place, .. } if !place.contains(".jsonl:") => {
                    done.unreadable.push(place.clone());
                }
                Entry::Unreadable { .. } => {}
            }
        }
        let dir = self.archive_dir();
        let name = day_name(day);
        let target = dir.join(format!("{name}.jsonl"));
        done.compacted.push(DayCount {
            day: name.clone(),
            events,
        });
        if dry_run {
            return Ok(());
        }
        atomic::write(&target, &body).at(&target)?;
        done.migrated += parts.legacy.len();
        let unreadable: HashSet<&String> = done.unreadable.iter().collect();
        let in_use_since = SystemTime::now().checked_sub(in_use);
        let folder = dir.join(&name);
        let mut files: Vec<PathBuf> = parts.legacy.clone();
        if parts.folder {
            for entry in fs::read_dir(&folder).at(&folder)?.flatten() {
                files.push(entry.path());
            }
        }
        for path in files {
            let place = path
                .strip_prefix(self.path())
                .unwrap_or(&path)
                .display()
                .to_string();
            if unreadable.contains(&place) {
                continue;
            }
            if in_use_since.is_some_and(|since| modified_after(&path, since)) {
                done.kept_in_use += 1;
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).at(&path),
            }
        }
        if parts.folder {
            // Only when empty: a file kept above keeps its folder.
            let _ = fs::remove_dir(&folder);
        }
        atomic::sync_dir(&dir).at(&dir)
    }

    /// Removes a day past retention, except per-event files a handler may
    /// still be reading (an event that old can still be retried): returns
    /// how many were kept, with their folder, for the next pass.
    fn remove_day(&self, day: time::Day, parts: &DayParts, in_use: Duration) -> Result<usize> {
        let dir = self.archive_dir();
        let name = day_name(day);
        let mut paths: Vec<PathBuf> = parts.legacy.clone();
        if parts.compacted {
            paths.push(dir.join(format!("{name}.jsonl")));
        }
        for path in paths {
            self.check_path(&path)?;
            atomic::remove(&path).at(&path)?;
        }
        let mut kept = 0;
        if parts.folder {
            let folder = dir.join(&name);
            self.check_path(&folder)?;
            let in_use_since = SystemTime::now().checked_sub(in_use);
            for entry in fs::read_dir(&folder).at(&folder)?.flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue; // not autod's: left, with its folder
                }
                if in_use_since.is_some_and(|since| modified_after(&path, since)) {
                    kept += 1;
                    continue;
                }
                // Not followed: a link inside is removed, never its target.
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).at(&path),
                }
            }
            // Only when empty: a file kept above keeps its folder.
            let _ = fs::remove_dir(&folder);
            atomic::sync_dir(&dir).at(&dir)?;
        }
        Ok(kept)
    }
}

/// Whether `path` (not followed) was written after `since`.
fn modified_after(path: &Path, since: SystemTime) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|modified| modified > since)
}

fn read_event_file(path: &Path) -> std::result::Result<Event, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    parse_event(&bytes)
}

fn parse_event(bytes: &[u8]) -> std::result::Result<Event, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
    Event::from_trusted(value).ok_or_else(|| {
        "not an event autod accepted (an eventId or causationId outside the allowed characters, or no source)".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, ts: &str) -> Event {
        Event::from_trusted(serde_json::json!({
            "eventType": "x", "eventId": id, "source": "cli", "ts": ts, "payload": {}
        }))
        .unwrap()
    }

    fn ids(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                Entry::Event(e) => e.id().to_owned(),
                Entry::Unreadable { place, .. } => format!("! {place}"),
            })
            .collect()
    }

    #[test]
    fn days_are_filed_compacted_and_pruned() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path());
        let day = |s: &str| time::parse_day(s).unwrap();
        let p = state.archive(&event("b", "2026-11-29T10:00:00Z")).unwrap();
        assert!(p.ends_with("archive/2026-11-29/b.json"), "{p:?}");
        state.archive(&event("a", "2026-11-29T09:00:00Z")).unwrap();
        state
            .archive(&event("c", "2026-11-30T23:59:59+05:00"))
            .unwrap();
        // A flat file of an earlier build.
        fs::write(
            d.path().join(".autod/archive/old.json"),
            event("old", "2026-11-29T11:00:00Z").to_json(),
        )
        .unwrap();
        let all = state
            .archive_read(day("2026-11-01"), day("2026-12-31"))
            .unwrap();
        assert_eq!(ids(&all), ["a", "b", "old", "c"]);

        // Written long enough ago that no handler can be reading them.
        let dir = d.path().join(".autod/archive");
        let old = SystemTime::now() - REFRESH * 2;
        for p in [
            dir.join("old.json"),
            dir.join("2026-11-29/a.json"),
            dir.join("2026-11-29/b.json"),
        ] {
            fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let now = time::parse("2026-12-01T08:00:00Z").unwrap();
        let thirty = Duration::from_secs(30 * 86400);
        let done = state
            .archive_maintain(now, thirty, Duration::ZERO, false)
            .unwrap();
        assert_eq!(done.compacted.len(), 2, "{done:?}");
        assert_eq!(done.migrated, 1);
        // c was written just now: a handler may be reading it.
        assert_eq!(done.kept_in_use, 1);
        assert!(dir.join("2026-11-30/c.json").is_file());
        assert!(dir.join("2026-11-29.jsonl").is_file());
        assert!(!dir.join("2026-11-29").exists());
        assert!(!dir.join("old.json").exists());
        let all = state
            .archive_read(day("2026-11-01"), day("2026-12-31"))
            .unwrap();
        assert_eq!(ids(&all), ["a", "b", "old", "c"]);

        // Retention: 2026-11-29 ended before now - 1d - 9h.
        let later = time::parse("2026-12-01T09:00:01Z").unwrap();
        let done = state
            .archive_maintain(later, Duration::from_secs(33 * 3600), Duration::ZERO, false)
            .unwrap();
        assert_eq!(done.removed.len(), 1, "{done:?}");
        assert_eq!(done.removed[0].events, 3);
        let all = state
            .archive_read(day("2026-11-01"), day("2026-12-31"))
            .unwrap();
        assert_eq!(ids(&all), ["c"]);
    }
}
