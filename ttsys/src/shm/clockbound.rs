//! An AWS ClockBound v2 segment writer, so ClockBound's clients read timed's bounds.

use super::*;
use memmap2::MmapMut;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{
    AtomicI32, AtomicI64, AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering, fence,
};

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
    pub(super) magic: [AtomicU32; 2],
    pub(super) segsize: AtomicU32,
    pub(super) version: AtomicU16,
    pub(super) generation: AtomicU16,
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
