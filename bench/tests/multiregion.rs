//! `ttbench multiregion` on real node processes: three regions whose delays are applied to every
//! Raft message and client request, clients writing and reading in every region; every history
//! checked, and the negative control (no commit wait, a clock 1 s behind its ε) caught.

mod common;

use bench::multiregion::MultiRegionReport;

fn multiregion(args: &[&str]) -> MultiRegionReport {
    let mut a = vec!["multiregion", "--json", "--clients-per-region", "1"];
    a.extend_from_slice(args);
    let j = common::ttbench_json(&a);
    serde_json::from_value(j.clone())
        .unwrap_or_else(|e| panic!("not a MultiRegionReport ({e}): {j}"))
}

#[test]
fn three_regions_keep_external_consistency_and_the_negative_control_breaks_it() {
    let r = multiregion(&["--duration", "3", "--epsilon-us", "20"]);
    let run = &r.runs[0];
    eprintln!("{run:#?}");
    assert_eq!(run.anomalies, 0, "{run:?}");
    assert!(run.history_ops > 20, "{run:?}");
    let region = |name: &str| run.regions.iter().find(|g| g.region == name).unwrap();
    for g in &run.regions {
        assert!(g.writes > 0 && g.reads > 0, "{g:?}");
    }
    // The delays are applied: consensus needs the nearest other region (40 ms each way), and
    // no write from ap-south can beat its 100 ms each way to the leader in us-east plus that.
    assert_eq!(run.leader_region, "us-east");
    assert!(run.consensus_p50_ms >= 80.0, "{run:?}");
    for g in &run.regions {
        assert!(g.write_p50_ms >= 80.0, "{g:?}");
    }
    assert!(region("ap-south").write_p50_ms >= 280.0, "{run:?}");
    // Commit wait (2ε ≈ 40 µs) runs beside a consensus round trip of ≥ 80 ms: it adds nothing.
    assert!(run.exposed_wait_share < 0.01, "{run:?}");

    let neg = multiregion(&[
        "--duration",
        "3",
        "--epsilon-us",
        "20",
        "--negative-control",
    ]);
    let n = &neg.runs[0];
    assert!(n.negative_control);
    assert!(n.anomalies > 0, "the checker missed stale reads: {n:?}");
}
