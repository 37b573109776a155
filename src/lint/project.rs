//! autod.toml checks: parse errors and unknown keys (with their line), handler
//! commands that are missing or not executable, `on` patterns that match no
//! known eventType, eventTypes with no handler, watches whose folder does not
//! exist. A schedule whose cron expression or timezone does not parse fails the
//! config itself, so it arrives here as a `config` finding with its line.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{Known, Lint};
use crate::config::{self, Config, ConfigError, HandlerCommand};

pub fn check_config(lint: &mut Lint, root: &Path) -> Option<Config> {
    let path = root.join(config::FILE_NAME);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    // The loader treats a missing autod.toml as an empty config; an autod.toml
    // that is there but cannot be followed (a dangling symlink) is not missing.
    if path.is_symlink()
        && let Err(e) = std::fs::metadata(&path)
    {
        lint.unreadable(&path, &e);
        return None;
    }
    let reported: Vec<String>;
    let config = match Config::load_partial(root) {
        Ok((config, problems)) => {
            for p in &problems {
                lint.error(&path, "config", p.message.clone())
                    .at(p.line, None);
            }
            reported = problems.into_iter().map(|p| p.message).collect();
            // What parsed is still checked (handler commands, watches, routes,
            // HANDLERS.md): one lint run shows every mistake, not one per fix.
            config?
        }
        Err(ConfigError::Read { path, source }) => {
            lint.error(&path, "unreadable", format!("cannot read: {source}"));
            return None;
        }
        Err(ConfigError::Parse {
            path,
            line,
            message,
        }) => {
            // The message repeats the line; keep only the explanation.
            let message = message.split('\n').next().unwrap_or(&message).to_owned();
            let message = message
                .split_once(": ")
                .map_or(message.clone(), |(_, m)| m.to_owned());
            lint.error(&path, "config", message).at(line, None);
            return None;
        }
        Err(ConfigError::Invalid { path, problems }) => {
            for p in problems {
                lint.error(&path, "config", p.message).at(p.line, None);
            }
            return None;
        }
    };
    for h in &config.handlers {
        let line = config::line_of(&text, &format!("[handlers.{}]", h.name));
        let problem = match &h.command {
            // A config problem already said it (several main files).
            HandlerCommand::Missing(why) if reported.iter().any(|m| m.contains(why.as_str())) => {
                None
            }
            HandlerCommand::Missing(why) => Some(why.clone()),
            HandlerCommand::Argv(argv) => command_problem(root, &argv[0]),
        };
        if let Some(why) = problem {
            lint.error(
                &path,
                "handler-command",
                format!("handler {:?}: {why}", h.name),
            )
            .at(line, None);
        }
    }
    for w in &config.watches {
        let line = config::line_of(&text, &format!("name = \"{}\"", w.name));
        let dir = config::expand_home(&w.path);
        let dir = if dir.is_absolute() {
            dir
        } else {
            root.join(dir)
        };
        if !dir.is_dir() {
            lint.warning(
                &path,
                "watch-path",
                format!(
                    "watch {:?}: folder {} does not exist (yet)",
                    w.name,
                    shown(root, &dir)
                ),
            )
            .at(line, None);
        }
    }
    Some(config)
}

/// A path under the project as the user wrote it (`handlers/x/main.sh`), so
/// findings read the same on every machine; anything else in full.
fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Why `program` cannot be run, if it cannot.
fn command_problem(root: &Path, program: &std::ffi::OsStr) -> Option<String> {
    let path = Path::new(program);
    if !path.is_absolute() {
        // A bare name such as `python3`: it must be on PATH.
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| is_executable(&d.join(path))))
            .unwrap_or(false);
        return (!found).then(|| format!("command {} is not on PATH", path.display()));
    }
    let name = shown(root, path);
    match std::fs::metadata(path) {
        Err(_) => Some(format!("command {name} does not exist")),
        Ok(m) if !m.is_file() => Some(format!("command {name} is not a file")),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => {
            Some(format!("command {name} is not executable (chmod +x it)"))
        }
        Ok(_) => None,
    }
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub fn check_routes(lint: &mut Lint, root: &Path, config: &Config, known: &Known) {
    let path = root.join(config::FILE_NAME);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    for h in &config.handlers {
        let line = config::line_of(&text, &format!("[handlers.{}]", h.name));
        for p in &h.on {
            if !known.schemas.keys().any(|t| p.matches(t)) {
                lint.warning(
                    &path,
                    "route-unknown",
                    format!(
                        "handler {:?}: `on` pattern {:?} matches no known eventType (no schemas/<type>.json it fits)",
                        h.name,
                        p.as_str()
                    ),
                )
                .at(line, None);
            }
        }
    }
    for (event_type, is_library) in &known.schemas {
        if *is_library {
            continue;
        }
        if crate::route::routes(&config.handlers, event_type).is_empty() {
            lint.warning(
                &root.join("schemas").join(format!("{event_type}.json")),
                "unhandled",
                format!("eventType {event_type:?} has a schema but no handler; its events would be rejected as unroutable"),
            );
        }
    }
    for s in &config.schedules {
        if !known.has(&s.event_type) {
            let line = config::line_of(&text, &format!("name = \"{}\"", s.name));
            lint.warning(
                &path,
                "schedule-type",
                format!(
                    "schedule {:?}: eventType {:?} has no schema",
                    s.name, s.event_type
                ),
            )
            .at(line, None);
        }
    }
}
