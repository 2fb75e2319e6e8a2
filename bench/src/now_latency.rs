//! `ttbench now-latency`: the cost of `TrueTime::now()` through timed's page (the counter path
//! where the page has a counter block, and the raw-clock path beside it) beside a plain
//! `clock_gettime(CLOCK_REALTIME)` and AWS ClockBound's clients (`clock-bound-client` 2's
//! `now()` on a v2 segment, `clock-bound` 3's on a layout-3 segment), in one run, interleaved
//! (a batch of each in turn) so all see the same machine noise; with 1 and with 2 threads
//! reading at once.
//!
//! `ttbench commit-wait-overshoot`: how long after the exact instant at which `after(s)` first
//! holds does `commit_wait` return (blocking and async), on real time.

use crate::error::Error;
use hdrhistogram::Histogram;
use serde_json::json;
use std::path::Path;
use std::time::Instant;
use ttcore::{ClockStatus, Rate, Span};
use ttsys::shm::PageWriter;

/// Writes a synchronized page whose model is the host's realtime with ε `eps` growing at
/// `drift`, valid for an hour.
pub fn synthetic_page(path: &Path, eps: Span, drift: Rate) -> Result<PageWriter, Error> {
    let mut w = PageWriter::open(path)?;
    w.write(&ttsys::shm::host_realtime_page(
        eps,
        drift,
        ClockStatus::Synchronized,
    ));
    Ok(w)
}

/// [`synthetic_page`] with a counter block calibrated over 1.1 s (none where the counter is not
/// usable), as timed writes it.
fn synthetic_page_with_counter(path: &Path, eps: Span, drift: Rate) -> Result<PageWriter, Error> {
    let mut w = PageWriter::open(path)?;
    w.write(&ttsys::shm::host_realtime_page_with_counter(
        eps,
        drift,
        ClockStatus::Synchronized,
        std::time::Duration::from_millis(1_100),
    ));
    Ok(w)
}

/// A synchronized ClockBound 3 segment (bound 100 µs, 200 ppm) on the counter's rate measured
/// over 300 ms, valid for an hour; `None` without a usable counter.
fn synthetic_clockbound3(path: &Path) -> Result<Option<ttsys::shm::ClockBound3Writer>, Error> {
    if ttsys::tsc::unusable_reason().is_some() {
        return Ok(None);
    }
    let (Some(a), _, Some(b)) = (
        ttsys::tsc::pair(),
        std::thread::sleep(std::time::Duration::from_millis(300)),
        ttsys::tsc::pair(),
    ) else {
        return Ok(None);
    };
    let mut w = ttsys::shm::ClockBound3Writer::open(path)?;
    let rt = plain_clock_gettime(libc::CLOCK_REALTIME);
    w.write(&ttsys::shm::ClockBound3Data {
        as_of_tsc: b.tsc,
        as_of_ns: rt,
        void_after_ns: rt + 3_600_000_000_000,
        period_s: (b.raw - a.raw) as f64 / (b.tsc - a.tsc) as f64 * 1e-9,
        period_err: 1e-6,
        bound_ns: 100_000,
        max_drift_ppb: 200_000,
        status: ttsys::shm::cb_status::SYNCHRONIZED,
        disruption_marker: 0,
    });
    Ok(Some(w))
}

/// A synchronized ClockBound v2 segment (bound 100 µs, 200 ppm), valid for an hour.
fn synthetic_clockbound(path: &Path) -> Result<ttsys::shm::ClockBoundWriter, Error> {
    let mut w = ttsys::shm::ClockBoundWriter::open(path)?;
    let mono = plain_clock_gettime(libc::CLOCK_MONOTONIC_COARSE);
    w.write(&ttsys::shm::ClockBoundData {
        as_of_mono_ns: mono,
        void_after_mono_ns: mono + 3_600_000_000_000,
        bound_ns: 100_000,
        max_drift_ppb: 200_000,
        status: ttsys::shm::cb_status::SYNCHRONIZED,
        disruption_marker: 0,
    });
    Ok(w)
}

