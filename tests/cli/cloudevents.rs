//! CloudEvents 1.0 structured mode (SPEC §3): the attributes map to autod's
//! fields, an autod name beside them is refused as ambiguous, and every error
//! about a CloudEvent names its own attributes (`/type`, `/time`), not autod's.

use serde_json::{Value, json};

use crate::common::{Output, Project, RECORD};

/// `file.uploaded` (strict payload) goes to `uploader`; `other.thing` to `other`,
/// so a CloudEvent that smuggles `eventType: "other.thing"` would show in runs.
fn project() -> Project {
    Project::new()
        .schema(
            "file.uploaded",
            json!({"type": "object", "required": ["size"],
                   "properties": {"size": {"type": "integer"}}}),
        )
        .schema("other.thing", json!({}))
        .config(
            r#"
            [handlers.uploader]
            on = ["file.uploaded"]

            [handlers.other]
            on = ["other.thing"]
            "#,
        )
        .handler("uploader", RECORD)
        .handler("other", RECORD)
}

fn ce() -> Value {
    json!({"specversion": "1.0", "type": "file.uploaded", "id": "ce-1",
           "source": "https://example.com/uploads", "time": "2026-11-24T09:00:00Z",
           "data": {"size": 3}, "subject": "a.txt"})
}

fn with(field: &str, value: Value) -> Value {
    let mut ev = ce();
    ev[field] = value;
    ev
}

fn dispatch(p: &Project, ev: &Value) -> Output {
    std::fs::write(p.path("ce.json"), ev.to_string()).unwrap();
    p.autod(["dispatch", "ce.json"]).run()
}

#[test]
fn a_cloudevent_is_mapped_and_runs() {
    let p = project();
    dispatch(&p, &ce()).code(0);
    assert_eq!(p.runs(), ["uploader file.uploaded ce-1 1"]);
}

#[test]
fn an_autod_name_beside_a_cloudevents_attribute_is_rejected_as_ambiguous() {
    for (autod, attribute, value) in [
        ("eventType", "type", json!("other.thing")),
        ("eventId", "id", json!("other-id")),
        ("payload", "data", json!({"size": 9})),
        ("ts", "time", json!("2020-01-01T00:00:00Z")),
    ] {
        let p = project();
        let out = dispatch(&p, &with(autod, value));
        out.code(3)
            .stderr_has("ce.json")
            .stderr_has("ambiguous CloudEvent")
            .stderr_has(&format!("`{attribute}`"))
            .stderr_has(&format!("`{autod}`"));
        assert!(p.runs().is_empty(), "{autod}: ran {:?}", p.runs());
        let rejected = p.log();
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert_eq!(rejected[0]["result"], "rejected");
        // The line names the event by its CloudEvents id and type.
        assert_eq!(rejected[0]["eventId"], "ce-1");
        assert_eq!(rejected[0]["eventType"], "file.uploaded");
    }
}

#[test]
fn an_ambiguous_cloudevent_is_refused_by_send_too() {
    let p = project();
    std::fs::write(
        p.path("ce.json"),
        with("eventType", json!("other.thing")).to_string(),
    )
    .unwrap();
    p.autod(["send", "ce.json"])
        .run()
        .code(3)
        .stderr_has("ambiguous CloudEvent");
    let queued = std::fs::read_dir(p.path(".autod/inbox"))
        .map(|d| d.flatten().filter(|e| e.path().is_file()).count())
        .unwrap_or(0);
    assert_eq!(queued, 0, "an ambiguous CloudEvent was queued");
}

#[test]
fn errors_about_a_cloudevent_name_its_attributes() {
    let cases = [
        (with("time", json!("yesterday")), "at /time:"),
        (with("id", json!("a/b")), "at /id:"),
        (with("source", json!(7)), "at /source:"),
        (with("data", json!({"size": "big"})), "at /data/size:"),
        (with("type", json!("no.schema")), "at /type:"),
    ];
    for (ev, want) in cases {
        let p = project();
        let out = dispatch(&p, &ev);
        out.code(3).stderr_has(want);
        for autod in ["/eventType", "/eventId", "/ts", "/payload"] {
            out.stderr_lacks(autod);
        }
    }
    let mut no_type = ce();
    no_type.as_object_mut().unwrap().remove("type");
    let p = project();
    dispatch(&p, &no_type)
        .code(3)
        .stderr_has("\"type\" is a required property")
        .stderr_lacks("eventType");
}

#[test]
fn a_cloudevent_no_handler_takes_names_type() {
    let p = project().schema("lonely.one", json!({}));
    dispatch(&p, &with("type", json!("lonely.one")))
        .code(3)
        .stderr_has("at /type:")
        .stderr_lacks("/eventType");
}

/// `send` queues the mapped event (autod's names, `specversion` kept as an
/// extra field); `dispatch` of that form must not take it for an ambiguous
/// CloudEvent.
#[test]
fn a_mapped_cloudevent_is_an_autod_event() {
    let p = project();
    let mapped = json!({"eventType": "file.uploaded", "eventId": "m-1", "source": "s",
                        "payload": {"size": 1}, "specversion": "1.0"});
    dispatch(&p, &mapped).code(0);
    assert_eq!(p.runs(), ["uploader file.uploaded m-1 1"]);
}
