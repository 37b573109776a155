//! schemas/: JSON syntax, meta-schema (2020-12 unless declared), local `$ref`s.

use std::time::Instant;

use serde_json::json;

use crate::common::{Project, assert_error, event};

#[test]
fn schema_that_is_not_json_has_line_and_column() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        "{\n  \"type\": \"object\",\n  oops\n}",
    );
    let f = assert_error(&p.lint(&[]), "schema-json", "schemas/job.done.json");
    assert_eq!(f["line"], 3, "{f}");
    assert_eq!(f["column"], 3, "{f}");
    assert!(
        p.annotation("schema-json").starts_with(
            "::error file=schemas/job.done.json,line=3,col=3,title=autod lint (schema-json)::not valid JSON"
        ),
        "{}",
        p.annotation("schema-json")
    );
}

/// serde_json says "column 0" for an error right after a newline (here: the
/// file ends there); annotations and editors count columns from 1.
#[test]
fn json_error_at_the_start_of_a_line_is_column_1_not_0() {
    let p = Project::clean();
    p.write("schemas/job.done.json", "{\n  \"type\": \"object\",\n");
    let f = assert_error(&p.lint(&[]), "schema-json", "schemas/job.done.json");
    assert_eq!(
        (f["line"].clone(), f["column"].clone()),
        (json!(3), json!(1))
    );
    assert!(
        p.annotation("schema-json")
            .starts_with("::error file=schemas/job.done.json,line=3,col=1,"),
        "{}",
        p.annotation("schema-json")
    );
}

#[test]
fn empty_schema_file() {
    let p = Project::clean();
    p.write("schemas/job.done.json", "");
    let f = assert_error(&p.lint(&[]), "schema-json", "schemas/job.done.json");
    assert!(f["message"].as_str().unwrap().contains("empty"), "{f}");
}

#[test]
fn schema_of_only_whitespace_is_empty_too() {
    let p = Project::clean();
    p.write("schemas/job.done.json", " \n\t\n");
    assert_error(&p.lint(&[]), "schema-json", "schemas/job.done.json");
}

#[test]
fn schema_that_is_an_array() {
    let p = Project::clean();
    p.write("schemas/job.done.json", "[1, 2]");
    assert_error(&p.lint(&[]), "schema-type", "schemas/job.done.json");
    assert!(
        p.annotation("schema-type")
            .starts_with("::error file=schemas/job.done.json,line=1,col=1,"),
        "{}",
        p.annotation("schema-type")
    );
}

#[test]
fn schema_that_is_a_string() {
    let p = Project::clean();
    p.write("schemas/job.done.json", "\"object\"");
    assert_error(&p.lint(&[]), "schema-type", "schemas/job.done.json");
}

#[test]
fn schema_invalid_against_its_meta_schema() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        "{\n  \"type\": \"object\",\n  \"properties\": {\n    \"n\": {\"type\": \"integr\"}\n  }\n}\n",
    );
    let f = assert_error(&p.lint(&[]), "schema-meta", "schemas/job.done.json");
    let message = f["message"].as_str().unwrap();
    assert!(message.contains("at /properties/n/type"), "{f}");
    assert!(
        message.contains("\"integr\" is not a type; use one of array, boolean, integer"),
        "{f}"
    );
    assert_eq!(f["line"], 4, "{f}");
    assert!(
        p.annotation("schema-meta").starts_with(
            "::error file=schemas/job.done.json,line=4,title=autod lint (schema-meta)::"
        ),
        "{}",
        p.annotation("schema-meta")
    );
}

