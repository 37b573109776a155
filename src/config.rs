//! `autod.toml` → one validated [`Config`], built once per process.
//!
//! Every key has a default, so an empty or missing file is a valid project. An
//! unknown key is an error that names the key and its line, because a silently
//! ignored typo is a handler that never runs. All mistakes found after parsing are
//! reported together, each with the line of the table it belongs to.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::route::Pattern;

mod queue;
mod webhooks;
pub use queue::{DEFAULT_ACK_WAIT, DEFAULT_STREAM, NatsAuth, NatsConfig, QueueConfig};
pub use webhooks::{Webhook, unsigned_beyond_loopback};

pub const FILE_NAME: &str = "autod.toml";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
const DEFAULT_MAX_EVENT_BYTES: u64 = 1024 * 1024;
/// `[serve] request_timeout`: past an hour a client holds a slot for nothing.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);
/// `[serve] max_connections`: each is an open file; past this, a typo.
const MAX_SERVE_CONNECTIONS: usize = 1_000_000;
const DEFAULT_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
const DEFAULT_LOG_KEEP: u32 = 5;

const DAY: u64 = 24 * 3600;
/// Upper bounds of the durations autod.toml may hold. A value past them is a
/// typo (`"500000000000y"`), and deadlines and next-attempt times computed
/// from it would overflow: it is refused at load time, naming the key.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * DAY);
pub const MAX_KILL_GRACE: Duration = Duration::from_secs(DAY);
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(365 * DAY);
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(3600);
pub const MAX_RETENTION: Duration = Duration::from_secs(10 * 365 * DAY);
/// Less would prune the day before yesterday's events while their retries
/// (and `autod replay` of "yesterday") may still want them.
pub const MIN_RETENTION: Duration = Duration::from_secs(DAY);
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * DAY);

/// A configuration mistake; fatal for the command (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{}", render_invalid(.path, .problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// One mistake in an otherwise parseable config.
#[derive(Debug, Clone)]
pub struct Problem {
    pub line: Option<usize>,
    pub message: String,
}

fn render_invalid(path: &Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match p.line {
            Some(line) => out.push_str(&format!("{}:{line}: {}", path.display(), p.message)),
            None => out.push_str(&format!("{}: {}", path.display(), p.message)),
        }
    }
    out
}

/// A duration written as in `"30s"`, `"5m"`, `"1h 30m"`, `"500ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration {text:?} ({e}); write it like \"30s\", \"5m\" or \"1h\""
                ))
            })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    validation: ValidationConfig,
    #[serde(default)]
    routing: RoutingConfig,
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    state: StateConfig,
    #[serde(default)]
    chaining: ChainingConfig,
    #[serde(default)]
    notify: NotifyConfig,
    #[serde(default)]
    archive: ArchiveConfig,
    #[serde(default)]
    serve: Option<ServeConfig>,
    #[serde(default)]
    handlers: BTreeMap<String, RawHandler>,
    #[serde(default)]
    schedules: Vec<ScheduleConfig>,
    #[serde(default)]
    watches: Vec<WatchConfig>,
    #[serde(default)]
    webhooks: BTreeMap<String, webhooks::RawWebhook>,
    #[serde(default)]
    queue: Option<queue::RawQueue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    /// Reject events whose eventType has no `schemas/<type>.json`.
    #[serde(default = "yes")]
    pub require_schema: bool,
    /// Events larger than this are rejected before they are parsed.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: u64,
    /// `format` keywords: asserted (the default) or annotations only.
    #[serde(default)]
    pub formats: crate::schema::Formats,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            require_schema: true,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            formats: crate::schema::Formats::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    #[serde(default)]
    pub unrouted: Unrouted,
}

/// What happens to a valid event that no handler's `on` matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unrouted {
    #[default]
    Reject,
    Ignore,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The run log is rotated when it grows past this many bytes.
    #[serde(default = "default_log_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept (autod.log.1 … autod.log.N).
    #[serde(default = "default_log_keep")]
    pub keep: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_LOG_MAX_BYTES,
            keep: DEFAULT_LOG_KEEP,
        }
    }
}

/// `[state]`: the `.autod/` folder.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `.autod` may itself be a symbolic link (to another disk, say). Off by
    /// default: a planted link would send every state write elsewhere.
    #[serde(default)]
    pub allow_symlink: bool,
}

/// `[notify]`: events autod emits about its own outcomes (SPEC 13).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// When a pair is given up (exhausted or permanent), an event of this
    /// type is accepted, so that a handler can tell a person.
    pub on_dead: Option<String>,
}

/// `[serve]`: `autod serve`, and the HTTP intake inside `autod run` (SPEC 11).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// `host:port` to bind; only loopback without a token.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Environment variables holding bearer tokens (several: rotation).
    #[serde(default)]
    pub token_env: OneOrMany,
    /// Files holding one bearer token each (trimmed), read at start.
    #[serde(default)]
    pub token_file: OneOrMany,
    /// The largest body of a batch request; default 16 × max_event_bytes.
    pub max_batch_bytes: Option<u64>,
    /// `POST /events` requests handled at once; more wait for a slot, for
    /// at most `queue_timeout`.
    #[serde(default = "default_serve_concurrency")]
    pub max_concurrent: usize,
    /// How long a request past `max_concurrent` waits for a slot before it
    /// is answered `503` with `Retry-After`; `0s`: not at all.
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout: HumanDuration,
    /// Connections open at once; default: half the open-file limit, at most
    /// 10,000 ([`crate::serve_limits::default_max_connections`]).
    pub max_connections: Option<usize>,
    /// How long one request may take, body read included.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
}

