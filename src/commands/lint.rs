//! `autod lint` and `autod handlers doc`.

use std::time::Instant;

use anyhow::Result;

use crate::cli::{GlobalArgs, HandlersCommand, LintArgs};
use crate::exit::Code;
use crate::lint::{self, Format, Severity, handlers_doc};
use crate::output;
use crate::project::{self, Project};

pub fn run(g: &GlobalArgs, args: &LintArgs) -> Result<Code> {
    // Lint must work on a project whose config is broken, so it only finds the root.
    let root = project::find_root(g.root.as_deref())?;
    let started = Instant::now();
    let options = lint::Options {
        against: args.against.clone(),
    };
    let findings = lint::lint(&root, &options).map_err(anyhow::Error::msg)?;
    let format = if g.json { Format::Json } else { args.format };
    let rendered = lint::render(&findings, format);
    if !rendered.is_empty() || format == Format::Json {
        output::line(&rendered);
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    let failed = errors > 0 || (args.strict && warnings > 0);
    let elapsed = started.elapsed().as_secs_f64();
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    if findings.is_empty() {
        tracing::info!("lint: clean ({elapsed:.2}s)");
    } else {
        let strict = if args.strict && warnings > 0 {
            " (--strict: warnings fail)"
        } else {
            ""
        };
        tracing::info!(
            "lint: {}, {}{strict} ({elapsed:.2}s)",
            plural(errors, "error"),
            plural(warnings, "warning")
        );
    }
    Ok(if failed { Code::Failed } else { Code::Success })
}

pub fn handlers(project: &Project, cmd: &HandlersCommand) -> Result<Code> {
    let HandlersCommand::Doc { check } = cmd;
    let path = project.root.join(handlers_doc::FILE_NAME);
    let existing = std::fs::read_to_string(&path).ok();
    let rendered = handlers_doc::render(&project.config, existing.as_deref());
    if existing.as_deref() == Some(rendered.as_str()) {
        tracing::info!("{} is up to date", handlers_doc::FILE_NAME);
        return Ok(Code::Success);
    }
    if *check {
        tracing::error!(
            "{} is out of date; run `autod handlers doc`",
            handlers_doc::FILE_NAME
        );
        return Ok(Code::Failed);
    }
    std::fs::write(&path, rendered)?;
    tracing::info!("wrote {}", handlers_doc::FILE_NAME);
    Ok(Code::Success)
}
