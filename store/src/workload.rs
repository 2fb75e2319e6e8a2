//! A concurrent client workload that records a history for the [`crate::checker`] and the
//! latency figures `ttbench store` reports.
//!
//! Each client loops until told to stop: with probability `write_fraction` it writes a unique
//! value to a random key (a one-write transaction, or a two-key transaction every fourth time —
//! across shards when the keys fall in different ones), otherwise it reads a random key (two
//! keys in one read every fourth time) at the chosen consistency from "its" node (client `i`
//! reads from node `i mod n`, moving on when that node cannot serve). Times are stamped with the host
//! clock, which is true time for the simulated TrueTime sources.

use crate::checker::{Op, OpKind};
use crate::client::{Client, ClientError};
use crate::mvcc::Ts;
use crate::node::realtime_ns;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use ttproto::store as pb;

/// What the clients do.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// Concurrent clients.
    pub clients: usize,
    /// Keys (`k0` … `k{n-1}`).
    pub keys: usize,
    /// Share of operations that write.
    pub write_fraction: f64,
    /// Read consistency.
    pub consistency: pb::Consistency,
    /// Seed for the op mix.
    pub seed: u64,
    /// The node (index into the client's addresses) every client reads from first; `None`:
    /// client `i` reads from node `i mod n`.
    pub read_from: Option<usize>,
    /// The first client's id in the history (several workloads checked together need
    /// distinct ids).
    pub first_client: u32,
}

/// One client's view of one operation.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The operation as the checker sees it (one per key touched).
    pub ops: Vec<Op>,
    /// Client-observed latency (ns); `None` if it failed.
    pub latency_ns: Option<i64>,
    /// Transaction (true) or read.
    pub txn: bool,
    /// Shards a committed transaction touched (more than one: two-phase commit); 0 otherwise.
    pub shards: usize,
    /// Leader-side figures for transactions: replicate, commit wait, exposed wait, total (ns).
    pub leader_ns: Option<[i64; 4]>,
    /// HLC read restarts.
    pub restarts: u32,
    /// The error, if any.
    pub error: Option<String>,
}

fn ts(t: &Option<pb::Ts>) -> Option<Ts> {
    t.as_ref().map(|t| Ts {
        wall: t.wall,
        logical: t.logical,
    })
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Runs the workload with clients like `base` (its nodes, CA and token; each client keeps its
/// own connections and leader) until `stop` is set; returns every client's samples.
pub async fn run(base: Client, cfg: WorkloadConfig, stop: Arc<AtomicBool>) -> Vec<Sample> {
    let mut tasks = Vec::new();
    for c in 0..cfg.clients {
        let (cl, cfg, stop) = (base.clone(), cfg.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            client(cfg.first_client + c as u32, cl, cfg, stop).await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        if let Ok(mut s) = t.await {
            out.append(&mut s);
        }
    }
    out
}

#[allow(
    clippy::too_many_lines,
    reason = "long by design: one client's loop — pick an operation, run it, record it in the history — kept in one place so the recorded history matches what was sent."
)]
async fn client(
    id: u32,
    mut cl: Client,
    cfg: WorkloadConfig,
    stop: Arc<AtomicBool>,
) -> Vec<Sample> {
    let mut rng = Rng(cfg
        .seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(id as u64 + 1)
        | 1);
    let mut out = Vec::new();
    let mut n = 0u64;
    let mut session: Option<Ts> = None;
    // Values are unique across runs against the same cluster, too (the checker relies on it).
    let tag = realtime_ns();
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        if rng.chance(cfg.write_fraction) {
            let mut keys = vec![format!("k{}", rng.below(cfg.keys))];
            if n % 4 == 0 && cfg.keys > 1 {
                let k2 = format!("k{}", rng.below(cfg.keys));
                if k2 != keys[0] {
                    keys.push(k2);
                }
            }
            let value = format!("c{id}-{n}-{tag}");
            let req = pb::TxnRequest {
                request_id: String::new(),
                compares: vec![],
                writes: keys
                    .iter()
                    .map(|k| pb::Write {
                        key: k.clone(),
                        value: Some(value.clone()),
                    })
                    .collect(),
                reads: vec![],
                group: None,
            };
            let invoke = realtime_ns();
            let res = cl.txn(req).await;
            let done = realtime_ns();
            let (complete, commit, leader_ns, error) = match &res {
                Ok(r) => (
                    Some(done),
                    ts(&r.commit_ts),
                    Some([
                        r.replicate_ns,
                        r.commit_wait_ns,
                        r.exposed_wait_ns,
                        r.total_ns,
                    ]),
                    None,
                ),
                // Rejected requests were never proposed; unavailable ones may have committed.
                Err(ClientError::Rejected(e)) => (Some(done), None, None, Some(e.clone())),
                Err(e) => (None, None, None, Some(e.to_string())),
            };
            let rejected = matches!(res, Err(ClientError::Rejected(_)));
            let txn = (keys.len() > 1).then_some((u64::from(id) << 32) | n);
            session = session.max(commit);
            out.push(Sample {
                ops: if rejected {
                    vec![]
                } else {
                    keys.iter()
                        .map(|k| Op {
                            client: id,
                            kind: OpKind::Write {
                                key: k.clone(),
                                value: value.clone(),
                            },
                            invoke_ns: invoke,
                            complete_ns: complete,
                            ts: commit,
                            txn,
                        })
                        .collect()
                },
                latency_ns: res.as_ref().ok().map(|_| done - invoke),
                txn: true,
                shards: res.as_ref().map_or(0, |r| r.groups.len()),
                leader_ns,
                restarts: 0,
                error,
            });
        } else {
            let mut keys = vec![format!("k{}", rng.below(cfg.keys))];
            if n % 4 == 1 && cfg.keys > 1 {
                let k2 = format!("k{}", rng.below(cfg.keys));
                if k2 != keys[0] {
                    keys.push(k2);
                }
            }
            let txn = (keys.len() > 1).then_some((u64::from(id) << 32) | n);
            let req = pb::ReadRequest {
                keys: keys.clone(),
                consistency: cfg.consistency as i32,
                at: None,
                max_staleness_ns: 50_000_000,
                session: session.map(|t| pb::Ts {
                    wall: t.wall,
                    logical: t.logical,
                }),
            };
            let invoke = realtime_ns();
            let res = cl.read(cfg.read_from.unwrap_or(id as usize), req).await;
            let done = realtime_ns();
            match res {
                Ok(r) => {
                    session = session.max(ts(&r.session));
                    let at = ts(&r.read_ts);
                    let ops = keys
                        .iter()
                        .map(|key| {
                            let v = r.values.iter().find(|v| v.key == *key);
                            let observed =
                                v.and_then(|v| ts(&v.version).map(|t| (v.value.clone(), t)));
                            Op {
                                client: id,
                                kind: OpKind::Read {
                                    key: key.clone(),
                                    at,
                                    observed,
                                },
                                invoke_ns: invoke,
                                complete_ns: Some(done),
                                ts: None,
                                txn,
                            }
                        })
                        .collect();
                    out.push(Sample {
                        ops,
                        latency_ns: Some(done - invoke),
                        txn: false,
                        shards: 0,
                        leader_ns: None,
                        restarts: r.restarts,
                        error: None,
                    });
                }
                Err(e) => out.push(Sample {
                    ops: vec![],
                    latency_ns: None,
                    txn: false,
                    shards: 0,
                    leader_ns: None,
                    restarts: 0,
                    error: Some(e.to_string()),
                }),
            }
        }
    }
    out
}

