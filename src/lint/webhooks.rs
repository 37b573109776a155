//! `[serve]` and `[webhooks.*]` beyond what loading the config refuses (bad
//! templates, a scheme without a secret source, an unsigned hook or a token-
//! less listen beyond loopback: those are `config` findings with their line).
//! Here, what depends on the machine or the rest of the project:
//!
//! - `serve-token`, `webhook-secret` (warnings): a variable that is not set,
//!   a file that cannot be read, a Standard Webhooks secret that is not
//!   `whsec_` and base64. The server would refuse to start; lint warns
//!   because CI seldom holds production secrets.
//! - `webhook-route` (warning): no handler's `on` can match any eventType
//!   the hook's `event_type` can make (judged from its fixed start), so
//!   every delivery would be refused as unroutable.
//! - `webhook-type` (warning): a fixed `event_type` with no schema.
//! - `webhook-serve` (warning): hooks but no `[serve]` table, so `autod run`
//!   would not listen for them (only a standalone `autod serve` would).

use std::path::Path;

use super::{Known, Lint};
use crate::config::{self, Config, OneOrMany, read_secrets};

pub fn check(lint: &mut Lint, root: &Path, config: &Config, known: &Known) {
    let path = root.join(config::FILE_NAME);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some(serve) = &config.serve {
        let line = config::line_of(&text, "[serve]");
        for why in unreadable(root, "serve", "token", &serve.token_env, &serve.token_file) {
            lint.warning(
                &path,
                "serve-token",
                format!("{why}: `autod serve` and `autod run` would refuse to start here"),
            )
            .at(line, None);
        }
    }
    if config.serve.is_none()
        && let Some(first) = config.webhooks.first()
    {
        lint.warning(
            &path,
            "webhook-serve",
            format!(
                "[webhooks.{}] is configured but there is no [serve] table, so `autod run` does not listen for webhooks; add `[serve]` (listen defaults to 127.0.0.1:8080), or run `autod serve` beside it",
                first.name
            ),
        )
        .at(config::line_of(&text, &format!("[webhooks.{}]", first.name)), None);
    }
    for hook in &config.webhooks {
        let line = config::line_of(&text, &format!("[webhooks.{}]", hook.name));
        let table = format!("webhooks.{}", hook.name);
        if let Some(scheme) = hook.signature {
            let env = &hook.secret_env;
            let file = &hook.secret_file;
            let mut problems = unreadable(root, &table, "secret", env, file);
            if problems.is_empty() {
                let secrets = read_secrets(root, &table, "secret", env, file).unwrap_or_default();
                for (i, s) in secrets.iter().enumerate() {
                    if let Err(e) = scheme.key(s) {
                        problems.push(format!("{table}: secret {}: {e}", i + 1));
                    }
                }
            }
            for why in problems {
                lint.warning(
                    &path,
                    "webhook-secret",
                    format!("{why}: the server would refuse to start here"),
                )
                .at(line, None);
            }
        }
        let t = &hook.event_type;
        let routed = if t.is_fixed() {
            !crate::route::routes(&config.handlers, t.as_str()).is_empty()
        } else {
            config
                .handlers
                .iter()
                .flat_map(|h| &h.on)
                .any(|p| p.matches_some_starting_with(t.prefix()))
        };
        if !routed {
            lint.warning(
                &path,
                "webhook-route",
                format!(
                    "webhook {:?}: no handler's `on` matches an eventType {}, so every delivery would be refused as unroutable; add e.g. on = [\"{}**\"] to a handler",
                    hook.name,
                    if t.is_fixed() { format!("{:?}", t.as_str()) } else { format!("starting {:?} (event_type {:?})", t.prefix(), t.as_str()) },
                    t.prefix()
                ),
            )
            .at(line, None);
        }
        if t.is_fixed() && config.validation.require_schema && !known.has(t.as_str()) {
            lint.warning(
                &path,
                "webhook-type",
                format!(
                    "webhook {:?}: eventType {:?} has no schema, so every delivery would be refused; `autod new event {}` writes one",
                    hook.name,
                    t.as_str(),
                    t.as_str()
                ),
            )
            .at(line, None);
        }
    }
}

/// Each variable that is not set and each file that cannot be read, said as
/// the server would say it.
fn unreadable(
    root: &Path,
    table: &str,
    kind: &str,
    env: &OneOrMany,
    file: &OneOrMany,
) -> Vec<String> {
    let none = OneOrMany::default();
    let one = |s: &String| OneOrMany(vec![s.clone()]);
    env.0
        .iter()
        .filter_map(|v| read_secrets(root, table, kind, &one(v), &none).err())
        .chain(
            file.0
                .iter()
                .filter_map(|f| read_secrets(root, table, kind, &none, &one(f)).err()),
        )
        .collect()
}
