//! Delivering an accepted event to its handlers and recording every outcome.
//!
//! This is the one place where a pair's life is decided, whoever asked for it
//! (`dispatch`, `retry`, later the daemon and the queue):
//!
//! 1. wait for a slot (`--jobs`, then the handler's `concurrency`);
//! 2. own the pair (an flock shared by every autod process on the root);
//! 3. skip it if it already succeeded (unless forced), and leave it alone if
//!    autod gave up on it (unless a person asks, see [`Mode`]);
//! 4. run the handler;
//! 5. record: success → done marker, dead letter removed; failure → dead letter
//!    (waiting with backoff, exhausted, or permanent on exit 65); a run-log line
//!    either way.
//!
//! Each pair succeeds or fails on its own: one failing handler never holds back
//! another.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::chain;
use crate::config::{Config, Handler, HandlerCommand};
use crate::event::Event;
use crate::limits::Limits;
use crate::log::{RunLine, RunLog, RunResult};
use crate::runner::{self, RunOutput, RunSpec, Termination};
use crate::state::dead::{DeadLetter, DeadState};
use crate::state::{self, StateDir};
use crate::time;

/// The exit code a handler uses to say "this event can never succeed".
pub const EXIT_PERMANENT: i32 = 65;

/// Who is asking for a pair to run, which decides what may run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Automatic delivery (the daemon's intake, recovery and retries): a pair
    /// that was given up on (exhausted, permanent) stays given up.
    Automatic,
    /// A person asked (`dispatch`, `retry`): a given-up pair runs again.
    Requested,
    /// A person asked to rerun even pairs that succeeded (`dispatch --force`).
    Forced,
}

impl From<bool> for Mode {
    /// `false` is automatic delivery, `true` a forced rerun.
    fn from(force: bool) -> Mode {
        if force { Mode::Forced } else { Mode::Automatic }
    }
}

/// What happened to one (event, handler) pair.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PairOutcome {
    pub handler: String,
    pub result: RunResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The run was stopped by a shutdown and nothing was recorded.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// autod could not write the pair's outcome (done marker or dead letter):
    /// it has no outcome, and its event must stay where recovery finds it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unrecorded: bool,
    /// Set when the pair is (still) dead-lettered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead: Option<DeadState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The follow-ups the run emitted, accepted and durable (their eventIds
    /// in JSON), for the caller to deliver.
    #[serde(
        rename = "followUps",
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "follow_up_ids"
    )]
    pub follow_ups: Vec<chain::FollowUp>,
    /// Follow-ups not accepted because the chain was too deep: rejections.
    #[serde(skip_serializing_if = "is_zero")]
    pub cut_follow_ups: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn follow_up_ids<S: serde::Serializer>(f: &[chain::FollowUp], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(f.iter().map(|f| f.event.id()))
}

impl PairOutcome {
    fn new(handler: &str, result: RunResult) -> PairOutcome {
        PairOutcome {
            handler: handler.to_owned(),
            result,
            attempt: None,
            duration_ms: None,
            interrupted: false,
            unrecorded: false,
            dead: None,
            next_attempt_at: None,
            error: None,
            follow_ups: Vec::new(),
            cut_follow_ups: 0,
        }
    }

    pub fn failed(&self) -> bool {
        !matches!(self.result, RunResult::Ok | RunResult::Skipped)
    }

    /// Whether the pair's outcome is on disk (done marker or dead letter), so
    /// its event may be let go. An interrupted or unrecorded pair has no
    /// outcome: it runs again when its event is delivered again.
    pub fn recorded(&self) -> bool {
        !self.interrupted && !self.unrecorded
    }
}

/// Every follow-up the pairs of one event emitted, for the caller to deliver.
pub fn follow_ups_of(outcomes: &[PairOutcome]) -> Vec<chain::FollowUp> {
    outcomes
        .iter()
        .flat_map(|o| o.follow_ups.iter().cloned())
        .collect()
}

/// The handlers of `outcomes` whose outcome autod could not write, joined for
/// a message; `None` when every outcome was written.
pub fn unrecorded(outcomes: &[PairOutcome]) -> Option<String> {
    let names: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.unrecorded)
        .map(|o| o.handler.as_str())
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

/// Shared by every pair of one process.
pub struct Engine {
    root: PathBuf,
    state: StateDir,
    log: RunLog,
    handlers: HashMap<String, Arc<Handler>>,
    limits: Arc<Limits>,
    shutdown: Option<watch::Receiver<bool>>,
    stop_starting: Option<watch::Receiver<bool>>,
    /// Where successful runs' follow-ups go; without one they are only kept
    /// in their AUTOD_EMIT file, with a warning.
    chain: Option<Arc<chain::Sink>>,
    max_follow_ups: usize,
    max_event_bytes: u64,
    /// `[notify] on_dead`: the eventType announcing a pair given up.
    on_dead: Option<String>,
    /// Every run of this engine is a replay (`autod replay`), and its log
    /// lines say so.
    replay: bool,
}

