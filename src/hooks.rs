//! `POST /hooks/<name>` (SPEC 11): a webhook request, as its sender wrote it,
//! made into an autod event for the same intake as `POST /events`.
//!
//! What this module owns: each hook's secrets (read once, when the server
//! starts), its cap on requests at once, the signature check over the raw
//! body ([`crate::signature`]), and the event: `event_type`, `event_id` and
//! `key` from their templates ([`crate::template`]), the body as the
//! payload, the listed headers as a top-level `headers` field, and `source =
//! "webhook:<name>"`. What it does not: HTTP (the order of the checks, the
//! body's size cap and timeout are src/serve.rs's), validation and the inbox
//! (the intake's), and running anything.
//!
//! The payload is the body as the sender's documentation describes it, so a
//! schema copied from there fits: headers go beside it, not into it.
//! `Content-Type` decides how the body is read: JSON (`application/json`,
//! `*+json`) is parsed (and must parse); a form (`application/x-www-form-
//! urlencoded`) is an object of its fields, except that for `signature =
//! "github"` a form's `payload` field is the JSON GitHub put there; anything
//! else, a missing Content-Type too, is `{"raw": "<text>"}`, or `{"rawBase64":
//! "…"}` when the bytes are not UTF-8. Guessing JSON from a body without a
//! Content-Type would make `123` a number for one sender and text for another.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::http::HeaderMap;
use base64::Engine as _;
use serde_json::{Map, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Webhook;
use crate::signature::{Check, Refusal, Scheme};
use crate::template::Template;

/// The server's hooks, by name.
pub struct Hooks {
    by_name: BTreeMap<String, Hook>,
}

/// One hook, ready for requests.
pub struct Hook {
    pub config: Webhook,
    /// HMAC keys, in rotation order.
    keys: Vec<Vec<u8>>,
    slots: Option<Arc<Semaphore>>,
}

/// A request the hook cannot make an event of: the sender's fault (`400`).
#[derive(Debug)]
pub struct Unusable {
    pub kind: &'static str,
    pub message: String,
}

impl Hooks {
    /// Reads every hook's secrets and checks that an unsigned hook is not
    /// served beyond loopback (`listen` may be a `--listen` override, which
    /// the config check did not see). An `Err` is a usage error: the server
    /// does not start.
    pub fn load(root: &Path, webhooks: &[Webhook], listen: SocketAddr) -> Result<Hooks, String> {
        if let Some(message) = crate::config::unsigned_beyond_loopback(webhooks, listen) {
            return Err(message);
        }
        let mut by_name = BTreeMap::new();
        for w in webhooks {
            let keys = match w.signature {
                None => Vec::new(),
                Some(scheme) => {
                    let table = format!("webhooks.{}", w.name);
                    let secrets = crate::config::read_secrets(
                        root,
                        &table,
                        "secret",
                        &w.secret_env,
                        &w.secret_file,
                    )?;
                    secrets
                        .iter()
                        .enumerate()
                        .map(|(i, s)| {
                            scheme
                                .key(s)
                                .map_err(|e| format!("{table}: secret {}: {e}", i + 1))
                        })
                        .collect::<Result<_, _>>()?
                }
            };
            let hook = Hook {
                keys,
                slots: w.concurrency.map(|n| Arc::new(Semaphore::new(n))),
                config: w.clone(),
            };
            by_name.insert(w.name.clone(), hook);
        }
        Ok(Hooks { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Hook> {
        self.by_name.get(name)
    }

    /// For a `404`: what there is instead.
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }
}

impl Hook {
    /// Waits for one of the hook's `concurrency` slots (none: no cap of its own).
    pub async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        let slots = self.slots.clone()?;
        // The semaphore is never closed, so acquiring only waits.
        slots.acquire_owned().await.ok()
    }

    /// Whether the body, as it arrived, carries a valid signature (an
    /// unsigned hook: always). The refusal is fit to log and to answer.
    pub fn authenticate(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
        let Some(scheme) = self.config.signature else {
            return Ok(());
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Check {
            scheme,
            header: &self.config.signature_header,
            keys: &self.keys,
            tolerance: self.config.tolerance,
            now,
        }
        .verify(headers, body)
    }

    /// The event this request stands for, as the bytes the intake admits.
    pub fn event(&self, headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, Unusable> {
        let c = &self.config;
        let payload = payload(c.signature, headers, body)?;
        let event_type = render(&c.event_type, "event_type", headers, &payload)?;
        checked_id(&c.event_type, "event_type", "an eventType", &event_type)?;
        let mut event = Map::new();
        event.insert("eventType".into(), Value::String(event_type));
        if let Some(t) = &c.event_id {
            match t.render(headers, &payload) {
                Ok(id) => {
                    checked_id(t, "event_id", "an eventId", &id)?;
                    event.insert("eventId".into(), Value::String(id));
                }
                // A sender without its usual delivery id: the event gets an
                // assigned one, and loses only redelivery detection.
                Err(_) if c.event_id_is_default => {}
                Err(missing) => return Err(unrendered(t, "event_id", &missing)),
            }
        }
        event.insert("source".into(), Value::String(c.source()));
        if let Some(t) = &c.key {
            let key = render(t, "key", headers, &payload)?;
            if key.is_empty() || key.chars().count() > 256 || key.chars().any(char::is_control) {
                return Err(Unusable {
                    kind: "template",
                    message: format!(
                        "key template {:?} made {key:?}; a key is 1 to 256 characters of plain text",
                        t.as_str()
                    ),
                });
            }
            event.insert("key".into(), Value::String(key));
        }
        let listed: Map<String, Value> = c
            .headers
            .iter()
            .filter_map(|name| {
                let values: Vec<String> = headers
                    .get_all(name.as_str())
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect();
                // Several of one header are one list, as RFC 9110 5.3 joins them.
                (!values.is_empty()).then(|| (name.clone(), Value::String(values.join(", "))))
            })
            .collect();
        if !listed.is_empty() {
            event.insert("headers".into(), Value::Object(listed));
        }
        event.insert("payload".into(), payload);
        Ok(serde_json::to_vec(&Value::Object(event)).expect("a JSON value serializes"))
    }
}

fn render(
    t: &Template,
    key: &str,
    headers: &HeaderMap,
    payload: &Value,
) -> Result<String, Unusable> {
    t.render(headers, payload)
        .map_err(|missing| unrendered(t, key, &missing))
}

fn unrendered(t: &Template, key: &str, missing: &str) -> Unusable {
    Unusable {
        kind: "template",
        message: format!(
            "{key} template {:?} cannot be filled in: {missing}; send it, or change {key} in autod.toml",
            t.as_str()
        ),
    }
}

/// An eventType or eventId as a template made it, checked here so the `400`
/// names the template (the intake's own error would name only `/eventType`).
fn checked_id(t: &Template, key: &str, what: &str, value: &str) -> Result<(), Unusable> {
    if crate::event::valid_id(value) {
        return Ok(());
    }
    Err(Unusable {
        kind: "template",
        message: format!(
            "{key} template {:?} made {value:?}, which is not {what} (1 to 128 letters, digits, `.`, `_`, `:` and `-`, starting with a letter or digit)",
            t.as_str()
        ),
    })
}

/// The body as the payload (see the module's doc).
fn payload(scheme: Option<Scheme>, headers: &HeaderMap, body: &[u8]) -> Result<Value, Unusable> {
    let media = crate::media::media_type(headers);
    match media.as_deref() {
        Some(m) if crate::media::is_json(m) => serde_json::from_slice(body).map_err(|e| Unusable {
            kind: "body",
            message: format!("the body is not valid JSON, as its Content-Type {m} says: {e}"),
        }),
        Some("application/x-www-form-urlencoded") => {
            let fields = crate::media::form(body).ok_or_else(|| Unusable {
                kind: "body",
                message: "the form body has a broken `%` escape or is not UTF-8".into(),
            })?;
            // GitHub's form content type: the JSON payload in one field.
            if scheme == Some(Scheme::Github)
                && let Some(Value::String(json)) = fields.get("payload")
            {
                return serde_json::from_str(json).map_err(|e| Unusable {
                    kind: "body",
                    message: format!("the form's payload field is not valid JSON: {e}"),
                });
            }
            Ok(Value::Object(fields))
        }
        _ => Ok(match std::str::from_utf8(body) {
            Ok(text) => serde_json::json!({"raw": text}),
            Err(_) => serde_json::json!({
                "rawBase64": base64::engine::general_purpose::STANDARD.encode(body)
            }),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_headers as headers;
    use serde_json::json;

    fn hook(toml: &str) -> Hook {
        let c = crate::config::Config::parse(
            Path::new("/nonexistent"),
            Path::new("autod.toml"),
            &format!("[webhooks.h]\n{toml}"),
        )
        .unwrap();
        Hook {
            config: c.webhooks[0].clone(),
            keys: Vec::new(),
            slots: None,
        }
    }

    fn event(h: &Hook, headers: &HeaderMap, body: &[u8]) -> Value {
        serde_json::from_slice(&h.event(headers, body).unwrap()).unwrap()
    }

    #[test]
    fn a_json_body_is_the_payload_and_listed_headers_go_beside_it() {
        let h = hook(
            "event_type = \"github.{header.X-GitHub-Event}\"\nkey = \"{body.repository.full_name}\"\nheaders = [\"X-GitHub-Event\", \"X-Absent\"]\n",
        );
        let hs = headers(&[
            ("content-type", "application/json"),
            ("x-github-event", "push"),
        ]);
        let e = event(&h, &hs, br#"{"repository":{"full_name":"me/x"}}"#);
        assert_eq!(
            e,
            json!({"eventType": "github.push", "source": "webhook:h", "key": "me/x",
                   "headers": {"X-GitHub-Event": "push"},
                   "payload": {"repository": {"full_name": "me/x"}}})
        );
    }

    #[test]
    fn bodies_by_content_type() {
        let h = hook("event_type = \"x.y\"\n");
        let ct = |m: &str| headers(&[("content-type", m)]);
        assert_eq!(
            event(
                &h,
                &ct("application/x-www-form-urlencoded"),
                b"a=1&b=two+words"
            )["payload"],
            json!({"a": "1", "b": "two words"})
        );
        assert_eq!(
            event(&h, &ct("text/plain; charset=utf-8"), b"hello")["payload"],
            json!({"raw": "hello"})
        );
        assert_eq!(
            event(&h, &HeaderMap::new(), b"{\"a\":1}")["payload"],
            json!({"raw": "{\"a\":1}"}),
            "no Content-Type: not guessed"
        );
        assert_eq!(
            event(&h, &ct("application/octet-stream"), &[0xff, 0])["payload"],
            json!({"rawBase64": "/wA="})
        );
        let bad = h.event(&ct("application/json"), b"{").unwrap_err();
        assert_eq!(bad.kind, "body");
        // GitHub's form: the payload field is the JSON.
        let gh =
            hook("event_type = \"gh.{body.action}\"\nsignature = \"github\"\nsecret_env = \"S\"\n");
        let e = event(
            &gh,
            &ct("application/x-www-form-urlencoded"),
            b"payload=%7B%22action%22%3A%22opened%22%7D",
        );
        assert_eq!(e["payload"], json!({"action": "opened"}));
        assert_eq!(e["eventType"], "gh.opened");
    }

    #[test]
    fn template_failures_name_the_template() {
        let h = hook("event_type = \"stripe.{body.type}\"\nevent_id = \"{body.id}\"\n");
        let json = headers(&[("content-type", "application/json")]);
        let e = h.event(&json, br#"{"id":"evt_1"}"#).unwrap_err();
        assert!(
            e.message.contains("event_type template \"stripe.{body.type}\" cannot be filled in: the body has no field type"),
            "{}",
            e.message
        );
        let e = h.event(&json, br#"{"type":"a b"}"#).unwrap_err();
        assert!(
            e.message
                .contains("made \"stripe.a b\", which is not an eventType"),
            "{}",
            e.message
        );
        let e = h.event(&json, br#"{"type":"a"}"#).unwrap_err();
        assert!(
            e.message.starts_with("event_id template \"{body.id}\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_default_delivery_id_is_used_when_present() {
        let h = hook("event_type = \"gh.x\"\nsignature = \"github\"\nsecret_env = \"S\"\n");
        let e = event(&h, &headers(&[("x-github-delivery", "abc-123")]), b"");
        assert_eq!(e["eventId"], "abc-123");
        let e = event(&h, &HeaderMap::new(), b"");
        assert!(e.get("eventId").is_none(), "{e}");
    }
}
