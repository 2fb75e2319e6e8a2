//! `ttbench attack`: attackers as separate processes, for the attack tests and for trying a
//! deployment's defences by hand. Loopback only: every address is the caller's.
//!
//! `relay` is an on-path forger. It stands between clients and one master: it forwards requests
//! to the master, and rewrites every reply's time — the header's receive and transmit stamps and
//! the TrueTime field's `t2`, `t3` and interleaved `t3` — shifted by `shift`, leaving every other
//! byte as it was (so the NTS authenticator, which it cannot forge, no longer matches). With a
//! TCP pair it also relays NTS-KE, byte for byte (it cannot read TLS), so that a client on NTS
//! goes through it exactly as through a router on the path.
//!
//! With `replay_after` it is a replayer instead: every request still goes to the master (whose
//! reply is recorded), but the client gets an old recorded reply dressed up as the answer to its
//! request — the origin stamp and NTS unique identifier copied from the request. Plain NTP cannot
//! tell; under NTS the authenticator covers both, so the dressed-up reply fails.

use crate::error::Error;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the forger does.
#[derive(Clone, Debug)]
pub struct Relay {
    /// Where clients send their time requests.
    pub udp_listen: SocketAddr,
    /// The master's time service.
    pub udp_upstream: SocketAddr,
    /// NTS-KE relayed from the first to the second address, if any.
    pub tcp: Option<(SocketAddr, SocketAddr)>,
    /// How much later the forged replies say it is (ns; negative: earlier).
    pub shift_ns: i64,
    /// Replay instead: answer every request with the newest recorded reply at least this old
    /// (made to look like the answer to this request: its origin stamp, and under NTS its unique
    /// identifier, rewritten to the request's), and drop the request when none is that old yet.
    pub replay_after: Option<Duration>,
}

/// The unique identifier field's type (RFC 8915 §5.3).
const UID_FIELD: u16 = 0x0104;

/// Where the body of the first extension field of `kind` in `b` lies, if any.
fn field(b: &[u8], kind: u16) -> Option<std::ops::Range<usize>> {
    let mut at = 48;
    while at + 4 <= b.len() {
        let t = u16::from_be_bytes([b[at], b[at + 1]]);
        let len = u16::from_be_bytes([b[at + 2], b[at + 3]]) as usize;
        if len < 4 || at + len > b.len() {
            return None;
        }
        if t == kind {
            return Some(at + 4..at + len);
        }
        at += len;
    }
    None
}

/// `old` rewritten to answer `request`: its origin stamp is the request's transmit stamp, its
/// unique identifier (if both carry one of the same length) the request's, and the TrueTime
/// field's interleaved `t3` cleared (it belongs to another exchange). Every time in it stays old.
pub fn replay(old: &[u8], request: &[u8]) -> Vec<u8> {
    let mut b = old.to_vec();
    if b.len() < 48 || request.len() < 48 {
        return b;
    }
    b[24..32].copy_from_slice(&request[40..48]);
    if let (Some(mine), Some(theirs)) = (field(&b, UID_FIELD), field(request, UID_FIELD))
        && mine.len() == theirs.len()
    {
        b[mine].copy_from_slice(&request[theirs]);
    }
    if b.len() >= 48 + 88 && b[48..50] == ttcore::ntp::packet::TT_FIELD_TYPE.to_be_bytes() {
        b[48 + 4 + 44..48 + 4 + 52].fill(0);
    }
    b
}

/// Shifts a 64-bit NTP timestamp at `b[at..at + 8]` by `ns`.
fn shift_ntp(b: &mut [u8], at: usize, ns: i64) {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    let v = u64::from_be_bytes(a);
    let d = ((ns as i128) << 32) / 1_000_000_000;
    b[at..at + 8].copy_from_slice(&((v as i128 + d) as u64).to_be_bytes());
}

