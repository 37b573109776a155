//! eventType → handlers.
//!
//! A handler's `on` holds patterns over eventTypes: `*` matches any run of
//! characters inside one dot-separated segment, `**` matches any run at all, dots
//! included. An event goes to every handler with a matching pattern (fan-out), in
//! handler-name order so that routes, logs and listings are stable.

use std::fmt;

use crate::config::Handler;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(u8),
    /// `*`: anything but a dot.
    Star,
    /// `**`: anything.
    DoubleStar,
}

/// A compiled `on` pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    tokens: Vec<Token>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("pattern {0:?} is empty")]
    Empty(String),
    #[error(
        "pattern {0:?} has {1:?}; patterns use eventType characters (A-Z a-z 0-9 . _ : -) plus `*` and `**`"
    )]
    BadChar(String, char),
    #[error(
        "pattern {0:?} has three or more `*` in a row; use `*` (one segment) or `**` (any depth)"
    )]
    TooManyStars(String),
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty(text.into()));
        }
        if text.contains("***") {
            return Err(PatternError::TooManyStars(text.into()));
        }
        let bytes = text.as_bytes();
        let mut tokens = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if c == b'*' {
                if bytes.get(i + 1) == Some(&b'*') {
                    tokens.push(Token::DoubleStar);
                    i += 2;
                } else {
                    tokens.push(Token::Star);
                    i += 1;
                }
                continue;
            }
            if !(c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-')) {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(PatternError::BadChar(text.into(), ch));
            }
            tokens.push(Token::Char(c));
            i += 1;
        }
        Ok(Pattern {
            text: text.into(),
            tokens,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has no wildcard (so it names exactly one eventType).
    pub fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Char(_)))
    }

    /// Whether some eventType that starts with `prefix` matches: for a
    /// webhook's `event_type` template, of which only the fixed start is known.
    pub fn matches_some_starting_with(&self, prefix: &str) -> bool {
        // The token positions the prefix so far can have reached; a star may
        // always match nothing, so it is stepped over as well as stayed on.
        let n = self.tokens.len();
        let close = |set: &mut Vec<bool>| {
            for i in 0..n {
                if set[i] && matches!(self.tokens[i], Token::Star | Token::DoubleStar) {
                    set[i + 1] = true;
                }
            }
        };
        let mut at = vec![false; n + 1];
        at[0] = true;
        close(&mut at);
        for c in prefix.bytes() {
            let mut next = vec![false; n + 1];
            for i in (0..n).filter(|&i| at[i]) {
                match self.tokens[i] {
                    Token::Char(t) if t == c => next[i + 1] = true,
                    Token::Char(_) => {}
                    Token::Star if c == b'.' => {}
                    Token::Star | Token::DoubleStar => next[i] = true,
                }
            }
            close(&mut next);
            at = next;
        }
        // Whatever tokens are left, some text matches them.
        at.iter().any(|r| *r)
    }

    pub fn matches(&self, event_type: &str) -> bool {
        // Most patterns name one eventType; every event is routed, so those
        // skip the automaton (which allocates per call).
        if self.is_literal() {
            return self.text == event_type;
        }
        // reachable[j]: the tokens consumed so far can match the first j bytes.
        let text = event_type.as_bytes();
        let mut reachable = vec![false; text.len() + 1];
        let mut next = vec![false; text.len() + 1];
        reachable[0] = true;
        for token in &self.tokens {
            match *token {
                Token::Char(c) => {
                    next[0] = false;
                    for j in 0..text.len() {
                        next[j + 1] = reachable[j] && text[j] == c;
                    }
                }
                Token::Star | Token::DoubleStar => {
                    let crosses_dots = *token == Token::DoubleStar;
                    let mut carry = false;
                    for j in 0..=text.len() {
                        carry = reachable[j] || (carry && (crosses_dots || text[j - 1] != b'.'));
                        next[j] = carry;
                    }
                }
            }
            std::mem::swap(&mut reachable, &mut next);
            if !reachable.iter().any(|r| *r) {
                return false;
            }
        }
        reachable[text.len()]
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One handler an event goes to, and the pattern that sent it there.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    pub handler: &'a Handler,
    pub pattern: &'a Pattern,
}

