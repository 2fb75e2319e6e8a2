//! The reader side: the SDK's fast, hot and full read paths, each a seqlock loop.

use super::*;
use memmap2::Mmap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering, fence};
use ttcore::{ClockStatus, RawReading, Span, TTInterval, Timestamp};

/// The fields a reader needs on the hot path, copied under the seqlock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HotPage {
    ref_raw: i64,
    ref_time: i64,
    freq_ppt: i64,
    eps_ref: i64,
    drift_ppt: i64,
    max_eps: i64,
    void_after: i64,
    holdover_after: i64,
    status: i64,
    knob_anchor: i64,
    knob_skew: i64,
    knob_step: i64,
    check_raw: i64,
    check_offset: i64,
    vm: Option<u32>,
}

impl HotPage {
    /// PROTOCOL.md reading step 3 against this copy: see [`continuous`] and
    /// [`vm_consistent`] (`vm`: the VMClock device's marker now, if the reader maps one).
    #[inline(always)]
    pub fn continuous(&self, raw_real: RawReading, boot: i64, vm: Option<u64>) -> bool {
        continuous(self.check_raw, self.check_offset, raw_real.as_nanos(), boot)
            && vm_consistent(self.vm, vm)
    }

    /// The interval and status at real raw reading `raw_real` — the same answer as
    /// [`PageData::read_at`] widened by at most 1 ns, computed without 128-bit division.
    ///
    /// Exactness: the products `freq × age` and `drift × age` (ns) are formed in `f64`; for
    /// |product| < 2⁵⁰ ns (13 days at 1000 ppm… any realistic age) the `f64` error is below
    /// 0.25 ns, so the floor and ceiling differ from the exact integer ones by at most 1. One
    /// extra nanosecond of ε therefore makes this interval contain the exact one.
    #[inline]
    pub fn at(&self, raw_real: RawReading) -> (TTInterval, ClockStatus) {
        let raw_real = raw_real.as_nanos();
        // Fast path: no knob, and every quantity small enough that plain arithmetic cannot
        // overflow (|ref_time| < 2⁶², |age| < 2⁶⁰, 0 ≤ ε_ref < 2⁴⁰, |rates| < 2³⁰ ppt ≈ 1000 ppm
        // … so every sum below stays under 2⁶³).
        if self.knob_skew == 0 && self.knob_step == 0 {
            let age = raw_real.wrapping_sub(self.ref_raw);
            const R: u64 = 1 << 30;
            if self.ref_time.unsigned_abs() < 1 << 62
                && age.unsigned_abs() < 1 << 60
                && (self.eps_ref as u64) < 1 << 40
                && self.freq_ppt.unsigned_abs() < R
                && (self.drift_ppt as u64) < R
            {
                let agef = age as f64;
                let est = self.ref_time + age + floor_i64(self.freq_ppt as f64 * agef * 1e-12);
                let eps = self.eps_ref + ceil_i64(self.drift_ppt as f64 * agef.abs() * 1e-12) + 2;
                let (status, _) = degrade(
                    decode_status(self.status),
                    RawReading::from_nanos(raw_real),
                    eps,
                    self.max_eps,
                    RawReading::from_nanos(self.void_after),
                    RawReading::from_nanos(self.holdover_after),
                );
                let interval = TTInterval::new(
                    Timestamp::from_nanos(est - eps),
                    Timestamp::from_nanos(est + eps),
                )
                .unwrap_or_else(|_| TTInterval::point(Timestamp::from_nanos(est)));
                return (interval, status);
            }
        }
        self.at_general(raw_real)
    }

