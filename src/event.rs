//! The event envelope (SPEC §3): decoding bytes into a JSON object, the
//! CloudEvents mapping, the charset checks that make ids safe to use in file
//! names, and normalization (eventId and ts filled in).
//!
//! Schema validation lives in `schema.rs`; this module guarantees only what every
//! later step relies on: an [`Event`] has a safe `eventId` and `eventType`, a
//! `source`, a `payload`, and a `ts`. Unknown top-level fields are kept untouched.

use std::fmt;

use serde_json::{Map, Value};

/// `^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`: the charset of eventId and eventType.
/// Ids become file names under `.autod/`, so this check is a security boundary.
pub fn valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
        // `..` is allowed by the charset but never a useful id and always a path hazard.
        && !s.contains("..")
}

/// One reason an event was rejected: where (a JSON pointer into the event), which
/// rule, and what was wanted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub pointer: String,
    pub keyword: String,
    pub message: String,
}

impl Violation {
    pub fn new(
        pointer: impl Into<String>,
        keyword: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Violation {
            pointer: pointer.into(),
            keyword: keyword.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "(root)"
        } else {
            &self.pointer
        };
        write!(f, "at {pointer}: {} [{}]", self.message, self.keyword)
    }
}

/// The rejection of an event over `[validation] max_event_bytes`. A stream (a
/// pipe, a device) is read only one byte past the limit, so for `size` just
/// past it the event may be larger still.
pub fn too_large(size: u64, max_bytes: u64) -> Violation {
    let at_least = if size == max_bytes.saturating_add(1) {
        "at least "
    } else {
        ""
    };
    Violation::new(
        "",
        "maxEventBytes",
        format!(
            "event is {at_least}{size} bytes, over the {max_bytes}-byte limit (raise [validation] max_event_bytes if this is intended)"
        ),
    )
}

/// A raw event object after the size check, JSON parsing and the CloudEvents
/// mapping, before any schema has looked at it.
pub fn decode(bytes: &[u8], max_bytes: u64) -> Result<Map<String, Value>, Violation> {
    decode_input(bytes, max_bytes).map(|d| d.fields)
}

/// What [`decode_input`] made of the bytes: the event object, and whether it
/// was written as a CloudEvent (so errors can name its fields, not autod's).
pub struct Decoded {
    pub fields: Map<String, Value>,
    pub cloudevent: bool,
}

/// [`decode`], telling a CloudEvent apart.
pub fn decode_input(bytes: &[u8], max_bytes: u64) -> Result<Decoded, Violation> {
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64, max_bytes));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Violation::new(
            "",
            "json",
            "empty input; an event is one JSON object",
        ));
    }
    // serde_json stops at 128 levels of nesting, so deep input is an error, not a stack overflow.
    // Checked as UTF-8 once, the input is parsed without checking each string
    // again; input that is not UTF-8 is parsed as bytes, for the same error.
    let parsed = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    };
    let value: Value =
        parsed.map_err(|e| Violation::new("", "json", format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(Violation::new(
            "",
            "type",
            format!("an event is a JSON object, got {}", type_name(&value)),
        ));
    };
    if is_cloudevent(&obj) {
        return from_cloudevent(obj).map(|fields| Decoded {
            fields,
            cloudevent: true,
        });
    }
    Ok(Decoded {
        fields: obj,
        cloudevent: false,
    })
}

/// An object with `specversion` is a CloudEvent, unless it names its type the
/// autod way and not the CloudEvents way: that is an autod event that carries
/// `specversion` as an extra field, which is what a mapped CloudEvent is once
/// autod has accepted it (the inbox, a dead letter). Both names at once is
/// ambiguous, and [`from_cloudevent`] refuses it.
pub fn is_cloudevent(obj: &Map<String, Value>) -> bool {
    let autod_shaped = obj.contains_key("eventType") && !obj.contains_key("type");
    obj.contains_key("specversion") && !autod_shaped
}

/// The CloudEvents attributes and the autod fields they become.
const CLOUDEVENT_FIELDS: [(&str, &str); 5] = [
    ("type", "eventType"),
    ("id", "eventId"),
    ("source", "source"),
    ("time", "ts"),
    ("data", "payload"),
];

