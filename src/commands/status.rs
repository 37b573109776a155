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
    let count = |dir: std::path::PathBuf| {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        let n = e.file_name();
                        let n = n.to_string_lossy();
                        !n.starts_with('.') && !n.ends_with(".tmp") && e.path().is_file()
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let inbox = count(project.state.inbox_dir());
    let in_flight = count(project.state.processing_dir());
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
    for file in project.run_log().files().iter().rev() {
        for (run, _) in log::read_lines(file)?.into_iter().rev() {
            if matches!(
                run.result.as_str(),
                "failed" | "timeout" | "dead" | "rejected"
            ) {
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
    let daemon_pid: Option<u32> = None; // `autod run` is not built yet: no daemon can hold the root.
    if g.json {
        output::json(&json!({
            "root": project.root,
            "daemon": daemon_pid.map(|pid| json!({"pid": pid})),
            "inbox": inbox,
            "inFlight": in_flight,
            "dead": {"waiting": waiting, "exhausted": exhausted, "permanent": permanent, "unreadable": unreadable},
            "lastFailures": failures,
        }));
        return Ok(Code::Success);
    }
    let mut lines = vec![
        format!("root:         {}", project.root.display()),
        format!(
            "daemon:       {}",
            daemon_pid.map_or_else(|| "not running".to_owned(), |p| format!("pid {p}"))
        ),
        format!("inbox:        {inbox}"),
        format!("in flight:    {in_flight}"),
        format!("dead letters: {waiting} waiting, {exhausted} exhausted, {permanent} permanent"),
    ];
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
                "  {}  {:<8} {} {}  {err}",
                f.ts, f.result, f.handler, f.event_id
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
