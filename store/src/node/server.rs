//! A node process: one replica of every shard, the gRPC services that route requests to them,
//! and the cross-shard parts — reads that span shards, and two-phase commit ([`super::twopc`]).
//!
//! **Shards.** The key space is split by a hash of the key ([`shard_of`]) into `shards` Raft
//! groups. Every node holds a replica of every group; each group elects its own leader, first
//! placed by which node initialises it (`init_groups`). Raft messages carry their group.
//!
//! **Routing.** In a one-shard cluster a transaction sent to a follower is redirected to the
//! leader, as before sharding. In a sharded cluster any node takes any request: a transaction
//! on one shard is forwarded to that shard's leader; one that spans shards is coordinated here
//! by two-phase commit; a read is served from this node's own replicas, at one timestamp for
//! all the shards it touches.

use super::*;
use crate::network::RaftService;

/// The shard of `key` in a cluster of `shards` shards: FNV-1a of its bytes, modulo `shards`
/// (stable across processes, builds and platforms — every node and client agrees).
pub fn shard_of(key: &str, shards: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(shards.max(1))) as u32
}

/// Every key a request touches: its compares', writes' and reads'.
pub(super) fn keys_of<'a>(
    compares: &'a [pb::Compare],
    writes: &'a [pb::Write],
    reads: &'a [String],
) -> impl Iterator<Item = &'a String> {
    compares
        .iter()
        .map(|c| &c.key)
        .chain(writes.iter().map(|w| &w.key))
        .chain(reads.iter())
}

/// How long a forwarded or two-phase request keeps trying a shard's leader.
pub(super) const ROUTE_LIMIT: Duration = Duration::from_secs(3);

/// A node process: one [`Node`] per shard, sharing the clock and the fault-injection list.
pub struct Server {
    pub(super) id: NodeId,
    pub(super) groups: Vec<Arc<Node>>,
    pub(super) blocked: Blocked,
}

impl Server {
    /// Starts a replica of every shard (`opts.shards`, at least one) on one clock.
    pub async fn start(
        opts: &NodeOptions,
    ) -> Result<Arc<Server>, Box<dyn std::error::Error + Send + Sync>> {
        let shards = opts.shards.max(1);
        if shards > 1 && opts.mode != Mode::Truetime {
            return Err("a sharded cluster needs TrueTime mode (two-phase commit picks the commit timestamp from TT.now())".into());
        }
        if let Some(bad) = opts.init_groups.iter().flatten().find(|g| **g >= shards) {
            return Err(format!("init group {bad} does not exist ({shards} shards)").into());
        }
        let tt = open_clock(&opts.clock)?;
        let blocked: Blocked = Default::default();
        let mut groups = Vec::new();
        for g in 0..shards {
            groups.push(Node::start_group(opts, g, tt.clone(), blocked.clone()).await?);
        }
        Ok(Arc::new(Server {
            id: opts.id,
            groups,
            blocked,
        }))
    }

    /// Number of shards.
    pub fn shards(&self) -> u32 {
        self.groups.len() as u32
    }

    /// The replica of shard `g`.
    pub(super) fn group(&self, g: u32) -> Result<&Arc<Node>, Status> {
        self.groups.get(g as usize).ok_or_else(|| {
            Status::invalid_argument(format!("no shard {g} ({} shards)", self.groups.len()))
        })
    }

    /// Serves the Store and Raft services on `listen` until `shutdown` resolves, with every
    /// group's closer and the two-phase-commit recovery running alongside.
    pub async fn serve(
        self: Arc<Self>,
        listen: SocketAddr,
        close_interval: Duration,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let security = self.groups[0].management.server(listen, OPEN_METHODS)?;
        let mut tasks: Vec<_> = self
            .groups
            .iter()
            .map(|g| tokio::spawn(g.clone().closer(close_interval)))
            .collect();
        if self.shards() > 1 {
            tasks.push(tokio::spawn(self.clone().recover()));
        }
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let res = security
            .builder()?
            .add_service(pb::store_server::StoreServer::new(api::Svc(self.clone())))
            .add_service(pb::raft_server::RaftServer::new(RaftService {
                rafts: self.groups.iter().map(|g| g.raft.clone()).collect(),
                blocked: self.blocked.clone(),
            }))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        for t in tasks {
            t.abort();
        }
        for g in &self.groups {
            let _ = g.raft.shutdown().await;
        }
        res.map_err(Into::into)
    }

