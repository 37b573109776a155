//! The inbox consumer: claim, validate, deliver, finish; and start-up recovery.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use notify::{RecursiveMode, Watcher};

use super::{Daemon, KeyChains};
use crate::intake;
use crate::log::{RunLine, RunResult};
use crate::state::inbox::Claimed;

/// Wakes the consumer whenever something changes in the inbox folder.
pub fn watch_inbox(daemon: &Arc<Daemon>) -> anyhow::Result<notify::RecommendedWatcher> {
    let dir = daemon.state.ensure("inbox")?;
    daemon.state.ensure("inbox/tmp")?;
    let d = Arc::clone(daemon);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // An error (a lost event, a queue overflow) may hide a new file: look.
        if event.map_or(true, |e| super::is_change(e.kind)) {
            d.inbox_wake.notify_one();
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

pub async fn run(daemon: Arc<Daemon>) {
    let chains = KeyChains::default();
    let mut stopping = daemon.stopping();
    match daemon.state.processing_recover() {
        Ok(files) => {
            if !files.is_empty() {
                tracing::info!(
                    "recovering {} events left in processing/ by the last run",
                    files.len()
                );
            }
            for claimed in files {
                deliver(&daemon, &chains, claimed);
            }
        }
        Err(e) => tracing::error!("cannot recover processing/: {e}"),
    }
    let mut watch: Option<(notify::RecommendedWatcher, u64)> = None;
    loop {
        if *stopping.borrow() {
            return;
        }
        // The inbox folder may have been deleted (and recreated by `autod send`)
        // under us; a watch on the old folder would never fire again.
        watch = rewatch(&daemon, watch);
        match daemon.state.inbox_claim() {
            Ok(batch) => {
                if batch.skipped > 0 {
                    daemon.inbox_busy_names.store(true, Ordering::SeqCst);
                }
                for claimed in batch.claimed {
                    deliver(&daemon, &chains, claimed);
                }
            }
            Err(e) => tracing::error!("cannot claim from the inbox: {e}"),
        }
        // Without a working watch, look again every few seconds rather than never.
        let fallback = if watch.is_some() {
            None
        } else {
            Some(std::time::Duration::from_secs(5))
        };
        tokio::select! {
            () = daemon.inbox_wake.notified() => {}
            () = super::retry::sleep_or_forever(fallback) => {}
            () = super::stopped(&mut stopping) => return,
        }
    }
}

/// Keeps the watch on the inbox folder that exists now: a new one when the
/// folder was replaced (its inode changed) or the last attempt failed.
fn rewatch(
    daemon: &Arc<Daemon>,
    current: Option<(notify::RecommendedWatcher, u64)>,
) -> Option<(notify::RecommendedWatcher, u64)> {
    use std::os::unix::fs::MetadataExt;
    let inode = |d: &Arc<Daemon>| std::fs::metadata(d.state.inbox_dir()).ok().map(|m| m.ino());
    match (current, inode(daemon)) {
        (Some((w, ino)), Some(now)) if ino == now => Some((w, ino)),
        (previous, _) => {
            if previous.is_some() {
                tracing::warn!("the inbox folder was replaced; watching the new one");
            }
            match watch_inbox(daemon) {
                Ok(w) => inode(daemon).map(|ino| (w, ino)),
                Err(e) => {
                    tracing::error!("cannot watch the inbox: {e:#}; looking every 5s instead");
                    None
                }
            }
        }
    }
}

/// Validates a claimed file and starts its delivery; invalid files go to rejected/.
fn deliver(daemon: &Arc<Daemon>, chains: &KeyChains, claimed: Claimed) {
    let origin = format!("inbox/{}", claimed.name);
    let bytes = match std::fs::read(&claimed.path) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("{origin}: cannot read: {e}");
            return;
        }
    };
    let generation = daemon.generation();
    let admitted = generation
        .intake
        .lock()
        .expect("intake lock")
        .admit(&bytes, None);
    let admitted = match admitted {
        Ok(a) => a,
        Err(invalid) => {
            let violations = intake::refusal_violations(&invalid);
            for v in &violations {
                tracing::error!("{origin}: rejected {v}");
            }
            let mut line =
                RunLine::new(&intake::claimed_event_id(&bytes), "-", RunResult::Rejected);
            line.input = Some(origin.clone());
            line.error = violations.first().map(ToString::to_string);
            generation.engine.log().record(&line);
            if let Err(e) = daemon.state.processing_reject(&claimed, &violations) {
                tracing::error!("{origin}: cannot move to rejected/: {e}");
            }
            return;
        }
    };
    let guard = daemon.in_flight.enter();
    let daemon = Arc::clone(daemon);
    let key = admitted.event.key().map(str::to_owned);
    chains.spawn(key.as_deref(), async move {
        let _guard = guard;
        if *daemon.stopping.borrow() {
            // Shutdown began while it waited behind an earlier event with its
            // key: it starts nothing now and stays in processing/ for the next
            // start, like an event stopped mid-run.
            return;
        }
        let event = Arc::new(admitted.event);
        if let Err(e) = daemon.state.archive(&event) {
            tracing::error!("{origin}: not accepted, left in processing/: {e}");
            return;
        }
        let outcomes = generation
            .engine
            .deliver(Arc::clone(&event), admitted.handlers, false)
            .await;
        if outcomes.iter().any(|o| o.interrupted) {
            return; // Stays in processing/: the next start delivers it again.
        }
        if let Err(e) = daemon.state.processing_done(&claimed) {
            tracing::error!("{origin}: {e}");
        }
        if daemon.inbox_busy_names.swap(false, Ordering::SeqCst) {
            daemon.inbox_wake.notify_one();
        }
    });
}