/// Shifts a big-endian i64 at `b[at..at + 8]` by `ns` (a TrueTime field's nanoseconds).
fn shift_i64(b: &mut [u8], at: usize, ns: i64) {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    let v = i64::from_be_bytes(a);
    if v != 0 {
        b[at..at + 8].copy_from_slice(&v.saturating_add(ns).to_be_bytes());
    }
}

/// The forged copy of `reply`: every time in it moved by `ns`, nothing else touched.
pub fn forge(reply: &[u8], ns: i64) -> Vec<u8> {
    let mut b = reply.to_vec();
    if b.len() < 48 {
        return b;
    }
    shift_ntp(&mut b, 32, ns);
    shift_ntp(&mut b, 40, ns);
    // The TrueTime reply field, when it is the first field: t2, t3, prev t3 (body offsets 12,
    // 20 and 44 after the 4-byte field header).
    if b.len() >= 48 + 88 && b[48..50] == ttcore::ntp::packet::TT_FIELD_TYPE.to_be_bytes() {
        for off in [12, 20, 44] {
            shift_i64(&mut b, 48 + 4 + off, ns);
        }
    }
    b
}

/// Runs the forger until the process is killed.
pub fn relay(r: &Relay) -> Result<(), Error> {
    let front = Arc::new(UdpSocket::bind(r.udp_listen)?);
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0")?);
    back.connect(r.udp_upstream)?;
    // Requests are matched to their clients (and, for replays, to the request itself) by their
    // transmit timestamp (the reply's origin).
    type Pending = HashMap<[u8; 8], (SocketAddr, Vec<u8>)>;
    let clients: Arc<Mutex<Pending>> = Arc::default();
    {
        let (front, back, clients, shift, replay_after) = (
            front.clone(),
            back.clone(),
            clients.clone(),
            r.shift_ns,
            r.replay_after,
        );
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            // Replies recorded for replay, oldest first, with when they came.
            let mut recorded: std::collections::VecDeque<(std::time::Instant, Vec<u8>)> =
                Default::default();
            while let Ok(n) = back.recv(&mut buf) {
                if n < 48 {
                    continue;
                }
                let key: [u8; 8] = buf[24..32].try_into().expect("8 bytes");
                let pending = clients
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                let Some((to, request)) = pending else {
                    continue;
                };
                let out = match replay_after {
                    None => Some(forge(&buf[..n], shift)),
                    Some(age) => {
                        let now = std::time::Instant::now();
                        let old = recorded
                            .iter()
                            .rev()
                            .find(|(t, _)| now.duration_since(*t) >= age)
                            .map(|(_, b)| replay(b, &request));
                        recorded.push_back((now, buf[..n].to_vec()));
                        while recorded.len() > 4096 {
                            recorded.pop_front();
                        }
                        old
                    }
                };
                if let Some(out) = out {
                    let _ = front.send_to(&out, to);
                }
            }
        });
    }
    if let Some((listen, upstream)) = r.tcp {
        let l = TcpListener::bind(listen)?;
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let Ok(u) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2))
                    else {
                        return;
                    };
                    let (Ok(mut c2), Ok(mut u2)) = (c.try_clone(), u.try_clone()) else {
                        return;
                    };
                    let (mut c, mut u) = (c, u);
                    let t = std::thread::spawn(move || std::io::copy(&mut c2, &mut u2));
                    let _ = std::io::copy(&mut u, &mut c);
                    let _ = c.shutdown(std::net::Shutdown::Both);
                    let _ = t.join();
                });
            }
        });
    }
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = front.recv_from(&mut buf)?;
        if n < 48 {
            continue;
        }
        let key: [u8; 8] = buf[40..48].try_into().expect("8 bytes");
        {
            let mut c = clients.lock().unwrap_or_else(|e| e.into_inner());
            if c.len() > 100_000 {
                c.clear();
            }
            c.insert(key, (from, buf[..n].to_vec()));
        }
        let _ = back.send(&buf[..n]);
    }
}

