//! The client's side of one exchange, sans I/O: build a request, check the reply, and turn it
//! into offset bounds — the basic exchange of this request, and (interleaved mode) the previous
//! exchange completed with the kernel's transmit stamp of the master's previous reply.
//! timed, timemaster's peer polling and the fleet simulator all run exactly this code.
//!
//! Two kinds of server: a timemaster, whose TrueTime field carries its stamps and its own ε,
//! and a plain NTP server (chrony, ntpd, a cloud time service), whose bound is the RFC 5905
//! root distance it states: root delay / 2 + root dispersion, plus its clock's precision. That
//! bound is only as honest as the server's own chain: the assumption `ttctl status` names.
//!
//! Client stamps are rounded outward by the caller: `t1` (request left) may only be early, `t4`
//! (reply arrived) only late.

use super::packet::{
    FLAG_KERNEL_RX, FLAG_KERNEL_TX, FLAG_PREV_T3, Header, LeapIndicator, Mode, NtpTimestamp,
    Packet, PacketError, TtField, TtReply, TtRequest,
};
use crate::interval::ClockStatus;
use crate::leap::LeapTable;
use crate::rate::Rate;
use crate::time::{Span, Timestamp};
use crate::transfer::{SyncMeasurement, SyncTimestamps, TransferError, measure};
use thiserror::Error;

/// Why a reply was not used (each is counted by the shell).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ReplyError {
    /// Not a well-formed packet.
    #[error("{0}")]
    Malformed(#[from] PacketError),
    /// Not a server reply (mode 4).
    #[error("mode {0:?} is not a server reply")]
    NotServer(Mode),
    /// Its origin timestamp is not our request's cookie (stale, duplicate or spoofed).
    #[error("reply does not answer our request (origin mismatch)")]
    NotOurs,
    /// No TrueTime field: a plain NTP server, configured as a timemaster.
    #[error("not a timemaster: the reply has no TrueTime field (an NTP server? kind = \"ntp\")")]
    NoTtField,
    /// An NTP server that says it is not synchronized (leap indicator 3, stratum 0 or ≥ 16).
    #[error("the NTP server is not synchronized (leap {leap:?}, stratum {stratum})")]
    ServerUnsynchronized {
        /// Its leap indicator.
        leap: LeapIndicator,
        /// Its stratum.
        stratum: u8,
    },
    /// A kiss-o'-death packet (stratum 0): the server refuses or asks us to slow down.
    #[error("kiss code {}", String::from_utf8_lossy(.0))]
    Kiss([u8; 4]),
    /// The server's root distance is beyond what this source accepts.
    #[error("root distance {distance_ns} ns is beyond the maximum {max_ns} ns")]
    RootDistance {
        /// Root delay / 2 + root dispersion + precision (ns).
        distance_ns: i64,
        /// The maximum configured (ns).
        max_ns: i64,
    },
    /// A server on POSIX-kept UTC answered within [`crate::leap::LEAP_GUARD`] of a leap
    /// instant, where its stamps cannot be mapped onto the smeared timescale.
    #[error(
        "the NTP server keeps UTC with inserted leap seconds and answered at {server_ns} ns, too near a leap second to map onto the smeared timescale"
    )]
    LeapSecond {
        /// Its transmit stamp (POSIX ns).
        server_ns: i64,
    },
    /// The four timestamps are inconsistent.
    #[error("{0}")]
    Transfer(#[from] TransferError),
}

/// How the stamps of an exchange were taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Stamping {
    /// Our stamps (`t1`, `t4`) came from the kernel.
    pub client_kernel: bool,
    /// The master's receive stamp came from the kernel.
    pub server_kernel_rx: bool,
    /// The master's transmit stamp came from the kernel (an interleaved sample).
    pub server_kernel_tx: bool,
}

impl Stamping {
    /// All four stamps from kernels.
    pub fn all_kernel(&self) -> bool {
        self.client_kernel && self.server_kernel_rx && self.server_kernel_tx
    }
    /// "kernel", "mixed" or "user" for status output.
    pub fn as_str(&self) -> &'static str {
        if self.all_kernel() {
            "kernel"
        } else if self.client_kernel || self.server_kernel_rx || self.server_kernel_tx {
            "mixed"
        } else {
            "user"
        }
    }
}

/// One usable measurement of a master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The measurement (bounds at our raw reading `at`).
    pub m: SyncMeasurement,
    /// The master's ε used (ns).
    pub eps_master: Span,
    /// Whether the master said its time was trustworthy.
    pub trustworthy: bool,
    /// How the stamps were taken.
    pub stamping: Stamping,
    /// An interleaved sample (the previous exchange with the master's kernel transmit stamp).
    pub interleaved: bool,
}

/// What answered, as its reply (or the source's own nature) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// A time master of this kind (its TrueTime field's `kind` byte).
    Master(crate::MasterKind),
    /// A time master whose `kind` byte this version does not know.
    UnknownMaster(u8),
    /// A plain NTP server (no TrueTime field).
    Ntp,
    /// A PTP hardware clock read through its ioctl.
    Phc,
}

impl ServerKind {
    /// The kind of a TrueTime field's `kind` byte.
    pub const fn from_code(c: u8) -> ServerKind {
        match crate::MasterKind::from_code(c as i64) {
            Some(k) => ServerKind::Master(k),
            None => ServerKind::UnknownMaster(c),
        }
    }

    /// Its name in status output and metrics: `gps`, `armageddon`, `unknown`, `ntp`, `phc`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ServerKind::Master(k) => k.as_str(),
            ServerKind::UnknownMaster(_) => "unknown",
            ServerKind::Ntp => "ntp",
            ServerKind::Phc => "phc",
        }
    }
}

/// What the master said about itself in a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterInfo {
    /// Its id.
    pub id: String,
    /// What it is.
    pub kind: ServerKind,
    /// Its status (`None` for an unknown code: not usable).
    pub status: Option<ClockStatus>,
    /// Its ε (ns).
    pub eps_ns: i64,
    /// The NTP leap indicator.
    pub leap: LeapIndicator,
    /// TAI − UTC (s).
    pub tai_minus_utc_s: i16,
    /// Next leap (Unix s of the UTC midnight), 0 = none.
    pub next_leap_posix_s: i64,
    /// Next leap delta.
    pub next_leap_delta: i8,
}

