//! The client's I/O for time transfer: a burst of exchanges with one master over UDP with kernel
//! timestamps, each checked and bounded by [`ttcore::ntp::Client`]. timed polls its masters and
//! timemaster polls its peers through [`Source::burst`]; the fleet simulator runs the same
//! [`ttcore::ntp`] code over its simulated network.

use crate::clock::{RealtimeMap, raw_ns};
use crate::udp::{MAX_DATAGRAM, TsSocket, is_timeout};
use std::io;
use std::time::{Duration, Instant};
use ttcore::Rate;
use ttcore::ntp::{Client, MasterInfo, ReplyError, ReplyOutcome, Sample};

/// Why one exchange gave no sample.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The socket could not be (re)opened.
    #[error("no socket")]
    NoSocket,
    /// Sending failed.
    #[error("send: {0}")]
    Send(io::Error),
    /// No reply before the timeout.
    #[error("no reply within {0} ms")]
    Timeout(u128),
    /// Receiving failed (e.g. connection refused: nothing listens there).
    #[error("recv: {0}")]
    Recv(io::Error),
    /// The reply was refused by the checks.
    #[error("reply refused: {0}")]
    Reply(#[from] ReplyError),
    /// NTS: no association (NTS-KE failed), or no reply that authenticated (forged, altered,
    /// or a NAK: the next burst runs NTS-KE again).
    #[error("NTS: {0}")]
    Nts(String),
}

impl ExchangeError {
    /// The master looks absent: the rest of the burst is not tried.
    fn master_absent(&self) -> bool {
        !matches!(self, ExchangeError::Reply(_))
    }
}

/// How long to wait for the kernel's transmit stamp of a request.
const TX_STAMP_WAIT: Duration = Duration::from_millis(5);

/// One master (or peer) polled over UDP.
#[derive(Debug)]
pub struct Source {
    /// Its address as configured (`host:port`; resolved when a socket is opened).
    pub target: String,
    sock: Option<TsSocket>,
    client: Client,
    map: RealtimeMap,
    rng: u64,
    nts: Option<NtsSource>,
}

/// NTS for one source (RFC 8915): where NTS-KE runs, the TLS configuration to reach it, and the
/// association (keys and unused cookies) once established.
pub struct NtsSource {
    /// NTS-KE server (`host:port`).
    pub ke_addr: String,
    /// The name its certificate must carry.
    pub server_name: String,
    tls: std::sync::Arc<rustls::ClientConfig>,
    keys: Option<ttcore::ntp::nts::Keys>,
    cookies: Vec<Vec<u8>>,
    /// NTS-KE sessions run so far.
    pub key_exchanges: u64,
}

impl std::fmt::Debug for NtsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NtsSource({}, {} cookies)",
            self.ke_addr,
            self.cookies.len()
        )
    }
}

impl NtsSource {
    /// NTS through the NTS-KE server at `ke_addr`, whose certificate names `server_name`
    /// (default: the host of `ke_addr`), trusted through `tls`.
    pub fn new(
        ke_addr: &str,
        server_name: Option<&str>,
        tls: std::sync::Arc<rustls::ClientConfig>,
    ) -> Self {
        NtsSource {
            ke_addr: ke_addr.into(),
            server_name: server_name.unwrap_or(host_of(ke_addr)).into(),
            tls,
            keys: None,
            cookies: Vec::new(),
            key_exchanges: 0,
        }
    }
}

/// The host of `host:port` (all of it when there is no port).
pub(crate) fn host_of(addr: &str) -> &str {
    let h = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    h.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h)
}

/// How long an NTS-KE may take.
const KE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a burst gave.
#[derive(Clone, Debug, Default)]
pub struct Burst {
    /// Every usable sample (basic and interleaved).
    pub samples: Vec<Sample>,
    /// What the master said about itself in its last reply.
    pub info: Option<MasterInfo>,
    /// Why exchanges failed (timeouts, refused replies), in order.
    pub errors: Vec<String>,
    /// Requests sent.
    pub requests: u32,
    /// The master answered with a kiss-o'-death (e.g. `RATE`: slow down); the burst stopped
    /// there.
    pub kissed: Option<[u8; 4]>,
}

impl Source {
    /// A source at `target` (`host:port`; resolved and connected on the first burst, again
    /// after a socket error).
    pub fn new(target: &str) -> Self {
        let rng = u64::from_ne_bytes(crate::random::bytes());
        Source {
            target: target.to_string(),
            sock: None,
            client: Client::new(),
            map: RealtimeMap::new(),
            rng,
            nts: None,
        }
    }

