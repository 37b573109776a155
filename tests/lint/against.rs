//! `--against REV`: schema changes since a git revision that break producers or
//! consumers. Each test commits the clean project, changes one schema one way,
//! and lints against HEAD.

use crate::common::{Project, SCHEMA, assert_error};

/// The clean project, committed, with schemas/job.done.json then rewritten by
/// `change` (from SCHEMA), linted against HEAD.
fn after(change: impl Fn(&str) -> String) -> (Project, crate::common::Run) {
    let p = Project::clean();
    p.commit_all();
    p.write("schemas/job.done.json", &change(SCHEMA));
    let run = p.lint(&["--against", "HEAD"]);
    (p, run)
}

/// Asserts exit 1 and a breaking-change finding on job.done.json that says `what`.
fn assert_breaking(run: &crate::common::Run, what: &str) {
    assert_error(run, "breaking-change", "schemas/job.done.json");
    let messages = run.messages("breaking-change");
    assert!(
        messages.iter().any(|m| m.contains(what)),
        "no {what:?} in {messages:#?}"
    );
}

#[test]
fn adding_an_optional_property_is_not_breaking() {
    let (_p, run) = after(|s| {
        s.replace(
            r#""size": {"type": "integer"}"#,
            r#""size": {"type": "integer"}, "note": {"type": "string"}"#,
        )
    });
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.findings().len(), 0, "{}", run.stdout);
}

