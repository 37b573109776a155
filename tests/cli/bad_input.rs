//! Events and configs that must be refused: a clear message naming the input,
//! the right exit code, no panic (checked on every run), and nothing run.

use serde_json::json;

use crate::common::{Output, Project, RECORD, event};

/// A project whose only event type has a strict payload schema.
fn project() -> Project {
    Project::new()
        .schema(
            "file.uploaded",
            json!({
                "type": "object",
                "required": ["name", "size"],
                "properties": {
                    "name": {"type": "string"},
                    "size": {"type": "integer", "minimum": 0}
                }
            }),
        )
        .config(
            r#"
            [handlers.uploader]
            on = ["file.uploaded"]
            "#,
        )
        .handler("uploader", RECORD)
}

fn good() -> serde_json::Value {
    event("file.uploaded", "up-1", json!({"name": "a.txt", "size": 3}))
}

#[track_caller]
fn assert_nothing_ran(p: &Project) {
    assert!(p.runs().is_empty(), "a handler ran: {:?}", p.runs());
    assert!(!p.exists(".autod/done"), "a pair was recorded");
    let archived = std::fs::read_dir(p.path(".autod/archive"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(archived, 0, "a rejected event was archived");
}

/// Dispatches `bytes` as `bad.json`: exit 3, named in the message, nothing run,
/// one `rejected` line in the run log.
#[track_caller]
fn rejected(bytes: impl AsRef<[u8]>) -> (Project, Output) {
    let p = project().file("bad.json", bytes);
    let out = p.autod(["dispatch", "bad.json"]).run();
    out.code(3).stderr_has("bad.json").stderr_has("rejected");
    assert!(
        out.stderr.len() < 4096,
        "the message should explain, not echo the input\n{out}"
    );
    assert_nothing_ran(&p);
    assert_eq!(p.logged("rejected").len(), 1, "{:#?}", p.log());
    (p, out)
}

#[test]
fn the_good_event_of_these_tests_is_accepted() {
    let p = project().event("good.json", good());
    p.autod(["dispatch", "good.json"]).run().code(0);
    assert_eq!(p.runs(), ["uploader file.uploaded up-1 1"]);
}

#[test]
fn malformed_json() {
    let (_, out) = rejected(r#"{"eventType": "file.uploaded", "source": "cli","#);
    out.stderr_has("not valid JSON");
}

#[test]
fn empty_file() {
    let (_, out) = rejected("");
    out.stderr_has("empty");
}

#[test]
fn binary_garbage() {
    // xorshift: the same "random" bytes every run.
    let mut x: u32 = 0x9e37_79b9;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect();
    let (_, out) = rejected(bytes);
    out.stderr_has("not valid JSON");
}

#[test]
fn deeply_nested_json() {
    let (_, out) = rejected("[".repeat(200_000));
    out.stderr_has("not valid JSON");
}

#[test]
fn deeply_nested_json_on_stdin() {
    let p = project();
    p.autod(["dispatch", "-"])
        .stdin("[".repeat(200_000))
        .run()
        .code(3)
        .stderr_has("stdin");
    assert_nothing_ran(&p);
}

#[test]
fn event_over_the_size_limit() {
    let mut ev = good();
    ev["payload"]["name"] = json!("x".repeat(2 * 1024 * 1024));
    let (_, out) = rejected(ev.to_string());
    out.stderr_has("1048576");
}

#[test]
fn json_that_is_not_an_object() {
    let (_, out) = rejected("[1, 2, 3]");
    out.stderr_has("JSON object");
}

#[test]
fn payload_field_of_the_wrong_type() {
    let mut ev = good();
    ev["payload"]["size"] = json!("three bytes");
    let (_, out) = rejected(ev.to_string());
    out.stderr_has("/payload/size").stderr_has("[type]");
}

#[test]
fn payload_missing_a_required_field() {
    let mut ev = good();
    ev["payload"].as_object_mut().unwrap().remove("size");
    let (_, out) = rejected(ev.to_string());
    out.stderr_has("required").stderr_has("size");
}

#[test]
fn envelope_missing_source() {
    let mut ev = good();
    ev.as_object_mut().unwrap().remove("source");
    let (_, out) = rejected(ev.to_string());
    out.stderr_has("source").stderr_has("required");
}

fn with(field: &str, value: &str) -> String {
    let mut ev = good();
    ev[field] = json!(value);
    ev.to_string()
}

#[test]
fn event_id_with_a_slash() {
    let (p, out) = rejected(with("eventId", "../../../escaped"));
    out.stderr_has("/eventId");
    assert!(!p.path("escaped.json").exists() && !p.path("../escaped.json").exists());
}

#[test]
fn event_id_with_dot_dot() {
    let (_, out) = rejected(with("eventId", "a..b"));
    out.stderr_has("/eventId");
}

#[test]
fn event_id_with_a_newline() {
    let (_, out) = rejected(with("eventId", "up-1\nresult=ok"));
    out.stderr_has("/eventId");
}

#[test]
fn event_type_with_a_slash() {
    let (_, out) = rejected(with("eventType", "file/uploaded"));
    out.stderr_has("/eventType");
}

#[test]
fn event_type_with_dot_dot() {
    let (_, out) = rejected(with("eventType", "..file.uploaded"));
    out.stderr_has("/eventType");
}

#[test]
fn event_type_with_a_newline() {
    let (_, out) = rejected(with("eventType", "file.uploaded\n"));
    out.stderr_has("/eventType");
}

#[test]
fn event_type_with_no_schema() {
    let (_, out) = rejected(with("eventType", "mystery.event"));
    out.stderr_has("mystery.event")
        .stderr_has("autod new event");
}

#[test]
fn missing_event_file_is_a_usage_error() {
    let p = project();
    p.autod(["dispatch", "nope.json"])
        .run()
        .code(2)
        .stderr_has("nope.json")
        .stderr_has("no such file")
        .stderr_has("relative to the working directory");
    assert_nothing_ran(&p);
}

#[test]
fn missing_file_among_good_ones_still_runs_the_good_ones() {
    let p = project().event("good.json", good());
    p.autod(["dispatch", "nope.json", "good.json"])
        .run()
        .code(2)
        .stderr_has("nope.json");
    assert_eq!(p.runs(), ["uploader file.uploaded up-1 1"]);
}

#[test]
fn config_with_a_misspelt_key() {
    let p = project()
        .config(
            r#"
            [handlers.uploader]
            on = ["file.uploaded"]
            timeuot = "5s"
            "#,
        )
        .event("good.json", good());
    p.autod(["dispatch", "good.json"])
        .run()
        .code(2)
        .stderr_has("autod.toml")
        .stderr_has("timeuot")
        .stderr_has("autod.toml:3: unknown field `timeuot`, expected one of");
    assert_nothing_ran(&p);
}

#[test]
fn broken_payload_schema_is_the_projects_fault() {
    let p = project()
        .file("schemas/file.uploaded.json", "{ not json")
        .event("good.json", good());
    p.autod(["dispatch", "good.json"])
        .run()
        .code(2)
        .stderr_has("file.uploaded.json");
    assert_nothing_ran(&p);
}

#[test]
fn stdin_with_one_event() {
    let p = project();
    let pretty = serde_json::to_string_pretty(&good()).unwrap();
    p.autod(["dispatch", "-"]).stdin(pretty).run().code(0);
    assert_eq!(p.runs(), ["uploader file.uploaded up-1 1"]);
}

#[test]
fn stdin_ndjson_with_one_bad_line_runs_the_good_ones() {
    let p = project();
    let lines = [
        event("file.uploaded", "up-1", json!({"name": "a", "size": 1})).to_string(),
        r#"{"eventType": "file.uploaded", "#.to_owned(),
        event("file.uploaded", "up-3", json!({"name": "c", "size": 3})).to_string(),
        event("file.uploaded", "up-4", json!({"name": "d", "size": -1})).to_string(),
    ];
    p.autod(["dispatch", "-"])
        .stdin(lines.join("\n") + "\n")
        .run()
        .code(3)
        .stderr_has("stdin:2")
        .stderr_has("stdin:4")
        .stderr_lacks("stdin:1:")
        .stderr_lacks("stdin:3:");
    assert_eq!(
        p.runs(),
        [
            "uploader file.uploaded up-1 1",
            "uploader file.uploaded up-3 1"
        ]
    );
    assert_eq!(p.logged("rejected").len(), 2);
}

#[test]
fn stdin_given_twice_is_a_usage_error() {
    let p = project();
    p.autod(["dispatch", "-", "-"])
        .stdin(good().to_string())
        .run()
        .code(2);
    assert_nothing_ran(&p);
}

#[test]
fn empty_stdin() {
    let p = project();
    p.autod(["dispatch", "-"])
        .stdin("")
        .run()
        .code(3)
        .stderr_has("stdin")
        .stderr_has("empty");
    assert_nothing_ran(&p);
}

#[test]
fn event_file_that_is_a_directory_is_a_usage_error() {
    let p = project().file("events/.keep", "");
    p.autod(["dispatch", "events"])
        .run()
        .code(2)
        .stderr_has("events")
        .stderr_has("directory");
    assert_nothing_ran(&p);
}

#[test]
fn rejected_event_is_logged_under_the_id_it_claimed() {
    let mut ev = good();
    ev["payload"]["size"] = json!(-5);
    let (p, out) = rejected(ev.to_string());
    out.stderr_has("/payload/size").stderr_has("minimum");
    assert_eq!(p.logged("rejected"), [("-".into(), "up-1".into())]);
    let line = &p.log()[0];
    assert_eq!(line["input"], "bad.json");
    assert_eq!(line["file"], "bad.json");
    assert_eq!(line["eventType"], "file.uploaded");
    assert!(line["error"].as_str().unwrap().contains("/payload/size"));
}

/// Was `rejected - -` in `autod status` and a bare id in `autod log`: a
/// rejection with no usable eventId still says which file and eventType.
#[test]
fn a_rejection_without_an_id_is_named_by_file_and_type_in_log_and_status() {
    let mut ev = good();
    ev.as_object_mut().unwrap().remove("eventId");
    ev["payload"]["size"] = json!("big");
    let (p, _) = rejected(ev.to_string());
    let line = &p.log()[0];
    assert_eq!(line["eventId"], "-");
    assert_eq!(line["file"], "bad.json");
    assert_eq!(line["eventType"], "file.uploaded");
    // The standard four keys still come first, in order.
    let raw = &p.log_raw()[0];
    assert!(
        raw.starts_with(r#"{"ts":"#)
            && raw.contains(r#","eventId":"-","handler":"-","result":"rejected","#),
        "{raw}"
    );
    p.autod(["log"])
        .run()
        .code(0)
        .stdout_has("rejected")
        .stdout_has("file.uploaded  bad.json");
    p.autod(["status"])
        .run()
        .code(0)
        .stdout_has("rejected - -  file.uploaded  bad.json");
    // Read from stdin there is no file: the input names the line.
    let p = project();
    p.autod(["dispatch", "-"])
        .stdin(ev.to_string())
        .run()
        .code(3);
    let line = &p.log()[0];
    assert_eq!(line["input"], "stdin");
    assert!(line.get("file").is_none(), "{line}");
}

#[test]
fn event_id_longer_than_128_characters() {
    let (_, out) = rejected(with("eventId", &"a".repeat(129)));
    out.stderr_has("/eventId");
}

#[test]
fn max_event_bytes_is_configurable() {
    let p = project()
        .config(
            r#"
            [validation]
            max_event_bytes = 100
            [handlers.uploader]
            on = ["file.uploaded"]
            "#,
        )
        .event("good.json", good());
    let mut big = good();
    big["payload"]["name"] = json!("n".repeat(100));
    let p = p.event("big.json", big);
    p.autod(["dispatch", "good.json", "big.json"])
        .run()
        .code(3)
        .stderr_has("big.json")
        .stderr_has("100-byte limit");
    assert_eq!(p.runs(), ["uploader file.uploaded up-1 1"]);
}

#[test]
fn endless_device_is_rejected_without_reading_it_all() {
    let p = project();
    p.autod_with_memory_limit(1 << 20, ["dispatch", "/dev/zero"])
        .run()
        .code(3)
        .stderr_has("/dev/zero")
        .stderr_has("1048576-byte limit")
        .faster_than(std::time::Duration::from_secs(10));
    assert_nothing_ran(&p);
}

#[test]
fn timestamp_that_is_not_rfc3339() {
    let (_, out) = rejected(with("ts", "yesterday at noon"));
    out.stderr_has("/ts").stderr_has("format");
}

#[test]
fn rejection_as_json_for_scripts() {
    let mut ev = good();
    ev["payload"]["size"] = json!("big");
    let p = project().event("bad.json", ev);
    let out = p.autod(["dispatch", "--json", "bad.json"]).run();
    out.code(3);
    let lines = out.json_lines();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["input"], "bad.json");
    assert_eq!(lines[0]["status"], "rejected");
    assert_eq!(lines[0]["errors"][0]["pointer"], "/payload/size");
    assert_eq!(lines[0]["errors"][0]["keyword"], "type");
    assert_nothing_ran(&p);
}

#[test]
fn a_control_character_in_source_is_rejected_at_source() {
    for source in ["a\u{0}b", "line\nbreak", "tab\there"] {
        let mut ev = good();
        ev["source"] = json!(source);
        let (_, out) = rejected(ev.to_string());
        out.stderr_has("/source").stderr_has("control character");
    }
    // CloudEvents: the same field, by its own name.
    let ce = json!({"specversion": "1.0", "type": "file.uploaded", "id": "ce-1",
                    "source": "x\u{0}y", "data": {"name": "a", "size": 1}});
    let (_, out) = rejected(ce.to_string());
    out.stderr_has("/source");
}

#[test]
fn two_executable_main_files_are_a_config_error_naming_both() {
    let p = project()
        .file("handlers/uploader/main.py", "#!/usr/bin/env python3\n")
        .mode("handlers/uploader/main.py", 0o755)
        .event("good.json", good());
    p.autod(["dispatch", "good.json"])
        .run()
        .code(2)
        .stderr_has("several executable main files (main.py, main.sh)")
        .stderr_has("command = ");
    assert_nothing_ran(&p);
    // A main file that is not executable (notes, a backup) is no rival.
    let p = project()
        .file("handlers/uploader/main.txt", "notes")
        .event("good.json", good());
    p.autod(["dispatch", "good.json"]).run().code(0);
    assert_eq!(p.runs(), ["uploader file.uploaded up-1 1"]);
}
