//! `[serve]` and `[webhooks.*]`: mistakes that loading refuses are `config`
//! findings with their line; secrets the machine lacks, hooks no handler
//! takes and fixed eventTypes without a schema are warnings of their own.

use crate::common::{Project, assert_error, assert_warning};

/// A GitHub hook the clean project's `job.*` handler takes, its secret in a file.
const HOOK: &str = "\n[webhooks.ci]\nevent_type = \"job.{header.X-Job}\"\nsignature = \"github\"\nsecret_file = \"secrets/ci\"\n";

fn with_hook(extra: &str) -> Project {
    let p = Project::clean();
    p.write("secrets/ci", "s3cret\n");
    p.config_with(&format!("{HOOK}{extra}"));
    p
}

#[test]
fn a_signed_routed_hook_is_clean() {
    let p = with_hook("\n[serve]\nlisten = \"0.0.0.0:8080\"\ntoken_file = \"secrets/ci\"\n");
    p.write(
        "autod.toml",
        &format!(
            "{}\n[webhooks.done]\nevent_type = \"job.done\"\nsignature = \"standard\"\nsecret_env = \"PATH\"\n",
            p.read("autod.toml")
        ),
    );
    let run = p.lint(&["--strict"]);
    // PATH is set, but it is no whsec_ secret: the one finding.
    let rules: Vec<String> = run
        .findings()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rules, ["webhook-secret"], "{}", run.stdout);
    let w = run.finding("webhook-secret");
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .contains("webhooks.done: secret 1: a Standard Webhooks secret is `whsec_` and base64"),
        "{w}"
    );
    let p = with_hook("\n[serve]\nlisten = \"0.0.0.0:8080\"\ntoken_file = \"secrets/ci\"\n");
    let run = p.lint(&["--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

#[test]
fn webhook_mistakes_are_config_errors_with_their_line() {
    let cases = [
        ("typo = 1\n", 10, "unknown field `typo`"),
        ("key = \"{head.X}\"\n", 10, "names \"head\""),
        (
            "headers = [\"X Job\"]\n",
            10,
            "\"X Job\" is not a header name",
        ),
        ("concurrency = 0\n", 10, "concurrency must be at least 1"),
    ];
    for (extra, line, want) in cases {
        let p = with_hook(extra);
        let f = assert_error(&p.lint(&[]), "config", "autod.toml");
        assert_eq!(f["line"], line, "{extra}: {f}");
        assert!(
            f["message"].as_str().unwrap().contains(want),
            "{extra}: {f}"
        );
    }
}

#[test]
fn a_template_naming_a_header_wrongly_is_a_config_error() {
    let p = Project::clean();
    p.config_with("\n[webhooks.ci]\nevent_type = \"job.{header.X Job}\"\n");
    let f = assert_error(&p.lint(&[]), "config", "autod.toml");
    assert_eq!(f["line"], 7, "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("\"X Job\" is not a header name"),
        "{f}"
    );
    p.config_with("\n[webhooks.ci]\nevent_type = \"job.{header.X-Job\"\n");
    let f = assert_error(&p.lint(&[]), "config", "autod.toml");
    assert!(
        f["message"].as_str().unwrap().contains("never closed"),
        "{f}"
    );
}

#[test]
fn an_event_type_whose_fixed_text_is_no_event_type_is_a_config_error() {
    let p = Project::clean();
    p.config_with("\n[webhooks.ci]\nevent_type = \"job/{body.kind}\"\n");
    let f = assert_error(&p.lint(&[]), "config", "autod.toml");
    assert_eq!(f["line"], 7, "{f}");
    let m = f["message"].as_str().unwrap();
    assert!(
        m.contains("its fixed text has '/'") && m.contains("no eventType could be made"),
        "{f}"
    );
}

#[test]
fn a_signature_without_a_secret_source_is_a_config_error() {
    let p = Project::clean();
    p.config_with("\n[webhooks.ci]\nevent_type = \"job.done\"\nsignature = \"stripe\"\n");
    let f = assert_error(&p.lint(&[]), "config", "autod.toml");
    assert_eq!(f["line"], 8, "{f}");
    assert!(
        f["message"].as_str().unwrap().contains("set secret_env"),
        "{f}"
    );
}

#[test]
fn an_unsigned_hook_or_a_tokenless_listen_beyond_loopback_is_a_config_error() {
    let p = Project::clean();
    p.config_with("\n[serve]\nlisten = \"0.0.0.0:8080\"\ntoken_env = \"PATH\"\n\n[webhooks.ci]\nevent_type = \"job.done\"\n");
    let f = assert_error(&p.lint(&[]), "config", "autod.toml");
    assert_eq!(f["line"], 10, "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("webhook \"ci\" has no signature"),
        "{f}"
    );
    p.config_with("\n[serve]\nlisten = \"0.0.0.0:8080\"\n");
    let f = assert_error(&p.lint(&[]), "config", "autod.toml");
    assert_eq!(f["line"], 7, "{f}");
    assert!(
        f["message"].as_str().unwrap().contains("no token is set"),
        "{f}"
    );
}

