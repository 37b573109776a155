//! Chaining (SPEC 8): the follow-up events a successful run wrote to the file
//! named by `AUTOD_EMIT`, one JSON object a line.
//!
//! The engine reads them only after the handler exited 0, builds each child
//! (source `handler:<name>`, causation and correlation ids, a derived eventId),
//! validates all of them before accepting any, and makes them durable through
//! a [`Sink`] before the parent's success is recorded. A crash in between
//! leaves the parent without an outcome, so it runs again and emits the same
//! children under the same ids: nothing is lost, and a child that already
//! succeeded is skipped by its done markers.
//!
//! The sink is the one seam between a run and whoever delivers its children:
//! the daemon's queue (its inbox, or with `[queue] backend = "nats"` the
//! stream, where any host's worker takes them), or the `processing/` queue
//! that `dispatch` and `retry` work through themselves in the same invocation.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::event::Event;
use crate::intake::{Admitted, Intake};
use crate::queue::{Producer, QueueError};
use crate::schema::Invalid;
use crate::state::{StateDir, atomic};

/// A chain is cut when a follow-up would be this deep (the root is depth 0).
pub const MAX_DEPTH: u64 = 16;
/// The envelope field that carries an event's depth in its chain.
pub const DEPTH_FIELD: &str = "chainDepth";

/// Fixed namespace of the UUIDv5 child eventIds, so that the same (parent,
/// handler, line) names the same child on every machine and every run.
const CHILD_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5f0c_8a51_2b7e_4c1d_9d55_6a0e_a7d3_c0de);

/// A validated, routed follow-up.
#[derive(Debug, Clone)]
pub struct FollowUp {
    pub event: Event,
    pub handlers: Vec<String>,
    /// The AUTOD_EMIT line it came from (1-based).
    pub line: usize,
}

/// Why a successful run's follow-ups were not accepted; the parent pair fails
/// (retryable) with this message.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("AUTOD_EMIT line {line}: {why}; no follow-up of this run was accepted")]
    Line { line: usize, why: String },
    #[error("AUTOD_EMIT {0}; no follow-up of this run was accepted")]
    File(String),
}

/// Where a run's accepted follow-ups go.
pub struct Sink {
    intake: Arc<Mutex<Intake>>,
    state: StateDir,
    place: Place,
    /// Where [`Place::Inbox`] and [`Place::InboxReplay`] put them: the
    /// inbox of `state` unless [`Sink::through`] says otherwise.
    queue: Producer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The daemon's queue (its inbox, or the NATS stream): delivered like
    /// any event.
    Inbox,
    /// The daemon's queue, marked as part of a replay (follow-ups of a
    /// replayed run are replayed too, as with `autod replay --direct`).
    InboxReplay,
    /// `processing/`, for the `dispatch` or `retry` that emitted them to run
    /// next; a start of `autod run` recovers them if that process dies.
    Processing,
}

impl Sink {
    pub fn new(intake: Arc<Mutex<Intake>>, state: StateDir, place: Place) -> Sink {
        Sink {
            intake,
            queue: Producer::Folder(state.clone()),
            state,
            place,
        }
    }

    /// The daemon's queue, for [`Place::Inbox`] and [`Place::InboxReplay`].
    pub fn through(mut self, queue: Producer) -> Sink {
        self.queue = queue;
        self
    }

    pub fn place(&self) -> Place {
        self.place
    }

    fn admit(&self, obj: Map<String, Value>) -> Result<Admitted, Invalid> {
        self.intake.lock().expect("intake lock").admit_object(obj)
    }

    /// Durable once this returns: fsync'd file and folder, or the stream's
    /// ack of the publish.
    pub async fn persist(&self, event: &Event) -> Result<(), QueueError> {
        match self.place {
            Place::Inbox => self.queue.put(event).await.map(drop),
            Place::InboxReplay => self.queue.put_replay(event).await.map(drop),
            Place::Processing => Ok(self.state.processing_put(event).map(drop)?),
        }
    }
}

/// The follow-ups of one successful run, before they are persisted.
#[derive(Debug, Default)]
pub struct Emitted {
    pub accepted: Vec<FollowUp>,
    /// Follow-ups beyond [`MAX_DEPTH`]: not accepted, each told in a
    /// `rejected` line; the parent still succeeds.
    pub cut: Vec<Map<String, Value>>,
}