    /// The same source speaking `protocol` (a timemaster by default; a plain NTP server).
    pub fn with_protocol(mut self, protocol: ttcore::ntp::client::Protocol) -> Self {
        self.client = Client::with_protocol(protocol);
        self
    }

    /// The same source with its time authenticated by NTS (unauthenticated replies refused).
    pub fn with_nts(mut self, nts: NtsSource) -> Self {
        self.nts = Some(nts);
        self
    }

    /// Its NTS state, when NTS is on.
    pub fn nts(&self) -> Option<&NtsSource> {
        self.nts.as_ref()
    }

    /// NTS: establishes the association when there is none (or no cookie is left); on
    /// agreement the NTP server and port the server named replace the configured target.
    fn ensure_nts(&mut self) -> Result<(), ExchangeError> {
        let Some(n) = self.nts.as_mut() else {
            return Ok(());
        };
        if n.keys.is_some() && !n.cookies.is_empty() {
            return Ok(());
        }
        n.key_exchanges += 1;
        let e = crate::nts::key_exchange(&n.ke_addr, &n.server_name, n.tls.clone(), KE_TIMEOUT)
            .map_err(|e| ExchangeError::Nts(format!("NTS-KE with {}: {e}", n.ke_addr)))?;
        n.keys = Some(e.keys);
        n.cookies = e.agreed.cookies;
        if e.agreed.server.is_some() || e.agreed.port.is_some() {
            let host = e
                .agreed
                .server
                .unwrap_or_else(|| host_of(&n.ke_addr).to_string());
            let target = format!("{host}:{}", e.agreed.port.unwrap_or(123));
            if target != self.target {
                self.target = target;
                self.sock = None;
            }
        }
        self.client.reset();
        Ok(())
    }

    /// Forgets the interleaving state (after a clock disruption).
    pub fn reset(&mut self) {
        self.client.reset();
    }

    fn cookie(&mut self) -> u64 {
        // SplitMix64: cookies need only be unpredictable to an off-path sender (NTS will
        // authenticate replies).
        use ttcore::ntp::client::{SPLITMIX64_GAMMA, splitmix64};
        self.rng = self.rng.wrapping_add(SPLITMIX64_GAMMA);
        splitmix64(self.rng)
    }

    /// Runs `n` exchanges back to back, each waiting at most `timeout`. `host` maps a raw
    /// reading onto the clock the caller models (timed's test knob; identity elsewhere) and
    /// must be monotone; `drift` bounds that clock's frequency error over one round trip.
    pub fn burst(
        &mut self,
        n: usize,
        timeout: Duration,
        drift: Rate,
        host: &dyn Fn(i64) -> i64,
    ) -> Burst {
        let mut out = Burst::default();
        if let Err(e) = self.ensure_nts() {
            out.errors.push(e.to_string());
            return out;
        }
        if self.sock.is_none() {
            use std::net::ToSocketAddrs;
            let addr = match self.target.to_socket_addrs().map(|mut a| a.next()) {
                Ok(Some(a)) => a,
                Ok(None) => {
                    out.errors.push(format!("{}: no address", self.target));
                    return out;
                }
                Err(e) => {
                    out.errors
                        .push(format!("cannot resolve {}: {e}", self.target));
                    return out;
                }
            };
            match TsSocket::connect(addr) {
                Ok(s) => self.sock = Some(s),
                Err(e) => {
                    out.errors.push(format!("socket: {e}"));
                    return out;
                }
            }
        }
        let mut req = Vec::with_capacity(128);
        let mut buf = [0u8; MAX_DATAGRAM];
        for _ in 0..n {
            out.requests += 1;
            match self.exchange(&mut req, &mut buf, timeout, drift, host) {
                Ok(o) => {
                    out.samples.push(o.basic);
                    out.samples.extend(o.interleaved);
                    out.info = Some(o.info);
                }
                Err(e) => {
                    // A master that let one request time out (or refused the connection) is
                    // not asked again in this burst: a silent master must not hold the poll up
                    // for `n` timeouts. One that sent a kiss is not asked again either.
                    let give_up = e.master_absent();
                    if let ExchangeError::Reply(ReplyError::Kiss(code)) = e {
                        out.kissed = Some(code);
                    }
                    out.errors.push(e.to_string());
                    if give_up || out.kissed.is_some() {
                        break;
                    }
                }
            }
        }
        out
    }

