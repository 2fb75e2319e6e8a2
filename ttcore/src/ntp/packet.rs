//! The NTPv4 packet (RFC 5905) with RFC 7822 extension fields, and the TrueTime extension field
//! that carries what NTP cannot: the master's ε in ns, its status, kind, id, timescale, leap
//! state, exact nanosecond timestamps and the interleaved transmit stamp.
//!
//! Decoding is strict and total: every byte string gives a value or a [`PacketError`], never a
//! panic (fuzzed by `ttbench fuzz`, targets `ntp-request` and `ntp-reply`).

use crate::time::Timestamp;
use thiserror::Error;

/// Length of the NTP header (bytes).
pub const HEADER_LEN: usize = 48;
/// Largest packet accepted (bytes); anything longer is refused as oversized.
pub const MAX_PACKET_LEN: usize = 1024;
/// RFC 7822 extension field type of the TrueTime field (from the range no standard uses).
pub const TT_FIELD_TYPE: u16 = 0xF454;
/// Version of the TrueTime field's layout.
pub const TT_FIELD_VERSION: u8 = 1;
/// Seconds from the NTP era 0 epoch (1900-01-01) to the Unix epoch.
pub const NTP_UNIX_OFFSET_S: i64 = 2_208_988_800;

/// NTP association mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 3: a client request.
    Client,
    /// 4: a server reply.
    Server,
    /// Anything else (symmetric, broadcast, control, private), carried as the raw value.
    Other(u8),
}

impl Mode {
    fn from_bits(b: u8) -> Mode {
        match b {
            3 => Mode::Client,
            4 => Mode::Server,
            o => Mode::Other(o),
        }
    }
    fn bits(self) -> u8 {
        match self {
            Mode::Client => 3,
            Mode::Server => 4,
            Mode::Other(o) => o & 7,
        }
    }
}

/// NTP leap indicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeapIndicator {
    /// 0: no warning.
    None,
    /// 1: last minute of the day has 61 s.
    Insert,
    /// 2: last minute of the day has 59 s.
    Delete,
    /// 3: the clock is not synchronized.
    Unsynchronized,
}

impl LeapIndicator {
    fn from_bits(b: u8) -> Self {
        match b & 3 {
            0 => LeapIndicator::None,
            1 => LeapIndicator::Insert,
            2 => LeapIndicator::Delete,
            _ => LeapIndicator::Unsynchronized,
        }
    }
    fn bits(self) -> u8 {
        match self {
            LeapIndicator::None => 0,
            LeapIndicator::Insert => 1,
            LeapIndicator::Delete => 2,
            LeapIndicator::Unsynchronized => 3,
        }
    }
}

/// A 64-bit NTP timestamp: seconds since 1900 in the high 32 bits, the fraction in the low 32
/// (era 0, 1900–2036; see [`NtpTimestamp::from_unix_ns_floor`] for the era handling).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    /// The timestamp at or before `ns` (Unix ns), wrapping into the 2³²-second era.
    pub fn from_unix_ns_floor(ns: i64) -> Self {
        Self::convert(ns, false)
    }
    /// The timestamp at or after `ns` (Unix ns), wrapping into the 2³²-second era.
    pub fn from_unix_ns_ceil(ns: i64) -> Self {
        Self::convert(ns, true)
    }
    fn convert(ns: i64, ceil: bool) -> Self {
        let s = ns.div_euclid(1_000_000_000) as i128 + NTP_UNIX_OFFSET_S as i128;
        let sub = ns.rem_euclid(1_000_000_000) as u128;
        let num = sub << 32;
        let mut frac = num / 1_000_000_000;
        let mut secs = s;
        if ceil && num % 1_000_000_000 != 0 {
            frac += 1;
            if frac == 1 << 32 {
                frac = 0;
                secs += 1;
            }
        }
        #[allow(
            clippy::cast_possible_truncation,
            reason = "NTP seconds are modulo 2³² (the era is implied): this wrap is the format; \
                      frac < 2³² (sub < 10⁹, and a carry to 2³² was moved into secs above)"
        )]
        let (secs, frac) = (secs as u32, frac as u32);
        NtpTimestamp((u64::from(secs) << 32) | u64::from(frac))
    }
    /// Unix ns of this timestamp in the era that contains `near` (Unix ns), rounded down.
    pub fn to_unix_ns_near(self, near: i64) -> i64 {
        let secs = (self.0 >> 32) as i64;
        let frac = (self.0 & 0xffff_ffff) as i128;
        // frac < 2³², so this is < 10⁹.
        let sub = i64::try_from((frac * 1_000_000_000) >> 32).unwrap_or(0);
        let near_ntp = near.div_euclid(1_000_000_000) + NTP_UNIX_OFFSET_S;
        let era = near_ntp.div_euclid(1 << 32);
        let mut full = era * (1 << 32) + secs;
        // Pick the era whose value is closest to `near`.
        if full - near_ntp > 1 << 31 {
            full -= 1 << 32;
        } else if near_ntp - full > 1 << 31 {
            full += 1 << 32;
        }
        (full - NTP_UNIX_OFFSET_S)
            .saturating_mul(1_000_000_000)
            .saturating_add(sub)
    }
}

