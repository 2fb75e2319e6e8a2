//! One store node: the Raft member, the leader's timestamp rules, commit wait, the read paths
//! for each consistency level, and the gRPC services.
//!
//! **Writes are serialised at the leader, through the Raft log.** A transaction is one log
//! entry, applied atomically by every replica in log order (compares make it read-modify-write);
//! there are no locks. The leader chooses `s = max(TT.now().latest, previous s + 1, safe + 1)`
//! and hands the entry to Raft under one mutex, so log order is timestamp order; an entry that
//! still lands at or below a replica's safe time (after a leader change) is refused by the state
//! machine and re-proposed with a fresh `s`. The client is answered only after the Raft commit
//! **and** `TT.after(s)`; the wait runs concurrently with replication, and both are reported.
//!
//! **Reads at a timestamp are final once safe time reaches it** (see [`crate::mvcc`]). Safe time
//! advances with every commit and with *closed timestamps*: the leader proposes `Close{c}`
//! periodically and on request from a replica that is waiting, promising no later commit at or
//! below `c`. A read that returns a version younger than its own commit wait (possible while the
//! writer is still waiting) first waits for `TT.after(version)` — the effect of Spanner's write
//! locks held through commit wait — so no reader can see a value before its commit time has
//! certainly passed.

use crate::mvcc::{Command, Compare, Ts, TxnCmd, Value, Write};
use crate::raft::{
    Blocked, LogStore, Network, NodeId, Raft, RaftService, Shared, StateMachine, TypeConfig,
};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Notify};
use tonic::{Request, Response, Status};
use ttclient::hlc::{Hlc, MaxOffset};
use ttclient::{SimSource, TrueTime};
use ttcore::{ClockStatus, Rate, Span, Timestamp};
use ttproto::store as pb;

/// How timestamps are chosen.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
pub enum Mode {
    /// Spanner: `s ≥ TT.now().latest`, acknowledged after `TT.after(s)`.
    Truetime,
    /// CockroachDB: hybrid-logical timestamps, no commit wait, reads restart on uncertainty.
    Hlc,
}

impl Mode {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Truetime => "truetime",
            Mode::Hlc => "hlc",
        }
    }
}

/// Where a node's TrueTime comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ClockSpec {
    /// The host's `CLOCK_REALTIME` shifted by `skew_ns`, with bound `epsilon_ns` — for tests and
    /// for machines without timed. The interval contains true time (the host clock) exactly
    /// when `|skew_ns| ≤ epsilon_ns`.
    Sim {
        /// Offset from the host clock (ns).
        skew_ns: i64,
        /// Claimed bound (ns).
        epsilon_ns: i64,
    },
    /// timed's shared-memory page (gRPC fallback at `addr`).
    Timed {
        /// Page path.
        page: PathBuf,
        /// timed's gRPC address.
        addr: String,
    },
}

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Raft node id (≥ 1).
    pub id: NodeId,
    /// gRPC listen address (also how peers reach it).
    pub listen: SocketAddr,
    /// Data directory (the redb file lives here).
    pub dir: PathBuf,
    /// Timestamp mode.
    pub mode: Mode,
    /// TrueTime mode: wait for `TT.after(s)` before acknowledging (disable only for the
    /// negative control).
    pub commit_wait: bool,
    /// Clock source.
    pub clock: ClockSpec,
    /// HLC mode: the maximum clock offset assumed between nodes (read uncertainty window).
    pub max_offset: Duration,
    /// How often the leader closes a timestamp when nobody asks.
    pub close_interval: Duration,
    /// Build a snapshot (and purge the log behind it) every this many entries.
    pub snapshot_every: u64,
    /// Initial members (id → address): the node initialises the cluster if it is not yet.
    pub init: Option<BTreeMap<NodeId, String>>,
}

