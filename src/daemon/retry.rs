//! Automatic retries: dead letters in state `waiting` run again when due, with
//! the handler's backoff, until they succeed or are exhausted. The loop sleeps
//! until the earliest `nextAttemptAt`, or until a record changes on disk.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::Daemon;
use crate::event::Event;
use crate::state::dead::DeadState;
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
    let mut stopping = daemon.stopping();
    loop {
        if *stopping.borrow() {
            return;
        }
        let generation = daemon.generation();
        let now = time::now();
        let mut next: Option<time::Timestamp> = None;
        for record in daemon.state.dead_list().into_iter().flatten() {
            if record.state != DeadState::Waiting
                || generation.engine.handler(&record.handler).is_none()
            {
                continue;
            }
            let pair = (record.handler.clone(), record.event_id.clone());
            if running.lock().expect("running lock").contains(&pair) {
                continue;
            }
            if !record.is_due(now) {
                let at = record.next_attempt_at.as_deref().and_then(time::parse);
                next = match (next, at) {
                    (Some(n), Some(a)) => Some(n.min(a)),
                    (n, a) => n.or(a),
                };
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
                engine.run_pair(&event, &pair.0, false).await;
                running.lock().expect("running lock").remove(&pair);
                // Its new record was skipped while it ran: look again.
                daemon.retry_wake.notify_one();
            });
        }
        drop(generation);
        let wait = next.map(|t| (t - time::now()).to_std().unwrap_or(Duration::ZERO));
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

pub(super) async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