/// The outcome of one reply.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplyOutcome {
    /// What the master said about itself.
    pub info: MasterInfo,
    /// This exchange, basic mode.
    pub basic: Sample,
    /// The previous exchange, completed with the master's kernel transmit stamp.
    pub interleaved: Option<Sample>,
}

impl ReplyOutcome {
    /// The narrower of the basic and interleaved samples (smallest radius).
    pub fn best(&self) -> Sample {
        match self.interleaved {
            Some(i) if i.m.bounds.radius() < self.basic.m.bounds.radius() => i,
            _ => self.basic,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Completed {
    cookie: u64,
    t1_raw: i64,
    t4_raw: i64,
    t2_ns: i64,
    eps_ns: i64,
    trustworthy: bool,
    client_kernel: bool,
    server_kernel_rx: bool,
}

/// What a source speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// A timemaster: the TrueTime field (interleaved when the master offers it).
    #[default]
    TrueTime,
    /// A plain NTPv4 server, basic or interleaved mode; replies whose root distance exceeds
    /// the maximum are refused.
    Ntp {
        /// The largest root distance accepted.
        max_root_distance: Span,
        /// The timescale its stamps are on.
        timescale: ServerTimescale,
        /// Ask for the interleaved mode (RFC 9769; chrony's `xleave`): each request names
        /// the server's receive stamp of the previous one, and a server that keeps it answers
        /// with the transmit stamp of its previous reply taken after it left (in the kernel),
        /// completing the previous exchange. A server that does not answers in basic mode.
        interleave: bool,
    },
}

/// The timescale of an NTP server's stamps. Ours smears every leap second over the 24 h from
/// noon to noon ([`crate::leap`]); a server that inserts leap seconds instead is up to 0.5 s
/// away from it inside that window. Which one a server keeps cannot be read from its replies
/// (a smearing server says nothing), so it is configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerTimescale {
    /// UTC kept the POSIX way, with leap seconds inserted by the kernel: chrony's and ntpd's
    /// default. Its stamps are **corrected** onto ours with the leap table (the built-in one
    /// plus what the server's leap indicator announces), and exchanges within
    /// [`crate::leap::LEAP_GUARD`] of a leap instant are **refused**
    /// ([`ReplyError::LeapSecond`]): the repeated second does not name one instant.
    #[default]
    Utc,
    /// The same 24 h noon-to-noon linear smear as ours (Google's and AWS's public time
    /// services): stamps taken as they are.
    Smeared,
}

impl ServerTimescale {
    /// `utc` or `smeared`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerTimescale::Utc => "utc",
            ServerTimescale::Smeared => "smeared",
        }
    }
}

/// Unix time the era of an NTP server's 32-bit seconds is resolved around (2030-03-17): right
/// for stamps from 1962 to 2098. The client has no wall clock of its own to resolve it with.
pub const NTP_ERA_HINT_UNIX_NS: i64 = 1_900_000_000 * 1_000_000_000;

/// 2^`exp` seconds in ns, rounded up (an NTP precision exponent); exponents of 0 and above
/// count as one second (no real clock is that coarse and still worth using).
pub fn precision_ns(exp: i8) -> i64 {
    if exp >= 0 {
        return 1_000_000_000;
    }
    let shift = (-(exp as i32)).min(62) as u32;
    1_000_000_000u64.div_ceil(1u64 << shift) as i64
}

/// An NTP server's stated error bound on its own time: root delay / 2 + root dispersion + the
/// precision of its clock (ns, rounded up).
pub fn root_distance_ns(h: &Header) -> i64 {
    use super::packet::short_to_ns;
    (short_to_ns(h.root_delay) as u64 + 1).div_ceil(2) as i64
        + short_to_ns(h.root_dispersion)
        + 1
        + precision_ns(h.precision)
}

/// A reference id as text: ASCII for stratum 1 (`GPS`, `LOCL`), a dotted IPv4 otherwise (and
/// for a stratum-1 id that is not text, like chrony's local reference 127.127.1.1).
pub fn reference_id_str(h: &Header) -> String {
    let r = h.reference_id;
    let ascii = r.iter().take_while(|&&b| b != 0);
    if h.stratum <= 1 && ascii.clone().all(u8::is_ascii_graphic) {
        ascii.map(|&b| b as char).collect()
    } else {
        format!("{}.{}.{}.{}", r[0], r[1], r[2], r[3])
    }
}

/// Per-master client state (the last completed exchange, for interleaving).
#[derive(Clone, Debug, Default)]
pub struct Client {
    last: Option<Completed>,
    protocol: Protocol,
    /// The leap seconds a [`ServerTimescale::Utc`] server's stamps are corrected with: the
    /// built-in table plus the server's announcements.
    leaps: Option<Box<LeapTable>>,
    /// The last exchange with an NTP server, for its interleaved mode.
    ntp_last: Option<NtpPrev>,
}

/// The last completed exchange with an NTP server: what its interleaved reply completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NtpPrev {
    t1_raw: i64,
    t4_raw: i64,
    /// The server's receive stamp as it sent it: the next request's origin.
    server_rx: NtpTimestamp,
    /// The root distance it stated then (ns).
    distance_ns: i64,
    client_kernel: bool,
}

/// The second cookie of an interleaved request (its receive field), which an interleaved
/// reply echoes as its origin: a fixed mix of the transmit cookie ([`splitmix64`]), never
/// equal to it.
pub fn interleave_cookie(cookie: u64) -> u64 {
    let z = splitmix64(cookie.wrapping_add(SPLITMIX64_GAMMA));
    if z == cookie { z ^ 1 } else { z }
}

