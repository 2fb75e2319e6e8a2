//! Calibrating the CPU's time-stamp counter (TSC) against the raw clock, with an honest bound.
//!
//! When the kernel times with the counter (clocksource `tsc`), `CLOCK_MONOTONIC_RAW` is a fixed
//! linear function of it: the kernel converts cycles with a multiplier it never adjusts and
//! carries the sub-nanosecond remainder from tick to tick. So
//! `raw(tsc) = raw(tsc₀) + (tsc − tsc₀) × k` with one constant `k` (ns per tick), and two
//! bracketed pairs far apart pin `k` down: the true `k` is within
//! `(Δraw ± (h₀ + h₁)) / Δtsc` of the two pairs' bracket half-widths `h`. The relative error
//! `(h₀ + h₁) / Δraw` falls as the baseline grows (100 ns of brackets over 100 s: 1 ppb).
//!
//! What breaks the linearity — a suspend that resets the counter, a clocksource change, a
//! hypervisor rescaling the counter — shows as a pair off the line by more than the bound:
//! [`TscCalibration::add`] refuses it, and the caller starts over (and stops publishing the
//! mapping until the new baseline is long enough).

use crate::{Rate, TTInterval};
use std::fmt;

/// A counter reading and the raw clock at the same instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscPair {
    /// The counter (ticks).
    pub tsc: u64,
    /// The raw clock (ns): the middle of the bracket.
    pub raw: i64,
    /// How far the raw clock at the counter read may be from `raw` (ns, ≥ 1).
    pub half_ns: i64,
}

impl TscPair {
    /// The pair for a counter read `tsc` between raw reads `before` and `after`. The half-width
    /// covers half the bracket rounded up and one more nanosecond for each read's truncation
    /// (the kernel's exact raw time is up to 1 ns past the integer it returns).
    pub fn bracketed(tsc: u64, before: i64, after: i64) -> TscPair {
        let w = after.saturating_sub(before).max(0);
        TscPair {
            tsc,
            raw: before.saturating_add(w / 2),
            half_ns: w / 2 + 2,
        }
    }
}

/// The counter's rate against the raw clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TscRate {
    /// Raw nanoseconds per counter tick (the estimate).
    pub ns_per_tick: f64,
    /// Bound on the estimate's relative error: `|k_true − k| ≤ rel_err × k`.
    pub rel_err: f64,
}

/// A pair off the calibrated line: the counter and the raw clock are no longer one linear
/// function (a suspend, a clocksource change, a rescaled counter).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TscMismatch {
    /// How far the pair's raw reading is from the line's prediction (ns).
    pub off_ns: f64,
    /// What the calibration allowed (ns).
    pub allowed_ns: f64,
}

impl fmt::Display for TscMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the time-stamp counter is {:.0} ns off its calibrated line (allowed {:.0} ns)",
            self.off_ns, self.allowed_ns
        )
    }
}

/// Shortest baseline (raw ns) over which a rate is given: 1 s (about 0.1 ppm of bracket error
/// on a quiet host).
pub const MIN_BASELINE_NS: i64 = 1_000_000_000;

/// Pairs with a wider bracket than this (ns) are not taken as the calibration's end point
/// (they still are checked against the line).
pub const MAX_HALF_NS: i64 = 5_000;

/// The counter's calibration: an anchor pair and the latest good pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscCalibration {
    anchor: TscPair,
    last: TscPair,
}

impl TscCalibration {
    /// A calibration starting at `p` (no rate until the baseline is [`MIN_BASELINE_NS`]).
    pub fn start(p: TscPair) -> TscCalibration {
        TscCalibration { anchor: p, last: p }
    }

    /// The anchor pair.
    pub fn anchor(&self) -> TscPair {
        self.anchor
    }

