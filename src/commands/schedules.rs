//! `autod schedules`: each schedule's next fire times; `autod schedules fire
//! NAME`: one fire now, into the inbox, as the daemon would send it.

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::cli::{GlobalArgs, SchedulesArgs, SchedulesCommand};
use crate::config::ScheduleConfig;
use crate::daemon::schedule;
use crate::exit::Code;
use crate::intake::{self, Intake};
use crate::output;
use crate::project::Project;
use crate::time::{self, Timestamp};
use crate::zone::Zone;

pub fn run(project: &Project, g: &GlobalArgs, args: &SchedulesArgs) -> Result<Code> {
    match &args.action {
        Some(SchedulesCommand::Fire { name }) => fire(project, g, name),
        None => list(project, g, args),
    }
}

fn list(project: &Project, g: &GlobalArgs, args: &SchedulesArgs) -> Result<Code> {
    let after = match &args.after {
        None => time::now(),
        Some(s) => time::parse(s).ok_or_else(|| {
            anyhow::anyhow!(
                "--after {s:?} is not an RFC 3339 time; write it like 2026-11-24T09:00:00Z"
            )
        })?,
    };
    let schedules = &project.config.schedules;
    let mut rows = Vec::new();
    for s in schedules {
        // autod.toml was checked when the project opened; a schedule that
        // still does not parse is named rather than hidden.
        let (expr, zone) =
            schedule::parse(s).map_err(|e| anyhow::anyhow!("schedule {:?}: {e}", s.name))?;
        let fires = schedule::next_fires(&expr, &zone, after, usize::from(args.count));
        rows.push((s, zone, fires));
    }
    if g.json {
        let out: Vec<Value> = rows
            .iter()
            .map(|(s, zone, fires)| {
                json!({
                    "name": s.name,
                    "cron": s.cron,
                    "timezone": s.timezone,
                    "zone": zone.name(),
                    "eventType": s.event_type,
                    "catchUp": s.catch_up.as_deref().unwrap_or("last"),
                    "next": fires.iter().map(|f| json!({
                        "local": local(zone, *f, "%Y-%m-%dT%H:%M:%S%:z"),
                        "utc": utc(*f),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        output::json(&out);
        return Ok(Code::Success);
    }
    if rows.is_empty() {
        tracing::info!(
            "no schedules in autod.toml; add a [[schedules]] section (README: \"The daemon\")"
        );
    }
    for (s, zone, fires) in &rows {
        let head = format!(
            "{}  {}  {}  -> {}",
            s.name,
            s.cron,
            zone.name(),
            s.event_type
        );
        if !output::line(&head) {
            break;
        }
        if fires.is_empty() {
            output::line("  no more fires");
        }
        for f in fires {
            let line = format!(
                "  {}  {}",
                local(zone, *f, "%Y-%m-%d %H:%M:%S %:z %Z"),
                utc(*f)
            );
            if !output::line(&line) {
                return Ok(Code::Success);
            }
        }
    }
    Ok(Code::Success)
}

fn fire(project: &Project, g: &GlobalArgs, name: &str) -> Result<Code> {
    let Some(s) = project.config.schedules.iter().find(|s| s.name == name) else {
        bail!(
            "no schedule {name:?} in autod.toml (known: {})",
            known(&project.config.schedules)
        );
    };
    let now = time::now();
    let obj = schedule::fire_event(s, schedule::manual_event_id(&s.name), now);
    let mut intake = Intake::new(&project.root, &project.config)?;
    let admitted = match intake.admit_object(obj) {
        Ok(a) => a,
        Err(invalid) => {
            let errors = intake::refusal_violations(&invalid);
            for v in &errors {
                tracing::error!("cron:{name}: rejected {v}");
            }
            if g.json {
                output::json(&json!({"schedule": name, "status": "rejected", "errors": errors}));
            }
            return Ok(intake::refusal_code(&invalid));
        }
    };
    // The queue of `[queue]`: the inbox, or the NATS stream any host pulls from.
    let queued = crate::queue::Queue::open(project).and_then(|q| {
        q.put(&admitted.event)?;
        Ok(q)
    });
    let queue = match queued {
        Ok(q) => q,
        Err(e) => {
            tracing::error!("cron:{name}: not queued: {e}");
            return Ok(Code::Failed);
        }
    };
    if g.json {
        output::json(&json!({
            "schedule": name,
            "eventId": admitted.event.id(),
            "eventType": admitted.event.event_type(),
            "status": "queued",
        }));
    } else {
        output::line(admitted.event.id());
    }
    if queue.is_local() {
        super::send::warn_if_no_daemon(project, 1);
    }
    Ok(Code::Success)
}

fn known(schedules: &[ScheduleConfig]) -> String {
    if schedules.is_empty() {
        return "none; add a [[schedules]] section".to_owned();
    }
    schedules
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn utc(t: Timestamp) -> String {
    time::format_seconds(t)
}

/// `t` on the zone's own clock, written per `format` (strftime's).
pub(crate) fn local(zone: &Zone, t: Timestamp, format: &str) -> String {
    zone.strftime(t, format)
}
