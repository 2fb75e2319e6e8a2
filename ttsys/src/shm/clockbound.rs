//! AWS ClockBound segment writers (v2 `shm0` and ClockBound 3's `shm1`), so ClockBound's clients read
//! timed's bounds.

use super::*;
use memmap2::MmapMut;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{
    AtomicI32, AtomicI64, AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering, fence,
};

/// Creates (or takes over) a ClockBound segment of `size` bytes at `path` (mode 0644, the
/// directory created) and writes its header: magic, size and `version`. The generation is left
/// as it was, so readers of a segment a previous writer left keep seeing it change.
fn open_segment(path: &Path, size: usize, version: u16) -> Result<MmapMut, ShmError> {
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
    f.set_len(size as u64).map_err(io(path))?;
    // SAFETY: shared mapping of a file sized to the header and body; see the module docs.
    let map = unsafe { MmapMut::map_mut(&f) }.map_err(io(path))?;
    // SAFETY: both layouts start with this header (16 bytes of atomics, at the page-aligned
    // start of a mapping at least that long).
    let h = unsafe { &*(map.as_ptr() as *const CbHeader) };
    h.segsize.store(size as u32, Ordering::Relaxed);
    h.magic[0].store(CB_MAGIC[0], Ordering::Relaxed);
    h.magic[1].store(CB_MAGIC[1], Ordering::Relaxed);
    h.version.store(version, Ordering::Release);
    Ok(map)
}

/// ClockBound's header, common to both layouts (16 bytes).
#[repr(C, align(8))]
pub(super) struct CbHeader {
    magic: [AtomicU32; 2],
    segsize: AtomicU32,
    version: AtomicU16,
    generation: AtomicU16,
}

/// Stores `ns` as a `timespec`'s seconds and nanoseconds (the nanoseconds in [0, 10⁹)).
fn store_timespec(sec: &AtomicI64, nsec: &AtomicI64, ns: i64) {
    sec.store(ns.div_euclid(1_000_000_000), Ordering::Relaxed);
    nsec.store(ns.rem_euclid(1_000_000_000), Ordering::Relaxed);
}

/// ClockBound's seqlock around `write`: the generation odd while writing, even after, never 0
/// after a write (0 means "never written" to its readers).
fn seqlocked(generation: &AtomicU16, write: impl FnOnce()) {
    let g = generation.load(Ordering::Acquire);
    let odd = if g % 2 == 0 { g.wrapping_add(1) } else { g };
    generation.store(odd, Ordering::Release);
    fence(Ordering::Release);
    write();
    let mut next = odd.wrapping_add(1);
    if next == 0 {
        next = 2;
    }
    generation.store(next, Ordering::Release);
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
pub(super) struct CbSegment {
    pub(super) header: CbHeader,
    pub(super) as_of_sec: AtomicI64,
    pub(super) as_of_nsec: AtomicI64,
    pub(super) void_after_sec: AtomicI64,
    pub(super) void_after_nsec: AtomicI64,
    pub(super) bound_nsec: AtomicI64,
    pub(super) disruption_marker: AtomicU64,
    pub(super) max_drift_ppb: AtomicU32,
    pub(super) clock_status: AtomicI32,
    pub(super) disruption_support: AtomicU8,
    pub(super) pad: [AtomicU8; 7],
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
        Ok(ClockBoundWriter {
            map: open_segment(path, CB_SIZE, CB_VERSION)?,
        })
    }

    fn seg(&self) -> &CbSegment {
        // SAFETY: see the module docs (CB_SIZE-byte mapping, struct of atomics, page-aligned).
        unsafe { &*(self.map.as_ptr() as *const CbSegment) }
    }

    /// Publishes `d` (ClockBound's seqlock: odd generation while writing, never 0 after).
    pub fn write(&mut self, d: &ClockBoundData) {
        let s = self.seg();
        seqlocked(&s.header.generation, || {
            store_timespec(&s.as_of_sec, &s.as_of_nsec, d.as_of_mono_ns);
            store_timespec(&s.void_after_sec, &s.void_after_nsec, d.void_after_mono_ns);
            s.bound_nsec.store(d.bound_ns, Ordering::Relaxed);
            s.disruption_marker
                .store(d.disruption_marker, Ordering::Relaxed);
            s.max_drift_ppb.store(d.max_drift_ppb, Ordering::Relaxed);
            s.clock_status.store(d.status, Ordering::Relaxed);
            s.disruption_support.store(0, Ordering::Relaxed);
        });
    }
}

/// Where ClockBound's segment goes: the segment in production ([`ClockBoundWriter`]), a
/// recorder in unit tests.
pub trait ClockBoundPublish: Send {
    /// Publishes `d`: a reader sees all of it or none of it.
    fn publish(&mut self, d: &ClockBoundData);
}

impl ClockBoundPublish for ClockBoundWriter {
    fn publish(&mut self, d: &ClockBoundData) {
        self.write(d);
    }
}

// ----- ClockBound 3 (`shm1`, layout version 3) ----------------------------------------------

/// ClockBound 3's header version: layout 3, readable by readers of layout 3 and up
/// (`min << 8 | current`).
pub const CB3_VERSION: u16 = 0x0303;