impl Engine {
    pub fn new(
        root: PathBuf,
        config: &Config,
        state: StateDir,
        log: RunLog,
        jobs: usize,
    ) -> Engine {
        let handlers = config
            .handlers
            .iter()
            .map(|h| (h.name.clone(), Arc::new(h.clone())))
            .collect();
        Engine {
            root,
            state,
            log,
            handlers,
            limits: Arc::new(Limits::new(jobs, config)),
            shutdown: None,
            stop_starting: None,
            chain: None,
            max_follow_ups: config.chaining.max_follow_ups,
            max_event_bytes: config.validation.max_event_bytes,
            on_dead: config.notify.on_dead.clone(),
            replay: false,
        }
    }

    /// The engine of `autod replay`: its run-log lines carry `replay: true`,
    /// follow-ups' runs included (they are part of the replay).
    pub fn for_replay(mut self) -> Engine {
        self.replay = true;
        self
    }

    /// Successful runs' follow-ups are validated and handed to `sink`.
    pub fn with_chain(mut self, sink: Arc<chain::Sink>) -> Engine {
        self.chain = Some(sink);
        self
    }

    pub fn chain(&self) -> Option<&Arc<chain::Sink>> {
        self.chain.as_ref()
    }

    /// Shares `limits` with the engines of earlier and later configs (the
    /// daemon builds one per reload), after fitting them to this config: runs
    /// that an older engine started still count against them.
    pub fn with_limits(mut self, limits: Arc<Limits>, config: &Config) -> Engine {
        limits.reconfigure(config);
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    /// Runs in flight are stopped when `shutdown` turns true, and recorded as
    /// nothing at all: their events stay where recovery finds them.
    pub fn with_shutdown(mut self, shutdown: watch::Receiver<bool>) -> Engine {
        self.shutdown = Some(shutdown);
        self
    }

    /// Once `stop` turns true, a pair that has not started yet (waiting for a
    /// job slot, say) does not start: it ends interrupted, recording nothing,
    /// and its event stays where recovery finds it.
    pub fn with_stop_starting(mut self, stop: watch::Receiver<bool>) -> Engine {
        self.stop_starting = Some(stop);
        self
    }

    pub fn log(&self) -> &RunLog {
        &self.log
    }

    pub fn handler(&self, name: &str) -> Option<&Arc<Handler>> {
        self.handlers.get(name)
    }

    /// Runs every named handler for the event, concurrently within the limits.
    pub async fn deliver(
        self: &Arc<Self>,
        event: Arc<Event>,
        handlers: Vec<String>,
        mode: impl Into<Mode>,
    ) -> Vec<PairOutcome> {
        let mode = mode.into();
        let tasks: Vec<_> = handlers
            .into_iter()
            .map(|name| {
                let engine = Arc::clone(self);
                let event = Arc::clone(&event);
                let task = name.clone();
                (
                    tokio::spawn(async move { engine.run_pair(&event, &task, mode).await }),
                    name,
                )
            })
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for (t, name) in tasks {
            outcomes.push(match t.await {
                Ok(outcome) => outcome,
                Err(e) => self.pair_panicked(&event, &name, e).await,
            });
        }
        outcomes
    }

    /// Delivers follow-ups that were put in `processing/` (by this engine's
    /// runs, [`chain::Place::Processing`]) and, in turn, theirs, until the
    /// chain ends: `dispatch` and `retry` run a whole chain in one invocation.
    /// Each child's file goes once all its pairs have an outcome; one without
    /// stays for the next `autod run` to recover. `report` sees every child.
    pub async fn deliver_follow_ups(
        self: &Arc<Self>,
        first: Vec<chain::FollowUp>,
        mut report: impl FnMut(chain::FollowUp, Vec<PairOutcome>),
    ) {
        let mut queue: std::collections::VecDeque<chain::FollowUp> = first.into();
        while let Some(child) = queue.pop_front() {
            let event = Arc::new(child.event.clone());
            let outcomes = self
                .deliver(Arc::clone(&event), child.handlers.clone(), Mode::Requested)
                .await;
            queue.extend(follow_ups_of(&outcomes));
            if outcomes.iter().all(PairOutcome::recorded)
                && let Err(e) = self.state.processing_forget(event.id())
            {
                tracing::warn!("{e}");
            }
            report(child, outcomes);
        }
    }

    /// A bug in autod ended a pair's task. That is a failure, never a success:
    /// the pair gets a waiting dead letter (so it is retried, and `autod dead`
    /// shows it) and a run-log line asking for a bug report.
    async fn pair_panicked(
        &self,
        event: &Arc<Event>,
        handler_name: &str,
        e: tokio::task::JoinError,
    ) -> PairOutcome {
        let why = match e.try_into_panic() {
            Ok(payload) => payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned()),
            Err(e) => e.to_string(),
        };
        let error = format!(
            "internal error in autod ({why}): this is a bug, please report it with this line and the output of `autod dead show {}`; the pair was not recorded as done and is retried",
            event.id()
        );
        let mut outcome = PairOutcome::new(handler_name, RunResult::Failed);
        outcome.error = Some(error.clone());
        // Under the pair's lock, as any record: the task's own lock went with it.
        let state = self.state.clone();
        let (id, name) = (event.id().to_owned(), handler_name.to_owned());
        let lock = tokio::task::spawn_blocking(move || state.lock_pair(&id, &name)).await;
        let lock = match lock {
            Ok(Ok(lock)) => Some(lock),
            _ => None,
        };
        let previous = self.state.dead_get(handler_name, event.id()).ok().flatten();
        let attempt = previous
            .as_ref()
            .map_or(1, |p| p.attempts.saturating_add(1));
        outcome.attempt = Some(attempt);
        let mut line = self.line(event, handler_name, RunResult::Failed);
        line.attempt = Some(attempt);
        line.error = Some(error.clone());
        if let Some(handler) = self.handlers.get(handler_name)
            && !lock.as_ref().is_some_and(|l| l.succeeded())
        {
            let now = time::now_rfc3339();
            let record = DeadLetter {
                version: state::dead::RECORD_VERSION,
                event_id: event.id().to_owned(),
                handler: handler_name.to_owned(),
                event_type: event.event_type().to_owned(),
                state: DeadState::Waiting,
                attempts: attempt,
                max_attempts: handler.retry.max_attempts,
                first_failed_at: previous.map_or_else(|| now.clone(), |p| p.first_failed_at),
                last_failed_at: now,
                last_result: "failed".into(),
                last_exit_code: None,
                last_signal: None,
                last_error: Some(error),
                stderr_tail: String::new(),
                stdout_tail: String::new(),
                next_attempt_at: Some(next_attempt_at(handler, attempt)),
                event: event.as_value(),
            };
            match self.state.dead_put(&record) {
                Ok(()) => {
                    outcome.dead = Some(DeadState::Waiting);
                    outcome.next_attempt_at = record.next_attempt_at.clone();
                }
                // No dead letter, no outcome: the event stays where recovery
                // finds it, as for any outcome autod could not write.
                Err(e) => {
                    tracing::error!("{e}");
                    outcome.unrecorded = true;
                }
            }
        } else {
            outcome.unrecorded = !lock.as_ref().is_some_and(|l| l.succeeded());
        }
        self.log.record(&line);
        outcome
    }

