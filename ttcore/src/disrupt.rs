//! The one rule that decides whether the host's raw clock was disrupted between two readings
//! (a suspend, a stall, a step), used by `timed`, by every page reader and by the simulator.
//!
//! `CLOCK_BOOTTIME` keeps counting while the raw clock (`CLOCK_MONOTONIC_RAW`) does not (a
//! suspend), and it is immune to a step of the raw clock's counter. Between two readings the two
//! clocks may separate only by what NTP slewing of `CLOCK_MONOTONIC` allows —
//! [`MAX_SLEW`] (500 ppm, the kernel's frequency limit) of the elapsed raw time — plus the
//! uncertainty of pairing the two reads. Anything beyond that is a disruption, however small:
//! there is no fixed threshold under which a lost or gained 25 ms goes unnoticed.
//!
//! What this cannot see: a pause of the whole machine (a VM paused or live-migrated) stops both
//! clocks together. That needs the hypervisor's word (VMClock's disruption marker); without it,
//! "the raw clock is never paused unnoticed" is an assumption, and the status says so.

use crate::{Rate, Span};
use std::fmt;

/// Largest rate at which `CLOCK_BOOTTIME` may separate from `CLOCK_MONOTONIC_RAW` without a
/// disruption: the kernel's limit on NTP frequency adjustment (500 ppm). An NTP daemon slewing
/// faster (chronyd's `maxslewrate` above 500) is reported as a disruption — the safe side.
pub const MAX_SLEW: Rate = Rate::from_ppm(1_000_000 / SLEW_DIVISOR);

/// [`MAX_SLEW`] as a divisor of the elapsed time (500 ppm = 1/2000), so that page readers
/// compute the tolerance with one integer division by a constant.
pub const SLEW_DIVISOR: i64 = 2_000;

/// Slack (ns) added to every comparison for the clocks' read granularity and the vDSO's
/// rounding (each clock read is exact to 1 ns; two pairs give 4 ns; 1 µs leaves room for
/// coarse clocksources).
pub const READ_SLACK_NS: i64 = 1_000;

/// A raw and a boot reading taken together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockPair {
    /// `CLOCK_MONOTONIC_RAW` (ns).
    pub raw: i64,
    /// `CLOCK_BOOTTIME` (ns).
    pub boot: i64,
    /// How far apart the two reads may have been (ns, ≥ 0): the bracket width of a bracketed
    /// read, or 0 where the caller retries instead (a page reader).
    pub gap: i64,
}

impl ClockPair {
    /// `boot − raw` (ns): constant while nothing disrupts the raw clock, up to slewing.
    pub fn offset(&self) -> i64 {
        self.boot.wrapping_sub(self.raw)
    }
}

/// What happened to the raw clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Disruption {
    /// The raw clock went backwards.
    Backwards {
        /// By this much (ns).
        by_ns: i64,
    },
    /// The raw clock missed time that boot time counted: a suspend or a stall.
    Lost {
        /// About this much (ns).
        ns: i64,
    },
    /// The raw clock gained time that boot time did not: a step forward.
    Gained {
        /// About this much (ns).
        ns: i64,
    },
    /// The hypervisor says the clock was disrupted (VMClock's marker changed: live migration,
    /// a pause), or that its counter is unreliable.
    Hypervisor,
}

impl fmt::Display for Disruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Disruption::Backwards { by_ns } => {
                write!(f, "raw clock went backwards by {by_ns} ns")
            }
            Disruption::Lost { ns } => write!(
                f,
                "raw clock lost {} against boot time (suspend or stall)",
                Span::from_nanos(ns)
            ),
            Disruption::Gained { ns } => write!(
                f,
                "raw clock gained {} against boot time (step)",
                Span::from_nanos(ns)
            ),
            Disruption::Hypervisor => {
                write!(f, "the hypervisor reported a clock disruption (VMClock)")
            }
        }
    }
}

/// How far `boot − raw` may move between `then` and `now` without a disruption (ns):
/// [`MAX_SLEW`] of the elapsed raw time rounded up, the two reads' gaps and [`READ_SLACK_NS`].
#[inline(always)]
pub fn tolerance(then: ClockPair, now: ClockPair) -> i64 {
    let elapsed = now.raw.saturating_sub(then.raw).max(0);
    (elapsed / SLEW_DIVISOR + 1)
        .saturating_add(then.gap.max(0))
        .saturating_add(now.gap.max(0))
        .saturating_add(READ_SLACK_NS)
}