/// Host `CLOCK_REALTIME` in ns since the epoch (the "truth" of simulated sources and of tests).
pub fn realtime_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Opens the TrueTime handle for `spec`.
pub fn open_clock(spec: &ClockSpec) -> Result<TrueTime, ttclient::TtError> {
    match spec {
        ClockSpec::Sim {
            skew_ns,
            epsilon_ns,
        } => Ok(TrueTime::simulated(SimSource {
            model: ttclient::sim_model(0, *skew_ns, Span::from_nanos(*epsilon_ns), Rate::ZERO),
            status: ClockStatus::Synchronized,
            raw: Box::new(realtime_ns),
        })),
        ClockSpec::Timed { page, addr } => TrueTime::connect(page, addr),
    }
}

/// Longest a read waits for safe time, or a transaction for its commit.
pub const WAIT_LIMIT: Duration = Duration::from_secs(3);
/// Largest key (bytes).
pub const MAX_KEY: usize = 1024;
/// Largest value (bytes).
pub const MAX_VALUE: usize = 64 * 1024;
/// How far ahead of the leader's clock a replica may ask it to close (ns).
pub const CLOSE_AHEAD_LIMIT_NS: i64 = 1_000_000_000;
/// Most operations in one request.
pub const MAX_OPS: usize = 128;

/// A running node.
pub struct Node {
    id: NodeId,
    raft: Raft,
    shared: Arc<Shared>,
    tt: TrueTime,
    hlc: Arc<Hlc<TrueTime>>,
    mode: Mode,
    commit_wait: bool,
    max_offset: Span,
    /// The last timestamp proposed or closed by this node as leader.
    propose: Mutex<Ts>,
    /// Wake the closer now, for at least this timestamp.
    close_now: Notify,
    close_want: std::sync::Mutex<Ts>,
    blocked: Blocked,
    peers:
        std::sync::Mutex<HashMap<String, pb::store_client::StoreClient<tonic::transport::Channel>>>,
    ids: AtomicU64,
}

fn ts_to_pb(t: Ts) -> pb::Ts {
    pb::Ts {
        wall: t.wall,
        logical: t.logical,
    }
}

fn ts_from_pb(t: &pb::Ts) -> Ts {
    Ts {
        wall: t.wall,
        logical: t.logical,
    }
}

fn value_to_pb(v: Value) -> pb::KeyValue {
    pb::KeyValue {
        key: v.key,
        value: v.value,
        version: v.version.map(ts_to_pb),
    }
}

fn check_key(k: &str) -> Result<(), Status> {
    if k.is_empty() {
        return Err(Status::invalid_argument("empty key"));
    }
    if k.len() > MAX_KEY {
        return Err(Status::invalid_argument(format!(
            "key of {} bytes is longer than {MAX_KEY}",
            k.len()
        )));
    }
    Ok(())
}

/// Validates a transaction request (bad input is refused before anything is proposed).
pub fn validate_txn(r: &pb::TxnRequest) -> Result<(), Status> {
    let n = r.compares.len() + r.writes.len() + r.reads.len();
    if n == 0 {
        return Err(Status::invalid_argument(
            "empty transaction: no compares, writes or reads",
        ));
    }
    if n > MAX_OPS {
        return Err(Status::invalid_argument(format!(
            "{n} operations; at most {MAX_OPS}"
        )));
    }
    for c in &r.compares {
        check_key(&c.key)?;
    }
    let mut seen = BTreeSet::new();
    for w in &r.writes {
        check_key(&w.key)?;
        if !seen.insert(&w.key) {
            return Err(Status::invalid_argument(format!(
                "key {:?} written twice",
                w.key
            )));
        }
        if w.value.as_ref().is_some_and(|v| v.len() > MAX_VALUE) {
            return Err(Status::invalid_argument(format!(
                "value for {:?} is longer than {MAX_VALUE} bytes",
                w.key
            )));
        }
    }
    for k in &r.reads {
        check_key(k)?;
    }
    Ok(())
}

