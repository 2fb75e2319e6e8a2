//! Optional steering of the system clock with `adjtimex(2)` (timed's `steer = "adjtimex"`).
//! Needs `CAP_SYS_TIME`; never used unless configured.
//!
//! # Safety
//!
//! The only `unsafe` is the `adjtimex` call with a pointer to a fully initialised, stack-owned
//! `libc::timex` that outlives the call (and `sysconf`, which takes no pointer). The read-only
//! [`kernel_slew`] (`modes = 0`) needs no capability.

/// Offsets beyond this are stepped (`ADJ_SETOFFSET`) instead of slewed; the kernel PLL accepts
/// at most ±0.5 s.
pub const SLEW_LIMIT_NS: i64 = 500_000_000;

/// The `timex` request that slews by `offset_ns` (true − system; positive = system behind) or
/// steps beyond [`SLEW_LIMIT_NS`], and reports `eps_ns` as both maximum and estimated error.
pub fn request(offset_ns: i64, eps_ns: i64) -> libc::timex {
    // SAFETY: an all-zero timex is a valid value of this plain C struct (integers only).
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    let err_us = (eps_ns.max(0) / 1_000 + 1) as libc::c_long;
    t.maxerror = err_us;
    t.esterror = err_us;
    t.status = libc::STA_PLL | libc::STA_NANO;
    if offset_ns.abs() < SLEW_LIMIT_NS {
        t.modes = libc::ADJ_OFFSET
            | libc::ADJ_STATUS
            | libc::ADJ_MAXERROR
            | libc::ADJ_ESTERROR
            | libc::ADJ_NANO;
        t.offset = offset_ns as libc::c_long;
    } else {
        t.modes = libc::ADJ_SETOFFSET | libc::ADJ_MAXERROR | libc::ADJ_ESTERROR | libc::ADJ_NANO;
        t.time.tv_sec = offset_ns.div_euclid(1_000_000_000) as libc::time_t;
        // With ADJ_NANO the "usec" field carries nanoseconds.
        t.time.tv_usec = offset_ns.rem_euclid(1_000_000_000) as libc::suseconds_t;
    }
    t
}

/// Applies [`request`]. Errors (typically `EPERM` without `CAP_SYS_TIME`) are returned.
pub fn steer(offset_ns: i64, eps_ns: i64) -> std::io::Result<()> {
    let mut t = request(offset_ns, eps_ns);
    // SAFETY: see the module docs.
    let r = unsafe { libc::adjtimex(&mut t) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// What the kernel is doing to `CLOCK_MONOTONIC` now, from a read-only `adjtimex` (`modes =
/// 0`: no capability needed, nothing changed).
pub fn kernel_slew() -> std::io::Result<ttcore::disrupt::KernelSlew> {
    // SAFETY: an all-zero timex is a valid value of this plain C struct (integers only).
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: see the module docs; modes = 0 only reads.
    let r = unsafe { libc::adjtimex(&mut t) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: sysconf takes no pointer.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    let unit = if t.status & libc::STA_NANO != 0 {
        1
    } else {
        1000
    };
    Ok(ttcore::disrupt::KernelSlew {
        tick_us: t.tick as i64,
        nominal_tick_us: 1_000_000 / hz as i64,
        freq_scaled_ppm: t.freq as i64,
        pll_offset_ns: if t.status & libc::STA_PLL != 0 {
            (t.offset as i64).saturating_mul(unit)
        } else {
            0
        },
        time_constant: t.constant as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_offsets_slew_large_ones_step() {
        let t = request(1_500, 40_000);
        assert_eq!(t.modes & libc::ADJ_OFFSET, libc::ADJ_OFFSET);
        assert_eq!(t.modes & libc::ADJ_SETOFFSET, 0);
        assert_eq!(t.offset, 1_500);
        assert_eq!(t.maxerror, 41);
        let t = request(-2_250_000_000, 1_000);
        assert_eq!(t.modes & libc::ADJ_SETOFFSET, libc::ADJ_SETOFFSET);
        assert_eq!((t.time.tv_sec, t.time.tv_usec), (-3, 750_000_000));
    }

    #[test]
    fn this_host_answers_a_read_only_adjtimex() {
        let k = kernel_slew().unwrap();
        assert!(k.nominal_tick_us > 0 && k.tick_us > 0, "{k:?}");
        assert!(!k.describe().is_empty());
    }
}