    fn exchange(
        &mut self,
        req: &mut Vec<u8>,
        buf: &mut [u8],
        timeout: Duration,
        drift: Rate,
        host: &dyn Fn(i64) -> i64,
    ) -> Result<ReplyOutcome, ExchangeError> {
        let cookie = self.cookie();
        self.client.request(cookie, req);
        // NTS: the request's fields after ours, one cookie spent and placeholders for as many
        // as it takes to hold eight again.
        let mut uid = [0u8; ttcore::ntp::nts::UNIQUE_ID_LEN];
        if let Some(n) = self.nts.as_mut() {
            uid = crate::random::bytes();
            let (Some(keys), Some(c)) = (n.keys.as_ref(), n.cookies.pop()) else {
                return Err(ExchangeError::Nts("no cookie left".into()));
            };
            let placeholders = (ttcore::ntp::nts::KE_COOKIES - 1)
                .saturating_sub(n.cookies.len())
                .min(ttcore::ntp::nts::MAX_PLACEHOLDERS);
            ttcore::ntp::nts::protect_request(
                req,
                &uid,
                &c,
                placeholders,
                keys,
                crate::random::bytes(),
            )
            .map_err(|e| ExchangeError::Nts(e.to_string()))?;
        }
        let _ = self.map.now(); // clears the step detector: a step from here on is seen below
        let sock = self.sock.as_mut().ok_or(ExchangeError::NoSocket)?;
        let u1 = raw_ns();
        let key = sock.send(req).map_err(ExchangeError::Send)?;
        let deadline = Instant::now() + timeout;
        // Under NTS, a reply that does not authenticate is not the answer: wait on for one that
        // does (a forger on the path must not be able to end the exchange), and say why if none
        // comes.
        let mut refused: Option<ttcore::ntp::nts::NtsError> = None;
        let got = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(match refused.take() {
                    Some(e) => ExchangeError::Nts(format!("no authentic reply: {e}")),
                    None => ExchangeError::Timeout(timeout.as_millis()),
                });
            }
            match sock.recv(buf, left) {
                Ok((n, rx)) => {
                    // A late reply to an earlier request: skip it, keep waiting. (An NTP
                    // server's interleaved reply echoes the request's second cookie.)
                    match ttcore::ntp::Packet::decode(&buf[..n]) {
                        Ok(p)
                            if p.header.origin_ts.0 != cookie
                                && p.header.origin_ts.0
                                    != ttcore::ntp::client::interleave_cookie(cookie) =>
                        {
                            continue;
                        }
                        _ => {}
                    }
                    let Some(nts) = self.nts.as_mut() else {
                        break Ok((n, rx));
                    };
                    let keys = nts.keys.as_ref().expect("keys before a protected request");
                    match ttcore::ntp::nts::open_reply(&buf[..n], &uid, keys) {
                        Ok(fresh) => {
                            nts.cookies.extend(fresh);
                            break Ok((n, rx));
                        }
                        Err(ttcore::ntp::nts::NtsError::Nak) => {
                            // Forgeable, so it only costs a new NTS-KE, never a wrong time.
                            nts.keys = None;
                            nts.cookies.clear();
                            break Err(ExchangeError::Nts(
                                "the server refused our cookie (NAK)".into(),
                            ));
                        }
                        Err(e) => refused = Some(e),
                    }
                }
                Err(e) if is_timeout(&e) => {}
                // ECONNREFUSED and friends: the master is not there; reopen next time.
                Err(e) => break Err(ExchangeError::Recv(e)),
            }
        };
        let (n, rx) = match got {
            Ok(v) => v,
            Err(e) => {
                self.client.reset();
                if matches!(e, ExchangeError::Recv(_)) {
                    self.sock = None;
                }
                return Err(e);
            }
        };
        let u4 = raw_ns();
        let tx = self
            .sock
            .as_ref()
            .and_then(|s| s.wait_tx_stamp(key, TX_STAMP_WAIT));
        let m = self.map.now();
        // Kernel stamps mapped outward; a stamp outside what the user-space reads allow is
        // not trusted. Fallbacks: u1 is before the send, u4 after the receipt.
        let t1 = tx
            .and_then(|s| m.to_raw(s, false))
            .filter(|&r| r >= u1 - m.half_width && r <= u4);
        let t4 = rx
            .and_then(|s| m.to_raw(s, true))
            .filter(|&r| r >= u1 && r <= u4 + m.half_width);
        let kernel = t1.is_some() && t4.is_some();
        let (t1, t4) = (t1.unwrap_or(u1), t4.unwrap_or(u4));
        self.client
            .on_reply(&buf[..n], cookie, host(t1), host(t4), kernel, drift)
            .map_err(ExchangeError::from)
    }
}
