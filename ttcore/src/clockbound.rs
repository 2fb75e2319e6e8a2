//! Our interval as AWS ClockBound's clients read it. ClockBound's segment does not carry an
//! interval: it carries a *bound* around `CLOCK_REALTIME`, which its client reads and widens by
//! the elapsed time (on `CLOCK_MONOTONIC_COARSE`) times `max_drift`. So the bound we publish must
//! cover where realtime is from our estimate, our ε, the error of pairing the clocks, and the
//! drift between realtime and the timescale until the client's next read — with nothing of this
//! left to the writer (`timed`), which only reads the clocks.

use crate::{ClockStatus, Rate, TTInterval};

/// ClockBound's clock status codes (its segment's `clock_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum CbStatus {
    /// No bound can be given.
    Unknown = 0,
    /// Synchronized.
    Synchronized = 1,
    /// Free running: holding over on the local oscillator's bound.
    FreeRunning = 2,
    /// The clock was disrupted (e.g. a VM migration): no bound.
    Disrupted = 3,
}

impl CbStatus {
    /// The code ClockBound's segment holds.
    pub const fn code(self) -> i32 {
        self as i32
    }
}

impl From<ClockStatus> for CbStatus {
    fn from(s: ClockStatus) -> Self {
        match s {
            ClockStatus::Synchronized => CbStatus::Synchronized,
            ClockStatus::Holdover => CbStatus::FreeRunning,
            ClockStatus::Disrupted => CbStatus::Disrupted,
            ClockStatus::Unsynchronized => CbStatus::Unknown,
        }
    }
}

/// How fast `CLOCK_REALTIME` may move against the raw clock between our rounds: chrony and ntpd
/// slew at most 500 ppm (ppb).
pub const REALTIME_SLEW_PPB: i64 = 500_000;

/// The bound published with status [`CbStatus::Unknown`]: no client can use it.
pub const UNKNOWN_BOUND_NS: i64 = i64::MAX / 4;

/// What the bound is computed from, all read at one instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CbInputs {
    /// TT.now() at the instant, and its status.
    pub interval: TTInterval,
    /// The status of that interval.
    pub status: ClockStatus,
    /// `CLOCK_REALTIME` at the same instant (ns).
    pub realtime_ns: i64,
    /// How uncertain the pairing of the raw clock with realtime and the coarse clock is (ns:
    /// both pairs' read windows and the gap between them).
    pub pairing_ns: i64,
    /// The published model's frequency estimate and drift bound.
    pub model_freq: Rate,
    /// The model's drift bound.
    pub model_drift: Rate,
    /// `CLOCK_MONOTONIC_COARSE`'s tick (ns): the client's elapsed time can under-count by one at
    /// each end.
    pub coarse_tick_ns: i64,
}

/// What goes into the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CbBound {
    /// Status.
    pub status: CbStatus,
    /// The bound around realtime (ns): |realtime − estimate| + ε + pairing + 1, plus the growth
    /// over two coarse ticks; [`UNKNOWN_BOUND_NS`] with status unknown.
    pub bound_ns: i64,
    /// The growth rate the client applies (ppb): our drift bound + |frequency| + realtime's
    /// slew, clamped below 10⁹.
    pub max_drift_ppb: u32,
}

/// The bound ClockBound's clients get for `i`: containing true time whenever our interval does.
pub fn bound(i: &CbInputs) -> CbBound {
    let status = CbStatus::from(i.status);
    let est = i.interval.midpoint().as_nanos();
    let eps = i.interval.epsilon().as_nanos();
    let at_read = (est - i.realtime_ns)
        .abs()
        .saturating_add(eps)
        .saturating_add(i.pairing_ns.max(0))
        .saturating_add(1);
    let drift_ppb = (i.model_drift.abs().as_ppt() / 1_000
        + i.model_freq.abs().as_ppt() / 1_000
        + REALTIME_SLEW_PPB)
        .clamp(0, 999_999_999);
    let ticks = crate::time::saturate_i64(
        2 * i.coarse_tick_ns.max(0) as i128 * drift_ppb as i128 / 1_000_000_000,
    );
    let bound_ns = match status {
        CbStatus::Unknown => UNKNOWN_BOUND_NS,
        _ => at_read.saturating_add(ticks + 1),
    };
    CbBound {
        status,
        bound_ns,
        max_drift_ppb: drift_ppb as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Span, Timestamp};

    fn inputs(status: ClockStatus) -> CbInputs {
        CbInputs {
            // Estimate 1_000_000 ns, ε 10 µs.
            interval: TTInterval::new(
                Timestamp::from_nanos(990_000),
                Timestamp::from_nanos(1_010_000),
            )
            .unwrap(),
            status,
            realtime_ns: 1_003_000,
            pairing_ns: 200,
            model_freq: Rate::from_ppm(-20),
            model_drift: Rate::from_ppm(15),
            coarse_tick_ns: 4_000_000,
        }
    }

    #[test]
    fn every_status_maps_to_clockbounds_code() {
        for (s, cb, code) in [
            (ClockStatus::Synchronized, CbStatus::Synchronized, 1),
            (ClockStatus::Holdover, CbStatus::FreeRunning, 2),
            (ClockStatus::Unsynchronized, CbStatus::Unknown, 0),
            (ClockStatus::Disrupted, CbStatus::Disrupted, 3),
        ] {
            let b = bound(&inputs(s));
            assert_eq!((b.status, b.status.code()), (cb, code), "{s:?}");
        }
    }

    #[test]
    fn the_bound_covers_offset_epsilon_pairing_and_two_coarse_ticks() {
        for s in [
            ClockStatus::Synchronized,
            ClockStatus::Holdover,
            ClockStatus::Disrupted,
        ] {
            let b = bound(&inputs(s));
            // 15 + 20 + 500 ppm = 535,000 ppb.
            assert_eq!(b.max_drift_ppb, 535_000);
            // |1_000_000 − 1_003_000| + 10_000 + 200 + 1, then 2 × 4 ms × 535 ppm = 4_280 + 1.
            assert_eq!(b.bound_ns, 3_000 + 10_000 + 200 + 1 + 4_280 + 1, "{s:?}");
            // Realtime on the other side of the estimate: the same bound.
            let mut i = inputs(s);
            i.realtime_ns = 997_000;
            assert_eq!(bound(&i).bound_ns, b.bound_ns);
        }
    }

    #[test]
    fn unknown_gives_no_usable_bound_and_drift_is_clamped() {
        assert_eq!(
            bound(&inputs(ClockStatus::Unsynchronized)).bound_ns,
            UNKNOWN_BOUND_NS
        );
        let mut i = inputs(ClockStatus::Synchronized);
        i.model_drift = Rate::from_ppm(2_000_000);
        assert_eq!(bound(&i).max_drift_ppb, 999_999_999);
        // And whatever the inputs, the bound is at least the distance to either end.
        let b = bound(&inputs(ClockStatus::Synchronized));
        let iv = inputs(ClockStatus::Synchronized).interval;
        let rt = Timestamp::from_nanos(1_003_000);
        assert!(Span::from_nanos(b.bound_ns) >= rt.saturating_since(iv.earliest()));
    }
}
