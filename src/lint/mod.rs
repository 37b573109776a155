//! `autod lint` (SPEC §9): the CI job that keeps a project honest.
//!
//! Each check appends [`Finding`]s; none stops the others, and nothing here
//! panics or exits on a bad file: a file that cannot be read or parsed is itself
//! a finding. Checks:
//!
//! - `schemas.rs`: JSON syntax, meta-schema (a draft's or a custom one under
//!   schemas/), local `$ref`s, formats autod cannot check; `refs.rs`: `$ref`
//!   loops that accept everything; `patterns.rs`: patterns the regex engine
//!   gives up on;
//! - `fixtures.rs`: fixtures/<type>/ validate, fixtures/invalid/<type>/ are rejected;
//! - `project.rs`: autod.toml, handler commands, routes, schedules, watches;
//! - `watches.rs`: each watch's eventType schema accepts the watch payload;
//! - `webhooks.rs`: `[serve]` and `[webhooks.*]` secrets, routes and types;
//! - `queue.rs`: `[queue]` credentials that cannot be read here;
//! - `handlers_doc.rs`: HANDLERS.md matches `autod handlers doc`;
//! - `compat.rs`: `--against REV`, breaking schema changes since a git revision.

mod compat;
mod fixtures;
pub mod handlers_doc;
mod locate;
mod notify;
mod patterns;
mod project;
mod queue;
mod refs;
mod report;
mod schemas;
mod watches;
mod webhooks;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use report::{Format, render};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One problem, located as precisely as the check can.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Relative to the project root. A name that is not UTF-8 is written with
    /// U+FFFD in its place: the finding still says which file, and `--format
    /// json` does not fail on it.
    #[serde(serialize_with = "lossy_path")]
    pub file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    pub rule: &'static str,
    pub message: String,
}

fn lossy_path<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

/// What lint found, and what it knows about the project for later checks.
pub struct Lint {
    root: PathBuf,
    pub findings: Vec<Finding>,
}

impl Lint {
    fn push(
        &mut self,
        severity: Severity,
        file: &Path,
        rule: &'static str,
        message: impl Into<String>,
    ) -> &mut Finding {
        let file = file.strip_prefix(&self.root).unwrap_or(file).to_path_buf();
        self.findings.push(Finding {
            severity,
            file,
            line: None,
            column: None,
            rule,
            message: message.into(),
        });
        self.findings.last_mut().expect("just pushed")
    }

    fn error(
        &mut self,
        file: &Path,
        rule: &'static str,
        message: impl Into<String>,
    ) -> &mut Finding {
        self.push(Severity::Error, file, rule, message)
    }

    /// A file that cannot be read; a dangling symlink is named as one, since
    /// "No such file" about a file that is listed right there misleads.
    fn unreadable(&mut self, file: &Path, e: &std::io::Error) -> &mut Finding {
        let message = match std::fs::read_link(file) {
            Ok(target) if e.kind() == std::io::ErrorKind::NotFound => format!(
                "a symlink to {}, which does not exist; fix the link or remove it",
                target.display()
            ),
            _ => format!("cannot read: {e}"),
        };
        self.error(file, "unreadable", message)
    }

    fn warning(
        &mut self,
        file: &Path,
        rule: &'static str,
        message: impl Into<String>,
    ) -> &mut Finding {
        self.push(Severity::Warning, file, rule, message)
    }
}

impl Finding {
    /// Locates the finding. Lines and columns are 1-based; serde_json reports
    /// column 0 for an error right after a newline, which is column 1 of that line.
    fn at(&mut self, line: Option<usize>, column: Option<usize>) {
        self.line = line;
        self.column = column.map(|c| c.max(1));
    }
}

pub struct Options {
    /// A git revision to compare schemas against.
    pub against: Option<String>,
}

/// Runs every check on the project at `root`. `Err` is a usage problem with
/// the options (a bad `--against` revision), not a finding.
pub fn lint(root: &Path, options: &Options) -> Result<Vec<Finding>, String> {
    let mut lint = Lint {
        root: root.to_owned(),
        findings: Vec::new(),
    };
    let config = project::check_config(&mut lint, root);
    let formats = config
        .as_ref()
        .map_or_else(Default::default, |c| c.validation.formats);
    let known = schemas::check(&mut lint, root, formats);
    fixtures::check(&mut lint, root, config.as_ref(), &known);
    if let Some(config) = &config {
        project::check_routes(&mut lint, root, config, &known);
        watches::check(&mut lint, root, config, &known);
        webhooks::check(&mut lint, root, config, &known);
        notify::check(&mut lint, root, config, &known);
        queue::check(&mut lint, root, config);
        handlers_doc::check(&mut lint, root, config);
    }
    if let Some(rev) = &options.against {
        compat::check(&mut lint, root, rev, config.as_ref())?;
    }
    lint.findings
        .sort_by(|a, b| (&a.file, a.line, a.rule).cmp(&(&b.file, b.line, b.rule)));
    Ok(lint.findings)
}

/// The eventTypes a project knows about: those with a payload schema.
#[derive(Debug, Default)]
pub struct Known {
    /// eventType → whether another schema `$ref`s it (a shared library, not an event).
    pub schemas: std::collections::BTreeMap<String, bool>,
}

impl Known {
    pub fn has(&self, event_type: &str) -> bool {
        self.schemas.contains_key(event_type)
    }
}
