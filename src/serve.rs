//! The HTTP intake (SPEC 11): `POST /events`, `GET /healthz`, `GET /readyz`,
//! `GET /metrics` (see `metrics.rs`).
//!
//! Every event goes through the same [`Intake`] as `autod send`, and is
//! answered `202` only once it is durable in the queue: fsynced in the inbox
//! ([`StateDir::inbox_put`]), from where `autod run` delivers it, or with
//! `[queue] backend = "nats"` acked by the stream (a publish that fails is a
//! `503` with `Retry-After`), from where any host's worker takes it. The
//! server itself runs no handler.
//!
//! Bounds on a client: the body is read through [`Limited`] (and refused
//! from its `Content-Length` before any of it is read), the body read has
//! `[serve] request_timeout`, and a batch is split without building it
//! first. The connection and head limits, and the bounded wait for one of
//! `[serve] max_concurrent` slots, are `serve_limits.rs`'s.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, Limited};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

use crate::config::{Config, ServeConfig};
use crate::event::Violation;
use crate::hooks::Hooks;
use crate::intake::{Admitted, Intake};
use crate::queue::Producer;
use crate::schema::Invalid;
use crate::serve_limits::{self, Slots};
use crate::state::StateDir;

/// Events in one batch request at most: each is fsynced before the answer, so
/// this bounds how long one request takes, not just how big it is.
const MAX_BATCH_EVENTS: usize = 1000;

/// `/readyz` probes at once: each writes and fsyncs a file.
const READYZ_CONCURRENT: usize = 4;

/// How long a client is told to wait after a publish the queue refused.
const QUEUE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// What the request handlers share.
struct Shared {
    intake: Mutex<Intake>,
    state: StateDir,
    /// Where accepted events go: the inbox of `state`, or the NATS stream.
    producer: Producer,
    /// The handlers of autod.toml, whose consumer lag `/metrics` shows with
    /// NATS; replaced by a reload.
    handlers: RwLock<Vec<String>>,
    /// Replaced by a reload ([`Reload::apply`]): a rotated-out token stops
    /// working at once, on connections kept alive too.
    tokens: RwLock<Vec<Vec<u8>>>,
    max_event_bytes: u64,
    max_batch_bytes: u64,
    request_timeout: Duration,
    /// `[webhooks.*]`: `POST /hooks/<name>`.
    /// Replaced whole by a reload (secrets rotated, hooks added).
    hooks: std::sync::RwLock<Arc<Hooks>>,
    /// `[serve] max_concurrent`, shared by `/events` and `/hooks/*`.
    slots: Slots,
}

/// A bound, not yet serving, HTTP intake.
pub struct Server {
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    max_connections: usize,
    reload: Arc<Reload>,
    rebind: tokio::sync::mpsc::Receiver<TcpListener>,
    /// Kept for as long as the server runs.
    _schemas: Option<notify::RecommendedWatcher>,
}

