//! Lint output: `text` for people (`path:line:col: error: message [rule]`),
//! `json` for scripts (one array), `github` for workflow annotations.

use super::{Finding, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Github,
}

pub fn render(findings: &[Finding], format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(findings).expect("findings serialize"),
        Format::Text => findings.iter().map(text).collect::<Vec<_>>().join("\n"),
        Format::Github => findings.iter().map(github).collect::<Vec<_>>().join("\n"),
    }
}

fn text(f: &Finding) -> String {
    let mut loc = f.file.display().to_string();
    if let Some(l) = f.line {
        loc.push_str(&format!(":{l}"));
        if let Some(c) = f.column {
            loc.push_str(&format!(":{c}"));
        }
    }
    let sev = match f.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    format!("{loc}: {sev}: {} [{}]", one_line(&f.message), f.rule)
}

/// A message on one line, so each text finding is one line (grep, editors). Some
/// messages quote their input over several lines (a cron parser's caret under
/// the bad field); the caret lines mean nothing once joined and are dropped.
fn one_line(message: &str) -> String {
    if !message.contains('\n') {
        return message.to_owned();
    }
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == '~'))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `::error file=F,line=L,col=C,title=T::message`, escaped as the runner expects.
fn github(f: &Finding) -> String {
    let sev = match f.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut props = format!("file={}", escape_property(&f.file.display().to_string()));
    if let Some(l) = f.line {
        props.push_str(&format!(",line={l}"));
    }
    if let Some(c) = f.column {
        props.push_str(&format!(",col={c}"));
    }
    props.push_str(&format!(",title=autod lint ({})", escape_property(f.rule)));
    format!("::{sev} {props}::{}", escape_data(&f.message))
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn github_annotation_is_escaped() {
        let f = Finding {
            severity: Severity::Error,
            file: PathBuf::from("schemas/a,b.json"),
            line: Some(3),
            column: Some(7),
            rule: "schema-json",
            message: "bad\nthing 100%".into(),
        };
        assert_eq!(
            render(&[f], Format::Github),
            "::error file=schemas/a%2Cb.json,line=3,col=7,title=autod lint (schema-json)::bad%0Athing 100%25"
        );
    }
}