    /// Refuses a request addressed to shard `g` that touches a key of another shard (it would
    /// be written where no read looks for it).
    pub(super) fn owns<'a>(
        &self,
        g: u32,
        keys: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), Status> {
        self.group(g)?;
        match keys.into_iter().find(|k| shard_of(k, self.shards()) != g) {
            Some(k) => Err(Status::invalid_argument(format!(
                "key {k:?} belongs to shard {}, not shard {g}",
                shard_of(k, self.shards())
            ))),
            None => Ok(()),
        }
    }

    /// The keys of a request by shard, each shard's in request order.
    pub(super) fn split<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a String>,
    ) -> BTreeMap<u32, Vec<String>> {
        let mut out: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for k in keys {
            let v = out.entry(shard_of(k, self.shards())).or_default();
            if !v.contains(k) {
                v.push(k.clone());
            }
        }
        out
    }

    /// Runs a client's transaction: at this node's only group in a one-shard cluster (which
    /// redirects to the leader); otherwise at the one shard it touches (forwarded to that
    /// shard's leader) or by two-phase commit across the shards it touches.
    pub async fn txn(self: &Arc<Self>, r: pb::TxnRequest) -> Result<pb::TxnReply, Status> {
        validate_txn(&r)?;
        if let Some(g) = r.group {
            self.owns(g, keys_of(&r.compares, &r.writes, &r.reads))?;
            return self.group(g)?.txn(r).await;
        }
        if self.shards() == 1 {
            return self.groups[0].txn(r).await;
        }
        let touched = self.split(keys_of(&r.compares, &r.writes, &r.reads));
        let groups: Vec<u32> = touched.keys().copied().collect();
        if let [g] = groups[..] {
            let mut reply = self.forward_txn(g, r).await?;
            reply.groups = vec![g];
            return Ok(reply);
        }
        self.txn_cross(r, groups).await
    }

    /// A one-shard transaction at shard `g`'s leader: here if this node leads it, otherwise
    /// forwarded (crossing to the leader's region and back), following leader changes until
    /// [`ROUTE_LIMIT`].
    async fn forward_txn(&self, g: u32, mut r: pb::TxnRequest) -> Result<pb::TxnReply, Status> {
        if r.request_id.is_empty() {
            r.request_id = self.group(g)?.request_id();
        }
        r.group = Some(g);
        self.at_leader(g, r, |node, r, remote| async move {
            match remote {
                None => node.txn(r).await,
                Some(mut c) => c
                    .txn(node.security.request(r))
                    .await
                    .map(|x| x.into_inner()),
            }
        })
        .await
    }

    /// Serves a read from this node's replicas. Keys of one shard: that shard's read path.
    /// Keys of several: one read timestamp for all of them (TrueTime strong, snapshot, session
    /// or bounded staleness), each shard waited on until it is final there.
    pub async fn read(&self, r: pb::ReadRequest) -> Result<pb::ReadReply, Status> {
        let parts = self.split(&r.keys);
        if parts.len() <= 1 {
            let g = parts.keys().next().copied().unwrap_or(0);
            return self.group(g)?.read(r).await;
        }
        let first = &self.groups[0];
        first.serving()?;
        let consistency = reads::validate_read(&r)?;
        let t0 = Instant::now();
        let min_safe = || {
            parts
                .keys()
                .map(|g| *self.groups[*g as usize].shared.safe.borrow())
                .min()
                .unwrap_or_default()
        };
        let at = match consistency {
            pb::Consistency::Unspecified | pb::Consistency::Strong => first.clock_ts()?,
            pb::Consistency::Snapshot => {
                let at =
                    r.at.as_ref()
                        .map(ts_from_pb)
                        .ok_or_else(|| Status::invalid_argument("a snapshot read needs `at`"))?;
                for g in parts.keys() {
                    self.groups[*g as usize].check_snapshot_ts(at)?;
                }
                at
            }
            pb::Consistency::Session => {
                let token = r.session.as_ref().map(ts_from_pb).unwrap_or_default();
                min_safe().max(token)
            }
            pb::Consistency::BoundedStaleness => {
                if r.max_staleness_ns <= 0 {
                    return Err(Status::invalid_argument(
                        "bounded-staleness needs max_staleness_ns > 0",
                    ));
                }
                let earliest = first.tt.now().map_err(clock_err)?.earliest().as_nanos();
                let at = min_safe();
                let oldest = Ts {
                    wall: earliest.saturating_sub(r.max_staleness_ns),
                    logical: 0,
                };
                at.max(oldest)
            }
        };
        let mut found: HashMap<String, Value> = HashMap::new();
        for (g, keys) in &parts {
            let node = &self.groups[*g as usize];
            node.wait_safe(at).await?;
            for v in node.read_final(keys, at).await? {
                found.insert(v.key.clone(), v);
            }
        }
        let values: Vec<Value> = r
            .keys
            .iter()
            .filter_map(|k| found.get(k).cloned())
            .collect();
        // Strong: never hand out a version before its commit time has certainly passed (as a
        // one-shard strong read does).
        if matches!(
            consistency,
            pb::Consistency::Unspecified | pb::Consistency::Strong
        ) && let Some(newest) = values.iter().filter_map(|v| v.version).max()
        {
            first.after(newest).await?;
        }
        Ok(first.read_reply(values, at, 0, t0, self.id))
    }
}

/// A forwarded request worth trying again at the (new) leader: this node was not it, or the
/// shard is between leaders.
pub(super) fn retry_at_leader(s: &Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::FailedPrecondition | tonic::Code::Unavailable
    ) && !s.message().contains("outcome unknown")
}

/// Sleeps `d` unless it is zero (no region delay).
pub(crate) async fn sleep_nonzero(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}
