//! The TrueTime shared-memory page (written by `timed`, read by every client) and an AWS
//! ClockBound v2 segment writer. The byte layout is specified in `timed/PROTOCOL.md`.
//!
//! # Safety
//!
//! A mapping is viewed as a `#[repr(C)]` struct made only of atomics. This is sound because:
//! the file is created by the writer at exactly the struct's size (and readers refuse smaller
//! files) so the view never reaches past the mapping; `mmap` returns page-aligned memory, which
//! satisfies the struct's alignment; every field is an atomic, so concurrent access from other
//! processes through the shared mapping is a data race in no field; and the mapping lives as
//! long as the view (it is owned by the same struct and never remapped). Consistency across
//! fields is the seqlock's job: the generation is odd while the writer updates, and a reader
//! retries until it sees the same even generation before and after copying the fields.

use memmap2::{Mmap, MmapMut};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{
    AtomicI32, AtomicI64, AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering, fence,
};
use thiserror::Error;
use ttcore::disrupt::ClockPair;
use ttcore::{ClockModel, ClockStatus, Rate, Span, TTInterval, Timestamp};

/// `"TTPG"` read as a little-endian `u32`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"TTPG");
/// Layout version.
pub const VERSION: u16 = 1;
/// Size of the page struct in bytes.
pub const PAGE_SIZE: usize = 256;
/// `clock_id` value for `CLOCK_MONOTONIC_RAW` (Linux).
pub const CLOCK_MONOTONIC_RAW_ID: i64 = 4;
/// Number of `i64` fields after the header.
const NFIELDS: usize = 29;

/// Field indices (each an `i64` at byte offset `24 + 8 × index`).
pub mod field {
    /// Raw reading (ns) of the model's reference point.
    pub const REF_RAW_NS: usize = 0;
    /// Timescale (ns) at the reference point.
    pub const REF_TIME_NS: usize = 1;
    /// Frequency estimate (parts per 10¹²).
    pub const FREQ_PPT: usize = 2;
    /// ε at the reference (ns).
    pub const EPS_REF_NS: usize = 3;
    /// Drift bound (parts per 10¹²).
    pub const DRIFT_PPT: usize = 4;
    /// Beyond this ε the interval must not be used (ns).
    pub const MAX_EPS_NS: usize = 5;
    /// After this raw reading the page is void (the writer stopped updating it).
    pub const VOID_AFTER_RAW_NS: usize = 6;
    /// After this raw reading a `synchronized` status reads as `holdover`.
    pub const HOLDOVER_AFTER_RAW_NS: usize = 7;
    /// Status code (`ttcore::ClockStatus::as_u8`).
    pub const STATUS: usize = 8;
    /// Which clock the raw readings are (4 = `CLOCK_MONOTONIC_RAW`).
    pub const CLOCK_ID: usize = 9;
    /// Test knob: raw reading from which the skew applies.
    pub const KNOB_ANCHOR_RAW_NS: usize = 10;
    /// Test knob: extra rate of the host clock (parts per 10¹²).
    pub const KNOB_SKEW_PPT: usize = 11;
    /// Test knob: extra step of the host clock (ns).
    pub const KNOB_STEP_NS: usize = 12;
    /// TAI − UTC (s).
    pub const TAI_MINUS_UTC_S: usize = 13;
    /// UTC midnight (POSIX s) when the next known leap second takes effect; 0 if none.
    pub const NEXT_LEAP_POSIX_S: usize = 14;
    /// +1 / −1 / 0.
    pub const NEXT_LEAP_DELTA: usize = 15;
    /// Raw reading of the last write.
    pub const UPDATED_RAW_NS: usize = 16;
    /// Successful synchronizations since the writer started.
    pub const SYNC_COUNT: usize = 17;
    /// The writer's process id.
    pub const WRITER_PID: usize = 18;
    /// Disruptions seen by the writer.
    pub const DISRUPTIONS: usize = 19;
    /// Fast block (PROTOCOL.md "Fast path"): the model's reference raw reading (a copy).
    pub const FAST_REF_RAW_NS: usize = 20;
    /// Fast block: timescale − raw at the reference (ns, wrapping).
    pub const FAST_BASE_NS: usize = 21;
    /// Fast block: frequency as a signed 64.64 fixed-point fraction, `round(freq × 2⁶⁴)`.
    pub const FAST_FREQ_Q64: usize = 22;
    /// Fast block: ε at the reference plus the fixed-point margin (ns).
    pub const FAST_EPS0_NS: usize = 23;
    /// Fast block: drift bound as 64.64 fixed point, rounded up, `⌈drift × 2⁶⁴⌉`.
    pub const FAST_DRIFT_Q64: usize = 24;
    /// Fast block: the fast path holds for raw readings with `0 ≤ raw − ref < this` (0: never).
    pub const FAST_UNTIL_AGE_NS: usize = 25;
    /// Fast block: the status that holds throughout that window (a copy).
    pub const FAST_STATUS: usize = 26;
    /// Continuity check: raw reading of the writer's last verified (raw, boot) pair (0: none).
    pub const CHECK_RAW_NS: usize = 27;
    /// Continuity check: `boot − raw` of that pair (ns).
    pub const CHECK_BOOT_OFFSET_NS: usize = 28;
}