    /// [`HotPage::at`] for any field values (saturating arithmetic, the knob).
    fn at_general(&self, raw_real: i64) -> (TTInterval, ClockStatus) {
        let raw = if self.knob_skew == 0 && self.knob_step == 0 {
            raw_real
        } else {
            raw_real
                .saturating_add(self.knob_step)
                .saturating_add(floor_i64(
                    raw_real.saturating_sub(self.knob_anchor) as f64
                        * self.knob_skew as f64
                        * 1e-12,
                ))
        };
        let age = raw.wrapping_sub(self.ref_raw);
        let agef = age as f64;
        let est = self
            .ref_time
            .saturating_add(age)
            .saturating_add(floor_i64(self.freq_ppt as f64 * agef * 1e-12));
        let grow = ceil_i64(self.drift_ppt as f64 * agef.abs() * 1e-12);
        let eps = self.eps_ref.max(0).saturating_add(grow).saturating_add(2);
        let interval = TTInterval::around(Timestamp::from_nanos(est), Span::from_nanos(eps.max(0)))
            .unwrap_or_else(|_| TTInterval::point(Timestamp::from_nanos(est)));
        let (status, _) = degrade(
            decode_status(self.status),
            RawReading::from_nanos(raw),
            eps,
            self.max_eps,
            RawReading::from_nanos(self.void_after),
            RawReading::from_nanos(self.holdover_after),
        );
        (interval, status)
    }
}

/// The page's fast block (PROTOCOL.md "Fast path"), copied under the seqlock: seven fields
/// that give the interval with one range check and two fixed-point multiplications.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastBlock {
    ref_raw: i64,
    base: i64,
    freq_q: i64,
    eps0: i64,
    drift_q: i64,
    until_age: i64,
    status: i64,
    check_raw: i64,
    check_offset: i64,
    vm: Option<u32>,
}

impl FastBlock {
    /// PROTOCOL.md reading step 3 against this copy: see [`continuous`] and
    /// [`vm_consistent`] (`vm`: the VMClock device's marker now, if the reader maps one).
    #[inline(always)]
    pub fn continuous(&self, raw_real: RawReading, boot: i64, vm: Option<u64>) -> bool {
        continuous(self.check_raw, self.check_offset, raw_real.as_nanos(), boot)
            && vm_consistent(self.vm, vm)
    }

    /// The interval and status at real raw reading `raw_real`, if it falls inside the window
    /// the writer vouched for (`None`: use [`HotPage::at`] / [`PageData::read_at`]).
    ///
    /// Guarantee: contains the interval [`PageData::read_at`] gives, and is at most 6 ns wider.
    /// The estimate `ref_time + age + ⌊age × freq_q / 2⁶⁴⌋` is within 1 ns of the exact
    /// `ref_time + age + ⌊age × freq / 10¹²⌋` (the fixed-point error is below 2⁻²² ns for ages
    /// under 2⁴² ns), and ε is at least the exact ε + 1 ns (`drift_q` rounds up; the margin
    /// pays for `floor` vs `ceil` and for the estimate). Within the window the exact status is
    /// the copied one: the writer ends the window before `holdover_after`, before `void_after`
    /// and before this path's ε could exceed max-epsilon.
    #[inline(always)]
    pub fn at(&self, raw_real: RawReading) -> Option<(TTInterval, ClockStatus)> {
        let raw_real = raw_real.as_nanos();
        let age = raw_real.wrapping_sub(self.ref_raw);
        // One unsigned compare rejects negative ages and ages past the window (and a zero
        // window: no fast block).
        if age as u64 >= self.until_age as u64 {
            return None;
        }
        let corr = ((age as i128 * self.freq_q as i128) >> 64) as i64;
        // Both factors as unsigned 64-bit values: the product fits 128 bits whatever the page
        // holds (a negative drift_q from a corrupted page must not overflow).
        let grow = ((age as u64 as u128 * self.drift_q as u64 as u128) >> 64) as i64;
        // Wrapping: for any page timed writes nothing here comes near the i64 range (see
        // `fast_block`); for a corrupted one this must not panic, and an inverted interval is
        // refused just below.
        let est = raw_real.wrapping_add(self.base).wrapping_add(corr);
        let eps = self.eps0.wrapping_add(grow);
        let interval = TTInterval::new(
            Timestamp::from_nanos(est.wrapping_sub(eps)),
            Timestamp::from_nanos(est.wrapping_add(eps)),
        )
        .ok()?;
        Some((interval, decode_status(self.status)))
    }
}

