//! PTP hardware clocks (`/dev/ptpN`): the three offset ioctls of `<linux/ptp_clock.h>`, tried
//! in chrony's order — `PTP_SYS_OFFSET_PRECISE` (a hardware cross-timestamp against
//! `CLOCK_MONOTONIC_RAW`), else `PTP_SYS_OFFSET_EXTENDED` (system, PHC, system triples), else
//! the basic `PTP_SYS_OFFSET` (system and PHC stamps interleaved) — turned into
//! [`ttcore::phc::Bracketed`] readings on the raw clock. What a reading is worth is decided in
//! `ttcore::phc`.
//!
//! The device sits behind [`PhcDevice`] so the fallback and bracketing are tested on recorded
//! readings: **no PHC was available where this was written**, so the ioctls themselves have
//! run only against devices that refuse them. The structs and request numbers are checked
//! against the kernel's uapi header by a test that compiles it with the C compiler.
//!
//! `unsafe`: the three `ioctl` calls, each on an open descriptor with a pointer to a live,
//! correctly sized struct.

use crate::clock::RealtimeMap;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use ttcore::phc::Bracketed;

/// `struct ptp_clock_time`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PtpClockTime {
    /// Seconds (the sign applies to the whole value).
    pub sec: i64,
    /// Nanoseconds.
    pub nsec: u32,
    /// Reserved.
    pub reserved: u32,
}

impl PtpClockTime {
    /// As ns, or `None` when out of range.
    pub fn as_ns(&self) -> Option<i64> {
        self.sec
            .checked_mul(1_000_000_000)
            .and_then(|s| s.checked_add(i64::from(self.nsec)))
    }
}

/// `PTP_MAX_SAMPLES`.
pub const PTP_MAX_SAMPLES: usize = 25;

/// `struct ptp_sys_offset`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PtpSysOffset {
    /// Measurements wanted.
    pub n_samples: u32,
    /// Reserved.
    pub rsv: [u32; 3],
    /// System, PHC, system, PHC, …, system: 2n + 1 stamps.
    pub ts: [PtpClockTime; 2 * PTP_MAX_SAMPLES + 1],
}

/// `struct ptp_sys_offset_extended`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PtpSysOffsetExtended {
    /// Measurements wanted.
    pub n_samples: u32,
    /// Reserved.
    pub rsv: [u32; 3],
    /// `[system, PHC, system]` per measurement (system = `CLOCK_REALTIME`).
    pub ts: [[PtpClockTime; 3]; PTP_MAX_SAMPLES],
}

/// `struct ptp_sys_offset_precise`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PtpSysOffsetPrecise {
    /// The PHC.
    pub device: PtpClockTime,
    /// `CLOCK_REALTIME` at the same instant.
    pub sys_realtime: PtpClockTime,
    /// `CLOCK_MONOTONIC_RAW` at the same instant.
    pub sys_monoraw: PtpClockTime,
    /// Reserved.
    pub rsv: [u32; 4],
}

/// `PTP_CLK_MAGIC`.
const MAGIC: u8 = b'=';
/// `PTP_SYS_OFFSET` = `_IOW('=', 5, struct ptp_sys_offset)`.
pub const PTP_SYS_OFFSET: u64 =
    nix::request_code_write!(MAGIC, 5, std::mem::size_of::<PtpSysOffset>()) as u64;
/// `PTP_SYS_OFFSET_PRECISE` = `_IOWR('=', 8, struct ptp_sys_offset_precise)`.
pub const PTP_SYS_OFFSET_PRECISE: u64 =
    nix::request_code_readwrite!(MAGIC, 8, std::mem::size_of::<PtpSysOffsetPrecise>()) as u64;
/// `PTP_SYS_OFFSET_EXTENDED` = `_IOWR('=', 9, struct ptp_sys_offset_extended)`.
pub const PTP_SYS_OFFSET_EXTENDED: u64 =
    nix::request_code_readwrite!(MAGIC, 9, std::mem::size_of::<PtpSysOffsetExtended>()) as u64;

