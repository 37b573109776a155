//! `autod log`: query (and follow) the run log.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, ErrorKind, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::cli::{GlobalArgs, LogArgs};
use crate::exit::Code;
use crate::log::{self, LoggedRun, RunResult};
use crate::output;
use crate::project::Project;
use crate::state::{Stream, atomic};
use crate::time::{self, Timestamp};

struct Filter {
    event_id: Option<String>,
    handler: Option<String>,
    result: Option<String>,
    host: Option<String>,
    since: Option<Timestamp>,
}

impl Filter {
    fn keeps(&self, run: &LoggedRun) -> bool {
        self.event_id.as_ref().is_none_or(|e| *e == run.event_id)
            && self.handler.as_ref().is_none_or(|h| *h == run.handler)
            && self.result.as_ref().is_none_or(|r| *r == run.result)
            && self.host.as_ref().is_none_or(|h| run.host() == Some(h))
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
        host: args.host.clone(),
        since: args
            .since
            .as_deref()
            .map(time::parse_since)
            .transpose()
            .map_err(anyhow::Error::msg)?,
    };
    let printer = Printer {
        g,
        project: args.output.then_some(project),
    };
    let run_log = project.run_log();
    // `-f` alone starts like `tail -f`: a screenful of context, not the whole log.
    let last = args.lines.or(args.follow.then_some(10));
    let mut kept = std::collections::VecDeque::new();
    let mut take = |run: LoggedRun, raw: &str| -> bool {
        if !filter.keeps(&run) {
            return true;
        }
        match last {
            None => printer.print(&run, raw),
            Some(0) => true,
            Some(n) => {
                if kept.len() == n {
                    kept.pop_front();
                }
                kept.push_back((run, raw.to_owned()));
                true
            }
        }
    };
    let current = run_log.path();
    let mut files = run_log.files();
    files.pop();
    for file in files {
        for (run, raw) in log::read_lines(&file)? {
            if !take(run, &raw) {
                return Ok(Code::Success);
            }
        }
    }
    // The current file is read the way `-f` reads it, so following starts
    // exactly where this pass stopped: no line missed, none printed twice.
    let mut pos = 0;
    if !read_new(&current, &mut pos, &mut take)? {
        return Ok(Code::Success);
    }
    for (run, raw) in &kept {
        if !printer.print(run, raw) {
            return Ok(Code::Success);
        }
    }
    if args.follow {
        follow(&current, pos, &printer, &filter)?;
    }
    Ok(Code::Success)
}

struct Printer<'a> {
    g: &'a GlobalArgs,
    /// Set with `--output`: where the runs' kept stdout and stderr are read.
    project: Option<&'a Project>,
}

impl Printer<'_> {
    /// `false` once stdout is closed.
    fn print(&self, run: &LoggedRun, raw: &str) -> bool {
        let kept = self.project.and_then(|p| {
            let attempt = run.rest.get("attempt")?.as_u64()?;
            let attempt = u32::try_from(attempt).ok()?;
            Some([Stream::Stdout, Stream::Stderr].map(|s| {
                (
                    s,
                    p.state.kept_output(&run.event_id, &run.handler, attempt, s),
                )
            }))
        });
        if self.g.json {
            let Some(kept) = kept else {
                return output::line(raw);
            };
            let Ok(mut v) = serde_json::from_str::<serde_json::Value>(raw) else {
                return output::line(raw);
            };
            for (stream, bytes) in kept {
                if let (Some(bytes), Some(obj)) = (bytes, v.as_object_mut()) {
                    obj.insert(
                        stream.as_str().to_owned(),
                        String::from_utf8_lossy(&bytes).into_owned().into(),
                    );
                }
            }
            return output::line(&v.to_string());
        }
        if !print(run) {
            return false;
        }
        for (stream, bytes) in kept.into_iter().flatten() {
            let Some(bytes) = bytes else { continue };
            for l in String::from_utf8_lossy(&bytes).lines() {
                if !output::line(&format!("    {}| {l}", stream.as_str())) {
                    return false;
                }
            }
        }
        true
    }
}

/// The human line; `false` once stdout is closed.
fn print(run: &LoggedRun) -> bool {
    let s = |k: &str| {
        run.rest
            .get(k)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
    };
    // The host only where lines have one (the NATS backend), so the folder
    // backend's lines read as they always did.
    let host = run.host().map(|h| format!("{h:<12} ")).unwrap_or_default();
    let mut line = format!(
        "{}  {host}{:<8} {:<20} {}",
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
fn follow(path: &Path, mut pos: u64, printer: &Printer, filter: &Filter) -> Result<()> {
    let mut show = |run: LoggedRun, raw: &str| !filter.keeps(&run) || printer.print(&run, raw);
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if meta.len() < pos {
            pos = 0;
        }
        if meta.len() != pos && !read_new(path, &mut pos, &mut show)? {
            return Ok(());
        }
    }
}

/// Hands every whole line after byte `pos` to `each`, moving `pos` past them;
/// a line still being written is left for the next call. `false` when `each`
/// asked to stop.
fn read_new(
    path: &Path,
    pos: &mut u64,
    each: &mut impl FnMut(LoggedRun, &str) -> bool,
) -> Result<bool> {
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(atomic::nofollow())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(atomic::explain_link(e, path).into()),
    };
    let mut reader = BufReader::new(f);
    reader.seek(SeekFrom::Start(*pos))?;
    let mut buf = String::new();
    while reader.read_line(&mut buf)? > 0 && buf.ends_with('\n') {
        *pos += buf.len() as u64;
        if let Ok(run) = serde_json::from_str::<LoggedRun>(buf.trim_end())
            && !each(run, buf.trim_end())
        {
            return Ok(false);
        }
        buf.clear();
    }
    Ok(true)
}
