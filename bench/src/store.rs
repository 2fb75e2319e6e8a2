//! `ttbench store`: the demo store in TrueTime mode and in HLC mode, on the same machine in one
//! run, under the same concurrent workload — throughput, commit latency, the share of latency
//! that is commit wait, and HLC read restarts. Each run's history also goes through the checker.

use crate::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use ttproto::store as pb;
use ttstore::checker;
use ttstore::cluster::{ClusterConfig, LocalCluster};
use ttstore::node::Mode;
use ttstore::workload::{self, WorkloadConfig};

/// What to run.
#[derive(Clone, Debug)]
pub struct StoreBench {
    /// Measured seconds per mode (after a 1 s warm-up).
    pub duration: Duration,
    /// Concurrent clients.
    pub clients: usize,
    /// Keys.
    pub keys: usize,
    /// Share of operations that write.
    pub write_fraction: f64,
    /// ε of every node's simulated TrueTime (ns).
    pub epsilon_ns: i64,
    /// HLC mode's max offset (ms).
    pub max_offset_ms: u64,
}

/// One mode's figures.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeReport {
    /// `truetime` or `hlc`.
    pub mode: String,
    /// Throughput, latency and commit wait.
    pub summary: workload::Summary,
    /// Operations in the checked history (warm-up included).
    pub history_ops: usize,
    /// What the checker found (a bug in either mode, not a benchmark figure).
    pub anomalies: usize,
}

/// The run's settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Nodes.
    pub nodes: u64,
    /// Concurrent clients.
    pub clients: usize,
    /// Keys.
    pub keys: usize,
    /// Share of operations that write.
    pub write_fraction: f64,
    /// Measured seconds per mode.
    pub duration_s: f64,
    /// Every node's ε (µs).
    pub epsilon_us: f64,
    /// The three nodes' clock skews (µs).
    pub skew_us: [f64; 3],
    /// HLC mode's max offset (ms).
    pub hlc_max_offset_ms: u64,
    /// Read consistency.
    pub reads: String,
    /// Log storage.
    pub storage: String,
}

/// What `ttbench store --json` prints.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreReport {
    /// The settings.
    pub config: StoreConfig,
    /// TrueTime mode.
    pub truetime: ModeReport,
    /// HLC mode.
    pub hlc: ModeReport,
}

async fn one(exe: &std::path::Path, mode: Mode, b: &StoreBench) -> Result<ModeReport, Error> {
    let dir = std::env::temp_dir().join(format!(
        "ttbench-store-{}-{}",
        std::process::id(),
        mode.name()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = ClusterConfig::new(exe, &dir);
    cfg.mode = mode;
    cfg.epsilon_ns = b.epsilon_ns;
    // Clocks off by up to 0.4 ε (inside the bound, and inside the HLC max offset).
    let s = b.epsilon_ns * 2 / 5;
    cfg.skews_ns = vec![s, -s, 0];
    cfg.max_offset_ms = b.max_offset_ms;
    let mut cluster = LocalCluster::start(cfg)?;
    let base = cluster.client()?;
    base.clone().find_leader().await?;
    let wl = WorkloadConfig {
        clients: b.clients,
        keys: b.keys,
        write_fraction: b.write_fraction,
        consistency: pb::Consistency::Strong,
        seed: 1,
        read_from: None,
        first_client: 0,
    };
    // Warm-up (connections, leader's caches): left out of the figures, but part of the history
    // the checker sees (measured reads may return values written during it).
    let stop = Arc::new(AtomicBool::new(false));
    let t = tokio::spawn(workload::run(base.clone(), wl.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let warm = t.await?;
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let t = tokio::spawn(workload::run(base.clone(), wl, stop.clone()));
    tokio::time::sleep(b.duration).await;
    stop.store(true, Ordering::Relaxed);
    let samples = t.await?;
    let secs = t0.elapsed().as_secs_f64();
    cluster.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let summary = workload::summarize(&samples, secs);
    let mut history = workload::history(&warm);
    history.extend(workload::history(&samples));
    let anomalies = checker::check(&history);
    for a in anomalies.iter().take(3) {
        eprintln!("ttbench store ({}): {a}", mode.name());
    }
    Ok(ModeReport {
        mode: mode.name().into(),
        summary,
        history_ops: history.len(),
        anomalies: anomalies.len(),
    })
}

/// Runs both modes and returns one JSON object.
pub fn run(b: &StoreBench) -> Result<StoreReport, Error> {
    let exe: PathBuf = crate::lab::binaries_for(None, &[("ttstore", "ttstore")])?.join("ttstore");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let tt = rt.block_on(one(&exe, Mode::Truetime, b))?;
    let hlc = rt.block_on(one(&exe, Mode::Hlc, b))?;
    Ok(StoreReport {
        config: StoreConfig {
            nodes: 3,
            clients: b.clients,
            keys: b.keys,
            write_fraction: b.write_fraction,
            duration_s: b.duration.as_secs_f64(),
            epsilon_us: b.epsilon_ns as f64 / 1e3,
            skew_us: [
                b.epsilon_ns as f64 * 0.4 / 1e3,
                -(b.epsilon_ns as f64) * 0.4 / 1e3,
                0.0,
            ],
            hlc_max_offset_ms: b.max_offset_ms,
            reads: "strong".into(),
            storage: "redb, fsync per append".into(),
        },
        truetime: tt,
        hlc,
    })
}
