//! The host clock model: a mapping from the host's raw monotonic clock to the timescale, with a
//! bound that grows with age.
//!
//! ```text
//!   estimate(raw) = ref_time + age + freq × age            age = raw − ref_raw
//!   ε(raw)        = eps_ref + ⌈drift_bound × |age|⌉ + 1 ns  (the 1 ns covers rounding of freq × age)
//!   interval(raw) = [estimate − ε, estimate + ε]
//! ```
//! `freq` and `drift_bound` are per *raw* nanosecond: `freq` is the estimated rate of the
//! timescale relative to the raw clock minus one, and the assumption is that the true rate stays
//! within `drift_bound` of `freq` from the reference on. Under that assumption the true
//! timescale at `raw` lies in `interval(raw)` for any `raw`, earlier or later than the
//! reference. ε is non-decreasing in `|age|`: a stale model only ever widens.

use crate::interval::TTInterval;
use crate::rate::Rate;
use crate::time::{RawReading, Span, Timestamp};
use serde::{Deserialize, Serialize};

/// A raw-clock → timescale mapping with its error bound. All times in ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockModel {
    /// The raw monotonic reading at which the model was fixed.
    #[serde(rename = "ref_raw_ns")]
    pub ref_raw: RawReading,
    /// The timescale instant (ns) estimated for `ref_raw_ns`.
    pub ref_time: Timestamp,
    /// Estimated timescale rate relative to the raw clock, minus one (ppt).
    pub freq: Rate,
    /// Error bound at the reference (ns, ≥ 0).
    pub eps_ref: Span,
    /// Bound on how far the true rate may wander from `freq` (ppt, magnitude used).
    pub drift_bound: Rate,
}

impl ClockModel {
    /// `raw − ref_raw` (ns), saturating.
    pub fn age_at(&self, raw: RawReading) -> Span {
        raw.since(self.ref_raw)
    }

    /// The point estimate of the timescale at raw reading `raw`, or `None` on overflow.
    pub fn estimate_at(&self, raw: RawReading) -> Option<Timestamp> {
        let age = Span::from_nanos(raw.as_nanos().checked_sub(self.ref_raw.as_nanos())?);
        self.ref_time
            .checked_add(age)?
            .checked_add(self.freq.apply(age))
    }

    /// ε at raw reading `raw` (ns): `eps_ref + ⌈drift × |age|⌉ + 1`, saturating at
    /// [`Span::MAX`]. Non-decreasing in `|age|`.
    pub fn epsilon_at(&self, raw: RawReading) -> Span {
        let age = self.age_at(raw).saturating_abs();
        self.eps_ref
            .max(Span::ZERO)
            .saturating_add(self.drift_bound.bound_over(age))
            .saturating_add(Span::from_nanos(1))
    }

    /// The interval at raw reading `raw`. If the estimate overflows the representable range
    /// the whole range is returned (an honest "unknown").
    pub fn interval_at(&self, raw: RawReading) -> TTInterval {
        match self.estimate_at(raw) {
            Some(c) => {
                TTInterval::around(c, self.epsilon_at(raw)).unwrap_or_else(|_| TTInterval::point(c))
            }
            None => TTInterval::new(Timestamp::MIN, Timestamp::MAX)
                .unwrap_or_else(|_| TTInterval::point(Timestamp::EPOCH)),
        }
    }

    /// The raw reading at which ε first exceeds `max_eps` (ns), looking forward from the
    /// reference; `None` if it never does within the `i64` range or already does at the
    /// reference. Used to compute a "void after" deadline.
    pub fn raw_when_epsilon_exceeds(&self, max_eps: Span) -> Option<RawReading> {
        let base = self
            .eps_ref
            .max(Span::ZERO)
            .saturating_add(Span::from_nanos(1));
        if base > max_eps {
            return None;
        }
        let d = self.drift_bound.abs().as_ppt() as i128;
        if d == 0 {
            return None;
        }
        // Largest age with ⌈d·age/1e12⌉ ≤ max − base  ⇔  d·age ≤ (max − base)·1e12.
        let budget = (max_eps.as_nanos() - base.as_nanos()) as i128 * 1_000_000_000_000;
        let age = budget / d + 1;
        i64::try_from(self.ref_raw.as_nanos() as i128 + age)
            .ok()
            .map(RawReading::from_nanos)
    }

