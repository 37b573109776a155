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
//!    (confirmed by the server); failure: nak with the handler's backoff
//!    delay, and the redelivery is the retry (the host's retry pass skips
//!    the pair's local dead letter, see `Daemon::queue_pairs`); given up
//!    (exhausted, exit 65): termed, its dead letter local. Interrupted by
//!    shutdown: nak at once, so another host takes it.
//!
//! The consumer's filter may be wider than the handler's patterns (see
//! `queue/subject.rs`): every event is routed again here, and one the handler
//! does not take is acked without running.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use tokio::sync::Semaphore;

use super::Daemon;
use crate::config::NatsConfig;
use crate::engine::Mode;
use crate::log::RunResult;
use crate::queue::nats::{Connection, Names, pair_key};
use crate::state::dead::DeadState;

/// How long one pull waits on the server for messages.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// Back-off while the server is unreachable or not set up.
const UNAVAILABLE_BACKOFF: Duration = Duration::from_secs(2);
/// An event the project cannot take now (a broken schema) is offered again
/// this often, so that it runs soon after the fix.
const HELD_RETRY: Duration = Duration::from_secs(30);

pub async fn run(daemon: Arc<Daemon>, config: NatsConfig) {
    let mut stopping = daemon.stopping();
    let conn = loop {
        match Connection::open(&config).await {
            Ok(c) => break Arc::new(c),
            Err(e) => {
                tracing::error!(
                    "queue: {e}; trying again in {}s",
                    UNAVAILABLE_BACKOFF.as_secs()
                );
                tokio::select! {
                    () = tokio::time::sleep(UNAVAILABLE_BACKOFF) => {}
                    () = super::stopped(&mut stopping) => return,
                }
            }
        }
    };
    let names = Names::of(&config);
    let done = loop {
        match conn.js.get_key_value(&names.done).await {
            Ok(kv) => break Arc::new(kv),
            Err(e) => {
                tracing::error!(
                    "queue: no done-marker bucket {} ({e}); run `autod queue init`; trying again in {}s",
                    names.done,
                    UNAVAILABLE_BACKOFF.as_secs()
                );
                tokio::select! {
                    () = tokio::time::sleep(UNAVAILABLE_BACKOFF) => {}
                    () = super::stopped(&mut stopping) => return,
                }
            }
        }
    };
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
    let mut tasks = Vec::new();
    for (handler, concurrency) in handlers {
        let slots = daemon.jobs.min(concurrency).max(1);
        tasks.push(tokio::spawn(pull(
            Arc::clone(&daemon),
            Arc::clone(&conn),
            Arc::clone(&done),
            names.stream.clone(),
            handler,
            slots,
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
    done: Arc<jetstream::kv::Store>,
    stream: String,
    handler: String,
    slots: usize,
) {
    let mut stopping = daemon.stopping();
    let slots = Arc::new(Semaphore::new(slots));
    let consumer = loop {
        let found = match conn.js.get_stream(&stream).await {
            Ok(s) => s
                .get_consumer::<jetstream::consumer::pull::Config>(&handler)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match found {
            Ok(c) => break c,
            Err(e) => {
                tracing::error!(
                    "queue: handler {handler} has no consumer on stream {stream} ({e}); run `autod queue init`; trying again in {}s",
                    UNAVAILABLE_BACKOFF.as_secs()
                );
                tokio::select! {
                    () = tokio::time::sleep(UNAVAILABLE_BACKOFF) => {}
                    () = super::stopped(&mut stopping) => return,
                }
            }
        }
    };
    // The consumer's, as `queue init` set it: every host keeps its messages
    // alive by the same clock.
    let ack_wait = consumer.cached_info().config.ack_wait;
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
        let batch = consumer
            .fetch()
            .max_messages(permits.len())
            .expires(PULL_EXPIRES)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(
                    "queue: handler {handler}: cannot pull ({e}); trying again in {}s",
                    UNAVAILABLE_BACKOFF.as_secs()
                );
                drop(permits);
                tokio::select! {
                    () = tokio::time::sleep(UNAVAILABLE_BACKOFF) => {}
                    () = super::stopped(&mut stopping) => return,
                }
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                m = batch.next() => m,
                () = super::stopped(&mut stopping) => None,
            };
            let Some(message) = next else { break };
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("queue: handler {handler}: {e}");
                    continue;
                }
            };
            let Some(permit) = permits.pop() else {
                // More than asked for: leave it to the server to redeliver.
                let _ = message.ack_with(AckKind::Nak(None)).await;
                continue;
            };
            let guard = daemon.in_flight.enter();
            let (daemon, done, handler) = (Arc::clone(&daemon), Arc::clone(&done), handler.clone());
            tokio::spawn(async move {
                let _guard = guard;
                let _permit = permit;
                pair(&daemon, &done, &handler, message, ack_wait).await;
            });
        }
        // Permits left over (fewer messages than slots) go back with `permits`.
    }
}

