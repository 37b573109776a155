//! Events that share a `key` are handled one at a time, in the order they came.

use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::helper::{LIMIT, Project, wait_until};

fn keyed(id: &str) -> serde_json::Value {
    json!({"eventType": "job.due", "eventId": id, "source": "cli", "payload": {}, "key": "same"})
}

fn project() -> Project {
    Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.worker]
            on = ["job.due"]
            "#,
        )
        .handler(
            "worker",
            r#"
            echo "start $AUTOD_EVENT_ID" >> order.txt
            sleep 0.3
            echo "end $AUTOD_EVENT_ID" >> order.txt
            "#,
        )
}

fn one_at_a_time(ids: &[&str]) -> Vec<String> {
    ids.iter()
        .flat_map(|id| [format!("start {id}"), format!("end {id}")])
        .collect()
}

#[test]
fn same_key_events_run_one_at_a_time_in_order() {
    let p = project();
    // Three waiting before the start, each written a second after the other.
    let base = SystemTime::now() - Duration::from_secs(60);
    for (i, id) in ["k1", "k2", "k3"].iter().enumerate() {
        let mtime = base + Duration::from_secs(u64::try_from(i).unwrap());
        p.inbox_put_at(&format!("{id}.json"), &keyed(id), Some(mtime));
    }
    let _daemon = p.start(&["--jobs", "4"]);
    // Three more while the first ones run.
    for id in ["k4", "k5", "k6"] {
        p.inbox_put(&format!("{id}.json"), &keyed(id));
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_until(LIMIT, "all six to finish", || {
        p.lines("order.txt").len() == 12
    });
    wait_until(LIMIT, "inbox/ and processing/ to empty", || p.drained());
    assert_eq!(
        p.lines("order.txt"),
        one_at_a_time(&["k1", "k2", "k3", "k4", "k5", "k6"])
    );
}

#[test]
fn same_key_events_recovered_from_processing_keep_their_order() {
    let p = project();
    // What a crash leaves behind: claimed files whose names sort against the
    // order they arrived in (a producer's own names need not sort).
    let base = SystemTime::now() - Duration::from_secs(60);
    for (i, (name, id)) in [("c.json", "k1"), ("b.json", "k2"), ("a.json", "k3")]
        .iter()
        .enumerate()
    {
        let rel = format!(".autod/processing/{name}");
        p.write(&rel, keyed(id).to_string());
        let mtime = base + Duration::from_secs(u64::try_from(i).unwrap());
        std::fs::File::options()
            .write(true)
            .open(p.path(&rel))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
    let _daemon = p.start(&["--jobs", "4"]);
    wait_until(LIMIT, "all three to finish", || {
        p.lines("order.txt").len() == 6
    });
    wait_until(LIMIT, "processing/ to empty", || p.drained());
    assert_eq!(p.lines("order.txt"), one_at_a_time(&["k1", "k2", "k3"]));
}
