//! `autod lint --against REV`: schema changes since a git revision that would
//! break events producers already send or fields consumers already read.
//!
//! Breaking, per payload schema and recursively through `properties` and `items`:
//! a newly required field; a removed property; a narrowed `type`; a narrowed or
//! newly added `enum`; `additionalProperties` newly `false`. A removed schema
//! file whose eventType handlers still route is breaking too. `$ref`s are
//! compared as written, not followed.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::Lint;
use crate::config::Config;

fn git(root: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Compares schemas/ now with schemas/ at `rev`. `Err` is a usage problem (not a
/// git repository, no such revision), reported instead of findings.
pub fn check(
    lint: &mut Lint,
    root: &Path,
    rev: &str,
    config: Option<&Config>,
) -> Result<(), String> {
    let prefix = git(root, &["rev-parse", "--show-prefix"])
        .map_err(|e| format!("--against needs a git repository: {e}"))?;
    let prefix = prefix.trim();
    git(
        root,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .map_err(|_| format!("--against {rev}: not a git revision here"))?;
    let tree = format!("{rev}:{prefix}schemas");
    // Without --full-tree, ls-tree run in a subfolder of the repository (a project
    // that is not at its top) lists only entries under that subfolder's path
    // *inside* the tree named, which is nothing.
    let old_files: Vec<String> = match git(root, &["ls-tree", "--full-tree", "--name-only", &tree])
    {
        Ok(list) => list
            .lines()
            .filter(|f| f.ends_with(".json"))
            .map(str::to_owned)
            .collect(),
        // No schemas/ at that revision: everything is new, nothing can break.
        Err(_) => return Ok(()),
    };
    for file in old_files {
        let path = root.join("schemas").join(&file);
        let Ok(old_text) = git(root, &["show", &format!("{tree}/{file}")]) else {
            continue;
        };
        let Ok(old) = serde_json::from_str::<Value>(&old_text) else {
            continue;
        };
        let event_type = file.trim_end_matches(".json");
        if !path.exists() {
            let routed =
                config.is_some_and(|c| !crate::route::routes(&c.handlers, event_type).is_empty());
            let msg = format!("schemas/{file} was removed since {rev}");
            if routed {
                lint.error(
                    &path,
                    "breaking-change",
                    format!("{msg}, but handlers still route eventType {event_type:?}"),
                );
            } else if file != "event.json" {
                lint.warning(
                    &path,
                    "breaking-change",
                    format!("{msg}: producers of {event_type:?} will be rejected"),
                );
            }
            continue;
        }
        let Ok(new) = std::fs::read(&path)
            .map_err(|_| ())
            .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|_| ()))
        else {
            // Unreadable or not JSON: the schema check already says so.
            continue;
        };
        let mut changes = Vec::new();
        compare(&old, &new, "", &mut changes);
        for change in changes {
            lint.error(
                &path,
                "breaking-change",
                format!("breaking change since {rev}: {change}"),
            );
        }
    }
    Ok(())
}

fn types(v: &Value) -> Option<BTreeSet<String>> {
    match v.get("type")? {
        Value::String(s) => Some(BTreeSet::from([s.clone()])),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

fn at(pointer: &str) -> String {
    if pointer.is_empty() {
        "the payload".to_owned()
    } else {
        pointer.to_owned()
    }
}

/// Appends a sentence per breaking difference between `old` and `new`.
pub fn compare(old: &Value, new: &Value, pointer: &str, out: &mut Vec<String>) {
    let (Value::Object(o), Value::Object(n)) = (old, new) else {
        return;
    };
    match (types(old), types(new)) {
        (Some(ot), Some(nt)) if !ot.is_subset(&nt) => {
            // `integer` values are still `number`s, so widening int→number is fine,
            // but any old type missing now is a narrowing.
            let lost: Vec<_> = ot
                .difference(&nt)
                .filter(|t| !(*t == "integer" && nt.contains("number")))
                .collect();
            if !lost.is_empty() {
                out.push(format!(
                    "type at {} narrowed from {:?} to {:?}",
                    at(pointer),
                    ot,
                    nt
                ));
            }
        }
        (None, Some(nt)) => out.push(format!("type at {} restricted to {:?}", at(pointer), nt)),
        _ => {}
    }
    match (
        o.get("enum").and_then(Value::as_array),
        n.get("enum").and_then(Value::as_array),
    ) {
        (Some(oe), Some(ne)) => {
            let removed: Vec<String> = oe
                .iter()
                .filter(|v| !ne.contains(v))
                .map(ToString::to_string)
                .collect();
            if !removed.is_empty() {
                out.push(format!(
                    "enum at {} no longer allows {}",
                    at(pointer),
                    removed.join(", ")
                ));
            }
        }
        (None, Some(_)) => out.push(format!("enum added at {}", at(pointer))),
        _ => {}
    }
    let required = |m: &serde_json::Map<String, Value>| -> BTreeSet<String> {
        m.get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    for field in required(n).difference(&required(o)) {
        out.push(format!("new required field {field:?} at {}", at(pointer)));
    }
    let props = |m: &serde_json::Map<String, Value>| {
        m.get("properties").and_then(Value::as_object).cloned()
    };
    if let (Some(op), np) = (props(o), props(n)) {
        let np = np.unwrap_or_default();
        for (name, old_schema) in &op {
            match np.get(name) {
                None => out.push(format!("property {name:?} removed at {}", at(pointer))),
                Some(new_schema) => {
                    compare(old_schema, new_schema, &format!("{pointer}/{name}"), out)
                }
            }
        }
    }
    if o.get("additionalProperties") != Some(&Value::Bool(false))
        && n.get("additionalProperties") == Some(&Value::Bool(false))
    {
        out.push(format!(
            "additionalProperties at {} is now false: extra fields are rejected",
            at(pointer)
        ));
    }
    if let (Some(oi), Some(ni)) = (o.get("items"), n.get("items")) {
        compare(oi, ni, &format!("{pointer}/items"), out);
    }
}

#[cfg(test)]
mod tests {
    use super::compare;
    use serde_json::json;

    fn diff(old: serde_json::Value, new: serde_json::Value) -> Vec<String> {
        let mut out = Vec::new();
        compare(&old, &new, "", &mut out);
        out
    }

    #[test]
    fn additions_that_are_optional_are_fine() {
        let old = json!({"type":"object","properties":{"a":{"type":"string"}}});
        let new =
            json!({"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}}});
        assert!(diff(old, new).is_empty());
    }

    #[test]
    fn each_breaking_change_is_named() {
        let old = json!({"type":"object","required":["a"],"properties":{
            "a":{"type":["string","null"]},"b":{"type":"string"},"k":{"enum":["x","y"]}}});
        let new = json!({"type":"object","required":["a","c"],"additionalProperties":false,"properties":{
            "a":{"type":"string"},"c":{"type":"string"},"k":{"enum":["x"]}}});
        let d = diff(old, new).join("\n");
        assert!(d.contains("new required field \"c\""), "{d}");
        assert!(d.contains("property \"b\" removed"), "{d}");
        assert!(d.contains("type at /a narrowed"), "{d}");
        assert!(d.contains("enum at /k no longer allows \"y\""), "{d}");
        assert!(d.contains("additionalProperties"), "{d}");
    }

    #[test]
    fn integer_to_number_is_a_widening() {
        assert!(diff(json!({"type":"integer"}), json!({"type":"number"})).is_empty());
        assert!(!diff(json!({"type":"number"}), json!({"type":"integer"})).is_empty());
    }
}
