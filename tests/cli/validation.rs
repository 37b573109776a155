//! Schema validation through `autod dispatch` (issue 12): formats checked or
//! refused, never silently passed; custom meta-schemas and remote `$ref`s;
//! a broken schema told apart from a bad event; messages of a readable size;
//! the nesting limit; numbers that arrive digit for digit.

use serde_json::{Value, json};

use crate::common::{Project, RECORD, event};

/// A project with one handler, `rec`, for eventType `t`, whose payload schema
/// is `schema`.
fn project(schema: Value) -> Project {
    Project::new()
        .schema("t", schema)
        .config(
            r#"
            [handlers.rec]
            on = ["t"]
            "#,
        )
        .handler("rec", RECORD)
}

fn with_payload(p: Project, file: &str, payload: Value) -> Project {
    p.event(
        file,
        event(
            "t",
            &format!("ev-{}", file.trim_end_matches(".json")),
            payload,
        ),
    )
}

#[test]
fn idn_email_and_idn_hostname_are_checked_not_skipped() {
    let p = project(json!({
        "type": "object",
        "properties": {"mail": {"format": "idn-email"}, "host": {"format": "idn-hostname"}}
    }));
    let p = with_payload(
        p,
        "good.json",
        json!({"mail": "用户@例子.广告", "host": "例子.广告"}),
    );
    let p = with_payload(p, "bad-mail.json", json!({"mail": "no at sign"}));
    let p = with_payload(p, "bad-host.json", json!({"host": "-bad-.例子"}));
    p.autod(["dispatch", "good.json"]).run().code(0);
    p.autod(["dispatch", "bad-mail.json"])
        .run()
        .code(3)
        .stderr_has("/payload/mail")
        .stderr_has("idn-email");
    p.autod(["dispatch", "bad-host.json"])
        .run()
        .code(3)
        .stderr_has("idn-hostname");
    assert_eq!(p.runs(), ["rec t ev-good 1"]);
}

#[test]
fn an_unknown_format_is_a_schema_error_not_a_pass() {
    let p = project(json!({"properties": {"x": {"format": "my-thing"}}}));
    let p = with_payload(p, "e.json", json!({"x": "anything"}));
    let out = p.autod(["--json", "dispatch", "e.json"]).run();
    out.code(2)
        .stderr_has("schemas/t.json")
        .stderr_has("unknown format \"my-thing\"")
        .stderr_has("formats = \"annotate\"");
    let line = &out.json_lines()[0];
    assert_eq!(
        (line["status"].as_str(), line["kind"].as_str()),
        (Some("error"), Some("schema")),
        "{line}"
    );
    assert!(p.runs().is_empty());
}

#[test]
fn formats_annotate_makes_format_a_note() {
    let p =
        project(json!({"properties": {"mail": {"format": "email"}, "x": {"format": "my-thing"}}}))
            .config(
                r#"
            [validation]
            formats = "annotate"

            [handlers.rec]
            on = ["t"]
            "#,
            );
    let p = with_payload(p, "e.json", json!({"mail": "not an email", "x": 1}));
    p.autod(["dispatch", "e.json"]).run().code(0);
    assert_eq!(p.runs(), ["rec t ev-e 1"]);
}

#[test]
fn a_misspelt_formats_setting_is_a_config_error() {
    let p = project(json!({})).config(
        r#"
        [validation]
        formats = "strict"
        "#,
    );
    let p = with_payload(p, "e.json", json!({}));
    p.autod(["dispatch", "e.json"])
        .run()
        .code(2)
        .stderr_has("strict")
        .stderr_has("annotate");
}

