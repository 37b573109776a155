//! Each `[[watches]]` eventType's schema must accept the payload the watch
//! sends, `{path, relPath, kind, size, mtime}`: else every change it sees is
//! rejected at run time, and lint used to say clean.

use crate::common::Project;

fn watch(on: &str, event_type: &str) -> String {
    format!(
        "\n[[watches]]\nname = \"drop\"\npath = \"drop-folder\"\n{on}event_type = \"{event_type}\"\n"
    )
}

fn project() -> Project {
    let p = Project::clean();
    std::fs::create_dir(p.path("drop-folder")).unwrap();
    p
}

/// Was clean: the clean project's `job.done` schema (additionalProperties
/// false, `name` required) refuses every watch payload.
#[test]
fn a_schema_that_refuses_the_watch_payload_is_an_error() {
    let p = project();
    p.config_with(&watch("", "job.done"));
    let run = p.lint(&[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let f = run.finding("watch-schema");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["file"], "autod.toml");
    assert_eq!(f["line"], 7, "{f}");
    let m = f["message"].as_str().unwrap();
    for want in [
        "watch \"drop\"",
        "schemas/job.done.json",
        "a create event",
        "/additionalProperties",
        "`autod new event job.done --watch`",
    ] {
        assert!(m.contains(want), "{want:?} not in {m}");
    }
}

/// A removal has no size or mtime: a schema that insists on them is refused
/// for a watch of removals only, at the keyword that refuses the null.
#[test]
fn a_removal_with_null_size_is_checked_against_the_schema() {
    let p = project();
    p.write(
        "schemas/file.seen.json",
        r#"{"type": "object", "properties": {"size": {"type": "integer"}}}"#,
    );
    p.write("handlers/seen/main.sh", "#!/bin/sh\n");
    p.chmod("handlers/seen/main.sh", 0o755);
    let handler = "\n[handlers.seen]\non = [\"file.seen\"]\nowner = \"me\"\noutput = \"x\"\n";
    p.config_with(&format!("{handler}{}", watch("", "file.seen")));
    assert!(p.lint(&[]).messages("watch-schema").is_empty());
    p.config_with(&format!(
        "{handler}{}",
        watch("on = [\"remove\"]\n", "file.seen")
    ));
    let run = p.lint(&[]);
    let m = run.messages("watch-schema");
    assert_eq!(m.len(), 1, "{}", run.stdout);
    assert!(
        m[0].contains("a remove event") && m[0].contains("/properties/size/type at payload /size"),
        "{m:?}"
    );
}

#[test]
fn a_watch_of_an_event_type_without_schema_is_an_error_unless_schemas_are_optional() {
    let p = project();
    p.config_with(&watch("", "no.schema"));
    let run = p.lint(&[]);
    let f = run.finding("watch-type");
    assert_eq!(f["severity"], "error");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("`autod new event no.schema --watch`"),
        "{f}"
    );
    p.config_with(&format!(
        "[validation]\nrequire_schema = false\n{}",
        watch("", "no.schema")
    ));
    assert!(p.lint(&[]).messages("watch-type").is_empty());
}

#[test]
fn the_scaffolded_watch_schema_is_clean() {
    let p = project();
    let out = p.autod(&["new", "event", "file.seen", "--watch"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    p.write("handlers/seen/main.sh", "#!/bin/sh\n");
    p.chmod("handlers/seen/main.sh", 0o755);
    p.config_with(&format!(
        "\n[handlers.seen]\non = [\"file.seen\"]\nowner = \"me\"\noutput = \"x\"\n{}",
        watch("on = [\"create\", \"modify\", \"remove\"]\n", "file.seen")
    ));
    p.handlers_doc();
    let run = p.autod(&["lint", "--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

/// The sample file fits the watch's glob: a schema that only takes the names
/// the watch can see is not refused for a name it never would.
#[test]
fn the_sample_payload_names_a_file_the_glob_matches() {
    let p = project();
    p.autod(&["new", "event", "shot.taken", "--watch"]);
    let schema = p.read("schemas/shot.taken.json").replace(
        r#""description": "the file's path relative to the watched folder""#,
        r#""pattern": "\\.png$""#,
    );
    assert!(schema.contains("png"), "{schema}");
    p.write("schemas/shot.taken.json", &schema);
    p.write("handlers/shots/main.sh", "#!/bin/sh\n");
    p.chmod("handlers/shots/main.sh", 0o755);
    p.config_with(&format!(
        "\n[handlers.shots]\non = [\"shot.taken\"]\nowner = \"me\"\noutput = \"x\"\n{}",
        watch("glob = \"*.png\"\n", "shot.taken")
    ));
    let run = p.lint(&[]);
    assert!(run.messages("watch-schema").is_empty(), "{}", run.stdout);
    // Without the glob, a .txt sample is refused, at the pattern.
    p.config_with(&format!(
        "\n[handlers.shots]\non = [\"shot.taken\"]\nowner = \"me\"\noutput = \"x\"\n{}",
        watch("", "shot.taken")
    ));
    let m = p.lint(&[]).messages("watch-schema");
    assert!(
        m.len() == 1 && m[0].contains("/properties/relPath/pattern"),
        "{m:?}"
    );
}
