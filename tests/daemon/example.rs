//! examples/signal-pipeline end to end: signals through `dispatch` and a
//! watched folder, a transient failure retried, a poison input paging.

use serde_json::Value;

use crate::helper::{LIMIT, Project, wait_until};

fn results(p: &Project) -> Vec<Value> {
    let mut names = p.names("out/results");
    names.retain(|n| n.ends_with(".json"));
    names.sort();
    names
        .iter()
        .map(|n| serde_json::from_str(&p.read(&format!("out/results/{n}"))).unwrap())
        .collect()
}

#[test]
fn the_signal_pipeline_example_runs_end_to_end() {
    let p = Project::copy_of("examples/signal-pipeline");
    p.autod(["lint", "--strict"]).assert().success();

    // The flaky sensor fails once, the poison signal for good: exit 1.
    p.autod([
        "dispatch",
        "signals/kitchen.json",
        "signals/cellar.json",
        "signals/flaky.json",
        "signals/poison.json",
    ])
    .assert()
    .code(1);
    let got = results(&p);
    assert_eq!(got.len(), 2, "kitchen and cellar went through: {got:?}");
    assert_eq!(got[1]["signal"], "sig-kitchen");
    assert_eq!(
        got[1]["action"], "alert",
        "95 F is 35 C, over the kitchen's 30"
    );
    assert_eq!(got[1]["celsius"], 35.0);
    assert_eq!(got[0]["action"], "log");
    let pages = p.names("out/pages");
    assert_eq!(pages, ["sig-poison.txt"]);
    let page = p.read("out/pages/sig-poison.txt");
    assert!(
        page.contains("enrich gave up") && page.contains("unknown sensor s-garage"),
        "{page}"
    );

    // The retry the README runs: the flaky stage succeeds and its chain ends
    // in a result; the poison one fails again and pages nobody twice.
    p.autod(["retry", "--all"]).assert().code(1);
    let got = results(&p);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got.iter()
            .any(|r| r["signal"] == "sig-flaky" && r["room"] == "attic")
    );
    assert_eq!(p.names("out/pages").len(), 1);

    // The trace of the flaky chain, from its root: four stages, the failed
    // attempt with its stderr line, then the retry.
    let out = p.autod(["trace", "sig-flaky", "--json"]).assert().success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let normalize = &v["roots"][0]["runs"][0];
    assert_eq!(normalize["handler"], "normalize");
    let enrich = &normalize["followUps"][0]["runs"];
    assert_eq!(enrich[0]["result"], "failed");
    assert!(
        enrich[0]["error"]
            .as_str()
            .unwrap()
            .contains("sensor registry timed out")
    );
    assert_eq!(enrich[1]["result"], "ok");
    let decide = &enrich[1]["followUps"][0]["runs"][0];
    assert_eq!(decide["handler"], "decide");
    assert_eq!(decide["followUps"][0]["runs"][0]["handler"], "act");

    // The same pipeline from a file dropped into the watched folder.
    let _daemon = p.start(&[]);
    p.write(
        "incoming/garden.json",
        r#"{"sensor": "s-cellar", "reading": 14}"#,
    );
    wait_until(LIMIT, "the dropped signal's result", || {
        p.exists("out/results") && results(&p).len() == 4
    });
    let dropped: Vec<Value> = results(&p)
        .into_iter()
        .filter(|r| r["celsius"] == 14.0)
        .collect();
    assert_eq!(dropped.len(), 1);
    assert_eq!(
        dropped[0]["action"], "alert",
        "14 C is over the cellar's 12"
    );
}
