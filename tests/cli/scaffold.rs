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

/// The README's tour: the scaffolded fixture has an eventId, so dispatching
/// it again skips the handler instead of running it a second time.
#[test]
fn a_scaffolded_fixture_dispatched_twice_is_skipped_the_second_time() {
    let p = Project::bare();
    p.autod(["init"]).run().code(0);
    p.autod(["new", "event", "photo.added"]).run().code(0);
    p.autod(["new", "handler", "thumbnailer", "--on", "photo.*"])
        .run()
        .code(0);
    let fixture: serde_json::Value =
        serde_json::from_str(&p.read("fixtures/photo.added/example.json")).unwrap();
    assert_eq!(fixture["eventId"], "photo.added-example", "{fixture}");
    p.autod(["dispatch", "fixtures/photo.added/example.json"])
        .run()
        .code(0)
        .stderr_has("ok       thumbnailer photo.added photo.added-example");
    p.autod(["dispatch", "fixtures/photo.added/example.json"])
        .run()
        .code(0)
        .stderr_has("skipped  thumbnailer photo.added photo.added-example (already succeeded)");
    assert_eq!(
        p.logged("skipped"),
        [("thumbnailer".into(), "photo.added-example".into())]
    );
    // Another type's example is another event, not a skip of this one.
    p.autod(["new", "event", "photo.removed"]).run().code(0);
    p.autod(["dispatch", "fixtures/photo.removed/example.json"])
        .run()
        .code(0)
        .stderr_has("ok       thumbnailer photo.removed photo.removed-example");
}

#[test]
fn new_event_watch_writes_the_watch_payload_schema_and_lint_is_clean() {
    let p = Project::bare();
    p.autod(["init"]).run().code(0);
    p.autod(["new", "event", "file.seen", "--watch"])
        .run()
        .code(0)
        .stderr_has("created schemas/file.seen.json")
        .stderr_has("created fixtures/file.seen/removed.json")
        .stderr_has("[[watches]]");
    let schema: serde_json::Value =
        serde_json::from_str(&p.read("schemas/file.seen.json")).unwrap();
    assert_eq!(
        schema["required"],
        serde_json::json!(["path", "relPath", "kind", "size", "mtime"])
    );
    p.autod(["new", "handler", "seen", "--on", "file.seen"])
        .run()
        .code(0);
    std::fs::create_dir(p.path("watched")).unwrap();
    let mut config = p.read("autod.toml");
    config.push_str(
        "\n[[watches]]\nname = \"files\"\npath = \"watched\"\non = [\"create\", \"modify\", \"remove\"]\nevent_type = \"file.seen\"\n",
    );
    std::fs::write(p.path("autod.toml"), config).unwrap();
    p.autod(["lint", "--strict"])
        .run()
        .code(0)
        .stderr_has("lint: clean");
    // Its fixtures are events a watch could send: both dispatch.
    p.autod([
        "dispatch",
        "fixtures/file.seen/example.json",
        "fixtures/file.seen/removed.json",
    ])
    .run()
    .code(0);
}

#[test]
fn new_event_refuses_an_existing_schema_naming_it_relatively() {
    let p = Project::new();
    p.autod(["new", "event", "a.b"]).run().code(0);
    let out = p.autod(["new", "event", "a.b", "--watch"]).run();
    out.code(2)
        .stderr_has("schemas/a.b.json already exists")
        .stderr_has("move it aside");
    assert!(
        !out.stderr.contains(&p.root().display().to_string()),
        "{out}"
    );
    assert!(!p.read("schemas/a.b.json").contains("relPath"));
}

/// `AUTOD_COMPLETE=fish autod -- autod ARGS`: what the shell's registration
/// asks at a TAB. The fish protocol prints one `value\thelp` line each.
fn complete(dir: &std::path::Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["--", "autod"];
    all.extend_from_slice(args);
    let out = Cmd::bare(all)
        .env("AUTOD_COMPLETE", "fish")
        .current_dir(dir)
        .run();
    out.code(0);
    out.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn dynamic_completion_offers_the_projects_handlers_and_event_types() {
    let p = Project::new()
        .open_schema("photo.added")
        .open_schema("photo.removed")
        .file("schemas/event.json", "{}")
        .config(
            r#"
            [handlers.thumbnailer]
            on = ["photo.*"]

            [handlers.archiver]
            on = ["photo.added"]
            "#,
        );
    for args in [
        &["dispatch", "--handler", ""][..],
        &["retry", "--handler", ""],
        &["log", "--handler", ""],
        &["dead", "list", "--handler", ""],
    ] {
        assert_eq!(
            complete(p.root(), args),
            ["archiver\ton photo.added", "thumbnailer\ton photo.*"],
            "{args:?}"
        );
    }
    assert_eq!(
        complete(p.root(), &["dispatch", "--handler", "th"]),
        ["thumbnailer\ton photo.*"]
    );
    // eventTypes: the payload schemas, not the envelope.
    assert_eq!(
        complete(p.root(), &["new", "handler", "x", "--on", "photo."]),
        ["photo.added", "photo.removed"]
    );
    // From a subfolder, and from elsewhere with AUTOD_ROOT.
    std::fs::create_dir(p.path("sub")).unwrap();
    assert_eq!(
        complete(&p.path("sub"), &["dispatch", "--handler", "a"]),
        ["archiver\ton photo.added"]
    );
    let elsewhere = Project::bare();
    let out = Cmd::bare(["--", "autod", "dispatch", "--handler", "a"])
        .env("AUTOD_COMPLETE", "fish")
        .env("AUTOD_ROOT", p.root())
        .current_dir(elsewhere.root())
        .run();
    out.code(0).stdout_has("archiver");
}

#[test]
fn dynamic_completion_outside_a_project_or_with_a_broken_config_does_not_fail() {
    let nowhere = Project::bare();
    assert!(complete(nowhere.root(), &["dispatch", "--handler", ""]).is_empty());
    // An unknown key: the handlers that parsed are still offered.
    let p = Project::new().config(
        r#"
        tiemout = 3
        [handlers.indexer]
        on = ["note.saved"]
        typo = 1
        "#,
    );
    assert_eq!(
        complete(p.root(), &["dispatch", "--handler", ""]),
        ["indexer\ton note.saved"]
    );
    // Commands still complete as before.
    assert!(complete(p.root(), &["disp"])[0].starts_with("dispatch\t"));
}

/// A shell that has `COMPLETE` set for another program must not turn an
/// autod run into a completion (cron, CI).
#[test]
fn clap_s_generic_complete_variable_does_not_hijack_a_run() {
    let p = Project::new();
    p.autod(["status"])
        .env("COMPLETE", "bash")
        .run()
        .code(0)
        .stdout_has("inbox:");
}
