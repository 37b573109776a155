//! The three output formats, the exit codes, and the clean project itself.

use std::path::Path;

use crate::common::Project;

#[test]
fn a_clean_project_passes_strict_in_every_format() {
    let p = Project::clean();
    let text = p.autod(&["lint", "--strict"]);
    assert_eq!(text.code, 0, "{}\n{}", text.stdout, text.stderr);
    assert_eq!(text.stdout, "", "nothing to report");
    assert!(text.stderr.contains("clean"), "{}", text.stderr);
    let json = p.lint(&["--strict"]);
    assert_eq!(json.code, 0);
    assert_eq!(json.findings().len(), 0, "an empty array: {}", json.stdout);
    let gh = p.autod(&["lint", "--strict", "--format", "github"]);
    assert_eq!((gh.code, gh.stdout.as_str()), (0, ""));
}

#[test]
fn the_repository_example_project_passes_strict() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_autod"))
        .args(["--root"])
        .arg(root)
        .args(["lint", "--strict"])
        .env_remove("AUTOD_ROOT")
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// One broken schema, seen in each format.
fn broken() -> Project {
    let p = Project::clean();
    p.write("schemas/job.done.json", "{\n  oops\n}");
    p
}

#[test]
fn text_format_is_path_line_col_severity_message_rule() {
    let run = broken().autod(&["lint"]);
    assert_eq!(run.code, 1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    assert!(
        lines[0].starts_with("schemas/job.done.json:2:3: error: not valid JSON"),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with(" [schema-json]"), "{}", lines[0]);
    assert!(run.stderr.contains("1 error"), "{}", run.stderr);
}

#[test]
fn text_format_of_a_warning() {
    let p = Project::clean();
    p.write("schemas/orphan.ev.json", crate::common::SCHEMA);
    let run = p.autod(&["lint"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout
            .starts_with("schemas/orphan.ev.json: warning: eventType \"orphan.ev\""),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.trim_end().ends_with("[unhandled]"),
        "{}",
        run.stdout
    );
}

#[test]
fn json_format_has_every_field() {
    let run = broken().lint(&[]);
    assert_eq!(run.code, 1);
    let findings = run.findings();
    assert_eq!(findings.len(), 1, "{}", run.stdout);
    let f = &findings[0];
    let keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["severity", "file", "line", "column", "rule", "message"],
        "{f}"
    );
    assert_eq!(f["severity"], "error");
    assert_eq!(f["file"], "schemas/job.done.json");
    assert_eq!(
        (f["line"].as_u64(), f["column"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(f["rule"], "schema-json");
    assert!(
        f["message"].as_str().unwrap().starts_with("not valid JSON"),
        "{f}"
    );
}

#[test]
fn global_json_flag_is_format_json() {
    let p = broken();
    for args in [&["--json", "lint"][..], &["lint", "--json"][..]] {
        let run = p.autod(args);
        assert_eq!(run.code, 1, "{args:?}");
        assert_eq!(run.findings().len(), 1, "{args:?}: {}", run.stdout);
    }
}

#[test]
fn github_format_is_a_workflow_annotation() {
    let run = broken().autod(&["lint", "--format", "github"]);
    assert_eq!(run.code, 1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    assert!(
        lines[0].starts_with(
            "::error file=schemas/job.done.json,line=2,col=3,title=autod lint (schema-json)::not valid JSON"
        ),
        "{}",
        lines[0]
    );
}

#[test]
fn findings_are_sorted_by_file() {
    let p = Project::clean();
    p.write("schemas/job.done.json", "[]");
    p.config_with("tiemout = 1\n");
    p.write("fixtures/job.done/x.json", "nope");
    let run = p.lint(&[]);
    let files: Vec<String> = run
        .findings()
        .iter()
        .map(|f| f["file"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted);
    assert!(files.len() >= 2, "{files:?}");
}

#[test]
fn unknown_format_is_a_usage_error() {
    let run = Project::clean().autod(&["lint", "--format", "xml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}
