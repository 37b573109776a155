//! `autod retry`: run dead-lettered pairs again now.
//!
//! With `[queue] backend = "nats"`, a record in the dead-letter stream (any
//! host's failure) is not run here: its retry is queued for the handler's
//! consumer, so it runs on whichever worker is free, under the handler's
//! group-wide `concurrency`. Records of this host's own `dispatch` runs are
//! run here as on the folder backend.

use std::sync::Arc;

use anyhow::Result;
use serde_json::json;

use crate::cli::{GlobalArgs, RetryArgs};
use crate::event::Event;
use crate::exit::Code;
use crate::output;
use crate::project::Project;
use crate::state::dead::{DeadLetter, DeadState};
use crate::time;

pub fn run(project: &Project, g: &GlobalArgs, args: &RetryArgs) -> Result<Code> {
    let store = super::dead::DeadLetters::open(project)?;
    let (found, listed) = store.list(project, None);
    // A dead letter may outlive its handler's config entry (`autod dead drop`
    // cleans those up), so a name with records is accepted too.
    if let Some(name) = &args.handler
        && !found.iter().any(|f| &f.record.handler == name)
    {
        super::known_handler(project, name)?;
    }
    let since = args
        .since
        .as_deref()
        .map(time::parse_since)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    let now = time::now();
    let mut code = listed;
    let mut chosen: Vec<super::dead::Found> = Vec::new();
    let mut not_due = 0usize;
    let mut next_due: Option<String> = None;
    for f in found {
        let record = &f.record;
        if args.handler.as_ref().is_some_and(|h| *h != record.handler) {
            continue;
        }
        if since.is_some_and(|s| time::parse(&record.last_failed_at).is_none_or(|t| t < s)) {
            continue;
        }
        let named = args.event_ids.contains(&record.event_id);
        if !args.event_ids.is_empty() && !named {
            continue;
        }
        // Naming an event, or --all, is an explicit request: run it whatever its state.
        if named || args.all || record.is_due(now) {
            chosen.push(f);
        } else {
            not_due += 1;
            if record.state == DeadState::Waiting {
                let at = record.next_attempt_at.clone();
                if at < next_due || next_due.is_none() {
                    next_due = at;
                }
            }
        }
    }
    for id in &args.event_ids {
        if !chosen.iter().any(|f| &f.record.event_id == id) {
            tracing::error!(
                "no dead letter for eventId {id}{}",
                args.handler
                    .as_ref()
                    .map(|h| format!(" and handler {h}"))
                    .unwrap_or_default()
            );
            code = code.worst(Code::Usage);
        }
    }
    let (shared, chosen): (Vec<_>, Vec<_>) = chosen.into_iter().partition(|f| f.shared);
    let chosen: Vec<DeadLetter> = chosen.into_iter().map(|f| f.record).collect();
    let queued = queue_retries(&store, &shared, &mut code);
    if !shared.is_empty() && chosen.is_empty() {
        tracing::info!(
            "queued {} of {} retries; a worker runs each (`autod dead list` shows how they went)",
            queued.len(),
            shared.len()
        );
        if g.json {
            output::json(&json!({"retried": [], "queued": queued, "notDue": not_due}));
        }
        return Ok(code);
    }
    let intake = Arc::new(std::sync::Mutex::new(crate::intake::Intake::new(
        &project.root,
        &project.config,
    )?));
    // Plain `autod retry` (what cron runs) also finishes what a dead process
    // left in processing/: a follow-up whose `dispatch` was killed, an event
    // a stopped daemon had claimed. Only without a daemon, which owns them.
    let left = if args.event_ids.is_empty() && args.handler.is_none() && since.is_none() {
        left_over(project, &intake)
    } else {
        Vec::new()
    };
    if chosen.is_empty() && left.is_empty() && !args.event_ids.is_empty() {
        // Each named id was reported above: no second message saying the same.
        if g.json {
            output::json(&json!({"retried": [], "notDue": not_due}));
        }
        return Ok(code);
    }
    if chosen.is_empty() && left.is_empty() {
        let msg = match (not_due, &next_due) {
            (0, _) => "nothing to retry: no dead letters".to_owned(),
            (n, Some(at)) => {
                format!("nothing due: {n} waiting, the next at {at} (use --all to retry now)")
            }
            (n, None) => format!(
                "nothing due: {n} exhausted or permanent (retry them with --all or by eventId)"
            ),
        };
        tracing::info!("{msg}");
        if g.json {
            output::json(&json!({"retried": [], "notDue": not_due}));
        }
        return Ok(code);
    }

    let engine = Arc::new(project.engine(crate::cli::jobs(args.jobs), intake));
    let rt = super::runtime()?;
    let recovered = rt.block_on(finish_left_over(&engine, project, left));
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for record in chosen {
            let engine = Arc::clone(&engine);
            tasks.push(tokio::spawn(async move {
                let Some(event) = Event::from_trusted(record.event.clone()) else {
                    return (record, Err("the record's event is not a valid event; inspect it with `autod dead show`".to_owned()));
                };
                if engine.handler(&record.handler).is_none() {
                    return (record.clone(), Err(format!(
                        "handler {} is no longer in autod.toml; drop the record with `autod dead drop {} --handler {}`",
                        record.handler, record.event_id, record.handler
                    )));
                }
                let outcome = engine
                    .run_pair(&event, &record.handler, crate::engine::Mode::Requested)
                    .await;
                // A retried run that now succeeds starts its chain here too.
                let mut chained = Vec::new();
                engine
                    .deliver_follow_ups(outcome.follow_ups.clone(), |child, outcomes| {
                        chained.push((child, outcomes));
                    })
                    .await;
                (record, Ok((outcome, chained)))
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("retry task does not panic"));
        }
        results
    });
    let mut tally = Tally {
        ok: 0,
        failed: 0,
        code,
    };
    let mut json_runs = Vec::new();
    for (record, result) in results {
        match result {
            Ok((outcome, chained)) => {
                let mut follow_ups = Vec::new();
                for (child, outcomes) in chained {
                    outcomes.iter().for_each(|o| tally.add(o));
                    follow_ups.push(json!({"eventId": child.event.id(), "eventType": child.event.event_type(), "runs": outcomes}));
                }
                if outcome.unrecorded {
                    tracing::error!(
                        "{} {}: the result could not be recorded; the dead letter is left as it was, so make .autod/ writable and retry again",
                        record.handler,
                        record.event_id
                    );
                }
                tally.add(&outcome);
                json_runs.push(json!({"eventId": record.event_id, "outcome": outcome, "followUps": follow_ups}));
            }
            Err(msg) => {
                tracing::error!("{} {}: {msg}", record.handler, record.event_id);
                tally.failed += 1;
                tally.code = tally.code.worst(Code::Failed);
                json_runs.push(
                    json!({"eventId": record.event_id, "handler": record.handler, "error": msg}),
                );
            }
        }
    }
    let mut json_recovered = Vec::new();
    for (event, outcomes) in recovered {
        outcomes.iter().for_each(|o| tally.add(o));
        json_recovered.push(
            json!({"eventId": event.id(), "eventType": event.event_type(), "runs": outcomes}),
        );
    }
    let Tally { ok, failed, code } = tally;
    tracing::info!("retried {}: {ok} ok, {failed} failed", ok + failed);
    if g.json {
        output::json(
            &json!({"retried": json_runs, "queued": queued, "notDue": not_due, "recovered": json_recovered}),
        );
    }
    Ok(code)
}

