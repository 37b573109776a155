//! Intake: where events enter. Bytes from a file, stdin, the inbox, a watch or a
//! schedule become an accepted [`Event`] with the handlers it goes to, or a
//! rejection that says why. Everything after intake (the engine, the runner)
//! works the same whatever the source.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::{Config, Handler, Unrouted};
use crate::event::{Event, Violation};
use crate::exit::Code;
use crate::route;
use crate::schema::{Invalid, SchemaError, Schemas};

/// Validates and routes events for one project configuration.
pub struct Intake {
    schemas: Schemas,
    handlers: Vec<Handler>,
    unrouted: Unrouted,
}

/// An event that passed validation and routing.
pub struct Admitted {
    pub event: Event,
    /// Handler names, in config order; empty when `[routing] unrouted = "ignore"`.
    pub handlers: Vec<String>,
}

impl Intake {
    pub fn new(root: &Path, config: &Config) -> Result<Intake, SchemaError> {
        let v = &config.validation;
        Ok(Intake {
            schemas: Schemas::load_with(root, v.require_schema, v.max_event_bytes, v.formats)?,
            handlers: config.handlers.clone(),
            unrouted: config.routing.unrouted,
        })
    }

    /// Reads the schema files again (see [`Schemas::reload`]).
    pub fn reload_schemas(&mut self) -> Result<(), SchemaError> {
        self.schemas.reload()
    }

    pub fn admit(&mut self, bytes: &[u8], only: Option<&str>) -> Result<Admitted, Invalid> {
        let event = self.schemas.accept(bytes)?;
        // A CloudEvent's routing errors name `/type`, as its other errors do.
        let cloudevent = event.fields().contains_key("specversion");
        self.route(event, only).map_err(|e| match e {
            Invalid::Rejected(v) if cloudevent => Invalid::Rejected(
                v.into_iter()
                    .map(crate::event::in_cloudevent_terms)
                    .collect(),
            ),
            other => other,
        })
    }

    /// For events autod builds itself (watches, schedules): same checks, no bytes.
    pub fn admit_object(&mut self, obj: Map<String, Value>) -> Result<Admitted, Invalid> {
        let event = self.schemas.accept_object(obj)?;
        self.route(event, None)
    }

    /// Whether the project knows `event_type` (a schema file or a route):
    /// only such a type is a metrics label, so a sender cannot make series.
    pub fn knows(&self, event_type: &str) -> bool {
        crate::event::valid_id(event_type)
            && (!route::routes(&self.handlers, event_type).is_empty()
                || self
                    .schemas
                    .dir()
                    .join(format!("{event_type}.json"))
                    .is_file())
    }

    /// `event_type` as a metrics label: itself if known, else `(unknown)`.
    pub fn metric_type<'a>(&self, event_type: Option<&'a str>) -> &'a str {
        match event_type {
            Some(t) if self.knows(t) => t,
            _ => crate::metrics::UNKNOWN_TYPE,
        }
    }

    fn route(&self, event: Event, only: Option<&str>) -> Result<Admitted, Invalid> {
        let mut handlers: Vec<String> = route::routes(&self.handlers, event.event_type())
            .iter()
            .map(|r| r.handler.name.clone())
            .collect();
        if let Some(only) = only {
            handlers.retain(|h| h == only);
            if handlers.is_empty() {
                return Err(unroutable(format!(
                    "handler {only} does not handle eventType {:?} (check its `on` in autod.toml)",
                    event.event_type()
                )));
            }
        }
        if handlers.is_empty() && self.unrouted == Unrouted::Reject {
            return Err(unroutable(format!(
                "no handler's `on` matches eventType {:?}; add it to a handler in autod.toml (or set [routing] unrouted = \"ignore\")",
                event.event_type()
            )));
        }
        Ok(Admitted { event, handlers })
    }
}

fn unroutable(why: String) -> Invalid {
    Invalid::Rejected(vec![Violation::new("/eventType", "route", why)])
}

/// The exit code of a refusal: the event's fault (3) or the project's (2).
pub fn refusal_code(invalid: &Invalid) -> Code {
    match invalid {
        Invalid::Rejected(_) => Code::Rejected,
        Invalid::Schema(_) => Code::Usage,
    }
}

