//! A client for the store: finds the leader, follows redirects, retries through elections and
//! dead nodes with the same request id (so a retried transaction applies at most once), and
//! says clearly when an outcome is unknown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;
use tonic::Code;
use tonic::transport::Channel;
use ttproto::store as pb;

/// Client errors.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The request itself is wrong (bad key, empty transaction, …); retrying will not help.
    #[error("rejected: {0}")]
    Rejected(String),
    /// No node could complete the request in time. For a transaction the outcome is
    /// **unknown**: it may have committed (a retry with the same request id is safe).
    #[error("unavailable after {tries} attempts over {elapsed:?}: {last}")]
    Unavailable {
        /// Attempts made.
        tries: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last error seen.
        last: String,
    },
}

/// A refusal no retry can change: a bad request, or a missing or wrong credential.
fn refused(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        Code::InvalidArgument | Code::Unauthenticated | Code::PermissionDenied
    )
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A role's name in status output (`leader`, `follower`, …).
pub fn role_name(r: pb::Role) -> &'static str {
    match r {
        pb::Role::Unspecified => "unknown",
        pb::Role::Learner => "learner",
        pb::Role::Follower => "follower",
        pb::Role::Candidate => "candidate",
        pb::Role::Leader => "leader",
        pb::Role::Shutdown => "shutdown",
    }
}

