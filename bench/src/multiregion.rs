//! `ttbench multiregion`: the demo store on a three-region cluster (one node per region, the
//! delays between regions applied to every Raft message and every client request, see
//! `ttstore::region`), with clients in every region writing and reading at once. Run once per ε
//! so commit wait's cost can be read beside the cross-region consensus round trip it overlaps
//! with; every run's history (all regions together) goes through the checker.
//!
//! What it answers: Spanner's claim that commit latency does not grow while ε stays below the
//! Paxos round trip — the leader waits out `2ε` *while* replicating, so only the part of the wait
//! left after replication (the exposed wait) is added. Beside it, CockroachDB's global-table
//! write formula at its default max-offset, computed from the same topology (a formula, not a
//! measurement: CockroachDB is not run here).

use crate::error::Error;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use ttproto::store as pb;
use ttstore::checker;
use ttstore::cluster::{ClusterConfig, LocalCluster};
use ttstore::region::Topology;
use ttstore::workload::{self, WorkloadConfig};

/// What to run.
#[derive(Clone, Debug)]
pub struct MultiRegionBench {
    /// Measured seconds per ε (after a warm-up).
    pub duration: Duration,
    /// Clients in each region.
    pub clients_per_region: usize,
    /// Keys.
    pub keys: usize,
    /// Share of operations that write.
    pub write_fraction: f64,
    /// The ε values to run (ns), one cluster each.
    pub epsilons_ns: Vec<i64>,
    /// Regions, where the nodes are, and the links.
    pub topology: Topology,
    /// The negative control: commit wait off, and node 2's clock 1 s behind whatever its ε
    /// claims — the checker must find anomalies.
    pub negative_control: bool,
    /// How long each fault of the failure-mode table lasts (`None`: no table).
    pub fault: Option<Duration>,
    /// Global-table leads (ms) to run, each once at the first ε.
    pub global_leads_ms: Vec<u64>,
    /// Run the failure-mode table's faults on the AP mode too (a region cut off, the first
    /// region's node killed).
    pub ap: bool,
    /// Shards (Raft groups); with more than one, shard `g`'s leader is placed in region
    /// `g mod regions` and two-key writes that span shards commit by two-phase commit.
    pub shards: u32,
}

/// One region's clients, as they saw it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionFigures {
    /// The region.
    pub region: String,
    /// Acknowledged write transactions.
    pub writes: usize,
    /// Client-observed write latency p50 (ms): to the leader, consensus, commit wait, back.
    pub write_p50_ms: f64,
    /// … p99 (ms).
    pub write_p99_ms: f64,
    /// Of the writes, those that spanned shards (two-phase commit).
    #[serde(default)]
    pub cross_shard_writes: usize,
    /// Their latency p50 (ms): to the coordinator, both phases at the shards' leaders, commit
    /// wait, back.
    #[serde(default)]
    pub cross_shard_write_p50_ms: f64,
    /// … p99 (ms).
    #[serde(default)]
    pub cross_shard_write_p99_ms: f64,
    /// Completed strong reads (served by the region's own node).
    pub reads: usize,
    /// Strong read latency p50 (ms).
    pub read_p50_ms: f64,
    /// … p99 (ms).
    pub read_p99_ms: f64,
    /// Operations that failed.
    pub errors: usize,
}

/// One cluster run at one ε.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpsilonRun {
    /// Every node's ε (µs); each node's clock is off by up to 0.4 ε, inside it (the negative
    /// control: node 2's is 1 s behind, and commit wait is off).
    pub epsilon_us: f64,
    /// Whether this was the negative control.
    pub negative_control: bool,
    /// Global-table mode: writes and closes this far ahead (ms; 0: off), so strong reads are
    /// served locally everywhere and writes commit-wait the lead.
    pub global_lead_ms: u64,
    /// The leader's region (shard 0's).
    pub leader_region: String,
    /// Shards (Raft groups) and where each one's leader was at the start, by shard.
    #[serde(default)]
    pub shard_leader_regions: Vec<String>,
    /// Leader-side time from proposing to the Raft commit, p50 (ms): the cross-region
    /// consensus round trip.
    pub consensus_p50_ms: f64,
    /// Leader-side commit wait (until `TT.after(s)`), overlapped with consensus, p50 (µs).
    pub commit_wait_p50_us: f64,
    /// The part of it left after consensus finished, summed over writes, over the summed
    /// client-observed write latency: what commit wait added.
    pub exposed_wait_share: f64,
    /// The whole commit wait (overlapped or not) summed, over the summed client-observed
    /// write latency: its share even had it not overlapped.
    pub commit_wait_share: f64,
    /// Per region.
    pub regions: Vec<RegionFigures>,
    /// Operations in the checked history (all regions).
    pub history_ops: usize,
    /// What the checker found (0 expected).
    pub anomalies: usize,
}

