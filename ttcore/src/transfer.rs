//! Two-way time transfer: offset, delay and the honest offset interval from four timestamps.
//!
//! ```text
//!   client  t1 ──────request──────▶ t2  master
//!   client  t4 ◀─────response────── t3  master
//! ```
//! `t1`, `t4` are read on the client's clock, `t2`, `t3` on the master's timescale.
//! The *offset* is `master − client`: what must be added to a client reading to get the
//! timescale. Network delays are unknown but non-negative, so from causality alone
//! (request received after it was sent, response after the master sent it):
//!
//! ```text
//!   t3 − t4 − ε_m  ≤  offset  ≤  t2 − t1 + ε_m
//! ```
//! which is exactly `θ ± (δ/2 + ε_m)` with `θ = ((t2−t1)+(t3−t4))/2` and
//! `δ = (t4−t1)−(t3−t2)`, for *any* split of the delay between the two directions.
//! The interval is computed from the bounds directly (no halving, so no rounding), then widened
//! by the client's drift bound over the round trip, because the offset moves while the exchange
//! is in flight; the result describes the offset at the client's reading `t4`.

use crate::rate::Rate;
use crate::time::{Span, Timestamp};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The four timestamps of one exchange (ns).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncTimestamps {
    /// Client clock when the request left.
    pub t1: Timestamp,
    /// Master timescale when the request arrived.
    pub t2: Timestamp,
    /// Master timescale when the response left.
    pub t3: Timestamp,
    /// Client clock when the response arrived.
    pub t4: Timestamp,
}

/// An interval of offsets `[lo, hi]` in ns (master − client), closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OffsetInterval {
    /// Smallest possible offset (ns).
    pub lo: Span,
    /// Largest possible offset (ns). Always `>= lo`.
    pub hi: Span,
}

impl OffsetInterval {
    /// `[lo, hi]`, or `None` if `lo > hi`.
    pub fn new(lo: Span, hi: Span) -> Option<Self> {
        (lo <= hi).then_some(OffsetInterval { lo, hi })
    }
    /// Half the width, rounded up (ns, ≥ 0).
    pub fn radius(&self) -> Span {
        self.hi.saturating_sub(self.lo).half_ceil()
    }
    /// The midpoint, rounded toward −∞ (ns).
    pub fn midpoint(&self) -> Span {
        let s = self.lo.as_nanos() as i128 + self.hi.as_nanos() as i128;
        Span::from_nanos(crate::time::saturate_i64(s.div_euclid(2)))
    }
    /// True iff `lo <= x <= hi`.
    pub fn contains(&self, x: Span) -> bool {
        self.lo <= x && x <= self.hi
    }
    /// Grown by `by` (≥ 0) on both sides, saturating outward.
    pub fn widen(&self, by: Span) -> Self {
        let by = by.max(Span::ZERO);
        OffsetInterval {
            lo: self.lo.saturating_sub(by),
            hi: self.hi.saturating_add(by),
        }
    }
}

/// The outcome of one exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncMeasurement {
    /// θ: the midpoint offset estimate (ns, master − client), rounded toward −∞.
    pub offset: Span,
    /// δ: the round-trip delay excluding the master's residence time (ns, may be 0).
    pub delay: Span,
    /// Honest bounds on the offset at client reading `t4`:
    /// `[t3−t4−ε_m−drift, t2−t1+ε_m+drift]` ⊇ `θ ± (δ/2 + ε_m)`.
    pub bounds: OffsetInterval,
    /// The client reading the bounds refer to (`t4`).
    pub at: Timestamp,
}

/// Why an exchange was discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TransferError {
    /// `t4 < t1`: the client's clock went backwards during the exchange.
    #[error("client clock went backwards during the exchange (t4 < t1)")]
    ClientClockBackwards,
    /// `t3 < t2`: the master's timescale went backwards while it handled the request.
    #[error("master timescale went backwards (t3 < t2)")]
    MasterClockBackwards,
    /// The round trip is shorter than the master's residence time by more than both error
    /// bounds allow: one of the clocks is wrong beyond its stated ε.
    #[error("inconsistent exchange: delay {delay} is negative beyond the error bounds")]
    NegativeDelay {
        /// δ (ns).
        delay: Span,
    },
    /// A timestamp difference overflowed (garbage timestamps).
    #[error("timestamp arithmetic overflowed")]
    Overflow,
    /// ε_master was negative (a corrupt or malicious response).
    #[error("negative master error bound {0}")]
    NegativeEpsilon(Span),
}

