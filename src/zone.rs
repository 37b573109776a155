//! Time zones for schedules: IANA names from the system's tz database (jiff,
//! with a bundled copy for machines without tzdata).
//!
//! Not chrono-tz: its compiled-in tables are about 1 MB of pointers that the
//! loader relocates on every start, which cost every `autod dispatch` 0.7 ms
//! although a one-shot dispatch never looks at a zone.

use jiff::tz::TimeZone;

/// The zone a schedule's fields are read in.
#[derive(Debug, Clone)]
pub enum Zone {
    /// The machine's zone (`TZ`, else `/etc/localtime`), as cron uses.
    Local,
    /// An IANA zone such as `Europe/Berlin`.
    Named(TimeZone),
}

impl Zone {
    /// `None` is the machine's zone.
    pub fn parse(name: Option<&str>) -> Result<Zone, String> {
        match name {
            None => Ok(Zone::Local),
            Some(n) => TimeZone::get(n).map(Zone::Named).map_err(|_| {
                format!("unknown timezone {n:?}; use an IANA name like \"Europe/Berlin\"")
            }),
        }
    }

    pub fn utc() -> Zone {
        Zone::Named(TimeZone::UTC)
    }

    /// The zone's rules. The machine's zone is looked up each time (jiff
    /// caches it briefly), so a daemon follows a change of `TZ` or
    /// `/etc/localtime` as cron does.
    pub fn rules(&self) -> TimeZone {
        match self {
            Zone::Local => TimeZone::system(),
            Zone::Named(tz) => tz.clone(),
        }
    }

    /// `t` on the zone's clock, written per `format` (strftime's: `%Y-%m-%d
    /// %H:%M:%S %:z %Z`).
    pub fn strftime(&self, t: jiff::Timestamp, format: &str) -> String {
        t.to_zoned_datetime(self.rules())
            .strftime(format)
            .to_string()
    }

    /// The name to show: the IANA name, or `local (<name>)` for the machine's.
    pub fn name(&self) -> String {
        match self {
            Zone::Local => match TimeZone::system().iana_name() {
                Some(n) => format!("local ({n})"),
                None => "local".to_owned(),
            },
            Zone::Named(tz) => tz.iana_name().unwrap_or("UTC").to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::DateTime;
    use jiff::tz::AmbiguousOffset;

    #[test]
    fn gap_fold_and_plain_times_in_berlin() {
        let z = Zone::parse(Some("Europe/Berlin")).unwrap().rules();
        let local = |s: &str| s.parse::<DateTime>().unwrap();
        assert!(matches!(
            z.to_ambiguous_timestamp(local("2026-03-29T02:30")).offset(),
            AmbiguousOffset::Gap { .. }
        ));
        assert!(matches!(
            z.to_ambiguous_timestamp(local("2026-10-25T02:30")).offset(),
            AmbiguousOffset::Fold { .. }
        ));
        assert_eq!(z.iana_name(), Some("Europe/Berlin"));
    }

    #[test]
    fn unknown_names_say_what_to_use() {
        let e = Zone::parse(Some("Mars/Olympus")).unwrap_err();
        assert!(e.contains("IANA"), "{e}");
        assert!(Zone::parse(Some("../../etc/passwd")).is_err());
        assert_eq!(
            Zone::parse(Some("Europe/Berlin")).unwrap().name(),
            "Europe/Berlin"
        );
        assert_eq!(Zone::utc().name(), "UTC");
    }
}
