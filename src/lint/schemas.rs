//! Schema checks: every file under schemas/ is JSON, a schema, valid against its
//! declared meta-schema (2020-12 when none is declared; a custom one under
//! schemas/ when `$schema` is a relative path), its `$ref`s resolve to local
//! files and pointers, it names no format autod cannot check, and no `$ref`
//! loop in it accepts everything. Nothing is fetched.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Known, Lint};
use crate::schema::{self, Formats};

pub fn check(lint: &mut Lint, root: &Path, formats: Formats) -> Known {
    let dir = root.join("schemas");
    let mut loops = BTreeSet::new();
    let mut known = Known::default();
    let mut files = Vec::new();
    collect_json(lint, &dir, &mut files);
    files.sort();
    let mut referenced = std::collections::BTreeSet::new();
    for path in &files {
        let rel = path
            .strip_prefix(&dir)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        let top_level_type = (!rel.contains('/'))
            .then(|| rel.strip_suffix(".json"))
            .flatten()
            .filter(|t| *t != "event" && crate::event::valid_id(t));
        if let Some(t) = top_level_type {
            known.schemas.insert(t.to_owned(), false);
        }
        let Some(value) = read(lint, path) else {
            continue;
        };
        collect_refs(&value, &rel, &mut referenced);
        let name = uri_path(&rel);
        let meta_errors = meta_errors(&dir, &name, &value);
        if !meta_errors.is_empty() {
            // Parsed again for positions only when there is something to place.
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let mut seen = BTreeSet::new();
            for (pointer, reason) in meta_errors {
                if !seen.insert((pointer.clone(), reason.clone())) {
                    continue;
                }
                let at = if pointer.is_empty() {
                    String::new()
                } else {
                    format!(" at {pointer}")
                };
                lint.error(
                    path,
                    "schema-meta",
                    format!("not valid against its meta-schema{at}: {reason}"),
                )
                .at(super::locate::line_of(&text, &pointer), None);
            }
            continue;
        }
        if let Err(e) = schema::compile(&dir, &name, &value, path, formats) {
            let rule = if e.message.starts_with("unknown format") {
                "schema-format"
            } else if is_ref_error(&e.message) {
                "schema-ref"
            } else {
                "schema-invalid"
            };
            lint.error(path, rule, e.message);
            continue;
        }
        // Annotated formats are not checked, so a misspelt one is silent:
        // compiled once more as if asserted to find the names autod lacks.
        if formats == Formats::Annotate
            && let Err(e) = schema::compile(&dir, &name, &value, path, Formats::Assert)
            && e.message.starts_with("unknown format")
        {
            lint.warning(
                path,
                "schema-format",
                format!("{} (with formats = \"annotate\" it is only a note, so a misspelt name checks nothing)", e.message),
            );
        }
        for costly in super::patterns::costly(&value) {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            lint.error(
                path,
                "schema-pattern",
                format!(
                    "the pattern at {} is too costly for the regex engine, which gives up on a value like {}, so an event can make dispatch refuse it as a schema error (exit 2); simplify it (fewer nested repetitions, backreferences and look-arounds)",
                    costly.pointer,
                    super::patterns::shown(&costly.probe)
                ),
            )
            .at(super::locate::line_of(&text, &costly.pointer), None);
        }
        for cycle in super::refs::cycles(&dir, &rel, &value, &mut loops) {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let mut chain = cycle.members.clone();
            chain.push(cycle.members[0].clone());
            lint.error(
                path,
                "schema-ref-cycle",
                format!(
                    "$ref loop {} constrains nothing: every value is accepted here; give a schema in the loop a real constraint (type, properties …) or $ref a schema that has one",
                    chain.join(" → ")
                ),
            )
            .at(super::locate::line_of(&text, &format!("{}/$ref", cycle.pointer)), None);
        }
    }
    for (t, is_lib) in known.schemas.iter_mut() {
        *is_lib = referenced.contains(&format!("{t}.json"));
    }
    known
}