/// Computes offset, delay and the honest offset interval of one exchange.
///
/// * `eps_master` — the master's published error bound at `t2`/`t3` (ns, ≥ 0);
/// * `client_drift` — the bound on the client clock's frequency error during the exchange; the
///   interval is widened by `⌈client_drift × (t4 − t1)⌉` plus 1 ns, to cover the offset moving
///   between `t1` and `t4`.
///
/// Guarantee: if every delay is ≥ 0, the master's timescale is within `eps_master` of true time
/// at `t2` and `t3`, and the client's frequency error is within `client_drift`, then the true
/// offset at `t4` lies in `bounds`.
pub fn measure(
    ts: &SyncTimestamps,
    eps_master: Span,
    client_drift: Rate,
) -> Result<SyncMeasurement, TransferError> {
    if eps_master.is_negative() {
        return Err(TransferError::NegativeEpsilon(eps_master));
    }
    let rtt = ts.t4.checked_since(ts.t1).ok_or(TransferError::Overflow)?;
    let residence = ts.t3.checked_since(ts.t2).ok_or(TransferError::Overflow)?;
    if rtt.is_negative() {
        return Err(TransferError::ClientClockBackwards);
    }
    if residence.is_negative() {
        return Err(TransferError::MasterClockBackwards);
    }
    let up = ts.t2.checked_since(ts.t1).ok_or(TransferError::Overflow)?;
    let down = ts.t3.checked_since(ts.t4).ok_or(TransferError::Overflow)?;
    let delay = rtt.checked_sub(residence).ok_or(TransferError::Overflow)?;
    let sum = up.as_nanos() as i128 + down.as_nanos() as i128;
    let offset = Span::from_nanos(crate::time::saturate_i64(sum.div_euclid(2)));
    let drift = client_drift
        .bound_over(rtt)
        .saturating_add(Span::from_nanos(1));
    let lo = down.saturating_sub(eps_master).saturating_sub(drift);
    let hi = up.saturating_add(eps_master).saturating_add(drift);
    let bounds = OffsetInterval::new(lo, hi).ok_or(TransferError::NegativeDelay { delay })?;
    Ok(SyncMeasurement {
        offset,
        delay,
        bounds,
        at: ts.t4,
    })
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "test arithmetic on small, bounded values"
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(n: i64) -> Timestamp {
        Timestamp::from_nanos(n)
    }

    #[test]
    fn textbook_symmetric() {
        // Client 1 ms behind, 100 µs each way, 10 µs residence.
        let ts = SyncTimestamps {
            t1: t(0),
            t2: t(1_100_000),
            t3: t(1_110_000),
            t4: t(210_000),
        };
        let m = measure(&ts, Span::from_micros(5), Rate::ZERO).unwrap();
        assert_eq!(m.offset, Span::from_millis(1));
        assert_eq!(m.delay, Span::from_micros(200));
        // θ ± (δ/2 + ε) = 1 ms ± 105 µs, plus 1 ns rounding guard.
        assert_eq!(m.bounds.lo, Span::from_nanos(1_000_000 - 105_000 - 1));
        assert_eq!(m.bounds.hi, Span::from_nanos(1_000_000 + 105_000 + 1));
    }

    #[test]
    fn drift_widens_by_rtt() {
        let ts = SyncTimestamps {
            t1: t(0),
            t2: t(500_000),
            t3: t(500_000),
            t4: t(1_000_000),
        };
        let m = measure(&ts, Span::ZERO, Rate::from_ppm(200)).unwrap();
        // 200 ppm over 1 ms = 200 ns, +1 guard.
        assert_eq!(m.bounds.lo, Span::from_nanos(-500_000 - 201));
        assert_eq!(m.bounds.hi, Span::from_nanos(500_000 + 201));
    }

    #[test]
    fn broken_exchanges_rejected() {
        let back = SyncTimestamps {
            t1: t(10),
            t2: t(5),
            t3: t(6),
            t4: t(9),
        };
        assert_eq!(
            measure(&back, Span::ZERO, Rate::ZERO),
            Err(TransferError::ClientClockBackwards)
        );
        let mback = SyncTimestamps {
            t1: t(0),
            t2: t(6),
            t3: t(5),
            t4: t(9),
        };
        assert_eq!(
            measure(&mback, Span::ZERO, Rate::ZERO),
            Err(TransferError::MasterClockBackwards)
        );
        // Residence 100 ns but rtt 10 ns: impossible unless ε covers it.
        let neg = SyncTimestamps {
            t1: t(0),
            t2: t(0),
            t3: t(100),
            t4: t(10),
        };
        assert!(matches!(
            measure(&neg, Span::ZERO, Rate::ZERO),
            Err(TransferError::NegativeDelay { .. })
        ));
        assert!(measure(&neg, Span::from_nanos(50), Rate::ZERO).is_ok());
        assert_eq!(
            measure(&neg, Span::from_nanos(-1), Rate::ZERO),
            Err(TransferError::NegativeEpsilon(Span::from_nanos(-1)))
        );
        let huge = SyncTimestamps {
            t1: Timestamp::MIN,
            t2: t(0),
            t3: t(0),
            t4: Timestamp::MAX,
        };
        assert_eq!(
            measure(&huge, Span::ZERO, Rate::ZERO),
            Err(TransferError::Overflow)
        );
    }

    proptest! {
        // Truth is inside for any positive, asymmetric delays, any residence time, any master
        // error within ε_m and any client frequency error within the drift bound.
        #[test]
        fn truth_always_inside(
            true_t1 in -1_000_000_000_000i64..1_000_000_000_000,
            client_offset in -10_000_000_000i64..10_000_000_000, // true − client at t1
            d_up in 0i64..50_000_000,
            d_down in 0i64..50_000_000,
            residence in 0i64..5_000_000,
            eps_m in 0i64..1_000_000,
            master_err2 in -1_000_000i64..=1_000_000,
            master_err3 in -1_000_000i64..=1_000_000,
            drift_ppm in 0i64..500,
            freq_frac in -1.0f64..=1.0,
        ) {
            let e2 = master_err2.clamp(-eps_m, eps_m);
            // A master's own timescale is monotone: t3 >= t2 whatever its errors.
            let e3 = master_err3.clamp(-eps_m, eps_m).max(e2 - residence);
            let freq_ppt = (drift_ppm as f64 * 1e6 * freq_frac) as i64; // within the bound
            let true_t2 = true_t1 + d_up;
            let true_t3 = true_t2 + residence;
            let true_t4 = true_t3 + d_down;
            // Client clock: c(T) = T - offset0 + freq × (T - T1).
            let client = |tt: i64| {
                tt - client_offset + ((tt - true_t1) as i128 * freq_ppt as i128 / 1_000_000_000_000) as i64
            };
            let ts = SyncTimestamps {
                t1: t(client(true_t1)),
                t2: t(true_t2 + e2),
                t3: t(true_t3 + e3),
                t4: t(client(true_t4)),
            };
            let m = measure(&ts, Span::from_nanos(eps_m), Rate::from_ppm(drift_ppm)).unwrap();
            let true_offset_at_t4 = true_t4 - client(true_t4);
            prop_assert!(m.bounds.contains(Span::from_nanos(true_offset_at_t4)),
                "offset {} not in {:?}", true_offset_at_t4, m.bounds);
            // And the bound is no wider than θ ± (δ/2 + ε_m) plus the drift term and guard.
            let drift = Rate::from_ppm(drift_ppm).bound_over(Span::from_nanos(ts.t4.as_nanos() - ts.t1.as_nanos())).as_nanos() + 1;
            prop_assert!(m.bounds.radius().as_nanos() <= m.delay.as_nanos().div_euclid(2) + 1 + eps_m + drift);
        }
    }
}