/// Was one finding per schema: every meta-schema error is listed, at its line.
#[test]
fn every_meta_schema_error_is_a_finding_at_its_line() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        "{\n  \"type\": \"object\",\n  \"properties\": {\n    \"n\": {\"type\": \"integr\"},\n    \"m\": {\"minimum\": \"zero\"}\n  },\n  \"required\": \"n\"\n}\n",
    );
    let run = p.lint(&[]);
    assert_error(&run, "schema-meta", "schemas/job.done.json");
    let found = run.located("schema-meta");
    assert_eq!(found.len(), 3, "{found:?}");
    for (line, pointer) in [
        (4, "/properties/n/type"),
        (5, "/properties/m/minimum"),
        (7, "/required"),
    ] {
        assert!(
            found
                .iter()
                .any(|(l, m)| *l == line && m.contains(&format!("at {pointer}:"))),
            "{pointer} at line {line}: {found:?}"
        );
    }
}

/// A property that happens to be named "type" is not the `type` keyword.
#[test]
fn meta_schema_error_in_a_property_named_type() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        r#"{"type": "object", "properties": {"type": 12}}"#,
    );
    let f = assert_error(&p.lint(&[]), "schema-meta", "schemas/job.done.json");
    let message = f["message"].as_str().unwrap();
    assert!(message.contains("at /properties/type:"), "{f}");
    assert!(!message.contains("is not a type"), "{f}");
    assert_eq!(f["line"], 1, "{f}");
}

#[test]
fn draft_07_schemas_are_honoured() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        r##"{"$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {"name": {"type": "string"}},
            "type": "object", "required": ["name"],
            "properties": {"name": {"$ref": "#/definitions/name"}}}"##,
    );
    let run = p.autod(&["lint", "--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

/// `items` as an array (a tuple) is draft-07; 2020-12 spells it `prefixItems`.
const TUPLE: &str = r#""type": "object", "required": ["name", "pair"],
    "properties": {"name": {"type": "string"},
                   "pair": {"type": "array",
                            "items": [{"type": "string"}, {"type": "integer"}],
                            "additionalItems": false}}}"#;

#[test]
fn draft_07_only_syntax_validates_fixtures_with_draft_07_meaning() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        &format!(r#"{{"$schema": "http://json-schema.org/draft-07/schema#", {TUPLE}"#),
    );
    p.write(
        "fixtures/job.done/ok.json",
        &event("job.done", json!({"name": "a", "pair": ["x", 1]})),
    );
    p.write(
        "fixtures/invalid/job.done/missing-name.json",
        &event("job.done", json!({"name": "a", "pair": [1, "x"]})),
    );
    let run = p.autod(&["lint", "--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

#[test]
fn draft_07_only_syntax_without_declaring_draft_07_is_checked_as_2020_12() {
    let p = Project::clean();
    p.write("schemas/job.done.json", &format!("{{{TUPLE}"));
    let f = assert_error(&p.lint(&[]), "schema-meta", "schemas/job.done.json");
    assert!(f["message"].as_str().unwrap().contains("items"), "{f}");
}

#[test]
fn draft_07_schema_is_checked_against_the_draft_07_meta_schema() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        r#"{"$schema": "http://json-schema.org/draft-07/schema#", "type": 12}"#,
    );
    assert_error(&p.lint(&[]), "schema-meta", "schemas/job.done.json");
}

#[test]
fn ref_to_a_missing_file() {
    let p = Project::clean();
    p.write("schemas/job.done.json", r#"{"$ref": "nowhere.json"}"#);
    let f = assert_error(&p.lint(&[]), "schema-ref", "schemas/job.done.json");
    assert!(
        f["message"].as_str().unwrap().contains("nowhere.json"),
        "{f}"
    );
}

/// Was `schema-invalid`: the compile error for a pointer that names nothing
/// ("Pointer '/$defs/b' does not exist") did not say `$ref`.
#[test]
fn ref_to_a_missing_pointer_in_another_file() {
    let p = Project::clean();
    p.write(
        "schemas/common.json",
        r#"{"$defs": {"a": {"type": "string"}}}"#,
    );
    p.write(
        "schemas/job.done.json",
        r#"{"$ref": "common.json#/$defs/b"}"#,
    );
    let f = assert_error(&p.lint(&[]), "schema-ref", "schemas/job.done.json");
    assert!(f["message"].as_str().unwrap().contains("/$defs/b"), "{f}");
}

#[test]
fn ref_to_a_missing_pointer_in_the_same_file() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        r##"{"type": "object", "properties": {"name": {"$ref": "#/$defs/name"}}}"##,
    );
    assert_error(&p.lint(&[]), "schema-ref", "schemas/job.done.json");
}

