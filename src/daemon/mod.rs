//! `autod run`: the long-running side (SPEC §4b, §5, §6).
//!
//! Four intakes feed one engine:
//!
//! - `inbox.rs`: files renamed into `.autod/inbox/` (by `autod send`, by hand, or
//!   by the two below) are claimed into `processing/`, validated, delivered and
//!   removed once every pair has an outcome; `processing/` is recovered at start;
//! - `watch.rs`: folder changes become events, handed to the queue;
//! - `schedule.rs`: cron fires become events, handed to the queue;
//! - `retry.rs`: dead letters in state `waiting` are retried when due;
//! - `queue.rs`: with `[queue] backend = "nats"`, each handler's JetStream consumer.
//!
//! Beside them, `archive.rs` applies the archive's retention at start and daily.
//!
//! Watches, schedules and follow-ups go through the queue so that an event
//! they produce is durable before anything runs, exactly like one from
//! `autod send`: the inbox, or with `[queue] backend = "nats"` the stream
//! (published through the daemon's one [`Producer`]), from which any host's
//! worker takes it.
//!
//! Nothing here polls: intake waits on inotify, schedules and retries sleep until
//! their next due time. SIGINT/SIGTERM stop intake, give running handlers
//! `--grace` to finish, then stop their process groups and leave their events in
//! `processing/` for the next start. SIGHUP reloads autod.toml; a bad config
//! keeps the old one.

mod archive;
mod inbox;
mod queue;
mod recovery;
mod retry;
pub(crate) mod schedule;
mod watch;

// The watch payload's shape, for `autod lint` to check schemas against.
pub(crate) use watch::{Kind as WatchKind, kinds as watch_kinds, payload as watch_payload};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, watch as flag};

use crate::chain::{Place, Sink};
use crate::config::{Config, WatchConfig};
use crate::engine::Engine;
use crate::exit::Code;
use crate::intake::Intake;
use crate::limits::Limits;
use crate::log::RunLog;
use crate::project::Project;
use crate::queue::Producer;
use crate::state::daemon_lock::{Acquire, DaemonLock};
use crate::state::{StateDir, atomic};

pub struct Options {
    pub jobs: usize,
    /// How long running handlers get to finish after SIGINT/SIGTERM.
    pub grace: Duration,
}

/// What a config reload replaces as a whole.
struct Generation {
    config: Config,
    engine: Arc<Engine>,
    /// The same, for events `autod replay` queued: their lines say `replay`.
    replay_engine: Arc<Engine>,
    /// Shared with the engine, which validates follow-ups with it.
    intake: Arc<Mutex<Intake>>,
}

/// Shared by every task of the daemon.
struct Daemon {
    root: std::path::PathBuf,
    state: StateDir,
    jobs: usize,
    current: RwLock<Arc<Generation>>,
    /// `true` once intake must stop (SIGINT/SIGTERM).
    stopping: flag::Sender<bool>,
    /// `true` once running handlers must be stopped (after the grace period).
    killing: flag::Sender<bool>,
    inbox_wake: Notify,
    /// Set when a claim pass left a file behind for a name still in processing/.
    inbox_busy_names: AtomicBool,
    retry_wake: Notify,
    in_flight: Arc<InFlight>,
    /// Claimed events without an outcome yet, and when to try them again.
    recovery: recovery::Recovery,
    /// (handler, eventId) pairs whose message the NATS worker holds: their
    /// dead letters are retried by redelivery, not by the retry pass.
    queue_pairs: Mutex<std::collections::HashSet<(String, String)>>,
    /// Where watches, schedules, follow-ups and `[serve]` hand their events:
    /// opened once at start (`[queue]` is not re-read by SIGHUP).
    producer: Producer,
}

impl Daemon {
    fn generation(&self) -> Arc<Generation> {
        Arc::clone(&self.current.read().expect("generation lock"))
    }

    fn stopping(&self) -> flag::Receiver<bool> {
        self.stopping.subscribe()
    }