    /// One pair, start to recorded finish.
    pub async fn run_pair(
        &self,
        event: &Event,
        handler_name: &str,
        mode: impl Into<Mode>,
    ) -> PairOutcome {
        let mode = mode.into();
        let Some(handler) = self.handlers.get(handler_name).cloned() else {
            let mut o = PairOutcome::new(handler_name, RunResult::Failed);
            o.error = Some(format!("handler {handler_name:?} is not in autod.toml"));
            return o;
        };
        let _slots = self.limits.acquire(handler_name).await;

        if self.stop_starting.as_ref().is_some_and(|s| *s.borrow()) {
            let mut o = PairOutcome::new(handler_name, RunResult::Interrupted);
            o.interrupted = true;
            o.error = Some("not started: autod is stopping".into());
            return o;
        }
        // A done marker, once there, stays: seeing it is enough to skip, and
        // saves creating a lock file for a pair that has nothing left to do.
        if mode != Mode::Forced && self.state.pair_succeeded(event.id(), handler_name) {
            return self.skipped(event, handler_name);
        }
        let lock = match self.own_pair(event, &handler).await {
            Ok(Some(l)) if !self.stop_starting.as_ref().is_some_and(|s| *s.borrow()) => l,
            Ok(_) => {
                let mut o = PairOutcome::new(handler_name, RunResult::Interrupted);
                o.interrupted = true;
                o.error = Some("not started: autod is stopping".into());
                return o;
            }
            Err(e) => return self.state_failure(event, handler_name, None, e),
        };
        if lock.succeeded() && mode != Mode::Forced {
            return self.skipped(event, handler_name);
        }
        let previous = match self.state.dead_get(handler_name, event.id()) {
            Ok(p) => p,
            Err(e) => return self.state_failure(event, handler_name, None, e),
        };
        if let Some(p) = &previous
            && p.state != DeadState::Waiting
            && mode == Mode::Automatic
        {
            // Redelivered (say, recovered after a crash) after autod gave up on
            // it: only a person may revive it, with `autod retry`.
            tracing::info!(
                "not running {handler_name} for {}: given up earlier ({}); `autod retry {} --handler {handler_name}` runs it again",
                event.id(),
                p.state.as_str(),
                event.id()
            );
            let mut o = PairOutcome::new(handler_name, RunResult::Dead);
            o.attempt = Some(p.attempts);
            o.dead = Some(p.state);
            return o;
        }
        let attempt = previous
            .as_ref()
            .map_or(1, |p| p.attempts.saturating_add(1));

        let output = match self.spec(event, &handler, attempt) {
            Ok(spec) => match self.start_recorded(&lock, spec, event, handler_name) {
                Ok(running) => {
                    let _in_flight = crate::metrics::run_started(handler_name);
                    running.finish().await
                }
                Err(failed) => failed,
            },
            Err(e) => return self.state_failure(event, handler_name, Some(attempt), e),
        };
        if let Err(e) = self.state.keep_output(
            event.id(),
            handler_name,
            attempt,
            &output.stdout_tail,
            &output.stderr_tail,
        ) {
            // Only the copy for `autod log --output` is lost; the outcome is
            // recorded as usual (the dead letter keeps its own tails).
            tracing::warn!(
                "could not keep the output of {handler_name} for {}: {e}",
                event.id()
            );
        }
        let mut outcome = PairOutcome::new(handler_name, RunResult::Ok);
        outcome.attempt = Some(attempt);
        outcome.duration_ms = Some(millis(&output));
        let mut line = self.line(event, handler_name, RunResult::Ok);
        line.attempt = Some(attempt);
        line.duration_ms = outcome.duration_ms;
        if output.leaked {
            tracing::warn!(
                "handler {handler_name} exited but left a background process holding its output open; autod stopped reading it"
            );
        }
        match &output.termination {
            Termination::Cancelled => {
                line.result = RunResult::Interrupted;
                line.error = Some(
                    "interrupted: autod was asked to stop and stopped the handler; nothing was recorded, so it runs again next time"
                        .into(),
                );
                self.log.record(&line);
                outcome.result = RunResult::Interrupted;
                outcome.interrupted = true;
                outcome.error = line.error;
                outcome
            }
            Termination::Exited(0) => {
                line.exit_code = Some(0);
                let emitted = match self.follow_ups(event, handler_name, attempt) {
                    Ok(emitted) => emitted,
                    // The handler did its work, but its follow-ups cannot be
                    // accepted: the pair fails and is retried, so that a fixed
                    // handler emits them again (under the same ids).
                    Err(e) => {
                        let failure = Failure {
                            previous,
                            output: &output,
                            error: Some(e.to_string()),
                            forced: (mode == Mode::Forced).then_some(&lock),
                        };
                        return self
                            .record_failure(event, &handler, attempt, failure, line, outcome)
                            .await;
                    }
                };
                // Durable before the parent's success: a crash in between
                // leaves the parent without an outcome, so it runs again and
                // emits the same children under the same ids. (With NATS,
                // durable is the stream's ack of each publish.)
                if let Some(sink) = &self.chain {
                    for child in &emitted.accepted {
                        if let Err(e) = sink.persist(&child.event).await {
                            return self.state_failure(event, handler_name, Some(attempt), e);
                        }
                    }
                }
                let detail = format!(
                    "{{\"ts\":\"{}\",\"attempt\":{attempt}}}\n",
                    time::now_rfc3339()
                );
                if let Err(e) = lock.mark_succeeded(detail.as_bytes()) {
                    // The handler did its work, but we could not record it: say so
                    // loudly; the dead letter (if any) stays, so nothing is lost.
                    return self.state_failure(event, handler_name, Some(attempt), e);
                }
                if let Err(e) = self.state.dead_remove(handler_name, event.id()) {
                    tracing::error!("{e}");
                }
                self.log.record(&line);
                self.record_cuts(event, handler_name, &emitted.cut);
                outcome.follow_ups = emitted.accepted;
                outcome.cut_follow_ups = emitted.cut.len();
                outcome
            }
            _ => {
                let failure = Failure {
                    previous,
                    output: &output,
                    error: None,
                    forced: (mode == Mode::Forced).then_some(&lock),
                };
                self.record_failure(event, &handler, attempt, failure, line, outcome)
                    .await
            }
        }
    }

