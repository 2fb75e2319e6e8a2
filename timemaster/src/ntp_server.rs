//! The time-transfer server: NTPv4 over UDP with kernel receive stamps, interleaved kernel
//! transmit stamps for TrueTime clients, and batched `recvmmsg` / `sendmmsg`. One thread per
//! `SO_REUSEPORT` socket; the kernel spreads clients over them by address, so a client's
//! interleave record stays with one thread. The replies themselves are built by the pure
//! [`ttcore::ntp::answer`]; with NTS configured, requests carrying NTS fields are opened and
//! their replies protected by the pure [`ttcore::ntp::nts`]. With a rate limit configured, each
//! thread limits the clients it sees ([`ttcore::ntp::RateLimiter`]): over the limit a client gets
//! a `RATE` kiss, then silence until it slows down.

use crate::core::master::{MasterKind, Snapshot};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use ttcore::ntp::packet::{Mode, Packet, TtField};
use ttcore::ntp::{
    Admit, MasterView, RateLimitParams, RateLimiter, RawStamp, Refusal, SentReply, answer,
    sent_reply,
};
use ttcore::{ClockStatus, Span};
use ttsys::clock::{RealtimeMap, raw_ns};
use ttsys::udp::{BATCH, MAX_DATAGRAM, Received, Stamping, TsSocket, TxStamp};

/// Counters of the time-transfer server (all threads).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Datagrams received.
    pub received: AtomicU64,
    /// Replies sent.
    pub answered: AtomicU64,
    /// Replies that carried the interleaved transmit stamp of the previous reply.
    pub interleaved: AtomicU64,
    /// Dropped: not a well-formed NTP packet (truncated, oversized, bad version or field).
    pub malformed: AtomicU64,
    /// Answered in basic mode: the request asked for the TrueTime field but was smaller than
    /// its reply (a reply is never larger than its request).
    pub downsized: AtomicU64,
    /// Dropped: not a client request.
    pub wrong_mode: AtomicU64,
    /// Receive stamps from the kernel.
    pub kernel_rx: AtomicU64,
    /// Transmit stamps from the kernel.
    pub kernel_tx: AtomicU64,
    /// Failed `sendmmsg` calls (their replies are lost).
    pub send_errors: AtomicU64,
    /// How the socket stamps: 0 user, 1 receive only, 2 kernel receive + transmit.
    pub stamping: AtomicU64,
    /// Over a client's rate limit: answered with a `RATE` kiss (not counted in `answered`).
    pub rate_kissed: AtomicU64,
    /// Over a client's rate limit and kissed within the kiss interval: dropped.
    pub rate_dropped: AtomicU64,
}

impl ServerStats {
    /// Records how the sockets stamp.
    pub fn set_stamping(&self, s: Stamping) {
        self.stamping.store(
            match s {
                Stamping::Kernel => 2,
                Stamping::KernelRxOnly => 1,
                Stamping::User => 0,
            },
            Ordering::Relaxed,
        );
    }

    /// "kernel", "kernel-rx-only" or "user".
    pub fn stamping_str(&self) -> &'static str {
        match self.stamping.load(Ordering::Relaxed) {
            2 => "kernel",
            1 => "kernel-rx-only",
            _ => "user",
        }
    }
}

/// The view of a master's snapshot that replies are built from.
pub fn view_of(snap: &Snapshot, kind: MasterKind, id: &str, max_epsilon: Span) -> MasterView {
    MasterView {
        model: snap.model,
        status: snap.status,
        tai_minus_utc_s: snap.tai_minus_utc.clamp(i16::MIN as i32, i16::MAX as i32) as i16,
        next_leap_posix_s: snap.next_leap.map_or(0, |l| l.effective_posix_s),
        next_leap_delta: snap.next_leap.map_or(0, |l| l.delta.clamp(-1, 1)),
        ..empty_view(kind, id, max_epsilon)
    }
}

/// A view for a master that has published nothing yet: no model, unsynchronized.
pub fn empty_view(kind: MasterKind, id: &str, max_epsilon: Span) -> MasterView {
    let (kind, reference_id) = (kind.code(), kind.reference_id());
    MasterView {
        model: None,
        status: ClockStatus::Unsynchronized,
        max_epsilon,
        kind,
        id: ttcore::ntp::packet::TtReply::id_from(id),
        reference_id,
        tai_minus_utc_s: 0,
        next_leap_posix_s: 0,
        next_leap_delta: 0,
    }
}

