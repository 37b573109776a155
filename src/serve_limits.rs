//! How the HTTP intake ([`crate::serve`]) keeps a client from holding it
//! (SPEC 11: "a slow client cannot hold the server"): its accept loop, the
//! cap on open connections, hyper's bounds on a request head, the bounded
//! wait for a request slot, and the open-file limit.
//!
//! - **Connections.** At most `[serve] max_connections` are open at once.
//!   At the cap, a new connection makes the one idle the longest close (no
//!   request of it being handled: new, kept alive after a response, or still
//!   sending its head), instead of waiting for it to time out: idle
//!   connections, however many, cannot lock a real client out. Only when
//!   every open connection has a request in progress does accepting wait,
//!   for one of them to end (the kernel's backlog holds the rest).
//! - **Heads.** A request head (request line and headers) is at most
//!   [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`] headers, or hyper answers `431`;
//!   it must arrive within the header timeout from its first byte (a client
//!   trickling bytes is cut all the same), or the connection is closed.
//! - **Slots.** A request past its route's cap waits for a slot for at most
//!   `[serve] queue_timeout`, then is answered `503` with `Retry-After`
//!   ([`wait_for_slot`]): the server is full, not the client at fault (a
//!   `429` would say this client sent too much), and webhook senders retry
//!   a 503.
//! - **Files.** [`raise_open_file_limit`] lifts the soft limit to the hard
//!   one, and the default connection cap is half of it, so that connections
//!   cannot take the descriptors the inbox, the log and the handlers need.
//!
//! - **Batches.** [`batch_items`] splits a batch into its events' bytes
//!   without building any of them, and stops counting past the cap: a body
//!   of a million tiny elements costs its bytes, not a million values.
//!
//! It does not read bodies or know the routes: that is `serve.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};

/// The largest request head, request line included: past it, `431`. Webhook
/// senders' heads are a few KiB; 64 KiB is what common proxies allow.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Headers in one request at most (hyper's default, said here): past it, `431`.
pub const MAX_HEADERS: usize = 100;

/// The default `max_connections` at most, whatever the open-file limit: an
/// idle connection costs some 10 KiB, and a side project's intake needs
/// far fewer.
const MAX_DEFAULT_CONNECTIONS: usize = 10_000;

/// Connections the kernel holds for the accept loop: a burst past it has
/// its SYNs dropped, and each of those clients waits a second to retry.
/// Linux caps it at `net.core.somaxconn` (4096 by default since 5.4).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` to listen, with [`LISTEN_BACKLOG`] (tokio's default is 1024).
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std and tokio do: a restart may bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Raises the soft open-file limit to the hard one (a server holds a
/// descriptor per connection); the soft limit in force after it.
///
/// Handlers inherit the raised limit. Nothing is changed when the hard limit
/// is unlimited (Linux refuses that as a soft limit).
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        let raised = Rlimit {
            current: Some(maximum),
            maximum: Some(maximum),
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                tracing::debug!("serve: open-file limit raised from {current} to {maximum}");
                return Some(maximum);
            }
            Err(e) => tracing::debug!("serve: cannot raise the open-file limit: {e}"),
        }
    }
    limit.current
}

/// Half the open-file limit (the other half is the daemon's own: inbox,
/// log, state files, handlers' pipes), at most [`MAX_DEFAULT_CONNECTIONS`].
pub fn default_max_connections(open_file_limit: Option<u64>) -> usize {
    let half = open_file_limit.map_or(MAX_DEFAULT_CONNECTIONS as u64, |n| n / 2);
    usize::try_from(half)
        .unwrap_or(usize::MAX)
        .clamp(16, MAX_DEFAULT_CONNECTIONS)
}

/// A route's cap on requests handled at once, with a bounded wait.
#[derive(Clone)]
pub struct Slots {
    free: Arc<Semaphore>,
    wait: Duration,
}

impl Slots {
    pub fn new(cap: usize, wait: Duration) -> Slots {
        Slots {
            free: Arc::new(Semaphore::new(cap.max(1))),
            wait,
        }
    }

    /// How long a request waits for a slot before its `503`.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// A slot, or (after waiting `queue_timeout`) the `503` to answer.
    pub async fn take(&self) -> Result<OwnedSemaphorePermit, Response> {
        if let Ok(slot) = self.free.clone().try_acquire_owned() {
            return Ok(slot);
        }
        match tokio::time::timeout(self.wait, self.free.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            _ => Err(full(self.wait, "[serve] max_concurrent")),
        }
    }
}

/// Middleware (`axum::middleware::from_fn_with_state`): the request runs
/// holding a slot, or is answered `503` once it has waited `queue_timeout`.
pub async fn wait_for_slot(State(slots): State<Slots>, request: Request, next: Next) -> Response {
    let slot = match slots.take().await {
        Ok(slot) => slot,
        Err(busy) => return busy,
    };
    let response = next.run(request).await;
    drop(slot);
    response
}

