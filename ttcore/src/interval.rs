//! The TrueTime interval and the clock status that says whether it may be trusted.

use crate::time::{Span, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// Errors building an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum IntervalError {
    /// `earliest` was after `latest`.
    #[error("interval is inverted: earliest {earliest} > latest {latest}")]
    Inverted {
        /// The requested lower end (ns on the timescale).
        earliest: Timestamp,
        /// The requested upper end (ns on the timescale).
        latest: Timestamp,
    },
    /// A radius was negative.
    #[error("negative radius {0}")]
    NegativeRadius(Span),
}

/// A closed interval `[earliest, latest]` of timescale instants, in nanoseconds.
///
/// Guarantee carried by the type: `earliest <= latest` always. When handed out with a
/// trustworthy [`ClockStatus`], true time lies inside it (both ends included). Every operation
/// that changes the ends rounds outward; none narrows it except [`TTInterval::intersect`], which
/// is exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawInterval", into = "RawInterval")]
pub struct TTInterval {
    earliest: Timestamp,
    latest: Timestamp,
}

#[derive(Serialize, Deserialize)]
struct RawInterval {
    earliest: Timestamp,
    latest: Timestamp,
}

impl TryFrom<RawInterval> for TTInterval {
    type Error = IntervalError;
    fn try_from(r: RawInterval) -> Result<Self, Self::Error> {
        TTInterval::new(r.earliest, r.latest)
    }
}

impl From<TTInterval> for RawInterval {
    fn from(i: TTInterval) -> Self {
        RawInterval {
            earliest: i.earliest,
            latest: i.latest,
        }
    }
}

impl TTInterval {
    /// The interval `[earliest, latest]`; an error if `earliest > latest`.
    pub const fn new(earliest: Timestamp, latest: Timestamp) -> Result<Self, IntervalError> {
        if earliest.as_nanos() > latest.as_nanos() {
            return Err(IntervalError::Inverted { earliest, latest });
        }
        Ok(TTInterval { earliest, latest })
    }

    /// The degenerate interval `[t, t]` (exact knowledge).
    pub const fn point(t: Timestamp) -> Self {
        TTInterval {
            earliest: t,
            latest: t,
        }
    }

    /// `[center − radius, center + radius]`, saturating outward at the range limits.
    /// An error if `radius` is negative.
    pub const fn around(center: Timestamp, radius: Span) -> Result<Self, IntervalError> {
        if radius.is_negative() {
            return Err(IntervalError::NegativeRadius(radius));
        }
        Ok(TTInterval {
            earliest: center.saturating_sub(radius),
            latest: center.saturating_add(radius),
        })
    }

    /// The lower end (ns): true time is not before it.
    pub const fn earliest(&self) -> Timestamp {
        self.earliest
    }

    /// The upper end (ns): true time is not after it.
    pub const fn latest(&self) -> Timestamp {
        self.latest
    }

    /// `latest − earliest` (ns, ≥ 0), saturating at [`Span::MAX`].
    pub const fn width(&self) -> Span {
        self.latest.saturating_since(self.earliest)
    }

    /// The uncertainty ε: half the width, rounded **up** (ns, ≥ 0).
    pub const fn epsilon(&self) -> Span {
        self.width().half_ceil()
    }

    /// The midpoint, rounded toward −∞ (ns). `midpoint ± epsilon` covers the interval.
    pub const fn midpoint(&self) -> Timestamp {
        let e = self.earliest.as_nanos() as i128;
        let l = self.latest.as_nanos() as i128;
        Timestamp::from_nanos(crate::time::saturate_i64((e + l).div_euclid(2)))
    }

    /// Spanner's `TT.after(t)`: true iff `t` has definitely passed, i.e. `t < earliest`.
    pub const fn after(&self, t: Timestamp) -> bool {
        t.as_nanos() < self.earliest.as_nanos()
    }

    /// Spanner's `TT.before(t)`: true iff `t` has definitely not arrived, i.e. `t > latest`.
    pub const fn before(&self, t: Timestamp) -> bool {
        t.as_nanos() > self.latest.as_nanos()
    }

    /// True iff `earliest <= t <= latest`.
    pub const fn contains(&self, t: Timestamp) -> bool {
        !self.after(t) && !self.before(t)
    }

