//! Compiled JSON Schemas and event validation (SPEC §3).
//!
//! Order: size → JSON syntax → safe ids and nesting depth → envelope schema →
//! payload schema. The envelope is `schemas/event.json` or the built-in one;
//! each eventType's payload schema is compiled the first time an event of that
//! type is seen and reused for the rest of the process.
//!
//! Nothing is ever fetched: `$ref`s (and a relative `$schema`, a custom
//! meta-schema) resolve only to files under `schemas/`, through `local.rs`.
//! Formats are asserted unless `[validation] formats = "annotate"`, and a format
//! with no check is a schema error, never a silent pass. `message.rs` words the
//! violations. What is wrong with a schema ([`SchemaError`], exit 2) is kept
//! apart from what is wrong with an event ([`Invalid::Rejected`], exit 3), and
//! a `pattern` the regex engine gives up on is the schema's.

mod local;
mod message;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ReferencingError, Validator};
use serde_json::{Map, Value};

use crate::event::{self, Event, Violation};
use local::LocalSchemas;
pub use local::scrub;

/// The envelope used when a project has no `schemas/event.json`.
pub const BUILTIN_ENVELOPE: &str = include_str!("envelope.schema.json");
/// More than this many violations in one event are summarized, not listed.
const MAX_VIOLATIONS: usize = 20;
/// Levels of arrays and objects a value inside an event may nest. serde_json
/// refuses input nested 128 deep, and a dead letter wraps the event two levels
/// deeper than the event file: this leaves every state file readable.
pub const MAX_DEPTH: usize = 100;

/// `[validation] formats`: whether `format` is checked or only noted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Formats {
    /// A value that is not what its `format` names is rejected; a format
    /// autod cannot check is a schema error, never silently passed.
    #[default]
    Assert,
    /// `format` is an annotation only (JSON Schema 2020-12's default).
    Annotate,
}

/// Why a schema is at fault rather than the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// It cannot be read, parsed or compiled.
    Unusable,
    /// A `pattern` too costly for the regex engine on some value: it compiles,
    /// but cannot decide every event.
    Pattern,
}

/// A schema file that cannot be used: the project is broken, not the event.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{shown}: {message}")]
pub struct SchemaError {
    pub path: PathBuf,
    /// `path` as the user knows it: `schemas/<file>`.
    pub shown: String,
    /// 1-based line and column, when the problem is JSON syntax.
    pub line: Option<(usize, usize)>,
    pub message: String,
    pub fault: Fault,
}