/// SplitMix64's increment: a sequence `s, s + γ, s + 2γ, …` through [`splitmix64`] gives
/// well-mixed values.
pub const SPLITMIX64_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's finalizer: a bijection of `u64` that mixes every input bit into every output
/// bit. Not cryptographic: cookies need only be unpredictable to an off-path sender.
pub fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Client {
    /// A client of a timemaster, with no history.
    pub fn new() -> Self {
        Client::default()
    }

    /// A client of a plain NTP server on `timescale` that refuses root distances beyond
    /// `max_root_distance`, asking for the interleaved mode; a [`ServerTimescale::Utc`]
    /// server's stamps are corrected with the built-in leap table.
    pub fn ntp(max_root_distance: Span, timescale: ServerTimescale) -> Self {
        Client::with_protocol(Protocol::Ntp {
            max_root_distance,
            timescale,
            interleave: true,
        })
    }

    /// A client speaking `protocol`, with no history.
    pub fn with_protocol(protocol: Protocol) -> Self {
        let leaps = matches!(
            protocol,
            Protocol::Ntp {
                timescale: ServerTimescale::Utc,
                ..
            }
        )
        .then(|| Box::new(LeapTable::builtin()));
        Client {
            last: None,
            protocol,
            leaps,
            ntp_last: None,
        }
    }

    /// The same client correcting with `leaps` instead of the built-in table (a
    /// [`ServerTimescale::Utc`] server only).
    pub fn with_leaps(mut self, leaps: LeapTable) -> Self {
        if self.leaps.is_some() {
            self.leaps = Some(Box::new(leaps));
        }
        self
    }

    /// What it speaks.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Forgets the last exchange (after a timeout, a clock disruption or a reconnect).
    pub fn reset(&mut self) {
        self.last = None;
        self.ntp_last = None;
    }

    /// Writes a request whose transmit timestamp is `cookie` (random, never reused) into `out`.
    /// An NTP server gets a plain 48-byte request (some, like chrony 4.3, drop requests with
    /// extension fields they do not know).
    ///
    /// An interleaved request to an NTP server (after a completed exchange) carries the
    /// server's previous receive stamp as its origin and [`interleave_cookie`] as its receive
    /// stamp.
    pub fn request(&self, cookie: u64, out: &mut Vec<u8>) {
        let mut header = Header::client(cookie);
        let tt = match self.protocol {
            Protocol::TrueTime => Some(TtField::Request(TtRequest {
                prev_t2_ns: self.last.map_or(0, |c| c.t2_ns),
                prev_cookie: self.last.map_or(0, |c| c.cookie),
            })),
            Protocol::Ntp { interleave, .. } => {
                if let (true, Some(prev)) = (interleave, self.ntp_last) {
                    header.origin_ts = prev.server_rx;
                    header.receive_ts = NtpTimestamp(interleave_cookie(cookie));
                }
                None
            }
        };
        Packet { header, tt }.encode(out);
    }

    /// Checks a reply to the request with `cookie`, sent at our raw reading `t1_raw` (early)
    /// and received at `t4_raw` (late); `kernel` says whether both were kernel stamps, `drift`
    /// bounds our clock's frequency error over the round trip.
    #[allow(
        clippy::too_many_lines,
        reason = "one reply, in order: decode, check mode and origin (our cookie), read the TrueTime field, measure the basic exchange, then the interleaved one that completes the previous exchange; each refusal has its own error. One sequence, read against RFC 5905 §8."
    )]
    pub fn on_reply(
        &mut self,
        bytes: &[u8],
        cookie: u64,
        t1_raw: i64,
        t4_raw: i64,
        kernel: bool,
        drift: Rate,
    ) -> Result<ReplyOutcome, ReplyError> {
        let p = Packet::decode(bytes)?;
        if p.header.mode != Mode::Server {
            return Err(ReplyError::NotServer(p.header.mode));
        }
        if let Protocol::Ntp {
            max_root_distance,
            interleave,
            ..
        } = self.protocol
        {
            // Basic: our transmit cookie echoed. Interleaved: the receive cookie of a request
            // that named a previous exchange.
            let prev = match self.ntp_last {
                _ if p.header.origin_ts == NtpTimestamp(cookie) => None,
                Some(prev)
                    if interleave
                        && p.header.origin_ts == NtpTimestamp(interleave_cookie(cookie)) =>
                {
                    Some(prev)
                }
                _ => return Err(ReplyError::NotOurs),
            };
            let at = (t1_raw, t4_raw, kernel);
            let r = ntp_reply(
                &p.header,
                at,
                prev,
                drift,
                max_root_distance,
                &mut self.leaps,
            );
            self.ntp_last = r.as_ref().ok().map(|_| NtpPrev {
                t1_raw,
                t4_raw,
                server_rx: p.header.receive_ts,
                distance_ns: root_distance_ns(&p.header),
                client_kernel: kernel,
            });
            return r;
        }
        if p.header.origin_ts != NtpTimestamp(cookie) {
            return Err(ReplyError::NotOurs);
        }
        // A kiss (e.g. RATE from a master's rate limiter) carries no time: it only asks us to
        // slow down or go away. It echoes our cookie, so only an on-path sender can forge one.
        if p.header.stratum == 0 {
            return Err(ReplyError::Kiss(p.header.reference_id));
        }
        let r: TtReply = match p.tt {
            Some(TtField::Reply(r)) => r,
            _ => return Err(ReplyError::NoTtField),
        };
        let status = ClockStatus::from_u8(r.status);
        let trustworthy = status.is_some_and(|s| s.is_trustworthy())
            && p.header.leap != LeapIndicator::Unsynchronized;
        let info = MasterInfo {
            id: r.id_str(),
            kind: ServerKind::from_code(r.kind),
            status,
            eps_ns: r.eps_ns,
            leap: p.header.leap,
            tai_minus_utc_s: r.tai_minus_utc_s,
            next_leap_posix_s: r.next_leap_posix_s,
            next_leap_delta: r.next_leap_delta,
        };
        let server_kernel_rx = r.flags & FLAG_KERNEL_RX != 0;
        let basic_ts = SyncTimestamps {
            t1: Timestamp::from_nanos(t1_raw),
            t2: Timestamp::from_nanos(r.t2_ns),
            t3: Timestamp::from_nanos(r.t3_ns),
            t4: Timestamp::from_nanos(t4_raw),
        };
        let eps = Span::from_nanos(r.eps_ns);
        let basic = measure(&basic_ts, eps, drift);
        // The previous exchange, completed with the kernel's stamp of the previous reply.
        let interleaved = match self.last {
            Some(prev) if r.flags & FLAG_PREV_T3 != 0 && r.prev_t2_ns == prev.t2_ns => {
                let ts = SyncTimestamps {
                    t1: Timestamp::from_nanos(prev.t1_raw),
                    t2: Timestamp::from_nanos(prev.t2_ns),
                    t3: Timestamp::from_nanos(r.prev_t3_ns),
                    t4: Timestamp::from_nanos(prev.t4_raw),
                };
                let e = Span::from_nanos(prev.eps_ns.max(r.prev_eps_ns));
                measure(&ts, e, drift).ok().map(|m| Sample {
                    m,
                    eps_master: e,
                    trustworthy: prev.trustworthy && trustworthy,
                    stamping: Stamping {
                        client_kernel: prev.client_kernel,
                        server_kernel_rx: prev.server_kernel_rx,
                        server_kernel_tx: r.flags & FLAG_KERNEL_TX != 0,
                    },
                    interleaved: true,
                })
            }
            _ => None,
        };
        // Remember this exchange only if its own stamps are consistent.
        let basic = match basic {
            Ok(m) => m,
            Err(e) => {
                self.last = None;
                return Err(e.into());
            }
        };
        self.last = Some(Completed {
            cookie,
            t1_raw,
            t4_raw,
            t2_ns: r.t2_ns,
            eps_ns: r.eps_ns,
            trustworthy,
            client_kernel: kernel,
            server_kernel_rx,
        });
        Ok(ReplyOutcome {
            info,
            basic: Sample {
                m: basic,
                eps_master: eps,
                trustworthy,
                stamping: Stamping {
                    client_kernel: kernel,
                    server_kernel_rx,
                    server_kernel_tx: false,
                },
                interleaved: false,
            },
            interleaved,
        })
    }
}

