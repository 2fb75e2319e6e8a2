//! chrony's SOCK refclock datagram (`struct sock_sample` from chrony's `refclock_sock.c`), the
//! format gpsd and chronyd use to pass time samples and PPS edges between processes.
//!
//! Layout on LP64 Linux, native byte order, 40 bytes:
//!
//! | offset | field | C type | meaning |
//! |---|---|---|---|
//! | 0 | `tv.tv_sec` | `time_t` (i64) | system time of the sample, seconds |
//! | 8 | `tv.tv_usec` | `suseconds_t` (i64) | microseconds (0–999 999) |
//! | 16 | `offset` | `double` | true time − system time, seconds |
//! | 24 | `pulse` | `int` | non-zero: a PPS edge (the offset's whole seconds are unknown) |
//! | 28 | `leap` | `int` | 0 normal, 1 insert, 2 delete a leap second at the end of the day |
//! | 32 | `_pad` | `int` | ignored |
//! | 36 | `magic` | `int` | `0x534f434b` ("SOCK") |
//!
//! `tv` carries microseconds only. Truncating it moves the system-time instant and the
//! true-time instant together, so the offset (true − system) is unchanged up to the clock's
//! drift over that microsecond (below 0.001 ns at 1000 ppm): [`SockSample::from_nanos`]
//! truncates `tv` and keeps the offset exact to the ns, so a PPS edge's sub-microsecond error
//! survives in the offset.

use crate::time::NANOS_PER_SEC;
use thiserror::Error;

/// The magic number in the last field.
pub const SOCK_MAGIC: i32 = 0x534f_434b;
/// Size of the datagram on LP64.
pub const SOCK_SAMPLE_LEN: usize = 40;

/// One decoded sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SockSample {
    /// System time of the sample: seconds.
    pub tv_sec: i64,
    /// System time of the sample: microseconds, 0–999 999.
    pub tv_usec: i64,
    /// True time − system time (s).
    pub offset: f64,
    /// True for a PPS edge.
    pub pulse: bool,
    /// Leap indicator: 0 none, 1 insert, 2 delete.
    pub leap: i32,
}

/// Why a datagram was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SockError {
    /// Wrong size (not 40 bytes).
    #[error("SOCK sample must be {SOCK_SAMPLE_LEN} bytes, got {0}")]
    Length(usize),
    /// Wrong magic.
    #[error("bad SOCK magic {0:#x}")]
    Magic(i32),
    /// `tv_usec` outside 0–999 999, a non-finite offset or an unknown leap code.
    #[error("invalid SOCK field: {0}")]
    Field(&'static str),
}

impl SockSample {
    /// A sample taken at system time `sys_ns` (ns since the epoch) at which true time was
    /// `sys_ns + offset_ns`. `tv` is truncated to the microsecond; the offset is kept exactly.
    pub fn from_nanos(sys_ns: i64, offset_ns: i64, pulse: bool, leap: i32) -> Self {
        SockSample {
            tv_sec: sys_ns.div_euclid(NANOS_PER_SEC),
            tv_usec: sys_ns.rem_euclid(NANOS_PER_SEC) / 1_000,
            offset: offset_ns as f64 * 1e-9,
            pulse,
            leap,
        }
    }

