//! Two-phase commit across shards, with TrueTime timestamps (Spanner's protocol over our Raft
//! groups).
//!
//! 1. **Prepare.** The coordinator (the node that took the request) sends each shard its part.
//!    The shard's leader logs a prepare record at a timestamp of its own choosing (above its
//!    safe time, as for any transaction), checks the part's compares, reads, and locks every
//!    key the part touches. A key locked by a younger transaction makes the prepare wait for
//!    that one's decision; one locked by an older transaction refuses it at once (wait-die, by
//!    the age the coordinator gave the transaction when it first tried it, kept across its
//!    attempts: waits only go from older to younger, so there is no deadlock, and a retried
//!    transaction ages until it wins).
//! 2. **Decide.** If every part prepared, the coordinator picks
//!    `s = max(every prepare timestamp, TT.now().latest)` and logs "commit at `s`" in the
//!    *coordinator shard* (the lowest shard touched); otherwise it logs "abort" there. The
//!    first decision logged in the coordinator shard is the decision: a participant that
//!    recovers an undecided part logs "abort" there, and whichever came first wins.
//! 3. **Commit wait**, overlapped with the decision's replication: the client is answered only
//!    after `TT.after(s)`.
//! 4. **Apply.** The decision goes to every other part; each applies the writes at `s` (the
//!    keys were locked since the prepare, so no version lands between) and releases its locks.
//!    The client is not kept waiting for this: a read that reaches a part first waits on the
//!    lock for it.
//!
//! **Reads** of a locked key at a timestamp at or above its prepare timestamp wait for the
//! decision ([`Node::read_final`]); reads below it are final without waiting, since `s` is
//! at least the prepare timestamp.
//!
//! **Retries are exactly-once.** Attempt `k` of request `id` is `id/k`. Prepares and decisions
//! are idempotent by id, so a client that retries a request after an unknown outcome, at any
//! node, reaches the same decision (an earlier attempt's commit is found and reported).
//!
//! **Recovery.** A node leading a shard looks at its undecided parts every
//! [`RECOVER_EVERY`]; a part prepared more than [`RECOVER_AFTER`] ago (by its timestamp
//! against `TT.now().earliest`) takes the decision logged in the coordinator shard, logging
//! "abort" there first if there is none. So a coordinator that dies between the phases holds
//! its keys for a few seconds, not forever.

use super::server::{ROUTE_LIMIT, retry_at_leader, sleep_nonzero};
use super::*;
use crate::mvcc::Applied;

/// How often a shard's leader looks for undecided prepared parts.
pub const RECOVER_EVERY: Duration = Duration::from_millis(500);
/// A prepared part older than this (prepare timestamp against `TT.now().earliest`) is
/// resolved by its recovering leader: 5 s, above any coordinator's prepare-to-decision time in
/// the three-region topology (about 3.5 round trips of 200 ms).
pub const RECOVER_AFTER: Duration = Duration::from_secs(5);
/// Fresh attempts one coordinator run makes before it gives up on locked keys (the client may
/// retry the request; its next run skips the attempts already aborted).
const ATTEMPTS: u32 = 8;
/// Attempt numbers one run looks through, aborted ones included.
const MAX_ATTEMPT: u32 = 100_000;

/// The request id an attempt id `id/k` belongs to (ties between equal ages).
fn base_id(id: &str) -> &str {
    id.rsplit_once('/').map_or(id, |(b, _)| b)
}

/// A cross-shard transaction's outcome at one shard, as the wire says it.
fn reply_of(a: Applied) -> Result<pb::PrepareReply, Status> {
    let (state, ts, compares_ok, reads, detail) = match a {
        Applied::Prepared {
            ts,
            compares_ok,
            reads,
        } => (
            pb::TxnState::Prepared,
            Some(ts),
            compares_ok,
            reads,
            String::new(),
        ),
        Applied::Committed {
            ts,
            succeeded,
            reads,
        } => (
            pb::TxnState::Committed,
            Some(ts),
            succeeded,
            reads,
            String::new(),
        ),
        Applied::Locked { key, by, .. } => (
            pb::TxnState::Locked,
            None,
            false,
            vec![],
            format!("{key:?} is held by {by:?}"),
        ),
        Applied::Aborted => (pb::TxnState::Aborted, None, false, vec![], String::new()),
        Applied::Refused { why } => return Err(Status::internal(why)),
        other => {
            return Err(Status::internal(format!(
                "unexpected apply result {other:?}"
            )));
        }
    };
    Ok(pb::PrepareReply {
        state: state.into(),
        ts: ts.map(ts_to_pb),
        compares_ok,
        reads: reads.into_iter().map(value_to_pb).collect(),
        detail,
    })
}

