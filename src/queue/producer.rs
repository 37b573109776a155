//! The NATS side of the producers that live inside a tokio runtime: `autod
//! run` (watches, schedules, follow-ups, `[serve]`) and `autod serve`. They
//! share one [`Publisher`] per process, opened once, and publish through it
//! without blocking the runtime.
//!
//! Why not the synchronous [`super::Queue`]: it drives its connection with a
//! runtime of its own (`block_on`), which panics inside another runtime, and
//! would stall the daemon's one thread for a whole round trip.
//!
//! A publisher that cannot connect at start does not stop its process: the
//! daemon keeps running its other intakes (and its worker waits for the
//! server likewise), `autod serve` answers `503` and `/readyz` says why,
//! while a task here tries again every [`RECONNECT_EVERY`]. Once connected,
//! the client reconnects by itself; while it is disconnected a publish fails
//! at once instead of waiting for an ack that cannot come.
//!
//! Replays (`autod replay` through a daemon, and the follow-ups of replayed
//! runs) are published under a `Nats-Msg-Id` of their own,
//! `<eventId>/replay/<uuid v7>`, so that the stream's dedupe window never
//! drops them as the event sent before, and with [`REPLAY_HEADER`], so that
//! the worker delivers them as the inbox delivers a `.replay.json` file.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::connection::State;
use async_nats::jetstream;
use tokio::sync::watch;

use super::nats::{Connection, NatsError, Published};
use super::subject;
use crate::config::NatsConfig;
use crate::event::Event;

/// Set on a replayed event's message; the worker runs it as a replay.
pub const REPLAY_HEADER: &str = "Autod-Replay";

/// How often a publisher that never connected tries again.
const RECONNECT_EVERY: Duration = Duration::from_secs(2);

/// How long `/readyz` and a `/metrics` scrape wait for the server's answers.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a message was published as a replay.
pub fn is_replay(message: &async_nats::Message) -> bool {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(REPLAY_HEADER))
        .is_some()
}

/// Publishes one accepted event on `conn` and waits for the stream's ack:
/// durable once this returns `Ok`. A duplicate (the same `Nats-Msg-Id`
/// within the window) is success: the event is there.
pub async fn publish(
    conn: &Connection,
    urls: &str,
    event: &Event,
    replay: bool,
) -> Result<Published, NatsError> {
    send(conn, urls, event, replay).await?.acked().await
}

/// An event's message, handed to the client; its ack is still to come.
/// Sending many before awaiting any costs one round trip for all of them.
struct Sent {
    ack: jetstream::context::PublishAckFuture,
    about: About,
}

/// What an error about one publish names.
struct About {
    event_id: String,
    subject: String,
    stream: String,
    urls: String,
    replay: bool,
}

impl About {
    fn error(&self, e: &jetstream::context::PublishError) -> NatsError {
        use jetstream::context::PublishErrorKind as K;
        let fail = |why: String| NatsError::Publish {
            event_id: self.event_id.clone(),
            subject: self.subject.clone(),
            why,
        };
        match e.kind() {
            K::StreamNotFound => NatsError::NoStream {
                stream: self.stream.clone(),
                urls: self.urls.clone(),
            },
            K::TimedOut => fail(format!(
                "no ack from the server in time; it may or may not have been stored: sending it again is safe{}",
                if self.replay {
                    " (a replay sent twice runs twice only where its pairs have not succeeded)"
                } else {
                    " (its eventId dedupes)"
                }
            )),
            // JSInsufficientResourcesErr: the server's JetStream store is at
            // its max_file_store (or the account's limit).
            _ if e.to_string().contains("10023") => fail(format!(
                "{e}: the NATS server's JetStream storage is full; nothing was acked. Let the workers catch up (`autod queue status`), or raise max_file_store in the server's jetstream {{}} config, then send it again"
            )),
            _ => fail(format!("{e}; nothing was acked: send it again")),
        }
    }
}

