//! Timestamps and spans on the project's one continuous timescale.
//!
//! Both are plain `i64` nanoseconds. There are deliberately no `+`/`-` operators: every
//! arithmetic site says whether it is checked (returns `None` on overflow) or saturating
//! (clamps to the representable range). Saturation is only ever used where clamping moves a
//! bound *outward* (an earliest towards `MIN`, a latest towards `MAX`), so it never makes an
//! interval claim more than it knows.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Nanoseconds per second.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;

/// `v` narrowed to `i64`: exact when it fits, the nearer end of the range otherwise. The one
/// place the core's `i128` arithmetic comes back to `i64`, so a value that does not fit is
/// clamped (a bound only ever moves outward), never wrapped.
pub(crate) const fn saturate_i64(v: i128) -> i64 {
    if v > i64::MAX as i128 {
        i64::MAX
    } else if v < i64::MIN as i128 {
        i64::MIN
    } else {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "inside the i64 range: checked on the two lines above"
        )]
        let n = v as i64;
        n
    }
}

/// A point on the continuous timescale, in nanoseconds since 1970-01-01T00:00:00 on that scale.
///
/// The timescale is UTC with leap seconds removed by a 24-hour linear smear (see
/// [`crate::leap`]): outside a smear window it equals POSIX/UTC time exactly, and it never steps
/// backwards. Range: about ±292 years around 1970.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(i64);

/// A reading of the local raw clock (`CLOCK_MONOTONIC_RAW`, ns since an arbitrary origin): the
/// counter every core decision is stamped with, never stepped or slewed. It is not a time on the
/// timescale — a [`crate::ClockModel`] maps one to a [`Timestamp`] — and the type keeps the two
/// apart at the cores' doors ([`crate::host::HostClock`], timemaster's `MasterCore`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[repr(transparent)]
pub struct RawReading(i64);

impl RawReading {
    /// The reading `ns`.
    pub const fn from_nanos(ns: i64) -> Self {
        RawReading(ns)
    }

    /// The reading in ns.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// This reading moved by `d` (saturating).
    pub const fn add(self, d: Span) -> Self {
        RawReading(self.0.saturating_add(d.as_nanos()))
    }

    /// `self − earlier` (saturating; negative when `earlier` is later).
    pub const fn since(self, earlier: RawReading) -> Span {
        Span::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for RawReading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raw {} ns", self.0)
    }
}

/// A signed length of time in nanoseconds. May be negative (an offset or a backwards step).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Span(i64);

impl Timestamp {
    /// The earliest representable instant (used as "unbounded below").
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    /// The latest representable instant (used as "unbounded above").
    pub const MAX: Timestamp = Timestamp(i64::MAX);
    /// 1970-01-01T00:00:00 on the timescale.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The instant `ns` nanoseconds after the epoch. Exact.
    pub const fn from_nanos(ns: i64) -> Self {
        Timestamp(ns)
    }

    /// Nanoseconds since the epoch. Exact.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// The instant `s` whole seconds after the epoch, or `None` if outside the range.
    pub const fn from_secs(s: i64) -> Option<Self> {
        match s.checked_mul(NANOS_PER_SEC) {
            Some(ns) => Some(Timestamp(ns)),
            None => None,
        }
    }

    /// `self + d`, or `None` on overflow. Exact.
    pub const fn checked_add(self, d: Span) -> Option<Self> {
        match self.0.checked_add(d.0) {
            Some(ns) => Some(Timestamp(ns)),
            None => None,
        }
    }

    /// `self - d`, or `None` on overflow. Exact.
    pub const fn checked_sub(self, d: Span) -> Option<Self> {
        match self.0.checked_sub(d.0) {
            Some(ns) => Some(Timestamp(ns)),
            None => None,
        }
    }

    /// `self + d`, clamped to [`Timestamp::MIN`, `Timestamp::MAX`].
    ///
    /// Use it for moving a *latest* bound later (or an *earliest* bound earlier with a negative
    /// `d`): clamping then only widens.
    pub const fn saturating_add(self, d: Span) -> Self {
        Timestamp(self.0.saturating_add(d.0))
    }

    /// `self - d`, clamped to [`Timestamp::MIN`, `Timestamp::MAX`]. Widening use only, as above.
    pub const fn saturating_sub(self, d: Span) -> Self {
        Timestamp(self.0.saturating_sub(d.0))
    }

    /// `self - earlier` as a span, or `None` on overflow. Exact; negative if `earlier` is later.
    pub const fn checked_since(self, earlier: Timestamp) -> Option<Span> {
        match self.0.checked_sub(earlier.0) {
            Some(ns) => Some(Span(ns)),
            None => None,
        }
    }

    /// `self - earlier`, clamped to the span range.
    pub const fn saturating_since(self, earlier: Timestamp) -> Span {
        Span(self.0.saturating_sub(earlier.0))
    }

    /// Seconds since the epoch as `f64` (for display only; loses precision past ~104 days of ns).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_SEC as f64
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.div_euclid(NANOS_PER_SEC);
        let ns = self.0.rem_euclid(NANOS_PER_SEC);
        write!(f, "{s}.{ns:09}")
    }
}

impl Span {
    /// The zero-length span.
    pub const ZERO: Span = Span(0);
    /// The longest representable span (about 292 years).
    pub const MAX: Span = Span(i64::MAX);
    /// The most negative representable span.
    pub const MIN: Span = Span(i64::MIN);