/// What the flooder sends, for how long.
#[derive(Clone, Debug)]
pub struct Flood {
    /// The address the UDP floods come from (a loopback address other than the honest
    /// clients', so a per-client limit can tell them apart).
    pub from: std::net::IpAddr,
    /// Garbage and malformed NTP at this UDP time service.
    pub udp: Option<SocketAddr>,
    /// Well-formed TrueTime requests at this time service, `requests_per_second` of them,
    /// ignoring every `RATE` kiss (a misbehaving client).
    pub requests: Option<SocketAddr>,
    /// The pace of `requests`.
    pub requests_per_second: u32,
    /// NTS-KE handshakes (complete ones, trusting `ca`) and idle connections at this server.
    pub ke: Option<(SocketAddr, std::path::PathBuf)>,
    /// How long (s).
    pub seconds: f64,
}

/// Counts of what a flood sent.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Flooded {
    /// UDP datagrams sent.
    pub datagrams: u64,
    /// NTS-KE handshakes completed.
    pub handshakes: u64,
    /// NTS-KE attempts that failed or were shed.
    pub handshakes_failed: u64,
    /// Idle connections opened (and held until they were closed or the flood ended).
    pub idle_connections: u64,
    /// Well-formed requests sent.
    pub requests: u64,
    /// Replies to them that carried time.
    pub time_replies: u64,
    /// Replies to them that were `RATE` kisses.
    pub rate_kisses: u64,
}

