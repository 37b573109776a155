//! The queue: where an accepted event is handed over, durably, for a daemon
//! to deliver. A producer calls `put` and learns only whether the event is
//! safe; which backend took it is `[queue]`'s business. Two handles:
//!
//! - [`Queue`], synchronous, for the one-shot commands (`send`, `schedules
//!   fire`, `replay` through a daemon, `rejected requeue`);
//! - [`Producer`], async, opened once per process and shared, for those that
//!   run inside a tokio runtime (`autod run`: watches, schedules, follow-ups,
//!   `[serve]`; `autod serve`).
//!
//! The backends:
//!
//! - `folder.rs`: `.autod/inbox/` on this machine (the default);
//! - `nats.rs`: a NATS JetStream stream that workers on many hosts pull from
//!   (SPEC 10), and what `autod queue init|status` do there;
//! - `producer.rs`: publishing from inside a runtime, replays, and the
//!   queue's readiness and gauges;
//! - `subject.rs`: eventTypes as subjects, `on` patterns as consumer filters.
//!
//! The engine never learns which backend an event came through.

pub mod folder;
pub mod nats;
pub mod producer;
pub mod subject;

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::QueueConfig;
use crate::event::Event;
use crate::project::Project;
use crate::state::{StateDir, StateError};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Nats(#[from] nats::NatsError),
    #[error("cannot start the NATS client: {0}")]
    Runtime(std::io::Error),
}

/// Where an event went.
#[derive(Debug, Clone)]
pub enum Receipt {
    /// Its file in `.autod/inbox/`.
    Folder(PathBuf),
    /// Stored by the stream (a duplicate: stored before, under its eventId).
    Nats(nats::Published),
}

/// A producer's handle on the project's queue, opened once per command.
pub enum Queue {
    Folder(StateDir),
    /// A connection and the one-thread runtime that drives it: the commands
    /// that produce are synchronous, and a publish waits for its ack anyway.
    Nats(Box<Nats>),
}

pub struct Nats {
    runtime: tokio::runtime::Runtime,
    connection: nats::Connection,
    urls: String,
}

impl Queue {
    /// The queue of `[queue]`. For NATS this connects, so a server that is
    /// down is reported before any event is read.
    pub fn open(project: &Project) -> Result<Queue, QueueError> {
        match &project.config.queue {
            QueueConfig::Folder => Ok(Queue::Folder(project.state.clone())),
            QueueConfig::Nats(config) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(QueueError::Runtime)?;
                let connection = runtime.block_on(nats::Connection::open(config))?;
                Ok(Queue::Nats(Box::new(Nats {
                    runtime,
                    connection,
                    urls: config.urls.join(", "),
                })))
            }
        }
    }

    /// Hands one accepted event over; it is durable once this returns `Ok`.
    /// On `Err` nothing of it was kept (a NATS publish without an ack may
    /// have been: sending it again is safe, its eventId dedupes).
    pub fn put(&self, event: &Event) -> Result<Receipt, QueueError> {
        match self {
            Queue::Folder(state) => Ok(Receipt::Folder(folder::put(state, event)?)),
            Queue::Nats(n) => Ok(Receipt::Nats(
                n.runtime.block_on(n.connection.publish(event))?,
            )),
        }
    }

    /// [`Queue::put`] of an event `autod replay` hands to the daemons: the
    /// folder names it `<eventId>.replay.json`; NATS publishes it under a
    /// message id of its own, marked a replay (see `producer.rs`).
    pub fn put_replay(&self, event: &Event) -> Result<Receipt, QueueError> {
        match self {
            Queue::Folder(state) => Ok(Receipt::Folder(state.inbox_put_replay(event)?)),
            Queue::Nats(n) => Ok(Receipt::Nats(n.runtime.block_on(producer::publish(
                &n.connection,
                &n.urls,
                event,
                true,
            ))?)),
        }
    }

    /// Whether a daemon on this machine is what delivers the events.
    pub fn is_local(&self) -> bool {
        matches!(self, Queue::Folder(_))
    }

    /// Where the events go, for a person: the inbox, or the stream and its servers.
    pub fn describe(&self) -> String {
        match self {
            Queue::Folder(_) => ".autod/inbox/".to_owned(),
            Queue::Nats(n) => format!("stream {} at {}", n.connection.names.stream, n.urls),
        }
    }
}

/// A producer's handle inside a tokio runtime (`autod run`, `autod serve`):
/// opened once per process, cloned to every intake. The folder variant is
/// the very calls the producers made before there was a NATS backend.
#[derive(Clone)]
pub enum Producer {
    Folder(StateDir),
    Nats(Arc<producer::Publisher>),
}

impl Producer {
    /// The producer of `[queue]`. For NATS it connects, or, when the server
    /// cannot be reached, keeps trying in the background: the process starts
    /// anyway, and each publish until then fails, saying why (`until`: what
    /// else waits for the server, as the log says it).
    pub async fn open(state: &StateDir, queue: &QueueConfig, until: &str) -> Producer {
        match queue {
            QueueConfig::Folder => Producer::Folder(state.clone()),
            QueueConfig::Nats(config) => {
                Producer::Nats(producer::Publisher::open(config, until).await)
            }
        }
    }

    /// Hands one accepted event over; durable once this returns `Ok`.
    pub async fn put(&self, event: &Event) -> Result<Receipt, QueueError> {
        match self {
            Producer::Folder(state) => Ok(Receipt::Folder(folder::put(state, event)?)),
            Producer::Nats(p) => Ok(Receipt::Nats(p.publish(event, false).await?)),
        }
    }

    /// Hands every event over, each durable once its `Ok` is in, in order;
    /// one that fails does not stop the ones after it. On NATS all are sent
    /// before any ack is awaited: one round trip for the lot. `Err` (no
    /// connection) means none was sent.
    pub async fn put_all(
        &self,
        events: &[&Event],
    ) -> Result<Vec<Result<Receipt, QueueError>>, QueueError> {
        match self {
            Producer::Folder(state) => Ok(events
                .iter()
                .map(|e| Ok(Receipt::Folder(folder::put(state, e)?)))
                .collect()),
            Producer::Nats(p) => Ok(p
                .publish_all(events)
                .await?
                .into_iter()
                .map(|r| Ok(Receipt::Nats(r?)))
                .collect()),
        }
    }

    /// [`Producer::put`] of a replayed event (see [`Queue::put_replay`]).
    pub async fn put_replay(&self, event: &Event) -> Result<Receipt, QueueError> {
        match self {
            Producer::Folder(state) => Ok(Receipt::Folder(state.inbox_put_replay(event)?)),
            Producer::Nats(p) => Ok(Receipt::Nats(p.publish(event, true).await?)),
        }
    }

    /// Whether the events go to this machine's inbox.
    pub fn is_local(&self) -> bool {
        matches!(self, Producer::Folder(_))
    }

    /// The NATS publisher, when that is the backend.
    pub fn nats(&self) -> Option<&Arc<producer::Publisher>> {
        match self {
            Producer::Folder(_) => None,
            Producer::Nats(p) => Some(p),
        }
    }
}