/// NTP's 16.16 fixed-point seconds (root delay, root dispersion): `ns` rounded **up** to the
/// 2⁻¹⁶ s unit (15.26 µs), saturating.
pub fn short_from_ns_ceil(ns: i64) -> u32 {
    let ns = ns.max(0) as u128;
    let v = (ns << 16).div_ceil(1_000_000_000);
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// NTP's 16.16 fixed-point seconds to ns (exact up to rounding down).
pub fn short_to_ns(v: u32) -> i64 {
    // < 2³² × 10⁹ / 2¹⁶ < 2⁴⁶: fits.
    (i64::from(v) * 1_000_000_000) >> 16
}

/// The 48-byte NTP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Leap indicator.
    pub leap: LeapIndicator,
    /// Version (3 or 4 accepted).
    pub version: u8,
    /// Mode.
    pub mode: Mode,
    /// Stratum (1 = primary reference, 16 = unsynchronized).
    pub stratum: u8,
    /// Poll exponent (log₂ s).
    pub poll: i8,
    /// Precision exponent (log₂ s).
    pub precision: i8,
    /// Root delay (16.16 s).
    pub root_delay: u32,
    /// Root dispersion (16.16 s).
    pub root_dispersion: u32,
    /// Reference id (ASCII for stratum 1).
    pub reference_id: [u8; 4],
    /// When the reference was last updated.
    pub reference_ts: NtpTimestamp,
    /// The client's transmit timestamp, echoed by a server (the request's cookie).
    pub origin_ts: NtpTimestamp,
    /// Server: when the request arrived.
    pub receive_ts: NtpTimestamp,
    /// When this packet left (a client's cookie in a request).
    pub transmit_ts: NtpTimestamp,
}

impl Header {
    /// A client request header whose transmit timestamp is `cookie`.
    pub fn client(cookie: u64) -> Header {
        Header {
            leap: LeapIndicator::None,
            version: 4,
            mode: Mode::Client,
            stratum: 0,
            poll: 0,
            precision: 0,
            root_delay: 0,
            root_dispersion: 0,
            reference_id: [0; 4],
            reference_ts: NtpTimestamp(0),
            origin_ts: NtpTimestamp(0),
            receive_ts: NtpTimestamp(0),
            transmit_ts: NtpTimestamp(cookie),
        }
    }

    fn encode(&self, out: &mut [u8; HEADER_LEN]) {
        out[0] = (self.leap.bits() << 6) | ((self.version & 7) << 3) | self.mode.bits();
        out[1] = self.stratum;
        out[2] = self.poll as u8;
        out[3] = self.precision as u8;
        out[4..8].copy_from_slice(&self.root_delay.to_be_bytes());
        out[8..12].copy_from_slice(&self.root_dispersion.to_be_bytes());
        out[12..16].copy_from_slice(&self.reference_id);
        out[16..24].copy_from_slice(&self.reference_ts.0.to_be_bytes());
        out[24..32].copy_from_slice(&self.origin_ts.0.to_be_bytes());
        out[32..40].copy_from_slice(&self.receive_ts.0.to_be_bytes());
        out[40..48].copy_from_slice(&self.transmit_ts.0.to_be_bytes());
    }

