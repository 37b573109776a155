//! Chaining through the daemon: follow-ups go into the inbox and are
//! delivered like every other event.

use crate::helper::{LIMIT, Project, event, wait_until};

#[test]
fn the_daemon_delivers_a_chain_through_its_inbox() {
    let p = Project::new()
        .open_schema("order.placed")
        .open_schema("order.packed")
        .open_schema("order.shipped")
        .config(
            r#"
            [handlers.pack]
            on = ["order.placed"]
            [handlers.ship]
            on = ["order.packed"]
            [handlers.notify]
            on = ["order.shipped"]
            "#,
        )
        .handler(
            "pack",
            r#"cat >/dev/null; echo "pack $AUTOD_EVENT_ID" >> ran.txt
               echo '{"eventType":"order.packed","payload":{"box":1}}' >> "$AUTOD_EMIT""#,
        )
        .handler(
            "ship",
            r#"cat >/dev/null; echo "ship $AUTOD_CORRELATION_ID $AUTOD_EVENT_SOURCE" >> ran.txt
               echo '{"eventType":"order.shipped","payload":{}}' >> "$AUTOD_EMIT""#,
        )
        .handler(
            "notify",
            r#"cat >/dev/null; echo "notify $AUTOD_CORRELATION_ID $AUTOD_EVENT_SOURCE" >> ran.txt"#,
        );
    let _daemon = p.start(&[]);
    p.write("o.json", event("order.placed", "order-7").to_string());
    p.autod(["send", "o.json"]).assert().success();
    wait_until(LIMIT, "the last stage to run", || {
        p.exists("ran.txt") && p.lines("ran.txt").iter().any(|l| l.starts_with("notify"))
    });
    wait_until(LIMIT, "inbox/ and processing/ to empty", || p.drained());
    assert_eq!(
        p.lines("ran.txt"),
        [
            "pack order-7",
            "ship order-7 handler:pack",
            "notify order-7 handler:ship"
        ]
    );
    let log = p.log();
    let notify: Vec<_> = log.iter().filter(|l| l["handler"] == "notify").collect();
    assert_eq!(notify.len(), 1);
    assert_eq!(notify[0]["correlationId"], "order-7");
    assert_eq!(notify[0]["source"], "handler:ship");
}
