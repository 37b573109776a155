//! Automatic retries: dead letters in state `waiting` run again when due, with
//! the handler's backoff, until they succeed or are exhausted. The loop sleeps
//! until the earliest `nextAttemptAt`, or until a record changes on disk.
//!
//! No record waits longer than its handler's `retry.max` from now, whatever its
//! `nextAttemptAt` says: a clock that ran ahead and was set back must not park
//! a pair for the length of the step.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::Daemon;
use crate::engine::Mode;
use crate::event::Event;
use crate::state::dead::{DeadLetter, DeadState};
use crate::time;

/// Wakes the retry loop when a dead letter is written by anyone.
pub fn watch_dead(daemon: &Arc<Daemon>) -> anyhow::Result<notify::RecommendedWatcher> {
    let dir = daemon.state.ensure("dead")?;
    let d = Arc::clone(daemon);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| e.kind.is_create() || e.kind.is_modify()) {
            d.retry_wake.notify_one();
        }
    })?;
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    Ok(watcher)
}

pub async fn run(daemon: Arc<Daemon>) {
    let running: Arc<Mutex<HashSet<(String, String)>>> = Arc::default();
    let mut pulled_in = PulledIn::default();
    let mut stopping = daemon.stopping();
    loop {
        if *stopping.borrow() {
            return;
        }
        let generation = daemon.generation();
        let now = time::now();
        let mut next: Option<time::Timestamp> = None;
        let mut seen = HashSet::new();
        for record in daemon.state.dead_list().into_iter().flatten() {
            let Some(handler) = generation.engine.handler(&record.handler) else {
                continue;
            };
            if record.state != DeadState::Waiting {
                continue;
            }
            let pair = (record.handler.clone(), record.event_id.clone());
            seen.insert(pair.clone());
            if running.lock().expect("running lock").contains(&pair)
                || daemon
                    .queue_pairs
                    .lock()
                    .expect("queue pairs lock")
                    .contains(&pair)
            {
                continue;
            }
            let due = pulled_in.due(&record, handler.retry.max.0, now);
            if due > now {
                next = Some(next.map_or(due, |n| n.min(due)));
                continue;
            }
            let Some(event) = Event::from_trusted(record.event.clone()) else {
                tracing::error!(
                    "dead letter {} {}: its event is unreadable; see `autod dead show`",
                    record.handler,
                    record.event_id
                );
                continue;
            };
            running.lock().expect("running lock").insert(pair.clone());
            let guard = daemon.in_flight.enter();
            let engine = Arc::clone(&generation.engine);
            let running = Arc::clone(&running);
            let daemon = Arc::clone(&daemon);
            tokio::spawn(async move {
                let _guard = guard;
                // Through `deliver`, so that a bug that ends the pair's task is
                // recorded as a failure and the pair is not left marked running.
                engine
                    .deliver(Arc::new(event), vec![pair.0.clone()], Mode::Automatic)
                    .await;
                running.lock().expect("running lock").remove(&pair);
                // Its new record was skipped while it ran: look again.
                daemon.retry_wake.notify_one();
            });
        }
        pulled_in.forget_all_but(&seen);
        drop(generation);
        let wait = next.map(|t| time::since(time::now(), t).unwrap_or(Duration::ZERO));
        tokio::select! {
            () = daemon.retry_wake.notified() => {
                // Writes come in bursts (one per failed run): let them settle.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            () = sleep_or_forever(wait) => {}
            () = super::stopped(&mut stopping) => return,
        }
    }
}

/// Due times the loop moved earlier than a record says, remembered (per
/// record version: its `nextAttemptAt` text) so that "now + retry.max" is
/// fixed once rather than sliding ahead with the clock on every pass.
#[derive(Default)]
struct PulledIn {
    at: HashMap<(String, String), (Option<String>, time::Timestamp)>,
}

impl PulledIn {
    /// When `record` is due. A waiting record is never due later than
    /// `retry.max` from now: a `nextAttemptAt` beyond that was written by a
    /// clock that ran ahead (and was set back since), or before retry.max was
    /// lowered, and waiting for it would stall the pair for as long. An
    /// unreadable one waits retry.max after the last failure (see
    /// [`DeadLetter::due_at`]). Each is said once.
    fn due(&mut self, record: &DeadLetter, max: Duration, now: time::Timestamp) -> time::Timestamp {
        let key = (record.handler.clone(), record.event_id.clone());
        if let Some((version, at)) = self.at.get(&key)
            && *version == record.next_attempt_at
        {
            return *at;
        }
        let written = record.due_at(max).unwrap_or(now);
        let latest = time::add(now, max);
        let at = if record.next_attempt_unreadable() {
            tracing::warn!(
                "dead letter {} {}: nextAttemptAt {:?} is not a time; retrying it at {}, retry.max ({}) after its last failure",
                record.handler,
                record.event_id,
                record.next_attempt_at.as_deref().unwrap_or(""),
                time::format(written.min(latest)),
                crate::config::duration_text(max)
            );
            written.min(latest)
        } else if written > latest {
            tracing::warn!(
                "dead letter {} {}: nextAttemptAt {} is further ahead than retry.max ({}) from now ({}): the clock was probably set back; retrying it at {}",
                record.handler,
                record.event_id,
                time::format(written),
                crate::config::duration_text(max),
                time::format(now),
                time::format(latest)
            );
            latest
        } else {
            return written;
        };
        self.at.insert(key, (record.next_attempt_at.clone(), at));
        at
    }

    fn forget_all_but(&mut self, seen: &HashSet<(String, String)>) {
        self.at.retain(|k, _| seen.contains(k));
    }
}

pub(super) async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
