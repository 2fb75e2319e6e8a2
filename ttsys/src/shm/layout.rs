//! The page's byte layout (`timed/PROTOCOL.md`), the fast block, and the data a page holds.

use std::sync::atomic::{AtomicI64, AtomicU16, AtomicU32, AtomicU64};
use ttcore::disrupt::ClockPair;
use ttcore::{ClockModel, ClockStatus, Rate, RawReading, Span, TTInterval, Timestamp};

/// `"TTPG"` read as a little-endian `u32`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"TTPG");
/// Layout version.
pub const VERSION: u16 = 1;
/// Size of the page struct in bytes.
pub const PAGE_SIZE: usize = 320;
/// `clock_id` value for `CLOCK_MONOTONIC_RAW` (Linux).
pub const CLOCK_MONOTONIC_RAW_ID: i64 = 4;
/// Number of `i64` fields after the header.
pub(super) const NFIELDS: usize = 37;

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
    /// Counter block (PROTOCOL.md "Counter path"): the counter at the reference.
    pub const TSC_REF: usize = 29;
    /// Counter block: our estimate at the reference (ns).
    pub const TSC_BASE_NS: usize = 30;
    /// Counter block: timescale ns per tick, fixed point with 62 fraction bits.
    pub const TSC_MULT_Q62: usize = 31;
    /// Counter block: ε at the reference with its margins (ns).
    pub const TSC_EPS0_NS: usize = 32;
    /// Counter block: ε's growth per tick, 62 fraction bits, rounded up.
    pub const TSC_GROW_Q62: usize = 33;
    /// Counter block: the window in ticks (0: no counter path).
    pub const TSC_UNTIL_TICKS: usize = 34;
    /// Counter block: the status that holds throughout the window.
    pub const TSC_STATUS: usize = 35;
    /// Counter block's continuity check: `CLOCK_REALTIME_COARSE − CLOCK_MONOTONIC_COARSE` as
    /// timed read it at its last verified check (ns); it moves by exactly the time a suspend
    /// lasted, and at a step of the system clock.
    pub const TSC_REAL_MINUS_MONO_NS: usize = 36;
}

/// The page's counter block (PROTOCOL.md "Counter path"): our interval as a function of the
/// time-stamp counter, and the offset that must not have moved since timed wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscBlock {
    /// The mapping.
    pub map: ttcore::tsc::TscMap,
    /// The status throughout the window.
    pub status: ClockStatus,
    /// `CLOCK_REALTIME_COARSE − CLOCK_MONOTONIC_COARSE` at timed's check (ns).
    pub real_minus_mono_ns: i64,
}

/// Longest fast-path window (ns, ≈ 73 minutes): keeps every fixed-point product far from
/// overflow (2⁴² × 2⁶¹ < 2¹²⁷).
pub(super) const FAST_MAX_AGE: i64 = 1 << 42;
/// Largest |rate| the fast block encodes (parts per 10¹²; 10 %).
pub(super) const FAST_MAX_PPT: i64 = 100_000_000_000;
/// ε margin in the fast block: 1 ns for `floor` of the drift term where the exact rule takes
/// `ceil`, and 1 ns for the fixed-point estimate's floor being up to 1 ns off (on top of the
/// model's own +1 ns).
pub(super) const FAST_MARGIN_NS: i64 = 3;

