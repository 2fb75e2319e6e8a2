//! `ttstore ap-node`: the AP (multi-leader) mode as a running service.
//!
//! Every node accepts writes on its own, in any partition, and ships them to the others
//! asynchronously; the data types of [`crate::ap`] decide what a node holds once it has seen a
//! set of writes, in any order:
//!
//! * **Registers** ([`LwwMap`] under [`LwwRule::TrueTime`]): a write is stamped with the node's
//!   `TT.now()`. Two writes to one key whose intervals overlap have an unknown order: the pair is
//!   **reported** (per key in `Get`, in total in `State`), and the value kept is chosen by the
//!   documented tie rule, the same on every node.
//! * **Counters** ([`PnCounter`]): an increment is never lost.
//!
//! **Acknowledged means durable here.** An operation is appended to `<dir>/ap.log` and
//! fsynced before the reply; a restarted node replays the log. **Replication** is anti-entropy
//! by pull: every `pull_interval`, a node asks each peer for the operations it lacks, given,
//! per origin, how many of that origin's operations it has (each node holds a contiguous prefix
//! per origin, so this is exact and idempotent). Operations travel transitively, so a node that
//! can reach one peer gets everything that peer has. Partitions (`Partition`) and regions (a
//! [`Topology`]'s delays on every pull) apply as in the CP mode. Nodes that have seen the same
//! operations hold the same state, shown by equal `State` digests.

use crate::ap::{LwwMap, LwwRule, PnCounter, ReplicaId, Version};
use crate::network::Blocked;
use crate::node::{ClockSpec, open_clock};
use crate::region::Topology;
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Request, Response, Status};
use ttclient::TrueTime;
use ttcore::{TTInterval, Timestamp};
use ttproto::store as pb;

/// The methods anyone may call (reads); writes, pulls and fault injection need the token.
pub const AP_OPEN_METHODS: &[&str] = &["/ttstore.v1.Ap/Get", "/ttstore.v1.Ap/State"];
/// Most operations one pull returns (the asker pulls again for the rest).
const PULL_BATCH: usize = 4096;
/// Largest key or counter name, and value (bytes), as in the CP mode.
const MAX_KEY: usize = crate::node::MAX_KEY;
const MAX_VALUE: usize = crate::node::MAX_VALUE;

/// An acknowledged register write as the LWW register sees it (the client's record of it).
pub fn acknowledged(key: String, value: String, r: &pb::ApWriteReply) -> Version {
    Version {
        key,
        value,
        origin: r.origin,
        seq: r.seq,
        wall_ns: r.wall_ns,
        tt: TTInterval::new(
            Timestamp::from_nanos(r.earliest_ns),
            Timestamp::from_nanos(r.latest_ns),
        )
        .unwrap_or_else(|_| TTInterval::point(Timestamp::from_nanos(r.latest_ns))),
    }
}

/// Everything an AP node needs to start.
#[derive(Clone, Debug)]
pub struct ApOptions {
    /// This node's id (≥ 1; it is the origin of the writes it accepts).
    pub id: u64,
    /// Listen address.
    pub listen: std::net::SocketAddr,
    /// Data directory (`ap.log`).
    pub dir: PathBuf,
    /// Clock source.
    pub clock: ClockSpec,
    /// The other nodes: id → address.
    pub peers: BTreeMap<u64, String>,
    /// How often it pulls from each peer.
    pub pull_interval: Duration,
    /// How the listener is locked.
    pub management: ttsys::mgmt::ManagementConfig,
    /// How it reaches its peers.
    pub security: ttsys::mgmt::ClientSecurity,
    /// Regions and the delays between them.
    pub topology: Option<Topology>,
}

/// What a node holds.
struct State {
    lww: LwwMap,
    counters: BTreeMap<String, PnCounter>,
    /// Per origin, its operations in sequence order from 1 (a contiguous prefix).
    ops: BTreeMap<ReplicaId, Vec<pb::ApOp>>,
}

impl State {
    fn new() -> State {
        State {
            lww: LwwMap::new(LwwRule::TrueTime),
            counters: BTreeMap::new(),
            ops: BTreeMap::new(),
        }
    }

    /// How many of `origin`'s operations this node has.
    fn known(&self, origin: ReplicaId) -> u64 {
        self.ops.get(&origin).map_or(0, |v| v.len() as u64)
    }

    /// Whether `op` is the next one of its origin (older ones are duplicates; later ones wait
    /// for the gap to fill).
    fn is_next(&self, op: &pb::ApOp) -> bool {
        op.seq == self.known(op.origin) + 1
    }

