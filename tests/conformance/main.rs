//! The official JSON-Schema-Test-Suite (draft 2020-12 and draft 7: the required
//! tests, optional/format, and optional/bignum and float-overflow, since autod
//! keeps numbers exact) through autod's own schema compilation,
//! `autod::schema::compile`, with the options the binary uses (formats
//! asserted, unknown formats refused, `$ref`s only to files under schemas/).
//!
//! Every case is run and compared with `expected-failures.txt` (one case id a
//! line, then ` # ` and why). The test fails when a case not listed fails, and
//! when a listed case passes (so the list never goes stale). Cases that `$ref`
//! the suite's remote server (`http://localhost:1234/`) are run by the recipe
//! README gives users for remote schemas: the remotes are copied under a
//! schemas/ folder and every such URL is rewritten as a relative path. They are
//! counted apart.
//!
//! `AUTOD_CONFORMANCE_BLESS=1 cargo test --test conformance` rewrites the list
//! from this run, keeping the reasons already written; a new entry's reason
//! says it needs one. `-- --nocapture` shows the pass rates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use autod::schema::{self, Formats};
use serde_json::Value;

const SUITE: &str = "tests/conformance/JSON-Schema-Test-Suite";
const EXPECTED: &str = "tests/conformance/expected-failures.txt";
const REMOTE: &str = "http://localhost:1234/";
const NEEDS_REASON: &str = "NEW: say why, or fix it";
/// Optional files run too: autod keeps numbers exact (arbitrary precision).
const NUMBERS: [&str; 2] = ["optional/bignum.json", "optional/float-overflow.json"];

/// The `$schema` a draft's cases are compiled under: autod (like the suite)
/// takes 2020-12 when a schema names none, so draft-7 cases name theirs, as an
/// autod user's draft-7 schema would.
const DRAFTS: [(&str, Option<&str>); 2] = [
    ("draft2020-12", None),
    ("draft7", Some("http://json-schema.org/draft-07/schema#")),
];

#[derive(Default)]
struct Tally {
    passed: usize,
    total: usize,
}

impl Tally {
    fn add(&mut self, passed: bool) {
        self.total += 1;
        self.passed += usize::from(passed);
    }

    fn rate(&self) -> String {
        if self.total == 0 {
            return "0/0".into();
        }
        format!(
            "{}/{} ({:.1}%)",
            self.passed,
            self.total,
            100.0 * self.passed as f64 / self.total as f64
        )
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// `target` (a URL on the suite's server) as a path relative to `base` (another).
fn relative(base: &str, target: &str) -> Option<String> {
    let base = base.strip_prefix(REMOTE)?;
    let target = target.strip_prefix(REMOTE)?;
    let (path, fragment) = match target.split_once('#') {
        Some((p, f)) => (p, format!("#{f}")),
        None => (target, String::new()),
    };
    let mut base_dir: Vec<&str> = base.split('/').collect();
    base_dir.pop();
    let parts: Vec<&str> = path.split('/').collect();
    let common = base_dir
        .iter()
        .zip(&parts[..parts.len() - 1])
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = "../".repeat(base_dir.len() - common);
    out.push_str(&parts[common..].join("/"));
    if out.is_empty() {
        out.push_str("./");
    }
    Some(out + &fragment)
}

fn resolve(base: &str, reference: &str) -> String {
    let base = jsonschema::uri::from_str(base).unwrap();
    jsonschema::uri::resolve_against(&base.borrow(), reference)
        .map(|u| u.as_str().to_owned())
        .unwrap_or_else(|_| reference.to_owned())
}

/// The recipe applied to one schema document whose URL is `base`: every `$id`,
/// `$ref`, `$dynamicRef` and `$schema` on the suite's server becomes the path
/// from where it stands (the enclosing `$id`, or the file) to what it names. A
/// relative `$schema` is read from the file autod found it in, whatever the
/// `$id`, so it is made relative to `file`.
fn rewrite(value: &mut Value, base: &str, file: &str) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite(v, base, file)),
        Value::Object(map) => {
            let mut base = base.to_owned();
            if let Some(Value::String(id)) = map.get_mut("$id") {
                let absolute = resolve(&base, id);
                // A plain-name `$id` ("#foo", draft 7) is an anchor, not a move.
                if !id.starts_with('#') {
                    if id.starts_with(REMOTE)
                        && let Some(rel) = relative(&base, &absolute)
                    {
                        *id = rel;
                    }
                    base = absolute;
                }
            }
            for (key, from) in [
                ("$ref", &base),
                ("$dynamicRef", &base),
                ("$schema", &file.to_owned()),
            ] {
                if let Some(Value::String(r)) = map.get_mut(key)
                    && r.starts_with(REMOTE)
                    && let Some(rel) = relative(from, r)
                {
                    *r = rel;
                }
            }
            map.values_mut().for_each(|v| rewrite(v, &base, file));
        }
        _ => {}
    }
}

