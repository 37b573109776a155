//! `[webhooks.<name>]` (SPEC 11): the TOML shape and its checks, made into
//! [`Webhook`]s once, at load. Templates are parsed here, so a typo in one is
//! a config error with its line; secrets are not read here (the server reads
//! them when it starts, `autod lint` warns about them), so a config can be
//! checked on a machine that does not hold them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{HumanDuration, OneOrMany, Problem, ServeConfig, line_of};
use crate::signature::{DEFAULT_TOLERANCE, Scheme};
use crate::template::Template;

/// Past an hour, a replay window is no window.
const MAX_TOLERANCE: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    event_type: String,
    event_id: Option<String>,
    key: Option<String>,
    signature: Option<Scheme>,
    signature_header: Option<String>,
    #[serde(default)]
    secret_env: OneOrMany,
    #[serde(default)]
    secret_file: OneOrMany,
    tolerance: Option<HumanDuration>,
    #[serde(default)]
    headers: Vec<String>,
    concurrency: Option<usize>,
}

/// One `[webhooks.<name>]`, checked.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// The `<name>` of `POST /hooks/<name>`; the event's source is `webhook:<name>`.
    pub name: String,
    pub event_type: Template,
    /// `event_id`, or the scheme's delivery id ([`Scheme::delivery_id`]).
    pub event_id: Option<Template>,
    /// `event_id` was not written, so it is the scheme's default: a request
    /// without that delivery id gets an assigned eventId instead of a `400`.
    pub event_id_is_default: bool,
    /// The event's partition key: events with the same key run one at a time, in order.
    pub key: Option<Template>,
    /// `None`: unsigned, allowed on loopback only.
    pub signature: Option<Scheme>,
    /// The header the signature is read from.
    pub signature_header: String,
    pub secret_env: OneOrMany,
    pub secret_file: OneOrMany,
    pub tolerance: Duration,
    /// Request headers copied into the event's `headers` field, as written here.
    pub headers: Vec<String>,
    /// Requests of this hook handled at once.
    pub concurrency: Option<usize>,
}

impl Webhook {
    pub fn source(&self) -> String {
        format!("webhook:{}", self.name)
    }
}

