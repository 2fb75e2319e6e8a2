//! The master's side of one exchange, sans I/O: given a request's bytes, its receive stamp, the
//! raw reading just before the reply leaves and the master's current model, build the reply.
//!
//! Stamps are rounded *outward* by the shell before they get here: a receive stamp may only be
//! late (it then over-states the up-path delay), a transmit stamp only early. The bound the
//! client computes (`ttcore::transfer`) stays honest under that rounding.

use super::packet::{
    FLAG_KERNEL_RX, FLAG_KERNEL_TX, FLAG_PREV_T3, Header, LeapIndicator, Mode, Packet, PacketError,
    TtField, TtReply, ntp_ceil, ntp_floor, short_from_ns_ceil,
};
use crate::clock_model::ClockModel;
use crate::interval::ClockStatus;
use crate::time::{RawReading, Span};
use thiserror::Error;

/// Precision advertised in replies (log₂ s): 2⁻²⁵ s ≈ 30 ns, the resolution of a kernel stamp
/// mapped onto the raw clock.
pub const PRECISION: i8 = -25;

/// What the master publishes, as the reply builder needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct MasterView {
    /// The raw-clock → timescale model (`None` before the first reference).
    pub model: Option<ClockModel>,
    /// The master's status (before the max-ε check, which [`answer`] applies).
    pub status: ClockStatus,
    /// Beyond this ε the master answers unsynchronized.
    pub max_epsilon: Span,
    /// 1 GPS, 2 armageddon.
    pub kind: u8,
    /// Its id.
    pub id: [u8; 16],
    /// NTP reference id (`GPS\0`, `ATOM`).
    pub reference_id: [u8; 4],
    /// TAI − UTC (s).
    pub tai_minus_utc_s: i16,
    /// Next leap: UTC midnight (Unix s), 0 = none.
    pub next_leap_posix_s: i64,
    /// Next leap: +1, −1, 0.
    pub next_leap_delta: i8,
}

/// A stamp on the master's raw clock, already rounded outward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawStamp {
    /// Raw reading (ns).
    pub raw: i64,
    /// Taken by the kernel (else in user space).
    pub kernel: bool,
}

/// What the master remembers of the last reply to one client, for interleaved mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentReply {
    /// The reply's `t2_ns` (its identity).
    pub t2_ns: i64,
    /// Its transmit stamp, on the timescale (ns; rounded early), once known.
    pub t3_ns: Option<i64>,
    /// ε at that stamp (ns).
    pub eps_ns: i64,
    /// The transmit stamp came from the kernel.
    pub kernel: bool,
}

/// Why a request got no answer (every case is counted by the shell).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Refusal {
    /// Not a well-formed packet.
    #[error("{0}")]
    Malformed(#[from] PacketError),
    /// Not a client request (mode 3).
    #[error("mode {0:?} is not a client request")]
    NotClient(Mode),
    /// A client request that carries a TrueTime *reply* field.
    #[error("request carries a reply field")]
    ReplyInRequest,
}

/// What the shell needs to remember of an answered request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answered {
    /// `t2_ns` of the reply (0 when the master had no model).
    pub t2_ns: i64,
    /// The status that was sent.
    pub status: ClockStatus,
    /// The request carried the TrueTime field (a TrueTime client: worth an interleave record).
    pub tt_client: bool,
    /// The reply carries the transmit stamp of the previous one (interleaved mode).
    pub interleaved: bool,
    /// The request asked for the TrueTime field but was too small to carry its reply: it got
    /// a basic reply instead (a reply is never larger than its request).
    pub downsized: bool,
}

/// The master's status and ε at raw reading `raw`, with the max-ε downgrade applied.
pub fn status_at(view: &MasterView, raw: RawReading) -> (ClockStatus, Option<Span>) {
    match &view.model {
        None => (ClockStatus::Unsynchronized, None),
        Some(m) => {
            let eps = m.epsilon_at(raw);
            (view.status.within(eps, view.max_epsilon), Some(eps))
        }
    }
}