    /// Applies the next operation of its origin (see [`State::is_next`]).
    fn apply(&mut self, op: pb::ApOp) {
        match &op.op {
            Some(pb::ap_op::Op::Put(p)) => {
                if let Ok(tt) = TTInterval::new(
                    Timestamp::from_nanos(p.earliest_ns),
                    Timestamp::from_nanos(p.latest_ns),
                ) {
                    self.lww.apply(&Version {
                        key: p.key.clone(),
                        value: p.value.clone(),
                        origin: op.origin,
                        seq: op.seq,
                        wall_ns: p.wall_ns,
                        tt,
                    });
                }
            }
            Some(pb::ap_op::Op::Add(a)) => self
                .counters
                .entry(a.counter.clone())
                .or_default()
                .add(op.origin, a.delta),
            None => {}
        }
        self.ops.entry(op.origin).or_default().push(op);
    }

    /// A digest of what the node serves: equal digests, equal registers, counters and
    /// conflicts.
    fn digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |b: &[u8]| {
            for x in b {
                h ^= u64::from(*x);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            h ^= 0xff;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        };
        for (k, v) in self.lww.values() {
            eat(k.as_bytes());
            eat(v.as_bytes());
        }
        for (k, c) in &self.counters {
            eat(k.as_bytes());
            eat(&c.value().to_le_bytes());
        }
        for c in self.lww.conflicts() {
            eat(c.key.as_bytes());
            for (o, s) in c.writes {
                eat(&o.to_le_bytes());
                eat(&s.to_le_bytes());
            }
        }
        h
    }
}

/// A running AP node.
pub struct ApNode {
    id: u64,
    tt: TrueTime,
    state: Mutex<State>,
    /// The operation log; holding it orders this node's own sequence numbers.
    log: tokio::sync::Mutex<std::fs::File>,
    peers: BTreeMap<u64, String>,
    blocked: Blocked,
    security: ttsys::mgmt::ClientSecurity,
    topology: Option<Arc<Topology>>,
}

/// Replays a log: the state it leaves and how many bytes were whole records (the rest, a
/// record torn by a crash mid-append or damaged, is dropped). Records that are not the next of
/// their origin are skipped, as when they arrive by replication.
fn replay(bytes: &[u8]) -> (State, usize) {
    let mut state = State::new();
    let mut buf = bytes;
    let mut good = 0;
    while !buf.is_empty() {
        match pb::ApOp::decode_length_delimited(&mut buf) {
            Ok(op) => {
                if state.is_next(&op) {
                    state.apply(op);
                }
                good = bytes.len() - buf.len();
            }
            Err(_) => break,
        }
    }
    (state, good)
}

/// [`replay`] for outside callers (the fuzz harness): (operations applied, whole bytes).
pub fn replay_log(bytes: &[u8]) -> (usize, usize) {
    let (s, good) = replay(bytes);
    (s.ops.values().map(Vec::len).sum(), good)
}

fn io(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("ap.log: {e}"))
}

