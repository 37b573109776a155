//! `autod trace EVENT_ID`: the chain an event belongs to, as a tree from its
//! root cause down (SPEC 14), built from the run log alone.
//!
//! Every line of a follow-up carries `correlationId` (the chain's root) and
//! `causationId` (its parent), so two passes find a whole chain from any of
//! its events: one for the given event's correlationId, one for the chain's
//! lines. Each pass tests the raw line for the id as a substring before it
//! parses anything, so a run log of a million lines costs one read of its
//! bytes and a JSON parse of the few lines that matter.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use crate::cli::{GlobalArgs, TraceArgs};
use crate::exit::Code;
use crate::log::LoggedRun;
use crate::output;
use crate::project::Project;

/// One event of the chain and what happened to it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    event_id: String,
    event_type: Option<String>,
    source: Option<String>,
    /// When the run log first mentions it.
    first_seen: String,
    causation_id: Option<String>,
    runs: Vec<Run>,
    /// Follow-ups not caused by one handler's run (an `on_dead` notice,
    /// emitted by autod itself), and those whose cause is not in the log.
    follow_ups: Vec<Node>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    handler: String,
    /// The host that ran it, where lines say ([queue] backend = "nats").
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    ts: String,
    result: String,
    attempt: Option<u64>,
    duration_ms: Option<u64>,
    exit_code: Option<i64>,
    /// A failure's message: autod's, or the last line of the handler's stderr.
    error: Option<String>,
    /// The events this run emitted (on its successful attempt).
    follow_ups: Vec<Node>,
}

pub fn run(project: &Project, g: &GlobalArgs, args: &TraceArgs) -> Result<Code> {
    let files = project.run_log().files();
    let id = &args.event_id;
    let own = lines_mentioning(&files, id)?;
    let Some(first) = own.iter().find(|l| l.event_id == *id) else {
        anyhow::bail!(
            "no run-log line names eventId {id}; `autod log --since 1day` shows recent ones (the run log keeps [log] keep rotated files)"
        );
    };
    let chain = text(first, "correlationId").unwrap_or_else(|| id.clone());
    let lines = if chain == *id {
        own
    } else {
        lines_mentioning(&files, &chain)?
    };
    let lines: Vec<LoggedRun> = lines
        .into_iter()
        .filter(|l| l.event_id == chain || text(l, "correlationId").as_deref() == Some(&chain))
        .collect();
    let lines = match &args.host {
        None => lines,
        Some(host) => only_host(lines, host, &chain)?,
    };
    let roots = tree(&lines, &chain);
    if g.json {
        output::json(&serde_json::json!({"correlationId": chain, "roots": roots}));
    } else {
        let mut out = Vec::new();
        for r in &roots {
            render(r, "", true, true, &mut out);
        }
        for l in out {
            if !output::line(&l) {
                break;
            }
        }
    }
    Ok(Code::Success)
}

/// The chain's lines written by `host`; none is an error that names the
/// hosts that did write some, since a typo would otherwise look like an
/// empty chain.
fn only_host(lines: Vec<LoggedRun>, host: &str, chain: &str) -> Result<Vec<LoggedRun>> {
    let mut others: Vec<String> = Vec::new();
    let mine: Vec<LoggedRun> = lines
        .into_iter()
        .filter(|l| {
            let h = l.host();
            if let Some(h) = h.filter(|h| *h != host && !others.iter().any(|o| o == h)) {
                others.push(h.to_owned());
            }
            h == Some(host)
        })
        .collect();
    if mine.is_empty() {
        let seen = if others.is_empty() {
            "its lines name no host: they were written with the folder backend".to_owned()
        } else {
            others.sort();
            format!("this run log has it from {}", others.join(", "))
        };
        anyhow::bail!("--host {host}: no run-log line of the chain {chain} is from {host}; {seen}");
    }
    Ok(mine)
}

/// Every parsed line of the run log, oldest first, whose text holds `needle`
/// (quoted, as a JSON string value). Files are read in large blocks and
/// searched with memchr's SIMD substring search; only the lines around a hit
/// are parsed.
fn lines_mentioning(files: &[PathBuf], needle: &str) -> Result<Vec<LoggedRun>> {
    let quoted = format!("\"{needle}\"");
    let finder = memchr::memmem::Finder::new(quoted.as_bytes());
    let mut out = Vec::new();
    for f in files {
        let mut file = match std::fs::File::open(f) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", f.display())),
        };
        // `buf` holds whole lines plus the start of the next one.
        let mut buf: Vec<u8> = Vec::with_capacity(BLOCK * 2);
        let mut block = vec![0u8; BLOCK];
        loop {
            let n = std::io::Read::read(&mut file, &mut block)
                .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            let end = if n == 0 {
                buf.len()
            } else {
                buf.extend_from_slice(&block[..n]);
                match memchr::memrchr(b'\n', &buf) {
                    Some(i) => i + 1,
                    None => continue,
                }
            };
            let whole = &buf[..end];
            let mut next = 0;
            for hit in finder.find_iter(whole) {
                if hit < next {
                    continue; // Another hit on a line already taken.
                }
                let from = memchr::memrchr(b'\n', &whole[..hit]).map_or(0, |i| i + 1);
                let to = memchr::memchr(b'\n', &whole[hit..]).map_or(whole.len(), |i| hit + i);
                if let Ok(run) = serde_json::from_slice::<LoggedRun>(&whole[from..to]) {
                    out.push(run);
                }
                next = to;
            }
            buf.drain(..end);
            if n == 0 {
                break;
            }
        }
    }
    Ok(out)
}