    fn decode(b: &[u8; HEADER_LEN]) -> Header {
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| (u32_at(i) as u64) << 32 | u32_at(i + 4) as u64;
        Header {
            leap: LeapIndicator::from_bits(b[0] >> 6),
            version: (b[0] >> 3) & 7,
            mode: Mode::from_bits(b[0] & 7),
            stratum: b[1],
            poll: b[2] as i8,
            precision: b[3] as i8,
            root_delay: u32_at(4),
            root_dispersion: u32_at(8),
            reference_id: [b[12], b[13], b[14], b[15]],
            reference_ts: NtpTimestamp(u64_at(16)),
            origin_ts: NtpTimestamp(u64_at(24)),
            receive_ts: NtpTimestamp(u64_at(32)),
            transmit_ts: NtpTimestamp(u64_at(40)),
        }
    }
}

/// The TrueTime field in a client's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TtRequest {
    /// The `t2_ns` of the last reply this client got from this server (0 = none): asks for the
    /// kernel transmit stamp of that reply (interleaved mode).
    pub prev_t2_ns: i64,
    /// The cookie (transmit timestamp) of the request that reply answered.
    pub prev_cookie: u64,
}

/// A master's status on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TtReply {
    /// Status code ([`crate::ClockStatus::as_u8`]).
    pub status: u8,
    /// Master kind: 1 GPS, 2 armageddon.
    pub kind: u8,
    /// Timescale: 1 = UTC with the 24 h noon-to-noon linear leap smear (the only one defined).
    pub timescale: u8,
    /// Next known leap: +1 inserted, −1 deleted, 0 none.
    pub next_leap_delta: i8,
    /// TAI − UTC (s) now.
    pub tai_minus_utc_s: i16,
    /// Flags: bit 0 kernel receive stamp, bit 1 `prev_t3_ns` valid, bit 2 it is a kernel stamp.
    pub flags: u16,
    /// When the request arrived, on the master's timescale (ns; rounded late).
    pub t2_ns: i64,
    /// When the reply left, read just before sending (ns; early by construction).
    pub t3_ns: i64,
    /// The master's ε covering `t2_ns` and `t3_ns` (ns).
    pub eps_ns: i64,
    /// The `t2_ns` of the previous reply that `prev_t3_ns` belongs to (0 = none).
    pub prev_t2_ns: i64,
    /// Kernel transmit stamp of the previous reply (ns; rounded early).
    pub prev_t3_ns: i64,
    /// ε at `prev_t3_ns` (ns).
    pub prev_eps_ns: i64,
    /// UTC midnight (Unix s) at which the next known leap takes effect; 0 = none.
    pub next_leap_posix_s: i64,
    /// The master's id (UTF-8, at most 16 bytes).
    pub id: [u8; 16],
}

/// [`TtReply::flags`]: the receive stamp came from the kernel.
pub const FLAG_KERNEL_RX: u16 = 1;
/// [`TtReply::flags`]: `prev_t3_ns` is valid.
pub const FLAG_PREV_T3: u16 = 2;
/// [`TtReply::flags`]: `prev_t3_ns` is a kernel transmit stamp.
pub const FLAG_KERNEL_TX: u16 = 4;

impl TtReply {
    /// The id as text (invalid UTF-8 replaced).
    pub fn id_str(&self) -> String {
        let end = self.id.iter().position(|&b| b == 0).unwrap_or(16);
        String::from_utf8_lossy(&self.id[..end]).into_owned()
    }
    /// Id bytes from text: truncated at 16 bytes on a character boundary.
    pub fn id_from(s: &str) -> [u8; 16] {
        let mut id = [0u8; 16];
        let mut n = 0;
        for c in s.chars() {
            let l = c.len_utf8();
            if n + l > 16 {
                break;
            }
            c.encode_utf8(&mut id[n..n + l]);
            n += l;
        }
        id
    }
}

/// The TrueTime field, either direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtField {
    /// In a request.
    Request(TtRequest),
    /// In a reply.
    Reply(TtReply),
}