/// `503` with `Retry-After`: as long as this request waited, at least 1s.
/// `cap` names the setting whose slots were all taken.
pub fn full(waited: Duration, cap: &str) -> Response {
    let after = waited.as_secs().max(1);
    // debug, not info: under a flood this is every request.
    tracing::debug!(
        "serve: every slot stayed busy for {}; answered 503",
        crate::config::duration_text(waited)
    );
    let body = serde_json::json!({
        "error": "busy",
        "message": format!(
            "every slot ({cap}) stayed busy for {}; nothing was queued, retry in {after}s",
            crate::config::duration_text(waited)
        ),
    });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::RETRY_AFTER, after.to_string()),
            (header::CONTENT_TYPE, "application/json".to_owned()),
        ],
        body.to_string(),
    )
        .into_response()
}

/// What the accept loop needs besides its listener.
pub struct Accepting {
    pub router: Router,
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// A new listener (`listen` changed on a reload) replaces the current one.
    pub rebind: mpsc::Receiver<TcpListener>,
}

/// Where a connection is in its life, for the accept loop to pick one to close.
struct Conn {
    /// Requests of it being handled (0 or 1: HTTP/1 without pipelining).
    busy: AtomicUsize,
    /// When it last began or ended a request (or opened), in ms since the loop began.
    active_at: AtomicU64,
    /// Asked to close already.
    closing: AtomicBool,
    close: Notify,
}

/// The open connections.
struct Conns {
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    /// One per connection that may be opened.
    free: Arc<Semaphore>,
    max: usize,
    epoch: Instant,
}

impl Conns {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks the connection idle the longest to close; `false` if none is idle.
    fn close_longest_idle(&self) -> bool {
        let open = self.lock();
        // Ties (the same millisecond) go to the one opened first.
        let oldest = open
            .iter()
            .filter(|(_, c)| {
                c.busy.load(Ordering::SeqCst) == 0 && !c.closing.load(Ordering::SeqCst)
            })
            .min_by_key(|(id, c)| (c.active_at.load(Ordering::SeqCst), **id))
            .map(|(_, c)| c);
        let Some(conn) = oldest else {
            return false;
        };
        conn.closing.store(true, Ordering::SeqCst);
        conn.close.notify_one();
        true
    }

    /// A place for one more connection: at the cap, once the longest idle
    /// one has closed (or, if none is idle, once any ends).
    async fn room(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = self.free.clone().try_acquire_owned() {
            return Some(p);
        }
        if !self.close_longest_idle() {
            tracing::warn!(
                "serve: {} connections open, each with a request in progress ([serve] max_connections); accepting waits for one to end",
                self.max
            );
        }
        self.free.clone().acquire_owned().await.ok()
    }
}

/// Leaves the registry when its connection's task ends.
struct Registered(Arc<Conns>, u64);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

/// Marks its connection busy while a request is handled.
struct Busy(Arc<Conn>, Arc<Conns>);

