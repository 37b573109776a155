//! Events that are claimed but have no outcome yet, and when to try them again.
//!
//! An event in `processing/` is let go only once every pair has a recorded
//! outcome. When autod cannot record one (disk full, state unwritable), cannot
//! read or archive the file, or the project cannot take it right now (its
//! schema is broken, no handler routes its type any more), the file stays in
//! `processing/` and is *stranded*: nothing is working on it. This module keeps
//! track of which names are being worked on, so that a recovery pass can
//! deliver every other file in `processing/` again, and schedules those passes
//! with a backoff while anything is stranded. Start-up recovery is the same
//! pass, run once before the first claim.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The first wait after something is stranded, and the longest.
const FIRST: Duration = Duration::from_secs(1);
const LONGEST: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct Recovery {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Names in `processing/` that a delivery is working on now.
    active: HashSet<String>,
    /// When the next recovery pass is due; `None` while nothing is stranded.
    due: Option<Instant>,
    /// The wait the next strand schedules; doubles while strands continue.
    backoff: Option<Duration>,
    /// Held events and the reason last told, so a reason is told once, not
    /// at every pass.
    held: HashMap<String, String>,
}

impl Recovery {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("recovery lock")
    }

    /// Marks `name` as being worked on; `false` if it already is.
    pub fn begin(&self, name: &str) -> bool {
        self.lock().active.insert(name.to_owned())
    }

    /// Its delivery is over, whatever came of it.
    pub fn end(&self, name: &str) {
        self.lock().active.remove(name);
    }

    pub fn is_active(&self, name: &str) -> bool {
        self.lock().active.contains(name)
    }

    /// Something could not be finished: schedule a recovery pass, sooner the
    /// first time, later while it keeps happening.
    pub fn strand(&self) {
        let mut inner = self.lock();
        let wait = inner.backoff.unwrap_or(FIRST);
        inner.backoff = Some((wait * 2).min(LONGEST));
        let at = Instant::now() + wait;
        inner.due = Some(inner.due.map_or(at, |d| d.min(at)));
    }

    /// A delivery went through: the next strand starts from a short wait again.
    pub fn delivered(&self, name: &str) {
        let mut inner = self.lock();
        inner.backoff = None;
        inner.held.remove(name);
    }

    /// When the next pass is due, if any.
    pub fn due(&self) -> Option<Instant> {
        self.lock().due
    }

    /// Takes the due pass: `true` if one was due by now.
    pub fn take_due(&self) -> bool {
        let mut inner = self.lock();
        match inner.due {
            Some(at) if at <= Instant::now() => {
                inner.due = None;
                true
            }
            _ => false,
        }
    }

    /// A pass is wanted now (a config reload may have fixed held events).
    pub fn now(&self) {
        self.lock().due = Some(Instant::now());
    }

    /// Records `name` as held for `reason`; `true` if that is news (a new
    /// hold, or a new reason), which the caller then tells loudly.
    pub fn hold(&self, name: &str, reason: &str) -> bool {
        let mut inner = self.lock();
        match inner.held.get(name) {
            Some(r) if r == reason => false,
            _ => {
                inner.held.insert(name.to_owned(), reason.to_owned());
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn strands_back_off_and_a_delivery_resets_them() {
        let r = Recovery::default();
        assert!(r.due().is_none());
        let t0 = Instant::now();
        r.strand();
        assert_eq!(r.due(), Some(t0 + FIRST));
        assert!(!r.take_due());
        tokio::time::advance(FIRST).await;
        assert!(r.take_due());
        assert!(r.due().is_none());
        r.strand();
        assert_eq!(r.due(), Some(Instant::now() + 2 * FIRST));
        for _ in 0..10 {
            r.take_due();
            r.strand();
        }
        assert!(r.due().unwrap() <= Instant::now() + LONGEST);
        r.delivered("x");
        let _ = r.take_due();
        tokio::time::advance(LONGEST).await;
        r.take_due();
        r.strand();
        assert_eq!(r.due(), Some(Instant::now() + FIRST));
    }

    #[test]
    fn a_hold_is_news_once_per_reason() {
        let r = Recovery::default();
        assert!(r.hold("a.json", "schema broken"));
        assert!(!r.hold("a.json", "schema broken"));
        assert!(r.hold("a.json", "no handler"));
        r.delivered("a.json");
        assert!(r.hold("a.json", "no handler"));
    }

    #[test]
    fn a_name_is_worked_on_once() {
        let r = Recovery::default();
        assert!(r.begin("a"));
        assert!(!r.begin("a"));
        assert!(r.is_active("a"));
        r.end("a");
        assert!(r.begin("a"));
    }
}