/// The `p`-quantile (0..=1) of `v` (sorted in place); 0 for an empty slice.
pub fn quantile(v: &mut [i64], p: f64) -> i64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

/// Summary figures of a run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Acknowledged transactions per second.
    pub txn_per_s: f64,
    /// Completed reads per second.
    pub reads_per_s: f64,
    /// Client-observed commit latency p50 (µs).
    pub commit_p50_us: f64,
    /// Client-observed commit latency p99 (µs).
    pub commit_p99_us: f64,
    /// Leader-side Raft replication p50 (µs).
    pub replicate_p50_us: f64,
    /// Leader-side commit wait (overlapped with replication) p50 (µs).
    pub commit_wait_p50_us: f64,
    /// Share of total leader-side latency spent only waiting (after the commit was replicated).
    pub commit_wait_share: f64,
    /// Read latency p50 (µs).
    pub read_p50_us: f64,
    /// Read latency p99 (µs).
    pub read_p99_us: f64,
    /// HLC read restarts, total.
    pub read_restarts: u64,
    /// Reads that restarted at least once, per read.
    pub restarts_per_read: f64,
    /// Failed operations (errors reported to the client).
    pub errors: usize,
}

/// Summarises samples from a run of `secs` seconds.
pub fn summarize(samples: &[Sample], secs: f64) -> Summary {
    let mut commit: Vec<i64> = samples
        .iter()
        .filter(|s| s.txn)
        .filter_map(|s| s.latency_ns)
        .collect();
    let mut reads: Vec<i64> = samples
        .iter()
        .filter(|s| !s.txn)
        .filter_map(|s| s.latency_ns)
        .collect();
    let leader: Vec<[i64; 4]> = samples.iter().filter_map(|s| s.leader_ns).collect();
    let mut repl: Vec<i64> = leader.iter().map(|l| l[0]).collect();
    let mut wait: Vec<i64> = leader.iter().map(|l| l[1]).collect();
    let exposed: i64 = leader.iter().map(|l| l[2]).sum();
    let total: i64 = leader.iter().map(|l| l[3]).sum();
    let restarts: u64 = samples.iter().map(|s| s.restarts as u64).sum();
    let restarted = samples.iter().filter(|s| s.restarts > 0).count();
    let us = |v: i64| v as f64 / 1e3;
    Summary {
        txn_per_s: commit.len() as f64 / secs,
        reads_per_s: reads.len() as f64 / secs,
        commit_p50_us: us(quantile(&mut commit, 0.5)),
        commit_p99_us: us(quantile(&mut commit, 0.99)),
        replicate_p50_us: us(quantile(&mut repl, 0.5)),
        commit_wait_p50_us: us(quantile(&mut wait, 0.5)),
        commit_wait_share: if total > 0 {
            exposed as f64 / total as f64
        } else {
            0.0
        },
        read_p50_us: us(quantile(&mut reads, 0.5)),
        read_p99_us: us(quantile(&mut reads, 0.99)),
        read_restarts: restarts,
        restarts_per_read: if reads.is_empty() {
            0.0
        } else {
            restarted as f64 / reads.len() as f64
        },
        errors: samples.iter().filter(|s| s.error.is_some()).count(),
    }
}

/// All checker ops of a run.
pub fn history(samples: &[Sample]) -> Vec<Op> {
    samples.iter().flat_map(|s| s.ops.iter().cloned()).collect()
}