#[test]
fn a_secret_the_machine_lacks_is_a_warning() {
    let p = with_hook("");
    p.remove("secrets/ci");
    let f = assert_warning(&p, "webhook-secret", "autod.toml");
    assert_eq!(f["line"], 6, "{f}");
    let m = f["message"].as_str().unwrap();
    assert!(
        m.contains("webhooks.ci.secret_file: cannot read") && m.contains("refuse to start"),
        "{f}"
    );
    p.config_with(
        "\n[webhooks.ci]\nevent_type = \"job.{header.X-Job}\"\nsignature = \"github\"\nsecret_env = \"AUTOD_LINT_TEST_UNSET\"\n",
    );
    let f = assert_warning(&p, "webhook-secret", "autod.toml");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("environment variable AUTOD_LINT_TEST_UNSET is not set"),
        "{f}"
    );
}

#[test]
fn a_serve_token_the_machine_lacks_is_a_warning() {
    let p = Project::clean();
    p.config_with("\n[serve]\ntoken_env = \"AUTOD_LINT_TEST_UNSET\"\n");
    let f = assert_warning(&p, "serve-token", "autod.toml");
    assert_eq!(f["line"], 6, "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("serve.token_env: environment variable AUTOD_LINT_TEST_UNSET"),
        "{f}"
    );
}

#[test]
fn a_hook_no_handler_takes_is_a_warning() {
    let p = Project::clean();
    p.write("secrets/ci", "s3cret\n");
    p.config_with("\n[webhooks.ci]\nevent_type = \"github.{header.X-GitHub-Event}\"\nsignature = \"github\"\nsecret_file = \"secrets/ci\"\n");
    let f = assert_warning(&p, "webhook-route", "autod.toml");
    assert_eq!(f["line"], 6, "{f}");
    let m = f["message"].as_str().unwrap();
    assert!(
        m.contains("starting \"github.\"") && m.contains("on = [\"github.**\"]"),
        "{f}"
    );
}

#[test]
fn a_fixed_event_type_without_a_schema_is_a_warning() {
    let p = Project::clean();
    p.config_with("\n[webhooks.ping]\nevent_type = \"job.ping\"\n");
    let f = assert_warning(&p, "webhook-type", "autod.toml");
    assert_eq!(f["line"], 6, "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("`autod new event job.ping`"),
        "{f}"
    );
}

#[test]
fn hooks_without_a_serve_table_are_a_warning() {
    let p = with_hook("");
    let f = assert_warning(&p, "webhook-serve", "autod.toml");
    assert_eq!(f["line"], 6, "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("[webhooks.ci] is configured but there is no [serve] table"),
        "{f}"
    );
    let served = with_hook("\n[serve]\n");
    let rules: Vec<String> = served
        .lint(&[])
        .findings()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect();
    assert!(!rules.contains(&"webhook-serve".to_owned()), "{rules:?}");
}