/// What `ttbench multiregion --json` prints.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiRegionReport {
    /// Shards (Raft groups) in every run.
    #[serde(default = "one_shard")]
    pub shards: u32,
    /// The topology, as the nodes read it.
    pub topology: Topology,
    /// Measured seconds per ε.
    pub duration_s: f64,
    /// Clients per region.
    pub clients_per_region: usize,
    /// Keys.
    pub keys: usize,
    /// Share of operations that write.
    pub write_fraction: f64,
    /// One run per ε.
    pub runs: Vec<EpsilonRun>,
    /// The failure-mode table (empty when not asked for).
    pub failures: Vec<FailureRow>,
    /// The same faults on the AP mode (`ttstore ap-node`), when asked for.
    #[serde(default)]
    pub ap_failures: Vec<crate::multiregion_ap::ApFailureRow>,
    /// CockroachDB's global-table write latency by its formula (max-offset 500 ms + 1.5 × the
    /// round trip from the leader's region to the farthest region), for the same topology (ms).
    pub cockroach_global_write_formula_ms: f64,
}

fn one_shard() -> u32 {
    1
}

/// One fault, on a fresh cluster at the first ε, with clients in every region throughout.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureRow {
    /// What was done.
    pub fault: String,
    /// How long it lasted (s); it starts after 3 s of normal running and is followed by as
    /// long again.
    pub fault_s: f64,
    /// From the fault until a node other than the old leader was leader (s); `None`: the
    /// leader kept its role.
    pub election_s: Option<f64>,
    /// The region of the leader at the end.
    pub leader_region_after: String,
    /// Nodes whose status said they were quarantined 1 s into the fault (the clock row).
    pub quarantined_nodes: Vec<u64>,
    /// Per region.
    pub regions: Vec<FaultRegion>,
    /// Reads that missed an acknowledged write, or any other anomaly the checker found (a CP
    /// store must have none).
    pub anomalies: usize,
    /// Operations in the checked history.
    pub history_ops: usize,
}

/// One region through a fault.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRegion {
    /// The region.
    pub region: String,
    /// Operations completed.
    pub completed: usize,
    /// Operations that failed (unavailable, or outcome unknown).
    pub failed: usize,
    /// The longest time the region's clients completed nothing (s), one operation's own
    /// latency included: before the fault (the baseline), while it lasted (the region's
    /// unavailability), and after it was healed (what the healing itself cost).
    pub longest_gap_before_s: f64,
    /// … while the fault lasted.
    pub longest_gap_during_s: f64,
    /// … after it was healed.
    pub longest_gap_after_s: f64,
}

/// Every region's clients, running their workloads until [`Clients::finish`].
struct Clients {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<workload::Sample>>>,
}

impl Clients {
    /// Starts each region's workload.
    fn start(per_region: &[(String, ttstore::client::Client, WorkloadConfig)]) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = per_region
            .iter()
            .map(|(_, c, wl)| tokio::spawn(workload::run(c.clone(), wl.clone(), stop.clone())))
            .collect();
        Clients { stop, tasks }
    }

    /// Stops them; each region's samples, in the order they were started (none for a task
    /// that died).
    async fn finish(self) -> Vec<Vec<workload::Sample>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut out = Vec::new();
        for t in self.tasks {
            out.push(t.await.unwrap_or_default());
        }
        out
    }
}