/// Longest fast-path window (ns, ≈ 73 minutes): keeps every fixed-point product far from
/// overflow (2⁴² × 2⁶¹ < 2¹²⁷).
const FAST_MAX_AGE: i64 = 1 << 42;
/// Largest |rate| the fast block encodes (parts per 10¹²; 10 %).
const FAST_MAX_PPT: i64 = 100_000_000_000;
/// ε margin in the fast block: 1 ns for `floor` of the drift term where the exact rule takes
/// `ceil`, and 1 ns for the fixed-point estimate's floor being up to 1 ns off (on top of the
/// model's own +1 ns).
const FAST_MARGIN_NS: i64 = 3;

/// The fast block for `d` (PROTOCOL.md "Fast path"): fields 20..=26, or all zero (no fast
/// path) when the status is not trustworthy, the test knob is active, or a value is out of the
/// range the fixed-point arithmetic is proven for.
fn fast_block(d: &PageData) -> [i64; 7] {
    let none = [0i64; 7];
    let m = &d.model;
    let (freq, drift) = (m.freq.as_ppt(), m.drift_bound.as_ppt());
    let eps_ref = m.eps_ref.as_nanos();
    if !d.status.is_trustworthy()
        || d.knob.skew.as_ppt() != 0
        || d.knob.step_ns != 0
        || freq.unsigned_abs() > FAST_MAX_PPT as u64
        || !(0..=FAST_MAX_PPT).contains(&drift)
        || !(0..1 << 40).contains(&eps_ref)
        || m.ref_time.as_nanos().unsigned_abs() >= 1 << 62
        || m.ref_raw_ns.unsigned_abs() >= 1 << 62
    {
        return none;
    }
    const Q: i128 = 1 << 64;
    const PPT: i128 = 1_000_000_000_000;
    let freq_q = (freq as i128 * Q + PPT / 2).div_euclid(PPT) as i64;
    let drift_q = ((drift as i128 * Q + PPT - 1) / PPT) as i64;
    let eps0 = eps_ref + FAST_MARGIN_NS;
    let max_eps = d.max_eps.as_nanos();
    let ref_raw = m.ref_raw_ns;
    let mut until = FAST_MAX_AGE;
    until = until.min(d.void_after_raw.saturating_sub(ref_raw));
    if d.status == ClockStatus::Synchronized {
        until = until.min(d.holdover_after_raw.saturating_sub(ref_raw));
    }
    // Largest age whose fast-path ε still fits under max-epsilon:
    // eps0 + ⌊age × drift_q / 2⁶⁴⌋ ≤ max  ⇐  age ≤ (max − eps0) × 2⁶⁴ / drift_q.
    if max_eps < eps0 {
        return none;
    }
    if drift_q > 0 {
        let lim = ((max_eps - eps0) as i128 * Q) / drift_q as i128;
        until = until.min(lim.min(FAST_MAX_AGE as i128) as i64);
    }
    if until <= 0 {
        return none;
    }
    [
        ref_raw,
        m.ref_time.as_nanos().wrapping_sub(ref_raw),
        freq_q,
        eps0,
        drift_q,
        until,
        d.status.as_u8() as i64,
    ]
}

#[repr(C)]
struct PageRaw {
    magic: AtomicU32,
    version: AtomicU16,
    flags: AtomicU16,
    size: AtomicU32,
    reserved: AtomicU32,
    generation: AtomicU64,
    f: [AtomicI64; NFIELDS],
}

const _: () = assert!(std::mem::size_of::<PageRaw>() == PAGE_SIZE);

/// Errors opening or reading a page.
#[derive(Debug, Error)]
pub enum ShmError {
    /// The file could not be opened or mapped.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a TrueTime page (magic), or a layout this code does not know (version), or too small.
    #[error("{path}: {what}")]
    Format {
        /// Path.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// The writer has held the page mid-update for too long (it may have died while writing).
    #[error("page is being written (generation stays odd)")]
    Busy,
}

/// A host-clock transform used only by tests: the host's clock as everyone on it sees it is
/// `raw + step + skew × (raw − anchor)`. All zero in production.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Knob {
    /// Raw reading (ns) from which the skew applies.
    pub anchor_raw_ns: i64,
    /// Extra rate (ppt).
    pub skew: Rate,
    /// Extra step (ns).
    pub step_ns: i64,
}

impl Knob {
    /// The host clock reading for a real raw reading.
    pub fn apply(&self, raw: i64) -> i64 {
        if self.skew == Rate::ZERO && self.step_ns == 0 {
            return raw;
        }
        raw.saturating_add(self.step_ns).saturating_add(
            self.skew
                .apply(Span::from_nanos(raw.saturating_sub(self.anchor_raw_ns)))
                .as_nanos(),
        )
    }
}

/// Everything the page says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageData {
    /// The raw → timescale model.
    pub model: ClockModel,
    /// Status as written.
    pub status: ClockStatus,
    /// Maximum usable ε.
    pub max_eps: Span,
    /// Raw reading after which the page is void.
    pub void_after_raw: i64,
    /// Raw reading after which `synchronized` reads as `holdover`.
    pub holdover_after_raw: i64,
    /// The test knob.
    pub knob: Knob,
    /// TAI − UTC (s).
    pub tai_minus_utc_s: i64,
    /// Next leap second: effective POSIX s (0 = none).
    pub next_leap_posix_s: i64,
    /// Next leap second: delta.
    pub next_leap_delta: i64,
    /// Raw reading of the write.
    pub updated_raw: i64,
    /// Syncs so far.
    pub sync_count: i64,
    /// Writer pid.
    pub writer_pid: i64,
    /// Disruptions seen.
    pub disruptions: i64,
    /// The writer's last verified (raw, boot) pair, against which readers check that the raw
    /// clock has run continuously since (PROTOCOL.md, reading step 3). `None`: no check.
    pub clock_check: Option<ClockPair>,
    /// The VMClock disruption marker timed last verified, when it watches a VMClock device
    /// (header `flags` bit 0 and `reserved`: the marker's low 32 bits). Readers that can map the
    /// device compare it on every read.
    pub vmclock_marker: Option<u64>,
}

