//! `autod init` and `autod new handler|event`: the files a project starts from.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::cli::{GlobalArgs, NewCommand};
use crate::config::{self, Config};
use crate::exit::Code;
use crate::project::Project;
use crate::route::Pattern;

const CONFIG_TEMPLATE: &str = r#"# autod project configuration. Every key is optional; the values shown are the defaults.
# Docs: the README's "Configuration" section.

# [validation]
# require_schema = true          # reject eventTypes with no schemas/<type>.json
# max_event_bytes = 1048576      # larger events are rejected before parsing

# [routing]
# unrouted = "reject"            # or "ignore": accept events no handler wants

# [log]
# max_bytes = 10485760           # rotate .autod/log/autod.log past this size
# keep = 5                       # rotated files kept

# Add handlers with `autod new handler NAME --on EVENT.TYPE`, or by hand:
# [handlers.my-handler]
# on = ["note.*"]                # eventType patterns: * within a segment, ** across
# command = ["handlers/my-handler/main.sh"]   # default: handlers/<name>/main*
# timeout = "60s"
# retry = { max_attempts = 5, initial = "10s", max = "1h" }
# concurrency = 1
# env = { OUT_DIR = "~/notes" }
"#;

pub fn init(g: &GlobalArgs) -> Result<Code> {
    let root = match &g.root {
        Some(r) => {
            std::fs::create_dir_all(r).with_context(|| format!("cannot create {}", r.display()))?;
            r.clone()
        }
        None => std::env::current_dir()?,
    };
    let config_path = root.join(config::FILE_NAME);
    if config_path.exists() {
        bail!(
            "{} already exists: this is already an autod project",
            config_path.display()
        );
    }
    for dir in ["schemas", "handlers", "fixtures/invalid"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    std::fs::write(&config_path, CONFIG_TEMPLATE)?;
    let gitignore = root.join(".gitignore");
    let existing = std::fs::read_to_string(&gitignore).unwrap_or_default();
    if !existing
        .lines()
        .any(|l| l.trim() == "/.autod" || l.trim() == ".autod" || l.trim() == ".autod/")
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&gitignore)?;
        if !existing.is_empty() && !existing.ends_with('\n') {
            writeln!(f)?;
        }
        writeln!(f, "/.autod")?;
    }
    tracing::info!(
        "created an autod project in {}\nnext:\n  autod new event note.saved\n  autod new handler note-indexer --on note.saved\n  autod dispatch fixtures/note.saved/example.json",
        root.display()
    );
    Ok(Code::Success)
}

pub fn new(project: &Project, cmd: &NewCommand) -> Result<Code> {
    match cmd {
        NewCommand::Handler { name, on } => new_handler(project, name, on),
        NewCommand::Event { event_type, watch } => new_event(&project.root, event_type, *watch),
    }
}

fn new_handler(project: &Project, name: &str, on: &[String]) -> Result<Code> {
    if !config::valid_handler_name(name) {
        bail!(
            "handler name {name:?} is not allowed: use lowercase letters, digits, `-` and `_`, starting with a letter or digit"
        );
    }
    for p in on {
        Pattern::parse(p)?;
    }
    if project.config.handler(name).is_some() {
        bail!("handler {name} is already in autod.toml");
    }
    let dir = project.root.join("handlers").join(name);
    let script = dir.join("main.sh");
    if script.exists() {
        bail!("{} already exists", script.display());
    }
    std::fs::create_dir_all(&dir)?;
    let on_list = on
        .iter()
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
# Handler {name}: runs for {on_list}.
# The event arrives on stdin as one JSON object. Also available:
#   AUTOD_EVENT_ID AUTOD_EVENT_TYPE AUTOD_EVENT_SOURCE AUTOD_ATTEMPT
#   AUTOD_EVENT_FILE (the event as a file) AUTOD_OUTPUT_DIR (your artifacts folder)
# Exit 0: done, never run again for this eventId.
# Exit 65: this event can never succeed; dead-lettered without retries.
# Any other exit: dead-lettered and retried with backoff.
set -eu
event=$(cat)
printf '%s\n' "$event" > "$AUTOD_OUTPUT_DIR/event.json"
echo "{name}: handled $AUTOD_EVENT_TYPE $AUTOD_EVENT_ID (attempt $AUTOD_ATTEMPT)" >&2
"#
        ),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;

    let owner = std::env::var("USER").unwrap_or_else(|_| "me".to_owned());
    let config_path = project.root.join(config::FILE_NAME);
    let mut text = std::fs::read_to_string(&config_path).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "\n[handlers.{name}]\non = [{on_list}]\nowner = {owner:?}\noutput = \"describe what {name} produces\"\n# timeout = \"60s\"\n# retry = {{ max_attempts = 5, initial = \"10s\", max = \"1h\" }}\n"
    ));
    // Check the result before writing it, so a scaffold never breaks the config.
    let config = Config::parse(&project.root, &config_path, &text)?;
    std::fs::write(&config_path, text)?;
    // Keep HANDLERS.md in step, so a fresh scaffold passes `autod lint`.
    let doc = project.root.join(crate::lint::handlers_doc::FILE_NAME);
    let existing = std::fs::read_to_string(&doc).ok();
    std::fs::write(
        &doc,
        crate::lint::handlers_doc::render(&config, existing.as_deref()),
    )?;
    tracing::info!(
        "created {} and [handlers.{name}] in autod.toml; {} {} (its row comes from owner and output in autod.toml: run `autod handlers doc` after editing them)",
        rel(&project.root, &script),
        if existing.is_some() {
            "updated"
        } else {
            "created"
        },
        crate::lint::handlers_doc::FILE_NAME
    );
    Ok(Code::Success)
}