/// How much of the run log is searched at a time.
const BLOCK: usize = 1 << 20;

fn text(l: &LoggedRun, key: &str) -> Option<String> {
    l.rest.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn number(l: &LoggedRun, key: &str) -> Option<u64> {
    l.rest.get(key).and_then(Value::as_u64)
}

/// The chain's events as trees: the root (or, for a chain whose root has no
/// line, every event whose parent has none).
fn tree(lines: &[LoggedRun], chain: &str) -> Vec<Node> {
    // eventId → its lines, in log order; the order events were first seen.
    let mut by_event: BTreeMap<&str, Vec<&LoggedRun>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for l in lines {
        let e = by_event.entry(l.event_id.as_str()).or_default();
        if e.is_empty() {
            order.push(l.event_id.as_str());
        }
        e.push(l);
    }
    let parent_of = |id: &str| by_event[id].iter().find_map(|l| text(l, "causationId"));
    let known: HashSet<&str> = order.iter().copied().collect();
    let tops: Vec<&str> = order
        .iter()
        .copied()
        .filter(|id| *id == chain || parent_of(id).is_none_or(|p| !known.contains(p.as_str())))
        .collect();
    let mut seen = HashSet::new();
    tops.into_iter()
        .filter_map(|id| node(id, &by_event, &order, &mut seen))
        .collect()
}

fn node<'a>(
    id: &'a str,
    by_event: &BTreeMap<&'a str, Vec<&'a LoggedRun>>,
    order: &[&'a str],
    seen: &mut HashSet<&'a str>,
) -> Option<Node> {
    // A hand-edited log could make a loop; each event is shown once.
    if !seen.insert(id) {
        return None;
    }
    let lines = &by_event[id];
    let first = lines[0];
    let field = |k: &str| lines.iter().find_map(|l| text(l, k));
    let mut runs: Vec<Run> = lines
        .iter()
        .filter(|l| l.handler != "-")
        .map(|l| Run {
            handler: l.handler.clone(),
            host: l.host().map(str::to_owned),
            ts: l.ts.clone(),
            result: l.result.clone(),
            attempt: number(l, "attempt"),
            duration_ms: number(l, "durationMs"),
            exit_code: l.rest.get("exitCode").and_then(Value::as_i64),
            error: text(l, "error"),
            follow_ups: Vec::new(),
        })
        .collect();
    let mut follow_ups = Vec::new();
    // The rejected line of an event that was never accepted (a chain cut
    // at its depth limit) is the event's only line: show it as a run of "-".
    if runs.is_empty() {
        runs.extend(lines.iter().map(|l| Run {
            handler: l.handler.clone(),
            host: l.host().map(str::to_owned),
            ts: l.ts.clone(),
            result: l.result.clone(),
            attempt: None,
            duration_ms: None,
            exit_code: None,
            error: text(l, "error"),
            follow_ups: Vec::new(),
        }));
    }
    for child in order.iter().copied().filter(|c| {
        by_event[c]
            .iter()
            .find_map(|l| text(l, "causationId"))
            .as_deref()
            == Some(id)
    }) {
        let Some(n) = node(child, by_event, order, seen) else {
            continue;
        };
        let by = n
            .source
            .as_deref()
            .and_then(|s| s.strip_prefix("handler:"))
            .map(str::to_owned);
        // Under the run that emitted it: its handler's successful attempt.
        let run = by.and_then(|h| {
            runs.iter_mut()
                .rev()
                .find(|r| r.handler == h && r.result == "ok")
        });
        match run {
            Some(r) => r.follow_ups.push(n),
            None => follow_ups.push(n),
        }
    }
    Some(Node {
        event_id: id.to_owned(),
        event_type: field("eventType"),
        source: field("source"),
        first_seen: first.ts.clone(),
        causation_id: field("causationId"),
        runs,
        follow_ups,
    })
}

/// Draws `n` under `prefix` with box-drawing branches, like `tree(1)`.
fn render(n: &Node, prefix: &str, last: bool, top: bool, out: &mut Vec<String>) {
    let (branch, indent) = match (top, last) {
        (true, _) => ("", ""),
        (false, true) => ("└─ ", "   "),
        (false, false) => ("├─ ", "│  "),
    };
    out.push(format!(
        "{prefix}{branch}{} {}  ({}, {})",
        n.event_type.as_deref().unwrap_or("?"),
        n.event_id,
        n.source.as_deref().unwrap_or("?"),
        n.first_seen
    ));
    let inner = format!("{prefix}{indent}");
    let count = n.runs.len() + n.follow_ups.len();
    let mut i = 0;
    for r in &n.runs {
        i += 1;
        let last_item = i == count;
        let (b, ind) = if last_item {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        let mut line = format!("{inner}{b}{} {}", r.handler, r.result);
        if let Some(h) = &r.host {
            line.push_str(&format!("  on {h}"));
        }
        if let Some(a) = r.attempt {
            line.push_str(&format!("  attempt {a}"));
        }
        if let Some(d) = r.duration_ms {
            line.push_str(&format!("  {d}ms"));
        }
        if let Some(c) = r.exit_code.filter(|c| *c != 0) {
            line.push_str(&format!("  exit {c}"));
        }
        if r.result != "ok"
            && let Some(e) = &r.error
        {
            line.push_str(&format!("  {e}"));
        }
        out.push(line);
        let under = format!("{inner}{ind}");
        for (j, f) in r.follow_ups.iter().enumerate() {
            render(f, &under, j + 1 == r.follow_ups.len(), false, out);
        }
    }
    for f in &n.follow_ups {
        i += 1;
        render(f, &inner, i == count, false, out);
    }
}
