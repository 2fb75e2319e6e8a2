//! Dimensionless frequency errors and drift bounds, in parts per 10¹² (ppt).
//!
//! One representation covers both quartz (200 ppm = 2×10⁸ ppt) and chip-scale atomic clocks
//! (1×10⁻¹¹ = 10 ppt) in integer arithmetic, so bounds are computed exactly and rounded outward.

use crate::time::Span;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Parts per 10¹² in one part.
pub const PPT_PER_UNIT: i128 = 1_000_000_000_000;

/// How far any raw clock (an undisciplined crystal, `CLOCK_MONOTONIC_RAW`) may run from true
/// time: 1000 ppm, ten times a poor crystal's tolerance. It stands in where nothing better is
/// known yet: before a host has measured its frequency, and to check that a master's start-up
/// pulses step with its local clock.
pub const RAW_CLOCK_MAX_RATE: Rate = Rate::from_ppm(1000);

/// A frequency error or drift rate in parts per 10¹² (1 ppm = 10⁶ ppt, 1 ppb = 10³ ppt).
///
/// Positive means "runs fast". As a *bound* it is used through its magnitude.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Rate(i64);

impl Rate {
    /// Zero frequency error.
    pub const ZERO: Rate = Rate(0);

    /// A rate of `ppt` parts per 10¹². Exact.
    pub const fn from_ppt(ppt: i64) -> Self {
        Rate(ppt)
    }
    /// A rate of `ppb` parts per 10⁹, saturating. Exact in range.
    pub const fn from_ppb(ppb: i64) -> Self {
        Rate(ppb.saturating_mul(1_000))
    }
    /// A rate of `ppm` parts per 10⁶, saturating. Exact in range.
    pub const fn from_ppm(ppm: i64) -> Self {
        Rate(ppm.saturating_mul(1_000_000))
    }
    /// A *bound* given in fractional ppm (e.g. from a config file), rounded **up** in magnitude
    /// to whole ppt so that the bound never shrinks. Returns `None` for NaN or infinities.
    pub fn bound_from_ppm_f64(ppm: f64) -> Option<Self> {
        if !ppm.is_finite() {
            return None;
        }
        let ppt = (ppm.abs() * 1e6).ceil();
        if ppt >= i64::MAX as f64 {
            return None;
        }
        #[allow(
            clippy::cast_possible_truncation,
            reason = "a whole, finite value in [0, 2⁶³) (checked above): exact"
        )]
        let ppt = ppt as i64;
        Some(Rate(ppt))
    }
    /// An *estimate* given in fractional ppm, rounded to the nearest ppt. `None` if not finite
    /// or out of range.
    pub fn estimate_from_ppm_f64(ppm: f64) -> Option<Self> {
        if !ppm.is_finite() {
            return None;
        }
        let ppt = (ppm * 1e6).round();
        if ppt.abs() >= i64::MAX as f64 {
            return None;
        }
        #[allow(
            clippy::cast_possible_truncation,
            reason = "a whole, finite value inside (−2⁶³, 2⁶³) (checked above): exact"
        )]
        let ppt = ppt as i64;
        Some(Rate(ppt))
    }
    /// Parts per 10¹². Exact.
    pub const fn as_ppt(self) -> i64 {
        self.0
    }
    /// Parts per 10⁶ as `f64` (display only).
    pub fn as_ppm_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
    /// The magnitude, saturating.
    pub const fn abs(self) -> Self {
        Rate(self.0.saturating_abs())
    }
    /// `self + o`, saturating.
    pub const fn saturating_add(self, o: Rate) -> Self {
        Rate(self.0.saturating_add(o.0))
    }

    /// The most phase error this rate can accumulate over `age`: `⌈|rate| × |age|⌉` ns.
    ///
    /// Rounded **up**, saturating at [`Span::MAX`]; never negative. Use it to grow a bound.
    pub fn bound_over(self, age: Span) -> Span {
        let prod = (self.0 as i128).abs() * (age.as_nanos() as i128).abs();
        let ns = (prod + PPT_PER_UNIT - 1) / PPT_PER_UNIT;
        Span::from_nanos(crate::time::saturate_i64(ns))
    }

    /// The phase this rate accumulates over `span`: `span × rate`, rounded toward −∞.
    ///
    /// Signed, for applying an *estimate*; the rounding error is below 1 ns and callers that
    /// turn the result into a bound must add 1 ns. Saturates at the span range.
    pub fn apply(self, span: Span) -> Span {
        let prod = self.0 as i128 * span.as_nanos() as i128;
        let ns = prod.div_euclid(PPT_PER_UNIT);
        Span::from_nanos(crate::time::saturate_i64(ns))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}ppm", self.as_ppm_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_rounds_up() {
        // 200 ppm over 30 s = 6 ms exactly.
        assert_eq!(
            Rate::from_ppm(200).bound_over(Span::from_secs(30)),
            Span::from_millis(6)
        );
        // 1 ppt over 1 ns = 1e-12 ns -> rounds up to 1 ns.
        assert_eq!(
            Rate::from_ppt(1).bound_over(Span::from_nanos(1)),
            Span::from_nanos(1)
        );
        assert_eq!(Rate::ZERO.bound_over(Span::from_secs(10)), Span::ZERO);
        // Negative ages and rates still give a positive bound.
        assert_eq!(
            Rate::from_ppm(-1).bound_over(Span::from_secs(-1)),
            Span::from_micros(1)
        );
        // Saturation.
        assert_eq!(Rate::from_ppt(i64::MAX).bound_over(Span::MAX), Span::MAX);
    }

    #[test]
    fn apply_floors() {
        assert_eq!(
            Rate::from_ppm(1).apply(Span::from_secs(1)),
            Span::from_micros(1)
        );
        assert_eq!(Rate::from_ppt(1).apply(Span::from_nanos(1)), Span::ZERO);
        assert_eq!(
            Rate::from_ppt(-1).apply(Span::from_nanos(1)),
            Span::from_nanos(-1)
        );
    }

    #[test]
    fn from_f64() {
        assert_eq!(
            Rate::bound_from_ppm_f64(0.000_000_01),
            Some(Rate::from_ppt(1))
        );
        assert_eq!(Rate::bound_from_ppm_f64(-200.0), Some(Rate::from_ppm(200)));
        assert_eq!(Rate::bound_from_ppm_f64(f64::NAN), None);
        assert_eq!(
            Rate::estimate_from_ppm_f64(-1.5),
            Some(Rate::from_ppt(-1_500_000))
        );
        assert_eq!(Rate::estimate_from_ppm_f64(f64::INFINITY), None);
    }
}