/// The faults of the table.
#[derive(Clone, Debug)]
enum Fault {
    /// Every link to and from the region cut (nodes and clients).
    CutRegion(String),
    /// The leader killed with SIGKILL, restarted when the fault ends.
    KillLeader,
    /// The region's node's clock turns too wide (its ε past the cluster's maximum): it must
    /// quarantine itself, and its region's clients must be served elsewhere.
    WideClock(String),
}

/// The ε every node's page claims in a fault run, and the maximum past which a node quarantines
/// itself (ns).
const PAGE_EPS_NS: i64 = 20_000;
const FAULT_MAX_EPS_NS: i64 = 10_000_000;

/// A page as timed writes it: the host's realtime as the model (true time, in this lab) with ε
/// `eps_ns` growing at 15 ppm, synchronized, valid for an hour.
fn page_data(eps_ns: i64) -> ttsys::shm::PageData {
    ttsys::shm::host_realtime_page(
        ttcore::Span::from_nanos(eps_ns),
        ttcore::Rate::from_ppm(15),
        ttcore::ClockStatus::Synchronized,
    )
}

impl Fault {
    fn name(&self, topology: &Topology, leader: u64) -> String {
        match self {
            Fault::CutRegion(r) if topology.region_of(leader) == Some(r.as_str()) => {
                format!("partition: {r} (the leader's region) cut off")
            }
            Fault::CutRegion(r) => format!("partition: {r} cut off"),
            Fault::KillLeader => "leader crash: kill -9, restarted after the fault".into(),
            Fault::WideClock(r) => format!(
                "clock: {r}'s node ε past the maximum ({} ms), quarantined",
                FAULT_MAX_EPS_NS / 1_000_000
            ),
        }
    }
}

/// Applies (or, with `heal`, undoes) `fault`; `clients` are the region clients.
async fn inject(
    fault: &Fault,
    heal: bool,
    cluster: &mut LocalCluster,
    base: &mut ttstore::client::Client,
    topo: &Topology,
    clients: &[(String, ttstore::client::Client, WorkloadConfig)],
    leader: u64,
) -> Result<(), Error> {
    let addrs = cluster.addrs();
    let id_of = |i: usize| i as u64 + 1;
    match fault {
        Fault::CutRegion(r) => {
            let inside: Vec<u64> = topo.nodes_in(r);
            for (i, a) in addrs.iter().enumerate() {
                let blocked: Vec<u64> = if heal {
                    vec![]
                } else if inside.contains(&id_of(i)) {
                    (1..=addrs.len() as u64)
                        .filter(|n| !inside.contains(n))
                        .collect()
                } else {
                    inside.clone()
                };
                base.partition(a, blocked).await?;
            }
            for (region, c, _) in clients {
                let cut: Vec<String> = if heal {
                    vec![]
                } else {
                    addrs
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| inside.contains(&id_of(*i)) != (region == r))
                        .map(|(_, a)| a.clone())
                        .collect()
                };
                c.cut_off(&cut);
            }
        }
        Fault::KillLeader if heal => cluster.restart(leader)?,
        Fault::KillLeader => cluster.kill(leader),
        // Done through the region's page (see `fault_run`).
        Fault::WideClock(_) => {}
    }
    Ok(())
}