/// A plain NTP server's reply, basic mode: refused when the server is unsynchronized, sends a
/// kiss code or states a root distance beyond `max`; otherwise the exchange bounded by its root
/// distance (its stamps are only as good as its chain, which it states).
///
/// With `leaps` (a [`ServerTimescale::Utc`] server), a leap indicator of 1 or 2 adds the
/// announced leap second to the table, and both server stamps are mapped onto the timescale
/// with it ([`LeapTable::posix_to_timescale`]), or the exchange is refused near a leap instant.
///
/// With `prev` (an interleaved reply), the sample is the previous exchange's — its stamps, the
/// server's receive stamp of then, and this reply's transmit stamp, which is when the previous
/// reply left — bounded by the larger of the two root distances; it is the outcome's only
/// sample (`basic`, marked interleaved), since this reply carries no transmit stamp of its own.
fn ntp_reply(
    h: &Header,
    (t1_raw, t4_raw, kernel): (i64, i64, bool),
    prev: Option<NtpPrev>,
    drift: Rate,
    max: Span,
    leaps: &mut Option<Box<LeapTable>>,
) -> Result<ReplyOutcome, ReplyError> {
    if h.stratum == 0 {
        return Err(ReplyError::Kiss(h.reference_id));
    }
    if h.leap == LeapIndicator::Unsynchronized || h.stratum >= 16 {
        return Err(ReplyError::ServerUnsynchronized {
            leap: h.leap,
            stratum: h.stratum,
        });
    }
    let distance = root_distance_ns(h);
    if distance > max.as_nanos() {
        return Err(ReplyError::RootDistance {
            distance_ns: distance,
            max_ns: max.as_nanos(),
        });
    }
    // Stamps rounded down to the ns: `t2` may be up to 1 ns early, which the +1 ns in the
    // root distance covers; an early `t3` only widens the lower side. Mapped from a POSIX-kept
    // server's scale, each is within 1 ns more (rounded down again): one more ns.
    let (t1_raw, t4_raw, kernel, rx, distance) = match prev {
        None => (t1_raw, t4_raw, kernel, h.receive_ts, distance),
        Some(p) => (
            p.t1_raw,
            p.t4_raw,
            p.client_kernel,
            p.server_rx,
            distance.max(p.distance_ns),
        ),
    };
    let mut t2 = rx.to_unix_ns_near(NTP_ERA_HINT_UNIX_NS);
    let mut t3 = h.transmit_ts.to_unix_ns_near(NTP_ERA_HINT_UNIX_NS);
    let mut distance = distance;
    if let Some(table) = leaps.as_mut() {
        let delta = match h.leap {
            LeapIndicator::Insert => 1,
            LeapIndicator::Delete => -1,
            _ => 0,
        };
        if delta != 0 {
            let leap = LeapTable::announced_at(t3, delta);
            // An announcement that contradicts the table (a deletion where an insertion is
            // known, or too close to another) leaves it as it is.
            if let Ok(t) = table.with_announced(leap) {
                **table = t;
            }
        }
        match (table.posix_to_timescale(t2), table.posix_to_timescale(t3)) {
            (Some(a), Some(b)) => {
                t2 = a.as_nanos();
                t3 = b.as_nanos();
                distance += 1;
            }
            _ => return Err(ReplyError::LeapSecond { server_ns: t3 }),
        }
    }
    let ts = SyncTimestamps {
        t1: Timestamp::from_nanos(t1_raw),
        t2: Timestamp::from_nanos(t2),
        t3: Timestamp::from_nanos(t3),
        t4: Timestamp::from_nanos(t4_raw),
    };
    let eps = Span::from_nanos(distance);
    let m = measure(&ts, eps, drift)?;
    Ok(ReplyOutcome {
        info: MasterInfo {
            id: reference_id_str(h),
            kind: ServerKind::Ntp,
            status: Some(ClockStatus::Synchronized),
            eps_ns: distance,
            leap: h.leap,
            tai_minus_utc_s: 0,
            next_leap_posix_s: 0,
            next_leap_delta: 0,
        },
        basic: Sample {
            m,
            eps_master: eps,
            trustworthy: true,
            stamping: Stamping {
                client_kernel: kernel,
                server_kernel_rx: false,
                server_kernel_tx: false,
            },
            interleaved: prev.is_some(),
        },
        interleaved: None,
    })
}