/// Builds the reply to `req` into `out`, at most `limit` bytes long.
///
/// **No amplification:** the reply carries the TrueTime field only when it fits in `limit`
/// (the request's length, less what an authenticating layer will add); otherwise it is the
/// basic 48-byte reply, which never exceeds a request. Our clients pad their TrueTime request
/// to the reply's size, so they always get the field; fields the master does not know are
/// ignored (RFC 7822), so a request that carries one still gets a reply within its size.
///
/// * `limit` — the most bytes the reply may have (at least 48 for any answer);
/// * `rx` — when the request arrived (rounded late);
/// * `tx_raw` — a raw reading taken before the reply is handed to the kernel;
/// * `prev` — looks up what was remembered of a reply by its `(t2_ns, origin cookie)`; the
///   transmit stamp of the reply the request names (`prev_t2_ns`, `prev_cookie`) is returned
///   with this one (interleaved mode).
// The master's reply in wire order (checks on the request, header, stamps, the TrueTime field,
// interleaving): one sequence, as RFC 5905 describes it.
pub fn answer(
    req: &[u8],
    limit: usize,
    rx: RawStamp,
    tx_raw: i64,
    prev: &dyn Fn(i64, u64) -> Option<SentReply>,
    view: &MasterView,
    out: &mut Vec<u8>,
) -> Result<Answered, Refusal> {
    let p = Packet::decode(req)?;
    if p.header.mode != Mode::Client {
        return Err(Refusal::NotClient(p.header.mode));
    }
    let tt_req = match p.tt {
        Some(TtField::Reply(_)) => return Err(Refusal::ReplyInRequest),
        Some(TtField::Request(r)) => Some(r),
        None => None,
    };
    let later = rx.raw.max(tx_raw);
    let (status, eps) = status_at(view, RawReading::from_nanos(later));
    let (t2, t3, ref_ts) = match &view.model {
        Some(m) => (
            m.estimate_at(RawReading::from_nanos(rx.raw))
                .map_or(0, |t| t.as_nanos()),
            m.estimate_at(RawReading::from_nanos(tx_raw))
                .map_or(0, |t| t.as_nanos()),
            m.ref_time,
        ),
        None => (0, 0, crate::time::Timestamp::EPOCH),
    };
    let eps_ns = eps.map_or(i64::MAX, |e| e.as_nanos());
    let trusted = status.is_trustworthy();
    let header = Header {
        leap: if trusted {
            LeapIndicator::None
        } else {
            LeapIndicator::Unsynchronized
        },
        version: p.header.version,
        mode: Mode::Server,
        stratum: if view.model.is_some() { 1 } else { 16 },
        poll: p.header.poll,
        precision: PRECISION,
        root_delay: 0,
        root_dispersion: short_from_ns_ceil(eps_ns),
        reference_id: view.reference_id,
        reference_ts: ntp_floor(ref_ts),
        origin_ts: p.header.transmit_ts,
        receive_ts: ntp_ceil(crate::time::Timestamp::from_nanos(t2)),
        transmit_ts: ntp_floor(crate::time::Timestamp::from_nanos(t3)),
    };
    let mut interleaved = false;
    let tt = tt_req.map(|r| {
        let matched = if r.prev_t2_ns != 0 {
            prev(r.prev_t2_ns, r.prev_cookie).filter(|s| s.t2_ns == r.prev_t2_ns)
        } else {
            None
        };
        let prev_t3 = matched.and_then(|s| s.t3_ns.map(|t3| (s, t3)));
        let mut flags = if rx.kernel { FLAG_KERNEL_RX } else { 0 };
        if let Some((s, _)) = prev_t3 {
            interleaved = true;
            flags |= FLAG_PREV_T3;
            if s.kernel {
                flags |= FLAG_KERNEL_TX;
            }
        }
        TtField::Reply(TtReply {
            status: status.as_u8(),
            kind: view.kind,
            timescale: 1,
            next_leap_delta: view.next_leap_delta,
            tai_minus_utc_s: view.tai_minus_utc_s,
            flags,
            t2_ns: t2,
            t3_ns: t3,
            eps_ns,
            prev_t2_ns: prev_t3.map_or(0, |(s, _)| s.t2_ns),
            prev_t3_ns: prev_t3.map_or(0, |(_, t3)| t3),
            prev_eps_ns: prev_t3.map_or(0, |(s, _)| s.eps_ns),
            next_leap_posix_s: view.next_leap_posix_s,
            id: view.id,
        })
    });
    let mut downsized = false;
    let full = Packet { header, tt }.encode(out);
    if full > limit {
        Packet { header, tt: None }.encode(out);
        downsized = true;
        interleaved = false;
    }
    Ok(Answered {
        t2_ns: t2,
        status,
        tt_client: tt_req.is_some() && !downsized,
        interleaved,
        downsized,
    })
}