/// A string or a list of them (`token_env = "A"` or `["A", "B"]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "OneOrManyRaw")]
pub struct OneOrMany(pub Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrManyRaw {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrManyRaw> for OneOrMany {
    fn from(raw: OneOrManyRaw) -> Self {
        match raw {
            OneOrManyRaw::One(s) => OneOrMany(vec![s]),
            OneOrManyRaw::Many(v) => OneOrMany(v),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_serve_concurrency() -> usize {
    64
}
fn default_request_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_queue_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}

/// The secrets of a `<table>.<kind>_env` / `<table>.<kind>_file` pair, in
/// that order: read when a server starts, never written anywhere. A file is
/// relative to the root, `~` expanded, and trimmed.
pub fn read_secrets(
    root: &Path,
    table: &str,
    kind: &str,
    env: &OneOrMany,
    file: &OneOrMany,
) -> Result<Vec<String>, String> {
    let mut secrets = Vec::new();
    for var in &env.0 {
        let value = std::env::var(var).map_err(|_| {
            format!("{table}.{kind}_env: environment variable {var} is not set (or not UTF-8); export it where autod starts")
        })?;
        secrets.push(value);
    }
    for f in &file.0 {
        let path = root.join(expand_home(f));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{table}.{kind}_file: cannot read {}: {e}", path.display()))?;
        secrets.push(text.trim().to_owned());
    }
    if let Some(i) = secrets.iter().position(String::is_empty) {
        return Err(format!(
            "{table}: {kind} {} is empty; an empty {kind} would let anyone in",
            i + 1
        ));
    }
    Ok(secrets)
}

impl ServeConfig {
    pub fn has_token(&self) -> bool {
        !self.token_env.0.is_empty() || !self.token_file.0.is_empty()
    }

    /// `listen` (or a `--listen` override) must be an address, and one beyond
    /// loopback only with a token: an open intake on the network would run
    /// anyone's events.
    pub fn check_listen(&self, listen: &str) -> Result<std::net::SocketAddr, String> {
        let addr: std::net::SocketAddr = listen.parse().map_err(|e| {
            format!("serve.listen = {listen:?} is not an address ({e}); write it like \"127.0.0.1:8080\"")
        })?;
        if !addr.ip().is_loopback() && !self.has_token() {
            return Err(format!(
                "serve.listen = {listen:?} is beyond loopback and no token is set: anyone who can reach it could send events; set serve.token_env or serve.token_file, or listen on 127.0.0.1"
            ));
        }
        Ok(addr)
    }

    /// The body cap of a batch request.
    pub fn batch_bytes(&self, max_event_bytes: u64) -> u64 {
        self.max_batch_bytes
            .unwrap_or(max_event_bytes.saturating_mul(16))
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: default_listen(),
            token_env: OneOrMany::default(),
            token_file: OneOrMany::default(),
            max_batch_bytes: None,
            max_concurrent: default_serve_concurrency(),
            queue_timeout: default_queue_timeout(),
            max_connections: None,
            request_timeout: default_request_timeout(),
        }
    }
}

/// `[archive]`: the copy of every accepted event, for replay (SPEC 14).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Days that ended longer ago than this are removed by `autod archive
    /// prune` and by the daemon, daily.
    #[serde(default = "default_retention")]
    pub retention: HumanDuration,
}

fn default_retention() -> HumanDuration {
    HumanDuration(DEFAULT_RETENTION)
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            retention: default_retention(),
        }
    }
}

/// `[chaining]`: follow-up events (SPEC 8).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainingConfig {
    /// One run may emit at most this many follow-ups; more fails the run, so
    /// a runaway handler cannot flood the inbox.
    #[serde(default = "default_max_follow_ups")]
    pub max_follow_ups: usize,
}

pub const DEFAULT_MAX_FOLLOW_UPS: usize = 1000;

fn default_max_follow_ups() -> usize {
    DEFAULT_MAX_FOLLOW_UPS
}

impl Default for ChainingConfig {
    fn default() -> Self {
        Self {
            max_follow_ups: DEFAULT_MAX_FOLLOW_UPS,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHandler {
    #[serde(default)]
    on: Vec<String>,
    command: Option<Vec<String>>,
    timeout: Option<HumanDuration>,
    kill_grace: Option<HumanDuration>,
    retry: Option<RetryConfig>,
    concurrency: Option<usize>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    owner: Option<String>,
    output: Option<String>,
}

/// Backoff settings of one handler's dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_initial")]
    pub initial: HumanDuration,
    #[serde(default = "default_max_delay")]
    pub max: HumanDuration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            initial: default_initial(),
            max: default_max_delay(),
        }
    }
}

/// A cron schedule, used by `autod run` (SPEC §4b).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub name: String,
    pub cron: String,
    pub timezone: Option<String>,
    pub event_type: String,
    #[serde(default)]
    pub payload: Option<toml::Value>,
    pub catch_up: Option<String>,
}

/// A watched folder, used by `autod run` (SPEC §4b).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    pub name: String,
    pub path: String,
    pub glob: Option<String>,
    pub on: Option<Vec<String>>,
    pub event_type: String,
    pub debounce: Option<HumanDuration>,
    /// At start, turn what changed in the folder while autod was down into
    /// events (against the watch's record of what it has seen).
    #[serde(default = "yes")]
    pub scan_on_start: bool,
}