    /// A span of `ns` nanoseconds. Exact.
    pub const fn from_nanos(ns: i64) -> Self {
        Span(ns)
    }
    /// A span of `us` microseconds, saturating at the range limits.
    pub const fn from_micros(us: i64) -> Self {
        Span(us.saturating_mul(1_000))
    }
    /// A span of `ms` milliseconds, saturating at the range limits.
    pub const fn from_millis(ms: i64) -> Self {
        Span(ms.saturating_mul(1_000_000))
    }
    /// A span of `s` seconds, saturating at the range limits.
    pub const fn from_secs(s: i64) -> Self {
        Span(s.saturating_mul(NANOS_PER_SEC))
    }
    /// A `std` duration as a span, saturating at [`Span::MAX`] (about 292 years).
    pub const fn from_duration(d: std::time::Duration) -> Self {
        let ns = d.as_nanos();
        if ns > i64::MAX as u128 {
            Span(i64::MAX)
        } else {
            #[allow(
                clippy::cast_possible_truncation,
                reason = "at most i64::MAX: checked above"
            )]
            let n = ns as i64;
            Span(n)
        }
    }
    /// Nanoseconds. Exact.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }
    /// Seconds as `f64` (display and statistics only).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_SEC as f64
    }
    /// True if the span is negative.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }
    /// The magnitude, saturating (`|MIN|` becomes `MAX`, one nanosecond short).
    ///
    /// Callers that use it as an *age* to grow a bound get at most 1 ns less at an age of
    /// 292 years; no realistic bound is affected.
    pub const fn saturating_abs(self) -> Self {
        Span(self.0.saturating_abs())
    }
    /// `self + o`, or `None` on overflow.
    pub const fn checked_add(self, o: Span) -> Option<Self> {
        match self.0.checked_add(o.0) {
            Some(ns) => Some(Span(ns)),
            None => None,
        }
    }
    /// `self - o`, or `None` on overflow.
    pub const fn checked_sub(self, o: Span) -> Option<Self> {
        match self.0.checked_sub(o.0) {
            Some(ns) => Some(Span(ns)),
            None => None,
        }
    }
    /// `self + o`, clamped. For error radii (non-negative), clamping at `MAX` means "unbounded".
    pub const fn saturating_add(self, o: Span) -> Self {
        Span(self.0.saturating_add(o.0))
    }
    /// `self - o`, clamped.
    pub const fn saturating_sub(self, o: Span) -> Self {
        Span(self.0.saturating_sub(o.0))
    }
    /// The larger of two spans.
    pub const fn max(self, o: Span) -> Self {
        if self.0 >= o.0 { self } else { o }
    }
    /// The smaller of two spans.
    pub const fn min(self, o: Span) -> Self {
        if self.0 <= o.0 { self } else { o }
    }
    /// Half of the span rounded up (towards +∞): the radius that covers a width. Exact otherwise.
    pub const fn half_ceil(self) -> Self {
        Span(self.0.div_euclid(2) + self.0.rem_euclid(2))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0.unsigned_abs();
        let sign = if self.0 < 0 { "-" } else { "" };
        if a >= 1_000_000_000 {
            write!(f, "{sign}{:.6}s", a as f64 / 1e9)
        } else if a >= 1_000_000 {
            write!(f, "{sign}{:.3}ms", a as f64 / 1e6)
        } else if a >= 1_000 {
            write!(f, "{sign}{:.3}us", a as f64 / 1e3)
        } else {
            write!(f, "{sign}{a}ns")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_convert_exactly_and_saturate() {
        use std::time::Duration;
        assert_eq!(
            Span::from_duration(Duration::from_millis(1500)),
            Span::from_millis(1500)
        );
        assert_eq!(
            Span::from_duration(Duration::from_nanos(7)),
            Span::from_nanos(7)
        );
        assert_eq!(Span::from_duration(Duration::MAX), Span::MAX);
    }

    #[test]
    fn checked_and_saturating_edges() {
        assert_eq!(Timestamp::MAX.checked_add(Span::from_nanos(1)), None);
        assert_eq!(Timestamp::MIN.checked_sub(Span::from_nanos(1)), None);
        assert_eq!(
            Timestamp::MAX.saturating_add(Span::from_secs(5)),
            Timestamp::MAX
        );
        assert_eq!(
            Timestamp::MIN.saturating_sub(Span::from_secs(5)),
            Timestamp::MIN
        );
        assert_eq!(Timestamp::from_secs(i64::MAX), None);
        assert_eq!(Timestamp::from_secs(2).unwrap().as_nanos(), 2_000_000_000);
        assert_eq!(Timestamp::MAX.checked_since(Timestamp::MIN), None);
        assert_eq!(Timestamp::MAX.saturating_since(Timestamp::MIN), Span::MAX);
        assert_eq!(Span::MIN.saturating_abs(), Span::MAX);
    }

    #[test]
    fn half_ceil_rounds_up() {
        assert_eq!(Span::from_nanos(3).half_ceil(), Span::from_nanos(2));
        assert_eq!(Span::from_nanos(4).half_ceil(), Span::from_nanos(2));
        assert_eq!(Span::from_nanos(-3).half_ceil(), Span::from_nanos(-1));
        assert_eq!(Span::from_nanos(0).half_ceil(), Span::ZERO);
        assert_eq!(Span::MAX.half_ceil().as_nanos(), i64::MAX / 2 + 1);
    }

    #[test]
    fn display() {
        assert_eq!(Timestamp::from_nanos(-1).to_string(), "-1.999999999");
        assert_eq!(
            Timestamp::from_nanos(1_500_000_000).to_string(),
            "1.500000000"
        );
        assert_eq!(Span::from_micros(1500).to_string(), "1.500ms");
        assert_eq!(Span::from_nanos(-12).to_string(), "-12ns");
    }
}
