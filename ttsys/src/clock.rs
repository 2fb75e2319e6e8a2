//! Clock reads in nanoseconds, and detection of clock disruptions.
//!
//! The *raw* clock of the whole project is `CLOCK_MONOTONIC_RAW`: never stepped, never slewed
//! by NTP, stopped during suspend. Models map it to the timescale; `CLOCK_REALTIME` is only
//! used to convert timestamps that the kernel or a peer gives in it.

use nix::time::ClockId;
use ttcore::RawReading;
use ttcore::disrupt::{ClockPair, Disruption};

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

/// `CLOCK_MONOTONIC_RAW` as the typed [`RawReading`] the models, the page and the SDK take.
#[inline]
pub fn raw() -> RawReading {
    RawReading::from_nanos(read(ClockId::CLOCK_MONOTONIC_RAW))
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

/// `CLOCK_REALTIME_COARSE` (ns): realtime as of the last tick. With
/// [`monotonic_coarse_ns`] read at the same tick, their difference is exactly the kernel's
/// realtime offset, which moves only when the system clock is stepped or a suspend ends.
#[inline(always)]
pub fn realtime_coarse_ns() -> i64 {
    read(ClockId::CLOCK_REALTIME_COARSE)
}

/// `CLOCK_REALTIME − CLOCK_MONOTONIC` exactly (ns), from the coarse clocks read at one tick
/// (retried until two monotonic reads around the realtime one agree; `None` after 100 tries).
pub fn realtime_offset_ns() -> Option<i64> {
    (0..100).find_map(|_| {
        let a = monotonic_coarse_ns();
        let r = realtime_coarse_ns();
        let b = monotonic_coarse_ns();
        (a == b).then_some(r - a)
    })
}

/// `CLOCK_MONOTONIC_COARSE` (ns): the tick-granular monotonic clock ClockBound clients read.
#[inline(always)]
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
#[inline(always)]
pub fn boottime_ns() -> i64 {
    read(ClockId::CLOCK_BOOTTIME)
}

/// Reads `other` bracketed by two raw reads and returns `(raw at the middle, other, bracket
/// width)`; the width (ns) bounds the pairing error. Takes the narrowest of up to five tries
/// (stopping at one of 100 ns or less), so a preemption between the reads (microseconds on a
/// busy host) does not leak into the result.
pub fn pair(other: fn() -> i64) -> (i64, i64, i64) {
    let (a, o, b) = bracket(other);
    (a + (b - a) / 2, o, b - a)
}

/// `other` read between two raw reads: `(raw before, other, raw after)` of the narrowest of up
/// to five tries, stopping at one of 100 ns or less ([`pair`]'s rule, for any reading).
pub fn bracket<T>(mut other: impl FnMut() -> T) -> (i64, T, i64) {
    let mut best: Option<(i64, T, i64)> = None;
    for _ in 0..5 {
        let a = raw_ns();
        let o = other();
        let b = raw_ns();
        if best.as_ref().is_none_or(|x| b - a < x.2 - x.0) {
            best = Some((a, o, b));
        }
        if b - a <= 100 {
            break;
        }
    }
    best.expect("at least one try")
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

/// Maps kernel `CLOCK_REALTIME` stamps onto the raw clock, with an uncertainty, and refuses
/// to map across a step of `CLOCK_REALTIME`.
///
/// * The offset `realtime − raw` is read with a bracketed pair ([`pair`]): half the bracket is
///   the pairing error.
/// * Between the stamp and the pair, `CLOCK_REALTIME` may run at another rate than the raw
///   clock (the kernel's frequency adjustment plus a slew): at most 1000 ppm of the stamp's age
///   is added.
/// * Steps (`settimeofday`, `clock_settime`, `ADJ_SETOFFSET`, the kernel's leap second) are
///   seen through a `timerfd` armed with `TFD_TIMER_CANCEL_ON_SET`; after one, stamps are not
///   mapped for [`RealtimeMap::DISTRUST_NS`] (the callers fall back to user-space reads of the
///   raw clock, which no step affects).
/// * A stamp older than 1 s or in the future beyond the bracket is not mapped.
#[derive(Debug)]
pub struct RealtimeMap {
    tfd: Option<std::os::fd::OwnedFd>,
    distrust_until_raw: i64,
    steps: u64,
}

/// One reading of the realtime → raw mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Raw reading at the middle of the pair (ns).
    pub raw: i64,
    /// `CLOCK_REALTIME` at the same instant (ns).
    pub rt: i64,
    /// Half the bracket, rounded up, plus 1 ns (ns).
    pub half_width: i64,
    /// Stamps must not be mapped (a step was seen recently).
    pub distrusted: bool,
}

impl Mapping {
    /// The raw reading of kernel stamp `stamp_rt`, rounded **late** (`late`) or **early** by
    /// its uncertainty; `None` when it must not be mapped.
    pub fn to_raw(&self, stamp_rt: i64, late: bool) -> Option<i64> {
        if self.distrusted {
            return None;
        }
        let age = self.rt.checked_sub(stamp_rt)?;
        if !(-self.half_width..=1_000_000_000).contains(&age) {
            return None;
        }
        let u = self.half_width + age.max(0) / 1000 + 1;
        let raw = self.raw - age;
        Some(if late { raw + u } else { raw - u })
    }

    /// A user-space stand-in for a stamp taken before this mapping: the pair's end (late).
    pub fn raw_late(&self) -> i64 {
        self.raw + self.half_width
    }
}

impl RealtimeMap {
    /// How long after a `CLOCK_REALTIME` step stamps are not mapped (ns).
    pub const DISTRUST_NS: i64 = 1_000_000_000;

    /// Arms the step detector (without one — no timerfd — every mapping is distrusted, so the
    /// callers use user-space stamps).
    pub fn new() -> Self {
        RealtimeMap {
            tfd: arm_cancel_on_set(),
            distrust_until_raw: i64::MIN,
            steps: 0,
        }
    }

    /// `CLOCK_REALTIME` steps seen so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Whether step detection works here (else stamps are never mapped).
    pub fn available(&self) -> bool {
        self.tfd.is_some()
    }

    /// A fresh mapping; checks for a step since the last call.
    pub fn now(&mut self) -> Mapping {
        let (raw, rt, w) = pair(realtime_ns);
        if self.stepped() {
            self.distrust_until_raw = raw.saturating_add(Self::DISTRUST_NS);
        }
        Mapping {
            raw,
            rt,
            half_width: (w + 1) / 2 + 1,
            distrusted: self.tfd.is_none() || raw < self.distrust_until_raw,
        }
    }

    /// True if `CLOCK_REALTIME` was set since the last check (re-arms the detector).
    fn stepped(&mut self) -> bool {
        use std::os::fd::AsRawFd;
        let Some(fd) = &self.tfd else { return false };
        let mut v = 0u64;
        // SAFETY: reads at most 8 bytes into a u64 we own, from a non-blocking timerfd.
        let r = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECANCELED) {
            self.steps += 1;
            self.tfd = arm_cancel_on_set();
            return true;
        }
        false
    }
}

