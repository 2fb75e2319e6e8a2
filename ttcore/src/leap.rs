//! UTC labels (including `23:59:60`) ↔ the project's continuous timescale.
//!
//! # The timescale
//!
//! The timescale is **UTC with every leap second smeared linearly over the 24 hours from noon
//! to noon UTC around it** — the smear Google and AWS use for their public time services. For
//! an inserted leap second at the end of day D, the 86 401 SI seconds from D 12:00:00 to
//! D+1 12:00:00 UTC map onto 86 400 timescale seconds (the timescale runs 11.57 ppm slow for a
//! day); a deleted leap second maps 86 399 SI seconds onto 86 400 (11.57 ppm fast). Outside the
//! windows the timescale equals POSIX time exactly. It is continuous and strictly increasing in
//! true time: it never steps backwards and never repeats a value.
//!
//! All arithmetic is exact integer arithmetic; the only rounding is the final division inside a
//! window (toward −∞), so a round trip label → timescale → label is within 1 ns.
//!
//! A host whose kernel *inserts* leap seconds instead of smearing (plain `CLOCK_REALTIME` with
//! ntpd/chrony in leap mode) differs from this timescale by up to 0.5 s inside a window; the
//! daemons publish the leap information so clients can tell.

use crate::time::{NANOS_PER_SEC, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

const DAY_S: i64 = 86_400;
const HALF_DAY_S: i64 = 43_200;

/// One leap second: the UTC midnight at which it takes effect and its sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LeapSecond {
    /// POSIX seconds of the UTC midnight that ends the day with the leap second
    /// (e.g. 2017-01-01T00:00:00Z = 1 483 228 800 for the leap second 2016-12-31T23:59:60).
    pub effective_posix_s: i64,
    /// `+1` for an inserted second (the day ends `23:59:60`), `−1` for a deleted one (the day
    /// ends `23:59:58`).
    pub delta: i8,
}

/// Errors mapping UTC labels.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LeapError {
    /// A field is out of range (month 13, 25:00, …).
    #[error("invalid UTC label {0}: {1}")]
    InvalidLabel(UtcLabel, &'static str),
    /// `23:59:60` on a day without an inserted leap second in the table.
    #[error("{0} is a leap second label, but no inserted leap second is known for that day")]
    UnknownLeapSecond(UtcLabel),
    /// `23:59:59` on a day whose last second was deleted.
    #[error("{0} does not exist: that day's last second was deleted")]
    DeletedSecond(UtcLabel),
    /// The table given to [`LeapTable::new`] is malformed.
    #[error("invalid leap table: {0}")]
    InvalidTable(&'static str),
    /// The label or instant is out of the representable range (about 1678–2262).
    #[error("out of range")]
    OutOfRange,
}

/// A broken-down UTC time as a receiver prints it. `second` may be 60 on a leap-second day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UtcLabel {
    /// Gregorian year (proleptic).
    pub year: i32,
    /// Month, 1–12.
    pub month: u8,
    /// Day of month, 1–31.
    pub day: u8,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
    /// Second, 0–60 (60 only for an inserted leap second).
    pub second: u8,
    /// Nanoseconds within the second, 0–999 999 999.
    pub nanos: u32,
}

impl UtcLabel {
    /// Parses a date, `YYYY-MM-DD` (month 1–12, day 1–31), into (year, month, day).
    pub fn parse_date(s: &str) -> Option<(i32, u8, u8)> {
        let mut it = s.split('-');
        let y = it.next()?.parse().ok()?;
        let m = it.next()?.parse().ok()?;
        let d = it.next()?.parse().ok()?;
        if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return None;
        }
        Some((y, m, d))
    }

    /// Parses the configs' and scenarios' form, `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, UTC).
    /// Fields out of range give `None`, except second 60, which a leap-second day has.
    pub fn parse_iso(s: &str) -> Option<UtcLabel> {
        let (date, rest) = s.split_once('T')?;
        let (year, month, day) = Self::parse_date(date)?;
        let mut it = rest.strip_suffix('Z')?.split(':');
        let hour: u8 = it.next()?.parse().ok()?;
        let minute: u8 = it.next()?.parse().ok()?;
        let second: u8 = it.next()?.parse().ok()?;
        if it.next().is_some() || hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        Some(UtcLabel {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos: 0,
        })
    }
}

