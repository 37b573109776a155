//! The queue: where an accepted event is handed over, durably, for a daemon
//! to deliver. A producer (`autod send`, later serve, watches, schedules,
//! follow-ups and replay) calls [`Queue::put`] and learns only whether the
//! event is safe; which backend took it is `[queue]`'s business:
//!
//! - `folder.rs`: `.autod/inbox/` on this machine (the default);
//! - `nats.rs`: a NATS JetStream stream that workers on many hosts pull from
//!   (SPEC 10), and what `autod queue init|status` do there;
//! - `subject.rs`: eventTypes as subjects, `on` patterns as consumer filters.
//!
//! The engine never learns which backend an event came through.

pub mod folder;
pub mod nats;
pub mod subject;

use std::path::PathBuf;

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

    /// Whether a daemon on this machine is what delivers the events.
    pub fn is_local(&self) -> bool {
        matches!(self, Queue::Folder(_))
    }
}