    /// A failed run: its dead letter (waiting, exhausted or permanent) and
    /// its run-log lines.
    async fn record_failure(
        &self,
        event: &Event,
        handler: &Handler,
        attempt: u32,
        failure: Failure<'_>,
        mut line: RunLine,
        mut outcome: PairOutcome,
    ) -> PairOutcome {
        let handler_name = handler.name.as_str();
        let output = failure.output;
        let record = self.dead_letter(event, handler, attempt, &failure);
        line.result = if matches!(output.termination, Termination::TimedOut { .. }) {
            RunResult::Timeout
        } else {
            RunResult::Failed
        };
        line.exit_code = record.last_exit_code;
        line.signal = record.last_signal.clone();
        line.error = record
            .last_error
            .clone()
            .or_else(|| last_line(&output.stderr_tail));
        outcome.result = line.result;
        outcome.dead = Some(record.state);
        outcome.next_attempt_at = record.next_attempt_at.clone();
        outcome.error = line.error.clone();
        // The notice of a give-up is durable before the give-up is recorded,
        // like any follow-up: a crash in between runs the pair again, which
        // gives up again and names the same notice.
        if record.state != DeadState::Waiting {
            match self.dead_notice(event, &record).await {
                Ok(Some(notice)) => outcome.follow_ups.push(notice),
                Ok(None) => {}
                Err(e) => return self.state_failure(event, handler_name, Some(attempt), e),
            }
        }
        if let Err(e) = self.state.dead_put(&record) {
            // Not a dead letter, so not an outcome: the event stays
            // where it is (processing/, the caller's file) and the pair
            // runs again when it is delivered again.
            return self.state_failure(event, handler_name, Some(attempt), e);
        }
        if let Some(lock) = failure.forced
            && lock.succeeded()
            && let Err(e) = lock.unmark_succeeded()
        {
            // The dead letter is written; left with the old marker, a
            // retry would skip the pair as done. Say so.
            tracing::error!(
                "{e}; the earlier success of {handler_name} for {} still stands, so `autod retry` skips it: run `autod dispatch --force` again once it works",
                event.id()
            );
        }
        self.log.record(&line);
        if record.state != DeadState::Waiting {
            let mut dead = self.line(event, handler_name, RunResult::Dead);
            dead.attempt = Some(attempt);
            dead.error = Some(match record.state {
                DeadState::Permanent => {
                    format!("permanent failure (exit {EXIT_PERMANENT}): not retried")
                }
                _ => format!("gave up after {attempt} attempts"),
            });
            self.log.record(&dead);
        }
        outcome
    }