#[test]
fn a_meta_schema_under_schemas_is_named_by_relative_path() {
    // A meta-schema that adds one rule to 2020-12: every schema says its type.
    let meta = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$dynamicAnchor": "meta",
        "allOf": [{"$ref": "https://json-schema.org/draft/2020-12/schema"}],
        "required": ["type"]
    });
    let p = Project::new()
        .file("schemas/meta/typed.json", meta.to_string())
        .schema(
            "t",
            json!({"$schema": "meta/typed.json", "type": "object", "required": ["n"]}),
        )
        .config("[handlers.rec]\non = [\"t\"]\n")
        .handler("rec", RECORD);
    let p = with_payload(p, "good.json", json!({"n": 1}));
    let p = with_payload(p, "bad.json", json!({}));
    p.autod(["dispatch", "good.json"]).run().code(0);
    p.autod(["dispatch", "bad.json"])
        .run()
        .code(3)
        .stderr_has("\"n\" is a required property")
        .stderr_lacks("autod-schemas");
    assert_eq!(p.runs(), ["rec t ev-good 1"]);
}

#[test]
fn a_missing_meta_schema_names_the_project_path() {
    let p = project(json!({"$schema": "meta/nope.json"}));
    let p = with_payload(p, "e.json", json!({}));
    p.autod(["dispatch", "e.json"])
        .run()
        .code(2)
        .stderr_has("schemas/meta/nope.json does not exist")
        .stderr_lacks("autod-schemas")
        .stderr_lacks(&p.root().display().to_string());
}

#[test]
fn a_relative_ref_made_remote_by_an_id_is_explained() {
    let p = project(json!({"$id": "https://example.com/root.json", "$ref": "common.json"}))
        .file("schemas/common.json", "{}");
    let p = with_payload(p, "e.json", json!({}));
    p.autod(["dispatch", "e.json"])
        .run()
        .code(2)
        .stderr_has("$id is \"https://example.com/root.json\"")
        .stderr_has("remove that $id")
        .stderr_lacks("copy that schema");
}

#[test]
fn a_remote_ref_points_at_the_recipe() {
    let p = project(json!({"$ref": "https://example.com/x.json"}));
    let p = with_payload(p, "e.json", json!({}));
    p.autod(["dispatch", "e.json"])
        .run()
        .code(2)
        .stderr_has("https://example.com/x.json")
        .stderr_has("copy that schema under schemas/")
        .stderr_has("README: Remote $refs")
        .stderr_lacks("autod-schemas");
}

#[test]
fn a_broken_schema_is_told_apart_from_a_rejected_event_and_exit_2_wins() {
    let p = Project::new()
        .schema("broken", json!({"type": "strnig"}))
        .schema("t", json!({"type": "object", "required": ["n"]}))
        .config("[handlers.rec]\non = [\"t\", \"broken\"]\n")
        .handler("rec", RECORD)
        .event("a.json", event("broken", "a1", json!({})))
        .event("b.json", event("t", "b1", json!({})))
        .event("c.json", event("nope", "c1", json!({})));
    let out = p
        .autod(["--json", "dispatch", "a.json", "b.json", "c.json"])
        .run();
    out.code(2)
        .stderr_has("1 not checked (a schema is broken)")
        .stderr_has("2 rejected");
    let lines = out.json_lines();
    let by_input = |i: &str| lines.iter().find(|l| l["input"] == i).unwrap().clone();
    let a = by_input("a.json");
    assert_eq!(
        (a["status"].as_str(), a["kind"].as_str()),
        (Some("error"), Some("schema")),
        "{a}"
    );
    assert_eq!(a["file"], "schemas/broken.json", "{a}");
    let b = by_input("b.json");
    assert_eq!(b["status"], "rejected", "{b}");
    let c = by_input("c.json");
    assert_eq!(
        (c["status"].as_str(), c["errors"][0]["keyword"].as_str()),
        (Some("rejected"), Some("schema")),
        "{c}"
    );
    // The order of inputs does not matter: 2 still wins over 3.
    p.autod(["dispatch", "b.json", "a.json"]).run().code(2);
}

/// `depth` levels of arrays, innermost empty.
fn nested(depth: usize) -> Value {
    let mut v = json!([]);
    for _ in 1..depth {
        v = json!([v]);
    }
    v
}