/// Every handler whose `on` matches `event_type`, in the config's (name) order.
pub fn routes<'a>(handlers: &'a [Handler], event_type: &str) -> Vec<Route<'a>> {
    handlers
        .iter()
        .filter_map(|handler| {
            handler
                .on
                .iter()
                .find(|p| p.matches(event_type))
                .map(|pattern| Route { handler, pattern })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Pattern::parse(p).unwrap().matches(t)
    }

    #[test]
    fn literal() {
        assert!(m("note.saved", "note.saved"));
        assert!(!m("note.saved", "note.saved2"));
        assert!(!m("note.saved", "note"));
    }

    #[test]
    fn star_stays_in_segment() {
        assert!(m("note.*", "note.saved"));
        assert!(!m("note.*", "note.saved.v2"));
        assert!(m("*.saved", "note.saved"));
        assert!(m("note.sa*", "note.saved"));
        assert!(m("*", "note"));
        assert!(!m("*", "note.saved"));
        assert!(m("a.*.c", "a.b.c"));
        assert!(!m("a.*.c", "a.b.x.c"));
    }

    #[test]
    fn double_star_crosses_segments() {
        assert!(m("**", "a.b.c"));
        assert!(m("note.**", "note.saved.v2"));
        assert!(m("**.saved", "x.y.saved"));
        assert!(m("a.**.c", "a.b.x.c"));
        assert!(!m("note.**", "notes.saved"));
    }

    #[test]
    fn rejects_bad_patterns() {
        assert!(matches!(Pattern::parse(""), Err(PatternError::Empty(_))));
        assert!(matches!(
            Pattern::parse("a/b"),
            Err(PatternError::BadChar(_, '/'))
        ));
        assert!(matches!(
            Pattern::parse("a.***"),
            Err(PatternError::TooManyStars(_))
        ));
    }

    #[test]
    fn prefixes() {
        let p = |pat: &str, prefix: &str| {
            Pattern::parse(pat)
                .unwrap()
                .matches_some_starting_with(prefix)
        };
        assert!(p("github.*", "github."));
        assert!(p("github.push", "github."));
        assert!(p("**", "github."));
        assert!(p("*.push", "github."));
        assert!(p("git*", "github"));
        assert!(!p("git*", "github.")); // `*` stops at a dot
        assert!(!p("stripe.*", "github."));
        assert!(!p("github.push", "github.pull"));
        assert!(!p("*", "github."));
        assert!(p("github.**", ""));
    }

    #[test]
    fn literal_detection() {
        assert!(Pattern::parse("a.b").unwrap().is_literal());
        assert!(!Pattern::parse("a.*").unwrap().is_literal());
    }

    mod properties {
        use super::super::Pattern;
        use proptest::prelude::*;

        /// The matcher's meaning, written as a regex: `*` is `[^.]*`, `**` is `.*`.
        fn reference(pattern: &str) -> regex::Regex {
            let mut re = String::from("^");
            let mut rest = pattern;
            while !rest.is_empty() {
                if let Some(r) = rest.strip_prefix("**") {
                    re.push_str(".*");
                    rest = r;
                } else if let Some(r) = rest.strip_prefix('*') {
                    re.push_str("[^.]*");
                    rest = r;
                } else {
                    let c = rest.chars().next().unwrap();
                    re.push_str(&regex::escape(&c.to_string()));
                    rest = &rest[c.len_utf8()..];
                }
            }
            re.push('$');
            regex::Regex::new(&re).unwrap()
        }

        fn event_type() -> impl Strategy<Value = String> {
            "[a-c][a-c.]{0,8}"
        }

        fn pattern() -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop_oneof!["[a-c.]{1,2}", Just("*".to_owned()), Just("**".to_owned())],
                1..5,
            )
            .prop_map(|parts| parts.concat())
            .prop_filter("no ***", |p| !p.contains("***"))
        }

        proptest! {
            #[test]
            fn agrees_with_the_reference(p in pattern(), t in event_type()) {
                let compiled = Pattern::parse(&p).unwrap();
                prop_assert_eq!(compiled.matches(&t), reference(&p).is_match(&t), "pattern {} type {}", p, t);
            }

            #[test]
            fn a_literal_matches_only_itself(a in event_type(), b in event_type()) {
                let p = Pattern::parse(&a).unwrap();
                prop_assert!(p.matches(&a));
                prop_assert_eq!(p.matches(&b), a == b);
            }

            #[test]
            fn double_star_matches_everything(t in event_type()) {
                prop_assert!(Pattern::parse("**").unwrap().matches(&t));
                prop_assert_eq!(Pattern::parse("*").unwrap().matches(&t), !t.contains('.'));
            }
        }
    }
}
