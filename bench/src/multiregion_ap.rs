//! The failure-mode table's AP column: the same faults on three `ttstore ap-node`s (one per
//! region, every write accepted locally and replicated asynchronously), with clients in every
//! region writing registers and incrementing a PN-counter at their own region's node (at the
//! next nearest when it is down) and reading locally.
//!
//! Per fault it reports what the CP table cannot show: that every region kept serving, how far
//! the nodes diverged, how long they took to converge after the heal, the conflicts reported
//! (pairs of writes to one key whose TrueTime intervals overlap), the stale reads (a read that
//! missed a write acknowledged elsewhere before it began — what AP gives up), and the checks
//! that nothing was silently lost: every acknowledged increment is in the counter, and the kept
//! values are what the TrueTime rule gives over every acknowledged write.

use crate::error::Error;
use crate::multiregion::{FaultRegion, MultiRegionBench, longest_gap};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use ttproto::store as pb;
use ttstore::ap::{LwwMap, LwwRule, Version};
use ttstore::cluster::{ClusterConfig, LocalCluster};
use ttstore::node::realtime_ns;

/// One fault on the AP cluster.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApFailureRow {
    /// What was done.
    pub fault: String,
    /// How long it lasted (s), after 3 s of normal running and followed by as long again.
    pub fault_s: f64,
    /// Per region: completions and the longest stretches without one (an AP region keeps
    /// serving through a cut).
    pub regions: Vec<FaultRegion>,
    /// Whether the nodes' states differed halfway through the fault.
    pub diverged_during: bool,
    /// The most operations one node had that another lacked, halfway through the fault.
    pub max_ops_behind: u64,
    /// From the heal until every node had every operation any node had at the heal (s);
    /// `None`: not within the fault's length again.
    pub converge_s: Option<f64>,
    /// Whether every node held the same state once the writers stopped.
    pub converged: bool,
    /// Acknowledged register writes.
    pub puts: usize,
    /// Pairs of acknowledged writes to one key whose TrueTime intervals overlap (brute force).
    pub overlapping_pairs: usize,
    /// The pairs every node reports (equal to the above when nothing is missed).
    pub conflicts_reported: u64,
    /// Keys whose kept value is an acknowledged write other than the one the TrueTime rule
    /// picks over every acknowledged write (a silent loss; 0 expected).
    pub kept_value_mismatches: usize,
    /// Keys whose kept value is a write whose client never heard back (it was logged, then its
    /// node was killed or the reply lost): it may rightly win.
    pub kept_unacknowledged: usize,
    /// Acknowledged increments of the PN-counter.
    pub increments: i64,
    /// Increments whose client never heard back (they may or may not have been logged).
    pub increments_unknown: i64,
    /// The converged counter.
    pub counter: i64,
    /// Acknowledged increments the counter lacks (0 expected): `max(0, increments − counter)`.
    pub lost_increments: i64,
    /// Local reads, and those that missed a write acknowledged before they began.
    pub reads: usize,
    /// … stale.
    pub stale_reads: usize,
}

type Ap = pb::ap_client::ApClient<Channel>;

/// What one client did.
enum Did {
    Put(Version),
    Add,
    /// An increment whose outcome is unknown.
    AddFailed,
    Read {
        key: String,
        invoke_ns: i64,
        got: Option<(u32, u64)>,
    },
}

struct Sample {
    did: Option<Did>,
    done_ns: i64,
}

