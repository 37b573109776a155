//! Where a `$ref` or a `$schema` may lead: files under `schemas/`, and nothing
//! else. Inside autod a schema file is addressed by a synthetic URI
//! (`file:///autod-schemas/<file>`) so that relative references resolve without
//! a machine path; that address never shows in a message ([`scrub`]).
//!
//! A remote address is refused, never fetched. The recipe for a schema that
//! lives on the web is to copy it under `schemas/` and name it by relative
//! path (README, "Remote `$ref`s").

use std::path::{Component, Path, PathBuf};

use jsonschema::{Retrieve, Uri};
use serde_json::Value;

pub(super) const BASE: &str = "file:///autod-schemas/";

/// Resolves `$ref`s to files under the schemas folder and refuses everything else.
pub(super) struct LocalSchemas {
    pub dir: PathBuf,
}

/// A `$ref` (or `$schema`) that resolved to an address outside `schemas/`.
#[derive(Debug, thiserror::Error)]
#[error("{uri} is not a file under schemas/")]
pub(super) struct NotLocal {
    pub uri: String,
}

impl Retrieve for LocalSchemas {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let text = uri.as_str();
        let Some(rel) = text.strip_prefix(BASE) else {
            return Err(Box::new(NotLocal {
                uri: text.to_owned(),
            }));
        };
        let rel = percent_decode(rel.split('#').next().unwrap_or(rel));
        read_local(&self.dir, &rel).map_err(Into::into)
    }
}

/// A file under `dir` named by a path relative to it, parsed.
fn read_local(dir: &Path, rel: &str) -> Result<Value, String> {
    let rel_path = Path::new(rel);
    if rel_path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(format!("{rel:?} leaves schemas/"));
    }
    let bytes = std::fs::read(dir.join(rel_path)).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("schemas/{rel} does not exist"),
        _ => format!("cannot read schemas/{rel}: {e}"),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| format!("schemas/{rel} is not valid JSON: {e}"))
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

/// The internal address of `name`, a path under `schemas/`.
pub(super) fn address(name: &str) -> String {
    format!("{BASE}{name}")
}

/// autod's internal addresses as the project-relative paths they stand for.
pub fn scrub(text: &str) -> String {
    text.replace(BASE, "schemas/")
}

/// Whether a URI reference names a scheme (`https:`, `urn:`), so is absolute.
pub(super) fn has_scheme(reference: &str) -> bool {
    reference.split_once(':').is_some_and(|(scheme, _)| {
        let mut chars = scheme.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// Custom meta-schemas kept under `schemas/`.
///
/// JSON Schema wants `$schema` to be an absolute URI, which a file in the
/// project has not got; so a relative `$schema` is read as a path relative to
/// the schema that names it (as a `$ref` would be) and rewritten to that file's
/// internal address. Returns each meta-schema of the chain (a meta-schema may
/// name another) with its address, for the registry the compiler resolves
/// `$schema` through, and rewrites `schema` in place.
pub(super) fn meta_schemas(
    dir: &Path,
    name: &str,
    schema: &mut Value,
) -> Result<Vec<(String, Value)>, String> {
    let mut found: Vec<(String, Value)> = Vec::new();
    let mut current = address(name);
    let mut node: &mut Value = schema;
    // A chain longer than this is a loop of meta-schemas naming each other.
    for _ in 0..16 {
        let Some(declared) = node
            .get("$schema")
            .and_then(Value::as_str)
            .filter(|s| !has_scheme(s))
            .map(str::to_owned)
        else {
            return Ok(found);
        };
        let base = jsonschema::uri::from_str(&current).map_err(|e| e.to_string())?;
        let resolved = jsonschema::uri::resolve_against(&base.borrow(), &declared)
            .map_err(|e| format!("$schema {declared:?} is not a usable path: {e}"))?;
        let resolved = resolved.as_str().trim_end_matches('#').to_owned();
        node["$schema"] = Value::String(resolved.clone());
        if found.iter().any(|(uri, _)| *uri == resolved) {
            return Ok(found);
        }
        let Some(rel) = resolved.strip_prefix(BASE) else {
            return Err(format!("$schema {declared:?} leaves schemas/"));
        };
        let meta = read_local(dir, &percent_decode(rel))
            .map_err(|e| format!("its meta-schema ($schema {declared:?}): {e}"))?;
        found.push((resolved.clone(), meta));
        current = resolved;
        node = &mut found.last_mut().expect("just pushed").1;
    }
    Err("its meta-schemas name each other in a loop ($schema)".into())
}

/// `$id`s in a schema that are absolute URLs: a relative `$ref` next to one
/// resolves against it, to a URL autod will not fetch.
pub(super) fn absolute_ids(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            for key in ["$id", "id"] {
                if let Some(Value::String(id)) = map.get(key)
                    && has_scheme(id)
                    && !id.starts_with(BASE)
                {
                    out.push(id.clone());
                }
            }
            map.values().for_each(|v| absolute_ids(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| absolute_ids(v, out)),
        _ => {}
    }
}

/// What to say about a reference to `uri`, outside `schemas/`, made from a
/// schema whose absolute `$id`s are `ids`.
pub(super) fn remote_hint(uri: &str, ids: &[String]) -> String {
    let origin = |u: &str| -> String {
        let after = u.split_once("://").map_or(u, |(_, rest)| rest);
        let host = after.split('/').next().unwrap_or("");
        format!("{}{host}", &u[..u.len() - after.len()])
    };
    let from_id = ids
        .iter()
        .find(|id| origin(id) == origin(uri) && !origin(id).is_empty());
    match from_id {
        Some(id) => format!(
            "a $ref resolves to {uri} because the schema's $id is {id:?}, and autod never fetches schemas: remove that $id or make it a relative path (e.g. \"$id\": \"{}\"), so that relative $refs name files under schemas/ (README: Remote $refs)",
            id.rsplit('/')
                .next()
                .filter(|s| !s.is_empty())
                .unwrap_or("x.json"),
        ),
        None => format!(
            "$ref to {uri}: autod never fetches schemas; copy that schema under schemas/ and $ref it by relative path (README: Remote $refs)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schemes_are_told_from_paths() {
        assert!(has_scheme("https://x/y"));
        assert!(has_scheme("urn:uuid:1"));
        assert!(!has_scheme("meta.json"));
        assert!(!has_scheme("meta/v1.json#"));
        assert!(!has_scheme("../x.json"));
    }

    #[test]
    fn a_relative_meta_schema_is_rewritten_to_its_address() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("meta")).unwrap();
        std::fs::write(
            dir.path().join("meta/m.json"),
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema"}).to_string(),
        )
        .unwrap();
        let mut schema = json!({"$schema": "meta/m.json", "type": "string"});
        let metas = meta_schemas(dir.path(), "a.json", &mut schema).unwrap();
        assert_eq!(schema["$schema"], format!("{BASE}meta/m.json"));
        assert_eq!(metas.len(), 1);
        let mut missing = json!({"$schema": "nope.json"});
        let err = meta_schemas(dir.path(), "a.json", &mut missing).unwrap_err();
        assert!(err.contains("schemas/nope.json does not exist"), "{err}");
    }

    #[test]
    fn the_hint_names_the_id_that_made_a_relative_ref_remote() {
        let ids = vec!["https://example.com/root.json".to_owned()];
        let hint = remote_hint("https://example.com/x.json", &ids);
        assert!(
            hint.contains("$id is \"https://example.com/root.json\""),
            "{hint}"
        );
        let hint = remote_hint("https://other.org/x.json", &ids);
        assert!(hint.contains("copy that schema under schemas/"), "{hint}");
    }
}