/// The narrowest sample of a burst after bringing each to the raw reading `at` (widening by
/// `carry` over the gap): what the host feeds into its round. `None` for an empty burst.
pub fn narrowest(samples: &[Sample], at: i64, carry: Rate) -> Option<Sample> {
    samples
        .iter()
        .map(|s| {
            let gap = Span::from_nanos(at.saturating_sub(s.m.at.as_nanos())).saturating_abs();
            let mut s = *s;
            s.m.bounds =
                s.m.bounds
                    .widen(carry.bound_over(gap).saturating_add(Span::from_nanos(1)));
            s.m.at = Timestamp::from_nanos(at);
            s
        })
        .min_by_key(|s| s.m.bounds.radius())
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "test arithmetic on small, bounded values"
)]
mod tests {
    use super::super::server::{MasterView, RawStamp, answer, sent_reply};
    use super::*;
    use crate::clock_model::ClockModel;
    use proptest::prelude::*;

    /// A master whose raw clock reads true time − 5 ms, with ε 300 ns + 1 ppb.
    fn view() -> MasterView {
        MasterView {
            model: Some(ClockModel {
                ref_raw: crate::time::RawReading::from_nanos(1_000_000_000),
                ref_time: Timestamp::from_nanos(1_005_000_000),
                freq: Rate::ZERO,
                eps_ref: Span::from_nanos(300),
                drift_bound: Rate::from_ppb(1),
            }),
            status: ClockStatus::Synchronized,
            max_epsilon: Span::from_millis(1),
            kind: 1,
            id: TtReply::id_from("gps-a"),
            reference_id: *b"GPS\0",
            tai_minus_utc_s: 37,
            next_leap_posix_s: 0,
            next_leap_delta: 0,
        }
    }

    #[test]
    fn basic_and_interleaved_exchanges_contain_truth() {
        // Host raw = true time + 2 ms; master raw = true − 5 ms. Delays: up 30 µs, residence
        // 20 µs of which the last 8 µs between the user-space read and the kernel stamp.
        let v = view();
        let mut c = Client::new();
        let mut req = Vec::new();
        let mut rep = Vec::new();
        let mut prev: Option<(u64, super::super::server::SentReply)> = None;
        for k in 0..3i64 {
            let t = 2_000_000_000 + k * 1_000_000_000; // true time at t1
            let cookie = 0xdead_0000 + k as u64;
            c.request(cookie, &mut req);
            let rx = RawStamp {
                raw: t + 30_000 - 5_000_000,
                kernel: true,
            };
            let tx_user = t + 42_000 - 5_000_000;
            let lookup =
                |t2: i64, c: u64| prev.filter(|p| p.0 == c && p.1.t2_ns == t2).map(|p| p.1);
            let a = answer(&req, req.len(), rx, tx_user, &lookup, &v, &mut rep).unwrap();
            assert!(a.tt_client);
            prev = Some((
                cookie,
                sent_reply(&v, a.t2_ns, t + 50_000 - 5_000_000, true),
            ));
            let t1 = t + 2_000_000;
            let t4 = t + 80_000 + 2_000_000;
            let out = c
                .on_reply(&rep, cookie, t1, t4, true, Rate::from_ppm(15))
                .unwrap();
            let truth = Span::from_nanos(-2_000_000); // timescale − host raw
            assert!(out.basic.m.bounds.contains(truth));
            assert!(!out.basic.stamping.all_kernel());
            assert_eq!(out.info.id, "gps-a");
            if k == 0 {
                assert!(out.interleaved.is_none());
            } else {
                let i = out.interleaved.unwrap();
                assert!(i.stamping.all_kernel());
                // Interleaved: round trip 80 µs minus residence 20 µs.
                assert_eq!(i.m.delay, Span::from_micros(60));
                assert!(i.m.bounds.contains(truth));
                assert!(i.m.bounds.radius() < out.basic.m.bounds.radius());
                assert_eq!(out.best(), i);
            }
        }
    }

    #[test]
    fn refuses_what_is_not_an_answer() {
        let v = view();
        let none = |_: i64, _: u64| None;
        let mut c = Client::new();
        let mut req = Vec::new();
        let mut rep = Vec::new();
        c.request(7, &mut req);
        let rx = RawStamp {
            raw: 1_000_000_000,
            kernel: false,
        };
        answer(&req, req.len(), rx, 1_000_000_100, &none, &v, &mut rep).unwrap();
        assert_eq!(
            c.on_reply(&rep, 8, 0, 10, false, Rate::ZERO).unwrap_err(),
            ReplyError::NotOurs
        );
        assert!(matches!(
            c.on_reply(&req, 7, 0, 10, false, Rate::ZERO).unwrap_err(),
            ReplyError::NotServer(Mode::Client)
        ));
        // The master answering a reply: refused.
        assert!(matches!(
            answer(&rep, rep.len(), rx, 0, &none, &v, &mut Vec::new()),
            Err(super::super::server::Refusal::NotClient(Mode::Server))
        ));
        // A plain NTP reply (no TrueTime field).
        let mut plain = Vec::new();
        Packet {
            header: Header::client(0),
            tt: None,
        }
        .encode(&mut plain);
        answer(&plain, plain.len(), rx, 1_000_000_100, &none, &v, &mut rep).unwrap();
        assert_eq!(rep.len(), 48, "a plain request gets a plain reply");
        assert_eq!(
            c.on_reply(&rep, 0, 0, 10, false, Rate::ZERO).unwrap_err(),
            ReplyError::NoTtField
        );
    }

