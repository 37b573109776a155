//! HANDLERS.md: one row per handler (name, events, owner, output), generated from
//! autod.toml by `autod handlers doc` and checked by `autod lint` the way
//! `cargo fmt --check` checks formatting. Only the table between the markers is
//! owned by autod; prose around it is kept.

use std::path::Path;

use super::Lint;
use crate::config::Config;

pub const FILE_NAME: &str = "HANDLERS.md";
pub const BEGIN: &str = "<!-- autod:handlers:begin -->";
pub const END: &str = "<!-- autod:handlers:end -->";

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The generated table, markers included.
pub fn table(config: &Config) -> String {
    let mut out = format!("{BEGIN}\n| handler | events | owner | output |\n|---|---|---|---|\n");
    for h in &config.handlers {
        let events: Vec<String> =
            h.on.iter()
                .map(|p| format!("`{}`", cell(p.as_str())))
                .collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            h.name,
            events.join(", "),
            cell(h.owner.as_deref().unwrap_or("")),
            cell(h.output.as_deref().unwrap_or("")),
        ));
    }
    out.push_str(END);
    out
}

/// The whole file as `handlers doc` would write it, given what is there now.
/// A file saved with CRLF line endings (an editor on Windows) keeps them:
/// otherwise it could never match, whatever `handlers doc` wrote.
pub fn render(config: &Config, existing: Option<&str>) -> String {
    match existing {
        Some(text) if text.contains("\r\n") => {
            render_lf(config, Some(&text.replace("\r\n", "\n"))).replace('\n', "\r\n")
        }
        _ => render_lf(config, existing),
    }
}

fn render_lf(config: &Config, existing: Option<&str>) -> String {
    let table = table(config);
    match existing {
        Some(text) => {
            match marker_line(text, BEGIN, 0).and_then(|b| Some((b, marker_line(text, END, b)?))) {
                Some((b, e)) => {
                    format!("{}{table}{}", &text[..b], &text[e + END.len()..])
                }
                None => {
                    let sep = if text.ends_with('\n') || text.is_empty() {
                        ""
                    } else {
                        "\n"
                    };
                    format!("{text}{sep}\n{table}\n")
                }
            }
        }
        None => format!(
            "# Handlers\n\nWhat runs in this project, for which events, who owns it and what it produces.\nThe table is generated from autod.toml by `autod handlers doc`; edit the config, not the table.\n\n{table}\n"
        ),
    }
}

/// Where `marker` starts a line, at or after `from`. Prose that mentions a
/// marker mid-line is not the table; an end marker counts only after the begin
/// marker, or `handlers doc` would append a new table on every run.
fn marker_line(text: &str, marker: &str, from: usize) -> Option<usize> {
    text[from..]
        .match_indices(marker)
        .map(|(i, _)| from + i)
        .find(|&i| i == 0 || text.as_bytes()[i - 1] == b'\n')
}

pub fn check(lint: &mut Lint, root: &Path, config: &Config) {
    let path = root.join(FILE_NAME);
    let existing = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            lint.error(&path, "unreadable", format!("cannot read: {e}"));
            return;
        }
    };
    let config_path = root.join(crate::config::FILE_NAME);
    let config_text = std::fs::read_to_string(&config_path).unwrap_or_default();
    for h in &config.handlers {
        let line = crate::config::line_of(&config_text, &format!("[handlers.{}]", h.name));
        for (key, value) in [("owner", &h.owner), ("output", &h.output)] {
            if value.as_deref().is_none_or(str::is_empty) {
                lint.error(
                    &config_path,
                    "handler-doc",
                    format!("handler {:?} has no `{key}`; HANDLERS.md needs it (add {key} = \"…\" to [handlers.{}])", h.name, h.name),
                )
                .at(line, None);
            }
        }
    }
    let Some(existing) = existing else {
        if !config.handlers.is_empty() {
            lint.error(
                &path,
                "handlers-md",
                "HANDLERS.md is missing; create it with `autod handlers doc`",
            );
        }
        return;
    };
    let expected = render(config, Some(&existing));
    if expected != existing {
        let line = first_difference(&existing, &expected);
        lint.error(
            &path,
            "handlers-md",
            "HANDLERS.md does not match autod.toml; run `autod handlers doc` to update it",
        )
        .at(Some(line), None);
    }
}

fn first_difference(a: &str, b: &str) -> usize {
    a.lines()
        .zip(b.lines())
        .position(|(x, y)| x != y)
        .unwrap_or_else(|| a.lines().count().min(b.lines().count()))
        + 1
}