pub(super) fn check(
    text: &str,
    raw: BTreeMap<String, RawWebhook>,
    serve: Option<&ServeConfig>,
    problems: &mut Vec<Problem>,
) -> Vec<Webhook> {
    let mut hooks = Vec::new();
    for (name, w) in raw {
        let table = line_of(text, &format!("[webhooks.{name}]"))
            .or_else(|| line_of(text, &format!("[webhooks.\"{name}\"]")));
        let mut problem = |key: &str, message: String| {
            problems.push(Problem {
                line: super::key_line(text, table, key).or(table),
                message: format!("webhook {name:?}: {message}"),
            });
        };
        if !super::valid_handler_name(&name) {
            problem(
                "",
                "the name is not allowed: use lowercase letters, digits, `-` and `_` (it is the path /hooks/<name>)".into(),
            );
            continue;
        }
        let mut template = |key: &str, value: Option<&str>| {
            value.and_then(|t| match Template::parse(t) {
                Ok(t) => Some(t),
                Err(e) => {
                    problem(key, format!("{key}: {e}"));
                    None
                }
            })
        };
        let event_type = template("event_type", Some(&w.event_type));
        let explicit_id = template("event_id", w.event_id.as_deref());
        let key = template("key", w.key.as_deref());
        if let Some(t) = &event_type {
            for why in fixed_text_problems(t) {
                problem(
                    "event_type",
                    format!(
                        "event_type {:?}: {why}, so no eventType could be made of it (an eventType is letters, digits, `.`, `_`, `:` and `-`, starting with a letter or digit)",
                        t.as_str()
                    ),
                );
            }
        }
        if let Some(t) = &explicit_id {
            for why in fixed_text_problems(t) {
                problem(
                    "event_id",
                    format!(
                        "event_id {:?}: {why}, so no eventId could be made of it (letters, digits, `.`, `_`, `:` and `-`)",
                        t.as_str()
                    ),
                );
            }
        }
        for h in &w.headers {
            if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                problem(
                    "headers",
                    format!("headers: {h:?} is not a header name (letters, digits and -)"),
                );
            }
        }
        let has_secret = !w.secret_env.0.is_empty() || !w.secret_file.0.is_empty();
        match w.signature {
            Some(scheme) if !has_secret => problem(
                "signature",
                format!(
                    "signature = {:?} needs the secret to check it with: set secret_env = \"NAME_OF_THE_VARIABLE\" or secret_file = \"path/to/secret\"",
                    scheme.name()
                ),
            ),
            None if has_secret => problem(
                "signature",
                "secret_env or secret_file is set but no signature scheme: set signature = \"github\", \"stripe\", \"standard\" or \"hmac-sha256\", or the secret is never checked".into(),
            ),
            _ => {}
        }
        if w.signature_header.is_some() && w.signature != Some(Scheme::HmacSha256) {
            problem(
                "signature_header",
                "signature_header applies to signature = \"hmac-sha256\" only; github, stripe and standard have their own headers".into(),
            );
        }
        let signature_header = w.signature_header.unwrap_or_else(|| {
            w.signature
                .map_or(Scheme::HmacSha256, |s| s)
                .header()
                .to_owned()
        });
        if axum::http::HeaderName::from_bytes(signature_header.as_bytes()).is_err() {
            problem(
                "signature_header",
                format!("signature_header {signature_header:?} is not a header name"),
            );
        }
        let tolerance = w.tolerance.map_or(DEFAULT_TOLERANCE, |d| d.0);
        if w.tolerance.is_some() && !w.signature.is_some_and(Scheme::has_timestamp) {
            problem(
                "tolerance",
                "tolerance applies to signatures with a timestamp (stripe, standard); this one has none to check".into(),
            );
        }
        if tolerance.is_zero() {
            problem("tolerance", "tolerance must be longer than 0s".into());
        } else if let Some(m) = super::too_long("tolerance", tolerance, MAX_TOLERANCE) {
            problem("tolerance", m);
        }
        if w.concurrency == Some(0) {
            problem(
                "concurrency",
                "concurrency must be at least 1 (leave it out for no cap but [serve] max_concurrent)".into(),
            );
        }
        let Some(event_type) = event_type else {
            continue;
        };
        let event_id_is_default = w.event_id.is_none();
        let event_id = if event_id_is_default {
            w.signature
                .and_then(Scheme::delivery_id)
                .map(|t| Template::parse(t).expect("the built-in templates parse"))
        } else {
            explicit_id
        };
        hooks.push(Webhook {
            name,
            event_type,
            event_id,
            event_id_is_default,
            key,
            signature: w.signature,
            signature_header,
            secret_env: w.secret_env,
            secret_file: w.secret_file,
            tolerance,
            headers: w.headers,
            concurrency: w.concurrency,
        });
    }
    if let Some(serve) = serve
        && let Ok(addr) = serve.listen.parse::<std::net::SocketAddr>()
        && let Some(message) = unsigned_beyond_loopback(&hooks, addr)
    {
        let table = hooks
            .iter()
            .find(|h| h.signature.is_none())
            .and_then(|h| line_of(text, &format!("[webhooks.{}]", h.name)));
        problems.push(Problem {
            line: table,
            message,
        });
    }
    hooks
}

/// An unsigned hook can be posted to by anyone who reaches the port: only
/// on loopback (where the machine's own programs are the senders).
pub fn unsigned_beyond_loopback(hooks: &[Webhook], listen: std::net::SocketAddr) -> Option<String> {
    if listen.ip().is_loopback() {
        return None;
    }
    let unsigned: Vec<&str> = hooks
        .iter()
        .filter(|h| h.signature.is_none())
        .map(|h| h.name.as_str())
        .collect();
    (!unsigned.is_empty()).then(|| {
        format!(
            "webhook {:?} has no signature and the server listens on {listen}, beyond loopback: anyone who can reach it could send its events (the bearer token is for /events only: senders of webhooks cannot send one); set signature and secret_env, or listen on 127.0.0.1",
            unsigned.join("\", \"")
        )
    })
}