    /// A raw reading in `(from, until]` at which `after(s)` holds, at most `resolution` after
    /// the first one (binary search; `earliest` never decreases with the raw reading while the
    /// rates are below one). Returns `until` if `after(s)` does not hold before it.
    pub fn raw_when_after(
        &self,
        s: Timestamp,
        from: RawReading,
        until: RawReading,
        resolution: Span,
    ) -> RawReading {
        let (mut lo, mut hi) = (from.as_nanos(), until.as_nanos());
        while hi - lo > resolution.as_nanos().max(1) {
            let mid = lo + (hi - lo) / 2;
            if self.interval_at(RawReading::from_nanos(mid)).after(s) {
                hi = mid
            } else {
                lo = mid
            }
        }
        RawReading::from_nanos(hi)
    }
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "test arithmetic on small, bounded values"
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn model() -> ClockModel {
        ClockModel {
            ref_raw: RawReading::from_nanos(1_000_000_000),
            ref_time: Timestamp::from_nanos(1_700_000_000_000_000_000),
            freq: Rate::from_ppm(10),
            eps_ref: Span::from_micros(50),
            drift_bound: Rate::from_ppm(200),
        }
    }

    /// The reading `ns` after the model's reference.
    fn at(m: &ClockModel, ns: i64) -> RawReading {
        m.ref_raw.add(Span::from_nanos(ns))
    }

    #[test]
    fn raw_when_after_finds_the_first_reading_to_the_resolution() {
        let m = model();
        let r0 = at(&m, 1_000_000);
        let s = m.interval_at(r0).latest();
        let ns = Span::from_nanos;
        let hi = m.raw_when_after(s, r0, r0.add(ns(10_000_000_000)), ns(1));
        assert!(m.interval_at(hi).after(s));
        assert!(!m.interval_at(hi.add(ns(-1))).after(s));
        let coarse = m.raw_when_after(s, r0, r0.add(ns(10_000_000_000)), ns(1_000));
        assert!(m.interval_at(coarse).after(s) && coarse >= hi && coarse.since(hi) <= ns(1_000));
        // Never within the window: the end of the window.
        assert_eq!(
            m.raw_when_after(s, r0, r0.add(ns(10)), ns(1)),
            r0.add(ns(10))
        );
    }

    #[test]
    fn spanner_sawtooth_numbers() {
        let m = ClockModel {
            eps_ref: Span::from_millis(1),
            ..model()
        };
        // 30 s after a sync at 200 ppm: ε = 1 ms + 6 ms (+1 ns guard).
        let raw = at(&m, 30_000_000_000);
        assert_eq!(m.epsilon_at(raw), Span::from_nanos(7_000_001));
        // Frequency applied: 10 ppm over 30 s = 300 µs.
        assert_eq!(
            m.estimate_at(raw).unwrap().as_nanos(),
            m.ref_time.as_nanos() + 30_000_000_000 + 300_000
        );
    }

    #[test]
    fn overflow_is_unbounded() {
        let m = ClockModel {
            ref_time: Timestamp::MAX,
            ..model()
        };
        let i = m.interval_at(RawReading::from_nanos(i64::MAX));
        assert_eq!((i.earliest(), i.latest()), (Timestamp::MIN, Timestamp::MAX));
    }

    #[test]
    fn void_deadline() {
        let m = model();
        let raw = m.raw_when_epsilon_exceeds(Span::from_millis(1)).unwrap();
        assert!(m.epsilon_at(raw) > Span::from_millis(1));
        assert!(m.epsilon_at(raw.add(Span::from_nanos(-1))) <= Span::from_millis(1));
        assert_eq!(m.raw_when_epsilon_exceeds(Span::from_micros(10)), None);
        let no_drift = ClockModel {
            drift_bound: Rate::ZERO,
            ..model()
        };
        assert_eq!(
            no_drift.raw_when_epsilon_exceeds(Span::from_millis(1)),
            None
        );
    }

    proptest! {
        // A stale model widens, never narrows.
        #[test]
        fn epsilon_monotone_in_age(a in 0i64..1_000_000_000_000_000, b in 0i64..1_000_000_000_000_000) {
            let m = model();
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(m.epsilon_at(at(&m, lo)) <= m.epsilon_at(at(&m, hi)));
            prop_assert!(m.epsilon_at(at(&m, -lo)) <= m.epsilon_at(at(&m, -hi)));
        }

        // Any true clock whose rate stays within the bound of the estimate, and whose error at
        // the reference is within eps_ref, lies inside the interval at every later reading.
        #[test]
        fn truth_inside_under_assumptions(
            ref_err in -50_000i64..=50_000,
            rate_err_ppt in -200_000_000i64..=200_000_000,
            age in -100_000_000_000i64..100_000_000_000,
        ) {
            let m = model();
            let true_at_ref = m.ref_time.as_nanos() + ref_err;
            let true_rate = m.freq.as_ppt() + rate_err_ppt;
            let truth = true_at_ref + age + (age as i128 * true_rate as i128 / 1_000_000_000_000) as i64;
            prop_assert!(m.interval_at(at(&m, age)).contains(Timestamp::from_nanos(truth)));
        }
    }
}
