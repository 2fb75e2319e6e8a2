//! Reads, one function per consistency level: strong (TrueTime: wait for safe time and for
//! `TT.after` of the newest version; HLC: at the leader, restarting past values inside the
//! uncertainty window), snapshot, bounded staleness, and session.

use super::*;

/// Checks a read's keys and consistency level, before anything waits.
pub(super) fn validate_read(r: &pb::ReadRequest) -> Result<pb::Consistency, Status> {
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
    pb::Consistency::try_from(r.consistency)
        .map_err(|_| Status::invalid_argument(format!("unknown consistency {}", r.consistency)))
}

impl Node {
    /// The reply for `values` read at `at` by node `served_by`, started at `t0`: the session
    /// token covers the newest version returned, and the staleness bound is
    /// `TT.now().latest − at` as the reply leaves.
    pub(super) fn read_reply(
        &self,
        values: Vec<Value>,
        at: Ts,
        restarts: u32,
        t0: Instant,
        served_by: NodeId,
    ) -> pb::ReadReply {
        let newest = values
            .iter()
            .filter_map(|v| v.version)
            .max()
            .unwrap_or_default();
        pb::ReadReply {
            values: values.into_iter().map(value_to_pb).collect(),
            read_ts: Some(ts_to_pb(at)),
            restarts,
            wait_ns: t0.elapsed().as_nanos() as i64,
            served_by,
            session: Some(ts_to_pb(at.max(newest))),
            staleness_bound_ns: self
                .tt
                .now()
                .map_or(-1, |i| i.latest().as_nanos().saturating_sub(at.wall).max(0)),
        }
    }

    /// `keys` as of `at` (safe time must already have reached it), once none of them is held
    /// by a prepared cross-shard transaction whose prepare timestamp is at or below `at` — its
    /// commit may land at or below `at`, so the read waits for the decision (Spanner's readers
    /// wait on prepared writes the same way). Refused after [`WAIT_LIMIT`].
    pub(super) async fn read_final(&self, keys: &[String], at: Ts) -> Result<Vec<Value>, Status> {
        let mut rx = self.shared.safe.subscribe();
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            rx.borrow_and_update();
            let held = {
                let d = self.shared.read();
                match d.mvcc.locked_at(keys, at) {
                    None => return Ok(keys.iter().map(|k| d.mvcc.read_at(k, at)).collect()),
                    Some(h) => h,
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                return Err(Status::unavailable(format!(
                    "node {}: key {:?} is held by the prepared transaction {:?}, undecided after {WAIT_LIMIT:?}",
                    self.id, held.0, held.1
                )));
            }
        }
    }

    /// Refuses a snapshot timestamp more than 1 s in the future or before the GC horizon.
    pub(super) fn check_snapshot_ts(&self, at: Ts) -> Result<(), Status> {
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
        Ok(())
    }

    /// Serves a read at the requested consistency.
    pub async fn read(&self, r: pb::ReadRequest) -> Result<pb::ReadReply, Status> {
        self.serving()?;
        let consistency = validate_read(&r)?;
        let t0 = Instant::now();
        let (at, values, restarts) = match consistency {
            pb::Consistency::Unspecified | pb::Consistency::Strong => match self.mode {
                Mode::Truetime => {
                    let (at, values) = self.read_strong_truetime(&r.keys).await?;
                    (at, values, 0)
                }
                Mode::Hlc => match self.read_strong_hlc(&r).await? {
                    HlcRead::Local {
                        at,
                        values,
                        restarts,
                    } => (at, values, restarts),
                    HlcRead::Forwarded(reply) => return Ok(reply),
                },
            },
            pb::Consistency::Snapshot => {
                let (at, values) = self.read_snapshot(&r).await?;
                (at, values, 0)
            }
            pb::Consistency::BoundedStaleness => {
                let (at, values) = self.read_bounded_staleness(&r).await?;
                (at, values, 0)
            }
            pb::Consistency::Session => {
                let token = r.session.as_ref().map(ts_from_pb).unwrap_or_default();
                self.wait_safe(token).await?;
                let at = (*self.shared.safe.borrow()).max(token);
                (at, self.read_final(&r.keys, at).await?, 0)
            }
        };
        Ok(self.read_reply(values, at, restarts, t0, self.id))
    }

    /// Strong, TrueTime mode: read at `TT.now().latest` once safe time reaches it; never hand
    /// out a version before its commit time has certainly passed.
    async fn read_strong_truetime(&self, keys: &[String]) -> Result<(Ts, Vec<Value>), Status> {
        let at = self.clock_ts()?;
        self.wait_safe(at).await?;
        let values = self.read_final(keys, at).await?;
        if let Some(newest) = values.iter().filter_map(|v| v.version).max() {
            self.after(newest).await?;
        }
        Ok((at, values))
    }

    /// Strong, HLC mode: a follower picks the timestamp and forwards to the leader (which has
    /// every acknowledged write); the leader restarts the read past any value inside the
    /// uncertainty window (`max-offset`), which may have been written before the read began.
    async fn read_strong_hlc(&self, r: &pb::ReadRequest) -> Result<HlcRead, Status> {
        if !self.is_leader() {
            let mut fwd = r.clone();
            fwd.at = Some(ts_to_pb(self.clock_ts()?));
            let mut leader = self.leader_client()?;
            let reply = leader.read(fwd).await?.into_inner();
            if let Some(t) = &reply.read_ts {
                let _ = self.hlc.update(ts_from_pb(t), None);
            }
            return Ok(HlcRead::Forwarded(reply));
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
        let mut restarts = 0;
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
                    restarts += 1;
                    at = v;
                }
                None => break,
            }
        }
        Ok(HlcRead::Local {
            at,
            values: self.read_final(&r.keys, at).await?,
            restarts,
        })
    }

    /// Snapshot: at the given timestamp, no more than 1 s ahead of now and not before the GC
    /// horizon, once safe time reaches it.
    async fn read_snapshot(&self, r: &pb::ReadRequest) -> Result<(Ts, Vec<Value>), Status> {
        let at =
            r.at.as_ref()
                .map(ts_from_pb)
                .ok_or_else(|| Status::invalid_argument("a snapshot read needs `at`"))?;
        self.check_snapshot_ts(at)?;
        self.wait_safe(at).await?;
        Ok((at, self.read_final(&r.keys, at).await?))
    }

    /// Bounded staleness: at this node's safe time, once it is within `max_staleness_ns` of
    /// `TT.now().earliest`; refused after the wait limit.
    async fn read_bounded_staleness(
        &self,
        r: &pb::ReadRequest,
    ) -> Result<(Ts, Vec<Value>), Status> {
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
                return Ok((safe, self.read_final(&r.keys, safe).await?));
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
}

/// A strong read in HLC mode: served here, or forwarded to the leader.
enum HlcRead {
    Local {
        at: Ts,
        values: Vec<Value>,
        restarts: u32,
    },
    Forwarded(pb::ReadReply),
}