/// Why the fixed text of an eventType or eventId template can make no valid
/// id, whatever its placeholders hold.
fn fixed_text_problems(t: &Template) -> Vec<String> {
    let mut out = Vec::new();
    for piece in t.fixed() {
        if let Some(c) = piece
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            out.push(format!("its fixed text has {c:?}"));
        }
        if piece.contains("..") {
            out.push("its fixed text has `..`".into());
        }
    }
    if let Some(c) = t.prefix().chars().next()
        && !c.is_ascii_alphanumeric()
    {
        out.push(format!("it starts with {c:?}"));
    }
    if t.fixed().map(str::len).sum::<usize>() > 128 {
        out.push("its fixed text is over 128 characters".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("/nonexistent"), Path::new("autod.toml"), text)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_github_hook_gets_its_defaults() {
        let c = parse(
            "[webhooks.gh]\nevent_type = \"github.{header.X-GitHub-Event}\"\nsignature = \"github\"\nsecret_env = \"GH_SECRET\"\nheaders = [\"X-GitHub-Event\"]\n",
        )
        .unwrap();
        let h = &c.webhooks[0];
        assert_eq!(h.name, "gh");
        assert_eq!(h.source(), "webhook:gh");
        assert_eq!(
            h.event_id.as_ref().unwrap().as_str(),
            "{header.X-GitHub-Delivery}"
        );
        assert!(h.event_id_is_default);
        assert_eq!(h.signature_header, "X-Hub-Signature-256");
        assert_eq!(h.tolerance.as_secs(), 300);
    }

    #[test]
    fn mistakes_are_config_errors_with_their_line() {
        let err = parse(
            "[webhooks.gh]\nevent_type = \"git hub.{header.X}\"\nkey = \"{head.X}\"\nsignature = \"github\"\nheaders = [\"Bad Header\"]\nconcurrency = 0\n",
        )
        .unwrap_err();
        for want in [
            "autod.toml:2: webhook \"gh\": event_type \"git hub.{header.X}\": its fixed text has ' '",
            "autod.toml:3: webhook \"gh\": key: template \"{head.X}\"",
            "autod.toml:4: webhook \"gh\": signature = \"github\" needs the secret",
            "autod.toml:5: webhook \"gh\": headers: \"Bad Header\"",
            "autod.toml:6: webhook \"gh\": concurrency must be at least 1",
        ] {
            assert!(err.contains(want), "{want:?} in:\n{err}");
        }
        let err = parse("[webhooks.s]\nevent_type = \"s\"\nsignature = \"sha1\"\n").unwrap_err();
        assert!(
            err.contains("line 3: unknown variant `sha1`, expected one of `github`"),
            "{err}"
        );
        let err = parse("[webhooks.x]\nevent_type = \"x\"\ntypo = 1\n").unwrap_err();
        assert!(err.contains("autod.toml:3: unknown field `typo`"), "{err}");
        let err = parse("[webhooks.x]\nevent_type = \"{body.a\"\n").unwrap_err();
        assert!(
            err.contains(":2: webhook \"x\": event_type: template"),
            "{err}"
        );
    }

    #[test]
    fn unsigned_hooks_stay_on_loopback() {
        let unsigned = "[webhooks.local]\nevent_type = \"local.ping\"\n";
        parse(unsigned).unwrap();
        let err = parse(&format!(
            "[serve]\nlisten = \"0.0.0.0:80\"\ntoken_env = \"T\"\n{unsigned}"
        ))
        .unwrap_err();
        assert!(
            err.contains("autod.toml:4: webhook \"local\" has no signature")
                && err.contains("beyond loopback"),
            "{err}"
        );
        let err = parse("[webhooks.x]\nevent_type = \"x\"\nsecret_env = \"S\"\n").unwrap_err();
        assert!(err.contains("no signature scheme"), "{err}");
        let err = parse("[webhooks.x]\nevent_type = \"x\"\nsignature = \"github\"\nsecret_env = \"S\"\ntolerance = \"1m\"\n").unwrap_err();
        assert!(
            err.contains(":5: webhook \"x\": tolerance applies"),
            "{err}"
        );
    }
}