    fn build(&self, config: Config) -> Result<Generation> {
        let limits = Arc::clone(self.generation().engine.limits());
        build(
            &self.root,
            &self.state,
            &self.producer,
            (self.jobs, limits),
            &self.stopping,
            &self.killing,
            config,
        )
    }
}

fn build(
    root: &std::path::Path,
    state: &StateDir,
    producer: &Producer,
    (jobs, limits): (usize, Arc<Limits>),
    stopping: &flag::Sender<bool>,
    killing: &flag::Sender<bool>,
    config: Config,
) -> Result<Generation> {
    let intake = Arc::new(Mutex::new(Intake::new(root, &config)?));
    let log =
        RunLog::new(state.log_dir(), config.log.clone()).with_host(crate::host::for_log(&config)?);
    // Follow-ups go through the queue (the inbox, or the stream), and from
    // there through the same validation and delivery as every other event.
    let engine = |place: Place| {
        let sink = Sink::new(Arc::clone(&intake), state.clone(), place).through(producer.clone());
        Engine::new(root.to_owned(), &config, state.clone(), log.clone(), jobs)
            .with_chain(Arc::new(sink))
            .with_limits(Arc::clone(&limits), &config)
            .with_shutdown(killing.subscribe())
            .with_stop_starting(stopping.subscribe())
    };
    // Replayed events (queued by `autod replay`) get an engine of their own
    // that marks its run-log lines; both share the same limits.
    let replay_engine = engine(Place::InboxReplay).for_replay();
    let engine = engine(Place::Inbox);
    Ok(Generation {
        config,
        engine: Arc::new(engine),
        replay_engine: Arc::new(replay_engine),
        intake,
    })
}

/// Resolves once the flag is `true`.
async fn stopped(flag: &mut flag::Receiver<bool>) {
    let _ = flag.wait_for(|s| *s).await;
}

