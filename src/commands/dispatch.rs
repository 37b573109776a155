//! `autod dispatch FILE... | -`: validate and run each event now, in this process.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::cli::{DispatchArgs, GlobalArgs};
use crate::config::HandlerCommand;
use crate::engine::{Mode, PairOutcome};
use crate::event::Event;
use crate::exit::Code;
use crate::intake::{self, Admitted, InputError, Intake};
use crate::log::{RunLine, RunLog, RunResult};
use crate::output;
use crate::project::Project;
use crate::route;
use crate::schema::Invalid;

pub fn run(project: &Project, g: &GlobalArgs, args: &DispatchArgs) -> Result<Code> {
    if let Some(name) = &args.handler {
        super::known_handler(project, name)?;
    }
    let max_bytes = project.config.validation.max_event_bytes;
    let intake = Arc::new(std::sync::Mutex::new(Intake::new(
        &project.root,
        &project.config,
    )?));
    let inputs = intake::read_inputs(&args.files, max_bytes)?;
    let log = project.run_log();
    // Asked once: without --jobs it reads the cgroup's CPU quota from /proc and /sys.
    let jobs = crate::cli::jobs(args.jobs);
    // SIGINT/SIGTERM stop the running handlers (as the daemon's shutdown
    // does) and the pairs not started yet; none of them is recorded.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let engine = Arc::new(
        project
            .engine(jobs, Arc::clone(&intake))
            .with_shutdown(stop_rx.clone())
            .with_stop_starting(stop_rx),
    );
    let caught: Arc<std::sync::OnceLock<Code>> = Arc::default();
    let mut forwarding = false;
    if !args.dry_run {
        project
            .state
            .ensure("")
            .context("cannot create the state folder .autod/")?;
    }

    let rt = super::runtime()?;
    let mut code = Code::Success;
    let mut tally = Tally::default();
    let mut tasks = Vec::new();
    // Events sharing a `key` are delivered in input order, one at a time.
    let mut last_for_key: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let (results_tx, mut results_rx) = tokio::sync::mpsc::unbounded_channel();

    // Events read ahead of the ones running: enough to keep every job busy,
    // few enough that a long stream on stdin never piles up in memory.
    let window = Arc::new(tokio::sync::Semaphore::new(jobs * 64));
    let _guard = rt.enter();
    let commands = Commands::new(project);
    for input in inputs {
        if caught.get().is_some() {
            break;
        }
        let admitted = match input.bytes {
            Ok(bytes) => intake
                .lock()
                .expect("intake lock")
                .admit(&bytes, args.handler.as_deref())
                .map_err(|e| (e, bytes)),
            Err(InputError::TooLarge(size)) => Err((
                Invalid::Rejected(vec![crate::event::too_large(size, max_bytes)]),
                Vec::new(),
            )),
            Err(InputError::Unreadable(msg)) => {
                tracing::error!("{}: {msg}", input.label);
                report(
                    g,
                    json!({"input": input.label, "status": "error", "kind": "unreadable", "error": msg}),
                );
                code = code.worst(Code::Usage);
                tally.errors += 1;
                continue;
            }
        };
        let Admitted { event, handlers } = match admitted {
            Ok(a) => a,
            Err((invalid, bytes)) => {
                // A dry run records nothing, a rejection included.
                let log = (!args.dry_run).then_some(&log);
                code = code.worst(reject(g, log, &input.label, &bytes, &invalid));
                match invalid {
                    Invalid::Rejected(_) => tally.rejected += 1,
                    Invalid::Schema(_) => tally.unchecked += 1,
                }
                continue;
            }
        };
        tally.accepted += 1;
        if handlers.is_empty() {
            tracing::info!(
                "{}: no handler for {:?}; ignored ([routing] unrouted = \"ignore\")",
                input.label,
                event.event_type()
            );
            report(
                g,
                json!({"input": input.label, "eventId": event.id(), "eventType": event.event_type(), "status": "ignored", "runs": []}),
            );
            continue;
        }
        if args.dry_run {
            dry_run(project, &commands, g, &input.label, &event, &handlers);
            continue;
        }
        if let Err(e) = project.state.archive(&event) {
            tracing::error!(
                "{}: nothing ran: autod cannot write its state ({e}); make .autod/ writable (free disk space, fix permissions) and dispatch it again",
                input.label
            );
            report(
                g,
                json!({"input": input.label, "eventId": event.id(), "status": "error", "kind": "state", "error": e.to_string()}),
            );
            code = code.worst(Code::Usage);
            tally.accepted -= 1;
            tally.errors += 1;
            continue;
        }
        // Caught only once a handler may run: until then the default
        // action (exit at once) is right, and a Ctrl-C while stdin is being
        // read keeps working.
        if !forwarding {
            forwarding = true;
            tokio::spawn(forward_signals(stop_tx.clone(), Arc::clone(&caught)));
        }
        let slot = rt
            .block_on(Arc::clone(&window).acquire_owned())
            .expect("the window semaphore is never closed");
        let previous = event.key().and_then(|k| last_for_key.remove(k));
        let key = event.key().map(str::to_owned);
        let engine = Arc::clone(&engine);
        let tx = results_tx.clone();
        let force = args.force;
        let label = input.label;
        let task = tokio::spawn(async move {
            let _slot = slot;
            if let Some(prev) = previous {
                let _ = prev.await;
            }
            let event = Arc::new(event);
            let outcomes = engine
                .deliver(
                    Arc::clone(&event),
                    handlers,
                    if force { Mode::Forced } else { Mode::Requested },
                )
                .await;
            let children = crate::engine::follow_ups_of(&outcomes);
            let _ = tx.send((label, event, outcomes));
            // The whole chain runs in this invocation, and its outcomes count
            // in the exit code like the root's (SPEC 8).
            engine
                .deliver_follow_ups(children, |child, outcomes| {
                    let label = format!("{} (follow-up)", child.event.source());
                    let _ = tx.send((label, Arc::new(child.event), outcomes));
                })
                .await;
        });
        match key {
            Some(k) => {
                last_for_key.insert(k, task);
            }
            None => tasks.push(task),
        }
    }
    drop(results_tx);
    tasks.extend(last_for_key.into_values());

    rt.block_on(async {
        while let Some((label, event, outcomes)) = results_rx.recv().await {
            if outcomes.iter().any(PairOutcome::failed) {
                code = code.worst(Code::Failed);
            }
            if outcomes.iter().any(|o| o.cut_follow_ups > 0) {
                // A follow-up cut off a too-deep chain is a rejected event.
                code = code.worst(Code::Rejected);
            }
            if let Some(handlers) = crate::engine::unrecorded(&outcomes) {
                tracing::error!(
                    "{label}: the result of {handlers} for {} could not be recorded, so it was neither marked done nor dead-lettered; make .autod/ writable (free disk space, fix permissions), then dispatch the same event again: pairs that succeeded and were recorded are skipped, the others run again",
                    event.id()
                );
                code = code.worst(Code::Usage);
            }
            tally.add(&outcomes);
            report(
                g,
                json!({"input": label, "eventId": event.id(), "eventType": event.event_type(), "status": "accepted", "runs": outcomes}),
            );
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    tally.summarize(args.dry_run);
    if let Some(signal) = caught.get() {
        code = code.worst(*signal);
    }
    Ok(code)
}

/// Waits for SIGINT or SIGTERM, then asks every running handler to stop.
pub(super) async fn forward_signals(
    stop: tokio::sync::watch::Sender<bool>,
    caught: Arc<std::sync::OnceLock<Code>>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!(
            "cannot catch SIGINT/SIGTERM: a signal stops autod without stopping its handlers"
        );
        return;
    };
    let (name, code) = tokio::select! {
        _ = int.recv() => ("SIGINT", Code::Interrupted),
        _ = term.recv() => ("SIGTERM", Code::Terminated),
    };
    let _ = caught.set(code);
    tracing::warn!(
        "{name}: stopping the running handlers (SIGTERM, then SIGKILL after their kill_grace); they are recorded as interrupted and run again at the next dispatch; a second signal exits at once"
    );
    let _ = stop.send(true);
    // A second signal is someone who will not wait: exit now. Whatever still
    // runs is stopped by the next owner of its pair.
    tokio::select! {
        _ = int.recv() => {},
        _ = term.recv() => {},
    }
    tracing::warn!("a second signal: exiting without waiting for the handlers to stop");
    std::process::exit(i32::from(code as u8));
}

/// With `--json`, one line per input on stdout; otherwise stderr already said it.
fn report(g: &GlobalArgs, value: Value) {
    if g.json {
        output::json(&value);
    }
}

/// Tells the user, logs a `rejected` line, and returns the exit code.
///
/// An event the schemas reject (exit 3) and an event no schema could check
/// because one is broken (exit 2) read differently everywhere: `--json` has
/// `"status": "rejected"` for the first and `"status": "error", "kind":
/// "schema"` with the schema's file for the second.
fn reject(
    g: &GlobalArgs,
    log: Option<&RunLog>,
    label: &str,
    bytes: &[u8],
    invalid: &Invalid,
) -> Code {
    let errors = intake::refusal_violations(invalid);
    intake::tell_refusal(label, invalid);
    let (event_id, event_type) = intake::claimed(bytes);
    let mut line = RunLine::new(&event_id, "-", RunResult::Rejected);
    line.event_type = event_type;
    line.input = Some(label.to_owned());
    line.file = (!label.starts_with("stdin")).then(|| label.to_owned());
    line.error = errors.first().map(ToString::to_string);
    if let Some(log) = log {
        log.record(&line);
    }
    report(g, intake::refusal_json(label, invalid));
    intake::refusal_code(invalid)
}

/// How a dry run shows each handler's command: the same for every event, so
/// worked out once rather than per event (a stream of them is the usual input).
struct Commands<'a> {
    by_handler: HashMap<&'a str, Command>,
}