/// Every way `value` breaks its meta-schema: a draft's, or a custom one under
/// schemas/ named by relative path.
fn meta_errors(dir: &Path, name: &str, value: &Value) -> Vec<(String, String)> {
    let placed = |e: jsonschema::ValidationError<'_>| {
        let pointer = e.instance_path().to_string();
        let reason = schema::scrub(&meta_reason(&pointer, value, &e));
        (pointer, reason)
    };
    if let Some(custom) = schema::local_meta_validator(dir, name, value) {
        return match custom {
            Ok(meta) => meta.iter_errors(value).map(placed).collect(),
            Err(e) => vec![(
                "/$schema".into(),
                format!("its meta-schema is not usable: {e}"),
            )],
        };
    }
    match jsonschema::meta::validator_for(value) {
        Ok(meta) => meta.iter_errors(value).map(placed).collect(),
        // The crate's words here ("enable resolve-http or register it") are
        // no use to an autod user.
        Err(_) => {
            let declared = value.get("$schema").and_then(Value::as_str).unwrap_or("?");
            vec![("/$schema".into(), schema::unknown_meta(declared))]
        }
    }
}

/// The meta-schema's own words, except where they hide a common slip: `type`
/// fails an `anyOf` ("not valid under any of the schemas listed") when all
/// that is wrong is a misspelt type name.
fn meta_reason(pointer: &str, schema: &Value, e: &jsonschema::ValidationError<'_>) -> String {
    const TYPES: [&str; 7] = [
        "array", "boolean", "integer", "null", "number", "object", "string",
    ];
    // `/properties/type` is a property named "type", not the keyword.
    let keyword = pointer.rsplit_once('/').is_some_and(|(parent, last)| {
        last == "type"
            && ![
                "properties",
                "patternProperties",
                "$defs",
                "definitions",
                "dependentSchemas",
            ]
            .iter()
            .any(|m| parent.ends_with(&format!("/{m}")))
    });
    if keyword {
        let names: Vec<&Value> = match schema.pointer(pointer) {
            Some(Value::Array(list)) => list.iter().collect(),
            Some(v) => vec![v],
            None => Vec::new(),
        };
        if let Some(bad) = names
            .into_iter()
            .find(|v| !v.as_str().is_some_and(|t| TYPES.contains(&t)))
        {
            return format!("{bad} is not a type; use one of {}", TYPES.join(", "));
        }
    }
    e.to_string()
}

/// `rel` as the path of a URI, percent-encoded: the schema's file name becomes
/// its base URI, and a name such as `common types.json` is not a valid one as
/// it stands. `$ref`s are percent-decoded when they are looked up.
fn uri_path(rel: &str) -> String {
    let mut out = String::with_capacity(rel.len());
    for b in rel.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether a compile error is a `$ref` that does not resolve: a missing file
/// (`Resource '…'`), pointer (`Pointer '…' does not exist`) or anchor, or a
/// reference that is not a valid URI. The messages are the `referencing` crate's.
fn is_ref_error(message: &str) -> bool {
    message.contains("$ref")
        || message.to_lowercase().contains("resolv")
        || [
            "Resource '",
            "Pointer '",
            "pointer '",
            "Anchor '",
            "Invalid URI",
        ]
        .iter()
        .any(|m| message.contains(m))
}

/// Reads and parses a JSON file, turning every failure into a finding.
pub(super) fn read(lint: &mut Lint, path: &Path) -> Option<Value> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            lint.unreadable(path, &e);
            return None;
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        lint.error(path, "schema-json", "empty file; a schema is a JSON object");
        return None;
    }
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            lint.error(path, "schema-json", format!("not valid JSON: {e}"))
                .at(Some(e.line()), Some(e.column()));
            return None;
        }
    };
    if !matches!(value, Value::Object(_) | Value::Bool(_)) {
        lint.error(
            path,
            "schema-type",
            "a schema is a JSON object (or true/false), not an array, string or number",
        )
        .at(Some(1), Some(1));
        return None;
    }
    Some(value)
}

fn collect_json(lint: &mut Lint, dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            lint.error(dir, "unreadable", format!("cannot list: {e}"));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_json(lint, &path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// Files named by `$ref`s in `value` (relative to `from`, a path under
/// schemas/), and by a relative `$schema`: a custom meta-schema is a library
/// too, not an eventType without a handler.
fn collect_refs(value: &Value, from: &str, out: &mut std::collections::BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for r in ["$ref", "$schema"]
                .iter()
                .filter_map(|k| map.get(*k)?.as_str())
            {
                let file = r.split('#').next().unwrap_or("");
                if !file.is_empty() && !file.contains("://") {
                    let base = Path::new(from).parent().unwrap_or(Path::new(""));
                    out.insert(base.join(file).to_string_lossy().into_owned());
                }
            }
            map.values().for_each(|v| collect_refs(v, from, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, from, out)),
        _ => {}
    }
}
