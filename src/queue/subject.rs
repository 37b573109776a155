//! eventTypes as NATS subjects, and handlers' `on` patterns as consumer filters.
//!
//! An event of type `note.saved` is published on `<stream>.note.saved`: its
//! dots are the subject's token separators, so a consumer filter can select
//! by segment. autod's patterns are richer than NATS's wildcards (`*` may
//! stand inside a segment, `**` anywhere, even mid-pattern, while NATS's `>`
//! only ends a subject), so a filter here may be *wider* than its pattern:
//! it never misses an event the pattern matches, and the worker checks every
//! message it pulls against the patterns themselves before running anything.

use crate::route::Pattern;

/// The subject an event of `event_type` is published on. An eventType may
/// end with a dot (`note.`), and a subject's tokens may not be empty: that
/// last empty segment is written `_`. Harmless if a real `note._` shares the
/// subject: routing is decided on the event, not on its subject.
pub fn for_event_type(stream: &str, event_type: &str) -> String {
    let mut subject = String::with_capacity(stream.len() + 1 + event_type.len() + 1);
    subject.push_str(stream);
    for segment in event_type.split('.') {
        subject.push('.');
        subject.push_str(if segment.is_empty() { "_" } else { segment });
    }
    subject
}

/// Every subject of the events stream.
pub fn all(stream: &str) -> String {
    format!("{stream}.>")
}

/// The filter subjects of a consumer for a handler with these `on` patterns:
/// together they match every subject an event the patterns match can be
/// published on, and no two of them overlap (NATS refuses a consumer whose
/// filters overlap).
pub fn filters(stream: &str, patterns: &[Pattern]) -> Vec<String> {
    let mut filters: Vec<Vec<String>> = patterns.iter().map(filter_tokens).collect();
    // Until no two collide: drop one the other covers, else replace both by
    // one that covers both. Each step removes a filter, so this ends.
    'again: loop {
        for i in 0..filters.len() {
            for j in 0..filters.len() {
                if i == j || !collide(&filters[i], &filters[j]) {
                    continue;
                }
                let merged = if covers(&filters[i], &filters[j]) {
                    filters[i].clone()
                } else if covers(&filters[j], &filters[i]) {
                    filters[j].clone()
                } else {
                    widen(&filters[i], &filters[j])
                };
                let (hi, lo) = (i.max(j), i.min(j));
                filters.remove(hi);
                filters[lo] = merged;
                continue 'again;
            }
        }
        break;
    }
    filters
        .into_iter()
        .map(|tokens| format!("{stream}.{}", tokens.join(".")))
        .collect()
}

/// One pattern's filter, as subject tokens after the stream's.
fn filter_tokens(pattern: &Pattern) -> Vec<String> {
    let mut tokens = Vec::new();
    for segment in pattern.as_str().split('.') {
        if segment.contains("**") {
            // `**` may match dots: from here on, anything (`>` needs at least
            // one token, and there is one: `**` matching nothing still leaves
            // this segment, or the `_` of an empty one).
            tokens.push(">".to_owned());
            return tokens;
        }
        tokens.push(if segment.contains('*') {
            "*".to_owned()
        } else if segment.is_empty() {
            "_".to_owned()
        } else {
            segment.to_owned()
        });
    }
    tokens
}

/// Whether some subject matches both filters.
fn collide(a: &[String], b: &[String]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x == ">" || y == ">" {
            return true;
        }
        if x != "*" && y != "*" && x != y {
            return false;
        }
    }
    a.len() == b.len()
}

/// Whether every subject `b` matches, `a` matches too.
fn covers(a: &[String], b: &[String]) -> bool {
    for (i, x) in a.iter().enumerate() {
        let Some(y) = b.get(i) else {
            return false;
        };
        match x.as_str() {
            ">" => return true,
            "*" if y != ">" => {}
            _ if x == y => {}
            _ => return false,
        }
    }
    a.len() == b.len()
}

