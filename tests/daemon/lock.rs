//! One daemon per root.

use std::time::Duration;

use crate::helper::{Project, wait_until};

#[test]
fn a_second_daemon_on_the_same_root_exits_2_naming_the_first() {
    let p = Project::new();
    let mut first = p.start(&[]);
    let out = p.autod(["run"]).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&format!("pid {}", first.pid())),
        "names the running daemon's pid {}: {stderr}",
        first.pid()
    );
    // The refused one did not disturb the first: it still runs and still
    // announces itself.
    assert!(first.running());
    let status = p.autod(["status", "--json"]).assert().success();
    let status: serde_json::Value = serde_json::from_slice(&status.get_output().stdout).unwrap();
    assert_eq!(status["daemon"]["pid"], first.pid());

    first.terminate();
    assert!(first.wait(Duration::from_secs(10)).success());
    // Once it is gone, the root is free again.
    let second = p.start(&[]);
    wait_until(Duration::from_secs(5), "status to show the new pid", || {
        let out = p.autod(["status", "--json"]).output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .is_ok_and(|v| v["daemon"]["pid"] == second.pid())
    });
}
