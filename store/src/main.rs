//! `ttstore`: the demo store — run nodes or a local cluster, and talk to it. The command line
//! only (each subcommand's options, the dispatch, the output forms); the store is the library.
//!
//! ```text
//! ttstore cluster --dir /tmp/ttstore             # three nodes on 127.0.0.1:7301-7303
//! export TTSTORE_TOKEN_FILE=/tmp/ttstore/token     # the cluster token it wrote (writes need it)
//! ttstore put k v
//! ttstore get k --consistency strong --json
//! ttstore txn --if k=absent --put k=v --read j
//! ttstore status
//! ```

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use ttproto::store as pb;
use ttstore::client::Client;
use ttstore::cluster::{ClusterConfig, LocalCluster};
use ttstore::node::{ClockSpec, Mode, NodeOptions, Server};

const DEFAULT_CLUSTER: &str = "127.0.0.1:7301,127.0.0.1:7302,127.0.0.1:7303";

#[derive(Parser)]
#[command(
    version,
    about = "Replicated MVCC key-value store with TrueTime commit-wait"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Level {
    Strong,
    Snapshot,
    BoundedStaleness,
    Session,
}

#[derive(clap::Args)]
struct Target {
    /// Node addresses (comma-separated).
    #[arg(long, env = "TTSTORE_CLUSTER", default_value = DEFAULT_CLUSTER, value_delimiter = ',')]
    cluster: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    creds: Creds,
}

/// A client's credentials.
#[derive(clap::Args)]
struct Creds {
    /// The cluster token (mode 0600), sent with writes, membership changes and fault injection;
    /// `ttstore cluster` writes it to `<dir>/token`.
    #[arg(long, env = "TTSTORE_TOKEN_FILE", default_value = "ttstore-data/token")]
    token_file: PathBuf,
    /// PEM CA certificates to trust when the nodes serve TLS (`ttstore cluster --tls` writes
    /// `<dir>/pki/ca.pem`); without it the client speaks plaintext.
    #[arg(long, env = "TTSTORE_CA")]
    ca: Option<PathBuf>,
}

impl Creds {
    /// A client for `addrs`; the token is read only for calls that change state.
    fn client(&self, addrs: &[String], changes_state: bool) -> Result<Client, String> {
        let token = changes_state.then_some(self.token_file.as_path());
        let sec = ttsys::mgmt::ClientSecurity::from_files(self.ca.as_deref(), token)
            .map_err(|e| e.to_string())?;
        Ok(Client::with_security(addrs, sec))
    }
}

/// How a node is reached and locked, and where it is.
#[derive(clap::Args, Clone)]
struct NodeNet {
    /// The cluster token (mode 0600, ≥ 32 characters): every call but the reads and Status must
    /// carry it, the nodes' own traffic included, and the node sends it to its peers.
    #[arg(long)]
    token_file: PathBuf,
    /// PEM certificate to serve TLS with (required unless `--listen` is loopback).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert` (mode 0600).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates trusted for the peers' TLS.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Regions and the delays between them (TOML; see the `region` module): every message to a
    /// node in another region waits the link's delay.
    #[arg(long)]
    topology: Option<PathBuf>,
}

impl NodeNet {
    /// The listener's lock, the peers' client security, and the topology (`who` names the
    /// node in errors).
    fn load(
        &self,
        who: &str,
    ) -> Result<
        (
            ttsys::mgmt::ManagementConfig,
            ttsys::mgmt::ClientSecurity,
            Option<ttstore::region::Topology>,
        ),
        String,
    > {
        let management = ttsys::mgmt::ManagementConfig {
            certificate: self.tls_cert.clone(),
            private_key: self.tls_key.clone(),
            client_ca: None,
            token_file: Some(self.token_file.clone()),
        };
        let peers =
            ttsys::mgmt::ClientSecurity::from_files(self.tls_ca.as_deref(), Some(&self.token_file))
                .map_err(|e| format!("{who}: {e}"))?;
        let topology = self
            .topology
            .as_ref()
            .map(|p| ttstore::region::Topology::load(p))
            .transpose()
            .map_err(|e| format!("{who}: {e}"))?;
        Ok((management, peers, topology))
    }
}

