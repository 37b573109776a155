//! Per-`key` order across hosts: events that share a `key` run one at a
//! time for each handler, in the order the stream stored them, whichever
//! hosts pull them.
//!
//! A consumer hands its messages out in stream order, but to many hosts at
//! once, so the order of first delivery alone does not order the runs. So:
//!
//! - an event with a key is published on `<stream>_KEYED.<key token>.<eventType>`
//!   ([`subject`]): the stream can then be asked for the events of one key,
//!   in order (a message get with `next_by_subj`), and each handler's
//!   consumer takes them through a second set of filters;
//! - the KV bucket `<stream>_KEYS` keeps, per handler and key, the stream
//!   sequence of the last event of that key the handler has finished (run,
//!   failed into the dead-letter stream, or skipped), written before the
//!   message is acked;
//! - a pulled keyed event runs only when no earlier event of its key that
//!   the handler takes is unfinished ([`Connection::turn`]); otherwise it is
//!   nak'ed for a moment and comes back. It holds one of the handler's
//!   `max_ack_pending` while it waits, but the earliest unfinished event of
//!   every key is never waiting on its own key, so the handler always moves.
//!
//! A failure does not hold its key up (its retry comes back on the
//! handler's retry subject, outside the order), as on the folder backend.

use async_nats::jetstream::kv;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use sha2::{Digest, Sha256};

use super::{Connection, Names, NatsError};
use crate::config::Handler;

/// Longer tokens are hashed: a subject is limited, and keys are free text.
const MAX_TOKEN: usize = 64;

/// A key as one subject token: `[A-Za-z0-9_-]` kept, others `=XX`, a long
/// one `h=` and its SHA-256, so two keys never share a token.
pub fn token(key: &str) -> String {
    let mut t = String::with_capacity(key.len());
    super::escape_token(key, &mut t);
    if t.is_empty() || t.len() > MAX_TOKEN || t.starts_with("h=") {
        let digest = Sha256::digest(key.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        return format!("h={hex}");
    }
    t
}

/// The subject an event with `key` is published on.
pub fn subject(names: &Names, key: &str, event_type: &str) -> String {
    super::subject::for_event_type(&format!("{}.{}", names.keyed, token(key)), event_type)
}

/// The key token of a message's subject, if it is a keyed event.
pub fn token_of<'a>(names: &Names, subject: &'a str) -> Option<&'a str> {
    let rest = subject
        .strip_prefix(names.keyed.as_str())?
        .strip_prefix('.')?;
    rest.split('.').next()
}

/// Whether a keyed event may run now, or waits behind an earlier one.
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    Mine,
    /// Behind this stream sequence, unfinished for the handler.
    Behind(u64),
}

fn progress_key(handler: &str, token: &str) -> String {
    format!("{handler}.{token}")
}