impl Server {
    /// Binds `listen` (already checked by [`ServeConfig::check_listen`]) and
    /// reads the tokens of `config.serve` (defaults if it has none). A token that cannot be read is a usage error.
    pub async fn bind(
        root: &Path,
        config: &Config,
        state: &StateDir,
        producer: Producer,
        listen: SocketAddr,
    ) -> Result<Server> {
        let cfg = config.serve.clone().unwrap_or_default();
        let cfg = &cfg;
        let tokens = RwLock::new(read_tokens(root, cfg)?);
        let intake = Intake::new(root, config)?;
        let max_event_bytes = config.validation.max_event_bytes;
        let hooks = Hooks::load(root, &config.webhooks, listen).map_err(anyhow::Error::msg)?;
        let slots = Slots::new(cfg.max_concurrent, cfg.queue_timeout.0);
        let shared = Arc::new(Shared {
            intake: Mutex::new(intake),
            state: state.clone(),
            producer,
            handlers: RwLock::new(handler_names(config)),
            tokens,
            max_event_bytes,
            max_batch_bytes: cfg.batch_bytes(max_event_bytes),
            request_timeout: cfg.request_timeout.0,
            hooks: std::sync::RwLock::new(Arc::new(hooks)),
            slots: slots.clone(),
        });
        let schemas = watch_schemas(root, &shared);
        // The caps: `/events` and `/hooks/*` (the work: validation and
        // fsyncs) share max_concurrent (a hook takes its slot in `hook`,
        // after its own cap); `/readyz` (one fsynced probe) has a few of its
        // own, and `/healthz` none, so a full intake still answers its probes.
        // Past a cap a request waits queue_timeout at most, then is a 503.
        let capped =
            |slots: Slots| axum::middleware::from_fn_with_state(slots, serve_limits::wait_for_slot);
        let router = Router::new()
            .route("/events", post(events).layer(capped(slots)))
            .route("/hooks/{name}", post(hook))
            .route(
                "/readyz",
                get(readyz).layer(capped(Slots::new(READYZ_CONCURRENT, cfg.queue_timeout.0))),
            )
            .route("/healthz", get(healthz))
            .route(
                "/metrics",
                get(metrics).layer(capped(Slots::new(
                    crate::metrics::CONCURRENT_SCRAPES,
                    cfg.queue_timeout.0,
                ))),
            )
            .fallback(not_found)
            // Last, so that it wraps every route above and the fallback.
            .layer(axum::middleware::from_fn(crate::metrics::track_http))
            .with_state(Arc::clone(&shared));
        let open_files = serve_limits::raise_open_file_limit();
        let max_connections = cfg
            .max_connections
            .unwrap_or_else(|| serve_limits::default_max_connections(open_files));
        if let Some(limit) = open_files
            && max_connections as u64 >= limit
        {
            tracing::warn!(
                "serve.max_connections = {max_connections} is not below the open-file limit ({limit}): the inbox and handlers may find no descriptor left; raise the limit (ulimit -n, LimitNOFILE=) or lower max_connections"
            );
        }
        let listener =
            serve_limits::listen(listen).with_context(|| format!("cannot listen on {listen}"))?;
        let (rebinds, rebind) = tokio::sync::mpsc::channel(1);
        Ok(Server {
            listener,
            router,
            header_timeout: cfg.request_timeout.0,
            max_connections,
            reload: Arc::new(Reload {
                shared: Arc::downgrade(&shared),
                rebinds,
                start: cfg.clone(),
                listen: Mutex::new(listen),
                max_event_bytes,
            }),
            rebind,
            _schemas: schemas,
        })
    }