#[repr(C, align(8))]
pub(super) struct Cb3Segment {
    pub(super) header: CbHeader,
    pub(super) as_of_tsc: AtomicU64,
    pub(super) as_of_sec: AtomicI64,
    pub(super) as_of_nsec: AtomicI64,
    pub(super) void_after_sec: AtomicI64,
    pub(super) void_after_nsec: AtomicI64,
    pub(super) period_frac: AtomicU64,
    pub(super) period_err_frac: AtomicU64,
    pub(super) bound_nsec: AtomicI64,
    pub(super) disruption_marker: AtomicU64,
    pub(super) max_drift_ppb: AtomicU32,
    pub(super) clock_status: AtomicI32,
    pub(super) disruption_support: AtomicU8,
    pub(super) period_shift: AtomicU8,
    pub(super) period_err_shift: AtomicU8,
    pub(super) pad: [AtomicU8; 5],
}

/// Size of a ClockBound 3 segment: the 16-byte header and the 88-byte layout-3 body.
pub const CB3_SIZE: usize = 104;
const _: () = assert!(std::mem::size_of::<Cb3Segment>() == CB3_SIZE);

/// What goes into a ClockBound 3 segment. Its clients compute, from a counter read `tsc`,
/// `D = (tsc − as_of_tsc) × period`, `now = as_of + D` and
/// `[now − b, now + b]` with `b = bound_nsec + D × max_drift_ppb / 10⁹ + D × period_err`;
/// past `void_after` (in that projected time) they report `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClockBound3Data {
    /// The counter at the instant the bound refers to.
    pub as_of_tsc: u64,
    /// The time (timescale ns, POSIX UTC) at that instant.
    pub as_of_ns: i64,
    /// The projected time (ns) after which clients report `Unknown`.
    pub void_after_ns: i64,
    /// Seconds per counter tick (in [0, 1)).
    pub period_s: f64,
    /// Relative error of the period (in [0, 1)).
    pub period_err: f64,
    /// |true time − as_of| bound at the instant (ns).
    pub bound_ns: i64,
    /// Growth of the bound (parts per 10⁹).
    pub max_drift_ppb: u32,
    /// A [`cb_status`] code.
    pub status: i32,
    /// Incremented on each disruption.
    pub disruption_marker: u64,
}

/// A value in [0, 1) as ClockBound 3 stores a period: `frac / 2^(64 + shift)`, the shift the
/// number of whole bits in `1 / value` less one, so that small values keep their digits.
/// Truncates (the decoded value is at most 2⁻⁵² relative below `v`); 0 for 0, NaN or out of
/// range.
pub fn cb3_fraction(v: f64) -> (u64, u8) {
    if !(v > 0.0 && v < 1.0) {
        return (0, 0);
    }
    let per = (1.0 / v) as u64;
    let shift = if per == 0 {
        0
    } else {
        (63 - per.leading_zeros()) as u8
    };
    let frac = (v * 2f64.powi(64 + i32::from(shift))) as u64;
    (frac, shift)
}

/// Writes an AWS ClockBound 3 shared-memory segment (`shm1`, layout version 3): a counter →
/// time mapping ClockBound 3's clients read with `rdtsc` and no system call.
pub struct ClockBound3Writer {
    map: MmapMut,
}

impl ClockBound3Writer {
    /// Creates (or takes over) the segment at `path`.
    pub fn open(path: &Path) -> Result<ClockBound3Writer, ShmError> {
        Ok(ClockBound3Writer {
            map: open_segment(path, CB3_SIZE, CB3_VERSION)?,
        })
    }

    fn seg(&self) -> &Cb3Segment {
        // SAFETY: see the module docs (CB3_SIZE-byte mapping, struct of atomics, page-aligned).
        unsafe { &*(self.map.as_ptr() as *const Cb3Segment) }
    }

    /// Publishes `d` under ClockBound's seqlock (odd generation while writing, never 0 after).
    pub fn write(&mut self, d: &ClockBound3Data) {
        let s = self.seg();
        seqlocked(&s.header.generation, || {
            let (pf, ps) = cb3_fraction(d.period_s);
            let (ef, es) = cb3_fraction(d.period_err);
            s.as_of_tsc.store(d.as_of_tsc, Ordering::Relaxed);
            store_timespec(&s.as_of_sec, &s.as_of_nsec, d.as_of_ns);
            store_timespec(&s.void_after_sec, &s.void_after_nsec, d.void_after_ns);
            s.period_frac.store(pf, Ordering::Relaxed);
            s.period_shift.store(ps, Ordering::Relaxed);
            s.period_err_frac.store(ef, Ordering::Relaxed);
            s.period_err_shift.store(es, Ordering::Relaxed);
            s.bound_nsec.store(d.bound_ns, Ordering::Relaxed);
            s.disruption_marker
                .store(d.disruption_marker, Ordering::Relaxed);
            s.max_drift_ppb.store(d.max_drift_ppb, Ordering::Relaxed);
            s.clock_status.store(d.status, Ordering::Relaxed);
            s.disruption_support.store(0, Ordering::Relaxed);
        });
    }
}

/// Where ClockBound 3's segment goes: the segment in production, a recorder in unit tests.
pub trait ClockBound3Publish: Send {
    /// Publishes `d`: a reader sees all of it or none of it.
    fn publish(&mut self, d: &ClockBound3Data);
}

impl ClockBound3Publish for ClockBound3Writer {
    fn publish(&mut self, d: &ClockBound3Data) {
        self.write(d);
    }
}