impl Busy {
    fn enter(conn: &Arc<Conn>, conns: &Arc<Conns>) -> Busy {
        conn.busy.fetch_add(1, Ordering::SeqCst);
        conn.active_at.store(conns.now(), Ordering::SeqCst);
        Busy(Arc::clone(conn), Arc::clone(conns))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.active_at.store(self.1.now(), Ordering::SeqCst);
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How the server is stopping: connections finish their request and close
/// (`Graceful`), or are dropped where they are (`Now`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stop {
    Running,
    Graceful,
    Now,
}

/// Serves until `shutdown` completes; then stops accepting (the listener is
/// closed, so new connections are refused), closes the connections without
/// a request in progress, and lets the requests in flight finish (a `202`
/// among them means fsynced), for at most `grace`; then drops the rest.
///
/// Picking the connection to close scans the open ones: at 10,000 that is
/// some microseconds per connection accepted at the cap, and none below it.
pub async fn accept_loop(
    mut listener: TcpListener,
    mut how: Accepting,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let conns = Arc::new(Conns {
        open: Mutex::new(HashMap::new()),
        free: Arc::new(Semaphore::new(how.max_connections)),
        max: how.max_connections,
        epoch: Instant::now(),
    });
    let (stop, stopping) = watch::channel(Stop::Running);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(how.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next_id = 0u64;
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::warn!("serve: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(new) = how.rebind.recv() => {
                listener = new;
                continue;
            }
            () = &mut shutdown => break,
        };
        let permit = tokio::select! {
            permit = conns.room() => permit,
            () = &mut shutdown => break,
        };
        let Some(permit) = permit else { break };
        next_id += 1;
        let conn = Arc::new(Conn {
            busy: AtomicUsize::new(0),
            active_at: AtomicU64::new(conns.now()),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        conns.lock().insert(next_id, Arc::clone(&conn));
        let registered = Registered(Arc::clone(&conns), next_id);
        let service = {
            let inner = hyper_util::service::TowerToHyperService::new(how.router.clone());
            let (conn, conns) = (Arc::clone(&conn), Arc::clone(&conns));
            hyper::service::service_fn(move |request| {
                let busy = Busy::enter(&conn, &conns);
                let response = hyper::service::Service::call(&inner, request);
                async move {
                    // Busy until hyper has written the body and dropped it.
                    let response = response.await?;
                    Ok::<_, std::convert::Infallible>(response.map(|body| {
                        use http_body_util::BodyExt;
                        axum::body::Body::new(body.map_frame(move |frame| {
                            let _busy = &busy;
                            frame
                        }))
                    }))
                }
            })
        };
        let http = builder.serve_connection(TokioIo::new(stream), service);
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _registered = registered;
            let mut http = std::pin::pin!(http);
            let mut closing = false;
            loop {
                tokio::select! {
                    ended = http.as_mut() => {
                        if let Err(e) = ended {
                            tracing::debug!("serve: connection ended: {e}");
                        }
                        return;
                    }
                    // Without a request in progress (idle, or a head still
                    // arriving, which hyper's graceful shutdown would wait
                    // for) the connection is dropped; with one, it ends
                    // after its response.
                    () = conn.close.notified(), if !closing => {
                        tracing::debug!("serve: closing an idle connection to make room");
                        if conn.busy.load(Ordering::SeqCst) == 0 {
                            return;
                        }
                        closing = true;
                        http.as_mut().graceful_shutdown();
                    }
                    changed = stopping.changed() => {
                        let now = *stopping.borrow_and_update();
                        if changed.is_err() || now == Stop::Now || conn.busy.load(Ordering::SeqCst) == 0 {
                            return;
                        }
                        if !closing {
                            closing = true;
                            http.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop.send(Stop::Graceful);
    // Every permit back: every connection has ended.
    let max = u32::try_from(how.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, conns.free.acquire_many(max))
        .await
        .is_err()
    {
        tracing::warn!(
            "serve: requests still in flight after {}; closing them",
            crate::config::duration_text(grace)
        );
        let _ = stop.send(Stop::Now);
    }
}

/// Why a batch body is not a list of events.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchRefused {
    /// Not JSON (serde_json's message).
    Json(String),
    /// JSON, but not an array.
    NotArray,
    /// More than the cap's elements (counting stopped there).
    TooLong,
}

/// The bytes of each element of the JSON array `body`, at most `max` of
/// them. No element is parsed into a value: each is skipped over and kept as
/// a slice, for [`crate::intake::Intake::admit`] to check (and size) on its own.
pub fn batch_items(body: &[u8], max: usize) -> Result<Vec<&[u8]>, BatchRefused> {
    use serde::Deserializer as _;
    use serde::de::{Error as _, IgnoredAny, SeqAccess, Visitor};
    use serde_json::value::RawValue;

    struct Items<'c> {
        max: usize,
        over: &'c std::cell::Cell<bool>,
    }
    impl<'de> Visitor<'de> for Items<'_> {
        type Value = Vec<&'de RawValue>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of events")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<&'de RawValue>()? {
                if items.len() == self.max {
                    self.over.set(true);
                    return Err(A::Error::custom("too many events"));
                }
                items.push(item);
            }
            Ok(items)
        }
    }

    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
        return match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => Err(BatchRefused::NotArray),
            Err(e) => Err(BatchRefused::Json(e.to_string())),
        };
    }
    let over = std::cell::Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let items = de
        .deserialize_seq(Items { max, over: &over })
        .and_then(|items| de.end().map(|()| items));
    match items {
        Ok(items) => Ok(items.into_iter().map(|r| r.get().as_bytes()).collect()),
        Err(_) if over.get() => Err(BatchRefused::TooLong),
        Err(e) => Err(BatchRefused::Json(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_connection_cap_is_half_the_open_file_limit() {
        assert_eq!(default_max_connections(Some(1024)), 512);
        assert_eq!(default_max_connections(Some(20_000)), 10_000);
        assert_eq!(default_max_connections(Some(1 << 20)), 10_000);
        assert_eq!(default_max_connections(Some(8)), 16);
        assert_eq!(default_max_connections(None), 10_000);
    }

    #[test]
    fn a_batch_is_split_into_its_elements_bytes() {
        let body = br#" [ {"a": [1, 2]} , 3,"x" ] "#;
        assert_eq!(
            batch_items(body, 3).unwrap(),
            [&br#"{"a": [1, 2]}"#[..], b"3", br#""x""#]
        );
        assert_eq!(batch_items(b"[]", 3).unwrap(), Vec::<&[u8]>::new());
        assert_eq!(batch_items(b"[1,2,3,4]", 3), Err(BatchRefused::TooLong));
        assert_eq!(batch_items(br#"{"a":1}"#, 3), Err(BatchRefused::NotArray));
        assert!(matches!(batch_items(b"[1,", 3), Err(BatchRefused::Json(_))));
        assert!(matches!(
            batch_items(b"[1] x", 3),
            Err(BatchRefused::Json(_))
        ));
        assert!(matches!(
            batch_items(b"nope", 3),
            Err(BatchRefused::Json(_))
        ));
    }
}
