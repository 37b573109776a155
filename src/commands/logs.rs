//! `autod log`: query (and follow) the run log.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::time::Duration;

use anyhow::Result;

use crate::cli::{GlobalArgs, LogArgs};
use crate::exit::Code;
use crate::log::{self, LoggedRun, RunResult};
use crate::output;
use crate::project::Project;
use crate::time::{self, Timestamp};

struct Filter {
    event_id: Option<String>,
    handler: Option<String>,
    result: Option<String>,
    since: Option<Timestamp>,
}

impl Filter {
    fn keeps(&self, run: &LoggedRun) -> bool {
        self.event_id.as_ref().is_none_or(|e| *e == run.event_id)
            && self.handler.as_ref().is_none_or(|h| *h == run.handler)
            && self.result.as_ref().is_none_or(|r| *r == run.result)
            && self
                .since
                .is_none_or(|s| time::parse(&run.ts).is_some_and(|t| t >= s))
    }
}

pub fn run(project: &Project, g: &GlobalArgs, args: &LogArgs) -> Result<Code> {
    if let Some(r) = &args.result
        && !RunResult::ALL.iter().any(|x| x.as_str() == r)
    {
        let all: Vec<_> = RunResult::ALL.iter().map(|r| r.as_str()).collect();
        anyhow::bail!("--result {r}: not a result; use one of {}", all.join(", "));
    }
    let filter = Filter {
        event_id: args.event_id.clone(),
        handler: args.handler.clone(),
        result: args.result.clone(),
        since: args
            .since
            .as_deref()
            .map(time::parse_since)
            .transpose()
            .map_err(anyhow::Error::msg)?,
    };
    let run_log = project.run_log();
    for file in run_log.files() {
        for (run, raw) in log::read_lines(&file)? {
            if filter.keeps(&run) && !print(g, &run, &raw) {
                return Ok(Code::Success);
            }
        }
    }
    if args.follow {
        follow(&run_log.path(), g, &filter)?;
    }
    Ok(Code::Success)
}

/// `false` once stdout is closed.
fn print(g: &GlobalArgs, run: &LoggedRun, raw: &str) -> bool {
    if g.json {
        return output::line(raw);
    }
    let s = |k: &str| {
        run.rest
            .get(k)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
    };
    let mut line = format!(
        "{}  {:<8} {:<20} {}",
        run.ts, run.result, run.handler, run.event_id
    );
    if run.result == "rejected" {
        line.push_str(&log::about(run));
    } else if let Some(t) = s("eventType") {
        line.push_str(&format!("  {t}"));
    }
    if let Some(d) = s("durationMs") {
        line.push_str(&format!("  {d}ms"));
    }
    if let Some(e) = s("error") {
        line.push_str(&format!("  {e}"));
    } else if let Some(c) = s("exitCode").filter(|c| c != "0") {
        line.push_str(&format!("  exit {c}"));
    }
    output::line(&line)
}

/// Polls for appended lines; a shorter file means it was rotated, so start over.
fn follow(path: &std::path::Path, g: &GlobalArgs, filter: &Filter) -> Result<()> {
    let mut pos = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if meta.len() < pos {
            pos = 0;
        }
        if meta.len() == pos {
            continue;
        }
        let mut f = std::fs::File::open(path)?;
        f.seek(SeekFrom::Start(pos))?;
        let mut reader = BufReader::new(f);
        let mut buf = String::new();
        // Only whole lines: a line still being written is read on the next pass.
        while reader.read_line(&mut buf)? > 0 && buf.ends_with('\n') {
            pos += buf.len() as u64;
            if let Ok(run) = serde_json::from_str::<LoggedRun>(buf.trim_end())
                && filter.keeps(&run)
                && !print(g, &run, buf.trim_end())
            {
                return Ok(());
            }
            buf.clear();
        }
    }
}
