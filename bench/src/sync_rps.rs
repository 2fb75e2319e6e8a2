//! `ttbench sync-rps`: how many time exchanges per second one master answers over UDP, and —
//! under the same load generator, in the same run — how many a chronyd server answers.
//!
//! Load: `threads` generator threads, each with [`SOCKETS_PER_THREAD`] sockets (distinct source
//! ports, like distinct clients, so a server's `SO_REUSEPORT` sockets share the load as they
//! would in a fleet) keeping `window` requests in flight per thread with `sendmmsg` /
//! `recvmmsg`, for `duration` seconds after a warm-up. Two request
//! kinds: plain 48-byte NTPv4 client requests (what both servers answer, so the comparison is
//! like for like), and TrueTime requests (the extension field; the master then also fetches
//! the kernel's transmit stamp of every reply for interleaving), ours only. With `--nts`, also
//! NTS requests (RFC 8915: a cookie, an authenticator, one fresh cookie back) to our master and
//! to a chronyd NTS server, each after one real NTS-KE with it: the same generator, the same
//! request layout (the header and the NTS fields chrony itself sends).

use crate::chrony::{Chronyd, chronyd_path};
use crate::error::Error;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use ttcore::ntp::packet::{Header, Packet, TtField, TtRequest};
use ttsys::udp::{BATCH, MAX_DATAGRAM, TsSocket, poll_readable};

/// Client sockets per generator thread.
pub const SOCKETS_PER_THREAD: usize = 8;

/// Load parameters.
#[derive(Clone, Debug)]
pub struct Load {
    /// Target `ip:port` (UDP).
    pub addr: SocketAddr,
    /// Generator threads (one socket each).
    pub threads: usize,
    /// Requests in flight per thread.
    pub window: usize,
    /// Measured seconds.
    pub duration_s: f64,
    /// What to send.
    pub kind: Kind,
}

/// The requests of a load.
#[derive(Clone, Debug)]
pub enum Kind {
    /// Plain 48-byte NTPv4 client requests.
    Plain,
    /// TrueTime requests (padded to the reply's size).
    TrueTime,
    /// NTS-protected plain requests, built once from an NTS-KE (their cookies are reused: the
    /// servers' cookies are stateless, and each request costs the server the same work).
    Nts(Arc<Vec<Vec<u8>>>),
}

impl Kind {
    /// The request templates of generator thread `t`.
    fn templates(&self, t: usize) -> Vec<Vec<u8>> {
        match self {
            Kind::Plain | Kind::TrueTime => (0..BATCH)
                .map(|i| {
                    request(
                        matches!(self, Kind::TrueTime),
                        ((t as u64) << 32) | i as u64 | 1 << 63,
                    )
                })
                .collect(),
            Kind::Nts(r) => r.iter().cycle().skip(t).take(BATCH).cloned().collect(),
        }
    }
}

/// `n` NTS requests (no TrueTime field, as chrony sends them) from one NTS-KE's keys and cookies.
pub fn nts_requests(e: &ttsys::nts::Established, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut v = request(false, (i as u64) | 1 << 62);
            let cookie = &e.agreed.cookies[i % e.agreed.cookies.len()];
            ttcore::ntp::nts::protect_request(
                &mut v,
                &ttsys::random::bytes(),
                cookie,
                0,
                &e.keys,
                ttsys::random::bytes(),
            )
            .expect("cookies from NTS-KE are at most MAX_COOKIE_LEN bytes");
            v
        })
        .collect()
}

/// Result of one load run.
#[derive(Clone, Debug)]
pub struct Rate {
    /// Replies per second (measured window).
    pub per_s: f64,
    /// Replies counted.
    pub replies: u64,
    /// Requests sent in the measured window.
    pub sent: u64,
}

fn request(truetime: bool, cookie: u64) -> Vec<u8> {
    let mut out = Vec::new();
    Packet {
        header: Header::client(cookie),
        tt: truetime.then_some(TtField::Request(TtRequest::default())),
    }
    .encode(&mut out);
    out
}