impl UtcLabel {
    /// The form [`UtcLabel::parse_iso`] reads, `YYYY-MM-DDTHH:MM:SSZ` (nanoseconds dropped).
    pub fn to_iso(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

impl fmt::Display for UtcLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.nanos
        )
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (exact; any `i32` year).
pub const fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = year as i64 - if month <= 2 { 1 } else { 0 };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days in ±2 × 10⁹ years: the range within which [`civil_from_days`] is exact.
const CIVIL_DAYS_LIMIT: i64 = 730_485_000_000;

/// The proleptic Gregorian date `(year, month, day)` of a day count since 1970-01-01: exact for
/// |days| ≤ 7.3 × 10¹¹ (±2 × 10⁹ years; every `i64` of nanoseconds is 2 × 10⁵ days), and the
/// date at that limit beyond it (clamped, never a wrapped year).
#[allow(
    clippy::cast_possible_truncation,
    reason = "day 1–31, month 1–12 by the algorithm; the year within ±2 × 10⁹ by the clamp"
)]
pub const fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let days = if days > CIVIL_DAYS_LIMIT {
        CIVIL_DAYS_LIMIT
    } else if days < -CIVIL_DAYS_LIMIT {
        -CIVIL_DAYS_LIMIT
    } else {
        days
    };
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    ((y + if m <= 2 { 1 } else { 0 }) as i32, m, d)
}

const fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            if leap { 29 } else { 28 }
        }
    }
}

impl UtcLabel {
    fn validate(&self) -> Result<(), LeapError> {
        let bad = |why| Err(LeapError::InvalidLabel(*self, why));
        if !(1..=12).contains(&self.month) {
            return bad("month must be 1-12");
        }
        if self.day == 0 || self.day > days_in_month(self.year, self.month) {
            return bad("day out of range for month");
        }
        if self.hour > 23 || self.minute > 59 || self.second > 60 {
            return bad("time of day out of range");
        }
        if self.second == 60 && (self.hour != 23 || self.minute != 59) {
            return bad("second 60 only exists at 23:59:60");
        }
        if self.nanos >= 1_000_000_000 {
            return bad("nanoseconds must be below 1e9");
        }
        Ok(())
    }

    /// POSIX seconds of the start of this label's day.
    fn day_start_s(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * DAY_S
    }
}

/// The known leap seconds, sorted, at least two days apart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeapTable {
    entries: Vec<LeapSecond>,
}

/// How far around each leap instant (either side, beyond the repeated second itself) a reading
/// of a POSIX-kept clock is not mapped onto the timescale: [`LeapTable::posix_to_timescale`].
pub const LEAP_GUARD: crate::time::Span = crate::time::Span::from_nanos(2 * NANOS_PER_SEC);

/// TAI − UTC before the first leap second in the built-in table (1972-01-01), in seconds.
pub const TAI_MINUS_UTC_1972: i64 = 10;

impl LeapTable {
    /// The IERS leap seconds from 1972-07-01 through 2017-01-01 (TAI − UTC = 37 s since then).
    /// No leap second has been announced since; add announcements with
    /// [`LeapTable::with_announced`].
    pub fn builtin() -> Self {
        const DATES: [(i32, u8); 27] = [
            (1972, 7),
            (1973, 1),
            (1974, 1),
            (1975, 1),
            (1976, 1),
            (1977, 1),
            (1978, 1),
            (1979, 1),
            (1980, 1),
            (1981, 7),
            (1982, 7),
            (1983, 7),
            (1985, 7),
            (1988, 1),
            (1990, 1),
            (1991, 1),
            (1992, 7),
            (1993, 7),
            (1994, 7),
            (1996, 1),
            (1997, 7),
            (1999, 1),
            (2006, 1),
            (2009, 1),
            (2012, 7),
            (2015, 7),
            (2017, 1),
        ];
        let entries = DATES
            .iter()
            .map(|&(y, m)| LeapSecond {
                effective_posix_s: days_from_civil(y, m, 1) * DAY_S,
                delta: 1,
            })
            .collect();
        LeapTable { entries }
    }

    /// A table with no leap seconds at all (the timescale is then plain POSIX time).
    pub fn empty() -> Self {
        LeapTable {
            entries: Vec::new(),
        }
    }

    /// A table from explicit entries. Each must take effect at a UTC midnight, have `delta` ±1,
    /// and be more than one day from its neighbours (smear windows must not overlap).
    pub fn new(mut entries: Vec<LeapSecond>) -> Result<Self, LeapError> {
        entries.sort();
        for e in &entries {
            if e.effective_posix_s.rem_euclid(DAY_S) != 0 {
                return Err(LeapError::InvalidTable(
                    "a leap second must take effect at midnight",
                ));
            }
            if e.delta != 1 && e.delta != -1 {
                return Err(LeapError::InvalidTable("delta must be +1 or -1"));
            }
        }
        for w in entries.windows(2) {
            if w[1].effective_posix_s - w[0].effective_posix_s <= DAY_S {
                return Err(LeapError::InvalidTable("leap seconds closer than one day"));
            }
        }
        Ok(LeapTable { entries })
    }

