//! The CPU's time-stamp counter (TSC), for the TSC → time mapping timed publishes (ClockBound
//! 3's `shm1` segment and the page's TSC block). `unsafe` here is one `rdtsc` intrinsic
//! bracketed by `lfence` (x86-64 only; elsewhere there is no counter and nothing is published).
//!
//! The counter is usable only when the kernel itself times with it (clocksource `tsc`) and the
//! CPU says it runs at a constant rate through every power state (`constant_tsc` and
//! `nonstop_tsc`): then `CLOCK_MONOTONIC_RAW` is a fixed linear function of the counter, and a
//! calibration against it holds until a disruption, which timed's checks see (see
//! [`ttcore::tsc`]).

use ttcore::tsc::TscPair;

/// Reads the counter, ordered after every earlier instruction and before every later one (the
/// `lfence; rdtsc; lfence` sequence Intel's manual gives for a serialised read). `None` on
/// architectures without one.
#[inline(always)]
pub fn read() -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_lfence, _rdtsc};
        // SAFETY: `lfence` and `rdtsc` exist on every x86-64 CPU and touch no memory; user
        // space may execute `rdtsc` unless the kernel set CR4.TSD, which Linux does only for a
        // process that asked for it with prctl(PR_SET_TSC), which nothing here does.
        let t = unsafe {
            _mm_lfence();
            let t = _rdtsc();
            _mm_lfence();
            t
        };
        Some(t)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Reads the counter after every earlier instruction has completed (`lfence; rdtsc`), as the
/// kernel's own clock reads do: the reading is of an instant inside the call. The SDK's counter
/// path. `None` on architectures without one.
#[inline(always)]
pub fn read_ordered() -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_lfence, _rdtsc};
        // SAFETY: as in `read`.
        let t = unsafe {
            _mm_lfence();
            _rdtsc()
        };
        Some(t)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Why the counter is not used on this host: no counter, a CPU that does not promise a constant
/// rate through every power state (checked once: the flags do not change), or a kernel timing
/// with another clocksource (checked on every call: the kernel may switch away from the counter
/// at any time, e.g. when its watchdog finds it unstable).
pub fn unusable_reason() -> Option<String> {
    static CPU: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if let Some(why) = CPU.get_or_init(cpu_reason) {
        return Some(why.clone());
    }
    let cs_path = "/sys/devices/system/clocksource/clocksource0/current_clocksource";
    match std::fs::read_to_string(cs_path) {
        Ok(cs) if cs.trim() == "tsc" => None,
        Ok(cs) => Some(format!(
            "the kernel's clocksource is {}, not tsc: the raw clock is not a fixed function of the counter",
            cs.trim()
        )),
        Err(e) => Some(format!("{cs_path}: {e}")),
    }
}

/// The CPU's part of [`unusable_reason`].
fn cpu_reason() -> Option<String> {
    if read().is_none() {
        return Some("no time-stamp counter on this architecture".into());
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    ["constant_tsc", "nonstop_tsc"]
        .into_iter()
        .find(|need| !flags.contains(need))
        .map(|need| format!("the CPU does not report {need}: the counter's rate may change"))
}

/// A counter reading bracketed by two raw-clock reads ([`crate::clock::bracket`]: the
/// narrowest of up to five tries). `None` without a counter.
pub fn pair() -> Option<TscPair> {
    read()?;
    let (before, tsc, after) = crate::clock::bracket(|| read().unwrap_or_default());
    Some(TscPair::bracketed(tsc, before, after))
}
