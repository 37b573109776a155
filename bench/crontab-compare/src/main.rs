// How the translation onto `cron` (autod before issue 12, src/oldcron.rs and
// src/zone.rs are its code) and croner fare on autod's crontab case file:
//   cd bench/crontab-compare && cargo run --release
// SHOW=croner or SHOW=cron-crate prints the cases that differ.
mod oldcron;
mod zone;

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

fn main() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/conformance/crontab-cases.tsv")).unwrap();
    let mut tally: BTreeMap<(String, &str), (usize, usize, usize)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let c: Vec<&str> = line.split('\t').collect();
        let (name, expr, tz, start, expected, source) = (c[0], c[1], c[2], c[3], c[4], c[5]);
        let kind = if expected == "refused" { "refused" } else if name.starts_with("dst") { "clock-change" } else { "sweep+special" };
        let _ = source;
        let n = expected.split(' ').count();
        let rules = zone::Zone::parse(Some(tz)).unwrap().rules();
        let t0: DateTime<Utc> = DateTime::parse_from_rfc3339(start).unwrap().with_timezone(&Utc);
        let fmt = |v: Vec<DateTime<Utc>>| v.iter().map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()).collect::<Vec<_>>().join(" ");
        // old
        let old = match oldcron::CronExpr::parse(expr) {
            Err(_) => "refused".to_owned(),
            Ok(e) => {
                let mut t = t0.with_timezone(&rules);
                let mut v = vec![];
                for _ in 0..n { match e.next_after(&t) { Some(x) => { v.push(x.with_timezone(&Utc)); t = x; } None => break } }
                fmt(v)
            }
        };
        // croner, OCPS defaults (5 or 6 fields, dom OR dow)
        let cr = match expr.parse::<croner::Cron>() {
            Err(_) => "refused".to_owned(),
            Ok(e) => {
                let mut t = t0.with_timezone(&rules);
                let mut v = vec![];
                for _ in 0..n { match e.find_next_occurrence(&t, false) { Ok(x) => { v.push(x.with_timezone(&Utc)); t = x; } Err(_) => break } }
                fmt(v)
            }
        };
        for (who, got) in [("cron-crate translation", old), ("croner 4.0.3", cr)] {
            let e = tally.entry((who.to_owned(), kind)).or_default();
            e.0 += 1;
            if got == expected { e.1 += 1 } else if got != "refused" && expected != "refused" { e.2 += 1;
                if std::env::var("SHOW").is_ok_and(|s| s == who.split(' ').next().unwrap()) { println!("{who} {name} `{expr}` {tz} {start}\n want {expected}\n got  {got}"); } }
        }
    }
    for ((who, kind), (all, ok, wrong)) in tally {
        println!("{who:24} {kind:14} {ok}/{all} agree ({:.1}%), {wrong} accepted with other fires", 100.0 * ok as f64 / all as f64);
    }
}