#[test]
fn widening_is_not_breaking() {
    let (_p, run) = after(|s| {
        s.replace(r#""required": ["name"]"#, r#""required": []"#)
            .replace(
                r#""size": {"type": "integer"}"#,
                r#""size": {"type": "number"}"#,
            )
            .replace(
                r#""additionalProperties": false"#,
                r#""additionalProperties": true"#,
            )
    });
    // The loosened schema now accepts the clean project's invalid fixture, so
    // only the compatibility rule is asked about here.
    assert!(run.messages("breaking-change").is_empty(), "{}", run.stdout);
}

#[test]
fn a_new_required_field() {
    let (_p, run) =
        after(|s| s.replace(r#""required": ["name"]"#, r#""required": ["name", "size"]"#));
    assert_breaking(&run, "new required field \"size\"");
}

#[test]
fn a_removed_property() {
    let (_p, run) = after(|s| s.replace(r#", "size": {"type": "integer"}"#, ""));
    assert_breaking(&run, "property \"size\" removed");
}

#[test]
fn a_narrowed_type() {
    let (_p, run) = after(|s| {
        s.replace(
            r#""name": {"type": "string"}"#,
            r#""name": {"type": "integer"}"#,
        )
    });
    assert_breaking(&run, "type at /name narrowed");
}

#[test]
fn a_narrowed_type_list() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        &SCHEMA.replace(r#"{"type": "integer"}"#, r#"{"type": ["integer", "null"]}"#),
    );
    p.commit_all();
    p.write("schemas/job.done.json", SCHEMA);
    assert_breaking(&p.lint(&["--against", "HEAD"]), "type at /size narrowed");
}

#[test]
fn a_narrowed_enum() {
    let p = Project::clean();
    let with_enum = |values: &str| {
        SCHEMA.replace(
            r#""size": {"type": "integer"}"#,
            &format!(r#""size": {{"type": "integer", "enum": [{values}]}}"#),
        )
    };
    p.write("schemas/job.done.json", &with_enum("1, 2, 3"));
    p.commit_all();
    p.write("schemas/job.done.json", &with_enum("1, 2"));
    assert_breaking(
        &p.lint(&["--against", "HEAD"]),
        "enum at /size no longer allows 3",
    );
    // Growing an enum is fine.
    p.write("schemas/job.done.json", &with_enum("1, 2, 3, 4"));
    let run = p.lint(&["--against", "HEAD"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn an_added_enum() {
    let (_p, run) = after(|s| {
        s.replace(
            r#""size": {"type": "integer"}"#,
            r#""size": {"type": "integer", "enum": [1]}"#,
        )
    });
    assert_breaking(&run, "enum added at /size");
}

#[test]
fn additional_properties_newly_false() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        &SCHEMA.replace(
            r#""additionalProperties": false"#,
            r#""additionalProperties": true"#,
        ),
    );
    p.commit_all();
    p.write("schemas/job.done.json", SCHEMA);
    assert_breaking(
        &p.lint(&["--against", "HEAD"]),
        "additionalProperties at the payload is now false",
    );
}

#[test]
fn a_breaking_change_deep_inside_is_located() {
    let nested = |inner: &str| {
        format!(
            r#"{{"type": "object", "required": ["name"], "properties": {{
                "name": {{"type": "string"}},
                "tags": {{"type": "array", "items": {{"type": "object", "properties": {{"k": {inner}}}}}}}}}}}"#
        )
    };
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        &nested(r#"{"type": ["string", "integer"]}"#),
    );
    p.commit_all();
    p.write("schemas/job.done.json", &nested(r#"{"type": "string"}"#));
    assert_breaking(&p.lint(&["--against", "HEAD"]), "/tags/items/k");
}

#[test]
fn a_removed_schema_that_handlers_still_route() {
    let p = Project::clean();
    p.write("schemas/job.failed.json", SCHEMA);
    p.commit_all();
    p.remove("schemas/job.failed.json");
    let run = p.lint(&["--against", "HEAD"]);
    let f = assert_error(&run, "breaking-change", "schemas/job.failed.json");
    assert!(
        f["message"].as_str().unwrap().contains("still route"),
        "{f}"
    );
    let gh = p.autod(&["lint", "--against", "HEAD", "--format", "github"]);
    assert_eq!(gh.code, 1);
    assert!(
        gh.stdout.lines().any(|l| l.starts_with(
            "::error file=schemas/job.failed.json,title=autod lint (breaking-change)::"
        )),
        "{}",
        gh.stdout
    );
}

#[test]
fn a_removed_schema_nothing_routes_is_a_warning() {
    let p = Project::clean();
    p.write(
        "schemas/common.json",
        r#"{"$defs": {"n": {"type": "string"}}}"#,
    );
    p.commit_all();
    p.remove("schemas/common.json");
    // common.json was shared, not an event anyone routes: removing it is worth a
    // look, not a failed build.
    let _ = assert_warning_against(&p, "schemas/common.json");
}

fn assert_warning_against(p: &Project, file: &str) -> serde_json::Value {
    let run = p.lint(&["--against", "HEAD"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let f = run.finding("breaking-change");
    assert_eq!(f["severity"], "warning", "{f}");
    assert_eq!(f["file"], file, "{f}");
    assert_eq!(p.lint(&["--against", "HEAD", "--strict"]).code, 1);
    f
}

#[test]
fn every_breaking_change_is_its_own_finding() {
    let (_p, run) = after(|s| {
        s.replace(
            r#""required": ["name"]"#,
            r#""required": ["name", "owner"]"#,
        )
        .replace(
            r#""size": {"type": "integer"}"#,
            r#""owner": {"type": "string"}"#,
        )
    });
    let messages = run.messages("breaking-change");
    assert_eq!(messages.len(), 2, "{messages:#?}");
}

/// Was silent: `git ls-tree REV:sub/schemas` run inside sub/ lists nothing,
/// so a project below the top of its repository never had a breaking change.
#[test]
fn project_in_a_subfolder_of_the_repository() {
    // The temp directory becomes the repository; the project moves into sub/.
    let p = Project::clean();
    std::fs::create_dir(p.path("sub")).unwrap();
    for entry in std::fs::read_dir(p.dir.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "sub" {
            std::fs::rename(entry.path(), p.path("sub").join(entry.file_name())).unwrap();
        }
    }
    p.commit_all();
    p.write(
        "sub/schemas/job.done.json",
        &SCHEMA.replace(r#""required": ["name"]"#, r#""required": ["name", "size"]"#),
    );
    let run = p.autod_in("sub", &["lint", "--format", "json", "--against", "HEAD"]);
    assert_breaking(&run, "new required field \"size\"");
}

#[test]
fn against_a_bad_revision_is_a_usage_error() {
    let p = Project::clean();
    p.commit_all();
    let run = p.autod(&["lint", "--against", "no-such-rev"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("no-such-rev"), "{}", run.stderr);
    assert_eq!(run.stdout, "", "no findings on a usage error");
}

#[test]
fn against_outside_a_git_repository_is_a_usage_error() {
    let p = Project::clean();
    let run = p.autod(&["lint", "--against", "HEAD"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("git"), "{}", run.stderr);
}

#[test]
fn against_a_revision_without_schemas_finds_nothing_to_break() {
    let p = Project::clean();
    p.git(&["init", "-q"]);
    p.git(&["add", "autod.toml"]);
    p.git(&["commit", "-qm", "config only"]);
    let run = p.lint(&["--against", "HEAD", "--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}
