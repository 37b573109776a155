//! The world of a lint test: a temp project that lints clean with `--strict`,
//! which each test then breaks in exactly one way, and the real binary run on it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

/// The clean project's payload schema for `job.done`.
pub const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["name"],
  "properties": {"name": {"type": "string"}, "size": {"type": "integer"}},
  "additionalProperties": false
}"#;

/// The clean project's handler table; tests append what they break.
pub const NOTIFY: &str =
    "[handlers.notify]\non = [\"job.*\"]\nowner = \"me\"\noutput = \"a line\"\n";

/// No lint run, however broken its input, may take longer than this: a hang
/// (a `$ref` cycle followed forever) fails the test instead of stalling CI.
const DEADLINE: Duration = Duration::from_secs(120);

/// An event as a fixture file holds it.
pub fn event(event_type: &str, payload: Value) -> String {
    serde_json::json!({"eventType": event_type, "source": "cli", "payload": payload}).to_string()
}

pub struct Project {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn findings(&self) -> Vec<Value> {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }

    /// The finding with this rule, asserting there is one.
    pub fn finding(&self, rule: &str) -> Value {
        self.findings()
            .into_iter()
            .find(|f| f["rule"] == rule)
            .unwrap_or_else(|| panic!("no {rule} finding in:\n{}\n{}", self.stdout, self.stderr))
    }

    /// The messages of every finding with this rule.
    pub fn messages(&self, rule: &str) -> Vec<String> {
        self.findings()
            .iter()
            .filter(|f| f["rule"] == rule)
            .map(|f| f["message"].as_str().expect("a message").to_owned())
            .collect()
    }

    /// `(line, message)` of every finding with this rule, in line order;
    /// each must have a line.
    pub fn located(&self, rule: &str) -> Vec<(u64, String)> {
        let mut out: Vec<(u64, String)> = self
            .findings()
            .iter()
            .filter(|f| f["rule"] == rule)
            .map(|f| {
                let line = f["line"].as_u64().unwrap_or_else(|| panic!("no line: {f}"));
                (line, f["message"].as_str().expect("a message").to_owned())
            })
            .collect();
        out.sort();
        out
    }
}

impl Project {
    /// A project that lints clean with --strict: one schema, a valid and an
    /// invalid fixture, one executable handler with owner and output, and the
    /// HANDLERS.md that `handlers doc` writes.
    pub fn clean() -> Project {
        let p = Project {
            dir: tempfile::tempdir().unwrap(),
        };
        p.write("schemas/job.done.json", SCHEMA);
        p.write(
            "fixtures/job.done/ok.json",
            &event("job.done", serde_json::json!({"name": "a"})),
        );
        p.write(
            "fixtures/invalid/job.done/missing-name.json",
            &event("job.done", serde_json::json!({})),
        );
        p.write("handlers/notify/main.sh", "#!/bin/sh\ncat >/dev/null\n");
        p.chmod("handlers/notify/main.sh", 0o755);
        p.config_with("");
        p.handlers_doc();
        p
    }

    /// Writes autod.toml as the clean project's, plus `extra`.
    pub fn config_with(&self, extra: &str) -> &Project {
        self.write("autod.toml", &format!("{NOTIFY}{extra}"))
    }

    /// Runs `autod handlers doc`, asserting it succeeds.
    pub fn handlers_doc(&self) {
        let doc = self.autod(&["handlers", "doc"]);
        assert_eq!(doc.code, 0, "handlers doc: {}", doc.stderr);
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> &Project {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path(rel)).unwrap();
    }

    pub fn chmod(&self, rel: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.path(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Replaces `rel` with a symlink to nothing: the test's stand-in for a file
    /// that cannot be read, since root (which runs CI here) reads everything.
    pub fn dangling(&self, rel: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(self.path("no-such-file"), &path).unwrap();
    }

    pub fn autod(&self, args: &[&str]) -> Run {
        self.autod_in(".", args)
    }

    /// Runs autod with `--root` (and the working directory) at `sub`, a folder
    /// of the project's temp directory.
    pub fn autod_in(&self, sub: &str, args: &[&str]) -> Run {
        let root = self.path(sub);
        let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_autod"))
            .arg("--root")
            .arg(&root)
            .args(args)
            .env_remove("AUTOD_ROOT")
            .env_remove("AUTOD_LOG")
            .env_remove("AUTOD_LOG_FORMAT")
            .current_dir(&root)
            .timeout(DEADLINE)
            .output()
            .unwrap();
        let run = Run {
            code: out.status.code().unwrap_or_else(|| {
                panic!(
                    "autod {args:?} was killed ({:?}): it crashed, or ran past {DEADLINE:?}",
                    out.status
                )
            }),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !run.stderr.contains("panicked"),
            "autod panicked:\n{}",
            run.stderr
        );
        run
    }

    /// `autod lint --format json` plus `extra`.
    pub fn lint(&self, extra: &[&str]) -> Run {
        let mut args = vec!["lint", "--format", "json"];
        args.extend_from_slice(extra);
        self.autod(&args)
    }

    /// The `--format github` annotation for this rule, asserting there is one.
    pub fn annotation(&self, rule: &str) -> String {
        let run = self.autod(&["lint", "--format", "github"]);
        let title = format!(",title=autod lint ({rule})::");
        run.stdout
            .lines()
            .find(|l| l.contains(&title))
            .unwrap_or_else(|| panic!("no {rule} annotation in:\n{}", run.stdout))
            .to_owned()
    }

    pub fn git(&self, args: &[&str]) {
        self.git_in(".", args);
    }

    pub fn git_in(&self, sub: &str, args: &[&str]) {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"])
            .args([
                "-c",
                "commit.gpgsign=false",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(self.path(sub))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Makes the project a git repository with everything committed.
    pub fn commit_all(&self) {
        self.git(&["init", "-q"]);
        self.git(&["add", "-A"]);
        self.git(&["commit", "-qm", "base"]);
    }
}

/// Asserts exit 1 and an error finding with this rule naming this file.
pub fn assert_error(run: &Run, rule: &str, file: &str) -> Value {
    assert_eq!(
        run.code, 1,
        "expected exit 1\n{}\n{}",
        run.stdout, run.stderr
    );
    let f = run.finding(rule);
    assert_eq!(f["severity"], "error", "{f}");
    assert_eq!(f["file"], file, "{f}");
    f
}

/// Asserts a warning finding with this rule naming this file: exit 0 on its
/// own, exit 1 with `--strict`.
pub fn assert_warning(p: &Project, rule: &str, file: &str) -> Value {
    let run = p.lint(&[]);
    assert_eq!(
        run.code, 0,
        "a warning alone passes\n{}\n{}",
        run.stdout, run.stderr
    );
    let f = run.finding(rule);
    assert_eq!(f["severity"], "warning", "{f}");
    assert_eq!(f["file"], file, "{f}");
    let strict = p.lint(&["--strict"]);
    assert_eq!(
        strict.code, 1,
        "--strict fails on warnings\n{}",
        strict.stdout
    );
    assert!(
        strict.stderr.contains("--strict"),
        "the summary says why: {}",
        strict.stderr
    );
    f
}