/// CloudEvents 1.0 structured mode: `type→eventType`, `id→eventId`,
/// `source→source`, `data→payload`, `time→ts`; other attributes are kept.
fn from_cloudevent(mut ce: Map<String, Value>) -> Result<Map<String, Value>, Violation> {
    if ce.get("specversion") != Some(&Value::String("1.0".into())) {
        return Err(Violation::new(
            "/specversion",
            "const",
            "only CloudEvents specversion \"1.0\" is supported",
        ));
    }
    if ce.contains_key("data_base64") {
        return Err(Violation::new(
            "/data_base64",
            "cloudevents",
            "binary CloudEvents data (data_base64) is not supported; send JSON in `data`",
        ));
    }
    // An autod name beside the attributes would silently replace one of them
    // (`type:"t"` with `eventType:"f"` ran the handlers of `f`); which one the
    // sender meant cannot be known, so the event is refused, naming both.
    for (attribute, autod) in CLOUDEVENT_FIELDS {
        if attribute != autod && ce.contains_key(autod) {
            return Err(Violation::new(
                format!("/{autod}"),
                "cloudevents",
                format!(
                    "ambiguous CloudEvent: it has `specversion`, so its {what} is the `{attribute}` attribute, and `{autod}` (autod's name for it) may not appear beside it; keep `{attribute}` and remove `{autod}`, or drop `specversion` and send an autod event",
                    what = match attribute {
                        "type" => "event type",
                        "id" => "id",
                        "time" => "time",
                        _ => "payload",
                    }
                ),
            ));
        }
    }
    let mut out = Map::with_capacity(ce.len());
    for (from, to) in CLOUDEVENT_FIELDS {
        match ce.remove(from) {
            Some(v) => {
                out.insert(to.into(), v);
            }
            None if from == "data" => {
                out.insert(to.into(), Value::Null);
            }
            None => {}
        }
    }
    out.extend(ce);
    Ok(out)
}

/// A violation of a mapped CloudEvent, told in the sender's terms: `/time`,
/// not `/ts`; `"type" is a required property`, not `"eventType"`.
pub fn in_cloudevent_terms(mut v: Violation) -> Violation {
    for (attribute, autod) in CLOUDEVENT_FIELDS {
        if attribute == autod {
            continue;
        }
        let from = format!("/{autod}");
        if v.pointer == from || v.pointer.starts_with(&format!("{from}/")) {
            v.pointer = format!("/{attribute}{}", &v.pointer[from.len()..]);
            v.message = rename_word(&v.message, autod, attribute);
        } else if v.pointer.is_empty() && v.keyword == "required" {
            v.message = v
                .message
                .replace(&format!("{autod:?}"), &format!("{attribute:?}"));
        }
    }
    v
}

/// `word` replaced by `with` where it stands alone (`eventType` in "not a
/// valid eventType", not inside `eventTypes`).
fn rename_word(text: &str, word: &str, with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + word.len()..].chars().next();
        let alone = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
        out.push_str(&rest[..i]);
        out.push_str(if alone(before) && alone(after) {
            with
        } else {
            word
        });
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The checks that must hold before an event's fields are used anywhere, whatever
/// the envelope schema says (a user's schemas/event.json may be looser).
pub fn check_ids(obj: &Map<String, Value>) -> Vec<Violation> {
    let names = [
        "eventType",
        "eventId",
        "correlationId",
        "causationId",
        "source",
        "key",
    ];
    let values = fields(obj, names);
    let mut problems = Vec::new();
    for (field, value) in names.into_iter().zip(values).take(4) {
        match value {
            None if field == "eventType" => problems.push(Violation::new(
                "",
                "required",
                "\"eventType\" is a required property",
            )),
            None => {}
            Some(Value::String(s)) if valid_id(s) => {}
            Some(Value::String(s)) => problems.push(Violation::new(
                format!("/{field}"),
                "pattern",
                format!(
                    "{s:?} is not a valid {field}: use letters, digits and . _ : - (at most 128, starting with a letter or digit, no `..`)"
                ),
            )),
            Some(other) => problems.push(Violation::new(
                format!("/{field}"),
                "type",
                format!("{field} must be a string, got {}", type_name(other)),
            )),
        }
    }
    // A handler gets `source` in its environment (AUTOD_EVENT_SOURCE), where a
    // NUL cannot go: every run would fail to start and be retried for ever.
    for (field, value) in names.into_iter().zip(values).skip(4) {
        if let Some(Value::String(s)) = value
            && s.chars().any(char::is_control)
        {
            problems.push(Violation::new(
                format!("/{field}"),
                "pattern",
                format!(
                    "{field} holds a control character (NUL, newline, tab …): it is passed to handlers and written to logs, so it must be plain text"
                ),
            ));
        }
    }
    problems
}