/// The record of a reply whose kernel transmit stamp arrived at raw reading `tx_raw` (rounded
/// early): its timescale value and ε under `view`.
pub fn sent_reply(view: &MasterView, t2_ns: i64, tx_raw: i64, kernel: bool) -> SentReply {
    let (t3, eps) = match &view.model {
        Some(m) => (
            m.estimate_at(RawReading::from_nanos(tx_raw))
                .map(|t| t.as_nanos()),
            m.epsilon_at(RawReading::from_nanos(tx_raw)).as_nanos(),
        ),
        None => (None, i64::MAX),
    };
    SentReply {
        t2_ns,
        t3_ns: t3,
        eps_ns: eps,
        kernel,
    }
}

/// Builds a kiss-o'-death reply with `code` (e.g. `*b"RATE"`) to `req` into `out` (RFC 5905
/// §7.4): stratum 0, the code as reference id, leap "unsynchronized", the request's transmit
/// stamp echoed as origin (so the client can match it) and no time at all. 48 bytes: never
/// larger than a request.
pub fn kiss(req: &[u8], code: [u8; 4], out: &mut Vec<u8>) -> Result<(), Refusal> {
    let p = Packet::decode(req)?;
    if p.header.mode != Mode::Client {
        return Err(Refusal::NotClient(p.header.mode));
    }
    let zero = ntp_floor(crate::time::Timestamp::EPOCH);
    let header = Header {
        leap: LeapIndicator::Unsynchronized,
        version: p.header.version,
        mode: Mode::Server,
        stratum: 0,
        poll: p.header.poll,
        precision: PRECISION,
        root_delay: 0,
        root_dispersion: 0,
        reference_id: code,
        reference_ts: zero,
        origin_ts: p.header.transmit_ts,
        receive_ts: zero,
        transmit_ts: zero,
    };
    Packet { header, tt: None }.encode(out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ntp::client::{Client, ReplyError};

    #[test]
    fn a_rate_kiss_is_seen_by_the_client_as_one() {
        let mut c = Client::new();
        let mut req = Vec::new();
        c.request(0x1234_5678_9abc_def0, &mut req);
        let mut out = Vec::new();
        kiss(&req, *b"RATE", &mut out).unwrap();
        assert_eq!(out.len(), 48);
        assert!(out.len() <= req.len());
        let p = Packet::decode(&out).unwrap();
        assert_eq!(p.header.stratum, 0);
        assert_eq!(
            p.header.origin_ts,
            Packet::decode(&req).unwrap().header.transmit_ts
        );
        let e = c
            .on_reply(
                &out,
                0x1234_5678_9abc_def0,
                1,
                2,
                false,
                crate::Rate::from_ppm(1),
            )
            .unwrap_err();
        assert_eq!(e, ReplyError::Kiss(*b"RATE"));
        // Only client requests are kissed.
        assert!(kiss(&out, *b"RATE", &mut Vec::new()).is_err());
        assert!(kiss(&[0u8; 10], *b"RATE", &mut Vec::new()).is_err());
    }
}
