//! `pattern`s the regex engine gives up on. A pattern with backreferences or
//! look-arounds runs on a backtracking engine with a step limit; past it, no
//! answer comes, and every event that reaches it is refused as a schema error
//! (exit 2). Lint cannot prove a pattern safe, but it can try it on the inputs
//! that blow such patterns up (long runs of the characters the pattern names,
//! then one it does not end with), through the same compile path as dispatch:
//! a pattern that gives up here will give up on an event.

use std::path::Path;

use serde_json::Value;

use crate::schema::{self, Formats};

/// One pattern that gave up: where it is in the schema, and on what.
pub struct Costly {
    pub pointer: String,
    pub probe: String,
}

/// Patterns in `schema` (its `pattern` keywords, by JSON pointer) that make
/// the regex engine give up on one of the probes.
pub fn costly(schema: &Value) -> Vec<Costly> {
    let mut found = Vec::new();
    let mut patterns = Vec::new();
    collect(schema, String::new(), &mut patterns);
    for (pointer, pattern) in patterns {
        // The linear engine (no backreferences, no look-arounds) never gives up.
        if !["\\1", "\\2", "\\k", "(?=", "(?!", "(?<=", "(?<!"]
            .iter()
            .any(|m| pattern.contains(m))
        {
            continue;
        }
        let probe_schema = serde_json::json!({"pattern": pattern});
        let dir = Path::new("schemas");
        let Ok(validator) = schema::compile(
            dir,
            "probe.json",
            &probe_schema,
            Path::new("schemas/probe.json"),
            Formats::Annotate,
        ) else {
            continue;
        };
        for probe in probes(&pattern) {
            let gave_up = validator
                .iter_errors(&Value::String(probe.clone()))
                .any(|e| {
                    matches!(
                        e.kind(),
                        jsonschema::error::ValidationErrorKind::BacktrackLimitExceeded { .. }
                            | jsonschema::error::ValidationErrorKind::RegexEngineFailure { .. }
                    )
                });
            if gave_up {
                found.push(Costly { pointer, probe });
                break;
            }
        }
    }
    found
}

/// The inputs that make backtracking patterns explode: 40 repetitions of each
/// character (and each pair of characters) the pattern names, then a
/// character it does not expect.
fn probes(pattern: &str) -> Vec<String> {
    let mut chars: Vec<char> = Vec::new();
    let mut escaped = false;
    for c in pattern.chars() {
        let class = if escaped {
            escaped = false;
            match c {
                'd' => Some('0'),
                'w' => Some('a'),
                's' => Some(' '),
                _ => None,
            }
        } else if c == '\\' {
            escaped = true;
            None
        } else {
            c.is_alphanumeric().then_some(c)
        };
        if let Some(c) = class
            && !chars.contains(&c)
        {
            chars.push(c);
        }
    }
    chars.truncate(4);
    if chars.is_empty() {
        chars.push('a');
    }
    let end = ['!', '\u{1}', '~']
        .into_iter()
        .find(|e| !pattern.contains(*e))
        .unwrap_or('\u{1}');
    let mut out = Vec::new();
    for (i, a) in chars.iter().enumerate() {
        out.push(format!("{}{end}", a.to_string().repeat(40)));
        for b in &chars[i + 1..] {
            out.push(format!("{}{end}", format!("{a}{b}").repeat(20)));
        }
    }
    out
}

fn collect(value: &Value, at: String, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = k.replace('~', "~0").replace('/', "~1");
                let here = format!("{at}/{key}");
                // `properties/pattern` is a property named "pattern".
                let is_keyword = !at.ends_with("/properties") && !at.ends_with("/$defs");
                if k == "pattern"
                    && is_keyword
                    && let Value::String(p) = v
                {
                    out.push((here.clone(), p.clone()));
                }
                collect(v, here, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Quotes a probe the way messages quote values.
pub fn shown(probe: &str) -> String {
    let head: String = probe.chars().take(12).collect();
    format!(
        "{:?} ({} characters)",
        format!("{head}…"),
        probe.chars().count()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_catastrophic_backreference_is_found_and_a_plain_pattern_is_not() {
        let schema = json!({"properties": {
            "bad": {"pattern": "((a|b)*)*\\1c"},
            "fine": {"pattern": "^(a|b)*c$"},
            "pattern": {"type": "string"}
        }});
        let found = costly(&schema);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].pointer, "/properties/bad/pattern");
    }
}
