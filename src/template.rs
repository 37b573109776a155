//! The templates of `[webhooks.*]` (`event_type`, `event_id`, `key`): fixed
//! text around `{header.Name}` and `{body.a.b.0}` placeholders.
//!
//! Parsed once, when the config is read, so a typo is a config error with its
//! line, not a `400` on the first delivery. A placeholder names a request
//! header (looked up case-insensitively, as HTTP says) or a field of the body
//! (a dotted path; a number is an array index). There is no escaping: `{` and
//! `}` are never part of an eventType, an eventId or a sensible key.

use std::fmt;

use axum::http::{HeaderMap, HeaderName};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Fixed(String),
    Header(HeaderName),
    Body(Vec<String>),
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let open = rest.find(['{', '}']).unwrap_or(rest.len());
            if open > 0 {
                parts.push(Part::Fixed(rest[..open].to_owned()));
            }
            rest = &rest[open..];
            if rest.is_empty() {
                break;
            }
            if rest.starts_with('}') {
                return Err(format!(
                    "template {text:?} has a `}}` with no `{{` before it"
                ));
            }
            let Some(close) = rest.find('}') else {
                return Err(format!(
                    "template {text:?} has a `{{` that is never closed; write {{header.Name}} or {{body.field}}"
                ));
            };
            parts.push(placeholder(text, &rest[1..close])?);
            rest = &rest[close + 1..];
        }
        if parts.is_empty() {
            return Err("template is empty".into());
        }
        Ok(Template {
            text: text.to_owned(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The fixed text, piece by piece.
    pub fn fixed(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Fixed(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// The fixed text before the first placeholder (all of it when there is
    /// none): what every value of the template starts with.
    pub fn prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Fixed(s)) => s,
            _ => "",
        }
    }

    pub fn is_fixed(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Fixed(_)))
    }

    /// The value for one request; `Err` says which placeholder had nothing.
    pub fn render(&self, headers: &HeaderMap, body: &Value) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Fixed(s) => out.push_str(s),
                Part::Header(name) => {
                    let value = headers
                        .get(name)
                        .ok_or_else(|| format!("the request has no {name} header"))?;
                    let value = value
                        .to_str()
                        .map_err(|_| format!("header {name} is not plain text"))?;
                    out.push_str(value.trim());
                }
                Part::Body(path) => {
                    let shown = path.join(".");
                    let mut at = body;
                    for seg in path {
                        let next = match at {
                            Value::Object(m) => m.get(seg),
                            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
                            _ => None,
                        };
                        at = next.ok_or_else(|| format!("the body has no field {shown}"))?;
                    }
                    match at {
                        Value::String(s) => out.push_str(s),
                        Value::Number(n) => out.push_str(&n.to_string()),
                        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                        Value::Null => return Err(format!("body field {shown} is null")),
                        _ => {
                            return Err(format!(
                                "body field {shown} is an object or array, not text; name a field inside it"
                            ));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn placeholder(text: &str, inner: &str) -> Result<Part, String> {
    let inner = inner.trim();
    if inner.contains('{') {
        return Err(format!("template {text:?} has a `{{` inside a placeholder"));
    }
    let (ns, rest) = inner.split_once('.').unwrap_or((inner, ""));
    match ns {
        "header" => HeaderName::from_bytes(rest.as_bytes())
            .map(Part::Header)
            .map_err(|_| {
                format!(
                    "template {text:?}: {rest:?} is not a header name (letters, digits and -, e.g. {{header.X-GitHub-Event}})"
                )
            }),
        "body" => {
            let path: Vec<String> = rest.split('.').map(str::to_owned).collect();
            if path.iter().any(String::is_empty) {
                return Err(format!(
                    "template {text:?}: {{{inner}}} is not a field path; write it like {{body.repository.full_name}} or {{body.items.0.id}}"
                ));
            }
            Ok(Part::Body(path))
        }
        other => Err(format!(
            "template {text:?}: {{{inner}}} names {other:?}; a placeholder is {{header.Name}} or {{body.field.path}}"
        )),
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, headers: &[(&str, &str)], body: &Value) -> Result<String, String> {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Template::parse(t).unwrap().render(&h, body)
    }

    #[test]
    fn headers_and_body_fields_fill_the_fixed_text() {
        let body = json!({"type": "charge.succeeded", "repo": {"name": "x"}, "items": [{"n": 7}], "ok": true});
        assert_eq!(
            render(
                "github.{header.X-GitHub-Event}",
                &[("x-github-event", "push")],
                &body
            ),
            Ok("github.push".into())
        );
        assert_eq!(
            render("stripe.{body.type}", &[], &body),
            Ok("stripe.charge.succeeded".into())
        );
        assert_eq!(
            render("{body.repo.name}:{body.items.0.n}:{body.ok}", &[], &body),
            Ok("x:7:true".into())
        );
        assert_eq!(render("plain", &[], &body), Ok("plain".into()));
    }

    #[test]
    fn missing_values_are_named() {
        let body = json!({"a": {"b": null}, "list": [1]});
        let err = |t: &str| render(t, &[], &body).unwrap_err();
        assert_eq!(
            err("x.{header.X-Event}"),
            "the request has no x-event header"
        );
        assert_eq!(err("{body.nope}"), "the body has no field nope");
        assert_eq!(err("{body.list.3}"), "the body has no field list.3");
        assert_eq!(err("{body.a.b}"), "body field a.b is null");
        assert!(err("{body.a}").contains("object or array"));
        assert!(render("{body.a}", &[], &json!("text")).is_err());
    }

    #[test]
    fn mistakes_are_refused_when_parsed() {
        for (t, want) in [
            ("", "empty"),
            ("a.{header.X", "never closed"),
            ("a}", "no `{` before it"),
            ("{head.X}", "names \"head\""),
            ("{X-GitHub-Event}", "names \"X-GitHub-Event\""),
            ("{header.X Event}", "not a header name"),
            ("{header.}", "not a header name"),
            ("{body}", "not a field path"),
            ("{body.a..b}", "not a field path"),
            ("{body.{a}}", "inside a placeholder"),
        ] {
            let e = Template::parse(t).unwrap_err();
            assert!(e.contains(want), "{t:?}: {e}");
        }
    }

    #[test]
    fn prefix_and_fixed_parts() {
        let t = Template::parse("gh.{header.E}.{body.action}").unwrap();
        assert_eq!(t.prefix(), "gh.");
        assert_eq!(t.fixed().collect::<Vec<_>>(), ["gh.", "."]);
        assert!(!t.is_fixed());
        assert_eq!(Template::parse("{body.a}x").unwrap().prefix(), "");
        assert!(Template::parse("a.b").unwrap().is_fixed());
    }
}