/// PROTOCOL.md reading step 3, for every reader: has the raw clock run continuously from the
/// writer's verified pair to this reader's (`raw`, then `boot`, read in that order)? The rule is
/// [`ttcore::disrupt::check`]; a page without a pair (`check_raw == 0`) passes.
#[inline(always)]
pub fn continuous(check_raw: i64, check_boot_offset: i64, raw: i64, boot: i64) -> bool {
    check_raw == 0
        || ttcore::disrupt::check(
            ClockPair {
                raw: check_raw,
                boot: check_raw.wrapping_add(check_boot_offset),
                gap: 0,
            },
            ClockPair { raw, boot, gap: 0 },
        )
        .is_ok()
}

/// Why a reading's status is what it is (beyond the written status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Degraded {
    /// As written.
    No,
    /// The page is past `void_after`: its writer stopped.
    Void,
    /// ε is beyond the maximum.
    EpsilonTooLarge,
    /// No fresh sync for a while.
    Stale,
}

/// An interval and the status it may be used under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// The interval.
    pub interval: TTInterval,
    /// The status, after the time-dependent checks.
    pub status: ClockStatus,
    /// Why the status differs from the written one, if it does.
    pub degraded: Degraded,
    /// The host clock reading used (after the knob).
    pub raw: i64,
}

/// A page's status code; an unknown code is never trusted.
#[inline(always)]
fn decode_status(code: i64) -> ClockStatus {
    match code {
        1 => ClockStatus::Synchronized,
        2 => ClockStatus::Holdover,
        4 => ClockStatus::Disrupted,
        _ => ClockStatus::Unsynchronized,
    }
}

/// The time-dependent trust rule (PROTOCOL.md, reading step 5), for every reader: a page past
/// `void_after` or a trustworthy status whose ε exceeds the maximum reads as unsynchronized; a
/// synchronized page past `holdover_after` reads as holdover.
#[inline(always)]
fn degrade(
    written: ClockStatus,
    raw: i64,
    eps_ns: i64,
    max_eps_ns: i64,
    void_after: i64,
    holdover_after: i64,
) -> (ClockStatus, Degraded) {
    if raw > void_after {
        (ClockStatus::Unsynchronized, Degraded::Void)
    } else if written.is_trustworthy() && eps_ns > max_eps_ns {
        (ClockStatus::Unsynchronized, Degraded::EpsilonTooLarge)
    } else if written == ClockStatus::Synchronized && raw > holdover_after {
        (ClockStatus::Holdover, Degraded::Stale)
    } else {
        (written, Degraded::No)
    }
}

impl PageData {
    /// The interval and status at real raw reading `raw_real` (`CLOCK_MONOTONIC_RAW`).
    pub fn read_at(&self, raw_real: i64) -> Reading {
        let raw = self.knob.apply(raw_real);
        let interval = self.model.interval_at(raw);
        let (status, degraded) = degrade(
            self.status,
            raw,
            self.model.epsilon_at(raw).as_nanos(),
            self.max_eps.as_nanos(),
            self.void_after_raw,
            self.holdover_after_raw,
        );
        Reading {
            interval,
            status,
            degraded,
            raw,
        }
    }

    fn to_fields(self) -> [i64; NFIELDS] {
        let mut f = [0i64; NFIELDS];
        f[field::REF_RAW_NS] = self.model.ref_raw_ns;
        f[field::REF_TIME_NS] = self.model.ref_time.as_nanos();
        f[field::FREQ_PPT] = self.model.freq.as_ppt();
        f[field::EPS_REF_NS] = self.model.eps_ref.as_nanos();
        f[field::DRIFT_PPT] = self.model.drift_bound.as_ppt();
        f[field::MAX_EPS_NS] = self.max_eps.as_nanos();
        f[field::VOID_AFTER_RAW_NS] = self.void_after_raw;
        f[field::HOLDOVER_AFTER_RAW_NS] = self.holdover_after_raw;
        f[field::STATUS] = self.status.as_u8() as i64;
        f[field::CLOCK_ID] = CLOCK_MONOTONIC_RAW_ID;
        f[field::KNOB_ANCHOR_RAW_NS] = self.knob.anchor_raw_ns;
        f[field::KNOB_SKEW_PPT] = self.knob.skew.as_ppt();
        f[field::KNOB_STEP_NS] = self.knob.step_ns;
        f[field::TAI_MINUS_UTC_S] = self.tai_minus_utc_s;
        f[field::NEXT_LEAP_POSIX_S] = self.next_leap_posix_s;
        f[field::NEXT_LEAP_DELTA] = self.next_leap_delta;
        f[field::UPDATED_RAW_NS] = self.updated_raw;
        f[field::SYNC_COUNT] = self.sync_count;
        f[field::WRITER_PID] = self.writer_pid;
        f[field::DISRUPTIONS] = self.disruptions;
        f[field::FAST_REF_RAW_NS..=field::FAST_STATUS].copy_from_slice(&fast_block(&self));
        if let Some(c) = self.clock_check {
            f[field::CHECK_RAW_NS] = c.raw;
            f[field::CHECK_BOOT_OFFSET_NS] = c.offset();
        }
        f
    }

