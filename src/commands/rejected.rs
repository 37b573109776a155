//! `autod rejected list|show|requeue`: inbox files the daemon refused for their
//! own content, and the way back once they (or their schema) are fixed: the
//! inbox again, or with `[queue] backend = "nats"` the stream.

use anyhow::Result;
use serde_json::{Value, json};

use crate::cli::{GlobalArgs, RejectedCommand};
use crate::exit::Code;
use crate::intake::{self, Intake};
use crate::output;
use crate::project::Project;
use crate::queue::Queue;
use crate::state::inbox::RejectedFile;

pub fn run(project: &Project, g: &GlobalArgs, cmd: &RejectedCommand) -> Result<Code> {
    match cmd {
        RejectedCommand::List => list(project, g),
        RejectedCommand::Show { name } => show(project, g, name),
        RejectedCommand::Requeue { names, all } => requeue(project, g, names, *all),
    }
}

fn errors(f: &RejectedFile) -> Vec<Value> {
    f.why
        .as_ref()
        .and_then(|w| w.get("errors"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn rejected_at(f: &RejectedFile) -> &str {
    f.why
        .as_ref()
        .and_then(|w| w.get("rejectedAt"))
        .and_then(Value::as_str)
        .unwrap_or("-")
}

fn first_error(f: &RejectedFile) -> String {
    errors(f).first().map_or_else(
        || "(no .error.json beside it)".to_owned(),
        |e| {
            let pointer = e.get("pointer").and_then(Value::as_str).unwrap_or("");
            let message = e.get("message").and_then(Value::as_str).unwrap_or("");
            if pointer.is_empty() {
                message.to_owned()
            } else {
                format!("{pointer}: {message}")
            }
        },
    )
}

fn list(project: &Project, g: &GlobalArgs) -> Result<Code> {
    let files = project.state.rejected_list();
    if g.json {
        let rows: Vec<Value> = files
            .iter()
            .map(|f| json!({"name": f.name, "rejectedAt": rejected_at(f), "errors": errors(f)}))
            .collect();
        output::json(&rows);
        return Ok(Code::Success);
    }
    if files.is_empty() {
        tracing::info!("no rejected files");
        return Ok(Code::Success);
    }
    for f in &files {
        if !output::line(&format!(
            "{}  {}  {}",
            rejected_at(f),
            f.name,
            first_error(f)
        )) {
            break;
        }
    }
    Ok(Code::Success)
}

fn find(project: &Project, name: &str) -> Result<RejectedFile> {
    project.state.rejected_get(name).ok_or_else(|| {
        anyhow::anyhow!(
            "no rejected file named {name:?} in .autod/rejected/ (see `autod rejected list`)"
        )
    })
}

fn show(project: &Project, g: &GlobalArgs, name: &str) -> Result<Code> {
    let f = find(project, name)?;
    let content = std::fs::read(&f.path)?;
    if g.json {
        let event = serde_json::from_slice::<Value>(&content)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&content).into_owned()));
        output::json(
            &json!({"name": f.name, "rejectedAt": rejected_at(&f), "errors": errors(&f), "content": event}),
        );
        return Ok(Code::Success);
    }
    output::line(&format!("{}  (rejected {})", f.name, rejected_at(&f)));
    for e in errors(&f) {
        let pointer = e.get("pointer").and_then(Value::as_str).unwrap_or("");
        let message = e.get("message").and_then(Value::as_str).unwrap_or("");
        output::line(&format!(
            "  {}: {message}",
            if pointer.is_empty() {
                "(event)"
            } else {
                pointer
            }
        ));
    }
    output::line("content:");
    output::line(&String::from_utf8_lossy(&content));
    Ok(Code::Success)
}

/// Each file is validated as `autod send` would; only those that pass go back
/// to the inbox, so a requeue never just moves a file round in a circle. With
/// NATS the event it holds is published (as `autod send` would), and the
/// file removed only once the stream has it.
fn requeue(project: &Project, g: &GlobalArgs, names: &[String], all: bool) -> Result<Code> {
    let files: Vec<RejectedFile> = if all {
        project.state.rejected_list()
    } else {
        names
            .iter()
            .map(|n| find(project, n))
            .collect::<Result<_>>()?
    };
    let max_bytes = project.config.validation.max_event_bytes;
    let mut intake = Intake::new(&project.root, &project.config)?;
    // Before any file is read: a queue that is down takes nothing, and says so once.
    let queue = match Queue::open(project) {
        Ok(q) => q,
        Err(e) => {
            tracing::error!("nothing requeued: {e}");
            return Ok(Code::Failed);
        }
    };
    let mut code = Code::Success;
    let mut queued = 0usize;
    for f in files {
        let label = format!("rejected/{}", f.name);
        let size = std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0);
        let verdict = if size > max_bytes {
            Err(crate::schema::Invalid::Rejected(vec![
                crate::event::too_large(size, max_bytes),
            ]))
        } else {
            intake.admit(&std::fs::read(&f.path)?, None)
        };
        let requeued = match (&verdict, &queue) {
            (Err(_), _) => Ok(()),
            (Ok(_), Queue::Folder(state)) => {
                state.rejected_requeue(&f).map(drop).map_err(|e| e.to_string())
            }
            (Ok(a), Queue::Nats(_)) => match queue.put(&a.event) {
                Err(e) => Err(e.to_string()),
                Ok(_) => project.state.rejected_remove(&f).map_err(|e| {
                    format!(
                        "its event was published, but the file stays: {e}; remove it by hand (requeued again, the stream would drop it as a duplicate, or its done markers skip it)"
                    )
                }),
            },
        };
        match verdict {
            Ok(_) => match requeued {
                Ok(_) => {
                    queued += 1;
                    if g.json {
                        output::json(&json!({"name": f.name, "status": "queued"}));
                    } else {
                        output::line(&format!("{}: queued again", f.name));
                    }
                }
                Err(e) => {
                    tracing::error!("{label}: not queued: {e}");
                    code = code.worst(Code::Failed);
                }
            },
            Err(invalid) => {
                let violations = intake::refusal_violations(&invalid);
                for v in &violations {
                    tracing::error!("{label}: still rejected {v}");
                }
                if g.json {
                    output::json(
                        &json!({"name": f.name, "status": "rejected", "errors": violations}),
                    );
                }
                code = code.worst(intake::refusal_code(&invalid));
            }
        }
    }
    if queue.is_local() {
        super::send::warn_if_no_daemon(project, queued);
    }
    Ok(code)
}
