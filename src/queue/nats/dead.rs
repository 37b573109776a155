//! Dead letters and retries on JetStream.
//!
//! A failed pair is not nak'ed with its backoff: a nak'ed message still counts
//! against the consumer's `max_ack_pending` (the handler's group-wide
//! `concurrency`) until it is redelivered, so one failing event would pause
//! its handler on every host for the whole backoff. Instead the worker puts
//! the pair's record in the dead-letter stream, then acks the event:
//!
//! - `<stream>_DEAD.<handler>.<eventId key>` holds the newest record of each
//!   pair (the same [`DeadLetter`] as `.autod/dead/` on the folder backend),
//!   so `autod dead` and `autod retry` on any host see every host's failures;
//! - the durable consumer [`RETRY_CONSUMER`] on that stream is how a waiting
//!   record comes back when due: a host pulls it, naks it with a delay until
//!   `nextAttemptAt` (that pending message counts against this consumer's
//!   limit, which is unlimited, not the handler's), then publishes the event
//!   again on `<stream>_RETRY.<handler>`, which only that handler's consumer
//!   takes. The retry therefore queues behind the handler's `concurrency`
//!   like any event, and its `Nats-Msg-Id` (pair and attempt) makes two hosts
//!   scheduling the same record publish it once;
//! - the run of a retry reads the record back from the stream first, so the
//!   attempt count goes on across hosts, and a record that was dropped (or a
//!   pair that succeeded meanwhile) is not run.

use async_nats::HeaderMap;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use futures_util::StreamExt;

use super::{Connection, Names, NatsError, pair_key};
use crate::state::dead::DeadLetter;

/// The durable consumer on the dead-letter stream that brings waiting records
/// back when due. One for the whole group: each record goes to one host.
pub const RETRY_CONSUMER: &str = "autod-retry";
/// Marks a retry that a person asked for (`autod retry`): it runs a pair that
/// was given up on, as `Mode::Requested` does on the folder backend.
pub const REQUESTED_HEADER: &str = "Autod-Requested";

/// The subject of a pair's dead letter.
pub fn dead_subject(names: &Names, handler: &str, event_id: &str) -> String {
    format!("{}.{}", names.dead, pair_key(handler, event_id))
}

/// The subject a handler's retries are published on, in the events stream.
pub fn retry_subject(names: &Names, handler: &str) -> String {
    format!("{}.{handler}", names.retry)
}

/// Whether a message pulled for `handler` is a retry of it (and not an event
/// published for everyone).
pub fn is_retry(names: &Names, handler: &str, subject: &str) -> bool {
    subject == retry_subject(names, handler)
}

impl Connection {
    async fn dead_stream(&self) -> Result<async_nats::jetstream::stream::Stream, NatsError> {
        self.stream(&self.names.dead).await
    }

    /// Stores a pair's record (replacing the one before), once the server
    /// has acked it.
    pub async fn dead_put(&self, record: &DeadLetter) -> Result<(), NatsError> {
        let subject = dead_subject(&self.names, &record.handler, &record.event_id);
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Expected-Stream", self.names.dead.as_str());
        let body = serde_json::to_vec(record).map_err(|e| NatsError::Server(e.to_string()))?;
        self.publish_acked(subject, headers, body)
            .await
            .map_err(|(subject, e)| NatsError::Publish {
                event_id: record.event_id.clone(),
                subject,
                why: format!(
                    "the dead letter of handler {} was not stored: {e}",
                    record.handler
                ),
            })
    }

    /// The newest record of a pair, if it has one.
    pub async fn dead_get(
        &self,
        handler: &str,
        event_id: &str,
    ) -> Result<Option<DeadLetter>, NatsError> {
        let stream = self.dead_stream().await?;
        let subject = dead_subject(&self.names, handler, event_id);
        match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => parse(&m.subject, &m.payload).map(Some),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(NatsError::Server(format!(
                "cannot read {subject} from stream {}: {e}",
                self.names.dead
            ))),
        }
    }

    /// Every pair's newest record, oldest subject first. One that cannot be
    /// read is an `Err` in its place, so the others are still listed.
    pub async fn dead_list(&self) -> Result<Vec<Result<DeadLetter, NatsError>>, NatsError> {
        let stream = self.dead_stream().await?;
        let mut subjects = stream
            .info_with_subjects(format!("{}.>", self.names.dead))
            .await
            .map_err(|e| {
                NatsError::Server(format!("cannot read stream {}: {e}", self.names.dead))
            })?;
        let mut names = Vec::new();
        while let Some(entry) = subjects.next().await {
            let (subject, _) = entry.map_err(|e| {
                NatsError::Server(format!("cannot list stream {}: {e}", self.names.dead))
            })?;
            names.push(subject);
        }
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for subject in names {
            match stream.get_last_raw_message_by_subject(&subject).await {
                Ok(m) => out.push(parse(&m.subject, &m.payload)),
                // Dropped between the listing and now.
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {}
                Err(e) => out.push(Err(NatsError::Server(format!(
                    "cannot read {subject} from stream {}: {e}",
                    self.names.dead
                )))),
            }
        }
        Ok(out)
    }

    /// Removes a pair's record; whether it had one.
    pub async fn dead_remove(&self, handler: &str, event_id: &str) -> Result<bool, NatsError> {
        let stream = self.dead_stream().await?;
        let subject = dead_subject(&self.names, handler, event_id);
        let purged = stream.purge().filter(subject.clone()).await.map_err(|e| {
            NatsError::Server(format!(
                "cannot remove {subject} from stream {}: {e}",
                self.names.dead
            ))
        })?;
        Ok(purged.purged > 0)
    }

    /// Publishes the record's event again for its handler alone. Scheduled
    /// retries of one attempt share their message id, so hosts racing on
    /// one record publish it once; a requested one is always new.
    pub async fn retry_publish(
        &self,
        record: &DeadLetter,
        requested: bool,
    ) -> Result<(), NatsError> {
        let subject = retry_subject(&self.names, &record.handler);
        let key = pair_key(&record.handler, &record.event_id);
        let id = if requested {
            format!("retry/{key}/requested/{}", uuid::Uuid::now_v7())
        } else {
            format!("retry/{key}/{}", record.attempts)
        };
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        headers.insert("Nats-Expected-Stream", self.names.stream.as_str());
        if requested {
            headers.insert(REQUESTED_HEADER, "1");
        }
        let body =
            serde_json::to_vec(&record.event).map_err(|e| NatsError::Server(e.to_string()))?;
        self.publish_acked(subject, headers, body)
            .await
            .map_err(|(subject, e)| NatsError::Publish {
                event_id: record.event_id.clone(),
                subject,
                why: format!("{e}; the retry was not queued, the dead letter stays"),
            })
    }
}

impl Connection {
    /// Publishes and waits for the stream's ack; on failure, the subject
    /// and what went wrong.
    async fn publish_acked(
        &self,
        subject: String,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<(), (String, String)> {
        match self
            .js
            .publish_with_headers(subject.clone(), headers, body.into())
            .await
        {
            Ok(ack) => ack.await.map(drop).map_err(|e| (subject, e.to_string())),
            Err(e) => Err((subject, e.to_string())),
        }
    }
}

fn parse(subject: &str, payload: &[u8]) -> Result<DeadLetter, NatsError> {
    serde_json::from_slice(payload).map_err(|e| {
        NatsError::Server(format!(
            "the dead letter on {subject} is not a record autod can read ({e}); remove it with `nats stream purge --subject {subject}` or `autod dead drop`"
        ))
    })
}
