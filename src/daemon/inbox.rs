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

/// Reads schemas again when a file under `schemas/` changes: a fixed schema
/// must be enough for held events to run, and for a requeued file to be
/// judged by the schema `autod rejected requeue` judged it by.
pub fn watch_schemas(daemon: &Arc<Daemon>) -> Option<notify::RecommendedWatcher> {
    let dir = daemon.root.join("schemas");
    if !dir.is_dir() {
        return None;
    }
    let d = Arc::clone(daemon);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if !event.map_or(true, |e| super::is_change(e.kind)) {
            return;
        }
        let generation = d.generation();
        if let Err(e) = generation
            .intake
            .lock()
            .expect("intake lock")
            .reload_schemas()
        {
            tracing::error!(
                "schemas changed, and the envelope no longer loads: {e}; keeping the old one"
            );
        }
        d.recovery.now();
        d.inbox_wake.notify_one();
    });
    let unwatched = |e: notify::Error| {
        tracing::warn!("cannot watch schemas/ ({e}); a changed schema is read after SIGHUP");
    };
    let mut watcher = watcher.map_err(unwatched).ok()?;
    watcher
        .watch(&dir, RecursiveMode::Recursive)
        .map_err(unwatched)
        .ok()?;
    Some(watcher)
}

pub async fn run(daemon: Arc<Daemon>) {
    let chains = KeyChains::default();
    let mut stopping = daemon.stopping();
    recover(&daemon, &chains, true);
    let mut watch: Option<(notify::RecommendedWatcher, u64)> = None;
    loop {
        if *stopping.borrow() {
            return;
        }
        // The inbox folder may have been deleted (and recreated by `autod send`)
        // under us; a watch on the old folder would never fire again.
        watch = rewatch(&daemon, watch);
        // Every wake claims, a recovery timer's too: files a failed claim
        // left in the inbox are announced by no inotify event again.
        claim(&daemon, &chains);
        if daemon.recovery.take_due() {
            recover(&daemon, &chains, false);
        }
        // Without a working watch, look again every few seconds rather than never.
        let fallback = if watch.is_some() {
            None
        } else {
            Some(std::time::Duration::from_secs(5))
        };
        let due = daemon.recovery.due();
        tokio::select! {
            () = daemon.inbox_wake.notified() => {}
            () = super::retry::sleep_or_forever(fallback) => {}
            () = async { tokio::time::sleep_until(due.expect("guarded")).await }, if due.is_some() => {}
            () = super::stopped(&mut stopping) => return,
        }
    }
}

/// One pass over the inbox: claim what is there and start delivering it.
fn claim(daemon: &Arc<Daemon>, chains: &KeyChains) {
    let batch = match daemon.state.inbox_claim() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("cannot claim from the inbox: {e}; trying again shortly");
            daemon.recovery.strand();
            return;
        }
    };
    if batch.skipped > 0 {
        daemon.inbox_busy_names.store(true, Ordering::SeqCst);
    }
    for (old, new) in &batch.renamed {
        tracing::warn!(
            "inbox file {old:?} has a name that is not UTF-8; claimed as processing/{new}"
        );
    }
    for e in &batch.failed {
        tracing::error!(
            "not claimed yet ({e}); it stays in the inbox and is claimed again shortly"
        );
    }
    if !batch.failed.is_empty() {
        // Called from the consumer's loop, which reads the due time next:
        // no wake-up (that would spin on a file that keeps failing).
        daemon.recovery.strand();
    }
    for claimed in batch.claimed {
        deliver(daemon, chains, claimed);
    }
}

/// Delivers again every file in processing/ that nothing is working on: at
/// start, what the last run left; later, what could not be finished (see
/// `recovery.rs`). Later passes first check that state can be written, so
/// that handlers do not run again while their outcome still cannot be kept.
fn recover(daemon: &Arc<Daemon>, chains: &KeyChains, at_start: bool) {
    if !at_start && let Err(e) = daemon.state.writable() {
        tracing::debug!("state still not writable ({e}); waiting before delivering again");
        daemon.recovery.strand();
        return;
    }
    let files = match daemon.state.processing_recover() {
        Ok(files) => files,
        Err(e) => {
            tracing::error!("cannot read processing/: {e}; trying again shortly");
            daemon.recovery.strand();
            return;
        }
    };
    let files: Vec<Claimed> = files
        .into_iter()
        .filter(|c| !daemon.recovery.is_active(&c.name))
        .collect();
    if at_start && !files.is_empty() {
        tracing::info!(
            "recovering {} events left in processing/ by the last run",
            files.len()
        );
    }
    for claimed in files {
        deliver(daemon, chains, claimed);
    }
}

/// Marks a claimed file as worked on for as long as it lives.
struct Active {
    daemon: Arc<Daemon>,
    name: String,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.daemon.recovery.end(&self.name);
    }
}