impl Default for RealtimeMap {
    fn default() -> Self {
        Self::new()
    }
}

/// A non-blocking `CLOCK_REALTIME` timerfd, far in the future, that is cancelled (reads
/// `ECANCELED`) when the clock is set.
fn arm_cancel_on_set() -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain syscalls on a descriptor we create and then own.
    unsafe {
        let fd = libc::timerfd_create(libc::CLOCK_REALTIME, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: i32::MAX as libc::time_t,
                tv_nsec: 0,
            },
        };
        let r = libc::timerfd_settime(
            fd,
            libc::TFD_TIMER_ABSTIME | libc::TFD_TIMER_CANCEL_ON_SET,
            &spec,
            std::ptr::null_mut(),
        );
        (r == 0).then_some(owned)
    }
}

/// A bracketed (raw, boot) reading for the disruption rule: the boot read between two raw
/// reads, the narrowest of up to five tries.
pub fn clock_pair() -> ClockPair {
    let (raw, boot, gap) = pair(boottime_ns);
    ClockPair { raw, boot, gap }
}

/// Watches the raw clock for suspends, stalls and steps with [`ttcore::disrupt::check`]
/// (500 ppm of the elapsed time, no fixed threshold), and for hypervisor-reported disruptions
/// when a VMClock device is given.
#[derive(Debug)]
pub struct DisruptionDetector {
    last: ClockPair,
}

impl DisruptionDetector {
    /// Starts watching now.
    pub fn new() -> Self {
        DisruptionDetector { last: clock_pair() }
    }

    /// The last pair that passed (or the one taken right after a disruption): what a page
    /// publishes for its readers to check against.
    pub fn last(&self) -> ClockPair {
        self.last
    }

    /// Checks a reading taken now against the last one; the new reading becomes the baseline
    /// either way (after a disruption the model is forgotten, so the next check starts afresh).
    pub fn check(&mut self) -> Result<ClockPair, Disruption> {
        self.check_with(clock_pair())
    }

    /// [`DisruptionDetector::check`] with an explicit reading (for tests).
    pub fn check_with(&mut self, now: ClockPair) -> Result<ClockPair, Disruption> {
        let r = ttcore::disrupt::check(self.last, now);
        self.last = now;
        r.map(|()| now)
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
    fn realtime_stamps_map_outward() {
        let mut map = RealtimeMap::new();
        assert!(map.available());
        let stamp = realtime_ns();
        let m = map.now();
        assert!(!m.distrusted);
        let late = m.to_raw(stamp, true).unwrap();
        let early = m.to_raw(stamp, false).unwrap();
        assert!(early < late && late - early < 1_000_000);
        // Too old, or in the future: not mapped.
        assert_eq!(m.to_raw(stamp - 2_000_000_000, true), None);
        assert_eq!(m.to_raw(m.rt + 1_000_000, true), None);
        let d = Mapping {
            distrusted: true,
            ..m
        };
        assert_eq!(d.to_raw(stamp, true), None);
    }

    #[test]
    fn detects_suspend_step_and_backwards() {
        let mut d = DisruptionDetector::new();
        let ClockPair {
            raw: r, boot: b, ..
        } = d.last();
        let at = |raw, boot| ClockPair {
            raw,
            boot,
            gap: 100,
        };
        assert!(d.check_with(at(r + 100_000_000, b + 100_000_000)).is_ok());
        // 5 s of suspend.
        let e = d
            .check_with(at(r + 200_000_000, b + 5_200_000_000))
            .unwrap_err();
        assert_eq!(e, Disruption::Lost { ns: 5_000_000_000 });
        // A 200 µs step forward of the raw clock, 100 ms later.
        let e = d
            .check_with(at(r + 300_200_000, b + 5_300_000_000))
            .unwrap_err();
        assert_eq!(e, Disruption::Gained { ns: 200_000 });
        assert!(matches!(
            d.check_with(at(r, b + 5_400_000_000)),
            Err(Disruption::Backwards { .. })
        ));
        // The real clocks pass.
        let mut d = DisruptionDetector::new();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(d.check().is_ok());
    }
}