/// Why a refusal is the project's fault rather than the event's, if it is: a
/// schema that cannot be used, or an eventType that no schema or handler takes
/// (any more). The daemon holds such an event instead of rejecting it: it was
/// accepted once, and fixing the project must be enough to run it.
pub fn project_fault(invalid: &Invalid) -> Option<String> {
    match invalid {
        Invalid::Schema(_) => Some(invalid.to_string()),
        Invalid::Rejected(v) => {
            let project = |x: &Violation| {
                // `/type`: the same, for a CloudEvent.
                matches!(x.pointer.as_str(), "/eventType" | "/type")
                    && matches!(x.keyword.as_str(), "route" | "schema")
            };
            (!v.is_empty() && v.iter().all(project)).then(|| {
                v.iter()
                    .map(|x| x.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        }
    }
}

/// Says why an input was refused, one line per violation on stderr: an event
/// the schemas reject is `rejected`, one no schema could check (a broken
/// schema) is `not checked`.
pub fn tell_refusal(label: &str, invalid: &Invalid) {
    match invalid {
        Invalid::Rejected(violations) => {
            for v in violations {
                tracing::error!("{label}: rejected {v}");
            }
        }
        Invalid::Schema(_) => tracing::error!("{label}: not checked: {invalid}"),
    }
}

/// The refusal as the `--json` line of an input: `"status": "rejected"` with
/// the violations (exit 3), or `"status": "error", "kind": "schema"` with the
/// broken schema's file (exit 2).
pub fn refusal_json(label: &str, invalid: &Invalid) -> Value {
    match invalid {
        Invalid::Rejected(violations) => {
            serde_json::json!({"input": label, "status": "rejected", "errors": violations})
        }
        Invalid::Schema(e) => serde_json::json!({
            "input": label,
            "status": "error",
            "kind": "schema",
            "file": e.shown,
            "error": invalid.to_string(),
        }),
    }
}

/// The refusal as violations, for messages and `.error.json` files.
pub fn refusal_violations(invalid: &Invalid) -> Vec<Violation> {
    match invalid {
        Invalid::Rejected(v) => v.clone(),
        Invalid::Schema(_) => vec![Violation::new("", "schema", invalid.to_string())],
    }
}

/// The eventId (`-` when none is usable) and eventType a refused input
/// claimed, in autod's or CloudEvents' terms, so its `rejected` log line can
/// be found.
/// Only values that pass the id charset are taken: they end up in logs and
/// file names.
pub fn claimed(bytes: &[u8]) -> (String, Option<String>) {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(bytes) else {
        return ("-".to_owned(), None);
    };
    let (id, event_type) = if crate::event::is_cloudevent(&obj) {
        ("id", "type")
    } else {
        ("eventId", "eventType")
    };
    let field = |name: &str| {
        obj.get(name)
            .and_then(Value::as_str)
            .filter(|s| crate::event::valid_id(s))
            .map(str::to_owned)
    };
    (
        field(id).unwrap_or_else(|| "-".to_owned()),
        field(event_type),
    )
}

/// One candidate event: where it came from, and its bytes (or why there are none).
pub struct Input {
    pub label: String,
    pub bytes: Result<Vec<u8>, InputError>,
}

pub enum InputError {
    /// Could not be read at all: a usage error (exit 2).
    Unreadable(String),
    /// Over the size limit, so never read: a rejected event (exit 3).
    TooLarge(u64),
}

/// The inputs of FILE arguments, read one at a time as they are consumed; `-`
/// expands to the events on stdin. Memory stays bounded by the size limit: a
/// long NDJSON stream is never held whole, and neither is an endless pipe.
pub fn read_inputs(
    files: &[PathBuf],
    max_bytes: u64,
) -> anyhow::Result<impl Iterator<Item = Input>> {
    let stdin_count = files.iter().filter(|f| f.as_os_str() == "-").count();
    anyhow::ensure!(stdin_count <= 1, "`-` (stdin) given twice");
    let files = files.to_vec();
    Ok(files
        .into_iter()
        .flat_map(move |f| -> Box<dyn Iterator<Item = Input>> {
            if f.as_os_str() == "-" {
                Box::new(stdin_inputs(max_bytes))
            } else {
                Box::new(std::iter::once(Input {
                    label: f.display().to_string(),
                    bytes: read_file(&f, max_bytes),
                }))
            }
        }))
}

/// stdin holds one event (possibly pretty-printed) or one event per line. Up to
/// the size limit it is read whole and both are tried; past it, it can only be
/// NDJSON and is read a line at a time, each line capped at the limit.
fn stdin_inputs(max_bytes: u64) -> Box<dyn Iterator<Item = Input>> {
    let mut head = Vec::new();
    let stdin = std::io::stdin();
    if let Err(e) = stdin
        .lock()
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut head)
    {
        return Box::new(std::iter::once(Input {
            label: "stdin".into(),
            bytes: Err(InputError::Unreadable(format!("cannot read stdin: {e}"))),
        }));
    }
    if head.len() as u64 <= max_bytes {
        return Box::new(split_stdin(head, max_bytes).into_iter());
    }
    // Larger than the default 8 KiB: a long stream of 1 KiB events took a
    // read(2) per eight of them.
    let reader =
        std::io::BufReader::with_capacity(64 * 1024, std::io::Cursor::new(head).chain(stdin));
    Box::new(NdjsonLines {
        reader,
        buf: Vec::new(),
        line: 0,
        max_bytes,
    })
}

struct NdjsonLines<R> {
    reader: R,
    buf: Vec<u8>,
    line: usize,
    max_bytes: u64,
}

impl<R: BufRead> Iterator for NdjsonLines<R> {
    type Item = Input;

    fn next(&mut self) -> Option<Input> {
        loop {
            // Read into a buffer kept across lines, then copied out at its
            // size: a fresh Vec grew by doubling, a reallocation per power of two.
            let buf = &mut self.buf;
            buf.clear();
            let cap = self.max_bytes.saturating_add(2); // the line, a '\r' and its '\n'
            match (&mut self.reader).take(cap).read_until(b'\n', buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    return Some(Input {
                        label: format!("stdin:{}", self.line + 1),
                        bytes: Err(InputError::Unreadable(format!("cannot read stdin: {e}"))),
                    });
                }
            }
            self.line += 1;
            let label = format!("stdin:{}", self.line);
            if !buf.ends_with(b"\n") && buf.len() as u64 >= cap {
                // Over the limit: drop the rest of the line unread.
                let _ = self.reader.skip_until(b'\n');
                return Some(Input {
                    label,
                    bytes: Err(InputError::TooLarge(self.max_bytes + 1)),
                });
            }
            while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                buf.pop();
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if buf.len() as u64 > self.max_bytes {
                return Some(Input {
                    label,
                    bytes: Err(InputError::TooLarge(buf.len() as u64)),
                });
            }
            return Some(Input {
                label,
                bytes: Ok(buf.clone()),
            });
        }
    }
}

fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, InputError> {
    let unreadable = |e: std::io::Error| {
        InputError::Unreadable(match e.kind() {
            // cron runs in $HOME, not in the project: say where it looked.
            std::io::ErrorKind::NotFound if path.is_relative() => format!(
                "no such file (a relative FILE is relative to the working directory, {}, not to the project root; cron starts in $HOME, so give an absolute path there)",
                std::env::current_dir()
                    .map_or_else(|_| "?".to_owned(), |d| d.display().to_string())
            ),
            std::io::ErrorKind::NotFound => "no such file".to_owned(),
            _ => format!("cannot read: {e}"),
        })
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if meta.is_dir() {
        return Err(InputError::Unreadable(format!(
            "is a directory; pass the event files in it, e.g. {}/*.json",
            path.display()
        )));
    }
    if meta.len() > max_bytes {
        return Err(InputError::TooLarge(meta.len()));
    }
    // A pipe or a device has no size up front (and /dev/zero never ends): read
    // no more than one byte past the limit.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    if bytes.len() as u64 > max_bytes {
        return Err(InputError::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

/// stdin holds one event (possibly pretty-printed) or one event per line.
fn split_stdin(buf: Vec<u8>, max_bytes: u64) -> Vec<Input> {
    if buf.len() as u64 <= max_bytes
        && serde_json::from_slice::<serde::de::IgnoredAny>(&buf).is_ok()
    {
        return vec![Input {
            label: "stdin".into(),
            bytes: Ok(buf),
        }];
    }
    let lines: Vec<Input> = buf
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .map(|(i, l)| Input {
            label: format!("stdin:{}", i + 1),
            bytes: Ok(l.to_vec()),
        })
        .collect();
    let any_line_is_json = lines.iter().any(|l| {
        l.bytes
            .as_ref()
            .is_ok_and(|b| serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok())
    });
    if any_line_is_json || lines.is_empty() {
        if lines.is_empty() {
            return vec![Input {
                label: "stdin".into(),
                bytes: Ok(buf),
            }];
        }
        lines
    } else {
        // Not NDJSON either: report the input once, as one broken event.
        vec![Input {
            label: "stdin".into(),
            bytes: Ok(buf),
        }]
    }
}
