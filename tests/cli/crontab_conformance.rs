//! autod's crontab against cronie's behaviour, case by case from
//! tests/conformance/crontab-cases.tsv (written by gen_crontab_cases.py beside
//! it, which says where each expectation comes from).

use autod::cron::CronExpr;
use jiff::Timestamp;
use jiff::tz::TimeZone;

const CASES: &str = include_str!("../conformance/crontab-cases.tsv");

/// Cases where autod knowingly differs from the file, with the reason.
/// Empty: every case agrees.
const EXPECTED_DIFFERENCES: &[(&str, &str)] = &[];

struct Case<'a> {
    name: &'a str,
    expr: &'a str,
    tz: &'a str,
    start: &'a str,
    expected: &'a str,
    source: &'a str,
}

fn cases() -> Vec<Case<'static>> {
    CASES
        .lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            assert_eq!(c.len(), 6, "six columns: {l}");
            Case {
                name: c[0],
                expr: c[1],
                tz: c[2],
                start: c[3],
                expected: c[4],
                source: c[5],
            }
        })
        .collect()
}

/// What autod computes for a case, in the file's notation.
fn autod(case: &Case) -> String {
    let expr = match CronExpr::parse(case.expr) {
        Ok(e) => e,
        Err(_) => return "refused".to_owned(),
    };
    let tz = TimeZone::get(case.tz).expect("zone in the tz database");
    let mut t: Timestamp = case.start.parse().expect("start instant");
    let n = case.expected.split(' ').count();
    let mut fires = Vec::with_capacity(n);
    for _ in 0..n {
        match expr.next_after(&tz, t) {
            Some(f) => {
                fires.push(f.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
                t = f;
            }
            None => {
                fires.push("none".to_owned());
                break;
            }
        }
    }
    fires.join(" ")
}

#[test]
fn crontab_conformance_with_cronie() {
    let cases = cases();
    assert!(cases.len() > 1000, "the sweep is there: {}", cases.len());
    let mut differ = Vec::new();
    for case in &cases {
        let got = autod(case);
        let known = EXPECTED_DIFFERENCES.iter().any(|(n, _)| *n == case.name);
        if (got == case.expected) == known {
            differ.push(format!(
                "{} `{}` {} from {} ({}):\n  want {}\n  got  {}",
                case.name, case.expr, case.tz, case.start, case.source, case.expected, got
            ));
        }
    }
    let agree = cases.len() - differ.len();
    eprintln!(
        "crontab conformance: {agree}/{} cases agree with cronie",
        cases.len()
    );
    assert!(
        differ.is_empty(),
        "{} cases differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

/// Every clock-change case comes from the cronie simulation, and the ones
/// issue 12 names were checked by hand.
#[test]
fn crontab_cases_cover_the_clock_changes() {
    let cases = cases();
    for (expr, tz) in [
        ("30 2 * * *", "Europe/Berlin"),
        ("0 2 * * *", "Australia/Lord_Howe"),
        ("*/15 * * * *", "Europe/Berlin"),
        ("@hourly", "Europe/Berlin"),
    ] {
        assert!(
            cases
                .iter()
                .any(|c| c.expr == expr && c.tz == tz && c.source == "cronie-sim+hand"),
            "{expr} {tz}"
        );
    }
    assert!(cases.iter().filter(|c| c.expected == "refused").count() >= 10);
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names are unique");
}