/// Queues the retries of shared records (NATS); the pairs queued.
fn queue_retries(
    store: &super::dead::DeadLetters,
    shared: &[super::dead::Found],
    code: &mut Code,
) -> Vec<serde_json::Value> {
    let mut queued = Vec::new();
    for f in shared {
        let r = &f.record;
        match store.queue_retry(f) {
            Ok(()) => {
                tracing::info!("queued a retry of {} for {}", r.event_id, r.handler);
                queued.push(json!({"eventId": r.event_id, "handler": r.handler}));
            }
            Err(e) => {
                tracing::error!("{} {}: {e}", r.handler, r.event_id);
                *code = code.worst(Code::Failed);
            }
        }
    }
    queued
}

/// The events in processing/ that no live process is delivering, validated
/// again; `[]` while a daemon runs. One the project cannot take now stays
/// where it is, with the reason told.
fn left_over(
    project: &Project,
    intake: &std::sync::Mutex<crate::intake::Intake>,
) -> Vec<(crate::state::inbox::Claimed, crate::intake::Admitted)> {
    if project.state.daemon_running().is_some() {
        return Vec::new();
    }
    let Ok(claimed) = project.state.processing_recover() else {
        return Vec::new();
    };
    let max = project.config.validation.max_event_bytes;
    let mut out = Vec::new();
    for c in claimed {
        let bytes = match std::fs::read(&c.path) {
            Ok(b) if b.len() as u64 <= max => b,
            Ok(_) => {
                tracing::warn!(
                    "processing/{}: larger than max_event_bytes; left for `autod run`",
                    c.name
                );
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!("processing/{}: {e}", c.name);
                continue;
            }
        };
        match intake.lock().expect("intake lock").admit(&bytes, None) {
            Ok(a) => out.push((c, a)),
            Err(invalid) => tracing::warn!(
                "processing/{}: left where it is ({invalid}); `autod run` holds or rejects it and says why",
                c.name
            ),
        }
    }
    out
}

/// Delivers the left-over events like the daemon's recovery does (automatic
/// delivery: given-up pairs stay given up), chains included, and lets each
/// file go once every pair has an outcome.
async fn finish_left_over(
    engine: &Arc<crate::engine::Engine>,
    project: &Project,
    left: Vec<(crate::state::inbox::Claimed, crate::intake::Admitted)>,
) -> Vec<(Event, Vec<crate::engine::PairOutcome>)> {
    let mut out = Vec::new();
    for (claimed, admitted) in left {
        tracing::info!(
            "processing/{}: left by a process that stopped; delivering it",
            claimed.name
        );
        let event = Arc::new(admitted.event);
        let outcomes = engine
            .deliver(
                Arc::clone(&event),
                admitted.handlers,
                crate::engine::Mode::Automatic,
            )
            .await;
        let children = crate::engine::follow_ups_of(&outcomes);
        if outcomes.iter().all(crate::engine::PairOutcome::recorded)
            && let Err(e) = project.state.processing_done(&claimed)
        {
            tracing::warn!("{e}");
        }
        out.push(((*event).clone(), outcomes));
        engine
            .deliver_follow_ups(children, |child, outcomes| {
                out.push((child.event, outcomes))
            })
            .await;
    }
    out
}

/// The pairs a retry ran, and the exit code they make: one count for the
/// retried pairs, their chains' and the left-over events' alike.
struct Tally {
    ok: usize,
    failed: usize,
    code: Code,
}

impl Tally {
    fn add(&mut self, o: &crate::engine::PairOutcome) {
        if o.unrecorded {
            self.code = self.code.worst(Code::Usage);
        }
        if o.failed() {
            self.failed += 1;
            self.code = self.code.worst(Code::Failed);
        } else {
            self.ok += 1;
        }
    }
}