    /// The accepted, durable `[notify] on_dead` event about a pair given up,
    /// if one is configured. One that is not accepted (no schema, no route)
    /// is told, and the give-up is recorded all the same: a broken notice
    /// must not keep a dead pair running.
    async fn dead_notice(
        &self,
        event: &Event,
        record: &DeadLetter,
    ) -> Result<Option<chain::FollowUp>, crate::queue::QueueError> {
        let (Some(sink), Some(event_type)) = (&self.chain, &self.on_dead) else {
            return Ok(None);
        };
        match chain::dead_notice(sink, event, record, event_type) {
            Ok(Some(notice)) => {
                sink.persist(&notice.event).await?;
                Ok(Some(notice))
            }
            Ok(None) => Ok(None),
            Err(why) => {
                tracing::error!(
                    "[notify] on_dead: the {event_type} event about {} for {} was not accepted ({why}); give {event_type} a schema and a handler (`autod new event {event_type}`)",
                    record.handler,
                    event.id()
                );
                Ok(None)
            }
        }
    }

    /// The follow-ups a successful run wrote, validated (all or none).
    fn follow_ups(
        &self,
        event: &Event,
        handler_name: &str,
        attempt: u32,
    ) -> Result<chain::Emitted, chain::EmitError> {
        let emit = self.state.emit_path(event.id(), handler_name, attempt);
        match &self.chain {
            Some(sink) => chain::collect(
                sink,
                event,
                handler_name,
                &emit,
                self.max_follow_ups,
                self.max_event_bytes,
            ),
            None => {
                self.warn_unprocessed_emits(event, handler_name, attempt);
                Ok(chain::Emitted::default())
            }
        }
    }

    /// A follow-up past [`chain::MAX_DEPTH`] is not accepted; each is told in
    /// a `rejected` line naming its chain (SPEC 8).
    fn record_cuts(
        &self,
        parent: &Event,
        handler_name: &str,
        cut: &[serde_json::Map<String, serde_json::Value>],
    ) {
        for obj in cut {
            let text = |k: &str| obj.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            let mut line = RunLine::new(
                &text("eventId").unwrap_or_default(),
                "-",
                RunResult::Rejected,
            );
            line.event_type = text("eventType");
            line.source = text("source");
            line.causation_id = Some(parent.id().to_owned());
            line.correlation_id = Some(parent.correlation_id().to_owned());
            line.error = Some(format!(
                "chain {} cut at depth {}: the follow-up {handler_name} emitted for {} was not accepted (a chain that loops, A emitting A, ends here)",
                parent.correlation_id(),
                chain::MAX_DEPTH,
                parent.id()
            ));
            tracing::warn!("{}", line.error.as_deref().unwrap_or_default());
            self.log.record(&line);
        }
    }

