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
use crate::network::{Blocked, Network};
use crate::raft::{LogStore, NodeId, Raft, Shared, StateMachine};
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
use ttclient::{RawReading, SimSource, TrueTime};
use ttcore::{ClockStatus, Rate, Span, Timestamp};
use ttproto::store as pb;

mod api;
mod reads;
mod server;
mod twopc;
mod txn;

pub(crate) use server::sleep_nonzero;
pub use server::{Server, shard_of};
pub use twopc::{RECOVER_AFTER, RECOVER_EVERY, validate_prepare};
pub use txn::validate_txn;

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
    /// Past this ε the node quarantines itself: no reads served, no writes proposed, until its
    /// clock is back under it (and trustworthy).
    pub max_epsilon: Span,
    /// Global-table mode (TrueTime only; zero: off): the leader writes and closes this far in
    /// the future, so every replica's safe time runs ahead of real time and strong reads are
    /// served locally without waiting; a write then commit-waits the lead. It must cover
    /// replication to the farthest replica plus ε for reads never to wait; a shorter lead is
    /// still correct, only slower to read.
    pub global_lead: Duration,
    /// How often the leader closes a timestamp when nobody asks.
    pub close_interval: Duration,
    /// Build a snapshot (and purge the log behind it) every this many entries.
    pub snapshot_every: u64,
    /// Initial members (id → address): the node initialises the cluster if it is not yet.
    pub init: Option<BTreeMap<NodeId, String>>,
    /// How the listener is locked (TLS beyond loopback; the token every call but `Read` and
    /// `Status` needs, Raft included). Nodes of one cluster share the token.
    pub management: ttsys::mgmt::ManagementConfig,
    /// How this node reaches its peers (the CA it trusts, the token it sends).
    pub peers: ttsys::mgmt::ClientSecurity,
    /// Regions and the delays between them (`None`: every node in one place).
    pub topology: Option<crate::region::Topology>,
    /// How many shards (Raft groups) the key space is split into; every node of the cluster
    /// hosts a replica of each and must be started with the same number.
    pub shards: u32,
    /// The groups this node initialises (and so leads first) when `init` is given; `None`:
    /// all of them. Spreading them places the shards' leaders on different nodes.
    pub init_groups: Option<Vec<u32>>,
}

/// Raft's heartbeat interval and election timeouts (ms) for a cluster whose longest one-way
/// delay is `max_one_way`: openraft gives every `AppendEntries` one heartbeat interval to come
/// back, so the interval must exceed the longest round trip (with a half again of margin); the
/// election timeout stays five to ten heartbeats, as etcd advises.
pub fn raft_timing(max_one_way: Duration) -> (u64, u64, u64) {
    let rtt_ms = 2 * max_one_way.as_millis() as u64;
    let heartbeat = 100.max(rtt_ms + rtt_ms / 2);
    (heartbeat, 5 * heartbeat, 10 * heartbeat)
}

/// The methods anyone who reaches a node may call; every other — writes, membership, fault
/// injection, closing timestamps and the whole Raft service — needs the cluster's token.
pub const OPEN_METHODS: &[&str] = &["/ttstore.v1.Store/Read", "/ttstore.v1.Store/Status"];

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
            model: ttclient::sim_model(
                RawReading::from_nanos(0),
                *skew_ns,
                Span::from_nanos(*epsilon_ns),
                Rate::ZERO,
            ),
            status: ClockStatus::Synchronized,
            raw: Box::new(|| RawReading::from_nanos(realtime_ns())),
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

/// One shard's replica on a node: its Raft member, state machine, timestamp rules, commit wait
/// and reads. A node process ([`Server`]) holds one per shard.
pub struct Node {
    id: NodeId,
    /// The shard (Raft group) this replica belongs to.
    group: u32,
    raft: Raft,
    shared: Arc<Shared>,
    tt: TrueTime,
    hlc: Arc<Hlc<TrueTime>>,
    mode: Mode,
    commit_wait: bool,
    max_offset: Span,
    max_epsilon: Span,
    global_lead: Span,
    /// The last timestamp proposed or closed by this node as leader.
    propose: Mutex<Ts>,
    /// Wake the closer now, for at least this timestamp.
    close_now: Notify,
    close_want: std::sync::Mutex<Ts>,
    blocked: Blocked,
    /// How the listener is locked.
    management: ttsys::mgmt::ManagementConfig,
    /// How this node reaches its peers.
    security: ttsys::mgmt::ClientSecurity,
    peers:
        std::sync::Mutex<HashMap<String, pb::store_client::StoreClient<tonic::transport::Channel>>>,
    ids: AtomicU64,
    /// Regions and the delays between them.
    topology: Option<Arc<crate::region::Topology>>,
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

fn clock_err(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("no trustworthy time: {e}"))
}

/// The redb file of shard `group` in a node's data directory (`raft.redb` for shard 0, as
/// before sharding).
pub fn group_db(dir: &std::path::Path, group: u32) -> PathBuf {
    if group == 0 {
        dir.join("raft.redb")
    } else {
        dir.join(format!("raft-g{group}.redb"))
    }
}

