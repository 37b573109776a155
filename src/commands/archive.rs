//! `autod archive prune`: the archive's retention and compaction, by hand
//! (the daemon does the same daily, see `daemon/archive.rs`).

use anyhow::{Context, Result};
use serde_json::json;

use crate::cli::{ArchiveCommand, GlobalArgs};
use crate::exit::Code;
use crate::output;
use crate::project::Project;
use crate::state::archive::Maintenance;

pub fn run(project: &Project, g: &GlobalArgs, cmd: &ArchiveCommand) -> Result<Code> {
    let ArchiveCommand::Prune { dry_run } = cmd;
    let retention = project.config.archive.retention;
    let done = project
        .state
        .archive_maintain(
            crate::time::now(),
            retention.0,
            in_use(&project.config),
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
        for line in describe(&done, *dry_run) {
            output::line(&line);
        }
    }
    Ok(Code::Success)
}

/// How long a per-event file may still be read by a handler that started
/// with it: the file is refreshed when a run starts if older than
/// [`crate::state::archive::REFRESH`], and a run lasts at most its timeout
/// and kill grace.
pub fn in_use(config: &crate::config::Config) -> std::time::Duration {
    let longest = config
        .handlers
        .iter()
        .map(|h| h.timeout.saturating_add(h.kill_grace))
        .max()
        .unwrap_or_default();
    crate::state::archive::REFRESH.saturating_add(longest)
}

/// What was done, for people: one line per day touched, and a summary.
pub fn describe(done: &Maintenance, dry_run: bool) -> Vec<String> {
    let (removed, compacted) = if dry_run {
        ("would remove", "would compact")
    } else {
        ("removed", "compacted")
    };
    let mut lines: Vec<String> = done
        .removed
        .iter()
        .map(|d| format!("{removed} {} ({} events, past retention)", d.day, d.events))
        .chain(
            done.compacted
                .iter()
                .map(|d| format!("{compacted} {} ({} events)", d.day, d.events)),
        )
        .collect();
    if done.migrated > 0 {
        lines.push(format!(
            "{} {} archived files of an earlier autod into their day",
            if dry_run { "would move" } else { "moved" },
            done.migrated
        ));
    }
    if done.kept_in_use > 0 {
        lines.push(format!(
            "kept {} per-event files a handler may still be reading; the next prune takes them",
            done.kept_in_use
        ));
    }
    for place in &done.unreadable {
        lines.push(format!(
            "left {place} in place: it is not an archived event (look at it, then delete it)"
        ));
    }
    if lines.is_empty() {
        lines.push("nothing to prune or compact".to_owned());
    }
    lines
}