/// Where a node's TrueTime comes from.
#[derive(clap::Args, Clone)]
struct ClockSource {
    /// Simulated clock: offset from the host clock (ns).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    skew_ns: i64,
    /// Simulated clock: the ε it claims (ns).
    #[arg(long, default_value_t = 1_000_000)]
    epsilon_ns: i64,
    /// Read TrueTime from timed's page instead of a simulated clock.
    #[arg(long)]
    page: Option<PathBuf>,
    /// timed's gRPC address (fallback when the page is missing).
    #[arg(long, default_value = ttclient::DEFAULT_ADDR)]
    timed: String,
}

#[derive(clap::Args, Clone)]
struct ClockArgs {
    /// Timestamp mode.
    #[arg(long, value_enum, default_value = "truetime")]
    mode: Mode,
    /// Acknowledge without waiting for TT.after(s) (breaks external consistency; for the
    /// negative control only).
    #[arg(long)]
    no_commit_wait: bool,
    #[command(flatten)]
    source: ClockSource,
    /// HLC mode: maximum clock offset between nodes (ms).
    #[arg(long, default_value_t = 250)]
    max_offset_ms: u64,
    /// Quarantine: past this ε (ns) the node stops serving reads and proposing writes until it
    /// recovers, as it does while its TrueTime is untrustworthy. Default: 80 % of the max
    /// offset (CockroachDB's rule).
    #[arg(long)]
    max_epsilon_ns: Option<i64>,
    /// Global-table mode (TrueTime): write and close this far ahead (ms), so every replica
    /// serves strong reads locally; writes commit-wait the lead. 0: off.
    #[arg(long, default_value_t = 0)]
    global_lead_ms: u64,
    /// How often the leader closes a timestamp when nobody asks (ms).
    #[arg(long, default_value_t = 50)]
    close_interval_ms: u64,
    /// Snapshot (and purge the Raft log) every this many entries.
    #[arg(long, default_value_t = 5000)]
    snapshot_every: u64,
    /// Shards: the key space is split by key hash into this many Raft groups, each with its own
    /// leader; a transaction across shards commits by two-phase commit (TrueTime mode). Every
    /// node of a cluster must be given the same number.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    shards: u32,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one node.
    Node {
        /// Node id (≥ 1).
        #[arg(long)]
        id: u64,
        /// Listen address (peers reach the node here).
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Data directory.
        #[arg(long)]
        dir: PathBuf,
        /// Initialise the cluster with these members: `1=host:port,2=host:port,…`.
        #[arg(long)]
        init: Option<String>,
        /// With `--init`: the shards this node initialises, and so leads first (default: all).
        /// Giving each node different shards places the leaders apart.
        #[arg(long, value_delimiter = ',')]
        init_groups: Option<Vec<u32>>,
        #[command(flatten)]
        net: NodeNet,
        #[command(flatten)]
        clock: ClockArgs,
    },
    /// Run one AP (multi-leader) node: it accepts writes on its own, logs them durably, and
    /// replicates them to its peers asynchronously (see the `apnode` module).
    ApNode {
        /// Node id (≥ 1): the origin of the writes it accepts.
        #[arg(long)]
        id: u64,
        /// Listen address.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Data directory (`ap.log`).
        #[arg(long)]
        dir: PathBuf,
        /// Every node of the cluster, this one included: `1=host:port,2=host:port,…`.
        #[arg(long)]
        peers: String,
        /// How often it pulls from each peer (ms).
        #[arg(long, default_value_t = 50)]
        pull_interval_ms: u64,
        #[command(flatten)]
        net: NodeNet,
        #[command(flatten)]
        source: ClockSource,
    },
    /// Start a local cluster of node processes on loopback and keep it running (Ctrl-C stops).
    Cluster {
        /// Data directory.
        #[arg(long, default_value = "ttstore-data")]
        dir: PathBuf,
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// First port.
        #[arg(long, default_value_t = 7301)]
        base_port: u16,
        /// Per-node clock skews (ns), comma-separated.
        #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
        skews_ns: Vec<i64>,
        /// Serve TLS with a throwaway CA written to `<dir>/pki` (clients: `--ca <dir>/pki/ca.pem`).
        #[arg(long)]
        tls: bool,
        #[command(flatten)]
        clock: ClockArgs,
    },
    /// Write one key.
    Put {
        /// Key.
        key: String,
        /// Value.
        value: String,
        #[command(flatten)]
        target: Target,
    },
    /// Read keys.
    Get {
        /// Keys.
        #[arg(required = true)]
        keys: Vec<String>,
        /// Consistency level.
        #[arg(long, value_enum, default_value = "strong")]
        consistency: Level,
        /// Snapshot timestamp: wall ns, optionally `.logical`.
        #[arg(long)]
        at: Option<String>,
        /// Bounded staleness (ms).
        #[arg(long, default_value_t = 100)]
        max_staleness_ms: u64,
        /// Session token from a previous reply (`wall[.logical]`).
        #[arg(long)]
        session: Option<String>,
        /// Which node to read from (0-based index into --cluster; others are tried if it fails).
        #[arg(long, default_value_t = 0)]
        node: usize,
        #[command(flatten)]
        target: Target,
    },
    /// A read-write transaction: compares, then writes, with reads.
    Txn {
        /// Guard `KEY=VERSION` (`wall[.logical]`) or `KEY=absent`.
        #[arg(long = "if")]
        compares: Vec<String>,
        /// Write `KEY=VALUE`.
        #[arg(long = "put")]
        puts: Vec<String>,
        /// Delete KEY.
        #[arg(long = "del")]
        dels: Vec<String>,
        /// Read KEY.
        #[arg(long = "read")]
        reads: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Every node's status.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Add a node (learner first, then voter).
    AddNode {
        /// New node id.
        id: u64,
        /// Its address.
        addr: String,
        /// As a learner: it replicates and serves reads but does not vote (a read replica in a
        /// far region that adds nothing to the write quorum's round trip).
        #[arg(long)]
        learner: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a voter.
    RemoveNode {
        /// Node id.
        id: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Fault injection: make the node at ADDR drop Raft traffic with these ids (none: heal).
    Partition {
        /// The node to configure.
        addr: String,
        /// Node ids to cut off.
        #[arg(value_delimiter = ',')]
        blocked: Vec<u64>,
        #[command(flatten)]
        creds: Creds,
    },
}

fn parse_ts(s: &str) -> Result<pb::Ts, String> {
    let (w, l) = s.split_once('.').unwrap_or((s, "0"));
    Ok(pb::Ts {
        wall: w.parse().map_err(|e| format!("bad timestamp {s:?}: {e}"))?,
        logical: l.parse().map_err(|e| format!("bad timestamp {s:?}: {e}"))?,
    })
}

fn fmt_ts(t: &Option<pb::Ts>) -> String {
    match t {
        Some(t) if t.logical > 0 => format!("{}.{}", t.wall, t.logical),
        Some(t) => t.wall.to_string(),
        None => "-".into(),
    }
}

fn kv_json(v: &pb::KeyValue) -> serde_json::Value {
    serde_json::json!({
        "key": v.key,
        "value": v.value,
        "found": v.value.is_some(),
        "version": v.version.as_ref().map(|t| fmt_ts(&Some(*t))),
    })
}

fn split_kv(s: &str, what: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{what} {s:?} is not KEY=VALUE"))
}

/// The quarantine threshold: the flag, or 80 % of the max offset.
fn max_epsilon(c: &ClockArgs) -> ttcore::Span {
    ttcore::Span::from_nanos(
        c.max_epsilon_ns
            .unwrap_or((c.max_offset_ms as i64).saturating_mul(800_000)),
    )
}

/// `1=host:port,2=host:port,…` as id → address.
fn members(s: &str, flag: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut m = BTreeMap::new();
    for part in s.split(',') {
        let (k, v) = split_kv(part, &format!("{flag} member"))?;
        let id: u64 = k
            .parse()
            .map_err(|e| format!("{flag} member {part:?}: bad id: {e}"))?;
        m.insert(id, v);
    }
    Ok(m)
}

fn clock_spec(c: &ClockSource) -> ClockSpec {
    match &c.page {
        Some(page) => ClockSpec::Timed {
            page: page.clone(),
            addr: c.timed.clone(),
        },
        None => ClockSpec::Sim {
            skew_ns: c.skew_ns,
            epsilon_ns: c.epsilon_ns,
        },
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn print_txn(r: &pb::TxnReply, json: bool) {
    if json {
        let v = serde_json::json!({
            "succeeded": r.succeeded,
            "commit_ts": fmt_ts(&r.commit_ts),
            "reads": r.reads.iter().map(kv_json).collect::<Vec<_>>(),
            "replicate_us": r.replicate_ns as f64 / 1e3,
            "commit_wait_us": r.commit_wait_ns as f64 / 1e3,
            "exposed_wait_us": r.exposed_wait_ns as f64 / 1e3,
            "total_us": r.total_ns as f64 / 1e3,
            "leader": r.leader,
            "shards": r.groups,
        });
        println!("{v}");
    } else {
        println!(
            "{} at {} ({}; replicate {:.0} µs, commit wait {:.0} µs of which {:.0} µs after replication, total {:.0} µs)",
            if r.succeeded {
                "committed"
            } else {
                "compare failed, nothing written"
            },
            fmt_ts(&r.commit_ts),
            if r.groups.len() > 1 {
                format!(
                    "shards {:?} by two-phase commit, coordinated by node {}",
                    r.groups, r.leader
                )
            } else {
                format!("leader {}", r.leader)
            },
            r.replicate_ns as f64 / 1e3,
            r.commit_wait_ns as f64 / 1e3,
            r.exposed_wait_ns as f64 / 1e3,
            r.total_ns as f64 / 1e3
        );
        for v in &r.reads {
            println!(
                "  {} = {} (version {})",
                v.key,
                v.value.as_deref().unwrap_or("<absent>"),
                fmt_ts(&v.version)
            );
        }
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "one arm per subcommand, each turning its options into one client call and printing the result (the longer text forms are in `print_*`): a dispatch table."
)]
async fn run(cmd: Cmd) -> Result<(), String> {
    match cmd {
        Cmd::Node {
            id,
            listen,
            dir,
            init,
            init_groups,
            net,
            clock,
        } => {
            let (management, peers, topology) = net.load(&format!("node {id}"))?;
            let init = init.map(|s| members(&s, "--init")).transpose()?;
            if id == 0 {
                return Err("--id must be ≥ 1".into());
            }
            let opts = NodeOptions {
                id,
                listen,
                dir,
                mode: clock.mode,
                commit_wait: !clock.no_commit_wait,
                clock: clock_spec(&clock.source),
                max_offset: Duration::from_millis(clock.max_offset_ms),
                max_epsilon: max_epsilon(&clock),
                global_lead: Duration::from_millis(clock.global_lead_ms),
                close_interval: Duration::from_millis(clock.close_interval_ms.max(1)),
                snapshot_every: clock.snapshot_every,
                init,
                management,
                peers,
                topology,
                shards: clock.shards,
                init_groups,
            };
            let node = Server::start(&opts)
                .await
                .map_err(|e| format!("node {id}: {e}"))?;
            tracing::info!(
                "node {id} serving on {listen} ({} mode, commit wait {}, {} shard(s))",
                opts.mode.name(),
                opts.commit_wait && opts.mode == Mode::Truetime,
                opts.shards
            );
            node.serve(listen, opts.close_interval, shutdown_signal())
                .await
                .map_err(|e| format!("node {id}: {e}"))
        }
        Cmd::ApNode {
            id,
            listen,
            dir,
            peers,
            pull_interval_ms,
            net,
            source,
        } => {
            let (management, security, topology) = net.load(&format!("ap node {id}"))?;
            let opts = ttstore::apnode::ApOptions {
                id,
                listen,
                dir,
                clock: clock_spec(&source),
                peers: members(&peers, "--peers")?,
                pull_interval: Duration::from_millis(pull_interval_ms.max(1)),
                management,
                security,
                topology,
            };
            let node =
                ttstore::apnode::ApNode::open(&opts).map_err(|e| format!("ap node {id}: {e}"))?;
            tracing::info!("AP node {id} serving on {listen}");
            node.serve(
                listen,
                &opts.management,
                opts.pull_interval,
                shutdown_signal(),
            )
            .await
            .map_err(|e| format!("ap node {id}: {e}"))
        }
        Cmd::Cluster {
            dir,
            nodes,
            base_port,
            skews_ns,
            tls,
            clock,
        } => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let mut cfg = ClusterConfig::new(&exe, &dir);
            cfg.nodes = nodes;
            cfg.base_port = Some(base_port);
            cfg.mode = clock.mode;
            cfg.commit_wait = !clock.no_commit_wait;
            cfg.skews_ns = skews_ns;
            cfg.epsilon_ns = clock.source.epsilon_ns;
            cfg.max_offset_ms = clock.max_offset_ms;
            cfg.max_epsilon_ns = clock.max_epsilon_ns;
            cfg.global_lead_ms = clock.global_lead_ms;
            cfg.close_interval_ms = clock.close_interval_ms;
            cfg.snapshot_every = clock.snapshot_every;
            cfg.shards = clock.shards;
            cfg.timed = clock
                .source
                .page
                .clone()
                .map(|p| (p, clock.source.timed.clone()));
            cfg.tls = tls;
            let mut c = LocalCluster::start(cfg).map_err(|e| format!("starting nodes: {e}"))?;
            let mut client = c.client().map_err(|e| e.to_string())?;
            let leader = client.find_leader().await.map_err(|e| e.to_string())?;
            println!("ttstore cluster: {nodes} nodes, leader at {leader}");
            println!("  export TTSTORE_CLUSTER={}", c.addrs().join(","));
            println!("  export TTSTORE_TOKEN_FILE={}", c.token_file().display());
            if tls {
                println!(
                    "  export TTSTORE_CA={}",
                    dir.join("pki").join("ca.pem").display()
                );
            }
            println!("  logs and data in {}", dir.display());
            shutdown_signal().await;
            c.stop();
            Ok(())
        }
        Cmd::Put { key, value, target } => {
            let mut c = target.creds.client(&target.cluster, true)?;
            let r = c
                .txn(pb::TxnRequest {
                    writes: vec![pb::Write {
                        key,
                        value: Some(value),
                    }],
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            print_txn(&r, target.json);
            Ok(())
        }
        Cmd::Txn {
            compares,
            puts,
            dels,
            reads,
            target,
        } => {
            let mut req = pb::TxnRequest {
                reads,
                ..Default::default()
            };
            for c in compares {
                let (k, v) = split_kv(&c, "--if")?;
                req.compares.push(pb::Compare {
                    key: k,
                    version: if v == "absent" {
                        None
                    } else {
                        Some(parse_ts(&v)?)
                    },
                });
            }
            for p in puts {
                let (k, v) = split_kv(&p, "--put")?;
                req.writes.push(pb::Write {
                    key: k,
                    value: Some(v),
                });
            }
            for d in dels {
                req.writes.push(pb::Write {
                    key: d,
                    value: None,
                });
            }
            let mut c = target.creds.client(&target.cluster, true)?;
            let r = c.txn(req).await.map_err(|e| e.to_string())?;
            print_txn(&r, target.json);
            Ok(())
        }
        Cmd::Get {
            keys,
            consistency,
            at,
            max_staleness_ms,
            session,
            node,
            target,
        } => {
            let req = pb::ReadRequest {
                keys,
                consistency: match consistency {
                    Level::Strong => pb::Consistency::Strong,
                    Level::Snapshot => pb::Consistency::Snapshot,
                    Level::BoundedStaleness => pb::Consistency::BoundedStaleness,
                    Level::Session => pb::Consistency::Session,
                } as i32,
                at: at.as_deref().map(parse_ts).transpose()?,
                max_staleness_ns: (max_staleness_ms as i64).saturating_mul(1_000_000),
                session: session.as_deref().map(parse_ts).transpose()?,
            };
            let mut c = target.creds.client(&target.cluster, false)?;
            let r = c.read(node, req).await.map_err(|e| e.to_string())?;
            print_read(&r, target.json);
            Ok(())
        }
        Cmd::Status { target } => {
            let mut c = target.creds.client(&target.cluster, false)?;
            let mut all = Vec::new();
            for a in target.cluster.clone() {
                match c.status(&a).await {
                    Ok(s) => {
                        let shards = s.shards;
                        all.push((a.clone(), Ok(s)));
                        // A sharded node: one line per shard's replica.
                        for g in 1..shards {
                            let r = c.group_status(&a, g).await.map_err(|e| e.to_string());
                            all.push((a.clone(), r));
                        }
                    }
                    Err(e) => all.push((a, Err(e.to_string()))),
                }
            }
            print_status(&all, target.json);
            Ok(())
        }
        Cmd::AddNode {
            id,
            addr,
            learner,
            target,
        } => {
            let mut c = target.creds.client(&target.cluster, true)?;
            let r = if learner {
                c.add_learner(id, addr).await
            } else {
                c.membership(id, Some(addr)).await
            }
            .map_err(|e| e.to_string())?;
            print_members(&r, target.json);
            Ok(())
        }
        Cmd::RemoveNode { id, target } => {
            let mut c = target.creds.client(&target.cluster, true)?;
            let r = c.membership(id, None).await.map_err(|e| e.to_string())?;
            print_members(&r, target.json);
            Ok(())
        }
        Cmd::Partition {
            addr,
            blocked,
            creds,
        } => {
            let mut c = creds.client(std::slice::from_ref(&addr), true)?;
            let b = c
                .partition(&addr, blocked)
                .await
                .map_err(|e| e.to_string())?;
            println!("{addr}: Raft traffic dropped with {b:?}");
            Ok(())
        }
    }
}

fn print_members(r: &pb::MembershipReply, json: bool) {
    if json {
        let v: Vec<_> = r
            .members
            .iter()
            .map(|m| serde_json::json!({"id": m.id, "addr": m.addr, "voter": m.voter}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        for m in &r.members {
            println!(
                "node {} at {} ({})",
                m.id,
                m.addr,
                if m.voter { "voter" } else { "learner" }
            );
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ttstore: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ttstore: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A read's result, as JSON or text.
fn print_read(r: &pb::ReadReply, json: bool) {
    if json {
        let v = serde_json::json!({
            "values": r.values.iter().map(kv_json).collect::<Vec<_>>(),
            "read_ts": fmt_ts(&r.read_ts),
            "served_by": r.served_by,
            "restarts": r.restarts,
            "wait_us": r.wait_ns as f64 / 1e3,
            "session": fmt_ts(&r.session),
            "staleness_bound_us": (r.staleness_bound_ns >= 0).then(|| r.staleness_bound_ns as f64 / 1e3),
        });
        println!("{v}");
    } else {
        for v in &r.values {
            match &v.value {
                Some(x) => println!("{} = {x} (version {})", v.key, fmt_ts(&v.version)),
                None => println!("{} not found", v.key),
            }
        }
        println!(
            "read at {} by node {} (waited {:.0} µs, {} restart(s)); at most {} old; session token {}",
            fmt_ts(&r.read_ts),
            r.served_by,
            r.wait_ns as f64 / 1e3,
            r.restarts,
            if r.staleness_bound_ns >= 0 {
                format!("{:.3} ms", r.staleness_bound_ns as f64 / 1e6)
            } else {
                "? (no trustworthy time)".into()
            },
            fmt_ts(&r.session)
        );
    }
}

/// Every node's status (or why it is down), as JSON or text.
fn print_status(all: &[(String, Result<pb::StatusReply, String>)], json: bool) {
    if json {
        let v: Vec<_> = all
            .iter()
            .map(|(a, s)| match s {
                Ok(s) => serde_json::json!({
                    "addr": a, "id": s.id, "role": ttstore::client::role_name(s.role()), "leader": s.leader, "term": s.term,
                    "last_applied": s.last_applied, "safe_ts": fmt_ts(&s.safe), "mode": s.mode,
                    "commit_wait": s.commit_wait, "epsilon_ns": s.epsilon_ns, "keys": s.keys,
                    "quarantined": s.quarantined, "max_epsilon_ns": s.max_epsilon_ns,
                    "versions": s.versions, "blocked": s.blocked,
                    "shard": s.group, "shards": s.shards, "prepared": s.prepared,
                    "members": s.members.iter().map(|m| serde_json::json!({"id": m.id, "addr": m.addr, "voter": m.voter})).collect::<Vec<_>>(),
                }),
                Err(e) => serde_json::json!({"addr": a, "error": e}),
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        for (a, s) in all {
            match s {
                Ok(s) => println!(
                    "node {} at {a}{}: {} (term {}, leader {}), {} mode, commit wait {}, ε {:.3} ms, applied {}, safe {}, {} keys / {} versions{}{}",
                    s.id,
                    if s.shards > 1 {
                        format!(" shard {}/{} ({} prepared)", s.group, s.shards, s.prepared)
                    } else {
                        String::new()
                    },
                    ttstore::client::role_name(s.role()),
                    s.term,
                    s.leader,
                    s.mode,
                    if s.commit_wait { "on" } else { "off" },
                    s.epsilon_ns as f64 / 1e6,
                    s.last_applied,
                    fmt_ts(&s.safe),
                    s.keys,
                    s.versions,
                    if s.blocked.is_empty() {
                        String::new()
                    } else {
                        format!(", partitioned from {:?}", s.blocked)
                    },
                    if s.quarantined.is_empty() {
                        String::new()
                    } else {
                        format!(", QUARANTINED: {}", s.quarantined)
                    }
                ),
                Err(e) => println!("{a}: down ({e})"),
            }
        }
    }
}