    /// This table plus one announced leap second (as a receiver or a master announces it).
    pub fn with_announced(&self, leap: LeapSecond) -> Result<Self, LeapError> {
        if self.entries.contains(&leap) {
            return Ok(self.clone());
        }
        let mut e = self.entries.clone();
        e.push(leap);
        LeapTable::new(e)
    }

    /// The entries, sorted by effective time.
    pub fn entries(&self) -> &[LeapSecond] {
        &self.entries
    }

    /// TAI − UTC in seconds at POSIX second `posix_s`, counting the built-in 1972 base of 10 s
    /// and every entry that took effect at or before `posix_s`. Meaningful from 1972 on.
    pub fn tai_minus_utc_s(&self, posix_s: i64) -> i64 {
        TAI_MINUS_UTC_1972
            + self
                .entries
                .iter()
                .filter(|e| e.effective_posix_s <= posix_s)
                .map(|e| e.delta as i64)
                .sum::<i64>()
    }

    /// The first leap second whose smear window has not ended at timescale instant `t`, if any:
    /// what a master publishes as "leap pending".
    pub fn next_leap(&self, t: Timestamp) -> Option<LeapSecond> {
        let s = t.as_nanos().div_euclid(NANOS_PER_SEC);
        self.entries
            .iter()
            .copied()
            .find(|e| s < e.effective_posix_s + HALF_DAY_S)
    }

    /// The leap second whose smear window contains POSIX-label second `p`, if any.
    /// The timescale's rate against SI seconds at POSIX second `posix_s` (dimensionless):
    /// inside a smear window, `−delta / (86 400 + delta)`; elsewhere 0. A master applies it
    /// to its frequency estimate at the window's edges, so its filter does not have to learn it.
    pub fn smear_rate_at(&self, posix_s: i64) -> f64 {
        self.window_of(posix_s).map_or(0.0, |e| {
            -(e.delta as f64) / ((DAY_S + e.delta as i64) as f64)
        })
    }

    fn window_of(&self, p: i64) -> Option<LeapSecond> {
        self.entries
            .iter()
            .copied()
            .find(|e| p >= e.effective_posix_s - HALF_DAY_S && p < e.effective_posix_s + HALF_DAY_S)
    }

    /// TAI (ns since 1970-01-01T00:00:00 TAI-labelled, i.e. POSIX + TAI−UTC) of a UTC label:
    /// a count of SI nanoseconds, continuous through leap seconds. Exact.
    ///
    /// Meaningful from 1972 on (the table's base is TAI − UTC = 10 s then).
    pub fn utc_to_tai_ns(&self, l: &UtcLabel) -> Result<i64, LeapError> {
        l.validate()?;
        let day_end = l.day_start_s() + DAY_S;
        let s = if l.second == 60 {
            if !self
                .entries
                .iter()
                .any(|e| e.effective_posix_s == day_end && e.delta == 1)
            {
                return Err(LeapError::UnknownLeapSecond(*l));
            }
            day_end - 1 + self.tai_minus_utc_s(day_end - 1) + 1
        } else {
            let p = l.day_start_s() + l.hour as i64 * 3600 + l.minute as i64 * 60 + l.second as i64;
            if self
                .entries
                .iter()
                .any(|e| e.delta == -1 && p == e.effective_posix_s - 1)
            {
                return Err(LeapError::DeletedSecond(*l));
            }
            p + self.tai_minus_utc_s(p)
        };
        s.checked_mul(NANOS_PER_SEC)
            .and_then(|ns| ns.checked_add(l.nanos as i64))
            .ok_or(LeapError::OutOfRange)
    }

    /// The UTC label of a TAI instant (inverse of [`LeapTable::utc_to_tai_ns`]); yields
    /// `23:59:60` during an inserted leap second. Exact.
    pub fn tai_to_utc(&self, tai_ns: i64) -> UtcLabel {
        let s = tai_ns.div_euclid(NANOS_PER_SEC);
        let nanos = u32::try_from(tai_ns.rem_euclid(NANOS_PER_SEC)).unwrap_or(0); // < 10⁹
        // Fixed point p = s − (TAI−UTC)(p); converges in two steps for a sorted table. During
        // an inserted leap second before `m` it alternates between m − 1 and m, so only the
        // entries within a few seconds of p can make this second 23:59:60 (checking those alone
        // keeps this linear in the table: the simulator calls it for every truth check).
        let mut p = s - self.tai_minus_utc_s(s);
        for _ in 0..3 {
            p = s - self.tai_minus_utc_s(p);
        }
        for e in self
            .entries
            .iter()
            .filter(|e| e.delta == 1 && (e.effective_posix_s - p).abs() <= 2)
        {
            let m = e.effective_posix_s;
            if s == m - 1 + self.tai_minus_utc_s(m - 1) + 1 {
                let mut l = label_from_posix_ns((m - 1) as i128 * NANOS_PER_SEC as i128);
                l.second = 60;
                l.nanos = nanos;
                return l;
            }
        }
        let mut l = label_from_posix_ns(p as i128 * NANOS_PER_SEC as i128);
        l.nanos = nanos;
        l
    }

