//! `[queue]` (SPEC 10): where accepted events wait for their handlers. The
//! folder backend (`.autod/inbox/`) is the default and needs no settings;
//! `backend = "nats"` puts them on a NATS JetStream stream shared by any number
//! of hosts. Credentials are named here (a file, an environment variable),
//! never written here: autod.toml is committed, a token in it is published.
//! The files are not read at load time, so a config can be checked on a
//! machine that does not hold them; `autod lint` says when they are missing.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use std::time::Duration;

use super::{HumanDuration, OneOrMany, Problem, expand_home, line_of};

pub const DEFAULT_STREAM: &str = "AUTOD";
/// How long the server waits for a worker's word on a message before it
/// gives it to another: a dead host's pair is taken over this soon. A live
/// worker speaks every third of it (in-progress acks), however long its
/// handler runs.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
const ACK_WAIT_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueue {
    backend: Option<String>,
    #[serde(default)]
    url: OneOrMany,
    stream: Option<String>,
    ack_wait: Option<HumanDuration>,
    creds_file: Option<String>,
    nkey_file: Option<String>,
    token_env: Option<String>,
    // Known only to be refused with a message that says what to write instead
    // (serde's "unknown field" would not).
    token: Option<toml::Value>,
    password: Option<toml::Value>,
    user: Option<toml::Value>,
    username: Option<toml::Value>,
    nkey: Option<toml::Value>,
}

/// `[queue]`, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum QueueConfig {
    /// `.autod/inbox/`, on this machine (the default).
    #[default]
    Folder,
    Nats(NatsConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Server URLs (several: a cluster), as written; `tls://` means TLS.
    pub urls: Vec<String>,
    /// The events stream; the dead-letter stream and the done-marker bucket
    /// are named after it, and its subjects start with it.
    pub stream: String,
    pub auth: NatsAuth,
    /// See [`DEFAULT_ACK_WAIT`]; set on each handler's consumer by `queue init`.
    pub ack_wait: Duration,
}