impl Sent {
    /// Waits for the stream's ack: durable once this returns `Ok`.
    async fn acked(self) -> Result<Published, NatsError> {
        let ack = self.ack.await.map_err(|e| self.about.error(&e))?;
        Ok(Published {
            stream: ack.stream,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }
}

/// Sends one event's message on `conn` without waiting for its ack.
async fn send(
    conn: &Connection,
    urls: &str,
    event: &Event,
    replay: bool,
) -> Result<Sent, NatsError> {
    // An event with a key on its key's subject: see `nats/keyed.rs`.
    let subject = match event.key() {
        Some(key) => super::nats::keyed::subject(&conn.names, key, event.event_type()),
        None => subject::for_event_type(&conn.names.stream, event.event_type()),
    };
    let mut headers = HeaderMap::new();
    if replay {
        let id = format!("{}/replay/{}", event.id(), uuid::Uuid::now_v7());
        headers.insert("Nats-Msg-Id", id.as_str());
        headers.insert(REPLAY_HEADER, "1");
    } else {
        headers.insert("Nats-Msg-Id", event.id());
    }
    // Stored by this stream or refused: never by another one that happens
    // to take the subject too.
    headers.insert("Nats-Expected-Stream", conn.names.stream.as_str());
    let about = About {
        event_id: event.id().to_owned(),
        subject: subject.clone(),
        stream: conn.names.stream.clone(),
        urls: urls.to_owned(),
        replay,
    };
    let ack = conn
        .js
        .publish_with_headers(subject, headers, event.to_json().into())
        .await
        .map_err(|e| about.error(&e))?;
    Ok(Sent { ack, about })
}

/// One process's connection to the server, made in the background if the
/// server cannot be reached at start. The daemon's worker pulls on it too
/// ([`Publisher::connection`]): one connection per process, so one line in
/// the log when it is lost.
pub struct Publisher {
    urls: String,
    stream: String,
    /// `None` until the first connect succeeds; set once.
    connection: watch::Sender<Option<Arc<Connection>>>,
    /// Why there is no connection yet (the last attempt's error).
    unconnected: Mutex<String>,
}

/// The queue's gauges for `/metrics`, read at scrape time.
#[derive(Debug, Default, Clone)]
pub struct Census {
    /// Connected to the server now.
    pub connected: bool,
    /// Per handler with a consumer: messages not yet acked by it
    /// (`num_pending` + `num_ack_pending`).
    pub lag: BTreeMap<String, u64>,
}

impl Publisher {
    /// Connects, or starts trying to in the background (said on stderr;
    /// `until` says what waits for it). Must be called inside the tokio
    /// runtime the publisher is used on.
    pub async fn open(config: &NatsConfig, until: &str) -> Arc<Publisher> {
        let publisher = Arc::new(Publisher {
            urls: config.urls.join(", "),
            stream: config.stream.clone(),
            connection: watch::Sender::new(None),
            unconnected: Mutex::new("not connected yet".to_owned()),
        });
        match Connection::open(config).await {
            Ok(conn) => {
                publisher.connection.send_replace(Some(Arc::new(conn)));
            }
            Err(e) => {
                tracing::error!(
                    "queue: {e}; {until} until it connects (trying again every {}s)",
                    RECONNECT_EVERY.as_secs()
                );
                *publisher.unconnected.lock().expect("publisher lock") = e.to_string();
                tokio::spawn(connect_later(
                    Arc::downgrade(&publisher),
                    config.clone(),
                    e.to_string(),
                ));
            }
        }
        publisher
    }

    pub fn urls(&self) -> &str {
        &self.urls
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The connection once it is made (at once if it is): the worker's.
    /// Lost later, the client reconnects it by itself.
    pub async fn connection(&self) -> Arc<Connection> {
        let mut made = self.connection.subscribe();
        let made = made
            .wait_for(Option::is_some)
            .await
            .expect("the sender lives in self");
        Arc::clone(made.as_ref().expect("waited for Some"))
    }

    /// The connection, if it is up now; else why not, at once.
    fn connected(&self) -> Result<Arc<Connection>, NatsError> {
        let Some(conn) = self.connection.borrow().clone() else {
            let why = self.unconnected.lock().expect("publisher lock").clone();
            return Err(NatsError::Server(why));
        };
        match conn.client.connection_state() {
            State::Connected => Ok(conn),
            State::Disconnected | State::Pending => Err(NatsError::Connect {
                urls: self.urls.clone(),
                why: "the connection is lost, and the client is reconnecting".to_owned(),
            }),
        }
    }

    /// [`publish`] on this process's connection.
    pub async fn publish(&self, event: &Event, replay: bool) -> Result<Published, NatsError> {
        publish(&*self.connected()?, &self.urls, event, replay).await
    }

    /// Publishes every event, all sent before any ack is awaited, and gives
    /// each one's outcome in order. One that fails does not stop the ones
    /// after it; `Err` (no connection) means none was sent.
    pub async fn publish_all(
        &self,
        events: &[&Event],
    ) -> Result<Vec<Result<Published, NatsError>>, NatsError> {
        let conn = self.connected()?;
        let mut sent = Vec::with_capacity(events.len());
        for event in events {
            sent.push(send(&conn, &self.urls, event, false).await);
        }
        let mut out = Vec::with_capacity(sent.len());
        for s in sent {
            out.push(match s {
                Ok(s) => s.acked().await,
                Err(e) => Err(e),
            });
        }
        Ok(out)
    }

    /// Whether an event could be published now: connected, and the stream
    /// there. `Err` says what to check.
    pub async fn ready(&self) -> Result<(), String> {
        let conn = self.connected().map_err(|e| e.to_string())?;
        match tokio::time::timeout(PROBE_TIMEOUT, conn.js.get_stream(&conn.names.stream)).await {
            Err(_) => Err(format!(
                "the NATS server at {} did not answer within {}s",
                self.urls,
                PROBE_TIMEOUT.as_secs()
            )),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                if let jetstream::context::GetStreamErrorKind::JetStream(j) = e.kind()
                    && j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                {
                    Err(NatsError::NoStream {
                        stream: conn.names.stream.clone(),
                        urls: self.urls.clone(),
                    }
                    .to_string())
                } else {
                    Err(format!(
                        "cannot read stream {} on {}: {e}; check that JetStream runs there",
                        conn.names.stream, self.urls
                    ))
                }
            }
        }
    }

    /// The connection state and each handler's consumer lag, within
    /// [`PROBE_TIMEOUT`] in all: a handler whose consumer is missing, or
    /// whose answer did not come in time, has no lag series.
    pub async fn census(&self, handlers: &[String]) -> Census {
        let Ok(conn) = self.connected() else {
            return Census::default();
        };
        let mut census = Census {
            connected: true,
            lag: BTreeMap::new(),
        };
        let read = async {
            let Ok(stream) = conn.js.get_stream_no_info(&conn.names.stream).await else {
                return;
            };
            for handler in handlers {
                if let Ok(info) = stream.consumer_info(handler).await {
                    let lag = info
                        .num_pending
                        .saturating_add(u64::try_from(info.num_ack_pending).unwrap_or(u64::MAX));
                    census.lag.insert(handler.clone(), lag);
                }
            }
        };
        let _ = tokio::time::timeout(PROBE_TIMEOUT, read).await;
        census
    }
}

/// Tries to connect until it does (or the publisher is gone); says so once
/// it is connected, and whenever the reason it is not changes.
async fn connect_later(publisher: Weak<Publisher>, config: NatsConfig, mut last: String) {
    loop {
        tokio::time::sleep(RECONNECT_EVERY).await;
        let Some(p) = publisher.upgrade() else {
            return;
        };
        match Connection::open(&config).await {
            Ok(conn) => {
                p.connection.send_replace(Some(Arc::new(conn)));
                tracing::info!("queue: connected to NATS at {}", p.urls);
                return;
            }
            Err(e) => {
                let why = e.to_string();
                if why != last {
                    tracing::error!("queue: {why}");
                    last.clone_from(&why);
                }
                *p.unconnected.lock().expect("publisher lock") = why;
            }
        }
    }
}
