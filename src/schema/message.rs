//! The validator's errors in autod's words: what was sent (quoted, but never
//! more than a couple of hundred characters of it), what the schema wanted,
//! and whether the fault is in a value or in a property's name.
//!
//! The crate's own messages echo the whole bad value: a 500 KB string became a
//! 500 KB line on stderr and in the run log. Every message here is built with
//! the value masked and a short quotation put in its place.

use jsonschema::ValidationError;
use jsonschema::error::ValidationErrorKind as Kind;
use serde_json::Value;

use super::local::scrub;
use crate::event::Violation;

/// Characters of a bad value quoted in a message.
const QUOTE_MAX: usize = 200;
/// Characters of a whole message; what the schema lists (an `enum`) is cut too.
const MESSAGE_MAX: usize = 600;

/// A value as JSON, cut to about [`QUOTE_MAX`] characters with a note of how
/// long it really is.
fn quote(value: &Value) -> String {
    let json = value.to_string();
    if json.chars().count() <= QUOTE_MAX {
        return json;
    }
    let head = cut(&json, QUOTE_MAX);
    match value {
        Value::String(s) => format!("{head}…\" ({} characters)", s.chars().count()),
        _ => format!("{head}… ({} bytes of JSON)", json.len()),
    }
}

/// The first `max` characters of `s`.
fn cut(s: &str, max: usize) -> &str {
    s.char_indices().nth(max).map_or(s, |(i, _)| &s[..i])
}

fn capped(message: String) -> String {
    let message = scrub(&message);
    if message.chars().count() <= MESSAGE_MAX {
        return message;
    }
    format!("{}…", cut(&message, MESSAGE_MAX))
}

/// The last segment of a JSON pointer, unescaped: the property it names.
fn last_segment(pointer: &str) -> String {
    pointer
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .replace("~1", "/")
        .replace("~0", "~")
}

fn quoted_names(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote(&Value::String(n.clone())))
        .collect::<Vec<_>>()
        .join(", ")
}

fn not_allowed(names: &[String], keyword: &str) -> String {
    let (noun, verb) = if names.len() == 1 {
        ("property", "is")
    } else {
        ("properties", "are")
    };
    format!(
        "{noun} {} {verb} not allowed here (the schema's {keyword} is false: only the properties it names may appear)",
        quoted_names(names)
    )
}

/// One validation error as a violation of the value at `prefix` + its pointer.
pub fn violation(error: &ValidationError<'_>, prefix: &str) -> Violation {
    let pointer = format!("{prefix}{}", error.instance_path());
    let schema_path = error.schema_path().to_string();
    let sent = quote(error.instance());
    let (keyword, message) = match error.kind() {
        Kind::PropertyNames { error: inner } => (
            "propertyNames",
            inner
                .masked_with(format!("property name {}", quote(inner.instance())))
                .to_string(),
        ),
        Kind::FalseSchema => match last_segment(&schema_path).as_str() {
            k @ ("additionalProperties" | "unevaluatedProperties") => {
                let name = last_segment(&error.instance_path().to_string());
                let keyword = if k == "additionalProperties" {
                    "additionalProperties"
                } else {
                    "unevaluatedProperties"
                };
                (keyword, not_allowed(&[name], keyword))
            }
            _ => (
                "false",
                format!("no value is allowed here (the schema is `false`), got {sent}"),
            ),
        },
        Kind::AdditionalProperties { unexpected } => (
            "additionalProperties",
            not_allowed(unexpected, "additionalProperties"),
        ),
        Kind::UnevaluatedProperties { unexpected } => (
            "unevaluatedProperties",
            not_allowed(unexpected, "unevaluatedProperties"),
        ),
        Kind::Format { format } => ("format", format!("{sent} is not a valid {format}")),
        Kind::Constant { expected_value } => (
            "const",
            format!("expected {}, got {sent}", quote(expected_value)),
        ),
        kind => (kind.keyword(), error.masked_with(sent).to_string()),
    };
    Violation::new(pointer, keyword, capped(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn first(schema: Value, instance: Value) -> Violation {
        let v = jsonschema::validator_for(&schema).unwrap();
        let e = v.iter_errors(&instance).next().expect("an error");
        violation(&e, "/payload")
    }

    #[test]
    fn a_long_value_is_quoted_short() {
        let v = first(json!({"maxLength": 3}), json!("x".repeat(500_000)));
        assert!(v.message.len() < 400, "{}", v.message);
        assert!(v.message.contains("(500000 characters)"), "{}", v.message);
        assert!(
            v.message.contains("is longer than 3 characters"),
            "{}",
            v.message
        );
    }

    #[test]
    fn const_says_what_was_sent() {
        let v = first(json!({"const": 2}), json!(3));
        assert_eq!(v.message, "expected 2, got 3");
    }

    #[test]
    fn property_names_say_they_are_names() {
        let v = first(
            json!({"propertyNames": {"maxLength": 2}}),
            json!({"abcd": 1}),
        );
        assert_eq!(v.keyword, "propertyNames");
        assert!(
            v.message.starts_with("property name \"abcd\" is longer"),
            "{}",
            v.message
        );
        let v = first(
            json!({"properties": {"a": {}}, "additionalProperties": false}),
            json!({"a": 1, "b/c": 2}),
        );
        assert_eq!(v.keyword, "additionalProperties");
        assert_eq!(v.pointer, "/payload");
        assert!(
            v.message.starts_with("property \"b/c\" is not allowed"),
            "{}",
            v.message
        );
    }

    #[test]
    fn a_false_schema_is_explained() {
        let v = first(json!({"items": false}), json!([1]));
        assert!(
            v.message
                .starts_with("no value is allowed here (the schema is `false`)")
        );
    }
}
