//! The time-transfer server: NTPv4 over UDP with kernel receive stamps, interleaved kernel
//! transmit stamps for TrueTime clients, and batched `recvmmsg` / `sendmmsg`. One thread per
//! `SO_REUSEPORT` socket; the kernel spreads clients over them by address, so a client's
//! interleave record stays with one thread. The replies themselves are built by the pure
//! [`ttcore::ntp::answer`].

use crate::core::master::{MasterKind, Snapshot};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use ttcore::ntp::packet::{Mode, Packet, TtField};
use ttcore::ntp::{MasterView, RawStamp, Refusal, SentReply, answer, sent_reply};
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

/// The length of a reply with the TrueTime field (what the error queue's frames end with).
const TT_REPLY_LEN: usize = 48 + 88;

/// Serves until `stop`: one thread's loop over its socket.
pub fn serve(
    sock: TsSocket,
    view: Arc<ArcSwap<MasterView>>,
    stats: Arc<ServerStats>,
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
    /// Replies to send: (destination, reply index, wants a transmit stamp, interleaved).
    out: Vec<(std::net::SocketAddr, usize, bool, bool)>,
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
            let table = &self.table;
            let lookup = |t2: i64, c: u64| table.get((t2, c));
            let res = if len > MAX_DATAGRAM {
                Err(Refusal::Malformed(ttcore::ntp::PacketError::Oversized(len)))
            } else {
                answer(
                    req,
                    req.len(),
                    rx,
                    tx_raw,
                    &lookup,
                    &v,
                    &mut self.replies[i],
                )
            };
            match res {
                Ok(a) => {
                    if a.downsized {
                        stats.downsized.fetch_add(1, Ordering::Relaxed);
                    }
                    if rx.kernel {
                        stats.kernel_rx.fetch_add(1, Ordering::Relaxed);
                    }
                    self.out.push((r.src, i, a.tt_client, a.interleaved));
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
            .map(|&(dst, i, stamp, _)| (dst, self.replies[i].as_slice(), stamp))
            .collect();
        if batch.is_empty() {
            return;
        }
        match self.sock.send_batch(&batch) {
            Ok(n) => {
                self.stats.answered.fetch_add(n as u64, Ordering::Relaxed);
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
                if len < TT_REPLY_LEN {
                    continue;
                }
                let frame = &self.errq[off + len - TT_REPLY_LEN..off + len];
                let Ok(p) = Packet::decode(frame) else {
                    continue;
                };
                let Some(TtField::Reply(r)) = p.tt else {
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