    /// The rate, once the baseline is long enough.
    pub fn rate(&self) -> Option<TscRate> {
        let d_raw = self.last.raw.saturating_sub(self.anchor.raw);
        let d_tsc = self.last.tsc.checked_sub(self.anchor.tsc)?;
        if d_raw < MIN_BASELINE_NS || d_tsc == 0 {
            return None;
        }
        let h = (self.anchor.half_ns + self.last.half_ns) as f64;
        // Every quantity is far below 2⁵³, so each f64 operation is exact to 2⁻⁵² relative;
        // 1e-12 covers them all.
        let rel_err = h / (d_raw as f64 - h) + 1e-12;
        (rel_err < 0.01).then(|| TscRate {
            ns_per_tick: d_raw as f64 / d_tsc as f64,
            rel_err,
        })
    }

    /// Checks `p` against the line and, if it is on it, extends the baseline to it. A pair
    /// earlier than the last one, or off the line by more than both brackets and the rate's
    /// error allow, is refused: the caller should start over.
    pub fn add(&mut self, p: TscPair) -> Result<(), TscMismatch> {
        if p.tsc < self.last.tsc || p.raw < self.last.raw {
            return Err(TscMismatch {
                off_ns: (self.last.raw - p.raw) as f64,
                allowed_ns: 0.0,
            });
        }
        if let Some(r) = self.rate() {
            let ticks = (p.tsc - self.anchor.tsc) as f64;
            let predicted = self.anchor.raw as f64 + ticks * r.ns_per_tick;
            let off = (p.raw as f64 - predicted).abs();
            let allowed =
                (self.anchor.half_ns + p.half_ns) as f64 + ticks * r.ns_per_tick * r.rel_err + 2.0;
            if off > allowed {
                return Err(TscMismatch {
                    off_ns: off,
                    allowed_ns: allowed,
                });
            }
        }
        // A narrower pair early on makes a better anchor.
        if p.half_ns < self.anchor.half_ns && p.raw - self.anchor.raw < MIN_BASELINE_NS {
            self.anchor = p;
        }
        if p.half_ns <= MAX_HALF_NS {
            self.last = p;
        }
        Ok(())
    }
}

/// ClockBound 3's (`shm1`, layout version 3) view of our interval: a counter value, the time
/// at it, and how time and its bound grow per tick. Its client computes
/// `now = as_of + (tsc − as_of_tsc) × period` and
/// `bound = bound_ns + D × max_drift_ppb / 10⁹ + D × period_err` with `D` that elapsed time, and
/// reads no system clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CbV3 {
    /// The counter at the instant.
    pub as_of_tsc: u64,
    /// Our estimate at the instant (timescale ns).
    pub as_of_ns: i64,
    /// Bound on |true time − `as_of_ns`| (ns).
    pub bound_ns: i64,
    /// Seconds of timescale per counter tick (the estimate).
    pub period_s: f64,
    /// Growth of the bound from the rate's error (dimensionless).
    pub period_err: f64,
    /// Growth of the bound from the oscillator's wander (ppb).
    pub max_drift_ppb: u32,
}

/// What [`cb_v3`] is computed from, all at one instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CbV3Inputs {
    /// Our interval at the pair's raw reading (`pair.raw`).
    pub interval: TTInterval,
    /// The counter pair.
    pub pair: TscPair,
    /// The counter's rate against the raw clock.
    pub rate: TscRate,
    /// The model's frequency estimate (raw clock against the timescale).
    pub freq: Rate,
    /// The model's drift bound.
    pub drift: Rate,
}