    /// TAI (ns) at a timescale instant: [`LeapTable::timescale_to_utc`] then
    /// [`LeapTable::utc_to_tai_ns`]; within 1 ns inside smear windows, exact outside them.
    /// Atomic clocks tick SI seconds, so their pulses keep a fixed phase in TAI, not in the
    /// smeared timescale.
    pub fn timescale_to_tai_ns(&self, t: Timestamp) -> Result<i64, LeapError> {
        self.utc_to_tai_ns(&self.timescale_to_utc(t))
    }

    /// The project timescale (ns) at a TAI instant: [`LeapTable::tai_to_utc`] then
    /// [`LeapTable::utc_to_timescale`].
    pub fn tai_to_timescale(&self, tai_ns: i64) -> Result<Timestamp, LeapError> {
        self.utc_to_timescale(&self.tai_to_utc(tai_ns))
    }

    /// Maps a UTC label to the continuous timescale (ns). Exact outside smear windows; inside,
    /// rounded toward −∞ by less than 1 ns.
    ///
    /// Errors: an invalid label, `23:59:60` on a day without an inserted leap second in the
    /// table, `23:59:59` on a day whose last second was deleted, or a date out of range.
    pub fn utc_to_timescale(&self, l: &UtcLabel) -> Result<Timestamp, LeapError> {
        l.validate()?;
        let nanos = l.nanos as i128;
        let day_end = l.day_start_s() + DAY_S;
        if l.second == 60 {
            let leap = self
                .entries
                .iter()
                .copied()
                .find(|e| e.effective_posix_s == day_end && e.delta == 1)
                .ok_or(LeapError::UnknownLeapSecond(*l))?;
            let si = HALF_DAY_S as i128 * NANOS_PER_SEC as i128 + nanos;
            return smeared(leap, si);
        }
        let p = l.day_start_s() + l.hour as i64 * 3600 + l.minute as i64 * 60 + l.second as i64;
        match self.window_of(p) {
            None => to_ts(p as i128 * NANOS_PER_SEC as i128 + nanos),
            Some(leap) => {
                let m = leap.effective_posix_s;
                let w = m - HALF_DAY_S;
                if leap.delta == -1 && p == m - 1 {
                    return Err(LeapError::DeletedSecond(*l));
                }
                let si_s = if p < m {
                    p - w
                } else {
                    p - w + leap.delta as i64
                };
                smeared(leap, si_s as i128 * NANOS_PER_SEC as i128 + nanos)
            }
        }
    }

    /// Maps a reading of a clock kept the POSIX way — a kernel that *inserts* leap seconds, as
    /// chrony (`leapsecmode system`, its default) and ntpd serve it, showing `23:59:60` as a
    /// second `23:59:59` — onto the timescale (ns). Exact outside smear windows; inside, within
    /// 1 ns (rounded toward −∞), like [`LeapTable::utc_to_timescale`].
    ///
    /// `None` within [`LEAP_GUARD`] of a leap second in the table: the repeated second does not
    /// name one instant, and servers step at slightly different moments, so no reading there is
    /// mapped. A clock that slews its leap seconds out (chrony's `leapsecmode slew`, `smoothtime`)
    /// is on neither scale for seconds to minutes after the leap and is not covered.
    pub fn posix_to_timescale(&self, posix_ns: i64) -> Option<Timestamp> {
        let guard = LEAP_GUARD.as_nanos() as i128;
        let ns = posix_ns as i128;
        let near = self.entries.iter().any(|e| {
            let m = e.effective_posix_s as i128 * NANOS_PER_SEC as i128;
            ns >= m - NANOS_PER_SEC as i128 - guard && ns < m + guard
        });
        if near {
            return None;
        }
        self.utc_to_timescale(&label_from_posix_ns(ns)).ok()
    }

    /// The leap second a POSIX-kept server announces with its leap indicator at POSIX instant
    /// `posix_ns` (`delta` +1 insert, −1 delete): at the end of the month. RFC 5905 says "the
    /// last minute of the current day", chrony sets it on that day only, ntpd for the whole
    /// month; leap seconds are only ever scheduled at a month's end, so this reads both right.
    pub fn announced_at(posix_ns: i64, delta: i8) -> LeapSecond {
        let days = posix_ns.div_euclid(NANOS_PER_SEC).div_euclid(DAY_S);
        let (y, m, _) = civil_from_days(days);
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        LeapSecond {
            effective_posix_s: days_from_civil(ny, nm, 1) * DAY_S,
            delta,
        }
    }