/// Recent replies' transmit stamps by `(t2_ns, origin cookie)`: two generations of at most
/// `cap` entries, so memory is bounded and a record lives at least `cap` replies.
struct Interleave {
    cur: HashMap<(i64, u64), SentReply>,
    old: HashMap<(i64, u64), SentReply>,
    cap: usize,
}

impl Interleave {
    fn new(cap: usize) -> Self {
        Interleave {
            cur: HashMap::new(),
            old: HashMap::new(),
            cap,
        }
    }
    fn insert(&mut self, k: (i64, u64), v: SentReply) {
        if self.cur.len() >= self.cap {
            self.old = std::mem::take(&mut self.cur);
        }
        self.cur.insert(k, v);
    }
    fn get(&self, k: (i64, u64)) -> Option<SentReply> {
        self.cur.get(&k).or_else(|| self.old.get(&k)).copied()
    }
}

/// The length of a reply with the TrueTime field (what the error queue's frames end with, before
/// any NTS fields).
const TT_REPLY_LEN: usize = 48 + 88;

/// The NTS master keys and counters a serving thread uses.
pub type NtsServe = (
    Arc<ArcSwap<ttcore::ntp::nts::KeyRing>>,
    Arc<crate::daemon::nts::NtsStats>,
);

/// NTS fields after a TrueTime reply to one of our clients (32-byte unique identifier), by the
/// number of cookies it carries: where in an error-queue frame the TrueTime reply starts.
fn nts_suffixes() -> impl Iterator<Item = usize> {
    use ttcore::ntp::nts::{KE_COOKIES, UNIQUE_ID_LEN, reply_overhead};
    std::iter::once(0).chain((1..=KE_COOKIES).map(|k| reply_overhead(UNIQUE_ID_LEN, k)))
}