    /// The interval grown by `by` on both sides (ns), saturating outward. A negative `by`
    /// is treated as zero: this function only widens.
    pub const fn widen(&self, by: Span) -> Self {
        let by = by.max(Span::ZERO);
        TTInterval {
            earliest: self.earliest.saturating_sub(by),
            latest: self.latest.saturating_add(by),
        }
    }

    /// The interval translated by `by` (ns), or `None` if an end would overflow (a translation
    /// that cannot be represented must not be clamped, because clamping would narrow it).
    pub const fn shift(&self, by: Span) -> Option<Self> {
        match (self.earliest.checked_add(by), self.latest.checked_add(by)) {
            (Some(earliest), Some(latest)) => Some(TTInterval { earliest, latest }),
            _ => None,
        }
    }

    /// The common part of two intervals, or `None` when they are disjoint. Exact. Touching
    /// intervals (one's latest equals the other's earliest) meet in a point.
    pub fn intersect(&self, o: &TTInterval) -> Option<Self> {
        let earliest = self.earliest.max(o.earliest);
        let latest = self.latest.min(o.latest);
        TTInterval::new(earliest, latest).ok()
    }

    /// The smallest interval containing both. Exact.
    pub fn hull(&self, o: &TTInterval) -> Self {
        TTInterval {
            earliest: self.earliest.min(o.earliest),
            latest: self.latest.max(o.latest),
        }
    }
}

impl fmt::Display for TTInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}, {}] (±{})",
            self.earliest,
            self.latest,
            self.epsilon()
        )
    }
}

/// Whether an interval may be used, visible in every output of the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum ClockStatus {
    /// Fresh synchronization; the interval contains true time under the stated assumptions.
    Synchronized = 1,
    /// No fresh synchronization, but the bound is still honest: it grows with the drift bound.
    Holdover = 2,
    /// No honest bound exists (never synced, ε past its configured maximum, or the publisher is
    /// gone). Clients must not use the interval.
    Unsynchronized = 3,
    /// A clock jump, suspend or restart was detected; the interval must not be used until the
    /// next fresh synchronization.
    Disrupted = 4,
}

/// The reason text of the rule in [`ClockStatus::within`].
pub const EPSILON_BEYOND_MAX: &str = "ε beyond max-epsilon";

impl ClockStatus {
    /// True for the statuses under which the interval is guaranteed to contain true time.
    pub const fn is_trustworthy(self) -> bool {
        matches!(self, ClockStatus::Synchronized | ClockStatus::Holdover)
    }

    /// The one "ε beyond max-epsilon" rule: a trustworthy status whose ε (`eps`) has grown
    /// beyond the limit (`max`) is reported as unsynchronized; any other status stays. The
    /// master, the host, every page reader and the transfer's reply apply this same rule.
    #[must_use]
    pub fn within(self, eps: Span, max: Span) -> ClockStatus {
        if self.is_trustworthy() && eps > max {
            ClockStatus::Unsynchronized
        } else {
            self
        }
    }

    /// The wire/shared-memory code (1–4).
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Decodes a wire code; `None` for unknown codes (callers treat those as unusable).
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(ClockStatus::Synchronized),
            2 => Some(ClockStatus::Holdover),
            3 => Some(ClockStatus::Unsynchronized),
            4 => Some(ClockStatus::Disrupted),
            _ => None,
        }
    }

    /// Lower-case name as used in JSON and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            ClockStatus::Synchronized => "synchronized",
            ClockStatus::Holdover => "holdover",
            ClockStatus::Unsynchronized => "unsynchronized",
            ClockStatus::Disrupted => "disrupted",
        }
    }
}

