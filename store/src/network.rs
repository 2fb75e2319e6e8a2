//! The Raft transport between nodes, over tonic: [`Network`] makes a [`Conn`] per peer, with
//! one method per RPC (openraft's `RaftNetwork`); [`RaftService`] answers them. Payloads are
//! openraft's messages as JSON. Partitions are injected here: a blocked peer is refused on both
//! sides. Regions are simulated here too: with a [`Topology`], every RPC to a peer in another
//! region waits the link's one-way delay (plus jitter) before it is sent and again before its
//! answer is read, so a round trip costs what it would between the two regions.

use crate::raft::{NodeId, Raft, TypeConfig};
use crate::region::{Link, Topology};
use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use ttproto::store as pb;

/// The set of peers this node refuses to talk to (fault injection for partition tests).
pub type Blocked = Arc<RwLock<HashSet<NodeId>>>;

/// Makes gRPC clients to peers.
#[derive(Clone)]
pub struct Network {
    /// This node.
    pub id: NodeId,
    /// The shard (Raft group) this network carries.
    pub group: u32,
    /// Peers cut off by fault injection.
    pub blocked: Blocked,
    /// The CA trusted for peers' TLS and the cluster token sent with every Raft RPC.
    pub security: ttsys::mgmt::ClientSecurity,
    /// Where every node is and the delays between regions (`None`: no added delay).
    pub topology: Option<Arc<Topology>>,
}

/// A lazily connected gRPC client to one peer.
pub struct Conn {
    from: NodeId,
    group: u32,
    target: NodeId,
    client: pb::raft_client::RaftClient<tonic::transport::Channel>,
    blocked: Blocked,
    security: ttsys::mgmt::ClientSecurity,
    /// The delay of each message to the target and back.
    link: Link,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Conn;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Conn {
        let channel = self
            .security
            .endpoint(&node.addr)
            .unwrap_or_else(|_| tonic::transport::Endpoint::from_static("http://invalid.invalid:1"))
            .connect_timeout(std::time::Duration::from_millis(500))
            .connect_lazy();
        Conn {
            from: self.id,
            group: self.group,
            target,
            client: pb::raft_client::RaftClient::new(channel),
            blocked: self.blocked.clone(),
            security: self.security.clone(),
            link: self
                .topology
                .as_ref()
                .map(|t| t.node_link(self.id, target))
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

/// An RPC's error, as openraft's network expects it.
type RpcErr<E> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

impl Conn {
    /// One message's trip across the link to the target (nothing within a region).
    async fn cross(&self) {
        if !self.link.is_zero() {
            tokio::time::sleep(self.link.random_delay()).await;
        }
    }

    /// The request for one RPC: refused at once when the target is partitioned away; the
    /// payload is `req` as JSON, the deadline openraft's hard TTL.
    // The error is openraft's `RPCError`, the type `RaftNetwork` requires: not ours to shrink.
    #[allow(clippy::result_large_err)]
    fn request<Req: Serialize, E: std::error::Error>(
        &self,
        req: &Req,
        option: &RPCOption,
    ) -> Result<tonic::Request<pb::RaftMessage>, RpcErr<E>> {
        if self
            .blocked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&self.target)
        {
            return Err(RPCError::Unreachable(Unreachable::new(&Msg(format!(
                "node {} is partitioned away (fault injection)",
                self.target
            )))));
        }
        let payload =
            serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = self.security.request(pb::RaftMessage {
            from: self.from,
            payload,
            group: self.group,
        });
        request.set_timeout(option.hard_ttl());
        Ok(request)
    }

    /// The answer of one RPC: a transport failure makes the target unreachable; the payload is
    /// the remote Raft's result as JSON.
    #[allow(clippy::result_large_err)]
    fn answer<Resp: for<'a> Deserialize<'a>, E: std::error::Error + for<'a> Deserialize<'a>>(
        &self,
        reply: Result<tonic::Response<pb::RaftMessage>, tonic::Status>,
    ) -> Result<Resp, RpcErr<E>> {
        let reply = reply.map_err(|s| {
            RPCError::Unreachable(Unreachable::new(&Msg(format!(
                "{}: {}",
                self.target,
                s.message()
            ))))
        })?;
        let res: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(&reply.into_inner().payload)
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        res.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        let request = self.request(&rpc, &option)?;
        self.cross().await;
        let reply = self.client.append_entries(request).await;
        self.cross().await;
        self.answer(reply)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        let request = self.request(&rpc, &option)?;
        self.cross().await;
        let reply = self.client.install_snapshot(request).await;
        self.cross().await;
        self.answer(reply)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        let request = self.request(&rpc, &option)?;
        self.cross().await;
        let reply = self.client.vote(request).await;
        self.cross().await;
        self.answer(reply)
    }
}

/// The receiving side of the Raft transport: one Raft per shard, picked by the message's group.
pub struct RaftService {
    /// The local Rafts, by group.
    pub rafts: Vec<Raft>,
    /// Peers cut off by fault injection.
    pub blocked: Blocked,
}

impl RaftService {
    /// The message's group's Raft, once its sender is admitted.
    fn admit(&self, m: &pb::RaftMessage) -> Result<&Raft, tonic::Status> {
        let from = m.from;
        let raft = self.rafts.get(m.group as usize).ok_or_else(|| {
            tonic::Status::invalid_argument(format!(
                "no Raft group {} here ({} groups)",
                m.group,
                self.rafts.len()
            ))
        })?;
        if self
            .blocked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&from)
        {
            return Err(tonic::Status::unavailable(format!(
                "node {from} is partitioned away (fault injection)"
            )));
        }
        Ok(raft)
    }
}

/// A Raft message's payload (JSON) as the request type an RPC expects; malformed bytes are an
/// `invalid_argument`, never a panic.
pub fn decode<T: for<'a> Deserialize<'a>>(m: &pb::RaftMessage) -> Result<T, tonic::Status> {
    serde_json::from_slice(&m.payload)
        .map_err(|e| tonic::Status::invalid_argument(format!("bad Raft message: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Result<tonic::Response<pb::RaftMessage>, tonic::Status> {
    let payload = serde_json::to_vec(v).map_err(|e| tonic::Status::internal(e.to_string()))?;
    Ok(tonic::Response::new(pb::RaftMessage {
        from: 0,
        payload,
        group: 0,
    }))
}

#[tonic::async_trait]
impl pb::raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        req: tonic::Request<pb::RaftMessage>,
    ) -> Result<tonic::Response<pb::RaftMessage>, tonic::Status> {
        let m = req.into_inner();
        let raft = self.admit(&m)?;
        let r: AppendEntriesRequest<TypeConfig> = decode(&m)?;
        encode(&raft.append_entries(r).await)
    }

    async fn vote(
        &self,
        req: tonic::Request<pb::RaftMessage>,
    ) -> Result<tonic::Response<pb::RaftMessage>, tonic::Status> {
        let m = req.into_inner();
        let raft = self.admit(&m)?;
        let r: VoteRequest<NodeId> = decode(&m)?;
        encode(&raft.vote(r).await)
    }

    async fn install_snapshot(
        &self,
        req: tonic::Request<pb::RaftMessage>,
    ) -> Result<tonic::Response<pb::RaftMessage>, tonic::Status> {
        let m = req.into_inner();
        let raft = self.admit(&m)?;
        let r: InstallSnapshotRequest<TypeConfig> = decode(&m)?;
        encode(&raft.install_snapshot(r).await)
    }
}
