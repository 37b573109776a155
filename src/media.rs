//! What a request body is, for `/events` (src/serve.rs) and `/hooks/*`
//! (src/hooks.rs): its media type, and percent-encoded text decoded
//! (CloudEvents binary-mode header values, `application/x-www-form-urlencoded`
//! bodies). Reading only; autod never writes either encoding.

use axum::http::{HeaderMap, header};
use serde_json::{Map, Value};

/// The media type, lowercased, without parameters (`; charset=utf-8`).
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// `application/json` and the `+json` types (`application/cloudevents+json`, …).
pub fn is_json(m: &str) -> bool {
    m == "application/json" || m.ends_with("+json")
}

/// `%XX` sequences decoded, UTF-8 underneath; `None` for a broken `%` or
/// bytes that are not UTF-8.
pub fn percent_decode(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = std::str::from_utf8(raw.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A form body as an object of its fields, in order: each value a string,
/// a field given more than once an array of them (as PHP, Rails and GitHub's
/// own form senders mean it). `None`: not a form (a broken `%`, not UTF-8).
pub fn form(body: &[u8]) -> Option<Map<String, Value>> {
    let mut fields = Map::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        // `+` is a space in a form (not in a header): replaced before `%2B` is decoded.
        let plus = |s: &[u8]| -> Vec<u8> {
            s.iter()
                .map(|b| if *b == b'+' { b' ' } else { *b })
                .collect()
        };
        let key = percent_decode(&plus(k))?;
        let value = Value::String(percent_decode(&plus(v))?);
        match fields.get_mut(&key) {
            None => {
                fields.insert(key, value);
            }
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
        }
    }
    Some(fields)
}

/// A header map from `(name, value)` pairs, for unit tests.
#[cfg(test)]
pub fn test_headers(pairs: &[(&str, &str)]) -> axum::http::HeaderMap {
    let mut h = axum::http::HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn media_types_lose_parameters_and_case() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8".parse().unwrap(),
        );
        assert_eq!(media_type(&h).as_deref(), Some("application/json"));
        assert!(is_json("application/json") && is_json("application/cloudevents+json"));
        assert!(!is_json("text/plain"));
    }

    #[test]
    fn ce_headers_are_percent_decoded() {
        assert_eq!(percent_decode(b"a%20b%25").as_deref(), Some("a b%"));
        assert_eq!(
            percent_decode("caf%C3%A9".as_bytes()).as_deref(),
            Some("café")
        );
        assert_eq!(percent_decode(b"a+b").as_deref(), Some("a+b"));
        assert_eq!(percent_decode(b"bad%2"), None);
        assert_eq!(percent_decode(b"bad%zz"), None);
        assert_eq!(percent_decode(b"%FF"), None);
    }

    #[test]
    fn form_fields() {
        assert_eq!(
            Value::Object(form(b"a=1&b=x+y%2Bz&a=2&flag&&c=").unwrap()),
            json!({"a": ["1", "2"], "b": "x y+z", "flag": "", "c": ""})
        );
        assert_eq!(form(b"").unwrap().len(), 0);
        assert!(form(b"a=%ZZ").is_none());
    }
}