/// Floods until `seconds` have passed; every loop is bounded by that deadline.
pub fn flood(f: &Flood) -> Result<Flooded, Error> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(f.seconds);
    let (dg, hs, hf, idle) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut threads = Vec::new();
    let requests = f
        .requests
        .map(|to| request_flood(f.from, to, f.requests_per_second, deadline))
        .transpose()?;
    if let Some(to) = f.udp {
        let dg = dg.clone();
        let sock = UdpSocket::bind((f.from, 0))?;
        threads.push(std::thread::spawn(move || {
            let mut x = ttsys::clock::raw_ns() as u64 | 1;
            let mut buf = [0u8; 1100];
            while std::time::Instant::now() < deadline {
                for _ in 0..256 {
                    // xorshift: lengths and bytes all over, a valid-looking header a third of
                    // the time so the packet parser, not only the length check, is exercised.
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let len = (x % 1100) as usize;
                    for (i, b) in buf[..len].iter_mut().enumerate() {
                        *b = (x >> (i % 57)) as u8 ^ i as u8;
                    }
                    if len >= 48 && x % 3 == 0 {
                        buf[0] = 0x23;
                    }
                    if sock.send_to(&buf[..len], to).is_ok() {
                        dg.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    if let Some((ke, ca)) = &f.ke {
        let tls = ttsys::nts::client_config(ca, ttcore::ntp::nts::ALPN)
            .map_err(|e| Error::failed(e.to_string()))?;
        for _ in 0..2 {
            let (hs, hf, tls, ke) = (hs.clone(), hf.clone(), tls.clone(), *ke);
            threads.push(std::thread::spawn(move || {
                while std::time::Instant::now() < deadline {
                    match ttsys::nts::key_exchange(
                        &ke.to_string(),
                        "127.0.0.1",
                        tls.clone(),
                        Duration::from_secs(1),
                    ) {
                        Ok(_) => hs.fetch_add(1, Ordering::Relaxed),
                        Err(_) => hf.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
        let (idle, ke) = (idle.clone(), *ke);
        threads.push(std::thread::spawn(move || {
            let mut held = Vec::new();
            while std::time::Instant::now() < deadline {
                if held.len() < 400
                    && let Ok(c) = TcpStream::connect_timeout(&ke, Duration::from_millis(200))
                {
                    idle.fetch_add(1, Ordering::Relaxed);
                    held.push(c);
                } else {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    let (requests, time_replies, rate_kisses) =
        requests.and_then(|t| t.join().ok()).unwrap_or_default();
    Ok(Flooded {
        datagrams: dg.load(Ordering::Relaxed),
        handshakes: hs.load(Ordering::Relaxed),
        handshakes_failed: hf.load(Ordering::Relaxed),
        idle_connections: idle.load(Ordering::Relaxed),
        requests,
        time_replies,
        rate_kisses,
    })
}

/// A client that ignores `RATE`: TrueTime requests from `from` to `to` at `per_second` until
/// `deadline`, counting (sent, time replies, kisses).
fn request_flood(
    from: std::net::IpAddr,
    to: SocketAddr,
    per_second: u32,
    deadline: std::time::Instant,
) -> Result<std::thread::JoinHandle<(u64, u64, u64)>, Error> {
    use ttcore::ntp::packet::{Header, Packet, TtField, TtRequest};
    let sock = UdpSocket::bind((from, 0))?;
    sock.set_nonblocking(true)?;
    Ok(std::thread::spawn(move || {
        let (mut sent, mut time, mut kisses) = (0u64, 0u64, 0u64);
        let mut req = Vec::new();
        let mut buf = [0u8; 2048];
        let t0 = std::time::Instant::now();
        while std::time::Instant::now() < deadline {
            // Paced: as many as are due by now.
            let due = (t0.elapsed().as_secs_f64() * f64::from(per_second)) as u64;
            while sent < due {
                Packet {
                    header: Header::client(sent | 1 << 62),
                    tt: Some(TtField::Request(TtRequest::default())),
                }
                .encode(&mut req);
                if sock.send_to(&req, to).is_ok() {
                    sent += 1;
                } else {
                    break;
                }
            }
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                match Packet::decode(&buf[..n]) {
                    Ok(p) if p.header.stratum == 0 && p.header.reference_id == *b"RATE" => {
                        kisses += 1;
                    }
                    Ok(_) => time += 1,
                    Err(_) => {}
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        (sent, time, kisses)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttcore::ntp::packet::{Header, Mode, Packet, TtField, TtReply};

    #[test]
    fn forged_replies_carry_shifted_time_and_nothing_else_changed() {
        let mut h = Header::client(7);
        h.mode = Mode::Server;
        h.receive_ts = ttcore::ntp::packet::NtpTimestamp::from_unix_ns_floor(1_000_000_000_000);
        h.transmit_ts = h.receive_ts;
        let r = TtReply {
            status: 1,
            kind: 1,
            timescale: 1,
            next_leap_delta: 0,
            tai_minus_utc_s: 37,
            flags: 0,
            t2_ns: 1_000_000_000_000,
            t3_ns: 1_000_000_001_000,
            eps_ns: 500,
            prev_t2_ns: 0,
            prev_t3_ns: 0,
            prev_eps_ns: 0,
            next_leap_posix_s: 0,
            id: TtReply::id_from("m"),
        };
        let mut b = Vec::new();
        Packet {
            header: h,
            tt: Some(TtField::Reply(r)),
        }
        .encode(&mut b);
        let f = Packet::decode(&forge(&b, 20_000_000)).unwrap();
        let Some(TtField::Reply(fr)) = f.tt else {
            panic!("no field")
        };
        assert_eq!(fr.t2_ns, r.t2_ns + 20_000_000);
        assert_eq!(fr.t3_ns, r.t3_ns + 20_000_000);
        assert_eq!(fr.eps_ns, r.eps_ns);
        assert_eq!(fr.prev_t3_ns, 0, "an absent stamp stays absent");
        let shifted = f.header.receive_ts.to_unix_ns_near(1_000_000_000_000);
        assert!((shifted - 1_000_020_000_000).abs() <= 1, "{shifted}");
        assert_eq!(f.header.origin_ts, h.origin_ts);
    }
}