fn clock_err(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("no trustworthy time: {e}"))
}

impl Node {
    /// Starts the node: opens storage, starts Raft, initialises the cluster if asked, and
    /// returns the node and the gRPC router to serve.
    pub async fn start(
        opts: &NodeOptions,
    ) -> Result<Arc<Node>, Box<dyn std::error::Error + Send + Sync>> {
        std::fs::create_dir_all(&opts.dir)?;
        let db = crate::raft::open_db(&opts.dir.join("raft.redb"))?;
        let tt = open_clock(&opts.clock)?;
        let max_offset = Span::from_nanos(opts.max_offset.as_nanos() as i64);
        let hlc = Arc::new(Hlc::new(tt.clone(), MaxOffset::Fixed(max_offset)));
        let observe: Box<dyn Fn(Ts) + Send + Sync> = if opts.mode == Mode::Hlc {
            let hlc = hlc.clone();
            Box::new(move |ts| {
                if let Err(e) = hlc.update(ts, None) {
                    tracing::warn!("commit timestamp not merged into the HLC: {e}");
                }
            })
        } else {
            Box::new(|_| {})
        };
        let shared = Shared::new(observe);
        let sm = StateMachine::open(shared.clone(), db.clone())?;
        let log = LogStore::new(db);
        let config = openraft::Config {
            cluster_name: "ttstore".into(),
            heartbeat_interval: 100,
            election_timeout_min: 500,
            election_timeout_max: 1000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(opts.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: opts.snapshot_every.clamp(1, 1000),
            ..Default::default()
        }
        .validate()?;
        let blocked: Blocked = Default::default();
        let network = Network {
            id: opts.id,
            blocked: blocked.clone(),
        };
        let raft = Raft::new(opts.id, Arc::new(config), network, log, sm).await?;
        if let Some(members) = &opts.init {
            if !raft.is_initialized().await? {
                let m: BTreeMap<NodeId, BasicNode> = members
                    .iter()
                    .map(|(id, a)| (*id, BasicNode::new(a)))
                    .collect();
                if let Err(e) = raft.initialize(m).await {
                    tracing::info!("cluster not initialised by this node: {e}");
                }
            }
        }
        let safe = shared.read().mvcc.safe();
        Ok(Arc::new(Node {
            id: opts.id,
            raft,
            shared,
            tt,
            hlc,
            mode: opts.mode,
            commit_wait: opts.commit_wait,
            max_offset,
            propose: Mutex::new(safe),
            close_now: Notify::new(),
            close_want: std::sync::Mutex::new(Ts::default()),
            blocked,
            peers: Default::default(),
            ids: AtomicU64::new(0),
        }))
    }

    /// Serves the Store and Raft services on `listen` until `shutdown` resolves, with the
    /// closer running alongside.
    pub async fn serve(
        self: Arc<Self>,
        listen: SocketAddr,
        close_interval: Duration,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let closer = tokio::spawn(self.clone().closer(close_interval));
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let res = tonic::transport::Server::builder()
            .add_service(pb::store_server::StoreServer::new(Svc(self.clone())))
            .add_service(pb::raft_server::RaftServer::new(RaftService {
                raft: self.raft.clone(),
                blocked: self.blocked.clone(),
            }))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        closer.abort();
        let _ = self.raft.shutdown().await;
        res.map_err(Into::into)
    }

    fn metrics(&self) -> openraft::RaftMetrics<NodeId, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader
    }

    fn addr_of(&self, id: NodeId) -> Option<String> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    fn not_leader(&self, leader: Option<NodeId>) -> Status {
        match leader.filter(|l| *l != self.id) {
            Some(l) => {
                let addr = self.addr_of(l).unwrap_or_default();
                let mut s = Status::failed_precondition(format!(
                    "node {} is not the leader; the leader is node {l} at {addr}",
                    self.id
                ));
                if let Ok(v) = addr.parse() {
                    s.metadata_mut().insert("x-leader-addr", v);
                }
                s
            }
            None => Status::unavailable(format!(
                "node {}: no leader (election in progress)",
                self.id
            )),
        }
    }

