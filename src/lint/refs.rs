//! `$ref` loops that check nothing: `{"$ref": "#"}`, or a.json → b.json →
//! a.json with no constraint on the way. The validator accepts every value
//! there without a word, which is never what the author meant.
//!
//! Only plain references are followed (a relative file and a JSON pointer);
//! anchors, `$id`-based and remote ones end the walk. That finds the loops
//! people write by hand without re-implementing the resolver.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Keywords that constrain nothing, so an object of these and a `$ref` is the
/// `$ref` alone.
const INERT: [&str; 14] = [
    "$ref",
    "$schema",
    "$comment",
    "$defs",
    "definitions",
    "$anchor",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$vocabulary",
];

/// One loop found from a schema file: the pointer of the `$ref` where it was
/// entered, and the members as `file#pointer`.
pub struct Cycle {
    pub pointer: String,
    pub members: Vec<String>,
}

/// Loops of `$ref`s that start in `rel` (a path under `dir`, the schemas folder).
/// A loop already in `seen` (found from another file) is not reported again.
pub fn cycles(
    dir: &Path,
    rel: &str,
    schema: &Value,
    seen: &mut BTreeSet<Vec<String>>,
) -> Vec<Cycle> {
    let mut docs: HashMap<String, Option<Value>> = HashMap::new();
    docs.insert(rel.to_owned(), Some(schema.clone()));
    let mut starts = Vec::new();
    ref_pointers(schema, String::new(), &mut starts);
    let mut out = Vec::new();
    for start in starts {
        let mut path: Vec<(String, String)> = vec![(rel.to_owned(), start.clone())];
        loop {
            let (file, pointer) = path.last().expect("never empty").clone();
            let Some(next) = step(dir, &mut docs, &file, &pointer) else {
                break;
            };
            if let Some(i) = path.iter().position(|p| *p == next) {
                let members: Vec<String> = path[i..]
                    .iter()
                    .map(|(f, p)| format!("schemas/{f}#{p}"))
                    .collect();
                let mut key = members.clone();
                key.sort();
                // Reported from where the loop is entered in this file, once.
                if path[i].0 == rel && seen.insert(key) {
                    out.push(Cycle {
                        pointer: path[i].1.clone(),
                        members,
                    });
                }
                break;
            }
            path.push(next);
        }
    }
    out
}

/// Pointers of every object holding a `$ref`.
fn ref_pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if map.get("$ref").is_some_and(Value::is_string) {
                out.push(at.clone());
            }
            for (k, v) in map {
                let key = k.replace('~', "~0").replace('/', "~1");
                ref_pointers(v, format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                ref_pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Where the `$ref` at `file#pointer` leads, if that node is only a `$ref` and
/// the reference is a plain one.
fn step(
    dir: &Path,
    docs: &mut HashMap<String, Option<Value>>,
    file: &str,
    pointer: &str,
) -> Option<(String, String)> {
    let doc = load(dir, docs, file)?;
    let node = doc.pointer(pointer)?.as_object()?;
    let only_ref = node.keys().all(|k| INERT.contains(&k.as_str())) || old_draft(doc);
    if !only_ref || node.contains_key("$id") {
        return None;
    }
    let reference = node.get("$ref")?.as_str()?;
    let (target, fragment) = reference.split_once('#').unwrap_or((reference, ""));
    if target.contains(':') || !(fragment.is_empty() || fragment.starts_with('/')) {
        return None;
    }
    let target_file = if target.is_empty() {
        file.to_owned()
    } else {
        let base = Path::new(file).parent().unwrap_or(Path::new(""));
        normalize(&base.join(target))?
    };
    Some((target_file, fragment.to_owned()))
}

/// In drafts before 2019-09 a `$ref` makes its siblings be ignored.
fn old_draft(doc: &Value) -> bool {
    doc.get("$schema").and_then(Value::as_str).is_some_and(|s| {
        ["draft-04", "draft-06", "draft-07"]
            .iter()
            .any(|d| s.contains(d))
    })
}

fn normalize(path: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            std::path::Component::ParentDir => {
                parts.pop()?;
            }
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

fn load<'a>(
    dir: &Path,
    docs: &'a mut HashMap<String, Option<Value>>,
    file: &str,
) -> Option<&'a Value> {
    docs.entry(file.to_owned())
        .or_insert_with(|| {
            let path: PathBuf = dir.join(file);
            std::fs::read(path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_ref_to_itself_is_a_loop_and_a_constrained_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let found = cycles(
            dir.path(),
            "a.json",
            &json!({"$ref": "#"}),
            &mut BTreeSet::new(),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].members, ["schemas/a.json#"]);
        let tree = json!({"$defs": {"n": {"type": "object", "properties": {"k": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"});
        assert!(cycles(dir.path(), "a.json", &tree, &mut BTreeSet::new()).is_empty());
    }

    #[test]
    fn a_loop_across_files_is_found_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.json"), r#"{"$ref": "a.json"}"#).unwrap();
        let mut seen = BTreeSet::new();
        let a = json!({"title": "a", "$ref": "b.json"});
        let found = cycles(dir.path(), "a.json", &a, &mut seen);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].members, ["schemas/a.json#", "schemas/b.json#"]);
        let b = json!({"$ref": "a.json"});
        assert!(cycles(dir.path(), "b.json", &b, &mut seen).is_empty());
    }
}
