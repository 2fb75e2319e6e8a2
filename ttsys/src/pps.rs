//! Kernel PPS (`/dev/ppsN`) through the RFC 2783 ioctls of `<linux/pps.h>`.
//!
//! The header declares the ioctls with *pointer* types (`_IOWR('p', 0xa4, struct pps_fdata *)`),
//! so the size field of the request number is `sizeof(void *)` = 8 on 64-bit, not the struct
//! size: `PPS_FETCH` is `0xc00870a4`. A naive `ioctl_readwrite!` with the struct computes a
//! different number and gets `ENOTTY`; the numbers here are spelled out and unit-tested.
//!
//! # Safety
//!
//! The only `unsafe` is the `ioctl` call itself, on an open file descriptor, with a pointer to
//! a properly sized, `#[repr(C)]`, initialised `PpsFdata` that outlives the call.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use thiserror::Error;

/// `struct pps_ktime`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PpsKtime {
    /// Seconds.
    pub sec: i64,
    /// Nanoseconds.
    pub nsec: i32,
    /// Flags (`PPS_TIME_INVALID` = 1).
    pub flags: u32,
}

/// `struct pps_kinfo`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PpsKinfo {
    /// Assert event count.
    pub assert_sequence: u32,
    /// Clear event count.
    pub clear_sequence: u32,
    /// Time of the last assert edge (`CLOCK_REALTIME`).
    pub assert_tu: PpsKtime,
    /// Time of the last clear edge.
    pub clear_tu: PpsKtime,
    /// Current mode bits.
    pub current_mode: i32,
}

/// `struct pps_fdata`: the `PPS_FETCH` argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PpsFdata {
    /// Filled in by the kernel.
    pub info: PpsKinfo,
    /// How long to wait for the next event (`flags` = `PPS_TIME_INVALID` waits forever).
    pub timeout: PpsKtime,
}

/// `PPS_GETPARAMS` = `_IOR('p', 0xa1, struct pps_kparams *)`.
pub const PPS_GETPARAMS: u64 = 0x8008_70a1;
/// `PPS_SETPARAMS` = `_IOW('p', 0xa2, struct pps_kparams *)`.
pub const PPS_SETPARAMS: u64 = 0x4008_70a2;
/// `PPS_GETCAP` = `_IOR('p', 0xa3, int *)`.
pub const PPS_GETCAP: u64 = 0x8008_70a3;
/// `PPS_FETCH` = `_IOWR('p', 0xa4, struct pps_fdata *)`.
pub const PPS_FETCH: u64 = 0xc008_70a4;

/// Errors from a PPS device.
#[derive(Debug, Error)]
pub enum PpsError {
    /// Opening the device failed.
    #[error("{path}: {source}")]
    Open {
        /// Device path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The fetch ioctl failed (ETIMEDOUT when no pulse came in time).
    #[error("PPS_FETCH: {0}")]
    Fetch(nix::Error),
}

nix::ioctl_readwrite_bad!(
    /// The raw `PPS_FETCH` ioctl.
    pps_fetch_raw,
    PPS_FETCH,
    PpsFdata
);

/// An open `/dev/ppsN`.
pub struct KernelPps {
    file: File,
    last_seq: u32,
}

impl KernelPps {
    /// Opens a PPS device.
    pub fn open(path: &Path) -> Result<Self, PpsError> {
        let file = File::open(path).map_err(|source| PpsError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Ok(KernelPps { file, last_seq: 0 })
    }

    /// Waits up to `timeout_ms` for the next assert edge; returns its `CLOCK_REALTIME`
    /// timestamp (ns) and sequence number, or `None` if no new edge arrived.
    pub fn fetch(&mut self, timeout_ms: u32) -> Result<Option<(i64, u32)>, PpsError> {
        let mut d = PpsFdata {
            timeout: PpsKtime {
                sec: (timeout_ms / 1000) as i64,
                nsec: ((timeout_ms % 1000) * 1_000_000) as i32,
                flags: 0,
            },
            ..Default::default()
        };
        // SAFETY: see the module docs — valid fd, valid pointer to a repr(C) PpsFdata.
        match unsafe { pps_fetch_raw(self.file.as_raw_fd(), &mut d) } {
            Ok(_) => {}
            Err(nix::Error::ETIMEDOUT) => return Ok(None),
            Err(e) => return Err(PpsError::Fetch(e)),
        }
        if d.info.assert_sequence == self.last_seq {
            return Ok(None);
        }
        self.last_seq = d.info.assert_sequence;
        Ok(Some((
            d.info.assert_tu.sec * 1_000_000_000 + d.info.assert_tu.nsec as i64,
            d.info.assert_sequence,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_layouts_match_linux_pps_h() {
        assert_eq!(std::mem::size_of::<PpsKtime>(), 16);
        assert_eq!(std::mem::size_of::<PpsKinfo>(), 48);
        assert_eq!(std::mem::offset_of!(PpsKinfo, assert_tu), 8);
        assert_eq!(std::mem::offset_of!(PpsKinfo, clear_tu), 24);
        assert_eq!(std::mem::offset_of!(PpsKinfo, current_mode), 40);
        assert_eq!(std::mem::size_of::<PpsFdata>(), 64);
        assert_eq!(std::mem::offset_of!(PpsFdata, timeout), 48);
    }

    #[test]
    fn request_numbers_use_pointer_size() {
        let ptr = std::mem::size_of::<*mut PpsFdata>();
        assert_eq!(ptr, 8);
        assert_eq!(
            nix::request_code_readwrite!(b'p', 0xa4, ptr) as u64,
            PPS_FETCH
        );
        assert_eq!(nix::request_code_read!(b'p', 0xa3, ptr) as u64, PPS_GETCAP);
        assert_eq!(
            nix::request_code_read!(b'p', 0xa1, ptr) as u64,
            PPS_GETPARAMS
        );
        assert_eq!(
            nix::request_code_write!(b'p', 0xa2, ptr) as u64,
            PPS_SETPARAMS
        );
        assert_eq!(PPS_FETCH, 0xc00870a4);
        // The naive form (struct size) is a different, wrong number.
        assert_ne!(
            nix::request_code_readwrite!(b'p', 0xa4, std::mem::size_of::<PpsFdata>()) as u64,
            PPS_FETCH
        );
    }

    #[test]
    fn missing_device_is_a_clear_error() {
        let e = KernelPps::open(Path::new("/dev/pps-does-not-exist"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("/dev/pps-does-not-exist"));
    }

    #[test]
    fn a_non_pps_file_gives_an_ioctl_error_not_a_crash() {
        let mut p = KernelPps::open(Path::new("/dev/null")).unwrap();
        assert!(matches!(p.fetch(10), Err(PpsError::Fetch(_))));
    }
}