/// The segment's fields for `i`, containing true time at every later counter value whenever our
/// interval does at the raw clock's.
///
/// With `f` the frequency, `w` the drift bound, `k` the counter's rate with relative error `e`,
/// and `h` the pair's half-width: true time at a counter `Δ` ticks later is within
/// `ε + h(1 + |f| + w) + Δk[e(1 + |f|) + w(1 + e)]` of `as_of + Δk(1 + f)`; the client's
/// elapsed time is `D = Δk(1 + f) ≥ Δk(1 − |f|)`, so dividing both rates by `1 − |f|` makes
/// its growth cover ours. Two nanoseconds pay for the client truncating `now` and the bound to
/// integers, one for our midpoint's rounding; `1e-12` of `period_err` for the fixed-point
/// encoding of the period and the client's `f64` products.
#[allow(
    clippy::cast_possible_truncation,
    reason = "b0 is ceiled (an f64 → i128 cast saturates, then saturate_i64), the drift is clamped into u32 first"
)]
pub fn cb_v3(i: &CbV3Inputs) -> CbV3 {
    let f = (i.freq.as_ppt() as f64 * 1e-12).abs();
    let w = i.drift.abs().as_ppt() as f64 * 1e-12;
    let e = i.rate.rel_err;
    let h = i.pair.half_ns as f64;
    let b0 = i.interval.epsilon().as_nanos() as f64 + (h * (1.0 + f + w)).ceil() + 3.0;
    let shrink = 1.0 - f;
    let drift_ppb = (w * (1.0 + e) / shrink * 1e9).ceil() + 1.0;
    CbV3 {
        as_of_tsc: i.pair.tsc,
        as_of_ns: i.interval.midpoint().as_nanos(),
        bound_ns: crate::time::saturate_i64(b0 as i128),
        period_s: i.rate.ns_per_tick * (1.0 + i.freq.as_ppt() as f64 * 1e-12) * 1e-9,
        period_err: e * (1.0 + f) / shrink + 1e-12,
        max_drift_ppb: drift_ppb.clamp(0.0, 999_999_999.0) as u32,
    }
}

/// The page's counter block: our interval as a function of the counter, for readers that read
/// the counter instead of the raw clock (PROTOCOL.md "Counter path"). Valid for counter values
/// `tsc_ref ≤ tsc < tsc_ref + until_ticks`; the status throughout is the page's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TscMap {
    /// The counter at the reference.
    pub tsc_ref: u64,
    /// Our estimate at the reference (timescale ns).
    pub base_ns: i64,
    /// Timescale ns per tick, `k(1 + f)`, as fixed point with 62 fraction bits (rounded).
    pub mult_q62: u64,
    /// ε at the reference (ns), with the pair's and the arithmetic's margins.
    pub eps0_ns: i64,
    /// ε's growth per tick, fixed point with 62 fraction bits (rounded up).
    pub grow_q62: u64,
    /// The window (ticks): 0 means no counter path.
    pub until_ticks: u64,
}

/// Longest counter window (ticks): 2⁴⁴ (≈ 1.6 h at 3 GHz) keeps `age × mult` under 2¹²⁶.
pub const MAX_UNTIL_TICKS: u64 = 1 << 44;

/// `2⁶²` as an `f64`.
const Q62: f64 = (1u64 << 62) as f64;

impl TscMap {
    /// The interval at counter value `tsc`, or `None` outside the window (then read the raw
    /// clock). Contains the model's interval at the raw clock's reading for that counter value,
    /// whatever that reading is within the calibration's bounds (see [`tsc_map`]).
    #[inline(always)]
    #[allow(
        clippy::cast_possible_truncation,
        reason = "inside the window (< 2⁴⁴ ticks, mult < 2⁶⁴) each product shifted is < 2⁴⁶; a corrupted page wraps, never panics, and an inverted interval is refused"
    )]
    pub fn at(&self, tsc: u64) -> Option<TTInterval> {
        let age = tsc.wrapping_sub(self.tsc_ref);
        // One unsigned compare rejects a counter behind the reference (a reset) and one past
        // the window (and a zero window).
        if age >= self.until_ticks {
            return None;
        }
        let d = ((age as u128 * self.mult_q62 as u128) >> 62) as i64;
        let g = ((age as u128 * self.grow_q62 as u128) >> 62) as i64;
        let est = self.base_ns.wrapping_add(d);
        let eps = self.eps0_ns.wrapping_add(g).wrapping_add(1);
        TTInterval::new(
            crate::Timestamp::from_nanos(est.wrapping_sub(eps)),
            crate::Timestamp::from_nanos(est.wrapping_add(eps)),
        )
        .ok()
    }
}