/// Body of the TrueTime request field as first defined (no padding); still accepted.
const TT_REQ_BODY: usize = 28;
const TT_REPLY_BODY: usize = 84;
/// Body of the TrueTime request field as sent: the request's 28 bytes and zeros up to the
/// reply's size, so that a TrueTime request is as large as its reply (no amplification).
const TT_REQ_PADDED_BODY: usize = TT_REPLY_BODY;

/// A decoded packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The header.
    pub header: Header,
    /// The TrueTime field, if present.
    pub tt: Option<TtField>,
}

/// Why bytes are not a packet we accept. Every variant is counted by the receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum PacketError {
    /// Fewer than 48 bytes.
    #[error("truncated: {0} bytes, an NTP header is 48")]
    Truncated(usize),
    /// More than [`MAX_PACKET_LEN`] bytes.
    #[error("oversized: {0} bytes")]
    Oversized(usize),
    /// Version other than 3 or 4.
    #[error("NTP version {0} is not supported")]
    Version(u8),
    /// An extension field whose length is not a multiple of 4, under 16, or past the end (or
    /// trailing bytes that are no field, such as a MAC).
    #[error("malformed extension field at byte {0}")]
    BadField(usize),
    /// The TrueTime field of an unknown layout version, kind or length.
    #[error("malformed TrueTime field")]
    BadTtField,
    /// More than one TrueTime field.
    #[error("duplicate TrueTime field")]
    DuplicateTtField,
}

impl Packet {
    /// Encodes into `out` (cleared first); returns the length.
    pub fn encode(&self, out: &mut Vec<u8>) -> usize {
        out.clear();
        let mut h = [0u8; HEADER_LEN];
        self.header.encode(&mut h);
        out.extend_from_slice(&h);
        match &self.tt {
            None => {}
            Some(TtField::Request(r)) => {
                put_field_header(out, TT_REQ_PADDED_BODY);
                out.extend_from_slice(&[TT_FIELD_VERSION, 1, 0, 0]);
                out.extend_from_slice(&r.prev_t2_ns.to_be_bytes());
                out.extend_from_slice(&r.prev_cookie.to_be_bytes());
                out.extend_from_slice(&[0u8; 8 + TT_REQ_PADDED_BODY - TT_REQ_BODY]);
            }
            Some(TtField::Reply(r)) => {
                put_field_header(out, TT_REPLY_BODY);
                out.extend_from_slice(&[TT_FIELD_VERSION, 2]);
                out.extend_from_slice(&r.flags.to_be_bytes());
                out.extend_from_slice(&[r.status, r.kind, r.timescale, r.next_leap_delta as u8]);
                out.extend_from_slice(&r.tai_minus_utc_s.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                for v in [
                    r.t2_ns,
                    r.t3_ns,
                    r.eps_ns,
                    r.prev_t2_ns,
                    r.prev_t3_ns,
                    r.prev_eps_ns,
                    r.next_leap_posix_s,
                ] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                out.extend_from_slice(&r.id);
            }
        }
        out.len()
    }

    /// Decodes `b` strictly (see [`PacketError`]).
    pub fn decode(b: &[u8]) -> Result<Packet, PacketError> {
        if b.len() < HEADER_LEN {
            return Err(PacketError::Truncated(b.len()));
        }
        if b.len() > MAX_PACKET_LEN {
            return Err(PacketError::Oversized(b.len()));
        }
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&b[..HEADER_LEN]);
        let header = Header::decode(&h);
        if !(3..=4).contains(&header.version) {
            return Err(PacketError::Version(header.version));
        }
        let mut tt = None;
        for f in fields(b) {
            let (_, ty, body) = f?;
            // RFC 7822: a field of any other type is skipped (NTS fields, which the NTS layer
            // reads, ClockBound's 0xFEC2, future ones).
            if ty == TT_FIELD_TYPE {
                if tt.is_some() {
                    return Err(PacketError::DuplicateTtField);
                }
                tt = Some(decode_tt(body)?);
            }
        }
        Ok(Packet { header, tt })
    }
}