/// The values of `names` in `obj`, in the same order. serde_json's map hashes
/// (SipHash) every name looked up, and these checks run on every event: one
/// pass over an event's few top-level fields costs less.
fn fields<'a, const N: usize>(
    obj: &'a Map<String, Value>,
    names: [&str; N],
) -> [Option<&'a Value>; N] {
    if obj.len() > 16 {
        return names.map(|name| obj.get(name));
    }
    let mut found = [None; N];
    for (key, value) in obj {
        if let Some(i) = names.iter().position(|name| name == key) {
            found[i] = Some(value);
        }
    }
    found
}

/// The built-in envelope (`src/envelope.schema.json`) in code, for projects
/// without a `schemas/event.json`. The id fields are [`check_ids`]'s.
pub fn check_envelope(obj: &Map<String, Value>) -> Vec<Violation> {
    let [source, payload, key, ts, depth] = fields(
        obj,
        ["source", "payload", "key", "ts", crate::chain::DEPTH_FIELD],
    );
    let mut problems = Vec::new();
    for (field, value) in [("source", source), ("payload", payload)] {
        if value.is_none() {
            problems.push(Violation::new(
                "",
                "required",
                format!("{field:?} is a required property"),
            ));
        }
    }
    for (field, value) in [("source", source), ("key", key)] {
        match value {
            None => {}
            Some(Value::String(s)) => {
                let chars = s.chars().count();
                if chars == 0 {
                    problems.push(Violation::new(
                        format!("/{field}"),
                        "minLength",
                        format!("{s:?} is shorter than 1 character"),
                    ));
                } else if chars > 256 {
                    problems.push(Violation::new(
                        format!("/{field}"),
                        "maxLength",
                        format!("{field} is longer than 256 characters"),
                    ));
                }
            }
            Some(other) => problems.push(Violation::new(
                format!("/{field}"),
                "type",
                format!("{other} is not of type \"string\""),
            )),
        }
    }
    match ts {
        None => {}
        Some(Value::String(s)) if crate::time::parse(s).is_some() => {}
        Some(Value::String(s)) => problems.push(Violation::new(
            "/ts",
            "format",
            format!("{s:?} is not a \"date-time\" (RFC 3339, e.g. 2026-11-24T09:00:00Z)"),
        )),
        Some(other) => problems.push(Violation::new(
            "/ts",
            "type",
            format!("{other} is not of type \"string\""),
        )),
    }
    // Set by autod on follow-ups (SPEC 8); anything else would let a chain
    // claim to be shallower than it is.
    if let Some(v) = depth
        && v.as_u64().is_none()
    {
        problems.push(Violation::new(
            format!("/{}", crate::chain::DEPTH_FIELD),
            "type",
            format!(
                "{v} is not a non-negative integer (autod sets it on follow-ups; leave it out)"
            ),
        ));
    }
    problems
}

/// A validated, normalized event. Only `schema.rs` (and trusted state files)
/// construct one.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    fields: Map<String, Value>,
}

impl Event {
    /// Fills in eventId (UUIDv7) and ts (now) when absent. The caller has run
    /// [`check_ids`] and the envelope schema.
    pub(crate) fn normalize(mut fields: Map<String, Value>) -> Event {
        if !fields.contains_key("eventId") {
            let id = uuid::Uuid::now_v7().to_string();
            // Keep the conventional order: eventType, eventId first when we add it.
            fields.insert("eventId".into(), Value::String(id));
        }
        if !fields.contains_key("ts") {
            fields.insert("ts".into(), Value::String(crate::time::now_rfc3339()));
        }
        Event { fields }
    }

    /// An event read back from autod's own state (archive, dead letters), which
    /// was validated when it was accepted; ids are checked again because the
    /// files are on disk where anyone with access could edit them.
    pub fn from_trusted(value: Value) -> Option<Event> {
        let Value::Object(fields) = value else {
            return None;
        };
        let ok = check_ids(&fields).is_empty()
            && fields.get("eventId").is_some()
            && fields.get("source").is_some_and(Value::is_string);
        ok.then_some(Event { fields })
    }

    fn str_field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    pub fn id(&self) -> &str {
        self.str_field("eventId").unwrap_or_default()
    }

    pub fn event_type(&self) -> &str {
        self.str_field("eventType").unwrap_or_default()
    }

    pub fn source(&self) -> &str {
        self.str_field("source").unwrap_or_default()
    }

    pub fn key(&self) -> Option<&str> {
        self.str_field("key")
    }

    /// The chain this event belongs to: its own correlationId, or its eventId.
    pub fn correlation_id(&self) -> &str {
        self.str_field("correlationId").unwrap_or_else(|| self.id())
    }

    pub fn payload(&self) -> &Value {
        self.fields.get("payload").unwrap_or(&Value::Null)
    }

