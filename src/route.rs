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

    pub fn matches(&self, event_type: &str) -> bool {
        // reachable[j]: the tokens consumed so far can match the first j bytes.
        let text = event_type.as_bytes();
        let mut reachable = vec![false; text.len() + 1];
        reachable[0] = true;
        for token in &self.tokens {
            let mut next = vec![false; text.len() + 1];
            match *token {
                Token::Char(c) => {
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
            reachable = next;
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
    fn literal_detection() {
        assert!(Pattern::parse("a.b").unwrap().is_literal());
        assert!(!Pattern::parse("a.*").unwrap().is_literal());
    }
}
