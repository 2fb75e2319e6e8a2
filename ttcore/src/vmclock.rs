//! The VMClock structure (Linux `include/uapi/linux/vmclock-abi.h`, exposed as
//! `/dev/vmclock0` by QEMU, Firecracker and EC2): decoding a copy of it and the rule for when
//! it reports a disruption. The device is the hypervisor's word that the guest's counter was
//! disrupted — a live migration or a pause, which stops `CLOCK_MONOTONIC_RAW` and
//! `CLOCK_BOOTTIME` together, so [`crate::disrupt::check`] cannot see it.
//!
//! Only the fields this project uses are decoded: the seqlock counter, `disruption_marker`
//! ("changes to another non-repeating value when the CPU counter is disrupted"), `flags` and
//! `clock_status`. The structure is little-endian.

use crate::disrupt::Disruption;
use thiserror::Error;

/// `"VCLK"` as a little-endian `u32`.
pub const MAGIC: u32 = 0x4b4c_4356;
/// The ABI version this decoder knows.
pub const VERSION: u16 = 1;
/// Bytes up to and including `time_maxerror_nanosec` (the version-1 structure without the
/// later `vm_generation_counter`): the least a device may expose.
pub const MIN_SIZE: usize = 104;
/// Byte offset of `seq_count` (`u32`, odd while the hypervisor updates).
pub const SEQ_OFFSET: usize = 12;
/// Byte offset of `disruption_marker` (`u64`).
pub const MARKER_OFFSET: usize = 16;
const FLAGS_OFFSET: usize = 24;
const STATUS_OFFSET: usize = 34;

/// The device's `clock_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmClockStatus {
    /// 0.
    Unknown,
    /// 1.
    Initializing,
    /// 2.
    Synchronized,
    /// 3.
    FreeRunning,
    /// 4: the hypervisor says its counter is not to be relied on.
    Unreliable,
    /// Any other value.
    Other(u8),
}

impl VmClockStatus {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Unknown,
            1 => Self::Initializing,
            2 => Self::Synchronized,
            3 => Self::FreeRunning,
            4 => Self::Unreliable,
            o => Self::Other(o),
        }
    }
}

/// A consistent copy of the fields used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `seq_count` at the copy (even).
    pub seq: u32,
    /// `disruption_marker`.
    pub marker: u64,
    /// `flags`.
    pub flags: u64,
    /// `clock_status`.
    pub status: VmClockStatus,
}

/// Why bytes are not a VMClock structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum VmClockError {
    /// Fewer bytes than a version-1 structure.
    #[error("{0} bytes, a VMClock structure has at least {MIN_SIZE}")]
    Short(usize),
    /// The magic is not `"VCLK"`.
    #[error("not a VMClock structure (magic {0:#010x})")]
    Magic(u32),
    /// An ABI version this decoder does not know.
    #[error("VMClock ABI version {0}, this reader knows {VERSION}")]
    Version(u16),
    /// The structure's own `size` field is below the version-1 size.
    #[error("VMClock size field {0} is below {MIN_SIZE}")]
    Size(u32),
    /// The hypervisor was mid-update (odd `seq_count`).
    #[error("VMClock is being updated")]
    Busy,
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(w)
}

/// Decodes a copy of the structure (taken under its seqlock by the caller).
pub fn decode(b: &[u8]) -> Result<Snapshot, VmClockError> {
    if b.len() < MIN_SIZE {
        return Err(VmClockError::Short(b.len()));
    }
    let magic = u32_at(b, 0);
    if magic != MAGIC {
        return Err(VmClockError::Magic(magic));
    }
    let version = u16::from_le_bytes([b[8], b[9]]);
    if version != VERSION {
        return Err(VmClockError::Version(version));
    }
    let size = u32_at(b, 4);
    if (size as usize) < MIN_SIZE {
        return Err(VmClockError::Size(size));
    }
    let seq = u32_at(b, SEQ_OFFSET);
    if seq % 2 == 1 {
        return Err(VmClockError::Busy);
    }
    Ok(Snapshot {
        seq,
        marker: u64_at(b, MARKER_OFFSET),
        flags: u64_at(b, FLAGS_OFFSET),
        status: VmClockStatus::from_u8(b[STATUS_OFFSET]),
    })
}

/// The rule: a changed disruption marker since `then`, or a counter the hypervisor calls
/// unreliable, is a disruption.
pub fn check(then: &Snapshot, now: &Snapshot) -> Result<(), Disruption> {
    if now.marker != then.marker || now.status == VmClockStatus::Unreliable {
        Err(Disruption::Hypervisor)
    } else {
        Ok(())
    }
}

/// A version-1 structure with the given marker and status (for tests and the simulator's
/// fixtures): 112 bytes, `seq_count` even.
pub fn encode(marker: u64, status: u8, seq: u32) -> Vec<u8> {
    let mut b = vec![0u8; 112];
    b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&112u32.to_le_bytes());
    b[8..10].copy_from_slice(&VERSION.to_le_bytes());
    b[10] = 1; // x86 TSC
    b[SEQ_OFFSET..SEQ_OFFSET + 4].copy_from_slice(&seq.to_le_bytes());
    b[MARKER_OFFSET..MARKER_OFFSET + 8].copy_from_slice(&marker.to_le_bytes());
    b[STATUS_OFFSET] = status;
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_refuses() {
        let b = encode(7, 2, 4);
        let s = decode(&b).unwrap();
        assert_eq!(s.marker, 7);
        assert_eq!(s.status, VmClockStatus::Synchronized);
        assert_eq!(decode(&b[..50]), Err(VmClockError::Short(50)));
        let mut bad = b.clone();
        bad[0] = 0;
        assert!(matches!(decode(&bad), Err(VmClockError::Magic(_))));
        let mut v2 = b.clone();
        v2[8] = 2;
        assert_eq!(decode(&v2), Err(VmClockError::Version(2)));
        let mut odd = b.clone();
        odd[SEQ_OFFSET] = 5;
        assert_eq!(decode(&odd), Err(VmClockError::Busy));
        let mut small = b;
        small[4..8].copy_from_slice(&10u32.to_le_bytes());
        assert_eq!(decode(&small), Err(VmClockError::Size(10)));
    }

    #[test]
    fn a_new_marker_or_an_unreliable_counter_is_a_disruption() {
        let a = decode(&encode(7, 2, 4)).unwrap();
        assert_eq!(check(&a, &decode(&encode(7, 2, 6)).unwrap()), Ok(()));
        assert_eq!(
            check(&a, &decode(&encode(8, 2, 6)).unwrap()),
            Err(Disruption::Hypervisor)
        );
        assert_eq!(
            check(&a, &decode(&encode(7, 4, 6)).unwrap()),
            Err(Disruption::Hypervisor)
        );
    }
}
