//! Finding the project root, as cargo finds Cargo.toml.

use serde_json::json;

use crate::common::{Cmd, Project, RECORD, event};

fn project() -> Project {
    Project::new()
        .open_schema("note.saved")
        .config(
            r#"
            [handlers.indexer]
            on = ["note.saved"]
            command = ["handlers/indexer/main.sh"]
            "#,
        )
        .handler("indexer", RECORD)
        .event("e.json", event("note.saved", "ev-1", json!({})))
        .file("deep/down/here/.keep", "")
}

#[test]
fn found_from_a_subdirectory() {
    let p = project();
    Cmd::bare(["dispatch", "../../../e.json"])
        .current_dir(p.path("deep/down/here"))
        .run()
        .code(0);
    // Relative paths in the config and the handler's cwd are the root's.
    assert_eq!(p.runs(), ["indexer note.saved ev-1 1"]);
    assert!(!p.exists("deep/down/here/runs.log"));
    assert!(!p.exists("deep/down/here/.autod"));
    assert!(p.done("ev-1", "indexer"));
}

#[test]
fn autod_root_works_from_an_unrelated_directory() {
    let p = project();
    let elsewhere = Project::bare();
    Cmd::bare(["dispatch".into(), p.path("e.json")])
        .env("AUTOD_ROOT", p.root())
        .current_dir(elsewhere.root())
        .run()
        .code(0);
    assert_eq!(p.runs(), ["indexer note.saved ev-1 1"]);
    assert!(!elsewhere.exists(".autod"));
    assert!(!elsewhere.exists("runs.log"));
}

#[test]
fn root_flag_beats_autod_root() {
    let p = project();
    let other = Project::new();
    Cmd::bare([
        "--root".into(),
        p.root().to_owned(),
        "dispatch".into(),
        p.path("e.json"),
    ])
    .env("AUTOD_ROOT", other.root())
    .current_dir(other.root())
    .run()
    .code(0);
    assert_eq!(p.runs().len(), 1);
}

#[test]
fn no_autod_toml_anywhere_suggests_init() {
    let empty = Project::bare();
    assert!(
        empty
            .root()
            .ancestors()
            .all(|d| !d.join("autod.toml").exists()),
        "precondition: no autod.toml above the temp dir"
    );
    Cmd::bare(["status"])
        .current_dir(empty.root())
        .run()
        .code(2)
        .stderr_has("no autod.toml")
        .stderr_has("autod init");
}

#[test]
fn root_that_does_not_exist() {
    let p = Project::new();
    Cmd::bare(["--root", "no/such/dir", "status"])
        .current_dir(p.root())
        .run()
        .code(2)
        .stderr_has("no/such/dir");
}

#[test]
fn every_command_help_teaches_with_examples() {
    let commands: &[&[&str]] = &[
        &["dispatch"],
        &["send"],
        &["run"],
        &["serve"],
        &["retry"],
        &["replay"],
        &["archive"],
        &["archive", "prune"],
        &["dead"],
        &["rejected"],
        &["log"],
        &["status"],
        &["schedules"],
        &["schedules", "fire"],
        &["trace"],
        &["lint"],
        &["handlers"],
        &["init"],
        &["new"],
        &["completions"],
    ];
    for command in commands {
        let out = Cmd::bare(command.iter().copied().chain(["--help"])).run();
        out.code(0);
        let help = &out.stdout;
        assert!(
            help.contains("Example"),
            "`autod {} --help` shows no example:\n{help}",
            command.join(" ")
        );
    }
    let show = Cmd::bare(["dead", "show", "--help"]).run();
    show.code(0).stdout_has("The eventId of the failed pair");
}