/// The counter block for `i`, valid until the raw clock reaches `until_raw` (the earliest of
/// the page's void and holdover deadlines) and while its ε is at most `max_eps_ns`, or `None` when a value is outside the range
/// the fixed-point arithmetic is proven for.
///
/// Same bound as [`cb_v3`], per tick instead of per client second: true time at a counter `Δ`
/// ticks past the pair is within `ε + h(1 + |f| + w) + Δk[e(1 + |f|) + w(1 + e)]` of
/// `est + Δk(1 + f)`. The fixed-point `mult` is off by at most 2⁻⁶³ ns per tick and the floors
/// by 1 ns each, so `eps0` carries 3 ns and [`TscMap::at`] adds 1. The window ends before the
/// raw clock can reach `until_raw`: the raw reading at `Δ` is at most `raw + h + Δk(1 + e)`.
#[allow(
    clippy::cast_possible_truncation,
    reason = "every f64 → integer cast is of a value checked to be in range first"
)]
pub fn tsc_map(i: &CbV3Inputs, until_raw: i64, max_eps_ns: i64) -> Option<TscMap> {
    let f = (i.freq.as_ppt() as f64 * 1e-12).abs();
    let w = i.drift.abs().as_ppt() as f64 * 1e-12;
    let (k, e) = (i.rate.ns_per_tick, i.rate.rel_err);
    let h = i.pair.half_ns as f64;
    let mult = k * (1.0 + i.freq.as_ppt() as f64 * 1e-12);
    let grow = k * (e * (1.0 + f) + w * (1.0 + e));
    let eps0 = i.interval.epsilon().as_nanos() as f64 + (h * (1.0 + f + w)).ceil() + 3.0;
    let room = until_raw as f64 - i.pair.raw as f64 - h;
    if !(k > 0.0 && k < 3.0 && f < 0.01 && e < 0.01 && eps0 < 2f64.powi(50) && room > 0.0) {
        return None;
    }
    // The f64 products carry a relative error of 2⁻⁵², far below the 2⁻³⁰ added to `grow`.
    let grow_q = (grow * (1.0 + 2f64.powi(-30)) * Q62).ceil() + 1.0;
    // The window also ends before this path's ε (eps0 + 1 + growth) passes max-epsilon.
    let eps_room = max_eps_ns as f64 - eps0 - 2.0;
    if eps_room <= 0.0 {
        return None;
    }
    let until = (room / (k * (1.0 + e)))
        .min(eps_room * Q62 / grow_q)
        .floor()
        .min(MAX_UNTIL_TICKS as f64) as u64;
    Some(TscMap {
        tsc_ref: i.pair.tsc,
        base_ns: i.interval.midpoint().as_nanos(),
        mult_q62: (mult * Q62).round() as u64,
        eps0_ns: eps0 as i64,
        grow_q62: grow_q as u64,
        until_ticks: until,
    })
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "the tests' own arithmetic, on values far inside every range"
)]
mod tests {
    use super::*;
    use crate::Timestamp;
    use proptest::prelude::*;

    /// A counter at `ghz` GHz against raw, read with brackets of `w` ns.
    fn pair_at(raw: i64, ghz: f64, w: i64) -> TscPair {
        let tsc = (raw as f64 * ghz) as u64 + 1_000_000;
        TscPair::bracketed(tsc, raw - w / 2, raw + w - w / 2)
    }

