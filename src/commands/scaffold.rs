//! `autod init` and `autod new handler|event`: the files a project starts from.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};

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
        NewCommand::Event { event_type } => new_event(&project.root, event_type),
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

fn new_event(root: &Path, event_type: &str) -> Result<Code> {
    if !crate::event::valid_id(event_type) {
        bail!(
            "eventType {event_type:?} is not allowed: use letters, digits and . _ : - (e.g. note.saved)"
        );
    }
    let schema = root.join("schemas").join(format!("{event_type}.json"));
    if schema.exists() {
        bail!("{} already exists", schema.display());
    }
    let schema_text = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": format!("{event_type} payload"),
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "string", "minLength": 1, "description": "replace with your payload's fields"}
        },
        "additionalProperties": false
    });
    let valid = serde_json::json!({"eventType": event_type, "source": "cli", "payload": {"id": "example-1"}});
    let invalid = serde_json::json!({"eventType": event_type, "source": "cli", "payload": {}});
    let files = [
        (schema, schema_text),
        (
            root.join("fixtures").join(event_type).join("example.json"),
            valid,
        ),
        (
            root.join("fixtures/invalid")
                .join(event_type)
                .join("missing-required.json"),
            invalid,
        ),
    ];
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
    Ok(Code::Success)
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}
