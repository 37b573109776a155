//! `autod send FILE... | -`: validate, queue in the inbox, print the eventIds.

use anyhow::Result;
use serde_json::json;

use crate::cli::{GlobalArgs, SendArgs};
use crate::exit::Code;
use crate::intake::{self, InputError, Intake};
use crate::output;
use crate::project::Project;
use crate::schema::Invalid;

pub fn run(project: &Project, g: &GlobalArgs, args: &SendArgs) -> Result<Code> {
    let max_bytes = project.config.validation.max_event_bytes;
    let mut intake = Intake::new(&project.root, &project.config)?;
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
                // A valid event autod could not store (disk full, read-only) is
                // autod's failure, not a usage error: exit 1, and go on.
                let path = match project.state.inbox_put(&a.event) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!("{}: not queued: {e}", input.label);
                        code = code.worst(Code::Failed);
                        continue;
                    }
                };
                queued += 1;
                tracing::debug!("{}: queued as {}", input.label, path.display());
                if g.json {
                    output::json(
                        &json!({"input": input.label, "eventId": a.event.id(), "eventType": a.event.event_type(), "status": "queued"}),
                    );
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
    warn_if_no_daemon(project, queued);
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