/// Reads, builds and validates every follow-up of a run: all or none.
pub fn collect(
    sink: &Sink,
    parent: &Event,
    handler: &str,
    emit: &Path,
    max_follow_ups: usize,
    max_line_bytes: u64,
) -> Result<Emitted, EmitError> {
    let lines = read(emit, max_follow_ups, max_line_bytes)?;
    let mut out = Emitted::default();
    let depth = depth(parent) + 1;
    for (line, raw) in lines {
        let obj = child(parent, handler, line, depth, raw)
            .map_err(|why| EmitError::Line { line, why })?;
        if depth > MAX_DEPTH {
            out.cut.push(obj);
            continue;
        }
        let admitted = sink.admit(obj).map_err(|invalid| EmitError::Line {
            line,
            why: invalid.to_string(),
        })?;
        out.accepted.push(FollowUp {
            event: admitted.event,
            handlers: admitted.handlers,
            line,
        });
    }
    Ok(out)
}

/// How much of a given-up pair's stderr goes into its notice: enough for the
/// message a person needs, small enough to stay far below max_event_bytes.
const NOTICE_STDERR_BYTES: usize = 4096;

/// The `[notify] on_dead` event about a pair autod gave up on (SPEC 13),
/// validated and routed: `Ok(None)` for a pair of a notice itself (a notice
/// about a notice would loop), `Err` with why it was not accepted.
pub fn dead_notice(
    sink: &Sink,
    event: &Event,
    record: &crate::state::dead::DeadLetter,
    event_type: &str,
) -> Result<Option<FollowUp>, String> {
    if event.event_type() == event_type {
        return Ok(None);
    }
    let tail = &record.stderr_tail;
    let mut cut = tail.len().saturating_sub(NOTICE_STDERR_BYTES);
    while !tail.is_char_boundary(cut) {
        cut += 1;
    }
    let name = format!("{}\n{}\ndead", event.id(), record.handler);
    let mut obj = Map::new();
    obj.insert("eventType".into(), event_type.into());
    let id = uuid::Uuid::new_v5(&CHILD_NAMESPACE, name.as_bytes()).to_string();
    stamp(&mut obj, event, id, "autod".to_owned(), depth(event) + 1);
    obj.insert(
        "payload".into(),
        serde_json::json!({
            "handler": record.handler,
            "eventId": event.id(),
            "eventType": event.event_type(),
            "state": record.state.as_str(),
            "attempts": record.attempts,
            "lastError": record.last_error,
            "lastExitCode": record.last_exit_code,
            "stderrTail": &tail[cut..],
        }),
    );
    let admitted = sink.admit(obj).map_err(|invalid| invalid.to_string())?;
    Ok(Some(FollowUp {
        event: admitted.event,
        handlers: admitted.handlers,
        line: 0,
    }))
}

