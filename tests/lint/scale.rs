//! A large fixtures tree lints without error. How fast belongs in the
//! benchmarks; the time is printed, not asserted.

use std::time::Instant;

use serde_json::json;

use crate::common::{Project, SCHEMA, event};

#[test]
fn ten_thousand_fixtures_lint_without_error() {
    let p = Project::clean();
    for t in 0..20 {
        p.write(&format!("schemas/kind{t}.ev.json"), SCHEMA);
    }
    p.write(
        "autod.toml",
        "[handlers.notify]\non = [\"job.*\", \"kind*.ev\"]\nowner = \"me\"\noutput = \"a line\"\n",
    );
    p.handlers_doc();
    for i in 0..10_000 {
        let t = i % 20;
        p.write(
            &format!("fixtures/kind{t}.ev/{i}.json"),
            &event(&format!("kind{t}.ev"), json!({"name": format!("n{i}")})),
        );
    }
    let started = Instant::now();
    let run = p.autod(&["lint", "--strict"]);
    eprintln!(
        "lint of 10,000 fixtures across 20 types took {:?}",
        started.elapsed()
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    // And a bad one among them is still found.
    p.write(
        "fixtures/kind7.ev/bad.json",
        &event("kind7.ev", json!({"name": 1})),
    );
    let run = p.lint(&[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.findings().len(), 1, "{}", run.stdout);
    assert_eq!(
        run.finding("fixture-invalid")["file"],
        "fixtures/kind7.ev/bad.json"
    );
}
