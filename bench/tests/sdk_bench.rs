//! `ttbench now-latency` and `ttbench commit-wait-overshoot` run and report what they promise.
//! No timing is asserted (shared, noisy machine); commit-wait returning early would be a
//! correctness failure and is asserted.

mod common;

fn run(args: &[&str]) -> serde_json::Value {
    common::ttbench_json(args)
}

#[test]
fn now_latency_reports_both_costs_and_the_ratio() {
    let j = run(&["now-latency", "--batches", "200", "--json"]);
    let r: bench::now_latency::NowLatency = serde_json::from_value(j.clone())
        .unwrap_or_else(|e| panic!("not a NowLatency report ({e}): {j}"));
    for (what, s) in [("1 thread", &r.one_thread), ("2 threads", &r.threads_2)] {
        for (k, v) in [
            ("tt_now_ns", s.tt_now_ns),
            ("clock_gettime_ns", s.clock_gettime_ns),
            ("ratio", s.ratio),
            ("clock_monotonic_raw_ns", s.clock_monotonic_raw_ns),
            ("clockbound_now_ns", s.clockbound_now_ns),
            ("clockbound_ratio", s.clockbound_ratio),
            ("tt_now_raw_path_ns", s.tt_now_raw_path_ns),
            ("clockbound3_now_ns", s.clockbound3_now_ns),
            ("clockbound3_ratio", s.clockbound3_ratio),
        ] {
            assert!(v > 0.0, "{what} {k}: {j}");
        }
        assert!((s.ratio - s.tt_now_ns / s.clock_gettime_ns).abs() < 1e-9);
    }
    assert_eq!((r.batches, r.calls_per_batch), (200, 1000));
    // The synthetic page carries a counter block (this machine's counter is usable), so
    // `tt_now_ns` is the counter path's cost.
    assert!(r.counter_path, "{j}");
}

#[test]
fn commit_wait_never_returns_early_on_real_time() {
    let j = run(&["commit-wait-overshoot", "--waits", "200", "--json"]);
    assert_eq!(j["returned_early"], 0, "{j}");
    assert!(j["overshoot_us"]["p99"].as_f64().unwrap() >= 0.0);
    assert!(
        j["waited_us"]["p50"].as_f64().unwrap() > 500.0,
        "a 500 µs ε must make each wait ~1 ms: {j}"
    );
}

#[test]
fn store_bench_reports_both_modes_and_checks_their_histories() {
    let j = run(&["store", "--duration", "2", "--clients", "4", "--json"]);
    let r: bench::store::StoreReport = serde_json::from_value(j.clone())
        .unwrap_or_else(|e| panic!("not a StoreReport ({e}): {j}"));
    for (mode, m) in [("truetime", &r.truetime), ("hlc", &r.hlc)] {
        assert_eq!(m.mode, mode);
        let s = &m.summary;
        for (k, v) in [
            ("txn_per_s", s.txn_per_s),
            ("commit_p50_us", s.commit_p50_us),
            ("commit_p99_us", s.commit_p99_us),
            ("reads_per_s", s.reads_per_s),
            ("replicate_p50_us", s.replicate_p50_us),
        ] {
            assert!(v > 0.0, "{mode}.{k}: {j}");
        }
        assert!(m.history_ops > 0);
        // A consistency violation in either mode is a bug, not a benchmark figure.
        assert_eq!(m.anomalies, 0, "{mode}: {j}");
    }
    // Commit wait only exists in TrueTime mode (≈ 2ε with simulated clocks of ε = 1 ms).
    assert!(r.truetime.summary.commit_wait_p50_us >= 1000.0, "{j}");
    assert_eq!(r.hlc.summary.commit_wait_p50_us, 0.0);
    assert!((0.0..=1.0).contains(&r.truetime.summary.commit_wait_share));
}
