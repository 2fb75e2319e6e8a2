//! The node's gRPC face: status, membership changes, and the `Store` service.

use super::*;

/// openraft's server state as the wire's role (every state named: a new one is a compile
/// error here, not a string nobody matches).
fn role_of(s: ServerState) -> pb::Role {
    match s {
        ServerState::Learner => pb::Role::Learner,
        ServerState::Follower => pb::Role::Follower,
        ServerState::Candidate => pb::Role::Candidate,
        ServerState::Leader => pb::Role::Leader,
        ServerState::Shutdown => pb::Role::Shutdown,
    }
}

impl Node {
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
            role: role_of(m.state).into(),
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
            quarantined: self.quarantine().unwrap_or_default(),
            max_epsilon_ns: self.max_epsilon.as_nanos(),
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

/// The `Store` gRPC service over a node.
pub(super) struct Svc(pub(super) Arc<Node>);

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