/// A plain `clock_gettime(id)` through libc (the vDSO), with nothing of ours around it: the
/// baselines are measured on exactly the call an application would make.
#[inline(always)]
fn plain_clock_gettime(id: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes a timespec we own.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

struct Pair {
    tt: Histogram<u64>,
    tt_raw_path: Histogram<u64>,
    cg: Histogram<u64>,
    raw: Histogram<u64>,
    cb: Histogram<u64>,
    cb3: Histogram<u64>,
}

impl Pair {
    fn new() -> Pair {
        let h = || Histogram::new(3).expect("hist");
        Pair {
            tt: h(),
            tt_raw_path: h(),
            cg: h(),
            raw: h(),
            cb: h(),
            cb3: h(),
        }
    }

    fn add(&mut self, o: &Pair) {
        let _ = self.tt.add(&o.tt);
        let _ = self.tt_raw_path.add(&o.tt_raw_path);
        let _ = self.cg.add(&o.cg);
        let _ = self.raw.add(&o.raw);
        let _ = self.cb.add(&o.cb);
        let _ = self.cb3.add(&o.cb3);
    }
}

/// Times `batch` calls of `f` and records the per-call cost (ps) in `h`.
#[inline(always)]
fn batch_of(h: &mut Histogram<u64>, batch: usize, sink: &mut i64, mut f: impl FnMut() -> i64) {
    let t = Instant::now();
    for _ in 0..batch {
        *sink = sink.wrapping_add(f());
    }
    let _ = h.record((t.elapsed().as_nanos() as u64 * 1000) / batch as u64);
}

/// The readers measured side by side.
struct Readers<'a> {
    tt: &'a ttclient::TrueTime,
    tt_raw_path: &'a ttclient::TrueTime,
    cb: &'a Path,
    cb3: Option<&'a Path>,
}

/// Per-call cost in ps (batch time / batch size), recorded per batch.
fn measure(r: &Readers<'_>, batches: usize, batch: usize) -> Pair {
    let mut p = Pair::new();
    let mut cbc =
        clock_bound_client::ClockBoundClient::new_with_path(r.cb.to_str().expect("utf-8 path"))
            .ok();
    let mut cb3 = r
        .cb3
        .and_then(|c| clock_bound::Client::new_with_path(c.to_str().expect("utf-8 path")).ok());
    let mut sink = 0i64;
    for _ in 0..batches {
        batch_of(&mut p.tt, batch, &mut sink, || {
            r.tt.now().map(|i| i.latest().as_nanos()).unwrap_or(0)
        });
        batch_of(&mut p.tt_raw_path, batch, &mut sink, || {
            r.tt_raw_path
                .now()
                .map(|i| i.latest().as_nanos())
                .unwrap_or(0)
        });
        batch_of(&mut p.cg, batch, &mut sink, || {
            plain_clock_gettime(libc::CLOCK_REALTIME)
        });
        batch_of(&mut p.raw, batch, &mut sink, || {
            plain_clock_gettime(libc::CLOCK_MONOTONIC_RAW)
        });
        if let Some(c) = cbc.as_mut() {
            batch_of(&mut p.cb, batch, &mut sink, || {
                c.now().map(|n| n.latest.tv_nsec()).unwrap_or(0)
            });
        }
        if let Some(c) = cb3.as_mut() {
            batch_of(&mut p.cb3, batch, &mut sink, || {
                c.now().map(|n| n.latest.tv_nsec()).unwrap_or(0)
            });
        }
    }
    std::hint::black_box(sink);
    p
}