/// The rule: `Ok` if the raw clock ran continuously from `then` to `now` (within the slew
/// and read tolerances), otherwise what happened.
#[inline(always)]
pub fn check(then: ClockPair, now: ClockPair) -> Result<(), Disruption> {
    let d_raw = now.raw.saturating_sub(then.raw);
    if d_raw < 0 {
        return Err(Disruption::Backwards {
            by_ns: d_raw.saturating_neg(),
        });
    }
    let moved = now.offset().wrapping_sub(then.offset());
    let tol = tolerance(then, now);
    if moved > tol {
        Err(Disruption::Lost { ns: moved })
    } else if moved < -tol {
        Err(Disruption::Gained {
            ns: moved.saturating_neg(),
        })
    } else {
        Ok(())
    }
}

/// What a read-only `adjtimex(2)` says the kernel is doing to `CLOCK_MONOTONIC` (and with it
/// `CLOCK_BOOTTIME`) against the raw clock: the tick length, the frequency, and the PLL's
/// remaining offset. An NTP daemon that slews through the tick (chronyd does, up to its
/// `maxslewrate`, 83,333 ppm by default) or through a large PLL offset makes boot time separate
/// from the raw clock faster than [`MAX_SLEW`], and the rule reports a disruption — the safe
/// side, but a host that keeps being disrupted serves nothing. [`KernelSlew::rate`] is what
/// timed shows, with a warning when it is beyond the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelSlew {
    /// `timex.tick`: µs per clock tick now.
    pub tick_us: i64,
    /// The nominal tick: 1 000 000 / `USER_HZ` µs.
    pub nominal_tick_us: i64,
    /// `timex.freq`: the frequency offset in ppm × 2¹⁶.
    pub freq_scaled_ppm: i64,
    /// `timex.offset` in ns (µs × 1000 when the kernel is not in `STA_NANO`), when the PLL is
    /// on (`STA_PLL`); 0 otherwise.
    pub pll_offset_ns: i64,
    /// `timex.constant`: the PLL time constant.
    pub time_constant: i64,
}

impl KernelSlew {
    /// An upper bound on the rate at which `CLOCK_MONOTONIC` runs off the raw clock now: the
    /// tick's deviation, plus the frequency, plus the PLL's per-second correction of its
    /// offset (`offset / 2^(2 + constant)`, the kernel's `SHIFT_PLL` of 2), each rounded up.
    pub fn rate(&self) -> Rate {
        let nominal = self.nominal_tick_us.max(1) as i128;
        let tick_ppb =
            ((self.tick_us as i128 - nominal).abs() * 1_000_000_000 + nominal - 1) / nominal;
        let freq_ppb = (self.freq_scaled_ppm as i128).abs() * 1000 / 65_536 + 1;
        let shift = 2 + u32::try_from(self.time_constant.clamp(0, 10)).unwrap_or(10);
        let pll_ppb = ((self.pll_offset_ns as i128).abs() + (1 << shift) - 1) >> shift;
        Rate::from_ppb(crate::time::saturate_i64(tick_ppb + freq_ppb + pll_ppb))
    }

    /// Whether the disruption rule's [`MAX_SLEW`] covers it.
    pub fn within_rule(&self) -> bool {
        self.rate() <= MAX_SLEW
    }