nix::ioctl_readwrite_bad!(
    /// The raw `PTP_SYS_OFFSET` ioctl (the kernel writes the stamps back).
    ioctl_sys_offset,
    PTP_SYS_OFFSET,
    PtpSysOffset
);
nix::ioctl_readwrite_bad!(
    /// The raw `PTP_SYS_OFFSET_PRECISE` ioctl.
    ioctl_sys_offset_precise,
    PTP_SYS_OFFSET_PRECISE,
    PtpSysOffsetPrecise
);
nix::ioctl_readwrite_bad!(
    /// The raw `PTP_SYS_OFFSET_EXTENDED` ioctl.
    ioctl_sys_offset_extended,
    PTP_SYS_OFFSET_EXTENDED,
    PtpSysOffsetExtended
);

/// What the offset ioctls return, in ns.
pub trait PhcDevice {
    /// `PTP_SYS_OFFSET_PRECISE`: (PHC, `CLOCK_MONOTONIC_RAW`) at one instant.
    fn precise(&mut self) -> io::Result<(i64, i64)>;
    /// `PTP_SYS_OFFSET_EXTENDED` with `n` samples: `[realtime, PHC, realtime]` triples.
    fn extended(&mut self, n: usize) -> io::Result<Vec<[i64; 3]>>;
    /// `PTP_SYS_OFFSET` with `n` samples: 2n + 1 stamps, realtime and PHC interleaved.
    fn basic(&mut self, n: usize) -> io::Result<Vec<i64>>;
}

/// A `/dev/ptpN` opened read-only.
pub struct PtpDevice(std::fs::File);

impl PtpDevice {
    /// Opens `path`.
    pub fn open(path: &Path) -> io::Result<PtpDevice> {
        std::fs::File::open(path).map(PtpDevice)
    }
}

fn ns(t: &PtpClockTime) -> io::Result<i64> {
    t.as_ns()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "PHC stamp out of range"))
}

impl PhcDevice for PtpDevice {
    fn precise(&mut self) -> io::Result<(i64, i64)> {
        let mut p = PtpSysOffsetPrecise::default();
        // SAFETY: a live, correctly sized struct on an open descriptor.
        unsafe { ioctl_sys_offset_precise(self.0.as_raw_fd(), &mut p) }?;
        Ok((ns(&p.device)?, ns(&p.sys_monoraw)?))
    }

    fn extended(&mut self, n: usize) -> io::Result<Vec<[i64; 3]>> {
        let n = n.clamp(1, PTP_MAX_SAMPLES);
        let mut e = PtpSysOffsetExtended {
            n_samples: n as u32,
            rsv: [0; 3],
            ts: [[PtpClockTime::default(); 3]; PTP_MAX_SAMPLES],
        };
        // SAFETY: a live, correctly sized struct on an open descriptor.
        unsafe { ioctl_sys_offset_extended(self.0.as_raw_fd(), &mut e) }?;
        e.ts[..n]
            .iter()
            .map(|t| Ok([ns(&t[0])?, ns(&t[1])?, ns(&t[2])?]))
            .collect()
    }

    fn basic(&mut self, n: usize) -> io::Result<Vec<i64>> {
        let n = n.clamp(1, PTP_MAX_SAMPLES);
        let mut b = PtpSysOffset {
            n_samples: n as u32,
            rsv: [0; 3],
            ts: [PtpClockTime::default(); 2 * PTP_MAX_SAMPLES + 1],
        };
        // SAFETY: a live, correctly sized struct on an open descriptor.
        unsafe { ioctl_sys_offset(self.0.as_raw_fd(), &mut b) }?;
        b.ts[..2 * n + 1].iter().map(ns).collect()
    }
}

/// Which ioctl a device answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `PTP_SYS_OFFSET_PRECISE`.
    Precise,
    /// `PTP_SYS_OFFSET_EXTENDED`.
    Extended,
    /// `PTP_SYS_OFFSET`.
    Basic,
}

/// Reads a PHC with the best ioctl it supports, learned on the first read.
pub struct PhcReader<D> {
    dev: D,
    method: Method,
    samples: usize,
}

/// An ioctl the driver does not implement (try the next).
fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
    )
}

impl<D: PhcDevice> PhcReader<D> {
    /// A reader taking `samples` measurements per read (extended and basic ioctls).
    pub fn new(dev: D, samples: usize) -> Self {
        PhcReader {
            dev,
            method: Method::Precise,
            samples: samples.clamp(1, PTP_MAX_SAMPLES),
        }
    }

    /// The ioctl in use.
    pub fn method(&self) -> Method {
        self.method
    }