/// Per-call costs from one set of readers (ns per call, the median and p99 over batches of
/// 1,000 calls), each beside `clock_gettime(CLOCK_REALTIME)` measured in the same batches.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySummary {
    /// `TrueTime::now()` through the page, p50.
    pub tt_now_ns: f64,
    /// `clock_gettime(CLOCK_REALTIME)`, p50.
    pub clock_gettime_ns: f64,
    /// `tt_now_ns / clock_gettime_ns`.
    pub ratio: f64,
    /// `TrueTime::now()`, p99.
    pub tt_now_ns_p99: f64,
    /// `clock_gettime(CLOCK_REALTIME)`, p99.
    pub clock_gettime_ns_p99: f64,
    /// `tt_now_ns_p99 / clock_gettime_ns_p99`.
    pub ratio_p99: f64,
    /// `clock_gettime(CLOCK_MONOTONIC_RAW)`, p50 (the clock the page is read against).
    pub clock_monotonic_raw_ns: f64,
    /// `tt_now_ns / clock_monotonic_raw_ns`.
    pub ratio_to_raw_clock: f64,
    /// AWS ClockBound 2's client `now()` on a ClockBound segment, p50 (0 when its segment could
    /// not be opened).
    pub clockbound_now_ns: f64,
    /// `clockbound_now_ns / clock_gettime_ns`.
    pub clockbound_ratio: f64,
    /// ClockBound's client, p99.
    pub clockbound_now_ns_p99: f64,
    /// `TrueTime::now()` on the raw-clock path only (`open_raw_clock_path`: two vDSO clock
    /// reads and the fast block), p50.
    pub tt_now_raw_path_ns: f64,
    /// `tt_now_raw_path_ns / clock_gettime_ns`.
    pub raw_path_ratio: f64,
    /// ClockBound 3's client (`clock-bound` 3.0.0-rc.0) `now()` on a layout-3 segment, p50 (0
    /// without a usable counter).
    pub clockbound3_now_ns: f64,
    /// `clockbound3_now_ns / clock_gettime_ns`.
    pub clockbound3_ratio: f64,
    /// ClockBound 3's client, p99.
    pub clockbound3_now_ns_p99: f64,
}

/// What `ttbench now-latency --json` prints; the text form and the tests read this type.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NowLatency {
    /// One thread reading.
    pub one_thread: LatencySummary,
    /// Two threads reading at once (both histograms merged).
    pub threads_2: LatencySummary,
    /// Batches per reader.
    pub batches: usize,
    /// Calls per batch.
    pub calls_per_batch: usize,
    /// `page` (a running timed's) or `synthetic page`.
    pub source: String,
    /// Whether the page had a counter block when measured (`tt_now_ns` is then the counter
    /// path's cost).
    pub counter_path: bool,
}

fn summary(p: &Pair) -> LatencySummary {
    let ns = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    LatencySummary {
        tt_now_ns: ns(&p.tt, 0.5),
        clock_gettime_ns: ns(&p.cg, 0.5),
        ratio: ns(&p.tt, 0.5) / ns(&p.cg, 0.5),
        tt_now_ns_p99: ns(&p.tt, 0.99),
        clock_gettime_ns_p99: ns(&p.cg, 0.99),
        ratio_p99: ns(&p.tt, 0.99) / ns(&p.cg, 0.99),
        clock_monotonic_raw_ns: ns(&p.raw, 0.5),
        ratio_to_raw_clock: ns(&p.tt, 0.5) / ns(&p.raw, 0.5),
        clockbound_now_ns: ns(&p.cb, 0.5),
        clockbound_ratio: ns(&p.cb, 0.5) / ns(&p.cg, 0.5),
        clockbound_now_ns_p99: ns(&p.cb, 0.99),
        tt_now_raw_path_ns: ns(&p.tt_raw_path, 0.5),
        raw_path_ratio: ns(&p.tt_raw_path, 0.5) / ns(&p.cg, 0.5),
        clockbound3_now_ns: ns(&p.cb3, 0.5),
        clockbound3_ratio: ns(&p.cb3, 0.5) / ns(&p.cg, 0.5),
        clockbound3_now_ns_p99: ns(&p.cb3, 0.99),
    }
}

