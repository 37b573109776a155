//! `[[watches]]`: a change to a matching file becomes one event per quiet period.
//!
//! "Nothing else happened" is checked with a sentinel: after each step a
//! `sentinel-N.txt` is created; once its event has been delivered and the inbox
//! is drained, any event the step caused would have been delivered too.

use std::fs;

use serde_json::Value;

use crate::helper::{LIMIT, Project, wait_until};

struct Watched {
    p: Project,
    sentinels: usize,
}

impl Watched {
    fn new() -> Watched {
        let p = Project::new()
            .open_schema("file.changed")
            .config(
                r#"
                [handlers.recorder]
                on = ["file.changed"]

                [[watches]]
                name = "notes"
                path = "watched"
                glob = "*.txt"
                on = ["create", "modify", "remove"]
                event_type = "file.changed"
                debounce = "200ms"
                "#,
            )
            // One line per event: the event as the handler got it on stdin.
            .handler("recorder", "cat >> events.jsonl");
        fs::create_dir(p.path("watched")).unwrap();
        Watched { p, sentinels: 0 }
    }

    /// Every event delivered so far, sentinels left out.
    fn events(&self) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter(|e| {
                !e["payload"]["relPath"]
                    .as_str()
                    .unwrap()
                    .starts_with("sentinel-")
            })
            .collect()
    }

    fn all(&self) -> Vec<Value> {
        self.p
            .lines("events.jsonl")
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until everything that happened before this call has been delivered.
    fn settle(&mut self) {
        self.sentinels += 1;
        let name = format!("sentinel-{}.txt", self.sentinels);
        fs::write(self.p.path(&format!("watched/{name}")), "x").unwrap();
        wait_until(LIMIT, &format!("the event for {name}"), || {
            self.all()
                .iter()
                .any(|e| e["payload"]["relPath"] == name.as_str())
        });
        wait_until(LIMIT, "inbox/ and processing/ to empty", || {
            self.p.drained()
        });
    }
}

fn kinds(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["payload"]["relPath"].as_str().unwrap().to_owned(),
                e["payload"]["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_watched_folder_yields_one_event_per_change() {
    let mut w = Watched::new();
    let _daemon = w.p.start(&[]);
    let file = w.p.path("watched/a.txt");

    // Create (written in two steps within the debounce): one `create`.
    fs::write(&file, "hello").unwrap();
    fs::write(&file, "hello, world").unwrap();
    w.settle();
    let events = w.events();
    assert_eq!(kinds(&events), [("a.txt".into(), "create".into())]);
    let e = &events[0];
    assert_eq!(e["eventType"], "file.changed");
    assert_eq!(e["source"], "watch:notes");
    assert_eq!(e["payload"]["path"], file.to_str().unwrap());
    assert_eq!(e["payload"]["size"], 12);
    assert!(e["payload"]["mtime"].is_string(), "{e}");

    // Written again: one `modify`.
    fs::write(&file, "changed").unwrap();
    w.settle();
    assert_eq!(kinds(&w.events()[1..]), [("a.txt".into(), "modify".into())]);

    // A file the glob does not match: nothing.
    fs::write(w.p.path("watched/picture.png"), "png").unwrap();
    w.settle();
    assert_eq!(w.events().len(), 2, "{:?}", kinds(&w.events()));

    // An editor's save: a temp file (itself matching the glob) renamed over
    // the original. One `modify` of a.txt, nothing for the temp file.
    let tmp = w.p.path("watched/.a.txt.swp.txt");
    fs::write(&tmp, "saved by the editor").unwrap();
    fs::rename(&tmp, &file).unwrap();
    w.settle();
    assert_eq!(kinds(&w.events()[2..]), [("a.txt".into(), "modify".into())]);
    assert_eq!(w.events()[2]["payload"]["size"], 19);

    // Removed: one `remove`.
    fs::remove_file(&file).unwrap();
    w.settle();
    assert_eq!(kinds(&w.events()[3..]), [("a.txt".into(), "remove".into())]);

    // Every watch event is an ordinary logged run.
    let ok = w.p.logged("ok");
    assert_eq!(ok.len(), w.all().len());
}

/// Regression: notify reports opens and reads too, and each one became a
/// `modify`, so a handler that read the file it was told about triggered itself.
#[test]
fn reading_a_watched_file_is_not_a_change() {
    let mut w = Watched::new();
    let _daemon = w.p.start(&[]);
    let file = w.p.path("watched/a.txt");
    fs::write(&file, "hello").unwrap();
    w.settle();
    assert_eq!(kinds(&w.events()), [("a.txt".into(), "create".into())]);

    for _ in 0..3 {
        assert_eq!(fs::read_to_string(&file).unwrap(), "hello");
    }
    let _ = fs::read_dir(w.p.path("watched")).unwrap().count();
    w.settle();
    assert_eq!(kinds(&w.events()), [("a.txt".into(), "create".into())]);
}
