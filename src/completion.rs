//! Dynamic shell completion: with `source <(AUTOD_COMPLETE=bash autod)` in the
//! shell's rc file, the shell asks autod itself at each TAB, so a flag that
//! takes a handler name (`--handler`) or an eventType (`new handler --on`) is
//! completed with the current project's values. `autod completions SHELL`
//! still prints the static script, which knows commands and flags only.
//!
//! The project is found as every command finds it, from `AUTOD_ROOT` or the
//! working directory; a `--root` on the line being completed is not seen (the
//! completer is given only the word under the cursor). Nothing here may fail
//! loudly: a broken project completes nothing.

use std::ffi::OsStr;
use std::path::PathBuf;

use clap_complete::engine::CompletionCandidate;

use crate::config::Config;

fn root() -> Option<PathBuf> {
    let flag = std::env::var_os("AUTOD_ROOT").map(PathBuf::from);
    crate::project::find_root(flag.as_deref()).ok()
}

/// The handlers of autod.toml, each with its `on` patterns as help. A config
/// with mistakes still offers the handlers that parsed.
pub fn handlers(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(config) = root().and_then(|r| Config::load_partial(&r).ok()?.0) else {
        return Vec::new();
    };
    let prefix = current.to_string_lossy();
    config
        .handlers
        .iter()
        .filter(|h| h.name.starts_with(prefix.as_ref()))
        .map(|h| {
            let on: Vec<&str> = h.on.iter().map(|p| p.as_str()).collect();
            CompletionCandidate::new(&h.name).help(Some(format!("on {}", on.join(", ")).into()))
        })
        .collect()
}

/// The eventTypes with a payload schema (`schemas/<type>.json`; `event.json`
/// is the envelope, not a type).
pub fn event_types(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(dir) = root().map(|r| r.join("schemas")) else {
        return Vec::new();
    };
    let prefix = current.to_string_lossy();
    let mut types: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let t = name.strip_suffix(".json")?.to_owned();
            (t != "event" && crate::event::valid_id(&t)).then_some(t)
        })
        .filter(|t| t.starts_with(prefix.as_ref()))
        .collect();
    types.sort();
    types.into_iter().map(CompletionCandidate::new).collect()
}
