//! `[[watches]]` against their eventType's schema: a watch makes events with
//! the payload `{path, relPath, kind, size, mtime}` (SPEC §4b), and a schema
//! that refuses it would reject every change the watch sees, at run time,
//! where nobody reads it. Each watch's kinds of change are checked with a
//! sample payload built by the daemon's own code.

use std::path::Path;

use super::{Known, Lint};
use crate::config::{self, Config, WatchConfig};
use crate::daemon::{WatchKind as Kind, watch_kinds, watch_payload};
use crate::schema::Schemas;

pub fn check(lint: &mut Lint, root: &Path, config: &Config, known: &Known) {
    if config.watches.is_empty() {
        return;
    }
    let path = root.join(config::FILE_NAME);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    // A schema that does not load is the schema check's finding, not this one's.
    let Ok(mut schemas) = Schemas::load(root, true, config.validation.max_event_bytes) else {
        return;
    };
    for w in &config.watches {
        let line = config::line_of(&text, &format!("name = \"{}\"", w.name));
        let t = &w.event_type;
        if !known.has(t) {
            if !config.validation.require_schema {
                continue;
            }
            lint.error(
                &path,
                "watch-type",
                format!(
                    "watch {:?}: eventType {t:?} has no schema, so every change it sees would be rejected ([validation] require_schema); `autod new event {t} --watch` writes one for the watch payload",
                    w.name
                ),
            )
            .at(line, None);
            continue;
        }
        for kind in watch_kinds(w) {
            let Ok(Some(refusals)) = schemas.payload_refusals(t, &sample(root, w, kind)) else {
                continue;
            };
            let Some(first) = refusals.first() else {
                continue;
            };
            let at = if first.at.is_empty() {
                "the payload".to_owned()
            } else {
                format!("payload {}", first.at)
            };
            lint.error(
                &path,
                "watch-schema",
                format!(
                    "watch {:?}: schemas/{t}.json refuses the payload of a {} event, so each would be rejected: {} at {at}: {}. The payload is {{path, relPath, kind, size, mtime}} (size and mtime null for a removal); `autod new event {t} --watch` writes a schema for it (move schemas/{t}.json aside first), or widen yours",
                    w.name,
                    kind.as_str(),
                    if first.schema_pointer.is_empty() { "(root)" } else { &first.schema_pointer },
                    first.message,
                ),
            )
            .at(line, None);
            // One finding per watch: the other kinds fail the same way or
            // pass once it is fixed.
            break;
        }
    }
}

/// A change as the watch would report it; a removal has no size or mtime.
fn sample(root: &Path, w: &WatchConfig, kind: Kind) -> serde_json::Value {
    let rel = sample_name(w.glob.as_deref());
    let rel = rel.as_str();
    let path = w.dir(root).join(rel);
    let (size, mtime) = match kind {
        Kind::Remove => (None, None),
        _ => (Some(42), Some("2026-11-24T09:00:00.000Z".to_owned())),
    };
    watch_payload(&path.to_string_lossy(), rel, kind, size, mtime)
}

/// A file name the watch's glob matches, so a schema that checks the name
/// (`relPath` ending in `.png`) is not refused for a file it would never see:
/// `*.png` gives `example.png`. A glob no simple name fits gets `example.txt`.
fn sample_name(glob: Option<&str>) -> String {
    let Some(glob) = glob else {
        return "example.txt".to_owned();
    };
    let Ok(matcher) = globset::Glob::new(glob).map(|g| g.compile_matcher()) else {
        return "example.txt".to_owned();
    };
    let tail = glob.rsplit(['*', '/']).next().unwrap_or("");
    [
        format!("example{tail}"),
        "example.txt".to_owned(),
        glob.replace("**/", "").replace('*', "example"),
    ]
    .into_iter()
    .find(|n| matcher.is_match(n))
    .unwrap_or_else(|| "example.txt".to_owned())
}

#[cfg(test)]
mod tests {
    use super::sample_name;

    #[test]
    fn the_sample_file_fits_the_glob() {
        assert_eq!(sample_name(None), "example.txt");
        assert_eq!(sample_name(Some("*.png")), "example.png");
        assert_eq!(sample_name(Some("**/*.md")), "example.md");
        assert_eq!(sample_name(Some("shot-*.jpg")), "shot-example.jpg");
        assert_eq!(sample_name(Some("[")), "example.txt");
    }
}