    fn from_fields(f: &[i64; NFIELDS]) -> Self {
        PageData {
            model: ClockModel {
                ref_raw_ns: f[field::REF_RAW_NS],
                ref_time: Timestamp::from_nanos(f[field::REF_TIME_NS]),
                freq: Rate::from_ppt(f[field::FREQ_PPT]),
                eps_ref: Span::from_nanos(f[field::EPS_REF_NS]),
                drift_bound: Rate::from_ppt(f[field::DRIFT_PPT]),
            },
            status: decode_status(f[field::STATUS]),
            max_eps: Span::from_nanos(f[field::MAX_EPS_NS]),
            void_after_raw: f[field::VOID_AFTER_RAW_NS],
            holdover_after_raw: f[field::HOLDOVER_AFTER_RAW_NS],
            knob: Knob {
                anchor_raw_ns: f[field::KNOB_ANCHOR_RAW_NS],
                skew: Rate::from_ppt(f[field::KNOB_SKEW_PPT]),
                step_ns: f[field::KNOB_STEP_NS],
            },
            tai_minus_utc_s: f[field::TAI_MINUS_UTC_S],
            next_leap_posix_s: f[field::NEXT_LEAP_POSIX_S],
            next_leap_delta: f[field::NEXT_LEAP_DELTA],
            updated_raw: f[field::UPDATED_RAW_NS],
            sync_count: f[field::SYNC_COUNT],
            writer_pid: f[field::WRITER_PID],
            disruptions: f[field::DISRUPTIONS],
            clock_check: (f[field::CHECK_RAW_NS] != 0).then(|| ClockPair {
                raw: f[field::CHECK_RAW_NS],
                boot: f[field::CHECK_RAW_NS].wrapping_add(f[field::CHECK_BOOT_OFFSET_NS]),
                gap: 0,
            }),
            vmclock_marker: None,
        }
    }

    /// A page that says "unsynchronized" (what a writer publishes before its first sync).
    pub fn unsynchronized(now_raw: i64) -> Self {
        PageData {
            model: ClockModel {
                ref_raw_ns: now_raw,
                ref_time: Timestamp::EPOCH,
                freq: Rate::ZERO,
                eps_ref: Span::MAX,
                drift_bound: Rate::ZERO,
            },
            status: ClockStatus::Unsynchronized,
            max_eps: Span::ZERO,
            void_after_raw: now_raw,
            holdover_after_raw: now_raw,
            knob: Knob::default(),
            tai_minus_utc_s: 0,
            next_leap_posix_s: 0,
            next_leap_delta: 0,
            updated_raw: now_raw,
            sync_count: 0,
            writer_pid: std::process::id() as i64,
            disruptions: 0,
            clock_check: None,
            vmclock_marker: None,
        }
    }
}