#[test]
fn ref_to_a_missing_anchor() {
    let p = Project::clean();
    p.write("schemas/job.done.json", r##"{"$ref": "#nope"}"##);
    assert_error(&p.lint(&[]), "schema-ref", "schemas/job.done.json");
}

#[test]
fn ref_cycle_finishes_without_a_crash() {
    let p = Project::clean();
    p.write("schemas/a.json", r#"{"$ref": "b.json"}"#);
    p.write("schemas/b.json", r#"{"$ref": "a.json"}"#);
    // A finding or none, but an answer: `autod` (common::Project) fails the
    // test if the run is killed at its deadline or panics.
    let started = Instant::now();
    let run = p.lint(&[]);
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    eprintln!(
        "a.json -> b.json -> a.json linted in {:?}",
        started.elapsed()
    );
}

#[test]
fn ref_cycle_through_an_event_schema_with_fixtures_finishes() {
    let p = Project::clean();
    p.write("schemas/job.done.json", r#"{"$ref": "loop.json"}"#);
    p.write("schemas/loop.json", r#"{"$ref": "job.done.json"}"#);
    let run = p.lint(&[]);
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
}

#[test]
fn remote_refs_are_never_fetched() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        r#"{"$ref": "https://example.com/schema.json"}"#,
    );
    let f = assert_error(&p.lint(&[]), "schema-ref", "schemas/job.done.json");
    assert!(
        f["message"].as_str().unwrap().contains("never fetches"),
        "{f}"
    );
}

#[test]
fn ref_that_leaves_the_schemas_folder() {
    let p = Project::clean();
    p.write("outside.json", r#"{"type": "object"}"#);
    p.write("schemas/job.done.json", r#"{"$ref": "../outside.json"}"#);
    assert_error(&p.lint(&[]), "schema-ref", "schemas/job.done.json");
}

#[test]
fn unreadable_schema_is_a_finding() {
    let p = Project::clean();
    p.dangling("schemas/job.done.json");
    let f = assert_error(&p.lint(&[]), "unreadable", "schemas/job.done.json");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("a symlink to") && message.contains("does not exist; fix the link"),
        "{f}"
    );
}

#[test]
fn shared_schemas_that_are_only_referenced_need_no_handler() {
    let p = Project::clean();
    p.write(
        "schemas/common.json",
        r#"{"$defs": {"name": {"type": "string"}}}"#,
    );
    p.write(
        "schemas/job.done.json",
        r#"{"type":"object","required":["name"],"properties":{"name":{"$ref":"common.json#/$defs/name"}}}"#,
    );
    let run = p.autod(&["lint", "--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

/// Was `schema-ref` "Invalid URI reference": a file name became the schema's
/// base URI without percent-encoding.
#[test]
fn shared_schema_whose_name_has_a_space() {
    let p = Project::clean();
    p.write("schemas/common types.json", r#"{"type": "string"}"#);
    p.write(
        "schemas/job.done.json",
        r#"{"type":"object","required":["name"],"properties":{"name":{"$ref":"common%20types.json"}}}"#,
    );
    let run = p.autod(&["lint", "--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

#[test]
fn shared_schema_in_a_subfolder_whose_name_has_a_space() {
    let p = Project::clean();
    p.write("schemas/shared lib/name.json", r#"{"type": "string"}"#);
    p.write("schemas/shared lib/uses.json", r#"{"$ref": "name.json"}"#);
    let run = p.autod(&["lint", "--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}