    /// Owns the pair: at once if nobody else does, else after waiting for the
    /// other autod process (`None` if autod is asked to stop meanwhile). Then
    /// stops whatever the previous run of the pair left running: its autod
    /// is gone or done with it, since we hold the lock.
    async fn own_pair(
        &self,
        event: &Event,
        handler: &Handler,
    ) -> Result<Option<state::PairLock>, state::StateError> {
        let lock = match self.state.try_lock_pair(event.id(), &handler.name)? {
            Some(lock) => lock,
            None => {
                tracing::info!(
                    "{} for {}: another autod process is running this pair; waiting for it to finish",
                    handler.name,
                    event.id()
                );
                // A thread of its own, not tokio's blocking pool: a runtime
                // that shuts down waits for its blocking tasks, and an flock
                // that autod stopped waiting for must not hold up its exit.
                let (tx, rx) = tokio::sync::oneshot::channel();
                let (state, id, name) = (
                    self.state.clone(),
                    event.id().to_owned(),
                    handler.name.clone(),
                );
                std::thread::spawn(move || {
                    let _ = tx.send(state.lock_pair(&id, &name));
                });
                let mut stop = self.stop_starting.clone();
                tokio::select! {
                    lock = rx => lock.expect("the lock thread sends before it ends")?,
                    () = stopped(&mut stop) => return Ok(None),
                }
            }
        };
        if let Some(previous) = lock.previous_run::<runner::RunMark>() {
            let stopped = runner::stop_previous(&previous, handler.kill_grace).await;
            if stopped.found_any() {
                tracing::warn!(
                    "{} for {}: the previous run (pid {}, {} {}, started by autod pid {}, due by {}) left processes running unsupervised; {stopped} before running it again",
                    handler.name,
                    event.id(),
                    if previous.pid == 0 {
                        "not recorded".to_owned()
                    } else {
                        previous.pid.to_string()
                    },
                    runner::RUN_ID_VAR,
                    previous.run_id,
                    previous.autod_pid,
                    previous.deadline,
                );
            }
            if stopped.survivors.is_empty()
                && let Err(e) = lock.clear_run()
            {
                tracing::debug!("{e}");
            }
        }
        Ok(Some(lock))
    }

    /// Starts the handler with its run recorded in the pair's lock: its tag
    /// before the spawn, its pid and start time right after. Whoever owns the
    /// pair next finds what this run left if autod dies, even in between: on
    /// a busy machine the handler may fork before autod records its pid.
    fn start_recorded(
        &self,
        lock: &state::PairLock,
        spec: RunSpec,
        event: &Event,
        handler_name: &str,
    ) -> Result<runner::Running, RunOutput> {
        let record = |mark: &runner::RunMark| {
            if let Err(e) = lock.record_run(mark) {
                tracing::warn!(
                    "{e}: if this autod dies while {handler_name} runs for {}, the next run of the pair cannot stop what it left behind",
                    event.id()
                );
            }
        };
        record(&runner::RunMark::before_spawn(&spec.run_id, spec.timeout));
        let running = runner::start(spec)?;
        record(running.mark());
        Ok(running)
    }

    /// The pair already succeeded: it is logged as skipped, not run. Also
    /// the NATS worker's, for a replay whose pair has a done marker in the
    /// bucket (the inbox logs a replay of a succeeded pair so, too).
    pub(crate) fn skipped(&self, event: &Event, handler_name: &str) -> PairOutcome {
        // A crash between "done" and "dead letter removed" leaves a stale record.
        let _ = self.state.dead_remove(handler_name, event.id());
        let mut line = self.line(event, handler_name, RunResult::Skipped);
        line.error = Some("already succeeded for this eventId (use --force to run again)".into());
        self.log.record(&line);
        PairOutcome::new(handler_name, RunResult::Skipped)
    }

