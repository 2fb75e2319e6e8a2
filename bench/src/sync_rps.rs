//! `ttbench sync-rps`: how many Sync requests per second one master serves.
//!
//! Load: `connections` HTTP/2 channels, each with `inflight` requests outstanding at all times,
//! for `duration` seconds, after a warm-up. Reported beside it, in the same run: the cost of the
//! handler's own work (two raw-clock reads and the model evaluation) without the transport, so
//! the gap shows what the transport costs.

use hdrhistogram::Histogram;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use ttcore::{ClockModel, Rate, Span, Timestamp};
use ttproto::v1;

/// Load parameters.
#[derive(Clone, Debug)]
pub struct Load {
    /// `host:port`.
    pub addr: String,
    /// HTTP/2 connections.
    pub connections: usize,
    /// Requests in flight per connection.
    pub inflight: usize,
    /// Measured seconds.
    pub duration_s: f64,
}

/// Runs the load and returns the JSON report.
pub fn run(load: &Load, threads: usize) -> Result<serde_json::Value, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let report = rt.block_on(drive(load.clone()))?;
    Ok(report)
}

async fn drive(load: Load) -> Result<serde_json::Value, String> {
    let mut clients = Vec::new();
    for _ in 0..load.connections {
        let ep = tonic::transport::Endpoint::from_shared(format!("http://{}", load.addr))
            .map_err(|e| e.to_string())?
            .tcp_nodelay(true);
        let ch = ep
            .connect()
            .await
            .map_err(|e| format!("connect {}: {e}", load.addr))?;
        clients.push(v1::time_master_client::TimeMasterClient::new(ch));
    }
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in &clients {
        for _ in 0..load.inflight {
            let mut c = c.clone();
            let (counting, stop, done, errors) =
                (counting.clone(), stop.clone(), done.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3)
                    .unwrap_or_else(|_| Histogram::new(3).unwrap());
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let r = c
                        .sync(v1::SyncRequest {
                            t1_ns: 0,
                            client_id: String::new(),
                        })
                        .await;
                    if counting.load(Ordering::Relaxed) {
                        match r {
                            Ok(_) => {
                                done.fetch_add(1, Ordering::Relaxed);
                                let _ = h.record(t.elapsed().as_nanos() as u64);
                            }
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                h
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(load.duration_s)).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    for t in tasks {
        if let Ok(h) = t.await {
            let _ = hist.add(h);
        }
    }
    let n = done.load(Ordering::Relaxed);
    Ok(json!({
        "addr": load.addr,
        "connections": load.connections,
        "inflight_per_connection": load.inflight,
        "duration_s": elapsed,
        "requests": n,
        "errors": errors.load(Ordering::Relaxed),
        "rps": n as f64 / elapsed,
        "latency_us": {
            "p50": hist.value_at_quantile(0.5) as f64 / 1e3,
            "p99": hist.value_at_quantile(0.99) as f64 / 1e3,
            "max": hist.max() as f64 / 1e3,
        },
    }))
}

/// Cost of the Sync handler's own work per call (ns): two raw-clock reads and two model
/// evaluations, as `Service::sync_now` does, without gRPC.
pub fn handler_ns_per_call(iters: u64) -> f64 {
    let m = ClockModel {
        ref_raw_ns: ttsys::clock::raw_ns(),
        ref_time: Timestamp::from_nanos(1_790_000_000_000_000_000),
        freq: Rate::from_ppb(12_345),
        eps_ref: Span::from_nanos(300),
        drift_bound: Rate::from_ppb(500),
    };
    let t = Instant::now();
    let mut acc = 0i64;
    for _ in 0..iters {
        let r2 = ttsys::clock::raw_ns();
        let t2 = m.estimate_at(r2).map_or(0, |t| t.as_nanos());
        let r3 = ttsys::clock::raw_ns();
        let t3 = m.estimate_at(r3).map_or(0, |t| t.as_nanos());
        acc = acc.wrapping_add(t2 ^ t3 ^ m.epsilon_at(r3).as_nanos());
    }
    std::hint::black_box(acc);
    t.elapsed().as_nanos() as f64 / iters as f64
}