    /// What a SIGHUP of `autod run` uses to bring the server to a new config.
    pub fn reload(&self) -> Arc<Reload> {
        Arc::clone(&self.reload)
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` completes; then stops accepting (new
    /// connections are refused) and lets the requests in flight finish, for
    /// at most `grace`.
    pub async fn run(self, shutdown: impl Future<Output = ()>, grace: Duration) {
        let accepting = serve_limits::Accepting {
            router: self.router,
            header_timeout: self.header_timeout,
            max_connections: self.max_connections,
            rebind: self.rebind,
        };
        serve_limits::accept_loop(self.listener, accepting, shutdown, grace).await;
    }
}

/// A running server's side of a config reload (SIGHUP in `autod run`).
///
/// Taken from the new config: the tokens (read again, so a `token_file`
/// rewritten in place rotates without a restart), the intake's routes and
/// envelope, and `listen` (the new address is bound first; if that fails
/// the old one is kept). Every other `[serve]` key, and `max_event_bytes`,
/// keep their start values until the next start, and a warning says so.
pub struct Reload {
    shared: std::sync::Weak<Shared>,
    rebinds: tokio::sync::mpsc::Sender<TcpListener>,
    start: ServeConfig,
    /// The address `listen` named when last bound (port 0 stays 0).
    listen: Mutex<SocketAddr>,
    max_event_bytes: u64,
}

impl Reload {
    /// Brings the server to `config`; what cannot be taken is logged and
    /// the old value kept, so a reload never stops the server.
    pub async fn apply(&self, root: &Path, config: &Config) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let Some(cfg) = &config.serve else {
            tracing::warn!(
                "SIGHUP: [serve] is gone from autod.toml; the server keeps running until the next start"
            );
            return;
        };
        match read_tokens(root, cfg) {
            Ok(tokens) => {
                let n = tokens.len();
                *shared
                    .tokens
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = tokens;
                tracing::info!("SIGHUP: serve: tokens read again ({n})");
            }
            Err(e) => tracing::error!("SIGHUP: serve: kept the old tokens: {e:#}"),
        }
        match Intake::new(root, config) {
            Ok(intake) => {
                *shared
                    .intake
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = intake;
                *shared
                    .handlers
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = handler_names(config);
            }
            Err(e) => tracing::error!("SIGHUP: serve: kept the old routes: {e:#}"),
        }
        self.rebind(cfg).await;
        let listen = *self
            .listen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match Hooks::load(root, &config.webhooks, listen) {
            Ok(hooks) => {
                let n = hooks.names().len();
                *shared
                    .hooks
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(hooks);
                tracing::info!("SIGHUP: serve: webhooks and their secrets read again ({n})");
            }
            Err(e) => tracing::error!("SIGHUP: serve: kept the old webhooks: {e}"),
        }
        let start = &self.start;
        let changed: Vec<&str> = [
            (
                "max_batch_bytes",
                cfg.max_batch_bytes != start.max_batch_bytes,
            ),
            ("max_concurrent", cfg.max_concurrent != start.max_concurrent),
            ("queue_timeout", cfg.queue_timeout != start.queue_timeout),
            (
                "max_connections",
                cfg.max_connections != start.max_connections,
            ),
            (
                "request_timeout",
                cfg.request_timeout != start.request_timeout,
            ),
            (
                "[validation] max_event_bytes",
                config.validation.max_event_bytes != self.max_event_bytes,
            ),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect();
        if !changed.is_empty() {
            tracing::warn!(
                "SIGHUP: serve: {} changed; the server keeps its start value until the next start",
                changed.join(", ")
            );
        }
    }

    async fn rebind(&self, cfg: &ServeConfig) {
        let Ok(addr) = cfg.check_listen(&cfg.listen) else {
            return; // the config did not load then
        };
        let old = *self
            .listen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if addr == old {
            return;
        }
        match serve_limits::listen(addr) {
            Ok(listener) => {
                let bound = listener.local_addr().map_or(addr, |a| a);
                if self.rebinds.send(listener).await.is_err() {
                    return; // stopping
                }
                *self
                    .listen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = addr;
                tracing::info!(
                    "SIGHUP: serve: moved from {old} to {bound}; connections open on {old} finish there"
                );
                eprintln!("autod serve: listening on http://{bound}");
            }
            Err(e) => tracing::error!(
                "SIGHUP: serve: cannot listen on {addr} ({e}); still listening on {old}"
            ),
        }
    }
}

/// Reads schemas again when a file under `schemas/` changes, as the daemon
/// does: the server answers by the schemas the daemon will deliver by.
fn watch_schemas(root: &Path, shared: &Arc<Shared>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let dir = root.join("schemas");
    if !dir.is_dir() {
        return None;
    }
    let weak = Arc::downgrade(shared);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| e.kind.is_access()) {
            return;
        }
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let mut intake = shared
            .intake
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = intake.reload_schemas() {
            tracing::error!(
                "serve: schemas changed, and the envelope no longer loads: {e}; keeping the old one"
            );
        }
    });
    let unwatched = |e: notify::Error| {
        tracing::warn!(
            "serve: cannot watch schemas/ ({e}); a changed schema is read at the next start"
        );
    };
    let mut watcher = watcher.map_err(unwatched).ok()?;
    watcher
        .watch(&dir, notify::RecursiveMode::Recursive)
        .map_err(unwatched)
        .ok()?;
    Some(watcher)
}

/// The bearer tokens of `token_env` and `token_file`, in that order.
fn read_tokens(root: &Path, cfg: &ServeConfig) -> Result<Vec<Vec<u8>>> {
    let tokens =
        crate::config::read_secrets(root, "serve", "token", &cfg.token_env, &cfg.token_file)
            .map_err(anyhow::Error::msg)?;
    Ok(tokens.into_iter().map(String::into_bytes).collect())
}

/// Equal without an early exit on the first differing byte. The length is
/// not secret (a token's length is no help in guessing it).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let tokens = shared
        .tokens
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if tokens.is_empty() {
        return true;
    }
    // The scheme is case-insensitive (RFC 9110 11.1); the token is not.
    let Some(given) = headers.get(header::AUTHORIZATION).and_then(|v| {
        let v = v.as_bytes();
        (v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ")).then(|| &v[7..])
    }) else {
        return false;
    };
    // Every token is compared, so which one matched does not show in the time.
    tokens
        .iter()
        .fold(false, |ok, t| ok | constant_time_eq(given, t))
}

/// `401` for a missing or wrong bearer token.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({"error": "unauthorized", "message": "a valid `Authorization: Bearer <token>` header is required"})),
    )
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "not-found",
        format!(
            "no {} here; autod serves POST /events, POST /hooks/<name>, GET /healthz, GET /readyz, GET /metrics",
            uri.path()
        ),
    )
}

async fn healthz() -> Response {
    (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
}

fn handler_names(config: &Config) -> Vec<String> {
    config.handlers.iter().map(|h| h.name.clone()).collect()
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if let Some(publisher) = shared.producer.nats() {
        // Accepted events go to the stream, not to .autod/: ready is the
        // connection up and the stream there.
        return match publisher.ready().await {
            Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))).into_response(),
            Err(why) => problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                format!("the queue cannot take events: {why}"),
            ),
        };
    }
    let state = shared.state.clone();
    // The inbox is where accepted events go: made if missing (as the first
    // accepted event would), then probed.
    let probe = move || state.ensure("inbox/tmp").and_then(|_| state.writable());
    match tokio::task::spawn_blocking(probe).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ready"}))).into_response(),
        Ok(Err(e)) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            format!(".autod/ is not writable: {e:#}"),
        ),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// The Prometheus exposition. Behind the token when one is set: eventTypes
/// and handler names are the project's business (Prometheus sends one with
/// `authorization: credentials_file`).
async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    let state = shared.state.clone();
    // With NATS, the queue's gauges are read first (bounded by a short
    // timeout), off the blocking thread that lists folders.
    let queue = match shared.producer.nats() {
        Some(publisher) => {
            let handlers = shared
                .handlers
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            Some(publisher.census(&handlers).await)
        }
        None => None,
    };
    let render = move || crate::metrics::render_with_queue(&state, queue.as_ref());
    match tokio::task::spawn_blocking(render).await {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// JSON bodies without axum's `json` feature (serde_json is here already).
struct Json(Value);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "application/json")],
            self.0.to_string(),
        )
            .into_response()
    }
}

/// An answer that is not about one event: `{"error": kind, "message": ...}`.
fn problem(status: StatusCode, kind: &str, message: String) -> Response {
    (status, Json(json!({"error": kind, "message": message}))).into_response()
}

/// One entry of a `400`'s `errors`: which event of the request (`null` when
/// the body as a whole is wrong) and the violation.
fn error_entry(index: Option<usize>, v: &Violation) -> Value {
    json!({"index": index, "pointer": v.pointer, "keyword": v.keyword, "message": v.message})
}

fn bad_request(errors: Vec<Value>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"errors": errors}))).into_response()
}

/// How the request carries its events.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `application/json`: one autod event, or a JSON array of them.
    Json,
    /// `application/cloudevents+json`.
    Structured,
    /// `application/cloudevents-batch+json`.
    Batch,
    /// `ce-*` headers, the body is `data`.
    Binary,
}

async fn events(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    let media = crate::media::media_type(&headers);
    let mode = if headers.contains_key("ce-specversion") {
        match media.as_deref() {
            None => Mode::Binary,
            Some(m) if crate::media::is_json(m) => Mode::Binary,
            Some(m) => {
                return problem(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    format!("binary-mode CloudEvent data must be JSON, not {m}"),
                );
            }
        }
    } else {
        match media.as_deref() {
            Some("application/json") => Mode::Json,
            Some("application/cloudevents+json") => Mode::Structured,
            Some("application/cloudevents-batch+json") => Mode::Batch,
            other => {
                return problem(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    format!(
                        "Content-Type {} is not accepted; send application/json, application/cloudevents+json, application/cloudevents-batch+json, or a binary-mode CloudEvent (ce-* headers)",
                        other.map_or("(none)".to_owned(), |m| format!("{m:?}"))
                    ),
                );
            }
        }
    };
    // `application/json` may be an array, so it gets the batch cap; a single
    // object over max_event_bytes is refused after the read, below.
    let cap = match mode {
        Mode::Structured | Mode::Binary => shared.max_event_bytes,
        Mode::Json | Mode::Batch => shared.max_batch_bytes,
    };
    let batch_cap = matches!(mode, Mode::Json | Mode::Batch);
    let bytes = match read_body(&shared, &headers, body, cap, batch_cap, "/events").await {
        Ok(bytes) => bytes,
        Err(resp) => return *resp,
    };
    let inputs = match split(mode, &headers, &bytes, shared.max_event_bytes) {
        Ok(inputs) => inputs,
        Err(resp) => return *resp,
    };
    admit(shared, inputs).await
}

/// The body, refused from its `Content-Length` before any of it is read if
/// that is over `cap`, read through [`Limited`] within `request_timeout`.
async fn read_body(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
    cap: u64,
    batch_cap: bool,
    path: &str,
) -> Result<Bytes, Box<Response>> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared
        && len > cap
    {
        return Err(Box::new(too_large(len, cap, batch_cap)));
    }
    // Past the concurrency cap's permit: `-v` shows which requests hold one.
    tracing::debug!("serve: POST {path}: reading the body (at most {cap} bytes)");
    let read = Limited::new(body, usize::try_from(cap).unwrap_or(usize::MAX)).collect();
    let bytes = match tokio::time::timeout(shared.request_timeout, read).await {
        Err(_) => Err(problem(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "the body did not arrive within {}",
                crate::config::duration_text(shared.request_timeout)
            ),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(too_large(cap.saturating_add(1), cap, batch_cap))
        }
        Ok(Err(e)) => Err(problem(
            StatusCode::BAD_REQUEST,
            "body",
            format!("the body could not be read: {e}"),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    };
    bytes.map_err(Box::new)
}

/// `POST /hooks/<name>`: the HTTP order of a hook's checks (src/hooks.rs
/// holds the checks): unknown hook, the hook's own cap, then a slot of
/// max_concurrent, the size cap, the signature over the raw body, the event,
/// and the same admission as `/events`.
async fn hook(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let hooks = Arc::clone(
        &shared
            .hooks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let Some(hook) = hooks.get(&name) else {
        let names = hooks.names();
        return problem(
            StatusCode::NOT_FOUND,
            "not-found",
            if names.is_empty() {
                format!("no webhook {name:?}: autod.toml has no [webhooks.<name>] table")
            } else {
                format!("no webhook {name:?}; autod.toml has {}", names.join(", "))
            },
        );
    };
    // The hook's cap first: requests waiting on it hold none of the slots
    // that other hooks and /events need.
    let wait = shared.slots.wait();
    let Ok(_hook_slot) = tokio::time::timeout(wait, hook.slot()).await else {
        return serve_limits::full(wait, &format!("[webhooks.{name}] concurrency"));
    };
    let _slot = match shared.slots.take().await {
        Ok(slot) => slot,
        Err(busy) => return busy,
    };
    let path = format!("/hooks/{name}");
    let bytes = match read_body(
        &shared,
        &headers,
        body,
        shared.max_event_bytes,
        false,
        &path,
    )
    .await
    {
        Ok(bytes) => bytes,
        Err(resp) => return *resp,
    };
    if let Err(reason) = hook.authenticate(&headers, &bytes) {
        // The hook and the reason only: never the secret, the signature or the body.
        tracing::warn!("serve: POST {path}: refused: {reason}");
        return (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"error": "unauthorized", "message": format!("webhook {name:?}: {reason}")}),
            ),
        )
            .into_response();
    }
    let event = match hook.event(&headers, &bytes) {
        Ok(event) => event,
        Err(e) => {
            tracing::info!("serve: POST {path}: refused: {}", e.message);
            // No event was made, so its eventType is not known: a body that
            // does not parse is `json`, a template that cannot be filled in
            // (the eventType, eventId or key) `envelope`.
            let reason = if e.kind == "body" { "json" } else { "envelope" };
            crate::metrics::event_rejected(crate::metrics::UNKNOWN_TYPE, reason);
            return problem(StatusCode::BAD_REQUEST, e.kind, e.message);
        }
    };
    admit(shared, vec![event]).await
}

/// [`admit_all`] off the async threads: validation and fsyncs block. With
/// NATS only the validation is: the publishes are awaited here.
async fn admit(shared: Arc<Shared>, inputs: Vec<Vec<u8>>) -> Response {
    if shared.producer.is_local() {
        return match tokio::task::spawn_blocking(move || admit_all(&shared, inputs)).await {
            Ok(resp) => resp,
            Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        };
    }
    let checking = Arc::clone(&shared);
    match tokio::task::spawn_blocking(move || check_all(&checking, inputs)).await {
        Ok(Ok(checked)) => publish_all(&shared, checked).await,
        Ok(Err(resp)) => *resp,
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// `413`; `batch_cap`: the cap was `[serve] max_batch_bytes`, so the hint
/// names that key.
fn too_large(size: u64, cap: u64, batch_cap: bool) -> Response {
    crate::metrics::event_rejected(crate::metrics::UNKNOWN_TYPE, "too_large");
    let mut v = crate::event::too_large(size, cap);
    if batch_cap {
        v.keyword = "maxBatchBytes".into();
        v.message = v
            .message
            .replace("event is", "the body is")
            .replace("[validation] max_event_bytes", "[serve] max_batch_bytes");
    }
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        Json(json!({"errors": [error_entry(None, &v)]})),
    )
        .into_response()
}

/// The request's events, each as the bytes [`Intake::admit`] takes.
fn split(
    mode: Mode,
    headers: &HeaderMap,
    bytes: &Bytes,
    max_event_bytes: u64,
) -> Result<Vec<Vec<u8>>, Box<Response>> {
    let whole = |v: Violation| {
        let reason = crate::metrics::violation_reason(Some(&v));
        crate::metrics::event_rejected(crate::metrics::UNKNOWN_TYPE, reason);
        Box::new(bad_request(vec![error_entry(None, &v)]))
    };
    match mode {
        Mode::Structured => Ok(vec![bytes.to_vec()]),
        Mode::Binary => binary_event(headers, bytes).map(|b| vec![b]).map_err(whole),
        Mode::Json | Mode::Batch => {
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            if mode == Mode::Json && first != Some(&b'[') {
                // One event: the intake's own size check and JSON errors.
                if bytes.len() as u64 > max_event_bytes {
                    return Err(Box::new(too_large(
                        bytes.len() as u64,
                        max_event_bytes,
                        false,
                    )));
                }
                return Ok(vec![bytes.to_vec()]);
            }
            use serve_limits::BatchRefused;
            let items = match serve_limits::batch_items(bytes, MAX_BATCH_EVENTS) {
                Ok(items) => items,
                Err(BatchRefused::Json(e)) => {
                    return Err(whole(Violation::new(
                        "",
                        "json",
                        format!("not valid JSON: {e}"),
                    )));
                }
                Err(BatchRefused::NotArray) => {
                    return Err(whole(Violation::new(
                        "",
                        "type",
                        "a batch is a JSON array of events",
                    )));
                }
                Err(BatchRefused::TooLong) => {
                    return Err(Box::new(problem(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "batch-too-long",
                        format!(
                            "the batch has more than the {MAX_BATCH_EVENTS} events a request may carry (each is fsynced before the answer); split it"
                        ),
                    )));
                }
            };
            if items.is_empty() {
                return Err(whole(Violation::new(
                    "",
                    "minItems",
                    "the batch is empty; send at least one event",
                )));
            }
            Ok(items.into_iter().map(<[u8]>::to_vec).collect())
        }
    }
}

/// CloudEvents HTTP binary mode: `ce-<attribute>` headers and the body as
/// `data` make the structured CloudEvent, which the intake maps as any other
/// (src/event.rs). An empty body is no `data` (a `null` payload).
fn binary_event(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, Violation> {
    let mut ce = Map::new();
    for (name, value) in headers {
        let Some(attribute) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        if matches!(attribute, "data" | "data_base64") {
            return Err(Violation::new(
                format!("/{attribute}"),
                "cloudevents",
                format!("header {name}: in binary mode the data is the body, not a header"),
            ));
        }
        // The CloudEvents HTTP binding percent-encodes what is not printable
        // ASCII (and `%` itself), UTF-8 underneath.
        let value = crate::media::percent_decode(value.as_bytes()).ok_or_else(|| {
            Violation::new(
                format!("/{attribute}"),
                "cloudevents",
                format!("header {name} is not percent-encoded UTF-8"),
            )
        })?;
        ce.insert(attribute.to_owned(), Value::String(value));
    }
    if let Some(m) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        ce.insert("datacontenttype".into(), Value::String(m.to_owned()));
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        let data: Value = serde_json::from_slice(body).map_err(|e| {
            Violation::new(
                "/data",
                "json",
                format!("the body (data) is not valid JSON: {e}"),
            )
        })?;
        ce.insert("data".into(), data);
    }
    Ok(serde_json::to_vec(&Value::Object(ce)).unwrap_or_default())
}

/// A request's events, every one valid and routed, with their eventType labels.
struct Checked {
    admitted: Vec<Admitted>,
    tally: Vec<(String, Option<&'static str>)>,
}

/// Validates every event, then (only if all pass) writes each to the inbox.
fn admit_all(shared: &Shared, inputs: Vec<Vec<u8>>) -> Response {
    let Checked { admitted, tally } = match check_all(shared, inputs) {
        Ok(checked) => checked,
        Err(resp) => return *resp,
    };
    let mut ids = Vec::with_capacity(admitted.len());
    for (a, (event_type, _)) in admitted.iter().zip(&tally) {
        let counted =
            crate::metrics::Queueing::new(event_type, crate::metrics::Door::Http, a.event.id());
        if let Err(e) = shared.state.inbox_put(&a.event) {
            tracing::error!("serve: {} not queued: {e:#}", a.event.id());
            // Those before it are queued; the inbox is idempotent by eventId,
            // so sending the whole request again is safe.
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage",
                format!(
                    "event {} could not be stored ({e:#}); {} of {} were queued, and sending the request again is safe",
                    a.event.id(),
                    ids.len(),
                    admitted.len()
                ),
            );
        }
        tracing::debug!("serve: queued {}", a.event.id());
        counted.queued();
        ids.push(Value::String(a.event.id().to_owned()));
    }
    (StatusCode::ACCEPTED, Json(json!({"eventIds": ids}))).into_response()
}

/// Publishes every checked event to the NATS stream, in order, all sent
/// before any ack is awaited; `202` once all are acked. A publish that fails
/// is a `503` with `Retry-After` naming the first event that failed and how
/// many were stored (listed in `queued`): nothing of a failed event was kept
/// (or, after an ack that did not come, perhaps it was), and sending the
/// whole request again is safe, since the stream drops an eventId it has
/// (and past its window, done markers skip a pair that ran).
async fn publish_all(shared: &Shared, checked: Checked) -> Response {
    let Checked { admitted, tally } = checked;
    let events: Vec<&crate::event::Event> = admitted.iter().map(|a| &a.event).collect();
    let results = match shared.producer.put_all(&events).await {
        Ok(results) => results,
        Err(e) => return unqueued(events[0].id(), &e, &[], events.len()),
    };
    let mut ids = Vec::with_capacity(events.len());
    let mut failed = None;
    for ((event, result), (event_type, _)) in events.iter().zip(results).zip(&tally) {
        match result {
            Ok(receipt) => {
                if let crate::queue::Receipt::Nats(ack) = &receipt {
                    tracing::debug!(
                        "serve: published {} as message {} of stream {}{}",
                        event.id(),
                        ack.sequence,
                        ack.stream,
                        if ack.duplicate { " (a duplicate)" } else { "" }
                    );
                }
                crate::metrics::event_published(event_type, crate::metrics::Door::Http);
                ids.push(Value::String(event.id().to_owned()));
            }
            Err(e) => {
                tracing::error!("serve: {} not published: {e}", event.id());
                failed.get_or_insert((event.id(), e));
            }
        }
    }
    match failed {
        None => (StatusCode::ACCEPTED, Json(json!({"eventIds": ids}))).into_response(),
        Some((id, e)) => unqueued(id, &e, &ids, events.len()),
    }
}

/// The `503` of a request whose events were not all stored: `id` is the
/// first that was not, `queued` the ones that were.
fn unqueued(id: &str, e: &crate::queue::QueueError, queued: &[Value], of: usize) -> Response {
    let stored = if queued.is_empty() {
        "nothing of this request was queued".to_owned()
    } else {
        format!("{} of its {of} events were queued", queued.len())
    };
    let after = QUEUE_RETRY_AFTER.as_secs();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, after.to_string())],
        Json(json!({
            "error": "queue",
            "message": format!(
                "event {id} could not be handed to the queue: {e}. {stored}; sending the request again (in {after}s) is safe: an eventId the stream has is not stored twice"
            ),
            "queued": queued,
        })),
    )
        .into_response()
}

/// Validates every event of a request: all of them pass, or the answer that
/// refuses the request.
fn check_all(shared: &Shared, inputs: Vec<Vec<u8>>) -> Result<Checked, Box<Response>> {
    let mut admitted = Vec::with_capacity(inputs.len());
    let mut errors = Vec::new();
    let mut broken = Vec::new();
    // For /metrics: each event's eventType label, and why it was refused
    // (`None`: valid, so refused only with its batch, or accepted).
    let mut tally: Vec<(String, Option<&'static str>)> = Vec::with_capacity(inputs.len());
    {
        let mut intake = shared
            .intake
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (i, bytes) in inputs.iter().enumerate() {
            let admit = intake.admit(bytes, None);
            let claimed = match &admit {
                Ok(a) => Some(a.event.event_type().to_owned()),
                Err(_) => crate::intake::claimed(bytes).1,
            };
            let reason = admit.as_ref().err().map(crate::metrics::reason);
            tally.push((intake.metric_type(claimed.as_deref()).to_owned(), reason));
            match admit {
                Ok(a) => admitted.push(a),
                Err(Invalid::Rejected(violations)) => {
                    errors.extend(violations.iter().map(|v| error_entry(Some(i), v)));
                }
                Err(schema @ Invalid::Schema(_)) => broken.push(schema.to_string()),
            }
        }
    }
    if !broken.is_empty() || !errors.is_empty() {
        for (event_type, reason) in &tally {
            crate::metrics::event_rejected(event_type, reason.unwrap_or("batch"));
        }
    }
    if !broken.is_empty() {
        // The project's fault, not the sender's: a retry succeeds once the
        // schema is fixed, which is what 503 tells a webhook sender.
        tracing::error!("serve: events not checked: {}", broken.join("; "));
        return Err(Box::new(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "project",
            format!(
                "the project is broken, so the events cannot be checked (nothing was queued): {}",
                broken.join("; ")
            ),
        )));
    }
    if !errors.is_empty() {
        tracing::info!(
            "serve: refused a request of {} events: {} errors, the first: {}",
            inputs.len(),
            errors.len(),
            errors[0]
        );
        return Err(Box::new(bad_request(errors)));
    }
    Ok(Checked { admitted, tally })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn binary_mode_builds_the_structured_event() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("ce-specversion", "1.0"),
            ("ce-id", "b1"),
            ("ce-type", "a.b"),
            ("ce-source", "s"),
            ("ce-subject", "x"),
            ("content-type", "application/json"),
        ] {
            h.insert(k, v.parse().unwrap());
        }
        let bytes = binary_event(&h, br#"{"k":1}"#).unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            json!({"specversion":"1.0","id":"b1","type":"a.b","source":"s","subject":"x","datacontenttype":"application/json","data":{"k":1}})
        );
    }
}