fn new_event(root: &Path, event_type: &str, watch: bool) -> Result<Code> {
    if !crate::event::valid_id(event_type) {
        bail!(
            "eventType {event_type:?} is not allowed: use letters, digits and . _ : - (e.g. note.saved)"
        );
    }
    let schema = root.join("schemas").join(format!("{event_type}.json"));
    if schema.exists() {
        bail!(
            "{} already exists; edit it, or move it aside to scaffold it again",
            rel(root, &schema)
        );
    }
    let scaffold = if watch {
        watch_scaffold(event_type)
    } else {
        placeholder_scaffold(event_type)
    };
    let mut files = vec![(schema, scaffold.schema)];
    for (name, value) in scaffold.valid {
        files.push((root.join("fixtures").join(event_type).join(name), value));
    }
    files.push((
        root.join("fixtures/invalid")
            .join(event_type)
            .join("missing-required.json"),
        scaffold.invalid,
    ));
    for (path, value) in files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(
            &path,
            format!("{}\n", serde_json::to_string_pretty(&value)?),
        )?;
        tracing::info!("created {}", rel(root, &path));
    }
    if watch {
        tracing::info!(
            "point a watch at it: [[watches]] with event_type = {event_type:?} in autod.toml"
        );
    }
    Ok(Code::Success)
}

/// A payload schema and its fixtures (file name and event).
struct Scaffold {
    schema: Value,
    valid: Vec<(&'static str, Value)>,
    invalid: Value,
}

/// A stable eventId for a scaffolded fixture, so dispatching it twice shows
/// the second run `skipped`; the eventType is in it, so two types' examples
/// never share an id (and a handler of both would skip the second).
fn fixture_id(event_type: &str, suffix: &str) -> String {
    // eventTypes are ASCII (checked), so any byte index is a char boundary.
    let id = format!("{}-{suffix}", &event_type[..event_type.len().min(100)]);
    if crate::event::valid_id(&id) {
        id
    } else {
        suffix.to_owned()
    }
}

fn fixture(event_type: &str, id: &str, source: &str, payload: Value) -> Value {
    json!({"eventType": event_type, "eventId": fixture_id(event_type, id), "source": source, "payload": payload})
}

fn placeholder_scaffold(event_type: &str) -> Scaffold {
    Scaffold {
        schema: json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": format!("{event_type} payload"),
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "string", "minLength": 1, "description": "replace with your payload's fields"}
            },
            "additionalProperties": false
        }),
        valid: vec![(
            "example.json",
            fixture(event_type, "example", "cli", json!({"id": "example-1"})),
        )],
        invalid: fixture(event_type, "invalid", "cli", json!({})),
    }
}

/// The payload a `[[watches]]` change event carries (src/daemon/watch.rs):
/// every field is always there; size and mtime are null for a removal.
fn watch_scaffold(event_type: &str) -> Scaffold {
    let source = "watch:files";
    Scaffold {
        schema: json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": format!("{event_type} payload: a change to a watched file"),
            "type": "object",
            "required": ["path", "relPath", "kind", "size", "mtime"],
            "properties": {
                "path": {"type": "string", "minLength": 1, "description": "the file's absolute path"},
                "relPath": {"type": "string", "minLength": 1, "description": "the file's path relative to the watched folder"},
                "kind": {"enum": ["create", "modify", "remove"]},
                "size": {"type": ["integer", "null"], "minimum": 0, "description": "bytes; null for a removal"},
                "mtime": {"type": ["string", "null"], "format": "date-time", "description": "last modification (RFC 3339); null for a removal"}
            },
            "additionalProperties": false
        }),
        valid: vec![
            (
                "example.json",
                fixture(
                    event_type,
                    "example",
                    source,
                    json!({"path": "/home/me/watched/notes/ideas.txt", "relPath": "notes/ideas.txt",
                           "kind": "create", "size": 42, "mtime": "2026-11-24T09:00:00.000Z"}),
                ),
            ),
            (
                "removed.json",
                fixture(
                    event_type,
                    "removed",
                    source,
                    json!({"path": "/home/me/watched/notes/ideas.txt", "relPath": "notes/ideas.txt",
                           "kind": "remove", "size": null, "mtime": null}),
                ),
            ),
        ],
        invalid: fixture(
            event_type,
            "invalid",
            source,
            json!({"path": "/home/me/watched/notes/ideas.txt", "kind": "create", "size": 42,
                   "mtime": "2026-11-24T09:00:00.000Z"}),
        ),
    }
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}