    pub fn as_value(&self) -> Value {
        Value::Object(self.fields.clone())
    }

    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// One line of compact JSON, as handlers receive it on stdin.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.fields).expect("a JSON map always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn id_charset() {
        assert!(valid_id("01JD0M3V.a:b_c-d"));
        assert!(!valid_id(""));
        assert!(!valid_id(".hidden"));
        assert!(!valid_id("a/b"));
        assert!(!valid_id("a..b"));
        assert!(!valid_id("a\nb"));
        assert!(!valid_id(&"a".repeat(129)));
        assert!(valid_id(&"a".repeat(128)));
    }

    #[test]
    fn parsing_text_or_bytes_gives_the_same_errors() {
        for input in [
            &b"{\"a\": }"[..],
            b"{\"a\": \"\\ud800\"}",
            b"{\"a\": \"\x01\"}",
            b"{\"a\": \"\xc3\"}",
            b"{\"a\" \xff: 1}",
            b"[1, 2",
            b"{\"a\": 1} x",
            "{\"é\": \"ü\", \"b\": tru}".as_bytes(),
        ] {
            let by_bytes = serde_json::from_slice::<Value>(input).unwrap_err();
            let ours = decode(input, 1 << 20).unwrap_err();
            assert_eq!(ours.message, format!("not valid JSON: {by_bytes}"));
        }
    }

    #[test]
    fn size_limit_comes_before_parsing() {
        let err = decode(b"not json at all", 4).unwrap_err();
        assert_eq!(err.keyword, "maxEventBytes");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(200_000);
        let err = decode(deep.as_bytes(), 1 << 20).unwrap_err();
        assert_eq!(err.keyword, "json");
        assert!(err.message.contains("recursion limit"), "{}", err.message);
    }

    #[test]
    fn cloudevents_are_mapped() {
        let ce = json!({"specversion":"1.0","type":"a.b","id":"x1","source":"s","time":"2026-01-01T00:00:00Z","data":{"k":1},"subject":"keep"});
        let obj = decode(ce.to_string().as_bytes(), 1 << 20).unwrap();
        assert_eq!(obj["eventType"], "a.b");
        assert_eq!(obj["eventId"], "x1");
        assert_eq!(obj["payload"], json!({"k":1}));
        assert_eq!(obj["ts"], "2026-01-01T00:00:00Z");
        assert_eq!(obj["subject"], "keep");
        assert!(!obj.contains_key("data"));
    }

    #[test]
    fn an_autod_name_beside_the_attributes_is_ambiguous() {
        let ce = json!({"specversion":"1.0","type":"t","eventType":"f","source":"s"});
        let err = decode(ce.to_string().as_bytes(), 1 << 20).unwrap_err();
        assert_eq!(err.pointer, "/eventType");
        assert!(err.message.contains("`type`"), "{}", err.message);
        // Once mapped (what the inbox holds), it is an autod event.
        let mapped = json!({"specversion":"1.0","eventType":"f","source":"s","payload":1});
        let obj = decode(mapped.to_string().as_bytes(), 1 << 20).unwrap();
        assert_eq!(obj["eventType"], "f");
        assert_eq!(obj["payload"], 1);
    }

    #[test]
    fn violations_are_told_in_cloudevents_terms() {
        let v = in_cloudevent_terms(Violation::new("/payload/a", "type", "x"));
        assert_eq!(v.pointer, "/data/a");
        let v = in_cloudevent_terms(Violation::new(
            "/eventType",
            "pattern",
            "\"a/b\" is not a valid eventType: use letters",
        ));
        assert_eq!(v.pointer, "/type");
        assert!(v.message.contains("valid type:"), "{}", v.message);
        let v = in_cloudevent_terms(Violation::new(
            "",
            "required",
            "\"eventType\" is a required property",
        ));
        assert_eq!(v.message, "\"type\" is a required property");
        assert_eq!(
            in_cloudevent_terms(Violation::new("/payloads", "k", "m")).pointer,
            "/payloads"
        );
        assert_eq!(
            rename_word("eventTypes eventType", "eventType", "type"),
            "eventTypes type"
        );
    }

    #[test]
    fn normalize_fills_id_and_ts_and_keeps_unknown_fields() {
        let obj = decode(
            br#"{"eventType":"a","source":"cli","payload":1,"extra":[1]}"#,
            1024,
        )
        .unwrap();
        let ev = Event::normalize(obj);
        assert!(valid_id(ev.id()));
        assert!(ev.fields().contains_key("ts"));
        assert_eq!(ev.fields()["extra"], json!([1]));
    }
}
