//! Compiled JSON Schemas and event validation (SPEC §3).
//!
//! Order: size → JSON syntax → safe ids → envelope schema → payload schema. The
//! envelope is `schemas/event.json` or the built-in one; each eventType's payload
//! schema is compiled the first time an event of that type is seen and reused for
//! the rest of the process.
//!
//! Nothing is ever fetched: `$ref`s resolve only to files under `schemas/`, through
//! [`LocalSchemas`]. Every schema is compiled under a synthetic base URI
//! (`file:///autod-schemas/<file>`) so that relative refs work and no machine path
//! leaks into an error message.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use jsonschema::{Retrieve, Uri, Validator};
use serde_json::{Map, Value};

use crate::event::{self, Event, Violation};

/// The envelope used when a project has no `schemas/event.json`.
pub const BUILTIN_ENVELOPE: &str = include_str!("envelope.schema.json");
const BASE: &str = "file:///autod-schemas/";
/// More than this many violations in one event are summarized, not listed.
const MAX_VIOLATIONS: usize = 20;

/// A schema file that cannot be used: the project is broken, not the event.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SchemaError {
    pub path: PathBuf,
    /// 1-based line and column, when the problem is JSON syntax.
    pub line: Option<(usize, usize)>,
    pub message: String,
}

/// Why an event was not accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Invalid {
    /// The event is at fault (exit 3).
    #[error("{}", render_violations(.0))]
    Rejected(Vec<Violation>),
    /// The project's schema is at fault (exit 2): fix it, then send the event again.
    #[error("{0} (fix the schema; `autod lint` checks every schema)")]
    Schema(SchemaError),
}