    /// Chaining (SPEC §8) is not processed yet. A handler written for it
    /// would otherwise lose its follow-up events without a word.
    /// Only an engine built without a sink (unit tests) gets here: the
    /// follow-ups stay in their file, and that is said, not hidden.
    fn warn_unprocessed_emits(&self, event: &Event, handler_name: &str, attempt: u32) {
        let path = self.state.emit_path(event.id(), handler_name, attempt);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
            tracing::warn!(
                "handler {handler_name} wrote follow-ups for {} but this engine delivers none; they are kept in {}",
                event.id(),
                path.display()
            );
        }
    }

    fn spec(
        &self,
        event: &Event,
        handler: &Handler,
        attempt: u32,
    ) -> Result<RunSpec, state::StateError> {
        let event_file = self.state.event_file(event)?;
        let out_dir = self.state.out_dir(event.id(), &handler.name)?;
        let emit = self.state.emit_path(event.id(), &handler.name, attempt);
        // A forced rerun has the attempt number of an earlier run: what that
        // run wrote must not be read as this one's follow-ups.
        match std::fs::remove_file(&emit) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(state::StateError {
                    path: emit,
                    source: e,
                });
            }
        }
        let argv = match &handler.command {
            HandlerCommand::Argv(argv) => argv.clone(),
            // Spawning a path that does not exist yields the runner's own clear
            // "not found" outcome; the message below is more specific, so use it.
            HandlerCommand::Missing(_) => Vec::new(),
        };
        let mut env: Vec<(OsString, OsString)> = handler
            .env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
        let attempt = attempt.to_string();
        let vars: [(&str, &std::ffi::OsStr); 10] = [
            ("AUTOD_EVENT_ID", event.id().as_ref()),
            ("AUTOD_EVENT_TYPE", event.event_type().as_ref()),
            ("AUTOD_EVENT_SOURCE", event.source().as_ref()),
            ("AUTOD_HANDLER", handler.name.as_ref()),
            ("AUTOD_ATTEMPT", attempt.as_ref()),
            ("AUTOD_EVENT_FILE", event_file.as_os_str()),
            ("AUTOD_OUTPUT_DIR", out_dir.as_os_str()),
            ("AUTOD_EMIT", emit.as_os_str()),
            ("AUTOD_CORRELATION_ID", event.correlation_id().as_ref()),
            ("AUTOD_ROOT", self.root.as_os_str()),
        ];
        env.extend(
            vars.iter()
                .map(|(k, v)| (OsString::from(k), v.to_os_string())),
        );
        let mut stdin = event.to_json();
        stdin.push(b'\n');
        Ok(RunSpec {
            argv,
            cwd: self.root.clone(),
            env,
            stdin,
            timeout: handler.timeout,
            kill_grace: handler.kill_grace,
            run_id: runner::new_run_id(),
            cancel: self.shutdown.clone(),
        })
    }

    fn dead_letter(
        &self,
        event: &Event,
        handler: &Handler,
        attempt: u32,
        failure: &Failure,
    ) -> DeadLetter {
        let output = failure.output;
        let previous = failure.previous.as_ref();
        let now = time::now_rfc3339();
        let (exit_code, signal, error) = match &output.termination {
            Termination::Exited(c) => (Some(*c), None, None),
            Termination::Signaled(s) => (None, Some(runner::signal_name(*s)), None),
            Termination::TimedOut(stopped) => (
                None,
                stopped.strongest_signal().map(str::to_owned),
                Some(format!(
                    "timed out after {}; {stopped}",
                    humantime::format_duration(handler.timeout),
                )),
            ),
            Termination::SpawnFailed(msg) => (None, None, Some(spawn_message(handler, msg))),
            Termination::Cancelled => (None, None, Some("stopped by shutdown".to_owned())),
        };
        let state = if exit_code == Some(EXIT_PERMANENT) {
            DeadState::Permanent
        } else if attempt >= handler.retry.max_attempts {
            DeadState::Exhausted
        } else {
            DeadState::Waiting
        };
        let next_attempt_at =
            (state == DeadState::Waiting).then(|| next_attempt_at(handler, attempt));
        DeadLetter {
            version: state::dead::RECORD_VERSION,
            event_id: event.id().to_owned(),
            handler: handler.name.clone(),
            event_type: event.event_type().to_owned(),
            state,
            attempts: attempt,
            max_attempts: handler.retry.max_attempts,
            first_failed_at: previous.map_or_else(|| now.clone(), |p| p.first_failed_at.clone()),
            last_failed_at: now,
            last_result: if matches!(output.termination, Termination::TimedOut { .. }) {
                "timeout".into()
            } else {
                "failed".into()
            },
            last_exit_code: exit_code,
            last_signal: signal,
            last_error: failure.error.clone().or(error),
            stderr_tail: String::from_utf8_lossy(&output.stderr_tail).into_owned(),
            stdout_tail: String::from_utf8_lossy(&output.stdout_tail).into_owned(),
            next_attempt_at,
            event: event.as_value(),
        }
    }

    /// autod could not do its own part (state unwritable, disk full, the
    /// queue refusing a follow-up): the pair has no outcome. Nothing is
    /// recorded as done or dead, so whoever delivers its event again runs it
    /// again (at least once, never lost).
    fn state_failure(
        &self,
        event: &Event,
        handler: &str,
        attempt: Option<u32>,
        e: impl std::fmt::Display,
    ) -> PairOutcome {
        let mut line = self.line(event, handler, RunResult::Failed);
        line.attempt = attempt;
        line.error = Some(format!(
            "autod could not record the outcome ({e}); nothing was marked done or dead-lettered, so it runs again when the event is delivered again"
        ));
        self.log.record(&line);
        let mut o = PairOutcome::new(handler, RunResult::Failed);
        o.attempt = attempt;
        o.unrecorded = true;
        o.error = Some(e.to_string());
        o
    }

    fn line(&self, event: &Event, handler: &str, result: RunResult) -> RunLine {
        let mut line = RunLine::new(event.id(), handler, result);
        line.event_type = Some(event.event_type().to_owned());
        line.source = Some(event.source().to_owned());
        let field = |k: &str| {
            event
                .fields()
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        line.causation_id = field("causationId");
        line.correlation_id = field("correlationId");
        line.replay = self.replay;
        line
    }
}

