//! The NATS JetStream worker of `autod run` (`[queue] backend = "nats"`,
//! SPEC 10): per handler, pull from its durable consumer, run each pair
//! through the same engine as the inbox does, record, and only then ack.
//!
//! A pair's life here:
//!
//! 1. a message is fetched only when the handler has a free slot here (the
//!    daemon's `--jobs` and the handler's `concurrency`), so nothing pulled
//!    sits waiting while its ack wait runs out;
//! 2. in-progress acks every third of the ack wait, from the moment it is
//!    pulled until it is acked, so a long run is not redelivered while alive;
//! 3. skipped when the done-marker bucket has the pair (it succeeded on some
//!    host, maybe after the stream's dedupe window);
//! 4. run by [`crate::engine::Engine::run_pair`], which records as it always
//!    does (run log, local done marker or dead letter);
//! 5. success: the done marker is put in the bucket, then the message acked
//!    (confirmed by the server), and a retried pair's dead letter removed;
//!    failure: the record the engine wrote goes to the dead-letter stream,
//!    then the message is acked, and the retry comes back when due on the
//!    handler's own subject (`queue/nats/dead.rs`; [`schedule_retries`] is
//!    this host's share of that); given up (exhausted, exit 65): the same,
//!    and nothing brings it back but `autod retry`. Interrupted by shutdown:
//!    nak at once, so another host takes it.
//! 6. a retry (a message on `<stream>_RETRY.<handler>`) first takes the
//!    pair's record from the stream as this host's local one, so the engine
//!    counts the attempt on from wherever the last one ran.
//!
//! The consumer's filter may be wider than the handler's patterns (see
//! `queue/subject.rs`): every event is routed again here, and one the handler
//! does not take is acked without running.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use tokio::sync::{Semaphore, watch as flag};

use super::Daemon;
use crate::config::NatsConfig;
use crate::engine::Mode;
use crate::log::RunResult;
use crate::queue::nats::keyed::{self, Turn};
use crate::queue::nats::{Connection, Names, dead, pair_key};
use crate::state::dead::DeadState;

/// How long one pull waits on the server for messages.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// Back-off while the server is unreachable or not set up.
const UNAVAILABLE_BACKOFF: Duration = Duration::from_secs(2);
/// An event the project cannot take now (a broken schema) is offered again
/// this often, so that it runs soon after the fix.
const HELD_RETRY: Duration = Duration::from_secs(30);
/// A keyed event whose turn has not come is offered again this soon.
const KEY_WAIT: Duration = Duration::from_millis(250);

/// The key-value buckets a worker writes: done markers and per-key order.
pub struct Buckets {
    pub done: jetstream::kv::Store,
    pub keys: jetstream::kv::Store,
}

/// Waits out [`UNAVAILABLE_BACKOFF`]; `false` if autod stops meanwhile.
async fn back_off(stopping: &mut flag::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(UNAVAILABLE_BACKOFF) => true,
        () = super::stopped(stopping) => false,
    }
}

/// What `queue init` makes, got by `get`: while it is missing, said (`get`'s
/// error names it) and tried again after [`UNAVAILABLE_BACKOFF`]; `None` when
/// autod stops meanwhile.
async fn made_by_queue_init<T, F>(
    stopping: &mut flag::Receiver<bool>,
    mut get: impl FnMut() -> F,
) -> Option<T>
where
    F: std::future::Future<Output = Result<T, String>>,
{
    loop {
        match get().await {
            Ok(made) => return Some(made),
            Err(missing) => {
                tracing::error!(
                    "queue: {missing}; run `autod queue init`; trying again in {}s",
                    UNAVAILABLE_BACKOFF.as_secs()
                );
                if !back_off(stopping).await {
                    return None;
                }
            }
        }
    }
}