/// A fresh request id (unique across processes on a host and across restarts).
pub fn new_request_id() -> String {
    format!(
        "{}-{}-{}",
        std::process::id(),
        crate::node::realtime_ns(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    )
}

/// A client of one cluster.
#[derive(Clone)]
pub struct Client {
    addrs: Vec<String>,
    conns: HashMap<String, pb::store_client::StoreClient<Channel>>,
    leader: Option<String>,
    /// How long one request may take, retries included.
    pub deadline: Duration,
    /// Per-attempt timeout.
    pub attempt_timeout: Duration,
    /// The CA trusted for the nodes' TLS and the cluster token sent with state-changing calls.
    security: ttsys::mgmt::ClientSecurity,
    /// The delay from this client's region to each node (by address); empty: none.
    links: HashMap<String, crate::region::Link>,
    /// Nodes this client cannot reach (fault injection: its region is cut off from theirs),
    /// shared by its clones.
    cut: std::sync::Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
}

impl Client {
    /// A plaintext client without the cluster token, for the nodes at `addrs` (`host:port`):
    /// it can read and ask status; writes, membership and fault injection are refused.
    pub fn new(addrs: &[String]) -> Client {
        Client::with_security(addrs, ttsys::mgmt::ClientSecurity::none())
    }

    /// A client for the nodes at `addrs` that trusts `security.ca` (TLS) and sends
    /// `security.token` with every state-changing call.
    pub fn with_security(addrs: &[String], security: ttsys::mgmt::ClientSecurity) -> Client {
        Client {
            addrs: addrs.to_vec(),
            conns: HashMap::new(),
            leader: None,
            deadline: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(4),
            security,
            links: HashMap::new(),
            cut: Default::default(),
        }
    }

    /// Cuts this client (and its clones) off from the nodes at `addrs`, replacing any earlier
    /// cut; an empty list heals. Requests to a cut node fail at once, as if the network
    /// dropped them, and the client moves on as it does from a dead node.
    pub fn cut_off(&self, addrs: &[String]) {
        *self.cut.write().unwrap_or_else(|e| e.into_inner()) = addrs.iter().cloned().collect();
    }

    fn is_cut(&self, addr: &str) -> bool {
        self.cut
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(addr)
    }

    /// This client placed in `region` of `topology`: every request to a node in another region
    /// (and its answer) waits the link's delay. `nodes` are `(node id, address)`.
    pub fn in_region(
        mut self,
        topology: &crate::region::Topology,
        region: &str,
        nodes: &[(crate::raft::NodeId, String)],
    ) -> Client {
        // Its own fault-injection state: a region's clients are cut off together, not with
        // the client they were made from.
        self.cut = Default::default();
        self.links = nodes
            .iter()
            .filter_map(|(id, addr)| {
                let r = topology.region_of(*id)?;
                Some((addr.clone(), topology.link(region, r)))
            })
            .collect();
        self
    }

    /// One message's trip between this client and the node at `addr`.
    async fn cross(&self, addr: &str) {
        if let Some(l) = self.links.get(addr).filter(|l| !l.is_zero()) {
            tokio::time::sleep(l.random_delay()).await;
        }
    }

    /// The node addresses.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    fn conn(&mut self, addr: &str) -> Result<pb::store_client::StoreClient<Channel>, ClientError> {
        if let Some(c) = self.conns.get(addr) {
            return Ok(c.clone());
        }
        let ch = self
            .security
            .endpoint(addr)
            .map_err(|e| ClientError::Rejected(e.to_string()))?
            .connect_timeout(Duration::from_millis(500))
            .connect_lazy();
        let c = pb::store_client::StoreClient::new(ch);
        self.conns.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Runs a transaction at the leader. Fills in a request id if there is none, and keeps it
    /// across retries.
    pub async fn txn(&mut self, mut req: pb::TxnRequest) -> Result<pb::TxnReply, ClientError> {
        if req.request_id.is_empty() {
            req.request_id = new_request_id();
        }
        let t0 = Instant::now();
        let mut tries = 0;
        let mut i = 0usize;
        let mut last = String::new();
        while t0.elapsed() < self.deadline {
            let addr = match &self.leader {
                Some(l) => l.clone(),
                None => {
                    i += 1;
                    self.addrs[i % self.addrs.len()].clone()
                }
            };
            tries += 1;
            if self.is_cut(&addr) {
                last = format!("{addr}: cut off (fault injection)");
                self.leader = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let mut c = self.conn(&addr)?;
            let mut r = self.security.request(req.clone());
            r.set_timeout(self.attempt_timeout);
            self.cross(&addr).await;
            let res = c.txn(r).await;
            self.cross(&addr).await;
            match res {
                Ok(reply) => {
                    self.leader = Some(addr);
                    return Ok(reply.into_inner());
                }
                Err(s) => {
                    last = format!("{addr}: {}", s.message());
                    if refused(&s) {
                        return Err(ClientError::Rejected(s.message().to_string()));
                    }
                    self.leader = redirect(&s);
                    if self.leader.is_none() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
        Err(ClientError::Unavailable {
            tries,
            elapsed: t0.elapsed(),
            last,
        })
    }

    /// Reads, preferring node `prefer` (an index into the addresses) and moving to the next
    /// node when one cannot serve.
    pub async fn read(
        &mut self,
        prefer: usize,
        req: pb::ReadRequest,
    ) -> Result<pb::ReadReply, ClientError> {
        let t0 = Instant::now();
        let mut tries = 0;
        let mut last = String::new();
        let mut i = prefer;
        while t0.elapsed() < self.deadline {
            let addr = self.addrs[i % self.addrs.len()].clone();
            tries += 1;
            if self.is_cut(&addr) {
                last = format!("{addr}: cut off (fault injection)");
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let mut c = self.conn(&addr)?;
            let mut r = tonic::Request::new(req.clone());
            r.set_timeout(self.attempt_timeout);
            self.cross(&addr).await;
            let res = c.read(r).await;
            self.cross(&addr).await;
            match res {
                Ok(reply) => return Ok(reply.into_inner()),
                Err(s) => {
                    last = format!("{addr}: {}", s.message());
                    if s.code() == Code::InvalidArgument {
                        return Err(ClientError::Rejected(s.message().to_string()));
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Err(ClientError::Unavailable {
            tries,
            elapsed: t0.elapsed(),
            last,
        })
    }

    /// One node's status (of its first shard's replica).
    pub async fn status(&mut self, addr: &str) -> Result<pb::StatusReply, ClientError> {
        self.group_status(addr, 0).await
    }

    /// One node's status of its replica of shard `group`.
    pub async fn group_status(
        &mut self,
        addr: &str,
        group: u32,
    ) -> Result<pb::StatusReply, ClientError> {
        let mut c = self.conn(addr)?;
        let mut r = tonic::Request::new(pb::StatusRequest { group });
        r.set_timeout(Duration::from_secs(2));
        c.status(r)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| ClientError::Unavailable {
                tries: 1,
                elapsed: Duration::ZERO,
                last: format!("{addr}: {}", s.message()),
            })
    }

    /// The current leader's address, asking every node until one knows.
    pub async fn find_leader(&mut self) -> Result<String, ClientError> {
        let t0 = Instant::now();
        let mut last = String::from("no node answered");
        while t0.elapsed() < self.deadline {
            for a in self.addrs.clone() {
                match self.status(&a).await {
                    Ok(s)
                        if s.leader != 0
                            && !s.leader_addr.is_empty()
                            && s.role() == pb::Role::Leader =>
                    {
                        self.leader = Some(a.clone());
                        return Ok(a);
                    }
                    Ok(s) => {
                        last = format!("{a}: role {}, leader {}", role_name(s.role()), s.leader)
                    }
                    Err(e) => last = e.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ClientError::Unavailable {
            tries: 0,
            elapsed: t0.elapsed(),
            last,
        })
    }

    /// Adds (`Some(addr)`) or removes a voter, at the leader.
    pub async fn membership(
        &mut self,
        id: u64,
        add: Option<String>,
    ) -> Result<pb::MembershipReply, ClientError> {
        self.change(id, add, false).await
    }

    /// Adds a learner (it replicates and serves reads, but does not vote), at the leader.
    pub async fn add_learner(
        &mut self,
        id: u64,
        addr: String,
    ) -> Result<pb::MembershipReply, ClientError> {
        self.change(id, Some(addr), true).await
    }

    async fn change(
        &mut self,
        id: u64,
        add: Option<String>,
        learner: bool,
    ) -> Result<pb::MembershipReply, ClientError> {
        let t0 = Instant::now();
        let mut last = String::new();
        let mut tries = 0;
        while t0.elapsed() < self.deadline {
            let leader = self.find_leader().await?;
            let mut c = self.conn(&leader)?;
            tries += 1;
            let res = match &add {
                Some(addr) => {
                    c.add_node(self.security.request(pb::AddNodeRequest {
                        id,
                        addr: addr.clone(),
                        learner,
                    }))
                    .await
                }
                None => {
                    c.remove_node(self.security.request(pb::RemoveNodeRequest { id }))
                        .await
                }
            };
            match res {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) if refused(&s) || s.code() == Code::NotFound => {
                    return Err(ClientError::Rejected(s.message().to_string()));
                }
                Err(s) => {
                    last = s.message().to_string();
                    self.leader = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        Err(ClientError::Unavailable {
            tries,
            elapsed: t0.elapsed(),
            last,
        })
    }

    /// Sets the fault-injection block list on the node at `addr`.
    pub async fn partition(
        &mut self,
        addr: &str,
        blocked: Vec<u64>,
    ) -> Result<Vec<u64>, ClientError> {
        let mut c = self.conn(addr)?;
        c.partition(self.security.request(pb::PartitionRequest { blocked }))
            .await
            .map(|r| r.into_inner().blocked)
            .map_err(|s| ClientError::Unavailable {
                tries: 1,
                elapsed: Duration::ZERO,
                last: format!("{addr}: {}", s.message()),
            })
    }
}

/// The leader address a "not the leader" error points at.
fn redirect(s: &tonic::Status) -> Option<String> {
    if s.code() != Code::FailedPrecondition {
        return None;
    }
    s.metadata()
        .get("x-leader-addr")
        .and_then(|v| v.to_str().ok())
        .filter(|a| !a.is_empty())
        .map(str::to_string)
}