/// Runs the latency comparison against the page at `page` (a synthetic one if `None`).
pub fn now_latency(page: Option<&Path>, batches: usize) -> Result<NowLatency, Error> {
    let dir = std::env::temp_dir().join(format!("ttbench-page-{}", std::process::id()));
    let (_w, path) = match page {
        Some(p) => (None, p.to_path_buf()),
        None => {
            let p = dir.join("page");
            std::fs::create_dir_all(&dir)?;
            (
                Some(synthetic_page_with_counter(
                    &p,
                    Span::from_micros(100),
                    Rate::from_ppm(200),
                )?),
                p,
            )
        }
    };
    let tt = ttclient::TrueTime::open(&path)?;
    tt.now()
        .map_err(|e| Error::at("the page is not usable", e))?;
    let tt_raw_path = ttclient::TrueTime::open_raw_clock_path(&path)?;
    let counter_path = ttsys::shm::PageReader::open(&path)?.read()?.tsc.is_some();
    std::fs::create_dir_all(&dir)?;
    let cb = dir.join("clockbound-shm0");
    let _cbw = synthetic_clockbound(&cb)?;
    let cb3 = dir.join("clockbound-shm1");
    let cb3w = synthetic_clockbound3(&cb3)?;
    let readers = Readers {
        tt: &tt,
        tt_raw_path: &tt_raw_path,
        cb: &cb,
        cb3: cb3w.as_ref().map(|_| cb3.as_path()),
    };
    measure(&readers, 200, 1000); // warm-up
    let one = measure(&readers, batches, 1000);
    let two: Vec<Pair> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| s.spawn(|| measure(&readers, batches, 1000)))
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let mut merged = Pair::new();
    for p in &two {
        merged.add(p);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(NowLatency {
        one_thread: summary(&one),
        threads_2: summary(&merged),
        batches,
        calls_per_batch: 1000,
        source: if page.is_some() {
            "page".into()
        } else {
            "synthetic page".into()
        },
        counter_path,
    })
}

/// Commit-wait overshoot: `n` waits for a fresh commit timestamp each, blocking and async.
pub fn commit_wait_overshoot(n: usize) -> Result<serde_json::Value, Error> {
    let dir = std::env::temp_dir().join(format!("ttbench-cw-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("page");
    let _w = synthetic_page(&path, Span::from_micros(500), Rate::from_ppm(200))?;
    let tt = ttclient::TrueTime::open(&path)?;
    let model = ttsys::shm::PageReader::open(&path)
        .and_then(|r| r.read())?
        .model;
    let mut blocking = Histogram::<u64>::new(3)?;
    let mut waited = Histogram::<u64>::new(3)?;
    let mut early = 0u64;
    for _ in 0..n {
        let s = tt.commit_timestamp()?;
        let r0 = ttsys::clock::raw();
        let w = tt.commit_wait_blocking(s)?;
        let ret = ttsys::clock::raw();
        let exact = model.raw_when_after(s, r0, r0.add(Span::from_secs(10)), Span::from_nanos(1));
        if ret < exact {
            early += 1;
        }
        let _ = blocking.record(ret.since(exact).as_nanos().max(0) as u64);
        let _ = waited.record(w.waited.as_nanos() as u64);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut asynch = Histogram::<u64>::new(3)?;
    rt.block_on(async {
        for _ in 0..n / 4 {
            let Ok(s) = tt.commit_timestamp() else {
                continue;
            };
            let r0 = ttsys::clock::raw();
            if tt.commit_wait(s).await.is_ok() {
                let ret = ttsys::clock::raw();
                let exact =
                    model.raw_when_after(s, r0, r0.add(Span::from_secs(10)), Span::from_nanos(1));
                if ret < exact {
                    early += 1;
                }
                let _ = asynch.record(ret.since(exact).as_nanos().max(0) as u64);
            }
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(json!({
        "waits": n,
        "epsilon_us": 500,
        "returned_early": early,
        "waited_us": {"p50": us(&waited, 0.5), "p99": us(&waited, 0.99)},
        "overshoot_us": {"p50": us(&blocking, 0.5), "p99": us(&blocking, 0.99), "max": blocking.max() as f64 / 1000.0},
        "async_overshoot_us": {"p50": us(&asynch, 0.5), "p99": us(&asynch, 0.99), "max": asynch.max() as f64 / 1000.0},
    }))
}