    #[test]
    fn untrustworthy_master_says_leap_3() {
        let none = |_: i64, _: u64| None;
        let mut v = view();
        v.status = ClockStatus::Unsynchronized;
        let mut req = Vec::new();
        let mut rep = Vec::new();
        let mut c = Client::new();
        c.request(1, &mut req);
        let rx = RawStamp {
            raw: 1_000_000_000,
            kernel: true,
        };
        answer(&req, req.len(), rx, 1_000_000_100, &none, &v, &mut rep).unwrap();
        let p = Packet::decode(&rep).unwrap();
        assert_eq!(p.header.leap, LeapIndicator::Unsynchronized);
        assert_eq!(p.header.stratum, 1);
        assert_eq!(&p.header.reference_id, b"GPS\0");
        let out = c
            .on_reply(&rep, 1, 990_000_000, 1_010_000_000, true, Rate::ZERO)
            .unwrap();
        assert!(!out.basic.trustworthy);
        // ε beyond max-epsilon: unsynchronized too; no model: stratum 16.
        let mut v = view();
        v.max_epsilon = Span::from_nanos(100);
        answer(&req, req.len(), rx, 1_000_000_100, &none, &v, &mut rep).unwrap();
        assert_eq!(
            Packet::decode(&rep).unwrap().header.leap,
            LeapIndicator::Unsynchronized
        );
        v.model = None;
        answer(&req, req.len(), rx, 1_000_000_100, &none, &v, &mut rep).unwrap();
        assert_eq!(Packet::decode(&rep).unwrap().header.stratum, 16);
        // Root dispersion ≥ ε, in 2⁻¹⁶ s units rounded up.
        let v = view();
        answer(&req, req.len(), rx, 1_000_000_100, &none, &v, &mut rep).unwrap();
        let p = Packet::decode(&rep).unwrap();
        assert!(super::super::packet::short_to_ns(p.header.root_dispersion) >= 301);
    }

    proptest! {
        // For any delays, residences, clock offsets, kernel-vs-user stamping delays and master
        // errors within ε, every sample (basic and interleaved) contains the true offset.
        #[test]
        fn samples_contain_truth(
            host_off in -1_000_000_000i64..1_000_000_000,
            master_off in -1_000_000_000i64..1_000_000_000,
            master_err in -300i64..=300,
            ups in proptest::collection::vec(0i64..200_000, 4),
            downs in proptest::collection::vec(0i64..200_000, 4),
            residences in proptest::collection::vec(0i64..100_000, 4),
            send_path in proptest::collection::vec(0i64..20_000, 4),
        ) {
            let mut v = view();
            // Model: timescale = raw + 5 ms + master_err (true raw offset = −5 ms + master_off).
            v.model = Some(ClockModel { ref_time: Timestamp::from_nanos(1_005_000_000 + master_err - master_off), ..v.model.unwrap() });
            let mut c = Client::new();
            let (mut req, mut rep) = (Vec::new(), Vec::new());
            let mut prev = None;
            for k in 0..4usize {
                let t = 10_000_000_000 + k as i64 * 1_000_000_000;
                let m_raw = |tt: i64| tt - 5_000_000 + master_off;
                let cookie = k as u64 + 1;
                c.request(cookie, &mut req);
                let t2 = t + ups[k];
                let t3_user = t2 + residences[k];
                let t3_kernel = t3_user + send_path[k];
                let lookup = |t2: i64, c: u64| prev.filter(|p: &(u64, super::super::server::SentReply)| p.0 == c && p.1.t2_ns == t2).map(|p| p.1);
                let a = answer(&req, req.len(), RawStamp { raw: m_raw(t2), kernel: true }, m_raw(t3_user), &lookup, &v, &mut rep).unwrap();
                prev = Some((cookie, sent_reply(&v, a.t2_ns, m_raw(t3_kernel), true)));
                let t4 = t3_kernel + downs[k];
                let out = c.on_reply(&rep, cookie, t + host_off, t4 + host_off, true, Rate::from_ppm(1)).unwrap();
                let truth = Span::from_nanos(-host_off);
                prop_assert!(out.basic.m.bounds.contains(truth));
                if let Some(i) = out.interleaved {
                    prop_assert!(i.m.bounds.contains(truth));
                }
            }
        }
    }

    /// A plain NTP server's reply to `cookie`: it received at `t2` and sent at `t3` (Unix ns,
    /// its own clock), stating `delay_ns` / `disp_ns` as root delay and dispersion.
    fn ntp_server_reply(
        cookie: u64,
        t2: i64,
        t3: i64,
        (leap, stratum): (LeapIndicator, u8),
        delay_ns: i64,
        disp_ns: i64,
    ) -> Vec<u8> {
        use super::super::packet::short_from_ns_ceil;
        let mut out = Vec::new();
        Packet {
            header: Header {
                leap,
                version: 4,
                mode: Mode::Server,
                stratum,
                poll: 0,
                precision: -24,
                root_delay: short_from_ns_ceil(delay_ns),
                root_dispersion: short_from_ns_ceil(disp_ns),
                reference_id: if stratum == 0 { *b"RATE" } else { *b"LOCL" },
                reference_ts: NtpTimestamp::from_unix_ns_floor(t2 - 1_000_000_000),
                origin_ts: NtpTimestamp(cookie),
                receive_ts: NtpTimestamp::from_unix_ns_floor(t2),
                transmit_ts: NtpTimestamp::from_unix_ns_floor(t3),
            },
            tt: None,
        }
        .encode(&mut out);
        out
    }

    #[test]
    fn an_ntp_server_gets_a_plain_request_and_its_root_distance_bounds_the_sample() {
        let mut c = Client::ntp(Span::from_millis(100), ServerTimescale::Utc);
        let mut req = Vec::new();
        c.request(7, &mut req);
        assert_eq!(req.len(), 48, "no extension field for a plain NTP server");
        // Raw clock = UTC − 1 000 s; 20 µs each way; the server 30 µs fast, stating 100 µs
        // root delay and 10 µs root dispersion, which NTP's 2⁻¹⁶ s units round up to 106.8
        // and 15.3 µs: root distance 68.7 µs + precision (60 ns).
        let off = 1_000_000_000_000i64;
        let t1 = 1_700_000_000_000_000_000 - off;
        let t2 = t1 + off + 20_000 + 30_000;
        let t3 = t2 + 5_000;
        let t4 = t1 + 20_000 + 5_000 + 20_000;
        let r = ntp_server_reply(7, t2, t3, (LeapIndicator::None, 2), 100_000, 10_000);
        let o = c.on_reply(&r, 7, t1, t4, true, Rate::from_ppm(15)).unwrap();
        let d = o.info.eps_ns;
        assert!((68_700..68_800).contains(&d), "root distance {d}");
        assert_eq!(o.info.kind, ServerKind::Ntp);
        assert_eq!(o.info.id, "76.79.67.76"); // stratum 2: the reference id as an IPv4 address
        assert!(
            o.basic.m.bounds.contains(Span::from_nanos(off)),
            "{:?}",
            o.basic.m.bounds
        );
        assert!(o.interleaved.is_none());
        // The same server lying by more than its root distance is not contained: the bound is
        // exactly the server's statement, no wider.
        let r = ntp_server_reply(
            7,
            t2 + 200_000,
            t3 + 200_000,
            (LeapIndicator::None, 2),
            100_000,
            10_000,
        );
        let o = c.on_reply(&r, 7, t1, t4, true, Rate::from_ppm(15)).unwrap();
        assert!(!o.basic.m.bounds.contains(Span::from_nanos(off)));
    }

