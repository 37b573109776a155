//! `autod dead list|show|drop`: inspect and discard dead-letter records.

use anyhow::Result;
use serde_json::json;

use crate::cli::{DeadCommand, GlobalArgs};
use crate::exit::Code;
use crate::output;
use crate::project::Project;
use crate::state::dead::DeadLetter;

pub fn run(project: &Project, g: &GlobalArgs, cmd: &DeadCommand) -> Result<Code> {
    match cmd {
        DeadCommand::List { handler } => list(project, g, handler.as_deref()),
        DeadCommand::Show { event_id, handler } => show(project, g, event_id, handler.as_deref()),
        DeadCommand::Drop { event_ids, handler } => drop(project, g, event_ids, handler.as_deref()),
    }
}

fn records(project: &Project, handler: Option<&str>) -> (Vec<DeadLetter>, Code) {
    let mut code = Code::Success;
    let mut out = Vec::new();
    for r in project.state.dead_list() {
        match r {
            Ok(r) if handler.is_none_or(|h| h == r.handler) => out.push(r),
            Ok(_) => {}
            Err(e) => {
                tracing::error!("{e}");
                code = Code::Failed;
            }
        }
    }
    (out, code)
}

fn list(project: &Project, g: &GlobalArgs, handler: Option<&str>) -> Result<Code> {
    let (records, code) = records(project, handler);
    if g.json {
        let rows: Vec<_> = records
            .iter()
            .map(|r| {
                json!({
                    "eventId": r.event_id, "handler": r.handler, "eventType": r.event_type,
                    "state": r.state, "attempts": r.attempts, "maxAttempts": r.max_attempts,
                    "lastFailedAt": r.last_failed_at, "nextAttemptAt": r.next_attempt_at,
                    "lastExitCode": r.last_exit_code, "lastSignal": r.last_signal, "lastError": r.last_error,
                })
            })
            .collect();
        output::json(&rows);
        return Ok(code);
    }
    if records.is_empty() {
        tracing::info!("no dead letters");
        return Ok(code);
    }
    let rows: Vec<[String; 6]> = records
        .iter()
        .map(|r| {
            [
                r.handler.clone(),
                r.event_id.clone(),
                r.state.as_str().to_owned(),
                format!("{}/{}", r.attempts, r.max_attempts),
                r.next_attempt_at.clone().unwrap_or_else(|| "-".into()),
                summary(r),
            ]
        })
        .collect();
    let header = [
        "HANDLER",
        "EVENT",
        "STATE",
        "ATTEMPTS",
        "NEXT ATTEMPT",
        "LAST FAILURE",
    ]
    .map(String::from);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (w, cell) in widths.iter().zip(row) {
            line.push_str(&format!("{cell:<w$}  "));
        }
        line.push_str(&row[5]);
        if !output::line(line.trim_end()) {
            break;
        }
    }
    Ok(code)
}

/// "exit 1: <last stderr line>", "killed by SIGKILL", or the recorded error.
fn summary(r: &DeadLetter) -> String {
    if let Some(e) = &r.last_error {
        return e.clone();
    }
    let how = match (&r.last_exit_code, &r.last_signal) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("killed by {s}"),
        _ => r.last_result.clone(),
    };
    match r.stderr_tail.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(l) => format!("{how}: {}", l.trim()),
        None => how,
    }
}

fn matching(project: &Project, event_id: &str, handler: Option<&str>) -> Vec<DeadLetter> {
    records(project, handler)
        .0
        .into_iter()
        .filter(|r| r.event_id == event_id)
        .collect()
}

fn show(project: &Project, g: &GlobalArgs, event_id: &str, handler: Option<&str>) -> Result<Code> {
    let found = matching(project, event_id, handler);
    if found.is_empty() {
        anyhow::bail!("no dead letter for eventId {event_id} (see `autod dead list`)");
    }
    for r in &found {
        if g.json {
            output::json(r);
            continue;
        }
        let mut text = format!(
            "{} for {} ({})\n  state:        {} after {}/{} attempts\n  first failed: {}\n  last failed:  {}\n  next attempt: {}\n  last failure: {}\n  event:        {}\n",
            r.handler,
            r.event_id,
            r.event_type,
            r.state.as_str(),
            r.attempts,
            r.max_attempts,
            r.first_failed_at,
            r.last_failed_at,
            r.next_attempt_at
                .as_deref()
                .unwrap_or("- (not retried automatically)"),
            summary(r),
            r.event,
        );
        for (name, tail) in [("stderr", &r.stderr_tail), ("stdout", &r.stdout_tail)] {
            if !tail.is_empty() {
                text.push_str(&format!("  --- {name} (last {} bytes) ---\n", tail.len()));
                for l in tail.lines() {
                    text.push_str(&format!("  {l}\n"));
                }
            }
        }
        if !output::line(text.trim_end()) {
            break;
        }
    }
    Ok(Code::Success)
}

fn drop(
    project: &Project,
    g: &GlobalArgs,
    event_ids: &[String],
    handler: Option<&str>,
) -> Result<Code> {
    let mut code = Code::Success;
    let mut dropped = Vec::new();
    for id in event_ids {
        let found = matching(project, id, handler);
        if found.is_empty() {
            tracing::error!("no dead letter for eventId {id}");
            code = code.worst(Code::Usage);
        }
        for r in found {
            project.state.dead_remove(&r.handler, &r.event_id)?;
            tracing::info!("dropped {} for {}", r.handler, r.event_id);
            dropped.push(json!({"eventId": r.event_id, "handler": r.handler}));
        }
    }
    if g.json {
        output::json(&dropped);
    }
    Ok(code)
}
