//! fixtures/<type>/ must validate (envelope and payload); fixtures/invalid/<type>/
//! must be rejected.

use serde_json::json;

use crate::common::{Project, assert_error, assert_warning, event};

#[test]
fn valid_fixture_whose_payload_does_not_validate() {
    let p = Project::clean();
    // Pretty-printed, so the offending member has a line of its own.
    let text = serde_json::to_string_pretty(&json!({
        "eventType": "job.done", "source": "cli", "payload": {"name": 3}
    }))
    .unwrap();
    let line = 1 + text.lines().position(|l| l.contains("\"name\"")).unwrap();
    p.write("fixtures/job.done/bad.json", &text);
    let f = assert_error(
        &p.lint(&[]),
        "fixture-invalid",
        "fixtures/job.done/bad.json",
    );
    assert!(
        f["message"].as_str().unwrap().contains("/payload/name"),
        "{f}"
    );
    assert_eq!(f["line"], line, "{f}");
    assert!(
        p.annotation("fixture-invalid").starts_with(&format!(
            "::error file=fixtures/job.done/bad.json,line={line},title=autod lint (fixture-invalid)::fixture does not validate"
        )),
        "{}",
        p.annotation("fixture-invalid")
    );
}

#[test]
fn valid_fixture_whose_envelope_does_not_validate() {
    let p = Project::clean();
    p.write(
        "fixtures/job.done/no-source.json",
        r#"{"eventType":"job.done","payload":{"name":"a"}}"#,
    );
    let f = assert_error(
        &p.lint(&[]),
        "fixture-invalid",
        "fixtures/job.done/no-source.json",
    );
    assert!(f["message"].as_str().unwrap().contains("source"), "{f}");
}

#[test]
fn invalid_fixture_that_passes_means_the_schema_is_too_loose() {
    let p = Project::clean();
    p.write(
        "fixtures/invalid/job.done/extra.json",
        &event("job.done", json!({"name": "x"})),
    );
    assert_error(
        &p.lint(&[]),
        "fixture-passes",
        "fixtures/invalid/job.done/extra.json",
    );
    assert!(
        p.annotation("fixture-passes").starts_with(
            "::error file=fixtures/invalid/job.done/extra.json,title=autod lint (fixture-passes)::"
        ),
        "{}",
        p.annotation("fixture-passes")
    );
}

#[test]
fn fixture_that_is_not_json() {
    let p = Project::clean();
    p.write(
        "fixtures/job.done/garbage.json",
        "{\"eventType\": \"job.done\",\n  oops}",
    );
    let f = assert_error(
        &p.lint(&[]),
        "fixture-invalid",
        "fixtures/job.done/garbage.json",
    );
    assert_eq!(f["line"], 2, "{f}");
    assert_eq!(f["column"], 3, "{f}");
}

#[test]
fn fixture_of_binary_garbage() {
    let p = Project::clean();
    p.write("fixtures/job.done/garbage.json", "\u{1}\u{2}not json");
    assert_error(
        &p.lint(&[]),
        "fixture-invalid",
        "fixtures/job.done/garbage.json",
    );
}

#[test]
fn empty_fixture_is_located_at_line_1_column_1() {
    let p = Project::clean();
    p.write("fixtures/job.done/empty.json", "");
    let f = assert_error(
        &p.lint(&[]),
        "fixture-invalid",
        "fixtures/job.done/empty.json",
    );
    assert_eq!(
        (f["line"].clone(), f["column"].clone()),
        (json!(1), json!(1))
    );
}

#[test]
fn invalid_fixture_that_is_not_json_proves_nothing() {
    let p = Project::clean();
    p.write("fixtures/invalid/job.done/garbage.json", "<not json>");
    let f = assert_warning(&p, "fixture-json", "fixtures/invalid/job.done/garbage.json");
    assert_eq!(f["line"], 1, "{f}");
    assert!(
        p.annotation("fixture-json").starts_with(
            "::warning file=fixtures/invalid/job.done/garbage.json,line=1,col=1,title=autod lint (fixture-json)::"
        ),
        "{}",
        p.annotation("fixture-json")
    );
}

#[test]
fn fixture_folder_for_an_event_type_without_schema() {
    let p = Project::clean();
    p.write(
        "fixtures/ghost.seen/a.json",
        &event("ghost.seen", json!({})),
    );
    let f = assert_error(&p.lint(&[]), "fixture-no-schema", "fixtures/ghost.seen");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("schemas/ghost.seen.json"),
        "{f}"
    );
}

#[test]
fn invalid_fixture_folder_for_an_event_type_without_schema() {
    let p = Project::clean();
    p.write(
        "fixtures/invalid/ghost.seen/a.json",
        &event("ghost.seen", json!({})),
    );
    assert_error(
        &p.lint(&[]),
        "fixture-no-schema",
        "fixtures/invalid/ghost.seen",
    );
}

#[test]
fn fixture_in_the_wrong_folder() {
    let p = Project::clean();
    p.write("schemas/job.failed.json", crate::common::SCHEMA);
    p.write(
        "fixtures/job.done/other.json",
        &event("job.failed", json!({"name": "x"})),
    );
    let f = assert_error(&p.lint(&[]), "fixture-type", "fixtures/job.done/other.json");
    assert!(f["message"].as_str().unwrap().contains("job.failed"), "{f}");
}

#[test]
fn unreadable_fixture_is_a_finding() {
    let p = Project::clean();
    p.dangling("fixtures/job.done/x.json");
    assert_error(&p.lint(&[]), "unreadable", "fixtures/job.done/x.json");
    assert!(
        p.annotation("unreadable").starts_with(
            "::error file=fixtures/job.done/x.json,title=autod lint (unreadable)::a symlink to "
        ),
        "{}",
        p.annotation("unreadable")
    );
}

#[test]
fn unreadable_invalid_fixture_is_a_finding() {
    let p = Project::clean();
    p.dangling("fixtures/invalid/job.done/x.json");
    assert_error(
        &p.lint(&[]),
        "unreadable",
        "fixtures/invalid/job.done/x.json",
    );
}

/// Was a panic in `--format json` ("path contains invalid UTF-8 characters"):
/// a finding's file name is written lossily, in every format.
#[test]
fn fixture_whose_name_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let p = Project::clean();
    let name = std::ffi::OsStr::from_bytes(b"fixtures/job.done/\xff.json");
    std::fs::write(p.dir.path().join(name), "<not json>").unwrap();
    let f = assert_error(
        &p.lint(&[]),
        "fixture-invalid",
        "fixtures/job.done/\u{fffd}.json",
    );
    assert_eq!(f["line"], 1, "{f}");
    for format in ["text", "github"] {
        let run = p.autod(&["lint", "--format", format]);
        assert_eq!(run.code, 1, "{format}: {}", run.stderr);
        assert!(
            run.stdout.contains("\u{fffd}.json"),
            "{format}: {}",
            run.stdout
        );
    }
}

/// Was silently skipped, its fixtures never checked.
#[test]
fn fixture_folder_whose_name_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let p = Project::clean();
    let dir = p
        .dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"fixtures/job\xff.done"));
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.json"), event("job.done", json!({"name": "a"}))).unwrap();
    assert_error(
        &p.lint(&[]),
        "fixture-no-schema",
        "fixtures/job\u{fffd}.done",
    );
}
