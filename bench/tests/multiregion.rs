//! `ttbench multiregion` on real node processes: three regions whose delays are applied to every
//! Raft message and client request, clients writing and reading in every region; every history
//! checked, and the negative control (no commit wait, a clock 1 s behind its ε) caught.

mod common;

use bench::multiregion::MultiRegionReport;

fn multiregion(args: &[&str]) -> MultiRegionReport {
    let mut a = vec!["multiregion", "--json"];
    if !args.contains(&"--write-fraction") {
        a.extend(["--write-fraction", "0.3"]);
    }
    a.extend_from_slice(args);
    let j = common::ttbench_json(&a);
    serde_json::from_value(j.clone())
        .unwrap_or_else(|e| panic!("not a MultiRegionReport ({e}): {j}"))
}

#[test]
fn three_regions_keep_external_consistency_and_the_negative_control_breaks_it() {
    let r = multiregion(&[
        "--duration",
        "4",
        "--epsilon-us",
        "20",
        "--fault-seconds",
        "0",
        "--global-lead-ms",
        "1000",
    ]);
    assert!(r.failures.is_empty());
    assert_eq!(r.runs.len(), 2, "one plain run, one global-table run");
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

    // Global table (writes and closes 1 s ahead): still no anomaly; every write waits out its
    // future timestamp; strong reads no longer wait for the leader's consensus, so every
    // region reads faster than it did in the plain run.
    let g = &r.runs[1];
    eprintln!("{g:#?}");
    assert_eq!(g.global_lead_ms, 1000);
    assert_eq!(g.anomalies, 0, "{g:?}");
    for x in &g.regions {
        assert!(x.writes > 0 && x.reads > 0, "{x:?}");
        assert!(x.write_p50_ms >= 1000.0, "{x:?}");
        let plain = run.regions.iter().find(|p| p.region == x.region).unwrap();
        assert!(x.read_p50_ms < plain.read_p50_ms, "{x:?} vs {plain:?}");
    }

    let neg = multiregion(&[
        "--duration",
        "3",
        "--epsilon-us",
        "20",
        "--fault-seconds",
        "0",
        "--global-lead-ms",
        "0",
        "--negative-control",
    ]);
    let n = &neg.runs[0];
    assert!(n.negative_control);
    assert!(n.anomalies > 0, "the checker missed stale reads: {n:?}");
}

#[test]
fn shards_led_from_three_regions_commit_across_shards_with_commit_wait_hidden() {
    let r = multiregion(&[
        "--duration",
        "8",
        "--epsilon-us",
        "20",
        "--fault-seconds",
        "6",
        "--global-lead-ms",
        "0",
        "--shards",
        "3",
        "--write-fraction",
        "0.5",
        "--ap",
    ]);
    assert_eq!(r.shards, 3);
    let run = &r.runs[0];
    eprintln!("{run:#?}");
    assert_eq!(
        run.shard_leader_regions,
        vec!["us-east", "eu-west", "ap-south"],
        "{run:?}"
    );
    assert_eq!(run.anomalies, 0, "{run:?}");
    let cross: usize = run.regions.iter().map(|g| g.cross_shard_writes).sum();
    assert!(cross > 0, "no cross-shard write committed: {run:?}");
    // A cross-shard write needs both phases at leaders in other regions: never faster than a
    // round trip to the nearest other region (80 ms) for each.
    for g in run.regions.iter().filter(|g| g.cross_shard_writes > 0) {
        assert!(g.cross_shard_write_p50_ms >= 160.0, "{g:?}");
    }
    // Commit wait (2ε) beside two phases of cross-region consensus adds nothing.
    assert!(run.exposed_wait_share < 0.01, "{run:?}");
    // The failure-mode table on the sharded store: no anomaly through a cut region, the
    // leader's region cut and a leader killed, with cross-shard transactions in the mix (the
    // clock row needs one shard).
    assert_eq!(r.failures.len(), 3, "{r:?}");
    for f in &r.failures {
        eprintln!("{f:?}");
        assert_eq!(f.anomalies, 0, "{f:?}");
        assert!(f.history_ops > 20, "{f:?}");
    }
    check_ap_rows(&r);
}

#[test]
fn the_failure_modes_keep_a_cp_store_consistent_and_unavailable_only_where_it_must_be() {
    let r = multiregion(&[
        "--duration",
        "1",
        "--epsilon-us",
        "20",
        "--fault-seconds",
        "12",
        "--global-lead-ms",
        "0",
    ]);
    assert_eq!(r.failures.len(), 4, "{r:?}");
    for f in &r.failures {
        eprintln!("{f:?}");
        assert_eq!(f.anomalies, 0, "{f:?}");
        assert!(f.history_ops > 20, "{f:?}");
    }
    let region = |f: &bench::multiregion::FailureRow, name: &str| {
        f.regions.iter().find(|g| g.region == name).unwrap().clone()
    };
    // ap-south cut off: the majority (us-east, eu-west) keeps committing and reading; ap-south,
    // alone, can serve no strong read or write for the whole fault.
    let far = &r.failures[0];
    assert!(far.fault.contains("ap-south"), "{far:?}");
    for name in ["us-east", "eu-west"] {
        assert!(
            region(far, name).longest_gap_during_s < far.fault_s - 2.0,
            "{far:?}"
        );
    }
    assert!(
        region(far, "ap-south").longest_gap_during_s > far.fault_s - 2.0,
        "{far:?}"
    );
    // The leader killed: the two others elect one of themselves.
    let crash = &r.failures[2];
    assert!(crash.election_s.is_some(), "{crash:?}");
    // eu-west's node's clock past the maximum ε: that node (2) quarantines itself, and
    // eu-west's clients are served by the other regions through the fault.
    let clock = &r.failures[3];
    assert!(clock.fault.contains("eu-west"), "{clock:?}");
    assert_eq!(clock.quarantined_nodes, vec![2], "{clock:?}");
    assert!(
        region(clock, "eu-west").longest_gap_during_s < clock.fault_s - 2.0,
        "{clock:?}"
    );
}

/// The AP rows of a run's table: every region keeps serving through the fault, the
/// nodes diverge and converge, nothing acknowledged is lost silently, every overlap is
/// reported, and the stale-read count shows what AP gives up.
fn check_ap_rows(r: &bench::multiregion::MultiRegionReport) {
    assert_eq!(r.ap_failures.len(), 2, "{r:?}");
    for f in &r.ap_failures {
        eprintln!("{f:?}");
        for g in &f.regions {
            assert!(g.completed > 0, "{f:?}");
            assert!(g.longest_gap_during_s < f.fault_s - 2.0, "{g:?} in {f:?}");
        }
        assert!(f.converged && f.converge_s.is_some(), "{f:?}");
        assert_eq!(f.lost_increments, 0, "{f:?}");
        // Nothing invented: at most the increments whose clients never heard back are extra.
        assert!(f.counter <= f.increments + f.increments_unknown, "{f:?}");
        assert!(f.increments > 0 && f.puts > 0, "{f:?}");
        assert_eq!(f.kept_value_mismatches, 0, "{f:?}");
        assert_eq!(f.conflicts_reported, f.overlapping_pairs as u64, "{f:?}");
    }
    let cut = &r.ap_failures[0];
    assert!(cut.fault.contains("ap-south"), "{cut:?}");
    assert!(cut.diverged_during && cut.max_ops_behind > 0, "{cut:?}");
    // The cut-off region's reads missed what the others wrote: the check can find staleness.
    assert!(cut.stale_reads > 0, "{cut:?}");
}
