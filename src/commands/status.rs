//! `autod status`: what is waiting, running and failed, at a glance.

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use crate::cli::GlobalArgs;
use crate::daemon::schedule;
use crate::exit::Code;
use crate::log;
use crate::output;
use crate::project::Project;
use crate::state::dead::DeadState;
use crate::time;

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
    let schedules = schedules(project);
    let watches = watches(project);
    let daemon = project.state.daemon_running();
    let uptime = |started: &str| {
        crate::time::parse(started)
            .and_then(|t| crate::time::since(t, crate::time::now()))
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
            "schedules": schedules,
            "watches": watches,
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
    if !schedules.is_empty() {
        lines.push("schedules:".into());
        for s in &schedules {
            let next = match (&s.next_local, &s.next) {
                (Some(local), Some(utc)) => format!("{local} ({utc})"),
                _ => "never".to_owned(),
            };
            let last = s.last.as_deref().unwrap_or("never");
            lines.push(format!(
                "  {:<16} {:<14} next {next}  last {last}  → {}",
                s.name, s.cron, s.event_type
            ));
        }
    }
    if !watches.is_empty() {
        lines.push("watches:".into());
        for w in &watches {
            let missing = if w.exists { "" } else { "  (folder missing)" };
            lines.push(format!(
                "  {:<16} {}{} → {}{missing}",
                w.name,
                w.path,
                w.glob
                    .as_deref()
                    .map(|g| format!(" ({g})"))
                    .unwrap_or_default(),
                w.event_type
            ));
        }
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleStatus {
    name: String,
    cron: String,
    timezone: String,
    event_type: String,
    /// UTC; `None` if the expression never fires again.
    next: Option<String>,
    /// The same instant on the schedule's own clock, with its UTC offset.
    next_local: Option<String>,
    /// UTC, from `.autod/schedules/<name>.json`; `None` before the first fire.
    last: Option<String>,
}

/// Each schedule's next fire from now and its last recorded one. The config
/// was checked at load, so an expression that fails here is skipped quietly.
fn schedules(project: &Project) -> Vec<ScheduleStatus> {
    let now = time::now();
    project
        .config
        .schedules
        .iter()
        .filter_map(|s| {
            let (expr, zone) = schedule::parse(s).ok()?;
            let next = schedule::next_after(&expr, &zone, now);
            Some(ScheduleStatus {
                name: s.name.clone(),
                cron: s.cron.clone(),
                timezone: s.timezone.clone().unwrap_or_else(|| "local".to_owned()),
                event_type: s.event_type.clone(),
                next: next.map(time::format),
                next_local: next.map(|n| super::schedules::local(&zone, n, "%Y-%m-%dT%H:%M:%S%:z")),
                last: project.state.schedule_last_fire(&s.name).map(time::format),
            })
        })
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WatchStatus {
    name: String,
    /// As written in autod.toml.
    path: String,
    glob: Option<String>,
    event_type: String,
    exists: bool,
}

fn watches(project: &Project) -> Vec<WatchStatus> {
    project
        .config
        .watches
        .iter()
        .map(|w| WatchStatus {
            name: w.name.clone(),
            path: w.path.clone(),
            glob: w.glob.clone(),
            event_type: w.event_type.clone(),
            exists: w.dir(&project.root).is_dir(),
        })
        .collect()
}