/// The page's counter block (PROTOCOL.md "Counter path"), copied under the seqlock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscFast {
    map: ttcore::tsc::TscMap,
    status: i64,
    real_minus_mono: i64,
    vm: Option<u32>,
}

impl TscFast {
    /// Whether the page has a counter block at all (a zero window: none, or the copy gave up).
    #[inline(always)]
    pub fn has_window(&self) -> bool {
        self.map.until_ticks != 0
    }

    /// The interval and status at counter value `tsc` (read after the coarse clocks), with
    /// `real_minus_mono` = `CLOCK_REALTIME_COARSE − CLOCK_MONOTONIC_COARSE` read just before
    /// and `vm` the VMClock device's marker (if the reader maps one). `None` — read the raw
    /// clock instead — when the counter is outside the window, when the offset moved since
    /// timed's check (a suspend ended, the system clock was stepped, or the two coarse reads
    /// straddled a tick), or when the VMClock marker is not the page's.
    #[inline(always)]
    pub fn at(
        &self,
        tsc: u64,
        real_minus_mono: i64,
        vm: Option<u64>,
    ) -> Option<(TTInterval, ClockStatus)> {
        if real_minus_mono != self.real_minus_mono || !vm_consistent(self.vm, vm) {
            return None;
        }
        self.map.at(tsc).map(|i| (i, decode_status(self.status)))
    }
}

/// The page's VMClock marker (low 32 bits), if timed watches one; relaxed, under the seqlock.
#[inline(always)]
pub(super) fn vm_marker(p: &PageRaw) -> Option<u32> {
    (p.flags.load(Ordering::Relaxed) & 1 == 1).then(|| p.reserved.load(Ordering::Relaxed))
}

/// PROTOCOL.md reading step 3, VMClock part: a reader that maps the device compares its
/// marker with the page's; a page or a reader without one passes (timed's own check every
/// 50 ms still applies).
#[inline(always)]
pub fn vm_consistent(page: Option<u32>, device: Option<u64>) -> bool {
    match (page, device) {
        (Some(p), Some(d)) => p == d as u32,
        _ => true,
    }
}

/// One field, relaxed (ordering comes from the seqlock's fences).
#[inline(always)]
pub(super) fn ld(f: &[AtomicI64; NFIELDS], i: usize) -> i64 {
    f[i].load(Ordering::Relaxed)
}

/// `⌊x⌋` for |x| < 2⁶³ without a libm call (baseline x86-64 has no rounding instruction).
#[inline(always)]
pub(super) fn floor_i64(x: f64) -> i64 {
    let t = x as i64;
    if (t as f64) > x {
        t.saturating_sub(1)
    } else {
        t
    }
}

/// `⌈x⌉` for |x| < 2⁶³ without a libm call.
#[inline(always)]
pub(super) fn ceil_i64(x: f64) -> i64 {
    let t = x as i64;
    if (t as f64) < x {
        t.saturating_add(1)
    } else {
        t
    }
}

/// The reader side (the SDK's fast path).
pub struct PageReader {
    map: Mmap,
    _file: File,
}