/// The file could not be finished now: it stays in processing/, and a
/// recovery pass delivers it again. The consumer is woken so that it sleeps
/// until that pass instead of until the next inbox change.
fn strand(active: Active) {
    active.daemon.recovery.strand();
    active.daemon.inbox_wake.notify_one();
    drop(active);
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

/// Validates a claimed file and starts its delivery. An invalid event goes to
/// rejected/; one the project cannot take now is held; anything autod cannot
/// finish (read, archive, record) leaves the file where it is, stranded.
fn deliver(daemon: &Arc<Daemon>, chains: &KeyChains, claimed: Claimed) {
    if !daemon.recovery.begin(&claimed.name) {
        return; // Already being delivered.
    }
    let active = Active {
        daemon: Arc::clone(daemon),
        name: claimed.name.clone(),
    };
    let origin = format!("inbox/{}", claimed.name);
    let generation = daemon.generation();
    let max_bytes = generation.config.validation.max_event_bytes;
    let bytes = match read_bounded(&claimed.path, max_bytes) {
        Ok(Ok(b)) => b,
        Ok(Err(size)) => {
            // Never read whole: a file larger than memory would otherwise take
            // the daemon down at every start, since recovery reads it again.
            let violations = vec![crate::event::too_large(size, max_bytes)];
            reject(
                daemon,
                &generation,
                &claimed,
                &origin,
                ("-".into(), None),
                &violations,
                active,
            );
            return;
        }
        Err(e) => {
            tracing::error!(
                "{origin}: cannot read: {e}; it stays in processing/ and is tried again shortly"
            );
            strand(active);
            return;
        }
    };
    let admitted = generation
        .intake
        .lock()
        .expect("intake lock")
        .admit(&bytes, None);
    let admitted = match admitted {
        Ok(a) => {
            let intake = generation.intake.lock().expect("intake lock");
            crate::metrics::event_delivered(
                intake.metric_type(Some(a.event.event_type())),
                a.event.id(),
            );
            a
        }
        Err(invalid) => {
            let (event_id, event_type) = intake::claimed(&bytes);
            if let Some(reason) = intake::project_fault(&invalid) {
                hold(daemon, &generation, &claimed, &origin, event_id, &reason);
                strand(active);
            } else {
                let violations = intake::refusal_violations(&invalid);
                reject(
                    daemon,
                    &generation,
                    &claimed,
                    &origin,
                    (event_id, event_type),
                    &violations,
                    active,
                );
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
            tracing::error!(
                "{origin}: cannot start {}: {e}; it stays in processing/ and is delivered once .autod/ is writable again",
                event.id()
            );
            strand(active);
            return;
        }
        let engine = if crate::state::inbox::is_replay(&claimed.name) {
            &generation.replay_engine
        } else {
            &generation.engine
        };
        let outcomes = engine
            .deliver(Arc::clone(&event), admitted.handlers, false)
            .await;
        if outcomes.iter().any(|o| o.interrupted) {
            return; // Stays in processing/: the next start delivers it again.
        }
        if let Some(handlers) = crate::engine::unrecorded(&outcomes) {
            tracing::error!(
                "{origin}: the outcome of {handlers} for {} could not be recorded; the event stays in processing/ and is delivered again once .autod/ is writable (pairs that succeeded are skipped)",
                event.id()
            );
            strand(active);
            return;
        }
        if let Err(e) = daemon.state.processing_done(&claimed) {
            // Every outcome is recorded: delivering it again only skips.
            tracing::error!("{origin}: {e}");
            strand(active);
            return;
        }
        daemon.recovery.delivered(&claimed.name);
        drop(active);
        if daemon.inbox_busy_names.swap(false, Ordering::SeqCst) {
            daemon.inbox_wake.notify_one();
        }
    });
}

/// Reads at most `max` bytes; `Ok(Err(size))` when the file is larger.
fn read_bounded(path: &std::path::Path, max: u64) -> std::io::Result<Result<Vec<u8>, u64>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if size > max {
        return Ok(Err(size));
    }
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Ok(Err(bytes.len() as u64));
    }
    Ok(Ok(bytes))
}

/// The event itself is invalid: to rejected/, beside why.
fn reject(
    daemon: &Arc<Daemon>,
    generation: &super::Generation,
    claimed: &Claimed,
    origin: &str,
    (event_id, event_type): (String, Option<String>),
    violations: &[crate::event::Violation],
    active: Active,
) {
    for v in violations {
        tracing::error!("{origin}: rejected {v}");
    }
    let label = generation
        .intake
        .lock()
        .expect("intake lock")
        .metric_type(event_type.as_deref())
        .to_owned();
    crate::metrics::event_rejected(&label, crate::metrics::violation_reason(violations.first()));
    let mut line = RunLine::new(&event_id, "-", RunResult::Rejected);
    line.event_type = event_type;
    line.input = Some(origin.to_owned());
    // The name `autod rejected show` and `requeue` take.
    line.file = Some(claimed.name.clone());
    line.error = violations.first().map(ToString::to_string);
    generation.engine.log().record(&line);
    match daemon.state.processing_reject(claimed, violations) {
        Ok(_) => drop(active),
        Err(e) => {
            tracing::error!("{origin}: cannot move to rejected/: {e}; trying again shortly");
            strand(active);
        }
    }
}

/// The project cannot take the event now: it waits in processing/, told once
/// per reason (stderr, run log, a note `autod status` reads).
fn hold(
    daemon: &Arc<Daemon>,
    generation: &super::Generation,
    claimed: &Claimed,
    origin: &str,
    event_id: String,
    reason: &str,
) {
    if !daemon.recovery.hold(&claimed.name, reason) {
        return;
    }
    tracing::error!(
        "{origin}: held, not rejected: {reason}. It was accepted, so it waits in processing/ and runs once the project is fixed (a schema file is read again at once; for autod.toml, send SIGHUP or restart). `autod status` lists held events."
    );
    let mut line = RunLine::new(&event_id, "-", RunResult::Held);
    line.input = Some(origin.to_owned());
    line.error = Some(reason.to_owned());
    generation.engine.log().record(&line);
    if let Err(e) = daemon.state.processing_hold(claimed, reason) {
        tracing::error!("{origin}: {e}");
    }
}