    fn leader_client(
        &self,
    ) -> Result<pb::store_client::StoreClient<tonic::transport::Channel>, Status> {
        let leader = self.metrics().current_leader;
        let addr = leader
            .and_then(|l| self.addr_of(l))
            .ok_or_else(|| self.not_leader(None))?;
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = peers.get(&addr) {
            return Ok(c.clone());
        }
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::internal(e.to_string()))?
            .connect_timeout(Duration::from_millis(500))
            .connect_lazy();
        let c = pb::store_client::StoreClient::new(ch);
        peers.insert(addr, c.clone());
        Ok(c)
    }

    /// This node's clock as a store timestamp (`TT.now().latest`, or the HLC).
    fn clock_ts(&self) -> Result<Ts, Status> {
        match self.mode {
            Mode::Truetime => Ok(Ts {
                wall: self.tt.now().map_err(clock_err)?.latest().as_nanos(),
                logical: 0,
            }),
            Mode::Hlc => self.hlc.now().map_err(clock_err),
        }
    }

    fn waits(&self) -> bool {
        self.mode == Mode::Truetime && self.commit_wait
    }

    /// Waits for `TT.after(t)` (TrueTime mode with commit wait on), returning the time waited.
    async fn after(&self, t: Ts) -> Result<Duration, Status> {
        if !self.waits() {
            return Ok(Duration::ZERO);
        }
        let cw = tokio::time::timeout(
            WAIT_LIMIT,
            self.tt.commit_wait(Timestamp::from_nanos(t.wall)),
        )
        .await
        .map_err(|_| Status::unavailable("commit wait did not finish in time"))?
        .map_err(clock_err)?;
        Ok(cw.waited)
    }

    /// The leader's closer: proposes `Close{c}` every `interval`, or at once when asked.
    async fn closer(self: Arc<Self>, interval: Duration) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.close_now.notified() => {}
            }
            if !self.is_leader() {
                continue;
            }
            let want = *self.close_want.lock().unwrap_or_else(|e| e.into_inner());
            let rx = {
                let mut last = self.propose.lock().await;
                let Ok(now) = self.clock_ts() else { continue };
                let c = now.max(*last).max(want);
                *last = c;
                self.raft.client_write_ff(Command::Close { ts: c }).await
            };
            match rx {
                Ok(rx) => {
                    let _ = tokio::time::timeout(WAIT_LIMIT, rx).await;
                }
                Err(e) => tracing::warn!("close not proposed: {e}"),
            }
        }
    }

    /// Waits until this replica's safe time reaches `r`, asking the leader to close it.
    async fn wait_safe(&self, r: Ts) -> Result<Duration, Status> {
        let mut rx = self.shared.safe.subscribe();
        if *rx.borrow() >= r {
            return Ok(Duration::ZERO);
        }
        let t0 = Instant::now();
        if self.is_leader() {
            self.request_close(r);
        } else if let Ok(mut leader) = self.leader_client() {
            let req = pb::CloseRequest {
                at: Some(ts_to_pb(r)),
            };
            tokio::spawn(async move {
                let _ = leader.close(req).await;
            });
        }
        match tokio::time::timeout(WAIT_LIMIT, rx.wait_for(|s| *s >= r)).await {
            Ok(Ok(_)) => Ok(t0.elapsed()),
            _ => Err(Status::unavailable(format!(
                "node {}: safe time {:?} did not reach {r:?} within {WAIT_LIMIT:?} (no reachable leader?)",
                self.id,
                *self.shared.safe.borrow()
            ))),
        }
    }

    fn request_close(&self, at: Ts) {
        {
            let mut w = self.close_want.lock().unwrap_or_else(|e| e.into_inner());
            *w = (*w).max(at);
        }
        self.close_now.notify_one();
    }

    fn request_id(&self) -> String {
        format!(
            "node{}-{}-{}",
            self.id,
            realtime_ns(),
            self.ids.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Executes a transaction (leader only).
    pub async fn txn(&self, r: pb::TxnRequest) -> Result<pb::TxnReply, Status> {
        validate_txn(&r)?;
        if !self.is_leader() {
            return Err(self.not_leader(self.metrics().current_leader));
        }
        let id = if r.request_id.is_empty() {
            self.request_id()
        } else {
            r.request_id.clone()
        };
        let compares: Vec<Compare> = r
            .compares
            .iter()
            .map(|c| Compare {
                key: c.key.clone(),
                version: c.version.as_ref().map(ts_from_pb),
            })
            .collect();
        let writes: Vec<Write> = r
            .writes
            .iter()
            .map(|w| Write {
                key: w.key.clone(),
                value: w.value.clone(),
            })
            .collect();
        let t0 = Instant::now();
        for attempt in 0..8u32 {
            let (s, rx) = {
                let mut last = self.propose.lock().await;
                let safe = self.shared.read().mvcc.safe();
                let s = self.clock_ts()?.max(last.next()).max(safe.next());
                *last = s;
                let rx = self
                    .raft
                    .client_write_ff(Command::Txn(TxnCmd {
                        id: id.clone(),
                        ts: s,
                        compares: compares.clone(),
                        writes: writes.clone(),
                        reads: r.reads.clone(),
                    }))
                    .await
                    .map_err(|e| Status::unavailable(format!("raft stopped: {e}")))?;
                (s, rx)
            };
            // Replication and commit wait run at the same time.
            let replicate = async {
                let out = tokio::time::timeout(WAIT_LIMIT, rx).await;
                (out, t0.elapsed())
            };
            let wait = async {
                let w = self.after(s).await;
                (w, t0.elapsed())
            };
            let ((out, replicated_at), (waited, waited_at)) = tokio::join!(replicate, wait);
            let resp = match out {
                Err(_) => {
                    return Err(Status::unavailable(
                        "not committed in time (outcome unknown; retry with the same request id)",
                    ));
                }
                Ok(Err(_)) => {
                    return Err(Status::unavailable(
                        "leadership lost while committing (outcome unknown; retry with the same request id)",
                    ));
                }
                Ok(Ok(Err(ClientWriteError::ForwardToLeader(f)))) => {
                    return Err(self.not_leader(f.leader_id));
                }
                Ok(Ok(Err(e))) => return Err(Status::internal(e.to_string())),
                Ok(Ok(Ok(resp))) => resp,
            };
            match resp.data {
                crate::mvcc::Applied::Committed {
                    ts,
                    succeeded,
                    reads,
                } => {
                    let mut wait_ns = waited?.as_nanos() as i64;
                    let mut done = waited_at.max(replicated_at);
                    if ts != s {
                        // An earlier attempt of this request id committed at `ts`.
                        wait_ns += self.after(ts).await?.as_nanos() as i64;
                        done = t0.elapsed();
                    }
                    return Ok(pb::TxnReply {
                        succeeded,
                        commit_ts: Some(ts_to_pb(ts)),
                        reads: reads.into_iter().map(value_to_pb).collect(),
                        replicate_ns: replicated_at.as_nanos() as i64,
                        commit_wait_ns: wait_ns,
                        exposed_wait_ns: done.saturating_sub(replicated_at).as_nanos() as i64,
                        total_ns: t0.elapsed().as_nanos() as i64,
                        leader: self.id,
                        ts_retries: attempt,
                    });
                }
                crate::mvcc::Applied::TooOld { safe } => {
                    tracing::debug!(
                        "timestamp {s:?} at or below safe time {safe:?}; choosing again"
                    );
                    let mut last = self.propose.lock().await;
                    *last = (*last).max(safe);
                }
                other => {
                    return Err(Status::internal(format!(
                        "unexpected apply result {other:?}"
                    )));
                }
            }
        }
        Err(Status::unavailable(
            "no timestamp above safe time after 8 attempts; retry",
        ))
    }

    fn read_values(&self, keys: &[String], at: Ts) -> Vec<Value> {
        let d = self.shared.read();
        keys.iter().map(|k| d.mvcc.read_at(k, at)).collect()
    }

    /// Serves a read at the requested consistency.
    pub async fn read(&self, r: pb::ReadRequest) -> Result<pb::ReadReply, Status> {
        if r.keys.is_empty() {
            return Err(Status::invalid_argument("no keys to read"));
        }
        if r.keys.len() > MAX_OPS {
            return Err(Status::invalid_argument(format!(
                "{} keys; at most {MAX_OPS}",
                r.keys.len()
            )));
        }
        for k in &r.keys {
            check_key(k)?;
        }
        let consistency = pb::Consistency::try_from(r.consistency).map_err(|_| {
            Status::invalid_argument(format!("unknown consistency {}", r.consistency))
        })?;
        let t0 = Instant::now();
        let mut restarts = 0;
        let (at, values) = match consistency {
            pb::Consistency::Unspecified | pb::Consistency::Strong => match self.mode {
                Mode::Truetime => {
                    let at = self.clock_ts()?;
                    self.wait_safe(at).await?;
                    let values = self.read_values(&r.keys, at);
                    // Never hand out a version before its commit time has certainly passed.
                    if let Some(newest) = values.iter().filter_map(|v| v.version).max() {
                        self.after(newest).await?;
                    }
                    (at, values)
                }
                Mode::Hlc => {
                    if !self.is_leader() {
                        // The gateway picks the timestamp; the leader (which has every
                        // acknowledged write) serves it.
                        let mut fwd = r.clone();
                        fwd.at = Some(ts_to_pb(self.clock_ts()?));
                        let mut leader = self.leader_client()?;
                        let reply = leader.read(fwd).await?.into_inner();
                        if let Some(t) = &reply.read_ts {
                            let _ = self.hlc.update(ts_from_pb(t), None);
                        }
                        return Ok(reply);
                    }
                    let mut at = match &r.at {
                        Some(t) => {
                            let t = ts_from_pb(t);
                            let _ = self.hlc.update(t, None);
                            t
                        }
                        None => self.clock_ts()?,
                    };
                    self.raft.ensure_linearizable().await.map_err(|e| match e {
                        RaftError::APIError(_) => self.not_leader(self.metrics().current_leader),
                        e => Status::unavailable(e.to_string()),
                    })?;
                    let limit = Ts {
                        wall: at.wall.saturating_add(self.max_offset.as_nanos()),
                        logical: u32::MAX,
                    };
                    loop {
                        self.wait_safe(at).await?;
                        let d = self.shared.read();
                        let bump = r
                            .keys
                            .iter()
                            .filter_map(|k| d.mvcc.newest_in(k, at, limit))
                            .max();
                        match bump {
                            Some(v) => {
                                // A value inside the uncertainty window may have been written
                                // before the read began: move the read past it and restart.
                                restarts += 1;
                                at = v;
                            }
                            None => break,
                        }
                    }
                    (at, self.read_values(&r.keys, at))
                }
            },
            pb::Consistency::Snapshot => {
                let at =
                    r.at.as_ref()
                        .map(ts_from_pb)
                        .ok_or_else(|| Status::invalid_argument("a snapshot read needs `at`"))?;
                let horizon = self.tt.now().map_err(clock_err)?.latest().as_nanos() + 1_000_000_000;
                if at.wall > horizon {
                    return Err(Status::invalid_argument(format!(
                        "snapshot timestamp {} is more than 1 s in the future",
                        at.wall
                    )));
                }
                let gc = self.shared.read().mvcc.gc_before();
                if at < gc {
                    return Err(Status::failed_precondition(format!(
                        "snapshot timestamp {} is older than the GC horizon {} (versions are kept for {} s)",
                        at.wall,
                        gc.wall,
                        crate::mvcc::RETAIN_NS / 1_000_000_000
                    )));
                }
                self.wait_safe(at).await?;
                (at, self.read_values(&r.keys, at))
            }
            pb::Consistency::BoundedStaleness => {
                if r.max_staleness_ns <= 0 {
                    return Err(Status::invalid_argument(
                        "bounded-staleness needs max_staleness_ns > 0",
                    ));
                }
                let deadline = Instant::now() + WAIT_LIMIT;
                let mut rx = self.shared.safe.subscribe();
                loop {
                    let safe = *rx.borrow_and_update();
                    let earliest = self.tt.now().map_err(clock_err)?.earliest().as_nanos();
                    let stale = earliest.saturating_sub(safe.wall);
                    if stale <= r.max_staleness_ns {
                        break (safe, self.read_values(&r.keys, safe));
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                        return Err(Status::unavailable(format!(
                            "node {} is {:.3} ms stale, beyond the bound of {:.3} ms",
                            self.id,
                            stale as f64 / 1e6,
                            r.max_staleness_ns as f64 / 1e6
                        )));
                    }
                }
            }
            pb::Consistency::Session => {
                let token = r.session.as_ref().map(ts_from_pb).unwrap_or_default();
                self.wait_safe(token).await?;
                let at = (*self.shared.safe.borrow()).max(token);
                (at, self.read_values(&r.keys, at))
            }
        };
        let newest = values
            .iter()
            .filter_map(|v| v.version)
            .max()
            .unwrap_or_default();
        Ok(pb::ReadReply {
            values: values.into_iter().map(value_to_pb).collect(),
            read_ts: Some(ts_to_pb(at)),
            restarts,
            wait_ns: t0.elapsed().as_nanos() as i64,
            served_by: self.id,
            session: Some(ts_to_pb(at.max(newest))),
        })
    }

    /// Node status.
    pub fn status(&self) -> pb::StatusReply {
        let m = self.metrics();
        let members = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = members.voter_ids().collect();
        let d = self.shared.read();
        let (keys, versions) = d.mvcc.size();
        pb::StatusReply {
            id: self.id,
            leader: m.current_leader.unwrap_or(0),
            term: m.current_term,
            role: format!("{:?}", m.state).to_lowercase(),
            members: members
                .nodes()
                .map(|(id, n)| pb::Member {
                    id: *id,
                    addr: n.addr.clone(),
                    voter: voters.contains(id),
                })
                .collect(),
            last_applied: m.last_applied.map(|l| l.index).unwrap_or(0),
            safe: Some(ts_to_pb(d.mvcc.safe())),
            mode: self.mode.name().into(),
            commit_wait: self.waits(),
            epsilon_ns: self.tt.now().map(|i| i.epsilon().as_nanos()).unwrap_or(-1),
            keys: keys as u64,
            versions: versions as u64,
            blocked: self
                .blocked
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .copied()
                .collect(),
            leader_addr: m
                .current_leader
                .and_then(|l| self.addr_of(l))
                .unwrap_or_default(),
            snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
            purged_index: m.purged.map(|l| l.index).unwrap_or(0),
        }
    }

    async fn change_members(
        &self,
        add: Option<(NodeId, String)>,
        remove: Option<NodeId>,
    ) -> Result<pb::MembershipReply, Status> {
        if !self.is_leader() {
            return Err(self.not_leader(self.metrics().current_leader));
        }
        let map = |e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                self.not_leader(f.leader_id)
            }
            e => Status::failed_precondition(e.to_string()),
        };
        let mut voters: BTreeSet<NodeId> = self
            .metrics()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        if let Some((id, addr)) = add {
            if id == 0 {
                return Err(Status::invalid_argument("node ids start at 1"));
            }
            addr.parse::<SocketAddr>()
                .map_err(|e| Status::invalid_argument(format!("bad address {addr:?}: {e}")))?;
            self.raft
                .add_learner(id, BasicNode::new(addr), true)
                .await
                .map_err(map)?;
            voters.insert(id);
        }
        if let Some(id) = remove {
            if !voters.remove(&id) {
                return Err(Status::not_found(format!("node {id} is not a voter")));
            }
            if voters.is_empty() {
                return Err(Status::failed_precondition("cannot remove the last voter"));
            }
        }
        let resp = self
            .raft
            .change_membership(voters, false)
            .await
            .map_err(map)?;
        let voters: BTreeSet<NodeId> = resp
            .membership
            .as_ref()
            .map(|m| m.voter_ids().collect())
            .unwrap_or_default();
        Ok(pb::MembershipReply {
            members: resp
                .membership
                .iter()
                .flat_map(|m| {
                    m.nodes()
                        .map(|(id, n)| (*id, n.addr.clone()))
                        .collect::<Vec<_>>()
                })
                .map(|(id, addr)| pb::Member {
                    id,
                    addr,
                    voter: voters.contains(&id),
                })
                .collect(),
        })
    }
}