impl PageReader {
    /// Maps the page at `path` read-only after checking its mode, magic, version and size. A
    /// page that group or others may write is refused: anyone could have written it, not only
    /// timed (which creates it 0644).
    pub fn open(path: &Path) -> Result<PageReader, ShmError> {
        use std::os::unix::fs::PermissionsExt;
        let f = File::open(path).map_err(io(path))?;
        let meta = f.metadata().map_err(io(path))?;
        let len = meta.len() as usize;
        let fmt = |what: String| ShmError::Format {
            path: path.display().to_string(),
            what,
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o022 != 0 {
            return Err(fmt(format!(
                "mode {mode:04o}: group or others may write it, so timed is not its only writer"
            )));
        }
        if len < PAGE_SIZE {
            return Err(fmt(format!("file is {len} bytes, a page is {PAGE_SIZE}")));
        }
        // SAFETY: read-only shared mapping; size checked above; see the module docs.
        let map = unsafe { Mmap::map(&f) }.map_err(io(path))?;
        let p = unsafe { view(map.as_ptr()) };
        if p.magic.load(Ordering::Acquire) != MAGIC {
            return Err(fmt("not a TrueTime page (bad magic)".into()));
        }
        let v = p.version.load(Ordering::Relaxed);
        if v != VERSION {
            return Err(fmt(format!(
                "page layout version {v}, this reader knows {VERSION}"
            )));
        }
        if (p.size.load(Ordering::Relaxed) as usize) < PAGE_SIZE {
            return Err(fmt("page header says it is too small".into()));
        }
        Ok(PageReader { map, _file: f })
    }

    /// A consistent copy of the page. Lock-free: retries while the writer is mid-update; gives
    /// up with [`ShmError::Busy`] after 10 ms of that (a writer that died mid-write — a live
    /// one holds the page odd for well under a microsecond).
    pub fn read(&self) -> Result<PageData, ShmError> {
        let p = unsafe { view(self.map.as_ptr()) };
        let mut f = [0i64; NFIELDS];
        let mut deadline: Option<i64> = None;
        for spin in 0u64.. {
            if spin % 256 == 255 {
                let now = crate::clock::raw_ns();
                match deadline {
                    None => deadline = Some(now + 10_000_000),
                    Some(d) if now > d => break,
                    _ => {}
                }
            }
            let g1 = p.generation.load(Ordering::Acquire);
            if g1 % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            for (v, slot) in f.iter_mut().zip(p.f.iter()) {
                *v = slot.load(Ordering::Relaxed);
            }
            let vm = vm_marker(p);
            fence(Ordering::Acquire);
            if p.generation.load(Ordering::Relaxed) == g1 {
                let mut d = PageData::from_fields(&f);
                d.vmclock_marker = vm.map(u64::from);
                return Ok(d);
            }
        }
        Err(ShmError::Busy)
    }

    /// Copies what `copy` takes from the fields (read them with [`ld`]) under the seqlock; `None` if the page stayed
    /// mid-write for 100 000 attempts.
    #[inline(always)]
    fn seqlock_copy<T>(&self, copy: impl Fn(&PageRaw) -> T) -> Option<T> {
        let p = unsafe { view(self.map.as_ptr()) };
        for _ in 0..100_000 {
            let g1 = p.generation.load(Ordering::Acquire);
            if g1 % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let v = copy(p);
            fence(Ordering::Acquire);
            if p.generation.load(Ordering::Relaxed) == g1 {
                return Some(v);
            }
        }
        None
    }

    /// The fast block, copied under the seqlock. A page busy for a long time yields an empty
    /// block (its window is zero), which sends the caller to [`PageReader::read_hot`].
    #[inline(always)]
    pub fn read_fast(&self) -> FastBlock {
        self.seqlock_copy(|p| FastBlock {
            ref_raw: ld(&p.f, field::FAST_REF_RAW_NS),
            base: ld(&p.f, field::FAST_BASE_NS),
            freq_q: ld(&p.f, field::FAST_FREQ_Q64),
            eps0: ld(&p.f, field::FAST_EPS0_NS),
            drift_q: ld(&p.f, field::FAST_DRIFT_Q64),
            until_age: ld(&p.f, field::FAST_UNTIL_AGE_NS),
            status: ld(&p.f, field::FAST_STATUS),
            check_raw: ld(&p.f, field::CHECK_RAW_NS),
            check_offset: ld(&p.f, field::CHECK_BOOT_OFFSET_NS),
            vm: vm_marker(p),
        })
        .unwrap_or(FastBlock {
            ref_raw: 0,
            base: 0,
            freq_q: 0,
            eps0: 0,
            drift_q: 0,
            until_age: 0,
            status: 0,
            check_raw: 0,
            check_offset: 0,
            vm: None,
        })
    }

    /// The counter block, copied under the seqlock (an empty window when the page has none or
    /// stayed busy, which sends the caller to the raw clock).
    #[inline(always)]
    pub fn read_tsc(&self) -> TscFast {
        self.seqlock_copy(|p| TscFast {
            map: ttcore::tsc::TscMap {
                tsc_ref: ld(&p.f, field::TSC_REF) as u64,
                base_ns: ld(&p.f, field::TSC_BASE_NS),
                mult_q62: ld(&p.f, field::TSC_MULT_Q62) as u64,
                eps0_ns: ld(&p.f, field::TSC_EPS0_NS),
                grow_q62: ld(&p.f, field::TSC_GROW_Q62) as u64,
                until_ticks: ld(&p.f, field::TSC_UNTIL_TICKS) as u64,
            },
            status: ld(&p.f, field::TSC_STATUS),
            real_minus_mono: ld(&p.f, field::TSC_REAL_MINUS_MONO_NS),
            vm: vm_marker(p),
        })
        .unwrap_or(TscFast {
            map: ttcore::tsc::TscMap::default(),
            status: 0,
            real_minus_mono: 0,
            vm: None,
        })
    }

    /// The hot-path copy: only the fields [`HotPage::at`] needs, under the same seqlock.
    #[inline]
    pub fn read_hot(&self) -> Result<HotPage, ShmError> {
        let hot = self.seqlock_copy(|p| HotPage {
            ref_raw: ld(&p.f, field::REF_RAW_NS),
            ref_time: ld(&p.f, field::REF_TIME_NS),
            freq_ppt: ld(&p.f, field::FREQ_PPT),
            eps_ref: ld(&p.f, field::EPS_REF_NS),
            drift_ppt: ld(&p.f, field::DRIFT_PPT),
            max_eps: ld(&p.f, field::MAX_EPS_NS),
            void_after: ld(&p.f, field::VOID_AFTER_RAW_NS),
            holdover_after: ld(&p.f, field::HOLDOVER_AFTER_RAW_NS),
            status: ld(&p.f, field::STATUS),
            knob_anchor: ld(&p.f, field::KNOB_ANCHOR_RAW_NS),
            knob_skew: ld(&p.f, field::KNOB_SKEW_PPT),
            knob_step: ld(&p.f, field::KNOB_STEP_NS),
            check_raw: ld(&p.f, field::CHECK_RAW_NS),
            check_offset: ld(&p.f, field::CHECK_BOOT_OFFSET_NS),
            vm: vm_marker(p),
        });
        if let Some(h) = hot {
            return Ok(h);
        }
        // Contended for a long time: fall back to the full read with its time-based give-up.
        self.read().map(|d| HotPage {
            ref_raw: d.model.ref_raw.as_nanos(),
            ref_time: d.model.ref_time.as_nanos(),
            freq_ppt: d.model.freq.as_ppt(),
            eps_ref: d.model.eps_ref.as_nanos(),
            drift_ppt: d.model.drift_bound.as_ppt(),
            max_eps: d.max_eps.as_nanos(),
            void_after: d.void_after_raw.as_nanos(),
            holdover_after: d.holdover_after_raw.as_nanos(),
            status: d.status.as_u8() as i64,
            knob_anchor: d.knob.anchor_raw_ns,
            knob_skew: d.knob.skew.as_ppt(),
            knob_step: d.knob.step_ns,
            check_raw: d.clock_check.map_or(0, |c| c.raw),
            check_offset: d.clock_check.map_or(0, |c| c.offset()),
            vm: d.vmclock_marker.map(|m| m as u32),
        })
    }

    /// The generation counter (even when stable).
    pub fn generation(&self) -> u64 {
        unsafe { view(self.map.as_ptr()) }
            .generation
            .load(Ordering::Acquire)
    }
}
