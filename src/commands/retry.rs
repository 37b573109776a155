//! `autod retry`: run dead-lettered pairs again now.

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
    // A dead letter may outlive its handler's config entry (`autod dead drop`
    // cleans those up), so a name with records is accepted too.
    if let Some(name) = &args.handler
        && !project
            .state
            .dead_list()
            .iter()
            .flatten()
            .any(|r| &r.handler == name)
    {
        super::known_handler(project, name)?;
    }
    let now = time::now();
    let mut code = Code::Success;
    let mut chosen: Vec<DeadLetter> = Vec::new();
    let mut not_due = 0usize;
    let mut next_due: Option<String> = None;
    for record in project.state.dead_list() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                code = code.worst(Code::Failed);
                continue;
            }
        };
        if args.handler.as_ref().is_some_and(|h| *h != record.handler) {
            continue;
        }
        let named = args.event_ids.contains(&record.event_id);
        if !args.event_ids.is_empty() && !named {
            continue;
        }
        // Naming an event, or --all, is an explicit request: run it whatever its state.
        if named || args.all || record.is_due(now) {
            chosen.push(record);
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
        if !chosen.iter().any(|r| &r.event_id == id) {
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
    if chosen.is_empty() && !args.event_ids.is_empty() {
        // Each named id was reported above: no second message saying the same.
        if g.json {
            output::json(&json!({"retried": [], "notDue": not_due}));
        }
        return Ok(code);
    }
    if chosen.is_empty() {
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

    let intake = Arc::new(std::sync::Mutex::new(crate::intake::Intake::new(
        &project.root,
        &project.config,
    )?));
    let engine = Arc::new(project.chained_engine(crate::cli::jobs(args.jobs), intake));
    let rt = super::runtime()?;
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
    let mut ok = 0;
    let mut failed = 0;
    let mut json_runs = Vec::new();
    for (record, result) in results {
        match result {
            Ok((outcome, chained)) => {
                let mut follow_ups = Vec::new();
                for (child, outcomes) in chained {
                    for o in &outcomes {
                        if o.unrecorded {
                            code = code.worst(Code::Usage);
                        }
                        if o.failed() {
                            failed += 1;
                            code = code.worst(Code::Failed);
                        } else {
                            ok += 1;
                        }
                    }
                    follow_ups.push(json!({"eventId": child.event.id(), "eventType": child.event.event_type(), "runs": outcomes}));
                }
                if outcome.unrecorded {
                    tracing::error!(
                        "{} {}: the result could not be recorded; the dead letter is left as it was, so make .autod/ writable and retry again",
                        record.handler,
                        record.event_id
                    );
                    code = code.worst(Code::Usage);
                }
                if outcome.failed() {
                    failed += 1;
                    code = code.worst(Code::Failed);
                } else {
                    ok += 1;
                }
                json_runs.push(json!({"eventId": record.event_id, "outcome": outcome, "followUps": follow_ups}));
            }
            Err(msg) => {
                tracing::error!("{} {}: {msg}", record.handler, record.event_id);
                failed += 1;
                code = code.worst(Code::Failed);
                json_runs.push(
                    json!({"eventId": record.event_id, "handler": record.handler, "error": msg}),
                );
            }
        }
    }
    tracing::info!("retried {}: {ok} ok, {failed} failed", ok + failed);
    if g.json {
        output::json(&json!({"retried": json_runs, "notDue": not_due}));
    }
    Ok(code)
}
