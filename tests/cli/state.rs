//! `.autod/`: what is written where, and that it is private.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use crate::common::{Project, RECORD, event};

fn walk(dir: &Path, found: &mut Vec<(String, u32, bool)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        found.push((entry.path().display().to_string(), mode, meta.is_dir()));
        if meta.is_dir() {
            walk(&entry.path(), found);
        }
    }
}

#[test]
fn state_folder_is_private() {
    let p = Project::new()
        .open_schema("note.saved")
        .config(
            r#"
            [handlers.good]
            on = ["note.saved"]
            [handlers.bad]
            on = ["note.saved"]
            "#,
        )
        .handler("good", RECORD)
        .handler("bad", "exit 1")
        .event(
            "e.json",
            event("note.saved", "ev-1", json!({"secret": "hunter2"})),
        );
    p.autod(["dispatch", "e.json"]).run().code(1);
    let state = p.path(".autod");
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, ".autod is {mode:o}");
    let mut found = Vec::new();
    walk(&state, &mut found);
    for sub in ["archive", "done", "dead", "out", "log"] {
        assert!(
            found
                .iter()
                .any(|(path, _, dir)| *dir && path.ends_with(sub)),
            ".autod/{sub} missing: {found:#?}"
        );
    }
    for (path, mode, is_dir) in &found {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{path} is {mode:o}, want {want:o}");
    }
}

#[test]
fn accepted_event_is_archived_and_outcomes_recorded() {
    let p = Project::new()
        .open_schema("note.saved")
        .config(
            r#"
            [handlers.good]
            on = ["note.saved"]
            "#,
        )
        .handler("good", RECORD)
        .event("e.json", event("note.saved", "ev-1", json!({"n": 1})));
    p.autod(["dispatch", "e.json"]).run().code(0);
    let archived: serde_json::Value = serde_json::from_str(&p.read(&format!(
        ".autod/archive/{}/ev-1.json",
        crate::common::today()
    )))
    .unwrap();
    assert_eq!(archived["payload"], json!({"n": 1}));
    assert!(archived["ts"].is_string());
    assert!(p.done("ev-1", "good"));
    assert!(p.path(".autod/out/ev-1/good").is_dir());
    assert!(!p.exists(".autod/dead/good/ev-1.json"));
}