impl WatchConfig {
    /// The watched folder: `~` expanded, a relative path taken from the root.
    pub fn dir(&self, root: &Path) -> PathBuf {
        let p = expand_home(&self.path);
        let p = if p.is_absolute() { p } else { root.join(p) };
        // `components` drops the `.`s: `path = "."` is the root, not `root/.`.
        p.components().collect()
    }
}

/// A watch inside the state folder would see autod's own writes, each of
/// which it turns into an event that causes more writes.
fn check_watch_paths(
    root: &Path,
    text: &str,
    watches: &[WatchConfig],
    problems: &mut Vec<Problem>,
) {
    let state = crate::state::StateDir::new(root);
    for w in watches {
        if state.holds(&w.dir(root)) {
            problems.push(Problem {
                line: line_of(text, &format!("name = \"{}\"", w.name)),
                message: format!(
                    "watch {:?}: path {:?} is inside autod's state folder {}/, which is never watched; watch a folder outside it",
                    w.name,
                    w.path,
                    crate::state::DIR_NAME
                ),
            });
        }
    }
}

fn yes() -> bool {
    true
}
fn default_max_event_bytes() -> u64 {
    DEFAULT_MAX_EVENT_BYTES
}
fn default_log_max_bytes() -> u64 {
    DEFAULT_LOG_MAX_BYTES
}
fn default_log_keep() -> u32 {
    DEFAULT_LOG_KEEP
}
fn default_max_attempts() -> u32 {
    5
}
fn default_initial() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_max_delay() -> HumanDuration {
    HumanDuration(Duration::from_secs(3600))
}

/// What to execute for a handler, resolved against the root once at load time.
#[derive(Debug, Clone)]
pub enum HandlerCommand {
    /// argv, with argv[0] an absolute path or a bare program name looked up in PATH.
    Argv(Vec<OsString>),
    /// Nothing runnable was found; the message says what to do. The pair fails
    /// (and is dead-lettered) rather than the whole config, so other handlers run.
    Missing(String),
}

/// One handler, validated.
#[derive(Debug, Clone)]
pub struct Handler {
    pub name: String,
    pub on: Vec<Pattern>,
    pub command: HandlerCommand,
    pub timeout: Duration,
    pub kill_grace: Duration,
    pub retry: RetryConfig,
    pub concurrency: Option<usize>,
    pub env: Vec<(String, String)>,
    pub owner: Option<String>,
    pub output: Option<String>,
}

/// The whole validated configuration of a project.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from, if there was one.
    pub path: Option<PathBuf>,
    pub validation: ValidationConfig,
    pub routing: RoutingConfig,
    pub log: LogConfig,
    pub state: StateConfig,
    pub chaining: ChainingConfig,
    pub notify: NotifyConfig,
    pub archive: ArchiveConfig,
    /// `[serve]`: the HTTP intake (SPEC 11); `None` when the table is absent.
    pub serve: Option<ServeConfig>,
    /// Sorted by name, so fan-out order and every listing are stable.
    pub handlers: Vec<Handler>,
    pub schedules: Vec<ScheduleConfig>,
    pub watches: Vec<WatchConfig>,
    /// `[webhooks.<name>]`, sorted by name.
    pub webhooks: Vec<Webhook>,
    /// `[queue]`: the folder (default) or NATS JetStream (SPEC 10).
    pub queue: QueueConfig,
}