/// The extension fields after the header of `b` (at most [`MAX_PACKET_LEN`] bytes), in order:
/// `(offset, type, body)`, or the error at the first malformed one (a length under 16, not a
/// multiple of 4, or past the end: which is also how a trailing MAC looks).
pub(crate) fn fields(b: &[u8]) -> impl Iterator<Item = Result<(usize, u16, &[u8]), PacketError>> {
    let mut at = HEADER_LEN;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || at >= b.len() {
            return None;
        }
        let rest = b.len() - at;
        let len = if rest < 16 {
            0
        } else {
            u16::from_be_bytes([b[at + 2], b[at + 3]]) as usize
        };
        if len < 16 || len % 4 != 0 || len > rest {
            failed = true;
            return Some(Err(PacketError::BadField(at)));
        }
        let item = (
            at,
            u16::from_be_bytes([b[at], b[at + 1]]),
            &b[at + 4..at + len],
        );
        at += len;
        Some(Ok(item))
    })
}

fn put_field_header(out: &mut Vec<u8>, body: usize) {
    out.extend_from_slice(&TT_FIELD_TYPE.to_be_bytes());
    #[allow(
        clippy::cast_possible_truncation,
        reason = "body is one of the two TrueTime field sizes (constants of tens of bytes)"
    )]
    let len = (body + 4) as u16;
    out.extend_from_slice(&len.to_be_bytes());
}

fn decode_tt(body: &[u8]) -> Result<TtField, PacketError> {
    if body.len() < 4 || body[0] != TT_FIELD_VERSION {
        return Err(PacketError::BadTtField);
    }
    let i64_at = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&body[i..i + 8]);
        i64::from_be_bytes(a)
    };
    match (body[1], body.len()) {
        (1, TT_REQ_BODY | TT_REQ_PADDED_BODY) => Ok(TtField::Request(TtRequest {
            prev_t2_ns: i64_at(4),
            prev_cookie: i64_at(12) as u64,
        })),
        (2, TT_REPLY_BODY) => {
            let mut id = [0u8; 16];
            id.copy_from_slice(&body[68..84]);
            Ok(TtField::Reply(TtReply {
                flags: u16::from_be_bytes([body[2], body[3]]),
                status: body[4],
                kind: body[5],
                timescale: body[6],
                next_leap_delta: body[7] as i8,
                tai_minus_utc_s: i16::from_be_bytes([body[8], body[9]]),
                t2_ns: i64_at(12),
                t3_ns: i64_at(20),
                eps_ns: i64_at(28),
                prev_t2_ns: i64_at(36),
                prev_t3_ns: i64_at(44),
                prev_eps_ns: i64_at(52),
                next_leap_posix_s: i64_at(60),
                id,
            }))
        }
        _ => Err(PacketError::BadTtField),
    }
}

/// Unix ns of a timescale timestamp (the project's timescale is Unix-epoch based).
pub fn ntp_floor(t: Timestamp) -> NtpTimestamp {
    NtpTimestamp::from_unix_ns_floor(t.as_nanos())
}