/// The recipe: the suite's remotes copied under a schemas folder, their URLs
/// rewritten as relative paths.
fn schemas_with_remotes() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let remotes = root().join(SUITE).join("remotes");
    let mut files = Vec::new();
    json_files(&remotes, &mut files);
    for file in files {
        let rel = file.strip_prefix(&remotes).unwrap();
        let mut value: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let url = format!("{REMOTE}{}", rel.display());
        if let Value::Object(map) = &mut value
            && map.get("$id").and_then(Value::as_str) == Some(url.as_str())
        {
            map.remove("$id");
        }
        rewrite(&mut value, &url, &url);
        let target = tmp.path().join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, value.to_string()).unwrap();
    }
    tmp
}

fn read_expected() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(root().join(EXPECTED)).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("//"))
        .map(|l| {
            let (id, reason) = l.split_once(" # ").unwrap_or((l, ""));
            (id.trim_end().to_owned(), reason.trim().to_owned())
        })
        .collect()
}

fn write_expected(failures: &BTreeSet<String>, known: &BTreeMap<String, String>) {
    let mut text = String::from(
        "// JSON-Schema-Test-Suite cases autod does not pass, one a line: `<case id> # <why>`.\n\
         // tests/conformance/main.rs fails if a case not here fails, or a case here passes.\n",
    );
    for id in failures {
        let reason = known.get(id).map_or(NEEDS_REASON, String::as_str);
        text.push_str(&format!("{id} # {reason}\n"));
    }
    std::fs::write(root().join(EXPECTED), text).unwrap();
}

