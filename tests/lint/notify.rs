//! `[notify] on_dead` needs a schema (or every notice is refused when a pair is
//! given up) and a handler (or nobody is paged).

use crate::common::Project;

#[test]
fn an_on_dead_type_without_schema_or_handler_is_reported() {
    let p = Project::clean();
    p.config_with("\n[notify]\non_dead = \"autod.dead\"\n");
    let run = p.lint(&[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let f = run.finding("notify-type");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["file"], "autod.toml");
    assert!(f["line"].as_u64().is_some(), "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("`autod new event autod.dead`"),
        "{f}"
    );
    let w = run.finding("notify-route");
    assert_eq!(w["severity"], "warning");
    assert!(
        w["message"].as_str().unwrap().contains("pages nobody"),
        "{w}"
    );
}

#[test]
fn an_on_dead_type_with_schema_and_handler_is_clean() {
    let p = Project::clean();
    p.write("schemas/autod.dead.json", r#"{"type": "object"}"#);
    p.write(
        "fixtures/autod.dead/ok.json",
        r#"{"eventType":"autod.dead","source":"autod","payload":{}}"#,
    );
    p.write("handlers/pager/main.sh", "#!/bin/sh\ncat >/dev/null\n");
    p.chmod("handlers/pager/main.sh", 0o755);
    p.config_with("\n[notify]\non_dead = \"autod.dead\"\n\n[handlers.pager]\non = [\"autod.dead\"]\nowner = \"me\"\noutput = \"a page\"\n");
    p.handlers_doc();
    let run = p.lint(&["--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}
