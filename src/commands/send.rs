//! `autod send FILE... | -`: validate, hand over to the queue (the inbox, or
//! the NATS stream of `[queue]`), print the eventIds.

use anyhow::Result;
use serde_json::json;

use crate::cli::{GlobalArgs, SendArgs};
use crate::exit::Code;
use crate::intake::{self, InputError, Intake};
use crate::output;
use crate::project::Project;
use crate::queue::{Queue, Receipt};
use crate::schema::Invalid;

pub fn run(project: &Project, g: &GlobalArgs, args: &SendArgs) -> Result<Code> {
    let max_bytes = project.config.validation.max_event_bytes;
    let mut intake = Intake::new(&project.root, &project.config)?;
    // Opened at the first valid event, so that an invalid one is told as
    // such (exit 3) even with the server down; a queue that cannot be opened
    // takes nothing, and says so once.
    let mut queue: Option<Option<Queue>> = None;
    let mut code = Code::Success;
    let mut queued = 0usize;
    for input in intake::read_inputs(&args.files, max_bytes)? {
        let admitted = match input.bytes {
            Ok(bytes) => intake.admit(&bytes, None),
            Err(InputError::TooLarge(size)) => {
                Err(Invalid::Rejected(vec![crate::event::too_large(
                    size, max_bytes,
                )]))
            }
            Err(InputError::Unreadable(msg)) => {
                tracing::error!("{}: {msg}", input.label);
                code = code.worst(Code::Usage);
                continue;
            }
        };
        match admitted {
            Ok(a) => {
                let opened = queue.get_or_insert_with(|| {
                    Queue::open(project)
                        .inspect_err(|e| tracing::error!("nothing sent: {e}"))
                        .ok()
                });
                let Some(opened) = opened else {
                    tracing::debug!("{}: not sent", input.label);
                    code = code.worst(Code::Failed);
                    continue;
                };
                // A valid event autod could not store (disk full, read-only) is
                // autod's failure, not a usage error: exit 1, and go on.
                let receipt = match opened.put(&a.event) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("{}: not queued: {e}", input.label);
                        code = code.worst(Code::Failed);
                        continue;
                    }
                };
                queued += 1;
                let mut line = json!({"input": input.label, "eventId": a.event.id(), "eventType": a.event.event_type(), "status": "queued"});
                match &receipt {
                    Receipt::Folder(path) => {
                        tracing::debug!("{}: queued as {}", input.label, path.display());
                    }
                    Receipt::Nats(ack) => {
                        tracing::debug!(
                            "{}: stored in stream {} as message {}{}",
                            input.label,
                            ack.stream,
                            ack.sequence,
                            if ack.duplicate {
                                " (a duplicate: sent before)"
                            } else {
                                ""
                            }
                        );
                        line["stream"] = json!(ack.stream);
                        line["sequence"] = json!(ack.sequence);
                        line["duplicate"] = json!(ack.duplicate);
                    }
                }
                if g.json {
                    output::json(&line);
                } else {
                    output::line(a.event.id());
                }
            }
            Err(invalid) => {
                intake::tell_refusal(&input.label, &invalid);
                if g.json {
                    output::json(&intake::refusal_json(&input.label, &invalid));
                }
                code = code.worst(intake::refusal_code(&invalid));
            }
        }
    }
    if queue.flatten().is_some_and(|q| q.is_local()) {
        warn_if_no_daemon(project, queued);
    }
    Ok(code)
}

/// Events were queued: say so if nobody will deliver them yet.
pub(super) fn warn_if_no_daemon(project: &Project, queued: usize) {
    if queued > 0 && project.state.daemon_running().is_none() {
        tracing::warn!(
            "no `autod run` is running for {}; the events wait in .autod/inbox/ until one starts",
            project.root.display()
        );
    }
}