struct Command {
    /// `"command"` and `"commandProblem"` of `--json`.
    argv: Value,
    problem: Value,
    /// The `runs:` or `would fail:` line.
    line: String,
}

impl<'a> Commands<'a> {
    fn new(project: &'a Project) -> Commands<'a> {
        let by_handler = project
            .config
            .handlers
            .iter()
            .map(|h| {
                let command = match &h.command {
                    HandlerCommand::Argv(argv) => {
                        let words: Vec<String> = argv.iter().map(|a| shown(project, a)).collect();
                        let quoted: Vec<String> = words.iter().map(|w| quoted(w)).collect();
                        Command {
                            line: format!("    runs: {}", quoted.join(" ")),
                            argv: json!(words),
                            problem: Value::Null,
                        }
                    }
                    HandlerCommand::Missing(why) => Command {
                        argv: Value::Null,
                        problem: json!(why),
                        line: format!("    would fail: {why}"),
                    },
                };
                (h.name.as_str(), command)
            })
            .collect();
        Commands { by_handler }
    }

    fn of(&self, handler: &str) -> &Command {
        &self.by_handler[handler]
    }
}

fn dry_run(
    project: &Project,
    commands: &Commands<'_>,
    g: &GlobalArgs,
    label: &str,
    event: &Event,
    handlers: &[String],
) {
    let routes = route::routes(&project.config.handlers, event.event_type());
    let chosen: Vec<_> = routes
        .iter()
        .filter(|r| handlers.contains(&r.handler.name))
        .collect();
    if g.json {
        let route: Vec<Value> = chosen
            .iter()
            .map(|r| {
                let command = commands.of(&r.handler.name);
                json!({
                    "handler": r.handler.name,
                    "pattern": r.pattern.as_str(),
                    "command": command.argv,
                    "commandProblem": command.problem,
                    "alreadySucceeded": project.state.pair_succeeded(event.id(), &r.handler.name),
                })
            })
            .collect();
        output::json(
            &json!({"input": label, "eventId": event.id(), "eventType": event.event_type(), "status": "dry-run", "route": route}),
        );
        return;
    }
    // The event's lines go out in one write: a stream of events is written
    // with a third of the system calls.
    // Pieces pushed onto one buffer sized for the usual event: through
    // `format!` the text cost more than validating the event's payload.
    let mut text = String::with_capacity(256);
    for piece in [label, ": ", event.event_type(), " ", event.id(), " →"] {
        text.push_str(piece);
    }
    for r in chosen {
        let note = if project.state.pair_succeeded(event.id(), &r.handler.name) {
            "  (already succeeded: would be skipped)"
        } else {
            ""
        };
        text.push_str("\n  ");
        text.push_str(&r.handler.name);
        let _ = write!(text, " (on {:?})", r.pattern.as_str());
        text.push_str(note);
        text.push('\n');
        text.push_str(&commands.of(&r.handler.name).line);
    }
    output::line(&text);
}

/// An argv word as a person reads it: a path inside the project relative to
/// its root (that is the working directory handlers run in).
fn shown(project: &Project, word: &std::ffi::OsStr) -> String {
    let path = Path::new(word);
    path.strip_prefix(&project.root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// Quoted for a POSIX shell when it needs to be, so the line can be pasted to
/// try the command by hand (autod itself never runs it through a shell).
fn quoted(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[derive(Default)]
struct Tally {
    accepted: usize,
    rejected: usize,
    /// Not checked because a schema is broken (exit 2, not a rejection).
    unchecked: usize,
    errors: usize,
    by_result: [usize; RunResult::ALL.len()],
}

impl Tally {
    fn add(&mut self, outcomes: &[PairOutcome]) {
        for o in outcomes {
            let i = RunResult::ALL
                .iter()
                .position(|r| *r == o.result)
                .unwrap_or(0);
            self.by_result[i] += 1;
        }
    }

    fn summarize(&self, dry_run: bool) {
        let inputs = self.accepted + self.rejected + self.unchecked + self.errors;
        if inputs < 2 {
            return;
        }
        let mut runs: Vec<String> = RunResult::ALL
            .iter()
            .zip(self.by_result)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{n} {}", r.as_str()))
            .collect();
        if runs.is_empty() {
            runs.push(if dry_run {
                "none (dry run)".into()
            } else {
                "none".into()
            });
        }
        let failed = self.by_result[1] + self.by_result[2];
        let hint = if failed > 0 {
            "; see `autod dead list`"
        } else {
            ""
        };
        let unchecked = if self.unchecked > 0 {
            format!(", {} not checked (a schema is broken)", self.unchecked)
        } else {
            String::new()
        };
        tracing::info!(
            "{inputs} inputs: {} accepted, {} rejected{unchecked}, {} unreadable; runs: {}{hint}",
            self.accepted,
            self.rejected,
            self.errors,
            runs.join(", ")
        );
    }
}