#[test]
fn a_payload_may_nest_100_levels_and_not_101() {
    let p = project(json!({}));
    let p = with_payload(p, "at.json", nested(100));
    let p = with_payload(p, "over.json", nested(101));
    let p = with_payload(p, "far.json", nested(127));
    p.autod(["dispatch", "at.json"]).run().code(0);
    p.autod(["dispatch", "over.json"])
        .run()
        .code(3)
        .stderr_has("/payload")
        .stderr_has("nested 101 levels deep; autod accepts at most 100");
    // Past serde_json's own limit the message still names autod's.
    p.autod(["dispatch", "far.json"])
        .run()
        .code(3)
        .stderr_has("at most 100 levels");
    assert_eq!(p.runs(), ["rec t ev-at 1"]);
}

/// The limit leaves room for the state files that wrap an event: a dead letter
/// of the deepest payload allowed can still be read back.
#[test]
fn the_dead_letter_of_the_deepest_payload_reads_back() {
    let p = project(json!({})).handler("rec", "exit 65");
    let p = with_payload(p, "at.json", nested(100));
    p.autod(["dispatch", "at.json"]).run().code(1);
    p.autod(["dead", "show", "ev-at"])
        .run()
        .code(0)
        .stdout_has("[[[[");
    p.autod(["retry", "ev-at"]).run().code(1);
}

#[test]
fn a_huge_bad_value_is_quoted_short_on_stderr_and_in_the_run_log() {
    let p = project(json!({"properties": {"s": {"maxLength": 3}}}));
    let p = with_payload(p, "e.json", json!({"s": "x".repeat(500_000)}));
    let out = p.autod(["dispatch", "e.json"]).run();
    out.code(3).stderr_has("(500000 characters)");
    assert!(
        out.stderr.len() < 2000,
        "stderr is {} bytes",
        out.stderr.len()
    );
    let log = p.log_raw();
    assert_eq!(log.len(), 1);
    assert!(
        log[0].len() < 2000,
        "the log line is {} bytes",
        log[0].len()
    );
    assert!(log[0].contains("(500000 characters)"), "{}", log[0]);
}

