//! `autod replay`: archived events delivered again, with their own eventIds
//! (SPEC 14).
//!
//! Selection is here: the window by `ts`, `--type`, `--handler`, `--failed`
//! (the run log's last result per pair), and validation against today's
//! schemas and routes. Delivery is the engine's, as for `dispatch`, or the
//! running daemon's through its queue (its inbox, or with `[queue] backend =
//! "nats"` the stream, marked as replays), so that a long replay never fights
//! the daemon for the same pairs.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::cli::{GlobalArgs, ReplayArgs};
use crate::engine::{Mode, PairOutcome};
use crate::event::Event;
use crate::exit::Code;
use crate::intake::{self, Intake};
use crate::log::{self, RunResult};
use crate::output;
use crate::project::Project;
use crate::queue::Queue;
use crate::route::Pattern;
use crate::state::archive::Entry;
use crate::time::{self, Timestamp};

/// An archived event chosen for replay, and the handlers it goes to.
struct Chosen {
    event: Event,
    handlers: Vec<String>,
}

/// What a replay counts, for the summary and the exit code.
#[derive(Default)]
struct Tally {
    events: usize,
    ok: usize,
    skipped: usize,
    failed: usize,
    invalid: usize,
    follow_up_runs: usize,
    queued: usize,
}

pub fn run(project: &Project, g: &GlobalArgs, args: &ReplayArgs) -> Result<Code> {
    let now = time::now();
    let since = time::parse_since(&args.since).map_err(|e| anyhow!("--since: {e}"))?;
    let until = match &args.until {
        Some(u) => time::parse_since(u).map_err(|e| anyhow!("--until: {e}"))?,
        None => now,
    };
    if until < since {
        bail!(
            "--until ({}) is before --since ({}); give the earlier time to --since",
            time::format(until),
            time::format(since)
        );
    }
    let pattern = args
        .event_type
        .as_deref()
        .map(Pattern::parse)
        .transpose()
        .map_err(|e| anyhow!("--type: {e}"))?;
    if let Some(name) = &args.handler {
        super::known_handler(project, name)?;
    }
    let daemon = if args.direct {
        None
    } else {
        project.state.daemon_running()
    };
    if let Some(d) = &daemon
        && !args.dry_run
    {
        let flags: Vec<&str> = [
            (args.force, "--force"),
            (args.handler.is_some(), "--handler"),
            (args.failed, "--failed"),
        ]
        .into_iter()
        .filter_map(|(on, flag)| on.then_some(flag))
        .collect();
        if !flags.is_empty() {
            bail!(
                "autod run (pid {}) is running, and replay goes through its inbox, where the daemon delivers each event to all its handlers and leaves succeeded and given-up pairs alone: {} cannot be honoured that way. Add --direct to run the replay in this process (it takes each pair's lock, so it never runs a pair the daemon is running), or stop the daemon first",
                d.pid,
                flags.join(", ")
            );
        }
    }

    let mut tally = Tally::default();
    let mut code = Code::Success;
    let entries = project
        .state
        .archive_read(time::utc_day(since), time::utc_day(until))
        .context("cannot read .autod/archive/")?;
    let intake = Arc::new(Mutex::new(Intake::new(&project.root, &project.config)?));
    let failed_pairs = if args.failed {
        Some(failed_pairs(project)?)
    } else {
        None
    };
    let mut chosen = Vec::new();
    let mut seen_any = false;
    for entry in entries {
        let event = match entry {
            Entry::Event(e) => *e,
            Entry::Unreadable { place, why } => {
                seen_any = true;
                tracing::error!("{place}: skipped, not an archived event: {why}");
                report(
                    g,
                    json!({"place": place, "status": "unreadable", "error": why}),
                );
                tally.events += 1;
                tally.invalid += 1;
                code = code.worst(Code::Rejected);
                continue;
            }
        };
        if !in_window(&event, since, until) {
            continue;
        }
        seen_any = true;
        if pattern
            .as_ref()
            .is_some_and(|p| !p.matches(event.event_type()))
        {
            continue;
        }
        // Today's schemas and routes decide, as they would for a new event.
        let admitted = intake
            .lock()
            .expect("intake lock")
            .admit(&event.to_json(), None);
        let mut a = match admitted {
            Ok(a) => a,
            Err(invalid) => {
                let errors = intake::refusal_violations(&invalid);
                for v in &errors {
                    tracing::error!(
                        "{} {}: no longer valid, not replayed: {v}",
                        event.event_type(),
                        event.id()
                    );
                }
                report(
                    g,
                    json!({"eventId": event.id(), "eventType": event.event_type(), "ts": ts(&event), "status": "invalid", "errors": errors}),
                );
                tally.events += 1;
                tally.invalid += 1;
                code = code.worst(Code::Rejected);
                continue;
            }
        };
        if let Some(only) = &args.handler {
            a.handlers.retain(|h| h == only);
        }
        if let Some(failed) = &failed_pairs {
            a.handlers
                .retain(|h| failed.contains(&(a.event.id().to_owned(), h.clone())));
        }
        if a.handlers.is_empty() {
            continue;
        }
        tally.events += 1;
        chosen.push(Chosen {
            event: a.event,
            handlers: a.handlers,
        });
    }

    if args.force {
        // A follow-up whose parent is replayed too is its parent's to emit
        // again (same id): replaying it as well would run it twice.
        let ids: HashSet<String> = chosen.iter().map(|c| c.event.id().to_owned()).collect();
        let before = chosen.len();
        chosen.retain(|c| {
            c.event
                .fields()
                .get("causationId")
                .and_then(Value::as_str)
                .is_none_or(|p| !ids.contains(p))
        });
        let left_to_parents = before - chosen.len();
        if left_to_parents > 0 {
            tally.events -= left_to_parents;
            tracing::info!(
                "{left_to_parents} follow-up(s) are left to their replayed parents, which emit them again"
            );
        }
    }

    if !seen_any {
        let msg = format!(
            "the archive holds no events between {} and {}: nothing to replay",
            time::format(since),
            time::format(until)
        );
        tracing::info!("{msg}");
        summarize(g, args, &tally, daemon.is_some());
        return Ok(code);
    }

    if args.dry_run {
        dry_run(project, g, args, &chosen);
    } else if let Some(d) = &daemon {
        project
            .state
            .ensure("")
            .context("cannot create the state folder .autod/")?;
        // The folder: `<eventId>.replay.json` in the inbox. NATS: published
        // as replays, which no dedupe window drops (see `queue/producer.rs`).
        let queue = match Queue::open(project) {
            Ok(q) => q,
            Err(e) => {
                tracing::error!("nothing queued: {e}");
                summarize(g, args, &tally, true);
                return Ok(code.worst(Code::Failed));
            }
        };
        for c in &chosen {
            match queue.put_replay(&c.event) {
                Ok(_) => {
                    tally.queued += 1;
                    report(
                        g,
                        json!({"eventId": c.event.id(), "eventType": c.event.event_type(), "ts": ts(&c.event), "status": "queued"}),
                    );
                }
                Err(e) => {
                    tracing::error!("{}: not queued: {e}", c.event.id());
                    code = code.worst(Code::Failed);
                }
            }
        }
        tracing::info!(
            "through the running daemon (autod run pid {}): queued {} events in {}; see their runs with `autod log --since {}`",
            d.pid,
            tally.queued,
            queue.describe(),
            args.since
        );
    } else {
        project
            .state
            .ensure("")
            .context("cannot create the state folder .autod/")?;
        code = code.worst(deliver(project, g, args, chosen, intake, &mut tally)?);
    }
    summarize(g, args, &tally, daemon.is_some());
    Ok(code)
}