/// Drives the load and counts replies.
// The load generator: sockets, threads, the timed loop and the tally, kept together so the
// measured window is exactly the sending window.
pub fn run(load: &Load) -> Result<Rate, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let counting = Arc::new(AtomicBool::new(false));
    let replies = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let mut hs = Vec::new();
    for t in 0..load.threads {
        let mut socks = Vec::new();
        for _ in 0..SOCKETS_PER_THREAD {
            socks.push(TsSocket::bind_server(
                "127.0.0.1:0".parse().expect("literal"),
                false,
            )?);
        }
        let (stop, counting, replies, sent) = (
            stop.clone(),
            counting.clone(),
            replies.clone(),
            sent.clone(),
        );
        let l = load.clone();
        hs.push(std::thread::spawn(move || {
            let reqs: Vec<Vec<u8>> = l.kind.templates(t);
            let per = l.window.div_ceil(SOCKETS_PER_THREAD).max(1);
            let mut bufs = vec![[0u8; MAX_DATAGRAM]; BATCH];
            let mut got = Vec::new();
            let mut inflight = vec![0usize; socks.len()];
            let mut last_reply = vec![Instant::now(); socks.len()];
            let mut ready = vec![true; socks.len()];
            while !stop.load(Ordering::Relaxed) {
                for (i, sock) in socks.iter().enumerate() {
                    if ready[i]
                        && let Ok(n) = sock.recv_batch(&mut bufs, &mut got, false)
                        && n > 0
                    {
                        inflight[i] = inflight[i].saturating_sub(n);
                        last_reply[i] = Instant::now();
                        if counting.load(Ordering::Relaxed) {
                            replies.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    }
                    // A request lost for 50 ms is given up.
                    if last_reply[i].elapsed() > Duration::from_millis(50) {
                        inflight[i] = 0;
                        last_reply[i] = Instant::now();
                    }
                    while inflight[i] < per {
                        let k = (per - inflight[i]).min(BATCH);
                        let msgs: Vec<(SocketAddr, &[u8], bool)> = reqs[..k]
                            .iter()
                            .map(|r| (l.addr, r.as_slice(), false))
                            .collect();
                        match sock.send_batch(&msgs) {
                            Ok(n) if n > 0 => {
                                inflight[i] += n;
                                if counting.load(Ordering::Relaxed) {
                                    sent.fetch_add(n as u64, Ordering::Relaxed);
                                }
                            }
                            _ => break,
                        }
                    }
                }
                let _ = poll_readable(&socks, 20, &mut ready);
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    counting.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(load.duration_s));
    counting.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        let _ = h.join();
    }
    let n = replies.load(Ordering::Relaxed);
    Ok(Rate {
        per_s: n as f64 / elapsed,
        replies: n,
        sent: sent.load(Ordering::Relaxed),
    })
}

/// Starts a chronyd server (`local stratum 1`) on UDP `port` of 127.0.0.1, waiting until it
/// answers a plain NTP request; with `nts` (certificate files and an NTS-KE port) it also serves
/// NTS.
pub fn chronyd_server(
    bin: &Path,
    dir: &Path,
    port: u16,
    nts: Option<(&ttsys::nts::Pki, u16)>,
) -> Result<Chronyd, Error> {
    let nts_conf = nts.map_or(String::new(), |(pki, ke)| {
        format!(
            "ntsservercert {}\nntsserverkey {}\nntsport {ke}\nntsdumpdir {}\n",
            pki.cert.display(),
            pki.key.display(),
            dir.display()
        )
    });
    let c = Chronyd::start(
        bin,
        dir,
        &format!(
            "port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 1\ndriftfile {d}/drift\nclientloglimit 100000000\n{nts_conf}",
            d = dir.display()
        ),
    )?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let t0 = Instant::now();
    let req = request(false, 42);
    let mut buf = [0u8; 512];
    while t0.elapsed() < Duration::from_secs(10) {
        let _ = sock.send_to(&req, addr);
        if let Ok(n) = sock.recv(&mut buf)
            && n >= 48
        {
            return Ok(c);
        }
    }
    Err(Error::failed("chronyd did not answer within 10 s"))
}

/// NTS-KE with the server at `ke` (its certificate names 127.0.0.1, issued by `pki`'s CA),
/// retried for a few seconds while it starts.
fn key_exchange(ke: SocketAddr, pki: &ttsys::nts::Pki) -> Result<ttsys::nts::Established, Error> {
    let tls = ttsys::nts::client_config(&pki.ca, ttcore::ntp::nts::ALPN)
        .map_err(|e| Error::failed(e.to_string()))?;
    let t0 = Instant::now();
    loop {
        match ttsys::nts::key_exchange(
            &ke.to_string(),
            "127.0.0.1",
            tls.clone(),
            Duration::from_secs(3),
        ) {
            Ok(e) => return Ok(e),
            Err(e) if t0.elapsed() > Duration::from_secs(10) => {
                return Err(Error::failed(format!("NTS-KE with {ke}: {e}")));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Full `sync-rps` report: our master (plain and TrueTime requests, and NTS when `nts` names its
/// NTS-KE address and the PKI) and chronyd (plain, and NTS with the same PKI).
pub fn report(
    ours: SocketAddr,
    threads: usize,
    window: usize,
    duration_s: f64,
    chronyd_dir: &Path,
    nts: Option<(SocketAddr, &ttsys::nts::Pki)>,
) -> Result<serde_json::Value, Error> {
    let load = |addr, kind| Load {
        addr,
        threads,
        window,
        duration_s,
        kind,
    };
    let nts_kind = |ke| -> Result<Kind, Error> {
        let pki = nts.map(|n| n.1).ok_or(Error::failed("no PKI"))?;
        let e = key_exchange(ke, pki)?;
        Ok(Kind::Nts(Arc::new(nts_requests(&e, 4 * BATCH))))
    };
    let plain = run(&load(ours, Kind::Plain))?;
    let tt = run(&load(ours, Kind::TrueTime))?;
    let ours_nts = match nts {
        Some((ke, _)) => Some(run(&load(ours, nts_kind(ke)?))?),
        None => None,
    };
    let chrony = match chronyd_path() {
        Some(bin) => {
            let port = crate::lab::free_udp_port()?;
            let ke = crate::lab::free_port()?;
            match chronyd_server(&bin, chronyd_dir, port, nts.map(|(_, pki)| (pki, ke))) {
                Ok(c) => {
                    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
                    let r = run(&load(addr, Kind::Plain))?;
                    let r_nts = match nts {
                        Some(_) => {
                            let ke: SocketAddr =
                                format!("127.0.0.1:{ke}").parse().expect("address");
                            Some(nts_kind(ke).and_then(|k| run(&load(addr, k))))
                        }
                        None => None,
                    };
                    drop(c);
                    Ok((r, r_nts))
                }
                Err(e) => Err(e),
            }
        }
        None => Err(Error::failed("chronyd is not installed")),
    };
    let chrony_nts = match &chrony {
        Ok((_, Some(Ok(r)))) => Some(Ok(r.clone())),
        Ok((_, Some(Err(e)))) => Some(Err(e.to_string())),
        _ => None,
    };
    let chrony = chrony.map(|(r, _)| r);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(json!({
        "transport": "udp",
        "exchanges_per_s": plain.per_s.round(),
        "truetime_exchanges_per_s": tt.per_s.round(),
        "chronyd_per_s": chrony.as_ref().ok().map(|r| r.per_s.round()),
        "chronyd_error": chrony.as_ref().err().map(|e| e.to_string()),
        "ratio_to_chronyd": chrony.as_ref().ok().map(|r| (plain.per_s / r.per_s * 100.0).round() / 100.0),
        "nts_exchanges_per_s": ours_nts.as_ref().map(|r| r.per_s.round()),
        "nts_ratio_to_plain": ours_nts.as_ref().map(|r| (r.per_s / plain.per_s * 100.0).round() / 100.0),
        "chronyd_nts_per_s": chrony_nts.as_ref().and_then(|r| r.as_ref().ok()).map(|r| r.per_s.round()),
        "chronyd_nts_error": chrony_nts.as_ref().and_then(|r| r.as_ref().err()),
        "nts_ratio_to_chronyd_nts": match (&ours_nts, &chrony_nts) {
            (Some(o), Some(Ok(c))) => Some((o.per_s / c.per_s * 100.0).round() / 100.0),
            _ => None,
        },
        "requests_sent": {
            "ours_plain": plain.sent,
            "ours_truetime": tt.sent,
            "ours_nts": ours_nts.as_ref().map(|r| r.sent),
            "chronyd": chrony.as_ref().ok().map(|r| r.sent),
        },
        "client_sockets": threads * SOCKETS_PER_THREAD,
        "generator_threads": threads,
        "window_per_thread": window,
        "duration_s": duration_s,
        "cores": cores,
    }))
}