impl Config {
    /// Reads `<root>/autod.toml`; a missing file means all defaults.
    pub fn load(root: &Path) -> Result<Config, ConfigError> {
        let path = root.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(root, &path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Config::from_raw(root, None, "", RawConfig::default())
            }
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    pub fn parse(root: &Path, path: &Path, text: &str) -> Result<Config, ConfigError> {
        match Config::parse_partial(root, path, text)? {
            (Some(config), problems) if problems.is_empty() => Ok(config),
            (_, problems) => Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            }),
        }
    }

    /// Reads `<root>/autod.toml` as far as it can: every problem, and the
    /// config made of what parsed (unknown keys left out, a handler with a bad
    /// name skipped), so `autod lint` can check the rest in the same run. Only
    /// a file that cannot be read or is not TOML at all is an `Err`.
    pub fn load_partial(root: &Path) -> Result<(Option<Config>, Vec<Problem>), ConfigError> {
        let path = root.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse_partial(root, &path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (config, problems) = Config::build(root, None, "", RawConfig::default());
                Ok((Some(config), problems))
            }
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    fn parse_partial(
        root: &Path,
        path: &Path,
        text: &str,
    ) -> Result<(Option<Config>, Vec<Problem>), ConfigError> {
        let parse_error = |e: &toml::de::Error| {
            let (line, message) = toml_message(e, text);
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                message,
            }
        };
        let mut doc = toml::de::DeTable::parse(text).map_err(|e| parse_error(&e))?;
        let problem = |e: &toml::de::Error| Problem {
            line: e.span().map(|s| line_at(text, s.start)),
            message: e.message().trim_end().to_owned(),
        };
        // Every unknown key is reported, not only the first (a misspelling
        // seldom comes alone): each is taken out and the rest read again.
        let mut problems = Vec::new();
        let raw = loop {
            match RawConfig::deserialize(toml::de::Deserializer::from(doc.clone())) {
                Ok(raw) => break Some(raw),
                Err(e) if e.message().starts_with("unknown field") => {
                    let span = e.span().ok_or_else(|| parse_error(&e))?;
                    if !remove_key(doc.get_mut(), &span) {
                        return Err(parse_error(&e));
                    }
                    problems.push(problem(&e));
                }
                // Often a consequence of a misspelling (a required key spelled
                // wrong is also missing): reported beside it.
                Err(e) if !problems.is_empty() => {
                    problems.push(problem(&e));
                    break None;
                }
                Err(e) => return Err(parse_error(&e)),
            }
        };
        let config = raw.map(|raw| {
            let (config, more) = Config::build(root, Some(path.to_owned()), text, raw);
            problems.extend(more);
            config
        });
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        Ok((config, problems))
    }

    /// The longest any handler may run: its timeout, then its kill grace.
    pub fn longest_run(&self) -> Duration {
        self.handlers
            .iter()
            .map(|h| h.timeout.saturating_add(h.kill_grace))
            .max()
            .unwrap_or_default()
    }

    pub fn handler(&self, name: &str) -> Option<&Handler> {
        self.handlers.iter().find(|h| h.name == name)
    }

    fn from_raw(
        root: &Path,
        path: Option<PathBuf>,
        text: &str,
        raw: RawConfig,
    ) -> Result<Config, ConfigError> {
        let file = path.clone().unwrap_or_else(|| root.join(FILE_NAME));
        match Config::build(root, path, text, raw) {
            (config, problems) if problems.is_empty() => Ok(config),
            (_, problems) => Err(ConfigError::Invalid {
                path: file,
                problems,
            }),
        }
    }

    /// The config and every problem with it; with problems, the config holds
    /// what could be made sense of, for lint's other checks only.
    fn build(
        root: &Path,
        path: Option<PathBuf>,
        text: &str,
        raw: RawConfig,
    ) -> (Config, Vec<Problem>) {
        let mut problems = Vec::new();
        let mut handlers = Vec::new();
        for (name, h) in raw.handlers {
            let line = line_of(text, &format!("[handlers.{name}]"))
                .or_else(|| line_of(text, &format!("[handlers.\"{name}\"]")));
            let mut problem = |message: String| problems.push(Problem { line, message });
            if !valid_handler_name(&name) {
                problem(format!(
                    "handler name {name:?} is not allowed: use lowercase letters, digits, `-` and `_` (at most 64, starting with a letter or digit)"
                ));
                continue;
            }
            if h.on.is_empty() {
                problem(format!(
                    "handler {name:?} has no `on` patterns, so no event would ever reach it; add e.g. on = [\"note.saved\"]"
                ));
            }
            let mut on = Vec::new();
            for p in &h.on {
                match Pattern::parse(p) {
                    Ok(pat) => on.push(pat),
                    Err(e) => problem(format!("handler {name:?}: {e}")),
                }
            }
            if h.concurrency == Some(0) {
                problem(format!(
                    "handler {name:?}: concurrency must be at least 1 (leave it out for no limit)"
                ));
            }
            let retry = h.retry.unwrap_or_default();
            if retry.max_attempts == 0 {
                problem(format!(
                    "handler {name:?}: retry.max_attempts must be at least 1"
                ));
            }
            if retry.initial.0 > retry.max.0 {
                problem(format!(
                    "handler {name:?}: retry.initial ({}) is longer than retry.max ({})",
                    humantime::format_duration(retry.initial.0),
                    humantime::format_duration(retry.max.0)
                ));
            }
            if h.timeout.is_some_and(|t| t.0.is_zero()) {
                problem(format!("handler {name:?}: timeout must be longer than 0s"));
            }
            let bounded = [
                ("timeout", h.timeout.map(|d| d.0), MAX_TIMEOUT),
                ("kill_grace", h.kill_grace.map(|d| d.0), MAX_KILL_GRACE),
                ("retry.initial", Some(retry.initial.0), MAX_RETRY_DELAY),
                ("retry.max", Some(retry.max.0), MAX_RETRY_DELAY),
            ];
            for (key, value, max) in bounded {
                if let Some(message) = value.and_then(|v| too_long(key, v, max)) {
                    problem(format!("handler {name:?}: {message}"));
                }
            }
            for key in h.env.keys() {
                if key.is_empty() || key.contains('=') || key.contains('\0') {
                    problem(format!(
                        "handler {name:?}: env key {key:?} is not a valid variable name"
                    ));
                }
            }
            let command = match resolve_command(root, &name, h.command.as_deref()) {
                Ok(command) => command,
                Err(message) => {
                    problem(format!("handler {name:?}: {message}"));
                    HandlerCommand::Missing(message)
                }
            };
            handlers.push(Handler {
                command,
                name,
                on,
                timeout: h.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
                kill_grace: h.kill_grace.map_or(DEFAULT_KILL_GRACE, |d| d.0),
                retry,
                concurrency: h.concurrency,
                env: h
                    .env
                    .into_iter()
                    .map(|(k, v)| (k, expand_home(&v).to_string_lossy().into_owned()))
                    .collect(),
                owner: h.owner,
                output: h.output,
            });
        }
        check_sources(text, &raw.schedules, &raw.watches, &mut problems);
        check_watch_paths(root, text, &raw.watches, &mut problems);
        check_unique(
            text,
            "schedules",
            raw.schedules.iter().map(|s| &s.name),
            &mut problems,
        );
        check_unique(
            text,
            "watches",
            raw.watches.iter().map(|w| &w.name),
            &mut problems,
        );
        if raw.validation.max_event_bytes == 0 {
            problems.push(Problem {
                line: line_of(text, "max_event_bytes"),
                message: "validation.max_event_bytes must be more than 0".into(),
            });
        }
        let retention = raw.archive.retention.0;
        if let Some(message) = too_long("archive.retention", retention, MAX_RETENTION) {
            problems.push(Problem {
                line: line_of(text, "retention"),
                message,
            });
        } else if retention < MIN_RETENTION {
            problems.push(Problem {
                line: line_of(text, "retention"),
                message: format!(
                    "archive.retention = \"{}\" is shorter than a day; write at least \"1d\" (the archive is kept by whole days)",
                    raw.archive.retention
                ),
            });
        }
        if let Some(t) = &raw.notify.on_dead
            && !crate::event::valid_id(t)
        {
            problems.push(Problem {
                line: line_of(text, "on_dead"),
                message: format!(
                    "notify.on_dead = {t:?} is not an eventType: use letters, digits, `.`, `_`, `:` and `-`, e.g. \"autod.dead\""
                ),
            });
        }
        if let Some(serve) = &raw.serve {
            let line = |key: &str| line_of(text, key).or_else(|| line_of(text, "[serve]"));
            if let Err(message) = serve.check_listen(&serve.listen) {
                problems.push(Problem {
                    line: line("listen"),
                    message,
                });
            }
            let timeout = serve.request_timeout.0;
            if timeout.is_zero() {
                problems.push(Problem {
                    line: line("request_timeout"),
                    message: "serve.request_timeout must be longer than 0s".into(),
                });
            } else if let Some(message) =
                too_long("serve.request_timeout", timeout, MAX_REQUEST_TIMEOUT)
            {
                problems.push(Problem {
                    line: line("request_timeout"),
                    message,
                });
            }
            if serve.max_concurrent == 0 {
                problems.push(Problem {
                    line: line("max_concurrent"),
                    message: "serve.max_concurrent must be at least 1".into(),
                });
            }
            if let Some(message) = too_long(
                "serve.queue_timeout",
                serve.queue_timeout.0,
                MAX_REQUEST_TIMEOUT,
            ) {
                problems.push(Problem {
                    line: line("queue_timeout"),
                    message,
                });
            }
            match serve.max_connections {
                Some(0) => problems.push(Problem {
                    line: line("max_connections"),
                    message: "serve.max_connections must be at least 1".into(),
                }),
                Some(n) if n > MAX_SERVE_CONNECTIONS => problems.push(Problem {
                    line: line("max_connections"),
                    message: format!(
                        "serve.max_connections = {n} is over the {MAX_SERVE_CONNECTIONS} it may be at most (each holds an open file)"
                    ),
                }),
                _ => {}
            }
            if serve.max_batch_bytes == Some(0) {
                problems.push(Problem {
                    line: line("max_batch_bytes"),
                    message: "serve.max_batch_bytes must be more than 0".into(),
                });
            }
        }
        let webhooks = webhooks::check(text, raw.webhooks, raw.serve.as_ref(), &mut problems);
        let queue = queue::check(root, text, raw.queue, &mut problems);
        let config = Config {
            path,
            validation: raw.validation,
            routing: raw.routing,
            log: raw.log,
            state: raw.state,
            chaining: raw.chaining,
            archive: raw.archive,
            notify: raw.notify,
            serve: raw.serve,
            handlers,
            schedules: raw.schedules,
            watches: raw.watches,
            webhooks,
            queue,
        };
        (config, problems)
    }
}