/// Whether the event's `ts` falls in `[since, until]`.
fn in_window(event: &Event, since: Timestamp, until: Timestamp) -> bool {
    event
        .fields()
        .get("ts")
        .and_then(Value::as_str)
        .and_then(time::parse)
        .is_some_and(|t| t >= since && t <= until)
}

fn ts(event: &Event) -> Value {
    event.fields().get("ts").cloned().unwrap_or(Value::Null)
}

/// The pairs whose last result in the run log is not `ok` (a `skipped` line
/// says the pair had succeeded, so it counts as ok). Reads every run-log
/// file, oldest first, once: newest wins.
fn failed_pairs(project: &Project) -> Result<HashSet<(String, String)>> {
    let mut last: HashMap<(String, String), bool> = HashMap::new();
    for file in project.run_log().files() {
        for (run, _) in log::read_lines(&file)
            .with_context(|| format!("cannot read the run log {}", file.display()))?
        {
            if run.handler == "-" {
                continue;
            }
            let ok = matches!(run.result.as_str(), "ok" | "skipped");
            last.insert((run.event_id, run.handler), ok);
        }
    }
    Ok(last
        .into_iter()
        .filter_map(|(pair, ok)| (!ok).then_some(pair))
        .collect())
}

fn dry_run(project: &Project, g: &GlobalArgs, args: &ReplayArgs, chosen: &[Chosen]) {
    for c in chosen {
        let runs: Vec<Value> = c
            .handlers
            .iter()
            .map(|h| {
                let done = project.state.pair_succeeded(c.event.id(), h);
                json!({"handler": h, "alreadySucceeded": done, "wouldRun": !done || args.force})
            })
            .collect();
        if g.json {
            output::json(
                &json!({"eventId": c.event.id(), "eventType": c.event.event_type(), "ts": ts(&c.event), "status": "dry-run", "handlers": runs}),
            );
            continue;
        }
        let handlers: Vec<String> = c
            .handlers
            .iter()
            .map(|h| {
                if !project.state.pair_succeeded(c.event.id(), h) {
                    h.clone()
                } else if args.force {
                    format!("{h} (already succeeded: would run again)")
                } else {
                    format!("{h} (already succeeded: would be skipped)")
                }
            })
            .collect();
        let when = c
            .event
            .fields()
            .get("ts")
            .and_then(Value::as_str)
            .unwrap_or("-");
        output::line(&format!(
            "{when} {} {} → {}",
            c.event.event_type(),
            c.event.id(),
            handlers.join(", ")
        ));
    }
}