/// A durable consumer `queue init` makes (a handler's, or the retry
/// schedule's); `None` when autod stops while waiting for it.
async fn durable(
    conn: &Connection,
    stream: &str,
    name: &str,
    stopping: &mut flag::Receiver<bool>,
) -> Option<PullConsumer> {
    made_by_queue_init(stopping, || async {
        let found = match conn.js.get_stream(stream).await {
            Ok(s) => s
                .get_consumer::<jetstream::consumer::pull::Config>(name)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        found.map_err(|e| format!("no consumer {name} on stream {stream} ({e})"))
    })
    .await
}

type PullConsumer = jetstream::consumer::Consumer<jetstream::consumer::pull::Config>;

/// One pull of up to `max` messages. `None` when the pull failed (said,
/// naming `what`, and waited out) or autod stops: the caller loops, and its
/// loop sees the stop.
async fn fetch(
    consumer: &PullConsumer,
    max: usize,
    what: &str,
    stopping: &mut flag::Receiver<bool>,
) -> Option<jetstream::consumer::pull::Batch> {
    let pulled = consumer
        .fetch()
        .max_messages(max)
        .expires(PULL_EXPIRES)
        .messages()
        .await;
    match pulled {
        Ok(batch) => Some(batch),
        Err(e) => {
            tracing::warn!(
                "queue: {what}: cannot pull ({e}); trying again in {}s",
                UNAVAILABLE_BACKOFF.as_secs()
            );
            back_off(stopping).await;
            None
        }
    }
}

/// The next message of a pull; `None` at its end or when autod stops. One
/// the client could not read is said, naming `what`, and passed over.
async fn next(
    batch: &mut jetstream::consumer::pull::Batch,
    what: &str,
    stopping: &mut flag::Receiver<bool>,
) -> Option<jetstream::Message> {
    loop {
        let message = tokio::select! {
            m = batch.next() => m?,
            () = super::stopped(stopping) => return None,
        };
        match message {
            Ok(m) => return Some(m),
            Err(e) => tracing::warn!("queue: {what}: {e}"),
        }
    }
}

/// A bucket `queue init` makes; `None` when autod stops while waiting for it.
async fn bucket(
    conn: &Connection,
    name: &str,
    what: &str,
    stopping: &mut flag::Receiver<bool>,
) -> Option<jetstream::kv::Store> {
    made_by_queue_init(stopping, || async {
        conn.js
            .get_key_value(name)
            .await
            .map_err(|e| format!("no {what} bucket {name} ({e})"))
    })
    .await
}

/// The worker of one `[queue]` and one set of handlers. A reload that
/// changes the handlers (one added, removed, or its `concurrency` changed)
/// stops it and starts another; runs in flight finish on the old one.
pub struct Worker {
    stop: Arc<flag::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
    pub config: NatsConfig,
    handlers: Vec<(String, Option<usize>)>,
}

/// What a worker's pull tasks are made of.
pub fn handler_set(config: &crate::config::Config) -> Vec<(String, Option<usize>)> {
    config
        .handlers
        .iter()
        .map(|h| (h.name.clone(), h.concurrency))
        .collect()
}

impl Worker {
    /// Pulls for the handlers of the daemon's current generation; the
    /// first worker of a daemon first stops what an earlier autod's runs
    /// left running ([`stop_orphans`]).
    pub fn start(daemon: &Arc<Daemon>, config: &NatsConfig, first: bool) -> Worker {
        let (stop, receiver) = flag::channel(false);
        let stop = Arc::new(stop);
        let mut stopping = daemon.stopping();
        let forward = Arc::clone(&stop);
        tokio::spawn(async move {
            super::stopped(&mut stopping).await;
            let _ = forward.send(true);
        });
        Worker {
            stop,
            task: tokio::spawn(run(Arc::clone(daemon), config.clone(), receiver, first)),
            config: config.clone(),
            handlers: handler_set(&daemon.generation().config),
        }
    }

    /// Whether `config` needs another worker than this one.
    pub fn differs(&self, config: &crate::config::Config) -> bool {
        handler_set(config) != self.handlers
    }

    /// Stops pulling; what was pulled runs to its end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Stops what the runs of an earlier autod on this host left running (it
/// was killed mid-run). On the folder backend the next owner of such a pair
/// does this before running it again; on NATS the pair runs again on
/// whichever host the queue hands it to, so this host sweeps its own.
async fn stop_orphans(daemon: &Daemon) {
    for (event_id, handler) in daemon.state.locked_pairs() {
        let Ok(Some(lock)) = daemon.state.try_lock_pair(&event_id, &handler) else {
            continue; // owned by a run of this daemon already, or unreadable
        };
        let Some(previous) = lock.previous_run::<crate::runner::RunMark>() else {
            continue;
        };
        let grace = daemon
            .generation()
            .engine
            .handler(&handler)
            .map_or(crate::config::DEFAULT_KILL_GRACE, |h| h.kill_grace);
        let stopped = crate::runner::stop_previous(&previous, grace).await;
        if stopped.found_any() {
            tracing::warn!(
                "queue: {handler} for {event_id}: a run of an earlier autod on this host (pid {}) left processes running unsupervised; {stopped}. The pair is the queue's: it runs again wherever the queue delivers it",
                previous.autod_pid
            );
        }
        if stopped.survivors.is_empty()
            && let Err(e) = lock.clear_run()
        {
            tracing::debug!("{e}");
        }
    }
}

async fn run(daemon: Arc<Daemon>, config: NatsConfig, stop: flag::Receiver<bool>, first: bool) {
    if first {
        stop_orphans(&daemon).await;
    }
    let mut stopping = stop.clone();
    // The producer's connection: it was opened from the same `[queue]` (a
    // reload keeps the one the daemon started with), and it says itself
    // when it cannot connect and when it does.
    let Some(publisher) = daemon.producer.nats() else {
        tracing::error!("queue: no NATS connection for the worker; restart `autod run`");
        return;
    };
    let conn = tokio::select! {
        c = publisher.connection() => c,
        () = super::stopped(&mut stopping) => return,
    };
    let names = Names::of(&config);
    let Some(done) = bucket(&conn, &names.done, "done-marker", &mut stopping).await else {
        return;
    };
    let Some(keys) = bucket(&conn, &names.keys, "per-key order", &mut stopping).await else {
        return;
    };
    let done = Arc::new(Buckets { done, keys });
    let handlers: Vec<(String, usize)> = daemon
        .generation()
        .config
        .handlers
        .iter()
        .map(|h| (h.name.clone(), h.concurrency.unwrap_or(usize::MAX)))
        .collect();
    tracing::info!(
        "queue: pulling for {} handlers from stream {} at {}",
        handlers.len(),
        names.stream,
        config.urls.join(", ")
    );
    let mut tasks = vec![tokio::spawn(schedule_retries(
        Arc::clone(&daemon),
        Arc::clone(&conn),
        Arc::clone(&done),
        stop.clone(),
    ))];
    for (handler, concurrency) in handlers {
        let slots = daemon.jobs.min(concurrency).max(1);
        tasks.push(tokio::spawn(pull(
            Arc::clone(&daemon),
            Arc::clone(&conn),
            Arc::clone(&done),
            names.stream.clone(),
            handler,
            slots,
            stop.clone(),
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// One handler's loop: fetch as many messages as it has free slots, hand each
/// to [`pair`].
async fn pull(
    daemon: Arc<Daemon>,
    conn: Arc<Connection>,
    done: Arc<Buckets>,
    stream: String,
    handler: String,
    slots: usize,
    mut stopping: flag::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(slots));
    let Some(consumer) = durable(&conn, &stream, &handler, &mut stopping).await else {
        return;
    };
    // The consumer's, as `queue init` set it: every host keeps its messages
    // alive by the same clock.
    let ack_wait = consumer.cached_info().config.ack_wait;
    let what = format!("handler {handler}");
    loop {
        if *stopping.borrow() {
            return;
        }
        let first = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => p.expect("never closed"),
            () = super::stopped(&mut stopping) => return,
        };
        let mut permits = vec![first];
        while let Ok(p) = Arc::clone(&slots).try_acquire_owned() {
            permits.push(p);
        }
        let Some(mut batch) = fetch(&consumer, permits.len(), &what, &mut stopping).await else {
            continue;
        };
        while let Some(message) = next(&mut batch, &what, &mut stopping).await {
            let Some(permit) = permits.pop() else {
                // More than asked for: leave it to the server to redeliver.
                let _ = message.ack_with(AckKind::Nak(None)).await;
                continue;
            };
            let guard = daemon.in_flight.enter();
            let (daemon, conn, done, handler) = (
                Arc::clone(&daemon),
                Arc::clone(&conn),
                Arc::clone(&done),
                handler.clone(),
            );
            tokio::spawn(async move {
                let _guard = guard;
                let _permit = permit;
                pair(&daemon, &conn, &done, &handler, message, ack_wait).await;
            });
        }
        // Permits left over (fewer messages than slots) go back with `permits`.
    }
}

/// One message of one handler, from pulled to acked (or nak'ed).
async fn pair(
    daemon: &Arc<Daemon>,
    conn: &Connection,
    done: &Buckets,
    handler: &str,
    message: jetstream::Message,
    ack_wait: Duration,
) {
    let message = Arc::new(message);
    let keepalive = {
        let m = Arc::clone(&message);
        async move {
            loop {
                tokio::time::sleep(ack_wait / 3).await;
                let _ = m.ack_with(AckKind::Progress).await;
            }
        }
    };
    tokio::select! {
        () = work(daemon, conn, done, handler, &message) => {}
        () = keepalive => {}
    }
}

/// The pair's message is gone: a dead letter of it (from `autod retry`, say) is
/// the retry pass's again.
fn forget(daemon: &Daemon, handler: &str, event_id: &str) {
    daemon
        .queue_pairs
        .lock()
        .expect("queue pairs lock")
        .remove(&(handler.to_owned(), event_id.to_owned()));
}

/// Whether a write failed because the server's JetStream storage is full
/// (JSInsufficientResourcesErr, 10023).
fn storage_full(e: &dyn std::fmt::Display) -> bool {
    let text = e.to_string();
    text.contains("10023") || text.contains("insufficient resources")
}

/// How a pulled message is answered. For a keyed event, every final answer
/// (ack, term) first records that the handler is done with it, so the next
/// event of its key may run (`queue/nats/keyed.rs`); if that cannot be
/// recorded, the message is nak'ed instead and finishes on its redelivery.
struct Reply<'a> {
    conn: &'a Connection,
    keys: &'a jetstream::kv::Store,
    handler: &'a str,
    message: &'a jetstream::Message,
    /// Its key token and stream sequence, if it is a keyed event.
    keyed: Option<(&'a str, u64)>,
}

impl<'a> Reply<'a> {
    fn new(
        conn: &'a Connection,
        keys: &'a jetstream::kv::Store,
        handler: &'a str,
        message: &'a jetstream::Message,
    ) -> Reply<'a> {
        let keyed = keyed::token_of(&conn.names, &message.subject)
            .zip(message.info().ok().map(|i| i.stream_sequence));
        Reply {
            conn,
            keys,
            handler,
            message,
            keyed,
        }
    }

    async fn finished(&self) -> bool {
        let Some((token, sequence)) = self.keyed else {
            return true;
        };
        match self
            .conn
            .finished(self.keys, self.handler, token, sequence)
            .await
        {
            Ok(()) => true,
            // As for a done marker: acked all the same, or the full store
            // never empties. The next event of the key then also waits for
            // this one to leave the stream (every handler's ack).
            Err(e) if storage_full(&e) => {
                tracing::warn!(
                    "queue/{}: {e}; the server's JetStream storage is full: acked all the same",
                    self.message.subject
                );
                true
            }
            Err(e) => {
                tracing::warn!(
                    "queue/{}: {e}; delivered again to record it",
                    self.message.subject
                );
                let _ = self.nak(Some(UNAVAILABLE_BACKOFF)).await;
                false
            }
        }
    }

    async fn ack(&self) {
        if self.finished().await {
            let _ = self.message.ack().await;
        }
    }

    /// An ack the server confirms.
    async fn double_ack(&self) -> Result<(), String> {
        if !self.finished().await {
            return Err("not recorded for its key, nak'ed".into());
        }
        self.message.double_ack().await.map_err(|e| e.to_string())
    }

    async fn term(&self) {
        if self.finished().await {
            let _ = self.message.ack_with(AckKind::Term).await;
        }
    }

    async fn nak(&self, delay: Option<Duration>) -> Result<(), String> {
        self.message
            .ack_with(AckKind::Nak(delay))
            .await
            .map_err(|e| e.to_string())
    }
}

async fn work(
    daemon: &Arc<Daemon>,
    conn: &Connection,
    done: &Buckets,
    handler: &str,
    message: &jetstream::Message,
) {
    let origin = format!("queue/{}", message.subject);
    let reply = Reply::new(conn, &done.keys, handler, message);
    let generation = daemon.generation();
    let admitted = generation
        .intake
        .lock()
        .expect("intake lock")
        .admit(&message.payload, None);
    let admitted = match admitted {
        Ok(a) => a,
        Err(invalid) => {
            if let Some(reason) = crate::intake::project_fault(&invalid) {
                tracing::error!(
                    "{origin}: held for handler {handler}: {reason}; it is delivered again in {}s, and runs once the project is fixed",
                    HELD_RETRY.as_secs()
                );
                let _ = reply.nak(Some(HELD_RETRY)).await;
            } else {
                tracing::error!(
                    "{origin}: rejected: {invalid}; it was valid when published, so a schema changed; dropped for handler {handler}"
                );
                reply.term().await;
            }
            return;
        }
    };
    let event = admitted.event;
    if !admitted.handlers.iter().any(|h| h == handler) {
        // The consumer's filter is wider than the handler's patterns.
        reply.ack().await;
        return;
    }
    // Published by `autod replay` (or a replayed run's follow-up): run as the
    // inbox runs a `.replay.json` file, by the replay engine (its lines say
    // `replay`, its follow-ups are replays too), skipping a pair that
    // succeeded, and saying so in the run log as the inbox does.
    let replay = crate::queue::producer::is_replay(message);
    let engine = if replay {
        &generation.replay_engine
    } else {
        &generation.engine
    };
    let key = pair_key(handler, event.id());
    match done.done.get(key.as_str()).await {
        Ok(Some(_)) => {
            tracing::debug!(
                "{origin}: {} already succeeded for {handler} (done marker); skipped",
                event.id()
            );
            if replay {
                engine.skipped(&event, handler);
            }
            let _ = reply.double_ack().await;
            return;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(
                "{origin}: cannot read the done marker of {}/{handler} ({e}); delivered again shortly",
                event.id()
            );
            let _ = reply.nak(Some(Duration::from_secs(1))).await;
            return;
        }
    }
    let retry = dead::is_retry(&conn.names, handler, &message.subject);
    let requested = retry
        && message
            .headers
            .as_ref()
            .is_some_and(|h| h.get(dead::REQUESTED_HEADER).is_some());
    if retry && !take_over_dead_letter(daemon, conn, handler, &event, requested, &reply).await {
        return;
    }
    if let Some((token, sequence)) = reply.keyed
        && let Some(handler_cfg) = generation.engine.handler(handler)
    {
        match conn.turn(&done.keys, handler_cfg, token, sequence).await {
            Ok(Turn::Mine) => {}
            Ok(Turn::Behind(earlier)) => {
                tracing::debug!(
                    "{origin}: {} waits for {handler} to finish the event at sequence {earlier}, which has its key",
                    event.id()
                );
                let _ = reply.nak(Some(KEY_WAIT)).await;
                return;
            }
            Err(e) => {
                tracing::warn!("{origin}: {e}; delivered again shortly");
                let _ = reply.nak(Some(UNAVAILABLE_BACKOFF)).await;
                return;
            }
        }
    }
    // While it runs, this host's retry pass leaves the pair's local dead
    // letter alone: its retries are the queue's.
    daemon
        .queue_pairs
        .lock()
        .expect("queue pairs lock")
        .insert((handler.to_owned(), event.id().to_owned()));
    if let Err(e) = daemon.state.archive(&event) {
        tracing::error!(
            "{origin}: cannot start {}: {e}; delivered again once .autod/ is writable",
            event.id()
        );
        let _ = reply.nak(Some(Duration::from_secs(5))).await;
        return;
    }
    let mode = if requested {
        Mode::Requested
    } else {
        Mode::Automatic
    };
    let outcome = engine.run_pair(&event, handler, mode).await;
    if outcome.interrupted || outcome.unrecorded {
        // No outcome: another worker (or this one after a restart) runs it.
        let _ = reply.nak(None).await;
        return;
    }
    match outcome.result {
        RunResult::Ok | RunResult::Skipped => {
            let marker = format!("{{\"at\":\"{}\"}}", crate::time::now_rfc3339());
            match done.done.put(key.as_str(), marker.into()).await {
                Ok(_) => {}
                // Held unacked, it would keep the space that the marker needs:
                // acked, the pair is over all the same (the marker only
                // guards a publish of the same eventId after the window).
                Err(e) if storage_full(&e) => tracing::warn!(
                    "{origin}: {} succeeded for {handler}; its done marker could not be stored, the server's JetStream storage is full ({e}); acked all the same",
                    event.id()
                ),
                Err(e) => {
                    tracing::error!(
                        "{origin}: {} succeeded for {handler}, but its done marker could not be stored ({e}); it stays unacked, and a redelivery is skipped by this host's own marker",
                        event.id()
                    );
                    let _ = reply.nak(Some(Duration::from_secs(5))).await;
                    return;
                }
            }
            forget(daemon, handler, event.id());
            if retry || outcome.attempt.is_some_and(|a| a > 1) {
                // Its dead letter is over; one left behind (this failing) is
                // removed by the retry schedule, which sees the done marker.
                if let Err(e) = conn.dead_remove(handler, event.id()).await {
                    tracing::warn!("{origin}: {e}");
                }
            }
            if let Err(e) = reply.double_ack().await {
                tracing::warn!(
                    "{origin}: ack of {}/{handler} not confirmed ({e}); a redelivery is skipped by its done marker",
                    event.id()
                );
            }
        }
        _ => fail(daemon, conn, handler, &event, &outcome, &reply, &origin).await,
    }
}

/// A retry pulled for `handler`: the pair's record from the dead-letter
/// stream becomes this host's local one, so the engine counts the attempt on
/// from wherever the last one ran. `false` when there is nothing to run (the
/// record was dropped, or given up and this retry was not asked for by a
/// person); the message is then acked or nak'ed here.
async fn take_over_dead_letter(
    daemon: &Daemon,
    conn: &Connection,
    handler: &str,
    event: &crate::event::Event,
    requested: bool,
    reply: &Reply<'_>,
) -> bool {
    let record = match conn.dead_get(handler, event.id()).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            tracing::info!(
                "queue: retry of {} for {handler} not run: its dead letter is gone (dropped, or the pair succeeded)",
                event.id()
            );
            let _ = reply.double_ack().await;
            return false;
        }
        Err(e) => {
            tracing::warn!(
                "queue: retry of {} for {handler}: {e}; delivered again shortly",
                event.id()
            );
            let _ = reply.nak(Some(UNAVAILABLE_BACKOFF)).await;
            return false;
        }
    };
    if record.state != DeadState::Waiting && !requested {
        let _ = reply.double_ack().await;
        return false;
    }
    if let Err(e) = daemon.state.dead_put(&record) {
        tracing::error!(
            "queue: retry of {} for {handler}: {e}; delivered again once .autod/ is writable",
            event.id()
        );
        let _ = reply.nak(Some(Duration::from_secs(5))).await;
        return false;
    }
    true
}

/// A failed run: its record, as the engine wrote it here, goes to the
/// dead-letter stream, and only then is the message acked. If the stream
/// cannot take it, the message is nak'ed with the backoff instead, and the
/// local record keeps the attempt count for the redelivery.
async fn fail(
    daemon: &Daemon,
    conn: &Connection,
    handler: &str,
    event: &crate::event::Event,
    outcome: &crate::engine::PairOutcome,
    reply: &Reply<'_>,
    origin: &str,
) {
    let record = match daemon.state.dead_get(handler, event.id()) {
        Ok(Some(r)) => r,
        Ok(None) | Err(_) => {
            // No record (the handler left autod.toml): offered again later.
            let _ = reply.nak(Some(HELD_RETRY)).await;
            return;
        }
    };
    match conn.dead_put(&record).await {
        Ok(()) => {
            forget(daemon, handler, event.id());
            // The stream's copy is the record now; a local one would be
            // retried by this host's retry pass as well.
            if let Err(e) = daemon.state.dead_remove(handler, event.id()) {
                tracing::warn!("{origin}: {e}");
            }
            if let Err(e) = reply.double_ack().await {
                tracing::warn!(
                    "{origin}: ack of failed {}/{handler} not confirmed ({e}); a redelivery runs it again",
                    event.id()
                );
            }
        }
        Err(e) => {
            let backoff = outcome
                .next_attempt_at
                .as_deref()
                .and_then(crate::time::parse)
                .and_then(|due| crate::time::since(crate::time::now(), due))
                .unwrap_or(HELD_RETRY);
            tracing::error!(
                "{origin}: {e}; the event is delivered again in {}s instead",
                backoff.as_secs()
            );
            let _ = reply.nak(Some(backoff)).await;
        }
    }
}

/// The retry schedule: pulls waiting dead letters from the dead-letter
/// stream's consumer, holds each (a delayed nak) until its `nextAttemptAt`,
/// then publishes its event again for its handler. Every host runs one; each
/// record goes to one of them at a time.
async fn schedule_retries(
    daemon: Arc<Daemon>,
    conn: Arc<Connection>,
    done: Arc<Buckets>,
    mut stopping: flag::Receiver<bool>,
) {
    let Some(consumer) =
        durable(&conn, &conn.names.dead, dead::RETRY_CONSUMER, &mut stopping).await
    else {
        return;
    };
    loop {
        if *stopping.borrow() {
            return;
        }
        let what = "retry schedule";
        let Some(mut batch) = fetch(&consumer, RETRY_BATCH, what, &mut stopping).await else {
            continue;
        };
        while let Some(m) = next(&mut batch, what, &mut stopping).await {
            schedule(&daemon, &conn, &done, &m).await;
        }
    }
}

/// When a waiting record on the stream is due: as [`DeadLetter::due_at`]
/// reads it with the handler's `retry.max` (an unreadable `nextAttemptAt` is
/// `retry.max` after the last failure), but never later than `retry.max`
/// after the record was stored. That bound is by the server's clock, which
/// stamped the message, so a host whose clock ran ahead when it failed the
/// pair cannot park it for as long as its clock was wrong; and it is fixed
/// per record, so holding the record again does not slide it.
///
/// [`DeadLetter::due_at`]: crate::state::dead::DeadLetter::due_at
fn retry_due(
    daemon: &Daemon,
    record: &crate::state::dead::DeadLetter,
    message: &jetstream::Message,
    now: crate::time::Timestamp,
) -> crate::time::Timestamp {
    // A handler this host does not have is another host's; its retry.max is
    // not known here, so the default bounds the wait.
    let max = daemon
        .generation()
        .engine
        .handler(&record.handler)
        .map_or(crate::config::RetryConfig::default().max.0, |h| {
            h.retry.max.0
        });
    let written = record.due_at(max).unwrap_or(now);
    let stored = message
        .info()
        .ok()
        .and_then(|i| crate::time::from_system(i.published.into()))
        .unwrap_or(now);
    let latest = crate::time::add(stored, max);
    // Hosts' clocks differ by NTP's ordinary error: a record due at retry.max
    // by a clock a little ahead of the server's is not a clock gone wrong.
    if written <= crate::time::add(latest, CLOCK_SLACK) {
        return written;
    }
    // Said when the record is held for it, not again when it comes back due.
    if latest > now {
        tracing::warn!(
            "dead letter {} {}: nextAttemptAt {} is further ahead than retry.max ({}) from when it was stored ({}): the clock of the host that failed it was probably ahead; retrying it at {}",
            record.handler,
            record.event_id,
            record.next_attempt_at.as_deref().unwrap_or(""),
            crate::config::duration_text(max),
            crate::time::format(stored),
            crate::time::format(latest)
        );
    }
    latest
}

/// How far ahead of the server's clock a host's may be before a record's
/// `nextAttemptAt` is read as written by a clock gone wrong.
const CLOCK_SLACK: Duration = Duration::from_secs(2);

/// How many dead letters one pull of the retry schedule takes.
const RETRY_BATCH: usize = 64;

async fn schedule(
    daemon: &Daemon,
    conn: &Connection,
    done: &Buckets,
    message: &jetstream::Message,
) {
    let record: crate::state::dead::DeadLetter = match serde_json::from_slice(&message.payload) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(
                "queue: {} is not a dead letter autod can read ({e}); it is not retried",
                message.subject
            );
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    if record.state != DeadState::Waiting {
        // Given up: it stays in the stream for `autod dead`, `autod retry`.
        let _ = message.ack().await;
        return;
    }
    let now = crate::time::now();
    let due = retry_due(daemon, &record, message, now);
    if let Some(wait) = crate::time::since(now, due).filter(|w| !w.is_zero()) {
        let _ = message.ack_with(AckKind::Nak(Some(wait))).await;
        return;
    }
    let key = pair_key(&record.handler, &record.event_id);
    if let Ok(Some(_)) = done.done.get(key.as_str()).await {
        // It succeeded after this record was written (a redelivery on
        // another host): the record is stale.
        if let Err(e) = conn.dead_remove(&record.handler, &record.event_id).await {
            tracing::warn!("queue: {e}");
        }
        let _ = message.ack().await;
        return;
    }
    match conn.retry_publish(&record, false).await {
        Ok(()) => {
            tracing::debug!(
                "queue: retry {} of {} for {} queued",
                record.attempts + 1,
                record.event_id,
                record.handler
            );
            let _ = message.ack().await;
        }
        Err(e) => {
            tracing::warn!("queue: {e}; trying again shortly");
            let _ = message
                .ack_with(AckKind::Nak(Some(UNAVAILABLE_BACKOFF)))
                .await;
        }
    }
}