    /// An RFC 9769 server (chrony's): it keeps the kernel transmit stamp of each reply under
    /// the receive stamp of its request, and answers a request whose origin names one of those
    /// in interleaved mode. Its clock is exact; it states 1 µs of root dispersion.
    struct XleaveServer {
        saved: std::collections::HashMap<u64, i64>,
        supports: bool,
    }

    impl XleaveServer {
        fn answer(&mut self, req: &[u8], t2: i64, t3_user: i64, t3_kernel: i64) -> Vec<u8> {
            let q = Packet::decode(req).unwrap().header;
            let rx = NtpTimestamp::from_unix_ns_floor(t2);
            let saved = self.saved.get(&q.origin_ts.0).copied();
            let (origin, tx) = match saved {
                Some(k) if self.supports && q.origin_ts.0 != 0 => (q.receive_ts, k),
                _ => (q.transmit_ts, t3_user),
            };
            self.saved.insert(rx.0, t3_kernel);
            let mut r = ntp_server_reply(0, t2, tx, (LeapIndicator::None, 2), 0, 1_000);
            r[24..32].copy_from_slice(&origin.0.to_be_bytes());
            r[40..48].copy_from_slice(&NtpTimestamp::from_unix_ns_floor(tx).0.to_be_bytes());
            r
        }
    }

    /// Four exchanges a second apart with an interleaving server: 30 µs each way, the reply
    /// read in user space 10 µs after the request arrived and leaving 8 µs later. Returns each
    /// outcome's sample and the requests sent.
    fn xleave_run(supports: bool) -> (Vec<Sample>, Vec<Header>) {
        let mut server = XleaveServer {
            saved: Default::default(),
            supports,
        };
        let mut c = Client::ntp(Span::from_millis(100), ServerTimescale::Smeared);
        let off = 5_000_000_000i64; // raw = truth − 5 s
        let (mut out, mut reqs) = (Vec::new(), Vec::new());
        for k in 0..4i64 {
            let t1 = 1_800_000_000_000_000_000 + k * 1_000_000_000;
            let cookie = 0x1234_0000 + k as u64;
            let mut req = Vec::new();
            c.request(cookie, &mut req);
            reqs.push(Packet::decode(&req).unwrap().header);
            let rep = server.answer(&req, t1 + 30_000, t1 + 40_000, t1 + 48_000);
            let o = c
                .on_reply(&rep, cookie, t1 - off, t1 + 78_000 - off, true, Rate::ZERO)
                .unwrap();
            assert!(
                o.basic.m.bounds.contains(Span::from_nanos(off)),
                "{k}: {o:?}"
            );
            out.push(o.basic);
        }
        (out, reqs)
    }

    #[test]
    fn an_interleaving_ntp_server_completes_the_previous_exchange_with_its_late_stamp() {
        let (samples, reqs) = xleave_run(true);
        // The first exchange is basic; every later request names the previous one and is
        // answered interleaved, with the tighter bound of the stamp taken after the reply left.
        assert_eq!(reqs[0].origin_ts.0, 0);
        assert!(!samples[0].interleaved);
        for k in 1..4 {
            assert_ne!(reqs[k].origin_ts.0, 0);
            assert_eq!(
                reqs[k].receive_ts.0,
                interleave_cookie(0x1234_0000 + k as u64)
            );
            assert!(samples[k].interleaved, "{k}");
            assert!(samples[k].m.bounds.radius() < samples[0].m.bounds.radius());
        }
        // A server without the mode answers every request in basic mode, all usable.
        let (samples, _) = xleave_run(false);
        assert!(samples.iter().all(|s| !s.interleaved));
    }

    #[test]
    fn a_reply_echoing_neither_cookie_is_not_ours() {
        let mut c = Client::ntp(Span::from_millis(100), ServerTimescale::Smeared);
        let t2 = 1_800_000_000_000_000_000;
        let mut r = ntp_server_reply(7, t2, t2 + 10, (LeapIndicator::None, 2), 0, 1_000);
        // No previous exchange: an "interleaved" origin is refused.
        r[24..32].copy_from_slice(&interleave_cookie(7).to_be_bytes());
        assert_eq!(
            c.on_reply(&r, 7, 0, 100_000, true, Rate::ZERO),
            Err(ReplyError::NotOurs)
        );
        r[24..32].copy_from_slice(&8u64.to_be_bytes());
        assert_eq!(
            c.on_reply(&r, 7, 0, 100_000, true, Rate::ZERO),
            Err(ReplyError::NotOurs)
        );
        assert_ne!(interleave_cookie(0), 0);
    }