impl fmt::Display for ClockStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(n: i64) -> Timestamp {
        Timestamp::from_nanos(n)
    }

    #[test]
    fn after_before_are_strict() {
        let i = TTInterval::new(ts(10), ts(20)).unwrap();
        assert!(i.after(ts(9)));
        assert!(!i.after(ts(10)));
        assert!(i.before(ts(21)));
        assert!(!i.before(ts(20)));
        assert!(i.contains(ts(10)) && i.contains(ts(20)) && !i.contains(ts(21)));
    }

    #[test]
    fn inverted_and_negative_rejected() {
        assert!(TTInterval::new(ts(2), ts(1)).is_err());
        assert!(TTInterval::around(ts(0), Span::from_nanos(-1)).is_err());
    }

    #[test]
    fn saturates_outward() {
        let i = TTInterval::around(Timestamp::MAX, Span::from_secs(1)).unwrap();
        assert_eq!(i.latest(), Timestamp::MAX);
        let w = TTInterval::point(Timestamp::MIN).widen(Span::from_secs(1));
        assert_eq!(w.earliest(), Timestamp::MIN);
        assert_eq!(
            TTInterval::point(Timestamp::MAX).shift(Span::from_nanos(1)),
            None
        );
        let full = TTInterval::new(Timestamp::MIN, Timestamp::MAX).unwrap();
        assert_eq!(full.width(), Span::MAX);
    }

    #[test]
    fn odd_width_epsilon_rounds_up() {
        let i = TTInterval::new(ts(0), ts(3)).unwrap();
        assert_eq!(i.epsilon(), Span::from_nanos(2));
        assert_eq!(i.midpoint(), ts(1));
    }

    #[test]
    fn status_codes_round_trip() {
        for s in [
            ClockStatus::Synchronized,
            ClockStatus::Holdover,
            ClockStatus::Unsynchronized,
            ClockStatus::Disrupted,
        ] {
            assert_eq!(ClockStatus::from_u8(s.as_u8()), Some(s));
        }
        assert_eq!(ClockStatus::from_u8(0), None);
        assert_eq!(ClockStatus::from_u8(200), None);
        assert!(!ClockStatus::Disrupted.is_trustworthy());
        assert!(ClockStatus::Holdover.is_trustworthy());
    }

    #[test]
    fn serde_round_trips_and_rejects_inverted() {
        let i = TTInterval::new(ts(4), ts(5)).unwrap();
        let j = serde_json::to_string(&i).unwrap();
        assert_eq!(j, r#"{"earliest":4,"latest":5}"#);
        assert_eq!(serde_json::from_str::<TTInterval>(&j).unwrap(), i);
        assert!(serde_json::from_str::<TTInterval>(r#"{"earliest":5,"latest":4}"#).is_err());
        assert_eq!(
            serde_json::to_string(&ClockStatus::Holdover).unwrap(),
            r#""holdover""#
        );
    }

    fn arb_interval() -> impl Strategy<Value = TTInterval> {
        (any::<i64>(), any::<i64>()).prop_map(|(a, b)| {
            TTInterval::new(
                Timestamp::from_nanos(a.min(b)),
                Timestamp::from_nanos(a.max(b)),
            )
            .unwrap()
        })
    }

    proptest! {
        #[test]
        fn widen_contains_original(i in arb_interval(), by in any::<i64>()) {
            let w = i.widen(Span::from_nanos(by));
            prop_assert!(w.earliest() <= i.earliest() && w.latest() >= i.latest());
        }

        #[test]
        fn midpoint_epsilon_cover(i in arb_interval()) {
            // Avoid the one case where epsilon saturates (full range).
            prop_assume!(i.width() < Span::MAX);
            let c = i.midpoint();
            let cover = TTInterval::around(c, i.epsilon()).unwrap();
            prop_assert!(cover.earliest() <= i.earliest() && cover.latest() >= i.latest());
            prop_assert!(i.contains(c));
        }

        #[test]
        fn intersect_is_exact(a in arb_interval(), b in arb_interval(), t in any::<i64>()) {
            let t = Timestamp::from_nanos(t);
            match a.intersect(&b) {
                Some(x) => prop_assert_eq!(x.contains(t), a.contains(t) && b.contains(t)),
                None => prop_assert!(!(a.contains(t) && b.contains(t))),
            }
            let h = a.hull(&b);
            prop_assert!(!(a.contains(t) || b.contains(t)) || h.contains(t));
        }

        #[test]
        fn after_before_contains_partition(i in arb_interval(), t in any::<i64>()) {
            let t = Timestamp::from_nanos(t);
            let n = [i.after(t), i.before(t), i.contains(t)].iter().filter(|b| **b).count();
            prop_assert_eq!(n, 1);
        }

        #[test]
        fn shift_preserves_width(i in arb_interval(), by in -1_000_000_000_000i64..1_000_000_000_000) {
            if let Some(s) = i.shift(Span::from_nanos(by)) {
                prop_assert_eq!(s.width(), i.width());
            }
        }
    }
}