impl SchemaError {
    fn new(dir: &Path, path: &Path, message: String) -> SchemaError {
        let rel = path.strip_prefix(dir).unwrap_or(path);
        SchemaError {
            path: path.to_owned(),
            shown: Path::new("schemas").join(rel).display().to_string(),
            line: None,
            message: scrub(&message),
            fault: Fault::Unusable,
        }
    }
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

/// Compiles one schema document as autod does everywhere (dispatch, the
/// daemon, lint, the conformance suite). `name` is its path under `dir` (the
/// schemas folder) as a URI path, the base of its relative `$ref`s.
pub fn compile(
    dir: &Path,
    name: &str,
    value: &Value,
    path: &Path,
    formats: Formats,
) -> Result<Validator, SchemaError> {
    let fail = |message: String| SchemaError::new(dir, path, message);
    // Copied only to rewrite a relative `$schema`, the rare case.
    let mut rewritten = None;
    let mut metas = Vec::new();
    if value
        .get("$schema")
        .and_then(Value::as_str)
        .is_some_and(|s| !local::has_scheme(s))
    {
        let mut copy = value.clone();
        metas = local::meta_schemas(dir, name, &mut copy).map_err(fail)?;
        rewritten = Some(copy);
    }
    let value = rewritten.as_ref().unwrap_or(value);
    let registry = if metas.is_empty() {
        None
    } else {
        let resources = metas
            .into_iter()
            .map(|(uri, v)| (uri, jsonschema::Resource::from_contents(v)));
        Some(
            jsonschema::Registry::new()
                .extend(resources)
                .and_then(|r| {
                    r.retriever(LocalSchemas {
                        dir: dir.to_owned(),
                    })
                    .prepare()
                })
                .map_err(|e| fail(format!("its meta-schema is not usable: {e}")))?,
        )
    };
    let mut options = jsonschema::options()
        .with_base_uri(local::address(name))
        .with_retriever(LocalSchemas {
            dir: dir.to_owned(),
        })
        .should_validate_formats(formats == Formats::Assert)
        .should_ignore_unknown_formats(formats == Formats::Annotate);
    if let Some(registry) = &registry {
        options = options.with_registry(registry);
    }
    options
        .build(value)
        .map_err(|e| fail(compile_message(&e, value)))
}

/// A compile error in autod's words: the crate's say "register it in the
/// registry" or "enable resolve-http", which a user of autod cannot do.
fn compile_message(e: &jsonschema::ValidationError<'_>, schema: &Value) -> String {
    // A schema its meta-schema rejects has the place in it as the instance
    // path; other compile errors (an unknown format) as the schema path.
    let at = [e.instance_path().to_string(), e.schema_path().to_string()]
        .into_iter()
        .find(|p| !p.is_empty())
        .map_or_else(String::new, |p| format!(" at {p}"));
    let text = e.to_string();
    if let ValidationErrorKind::Referencing(r) = e.kind() {
        return reference_message(r, schema);
    }
    if let Some(rest) = text.strip_prefix("Unknown format: '") {
        let name = rest.split('\'').next().unwrap_or_default();
        return format!(
            "unknown format {name:?}{at}: autod asserts formats and has no check for this one; use a format JSON Schema defines (date-time, email, hostname, uri, uuid …), drop `format`, or set [validation] formats = \"annotate\" to treat every format as a note"
        );
    }
    if text.starts_with("Unknown meta-schema") || text.contains("resolve-http") {
        let declared = schema.get("$schema").and_then(Value::as_str).unwrap_or("?");
        return unknown_meta(declared);
    }
    format!("not a usable JSON Schema{at}: {text}")
}

/// The validator of the custom meta-schema a schema names by relative path in
/// `$schema`, for lint to list every way the schema breaks it; `None` when its
/// `$schema` is absent or a URI (a draft). Formats are annotations here, as
/// they are when a draft's meta-schema checks a schema: `$schema` itself is a
/// relative path, not the `uri` the drafts' meta-schemas describe.
pub fn local_meta_validator(
    dir: &Path,
    name: &str,
    schema: &Value,
) -> Option<Result<Validator, SchemaError>> {
    let declared = schema.get("$schema")?.as_str()?;
    if local::has_scheme(declared) {
        return None;
    }
    let path = dir.join(name);
    let mut probe = serde_json::json!({"$schema": declared});
    let found = match local::meta_schemas(dir, name, &mut probe) {
        Ok(found) => found,
        Err(e) => return Some(Err(SchemaError::new(dir, &path, e))),
    };
    let (uri, meta) = found.into_iter().next()?;
    let meta_name = uri.strip_prefix(local::BASE).unwrap_or(&uri).to_owned();
    let meta_path = dir.join(&meta_name);
    Some(compile(
        dir,
        &meta_name,
        &meta,
        &meta_path,
        Formats::Annotate,
    ))
}

/// What to say about a `$schema` that is neither a draft autod knows nor a file
/// under schemas/.
pub fn unknown_meta(declared: &str) -> String {
    format!(
        "$schema {:?} is not a meta-schema autod knows (it has drafts 4, 6, 7, 2019-09 and 2020-12) and autod never fetches one; copy it under schemas/ and name it by relative path (e.g. \"$schema\": \"meta/my-meta.json\")",
        scrub(declared)
    )
}

fn reference_message(e: &ReferencingError, schema: &Value) -> String {
    match e {
        ReferencingError::Unretrievable { uri, source } => {
            if source.downcast_ref::<local::NotLocal>().is_some() {
                let mut ids = Vec::new();
                local::absolute_ids(schema, &mut ids);
                local::remote_hint(uri, &ids)
            } else {
                format!("$ref to {}: {source}", scrub(uri))
            }
        }
        ReferencingError::PointerToNowhere { pointer } => {
            format!(
                "a $ref names the pointer {pointer:?}, which is not in the schema it points into"
            )
        }
        ReferencingError::NoSuchAnchor { anchor } | ReferencingError::InvalidAnchor { anchor } => {
            format!("a $ref names the anchor {anchor:?}, which no schema defines")
        }
        ReferencingError::UnknownSpecification { specification } => unknown_meta(specification),
        other => format!("a $ref does not resolve: {other}"),
    }
}

/// Reads and parses a schema file, with line and column on a syntax error.
pub fn read_schema_file(dir: &Path, path: &Path) -> Result<Value, SchemaError> {
    let bytes = std::fs::read(path)
        .map_err(|e| SchemaError::new(dir, path, format!("cannot read: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| SchemaError {
        line: Some((e.line(), e.column())),
        ..SchemaError::new(dir, path, format!("not valid JSON: {e}"))
    })
}

/// How deep arrays and objects nest in `value` (a scalar is 0), counted no
/// further than `cap`. Recursive: a parsed value nests at most 128 levels
/// (serde_json's limit), and autod's own events (watches, schedules) less.
fn depth(value: &Value, cap: usize) -> usize {
    let children: &mut dyn Iterator<Item = &Value> = match value {
        Value::Array(items) => &mut items.iter(),
        Value::Object(map) => &mut map.values(),
        _ => return 0,
    };
    if cap == 0 {
        return 1;
    }
    let mut deepest = 0;
    for child in children {
        deepest = deepest.max(depth(child, cap - 1));
        if deepest >= cap {
            break;
        }
    }
    1 + deepest
}

/// The event's fields nested deeper than [`MAX_DEPTH`], as violations.
fn too_deep(obj: &Map<String, Value>) -> Vec<Violation> {
    obj.iter()
        .filter(|(_, v)| depth(v, MAX_DEPTH) > MAX_DEPTH)
        .map(|(k, v)| {
            Violation::new(
                format!("/{}", k.replace('~', "~0").replace('/', "~1")),
                "maxDepth",
                format!(
                    "nested {} levels deep; autod accepts at most {MAX_DEPTH} levels of arrays and objects in a field",
                    depth(v, usize::MAX)
                ),
            )
        })
        .collect()
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
    formats: Formats,
}

impl Schemas {
    pub fn load(
        root: &Path,
        require_schema: bool,
        max_event_bytes: u64,
    ) -> Result<Schemas, SchemaError> {
        Schemas::load_with(root, require_schema, max_event_bytes, Formats::default())
    }

    pub fn load_with(
        root: &Path,
        require_schema: bool,
        max_event_bytes: u64,
        formats: Formats,
    ) -> Result<Schemas, SchemaError> {
        let dir = root.join("schemas");
        let path = dir.join("event.json");
        // The built-in envelope is checked in code: compiling its schema (and
        // the meta-schema it is validated against) was the largest part of a
        // one-shot dispatch's own time. A test keeps the two in agreement.
        let envelope = if path.exists() {
            let value = read_schema_file(&dir, &path)?;
            Some(Arc::new(compile(
                &dir,
                "event.json",
                &value,
                &path,
                formats,
            )?))
        } else {
            None
        };
        Ok(Schemas {
            dir,
            envelope,
            payloads: HashMap::new(),
            require_schema,
            max_event_bytes,
            formats,
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
        let fresh = Schemas::load_with(
            root,
            self.require_schema,
            self.max_event_bytes,
            self.formats,
        )?;
        self.envelope = fresh.envelope;
        Ok(())
    }

    /// Bytes in, a normalized event out, or every reason it is not one.
    pub fn accept(&mut self, bytes: &[u8]) -> Result<Event, Invalid> {
        let decoded = event::decode_input(bytes, self.max_event_bytes).map_err(|mut v| {
            // serde_json's own limit (128 levels) comes before autod's.
            if v.message.contains("recursion limit exceeded") {
                v.message = format!(
                    "{}; autod accepts at most {MAX_DEPTH} levels of arrays and objects in a field",
                    v.message
                );
            }
            Invalid::Rejected(vec![v])
        })?;
        let accepted = self.accept_object(decoded.fields);
        match accepted {
            Err(Invalid::Rejected(v)) if decoded.cloudevent => Err(Invalid::Rejected(
                v.into_iter().map(event::in_cloudevent_terms).collect(),
            )),
            other => other,
        }
    }

    pub fn accept_object(&mut self, obj: Map<String, Value>) -> Result<Event, Invalid> {
        let mut problems = event::check_ids(&obj);
        problems.extend(too_deep(&obj));
        if !problems.is_empty() {
            return Err(Invalid::Rejected(problems));
        }
        let value = Value::Object(obj);
        let mut violations = match &self.envelope {
            Some(validator) => collect(validator, &value, "", &self.dir, "event")?,
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
            .unwrap_or_default();
        match self.payload_validator(event_type).map_err(Invalid::Schema)? {
            Some(validator) => {
                let payload = obj.get("payload").unwrap_or(&Value::Null);
                violations = collect(&validator, payload, "/payload", &self.dir, event_type)?;
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
            let value = read_schema_file(&self.dir, &path)?;
            Some(Arc::new(compile(
                &self.dir,
                &name,
                &value,
                &path,
                self.formats,
            )?))
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

/// Every violation of `instance`, or the schema's fault when one of its
/// patterns could not decide (the regex engine gave up): that is not the
/// event's doing, and another event would hit it too. The schema is
/// `<dir>/<stem>.json`; its name is only needed for that fault, so it is not
/// built for every event.
fn collect(
    validator: &Validator,
    instance: &Value,
    prefix: &str,
    dir: &Path,
    stem: &str,
) -> Result<Vec<Violation>, Invalid> {
    let mut out = Vec::new();
    for (i, error) in validator.iter_errors(instance).enumerate() {
        if matches!(
            error.kind(),
            ValidationErrorKind::BacktrackLimitExceeded { .. }
                | ValidationErrorKind::RegexEngineFailure { .. }
        ) {
            let path = dir.join(format!("{stem}.json"));
            return Err(Invalid::Schema(SchemaError {
                fault: Fault::Pattern,
                ..SchemaError::new(
                    dir,
                    &path,
                    format!(
                        "the pattern at {} is too costly for the regex engine, which gave up on the value at {prefix}{} ({}); simplify it (fewer nested repetitions, backreferences and look-arounds)",
                        error.schema_path(),
                        error.instance_path(),
                        error,
                    ),
                )
            }));
        }
        if i == MAX_VIOLATIONS {
            out.push(Violation::new(prefix, "more", "… and more violations"));
            break;
        }
        out.push(message::violation(&error, prefix));
    }
    Ok(out)
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
    fn depth_counts_containers_and_stops_past_the_cap() {
        assert_eq!(depth(&json!(1), 5), 0);
        assert_eq!(depth(&json!([]), 5), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": []}]}), 5), 4);
        let mut deep = json!([]);
        for _ in 0..9 {
            deep = json!([deep]);
        }
        assert_eq!(depth(&deep, usize::MAX), 10);
        assert!(depth(&deep, 3) > 3);
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