/// Only a config-level mistake (an empty argv) is an `Err` here; a command that
/// does not exist yet is `Ok(Missing)`, reported when a pair would run.
fn resolve_command(
    root: &Path,
    name: &str,
    command: Option<&[String]>,
) -> Result<HandlerCommand, String> {
    match command {
        Some([]) => Err("command is empty; give the program and its arguments, e.g. command = [\"handlers/x/main.sh\"]".into()),
        Some([program, args @ ..]) => {
            let program = if program.contains('/') || program.starts_with('~') {
                let p = expand_home(program);
                let p = if p.is_absolute() { p } else { root.join(p) };
                p.into_os_string()
            } else {
                OsString::from(program)
            };
            let mut argv = vec![program];
            argv.extend(args.iter().map(OsString::from));
            Ok(HandlerCommand::Argv(argv))
        }
        None => default_command(root, name),
    }
}

/// `handlers/<name>/main*`: the file named `main` or `main.<ext>`. Two
/// executable ones are a config error naming both: picking one by name order
/// would run a handler nobody chose (a `main.py` beside the `main.sh`).
fn default_command(root: &Path, name: &str) -> Result<HandlerCommand, String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = root.join("handlers").join(name);
    let mut found: Vec<(PathBuf, bool)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|f| f.to_str()).is_some_and(|f| {
                f == "main" || f.strip_prefix("main.").is_some_and(|ext| !ext.is_empty())
            })
        })
        .filter_map(|p| {
            let meta = std::fs::metadata(&p)
                .ok()
                .filter(std::fs::Metadata::is_file)?;
            Some((p, meta.permissions().mode() & 0o111 != 0))
        })
        .collect();
    found.sort();
    let executable: Vec<&PathBuf> = found.iter().filter(|(_, x)| *x).map(|(p, _)| p).collect();
    if executable.len() > 1 {
        let names: Vec<String> = executable
            .iter()
            .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
            .collect();
        return Err(format!(
            "handlers/{name}/ holds several executable main files ({}); keep one, or say which in `command = [\"handlers/{name}/…\"]`",
            names.join(", ")
        ));
    }
    // The one executable file; else the first, which the runner then reports
    // as not executable (with the chmod to fix it).
    let chosen = executable
        .first()
        .map(|p| (*p).clone())
        .or_else(|| found.into_iter().next().map(|(p, _)| p));
    Ok(match chosen {
        Some(p) => HandlerCommand::Argv(vec![p.into_os_string()]),
        None => HandlerCommand::Missing(format!(
            "no executable found: create handlers/{name}/main.sh (or main.py, …) and chmod +x it, or set `command` in [handlers.{name}]"
        )),
    })
}