#[test]
fn json_schema_test_suite() {
    let started = std::time::Instant::now();
    let schemas = schemas_with_remotes();
    let dir = schemas.path();
    let known = read_expected();
    let mut failures: BTreeSet<String> = BTreeSet::new();
    let mut seen_ids: BTreeSet<String> = BTreeSet::new();
    let mut report = Vec::new();
    for (draft, declared) in DRAFTS {
        let base = root().join(SUITE).join("tests").join(draft);
        let mut files = Vec::new();
        json_files(&base, &mut files);
        files.retain(|f| {
            let rel = f.strip_prefix(&base).unwrap();
            rel.components().count() == 1
                || rel.starts_with("optional/format")
                || NUMBERS.iter().any(|n| rel.ends_with(n))
        });
        files.sort();
        let (mut required, mut format, mut remote, mut annotate, mut numbers) = (
            Tally::default(),
            Tally::default(),
            Tally::default(),
            Tally::default(),
            Tally::default(),
        );
        for file in files {
            let rel = file.strip_prefix(&base).unwrap().display().to_string();
            let groups: Vec<Value> =
                serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
            for group in groups {
                let mut schema_value = group["schema"].clone();
                let is_remote = schema_value.to_string().contains(REMOTE);
                // The recipe: a schema whose `$id` is on the server is kept at
                // that path, and the `$id` goes (its path is its address).
                let name = match schema_value.get("$id").and_then(Value::as_str) {
                    Some(id) if id.starts_with(REMOTE) && !id.ends_with('/') => {
                        let name = id[REMOTE.len()..].split('#').next().unwrap().to_owned();
                        schema_value.as_object_mut().unwrap().remove("$id");
                        name
                    }
                    _ => "case.json".to_owned(),
                };
                let url = format!("{REMOTE}{name}");
                rewrite(&mut schema_value, &url, &url);
                if let (Some(d), Value::Object(map)) = (declared, &mut schema_value) {
                    map.entry("$schema").or_insert_with(|| d.into());
                }
                let compiled =
                    schema::compile(dir, &name, &schema_value, &dir.join(&name), Formats::Assert);
                if let Ok(pick) = std::env::var("AUTOD_CONFORMANCE_DEBUG")
                    && group["description"].as_str().unwrap().contains(&pick)
                {
                    println!(
                        "{rel}: {schema_value}\n  compiled: {:?}",
                        compiled.as_ref().err()
                    );
                }
                // The suite's required format.json wants formats annotated;
                // autod's setting for that is checked on the same cases.
                let annotated = (rel == "format.json").then(|| {
                    schema::compile(
                        dir,
                        &name,
                        &schema_value,
                        &dir.join(&name),
                        Formats::Annotate,
                    )
                });
                for test in group["tests"].as_array().unwrap() {
                    let mut id = format!(
                        "{draft}/{rel}: {} / {}",
                        group["description"].as_str().unwrap(),
                        test["description"].as_str().unwrap()
                    );
                    let mut n = 2;
                    while !seen_ids.insert(id.clone()) {
                        id = format!("{id} ({n})");
                        n += 1;
                    }
                    let want = test["valid"].as_bool().unwrap();
                    let passed = compiled
                        .as_ref()
                        .is_ok_and(|v| v.is_valid(&test["data"]) == want);
                    if !passed {
                        failures.insert(id);
                    }
                    if let Some(annotated) = &annotated {
                        annotate.add(
                            annotated
                                .as_ref()
                                .is_ok_and(|v| v.is_valid(&test["data"]) == want),
                        );
                    }
                    if is_remote {
                        remote.add(passed);
                    } else if NUMBERS.iter().any(|n| rel.ends_with(n)) {
                        numbers.add(passed);
                    } else if rel.starts_with("optional/format") {
                        format.add(passed);
                    } else {
                        required.add(passed);
                    }
                }
            }
        }
        report.push(format!(
            "{draft}: required {}, optional/format {}, remote $refs by the recipe {}; format.json with formats = \"annotate\" {}; optional bignum and float-overflow {}",
            required.rate(),
            format.rate(),
            remote.rate(),
            annotate.rate(),
            numbers.rate()
        ));
    }
    for line in &report {
        println!("{line}");
    }
    println!("{} cases in {:.1?}", seen_ids.len(), started.elapsed());
    if std::env::var_os("AUTOD_CONFORMANCE_BLESS").is_some() {
        write_expected(&failures, &known);
        return;
    }
    let listed: BTreeSet<String> = known.keys().cloned().collect();
    let new_failures: Vec<&String> = failures.difference(&listed).collect();
    let now_passing: Vec<&String> = listed.difference(&failures).collect();
    let unexplained: Vec<&String> = known
        .iter()
        .filter(|(_, r)| r.is_empty() || r.as_str() == NEEDS_REASON)
        .map(|(id, _)| id)
        .collect();
    assert!(
        new_failures.is_empty() && now_passing.is_empty() && unexplained.is_empty(),
        "{}\n\nfailing, not in {EXPECTED}:\n{new_failures:#?}\n\nlisted in {EXPECTED} but passing now (remove them):\n{now_passing:#?}\n\nlisted without a reason:\n{unexplained:#?}\n\n(AUTOD_CONFORMANCE_BLESS=1 rewrites the list, keeping the reasons)",
        report.join("\n")
    );
}