/// A client in one region: its nodes nearest first, each with the one-way delay to it.
async fn client(
    targets: Vec<(Ap, Duration)>,
    security: ttsys::mgmt::ClientSecurity,
    tag: usize,
    keys: usize,
    stop: Arc<AtomicBool>,
) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let (mut ap, delay) = targets[at % targets.len()].clone();
        let cross = |d: Duration| async move {
            if !d.is_zero() {
                tokio::time::sleep(d).await;
            }
        };
        let key = format!("k{}", (n * 7 + tag) % keys.max(1));
        cross(delay).await;
        let res: Result<Did, tonic::Status> = match n % 3 {
            0 => {
                let value = format!("c{tag}-{n}");
                let mut r = security.request(pb::ApPutRequest {
                    key: key.clone(),
                    value: value.clone(),
                });
                r.set_timeout(Duration::from_secs(2));
                ap.put(r)
                    .await
                    .map(|r| Did::Put(ttstore::apnode::acknowledged(key, value, &r.into_inner())))
            }
            1 => {
                let mut r = security.request(pb::ApAddRequest {
                    counter: "c".into(),
                    delta: 1,
                });
                r.set_timeout(Duration::from_secs(2));
                ap.add(r).await.map(|_| Did::Add)
            }
            _ => {
                let invoke_ns = realtime_ns();
                let mut r = tonic::Request::new(pb::ApGetRequest {
                    keys: vec![key.clone()],
                    counters: vec![],
                });
                r.set_timeout(Duration::from_secs(2));
                ap.get(r).await.map(|g| {
                    let g = g.into_inner();
                    let got = g
                        .registers
                        .first()
                        .filter(|x| x.value.is_some())
                        .map(|x| (x.origin, x.seq));
                    Did::Read {
                        key,
                        invoke_ns,
                        got,
                    }
                })
            }
        };
        cross(delay).await;
        match res {
            Ok(d) => out.push(Sample {
                did: Some(d),
                done_ns: realtime_ns(),
            }),
            Err(_) => {
                out.push(Sample {
                    did: (n % 3 == 1).then_some(Did::AddFailed),
                    done_ns: realtime_ns(),
                });
                // The node is down or cut off: the next nearest.
                at += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    out
}

async fn connect(addr: &str, security: &ttsys::mgmt::ClientSecurity) -> Result<Ap, Error> {
    let t0 = Instant::now();
    loop {
        match security
            .endpoint(addr)
            .map_err(|e| Error::Failed(e.to_string()))?
            .connect()
            .await
        {
            Ok(ch) => return Ok(pb::ap_client::ApClient::new(ch)),
            Err(e) if t0.elapsed() > Duration::from_secs(10) => {
                return Err(Error::Failed(format!("AP node at {addr}: {e}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Every node's state (a dead node is left out).
async fn states(addrs: &[String], security: &ttsys::mgmt::ClientSecurity) -> Vec<pb::ApStateReply> {
    let mut out = Vec::new();
    for a in addrs {
        if let Ok(ch) = security.endpoint(a).map(|e| e.connect_lazy()) {
            let mut c = pb::ap_client::ApClient::new(ch);
            let mut r = tonic::Request::new(pb::ApStateRequest {});
            r.set_timeout(Duration::from_secs(1));
            if let Ok(s) = c.state(r).await {
                out.push(s.into_inner());
            }
        }
    }
    out
}

fn same(s: &[pb::ApStateReply], nodes: usize) -> bool {
    s.len() == nodes
        && s.iter()
            .all(|x| x.digest == s[0].digest && x.known == s[0].known)
}

/// The most operations one node has that another lacks.
fn behind(s: &[pb::ApStateReply]) -> u64 {
    let mut worst = 0;
    for a in s {
        for b in s {
            let lack: u64 = a
                .known
                .iter()
                .map(|(o, n)| n.saturating_sub(b.known.get(o).copied().unwrap_or(0)))
                .sum();
            worst = worst.max(lack);
        }
    }
    worst
}

/// Cuts (or heals) `region` off from the others, at every node.
async fn cut(
    addrs: &[String],
    inside: &[u64],
    heal: bool,
    security: &ttsys::mgmt::ClientSecurity,
) -> Result<(), Error> {
    for (i, a) in addrs.iter().enumerate() {
        let id = i as u64 + 1;
        let blocked: Vec<u64> = if heal {
            vec![]
        } else if inside.contains(&id) {
            (1..=addrs.len() as u64)
                .filter(|n| !inside.contains(n))
                .collect()
        } else {
            inside.to_vec()
        };
        let mut c = connect(a, security).await?;
        c.partition(security.request(pb::PartitionRequest { blocked }))
            .await
            .map_err(|e| Error::Failed(format!("{a}: {}", e.message())))?;
    }
    Ok(())
}

/// The AP rows' faults: a region cut off (`Some(region)`), or a region's node killed
/// (`None`: the first region's, restarted when the fault ends).
#[allow(
    clippy::too_many_lines,
    reason = "one AP fault run in order (start, clients, fault, halfway state, heal, convergence, checks): kept whole so the measured phases can be read against the row's fields"
)]
pub(crate) async fn ap_fault_run(
    exe: &Path,
    b: &MultiRegionBench,
    cut_region: Option<&str>,
) -> Result<ApFailureRow, Error> {
    let len = b.fault.unwrap_or(Duration::from_secs(12));
    let dir = std::env::temp_dir().join(format!(
        "ttbench-multiregion-ap-{}-{}",
        std::process::id(),
        cut_region.unwrap_or("kill")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = ClusterConfig::new(exe, &dir);
    cfg.ap = true;
    cfg.nodes = b.topology.nodes.len() as u64;
    let eps = b.epsilons_ns.first().copied().unwrap_or(20_000);
    cfg.epsilon_ns = eps;
    cfg.skews_ns = vec![eps * 2 / 5, -eps * 2 / 5, 0];
    cfg.topology = Some(b.topology.clone());
    let mut cluster = LocalCluster::start(cfg)?;
    let security = cluster.security()?;
    let addrs = cluster.addrs();
    let nodes = addrs.len();
    // Clients: in each region, its node first, then the others nearest first.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let mut regions = Vec::new();
    for (k, region) in b.topology.regions.iter().enumerate() {
        let mut order: Vec<(u64, Duration)> = (1..=nodes as u64)
            .map(|id| {
                let r = b.topology.region_of(id).unwrap_or_default();
                (id, b.topology.link(region, r).one_way)
            })
            .collect();
        order.sort_by_key(|(id, d)| (*d, *id));
        for c in 0..b.clients_per_region {
            let mut targets = Vec::new();
            for (id, d) in &order {
                targets.push((connect(&addrs[*id as usize - 1], &security).await?, *d));
            }
            let tag = k * b.clients_per_region + c;
            tasks.push((
                k,
                tokio::spawn(client(targets, security.clone(), tag, b.keys, stop.clone())),
            ));
        }
        regions.push(region.clone());
    }
    let from = realtime_ns();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let first = b.topology.regions.first().cloned().unwrap_or_default();
    let victim = b.topology.nodes_in(&first).first().copied().unwrap_or(1);
    let fault = match cut_region {
        Some(r) => {
            cut(&addrs, &b.topology.nodes_in(r), false, &security).await?;
            format!("partition: {r} cut off")
        }
        None => {
            cluster.kill(victim);
            format!("node crash: {first}'s node killed (kill -9), restarted after the fault")
        }
    };
    let fault_at = realtime_ns();
    tokio::time::sleep(len / 2).await;
    let mid = states(&addrs, &security).await;
    let diverged_during = mid.iter().any(|s| s.digest != mid[0].digest);
    let max_ops_behind = behind(&mid);
    tokio::time::sleep(len - len / 2).await;
    match cut_region {
        Some(r) => cut(&addrs, &b.topology.nodes_in(r), true, &security).await?,
        None => cluster.restart(victim)?,
    }
    let healed_at = realtime_ns();
    // Caught up: every node has every operation any node had when the fault was healed
    // (writes go on meanwhile, so "the same state" would be a moving target until they stop).
    let healed = Instant::now();
    let target: HashMap<u32, u64> = {
        let s = states(&addrs, &security).await;
        let mut t: HashMap<u32, u64> = HashMap::new();
        for x in &s {
            for (o, n) in &x.known {
                let e = t.entry(*o).or_insert(0);
                *e = (*e).max(*n);
            }
        }
        t
    };
    let mut converge_s = None;
    while healed.elapsed() < len {
        let s = states(&addrs, &security).await;
        if s.len() == nodes
            && s.iter().all(|x| {
                target
                    .iter()
                    .all(|(o, n)| x.known.get(o).copied().unwrap_or(0) >= *n)
            })
        {
            converge_s = Some(healed.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(len.saturating_sub(healed.elapsed())).await;
    stop.store(true, Ordering::Relaxed);
    let to = realtime_ns();
    let mut per_region: Vec<Vec<Sample>> = regions.iter().map(|_| Vec::new()).collect();
    for (k, t) in tasks {
        per_region[k].extend(t.await.unwrap_or_default());
    }
    // Once the writers have stopped, every node must hold the same state.
    let t0 = Instant::now();
    let mut end = states(&addrs, &security).await;
    while !same(&end, nodes) && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        end = states(&addrs, &security).await;
    }
    let converged = same(&end, nodes);
    // What was acknowledged, and what the nodes hold.
    let all: Vec<&Sample> = per_region.iter().flatten().collect();
    let puts: Vec<&Version> = all
        .iter()
        .filter_map(|s| match &s.did {
            Some(Did::Put(v)) => Some(v),
            _ => None,
        })
        .collect();
    let increments = all
        .iter()
        .filter(|s| matches!(s.did, Some(Did::Add)))
        .count() as i64;
    let increments_unknown = all
        .iter()
        .filter(|s| matches!(s.did, Some(Did::AddFailed)))
        .count() as i64;
    let mut pairs = BTreeSet::new();
    let mut by_key: HashMap<&str, Vec<&Version>> = HashMap::new();
    for v in &puts {
        by_key.entry(&v.key).or_default().push(v);
    }
    for vs in by_key.values() {
        for (i, a) in vs.iter().enumerate() {
            for c in &vs[i + 1..] {
                if LwwMap::overlap(&a.tt, &c.tt) {
                    pairs.insert((a.key.clone(), a.id().min(c.id()), a.id().max(c.id())));
                }
            }
        }
    }
    let mut rule = LwwMap::new(LwwRule::TrueTime);
    for v in &puts {
        rule.apply(v);
    }
    let expect = rule.values();
    let keys: Vec<String> = expect.keys().cloned().collect();
    let mut c = connect(&addrs[0], &security).await?;
    let got = c
        .get(pb::ApGetRequest {
            keys: keys.clone(),
            counters: vec!["c".into()],
        })
        .await
        .map_err(|e| Error::Failed(e.message().to_string()))?
        .into_inner();
    let acked_ids: BTreeSet<(u32, u64)> = puts.iter().map(|v| v.id()).collect();
    let (mut kept_value_mismatches, mut kept_unacknowledged) = (0, 0);
    for r in &got.registers {
        if !acked_ids.contains(&(r.origin, r.seq)) {
            kept_unacknowledged += 1;
        } else if r.value.as_ref() != expect.get(&r.key) {
            kept_value_mismatches += 1;
        }
    }
    let counter = got.counters.first().map_or(0, |c| c.value);
    // Stale reads: a read that began after a write to its key was acknowledged (anywhere) and
    // returned a version the TrueTime rule ranks below that write.
    let ids: HashMap<(u32, u64), &Version> = puts.iter().map(|v| (v.id(), *v)).collect();
    let mut acked_at: Vec<(i64, &Version)> = all
        .iter()
        .filter_map(|s| match &s.did {
            Some(Did::Put(v)) => Some((s.done_ns, v)),
            _ => None,
        })
        .collect();
    acked_at.sort_by_key(|(t, _)| *t);
    let mut reads = 0;
    let mut stale_reads = 0;
    for s in &all {
        let Some(Did::Read {
            key,
            invoke_ns,
            got,
        }) = &s.did
        else {
            continue;
        };
        reads += 1;
        let seen = got.and_then(|id| ids.get(&id).copied());
        let missed = acked_at
            .iter()
            .take_while(|(t, _)| t < invoke_ns)
            .any(|(_, w)| {
                w.key == *key && seen.is_none_or(|v| v.id() != w.id() && rule.wins(w, v))
            });
        if missed {
            stale_reads += 1;
        }
    }
    cluster.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let fault_regions = regions
        .iter()
        .zip(&per_region)
        .map(|(region, ss)| {
            let done: Vec<i64> = ss
                .iter()
                .filter(|s| s.did.is_some())
                .map(|s| s.done_ns)
                .collect();
            FaultRegion {
                region: region.clone(),
                completed: done.len(),
                failed: ss.iter().filter(|s| s.did.is_none()).count(),
                longest_gap_before_s: longest_gap(&done, from, fault_at),
                longest_gap_during_s: longest_gap(&done, fault_at, healed_at),
                longest_gap_after_s: longest_gap(&done, healed_at, to),
            }
        })
        .collect();
    Ok(ApFailureRow {
        fault,
        fault_s: len.as_secs_f64(),
        regions: fault_regions,
        diverged_during,
        max_ops_behind,
        converge_s,
        converged,
        puts: puts.len(),
        overlapping_pairs: pairs.len(),
        conflicts_reported: end.iter().map(|s| s.conflicts).max().unwrap_or(0),
        kept_value_mismatches,
        kept_unacknowledged,
        increments,
        increments_unknown,
        counter,
        lost_increments: (increments - counter).max(0),
        reads,
        stale_reads,
    })
}