    /// One line for the status: the rate and its parts, and a warning when the rule cannot
    /// tell this slew from a disruption.
    pub fn describe(&self) -> String {
        let parts = format!(
            "tick {} µs (nominal {}), frequency {:+.3} ppm, PLL offset {} ns",
            self.tick_us,
            self.nominal_tick_us,
            self.freq_scaled_ppm as f64 / 65_536.0,
            self.pll_offset_ns
        );
        if self.within_rule() {
            format!(
                "≤ {:.1} ppm ({parts}): within the {} ppm disruption rule",
                self.rate().as_ppm_f64(),
                MAX_SLEW.as_ppm_f64()
            )
        } else {
            format!(
                "WARNING ≤ {:.1} ppm ({parts}): beyond the {} ppm the disruption rule allows, so \
                 it will be reported as disruptions; if chronyd steers this clock, set \
                 `maxslewrate 500` in chrony.conf",
                self.rate().as_ppm_f64(),
                MAX_SLEW.as_ppm_f64()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(raw: i64, boot: i64) -> ClockPair {
        ClockPair { raw, boot, gap: 0 }
    }

    #[test]
    fn continuous_clocks_pass_within_the_slew() {
        let a = p(1_000_000_000, 5_000_000_000);
        // 100 ms later, boot 500 ppm faster (50 µs) plus the slack: fine.
        assert_eq!(check(a, p(1_100_000_000, 5_100_050_000)), Ok(()));
        assert_eq!(check(a, p(1_100_000_000, 5_099_950_000)), Ok(()));
    }

    #[test]
    fn a_100_us_loss_or_gain_over_100_ms_is_a_disruption() {
        let a = p(1_000_000_000, 5_000_000_000);
        // Raw stalled 100 µs: boot advanced 100 ms + 100 µs while raw advanced 100 ms.
        assert_eq!(
            check(a, p(1_100_000_000, 5_100_100_000)),
            Err(Disruption::Lost { ns: 100_000 })
        );
        // Raw stepped 100 µs forward.
        assert_eq!(
            check(a, p(1_100_100_000, 5_100_000_000)),
            Err(Disruption::Gained { ns: 100_000 })
        );
        assert!(matches!(
            check(a, p(999_999_999, 5_100_000_000)),
            Err(Disruption::Backwards { by_ns: 1 })
        ));
    }

    #[test]
    fn the_tolerance_grows_with_elapsed_time_and_read_gaps() {
        let a = p(0, 0);
        let b = p(10_000_000_000, 10_000_000_000);
        // 10 s: 5 ms of slew allowed.
        assert_eq!(tolerance(a, b), 5_000_001 + READ_SLACK_NS);
        let wide = ClockPair { gap: 7_000, ..b };
        assert_eq!(tolerance(a, wide), 5_000_001 + READ_SLACK_NS + 7_000);
        // The divisor form is the rate, rounded up.
        assert!(
            MAX_SLEW
                .bound_over(Span::from_nanos(123_456_789))
                .as_nanos()
                <= 123_456_789 / SLEW_DIVISOR + 1
        );
    }

    #[test]
    fn extreme_readings_do_not_overflow() {
        // Found by `ttbench fuzz --target shm-page`: a page whose check pair is far in the
        // future made `−d_raw` overflow.
        let far = p(i64::MAX, 0);
        assert!(matches!(
            check(far, p(i64::MIN, 0)),
            Err(Disruption::Backwards { by_ns: i64::MAX })
        ));
        let _ = check(p(i64::MIN, i64::MAX), p(i64::MAX, i64::MIN));
    }

    #[test]
    fn the_reason_reads_well() {
        let s = Disruption::Lost { ns: 25_000_000 }.to_string();
        assert!(s.contains("lost") && s.contains("suspend"), "{s}");
    }

    /// `adjtimex` readings as a host shows them: idle, chronyd trimming the frequency, chronyd
    /// slewing a 10 ms offset at its default `maxslewrate` (through the tick), and ntpd's PLL
    /// correcting 0.4 s.
    #[test]
    fn recorded_kernel_slews_are_told_apart_from_what_the_rule_allows() {
        let idle = KernelSlew {
            tick_us: 10_000,
            nominal_tick_us: 10_000,
            freq_scaled_ppm: 0,
            pll_offset_ns: 0,
            time_constant: 2,
        };
        assert!(idle.within_rule());
        assert!(
            idle.describe().contains("within the 500 ppm"),
            "{}",
            idle.describe()
        );
        // chronyd holding −12.3 ppm through the frequency: fine.
        let trimmed = KernelSlew {
            freq_scaled_ppm: -806_093,
            ..idle
        };
        assert!(trimmed.within_rule());
        assert!((trimmed.rate().as_ppm_f64() - 12.3).abs() < 0.01);
        // The kernel's own limit, 500 ppm of frequency: still within.
        let limit = KernelSlew {
            freq_scaled_ppm: 500 * 65_536 - 66,
            ..idle
        };
        assert!(limit.within_rule(), "{}", limit.describe());
        // chronyd slewing through the tick at 83,300 ppm.
        let fast = KernelSlew {
            tick_us: 10_833,
            ..idle
        };
        assert!(!fast.within_rule());
        assert!(
            fast.describe().contains("maxslewrate 500"),
            "{}",
            fast.describe()
        );
        assert!((fast.rate().as_ppm_f64() - 83_300.0).abs() < 0.01);
        // A PLL correcting 0.4 s with time constant 2: 0.4 s / 16 per second = 25,000 ppm.
        let pll = KernelSlew {
            pll_offset_ns: 400_000_000,
            ..idle
        };
        assert!(!pll.within_rule());
        assert!((pll.rate().as_ppm_f64() - 25_000.0).abs() < 0.01);
        // And what such a slew does to the clocks is a disruption under the rule: 83,300 ppm
        // over 1 s separates boot time from raw by 83 ms.
        let a = ClockPair {
            raw: 0,
            boot: 0,
            gap: 0,
        };
        let b = ClockPair {
            raw: 1_000_000_000,
            boot: 1_083_300_000,
            gap: 0,
        };
        assert!(check(a, b).is_err());
        // ... while the idle host's own 12.3 ppm is not.
        let c = ClockPair {
            raw: 1_000_000_000,
            boot: 1_000_012_300,
            gap: 0,
        };
        assert!(check(a, c).is_ok());
    }
}