/// The fast block for `d` (PROTOCOL.md "Fast path"): fields 20..=26, or all zero (no fast
/// path) when the status is not trustworthy, the test knob is active, or a value is out of the
/// range the fixed-point arithmetic is proven for.
pub(super) fn fast_block(d: &PageData) -> [i64; 7] {
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
        || m.ref_raw.as_nanos().unsigned_abs() >= 1 << 62
    {
        return none;
    }
    const Q: i128 = 1 << 64;
    const PPT: i128 = 1_000_000_000_000;
    let freq_q = (freq as i128 * Q + PPT / 2).div_euclid(PPT) as i64;
    let drift_q = ((drift as i128 * Q + PPT - 1) / PPT) as i64;
    let eps0 = eps_ref + FAST_MARGIN_NS;
    let max_eps = d.max_eps.as_nanos();
    let ref_raw = m.ref_raw.as_nanos();
    let mut until = FAST_MAX_AGE;
    until = until.min(d.void_after_raw.since(m.ref_raw).as_nanos());
    if d.status == ClockStatus::Synchronized {
        until = until.min(d.holdover_after_raw.since(m.ref_raw).as_nanos());
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
pub(super) struct PageRaw {
    pub(super) magic: AtomicU32,
    pub(super) version: AtomicU16,
    pub(super) flags: AtomicU16,
    pub(super) size: AtomicU32,
    pub(super) reserved: AtomicU32,
    pub(super) generation: AtomicU64,
    pub(super) f: [AtomicI64; NFIELDS],
}

const _: () = assert!(std::mem::size_of::<PageRaw>() == PAGE_SIZE);

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
    pub fn apply(&self, raw: RawReading) -> RawReading {
        if self.skew == Rate::ZERO && self.step_ns == 0 {
            return raw;
        }
        let raw = raw.as_nanos();
        RawReading::from_nanos(
            raw.saturating_add(self.step_ns).saturating_add(
                self.skew
                    .apply(Span::from_nanos(raw.saturating_sub(self.anchor_raw_ns)))
                    .as_nanos(),
            ),
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
    pub void_after_raw: RawReading,
    /// Raw reading after which `synchronized` reads as `holdover`.
    pub holdover_after_raw: RawReading,
    /// The test knob.
    pub knob: Knob,
    /// TAI − UTC (s).
    pub tai_minus_utc_s: i64,
    /// Next leap second: effective POSIX s (0 = none).
    pub next_leap_posix_s: i64,
    /// Next leap second: delta.
    pub next_leap_delta: i64,
    /// Raw reading of the write.
    pub updated_raw: RawReading,
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
    /// The counter block, when timed has a calibrated counter and a trustworthy interval.
    pub tsc: Option<TscBlock>,
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
    pub raw: RawReading,
}

/// A page's status code; an unknown code is never trusted.
#[inline(always)]
pub(super) fn decode_status(code: i64) -> ClockStatus {
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
pub(super) fn degrade(
    written: ClockStatus,
    raw: RawReading,
    eps_ns: i64,
    max_eps_ns: i64,
    void_after: RawReading,
    holdover_after: RawReading,
) -> (ClockStatus, Degraded) {
    if raw > void_after {
        (ClockStatus::Unsynchronized, Degraded::Void)
    } else if written.within(Span::from_nanos(eps_ns), Span::from_nanos(max_eps_ns)) != written {
        (ClockStatus::Unsynchronized, Degraded::EpsilonTooLarge)
    } else if written == ClockStatus::Synchronized && raw > holdover_after {
        (ClockStatus::Holdover, Degraded::Stale)
    } else {
        (written, Degraded::No)
    }
}

impl PageData {
    /// The interval and status at real raw reading `raw_real` (`CLOCK_MONOTONIC_RAW`).
    pub fn read_at(&self, raw_real: RawReading) -> Reading {
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

    pub(super) fn to_fields(self) -> [i64; NFIELDS] {
        let mut f = [0i64; NFIELDS];
        f[field::REF_RAW_NS] = self.model.ref_raw.as_nanos();
        f[field::REF_TIME_NS] = self.model.ref_time.as_nanos();
        f[field::FREQ_PPT] = self.model.freq.as_ppt();
        f[field::EPS_REF_NS] = self.model.eps_ref.as_nanos();
        f[field::DRIFT_PPT] = self.model.drift_bound.as_ppt();
        f[field::MAX_EPS_NS] = self.max_eps.as_nanos();
        f[field::VOID_AFTER_RAW_NS] = self.void_after_raw.as_nanos();
        f[field::HOLDOVER_AFTER_RAW_NS] = self.holdover_after_raw.as_nanos();
        f[field::STATUS] = self.status.as_u8() as i64;
        f[field::CLOCK_ID] = CLOCK_MONOTONIC_RAW_ID;
        f[field::KNOB_ANCHOR_RAW_NS] = self.knob.anchor_raw_ns;
        f[field::KNOB_SKEW_PPT] = self.knob.skew.as_ppt();
        f[field::KNOB_STEP_NS] = self.knob.step_ns;
        f[field::TAI_MINUS_UTC_S] = self.tai_minus_utc_s;
        f[field::NEXT_LEAP_POSIX_S] = self.next_leap_posix_s;
        f[field::NEXT_LEAP_DELTA] = self.next_leap_delta;
        f[field::UPDATED_RAW_NS] = self.updated_raw.as_nanos();
        f[field::SYNC_COUNT] = self.sync_count;
        f[field::WRITER_PID] = self.writer_pid;
        f[field::DISRUPTIONS] = self.disruptions;
        f[field::FAST_REF_RAW_NS..=field::FAST_STATUS].copy_from_slice(&fast_block(&self));
        if let Some(c) = self.clock_check {
            f[field::CHECK_RAW_NS] = c.raw;
            f[field::CHECK_BOOT_OFFSET_NS] = c.offset();
        }
        // The counter block only where the fast block's own conditions hold too (a trustworthy
        // status, no knob, values in range): the window was computed against this page's
        // deadlines.
        if let Some(t) = self.tsc
            && f[field::FAST_UNTIL_AGE_NS] > 0
            && t.status == self.status
        {
            f[field::TSC_REF] = t.map.tsc_ref as i64;
            f[field::TSC_BASE_NS] = t.map.base_ns;
            f[field::TSC_MULT_Q62] = t.map.mult_q62 as i64;
            f[field::TSC_EPS0_NS] = t.map.eps0_ns;
            f[field::TSC_GROW_Q62] = t.map.grow_q62 as i64;
            f[field::TSC_UNTIL_TICKS] = t.map.until_ticks.min(ttcore::tsc::MAX_UNTIL_TICKS) as i64;
            f[field::TSC_STATUS] = t.status.as_u8() as i64;
            f[field::TSC_REAL_MINUS_MONO_NS] = t.real_minus_mono_ns;
        }
        f
    }

    pub(super) fn from_fields(f: &[i64; NFIELDS]) -> Self {
        PageData {
            model: ClockModel {
                ref_raw: RawReading::from_nanos(f[field::REF_RAW_NS]),
                ref_time: Timestamp::from_nanos(f[field::REF_TIME_NS]),
                freq: Rate::from_ppt(f[field::FREQ_PPT]),
                eps_ref: Span::from_nanos(f[field::EPS_REF_NS]),
                drift_bound: Rate::from_ppt(f[field::DRIFT_PPT]),
            },
            status: decode_status(f[field::STATUS]),
            max_eps: Span::from_nanos(f[field::MAX_EPS_NS]),
            void_after_raw: RawReading::from_nanos(f[field::VOID_AFTER_RAW_NS]),
            holdover_after_raw: RawReading::from_nanos(f[field::HOLDOVER_AFTER_RAW_NS]),
            knob: Knob {
                anchor_raw_ns: f[field::KNOB_ANCHOR_RAW_NS],
                skew: Rate::from_ppt(f[field::KNOB_SKEW_PPT]),
                step_ns: f[field::KNOB_STEP_NS],
            },
            tai_minus_utc_s: f[field::TAI_MINUS_UTC_S],
            next_leap_posix_s: f[field::NEXT_LEAP_POSIX_S],
            next_leap_delta: f[field::NEXT_LEAP_DELTA],
            updated_raw: RawReading::from_nanos(f[field::UPDATED_RAW_NS]),
            sync_count: f[field::SYNC_COUNT],
            writer_pid: f[field::WRITER_PID],
            disruptions: f[field::DISRUPTIONS],
            clock_check: (f[field::CHECK_RAW_NS] != 0).then(|| ClockPair {
                raw: f[field::CHECK_RAW_NS],
                boot: f[field::CHECK_RAW_NS].wrapping_add(f[field::CHECK_BOOT_OFFSET_NS]),
                gap: 0,
            }),
            vmclock_marker: None,
            tsc: (f[field::TSC_UNTIL_TICKS] != 0).then(|| TscBlock {
                map: ttcore::tsc::TscMap {
                    tsc_ref: f[field::TSC_REF] as u64,
                    base_ns: f[field::TSC_BASE_NS],
                    mult_q62: f[field::TSC_MULT_Q62] as u64,
                    eps0_ns: f[field::TSC_EPS0_NS],
                    grow_q62: f[field::TSC_GROW_Q62] as u64,
                    until_ticks: f[field::TSC_UNTIL_TICKS] as u64,
                },
                status: decode_status(f[field::TSC_STATUS]),
                real_minus_mono_ns: f[field::TSC_REAL_MINUS_MONO_NS],
            }),
        }
    }

    /// Our interval at a counter pair's raw reading and its status there, as the inputs of the
    /// counter mappings (the page's counter block and ClockBound 3's segment).
    pub fn counter_inputs(
        &self,
        pair: ttcore::tsc::TscPair,
        rate: ttcore::tsc::TscRate,
    ) -> (ttcore::tsc::CbV3Inputs, ClockStatus) {
        let r = self.read_at(RawReading::from_nanos(pair.raw));
        (
            ttcore::tsc::CbV3Inputs {
                interval: r.interval,
                pair,
                rate,
                freq: self.model.freq,
                drift: self.model.drift_bound,
            },
            r.status,
        )
    }

    /// This page's counter block (PROTOCOL.md "Counter path") from [`PageData::counter_inputs`]
    /// (`i`, read as `status`) and `CLOCK_REALTIME − CLOCK_MONOTONIC` as the writer verified it:
    /// only for a trustworthy page, without the test knob, whose status at the pair is the
    /// written one; the window ends before the void deadline, before the holdover deadline for a
    /// synchronized page, and before the block's ε passes max-epsilon.
    pub fn counter_block(
        &self,
        i: &ttcore::tsc::CbV3Inputs,
        status: ClockStatus,
        real_minus_mono_ns: i64,
    ) -> Option<TscBlock> {
        if !self.status.is_trustworthy() || self.knob != Knob::default() || status != self.status {
            return None;
        }
        let mut until = self.void_after_raw.as_nanos();
        if self.status == ClockStatus::Synchronized {
            until = until.min(self.holdover_after_raw.as_nanos());
        }
        Some(TscBlock {
            map: ttcore::tsc::tsc_map(i, until, self.max_eps.as_nanos())?,
            status: self.status,
            real_minus_mono_ns,
        })
    }

    /// A page that says "unsynchronized" (what a writer publishes before its first sync).
    pub fn unsynchronized(now_raw: RawReading) -> Self {
        PageData {
            model: ClockModel {
                ref_raw: now_raw,
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
            tsc: None,
        }
    }
}
