//! Lint findings of issue 12: formats autod cannot check, custom meta-schemas
//! under schemas/, remote `$schema`s and `$id`s in autod's words, `$ref` loops
//! that check nothing, patterns the regex engine gives up on.

use serde_json::json;

use crate::common::{Project, assert_error, assert_warning, event};

#[test]
fn an_unknown_format_is_an_error() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        r#"{"type": "object", "properties": {"name": {"type": "string", "format": "my-thing"}}}"#,
    );
    let f = assert_error(&p.lint(&[]), "schema-format", "schemas/job.done.json");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("unknown format \"my-thing\" at /properties/name/format"),
        "{f}"
    );
    assert!(!message.contains("autod-schemas"), "{f}");
}

#[test]
fn with_formats_annotate_an_unknown_format_is_a_warning() {
    let p = Project::clean();
    p.config_with("[validation]\nformats = \"annotate\"\n");
    p.write(
        "schemas/job.done.json",
        r#"{"type": "object", "required": ["name"], "properties": {"name": {"format": "emial"}}}"#,
    );
    let f = assert_warning(&p, "schema-format", "schemas/job.done.json");
    assert!(f["message"].as_str().unwrap().contains("\"emial\""), "{f}");
}

const TYPED_META: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$dynamicAnchor": "meta",
  "allOf": [{"$ref": "https://json-schema.org/draft/2020-12/schema"}],
  "required": ["type"]
}"#;

#[test]
fn a_custom_meta_schema_by_relative_path_is_used() {
    let p = Project::clean();
    p.write("schemas/meta/typed.json", TYPED_META);
    let schema = crate::common::SCHEMA.replace(
        "https://json-schema.org/draft/2020-12/schema",
        "meta/typed.json",
    );
    p.write("schemas/job.done.json", &schema);
    let run = p.lint(&["--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // Breaking the custom meta-schema's rule is a finding.
    p.write(
        "schemas/job.done.json",
        r#"{"$schema": "meta/typed.json", "required": ["name"]}"#,
    );
    let f = assert_error(&p.lint(&[]), "schema-meta", "schemas/job.done.json");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("\"type\" is a required property"),
        "{f}"
    );
}

#[test]
fn a_remote_meta_schema_is_refused_in_autods_words() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        r#"{"$schema": "https://example.com/my-meta", "type": "object"}"#,
    );
    let run = p.lint(&[]);
    let f = assert_error(&run, "schema-meta", "schemas/job.done.json");
    let message = f["message"].as_str().unwrap();
    assert!(message.contains("autod never fetches"), "{f}");
    assert!(message.contains("relative path"), "{f}");
    assert!(!run.stdout.contains("resolve-http"), "{}", run.stdout);
    assert!(!run.stdout.contains("registry"), "{}", run.stdout);
}

#[test]
fn a_relative_ref_made_remote_by_an_id_names_the_id() {
    let p = Project::clean();
    p.write("schemas/common.json", r#"{"type": "object"}"#);
    p.write(
        "schemas/job.done.json",
        r#"{"$id": "https://example.com/job.done.json", "$ref": "common.json"}"#,
    );
    let f = assert_error(&p.lint(&[]), "schema-ref", "schemas/job.done.json");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("$id is \"https://example.com/job.done.json\""),
        "{f}"
    );
    assert!(!message.contains("copy that schema"), "{f}");
}

#[test]
fn a_ref_to_itself_is_a_loop_that_checks_nothing() {
    let p = Project::clean();
    p.write("schemas/job.done.json", "{\n  \"$ref\": \"#\"\n}");
    let f = assert_error(&p.lint(&[]), "schema-ref-cycle", "schemas/job.done.json");
    assert_eq!(f["line"], 2, "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("every value is accepted"),
        "{f}"
    );
}

#[test]
fn a_ref_loop_across_files_is_one_finding() {
    let p = Project::clean();
    p.write("schemas/job.done.json", r#"{"$ref": "lib/b.json"}"#);
    p.write("schemas/lib/b.json", r#"{"$ref": "../job.done.json"}"#);
    let run = p.lint(&[]);
    let loops = run.messages("schema-ref-cycle");
    assert_eq!(loops.len(), 1, "{}", run.stdout);
    assert!(
        loops[0].contains("schemas/job.done.json# → schemas/lib/b.json# → schemas/job.done.json#"),
        "{}",
        loops[0]
    );
}

#[test]
fn a_recursive_schema_with_constraints_is_not_a_loop() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        r##"{"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}}}"##,
    );
    let run = p.lint(&["--strict"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn a_pattern_the_regex_engine_gives_up_on_is_a_schema_finding() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        r#"{"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "pattern": "((a|b)*)*\\1c"}}}"#,
    );
    p.write(
        "fixtures/invalid/job.done/missing-name.json",
        &event("job.done", json!({"name": format!("{}d", "ab".repeat(40))})),
    );
    let f = assert_error(&p.lint(&[]), "schema-pattern", "schemas/job.done.json");
    let message = f["message"].as_str().unwrap();
    assert!(message.contains("too costly for the regex engine"), "{f}");
    assert!(
        message.contains("fixtures/invalid/job.done/missing-name.json"),
        "{f}"
    );
}

/// A meta-schema at the top of schemas/ is a library, like a `$ref`'d file, not
/// an eventType without a handler.
#[test]
fn a_top_level_meta_schema_is_not_an_unhandled_event_type() {
    let p = Project::clean();
    p.write("schemas/typed.json", TYPED_META);
    let schema =
        crate::common::SCHEMA.replace("https://json-schema.org/draft/2020-12/schema", "typed.json");
    p.write("schemas/job.done.json", &schema);
    let run = p.lint(&["--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

#[test]
fn a_pattern_that_backtracks_without_end_is_found_without_a_fixture() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        "{\"type\": \"object\", \"required\": [\"name\"],\n \"properties\": {\"name\": {\"type\": \"string\",\n \"pattern\": \"((a|b)*)*\\\\1c\"}}}",
    );
    let run = p.lint(&[]);
    let f = assert_error(&run, "schema-pattern", "schemas/job.done.json");
    assert_eq!(f["line"], 3, "{f}");
    let message = f["message"].as_str().unwrap();
    assert!(message.contains("/properties/name/pattern"), "{f}");
    assert!(message.contains("exit 2"), "{f}");
}

#[test]
fn a_backreference_that_cannot_explode_is_not_a_finding() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        r#"{"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "pattern": "^(\\w)\\1?$|^(?=a)\\w+$"}}}"#,
    );
    let run = p.lint(&["--strict"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}