/// What a failed run leaves for its dead letter.
struct Failure<'a> {
    previous: Option<DeadLetter>,
    output: &'a RunOutput,
    /// Why it failed although the handler exited 0 (its follow-ups).
    error: Option<String>,
    /// The pair's lock, when a forced rerun failed: an earlier success it
    /// replaces is withdrawn, so that a retry runs the pair again.
    forced: Option<&'a state::PairLock>,
}

/// When a pair that failed `attempt` times runs next. Checked: it never
/// overflows, and never writes a time that does not parse back.
fn next_attempt_at(handler: &Handler, attempt: u32) -> String {
    time::format(time::add(
        time::now(),
        crate::retry::delay(&handler.retry, attempt),
    ))
}

fn spawn_message(handler: &Handler, runner_msg: &str) -> String {
    match &handler.command {
        HandlerCommand::Missing(why) => format!("handler {}: {why}", handler.name),
        HandlerCommand::Argv(_) => format!("handler {}: {runner_msg}", handler.name),
    }
}

fn millis(output: &RunOutput) -> u64 {
    u64::try_from(output.duration.as_millis()).unwrap_or(u64::MAX)
}

/// The last non-empty line of a handler's stderr, for the one-line summary.
fn last_line(tail: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(tail);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let mut line = line.trim().to_owned();
    if line.len() > 200 {
        let mut cut = 200;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    Some(line)
}

/// Resolves once the flag is `true`; never, without a flag.
async fn stopped(flag: &mut Option<watch::Receiver<bool>>) {
    match flag {
        Some(rx) => {
            if rx.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Durations are bounded at load time, so a panicking pair needs a config
    /// that skipped the bounds: a kill_grace no deadline can hold.
    #[test]
    fn a_pair_that_panics_is_a_recorded_failure_not_a_success() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let text = "[handlers.slow]\non = [\"x\"]\ncommand = [\"/bin/sh\", \"-c\", \"sleep 0.5\"]\ntimeout = \"20ms\"\n";
        let mut config = Config::parse(&root, &root.join("autod.toml"), text).unwrap();
        config.handlers[0].kill_grace = std::time::Duration::MAX;
        let state = StateDir::new(&root);
        let log = RunLog::new(state.log_dir(), config.log.clone());
        let engine = Arc::new(Engine::new(root.clone(), &config, state.clone(), log, 1));
        let event = Event::from_trusted(serde_json::json!({
            "eventType": "x", "eventId": "e1", "source": "cli", "payload": {}
        }))
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let outcomes =
            rt.block_on(engine.deliver(Arc::new(event), vec!["slow".into()], Mode::Requested));

        assert_eq!(outcomes.len(), 1);
        let o = &outcomes[0];
        assert!(o.failed(), "{o:?}");
        assert_eq!(o.dead, Some(DeadState::Waiting));
        assert!(
            o.error.as_deref().unwrap().contains("internal error"),
            "{o:?}"
        );
        let record = state
            .dead_get("slow", "e1")
            .unwrap()
            .expect("a dead letter");
        assert_eq!(record.state, DeadState::Waiting);
        assert!(record.last_error.unwrap().contains("please report it"));
        assert!(time::parse(record.next_attempt_at.as_deref().unwrap()).is_some());
        assert!(!state.pair_succeeded("e1", "slow"));
        let lines = crate::log::read_lines(&state.log_dir().join(crate::log::FILE_NAME)).unwrap();
        let (run, raw) = lines.last().expect("a run-log line");
        assert_eq!(run.result, "failed");
        assert!(raw.contains("internal error"), "{raw}");
    }
}
