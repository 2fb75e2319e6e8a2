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
            group: self.group,
            shards: 0,
            prepared: d.mvcc.prepared().len() as u64,
        }
    }

    async fn change_members(
        &self,
        add: Option<(NodeId, String)>,
        remove: Option<NodeId>,
        learner: bool,
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
            let resp = self
                .raft
                .add_learner(id, BasicNode::new(addr), true)
                .await
                .map_err(map)?;
            if learner {
                return Ok(members_reply(resp.membership.as_ref()));
            }
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
        Ok(members_reply(resp.membership.as_ref()))
    }
}

/// A membership as the wire's member list.
fn members_reply(m: Option<&openraft::Membership<NodeId, BasicNode>>) -> pb::MembershipReply {
    let voters: BTreeSet<NodeId> = m.map(|m| m.voter_ids().collect()).unwrap_or_default();
    pb::MembershipReply {
        members: m
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
    }
}

/// The `Store` gRPC service over a node process.
pub(super) struct Svc(pub(super) Arc<Server>);

impl Svc {
    /// Membership changes apply to one Raft group; in a sharded cluster they would have to be
    /// made in every group, which is not built yet.
    fn one_group(&self) -> Result<&Arc<Node>, Status> {
        if self.0.shards() > 1 {
            return Err(Status::unimplemented(
                "membership changes on a sharded cluster are not supported yet (each shard's group would need the change)",
            ));
        }
        Ok(&self.0.groups[0])
    }
}

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
        r: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        let mut s = self.0.group(r.into_inner().group)?.status();
        s.shards = self.0.shards();
        Ok(Response::new(s))
    }

    async fn add_node(
        &self,
        r: Request<pb::AddNodeRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        let r = r.into_inner();
        self.one_group()?
            .change_members(Some((r.id, r.addr)), None, r.learner)
            .await
            .map(Response::new)
    }

    async fn remove_node(
        &self,
        r: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        self.one_group()?
            .change_members(None, Some(r.into_inner().id), false)
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
        let r = r.into_inner();
        let node = self.0.group(r.group)?;
        let at =
            r.at.as_ref()
                .map(ts_from_pb)
                .ok_or_else(|| Status::invalid_argument("close needs `at`"))?;
        if !node.is_leader() {
            return Err(node.not_leader(node.metrics().current_leader));
        }
        // A replica whose clock is far ahead must not drag every future timestamp with it.
        let now = node.clock_ts()?;
        if at.wall > now.wall.saturating_add(CLOSE_AHEAD_LIMIT_NS) {
            return Err(Status::invalid_argument(format!(
                "close at {} is more than 1 s ahead of the leader's clock {}",
                at.wall, now.wall
            )));
        }
        node.request_close(at);
        Ok(Response::new(pb::CloseReply {}))
    }

    async fn prepare(
        &self,
        r: Request<pb::PrepareRequest>,
    ) -> Result<Response<pb::PrepareReply>, Status> {
        let r = r.into_inner();
        self.0
            .owns(r.group, server::keys_of(&r.compares, &r.writes, &r.reads))?;
        self.0.group(r.group)?.prepare(r).await.map(Response::new)
    }

    async fn decide(
        &self,
        r: Request<pb::DecideRequest>,
    ) -> Result<Response<pb::PrepareReply>, Status> {
        let r = r.into_inner();
        self.0.group(r.group)?.decide(r).await.map(Response::new)
    }
}