/// Validates a prepare request (the same rules as a transaction's, plus an id).
pub fn validate_prepare(r: &pb::PrepareRequest) -> Result<(), Status> {
    if r.txn_id.is_empty() {
        return Err(Status::invalid_argument("a prepare needs a transaction id"));
    }
    validate_txn(&as_txn(r))
}

/// A prepare's part as a transaction request of its shard.
fn as_txn(r: &pb::PrepareRequest) -> pb::TxnRequest {
    pb::TxnRequest {
        request_id: r.txn_id.clone(),
        compares: r.compares.clone(),
        writes: r.writes.clone(),
        reads: r.reads.clone(),
        group: Some(r.group),
    }
}

impl Node {
    /// Waits for a proposed entry's result (bounded by [`WAIT_LIMIT`]).
    async fn applied(&self, rx: txn::Applying) -> Result<Applied, Status> {
        match tokio::time::timeout(WAIT_LIMIT, rx).await {
            Err(_) => Err(Status::unavailable(
                "not committed in time (outcome unknown; retry with the same request id)",
            )),
            Ok(Err(_)) => Err(Status::unavailable(
                "leadership lost while committing (outcome unknown; retry with the same request id)",
            )),
            Ok(Ok(Err(ClientWriteError::ForwardToLeader(f)))) => Err(self.not_leader(f.leader_id)),
            Ok(Ok(Err(e))) => Err(Status::internal(e.to_string())),
            Ok(Ok(Ok(resp))) => Ok(resp.data),
        }
    }

    /// Phase one at this shard's leader: logs the part at a timestamp above safe time.
    pub(super) async fn prepare(&self, r: pb::PrepareRequest) -> Result<pb::PrepareReply, Status> {
        validate_prepare(&r)?;
        if !self.is_leader() {
            return Err(self.not_leader(self.metrics().current_leader));
        }
        let (compares, writes) = txn::parts_of(&as_txn(&r));
        let priority = r.priority.as_ref().map(ts_from_pb).unwrap_or_default();
        for _ in 0..8 {
            let (s, rx) = self
                .propose_at_next_ts(|s| Command::Prepare {
                    txn: TxnCmd {
                        id: r.txn_id.clone(),
                        ts: s,
                        compares: compares.clone(),
                        writes: writes.clone(),
                        reads: r.reads.clone(),
                    },
                    coordinator: r.coordinator,
                    priority,
                })
                .await?;
            match self.applied(rx).await? {
                Applied::TooOld { safe } => {
                    tracing::debug!("prepare at {s:?} at or below safe time {safe:?}; again");
                    let mut last = self.propose.lock().await;
                    *last = (*last).max(safe);
                }
                Applied::Locked {
                    key,
                    by,
                    holder_priority,
                } if (priority, base_id(&r.txn_id)) <= (holder_priority, base_id(&by)) => {
                    // Wait-die: older than the holder (or an earlier attempt of this very
                    // transaction, whose abort is on its way), so wait for its decision and try
                    // again; a younger one is refused at once, below.
                    if self.wait_unlocked(&key).await.is_err() {
                        return reply_of(Applied::Locked {
                            key,
                            by,
                            holder_priority,
                        });
                    }
                }
                other => return reply_of(other),
            }
        }
        Err(Status::unavailable(
            "no prepare timestamp above safe time after 8 attempts",
        ))
    }

    /// Phase two at this shard's leader: logs the decision (the first one logged for an id
    /// wins; the reply is the outcome that stands).
    pub(super) async fn decide(&self, r: pb::DecideRequest) -> Result<pb::PrepareReply, Status> {
        if r.txn_id.is_empty() {
            return Err(Status::invalid_argument(
                "a decision needs a transaction id",
            ));
        }
        let commit = if r.commit {
            Some(
                r.ts.as_ref()
                    .map(ts_from_pb)
                    .ok_or_else(|| Status::invalid_argument("a commit needs its timestamp"))?,
            )
        } else {
            None
        };
        if !self.is_leader() {
            return Err(self.not_leader(self.metrics().current_leader));
        }
        let rx = self
            .raft
            .client_write_ff(Command::Decide {
                id: r.txn_id,
                commit,
                apply_writes: r.apply_writes,
            })
            .await
            .map_err(|e| Status::unavailable(format!("raft stopped: {e}")))?;
        reply_of(self.applied(rx).await?)
    }