/// Delivers the chosen events in this process, in archive order (events
/// sharing a `key` one at a time, as `dispatch` does), with their chains.
fn deliver(
    project: &Project,
    g: &GlobalArgs,
    args: &ReplayArgs,
    chosen: Vec<Chosen>,
    intake: Arc<Mutex<Intake>>,
    tally: &mut Tally,
) -> Result<Code> {
    let jobs = crate::cli::jobs(args.jobs);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let engine = Arc::new(
        project
            .engine(jobs, intake)
            .for_replay()
            .with_shutdown(stop_rx.clone())
            .with_stop_starting(stop_rx),
    );
    let mode = if args.force {
        Mode::Forced
    } else {
        Mode::Requested
    };
    let total = chosen.len();
    let progress = g.verbose > 0 || std::io::stderr().is_terminal();
    let caught: Arc<std::sync::OnceLock<Code>> = Arc::default();
    let rt = super::runtime()?;
    let mut code = Code::Success;
    rt.block_on(async {
        tokio::spawn(super::dispatch::forward_signals(
            stop_tx,
            Arc::clone(&caught),
        ));
        // (event, outcomes, is a follow-up)
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Arc<Event>, Vec<PairOutcome>, bool)>();
        // Enough events ahead to keep every job busy, few enough that a
        // replay of a month holds a bounded number of tasks.
        let window = Arc::new(tokio::sync::Semaphore::new(jobs * 4));
        let producer = {
            let engine = Arc::clone(&engine);
            let caught = Arc::clone(&caught);
            tokio::spawn(async move {
                let mut last_for_key: HashMap<String, tokio::task::JoinHandle<()>> =
                    HashMap::new();
                for c in chosen {
                    if caught.get().is_some() {
                        break;
                    }
                    let slot = Arc::clone(&window)
                        .acquire_owned()
                        .await
                        .expect("the window semaphore is never closed");
                    let key = c.event.key().map(str::to_owned);
                    let previous = key.as_ref().and_then(|k| last_for_key.remove(k));
                    let engine = Arc::clone(&engine);
                    let tx = tx.clone();
                    let task = tokio::spawn(async move {
                        let _slot = slot;
                        if let Some(prev) = previous {
                            let _ = prev.await;
                        }
                        let event = Arc::new(c.event);
                        let outcomes = engine.deliver(Arc::clone(&event), c.handlers, mode).await;
                        let children = crate::engine::follow_ups_of(&outcomes);
                        let _ = tx.send((event, outcomes, false));
                        engine
                            .deliver_follow_ups(children, |child, outcomes| {
                                let _ = tx.send((Arc::new(child.event), outcomes, true));
                            })
                            .await;
                    });
                    if let Some(k) = key {
                        last_for_key.insert(k, task);
                    }
                }
            })
        };
        let mut done = 0usize;
        let mut last_progress = Instant::now();
        while let Some((event, outcomes, follow_up)) = rx.recv().await {
            if outcomes.iter().any(PairOutcome::failed) {
                code = code.worst(Code::Failed);
            }
            if outcomes.iter().any(|o| o.cut_follow_ups > 0) {
                code = code.worst(Code::Rejected);
            }
            if let Some(handlers) = crate::engine::unrecorded(&outcomes) {
                tracing::error!(
                    "the result of {handlers} for {} could not be recorded; make .autod/ writable (free disk space, fix permissions), then replay again: recorded successes are skipped",
                    event.id()
                );
                code = code.worst(Code::Usage);
            }
            if follow_up {
                tally.follow_up_runs += outcomes.len();
            } else {
                done += 1;
                for o in &outcomes {
                    match o.result {
                        RunResult::Ok => tally.ok += 1,
                        RunResult::Skipped => tally.skipped += 1,
                        _ => tally.failed += 1,
                    }
                }
            }
            report(
                g,
                json!({"eventId": event.id(), "eventType": event.event_type(), "ts": ts(&event), "status": if follow_up { "follow-up" } else { "replayed" }, "runs": outcomes}),
            );
            if progress && last_progress.elapsed() >= Duration::from_secs(1) {
                last_progress = Instant::now();
                eprintln!("replayed {done}/{total}");
            }
        }
        let _ = producer.await;
    });
    if let Some(signal) = caught.get() {
        code = code.worst(*signal);
    }
    Ok(code)
}

