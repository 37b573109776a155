//! Per-`key` order across hosts on NATS JetStream: events that share a key
//! run one at a time for a handler, in the order the stream has them,
//! whichever host pulls them.

use serde_json::json;

use crate::helper::{LIMIT, Project, wait_until};
use crate::nats::NatsServer;
use crate::queue::{on_nats, read_lines, shared_out, status};

fn keyed(event_type: &str, id: &str, key: &str) -> serde_json::Value {
    json!({"eventType": event_type, "eventId": id, "source": "cli", "payload": {}, "key": key})
}

#[test]
fn same_key_events_run_one_at_a_time_in_order_across_two_hosts() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let host = |name: &str| {
        Project::new()
            .open_schema("job.due")
            .open_schema("job.other")
            .config(&on_nats(
                &nats,
                &format!(
                    r#"
[handlers.worker]
on = ["job.due"]
concurrency = 4
env = {{ OUT = "{out}", HOST = "{name}" }}

[handlers.audit]
on = ["job.other"]
env = {{ OUT = "{out}" }}
"#,
                    out = out.display()
                ),
                "",
            ))
            .handler(
                "worker",
                r#"
                # s1..s6 have key "same", t1..t6 "me/other".
                f="$OUT/order-${AUTOD_EVENT_ID%%[0-9]*}"
                echo "start $AUTOD_EVENT_ID" >> "$f"
                echo "$HOST" >> "$OUT/hosts.txt"
                sleep 0.3
                echo "end $AUTOD_EVENT_ID" >> "$f"
                "#,
            )
            .handler(
                "audit",
                r#"
                # Holds its event (key "same", before the others) until told.
                while [ ! -e "$OUT/release" ]; do sleep 0.05; done
                "#,
            )
    };
    let (a, b) = (host("a"), host("b"));
    a.autod(["queue", "init"]).assert().success();
    // An earlier event of the key that `worker` does not take: it must not
    // wait for `audit`, which holds it.
    let mut files = vec!["o.json".to_owned()];
    a.write("o.json", keyed("job.other", "o", "same").to_string());
    for i in 1..=6 {
        a.write(
            &format!("s{i}.json"),
            keyed("job.due", &format!("s{i}"), "same").to_string(),
        );
        a.write(
            &format!("t{i}.json"),
            keyed("job.due", &format!("t{i}"), "me/other").to_string(),
        );
        files.push(format!("s{i}.json"));
        files.push(format!("t{i}.json"));
    }
    let mut args = vec!["send".to_owned()];
    args.extend(files);
    a.autod(&args).assert().success();
    let _da = a.start(&[]);
    let _db = b.start(&[]);
    let order = |prefix: &str| read_lines(&out.join(format!("order-{prefix}")));
    wait_until(LIMIT, "12 runs of worker", || {
        order("s").len() == 12 && order("t").len() == 12
    });
    let expect = |prefix: &str| -> Vec<String> {
        (1..=6)
            .flat_map(|i| [format!("start {prefix}{i}"), format!("end {prefix}{i}")])
            .collect()
    };
    assert_eq!(order("s"), expect("s"));
    assert_eq!(order("t"), expect("t"));
    std::fs::write(out.join("release"), "").unwrap();
    wait_until(LIMIT, "every event acked", || {
        let st = status(&a);
        st["handlers"]
            .as_array()
            .is_some_and(|hs| hs.iter().all(|h| h["lag"] == 0))
    });
    let hosts = read_lines(&out.join("hosts.txt"));
    assert_eq!(hosts.len(), 12);
}
