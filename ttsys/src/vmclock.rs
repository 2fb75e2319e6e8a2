//! Reading a VMClock device (`/dev/vmclock0`) or a file with the same layout: a read-only
//! shared mapping copied under the structure's seqlock, then decoded by
//! [`ttcore::vmclock::decode`].
//!
//! # Safety
//!
//! The hypervisor writes the structure while the guest reads it, so the mapping is never
//! viewed as a Rust reference: every read is a `read_volatile` of an aligned `u32`/`u64` inside
//! the mapping, whose length is checked against [`ttcore::vmclock::MIN_SIZE`] at open. The
//! mapping is owned by [`VmClock`] and lives as long as it.

use memmap2::Mmap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{Ordering, fence};
use thiserror::Error;
use ttcore::vmclock::{MARKER_OFFSET, MIN_SIZE, SEQ_OFFSET, Snapshot, VmClockError, decode};

/// The device the Linux vmclock driver creates.
pub const DEFAULT_PATH: &str = "/dev/vmclock0";

/// Errors opening or reading a VMClock.
#[derive(Debug, Error)]
pub enum VmClockOpenError {
    /// The device or file could not be opened or mapped.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Its contents are not a VMClock structure.
    #[error("{path}: {source}")]
    Format {
        /// Path.
        path: String,
        /// What is wrong.
        source: VmClockError,
    },
}

/// A mapped VMClock.
pub struct VmClock {
    map: Mmap,
    path: PathBuf,
}

impl std::fmt::Debug for VmClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VmClock({})", self.path.display())
    }
}

impl VmClock {
    /// Maps `path` read-only and checks that it holds a VMClock structure.
    pub fn open(path: &Path) -> Result<VmClock, VmClockOpenError> {
        let io = |source| VmClockOpenError::Io {
            path: path.display().to_string(),
            source,
        };
        let f = File::open(path).map_err(io)?;
        // SAFETY: a read-only shared mapping; see the module docs for how it is read.
        let map = unsafe { Mmap::map(&f) }.map_err(io)?;
        let v = VmClock {
            map,
            path: path.to_path_buf(),
        };
        if v.map.len() < MIN_SIZE {
            return Err(VmClockOpenError::Format {
                path: path.display().to_string(),
                source: VmClockError::Short(v.map.len()),
            });
        }
        v.read().map_err(|source| VmClockOpenError::Format {
            path: path.display().to_string(),
            source,
        })?;
        Ok(v)
    }

    /// The device's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn u32_at(&self, o: usize) -> u32 {
        debug_assert!(o % 4 == 0 && o + 4 <= self.map.len());
        // SAFETY: aligned (the mapping is page-aligned, `o` a multiple of 4) and inside the
        // mapping (length checked at open); volatile because the hypervisor writes it.
        u32::from_le(unsafe { std::ptr::read_volatile(self.map.as_ptr().add(o) as *const u32) })
    }

    /// `disruption_marker` now, without the seqlock (an aligned 8-byte load is single-copy
    /// atomic on the architectures VMClock exists for): the per-read check.
    pub fn marker(&self) -> u64 {
        // SAFETY: as in `u32_at`, for an 8-aligned offset inside the mapping.
        u64::from_le(unsafe {
            std::ptr::read_volatile(self.map.as_ptr().add(MARKER_OFFSET) as *const u64)
        })
    }

    /// A consistent copy, decoded. Retries while the hypervisor is mid-update (up to 1000
    /// times, then [`VmClockError::Busy`]).
    pub fn read(&self) -> Result<Snapshot, VmClockError> {
        let mut buf = [0u8; MIN_SIZE];
        for _ in 0..1000 {
            let s1 = self.u32_at(SEQ_OFFSET);
            fence(Ordering::Acquire);
            if s1 % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            for (i, chunk) in buf.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&self.u32_at(4 * i).to_le_bytes());
            }
            fence(Ordering::Acquire);
            if self.u32_at(SEQ_OFFSET) == s1 {
                return decode(&buf);
            }
        }
        Err(VmClockError::Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_file_with_the_device_layout() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vmclock");
        std::fs::write(&p, ttcore::vmclock::encode(41, 2, 8)).unwrap();
        let v = VmClock::open(&p).unwrap();
        assert_eq!(v.read().unwrap().marker, 41);
        assert_eq!(v.marker(), 41);
        // The hypervisor moves the marker (a live migration): seen through the mapping.
        std::fs::write(&p, ttcore::vmclock::encode(42, 2, 10)).unwrap();
        assert_eq!(v.marker(), 42);
        assert_eq!(v.read().unwrap().seq, 10);
        // Not a VMClock, or missing: clear errors.
        std::fs::write(dir.path().join("junk"), [0u8; 200]).unwrap();
        let e = VmClock::open(&dir.path().join("junk")).unwrap_err();
        assert!(e.to_string().contains("not a VMClock"), "{e}");
        assert!(VmClock::open(&dir.path().join("none")).is_err());
    }
}