/// The one line a replay always ends with (and its object, with `--json`).
fn summarize(g: &GlobalArgs, args: &ReplayArgs, t: &Tally, through_daemon: bool) {
    let via = if args.dry_run {
        "dry-run"
    } else if through_daemon {
        "daemon"
    } else {
        "direct"
    };
    let line = match via {
        "dry-run" => format!(
            "would replay {} events ({} no longer valid); nothing was run or recorded",
            t.events - t.invalid,
            t.invalid
        ),
        "daemon" => format!(
            "replayed {} events through the daemon: {} queued, {} no longer valid",
            t.events, t.queued, t.invalid
        ),
        _ => {
            let chained = if t.follow_up_runs > 0 {
                format!(" (and {} runs of follow-ups)", t.follow_up_runs)
            } else {
                String::new()
            };
            format!(
                "replayed {} events: {} ok, {} skipped, {} failed, {} no longer valid{chained}",
                t.events, t.ok, t.skipped, t.failed, t.invalid
            )
        }
    };
    eprintln!("{line}");
    if g.json {
        output::json(&json!({"summary": {
            "via": via,
            "events": t.events,
            "ok": t.ok,
            "skipped": t.skipped,
            "failed": t.failed,
            "noLongerValid": t.invalid,
            "queued": t.queued,
            "followUpRuns": t.follow_up_runs,
        }}));
    }
}

/// With `--json`, one object per event on stdout.
fn report(g: &GlobalArgs, value: Value) {
    if g.json {
        output::json(&value);
    }
}
