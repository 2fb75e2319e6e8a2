//! `ttbench sync-rps` runs end to end against a simulated master and reports its fields. No
//! timing is asserted (the machine is shared and noisy): only that requests were served
//! without errors and the report is complete.

mod common;

#[test]
fn sync_rps_reports_throughput_and_latency() {
    bench::lab::binaries(None).expect("the stack binaries");
    let j = common::ttbench_json(&[
        "sync-rps",
        "--duration",
        "1",
        "--connections",
        "2",
        "--inflight",
        "8",
        "--json",
    ]);
    assert!(j["requests"].as_u64().unwrap() > 100, "{j}");
    assert_eq!(j["errors"], 0);
    for k in ["rps", "handler_ns_per_call"] {
        assert!(j[k].as_f64().unwrap() > 0.0, "{k}: {j}");
    }
    for k in ["p50", "p99", "max"] {
        assert!(j["latency_us"][k].as_f64().unwrap() > 0.0, "{k}: {j}");
    }
}
