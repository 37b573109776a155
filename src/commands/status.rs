//! `autod status`: what is waiting, running and failed, at a glance.

use anyhow::Result;
use serde_json::json;

use crate::cli::GlobalArgs;
use crate::exit::Code;
use crate::log;
use crate::output;
use crate::project::Project;
use crate::state::dead::DeadState;

const LAST_FAILURES: usize = 5;

pub fn run(project: &Project, g: &GlobalArgs) -> Result<Code> {
    let inbox = project.state.inbox_depth();
    let held = project.state.held();
    let in_flight = project.state.processing_depth().saturating_sub(held.len());
    let (mut waiting, mut exhausted, mut permanent, mut unreadable) = (0, 0, 0, 0);
    for r in project.state.dead_list() {
        match r.map(|r| r.state) {
            Ok(DeadState::Waiting) => waiting += 1,
            Ok(DeadState::Exhausted) => exhausted += 1,
            Ok(DeadState::Permanent) => permanent += 1,
            Err(_) => unreadable += 1,
        }
    }
    let mut failures = Vec::new();
    // Read newest first: a pair seen succeeding is fixed, and its older
    // failures are history, not something to look at now.
    let mut fixed = std::collections::HashSet::new();
    for file in project.run_log().files().iter().rev() {
        for (run, _) in log::read_lines(file)?.into_iter().rev() {
            let pair = (run.event_id.clone(), run.handler.clone());
            if matches!(run.result.as_str(), "ok" | "skipped") {
                fixed.insert(pair);
            } else if matches!(
                run.result.as_str(),
                "failed" | "timeout" | "dead" | "rejected"
            ) && (run.handler == "-" || !fixed.contains(&pair))
            {
                failures.push(run);
                if failures.len() == LAST_FAILURES {
                    break;
                }
            }
        }
        if failures.len() == LAST_FAILURES {
            break;
        }
    }
    let daemon = project.state.daemon_running();
    let uptime = |started: &str| {
        crate::time::parse(started)
            .and_then(|t| (crate::time::now() - t).to_std().ok())
            .map(|d| {
                humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
            })
            .unwrap_or_default()
    };
    if g.json {
        output::json(&json!({
            "root": project.root,
            "daemon": daemon.as_ref().map(|d| json!({"pid": d.pid, "startedAt": d.started_at, "version": d.version})),
            "inbox": inbox,
            "inFlight": if daemon.is_some() { in_flight } else { 0 },
            // Claimed and not finished: in flight under a daemon, else left
            // for the next start's recovery.
            "processing": in_flight,
            "held": held.iter().map(|(file, reason)| json!({"file": file, "reason": reason})).collect::<Vec<_>>(),
            "dead": {"waiting": waiting, "exhausted": exhausted, "permanent": permanent, "unreadable": unreadable},
            "lastFailures": failures,
        }));
        return Ok(Code::Success);
    }
    let mut lines = vec![
        format!("root:         {}", project.root.display()),
        format!(
            "daemon:       {}",
            daemon.as_ref().map_or_else(
                || "not running (start it with `autod run`)".to_owned(),
                |d| format!("pid {}, up {}", d.pid, uptime(&d.started_at))
            )
        ),
        format!("inbox:        {inbox}"),
        // Without a daemon nothing is in flight: what is in processing/ was
        // left by one that stopped, and the next start delivers it.
        match (&daemon, in_flight) {
            (None, n) if n > 0 => {
                format!(
                    "in flight:    0 ({n} left in processing/, delivered again when `autod run` starts)"
                )
            }
            _ => format!("in flight:    {in_flight}"),
        },
        format!(
            "held:         {}",
            if held.is_empty() {
                "0".to_owned()
            } else {
                format!(
                    "{} (accepted, waiting for the project to be fixed; they run once it is)",
                    held.len()
                )
            }
        ),
        format!("dead letters: {waiting} waiting, {exhausted} exhausted, {permanent} permanent"),
    ];
    for (file, reason) in &held {
        lines.push(format!("  processing/{file}: {reason}"));
    }
    if unreadable > 0 {
        lines.push(format!(
            "              {unreadable} unreadable (see `autod dead list`)"
        ));
    }
    if !failures.is_empty() {
        lines.push("last failures:".into());
        for f in &failures {
            let err = f.rest.get("error").and_then(|v| v.as_str()).unwrap_or("");
            lines.push(format!(
                "  {}  {:<8} {} {}{}  {err}",
                f.ts,
                f.result,
                f.handler,
                f.event_id,
                log::about(f)
            ));
        }
    }
    for l in lines {
        if !output::line(&l) {
            break;
        }
    }
    Ok(Code::Success)
}
