//! `ttbench sync-rps` runs end to end against a simulated master over UDP and reports its
//! fields. No rate is asserted (the machine is shared and noisy): only that exchanges were
//! answered in both request kinds and that the chronyd column is a figure or says why not.

mod common;

#[test]
fn sync_rps_reports_udp_exchanges_beside_chronyd() {
    bench::lab::binaries(None).expect("the stack binaries");
    let j = common::ttbench_json(&[
        "sync-rps",
        "--duration",
        "1",
        "--threads",
        "1",
        "--window",
        "8",
        "--json",
    ]);
    assert_eq!(j["transport"], "udp", "{j}");
    for k in ["exchanges_per_s", "truetime_exchanges_per_s"] {
        assert!(j[k].as_f64().unwrap() > 100.0, "{k}: {j}");
    }
    assert!(
        j["chronyd_per_s"].as_f64().is_some_and(|v| v > 0.0) || j["chronyd_error"].is_string(),
        "{j}"
    );
}