impl ApNode {
    /// Opens the node: replays `<dir>/ap.log` (a torn last record, from a crash mid-append, is
    /// dropped: it was never acknowledged).
    pub fn open(opts: &ApOptions) -> Result<Arc<ApNode>, Box<dyn std::error::Error + Send + Sync>> {
        if opts.id == 0 || opts.id > u64::from(ReplicaId::MAX) {
            return Err(format!("node id {} out of range", opts.id).into());
        }
        std::fs::create_dir_all(&opts.dir)?;
        let path = opts.dir.join("ap.log");
        let mut bytes = Vec::new();
        if path.exists() {
            std::fs::File::open(&path)?.read_to_end(&mut bytes)?;
        }
        let (state, good) = replay(&bytes);
        if good < bytes.len() {
            tracing::warn!(
                "{}: dropping a torn or corrupt record at byte {good} of {}",
                path.display(),
                bytes.len()
            );
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        file.set_len(good as u64)?;
        Ok(Arc::new(ApNode {
            id: opts.id,
            tt: open_clock(&opts.clock)?,
            state: Mutex::new(state),
            log: tokio::sync::Mutex::new(file),
            peers: opts.peers.clone(),
            blocked: Blocked::default(),
            security: opts.security.clone(),
            topology: opts.topology.clone().map(Arc::new),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `ops` to the log, fsyncs, then applies them (those still next for their
    /// origin). Blocking: callers run it in `block_in_place`, so the fsync does not stall the
    /// runtime's other tasks.
    fn persist(&self, log: &mut std::fs::File, ops: Vec<pb::ApOp>) -> Result<(), Status> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for op in &ops {
            op.encode_length_delimited(&mut buf).map_err(io)?;
        }
        log.write_all(&buf).map_err(io)?;
        log.sync_data().map_err(io)?;
        let mut s = self.state();
        for op in ops {
            if s.is_next(&op) {
                s.apply(op);
            }
        }
        Ok(())
    }

    /// Accepts one of this node's own writes: stamps it, logs it durably, applies it.
    async fn accept(
        &self,
        op: impl FnOnce(i64, TTInterval) -> pb::ap_op::Op,
    ) -> Result<pb::ApWriteReply, Status> {
        let tt = self.tt.now().map_err(|e| {
            Status::unavailable(format!("no trustworthy time to stamp the write: {e}"))
        })?;
        let wall = crate::node::realtime_ns();
        let origin = self.id as ReplicaId;
        let mut log = self.log.lock().await;
        let seq = self.state().known(origin) + 1;
        let rec = pb::ApOp {
            origin,
            seq,
            op: Some(op(wall, tt)),
        };
        tokio::task::block_in_place(|| self.persist(&mut log, vec![rec]))?;
        Ok(pb::ApWriteReply {
            origin,
            seq,
            wall_ns: wall,
            earliest_ns: tt.earliest().as_nanos(),
            latest_ns: tt.latest().as_nanos(),
        })
    }

    /// One pull from peer `id` at `addr`: what it has that this node lacks.
    async fn pull_once(
        &self,
        id: u64,
        client: &mut pb::ap_client::ApClient<tonic::transport::Channel>,
    ) -> Result<usize, Status> {
        let known: HashMap<u32, u64> = {
            let s = self.state();
            s.ops.keys().map(|o| (*o, s.known(*o))).collect()
        };
        let delay = self
            .topology
            .as_ref()
            .map_or(Duration::ZERO, |t| t.node_link(self.id, id).random_delay());
        crate::node::sleep_nonzero(delay).await;
        let mut req = self.security.request(pb::ApPullRequest {
            from: self.id,
            known,
        });
        req.set_timeout(Duration::from_secs(2));
        let reply = client.pull(req).await?.into_inner();
        crate::node::sleep_nonzero(delay).await;
        let n = reply.ops.len();
        let mut log = self.log.lock().await;
        let fresh: Vec<pb::ApOp> = {
            let s = self.state();
            reply
                .ops
                .into_iter()
                .filter(|o| o.seq > s.known(o.origin))
                .collect()
        };
        tokio::task::block_in_place(|| self.persist(&mut log, fresh))?;
        Ok(n)
    }

    /// Pulls from every peer, every `interval`, for ever (skipping peers cut off).
    async fn puller(self: Arc<Self>, interval: Duration) {
        let mut tasks = Vec::new();
        for (id, addr) in self.peers.clone() {
            if id == self.id {
                continue;
            }
            let me = self.clone();
            tasks.push(tokio::spawn(async move {
                let ch = match me.security.endpoint(&addr) {
                    Ok(e) => e.connect_timeout(Duration::from_millis(500)).connect_lazy(),
                    Err(e) => {
                        tracing::error!("peer {id} at {addr}: {e}");
                        return;
                    }
                };
                let mut client = pb::ap_client::ApClient::new(ch);
                loop {
                    tokio::time::sleep(interval).await;
                    if me.is_blocked(id) {
                        continue;
                    }
                    // Keep pulling while the peer has a full batch for us.
                    while let Ok(n) = me.pull_once(id, &mut client).await {
                        if n < PULL_BATCH {
                            break;
                        }
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    fn is_blocked(&self, id: u64) -> bool {
        self.blocked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id)
    }

    /// Serves the `Ap` service on `listen` until `shutdown`, pulling from the peers.
    pub async fn serve(
        self: Arc<Self>,
        listen: std::net::SocketAddr,
        management: &ttsys::mgmt::ManagementConfig,
        interval: Duration,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let security = management.server(listen, AP_OPEN_METHODS)?;
        let puller = tokio::spawn(self.clone().puller(interval));
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let res = security
            .builder()?
            .add_service(pb::ap_server::ApServer::new(ApSvc(self)))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        puller.abort();
        res.map_err(Into::into)
    }
}

fn check_name(what: &str, k: &str, max: usize) -> Result<(), Status> {
    if k.is_empty() {
        return Err(Status::invalid_argument(format!("empty {what}")));
    }
    if k.len() > max {
        return Err(Status::invalid_argument(format!(
            "{what} of {} bytes is longer than {max}",
            k.len()
        )));
    }
    Ok(())
}

struct ApSvc(Arc<ApNode>);

#[tonic::async_trait]
impl pb::ap_server::Ap for ApSvc {
    async fn put(
        &self,
        r: Request<pb::ApPutRequest>,
    ) -> Result<Response<pb::ApWriteReply>, Status> {
        let r = r.into_inner();
        check_name("key", &r.key, MAX_KEY)?;
        if r.value.len() > MAX_VALUE {
            return Err(Status::invalid_argument(format!(
                "value of {} bytes is longer than {MAX_VALUE}",
                r.value.len()
            )));
        }
        self.0
            .accept(|wall, tt| {
                pb::ap_op::Op::Put(pb::ApPutOp {
                    key: r.key,
                    value: r.value,
                    wall_ns: wall,
                    earliest_ns: tt.earliest().as_nanos(),
                    latest_ns: tt.latest().as_nanos(),
                })
            })
            .await
            .map(Response::new)
    }

    async fn add(
        &self,
        r: Request<pb::ApAddRequest>,
    ) -> Result<Response<pb::ApWriteReply>, Status> {
        let r = r.into_inner();
        check_name("counter", &r.counter, MAX_KEY)?;
        if r.delta == 0 || r.delta == i64::MIN {
            return Err(Status::invalid_argument(format!(
                "delta {} is not a change",
                r.delta
            )));
        }
        self.0
            .accept(|_, _| pb::ap_op::Op::Add(r))
            .await
            .map(Response::new)
    }

    async fn get(&self, r: Request<pb::ApGetRequest>) -> Result<Response<pb::ApGetReply>, Status> {
        let r = r.into_inner();
        if r.keys.len() + r.counters.len() > crate::node::MAX_OPS {
            return Err(Status::invalid_argument(
                "too many keys and counters in one get",
            ));
        }
        let s = self.0.state();
        let registers = r
            .keys
            .iter()
            .map(|k| {
                let v = s.lww.get(k);
                pb::ApRegister {
                    key: k.clone(),
                    value: v.map(|v| v.value.clone()),
                    origin: v.map_or(0, |v| v.origin),
                    seq: v.map_or(0, |v| v.seq),
                    conflicts: s.lww.conflicts().iter().filter(|c| c.key == *k).count() as u64,
                }
            })
            .collect();
        let counters = r
            .counters
            .iter()
            .map(|c| pb::ApCounter {
                name: c.clone(),
                value: s.counters.get(c).map_or(0, PnCounter::value),
            })
            .collect();
        Ok(Response::new(pb::ApGetReply {
            registers,
            counters,
            served_by: self.0.id,
        }))
    }

    async fn state(
        &self,
        _: Request<pb::ApStateRequest>,
    ) -> Result<Response<pb::ApStateReply>, Status> {
        let s = self.0.state();
        Ok(Response::new(pb::ApStateReply {
            id: self.0.id,
            digest: s.digest(),
            known: s.ops.keys().map(|o| (*o, s.known(*o))).collect(),
            registers: s.lww.values().len() as u64,
            counters: s.counters.len() as u64,
            conflicts: s.lww.conflicts().len() as u64,
            blocked: {
                let mut b: Vec<u64> = self
                    .0
                    .blocked
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .copied()
                    .collect();
                b.sort_unstable();
                b
            },
        }))
    }

    async fn pull(
        &self,
        r: Request<pb::ApPullRequest>,
    ) -> Result<Response<pb::ApPullReply>, Status> {
        let r = r.into_inner();
        if self.0.is_blocked(r.from) {
            return Err(Status::unavailable(format!(
                "node {} is partitioned away (fault injection)",
                r.from
            )));
        }
        let s = self.0.state();
        let mut ops = Vec::new();
        'origins: for (origin, v) in &s.ops {
            let have = r.known.get(origin).copied().unwrap_or(0) as usize;
            for op in v.iter().skip(have) {
                if ops.len() >= PULL_BATCH {
                    break 'origins;
                }
                ops.push(op.clone());
            }
        }
        Ok(Response::new(pb::ApPullReply { ops }))
    }

    async fn partition(
        &self,
        r: Request<pb::PartitionRequest>,
    ) -> Result<Response<pb::PartitionReply>, Status> {
        let blocked = r.into_inner().blocked;
        let mut b = self.0.blocked.write().unwrap_or_else(|e| e.into_inner());
        *b = blocked.into_iter().filter(|id| *id != self.0.id).collect();
        tracing::warn!("fault injection: replication with {:?} is now dropped", *b);
        let mut blocked: Vec<u64> = b.iter().copied().collect();
        blocked.sort_unstable();
        Ok(Response::new(pb::PartitionReply { blocked }))
    }
}