/// The complaint about a duration longer than its key allows, if it is.
fn too_long(key: &str, value: Duration, max: Duration) -> Option<String> {
    (value > max).then(|| {
        format!(
            "{key} is {}, longer than the {} it may be at most; write a shorter duration like \"30s\", \"5m\" or \"1h\"",
            humantime::format_duration(value),
            duration_text(max)
        )
    })
}

/// A bound as people write it: humantime would print 365 days as
/// "11months 30days 3h 50m 24s".
pub fn duration_text(d: Duration) -> String {
    match d.as_secs() {
        DAY => "1day".to_owned(),
        s if s > DAY && s % DAY == 0 && d.subsec_nanos() == 0 => format!("{}days", s / DAY),
        _ => humantime::format_duration(d).to_string(),
    }
}

pub fn valid_handler_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

/// `~` and `~/x` become the home directory; anything else is returned as is.
pub fn expand_home(s: &str) -> PathBuf {
    let home = || std::env::var_os("HOME").map(PathBuf::from);
    if s == "~" {
        if let Some(h) = home() {
            return h;
        }
    } else if let Some(rest) = s.strip_prefix("~/")
        && let Some(h) = home()
    {
        return h.join(rest);
    }
    PathBuf::from(s)
}

/// Schedules and watches: names usable in eventIds and file names, cron
/// expressions, timezones, catch-up modes, change kinds and globs.
fn check_sources(
    text: &str,
    schedules: &[ScheduleConfig],
    watches: &[WatchConfig],
    problems: &mut Vec<Problem>,
) {
    for s in schedules {
        let line = line_of(text, &format!("name = \"{}\"", s.name));
        let mut problem = |message: String| problems.push(Problem { line, message });
        if !valid_handler_name(&s.name) {
            problem(format!(
                "schedule name {:?} is not allowed: use lowercase letters, digits, `-` and `_`",
                s.name
            ));
        }
        if let Err(e) = crate::cron::CronExpr::parse(&s.cron) {
            problem(format!("schedule {:?}: {e}", s.name));
        }
        if let Err(e) = crate::zone::Zone::parse(s.timezone.as_deref()) {
            problem(format!("schedule {:?}: {e}", s.name));
        }
        if let Some(c) = &s.catch_up
            && !["none", "last", "all"].contains(&c.as_str())
        {
            problem(format!(
                "schedule {:?}: catch_up is {c:?}; use \"none\", \"last\" or \"all\"",
                s.name
            ));
        }
        if !crate::event::valid_id(&s.event_type) {
            problem(format!(
                "schedule {:?}: event_type {:?} is not a valid eventType",
                s.name, s.event_type
            ));
        }
    }
    for w in watches {
        let line = line_of(text, &format!("name = \"{}\"", w.name));
        let mut problem = |message: String| problems.push(Problem { line, message });
        if !valid_handler_name(&w.name) {
            problem(format!(
                "watch name {:?} is not allowed: use lowercase letters, digits, `-` and `_`",
                w.name
            ));
        }
        for kind in w.on.iter().flatten() {
            if !["create", "modify", "remove"].contains(&kind.as_str()) {
                problem(format!(
                    "watch {:?}: `on` has {kind:?}; use \"create\", \"modify\" or \"remove\"",
                    w.name
                ));
            }
        }
        if let Some(message) = w
            .debounce
            .and_then(|d| too_long("debounce", d.0, MAX_DEBOUNCE))
        {
            problem(format!("watch {:?}: {message}", w.name));
        }
        if let Some(Err(e)) = w.glob.as_deref().map(globset::Glob::new) {
            problem(format!("watch {:?}: bad glob: {e}", w.name));
        }
        if !crate::event::valid_id(&w.event_type) {
            problem(format!(
                "watch {:?}: event_type {:?} is not a valid eventType",
                w.name, w.event_type
            ));
        }
    }
}

fn check_unique<'a>(
    text: &str,
    table: &str,
    names: impl Iterator<Item = &'a String>,
    problems: &mut Vec<Problem>,
) {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            problems.push(Problem {
                line: line_of(text, &format!("name = \"{name}\"")),
                message: format!("two [[{table}]] are named {name:?}; names must be unique"),
            });
        }
    }
}

/// The line of `key = …` inside the table that starts at line `table`
/// (`[queue]`, `[webhooks.x]`): for errors that name a key of that table.
fn key_line(text: &str, table: Option<usize>, key: &str) -> Option<usize> {
    let start = table?;
    text.lines()
        .enumerate()
        .skip(start)
        .take_while(|(_, l)| !l.trim_start().starts_with('['))
        .find(|(_, l)| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1)
}

