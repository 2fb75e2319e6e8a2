//! `ttbench sync-rps`: how many time exchanges per second one master answers over UDP, and —
//! under the same load generator, in the same run — how many a chronyd server answers.
//!
//! Load: `threads` generator threads, each with [`SOCKETS_PER_THREAD`] sockets (distinct source
//! ports, like distinct clients, so a server's `SO_REUSEPORT` sockets share the load as they
//! would in a fleet) keeping `window` requests in flight per thread with `sendmmsg` /
//! `recvmmsg`, for `duration` seconds after a warm-up. Two request
//! kinds: plain 48-byte NTPv4 client requests (what both servers answer, so the comparison is
//! like for like), and TrueTime requests (the extension field; the master then also fetches
//! the kernel's transmit stamp of every reply for interleaving), ours only.

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
    /// Send TrueTime requests (else plain NTP).
    pub truetime: bool,
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
            let reqs: Vec<Vec<u8>> = (0..BATCH)
                .map(|i| request(l.truetime, ((t as u64) << 32) | i as u64 | 1 << 63))
                .collect();
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
/// answers a plain NTP request.
pub fn chronyd_server(bin: &Path, dir: &Path, port: u16) -> Result<Chronyd, Error> {
    let c = Chronyd::start(
        bin,
        dir,
        &format!(
            "port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 1\ndriftfile {d}/drift\nclientloglimit 100000000\n",
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

/// Full `sync-rps` report: our master (plain and TrueTime requests) and chronyd (plain).
pub fn report(
    ours: SocketAddr,
    threads: usize,
    window: usize,
    duration_s: f64,
    chronyd_dir: &Path,
) -> Result<serde_json::Value, Error> {
    let load = |addr, truetime| Load {
        addr,
        threads,
        window,
        duration_s,
        truetime,
    };
    let plain = run(&load(ours, false))?;
    let tt = run(&load(ours, true))?;
    let chrony = match chronyd_path() {
        Some(bin) => {
            let port = crate::lab::free_udp_port()?;
            match chronyd_server(&bin, chronyd_dir, port) {
                Ok(c) => {
                    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
                    let r = run(&load(addr, false))?;
                    drop(c);
                    Ok(r)
                }
                Err(e) => Err(e),
            }
        }
        None => Err(Error::failed("chronyd is not installed")),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(json!({
        "transport": "udp",
        "exchanges_per_s": plain.per_s.round(),
        "truetime_exchanges_per_s": tt.per_s.round(),
        "chronyd_per_s": chrony.as_ref().ok().map(|r| r.per_s.round()),
        "chronyd_error": chrony.as_ref().err().map(|e| e.to_string()),
        "ratio_to_chronyd": chrony.as_ref().ok().map(|r| (plain.per_s / r.per_s * 100.0).round() / 100.0),
        "requests_sent": {
            "ours_plain": plain.sent,
            "ours_truetime": tt.sent,
            "chronyd": chrony.as_ref().ok().map(|r| r.sent),
        },
        "client_sockets": threads * SOCKETS_PER_THREAD,
        "generator_threads": threads,
        "window_per_thread": window,
        "duration_s": duration_s,
        "cores": cores,
    }))
}