    /// Maps a timescale instant back to the UTC label a receiver would print at that true
    /// instant (`23:59:60` during an inserted leap second). Round trip within 1 ns.
    pub fn timescale_to_utc(&self, t: Timestamp) -> UtcLabel {
        let ns = t.as_nanos() as i128;
        let ns_per_s = NANOS_PER_SEC as i128;
        let s = t.as_nanos().div_euclid(NANOS_PER_SEC);
        if let Some(leap) = self.window_of(s) {
            let w = (leap.effective_posix_s - HALF_DAY_S) as i128 * ns_per_s;
            let len = (DAY_S + leap.delta as i64) as i128;
            let off = ns - w;
            // Smallest SI offset whose forward mapping is >= off.
            let si = (off * len + DAY_S as i128 - 1).div_euclid(DAY_S as i128);
            let half = HALF_DAY_S as i128 * ns_per_s;
            if leap.delta == 1 {
                if si < half {
                    return label_from_posix_ns(w + si);
                }
                if si < half + ns_per_s {
                    let mut l = label_from_posix_ns(w + half - ns_per_s);
                    l.second = 60;
                    // In [0, 1 s): the branch's condition.
                    l.nanos = u32::try_from(si - half).unwrap_or(0);
                    return l;
                }
                return label_from_posix_ns(w + si - ns_per_s);
            }
            if si < half - ns_per_s {
                return label_from_posix_ns(w + si);
            }
            return label_from_posix_ns(w + si + ns_per_s);
        }
        label_from_posix_ns(ns)
    }
}

fn to_ts(ns: i128) -> Result<Timestamp, LeapError> {
    i64::try_from(ns)
        .map(Timestamp::from_nanos)
        .map_err(|_| LeapError::OutOfRange)
}

/// Timescale ns for SI offset `si` ns into `leap`'s smear window.
fn smeared(leap: LeapSecond, si: i128) -> Result<Timestamp, LeapError> {
    let w = (leap.effective_posix_s - HALF_DAY_S) as i128 * NANOS_PER_SEC as i128;
    let len = (DAY_S + leap.delta as i64) as i128;
    to_ts(w + (si * DAY_S as i128).div_euclid(len))
}