/// Serves until `stop`: one thread's loop over its socket, limiting each client address to
/// `limit` when given.
pub fn serve(
    sock: TsSocket,
    view: Arc<ArcSwap<MasterView>>,
    stats: Arc<ServerStats>,
    nts: Option<NtsServe>,
    limit: Option<RateLimitParams>,
    stop: Arc<AtomicBool>,
) {
    let _ = sock
        .socket()
        .set_read_timeout(Some(Duration::from_millis(200)));
    stats.set_stamping(sock.stamping());
    let mut w = Worker {
        sock,
        view,
        stats,
        map: RealtimeMap::new(),
        table: Interleave::new(1 << 16),
        bufs: vec![[0u8; MAX_DATAGRAM]; BATCH],
        msgs: Vec::with_capacity(BATCH),
        replies: (0..BATCH).map(|_| Vec::with_capacity(160)).collect(),
        errq: Vec::new(),
        stamps: Vec::new(),
        pending: 0,
        out: Vec::with_capacity(BATCH),
        nts,
        limiter: limit.map(RateLimiter::new),
        rng: {
            use rand::SeedableRng;
            rand_chacha::ChaCha20Rng::from_seed(ttsys::random::bytes())
        },
    };
    while !stop.load(Ordering::Relaxed) {
        match w.sock.recv_batch(&mut w.bufs, &mut w.msgs, true) {
            Ok(_) => {}
            Err(e) if ttsys::udp::is_timeout(&e) => {}
            Err(e) => {
                tracing::warn!("time transfer: receive: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if !w.msgs.is_empty() {
            w.answer_batch();
            w.send_batch();
        }
        // Transmit stamps of the replies just sent (and any late ones). After an idle wait,
        // whatever is still missing is given up (the kernel dropped it).
        w.collect_tx_stamps();
        if w.msgs.is_empty() {
            w.pending = 0;
        }
    }
}

/// One serving thread's socket, buffers (reused from batch to batch) and interleave table.
struct Worker {
    sock: TsSocket,
    view: Arc<ArcSwap<MasterView>>,
    stats: Arc<ServerStats>,
    map: RealtimeMap,
    table: Interleave,
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    msgs: Vec<Received>,
    replies: Vec<Vec<u8>>,
    errq: Vec<u8>,
    stamps: Vec<TxStamp>,
    /// Transmit stamps requested and not yet read: the error queue is only read when some are
    /// due (plain NTP clients get no stamp, and cost no extra syscall).
    pending: usize,
    /// Replies to send: (destination, reply index, wants a transmit stamp, interleaved, a kiss).
    out: Vec<(std::net::SocketAddr, usize, bool, bool, bool)>,
    /// NTS, when configured.
    nts: Option<NtsServe>,
    /// Per-client rate limit, when configured.
    limiter: Option<RateLimiter>,
    /// Nonces for NTS (a CSPRNG seeded from the kernel).
    rng: rand_chacha::ChaCha20Rng,
}

impl Worker {
    /// Builds a reply for every request received, counting refusals by kind.
    fn answer_batch(&mut self) {
        let m = self.map.now();
        let v = self.view.load();
        let stats = &self.stats;
        stats
            .received
            .fetch_add(self.msgs.len() as u64, Ordering::Relaxed);
        self.out.clear();
        for (i, r) in self.msgs.iter().enumerate() {
            let user = RawStamp {
                raw: m.raw_late(),
                kernel: false,
            };
            let mut rx = r
                .stamp_rt
                .and_then(|s| m.to_raw(s, true))
                .filter(|&raw| raw <= m.raw_late())
                .map_or(user, |raw| RawStamp { raw, kernel: true });
            let tx_raw = raw_ns();
            if rx.raw > tx_raw {
                rx = user;
            }
            let len = if r.truncated { MAX_DATAGRAM + 1 } else { r.len };
            let req = &self.bufs[i][..r.len.min(MAX_DATAGRAM)];
            let admit = match self.limiter.as_mut() {
                Some(l) => l.admit(r.src.ip(), rx.raw),
                None => Admit::Answer,
            };
            match admit {
                Admit::Answer => {}
                Admit::Kiss => {
                    let reply = &mut self.replies[i];
                    if len <= MAX_DATAGRAM && ttcore::ntp::kiss(req, *b"RATE", reply).is_ok() {
                        self.out.push((r.src, i, false, false, true));
                    } else {
                        stats.malformed.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                Admit::Drop => {
                    stats.rate_dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            let table = &self.table;
            let lookup = |t2: i64, c: u64| table.get((t2, c));
            let reply = &mut self.replies[i];
            let res = if len > MAX_DATAGRAM {
                Err(Refusal::Malformed(ttcore::ntp::PacketError::Oversized(len)))
            } else if let Some((ring, nts_stats)) = &self.nts {
                match answer_nts(
                    req,
                    rx,
                    tx_raw,
                    &lookup,
                    &v,
                    reply,
                    &ring.load(),
                    &mut self.rng,
                ) {
                    Ok(Some(a)) => {
                        nts_stats.authenticated.fetch_add(1, Ordering::Relaxed);
                        Ok(a)
                    }
                    Ok(None) => answer(req, req.len(), rx, tx_raw, &lookup, &v, reply),
                    Err(NtsOutcome::Nak) => {
                        nts_stats.refused.fetch_add(1, Ordering::Relaxed);
                        self.out.push((r.src, i, false, false, false));
                        continue;
                    }
                    Err(NtsOutcome::Drop(e)) => Err(e),
                }
            } else {
                answer(req, req.len(), rx, tx_raw, &lookup, &v, reply)
            };
            match res {
                Ok(a) => {
                    if a.downsized {
                        stats.downsized.fetch_add(1, Ordering::Relaxed);
                    }
                    if rx.kernel {
                        stats.kernel_rx.fetch_add(1, Ordering::Relaxed);
                    }
                    self.out.push((r.src, i, a.tt_client, a.interleaved, false));
                }
                Err(Refusal::Malformed(_)) => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                }
                Err(Refusal::NotClient(_) | Refusal::ReplyInRequest) => {
                    stats.wrong_mode.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Sends the batch's replies in one call.
    fn send_batch(&mut self) {
        let batch: Vec<(std::net::SocketAddr, &[u8], bool)> = self
            .out
            .iter()
            .map(|&(dst, i, stamp, _, _)| (dst, self.replies[i].as_slice(), stamp))
            .collect();
        if batch.is_empty() {
            return;
        }
        match self.sock.send_batch(&batch) {
            Ok(n) => {
                let kissed = self.out.iter().take(n).filter(|o| o.4).count();
                self.stats
                    .rate_kissed
                    .fetch_add(kissed as u64, Ordering::Relaxed);
                self.stats
                    .answered
                    .fetch_add((n - kissed) as u64, Ordering::Relaxed);
                self.pending += self.out.iter().take(n).filter(|o| o.2).count();
                let il = self.out.iter().take(n).filter(|o| o.3).count();
                self.stats
                    .interleaved
                    .fetch_add(il as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("time transfer: send: {e}");
            }
        }
    }

    /// Reads the kernel's transmit stamps of replies sent, and records each for the client's
    /// next (interleaved) request.
    fn collect_tx_stamps(&mut self) {
        while self.pending > 0 {
            let n = self
                .sock
                .tx_stamps(&mut self.errq, &mut self.stamps)
                .unwrap_or(0);
            if n == 0 {
                // Not queued (yet): the next batch looks again, or a timeout drains it.
                break;
            }
            self.pending = self.pending.saturating_sub(n);
            let m = self.map.now();
            let v = self.view.load();
            for s in &self.stamps {
                let (off, len) = s.data;
                // The frame ends with the reply: a TrueTime reply, then NTS fields if any.
                let found = nts_suffixes().find_map(|suffix| {
                    let end = (off + len).checked_sub(suffix)?;
                    let start = end.checked_sub(TT_REPLY_LEN).filter(|&st| st >= off)?;
                    let p = Packet::decode(&self.errq[start..end]).ok()?;
                    match p.tt {
                        Some(TtField::Reply(r)) => Some((p, r)),
                        _ => None,
                    }
                });
                let Some((p, r)) = found else {
                    continue;
                };
                if p.header.mode != Mode::Server {
                    continue;
                }
                if let Some(raw) = m.to_raw(s.stamp_rt, false) {
                    self.stats.kernel_tx.fetch_add(1, Ordering::Relaxed);
                    self.table.insert(
                        (r.t2_ns, p.header.origin_ts.0),
                        sent_reply(&v, r.t2_ns, raw, true),
                    );
                }
            }
        }
    }
}

/// Why an NTS request gets no time.
enum NtsOutcome {
    /// Its cookie or authenticator failed: the reply (already written) is an NTS NAK.
    Nak,
    /// Malformed: dropped, counted as such.
    Drop(Refusal),
}

/// A request under NTS: `Ok(None)` for a plain request (answer it as such), the protected reply
/// for an authenticated one, a NAK or a drop otherwise. The reply is never larger than the
/// request: the time part gets the request's length less what the NTS fields will add.
#[allow(clippy::too_many_arguments)]
fn answer_nts(
    req: &[u8],
    rx: RawStamp,
    tx_raw: i64,
    prev: &dyn Fn(i64, u64) -> Option<SentReply>,
    view: &MasterView,
    out: &mut Vec<u8>,
    ring: &ttcore::ntp::nts::KeyRing,
    rng: &mut rand_chacha::ChaCha20Rng,
) -> Result<Option<ttcore::ntp::server::Answered>, NtsOutcome> {
    use rand::RngCore;
    use ttcore::ntp::nts::{self, Opened};
    let nonce = |rng: &mut rand_chacha::ChaCha20Rng| {
        let mut n = [0u8; nts::NONCE_LEN];
        rng.fill_bytes(&mut n);
        n
    };
    let malformed = |e: nts::NtsError| match e {
        nts::NtsError::Packet(p) => NtsOutcome::Drop(Refusal::Malformed(p)),
        _ => NtsOutcome::Drop(Refusal::Malformed(ttcore::ntp::PacketError::BadField(0))),
    };
    match nts::open_request(req, ring).map_err(malformed)? {
        Opened::Plain => Ok(None),
        Opened::Refused { unique_id, why } => {
            if unique_id.is_empty() || req.len() < ttcore::ntp::packet::HEADER_LEN {
                return Err(NtsOutcome::Drop(Refusal::Malformed(
                    ttcore::ntp::PacketError::BadField(0),
                )));
            }
            tracing::debug!("nts: refused a request: {why}");
            let header: &[u8; ttcore::ntp::packet::HEADER_LEN] = req
                [..ttcore::ntp::packet::HEADER_LEN]
                .try_into()
                .expect("48 bytes");
            // A field that cannot be echoed (it would not fit 16 bits) gets no answer at all.
            nts::nak(header, &unique_id, out).map_err(|_| {
                NtsOutcome::Drop(Refusal::Malformed(ttcore::ntp::PacketError::BadField(0)))
            })?;
            Err(NtsOutcome::Nak)
        }
        Opened::Authenticated(r) => {
            let limit = req.len().saturating_sub(r.reply_overhead());
            let a = answer(req, limit, rx, tx_raw, prev, view, out).map_err(NtsOutcome::Drop)?;
            let cookies: Vec<Vec<u8>> = (0..r.cookies_wanted)
                .map(|_| ring.seal(&r.keys, nonce(rng)))
                .collect();
            nts::protect_reply(out, &r, &cookies, nonce(rng)).map_err(|_| {
                NtsOutcome::Drop(Refusal::Malformed(ttcore::ntp::PacketError::BadField(0)))
            })?;
            Ok(Some(a))
        }
    }
}
