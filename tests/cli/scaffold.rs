//! `autod init`, `autod new`, `autod completions`: a project from nothing.

use std::os::unix::fs::PermissionsExt;

use crate::common::{Cmd, Project};

#[test]
fn scaffolded_project_dispatches_its_fixtures() {
    let p = Project::bare();
    p.autod(["init"]).run().code(0).stderr_has("autod new");
    assert!(p.exists("autod.toml"));
    assert!(p.read(".gitignore").lines().any(|l| l == "/.autod"));

    p.autod(["new", "event", "note.saved"]).run().code(0);
    assert!(p.exists("schemas/note.saved.json"));
    assert!(p.exists("fixtures/note.saved/example.json"));
    assert!(p.exists("fixtures/invalid/note.saved/missing-required.json"));

    p.autod(["new", "handler", "note-indexer", "--on", "note.saved"])
        .run()
        .code(0)
        .stderr_has("HANDLERS.md");
    let script = p.path("handlers/note-indexer/main.sh");
    let mode = std::fs::metadata(&script).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "main.sh is not executable: {mode:o}");
    assert!(p.read("autod.toml").contains("[handlers.note-indexer]"));
    assert!(p.read("HANDLERS.md").contains("note-indexer"));

    p.autod(["dispatch", "fixtures/note.saved/example.json"])
        .run()
        .code(0)
        .stderr_has("note-indexer");
    let outputs: Vec<_> = std::fs::read_dir(p.path(".autod/out"))
        .unwrap()
        .map(|e| e.unwrap().path().join("note-indexer/event.json"))
        .collect();
    assert_eq!(outputs.len(), 1);
    assert!(
        outputs[0].is_file(),
        "the generated handler wrote its artifact"
    );

    p.autod([
        "dispatch",
        "fixtures/invalid/note.saved/missing-required.json",
    ])
    .run()
    .code(3)
    .stderr_has("missing-required.json");
    assert_eq!(std::fs::read_dir(p.path(".autod/out")).unwrap().count(), 1);
}

#[test]
fn init_refuses_an_existing_project() {
    let p = Project::new().config("[routing]\nunrouted = \"ignore\"\n");
    p.autod(["init"]).run().code(2).stderr_has("already exists");
    assert_eq!(p.read("autod.toml"), "[routing]\nunrouted = \"ignore\"\n");
}

#[test]
fn new_handler_rejects_a_bad_name() {
    let p = Project::new();
    p.autod(["new", "handler", "Bad/Name", "--on", "x"])
        .run()
        .code(2)
        .stderr_has("Bad/Name");
    assert!(!p.exists("handlers"));
}

#[test]
fn new_event_rejects_a_bad_type() {
    let p = Project::new();
    p.autod(["new", "event", "../escape"]).run().code(2);
    assert!(!p.exists("schemas"));
}

#[test]
fn completions_for_bash() {
    let dir = Project::bare();
    let out = Cmd::bare(["completions", "bash"])
        .current_dir(dir.root())
        .run();
    out.code(0).stdout_has("autod").stdout_has("dispatch");
}