#[test]
fn messages_say_what_was_sent_and_what_is_a_property_name() {
    let p = project(json!({
        "type": "object",
        "properties": {
            "two": {"const": 2},
            "tags": {"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}},
            "closed": {"type": "object", "properties": {"a": {}}, "additionalProperties": false},
            "never": false
        }
    }));
    let p = with_payload(
        p,
        "e.json",
        json!({"two": 3, "tags": {"Bad Name": 1}, "closed": {"a": 1, "zzz": 2}, "never": "x"}),
    );
    p.autod(["dispatch", "e.json"])
        .run()
        .code(3)
        .stderr_has("at /payload/two: expected 2, got 3 [const]")
        .stderr_has("property name \"Bad Name\" does not match")
        .stderr_has("property \"zzz\" is not allowed here")
        .stderr_has("no value is allowed here (the schema is `false`)")
        .stderr_lacks("\"\"")
        .stderr_lacks("False schema");
}

#[test]
fn a_pattern_the_regex_engine_gives_up_on_is_the_schemas_fault() {
    let p = project(json!({"properties": {"s": {"type": "string", "pattern": "((a|b)*)*\\1c"}}}));
    let p = with_payload(p, "e.json", json!({"s": format!("{}d", "ab".repeat(40))}));
    let out = p.autod(["--json", "dispatch", "e.json"]).run();
    out.code(2)
        .stderr_has("schemas/t.json")
        .stderr_has("the pattern at /properties/s/pattern is too costly")
        .stderr_has("/payload/s");
    let line = &out.json_lines()[0];
    assert_eq!(
        (line["status"].as_str(), line["kind"].as_str()),
        (Some("error"), Some("schema")),
        "{line}"
    );
}

const BIG: &str = "123456789012345678901234567890";
const FINE: &str = "0.1000000000000000000001";

#[test]
fn numbers_reach_the_handler_the_archive_and_the_dead_letter_digit_for_digit() {
    let p = project(json!({"type": "object"}))
        .handler(
            "rec",
            r#"cat > stdin.json; printenv AUTOD_EVENT_FILE > file.txt; exit 65"#,
        )
        .file(
            "e.json",
            format!(r#"{{"eventType":"t","eventId":"num-1","source":"cli","payload":{{"n":{BIG},"d":{FINE},"e":1E400}}}}"#),
        );
    p.autod(["dispatch", "e.json"]).run().code(1);
    let stdin = p.read("stdin.json");
    let archived = std::fs::read_to_string(p.read("file.txt").trim()).unwrap();
    let dead = std::fs::read_to_string(p.dead_letter_path("rec", "num-1")).unwrap();
    for (what, text) in [
        ("stdin", &stdin),
        ("AUTOD_EVENT_FILE", &archived),
        ("dead letter", &dead),
    ] {
        // The dead letter is pretty-printed.
        let text = &text.replace([' ', '\n'], "");
        assert!(text.contains(&format!("\"n\":{BIG}")), "{what}: {text}");
        assert!(text.contains(&format!("\"d\":{FINE}")), "{what}: {text}");
        // Past f64's range, kept exactly; serde_json spells the exponent its way.
        assert!(text.contains("\"e\":1e+400"), "{what}: {text}");
    }
}

#[test]
fn big_numbers_are_compared_exactly() {
    let p = project(json!({
        "properties": {
            "min": {"minimum": 123456789012345678901234567890u128},
            "three": {"multipleOf": 3}
        }
    }));
    let just_below = "123456789012345678901234567889";
    let p = p
        .file("ok.json", format!(r#"{{"eventType":"t","eventId":"ok","source":"cli","payload":{{"min":{BIG},"three":{BIG}}}}}"#))
        .file("low.json", format!(r#"{{"eventType":"t","eventId":"low","source":"cli","payload":{{"min":{just_below}}}}}"#))
        .file("odd.json", format!(r#"{{"eventType":"t","eventId":"odd","source":"cli","payload":{{"three":{BIG}1}}}}"#));
    p.autod(["dispatch", "ok.json"]).run().code(0);
    p.autod(["dispatch", "low.json"])
        .run()
        .code(3)
        .stderr_has(&format!("{just_below} is less than the minimum of {BIG}"));
    p.autod(["dispatch", "odd.json"])
        .run()
        .code(3)
        .stderr_has("is not a multiple of 3");
    assert_eq!(p.runs(), ["rec t ok 1"]);
}

#[test]
fn send_tells_a_broken_schema_from_a_rejected_event_too() {
    let p = Project::new()
        .schema("broken", json!({"type": "strnig"}))
        .schema("t", json!({"type": "object", "required": ["n"]}))
        .config("[handlers.rec]\non = [\"t\", \"broken\"]\n")
        .handler("rec", RECORD)
        .event("a.json", event("broken", "a1", json!({})))
        .event("b.json", event("t", "b1", json!({})));
    let out = p.autod(["--json", "send", "b.json", "a.json"]).run();
    out.code(2)
        .stderr_has("a.json: not checked: schemas/broken.json");
    let lines = out.json_lines();
    assert_eq!(lines[0]["status"], "rejected", "{}", lines[0]);
    assert_eq!(
        (
            lines[1]["status"].as_str(),
            lines[1]["kind"].as_str(),
            lines[1]["file"].as_str()
        ),
        (Some("error"), Some("schema"), Some("schemas/broken.json")),
        "{}",
        lines[1]
    );
    assert!(
        !p.exists(".autod/inbox")
            || std::fs::read_dir(p.path(".autod/inbox")).unwrap().count() == 0
    );
}
