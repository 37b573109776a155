//! `autod dispatch FILE... | -`: validate and run each event now, in this process.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::cli::{DispatchArgs, GlobalArgs};
use crate::config::Unrouted;
use crate::engine::{Engine, PairOutcome};
use crate::event::{Event, Violation};
use crate::exit::Code;
use crate::log::{RunLine, RunResult};
use crate::output;
use crate::project::Project;
use crate::route;
use crate::schema::{Invalid, Schemas};

/// One candidate event: where it came from, and its bytes (or why there are none).
struct Input {
    label: String,
    bytes: Result<Vec<u8>, InputError>,
}

enum InputError {
    /// Could not be read at all: a usage error (exit 2).
    Unreadable(String),
    /// Over the size limit, so never read: a rejected event (exit 3).
    TooLarge(u64),
}

pub fn run(project: &Project, g: &GlobalArgs, args: &DispatchArgs) -> Result<Code> {
    if let Some(name) = &args.handler
        && project.config.handler(name).is_none()
    {
        let known: Vec<&str> = project
            .config
            .handlers
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        anyhow::bail!(
            "--handler {name}: no such handler in autod.toml (known: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
    }
    let v = &project.config.validation;
    let mut schemas = Schemas::load(&project.root, v.require_schema, v.max_event_bytes)?;
    let inputs = read_inputs(&args.files, v.max_event_bytes)?;
    let log = project.run_log();
    let engine = Arc::new(Engine::new(
        project.root.clone(),
        &project.config,
        project.state.clone(),
        log.clone(),
        args.jobs,
    ));
    if !args.dry_run {
        project
            .state
            .ensure("")
            .context("cannot create the state folder .autod/")?;
    }

    let rt = super::runtime()?;
    let mut code = Code::Success;
    let mut tally = Tally::default();
    let mut tasks = Vec::new();
    // Events sharing a `key` are delivered in input order, one at a time.
    let mut last_for_key: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let (results_tx, mut results_rx) = tokio::sync::mpsc::unbounded_channel();

    let _guard = rt.enter();
    for input in inputs {
        let bytes = match input.bytes {
            Ok(b) => b,
            Err(InputError::TooLarge(size)) => {
                let invalid =
                    Invalid::Rejected(vec![crate::event::too_large(size, v.max_event_bytes)]);
                code = code.worst(reject(g, &log, &input.label, b"", &invalid));
                tally.rejected += 1;
                continue;
            }
            Err(InputError::Unreadable(msg)) => {
                tracing::error!("{}: {msg}", input.label);
                report(
                    g,
                    json!({"input": input.label, "status": "error", "error": msg}),
                );
                code = code.worst(Code::Usage);
                tally.errors += 1;
                continue;
            }
        };
        let event = match schemas.accept(&bytes) {
            Ok(e) => e,
            Err(invalid) => {
                code = code.worst(reject(g, &log, &input.label, &bytes, &invalid));
                tally.rejected += 1;
                continue;
            }
        };
        let mut handlers: Vec<String> = route::routes(&project.config.handlers, event.event_type())
            .iter()
            .map(|r| r.handler.name.clone())
            .collect();
        let routed_anywhere = !handlers.is_empty();
        if let Some(only) = &args.handler {
            handlers.retain(|h| h == only);
        }
        if handlers.is_empty() {
            let why = match (&args.handler, routed_anywhere) {
                (Some(only), _) => format!(
                    "handler {only} does not handle eventType {:?} (check its `on` in autod.toml)",
                    event.event_type()
                ),
                (None, _) if project.config.routing.unrouted == Unrouted::Ignore => {
                    tracing::info!(
                        "{}: no handler for {:?}; ignored ([routing] unrouted = \"ignore\")",
                        input.label,
                        event.event_type()
                    );
                    report(
                        g,
                        json!({"input": input.label, "eventId": event.id(), "eventType": event.event_type(), "status": "ignored", "runs": []}),
                    );
                    tally.accepted += 1;
                    continue;
                }
                (None, _) => format!(
                    "no handler's `on` matches eventType {:?}; add it to a handler in autod.toml (or set [routing] unrouted = \"ignore\")",
                    event.event_type()
                ),
            };
            let invalid = Invalid::Rejected(vec![Violation::new("/eventType", "route", why)]);
            code = code.worst(reject(g, &log, &input.label, &bytes, &invalid));
            tally.rejected += 1;
            continue;
        }
        if args.dry_run {
            dry_run(project, g, &input.label, &event, &handlers);
            tally.accepted += 1;
            continue;
        }
        if let Err(e) = project.state.archive(&event) {
            tracing::error!("{}: not accepted: {e}", input.label);
            report(
                g,
                json!({"input": input.label, "eventId": event.id(), "status": "error", "error": e.to_string()}),
            );
            code = code.worst(Code::Failed);
            tally.errors += 1;
            continue;
        }
        tally.accepted += 1;
        let previous = event.key().and_then(|k| last_for_key.remove(k));
        let key = event.key().map(str::to_owned);
        let engine = Arc::clone(&engine);
        let tx = results_tx.clone();
        let force = args.force;
        let label = input.label;
        let task = tokio::spawn(async move {
            if let Some(prev) = previous {
                let _ = prev.await;
            }
            let event = Arc::new(event);
            let outcomes = engine.deliver(Arc::clone(&event), handlers, force).await;
            let _ = tx.send((label, event, outcomes));
        });
        match key {
            Some(k) => {
                last_for_key.insert(k, task);
            }
            None => tasks.push(task),
        }
    }
    drop(results_tx);
    tasks.extend(last_for_key.into_values());

    rt.block_on(async {
        while let Some((label, event, outcomes)) = results_rx.recv().await {
            if outcomes.iter().any(PairOutcome::failed) {
                code = code.worst(Code::Failed);
            }
            tally.add(&outcomes);
            report(
                g,
                json!({"input": label, "eventId": event.id(), "eventType": event.event_type(), "status": "accepted", "runs": outcomes}),
            );
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    tally.summarize(args.dry_run);
    Ok(code)
}

/// With `--json`, one line per input on stdout; otherwise stderr already said it.
fn report(g: &GlobalArgs, value: Value) {
    if g.json {
        output::json(&value);
    }
}

fn reject(
    g: &GlobalArgs,
    log: &crate::log::RunLog,
    label: &str,
    bytes: &[u8],
    invalid: &Invalid,
) -> Code {
    // The eventId, if the input had a usable one, so the log line can be found.
    let event_id = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.get("eventId").and_then(Value::as_str).map(str::to_owned))
        .filter(|id| crate::event::valid_id(id))
        .unwrap_or_else(|| "-".to_owned());
    let (code, errors) = match invalid {
        Invalid::Rejected(violations) => (Code::Rejected, violations.clone()),
        Invalid::Schema(_) => (
            Code::Usage,
            vec![Violation::new("", "schema", invalid.to_string())],
        ),
    };
    for v in &errors {
        tracing::error!("{label}: rejected {v}");
    }
    let mut line = RunLine::new(&event_id, "-", RunResult::Rejected);
    line.input = Some(label.to_owned());
    line.error = errors.first().map(ToString::to_string);
    log.record(&line);
    report(
        g,
        json!({"input": label, "status": "rejected", "errors": errors}),
    );
    code
}

fn dry_run(project: &Project, g: &GlobalArgs, label: &str, event: &Event, handlers: &[String]) {
    let routes = route::routes(&project.config.handlers, event.event_type());
    let chosen: Vec<_> = routes
        .iter()
        .filter(|r| handlers.contains(&r.handler.name))
        .collect();
    if g.json {
        let route: Vec<Value> = chosen
            .iter()
            .map(|r| {
                json!({
                    "handler": r.handler.name,
                    "pattern": r.pattern.as_str(),
                    "alreadySucceeded": project.state.pair_succeeded(event.id(), &r.handler.name),
                })
            })
            .collect();
        output::json(
            &json!({"input": label, "eventId": event.id(), "eventType": event.event_type(), "status": "dry-run", "route": route}),
        );
        return;
    }
    output::line(&format!("{label}: {} {} →", event.event_type(), event.id()));
    for r in chosen {
        let note = if project.state.pair_succeeded(event.id(), &r.handler.name) {
            "  (already succeeded: would be skipped)"
        } else {
            ""
        };
        output::line(&format!(
            "  {} (on {:?}){note}",
            r.handler.name,
            r.pattern.as_str()
        ));
    }
}

#[derive(Default)]
struct Tally {
    accepted: usize,
    rejected: usize,
    errors: usize,
    by_result: [usize; 6],
}

impl Tally {
    fn add(&mut self, outcomes: &[PairOutcome]) {
        for o in outcomes {
            let i = RunResult::ALL
                .iter()
                .position(|r| *r == o.result)
                .unwrap_or(0);
            self.by_result[i] += 1;
        }
    }

    fn summarize(&self, dry_run: bool) {
        let inputs = self.accepted + self.rejected + self.errors;
        if inputs < 2 {
            return;
        }
        let mut runs: Vec<String> = RunResult::ALL
            .iter()
            .zip(self.by_result)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{n} {}", r.as_str()))
            .collect();
        if runs.is_empty() {
            runs.push(if dry_run {
                "none (dry run)".into()
            } else {
                "none".into()
            });
        }
        let failed = self.by_result[1] + self.by_result[2];
        let hint = if failed > 0 {
            "; see `autod dead list`"
        } else {
            ""
        };
        tracing::info!(
            "{inputs} inputs: {} accepted, {} rejected, {} unreadable; runs: {}{hint}",
            self.accepted,
            self.rejected,
            self.errors,
            runs.join(", ")
        );
    }
}

/// Every FILE argument as inputs; `-` expands to the events on stdin.
fn read_inputs(files: &[PathBuf], max_bytes: u64) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    let mut stdin_used = false;
    for f in files {
        if f.as_os_str() == "-" {
            anyhow::ensure!(!stdin_used, "`-` (stdin) given twice");
            stdin_used = true;
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read stdin")?;
            inputs.extend(split_stdin(buf, max_bytes));
        } else {
            inputs.push(Input {
                label: f.display().to_string(),
                bytes: read_file(f, max_bytes),
            });
        }
    }
    Ok(inputs)
}

fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, InputError> {
    let unreadable = |e: std::io::Error| {
        InputError::Unreadable(match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_owned(),
            _ => format!("cannot read: {e}"),
        })
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if meta.is_dir() {
        return Err(InputError::Unreadable(format!(
            "is a directory; pass the event files in it, e.g. {}/*.json",
            path.display()
        )));
    }
    if meta.len() > max_bytes {
        return Err(InputError::TooLarge(meta.len()));
    }
    std::fs::read(path).map_err(unreadable)
}

/// stdin holds one event (possibly pretty-printed) or one event per line.
fn split_stdin(buf: Vec<u8>, max_bytes: u64) -> Vec<Input> {
    if buf.len() as u64 <= max_bytes
        && serde_json::from_slice::<serde::de::IgnoredAny>(&buf).is_ok()
    {
        return vec![Input {
            label: "stdin".into(),
            bytes: Ok(buf),
        }];
    }
    let lines: Vec<Input> = buf
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .map(|(i, l)| Input {
            label: format!("stdin:{}", i + 1),
            bytes: Ok(l.to_vec()),
        })
        .collect();
    let any_line_is_json = lines.iter().any(|l| {
        l.bytes
            .as_ref()
            .is_ok_and(|b| serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok())
    });
    if any_line_is_json || lines.is_empty() {
        if lines.is_empty() {
            return vec![Input {
                label: "stdin".into(),
                bytes: Ok(buf),
            }];
        }
        lines
    } else {
        // Not NDJSON either: report the input once, as one broken event.
        vec![Input {
            label: "stdin".into(),
            bytes: Ok(buf),
        }]
    }
}