impl NatsConfig {
    /// Any URL asks for TLS: then every connection must be TLS, so that a
    /// cluster member without it is refused rather than talked to in clear.
    pub fn tls(&self) -> bool {
        self.urls.iter().any(|u| u.starts_with("tls://"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsAuth {
    None,
    /// A `.creds` file (a user JWT and its nkey seed), as `nsc` writes it.
    CredsFile(PathBuf),
    /// A file holding an nkey seed (`SU…`).
    NkeyFile(PathBuf),
    /// The name of an environment variable holding a token.
    TokenEnv(String),
}

pub(super) fn check(
    root: &Path,
    text: &str,
    raw: Option<RawQueue>,
    problems: &mut Vec<Problem>,
) -> QueueConfig {
    let Some(raw) = raw else {
        return QueueConfig::Folder;
    };
    let table = line_of(text, "[queue]");
    let line = |key: &str| super::key_line(text, table, key).or(table);
    let mut problem =
        |line: Option<usize>, message: String| problems.push(Problem { line, message });
    for (key, value) in [
        ("token", &raw.token),
        ("password", &raw.password),
        ("user", &raw.user),
        ("username", &raw.username),
        ("nkey", &raw.nkey),
    ] {
        if value.is_some() {
            problem(
                line(key),
                format!(
                    "queue.{key}: credentials are never written in autod.toml (it is committed, and so would they be); put a token in an environment variable and name it with token_env = \"NATS_TOKEN\", or use creds_file = \"~/.config/autod/autod.creds\" or nkey_file"
                ),
            );
        }
    }
    let nats = match raw.backend.as_deref() {
        None | Some("folder") => false,
        Some("nats") => true,
        Some(other) => {
            problem(
                line("backend"),
                format!("queue.backend = {other:?}: use \"folder\" (the default) or \"nats\""),
            );
            return QueueConfig::Folder;
        }
    };
    if !nats {
        let set: Vec<&str> = [
            ("url", !raw.url.0.is_empty()),
            ("stream", raw.stream.is_some()),
            ("ack_wait", raw.ack_wait.is_some()),
            ("creds_file", raw.creds_file.is_some()),
            ("nkey_file", raw.nkey_file.is_some()),
            ("token_env", raw.token_env.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        if let Some(first) = set.first() {
            problem(
                line(first),
                format!(
                    "queue.{} is set, but the backend is the folder, which uses none of it; add backend = \"nats\" to [queue], or remove it",
                    set.join(", queue.")
                ),
            );
        }
        return QueueConfig::Folder;
    }
    let mut urls = Vec::new();
    if raw.url.0.is_empty() {
        problem(
            line("backend"),
            "queue.backend = \"nats\" needs url = \"nats://HOST:4222\" (or a list of a cluster's servers; tls:// for TLS)".into(),
        );
    }
    for url in &raw.url.0 {
        match check_url(url) {
            Ok(()) => urls.push(url.clone()),
            Err(message) => problem(line("url"), format!("queue.url {url:?}: {message}")),
        }
    }
    let stream = raw.stream.unwrap_or_else(|| DEFAULT_STREAM.to_owned());
    if !valid_stream_name(&stream) {
        problem(
            line("stream"),
            format!(
                "queue.stream = {stream:?}: a stream name here is 1-32 letters, digits, `-` or `_` (autod names its dead-letter stream and done-marker bucket after it)"
            ),
        );
    }
    let ack_wait = raw.ack_wait.map_or(DEFAULT_ACK_WAIT, |d| d.0);
    if !(ACK_WAIT_RANGE.0..=ACK_WAIT_RANGE.1).contains(&ack_wait) {
        problem(
            line("ack_wait"),
            format!(
                "queue.ack_wait = \"{}\" is outside 1s..1h: shorter, a busy worker's in-progress acks cannot keep up; longer, a dead host's pairs wait that long",
                humantime::format_duration(ack_wait)
            ),
        );
    }
    let file = |f: &String| {
        let p = expand_home(f);
        if p.is_absolute() { p } else { root.join(p) }
    };
    let mut auths = Vec::new();
    if let Some(f) = &raw.creds_file {
        auths.push(("creds_file", NatsAuth::CredsFile(file(f))));
    }
    if let Some(f) = &raw.nkey_file {
        auths.push(("nkey_file", NatsAuth::NkeyFile(file(f))));
    }
    if let Some(var) = &raw.token_env {
        if var.is_empty() || var.contains('=') || var.contains('\0') {
            problem(
                line("token_env"),
                format!("queue.token_env = {var:?} is not an environment variable's name"),
            );
        }
        auths.push(("token_env", NatsAuth::TokenEnv(var.clone())));
    }
    if auths.len() > 1 {
        let keys: Vec<&str> = auths.iter().map(|(k, _)| *k).collect();
        problem(
            line(keys[1]),
            format!(
                "queue: {} are all set; a connection uses one kind of credentials, so keep one",
                keys.join(" and ")
            ),
        );
    }
    QueueConfig::Nats(NatsConfig {
        urls,
        stream,
        auth: auths.pop().map_or(NatsAuth::None, |(_, a)| a),
        ack_wait,
    })
}

/// `nats://host:port`, `tls://host:port` or a bare `host:port`; never with
/// credentials in it.
fn check_url(url: &str) -> Result<(), String> {
    let rest = match url.split_once("://") {
        Some(("nats" | "tls", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "scheme {scheme}:// is not one autod speaks; write nats://HOST:4222, or tls://HOST:4222 for TLS"
            ));
        }
        None => url,
    };
    if rest.contains('@') {
        return Err(
            "has credentials in it, and autod.toml is committed; name an environment variable with token_env, or use creds_file or nkey_file".into(),
        );
    }
    let host = rest.split(['/', '?']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("names no server; write it like nats://127.0.0.1:4222".into());
    }
    Ok(())
}

fn valid_stream_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/root-of-test"), Path::new("autod.toml"), text)
    }

    #[test]
    fn the_folder_is_the_default() {
        assert_eq!(parse("").unwrap().queue, QueueConfig::Folder);
        assert_eq!(
            parse("[queue]\nbackend = \"folder\"\n").unwrap().queue,
            QueueConfig::Folder
        );
    }

    #[test]
    fn a_nats_queue_with_a_cluster_and_a_creds_file() {
        let c = parse(
            "[queue]\nbackend = \"nats\"\nurl = [\"nats://a:4222\", \"tls://b:4222\"]\ncreds_file = \"secrets/autod.creds\"\n",
        )
        .unwrap();
        let QueueConfig::Nats(n) = c.queue else {
            panic!("nats")
        };
        assert_eq!(n.urls, ["nats://a:4222", "tls://b:4222"]);
        assert_eq!(n.stream, "AUTOD");
        assert!(n.tls());
        assert_eq!(
            n.auth,
            NatsAuth::CredsFile("/root-of-test/secrets/autod.creds".into())
        );
    }

    #[test]
    fn a_plain_token_is_refused_with_its_line_and_what_to_write() {
        let err = parse(
            "[handlers.a]\non = [\"x\"]\n\n[queue]\nbackend = \"nats\"\nurl = \"nats://a:4222\"\ntoken = \"s3cret\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("autod.toml:7: queue.token"), "{err}");
        assert!(err.contains("token_env"), "{err}");
        assert!(!err.contains("s3cret"), "the secret is not echoed: {err}");
        let err = parse("[queue]\nbackend = \"nats\"\nurl = \"nats://me:pw@a:4222\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":3: queue.url") && err.contains("credentials"),
            "{err}"
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (text, want) in [
            (
                "[queue]\nbackend = \"kafka\"\n",
                ":2: queue.backend = \"kafka\"",
            ),
            ("[queue]\nbackend = \"nats\"\n", "needs url"),
            (
                "[queue]\nbackend = \"nats\"\nurl = \"http://a\"\n",
                "scheme http://",
            ),
            (
                "[queue]\nbackend = \"nats\"\nurl = \"nats://a\"\nstream = \"a.b\"\n",
                ":4: queue.stream",
            ),
            (
                "[queue]\nurl = \"nats://a\"\n",
                "queue.url is set, but the backend is the folder",
            ),
            (
                "[queue]\nbackend = \"nats\"\nurl = \"nats://a\"\ntoken_env = \"T\"\nnkey_file = \"k\"\n",
                "nkey_file and token_env are all set",
            ),
            ("[queue]\nbakend = \"nats\"\n", "unknown field `bakend`"),
            (
                "[queue]\nbackend = \"nats\"\nurl = \"nats://a\"\nack_wait = \"100ms\"\n",
                ":4: queue.ack_wait = \"100ms\" is outside 1s..1h",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{want:?} in {err}");
        }
    }
}