fn read_progress(entry: Option<kv::Entry>) -> (u64, Option<u64>) {
    match entry {
        Some(e) => (
            std::str::from_utf8(&e.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
            Some(e.revision),
        ),
        None => (0, None),
    }
}

impl Connection {
    /// Whether the keyed event at `sequence` is next for `handler`: every
    /// earlier event of its key is finished by the handler, or not one the
    /// handler takes.
    pub async fn turn(
        &self,
        keys: &kv::Store,
        handler: &Handler,
        token: &str,
        sequence: u64,
    ) -> Result<Turn, NatsError> {
        let kv_error = |e: &dyn std::fmt::Display| {
            NatsError::Server(format!(
                "cannot read the key order of {} in bucket {}: {e}; run `autod queue init`",
                handler.name, self.names.keys
            ))
        };
        let entry = keys
            .entry(progress_key(&handler.name, token))
            .await
            .map_err(|e| kv_error(&e))?;
        let (finished, _) = read_progress(entry);
        // No stream info request: this runs for every keyed event.
        let stream = self
            .js
            .get_stream_no_info(&self.names.stream)
            .await
            .map_err(|e| NatsError::Server(format!("stream {}: {e}", self.names.stream)))?;
        let filter = format!("{}.{token}.>", self.names.keyed);
        let mut from = finished + 1;
        while from < sequence {
            let earlier = stream
                .raw_message_builder()
                .sequence(from)
                .next_by_subject(filter.clone())
                .send()
                .await;
            let m = match earlier {
                Ok(m) => m,
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                    return Ok(Turn::Mine);
                }
                Err(e) => {
                    return Err(NatsError::Server(format!(
                        "cannot read the events of key {token} from stream {}: {e}",
                        self.names.stream
                    )));
                }
            };
            if m.sequence >= sequence {
                return Ok(Turn::Mine);
            }
            let event_type = serde_json::from_slice::<serde_json::Value>(&m.payload)
                .ok()
                .and_then(|v| v.get("eventType")?.as_str().map(str::to_owned))
                .unwrap_or_default();
            if handler.on.iter().any(|p| p.matches(&event_type)) {
                return Ok(Turn::Behind(m.sequence));
            }
            from = m.sequence + 1;
        }
        Ok(Turn::Mine)
    }

    /// Records that `handler` is done with the keyed event at `sequence`
    /// (never moving the mark back: a redelivery of an older one may finish
    /// late).
    pub async fn finished(
        &self,
        keys: &kv::Store,
        handler: &str,
        token: &str,
        sequence: u64,
    ) -> Result<(), NatsError> {
        let key = progress_key(handler, token);
        let fail = |e: &dyn std::fmt::Display| {
            NatsError::Server(format!(
                "cannot record the key order of {handler} in bucket {}: {e}",
                self.names.keys
            ))
        };
        for _ in 0..16 {
            let entry = keys.entry(key.clone()).await.map_err(|e| fail(&e))?;
            let (done, revision) = read_progress(entry);
            if done >= sequence {
                return Ok(());
            }
            let value = sequence.to_string().into_bytes().into();
            let written = match revision {
                Some(r) => keys
                    .update(&key, value, r)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                None => keys
                    .create(&key, value)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
            };
            if written.is_ok() {
                return Ok(());
            }
            // Another host moved it meanwhile: read it again.
        }
        Err(fail(&"too many concurrent writers"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyed_subject_gives_its_token_back() {
        let names = Names {
            stream: "AUTOD".into(),
            retry: "AUTOD_RETRY".into(),
            keyed: "AUTOD_KEYED".into(),
            dead: "AUTOD_DEAD".into(),
            done: "AUTOD_DONE".into(),
            keys: "AUTOD_KEYS".into(),
        };
        let s = subject(&names, "me/site", "note.saved");
        assert_eq!(s, "AUTOD_KEYED.me=2Fsite.note.saved");
        assert_eq!(token_of(&names, &s), Some("me=2Fsite"));
        assert_eq!(token_of(&names, "AUTOD.note.saved"), None);
        assert_eq!(token_of(&names, "AUTOD_KEYEDX.a.b"), None);
    }

    #[test]
    fn tokens_are_one_valid_subject_token_and_distinct() {
        assert_eq!(token("repo-1_a"), "repo-1_a");
        assert_eq!(token("me/site"), "me=2Fsite");
        assert_ne!(token("a.b"), token("a=2Eb"));
        let long = "x".repeat(100);
        assert!(token(&long).starts_with("h=") && token(&long).len() == 66);
        assert_ne!(token(&long), token(&"x".repeat(101)));
        // A key that looks like a hashed one is hashed too.
        assert_ne!(token("h=abc"), "h=abc");
        assert!(token("").starts_with("h="));
        for k in ["a b", "ü", "a.b.c", "*", ">"] {
            let t = token(k);
            assert!(
                t.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_=".contains(&c)),
                "{k:?} -> {t:?}"
            );
        }
    }
}