/// Polls until a node other than `old` says it leads (up to `limit`); the time it took.
async fn new_leader(
    base: &mut ttstore::client::Client,
    addrs: &[String],
    old: u64,
    limit: Duration,
) -> Option<Duration> {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < limit {
        for a in addrs {
            if let Ok(s) = base.status(a).await
                && s.role() == pb::Role::Leader
                && s.id != old
            {
                return Some(t0.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// The longest stretch (s) inside `[from, to]` (realtime ns) without a time in `done` (any
/// order), counting the window's ends.
pub(crate) fn longest_gap(done: &[i64], from: i64, to: i64) -> f64 {
    let mut t: Vec<i64> = done
        .iter()
        .copied()
        .filter(|t| (from..=to).contains(t))
        .collect();
    t.push(from);
    t.push(to);
    t.sort_unstable();
    t.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as f64 / 1e9
}

/// The region figures of a fault run: completions, failures, and the longest stretches
/// without a completion before, during and after the fault (`at` = [start, fault, heal, end],
/// realtime ns).
fn fault_regions(
    per_region: &[(String, ttstore::client::Client, WorkloadConfig)],
    samples: &[Vec<workload::Sample>],
    at: [i64; 4],
) -> Vec<FaultRegion> {
    per_region
        .iter()
        .zip(samples)
        .map(|((region, _, _), ss)| {
            let done: Vec<i64> = ss
                .iter()
                .filter(|s| s.error.is_none())
                .filter_map(|s| s.ops.first().and_then(|o| o.complete_ns))
                .collect();
            FaultRegion {
                region: region.clone(),
                completed: done.len(),
                failed: ss.iter().filter(|s| s.error.is_some()).count(),
                longest_gap_before_s: longest_gap(&done, at[0], at[1]),
                longest_gap_during_s: longest_gap(&done, at[1], at[2]),
                longest_gap_after_s: longest_gap(&done, at[2], at[3]),
            }
        })
        .collect()
}

/// The nodes whose status says they are quarantined.
async fn quarantined(base: &mut ttstore::client::Client, nodes: &[(u64, String)]) -> Vec<u64> {
    let mut out = Vec::new();
    for (id, a) in nodes {
        if base
            .status(a)
            .await
            .is_ok_and(|s| !s.quarantined.is_empty())
        {
            out.push(*id);
        }
    }
    out
}

/// One page per node, written as timed would (ε 20 µs, honest): (directory, writers, paths).
fn node_pages(
    b: &MultiRegionBench,
) -> Result<
    (
        std::path::PathBuf,
        Vec<ttsys::shm::PageWriter>,
        Vec<std::path::PathBuf>,
    ),
    Error,
> {
    let dir =
        std::env::temp_dir().join(format!("ttbench-multiregion-{}-pages", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut writers = Vec::new();
    let mut pages = Vec::new();
    for i in 1..=b.topology.nodes.len() {
        let p = dir.join(format!("node{i}.page"));
        let mut w = ttsys::shm::PageWriter::open(&p)?;
        w.write(&page_data(PAGE_EPS_NS));
        writers.push(w);
        pages.push(p);
    }
    Ok((dir, writers, pages))
}

/// One row of the failure-mode table, on a fresh cluster whose nodes read their own pages
/// (ε 20 µs).
async fn fault_run(exe: &Path, b: &MultiRegionBench, fault: Fault) -> Result<FailureRow, Error> {
    let len = b.fault.unwrap_or(Duration::from_secs(12));
    let (pages_dir, mut writers, pages) = node_pages(b)?;
    let (mut cluster, mut base, nodes, leader, dir) =
        start(exe, b, PAGE_EPS_NS, "fault", 0, pages).await?;
    let per_region = region_clients(b, &base, &nodes);
    let running = Clients::start(&per_region);
    let from = ttstore::node::realtime_ns();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let addrs = cluster.addrs();
    inject(
        &fault,
        false,
        &mut cluster,
        &mut base,
        &b.topology,
        &per_region,
        leader,
    )
    .await?;
    if let Fault::WideClock(r) = &fault {
        for id in b.topology.nodes_in(r) {
            if let Some(w) = writers.get_mut(id as usize - 1) {
                w.write(&page_data(4 * FAULT_MAX_EPS_NS));
            }
        }
    }
    let t_fault = std::time::Instant::now();
    let fault_at = ttstore::node::realtime_ns();
    let quarantined_nodes = if matches!(fault, Fault::WideClock(_)) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        quarantined(&mut base, &nodes).await
    } else {
        Vec::new()
    };
    let others: Vec<String> = addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as u64 + 1 != leader)
        .map(|(_, a)| a.clone())
        .collect();
    let election = new_leader(&mut base, &others, leader, len).await;
    tokio::time::sleep(len.saturating_sub(t_fault.elapsed())).await;
    inject(
        &fault,
        true,
        &mut cluster,
        &mut base,
        &b.topology,
        &per_region,
        leader,
    )
    .await?;
    for w in &mut writers {
        w.write(&page_data(PAGE_EPS_NS));
    }
    let healed_at = ttstore::node::realtime_ns();
    tokio::time::sleep(len).await;
    let to = ttstore::node::realtime_ns();
    let samples = running.finish().await;
    let after = base.find_leader().await.ok();
    let leader_after = after
        .and_then(|a| addrs.iter().position(|x| *x == a))
        .and_then(|i| b.topology.region_of(i as u64 + 1))
        .unwrap_or("none")
        .to_string();
    cluster.stop();
    let _ = std::fs::remove_dir_all(&dir);
    drop(writers);
    let _ = std::fs::remove_dir_all(&pages_dir);
    let history: Vec<_> = samples.iter().flat_map(|s| workload::history(s)).collect();
    let anomalies = checker::check(&history);
    for a in anomalies.iter().take(3) {
        eprintln!(
            "ttbench multiregion ({}): {a}",
            fault.name(&b.topology, leader)
        );
    }
    Ok(FailureRow {
        fault: fault.name(&b.topology, leader),
        fault_s: len.as_secs_f64(),
        election_s: election.map(|d| d.as_secs_f64()),
        leader_region_after: leader_after,
        quarantined_nodes,
        regions: fault_regions(&per_region, &samples, [from, fault_at, healed_at, to]),
        anomalies: anomalies.len(),
        history_ops: history.len(),
    })
}

/// The node each shard's leader starts on: shard `g` in region `g mod regions` (its first
/// node).
fn shard_homes(b: &MultiRegionBench) -> Vec<u64> {
    let regions = &b.topology.regions;
    (0..b.shards.max(1) as usize)
        .map(|g| {
            regions
                .get(g % regions.len().max(1))
                .and_then(|r| b.topology.nodes_in(r).first().copied())
                .unwrap_or(1)
        })
        .collect()
}

/// A cluster for `b` at `eps_ns`, its leader found: (cluster, client, `(id, addr)` of every
/// node, the leader's id, the directory).
async fn start(
    exe: &Path,
    b: &MultiRegionBench,
    eps_ns: i64,
    tag: &str,
    lead_ms: u64,
    pages: Vec<std::path::PathBuf>,
) -> Result<
    (
        LocalCluster,
        ttstore::client::Client,
        Vec<(u64, String)>,
        u64,
        std::path::PathBuf,
    ),
    Error,
> {
    let dir = std::env::temp_dir().join(format!(
        "ttbench-multiregion-{}-{tag}-{eps_ns}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = ClusterConfig::new(exe, &dir);
    cfg.nodes = b.topology.nodes.len() as u64;
    cfg.epsilon_ns = eps_ns;
    let s = eps_ns * 2 / 5;
    cfg.skews_ns = if b.negative_control {
        vec![0, -1_000_000_000, 0]
    } else {
        vec![s, -s, 0]
    };
    cfg.commit_wait = !b.negative_control;
    cfg.topology = Some(b.topology.clone());
    cfg.global_lead_ms = lead_ms;
    cfg.shards = b.shards.max(1);
    cfg.group_homes = shard_homes(b);
    if !pages.is_empty() {
        cfg.pages = pages;
        cfg.max_epsilon_ns = Some(FAULT_MAX_EPS_NS);
    }
    let cluster = LocalCluster::start(cfg)?;
    let mut base = cluster.client()?;
    base.deadline = Duration::from_secs(20);
    let leader_addr = base.find_leader().await?;
    let addrs = cluster.addrs();
    let nodes: Vec<(u64, String)> = (1..=addrs.len() as u64)
        .zip(addrs.iter().cloned())
        .collect();
    let leader = nodes
        .iter()
        .find(|(_, a)| *a == leader_addr)
        .map_or(0, |(id, _)| *id);
    base.deadline = Duration::from_secs(10);
    Ok((cluster, base, nodes, leader, dir))
}

async fn one(
    exe: &Path,
    b: &MultiRegionBench,
    eps_ns: i64,
    lead_ms: u64,
) -> Result<EpsilonRun, Error> {
    let (mut cluster, base, nodes, leader_id, dir) = start(
        exe,
        b,
        eps_ns,
        &format!("run{lead_ms}"),
        lead_ms,
        Vec::new(),
    )
    .await?;
    let leader_region = b
        .topology
        .region_of(leader_id)
        .unwrap_or("unknown")
        .to_string();
    let per_region = region_clients(b, &base, &nodes);
    let phase = |secs: Duration| {
        let running = Clients::start(&per_region);
        async move {
            tokio::time::sleep(secs).await;
            running.finish().await
        }
    };
    // Warm-up (connections, the first closes at every replica): part of the checked history,
    // not of the figures.
    let warm = phase(Duration::from_secs(3)).await;
    let measured = phase(b.duration).await;
    cluster.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let mut history: Vec<_> = warm.iter().flat_map(|s| workload::history(s)).collect();
    history.extend(measured.iter().flat_map(|s| workload::history(s)));
    let anomalies = checker::check(&history);
    for a in anomalies.iter().take(3) {
        eprintln!("ttbench multiregion (ε {} µs): {a}", eps_ns as f64 / 1e3);
    }
    let (regions, writes) = figures(&per_region, &measured);
    let shard_leader_regions = shard_homes(b)
        .iter()
        .map(|n| b.topology.region_of(*n).unwrap_or("unknown").to_string())
        .collect();
    let ms = |ns: i64| ns as f64 / 1e6;
    let total: i64 = writes.iter().map(|(l, _)| *l).sum();
    let share = |f: fn(&[i64; 4]) -> i64| {
        if total > 0 {
            writes.iter().map(|(_, x)| f(x)).sum::<i64>() as f64 / total as f64
        } else {
            0.0
        }
    };
    let mut consensus: Vec<i64> = writes.iter().map(|(_, x)| x[0]).collect();
    let mut wait: Vec<i64> = writes.iter().map(|(_, x)| x[1]).collect();
    Ok(EpsilonRun {
        epsilon_us: eps_ns as f64 / 1e3,
        negative_control: b.negative_control,
        global_lead_ms: lead_ms,
        leader_region,
        shard_leader_regions,
        consensus_p50_ms: ms(workload::quantile(&mut consensus, 0.5)),
        commit_wait_p50_us: workload::quantile(&mut wait, 0.5) as f64 / 1e3,
        exposed_wait_share: share(|x| x[2]),
        commit_wait_share: share(|x| x[1]),
        regions,
        history_ops: history.len(),
        anomalies: anomalies.len(),
    })
}

/// Per region: its clients, placed there, reading from the region's own node.
fn region_clients(
    b: &MultiRegionBench,
    base: &ttstore::client::Client,
    nodes: &[(u64, String)],
) -> Vec<(String, ttstore::client::Client, WorkloadConfig)> {
    let mut per_region = Vec::new();
    for (k, region) in b.topology.regions.iter().enumerate() {
        let Some(local) = b.topology.nodes_in(region).first().copied() else {
            continue;
        };
        let client = base.clone().in_region(&b.topology, region, nodes);
        let wl = WorkloadConfig {
            clients: b.clients_per_region,
            keys: b.keys,
            write_fraction: b.write_fraction,
            consistency: pb::Consistency::Strong,
            seed: 11 + k as u64,
            // A local cluster lists node i at index i − 1.
            read_from: Some((local - 1) as usize),
            first_client: (k * b.clients_per_region) as u32,
        };
        per_region.push((region.clone(), client, wl));
    }
    per_region
}

/// Each region's figures, and every acknowledged write's (client latency, leader-side
/// `[replicate, commit wait, exposed wait, total]`) (ns).
fn figures(
    per_region: &[(String, ttstore::client::Client, WorkloadConfig)],
    measured: &[Vec<workload::Sample>],
) -> (Vec<RegionFigures>, Vec<(i64, [i64; 4])>) {
    let ms = |ns: i64| ns as f64 / 1e6;
    let mut regions = Vec::new();
    for ((region, _, _), samples) in per_region.iter().zip(measured) {
        let mut w: Vec<i64> = samples
            .iter()
            .filter(|s| s.txn)
            .filter_map(|s| s.latency_ns)
            .collect();
        let mut r: Vec<i64> = samples
            .iter()
            .filter(|s| !s.txn)
            .filter_map(|s| s.latency_ns)
            .collect();
        let mut x: Vec<i64> = samples
            .iter()
            .filter(|s| s.txn && s.shards > 1)
            .filter_map(|s| s.latency_ns)
            .collect();
        regions.push(RegionFigures {
            region: region.clone(),
            writes: w.len(),
            write_p50_ms: ms(workload::quantile(&mut w, 0.5)),
            write_p99_ms: ms(workload::quantile(&mut w, 0.99)),
            cross_shard_writes: x.len(),
            cross_shard_write_p50_ms: ms(workload::quantile(&mut x, 0.5)),
            cross_shard_write_p99_ms: ms(workload::quantile(&mut x, 0.99)),
            reads: r.len(),
            read_p50_ms: ms(workload::quantile(&mut r, 0.5)),
            read_p99_ms: ms(workload::quantile(&mut r, 0.99)),
            errors: samples.iter().filter(|s| s.error.is_some()).count(),
        });
    }
    let writes = measured
        .iter()
        .flatten()
        .filter_map(|s| Some((s.latency_ns?, s.leader_ns?)))
        .collect();
    (regions, writes)
}

/// Runs the cluster once per ε.
pub fn run(b: &MultiRegionBench) -> Result<MultiRegionReport, Error> {
    let exe = crate::lab::binaries_for(None, &[("ttstore", "ttstore")])?.join("ttstore");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut runs = Vec::new();
    for &eps in &b.epsilons_ns {
        runs.push(rt.block_on(one(&exe, b, eps, 0))?);
    }
    if !b.negative_control {
        let eps = b.epsilons_ns.first().copied().unwrap_or(20_000);
        for &lead in &b.global_leads_ms {
            runs.push(rt.block_on(one(&exe, b, eps, lead))?);
        }
    }
    let mut failures = Vec::new();
    if b.fault.is_some() && !b.negative_control {
        let far = b.topology.regions.last().cloned().unwrap_or_default();
        let first = b.topology.regions.first().cloned().unwrap_or_default();
        let middle = b.topology.regions.get(1).cloned().unwrap_or_default();
        let mut faults = vec![
            Fault::CutRegion(far),
            Fault::CutRegion(first),
            Fault::KillLeader,
        ];
        // A quarantined node that leads a shard keeps its leadership (openraft 0.9 has no
        // leadership transfer), so with shards led from every region the clock row would
        // measure that gap, not the quarantine: it runs on one shard only.
        if b.shards <= 1 {
            faults.push(Fault::WideClock(middle));
        }
        for f in faults {
            failures.push(rt.block_on(fault_run(&exe, b, f))?);
        }
    }
    let mut ap_failures = Vec::new();
    if b.ap && b.fault.is_some() && !b.negative_control {
        let far = b.topology.regions.last().cloned().unwrap_or_default();
        for cut in [Some(far.as_str()), None] {
            ap_failures.push(rt.block_on(crate::multiregion_ap::ap_fault_run(&exe, b, cut))?);
        }
    }
    // The leader's region (the first run's) to the farthest region, there and back.
    let leader = runs
        .first()
        .map(|r| r.leader_region.clone())
        .unwrap_or_default();
    let farthest = b
        .topology
        .regions
        .iter()
        .map(|r| b.topology.link(&leader, r).one_way)
        .max()
        .unwrap_or_default();
    Ok(MultiRegionReport {
        shards: b.shards.max(1),
        topology: b.topology.clone(),
        duration_s: b.duration.as_secs_f64(),
        clients_per_region: b.clients_per_region,
        keys: b.keys,
        write_fraction: b.write_fraction,
        runs,
        failures,
        ap_failures,
        cockroach_global_write_formula_ms: 500.0 + 1.5 * 2.0 * farthest.as_secs_f64() * 1e3,
    })
}