impl Node {
    /// Starts this node's replica of shard `group`: opens its storage, starts its Raft, and
    /// initialises the group if asked. `blocked` is the node's fault-injection list, shared by
    /// its groups.
    pub async fn start_group(
        opts: &NodeOptions,
        group: u32,
        tt: TrueTime,
        blocked: Blocked,
    ) -> Result<Arc<Node>, Box<dyn std::error::Error + Send + Sync>> {
        std::fs::create_dir_all(&opts.dir)?;
        let db = crate::raft::open_db(&group_db(&opts.dir, group))?;
        let max_offset = Span::from_duration(opts.max_offset);
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
        let topology = opts.topology.clone().map(Arc::new);
        let (heartbeat, election_min, election_max) = raft_timing(
            topology
                .as_ref()
                .map_or(Duration::ZERO, |t| t.max_one_way()),
        );
        let config = openraft::Config {
            cluster_name: format!("ttstore-g{group}"),
            heartbeat_interval: heartbeat,
            election_timeout_min: election_min,
            election_timeout_max: election_max,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(opts.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: opts.snapshot_every.clamp(1, 1000),
            ..Default::default()
        }
        .validate()?;
        let network = Network {
            id: opts.id,
            group,
            blocked: blocked.clone(),
            security: opts.peers.clone(),
            topology: topology.clone(),
        };
        let raft = Raft::new(opts.id, Arc::new(config), network, log, sm).await?;
        let initialises = opts
            .init_groups
            .as_ref()
            .is_none_or(|gs| gs.contains(&group));
        if let Some(members) = opts.init.as_ref().filter(|_| initialises) {
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
            group,
            raft,
            shared,
            tt,
            hlc,
            mode: opts.mode,
            commit_wait: opts.commit_wait,
            max_offset,
            max_epsilon: opts.max_epsilon,
            global_lead: if opts.mode == Mode::Truetime {
                Span::from_duration(opts.global_lead)
            } else {
                Span::ZERO
            },
            propose: Mutex::new(safe),
            close_now: Notify::new(),
            close_want: std::sync::Mutex::new(Ts::default()),
            blocked,
            management: opts.management.clone(),
            security: opts.peers.clone(),
            peers: Default::default(),
            ids: AtomicU64::new(0),
            topology,
        }))
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
                    "node {} is not shard {}'s leader; the leader is node {l} at {addr}",
                    self.id, self.group
                ));
                if let Ok(v) = addr.parse() {
                    s.metadata_mut().insert("x-leader-addr", v);
                }
                s
            }
            None => Status::unavailable(format!(
                "node {}: shard {} has no leader (election in progress)",
                self.id, self.group
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
        let ch = self
            .security
            .endpoint(&addr)
            .map_err(|e| Status::internal(e.to_string()))?
            .connect_timeout(Duration::from_millis(500))
            .connect_lazy();
        let c = pb::store_client::StoreClient::new(ch);
        peers.insert(addr, c.clone());
        Ok(c)
    }

    /// One message's delay from this node to the leader's region (zero without a topology).
    fn link_to_leader(&self) -> Duration {
        match (&self.topology, self.metrics().current_leader) {
            (Some(t), Some(l)) => t.node_link(self.id, l).random_delay(),
            _ => Duration::ZERO,
        }
    }

    /// Why this node must not serve now, if it must not: its TrueTime is untrustworthy, or its
    /// ε is past the maximum (CockroachDB stops a node whose offset nears its max-offset; a
    /// node here stands aside until its clock recovers, and says why in its status).
    pub fn quarantine(&self) -> Option<String> {
        match self.tt.now() {
            Err(e) => Some(format!("no trustworthy time: {e}")),
            Ok(i) if i.epsilon() > self.max_epsilon => Some(format!(
                "ε {:.3} ms is past the maximum {:.3} ms",
                i.epsilon().as_nanos() as f64 / 1e6,
                self.max_epsilon.as_nanos() as f64 / 1e6
            )),
            Ok(_) => None,
        }
    }

    /// Refuses with `unavailable` while quarantined (the client moves to another node).
    pub(crate) fn serving(&self) -> Result<(), Status> {
        match self.quarantine() {
            Some(why) => Err(Status::unavailable(format!(
                "node {} is quarantined: {why}",
                self.id
            ))),
            None => Ok(()),
        }
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

    /// The timestamp the leader writes and closes at: its clock, plus the global-table lead;
    /// refused while quarantined, so a quarantined leader proposes nothing (no write, no close).
    /// Reads check the quarantine once, on entry ([`Node::read`]).
    pub(crate) fn write_ts(&self) -> Result<Ts, Status> {
        self.serving()?;
        let t = self.clock_ts()?;
        Ok(Ts {
            wall: t.wall.saturating_add(self.global_lead.as_nanos()),
            logical: t.logical,
        })
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
                let Ok(now) = self.write_ts() else { continue };
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
            let req = self.security.request(pb::CloseRequest {
                at: Some(ts_to_pb(r)),
                group: self.group,
            });
            // The request crosses to the leader's region; its effect comes back through Raft.
            let delay = self.link_to_leader();
            tokio::spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
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
}