struct Svc(Arc<Node>);

#[tonic::async_trait]
impl pb::store_server::Store for Svc {
    async fn txn(&self, r: Request<pb::TxnRequest>) -> Result<Response<pb::TxnReply>, Status> {
        self.0.txn(r.into_inner()).await.map(Response::new)
    }

    async fn read(&self, r: Request<pb::ReadRequest>) -> Result<Response<pb::ReadReply>, Status> {
        self.0.read(r.into_inner()).await.map(Response::new)
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        Ok(Response::new(self.0.status()))
    }

    async fn add_node(
        &self,
        r: Request<pb::AddNodeRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        let r = r.into_inner();
        self.0
            .change_members(Some((r.id, r.addr)), None)
            .await
            .map(Response::new)
    }

    async fn remove_node(
        &self,
        r: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        self.0
            .change_members(None, Some(r.into_inner().id))
            .await
            .map(Response::new)
    }

    async fn partition(
        &self,
        r: Request<pb::PartitionRequest>,
    ) -> Result<Response<pb::PartitionReply>, Status> {
        let blocked: Vec<NodeId> = r.into_inner().blocked;
        let mut b = self.0.blocked.write().unwrap_or_else(|e| e.into_inner());
        *b = blocked
            .iter()
            .copied()
            .filter(|id| *id != self.0.id)
            .collect();
        tracing::warn!("fault injection: Raft traffic with {:?} is now dropped", *b);
        Ok(Response::new(pb::PartitionReply {
            blocked: b.iter().copied().collect(),
        }))
    }

    async fn close(
        &self,
        r: Request<pb::CloseRequest>,
    ) -> Result<Response<pb::CloseReply>, Status> {
        let at = r
            .into_inner()
            .at
            .as_ref()
            .map(ts_from_pb)
            .ok_or_else(|| Status::invalid_argument("close needs `at`"))?;
        if !self.0.is_leader() {
            return Err(self.0.not_leader(self.0.metrics().current_leader));
        }
        // A replica whose clock is far ahead must not drag every future timestamp with it.
        let now = self.0.clock_ts()?;
        if at.wall > now.wall.saturating_add(CLOSE_AHEAD_LIMIT_NS) {
            return Err(Status::invalid_argument(format!(
                "close at {} is more than 1 s ahead of the leader's clock {}",
                at.wall, now.wall
            )));
        }
        self.0.request_close(at);
        Ok(Response::new(pb::CloseReply {}))
    }
}

/// `TypeConfig` is used through the Raft handle; named here so the docs link.
pub type StoreRaftConfig = TypeConfig;