fn view(ptr: *const u8) -> &'static PageRaw {
    // SAFETY: see the module docs; callers pass the start of a live mapping of PAGE_SIZE bytes
    // that outlives the returned reference's uses (both are owned by the same struct).
    unsafe { &*(ptr as *const PageRaw) }
}

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
    pub fn continuous(&self, raw_real: i64, boot: i64, vm: Option<u64>) -> bool {
        continuous(self.check_raw, self.check_offset, raw_real, boot) && vm_consistent(self.vm, vm)
    }

    /// The interval and status at real raw reading `raw_real` — the same answer as
    /// [`PageData::read_at`] widened by at most 1 ns, computed without 128-bit division.
    ///
    /// Exactness: the products `freq × age` and `drift × age` (ns) are formed in `f64`; for
    /// |product| < 2⁵⁰ ns (13 days at 1000 ppm… any realistic age) the `f64` error is below
    /// 0.25 ns, so the floor and ceiling differ from the exact integer ones by at most 1. One
    /// extra nanosecond of ε therefore makes this interval contain the exact one.
    #[inline]
    pub fn at(&self, raw_real: i64) -> (TTInterval, ClockStatus) {
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
                    raw_real,
                    eps,
                    self.max_eps,
                    self.void_after,
                    self.holdover_after,
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
            raw,
            eps,
            self.max_eps,
            self.void_after,
            self.holdover_after,
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
    pub fn continuous(&self, raw_real: i64, boot: i64, vm: Option<u64>) -> bool {
        continuous(self.check_raw, self.check_offset, raw_real, boot) && vm_consistent(self.vm, vm)
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
    pub fn at(&self, raw_real: i64) -> Option<(TTInterval, ClockStatus)> {
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

/// The page's VMClock marker (low 32 bits), if timed watches one; relaxed, under the seqlock.
#[inline(always)]
fn vm_marker(p: &PageRaw) -> Option<u32> {
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
fn ld(f: &[AtomicI64; NFIELDS], i: usize) -> i64 {
    f[i].load(Ordering::Relaxed)
}

/// `⌊x⌋` for |x| < 2⁶³ without a libm call (baseline x86-64 has no rounding instruction).
#[inline(always)]
fn floor_i64(x: f64) -> i64 {
    let t = x as i64;
    if (t as f64) > x {
        t.saturating_sub(1)
    } else {
        t
    }
}

/// `⌈x⌉` for |x| < 2⁶³ without a libm call.
#[inline(always)]
fn ceil_i64(x: f64) -> i64 {
    let t = x as i64;
    if (t as f64) < x {
        t.saturating_add(1)
    } else {
        t
    }
}

/// The writer side (one per page, in `timed`).
pub struct PageWriter {
    map: MmapMut,
    path: PathBuf,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ShmError + '_ {
    move |source| ShmError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl PageWriter {
    /// Opens the page at `path`, reusing an existing valid page (so readers that mapped it
    /// before a restart keep seeing updates), or creating it: written to a temporary file, sized
    /// and initialised as unsynchronized, then renamed into place. Mode 0644: readable by all,
    /// writable only by the owner.
    pub fn open(path: &Path) -> Result<PageWriter, ShmError> {
        if let Ok(f) = OpenOptions::new().read(true).write(true).open(path)
            && f.metadata()
                .map(|m| m.len() as usize == PAGE_SIZE)
                .unwrap_or(false)
        {
            // SAFETY: a shared mapping of a file we own and never truncate while mapped.
            let map = unsafe { MmapMut::map_mut(&f) }.map_err(io(path))?;
            let p = view(map.as_ptr());
            if p.magic.load(Ordering::Relaxed) == MAGIC
                && p.version.load(Ordering::Relaxed) == VERSION
            {
                let mut w = PageWriter {
                    map,
                    path: path.to_path_buf(),
                };
                // A writer that died mid-update left the generation odd: close it.
                let g = w.raw().generation.load(Ordering::Relaxed);
                if g % 2 == 1 {
                    w.raw().generation.store(g + 1, Ordering::Release);
                }
                return Ok(w);
            }
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            path.file_name().and_then(|s| s.to_str()).unwrap_or("page"),
            std::process::id()
        ));
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.set_len(PAGE_SIZE as u64).map_err(io(&tmp))?;
        let _ = f.set_permissions(std::fs::Permissions::from_mode(0o644));
        // SAFETY: as above.
        let map = unsafe { MmapMut::map_mut(&f) }.map_err(io(&tmp))?;
        let mut w = PageWriter {
            map,
            path: path.to_path_buf(),
        };
        {
            let p = w.raw();
            p.version.store(VERSION, Ordering::Relaxed);
            p.size.store(PAGE_SIZE as u32, Ordering::Relaxed);
            p.generation.store(0, Ordering::Relaxed);
        }
        w.write(&PageData::unsynchronized(crate::clock::raw_ns()));
        // The magic last: a reader that sees it sees an initialised page.
        w.raw().magic.store(MAGIC, Ordering::Release);
        w.map.flush().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
        Ok(w)
    }

    fn raw(&mut self) -> &PageRaw {
        view(self.map.as_ptr())
    }

    /// The page's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Publishes `d` (seqlock: generation odd during the update).
    pub fn write(&mut self, d: &PageData) {
        let f = d.to_fields();
        let p = self.raw();
        let g = p.generation.load(Ordering::Relaxed);
        let odd = if g % 2 == 0 { g + 1 } else { g };
        p.generation.store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        for (slot, v) in p.f.iter().zip(f) {
            slot.store(v, Ordering::Relaxed);
        }
        p.flags
            .store(u16::from(d.vmclock_marker.is_some()), Ordering::Relaxed);
        p.reserved
            .store(d.vmclock_marker.unwrap_or(0) as u32, Ordering::Relaxed);
        p.generation.store(odd + 1, Ordering::Release);
    }
}

/// The reader side (the SDK's fast path).
pub struct PageReader {
    map: Mmap,
    _file: File,
}

impl PageReader {
    /// Maps the page at `path` read-only after checking magic, version and size.
    pub fn open(path: &Path) -> Result<PageReader, ShmError> {
        let f = File::open(path).map_err(io(path))?;
        let len = f.metadata().map_err(io(path))?.len() as usize;
        let fmt = |what: String| ShmError::Format {
            path: path.display().to_string(),
            what,
        };
        if len < PAGE_SIZE {
            return Err(fmt(format!("file is {len} bytes, a page is {PAGE_SIZE}")));
        }
        // SAFETY: read-only shared mapping; size checked above; see the module docs.
        let map = unsafe { Mmap::map(&f) }.map_err(io(path))?;
        let p = view(map.as_ptr());
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
        let p = view(self.map.as_ptr());
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
        let p = view(self.map.as_ptr());
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
            ref_raw: d.model.ref_raw_ns,
            ref_time: d.model.ref_time.as_nanos(),
            freq_ppt: d.model.freq.as_ppt(),
            eps_ref: d.model.eps_ref.as_nanos(),
            drift_ppt: d.model.drift_bound.as_ppt(),
            max_eps: d.max_eps.as_nanos(),
            void_after: d.void_after_raw,
            holdover_after: d.holdover_after_raw,
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
        view(self.map.as_ptr()).generation.load(Ordering::Acquire)
    }
}

// ----- ClockBound v2 -----------------------------------------------------------------------

/// ClockBound's magic.
pub const CB_MAGIC: [u32; 2] = [0x414D_5A4E, 0x4342_0200];
/// ClockBound layout version.
pub const CB_VERSION: u16 = 2;
/// ClockBound clock status codes.
pub mod cb_status {
    /// Unknown.
    pub const UNKNOWN: i32 = 0;
    /// Synchronized.
    pub const SYNCHRONIZED: i32 = 1;
    /// Free running (our holdover).
    pub const FREE_RUNNING: i32 = 2;
    /// Disrupted.
    pub const DISRUPTED: i32 = 3;
}

#[repr(C, align(8))]
struct CbSegment {
    magic: [AtomicU32; 2],
    segsize: AtomicU32,
    version: AtomicU16,
    generation: AtomicU16,
    as_of_sec: AtomicI64,
    as_of_nsec: AtomicI64,
    void_after_sec: AtomicI64,
    void_after_nsec: AtomicI64,
    bound_nsec: AtomicI64,
    disruption_marker: AtomicU64,
    max_drift_ppb: AtomicU32,
    clock_status: AtomicI32,
    disruption_support: AtomicU8,
    pad: [AtomicU8; 7],
}

/// Size of a ClockBound v2 segment: a 16-byte header and a 64-byte `ClockErrorBound`.
pub const CB_SIZE: usize = 80;
const _: () = assert!(std::mem::size_of::<CbSegment>() == CB_SIZE);

/// What goes into a ClockBound segment. ClockBound clients compute
/// `[CLOCK_REALTIME − b, CLOCK_REALTIME + b]` with
/// `b = bound_nsec + (CLOCK_MONOTONIC − as_of) × max_drift_ppb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockBoundData {
    /// `CLOCK_MONOTONIC` (ns) the bound refers to.
    pub as_of_mono_ns: i64,
    /// `CLOCK_MONOTONIC` (ns) after which clients report `Unknown`.
    pub void_after_mono_ns: i64,
    /// |CLOCK_REALTIME − true time| bound at `as_of` (ns).
    pub bound_ns: i64,
    /// Growth of the bound (parts per 10⁹).
    pub max_drift_ppb: u32,
    /// A `cb_status` code.
    pub status: i32,
    /// Incremented on each disruption.
    pub disruption_marker: u64,
}

/// Writes an AWS ClockBound shared-memory segment (protocol version 2), so programs built on
/// ClockBound's client libraries read TrueTime's bound unchanged.
pub struct ClockBoundWriter {
    map: MmapMut,
}

impl ClockBoundWriter {
    /// Creates (or takes over) the segment at `path`.
    pub fn open(path: &Path) -> Result<ClockBoundWriter, ShmError> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map_err(io(path))?;
        f.set_len(CB_SIZE as u64).map_err(io(path))?;
        // SAFETY: shared mapping of a file sized to the struct; see the module docs.
        let map = unsafe { MmapMut::map_mut(&f) }.map_err(io(path))?;
        let w = ClockBoundWriter { map };
        let s = w.seg();
        s.segsize.store(CB_SIZE as u32, Ordering::Relaxed);
        s.magic[0].store(CB_MAGIC[0], Ordering::Relaxed);
        s.magic[1].store(CB_MAGIC[1], Ordering::Relaxed);
        s.version.store(CB_VERSION, Ordering::Release);
        Ok(w)
    }

    fn seg(&self) -> &CbSegment {
        // SAFETY: see the module docs (CB_SIZE-byte mapping, struct of atomics, page-aligned).
        unsafe { &*(self.map.as_ptr() as *const CbSegment) }
    }

    /// Publishes `d` (ClockBound's seqlock: odd generation while writing, never 0 after).
    pub fn write(&mut self, d: &ClockBoundData) {
        let s = self.seg();
        let g = s.generation.load(Ordering::Acquire);
        let odd = if g % 2 == 0 { g.wrapping_add(1) } else { g };
        s.generation.store(odd, Ordering::Release);
        fence(Ordering::Release);
        s.as_of_sec
            .store(d.as_of_mono_ns.div_euclid(1_000_000_000), Ordering::Relaxed);
        s.as_of_nsec
            .store(d.as_of_mono_ns.rem_euclid(1_000_000_000), Ordering::Relaxed);
        s.void_after_sec.store(
            d.void_after_mono_ns.div_euclid(1_000_000_000),
            Ordering::Relaxed,
        );
        s.void_after_nsec.store(
            d.void_after_mono_ns.rem_euclid(1_000_000_000),
            Ordering::Relaxed,
        );
        s.bound_nsec.store(d.bound_ns, Ordering::Relaxed);
        s.disruption_marker
            .store(d.disruption_marker, Ordering::Relaxed);
        s.max_drift_ppb.store(d.max_drift_ppb, Ordering::Relaxed);
        s.clock_status.store(d.status, Ordering::Relaxed);
        s.disruption_support.store(0, Ordering::Relaxed);
        let mut next = odd.wrapping_add(1);
        if next == 0 {
            next = 2;
        }
        s.generation.store(next, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(v: i64) -> PageData {
        let mut d = PageData::unsynchronized(v);
        d.model = ClockModel {
            ref_raw_ns: v,
            ref_time: Timestamp::from_nanos(v),
            freq: Rate::from_ppt(v),
            eps_ref: Span::from_nanos(v),
            drift_bound: Rate::from_ppt(v),
        };
        d.status = ClockStatus::Synchronized;
        d.max_eps = Span::from_nanos(v);
        d.void_after_raw = v;
        d.holdover_after_raw = v;
        d
    }

    #[test]
    fn layout_offsets() {
        assert_eq!(std::mem::offset_of!(PageRaw, generation), 16);
        assert_eq!(std::mem::offset_of!(PageRaw, f), 24);
        assert_eq!(std::mem::offset_of!(CbSegment, as_of_sec), 16);
        assert_eq!(std::mem::offset_of!(CbSegment, bound_nsec), 48);
        assert_eq!(std::mem::offset_of!(CbSegment, max_drift_ppb), 64);
        assert_eq!(std::mem::offset_of!(CbSegment, clock_status), 68);
        assert_eq!(std::mem::offset_of!(CbSegment, disruption_support), 72);
    }

    #[test]
    fn round_trip_and_reuse_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("page");
        let mut w = PageWriter::open(&path).unwrap();
        let r = PageReader::open(&path).unwrap();
        assert_eq!(r.read().unwrap().status, ClockStatus::Unsynchronized);
        w.write(&data(42));
        assert_eq!(r.read().unwrap(), data(42));
        let g = r.generation();
        drop(w);
        // A restarted writer reuses the file: the old reader sees its updates.
        let mut w2 = PageWriter::open(&path).unwrap();
        w2.write(&data(43));
        assert_eq!(r.read().unwrap(), data(43));
        assert!(r.generation() > g);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn readers_never_see_a_torn_page() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("page");
        let mut w = PageWriter::open(&path).unwrap();
        w.write(&data(1));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let p2 = path.clone();
        let reader = std::thread::spawn(move || {
            let r = PageReader::open(&p2).unwrap();
            let mut n = 0u64;
            while !s2.load(Ordering::Relaxed) {
                let d = r.read().unwrap();
                // Every field was written with the same value: any mix is a torn read.
                let v = d.model.ref_raw_ns;
                assert_eq!(d, data(v), "torn read");
                n += 1;
            }
            n
        });
        for v in 2..200_000 {
            w.write(&data(v));
            if v % 16 == 0 {
                std::thread::yield_now();
            }
        }
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    }

    #[test]
    fn bad_pages_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, [0u8; 10]).unwrap();
        assert!(matches!(
            PageReader::open(&small),
            Err(ShmError::Format { .. })
        ));
        let junk = dir.path().join("junk");
        std::fs::write(&junk, [7u8; PAGE_SIZE]).unwrap();
        let e = PageReader::open(&junk).err().unwrap().to_string();
        assert!(e.contains("bad magic"), "{e}");
        assert!(matches!(
            PageReader::open(&dir.path().join("missing")),
            Err(ShmError::Io { .. })
        ));
        // A writer refuses nothing: it replaces junk with a fresh page.
        PageWriter::open(&junk).unwrap();
        assert!(PageReader::open(&junk).is_ok());
    }

    use proptest::prelude::*;

    /// A page with model `[ref_raw, ref_time, freq_ppt, eps_ref, drift_ppt]`, `status`, and
    /// holdover 5 s after the reference.
    fn page_data(m: [i64; 5], status: u8) -> PageData {
        let mut d = PageData::unsynchronized(0);
        d.model = ClockModel {
            ref_raw_ns: m[0],
            ref_time: Timestamp::from_nanos(m[1]),
            freq: Rate::from_ppt(m[2]),
            eps_ref: Span::from_nanos(m[3]),
            drift_bound: Rate::from_ppt(m[4]),
        };
        d.status = ClockStatus::from_u8(status).unwrap();
        d.holdover_after_raw = m[0] + 5_000_000_000;
        d
    }

    /// Writes `d` to a fresh page and opens a reader on it.
    fn published(d: &PageData) -> (tempfile::TempDir, PageReader) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        PageWriter::open(&path).unwrap().write(d);
        let r = PageReader::open(&path).unwrap();
        (dir, r)
    }

    proptest! {
        // The hot path's interval contains the exact one and its status is the same.
        #[test]
        fn hot_path_contains_the_exact_interval(
            ref_raw in 0i64..1_000_000_000_000_000,
            ref_time in 1_000_000_000_000_000_000i64..2_000_000_000_000_000_000,
            freq in -1_000_000_000i64..1_000_000_000,
            eps in 0i64..100_000_000,
            drift in 0i64..1_000_000_000,
            age in -100_000_000_000_000i64..1_000_000_000_000_000,
            status in 1u8..5,
            skew in prop_oneof![Just(0i64), -1_000_000_000i64..1_000_000_000],
            step in prop_oneof![Just(0i64), -10_000_000i64..10_000_000],
        ) {
            let mut d = page_data([ref_raw, ref_time, freq, eps, drift], status);
            d.max_eps = Span::from_millis(500);
            d.void_after_raw = ref_raw + 500_000_000_000;
            d.knob = Knob { anchor_raw_ns: ref_raw, skew: Rate::from_ppt(skew), step_ns: step };
            let (_dir, r) = published(&d);
            let raw = ref_raw + age;
            let exact = r.read().unwrap().read_at(raw);
            let (iv, st) = r.read_hot().unwrap().at(raw);
            prop_assert!(iv.earliest() <= exact.interval.earliest() && iv.latest() >= exact.interval.latest(), "{iv} vs {}", exact.interval);
            prop_assert!(iv.width().as_nanos() - exact.interval.width().as_nanos() <= 4);
            // The status may differ only where ε sits within 2 ns of max-epsilon.
            if (exact.interval.epsilon().as_nanos() - d.max_eps.as_nanos()).abs() > 4 {
                prop_assert_eq!(st, exact.status);
            }
        }
    }

    proptest! {
        // The fast block's interval contains the exact one, is at most 6 ns wider, and comes
        // with the exact status; outside its window it declines.
        #[test]
        fn fast_block_contains_the_exact_interval(
            ref_raw in 0i64..1_000_000_000_000_000,
            ref_time in 1_000_000_000_000_000_000i64..2_000_000_000_000_000_000,
            freq in -1_000_000_000i64..1_000_000_000,
            eps in 0i64..100_000_000,
            drift in 0i64..1_000_000_000,
            age in prop_oneof![2 => 0i64..6_000_000_000, 1 => -100_000_000_000i64..4_000_000_000_000],
            status in prop_oneof![3 => 1u8..3, 1 => 3u8..5],
            max_eps_ms in 1i64..1000,
            knob in prop_oneof![3 => Just(0i64), 1 => 1i64..1_000_000],
        ) {
            let mut d = page_data([ref_raw, ref_time, freq, eps, drift], status);
            d.max_eps = Span::from_millis(max_eps_ms);
            d.void_after_raw = ref_raw + 2_000_000_000_000;
            d.knob = Knob { anchor_raw_ns: ref_raw, skew: Rate::from_ppt(knob), step_ns: 0 };
            let (_dir, r) = published(&d);
            let raw = ref_raw + age;
            let exact = r.read().unwrap().read_at(raw);
            match r.read_fast().at(raw) {
                Some((iv, st)) => {
                    prop_assert!(knob == 0 && status <= 2 && age >= 0);
                    prop_assert!(iv.earliest() <= exact.interval.earliest() && iv.latest() >= exact.interval.latest(), "{iv} vs {}", exact.interval);
                    prop_assert!(iv.width().as_nanos() - exact.interval.width().as_nanos() <= 6);
                    prop_assert_eq!(st, exact.status);
                    prop_assert!(iv.epsilon() <= d.max_eps);
                }
                None => {
                    // Declining is always allowed; it must happen where the fast rule would
                    // be wrong (these are the cases the slow path exists for).
                    let must_decline = knob != 0 || status > 2 || age < 0
                        || raw >= d.void_after_raw
                        || (status == 1 && raw >= d.holdover_after_raw);
                    let eps_headroom = d.max_eps.as_nanos() - exact.interval.epsilon().as_nanos();
                    prop_assert!(must_decline || eps_headroom <= 8, "declined with {eps_headroom} ns of headroom");
                }
            }
        }
    }

    #[test]
    fn the_fast_block_declines_untrustworthy_pages_and_the_knob() {
        let mut d = PageData::unsynchronized(1_000);
        assert_eq!(fast_block(&d), [0; 7]);
        d.status = ClockStatus::Synchronized;
        d.model.eps_ref = Span::from_micros(10);
        d.model.ref_time = Timestamp::from_nanos(1_700_000_000_000_000_000);
        d.max_eps = Span::from_millis(1);
        d.void_after_raw = 1_000 + 10_000_000_000;
        d.holdover_after_raw = 1_000 + 1_000_000_000;
        let b = fast_block(&d);
        assert_eq!(b[5], 1_000_000_000, "the window ends at holdover_after");
        // Inside the window the reader takes the fast path and agrees with the exact reading.
        let (_dir, r) = published(&d);
        let (iv, st) = r
            .read_fast()
            .at(1_000 + 500_000_000)
            .expect("inside the window");
        let exact = r.read().unwrap().read_at(1_000 + 500_000_000);
        assert_eq!(st, exact.status);
        assert!(
            iv.earliest() <= exact.interval.earliest() && iv.latest() >= exact.interval.latest()
        );
        assert!(
            r.read_fast().at(1_000 + 1_000_000_000).is_none(),
            "declines at holdover_after"
        );
        d.status = ClockStatus::Holdover;
        assert_eq!(
            fast_block(&d)[5],
            10_000_000_000,
            "… or at void_after in holdover"
        );
        d.knob.step_ns = 5;
        assert_eq!(fast_block(&d), [0; 7]);
    }

    #[test]
    fn floor_and_ceil_without_libm() {
        for x in [
            -2.5,
            -2.0,
            -0.5,
            0.0,
            0.5,
            2.0,
            2.5,
            1e15 + 0.5,
            -1e15 - 0.5,
        ] {
            assert_eq!(floor_i64(x), x.floor() as i64, "{x}");
            assert_eq!(ceil_i64(x), x.ceil() as i64, "{x}");
        }
    }

    #[test]
    fn time_dependent_status() {
        let mut d = data(0);
        d.model = ClockModel {
            ref_raw_ns: 1_000,
            ref_time: Timestamp::from_nanos(5_000),
            freq: Rate::ZERO,
            eps_ref: Span::from_nanos(100),
            drift_bound: Rate::from_ppm(200),
        };
        d.max_eps = Span::from_nanos(300);
        d.holdover_after_raw = 500_000;
        d.void_after_raw = 10_000_000;
        assert_eq!(d.read_at(2_000).status, ClockStatus::Synchronized);
        assert_eq!(d.read_at(600_000).degraded, Degraded::Stale);
        assert_eq!(d.read_at(600_000).status, ClockStatus::Holdover);
        // ε = 100 ns + 200 ppm × age: 220 ns at 0.6 ms, 420 ns at 1.6 ms (> 300 ns).
        assert_eq!(d.read_at(1_600_000).degraded, Degraded::EpsilonTooLarge);
        assert_eq!(d.read_at(20_000_000).degraded, Degraded::Void);
        // The knob: +1 ms step shifts the interval by 1 ms of raw.
        d.knob = Knob {
            anchor_raw_ns: 0,
            skew: Rate::ZERO,
            step_ns: 1_000,
        };
        assert_eq!(d.read_at(2_000).raw, 3_000);
    }
}
