//! `autod lint` and `autod handlers doc` through the real binary: a clean
//! project, then one project per rule that breaks exactly that rule.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

struct Project {
    dir: tempfile::TempDir,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn findings(&self) -> Vec<Value> {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }

    /// The finding with this rule, asserting there is one.
    fn finding(&self, rule: &str) -> Value {
        self.findings()
            .into_iter()
            .find(|f| f["rule"] == rule)
            .unwrap_or_else(|| panic!("no {rule} finding in:\n{}\n{}", self.stdout, self.stderr))
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["name"],
  "properties": {"name": {"type": "string"}, "size": {"type": "integer"}},
  "additionalProperties": false
}"#;

/// The clean project's handler table; tests append what they break.
const NOTIFY: &str = "[handlers.notify]\non = [\"job.*\"]\nowner = \"me\"\noutput = \"a line\"\n";

impl Project {
    /// Writes autod.toml as the clean project's, plus `extra`.
    fn config_with(&self, extra: &str) -> &Project {
        self.write("autod.toml", &format!("{NOTIFY}{extra}"))
    }

    /// A project that lints clean with --strict: one schema, a valid and an
    /// invalid fixture, one executable handler with owner and output, and the
    /// HANDLERS.md that `handlers doc` writes.
    fn clean() -> Project {
        let p = Project {
            dir: tempfile::tempdir().unwrap(),
        };
        p.write("schemas/job.done.json", SCHEMA);
        p.write(
            "fixtures/job.done/ok.json",
            r#"{"eventType":"job.done","source":"cli","payload":{"name":"a"}}"#,
        );
        p.write(
            "fixtures/invalid/job.done/missing-name.json",
            r#"{"eventType":"job.done","source":"cli","payload":{}}"#,
        );
        p.write("handlers/notify/main.sh", "#!/bin/sh\ncat >/dev/null\n");
        p.chmod("handlers/notify/main.sh", 0o755);
        p.config_with("");
        let doc = p.autod(&["handlers", "doc"]);
        assert_eq!(doc.code, 0, "{}", doc.stderr);
        p
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> &Project {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn chmod(&self, rel: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.path(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn autod(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_autod"))
            .arg("--root")
            .arg(self.dir.path())
            .args(args)
            .env_remove("AUTOD_ROOT")
            .env_remove("AUTOD_LOG")
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        let run = Run {
            code: out
                .status
                .code()
                .unwrap_or_else(|| panic!("autod died of a signal: {:?}", out.status)),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !run.stderr.contains("panicked"),
            "autod panicked:\n{}",
            run.stderr
        );
        run
    }

    fn lint(&self, extra: &[&str]) -> Run {
        let mut args = vec!["lint", "--format", "json"];
        args.extend_from_slice(extra);
        self.autod(&args)
    }

    fn git(&self, args: &[&str]) {
        let ok = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t.invalid",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
    }
}

/// Asserts exit 1 and an error finding with this rule naming this file.
fn assert_error(run: &Run, rule: &str, file: &str) -> Value {
    assert_eq!(
        run.code, 1,
        "expected exit 1\n{}\n{}",
        run.stdout, run.stderr
    );
    let f = run.finding(rule);
    assert_eq!(f["severity"], "error", "{f}");
    assert_eq!(f["file"], file, "{f}");
    f
}

#[test]
fn a_clean_project_passes_strict() {
    let p = Project::clean();
    let run = p.autod(&["lint", "--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("clean"), "{}", run.stderr);
    assert_eq!(p.lint(&[]).findings().len(), 0);
}

#[test]
fn the_repository_example_project_passes_strict() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_autod"))
        .args(["--root"])
        .arg(root)
        .args(["lint", "--strict"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn schema_that_is_not_json_has_line_and_column() {
    let p = Project::clean();
    p.write(
        "schemas/job.done.json",
        "{\n  \"type\": \"object\",\n  oops\n}",
    );
    let f = assert_error(&p.lint(&[]), "schema-json", "schemas/job.done.json");
    assert_eq!(f["line"], 3, "{f}");
    assert!(f["column"].as_u64().is_some(), "{f}");
}

#[test]
fn empty_schema_file() {
    let p = Project::clean();
    p.write("schemas/job.done.json", "");
    assert_error(&p.lint(&[]), "schema-json", "schemas/job.done.json");
}

#[test]
fn schema_that_is_an_array() {
    let p = Project::clean();
    p.write("schemas/job.done.json", "[1, 2]");
    assert_error(&p.lint(&[]), "schema-type", "schemas/job.done.json");
}

#[test]
fn schema_invalid_against_its_meta_schema() {
    let p = Project::clean();
    p.write("schemas/job.done.json", r#"{"type": 12}"#);
    assert_error(&p.lint(&[]), "schema-meta", "schemas/job.done.json");
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

#[test]
fn ref_to_a_missing_file() {
    let p = Project::clean();
    p.write("schemas/job.done.json", r#"{"$ref": "nowhere.json"}"#);
    assert_error(&p.lint(&[]), "schema-ref", "schemas/job.done.json");
}

#[test]
fn ref_to_a_missing_pointer() {
    let p = Project::clean();
    p.write(
        "schemas/common.json",
        r#"{"$defs": {"a": {"type": "string"}}}"#,
    );
    p.write(
        "schemas/job.done.json",
        r#"{"$ref": "common.json#/$defs/b"}"#,
    );
    let run = p.lint(&[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let f = run
        .findings()
        .into_iter()
        .find(|f| f["file"] == "schemas/job.done.json")
        .expect("a finding");
    assert!(
        f["rule"] == "schema-ref" || f["rule"] == "schema-invalid",
        "{f}"
    );
}

#[test]
fn ref_cycle_finishes_without_a_crash() {
    let p = Project::clean();
    p.write("schemas/a.json", r#"{"$ref": "b.json"}"#);
    p.write("schemas/b.json", r#"{"$ref": "a.json"}"#);
    // A finding or none, but an answer: no hang (the harness would time out) and no panic.
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
fn valid_fixture_that_does_not_validate() {
    let p = Project::clean();
    p.write(
        "fixtures/job.done/bad.json",
        r#"{"eventType":"job.done","source":"cli","payload":{"name":3}}"#,
    );
    let f = assert_error(
        &p.lint(&[]),
        "fixture-invalid",
        "fixtures/job.done/bad.json",
    );
    assert!(
        f["message"].as_str().unwrap().contains("/payload/name"),
        "{f}"
    );
}

#[test]
fn invalid_fixture_that_passes_means_the_schema_is_too_loose() {
    let p = Project::clean();
    p.write(
        "fixtures/invalid/job.done/extra.json",
        r#"{"eventType":"job.done","source":"cli","payload":{"name":"x"}}"#,
    );
    assert_error(
        &p.lint(&[]),
        "fixture-passes",
        "fixtures/invalid/job.done/extra.json",
    );
}

#[test]
fn fixture_that_is_not_json() {
    let p = Project::clean();
    p.write("fixtures/job.done/garbage.json", "\u{1}\u{2}not json");
    assert_error(
        &p.lint(&[]),
        "fixture-invalid",
        "fixtures/job.done/garbage.json",
    );
}

#[test]
fn fixture_folder_for_an_event_type_without_schema() {
    let p = Project::clean();
    p.write(
        "fixtures/ghost.seen/a.json",
        r#"{"eventType":"ghost.seen","source":"cli","payload":{}}"#,
    );
    assert_error(&p.lint(&[]), "fixture-no-schema", "fixtures/ghost.seen");
}

#[test]
fn fixture_in_the_wrong_folder() {
    let p = Project::clean();
    p.write("schemas/job.failed.json", SCHEMA);
    p.write(
        "fixtures/job.done/other.json",
        r#"{"eventType":"job.failed","source":"cli","payload":{"name":"x"}}"#,
    );
    assert_error(&p.lint(&[]), "fixture-type", "fixtures/job.done/other.json");
}

#[test]
fn unreadable_fixture_is_a_finding() {
    let p = Project::clean();
    // Root reads everything, so "cannot be read" is a dangling symlink here.
    std::os::unix::fs::symlink(p.path("nowhere"), p.path("fixtures/job.done/link.json")).unwrap();
    assert_error(&p.lint(&[]), "unreadable", "fixtures/job.done/link.json");
}

#[test]
fn config_unknown_key_names_key_and_line() {
    let p = Project::clean();
    p.config_with("tiemout = \"3s\"\n");
    let f = assert_error(&p.lint(&[]), "config", "autod.toml");
    assert_eq!(f["line"], 5, "{f}");
    assert!(f["message"].as_str().unwrap().contains("tiemout"), "{f}");
}

#[test]
fn handler_command_missing() {
    let p = Project::clean();
    p.config_with("command = [\"handlers/nope.sh\"]\n");
    let f = assert_error(&p.lint(&[]), "handler-command", "autod.toml");
    assert!(
        f["message"].as_str().unwrap().contains("does not exist"),
        "{f}"
    );
    assert_eq!(f["line"], 1, "{f}");
}

#[test]
fn handler_not_executable() {
    let p = Project::clean();
    p.chmod("handlers/notify/main.sh", 0o644);
    let f = assert_error(&p.lint(&[]), "handler-command", "autod.toml");
    assert!(f["message"].as_str().unwrap().contains("chmod +x"), "{f}");
}

#[test]
fn pattern_matching_no_event_type_is_a_warning_and_strict_fails() {
    let p = Project::clean();
    p.write(
        "autod.toml",
        "[handlers.notify]\non = [\"job.*\", \"nothing.here\"]\nowner = \"me\"\noutput = \"a line\"\n",
    );
    p.autod(&["handlers", "doc"]);
    let run = p.lint(&[]);
    assert_eq!(run.code, 0, "a warning alone passes:\n{}", run.stdout);
    assert_eq!(run.finding("route-unknown")["severity"], "warning");
    assert_eq!(p.lint(&["--strict"]).code, 1);
}

#[test]
fn schema_without_handler_is_a_warning() {
    let p = Project::clean();
    p.write("schemas/orphan.ev.json", SCHEMA);
    let run = p.lint(&[]);
    assert_eq!(run.code, 0);
    let f = run.finding("unhandled");
    assert_eq!(f["file"], "schemas/orphan.ev.json");
    assert_eq!(f["severity"], "warning");
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

#[test]
fn bad_cron_expression() {
    let p = Project::clean();
    p.config_with(
        "\n[[schedules]]\nname = \"nightly\"\ncron = \"0 25 * * *\"\nevent_type = \"job.done\"\n",
    );
    let f = assert_error(&p.lint(&[]), "config", "autod.toml");
    assert!(f["message"].as_str().unwrap().contains("nightly"), "{f}");
    assert_eq!(f["line"], 7, "{f}");
}

#[test]
fn watch_folder_missing_is_a_warning() {
    let p = Project::clean();
    p.config_with(
        "\n[[watches]]\nname = \"drop\"\npath = \"no-such-folder\"\nevent_type = \"job.done\"\n",
    );
    let run = p.lint(&[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.finding("watch-path")["severity"], "warning");
}

#[test]
fn handlers_md_out_of_date_then_fixed_by_handlers_doc() {
    let p = Project::clean();
    p.write(
        "autod.toml",
        "[handlers.notify]\non = [\"job.*\"]\nowner = \"someone else\"\noutput = \"a line\"\n",
    );
    assert_error(&p.lint(&[]), "handlers-md", "HANDLERS.md");
    assert_eq!(p.autod(&["handlers", "doc", "--check"]).code, 1);
    assert_eq!(p.autod(&["handlers", "doc"]).code, 0);
    assert_eq!(p.autod(&["lint", "--strict"]).code, 0);
    let doc = std::fs::read_to_string(p.path("HANDLERS.md")).unwrap();
    assert!(
        doc.contains("| `notify` | `job.*` | someone else | a line |"),
        "{doc}"
    );
}

#[test]
fn handlers_doc_keeps_the_prose_around_the_table() {
    let p = Project::clean();
    let doc = std::fs::read_to_string(p.path("HANDLERS.md")).unwrap();
    let edited = format!(
        "# Our handlers\n\nRead this first.\n\n{}\n\nFooter words.\n",
        doc.trim()
    );
    p.write("HANDLERS.md", &edited);
    p.write(
        "autod.toml",
        "[handlers.notify]\non = [\"job.*\"]\nowner = \"me\"\noutput = \"two lines\"\n",
    );
    p.autod(&["handlers", "doc"]);
    let after = std::fs::read_to_string(p.path("HANDLERS.md")).unwrap();
    assert!(
        after.starts_with("# Our handlers\n\nRead this first.\n"),
        "{after}"
    );
    assert!(after.contains("Footer words."), "{after}");
    assert!(after.contains("two lines"), "{after}");
}

#[test]
fn handler_without_owner() {
    let p = Project::clean();
    p.write(
        "autod.toml",
        "[handlers.notify]\non = [\"job.*\"]\noutput = \"a line\"\n",
    );
    let f = assert_error(&p.lint(&[]), "handler-doc", "autod.toml");
    assert!(f["message"].as_str().unwrap().contains("owner"), "{f}");
}

#[test]
fn text_and_github_formats() {
    let p = Project::clean();
    p.write("schemas/job.done.json", "{\n  oops\n}");
    let text = p.autod(&["lint"]);
    assert_eq!(text.code, 1);
    assert!(
        text.stdout
            .contains("schemas/job.done.json:2:3: error: not valid JSON"),
        "{}",
        text.stdout
    );
    let gh = p.autod(&["lint", "--format", "github"]);
    assert_eq!(gh.code, 1);
    assert!(
        gh.stdout.lines().any(|l| l.starts_with(
            "::error file=schemas/job.done.json,line=2,col=3,title=autod lint (schema-json)::"
        )),
        "{}",
        gh.stdout
    );
}

#[test]
fn against_a_revision_reports_breaking_changes() {
    let p = Project::clean();
    p.git(&["init", "-q"]);
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "base"]);
    // Non-breaking: a new optional property.
    p.write(
        "schemas/job.done.json",
        &SCHEMA.replace(
            r#""size": {"type": "integer"}"#,
            r#""size": {"type": "integer"}, "note": {"type": "string"}"#,
        ),
    );
    let run = p.lint(&["--against", "HEAD"]);
    assert_eq!(
        run.code, 0,
        "adding an optional property is not breaking:\n{}",
        run.stdout
    );

    // Breaking: a newly required field and a removed property.
    p.write(
        "schemas/job.done.json",
        &SCHEMA
            .replace(
                r#""required": ["name"]"#,
                r#""required": ["name", "owner"]"#,
            )
            .replace(
                r#""size": {"type": "integer"}"#,
                r#""owner": {"type": "string"}"#,
            ),
    );
    let run = p.lint(&["--against", "HEAD"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let messages: Vec<String> = run
        .findings()
        .iter()
        .filter(|f| f["rule"] == "breaking-change")
        .map(|f| f["message"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("new required field \"owner\"")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("property \"size\" removed")),
        "{messages:?}"
    );
}

#[test]
fn against_reports_a_narrowed_type_and_a_removed_routed_schema() {
    let p = Project::clean();
    p.write("schemas/job.failed.json", SCHEMA);
    p.git(&["init", "-q"]);
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "base"]);
    p.write(
        "schemas/job.done.json",
        &SCHEMA.replace(
            r#""size": {"type": "integer"}"#,
            r#""size": {"type": "integer", "enum": [1]}"#,
        ),
    );
    std::fs::remove_file(p.path("schemas/job.failed.json")).unwrap();
    let run = p.lint(&["--against", "HEAD"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let text = run.stdout;
    assert!(text.contains("enum added at /size"), "{text}");
    assert!(text.contains("still route"), "{text}");
}

#[test]
fn against_a_bad_revision_is_a_usage_error() {
    let p = Project::clean();
    p.git(&["init", "-q"]);
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "base"]);
    let run = p.autod(&["lint", "--against", "no-such-rev"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("no-such-rev"), "{}", run.stderr);
}

#[test]
fn ten_thousand_fixtures_lint_without_error() {
    let p = Project::clean();
    for t in 0..20 {
        p.write(&format!("schemas/kind{t}.ev.json"), SCHEMA);
    }
    p.write(
        "autod.toml",
        "[handlers.notify]\non = [\"job.*\", \"kind*.ev\"]\nowner = \"me\"\noutput = \"a line\"\n",
    );
    p.autod(&["handlers", "doc"]);
    for i in 0..10_000 {
        let t = i % 20;
        p.write(
            &format!("fixtures/kind{t}.ev/{i}.json"),
            &json!({"eventType": format!("kind{t}.ev"), "source": "gen", "payload": {"name": format!("n{i}")}}).to_string(),
        );
    }
    let started = std::time::Instant::now();
    let run = p.autod(&["lint", "--strict"]);
    eprintln!("lint of 10,000 fixtures took {:?}", started.elapsed());
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}