    /// An NTP server that inserts the leap second of 2016-12-31 (announcing it all that day,
    /// as chrony does) answers a host across the whole smear window, 100 µs wrong inside its
    /// 200 µs root dispersion; `timescale` is what the host is told. Returns (samples that
    /// contain the true offset, samples that do not, exchanges refused near the leap).
    fn across_a_leap(timescale: ServerTimescale, table: LeapTable) -> (u32, u32, u32) {
        use crate::leap::{LeapTable, days_from_civil};
        let truth_table = LeapTable::builtin();
        let m_ns = days_from_civil(2017, 1, 1) * 86_400 * 1_000_000_000;
        let mut c = Client::ntp(Span::from_millis(100), timescale).with_leaps(table);
        // The host's raw clock = truth − 1 000 s; 40 µs each way, 10 µs in the server.
        let off = 1_000_000_000_000i64;
        let (mut inside, mut outside, mut refused) = (0, 0, 0);
        // From the start of the last day to 13 h after the leap every 97 s; every 50 ms
        // within 4 s of it.
        let coarse = (-24 * 3600 * 1000..13 * 3600 * 1000i64).step_by(97_000);
        let fine = (-4_000..4_000i64).step_by(50);
        for (k, ms) in coarse.chain(fine).enumerate() {
            let t = m_ns + ms * 1_000_000; // true time (the timescale) at t1
            let posix = |t: i64| {
                let l = truth_table.timescale_to_utc(Timestamp::from_nanos(t));
                let s = crate::leap::days_from_civil(l.year, l.month, l.day) * 86_400
                    + l.hour as i64 * 3600
                    + l.minute as i64 * 60
                    + l.second.min(59) as i64;
                s * 1_000_000_000 + l.nanos as i64 + 100_000
            };
            let (t2, t3) = (posix(t + 40_000), posix(t + 50_000));
            let leap = if t3 < m_ns {
                LeapIndicator::Insert
            } else {
                LeapIndicator::None
            };
            let cookie = 1_000 + k as u64;
            let mut req = Vec::new();
            c.request(cookie, &mut req);
            let r = ntp_server_reply(cookie, t2, t3, (leap, 2), 0, 200_000);
            let (t1, t4) = (t - off, t + 90_000 - off);
            match c.on_reply(&r, cookie, t1, t4, true, Rate::from_ppm(15)) {
                Ok(o) if o.basic.m.bounds.contains(Span::from_nanos(off)) => inside += 1,
                Ok(_) => outside += 1,
                Err(ReplyError::LeapSecond { .. }) => {
                    assert!(
                        (-4_000..3_000).contains(&ms),
                        "refused {ms} ms from the leap"
                    );
                    refused += 1
                }
                Err(e) => panic!("{ms} ms: {e}"),
            }
        }
        (inside, outside, refused)
    }

    #[test]
    fn a_server_inserting_a_leap_second_is_corrected_onto_the_smear_and_refused_beside_it() {
        // Told the truth (utc), with the leap second only announced by the server: corrected
        // across the whole window, refused only within the guard around the leap.
        let (inside, outside, refused) = across_a_leap(ServerTimescale::Utc, LeapTable::empty());
        assert_eq!(outside, 0);
        assert!(
            inside > 1_000 && refused > 50,
            "{inside} inside, {refused} refused"
        );
        // Negative control: the same server taken as smeared is up to 0.5 s off inside the
        // window, far beyond its 200 µs: the checker sees it.
        let (inside, outside, refused) =
            across_a_leap(ServerTimescale::Smeared, LeapTable::empty());
        assert_eq!(refused, 0);
        assert!(
            outside > 500 && inside > 300,
            "{inside} inside, {outside} outside"
        );
    }

    #[test]
    fn unsynchronized_kissing_and_distant_ntp_servers_are_refused() {
        let mut c = Client::ntp(Span::from_millis(1), ServerTimescale::Utc);
        let (t1, t4) = (1_000, 101_000);
        let t2 = 1_700_000_000_000_000_000;
        let cases = [
            ((LeapIndicator::Unsynchronized, 2), 0, "not synchronized"),
            ((LeapIndicator::None, 16), 0, "not synchronized"),
            ((LeapIndicator::None, 0), 0, "kiss code RATE"),
            ((LeapIndicator::None, 1), 5_000_000, "root distance"),
        ];
        for (lead, disp, want) in cases {
            let r = ntp_server_reply(9, t2, t2 + 10, lead, 0, disp);
            let e = c.on_reply(&r, 9, t1, t4, true, Rate::ZERO).unwrap_err();
            assert!(e.to_string().contains(want), "{lead:?}: {e}");
        }
        // A timemaster client given a plain NTP reply says what it probably is.
        let r = ntp_server_reply(9, t2, t2 + 10, (LeapIndicator::None, 1), 0, 0);
        let e = Client::new()
            .on_reply(&r, 9, t1, t4, true, Rate::ZERO)
            .unwrap_err();
        assert_eq!(e, ReplyError::NoTtField);
        assert!(e.to_string().contains("kind = \"ntp\""));
    }

    #[test]
    fn precision_and_reference_ids_read_as_chrony_writes_them() {
        assert_eq!(precision_ns(-20), 954); // 2^-20 s, rounded up
        assert_eq!(precision_ns(-30), 1);
        assert_eq!(precision_ns(3), 1_000_000_000);
        let mut h = Header::client(0);
        h.stratum = 1;
        h.reference_id = *b"GPS\0";
        assert_eq!(reference_id_str(&h), "GPS");
        h.reference_id = [127, 127, 1, 1];
        assert_eq!(reference_id_str(&h), "127.127.1.1");
        h.stratum = 3;
        h.reference_id = [192, 0, 2, 7];
        assert_eq!(reference_id_str(&h), "192.0.2.7");
    }

    proptest! {
        /// Whatever the offset, path asymmetry and server error, as long as the server's error
        /// is within the root distance it states, the sample contains the true offset.
        #[test]
        fn an_honest_ntp_server_is_always_inside(
            off in -1_000_000_000_000i64..1_000_000_000_000,
            up in 0i64..5_000_000,
            down in 0i64..5_000_000,
            residence in 0i64..1_000_000,
            delay_ns in 0i64..2_000_000,
            disp_ns in 0i64..2_000_000,
            frac in -1.0f64..1.0,
        ) {
            use super::super::packet::{short_from_ns_ceil, short_to_ns};
            // The largest error the statement allows, shrunk by `frac`.
            let stated = short_to_ns(short_from_ns_ceil(delay_ns)) / 2
                + short_to_ns(short_from_ns_ceil(disp_ns));
            let err = (stated as f64 * frac) as i64;
            let t1 = 1_000_000_000;
            let t2 = 1_700_000_000_000_000_000 + t1 + off + up + err;
            let t3 = t2 + residence;
            let t4 = t1 + up + residence + down;
            let mut c = Client::ntp(Span::from_secs(10), ServerTimescale::Utc);
            let r = ntp_server_reply(3, t2, t3, (LeapIndicator::None, 3), delay_ns, disp_ns);
            let o = c.on_reply(&r, 3, t1, t4, true, Rate::ZERO).unwrap();
            let truth = Span::from_nanos(1_700_000_000_000_000_000 + off);
            prop_assert!(o.basic.m.bounds.contains(truth), "{:?} vs {truth:?}", o.basic.m.bounds);
        }
    }
}