    /// One read: the PHC's readings bracketed on the raw clock. `to_raw(realtime, late)` maps
    /// a `CLOCK_REALTIME` stamp onto the raw clock, rounded late or early (`None`: the mapping
    /// is not trustworthy now, e.g. just after a step). A method the driver does not implement
    /// is dropped for good and the next tried; any other failure is returned.
    pub fn read(
        &mut self,
        to_raw: &dyn Fn(i64, bool) -> Option<i64>,
    ) -> Result<Vec<Bracketed>, ttcore::phc::PhcError> {
        use ttcore::phc::PhcError;
        let unmapped = || PhcError::Read("CLOCK_REALTIME stamps cannot be mapped now".into());
        loop {
            let got = match self.method {
                Method::Precise => self.dev.precise().map(|(phc, raw)| {
                    Ok(vec![Bracketed {
                        raw_before: raw,
                        phc_ns: phc,
                        raw_after: raw,
                    }])
                }),
                Method::Extended => self.dev.extended(self.samples).map(|t| {
                    t.iter()
                        .map(|[a, p, b]| {
                            Ok(Bracketed {
                                raw_before: to_raw(*a, false).ok_or_else(unmapped)?,
                                phc_ns: *p,
                                raw_after: to_raw(*b, true).ok_or_else(unmapped)?,
                            })
                        })
                        .collect()
                }),
                Method::Basic => self.dev.basic(self.samples).map(|s| {
                    s.windows(3)
                        .step_by(2)
                        .map(|w| {
                            Ok(Bracketed {
                                raw_before: to_raw(w[0], false).ok_or_else(unmapped)?,
                                phc_ns: w[1],
                                raw_after: to_raw(w[2], true).ok_or_else(unmapped)?,
                            })
                        })
                        .collect()
                }),
            };
            match got {
                Ok(r) => return r,
                Err(e) if unsupported(&e) && self.method != Method::Basic => {
                    self.method = match self.method {
                        Method::Precise => Method::Extended,
                        _ => Method::Basic,
                    };
                }
                Err(e) => return Err(PhcError::Read(format!("{:?}: {e}", self.method))),
            }
        }
    }
}

/// Reads a published error bound (AWS ENA's `phc_error_bound`: one integer, ns).
pub fn read_error_bound(path: &Path) -> Result<i64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.trim().parse::<i64>().map_err(|e| {
        format!(
            "{}: {:?} is not a number of ns: {e}",
            path.display(),
            text.trim()
        )
    })
}

/// Where a PHC's own error bound comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoundSource {
    /// A bound the operator states (ns).
    Configured(ttcore::Span),
    /// A file the device publishes its bound in (one integer, ns), read after every PHC read
    /// (AWS ENA: `/sys/bus/pci/devices/<slot>/phc_error_bound`).
    Published(PathBuf),
}

/// A PHC as one of timed's sources: opened on first use and again after any failure, read with
/// the best ioctl it answers, each read judged by [`ttcore::phc::measure`] into the same kind
/// of sample a network source gives.
pub struct PhcSource {
    path: PathBuf,
    reader: Option<PhcReader<PtpDevice>>,
    bound: BoundSource,
    params: ttcore::phc::PhcParams,
    samples: usize,
    leaps: ttcore::LeapTable,
    map: RealtimeMap,
}

impl PhcSource {
    /// A source reading `path` (`samples` readings a poll), judged with `params` (its `drift`
    /// is replaced by each poll's) and mapped onto the timescale with `leaps`.
    pub fn new(
        path: &Path,
        bound: BoundSource,
        params: ttcore::phc::PhcParams,
        samples: usize,
        leaps: ttcore::LeapTable,
    ) -> Self {
        PhcSource {
            path: path.to_path_buf(),
            reader: None,
            bound,
            params,
            samples,
            leaps,
            map: RealtimeMap::new(),
        }
    }

    /// The ioctl in use, once the device answered one.
    pub fn method(&self) -> Option<Method> {
        self.reader.as_ref().map(PhcReader::method)
    }