#[allow(
    clippy::cast_possible_truncation,
    reason = "s = ns / 10⁹ fits i64 (callers pass i64 seconds × 10⁹, or i64 ns moved by less \
              than a day); nanos < 10⁹, hour < 24, minute and second < 60 by the remainders"
)]
fn label_from_posix_ns(ns: i128) -> UtcLabel {
    let ns_per_s = NANOS_PER_SEC as i128;
    let s = ns.div_euclid(ns_per_s) as i64;
    let nanos = ns.rem_euclid(ns_per_s) as u32;
    let days = s.div_euclid(DAY_S);
    let sod = s.rem_euclid(DAY_S);
    let (year, month, day) = civil_from_days(days);
    UtcLabel {
        year,
        month,
        day,
        hour: (sod / 3600) as u8,
        minute: (sod / 60 % 60) as u8,
        second: (sod % 60) as u8,
        nanos,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lbl(y: i32, mo: u8, d: u8, h: u8, mi: u8, s: u8, ns: u32) -> UtcLabel {
        UtcLabel {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
            nanos: ns,
        }
    }

    #[test]
    fn civil_round_trip_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2017, 1, 1) * DAY_S, 1_483_228_800);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }

    /// What a kernel that inserts leap seconds shows at timescale instant `t` (POSIX ns):
    /// `23:59:60` as a second `23:59:59`.
    fn posix_reading(table: &LeapTable, t: Timestamp) -> i64 {
        let l = table.timescale_to_utc(t);
        let s =
            l.day_start_s() + l.hour as i64 * 3600 + l.minute as i64 * 60 + l.second.min(59) as i64;
        s * NANOS_PER_SEC + l.nanos as i64
    }

    #[test]
    fn a_posix_kept_clock_maps_onto_the_timescale_except_beside_the_leap() {
        for delta in [1i8, -1] {
            let m = days_from_civil(2017, 1, 1) * DAY_S;
            let table = LeapTable::new(vec![LeapSecond {
                effective_posix_s: m,
                delta,
            }])
            .unwrap();
            let m_ns = m * NANOS_PER_SEC;
            // Across the whole window every 61.3 s, and every 10 ms within 5 s of the leap.
            let coarse = (-13 * 3600 * 1000..13 * 3600 * 1000).step_by(61_300);
            let fine = (-5_000..5_000).step_by(10);
            let (mut mapped, mut refused, mut max_gap) = (0, 0, 0i64);
            for ms in coarse.chain(fine) {
                let t = Timestamp::from_nanos(m_ns + ms * 1_000_000);
                let p = posix_reading(&table, t);
                max_gap = max_gap.max((p - t.as_nanos()).abs());
                match table.posix_to_timescale(p) {
                    Some(x) => {
                        let err = x.as_nanos() - t.as_nanos();
                        assert!(
                            (-1..=0).contains(&err),
                            "δ{delta} at {ms} ms: off by {err} ns"
                        );
                        mapped += 1;
                    }
                    None => {
                        let g = LEAP_GUARD.as_nanos();
                        assert!(
                            p >= m_ns - NANOS_PER_SEC - g && p < m_ns + g,
                            "δ{delta} at {ms} ms: refused {} ns from the leap",
                            p - m_ns
                        );
                        refused += 1;
                    }
                }
            }
            assert!(
                mapped > 1_500 && refused > 300,
                "{mapped} mapped, {refused} refused"
            );
            // The correction matters: taken as it is, the POSIX reading is up to 0.5 s away.
            assert!(max_gap > 499_000_000, "largest gap {max_gap} ns");
        }
    }

    #[test]
    fn an_announced_leap_takes_effect_at_the_end_of_the_month() {
        let at = |y, mo, d| days_from_civil(y, mo, d) * DAY_S * NANOS_PER_SEC + 5;
        let dec31 = LeapTable::announced_at(at(2016, 12, 31), 1);
        assert_eq!(dec31.effective_posix_s, 1_483_228_800);
        assert_eq!(LeapTable::announced_at(at(2016, 12, 1), 1), dec31);
        let jun = LeapTable::announced_at(at(2015, 6, 30), -1);
        assert_eq!(jun.effective_posix_s, days_from_civil(2015, 7, 1) * DAY_S);
        assert_eq!(jun.delta, -1);
    }

    #[test]
    fn builtin_table_counts_37() {
        let t = LeapTable::builtin();
        assert_eq!(t.entries().len(), 27);
        assert_eq!(t.tai_minus_utc_s(1_483_228_800), 37);
        assert_eq!(t.tai_minus_utc_s(1_483_228_799), 36);
        assert_eq!(t.tai_minus_utc_s(0), 10);
    }

    #[test]
    fn outside_windows_is_posix() {
        let t = LeapTable::builtin();
        let l = lbl(2026, 11, 26, 11, 16, 15, 123);
        let ts = t.utc_to_timescale(&l).unwrap();
        assert_eq!(
            ts.as_nanos(),
            (days_from_civil(2026, 11, 26) * DAY_S + 40_575) * NANOS_PER_SEC + 123
        );
        assert_eq!(t.timescale_to_utc(ts), l);
    }

    #[test]
    fn inserted_leap_second_both_sides() {
        let t = LeapTable::builtin();
        let m = 1_483_228_800i64; // 2017-01-01T00:00:00Z
        let before = t
            .utc_to_timescale(&lbl(2016, 12, 31, 23, 59, 59, 0))
            .unwrap();
        let leap = t
            .utc_to_timescale(&lbl(2016, 12, 31, 23, 59, 60, 0))
            .unwrap();
        let leap_half = t
            .utc_to_timescale(&lbl(2016, 12, 31, 23, 59, 60, 500_000_000))
            .unwrap();
        let after = t.utc_to_timescale(&lbl(2017, 1, 1, 0, 0, 0, 0)).unwrap();
        // Strictly increasing through the leap second, ~1 SI second apart each.
        assert!(before < leap && leap < leap_half && leap_half < after);
        let step = |a: Timestamp, b: Timestamp| b.saturating_since(a).as_nanos();
        // 1 SI second maps to 86400/86401 s on the timescale.
        assert!((step(before, leap) - 999_988_426).abs() <= 1);
        assert!((step(leap, after) - 999_988_426).abs() <= 1);
        // At 23:59:60.0 the smear is 43200/86401 s (0.499994213… s, floored) behind midnight.
        assert_eq!(leap.as_nanos(), m * NANOS_PER_SEC - 499_994_214);
        // Window edges agree with POSIX exactly.
        let start = t.utc_to_timescale(&lbl(2016, 12, 31, 12, 0, 0, 0)).unwrap();
        assert_eq!(start.as_nanos(), (m - HALF_DAY_S) * NANOS_PER_SEC);
        let end = t.utc_to_timescale(&lbl(2017, 1, 1, 12, 0, 0, 0)).unwrap();
        assert_eq!(end.as_nanos(), (m + HALF_DAY_S) * NANOS_PER_SEC);
        // And back: 23:59:60 is recovered.
        let back = t.timescale_to_utc(leap_half);
        assert_eq!((back.hour, back.minute, back.second), (23, 59, 60));
        assert!((back.nanos as i64 - 500_000_000).abs() <= 1);
        assert_eq!(t.timescale_to_utc(after), lbl(2017, 1, 1, 0, 0, 0, 0));
    }

    #[test]
    fn deleted_leap_second_both_sides() {
        let m = days_from_civil(2030, 1, 1) * DAY_S;
        let t = LeapTable::new(vec![LeapSecond {
            effective_posix_s: m,
            delta: -1,
        }])
        .unwrap();
        let a = t
            .utc_to_timescale(&lbl(2029, 12, 31, 23, 59, 58, 0))
            .unwrap();
        let b = t.utc_to_timescale(&lbl(2030, 1, 1, 0, 0, 0, 0)).unwrap();
        // One SI second separates 23:59:58 and 00:00:00; on the timescale 86400/86399 s.
        assert!((b.saturating_since(a).as_nanos() - 1_000_011_574).abs() <= 1);
        assert!(matches!(
            t.utc_to_timescale(&lbl(2029, 12, 31, 23, 59, 59, 0)),
            Err(LeapError::DeletedSecond(_))
        ));
        assert_eq!(t.timescale_to_utc(b), lbl(2030, 1, 1, 0, 0, 0, 0));
        assert_eq!(t.timescale_to_utc(a), lbl(2029, 12, 31, 23, 59, 58, 0));
        assert_eq!(t.tai_minus_utc_s(m), TAI_MINUS_UTC_1972 - 1);
    }

    #[test]
    fn tai_round_trip_through_leap_seconds() {
        let t = LeapTable::builtin();
        // 2017-01-01T00:00:00Z is TAI 00:00:37.
        let l = lbl(2017, 1, 1, 0, 0, 0, 0);
        assert_eq!(
            t.utc_to_tai_ns(&l).unwrap(),
            (1_483_228_800 + 37) * NANOS_PER_SEC
        );
        let leap = lbl(2016, 12, 31, 23, 59, 60, 250);
        let tai = t.utc_to_tai_ns(&leap).unwrap();
        assert_eq!(tai, (1_483_228_800 + 36) * NANOS_PER_SEC + 250);
        assert_eq!(t.tai_to_utc(tai), leap);
        // Every SI second across the leap maps to a distinct, increasing label.
        let mut prev = None;
        for k in -3..3 {
            let x = tai + k * NANOS_PER_SEC;
            let lab = t.tai_to_utc(x);
            assert_eq!(t.utc_to_tai_ns(&lab).unwrap(), x);
            let ts = t.tai_to_timescale(x).unwrap();
            if let Some(p) = prev {
                assert!(ts > p);
            }
            prev = Some(ts);
        }
        // Deleted second: 23:59:58 -> 00:00:00 is one SI second.
        let m = days_from_civil(2030, 1, 1) * DAY_S;
        let d = LeapTable::new(vec![LeapSecond {
            effective_posix_s: m,
            delta: -1,
        }])
        .unwrap();
        let a = d.utc_to_tai_ns(&lbl(2029, 12, 31, 23, 59, 58, 0)).unwrap();
        let b = d.utc_to_tai_ns(&lbl(2030, 1, 1, 0, 0, 0, 0)).unwrap();
        assert_eq!(b - a, NANOS_PER_SEC);
        assert_eq!(d.tai_to_utc(b), lbl(2030, 1, 1, 0, 0, 0, 0));
        assert_eq!(d.tai_to_utc(a), lbl(2029, 12, 31, 23, 59, 58, 0));
        assert!(d.utc_to_tai_ns(&lbl(2029, 12, 31, 23, 59, 59, 0)).is_err());
    }

    /// Around every leap of the built-in table (and a deleted one), each TAI second has one
    /// label that maps back to it, labels increase, and `23:59:60` appears exactly once per
    /// inserted leap, on the day it belongs to.
    #[test]
    fn every_leap_of_the_table_round_trips_second_by_second() {
        let deleted = days_from_civil(2030, 1, 1) * DAY_S;
        let mut entries = LeapTable::builtin().entries.clone();
        entries.push(LeapSecond {
            effective_posix_s: deleted,
            delta: -1,
        });
        let t = LeapTable::new(entries.clone()).unwrap();
        for e in &entries {
            let m = e.effective_posix_s;
            let tai0 = (m + t.tai_minus_utc_s(m)) * NANOS_PER_SEC;
            let mut sixties = 0;
            let mut prev: Option<UtcLabel> = None;
            for k in -6..6 {
                let x = tai0 + k * NANOS_PER_SEC + 123;
                let lab = t.tai_to_utc(x);
                assert_eq!(t.utc_to_tai_ns(&lab).unwrap(), x, "{lab:?}");
                if lab.second == 60 {
                    sixties += 1;
                    assert_eq!(e.delta, 1);
                    assert_eq!(lab.day_start_s() + DAY_S, m, "{lab:?}");
                }
                if let Some(p) = prev {
                    assert!(t.utc_to_tai_ns(&p).unwrap() < x);
                }
                prev = Some(lab);
            }
            assert_eq!(sixties, usize::from(e.delta == 1), "leap at {m}");
        }
    }

    #[test]
    fn bad_labels_rejected() {
        let t = LeapTable::builtin();
        assert!(matches!(
            t.utc_to_timescale(&lbl(2026, 11, 26, 23, 59, 60, 0)),
            Err(LeapError::UnknownLeapSecond(_))
        ));
        for l in [
            lbl(2026, 13, 1, 0, 0, 0, 0),
            lbl(2026, 2, 29, 0, 0, 0, 0),
            lbl(2026, 1, 1, 24, 0, 0, 0),
            lbl(2026, 1, 1, 12, 0, 60, 0),
            lbl(2026, 1, 1, 0, 0, 0, 1_000_000_000),
        ] {
            assert!(
                matches!(t.utc_to_timescale(&l), Err(LeapError::InvalidLabel(..))),
                "{l}"
            );
        }
        assert!(matches!(
            t.utc_to_timescale(&lbl(9999, 1, 1, 0, 0, 0, 0)),
            Err(LeapError::OutOfRange)
        ));
    }

    #[test]
    fn table_validation() {
        assert!(
            LeapTable::new(vec![LeapSecond {
                effective_posix_s: 5,
                delta: 1
            }])
            .is_err()
        );
        assert!(
            LeapTable::new(vec![LeapSecond {
                effective_posix_s: 0,
                delta: 2
            }])
            .is_err()
        );
        assert!(
            LeapTable::new(vec![
                LeapSecond {
                    effective_posix_s: 0,
                    delta: 1
                },
                LeapSecond {
                    effective_posix_s: DAY_S,
                    delta: 1
                }
            ])
            .is_err()
        );
        let t = LeapTable::builtin();
        let m = days_from_civil(2027, 7, 1) * DAY_S;
        let t2 = t
            .with_announced(LeapSecond {
                effective_posix_s: m,
                delta: 1,
            })
            .unwrap();
        assert_eq!(t2.entries().len(), 28);
        let before = Timestamp::from_secs(m - 100_000).unwrap();
        assert_eq!(t2.next_leap(before).map(|l| l.effective_posix_s), Some(m));
        assert_eq!(t.next_leap(before), None);
    }

    proptest! {
        // Monotone and round-trips across an inserted leap second, sampled over its window.
        #[test]
        fn inserted_window_monotone_round_trip(a in 0i64..86_401_000_000_000, d in 1i64..5_000_000_000) {
            let t = LeapTable::builtin();
            let m = 1_483_228_800i64;
            let w = m - HALF_DAY_S;
            let mk = |si: i64| {
                // Build the label for SI offset si from window start.
                let s = si / NANOS_PER_SEC;
                let ns = (si % NANOS_PER_SEC) as u32;
                if s < HALF_DAY_S {
                    let mut l = label_from_posix_ns((w + s) as i128 * NANOS_PER_SEC as i128);
                    l.nanos = ns; l
                } else if s == HALF_DAY_S {
                    UtcLabel { year: 2016, month: 12, day: 31, hour: 23, minute: 59, second: 60, nanos: ns }
                } else {
                    let mut l = label_from_posix_ns((w + s - 1) as i128 * NANOS_PER_SEC as i128);
                    l.nanos = ns; l
                }
            };
            let b = (a + d).min(86_401_000_000_000 - 1);
            prop_assume!(b > a);
            let la = mk(a);
            let lb = mk(b);
            let ta = t.utc_to_timescale(&la).unwrap();
            let tb = t.utc_to_timescale(&lb).unwrap();
            prop_assert!(ta <= tb);
            let back = t.timescale_to_utc(ta);
            let again = t.utc_to_timescale(&back).unwrap();
            prop_assert!((again.as_nanos() - ta.as_nanos()).abs() <= 1);
        }

        #[test]
        fn civil_days_round_trip(days in -200_000i64..200_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn iso_labels_parse() {
        let l = UtcLabel::parse_iso("2016-12-31T23:59:60Z").unwrap();
        assert_eq!(l.to_iso(), "2016-12-31T23:59:60Z");
        assert_eq!((l.year, l.month, l.day, l.second), (2016, 12, 31, 60));
        for bad in [
            "2016-12-31 23:59:59Z",
            "2016-12-31T23:59:59",
            "2016-13-01T00:00:00Z",
            "2016-12-31T24:00:00Z",
            "2016-12-31T23:59:61Z",
            "2016-12-31T23:59:59:00Z",
            "",
        ] {
            assert_eq!(UtcLabel::parse_iso(bad), None, "{bad}");
        }
    }
}