/// An event's depth in its chain: 0 for one that no handler emitted.
pub fn depth(event: &Event) -> u64 {
    event
        .fields()
        .get(DEPTH_FIELD)
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// The eventId of the follow-up on `line` of `handler`'s run for `parent`:
/// the same for every run of the pair, so a retried or re-run handler never
/// causes the same follow-up twice.
///
/// Joined with a newline, which neither an eventId nor a handler name can
/// contain, so different triples never make the same name.
pub fn child_id(parent: &str, handler: &str, line: usize) -> String {
    let name = format!("{parent}\n{handler}\n{line}");
    uuid::Uuid::new_v5(&CHILD_NAMESPACE, name.as_bytes()).to_string()
}

/// The follow-up as an event to validate: what the handler wrote, with the
/// fields that autod owns set by autod.
fn child(
    parent: &Event,
    handler: &str,
    line: usize,
    depth: u64,
    raw: Value,
) -> Result<Map<String, Value>, String> {
    let Value::Object(mut obj) = raw else {
        return Err(format!(
            "a follow-up is one JSON object per line, with eventType and payload; this line is {}",
            kind(&raw)
        ));
    };
    if obj.contains_key("specversion") {
        return Err(
            "a follow-up is an autod event (eventType, payload), not a CloudEvent".to_owned(),
        );
    }
    let id = child_id(parent.id(), handler, line);
    stamp(&mut obj, parent, id, format!("handler:{handler}"), depth);
    Ok(obj)
}

/// The fields autod owns on an event it accepts because of `parent` (a
/// follow-up, an `on_dead` notice), replacing whatever was written there.
fn stamp(obj: &mut Map<String, Value>, parent: &Event, id: String, source: String, depth: u64) {
    obj.insert("eventId".into(), id.into());
    obj.insert("source".into(), source.into());
    obj.insert("causationId".into(), parent.id().into());
    obj.insert("correlationId".into(), parent.correlation_id().into());
    obj.insert(DEPTH_FIELD.into(), depth.into());
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The non-blank lines of the emit file, parsed, with their line numbers.
/// Bounded in count and per line, and only a regular file is read: the
/// handler controls this path, and a FIFO or a link must not hang or steer
/// autod.
fn read(
    path: &Path,
    max_lines: usize,
    max_line_bytes: u64,
) -> Result<Vec<(usize, Value)>, EmitError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(atomic::nofollow() | rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(EmitError::File(
                "is a symbolic link; write the follow-ups into the file itself".to_owned(),
            ));
        }
        Err(e) => return Err(EmitError::File(format!("cannot be read: {e}"))),
    };
    let meta = file
        .metadata()
        .map_err(|e| EmitError::File(format!("cannot be read: {e}")))?;
    if !meta.file_type().is_file() {
        let what = if meta.file_type().is_fifo() {
            "a FIFO"
        } else {
            "not a regular file"
        };
        return Err(EmitError::File(format!(
            "is {what}; write the follow-ups into a regular file"
        )));
    }
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(max_line_bytes + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| EmitError::File(format!("cannot be read: {e}")))?;
        if n == 0 {
            break;
        }
        line += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else if buf.len() as u64 > max_line_bytes {
            return Err(EmitError::Line {
                line,
                why: format!("longer than max_event_bytes ({max_line_bytes} bytes)"),
            });
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if out.len() == max_lines {
            return Err(EmitError::Line {
                line,
                why: format!(
                    "more than {max_lines} follow-ups from one run; raise [chaining] max_follow_ups if that is meant"
                ),
            });
        }
        let value: Value = serde_json::from_slice(&buf).map_err(|e| EmitError::Line {
            line,
            why: format!("not JSON ({e})"),
        })?;
        out.push((line, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_ids_are_stable_distinct_and_valid() {
        let a = child_id("ev-1", "enrich", 1);
        assert_eq!(a, child_id("ev-1", "enrich", 1));
        assert_ne!(a, child_id("ev-1", "enrich", 2));
        assert_ne!(a, child_id("ev-1", "decide", 1));
        assert_ne!(a, child_id("ev-2", "enrich", 1));
        // The separator is one no eventId can hold, so no two triples
        // make the same name.
        assert!(!crate::event::valid_id("a\nb"));
        assert!(crate::event::valid_id(&a), "{a}");
    }

    fn emit_file(text: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("emit");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn reads_objects_skipping_blank_lines_with_their_numbers() {
        let (_d, p) = emit_file(b"{\"a\":1}\n\n  \n{\"b\":2}");
        let got = read(&p, 10, 100).unwrap();
        assert_eq!(got.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [1, 4]);
    }

    #[test]
    fn bounds_count_and_line_length() {
        let (_d, p) = emit_file(b"{}\n{}\n{}\n");
        let e = read(&p, 2, 100).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("max_follow_ups"), "{e}");
        let (_d, p) = emit_file(&[b'x'; 200]);
        let e = read(&p, 2, 100).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("max_event_bytes"), "{e}");
        let (_d, p) = emit_file(b"{\"a\":\n");
        let e = read(&p, 2, 100).unwrap_err().to_string();
        assert!(e.contains("line 1: not JSON"), "{e}");
    }

    #[test]
    fn a_fifo_or_a_link_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let e = read(&fifo, 2, 100).unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        let e = read(&link, 2, 100).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(read(&dir.path().join("none"), 2, 100).unwrap().is_empty());
    }
}
