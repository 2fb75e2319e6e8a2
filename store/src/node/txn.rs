//! Transactions: validation, the leader's timestamp rule and commit wait.

use super::*;

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

/// A request's compares and writes as the state machine's.
pub(super) fn parts_of(r: &pb::TxnRequest) -> (Vec<Compare>, Vec<Write>) {
    let compares = r
        .compares
        .iter()
        .map(|c| Compare {
            key: c.key.clone(),
            version: c.version.as_ref().map(ts_from_pb),
        })
        .collect();
    let writes = r
        .writes
        .iter()
        .map(|w| Write {
            key: w.key.clone(),
            value: w.value.clone(),
        })
        .collect();
    (compares, writes)
}

/// The receiving end of a proposed entry's result.
pub(super) type Applying = tokio::sync::oneshot::Receiver<
    Result<
        openraft::raft::ClientWriteResponse<crate::raft::TypeConfig>,
        ClientWriteError<NodeId, BasicNode>,
    >,
>;

impl Node {
    /// Proposes the command `make(s)` at the next timestamp `s = max(write_ts, previous + 1,
    /// safe + 1)`, chosen and handed to Raft under one mutex so log order is timestamp order.
    pub(super) async fn propose_at_next_ts(
        &self,
        make: impl FnOnce(Ts) -> Command,
    ) -> Result<(Ts, Applying), Status> {
        let mut last = self.propose.lock().await;
        let safe = self.shared.read().mvcc.safe();
        let s = self.write_ts()?.max(last.next()).max(safe.next());
        *last = s;
        let rx = self
            .raft
            .client_write_ff(make(s))
            .await
            .map_err(|e| Status::unavailable(format!("raft stopped: {e}")))?;
        Ok((s, rx))
    }

    /// Executes a transaction (leader only).
    #[allow(
        clippy::too_many_lines,
        reason = "the leader's commit protocol in order (choose s under the mutex, propose, re-propose below safe time, commit wait beside replication): one sequence, kept whole so the ordering argument in the module docs can be read against it."
    )]
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
        let (compares, writes) = parts_of(&r);
        let t0 = Instant::now();
        for attempt in 0..8u32 {
            let (s, rx) = self
                .propose_at_next_ts(|s| {
                    Command::Txn(TxnCmd {
                        id: id.clone(),
                        ts: s,
                        compares: compares.clone(),
                        writes: writes.clone(),
                        reads: r.reads.clone(),
                    })
                })
                .await?;
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
                        groups: vec![self.group],
                    });
                }
                crate::mvcc::Applied::Locked { key, by, .. } => {
                    tracing::debug!("{key:?} is held by the prepared transaction {by:?}; waiting");
                    self.wait_unlocked(&key).await?;
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
            "no timestamp above safe time (or the keys stayed locked) after 8 attempts; retry",
        ))
    }
}
