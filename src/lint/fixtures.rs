//! Fixture checks: every event under fixtures/<eventType>/ is accepted, and every
//! one under fixtures/invalid/<eventType>/ is rejected. An invalid fixture that
//! passes means the schema is looser than its author meant.

use std::path::{Path, PathBuf};

use super::{Known, Lint};
use crate::config::Config;
use crate::event;
use crate::schema::{Fault, Formats, Invalid, Schemas};

pub fn check(lint: &mut Lint, root: &Path, config: Option<&Config>, known: &Known) {
    let dir = root.join("fixtures");
    if !dir.is_dir() {
        return;
    }
    let max_bytes = config.map_or(1024 * 1024, |c| c.validation.max_event_bytes);
    let formats = config.map_or_else(Formats::default, |c| c.validation.formats);
    // Fixtures are checked as if every eventType needs a schema: a fixture for a
    // type with none is a finding of its own, below.
    let mut schemas = match Schemas::load_with(root, true, max_bytes, formats) {
        Ok(s) => s,
        Err(e) => {
            lint.error(
                &e.path,
                "schema-envelope",
                format!("fixtures not checked: {}", e.message),
            );
            return;
        }
    };
    for (invalid, base) in [(false, dir.clone()), (true, dir.join("invalid"))] {
        for (event_type, folder) in type_folders(lint, &base, !invalid) {
            let files = json_files(lint, &folder);
            if files.is_empty() {
                continue;
            }
            if !known.has(&event_type) {
                lint.error(
                    &folder,
                    "fixture-no-schema",
                    format!(
                        "fixtures for eventType {event_type:?}, which has no schemas/{event_type}.json (create it with `autod new event {event_type}`, or rename the folder)"
                    ),
                );
                continue;
            }
            for file in files {
                check_file(lint, &mut schemas, &file, &event_type, invalid);
            }
        }
    }
}

fn check_file(
    lint: &mut Lint,
    schemas: &mut Schemas,
    file: &Path,
    event_type: &str,
    invalid: bool,
) {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            lint.unreadable(file, &e);
            return;
        }
    };
    let declared = event::decode(&bytes, u64::MAX).ok().and_then(|obj| {
        obj.get("eventType")
            .and_then(|t| t.as_str())
            .map(str::to_owned)
    });
    if let Some(declared) = &declared
        && declared != event_type
    {
        lint.error(
            file,
            "fixture-type",
            format!(
                "eventType is {declared:?} but the fixture is in the folder for {event_type:?}"
            ),
        );
        return;
    }
    let syntax = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).err();
    let syntax_at = syntax.as_ref().map(|e| (Some(e.line()), Some(e.column())));
    match (invalid, schemas.accept(&bytes)) {
        // A pattern the regex engine gives up on compiles, so only a value
        // finds it: the schema is at fault, and the fixture shows how.
        (_, Err(Invalid::Schema(e))) if e.fault == Fault::Pattern => {
            let fixture = file
                .strip_prefix(&lint.root)
                .unwrap_or(file)
                .display()
                .to_string();
            lint.error(
                &e.path,
                "schema-pattern",
                format!("{} (fixture {fixture})", e.message),
            );
        }
        // A broken schema is reported once, by the schema check.
        (_, Err(Invalid::Schema(_))) | (false, Ok(_)) => {}
        (true, Err(Invalid::Rejected(_))) => {
            if let Some((line, col)) = syntax_at {
                lint.warning(
                    file,
                    "fixture-json",
                    "invalid fixture is not JSON at all, so it proves nothing about the schema",
                )
                .at(line, col);
            }
        }
        (false, Err(Invalid::Rejected(violations))) => {
            let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
            let f = lint.error(
                file,
                "fixture-invalid",
                format!("fixture does not validate: {}", list.join("; ")),
            );
            match syntax_at {
                Some((line, col)) => {
                    f.at(line, col);
                }
                None => {
                    let text = String::from_utf8_lossy(&bytes);
                    let line = violations
                        .first()
                        .and_then(|v| super::locate::line_of(&text, &v.pointer));
                    f.at(line, None);
                }
            }
        }
        (true, Ok(_)) => {
            lint.error(
                file,
                "fixture-passes",
                "invalid fixture validates: the schema accepts what this fixture says it must reject (is it too loose?)",
            );
        }
    }
}

/// `(eventType, folder)` for each subfolder of `base`; under fixtures/ the
/// `invalid` folder is not an eventType.
fn type_folders(lint: &mut Lint, base: &Path, skip_invalid: bool) -> Vec<(String, PathBuf)> {
    let entries = match std::fs::read_dir(base) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            lint.error(base, "unreadable", format!("cannot list: {e}"));
            return Vec::new();
        }
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        // A name that is not UTF-8 is no eventType, and says so as
        // fixture-no-schema rather than being skipped unchecked.
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| {
            let hidden = n.starts_with('.');
            let invalid_folder = skip_invalid && n == "invalid";
            !hidden && !invalid_folder
        })
        .collect();
    out.sort();
    out
}

fn json_files(lint: &mut Lint, dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) => {
                lint.error(&d, "unreadable", format!("cannot list: {e}"));
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                _ if path.extension().is_some_and(|e| e == "json") => out.push(path),
                _ => {}
            }
        }
    }
    out.sort();
    out
}
