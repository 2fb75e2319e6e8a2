//! The writer side: one per page, in timed.

use super::*;
use memmap2::MmapMut;
use std::fs::OpenOptions;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{Ordering, fence};

/// The writer side (one per page, in `timed`).
pub struct PageWriter {
    map: MmapMut,
    path: PathBuf,
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
            let p = unsafe { view(map.as_ptr()) };
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
        w.write(&PageData::unsynchronized(crate::clock::raw()));
        // The magic last: a reader that sees it sees an initialised page.
        w.raw().magic.store(MAGIC, Ordering::Release);
        w.map.flush().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
        Ok(w)
    }

    fn raw(&mut self) -> &PageRaw {
        unsafe { view(self.map.as_ptr()) }
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

/// Where a page's contents go: the shared-memory page in production ([`PageWriter`]), a
/// recorder in unit tests, so timed's publishing is tested without files.
pub trait PagePublish: Send {
    /// Publishes `d`: a reader sees all of it or none of it.
    fn publish(&mut self, d: &PageData);
}

impl PagePublish for PageWriter {
    fn publish(&mut self, d: &PageData) {
        self.write(d);
    }
}

/// A synchronized page whose model is this host's `CLOCK_REALTIME` (read now, with the raw
/// clock), with ε `eps` growing at `drift`, status `status`, valid for an hour, and a verified
/// (raw, boot) pair so readers run their continuity check as on timed's page. For tests,
/// benchmarks and labs where the host's realtime is true time (firmware-sim's definition).
pub fn host_realtime_page(
    eps: ttcore::Span,
    drift: ttcore::Rate,
    status: ttcore::ClockStatus,
) -> PageData {
    use ttcore::{ClockModel, Rate, RawReading, Span, Timestamp};
    let (raw_ns, rt, _) = crate::clock::pair(crate::clock::realtime_ns);
    let raw = RawReading::from_nanos(raw_ns);
    let mut d = PageData::unsynchronized(raw);
    d.model = ClockModel {
        ref_raw: raw,
        ref_time: Timestamp::from_nanos(rt),
        freq: Rate::ZERO,
        eps_ref: eps,
        drift_bound: drift,
    };
    d.status = status;
    d.max_eps = Span::from_secs(10);
    d.void_after_raw = raw.add(Span::from_secs(3_600));
    d.holdover_after_raw = raw.add(Span::from_secs(3_600));
    d.clock_check = Some(crate::clock::clock_pair());
    d
}

/// [`host_realtime_page`] with a counter block (PROTOCOL.md "Counter path") calibrated over
/// `baseline` (slept through: at least 1 s, [`ttcore::tsc::MIN_BASELINE_NS`]); without one when
/// the counter is not usable here ([`crate::tsc::unusable_reason`]).
pub fn host_realtime_page_with_counter(
    eps: ttcore::Span,
    drift: ttcore::Rate,
    status: ttcore::ClockStatus,
    baseline: std::time::Duration,
) -> PageData {
    let first = crate::tsc::pair();
    std::thread::sleep(baseline);
    let mut d = host_realtime_page(eps, drift, status);
    if crate::tsc::unusable_reason().is_some() {
        return d;
    }
    let (Some(a), Some(b)) = (first, crate::tsc::pair()) else {
        return d;
    };
    let mut c = ttcore::tsc::TscCalibration::start(a);
    let (Ok(()), Some(rate)) = (c.add(b), c.rate()) else {
        return d;
    };
    let (i, at) = d.counter_inputs(b, rate);
    d.tsc = crate::clock::realtime_offset_ns().and_then(|off| d.counter_block(&i, at, off));
    d
}