/// One message of one handler, from pulled to acked (or nak'ed).
async fn pair(
    daemon: &Arc<Daemon>,
    done: &jetstream::kv::Store,
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
        () = work(daemon, done, handler, &message) => {}
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

async fn work(
    daemon: &Arc<Daemon>,
    done: &jetstream::kv::Store,
    handler: &str,
    message: &jetstream::Message,
) {
    let origin = format!("queue/{}", message.subject);
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
                let _ = message.ack_with(AckKind::Nak(Some(HELD_RETRY))).await;
            } else {
                tracing::error!(
                    "{origin}: rejected: {invalid}; it was valid when published, so a schema changed; dropped for handler {handler}"
                );
                let _ = message.ack_with(AckKind::Term).await;
            }
            return;
        }
    };
    let event = admitted.event;
    if !admitted.handlers.iter().any(|h| h == handler) {
        // The consumer's filter is wider than the handler's patterns.
        let _ = message.ack().await;
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
    match done.get(key.as_str()).await {
        Ok(Some(_)) => {
            tracing::debug!(
                "{origin}: {} already succeeded for {handler} (done marker); skipped",
                event.id()
            );
            if replay {
                engine.skipped(&event, handler);
            }
            let _ = message.double_ack().await;
            return;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(
                "{origin}: cannot read the done marker of {}/{handler} ({e}); delivered again shortly",
                event.id()
            );
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return;
        }
    }
    // Its retries are the queue's (the redeliveries), not this host's retry
    // pass over dead letters: that would spend two attempts per backoff.
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
        let _ = message
            .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
            .await;
        return;
    }
    let outcome = engine.run_pair(&event, handler, Mode::Automatic).await;
    if outcome.interrupted || outcome.unrecorded {
        // No outcome: another worker (or this one after a restart) runs it.
        let _ = message.ack_with(AckKind::Nak(None)).await;
        return;
    }
    match outcome.result {
        RunResult::Ok | RunResult::Skipped => {
            let marker = format!("{{\"at\":\"{}\"}}", crate::time::now_rfc3339());
            if let Err(e) = done.put(key.as_str(), marker.into()).await {
                tracing::error!(
                    "{origin}: {} succeeded for {handler}, but its done marker could not be stored ({e}); it stays unacked, and a redelivery is skipped by this host's own marker",
                    event.id()
                );
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                    .await;
                return;
            }
            forget(daemon, handler, event.id());
            if let Err(e) = message.double_ack().await {
                tracing::warn!(
                    "{origin}: ack of {}/{handler} not confirmed ({e}); a redelivery is skipped by its done marker",
                    event.id()
                );
            }
        }
        _ => match outcome.dead {
            Some(DeadState::Waiting) | None => {
                // The handler's backoff, as its dead letter says; the
                // redelivery (on any host) is the retry.
                let handler_cfg = generation.engine.handler(handler).cloned();
                let attempt = outcome.attempt.unwrap_or(1);
                let backoff = outcome
                    .next_attempt_at
                    .as_deref()
                    .and_then(crate::time::parse)
                    .and_then(|due| crate::time::since(crate::time::now(), due))
                    .or_else(|| handler_cfg.map(|h| crate::retry::delay(&h.retry, attempt)))
                    .unwrap_or(HELD_RETRY);
                let _ = message.ack_with(AckKind::Nak(Some(backoff))).await;
            }
            Some(_) => {
                // Given up: recorded as this host's dead letter.
                forget(daemon, handler, event.id());
                let _ = message.ack_with(AckKind::Term).await;
            }
        },
    }
}