    /// One poll: a read of the PHC bracketed on the raw clock, its bound, and the sample they
    /// give; `drift` bounds the raw clock over the bracket, `host` maps raw readings as timed's
    /// view of the host clock does. Failures are in the result's `errors` (the device is
    /// opened again next time).
    pub fn burst(&mut self, drift: ttcore::Rate, host: &dyn Fn(i64) -> i64) -> crate::ntp::Burst {
        let mut out = crate::ntp::Burst::default();
        match self.sample(drift, host) {
            Ok((sample, eps_ns)) => {
                out.info = Some(ttcore::ntp::MasterInfo {
                    id: format!("{:?}", self.method().unwrap_or(Method::Basic)).to_lowercase(),
                    kind: ttcore::ntp::ServerKind::Phc,
                    status: Some(ttcore::ClockStatus::Synchronized),
                    eps_ns,
                    leap: ttcore::ntp::packet::LeapIndicator::None,
                    tai_minus_utc_s: 0,
                    next_leap_posix_s: 0,
                    next_leap_delta: 0,
                });
                out.samples.push(sample);
            }
            Err(e) => out.errors.push(format!("{}: {e}", self.path.display())),
        }
        out
    }

    fn sample(
        &mut self,
        drift: ttcore::Rate,
        host: &dyn Fn(i64) -> i64,
    ) -> Result<(ttcore::ntp::Sample, i64), ttcore::phc::PhcError> {
        use ttcore::phc::{ErrorBound, PhcError};
        if self.reader.is_none() {
            let dev = PtpDevice::open(&self.path).map_err(|e| PhcError::Read(e.to_string()))?;
            self.reader = Some(PhcReader::new(dev, self.samples));
        }
        let reader = self.reader.as_mut().expect("opened above");
        // Realtime stamps (extended, basic) are mapped with a pair taken after the read.
        let map = std::cell::RefCell::new(&mut self.map);
        let mapping = std::cell::OnceCell::new();
        let to_raw = |rt: i64, late: bool| {
            mapping
                .get_or_init(|| map.borrow_mut().now())
                .to_raw(rt, late)
        };
        let got = reader.read(&to_raw);
        let mut readings = match got {
            Ok(r) => r,
            Err(e) => {
                self.reader = None;
                return Err(e);
            }
        };
        for r in &mut readings {
            r.raw_before = host(r.raw_before);
            r.raw_after = host(r.raw_after);
        }
        let bound = match &self.bound {
            BoundSource::Configured(s) => ErrorBound::Configured(*s),
            BoundSource::Published(p) => {
                let ns = read_error_bound(p).map_err(PhcError::BoundUnavailable)?;
                ErrorBound::Published {
                    ns,
                    read_raw: host(crate::clock::raw_ns()),
                }
            }
        };
        let params = ttcore::phc::PhcParams {
            drift,
            ..self.params
        };
        let m = ttcore::phc::measure(&readings, bound, &params, &self.leaps)?;
        let eps = match bound {
            ErrorBound::Configured(s) => s.as_nanos(),
            ErrorBound::Published { ns, .. } => ns,
        };
        let precise = self.method() == Some(Method::Precise);
        let sample = ttcore::ntp::Sample {
            m,
            eps_master: ttcore::Span::from_nanos(eps),
            trustworthy: true,
            stamping: ttcore::ntp::Stamping {
                client_kernel: true,
                server_kernel_rx: precise,
                server_kernel_tx: precise,
            },
            interleaved: false,
        };
        Ok((sample, eps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttcore::phc::{ErrorBound, PhcError, PhcParams, Timescale};
    use ttcore::{Rate, Span};

    /// A device replaying recorded answers: which ioctls it implements, and what they return.
    struct Recorded {
        precise: Option<io::Result<(i64, i64)>>,
        extended: Option<Vec<[i64; 3]>>,
        basic: Vec<i64>,
        calls: Vec<Method>,
    }

    fn enotty() -> io::Error {
        io::Error::from_raw_os_error(libc::ENOTTY)
    }

    impl PhcDevice for Recorded {
        fn precise(&mut self) -> io::Result<(i64, i64)> {
            self.calls.push(Method::Precise);
            match self.precise.take() {
                Some(r) => r,
                None => Err(enotty()),
            }
        }
        fn extended(&mut self, _n: usize) -> io::Result<Vec<[i64; 3]>> {
            self.calls.push(Method::Extended);
            self.extended
                .clone()
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EOPNOTSUPP))
        }
        fn basic(&mut self, _n: usize) -> io::Result<Vec<i64>> {
            self.calls.push(Method::Basic);
            Ok(self.basic.clone())
        }
    }

    /// Realtime = raw + 1 000 s, mapped exactly ±0.
    fn to_raw(rt: i64, _late: bool) -> Option<i64> {
        Some(rt - 1_000_000_000_000)
    }

    const RT: i64 = 1_796_000_000_000_000_000;

    #[test]
    fn falls_back_from_precise_to_extended_and_remembers() {
        let mut r = PhcReader::new(
            Recorded {
                precise: None,
                extended: Some(vec![
                    [RT, RT + 37_000_000_150, RT + 300],
                    [RT + 1_000, RT + 37_000_001_500, RT + 9_000],
                ]),
                basic: vec![],
                calls: vec![],
            },
            2,
        );
        let got = r.read(&to_raw).unwrap();
        assert_eq!(r.method(), Method::Extended);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].raw_before, RT - 1_000_000_000_000);
        // Next read goes straight to the extended ioctl.
        r.read(&to_raw).unwrap();
        assert_eq!(
            r.dev.calls,
            vec![Method::Precise, Method::Extended, Method::Extended]
        );
        // The recorded TAI PHC, 37 s ahead, judged by the core: truth inside.
        let p = PhcParams {
            timescale: Timescale::Tai,
            max_bound_delay: Span::from_millis(10),
            drift: Rate::from_ppm(15),
            max_bracket: Span::from_micros(50),
        };
        let leaps = ttcore::LeapTable::builtin();
        let bound = ErrorBound::Configured(Span::from_nanos(500));
        let m = ttcore::phc::measure(&got, bound, &p, &leaps).unwrap();
        assert!(
            m.bounds.contains(Span::from_nanos(1_000_000_000_000)),
            "{:?}",
            m.bounds
        );
    }

    #[test]
    fn the_basic_ioctl_brackets_each_phc_stamp_between_its_neighbours() {
        let mut r = PhcReader::new(
            Recorded {
                precise: None,
                extended: None,
                basic: vec![RT, RT + 100, RT + 200, RT + 300, RT + 400],
                calls: vec![],
            },
            2,
        );
        let got = r.read(&to_raw).unwrap();
        assert_eq!(r.method(), Method::Basic);
        let off = 1_000_000_000_000;
        assert_eq!(
            got,
            vec![
                Bracketed {
                    raw_before: RT - off,
                    phc_ns: RT + 100,
                    raw_after: RT + 200 - off
                },
                Bracketed {
                    raw_before: RT + 200 - off,
                    phc_ns: RT + 300,
                    raw_after: RT + 400 - off
                },
            ]
        );
    }

    #[test]
    fn a_failed_read_is_an_error_not_a_fallback() {
        let mut r = PhcReader::new(
            Recorded {
                precise: Some(Err(io::Error::from_raw_os_error(libc::EIO))),
                extended: None,
                basic: vec![],
                calls: vec![],
            },
            1,
        );
        let e = r.read(&to_raw).unwrap_err();
        assert!(
            matches!(e, PhcError::Read(ref m) if m.contains("Precise")),
            "{e}"
        );
        assert_eq!(
            r.method(),
            Method::Precise,
            "an I/O error is not 'unsupported'"
        );
        // A precise read: zero-width bracket on the raw clock itself.
        let mut r = PhcReader::new(
            Recorded {
                precise: Some(Ok((RT, 5_000))),
                extended: None,
                basic: vec![],
                calls: vec![],
            },
            1,
        );
        assert_eq!(
            r.read(&to_raw).unwrap(),
            vec![Bracketed {
                raw_before: 5_000,
                phc_ns: RT,
                raw_after: 5_000
            }]
        );
        // Unmappable realtime stamps (just after a step) refuse the read.
        let mut r = PhcReader::new(
            Recorded {
                precise: None,
                extended: Some(vec![[RT, RT, RT]]),
                basic: vec![],
                calls: vec![],
            },
            1,
        );
        assert!(r.read(&|_, _| None).is_err());
    }

    #[test]
    fn the_published_bound_is_one_integer() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("phc_error_bound");
        std::fs::write(&p, "2500\n").unwrap();
        assert_eq!(read_error_bound(&p), Ok(2500));
        std::fs::write(&p, "n/a\n").unwrap();
        assert!(read_error_bound(&p).unwrap_err().contains("not a number"));
        assert!(read_error_bound(&d.path().join("missing")).is_err());
    }

    #[test]
    fn a_file_that_is_no_phc_refuses_every_ioctl_cleanly() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut r = PhcReader::new(PtpDevice::open(f.path()).unwrap(), 3);
        let e = r.read(&to_raw).unwrap_err();
        assert!(e.to_string().contains("PHC read failed"), "{e}");
    }
}