/// Counts deliveries in progress, so shutdown can wait for them.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(Arc::clone(self))
    }

    async fn wait_idle(&self) {
        loop {
            let idle = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

pub fn run(project: Project, options: Options) -> Result<Code> {
    // A daemon killed a moment ago can hold the lock a little longer through a
    // child caught between fork and exec: give it a second before refusing.
    let mut acquired = project.state.daemon_lock()?;
    for _ in 0..10 {
        if matches!(acquired, Acquire::Acquired(_)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        acquired = project.state.daemon_lock()?;
    }
    let lock = match acquired {
        Acquire::Acquired(lock) => lock,
        Acquire::Held(info) => {
            let who = info.map_or_else(
                || "another process".to_owned(),
                |i| format!("autod run pid {} (since {})", i.pid, i.started_at),
            );
            bail!(
                "{who} already runs for {}; stop it first, or give this one another --root",
                project.root.display()
            );
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(project, options, &lock))
}

async fn run_async(project: Project, options: Options, lock: &DaemonLock) -> Result<Code> {
    crate::metrics::consumer_in_process();
    let (stopping, _) = flag::channel(false);
    let (killing, _) = flag::channel(false);
    // One for the whole daemon, shared by `[serve]`, watches, schedules and
    // follow-ups. A NATS server that is down does not stop the start: the
    // producer keeps trying, and each publish until then fails (a source
    // keeps its event and tries again; `[serve]` answers 503).
    let producer = Producer::open(
        &project.state,
        &project.config.queue,
        "nothing is published or pulled",
    )
    .await;
    // `[serve]`: the HTTP intake, bound before the announcement (a port in
    // use is a start failure, exit 2). A SIGHUP re-reads its tokens and
    // routes and moves it to a changed `listen` (`serve::Reload`).
    let server = match &project.config.serve {
        Some(cfg) => {
            let addr = cfg.check_listen(&cfg.listen).map_err(anyhow::Error::msg)?;
            Some(
                crate::serve::Server::bind(
                    &project.root,
                    &project.config,
                    &project.state,
                    producer.clone(),
                    addr,
                )
                .await?,
            )
        }
        None => None,
    };
    let limits = Arc::new(Limits::new(options.jobs, &project.config));
    let first = build(
        &project.root,
        &project.state,
        &producer,
        (options.jobs, limits),
        &stopping,
        &killing,
        project.config,
    )?;
    let daemon = Arc::new(Daemon {
        root: project.root.clone(),
        state: project.state.clone(),
        jobs: options.jobs,
        current: RwLock::new(Arc::new(first)),
        stopping,
        killing,
        inbox_wake: Notify::new(),
        inbox_busy_names: AtomicBool::new(false),
        retry_wake: Notify::new(),
        in_flight: Arc::default(),
        recovery: recovery::Recovery::default(),
        queue_pairs: Mutex::default(),
        producer,
    });

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;

    let _dead_watcher = retry::watch_dead(&daemon)?;
    let _schema_watcher = inbox::watch_schemas(&daemon);
    let inbox_task = tokio::spawn(inbox::run(Arc::clone(&daemon)));
    // With `[queue] backend = "nats"` the stream is pulled too (and watches,
    // schedules, follow-ups and `[serve]` publish to it); the inbox still
    // takes what is dropped in by hand.
    let mut worker = match &daemon.generation().config.queue {
        crate::config::QueueConfig::Nats(c) => Some(queue::Worker::start(&daemon, c, true)),
        crate::config::QueueConfig::Folder => None,
    };
    let retry_task = tokio::spawn(retry::run(Arc::clone(&daemon)));
    let archive_task = tokio::spawn(archive::run(Arc::clone(&daemon)));
    // Before the announcement: once daemon.json exists, every watch is watching.
    let mut sources = Sources::start(&daemon);
    let swept = atomic::sweep_temp_files(daemon.state.path(), &daemon.state.inbox_dir());
    if swept > 0 {
        tracing::info!("removed {swept} temp files left by writers that were killed mid-write");
    }
    let (serve_stop, serve_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut serve_reload = None;
    let serve_task = match server {
        Some(server) => {
            let addr = server.local_addr()?;
            serve_reload = Some(server.reload());
            let shutdown = async move {
                let _ = serve_stopped.await;
            };
            let task = tokio::spawn(server.run(shutdown, options.grace));
            // The same readiness line as `autod serve`.
            eprintln!("autod serve: listening on http://{addr}");
            Some(task)
        }
        None => None,
    };
    daemon.state.daemon_announce(lock)?;
    let g = daemon.generation();
    tracing::info!(
        "autod run: pid {}, root {}, {} handlers, {} watches, {} schedules",
        std::process::id(),
        daemon.root.display(),
        g.config.handlers.len(),
        g.config.watches.len(),
        g.config.schedules.len()
    );
    drop(g);

    let signal_name = loop {
        tokio::select! {
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
            _ = hangup.recv() => {
                match Config::load(&daemon.root).map_err(anyhow::Error::from).and_then(|c| daemon.build(c)) {
                    Ok(generation) => {
                        if let Some(reload) = &serve_reload {
                            reload.apply(&daemon.root, &generation.config).await;
                        } else if generation.config.serve.is_some() {
                            tracing::warn!("SIGHUP: [serve] is new in autod.toml; the server starts at the next start");
                        }
                        sources.retire(&generation.config).await;
                        *daemon.current.write().expect("generation lock") = Arc::new(generation);
                        sources.start_missing(&daemon);
                        reload_worker(&daemon, &mut worker).await;
                        // Held events may be deliverable under the new config.
                        daemon.recovery.now();
                        daemon.inbox_wake.notify_one();
                        daemon.retry_wake.notify_one();
                        tracing::info!("SIGHUP: reloaded autod.toml");
                    }
                    Err(e) => tracing::error!("SIGHUP: kept the old config; the new one is invalid: {e:#}"),
                }
            }
        }
    };

    tracing::info!(
        "{signal_name}: stopping intake; running handlers get {} to finish",
        humantime::format_duration(options.grace)
    );
    // HTTP first: no new requests; those in flight finish their inbox writes.
    let _ = serve_stop.send(());
    if let Some(task) = serve_task {
        let _ = task.await;
    }
    let _ = daemon.stopping.send(true);
    // Changes still waiting out their debounce go to the inbox, for the next start.
    sources.stop().await;
    if tokio::time::timeout(options.grace, daemon.in_flight.wait_idle())
        .await
        .is_err()
    {
        tracing::warn!(
            "grace period over: stopping the handlers still running; their events run again at the next start"
        );
        let _ = daemon.killing.send(true);
        daemon.in_flight.wait_idle().await;
    }
    if let Some(w) = worker {
        w.stop().await;
    }
    let _ = inbox_task.await;
    let _ = retry_task.await;
    let _ = archive_task.await;
    tracing::info!("stopped");
    Ok(Code::Success)
}

/// After a reload: a worker for the new set of handlers, if it changed. A
/// changed `[queue]` itself (backend, servers, stream, credentials) is not
/// taken over by a running daemon: the producer and worker of the old one
/// stay, and a warning says to restart.
async fn reload_worker(daemon: &Arc<Daemon>, worker: &mut Option<queue::Worker>) {
    let g = daemon.generation();
    let running = worker.as_ref().map(|w| &w.config);
    let wanted = match &g.config.queue {
        crate::config::QueueConfig::Nats(c) => Some(c),
        crate::config::QueueConfig::Folder => None,
    };
    if running != wanted {
        tracing::warn!(
            "SIGHUP: [queue] changed in autod.toml; a running autod keeps the queue it started with: restart `autod run` to use the new one"
        );
        return;
    }
    if let Some(w) = worker.take_if(|w| w.differs(&g.config)) {
        let config = w.config.clone();
        w.stop().await;
        *worker = Some(queue::Worker::start(daemon, &config, false));
        tracing::info!(
            "SIGHUP: the handlers changed; pulling for the new set (a new handler needs its consumer: `autod queue init`)"
        );
    }
}

/// The watches and schedules of the current config.
///
/// A reload keeps a watch whose config is unchanged running untouched; one that
/// changed or went away queues its pending changes before it ends. Schedules are
/// restarted (their last fire is on disk, so none is lost or repeated).
struct Sources {
    /// Every watch of the config, with its running watch unless it failed to start.
    watches: Vec<(WatchConfig, Option<watch::Running>)>,
    schedules: Vec<tokio::task::JoinHandle<()>>,
}

impl Sources {
    /// Starts every watch (registered and scanned when this returns) and schedule.
    fn start(daemon: &Arc<Daemon>) -> Sources {
        let mut sources = Sources {
            watches: Vec::new(),
            schedules: Vec::new(),
        };
        sources.start_missing(daemon);
        sources
    }

    /// Before `next` takes over: ends the schedules, and the watches it changes
    /// or drops, each after queueing its pending changes under the old config.
    async fn retire(&mut self, next: &Config) {
        for t in self.schedules.drain(..) {
            t.abort();
        }
        let (keep, retire): (Vec<_>, Vec<_>) = self.watches.drain(..).partition(|(w, running)| {
            running.as_ref().is_some_and(|r| !r.is_finished()) && next.watches.contains(w)
        });
        self.watches = keep;
        for running in retire.into_iter().filter_map(|(_, r)| r) {
            running.stop().await;
        }
    }

    /// Starts the watches of the current config not running yet (a watch that
    /// failed before is tried again), and every schedule.
    fn start_missing(&mut self, daemon: &Arc<Daemon>) {
        let g = daemon.generation();
        for w in &g.config.watches {
            if self.watches.iter().any(|(c, _)| c == w) {
                continue;
            }
            let running = watch::start(daemon, w)
                .inspect_err(|e| {
                    tracing::error!(
                        "watch:{}: {e}; this watch is off until a reload (fix it, then send SIGHUP)",
                        w.name
                    );
                })
                .ok();
            self.watches.push((w.clone(), running));
        }
        for s in &g.config.schedules {
            self.schedules
                .push(tokio::spawn(schedule::run(Arc::clone(daemon), s.clone())));
        }
    }

    /// Ends everything; every watch queues its pending changes first.
    async fn stop(self) {
        for t in self.schedules {
            t.abort();
        }
        for running in self.watches.into_iter().filter_map(|(_, r)| r) {
            running.stop().await;
        }
    }
}

/// Whether a notify event reports a change. Besides changes, notify reports
/// opens and read-only closes (inotify's IN_OPEN, IN_CLOSE_NOWRITE): waking on
/// those, the inbox consumer woke itself by listing the inbox (a busy loop),
/// and a handler that merely read a watched file caused a `modify` event.
fn is_change(kind: notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Admits an event autod built itself (a watch change, a schedule fire) and
/// hands it to the queue. A refusal is logged; the source goes on. `false`
/// when the event could not be stored (disk full, the NATS server down): the
/// source keeps it and tries again, since nothing has accepted it yet.
async fn submit(
    daemon: &Daemon,
    obj: serde_json::Map<String, serde_json::Value>,
    origin: &str,
) -> bool {
    submit_about(daemon, obj, origin, None).await
}

/// [`submit`] of an event about a file (a watched one, relative to its
/// folder): a rejection names it, on stderr and in the run log.
///
/// Async, because a publish is: its callers (a watch's task, a schedule's)
/// run on the daemon's runtime, which is current-thread, so blocking here
/// (`block_in_place` is refused there, and `block_on` inside it panics)
/// would stop every intake until the ack came, or never return at all, since
/// the connection that must read the ack is driven by this same thread. The
/// folder backend's write has no await point: it is the same synchronous
/// fsync'd write as before.
async fn submit_about(
    daemon: &Daemon,
    obj: serde_json::Map<String, serde_json::Value>,
    origin: &str,
    file: Option<&str>,
) -> bool {
    let event_type = obj
        .get("eventType")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    let g = daemon.generation();
    let admitted = g.intake.lock().expect("intake lock").admit_object(obj);
    match admitted {
        Ok(a) => match daemon.producer.put(&a.event).await {
            Ok(_) => {
                tracing::debug!("{origin}: queued {} {}", a.event.event_type(), a.event.id());
                true
            }
            Err(e) => {
                tracing::error!(
                    "{origin}: could not queue {}: {e}; trying again shortly",
                    a.event.id()
                );
                false
            }
        },
        Err(invalid) => {
            let label = g
                .intake
                .lock()
                .expect("intake lock")
                .metric_type(event_type.as_deref())
                .to_owned();
            crate::metrics::event_rejected(&label, crate::metrics::reason(&invalid));
            let violations = crate::intake::refusal_violations(&invalid);
            let text: Vec<String> = violations.iter().map(ToString::to_string).collect();
            let about = file.map(|f| format!(" {f}:")).unwrap_or_default();
            tracing::error!("{origin}:{about} event rejected: {}", text.join("; "));
            let mut line = crate::log::RunLine::new("-", "-", crate::log::RunResult::Rejected);
            line.event_type = event_type;
            line.input = Some(origin.to_owned());
            line.file = file.map(str::to_owned);
            line.error = text.into_iter().next();
            g.engine.log().record(&line);
            true
        }
    }
}

/// Keeps events that share a `key` in order: each waits for the one before.
#[derive(Default)]
struct KeyChains {
    last: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
}

impl KeyChains {
    /// Spawns `work`, after the previous task with the same key, if any.
    fn spawn<F>(&self, key: Option<&str>, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let Some(key) = key else {
            tokio::spawn(work);
            return;
        };
        let mut last = self.last.lock().expect("key chains lock");
        last.retain(|_, h| !h.is_finished());
        let previous = last.remove(key);
        let handle = tokio::spawn(async move {
            if let Some(p) = previous {
                let _ = p.await;
            }
            work.await;
        });
        last.insert(key.to_owned(), handle);
    }
}