    /// Waits until `key` is no longer held by a prepared transaction (refused after
    /// [`WAIT_LIMIT`], as `aborted`: the client may try again).
    pub(super) async fn wait_unlocked(&self, key: &str) -> Result<(), Status> {
        let mut rx = self.shared.safe.subscribe();
        let keys = [key.to_string()];
        let top = Ts {
            wall: i64::MAX,
            logical: u32::MAX,
        };
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            rx.borrow_and_update();
            if self.shared.read().mvcc.locked_at(&keys, top).is_none() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                return Err(Status::aborted(format!(
                    "{key:?} stayed held by a prepared transaction for {WAIT_LIMIT:?}"
                )));
            }
        }
    }
}

/// What the coordinator sends each shard in phase one.
struct Part {
    compares: Vec<pb::Compare>,
    writes: Vec<pb::Write>,
    reads: Vec<String>,
}

impl Server {
    /// `call` at shard `g`'s leader, wherever it is: here (no client), or over gRPC with a
    /// client to the leader (crossing to its region and back), following leader changes until
    /// [`ROUTE_LIMIT`].
    pub(super) async fn at_leader<Req, T, F, Fut>(
        &self,
        g: u32,
        req: Req,
        call: F,
    ) -> Result<T, Status>
    where
        Req: Clone,
        F: Fn(
            Arc<Node>,
            Req,
            Option<pb::store_client::StoreClient<tonic::transport::Channel>>,
        ) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let node = self.group(g)?.clone();
        let t0 = Instant::now();
        loop {
            let res = if node.is_leader() {
                call(node.clone(), req.clone(), None).await
            } else {
                match node.leader_client() {
                    Ok(c) => {
                        let delay = node.link_to_leader();
                        sleep_nonzero(delay).await;
                        let res = call(node.clone(), req.clone(), Some(c)).await;
                        sleep_nonzero(delay).await;
                        res
                    }
                    Err(e) => Err(e),
                }
            };
            match res {
                Err(s) if retry_at_leader(&s) && t0.elapsed() < ROUTE_LIMIT => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    async fn prepare_at(&self, r: pb::PrepareRequest) -> Result<pb::PrepareReply, Status> {
        self.at_leader(r.group, r, |node, r, remote| async move {
            match remote {
                None => node.prepare(r).await,
                Some(mut c) => c
                    .prepare(node.security.request(r))
                    .await
                    .map(|x| x.into_inner()),
            }
        })
        .await
    }

    async fn decide_at(&self, r: pb::DecideRequest) -> Result<pb::PrepareReply, Status> {
        self.at_leader(r.group, r, |node, r, remote| async move {
            match remote {
                None => node.decide(r).await,
                Some(mut c) => c
                    .decide(node.security.request(r))
                    .await
                    .map(|x| x.into_inner()),
            }
        })
        .await
    }

    /// A transaction across `groups` (sorted, more than one) by two-phase commit, coordinated
    /// here; see the module docs.
    #[allow(
        clippy::too_many_lines,
        reason = "the coordinator's protocol in order (prepare every part, decide in the coordinator shard with commit wait beside it, apply the decision everywhere, report): kept whole so it can be read against the module docs' steps."
    )]
    pub(super) async fn txn_cross(
        self: &Arc<Self>,
        r: pb::TxnRequest,
        groups: Vec<u32>,
    ) -> Result<pb::TxnReply, Status> {
        let first = self.groups[0].clone();
        let base = if r.request_id.is_empty() {
            first.request_id()
        } else {
            r.request_id.clone()
        };
        let shards = self.shards();
        let mut parts: BTreeMap<u32, Part> = groups
            .iter()
            .map(|g| {
                (
                    *g,
                    Part {
                        compares: vec![],
                        writes: vec![],
                        reads: vec![],
                    },
                )
            })
            .collect();
        for c in &r.compares {
            if let Some(p) = parts.get_mut(&shard_of(&c.key, shards)) {
                p.compares.push(c.clone());
            }
        }
        for w in &r.writes {
            if let Some(p) = parts.get_mut(&shard_of(&w.key, shards)) {
                p.writes.push(w.clone());
            }
        }
        for k in &r.reads {
            if let Some(p) = parts.get_mut(&shard_of(k, shards)) {
                p.reads.push(k.clone());
            }
        }
        let coord = groups[0];
        let t0 = Instant::now();
        // The transaction's age, kept across attempts so that it only gets older (wait-die).
        let priority = Ts {
            wall: first.tt.now().map_err(clock_err)?.earliest().as_nanos(),
            logical: 0,
        };
        let mut last_reason = String::new();
        let mut fresh = 0;
        for attempt in 0..MAX_ATTEMPT {
            if fresh == ATTEMPTS {
                break;
            }
            let id = format!("{base}/{attempt}");
            // An attempt an earlier run of this request already lost (this node holds a replica
            // of the coordinator shard, where the decision is): skip it without a round trip.
            // A replica that lags only costs the round trip below, which finds the same.
            if matches!(
                self.groups[coord as usize].shared.read().mvcc.decision(&id),
                Some(Applied::Aborted)
            ) {
                continue;
            }
            fresh += 1;
            // Phase one, every part at once.
            let mut set = tokio::task::JoinSet::new();
            for (g, p) in &parts {
                let me = self.clone();
                let req = pb::PrepareRequest {
                    group: *g,
                    txn_id: id.clone(),
                    compares: p.compares.clone(),
                    writes: p.writes.clone(),
                    reads: p.reads.clone(),
                    coordinator: coord,
                    priority: Some(ts_to_pb(priority)),
                };
                set.spawn(async move { (req.group, me.prepare_at(req).await) });
            }
            let mut replies: BTreeMap<u32, Result<pb::PrepareReply, Status>> = BTreeMap::new();
            while let Some(j) = set.join_next().await {
                if let Ok((g, res)) = j {
                    replies.insert(g, res);
                }
            }
            let prepared = replies.len() == parts.len()
                && replies.values().all(|x| {
                    x.as_ref().is_ok_and(|p| {
                        matches!(p.state(), pb::TxnState::Prepared | pb::TxnState::Committed)
                    })
                });
            last_reason = replies
                .iter()
                .filter_map(|(g, x)| match x {
                    Err(e) => Some(format!("shard {g}: {}", e.message())),
                    Ok(p) if p.state() == pb::TxnState::Locked => {
                        Some(format!("shard {g}: {}", p.detail))
                    }
                    Ok(p) if p.state() == pb::TxnState::Aborted => {
                        Some(format!("shard {g}: attempt {id} was aborted"))
                    }
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("; ");
            // Phase two: the decision, logged in the coordinator shard, commit wait beside it.
            let s = if prepared {
                let now = first.write_ts()?;
                replies
                    .values()
                    .filter_map(|x| x.as_ref().ok()?.ts.as_ref().map(ts_from_pb))
                    .fold(now, Ts::max)
            } else {
                Ts::default()
            };
            let apply_writes = prepared
                && replies
                    .values()
                    .all(|x| x.as_ref().is_ok_and(|p| p.compares_ok));
            let decide = pb::DecideRequest {
                group: coord,
                txn_id: id.clone(),
                commit: prepared,
                ts: prepared.then(|| ts_to_pb(s)),
                apply_writes,
            };
            let decided = async {
                let d = self.decide_at(decide).await;
                (d, t0.elapsed())
            };
            let wait = async {
                let w = if prepared {
                    first.after(s).await
                } else {
                    Ok(Duration::ZERO)
                };
                (w, t0.elapsed())
            };
            let ((decision, decided_at), (waited, waited_at)) = tokio::join!(decided, wait);
            let decision = decision.map_err(|e| {
                Status::unavailable(format!(
                    "no decision logged for {id}: {} (outcome unknown; retry with the same request id)",
                    e.message()
                ))
            })?;
            let committed = decision.state() == pb::TxnState::Committed;
            let commit_ts = decision.ts.as_ref().map(ts_from_pb).unwrap_or_default();
            // The decision to every other part, not waited for: a read of a part's keys waits
            // for it there (they stay locked until it lands), and a part that misses it is
            // recovered.
            for g in parts.keys().copied().filter(|g| *g != coord) {
                let me = self.clone();
                let req = pb::DecideRequest {
                    group: g,
                    txn_id: id.clone(),
                    commit: committed,
                    ts: committed.then(|| ts_to_pb(commit_ts)),
                    apply_writes: decision.compares_ok,
                };
                tokio::spawn(async move {
                    if let Err(e) = me.decide_at(req).await {
                        tracing::warn!(
                            "decision not applied in shard {g} yet ({}); recovery will",
                            e.message()
                        );
                    }
                });
            }
            if !committed {
                // Aborted: try again with a fresh attempt id after a short random pause, so
                // two transactions that locked each other out do not meet again at once.
                let pause = 5 + (realtime_ns().rem_euclid(20) as u64) * u64::from(fresh);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                continue;
            }
            let mut wait_ns = waited?.as_nanos() as i64;
            let mut waited_at = waited_at;
            if commit_ts != s {
                // An earlier run of this attempt committed at `commit_ts`.
                wait_ns += first.after(commit_ts).await?.as_nanos() as i64;
                waited_at = t0.elapsed();
            }
            let done = t0.elapsed();
            let mut reads: Vec<pb::KeyValue> = Vec::new();
            for k in &r.reads {
                let g = shard_of(k, shards);
                let from = if g == coord {
                    Some(&decision)
                } else {
                    replies.get(&g).and_then(|x| x.as_ref().ok())
                };
                if let Some(v) = from.and_then(|p| p.reads.iter().find(|v| v.key == *k)) {
                    reads.push(v.clone());
                }
            }
            return Ok(pb::TxnReply {
                succeeded: decision.compares_ok,
                commit_ts: Some(ts_to_pb(commit_ts)),
                reads,
                replicate_ns: decided_at.as_nanos() as i64,
                commit_wait_ns: wait_ns,
                exposed_wait_ns: waited_at.saturating_sub(decided_at).as_nanos() as i64,
                total_ns: done.as_nanos() as i64,
                leader: self.id,
                ts_retries: attempt,
                groups,
            });
        }
        Err(Status::aborted(format!(
            "cross-shard transaction not committed after {fresh} attempts: {last_reason}"
        )))
    }

    /// Resolves prepared parts whose coordinator has gone quiet, in every shard this node
    /// leads (see the module docs).
    pub(super) async fn recover(self: Arc<Self>) {
        loop {
            tokio::time::sleep(RECOVER_EVERY).await;
            let Ok(now) = self.groups[0].tt.now() else {
                continue;
            };
            let old = now.earliest().as_nanos() - RECOVER_AFTER.as_nanos() as i64;
            for node in &self.groups {
                if !node.is_leader() {
                    continue;
                }
                let stale: Vec<(String, Ts, u32)> = node
                    .shared
                    .read()
                    .mvcc
                    .prepared()
                    .into_iter()
                    .filter(|(_, ts, _)| ts.wall < old)
                    .collect();
                for (id, _, coord) in stale {
                    if let Err(e) = self.resolve(node, &id, coord).await {
                        tracing::warn!(
                            "prepared {id} in shard {} not resolved yet: {e}",
                            node.group
                        );
                    }
                }
            }
        }
    }

    /// Takes the coordinator shard's decision for `id` (logging an abort there if it has none)
    /// and logs it in `node`'s shard.
    async fn resolve(&self, node: &Arc<Node>, id: &str, coord: u32) -> Result<(), Status> {
        let known = self.group(coord)?.shared.read().mvcc.decision(id).cloned();
        let decision = match known {
            Some(Applied::Committed { ts, succeeded, .. }) => (true, ts, succeeded),
            Some(_) => (false, Ts::default(), false),
            None => {
                tracing::warn!(
                    "prepared {id} in shard {} has no decision; aborting it in shard {coord}",
                    node.group
                );
                let d = self
                    .decide_at(pb::DecideRequest {
                        group: coord,
                        txn_id: id.to_string(),
                        commit: false,
                        ts: None,
                        apply_writes: false,
                    })
                    .await?;
                let committed = d.state() == pb::TxnState::Committed;
                (
                    committed,
                    d.ts.as_ref().map(ts_from_pb).unwrap_or_default(),
                    d.compares_ok,
                )
            }
        };
        if node.group == coord {
            return Ok(());
        }
        node.decide(pb::DecideRequest {
            group: node.group,
            txn_id: id.to_string(),
            commit: decision.0,
            ts: decision.0.then(|| ts_to_pb(decision.1)),
            apply_writes: decision.2,
        })
        .await
        .map(|_| ())
    }
}
