//! The line a JSON pointer points at, for findings about a place inside a JSON
//! file (a schema keyword the meta-schema rejects, a fixture field the schema
//! rejects): an editor or a GitHub annotation can then go straight to it.
//! serde_json keeps no positions, so the file is parsed again, only when there
//! is a finding to place.

use jsonc_parser::ast::Value;

/// 1-based line of the member `pointer` names (its key, for an object
/// member), or of the deepest part of it that exists.
pub fn line_of(text: &str, pointer: &str) -> Option<usize> {
    let strict = jsonc_parser::ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        ..Default::default()
    };
    let parsed = jsonc_parser::parse_to_ast(text, &Default::default(), &strict).ok()?;
    let mut node = parsed.value?;
    let mut at = None;
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        node = match node {
            Value::Object(object) => {
                let Some(prop) = object
                    .properties
                    .into_iter()
                    .find(|p| p.name.as_str() == token)
                else {
                    break;
                };
                at = Some(prop.range.start);
                prop.value
            }
            Value::Array(array) => {
                let Some(element) = token
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| array.elements.into_iter().nth(i))
                else {
                    break;
                };
                at = Some(element_start(&element));
                element
            }
            _ => break,
        };
    }
    at.map(|offset| crate::config::line_at(text, offset))
}

fn element_start(v: &Value<'_>) -> usize {
    match v {
        Value::StringLit(n) => n.range.start,
        Value::NumberLit(n) => n.range.start,
        Value::BooleanLit(n) => n.range.start,
        Value::Object(n) => n.range.start,
        Value::Array(n) => n.range.start,
        Value::NullKeyword(n) => n.range.start,
    }
}

#[cfg(test)]
mod tests {
    use super::line_of;

    const DOC: &str = "{\n  \"type\": \"object\",\n  \"properties\": {\n    \"a/b\": {\"type\": \"integr\"},\n    \"list\": [\n      1,\n      {\"x\": 2}\n    ]\n  }\n}\n";

    #[test]
    fn keys_escapes_and_indexes() {
        assert_eq!(line_of(DOC, "/type"), Some(2));
        assert_eq!(line_of(DOC, "/properties/a~1b/type"), Some(4));
        assert_eq!(line_of(DOC, "/properties/list/1/x"), Some(7));
        assert_eq!(line_of(DOC, "/properties/list/0"), Some(6));
    }

    #[test]
    fn the_deepest_part_that_exists() {
        assert_eq!(line_of(DOC, "/properties/list/9"), Some(5));
        assert_eq!(line_of(DOC, "/nope"), None);
        assert_eq!(line_of(DOC, ""), None);
        assert_eq!(line_of("not json", "/a"), None);
    }
}