    #[test]
    fn no_rate_before_a_second_then_the_rate_within_its_bound() {
        let mut c = TscCalibration::start(pair_at(1_000_000_000, 2.5, 60));
        c.add(pair_at(1_500_000_000, 2.5, 60)).unwrap();
        assert!(c.rate().is_none());
        c.add(pair_at(11_000_000_000, 2.5, 60)).unwrap();
        let r = c.rate().unwrap();
        assert!((r.ns_per_tick - 0.4).abs() <= 0.4 * r.rel_err, "{r:?}");
        // 2 × 32 ns of bracket over 10 s.
        assert!(r.rel_err < 1e-8, "{r:?}");
    }

    #[test]
    fn a_pair_off_the_line_is_refused_and_a_backwards_one_too() {
        let mut c = TscCalibration::start(pair_at(1_000_000_000, 3.0, 40));
        c.add(pair_at(3_000_000_000, 3.0, 40)).unwrap();
        // The raw clock 10 µs away from where the counter says: a disruption.
        let mut p = pair_at(4_000_000_000, 3.0, 40);
        p.raw += 10_000;
        let e = c.add(p).unwrap_err();
        assert!(e.off_ns > 9_000.0 && e.allowed_ns < 1_000.0, "{e:?}");
        // A counter reset (a suspend that restarted it): earlier than the last.
        let mut p = pair_at(5_000_000_000, 3.0, 40);
        p.tsc = 5;
        assert!(c.add(p).is_err());
        // The honest pair still goes in.
        c.add(pair_at(5_000_000_000, 3.0, 40)).unwrap();
    }

    /// A factor in [−1, 1], at either end a third of the time each: the bound is tight at the
    /// corners, where every error adds up.
    fn edge() -> impl Strategy<Value = f64> {
        prop_oneof![Just(-1.0), Just(1.0), -1.0f64..1.0]
    }

    /// A world for the mapping's properties: our interval at a pair, the counter's rate with its
    /// error, the model's frequency and drift — and where, within every bound, the truth is:
    /// the pair's true raw (`h_off`), the counter's true rate (`k_off`), the raw clock's true
    /// rate (`wander`), truth inside our interval (`truth_off`); `ticks` after the pair.
    #[derive(Debug, Clone)]
    struct World {
        inputs: CbV3Inputs,
        h_off: f64,
        k_off: f64,
        wander: f64,
        truth_off: f64,
        ticks: u64,
    }

    impl World {
        /// True time (ns) and the raw clock's true reading `ticks` after the pair.
        fn truth(&self) -> (f64, f64) {
            let i = &self.inputs;
            let (eps, h) = (
                i.interval.epsilon().as_nanos() as f64,
                i.pair.half_ns as f64,
            );
            let (f, w) = (
                i.freq.as_ppt() as f64 * 1e-12,
                i.drift.as_ppt() as f64 * 1e-12,
            );
            let raw0 = self.h_off * h;
            let k_true = i.rate.ns_per_tick * (1.0 + self.k_off * i.rate.rel_err);
            // Truth at the pair's true raw is within ε (grown to there) of the estimate.
            let truth0 = i.interval.midpoint().as_nanos() as f64
                + raw0 * (1.0 + f)
                + self.truth_off * (eps + w * raw0.abs());
            let d_raw = self.ticks as f64 * k_true - raw0;
            (
                truth0 + d_raw * (1.0 + f + self.wander * w),
                i.pair.raw as f64 + raw0 + d_raw,
            )
        }
    }

    fn world() -> impl Strategy<Value = World> {
        (
            (
                0i64..100_000,
                -100_000i64..100_000,
                0i64..50_000,
                0.0f64..1e-6,
                1i64..500,
            ),
            (edge(), edge(), edge(), edge(), 0u64..20_000_000_000_000),
        )
            .prop_map(
                |(
                    (eps, freq_ppb, drift_ppb, rel_err, h),
                    (h_off, k_off, wander, truth_off, ticks),
                )| {
                    // Near zero, so the test's own f64 arithmetic is exact to well under 1 ns.
                    let mid = 1_000_000_000i64;
                    World {
                        inputs: CbV3Inputs {
                            interval: TTInterval::around(
                                Timestamp::from_nanos(mid),
                                crate::Span::from_nanos(eps),
                            )
                            .unwrap(),
                            pair: TscPair {
                                tsc: 1 << 40,
                                raw: 9_000_000_000,
                                half_ns: h,
                            },
                            rate: TscRate {
                                ns_per_tick: 0.37,
                                rel_err,
                            },
                            freq: Rate::from_ppb(freq_ppb),
                            drift: Rate::from_ppb(drift_ppb),
                        },
                        h_off,
                        k_off,
                        wander,
                        truth_off,
                        ticks,
                    }
                },
            )
    }

