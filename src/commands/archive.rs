//! `autod archive prune`: the archive's retention and compaction, by hand
//! (the daemon does the same daily, see `daemon/archive.rs`).

use anyhow::{Context, Result};
use serde_json::json;

use crate::cli::{ArchiveCommand, GlobalArgs};
use crate::exit::Code;
use crate::output;
use crate::project::Project;

pub fn run(project: &Project, g: &GlobalArgs, cmd: &ArchiveCommand) -> Result<Code> {
    let ArchiveCommand::Prune { dry_run } = cmd;
    let retention = project.config.archive.retention;
    let done = project
        .state
        .archive_maintain(
            crate::time::now(),
            retention.0,
            project.config.longest_run(),
            *dry_run,
        )
        .context("cannot prune .autod/archive/; fix what the message names and run `autod archive prune` again")?;
    if g.json {
        output::json(&json!({
            "dryRun": dry_run,
            "retention": retention.to_string(),
            "removed": done.removed,
            "compacted": done.compacted,
            "migrated": done.migrated,
            "keptInUse": done.kept_in_use,
            "unreadable": done.unreadable,
        }));
    } else {
        for line in done.describe(*dry_run) {
            output::line(&line);
        }
    }
    Ok(Code::Success)
}