/// A filter that covers two colliding ones: tokens they share kept, others
/// `*`, and `>` from where either has it.
fn widen(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (x, y) in a.iter().zip(b) {
        if x == ">" || y == ">" {
            out.push(">".to_owned());
            return out;
        }
        out.push(if x == y { x.clone() } else { "*".to_owned() });
    }
    out
}

/// Whether a subject matches a filter, as the server decides it.
#[cfg(test)]
fn matches(filter: &str, subject: &str) -> bool {
    let f: Vec<&str> = filter.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    for (i, t) in f.iter().enumerate() {
        match *t {
            ">" => return s.len() > i,
            "*" if i < s.len() => {}
            _ if s.get(i) == Some(t) => {}
            _ => return false,
        }
    }
    f.len() == s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(list: &[&str]) -> Vec<Pattern> {
        list.iter().map(|p| Pattern::parse(p).unwrap()).collect()
    }

    #[test]
    fn subjects_follow_the_event_type() {
        assert_eq!(for_event_type("AUTOD", "note.saved"), "AUTOD.note.saved");
        assert_eq!(for_event_type("AUTOD", "x"), "AUTOD.x");
        assert_eq!(for_event_type("AUTOD", "note."), "AUTOD.note._");
        assert_eq!(
            for_event_type("AUTOD", "cron:a-b_c.d"),
            "AUTOD.cron:a-b_c.d"
        );
    }

    #[test]
    fn filters_of_patterns() {
        let f = |list: &[&str]| filters("A", &pats(list));
        assert_eq!(f(&["note.saved"]), ["A.note.saved"]);
        assert_eq!(f(&["photo.*"]), ["A.photo.*"]);
        assert_eq!(f(&["photo.add*"]), ["A.photo.*"]);
        assert_eq!(f(&["**"]), ["A.>"]);
        assert_eq!(f(&["a.**.done"]), ["A.a.>"]);
        assert_eq!(f(&["note**"]), ["A.>"]);
        // Overlaps are merged: a filter covering another replaces it…
        assert_eq!(f(&["photo.*", "photo.added"]), ["A.photo.*"]);
        assert_eq!(f(&["photo.added", "**"]), ["A.>"]);
        // …and two that only collide become one covering both.
        assert_eq!(f(&["a.*.c", "a.b.*"]), ["A.a.*.*"]);
        assert_eq!(f(&["a.b", "c.d", "a.*.x"]), ["A.a.b", "A.c.d", "A.a.*.x"]);
    }

    /// Every eventType a pattern matches is published on a subject one of the
    /// pattern's filters matches, and the filters never collide.
    #[test]
    fn a_filter_never_misses_what_its_pattern_matches() {
        use proptest::prelude::*;
        let segment = "[a-c]{0,2}";
        let pattern = prop::collection::vec(
            prop_oneof![
                "[a-c]{1,2}",
                Just("*".to_owned()),
                Just("**".to_owned()),
                Just("a*".to_owned())
            ],
            1..4,
        )
        .prop_map(|s| s.join("."));
        let event_type = prop::collection::vec(segment, 1..5).prop_map(|s| s.join("."));
        proptest!(|(ps in prop::collection::vec(pattern, 1..4), types in prop::collection::vec(event_type, 1..20))| {
            let ps: Vec<Pattern> = ps.iter().filter_map(|p| Pattern::parse(p).ok()).collect();
            prop_assume!(!ps.is_empty());
            let fs = filters("S", &ps);
            for (i, a) in fs.iter().enumerate() {
                for b in &fs[i + 1..] {
                    let (ta, tb): (Vec<String>, Vec<String>) = (
                        a.split('.').skip(1).map(str::to_owned).collect(),
                        b.split('.').skip(1).map(str::to_owned).collect(),
                    );
                    prop_assert!(!collide(&ta, &tb), "{a} and {b} overlap");
                }
            }
            for t in types.iter().filter(|t| crate::event::valid_id(t)) {
                if ps.iter().any(|p| p.matches(t)) {
                    let subject = for_event_type("S", t);
                    prop_assert!(fs.iter().any(|f| matches(f, &subject)), "{t} ({subject}) missed by {fs:?}");
                }
            }
        });
    }
}
