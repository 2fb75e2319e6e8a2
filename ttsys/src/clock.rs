//! Clock reads in nanoseconds, and detection of clock disruptions.
//!
//! The *raw* clock of the whole project is `CLOCK_MONOTONIC_RAW`: never stepped, never slewed
//! by NTP, stopped during suspend. Models map it to the timescale; `CLOCK_REALTIME` is only
//! used to convert timestamps that the kernel or a peer gives in it.

use nix::time::ClockId;

/// One `clock_gettime` through libc (the vDSO for these clocks), inlined: the SDK's `TT.now()`
/// reads the raw clock through here, and a non-inlined wrapper costs it about half again.
#[inline(always)]
fn read(id: ClockId) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes a timespec we own. It fails only for an invalid clock id,
    // and these are all valid on Linux (the zeroed timespec would then read as 0).
    unsafe { libc::clock_gettime(id.as_raw(), &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// `CLOCK_MONOTONIC_RAW` (ns): the raw clock.
#[inline]
pub fn raw_ns() -> i64 {
    read(ClockId::CLOCK_MONOTONIC_RAW)
}

/// `CLOCK_REALTIME` (ns).
#[inline]
pub fn realtime_ns() -> i64 {
    read(ClockId::CLOCK_REALTIME)
}

/// `CLOCK_MONOTONIC` (ns).
pub fn monotonic_ns() -> i64 {
    read(ClockId::CLOCK_MONOTONIC)
}

/// `CLOCK_MONOTONIC_COARSE` (ns): the tick-granular monotonic clock ClockBound clients read.
pub fn monotonic_coarse_ns() -> i64 {
    read(ClockId::CLOCK_MONOTONIC_COARSE)
}

/// Resolution of `CLOCK_MONOTONIC_COARSE` (ns; one scheduler tick, typically 1–4 ms).
pub fn monotonic_coarse_resolution_ns() -> i64 {
    nix::time::clock_getres(ClockId::CLOCK_MONOTONIC_COARSE)
        .map(|t| t.tv_sec() * 1_000_000_000 + t.tv_nsec())
        .unwrap_or(10_000_000)
}

/// `CLOCK_BOOTTIME` (ns): like monotonic, but counts suspend.
pub fn boottime_ns() -> i64 {
    read(ClockId::CLOCK_BOOTTIME)
}

/// Reads `other` bracketed by two raw reads and returns `(raw at the middle, other, bracket
/// width)`; the width (ns) bounds the pairing error. Takes the narrowest of five tries, so a
/// preemption between the reads (microseconds on a busy host) does not leak into the result.
pub fn pair(other: fn() -> i64) -> (i64, i64, i64) {
    let mut best = (0, 0, i64::MAX);
    for _ in 0..5 {
        let a = raw_ns();
        let o = other();
        let b = raw_ns();
        if b - a < best.2 {
            best = (a + (b - a) / 2, o, b - a);
        }
    }
    best
}

/// Converts a `CLOCK_REALTIME` timestamp from the recent past into the raw clock, using a
/// fresh pair read. Error: the clocks' rate difference over the age (≤ 500 ppm × age) plus the
/// pair's bracket; wrong if the realtime clock was stepped in between.
pub fn realtime_to_raw(rt_ns: i64) -> i64 {
    let (raw, rt, _) = pair(realtime_ns);
    raw - (rt - rt_ns)
}

/// Converts a `CLOCK_MONOTONIC` timestamp from the recent past into the raw clock.
pub fn monotonic_to_raw(mono_ns: i64) -> i64 {
    let (raw, mono, _) = pair(monotonic_ns);
    raw - (mono - mono_ns)
}

/// Detects suspend/resume and raw-clock anomalies by comparing `CLOCK_BOOTTIME` (counts
/// suspend) with `CLOCK_MONOTONIC_RAW` (does not).
#[derive(Debug)]
pub struct DisruptionDetector {
    last_raw: i64,
    last_boot: i64,
    /// Tolerated divergence between the clocks per check (ns).
    pub tolerance_ns: i64,
}

impl DisruptionDetector {
    /// Starts watching now.
    pub fn new() -> Self {
        DisruptionDetector {
            last_raw: raw_ns(),
            last_boot: boottime_ns(),
            tolerance_ns: 50_000_000,
        }
    }

    /// Checks readings taken now; `Some(reason)` if the host clock was disrupted since the last
    /// check.
    pub fn check(&mut self) -> Option<String> {
        self.check_with(raw_ns(), boottime_ns())
    }

    /// [`DisruptionDetector::check`] with explicit readings (for tests).
    pub fn check_with(&mut self, raw: i64, boot: i64) -> Option<String> {
        let d_raw = raw - self.last_raw;
        let d_boot = boot - self.last_boot;
        self.last_raw = raw;
        self.last_boot = boot;
        if d_raw < 0 {
            return Some(format!("raw clock went backwards by {} ns", -d_raw));
        }
        // Rates differ by at most ~1000 ppm; beyond that plus the tolerance it is a suspend.
        if d_boot - d_raw > self.tolerance_ns + d_raw / 1000 {
            return Some(format!(
                "host was suspended for about {:.3} s",
                (d_boot - d_raw) as f64 / 1e9
            ));
        }
        None
    }
}

impl Default for DisruptionDetector {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_advance_and_pair() {
        let a = raw_ns();
        let b = raw_ns();
        assert!(b >= a);
        let (_, rt, w) = pair(realtime_ns);
        assert!(rt > 1_600_000_000_000_000_000 && w >= 0);
        let now_rt = realtime_ns();
        let r = realtime_to_raw(now_rt);
        assert!((r - raw_ns()).abs() < 10_000_000);
    }

    #[test]
    fn detects_suspend_and_backwards() {
        let mut d = DisruptionDetector::new();
        let (r, b) = (d.last_raw, d.last_boot);
        assert_eq!(d.check_with(r + 1_000_000_000, b + 1_000_000_000), None);
        let s = d.check_with(r + 2_000_000_000, b + 7_000_000_000).unwrap();
        assert!(s.contains("suspended for about 5.000"), "{s}");
        assert!(
            d.check_with(r, b + 8_000_000_000)
                .unwrap()
                .contains("backwards")
        );
    }
}