/// [`NtpTimestamp::from_unix_ns_ceil`] of a timescale timestamp.
pub fn ntp_ceil(t: Timestamp) -> NtpTimestamp {
    NtpTimestamp::from_unix_ns_ceil(t.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply() -> TtReply {
        TtReply {
            status: 1,
            kind: 1,
            timescale: 1,
            next_leap_delta: -1,
            tai_minus_utc_s: 37,
            flags: FLAG_KERNEL_RX | FLAG_PREV_T3,
            t2_ns: 1_790_000_000_123_456_789,
            t3_ns: 1_790_000_000_123_466_789,
            eps_ns: 812,
            prev_t2_ns: 1_789_999_999_123_456_789,
            prev_t3_ns: 1_789_999_999_123_459_000,
            prev_eps_ns: 800,
            next_leap_posix_s: 1_798_761_600,
            id: TtReply::id_from("gps-a"),
        }
    }

    #[test]
    fn round_trips() {
        let mut buf = Vec::new();
        for tt in [
            None,
            Some(TtField::Request(TtRequest {
                prev_t2_ns: 42,
                prev_cookie: 7,
            })),
            Some(TtField::Reply(reply())),
        ] {
            let p = Packet {
                header: Header::client(0x0123_4567_89ab_cdef),
                tt,
            };
            let n = p.encode(&mut buf);
            assert_eq!(n % 4, 0);
            // A TrueTime request is as large as a TrueTime reply.
            assert!(n == 48 || n == 48 + 4 + TT_REPLY_BODY, "{n}");
            assert!(n == 48 || n >= 48 + 28, "RFC 7822: last field ≥ 28 bytes");
            assert_eq!(Packet::decode(&buf).unwrap(), p);
        }
        assert_eq!(reply().id_str(), "gps-a");
        // A multi-byte character is never split.
        assert_eq!(TtReply::id_from("ééééééééé").len(), 16);
        let id = TtReply {
            id: TtReply::id_from("ééééééééé"),
            ..reply()
        };
        assert_eq!(id.id_str(), "éééééééé");
    }

    #[test]
    fn rejects_with_reasons() {
        let mut buf = Vec::new();
        Packet {
            header: Header::client(1),
            tt: Some(TtField::Request(TtRequest::default())),
        }
        .encode(&mut buf);
        assert_eq!(Packet::decode(&buf[..47]), Err(PacketError::Truncated(47)));
        assert_eq!(
            Packet::decode(&vec![0x23; 2000]),
            Err(PacketError::Oversized(2000))
        );
        let mut v = buf.clone();
        v[0] = (v[0] & !0x38) | (2 << 3);
        assert_eq!(Packet::decode(&v), Err(PacketError::Version(2)));
        // A 20-byte MAC after the header is no extension field.
        let mut mac = buf[..48].to_vec();
        mac.extend_from_slice(&[0u8; 20]);
        assert!(matches!(
            Packet::decode(&mac),
            Err(PacketError::BadField(48))
        ));
        // A field of a type we do not know is skipped (RFC 7822), not refused.
        let mut unk = buf.clone();
        unk[48] = 0x01;
        unk[49] = 0x04;
        assert_eq!(
            Packet::decode(&unk),
            Ok(Packet {
                header: Header::client(1),
                tt: None
            })
        );
        let mut dup = buf.clone();
        dup.extend_from_slice(&buf[48..]);
        assert_eq!(Packet::decode(&dup), Err(PacketError::DuplicateTtField));
        let mut badv = buf.clone();
        badv[52] = 9;
        assert_eq!(Packet::decode(&badv), Err(PacketError::BadTtField));
        let mut badlen = buf.clone();
        badlen[51] = 0xff;
        assert!(matches!(
            Packet::decode(&badlen),
            Err(PacketError::BadField(48))
        ));
    }

    #[test]
    fn timestamps_round_outward() {
        let ns = 1_790_000_000_000_000_001;
        let f = NtpTimestamp::from_unix_ns_floor(ns);
        let c = NtpTimestamp::from_unix_ns_ceil(ns);
        assert_eq!(c.0, f.0 + 1);
        assert!(f.to_unix_ns_near(ns) <= ns);
        // Ceil decodes (rounding down) to at most 1 ns below, never more than 1 ns above.
        let back = c.to_unix_ns_near(ns);
        assert!((ns..=ns + 1).contains(&back), "{back}");
        // Exact seconds are exact.
        let s = 1_790_000_000_000_000_000;
        assert_eq!(
            NtpTimestamp::from_unix_ns_ceil(s),
            NtpTimestamp::from_unix_ns_floor(s)
        );
        assert_eq!(NtpTimestamp::from_unix_ns_floor(s).to_unix_ns_near(s), s);
        // Era 1 (after 2036-02-07) decodes near the right instant.
        let later = 2_200_000_000_000_000_000;
        let t = NtpTimestamp::from_unix_ns_floor(later);
        assert!((t.to_unix_ns_near(later + 1_000_000_000) - later).abs() < 2);
        // Root dispersion rounds up to 2⁻¹⁶ s.
        assert_eq!(short_from_ns_ceil(0), 0);
        assert_eq!(short_from_ns_ceil(1), 1);
        assert_eq!(short_from_ns_ceil(15_258), 1);
        assert_eq!(short_from_ns_ceil(15_259), 2);
        assert!(short_to_ns(short_from_ns_ceil(812)) >= 812);
        assert_eq!(short_from_ns_ceil(i64::MAX), u32::MAX);
    }
}