/// The 1-based line on which `needle` first appears, to point at a table.
pub(crate) fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines()
        .position(|l| l.trim_start().starts_with(needle))
        .map(|i| i + 1)
}

/// Takes the key that starts at `span` out of the document, wherever it is
/// nested; `false` if there is none.
fn remove_key(table: &mut toml::de::DeTable<'_>, span: &std::ops::Range<usize>) -> bool {
    let found = table.keys().find(|k| k.span().start == span.start).cloned();
    if let Some(key) = found {
        table.remove(&key);
        return true;
    }
    table.iter_mut().any(|(_, v)| match v.get_mut() {
        toml::de::DeValue::Table(t) => remove_key(t, span),
        toml::de::DeValue::Array(a) => a.iter_mut().any(|item| match item.get_mut() {
            toml::de::DeValue::Table(t) => remove_key(t, span),
            _ => false,
        }),
        _ => false,
    })
}

/// The 1-based line of a byte offset into `text`.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// toml's message, with the line number up front so editors and CI can jump
/// to it, and the offending line quoted.
fn toml_message(e: &toml::de::Error, text: &str) -> (Option<usize>, String) {
    let detail = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let line = line_at(text, span.start);
            let src_line = text.lines().nth(line - 1).unwrap_or("").trim_end();
            (
                Some(line),
                format!("line {line}: {detail}\n  {line} | {src_line}"),
            )
        }
        None => (None, detail.to_string()),
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/nonexistent"), Path::new("autod.toml"), text)
    }

    #[test]
    fn empty_config_has_defaults() {
        let c = parse("").unwrap();
        assert!(c.validation.require_schema);
        assert_eq!(c.validation.max_event_bytes, 1024 * 1024);
        assert!(c.handlers.is_empty());
    }

    #[test]
    fn serve_table() {
        assert!(parse("").unwrap().serve.is_none());
        let c = parse("[serve]\n").unwrap();
        let serve = c.serve.unwrap();
        assert_eq!(serve.listen, "127.0.0.1:8080");
        assert_eq!(serve.batch_bytes(1000), 16_000);
        let c = parse(
            "[serve]\nlisten = \"0.0.0.0:80\"\ntoken_env = \"T\"\ntoken_file = [\"a\", \"b\"]\n",
        )
        .unwrap();
        let serve = c.serve.unwrap();
        assert_eq!(serve.token_env.0, ["T"]);
        assert_eq!(serve.token_file.0, ["a", "b"]);
        let err = parse("[serve]\nlisten = \"0.0.0.0:80\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":2: serve.listen") && err.contains("beyond loopback"),
            "{err}"
        );
        let err = parse("[serve]\nlisten = \"[::]:80\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("beyond loopback"), "{err}");
        assert!(parse("[serve]\nlisten = \"[::1]:80\"\n").is_ok());
        let err = parse("[serve]\nlisten = \"localhost\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an address"), "{err}");
        let err = parse("[serve]\nport = 1\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `port`"), "{err}");
        let err = parse("[serve]\nrequest_timeout = \"0s\"\nmax_concurrent = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":2: serve.request_timeout") && err.contains(":3: serve.max_concurrent"),
            "{err}"
        );
        let serve = parse("[serve]\n").unwrap().serve.unwrap();
        assert_eq!(serve.queue_timeout.0, Duration::from_secs(5));
        assert_eq!(serve.max_connections, None);
        let serve = parse("[serve]\nqueue_timeout = \"0s\"\nmax_connections = 10\n")
            .unwrap()
            .serve
            .unwrap();
        assert_eq!(
            (serve.queue_timeout.0, serve.max_connections),
            (Duration::ZERO, Some(10))
        );
        let err = parse("[serve]\nqueue_timeout = \"2h\"\nmax_connections = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":2: serve.queue_timeout") && err.contains(":3: serve.max_connections"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse("[handlers.a]\non = [\"x\"]\ntiemout = \"3s\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tiemout"), "{err}");
        assert!(err.contains(":3: unknown field"), "{err}");
    }

    #[test]
    fn every_unknown_key_is_named_with_its_line() {
        let err = parse(
            "tiemout = 1\n[handlers.a]\non = [\"x\"]\ntimout = \"3s\"\nretry = { max_atempts = 3 }\n[[watches]]\nname = \"w\"\npath = \".\"\nevnt_type = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 5, "{err}");
        for (line, key) in [
            (1, "tiemout"),
            (4, "timout"),
            (5, "max_atempts"),
            (9, "evnt_type"),
        ] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains(&format!(":{line}: unknown field `{key}`"))),
                "{key} at {line}: {err}"
            );
        }
        // The misspelled required key is also missing, and said so.
        assert!(err.contains("missing field `event_type`"), "{err}");
    }

    #[test]
    fn durations_and_retry() {
        let c = parse("[handlers.a]\non = [\"x\"]\ntimeout = \"30s\"\nretry = { max_attempts = 3, initial = \"1s\", max = \"1m\" }\n").unwrap();
        let h = c.handler("a").unwrap();
        assert_eq!(h.timeout, Duration::from_secs(30));
        assert_eq!(h.retry.max_attempts, 3);
        assert_eq!(h.retry.max.0, Duration::from_secs(60));
    }

    #[test]
    fn bad_duration_is_explained() {
        let err = parse("[handlers.a]\non = [\"x\"]\ntimeout = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid duration \"soon\""), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn all_problems_are_reported_with_lines() {
        let err = parse("[handlers.Bad]\non = [\"x\"]\n\n[handlers.b]\non = []\nconcurrency = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("autod.toml:1: handler name \"Bad\""), "{err}");
        assert!(
            err.contains("autod.toml:4: handler \"b\" has no `on`"),
            "{err}"
        );
        assert!(err.contains("concurrency must be at least 1"), "{err}");
    }

    #[test]
    fn schedules_and_watches_are_checked() {
        let err = parse(
            "[[schedules]]\nname = \"d\"\ncron = \"0 9 * *\"\nevent_type = \"a\"\ncatch_up = \"some\"\n\n[[watches]]\nname = \"w\"\npath = \".\"\nevent_type = \"b\"\non = [\"change\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("autod.toml:2: schedule \"d\""), "{err}");
        assert!(err.contains("4 fields"), "{err}");
        assert!(err.contains("catch_up"), "{err}");
        assert!(
            err.contains("autod.toml:8: watch \"w\": `on` has \"change\""),
            "{err}"
        );
    }

    #[test]
    fn durations_past_their_bounds_are_refused_naming_key_and_limit() {
        let err = parse(
            "[handlers.a]\non = [\"x\"]\ntimeout = \"8days\"\nkill_grace = \"500000000000y\"\nretry = { initial = \"1s\", max = \"150000y\" }\n\n[[watches]]\nname = \"w\"\npath = \".\"\nevent_type = \"b\"\ndebounce = \"2h\"\n",
        )
        .unwrap_err()
        .to_string();
        for want in [
            "handler \"a\": timeout is 8days, longer than the 7days it may be at most",
            "handler \"a\": kill_grace is",
            "longer than the 1day it may be at most",
            "handler \"a\": retry.max is",
            "longer than the 365days it may be at most",
            "autod.toml:8: watch \"w\": debounce is 2h, longer than the 1h",
        ] {
            assert!(err.contains(want), "{want:?} in {err}");
        }
        // The bounds themselves are allowed.
        parse("[handlers.a]\non = [\"x\"]\ntimeout = \"7days\"\nkill_grace = \"1day\"\nretry = { initial = \"365days\", max = \"365days\" }\n").unwrap();
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn duration_text() -> impl Strategy<Value = String> {
            prop_oneof![
                (
                    any::<u64>(),
                    prop::sample::select(vec![
                        "ns", "ms", "s", "m", "h", "d", "w", "M", "y", "days", "years"
                    ])
                )
                    .prop_map(|(n, u)| format!("{n}{u}")),
                "\\PC{0,24}",
            ]
        }

        proptest! {
            /// Whatever durations a config holds, loading it does not panic,
            /// and what loads keeps every deadline and next attempt computable.
            #[test]
            fn any_duration_loads_or_is_refused_without_panic(
                timeout in duration_text(),
                grace in duration_text(),
                initial in duration_text(),
                max in duration_text(),
                debounce in duration_text(),
            ) {
                let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
                let text = format!(
                    "[handlers.a]\non = [\"x\"]\ntimeout = {}\nkill_grace = {}\nretry = {{ initial = {}, max = {} }}\n[[watches]]\nname = \"w\"\npath = \".\"\nevent_type = \"b\"\ndebounce = {}\n",
                    q(&timeout), q(&grace), q(&initial), q(&max), q(&debounce)
                );
                if let Ok(c) = parse(&text) {
                    let h = c.handler("a").unwrap();
                    let now = std::time::Instant::now();
                    prop_assert!(now.checked_add(h.timeout).is_some());
                    prop_assert!(now.checked_add(h.kill_grace).is_some());
                    prop_assert!(now.checked_add(c.watches[0].debounce.unwrap().0).is_some());
                    for n in [1, 2, 30, u32::MAX] {
                        let wait = crate::retry::delay(&h.retry, n);
                        prop_assert!(wait <= MAX_RETRY_DELAY);
                        let at = crate::time::format(crate::time::add(crate::time::now(), wait));
                        prop_assert!(crate::time::parse(&at).is_some(), "{}", at);
                    }
                }
            }
        }
    }

    #[test]
    fn a_watch_inside_the_state_folder_is_refused() {
        let watch = |path: &str| {
            format!("[[watches]]\nname = \"w\"\npath = \"{path}\"\nevent_type = \"b\"\n")
        };
        for path in [
            ".autod",
            "./.autod/inbox",
            "x/../.autod/out",
            "/nonexistent/.autod",
        ] {
            let err = parse(&watch(path)).unwrap_err().to_string();
            assert!(
                err.contains("autod.toml:2: watch \"w\": path")
                    && err.contains("state folder .autod/"),
                "{path}: {err}"
            );
        }
        for path in [".", "notes", ".autod-notes", "/elsewhere/.autod"] {
            let c = parse(&watch(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(c.watches[0].scan_on_start, "on by default");
        }
        let c = parse(&format!("{}scan_on_start = false\n", watch("."))).unwrap();
        assert!(!c.watches[0].scan_on_start);
    }

    #[test]
    fn missing_default_command_is_deferred() {
        let c = parse("[handlers.a]\non = [\"x\"]\n").unwrap();
        assert!(matches!(
            c.handler("a").unwrap().command,
            HandlerCommand::Missing(_)
        ));
    }
}
