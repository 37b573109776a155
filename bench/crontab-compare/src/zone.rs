//! Time zones for schedules: IANA names from the system's tz database (jiff,
//! with a bundled copy for machines without tzdata), seen through chrono's
//! `TimeZone` trait because the `cron` crate computes fires in chrono types.
//!
//! Not chrono-tz: its compiled-in tables are about 1 MB of pointers that the
//! loader relocates on every start, which cost every `autod dispatch` 0.7 ms
//! although a one-shot dispatch never looks at a zone.

use std::fmt;

use chrono::{FixedOffset, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use jiff::tz::{AmbiguousOffset, TimeZone};

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

    /// The zone's rules for chrono. The machine's zone is looked up each time
    /// (jiff caches it briefly), so a daemon follows a change of `TZ` or
    /// `/etc/localtime` as cron does.
    pub fn rules(&self) -> Rules {
        match self {
            Zone::Local => Rules(TimeZone::system()),
            Zone::Named(tz) => Rules(tz.clone()),
        }
    }
}

/// A zone's rules as a chrono `TimeZone`.
#[derive(Debug, Clone)]
pub struct Rules(TimeZone);

impl Rules {
    fn offset(&self, offset: jiff::tz::Offset) -> ZoneOffset {
        ZoneOffset {
            zone: self.0.clone(),
            // jiff keeps offsets under 26 hours, chrono under 24: no real
            // zone comes near either bound.
            fixed: FixedOffset::east_opt(offset.seconds())
                .unwrap_or(FixedOffset::east_opt(0).expect("zero offset")),
        }
    }
}

/// The offset in force at one instant, remembering its zone (chrono needs the
/// zone back from an offset).
#[derive(Debug, Clone)]
pub struct ZoneOffset {
    zone: TimeZone,
    fixed: FixedOffset,
}

impl chrono::Offset for ZoneOffset {
    fn fix(&self) -> FixedOffset {
        self.fixed
    }
}

impl fmt::Display for ZoneOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.fixed, f)
    }
}

impl chrono::TimeZone for Rules {
    type Offset = ZoneOffset;

    fn from_offset(offset: &ZoneOffset) -> Rules {
        Rules(offset.zone.clone())
    }

    fn offset_from_local_date(&self, local: &NaiveDate) -> MappedLocalTime<ZoneOffset> {
        self.offset_from_local_datetime(&local.and_time(NaiveTime::MIN))
    }

    /// A wall-clock time in a skipped hour has no offset, one in a repeated
    /// hour has two (earlier instant first), as chrono expects.
    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> MappedLocalTime<ZoneOffset> {
        let Some(civil) = to_civil(local) else {
            return MappedLocalTime::None;
        };
        match self.0.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => MappedLocalTime::Single(self.offset(offset)),
            AmbiguousOffset::Gap { .. } => MappedLocalTime::None,
            AmbiguousOffset::Fold { before, after } => {
                MappedLocalTime::Ambiguous(self.offset(before), self.offset(after))
            }
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> ZoneOffset {
        self.offset_from_utc_datetime(&utc.and_time(NaiveTime::MIN))
    }

    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> ZoneOffset {
        // chrono reaches far wider than jiff (±262,143 years against ±9,999);
        // beyond jiff's range the offset at its edge is the only answer.
        let secs = utc.and_utc().timestamp().clamp(
            jiff::Timestamp::MIN.as_second(),
            jiff::Timestamp::MAX.as_second(),
        );
        let ts = jiff::Timestamp::from_second(secs).expect("clamped into range");
        self.offset(self.0.to_offset(ts))
    }
}

fn to_civil(t: &NaiveDateTime) -> Option<jiff::civil::DateTime> {
    use chrono::Datelike;
    jiff::civil::DateTime::new(
        i16::try_from(t.year()).ok()?,
        i8::try_from(t.month()).ok()?,
        i8::try_from(t.day()).ok()?,
        i8::try_from(t.hour()).ok()?,
        i8::try_from(t.minute()).ok()?,
        i8::try_from(t.second()).ok()?,
        // chrono writes a leap second as nanoseconds past 10⁹.
        i32::try_from(t.nanosecond().min(999_999_999)).ok()?,
    )
    .ok()
}