    /// The offset (true − system) in ns, rounded to the nearest ns.
    #[allow(
        clippy::cast_possible_truncation,
        reason = "a float → integer `as` saturates (and maps NaN to 0); the offset is seconds"
    )]
    pub fn offset_ns(&self) -> i64 {
        (self.offset * 1e9).round() as i64
    }

    /// System time of the sample in ns (microsecond resolution).
    pub fn sys_ns(&self) -> i64 {
        self.tv_sec
            .saturating_mul(NANOS_PER_SEC)
            .saturating_add(self.tv_usec * 1_000)
    }

    /// True time at the (truncated) system time of the sample: `sys_ns + offset`, in ns.
    pub fn true_time_ns(&self) -> i64 {
        self.sys_ns().saturating_add(self.offset_ns())
    }

    /// Encodes to the 40-byte native-endian datagram.
    pub fn encode(&self) -> [u8; SOCK_SAMPLE_LEN] {
        let mut b = [0u8; SOCK_SAMPLE_LEN];
        b[0..8].copy_from_slice(&self.tv_sec.to_ne_bytes());
        b[8..16].copy_from_slice(&self.tv_usec.to_ne_bytes());
        b[16..24].copy_from_slice(&self.offset.to_ne_bytes());
        b[24..28].copy_from_slice(&(self.pulse as i32).to_ne_bytes());
        b[28..32].copy_from_slice(&self.leap.to_ne_bytes());
        b[36..40].copy_from_slice(&SOCK_MAGIC.to_ne_bytes());
        b
    }

    /// Decodes and validates a datagram.
    pub fn decode(b: &[u8]) -> Result<Self, SockError> {
        if b.len() != SOCK_SAMPLE_LEN {
            return Err(SockError::Length(b.len()));
        }
        let i64_at = |o: usize| i64::from_ne_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        let i32_at = |o: usize| i32::from_ne_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
        let magic = i32_at(36);
        if magic != SOCK_MAGIC {
            return Err(SockError::Magic(magic));
        }
        let tv_usec = i64_at(8);
        if !(0..1_000_000).contains(&tv_usec) {
            return Err(SockError::Field("tv_usec out of range"));
        }
        let offset = f64::from_ne_bytes(b[16..24].try_into().unwrap_or([0; 8]));
        if !offset.is_finite() {
            return Err(SockError::Field("offset is not finite"));
        }
        let leap = i32_at(28);
        if !(0..=2).contains(&leap) {
            return Err(SockError::Field("leap must be 0, 1 or 2"));
        }
        Ok(SockSample {
            tv_sec: i64_at(0),
            tv_usec,
            offset,
            pulse: i32_at(24) != 0,
            leap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_matches_c_struct() {
        let s = SockSample {
            tv_sec: 1,
            tv_usec: 2,
            offset: 0.5,
            pulse: true,
            leap: 1,
        };
        let b = s.encode();
        assert_eq!(b.len(), 40);
        assert_eq!(&b[36..40], &0x534f434bi32.to_ne_bytes());
        assert_eq!(&b[24..28], &1i32.to_ne_bytes());
        assert_eq!(&b[16..24], &0.5f64.to_ne_bytes());
        assert_eq!(SockSample::decode(&b).unwrap(), s);
    }

    #[test]
    fn rejects_bad_datagrams() {
        let good = SockSample::from_nanos(5, 0, false, 0).encode();
        assert_eq!(SockSample::decode(&good[..39]), Err(SockError::Length(39)));
        let mut m = good;
        m[36] ^= 0xff;
        assert!(matches!(SockSample::decode(&m), Err(SockError::Magic(_))));
        let mut u = good;
        u[8..16].copy_from_slice(&1_000_000i64.to_ne_bytes());
        assert!(matches!(SockSample::decode(&u), Err(SockError::Field(_))));
        let mut n = good;
        n[16..24].copy_from_slice(&f64::NAN.to_ne_bytes());
        assert!(matches!(SockSample::decode(&n), Err(SockError::Field(_))));
        let mut l = good;
        l[28..32].copy_from_slice(&7i32.to_ne_bytes());
        assert!(matches!(SockSample::decode(&l), Err(SockError::Field(_))));
    }

    proptest! {
        #[test]
        fn offset_survives_the_microsecond_format(sys in 0i64..4_000_000_000_000_000_000, off in -2_000_000_000i64..2_000_000_000) {
            let s = SockSample::from_nanos(sys, off, true, 0);
            let d = SockSample::decode(&s.encode()).unwrap();
            prop_assert_eq!(d.offset_ns(), off);
            prop_assert!(sys - d.sys_ns() >= 0 && sys - d.sys_ns() < 1_000);
            prop_assert_eq!(d.true_time_ns(), d.sys_ns() + off);
        }

        #[test]
        fn decode_never_panics(b in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = SockSample::decode(&b);
        }
    }
}
