//! `autod dead list|show|drop`: inspect and discard dead-letter records.
//!
//! With `[queue] backend = "nats"` the records of every host are in the
//! dead-letter stream, so these commands read it (and this host's
//! `.autod/dead/`, where `autod dispatch` still puts its own failures).

use anyhow::Result;
use serde_json::json;

use crate::cli::{DeadCommand, GlobalArgs};
use crate::config::QueueConfig;
use crate::exit::Code;
use crate::output;
use crate::project::Project;
use crate::queue::nats::Connection;
use crate::state::dead::DeadLetter;

pub fn run(project: &Project, g: &GlobalArgs, cmd: &DeadCommand) -> Result<Code> {
    match cmd {
        DeadCommand::List { handler } => list(project, g, handler.as_deref()),
        DeadCommand::Show { event_id, handler } => show(project, g, event_id, handler.as_deref()),
        DeadCommand::Drop { event_ids, handler } => drop(project, g, event_ids, handler.as_deref()),
    }
}

/// The dead letters of this project: `.autod/dead/`, and the dead-letter
/// stream when the queue is NATS (a pair in both is the stream's).
pub(super) struct DeadLetters {
    nats: Option<(tokio::runtime::Runtime, Connection)>,
}

/// One record, and whether it is the shared one (in the stream).
pub(super) struct Found {
    pub record: DeadLetter,
    pub shared: bool,
}

impl DeadLetters {
    pub fn open(project: &Project) -> Result<DeadLetters> {
        let nats = match &project.config.queue {
            QueueConfig::Folder => None,
            QueueConfig::Nats(config) => {
                let rt = super::runtime()?;
                let conn = rt.block_on(Connection::open(config))?;
                Some((rt, conn))
            }
        };
        Ok(DeadLetters { nats })
    }

    pub fn list(&self, project: &Project, handler: Option<&str>) -> (Vec<Found>, Code) {
        let mut code = Code::Success;
        let mut out: Vec<Found> = Vec::new();
        if let Some((rt, conn)) = &self.nats {
            match rt.block_on(conn.dead_list()) {
                Ok(records) => {
                    for r in records {
                        match r {
                            Ok(record) => out.push(Found {
                                record,
                                shared: true,
                            }),
                            Err(e) => {
                                tracing::error!("{e}");
                                code = Code::Failed;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!("{e}");
                    code = Code::Failed;
                }
            }
        }
        for r in project.state.dead_list() {
            match r {
                Ok(record)
                    if !out.iter().any(|f| {
                        f.record.handler == record.handler && f.record.event_id == record.event_id
                    }) =>
                {
                    out.push(Found {
                        record,
                        shared: false,
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!("{e}");
                    code = Code::Failed;
                }
            }
        }
        out.retain(|f| handler.is_none_or(|h| h == f.record.handler));
        (out, code)
    }

    /// Removes the record wherever it is (a local copy of a shared one too).
    pub fn remove(&self, project: &Project, found: &Found) -> Result<()> {
        let r = &found.record;
        if found.shared
            && let Some((rt, conn)) = &self.nats
        {
            rt.block_on(conn.dead_remove(&r.handler, &r.event_id))?;
        }
        project.state.dead_remove(&r.handler, &r.event_id)?;
        Ok(())
    }

    /// Queues a shared record's retry for any host's worker.
    pub fn queue_retry(&self, found: &Found) -> Result<()> {
        let Some((rt, conn)) = &self.nats else {
            anyhow::bail!("not on a NATS queue");
        };
        rt.block_on(conn.retry_publish(&found.record, true))?;
        Ok(())
    }
}

fn records(project: &Project, handler: Option<&str>) -> Result<(Vec<DeadLetter>, Code)> {
    let (found, code) = DeadLetters::open(project)?.list(project, handler);
    Ok((found.into_iter().map(|f| f.record).collect(), code))
}

fn list(project: &Project, g: &GlobalArgs, handler: Option<&str>) -> Result<Code> {
    let (records, code) = records(project, handler)?;
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

fn matching(project: &Project, event_id: &str, handler: Option<&str>) -> Result<Vec<DeadLetter>> {
    Ok(records(project, handler)?
        .0
        .into_iter()
        .filter(|r| r.event_id == event_id)
        .collect())
}

fn show(project: &Project, g: &GlobalArgs, event_id: &str, handler: Option<&str>) -> Result<Code> {
    let found = matching(project, event_id, handler)?;
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
    let store = DeadLetters::open(project)?;
    let (all, _) = store.list(project, handler);
    for id in event_ids {
        let found: Vec<&Found> = all.iter().filter(|f| &f.record.event_id == id).collect();
        if found.is_empty() {
            tracing::error!("no dead letter for eventId {id}");
            code = code.worst(Code::Usage);
        }
        for f in found {
            store.remove(project, f)?;
            let r = &f.record;
            tracing::info!("dropped {} for {}", r.handler, r.event_id);
            dropped.push(json!({"eventId": r.event_id, "handler": r.handler}));
        }
    }
    if g.json {
        output::json(&dropped);
    }
    Ok(code)
}