    proptest! {
        /// The bound: for any counter rate, bracket widths and baseline, the true rate is
        /// within `rel_err` of the estimate.
        #[test]
        fn the_true_rate_is_inside_the_bound(
            ghz in 0.5f64..5.0,
            w0 in 0i64..2_000,
            w1 in 0i64..2_000,
            j0 in 0.0f64..1.0,
            j1 in 0.0f64..1.0,
            span_ms in 1_000i64..100_000,
        ) {
            // The true raw at each counter read is anywhere in its bracket.
            let k = 1.0 / ghz;
            let t0 = 1_000_000u64;
            let t1 = t0 + ((span_ms * 1_000_000) as f64 * ghz) as u64;
            let raw = |t: u64| 5_000_000_000.0 + (t - t0) as f64 * k;
            let br = |t: u64, w: i64, j: f64| {
                let r = raw(t);
                let before = (r - j * w as f64).floor() as i64;
                TscPair::bracketed(t, before, before + w)
            };
            let mut c = TscCalibration::start(br(t0, w0, j0));
            c.add(br(t1, w1, j1)).unwrap();
            if let Some(r) = c.rate() {
                prop_assert!((r.ns_per_tick - k).abs() <= r.rel_err * r.ns_per_tick * 1.000_001,
                    "{r:?} vs {k}");
            }
        }

        /// The page's counter block read through [`TscMap::at`]: truth inside at every counter
        /// value in the window (which ends before `until_raw` and max-epsilon), `None` outside it.
        #[test]
        fn the_counter_block_contains_truth(w in world()) {
            let until_raw = w.inputs.pair.raw + 3_000_000_000_000;
            let max_eps = 60_000_000;
            let m = tsc_map(&w.inputs, until_raw, max_eps).unwrap();
            let (truth, raw_then) = w.truth();
            match m.at(w.inputs.pair.tsc + w.ticks) {
                Some(iv) => {
                    prop_assert!(raw_then < until_raw as f64, "window past until_raw");
                    prop_assert!(iv.epsilon().as_nanos() <= max_eps, "ε past max-epsilon");
                    prop_assert!(iv.earliest().as_nanos() as f64 <= truth
                        && truth <= iv.latest().as_nanos() as f64,
                        "{iv} misses {truth} ({m:?})");
                }
                None => prop_assert!(w.ticks >= m.until_ticks),
            }
            // A counter behind the reference (a reset) is refused.
            prop_assert!(m.at(w.inputs.pair.tsc - 1).is_none());
        }

        /// ClockBound 3's projection contains true time at every later counter value (the
        /// client's arithmetic done here as its source describes it).
        #[test]
        fn clockbound3_projection_contains_truth(w in world()) {
            let v = cb_v3(&w.inputs);
            let (truth, _) = w.truth();
            let dur_s = w.ticks as f64 * v.period_s;
            let now = v.as_of_ns + (dur_s * 1e9) as i64;
            let bound = (v.bound_ns as f64 + dur_s * v.max_drift_ppb as f64
                + dur_s * 1e9 * v.period_err) as i64;
            prop_assert!((now - bound) as f64 <= truth && truth <= (now + bound) as f64,
                "[{}, {}] misses {truth} ({v:?})", now - bound, now + bound);
        }
    }
}
