//! Timestamps as autod writes them: RFC 3339, UTC, millisecond precision.

use chrono::{DateTime, SecondsFormat, Utc};

pub type Timestamp = DateTime<Utc>;

pub fn now() -> Timestamp {
    Utc::now()
}

pub fn format(ts: Timestamp) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn now_rfc3339() -> String {
    format(now())
}

pub fn parse(s: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `--since` accepts a duration back from now (`30m`, `2h`, `1day`) or an RFC 3339 time.
pub fn parse_since(s: &str) -> Result<Timestamp, String> {
    if let Some(t) = parse(s) {
        return Ok(t);
    }
    let d = humantime::parse_duration(s).map_err(|_| {
        format!("cannot read {s:?} as a time: use a duration like 30m, 2h, 1day, or an RFC 3339 time like 2026-11-24T09:00:00Z")
    })?;
    let d = chrono::Duration::from_std(d).map_err(|_| format!("{s:?} is too far back"))?;
    Ok(now() - d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = now();
        let s = format(t);
        assert!(s.ends_with('Z'));
        assert_eq!(parse(&s).unwrap().timestamp_millis(), t.timestamp_millis());
    }

    #[test]
    fn since() {
        let t = parse_since("1h").unwrap();
        assert!((now() - t).num_minutes() >= 59);
        assert!(parse_since("2026-01-01T00:00:00Z").is_ok());
        assert!(parse_since("yesterday-ish").is_err());
    }
}