fn render_violations(v: &[Violation]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Resolves `$ref`s to files under the schemas folder and refuses everything else.
struct LocalSchemas {
    dir: PathBuf,
}

impl Retrieve for LocalSchemas {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let text = uri.as_str();
        let rel = text
            .strip_prefix(BASE)
            .map(|r| r.split('#').next().unwrap_or(r))
            .ok_or_else(|| format!("{text} is not a file under schemas/; autod never fetches schemas, so copy it into schemas/ and $ref it by relative path"))?;
        let rel = percent_decode(rel);
        let rel_path = Path::new(&rel);
        if rel_path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(format!("$ref {rel:?} leaves schemas/").into());
        }
        let path = self.dir.join(rel_path);
        let bytes = std::fs::read(&path).map_err(|e| format!("$ref to schemas/{rel}: {e}"))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("schemas/{rel} is not valid JSON: {e}").into())
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if let (b'%', Some(Ok(v))) = (b[i], hex.map(|h| u8::from_str_radix(h, 16))) {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Compiles one schema document. `name` is its file name relative to the schemas
/// folder, used as the base of its relative `$ref`s.
pub fn compile(
    dir: &Path,
    name: &str,
    value: &Value,
    path: &Path,
) -> Result<Validator, SchemaError> {
    jsonschema::options()
        .with_base_uri(format!("{BASE}{name}"))
        .with_retriever(LocalSchemas {
            dir: dir.to_owned(),
        })
        .should_validate_formats(true)
        .build(value)
        .map_err(|e| SchemaError {
            path: path.to_owned(),
            line: None,
            message: format!("not a usable JSON Schema: {e}"),
        })
}

/// Reads and parses a schema file, with line and column on a syntax error.
pub fn read_schema_file(path: &Path) -> Result<Value, SchemaError> {
    let bytes = std::fs::read(path).map_err(|e| SchemaError {
        path: path.to_owned(),
        line: None,
        message: format!("cannot read: {e}"),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| SchemaError {
        path: path.to_owned(),
        line: Some((e.line(), e.column())),
        message: format!("not valid JSON: {e}"),
    })
}

/// The project's schemas, compiled on first use.
pub struct Schemas {
    dir: PathBuf,
    /// `None`: the built-in envelope, checked by [`event::check_envelope`]
    /// instead of compiling its schema on every start.
    envelope: Option<Arc<Validator>>,
    payloads: HashMap<String, Option<Arc<Validator>>>,
    require_schema: bool,
    max_event_bytes: u64,
}

impl Schemas {
    pub fn load(
        root: &Path,
        require_schema: bool,
        max_event_bytes: u64,
    ) -> Result<Schemas, SchemaError> {
        let dir = root.join("schemas");
        let path = dir.join("event.json");
        // The built-in envelope is checked in code: compiling its schema (and
        // the meta-schema it is validated against) was the largest part of a
        // one-shot dispatch's own time. A test keeps the two in agreement.
        let envelope = if path.exists() {
            let value = read_schema_file(&path)?;
            Some(Arc::new(compile(&dir, "event.json", &value, &path)?))
        } else {
            None
        };
        Ok(Schemas {
            dir,
            envelope,
            payloads: HashMap::new(),
            require_schema,
            max_event_bytes,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Schema files changed on disk (a long-running process was told so):
    /// payload schemas compile again on next use, the envelope now. An
    /// envelope that no longer loads is reported and the old one kept.
    pub fn reload(&mut self) -> Result<(), SchemaError> {
        self.payloads.clear();
        let root = self.dir.parent().unwrap_or(Path::new("."));
        let fresh = Schemas::load(root, self.require_schema, self.max_event_bytes)?;
        self.envelope = fresh.envelope;
        Ok(())
    }

    /// Bytes in, a normalized event out, or every reason it is not one.
    pub fn accept(&mut self, bytes: &[u8]) -> Result<Event, Invalid> {
        let decoded = event::decode_input(bytes, self.max_event_bytes)
            .map_err(|v| Invalid::Rejected(vec![v]))?;
        let accepted = self.accept_object(decoded.fields);
        match accepted {
            Err(Invalid::Rejected(v)) if decoded.cloudevent => Err(Invalid::Rejected(
                v.into_iter().map(event::in_cloudevent_terms).collect(),
            )),
            other => other,
        }
    }

    pub fn accept_object(&mut self, obj: Map<String, Value>) -> Result<Event, Invalid> {
        let id_problems = event::check_ids(&obj);
        if !id_problems.is_empty() {
            return Err(Invalid::Rejected(id_problems));
        }
        let value = Value::Object(obj);
        let mut violations = match &self.envelope {
            Some(validator) => collect(validator, &value, ""),
            None => event::check_envelope(value.as_object().expect("an object")),
        };
        if !violations.is_empty() {
            return Err(Invalid::Rejected(violations));
        }
        let Value::Object(obj) = value else {
            unreachable!("constructed as an object above")
        };
        let event_type = obj
            .get("eventType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match self.payload_validator(&event_type).map_err(Invalid::Schema)? {
            Some(validator) => {
                let payload = obj.get("payload").unwrap_or(&Value::Null);
                violations = collect(&validator, payload, "/payload");
            }
            None if self.require_schema => violations.push(Violation::new(
                "/eventType",
                "schema",
                format!(
                    "unknown eventType {event_type:?}: there is no schemas/{event_type}.json (create it with `autod new event {event_type}`, or set [validation] require_schema = false)"
                ),
            )),
            None => {}
        }
        if !violations.is_empty() {
            return Err(Invalid::Rejected(violations));
        }
        Ok(Event::normalize(obj))
    }

    /// Why `payload` does not validate against `schemas/<event_type>.json`:
    /// for each error, where in the payload, where in the schema (the keyword's
    /// JSON pointer) and what it says. `None` when there is no such schema.
    pub fn payload_refusals(
        &mut self,
        event_type: &str,
        payload: &Value,
    ) -> Result<Option<Vec<Refusal>>, SchemaError> {
        let Some(validator) = self.payload_validator(event_type)? else {
            return Ok(None);
        };
        Ok(Some(
            validator
                .iter_errors(payload)
                .take(MAX_VIOLATIONS)
                .map(|e| Refusal {
                    at: e.instance_path().to_string(),
                    schema_pointer: e.schema_path().to_string(),
                    message: e.to_string(),
                })
                .collect(),
        ))
    }

    fn payload_validator(
        &mut self,
        event_type: &str,
    ) -> Result<Option<Arc<Validator>>, SchemaError> {
        if let Some(v) = self.payloads.get(event_type) {
            return Ok(v.clone());
        }
        // event_type passed the id charset check, so it is a plain file name.
        let name = format!("{event_type}.json");
        let path = self.dir.join(&name);
        let compiled = if path.is_file() {
            let value = read_schema_file(&path)?;
            Some(Arc::new(compile(&self.dir, &name, &value, &path)?))
        } else {
            None
        };
        // A missing schema is not remembered when schemas are required: the
        // event is refused (or, in the daemon, held) until the file exists,
        // and creating it must be enough.
        if compiled.is_some() || !self.require_schema {
            self.payloads
                .insert(event_type.to_owned(), compiled.clone());
        }
        Ok(compiled)
    }
}

/// One way a value fails its schema, as [`Schemas::payload_refusals`] tells it.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// JSON pointer into the value.
    pub at: String,
    /// JSON pointer into the schema, to the keyword that refused it.
    pub schema_pointer: String,
    pub message: String,
}

fn collect(validator: &Validator, instance: &Value, prefix: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    for (i, error) in validator.iter_errors(instance).enumerate() {
        if i == MAX_VIOLATIONS {
            out.push(Violation::new(prefix, "more", "… and more violations"));
            break;
        }
        out.push(Violation::new(
            format!("{prefix}{}", error.instance_path()),
            error.kind().keyword(),
            error.to_string(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn project(files: &[(&str, Value)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("schemas")).unwrap();
        for (name, v) in files {
            std::fs::write(dir.path().join("schemas").join(name), v.to_string()).unwrap();
        }
        dir
    }

    fn ev(t: &str, payload: Value) -> Vec<u8> {
        json!({"eventType": t, "source": "cli", "payload": payload})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn payload_errors_name_pointer_and_keyword() {
        let dir = project(&[(
            "a.json",
            json!({"type":"object","required":["path"],"properties":{"path":{"type":"string"}}}),
        )]);
        let mut s = Schemas::load(dir.path(), true, 1 << 20).unwrap();
        assert!(s.accept(&ev("a", json!({"path":"x"}))).is_ok());
        let Err(Invalid::Rejected(v)) = s.accept(&ev("a", json!({"path": 3}))) else {
            panic!()
        };
        assert_eq!(v[0].pointer, "/payload/path");
        assert_eq!(v[0].keyword, "type");
        let Err(Invalid::Rejected(v)) = s.accept(&ev("a", json!({}))) else {
            panic!()
        };
        assert_eq!(v[0].keyword, "required");
    }

    #[test]
    fn local_refs_resolve_and_remote_refs_are_refused() {
        let dir = project(&[
            (
                "common.json",
                json!({"$defs":{"p":{"type":"string","maxLength":3}}}),
            ),
            ("a.json", json!({"$ref":"common.json#/$defs/p"})),
            ("b.json", json!({"$ref":"https://example.com/x.json"})),
            ("c.json", json!({"$ref":"../../etc/passwd"})),
        ]);
        let mut s = Schemas::load(dir.path(), true, 1 << 20).unwrap();
        assert!(s.accept(&ev("a", json!("abc"))).is_ok());
        assert!(matches!(
            s.accept(&ev("a", json!("abcd"))),
            Err(Invalid::Rejected(_))
        ));
        let Err(Invalid::Schema(e)) = s.accept(&ev("b", json!(1))) else {
            panic!()
        };
        assert!(e.message.contains("never fetches"), "{e}");
        assert!(matches!(
            s.accept(&ev("c", json!(1))),
            Err(Invalid::Schema(_))
        ));
    }

    #[test]
    fn unknown_type_is_rejected_unless_schemas_are_optional() {
        let dir = project(&[]);
        let mut s = Schemas::load(dir.path(), true, 1 << 20).unwrap();
        let Err(Invalid::Rejected(v)) = s.accept(&ev("nope", json!(1))) else {
            panic!()
        };
        assert!(v[0].message.contains("autod new event nope"));
        let mut s = Schemas::load(dir.path(), false, 1 << 20).unwrap();
        assert!(s.accept(&ev("nope", json!(1))).is_ok());
    }

    #[test]
    fn builtin_envelope_code_agrees_with_its_schema() {
        let schema: Value = serde_json::from_str(BUILTIN_ENVELOPE).unwrap();
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap();
        let samples = [
            json!({"eventType":"a","source":"cli","payload":1}),
            json!({"eventType":"a","source":"","payload":1}),
            json!({"eventType":"a","source":"x".repeat(257),"payload":1}),
            json!({"eventType":"a","source":"s".repeat(256),"payload":null}),
            json!({"eventType":"a","payload":1}),
            json!({"eventType":"a","source":"cli"}),
            json!({"eventType":"a","source":3,"payload":1}),
            json!({"eventType":"a","source":"cli","payload":1,"ts":"2026-11-24T09:00:00Z"}),
            json!({"eventType":"a","source":"cli","payload":1,"ts":"2026-11-24T09:00:00.123+01:00"}),
            json!({"eventType":"a","source":"cli","payload":1,"ts":"yesterday"}),
            json!({"eventType":"a","source":"cli","payload":1,"ts":12}),
            json!({"eventType":"a","source":"cli","payload":1,"key":""}),
            json!({"eventType":"a","source":"cli","payload":1,"key":"k"}),
            json!({"eventType":"a","source":"cli","payload":1,"key":["k"]}),
            json!({"eventType":"a","source":"cli","payload":1,"extra":{"x":1}}),
        ];
        for sample in samples {
            let by_schema: Vec<String> = validator
                .iter_errors(&sample)
                .map(|e| e.kind().keyword().to_owned())
                .collect();
            let by_code: Vec<String> = event::check_envelope(sample.as_object().unwrap())
                .into_iter()
                .map(|v| v.keyword)
                .collect();
            let (mut a, mut b) = (by_schema.clone(), by_code.clone());
            a.sort();
            b.sort();
            assert_eq!(
                a, b,
                "{sample}: schema says {by_schema:?}, code says {by_code:?}"
            );
        }
    }

    #[test]
    fn envelope_requires_source_and_payload() {
        let dir = project(&[]);
        let mut s = Schemas::load(dir.path(), false, 1 << 20).unwrap();
        let Err(Invalid::Rejected(v)) = s.accept(br#"{"eventType":"a"}"#) else {
            panic!()
        };
        let text = render_violations(&v);
        assert!(text.contains("\"source\""), "{text}");
        assert!(text.contains("\"payload\""), "{text}");
        let Err(Invalid::Rejected(v)) =
            s.accept(br#"{"eventType":"a/../b","source":"x","payload":1}"#)
        else {
            panic!()
        };
        assert_eq!(v[0].pointer, "/eventType");
    }
}
