//! Event parsing + validation + routing on arbitrary bytes, with the example
//! project's real schemas (local `$ref`s included) and handlers. Nothing may
//! panic, and an accepted event must keep the guarantees later steps rely on.
#![no_main]

use std::sync::{Mutex, OnceLock};

use autod::config::Config;
use autod::schema::Schemas;
use libfuzzer_sys::fuzz_target;

struct World {
    _dir: tempfile::TempDir,
    schemas: Mutex<Schemas>,
    config: Config,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let schemas = dir.path().join("schemas");
        std::fs::create_dir(&schemas).expect("schemas dir");
        for (name, text) in [
            ("common.json", include_str!("../../schemas/common.json")),
            ("note.saved.json", include_str!("../../schemas/note.saved.json")),
            ("note.deleted.json", include_str!("../../schemas/note.deleted.json")),
            ("screenshot.taken.json", include_str!("../../schemas/screenshot.taken.json")),
            ("digest.due.json", include_str!("../../schemas/digest.due.json")),
        ] {
            std::fs::write(schemas.join(name), text).expect("schema");
        }
        let config_text = "[handlers.a]\non = [\"note.*\"]\n[handlers.b]\non = [\"**\"]\n[handlers.c]\non = [\"*.due\"]\n";
        let config = Config::parse(dir.path(), &dir.path().join("autod.toml"), config_text).expect("config");
        let schemas = Schemas::load(dir.path(), true, 64 * 1024).expect("schemas");
        World { _dir: dir, schemas: Mutex::new(schemas), config }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let accepted = w.schemas.lock().expect("lock").accept(data);
    if let Ok(event) = accepted {
        // What intake promises everything after it.
        assert!(autod::event::valid_id(event.id()));
        assert!(autod::event::valid_id(event.event_type()));
        assert!(!event.source().is_empty());
        let routes = autod::route::routes(&w.config.handlers, event.event_type());
        assert!(
            routes.iter().any(|r| r.handler.name == "b"),
            "** matches everything"
        );
        let back: serde_json::Value = serde_json::from_slice(&event.to_json()).expect("re-parses");
        assert_eq!(back["eventId"], event.id());
    }
    // Patterns: the first line is a pattern, the rest an eventType.
    if let Ok(text) = std::str::from_utf8(data)
        && let Some((p, t)) = text.split_once('\n')
        && let Ok(pattern) = autod::route::Pattern::parse(p)
    {
        let _ = pattern.matches(t);
    }
});
