//! Real three-node clusters: `ttstore node` child processes on loopback, redb files, gRPC.
//! Tests run one at a time (each starts its own cluster on a two-core machine).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use ttproto::store as pb;
use ttstore::checker::{self, Op, OpKind};
use ttstore::client::{Client, ClientError};
use ttstore::cluster::{ClusterConfig, LocalCluster};
use ttstore::node::{Mode, realtime_ns};
use ttstore::workload::{self, WorkloadConfig};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs an async test body on its own two-worker runtime (the serial guard stays outside it).
fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ttstore"))
}

fn config(dir: &Path) -> ClusterConfig {
    ClusterConfig::new(&exe(), dir)
}

async fn leader_id(c: &mut Client) -> u64 {
    let addr = c.find_leader().await.expect("a leader is elected");
    c.status(&addr).await.expect("leader answers").id
}

/// Strong reads of every key after the run, added to the history: every acknowledged write must
/// still be there (or overwritten by a later one).
async fn final_reads(c: &mut Client, keys: usize, nodes: usize) -> Vec<Op> {
    let mut out = Vec::new();
    for k in 0..keys {
        for n in 0..nodes {
            let key = format!("k{k}");
            let invoke = realtime_ns();
            let r = c
                .read(
                    n,
                    pb::ReadRequest {
                        keys: vec![key.clone()],
                        consistency: pb::Consistency::Strong as i32,
                        ..Default::default()
                    },
                )
                .await
                .expect("final read");
            let v = &r.values[0];
            out.push(Op {
                client: 999,
                kind: OpKind::Read {
                    key,
                    at: r.read_ts.map(|t| ttstore::mvcc::Ts {
                        wall: t.wall,
                        logical: t.logical,
                    }),
                    observed: v.version.map(|t| {
                        (
                            v.value.clone(),
                            ttstore::mvcc::Ts {
                                wall: t.wall,
                                logical: t.logical,
                            },
                        )
                    }),
                },
                invoke_ns: invoke,
                complete_ns: Some(realtime_ns()),
                ts: None,
                txn: None,
            });
        }
    }
    out
}

struct Run {
    history: Vec<Op>,
    acked_writes: usize,
    reads: usize,
    unknown: usize,
    restarts: u64,
}

fn tally(samples: &[workload::Sample], mut extra: Vec<Op>) -> Run {
    let mut history = workload::history(samples);
    history.append(&mut extra);
    Run {
        acked_writes: samples
            .iter()
            .filter(|s| s.txn && s.latency_ns.is_some())
            .count(),
        reads: samples
            .iter()
            .filter(|s| !s.txn && s.latency_ns.is_some())
            .count(),
        unknown: history
            .iter()
            .filter(|o| matches!(o.kind, OpKind::Write { .. }) && o.complete_ns.is_none())
            .count(),
        restarts: samples.iter().map(|s| s.restarts as u64).sum(),
        history,
    }
}

fn report(name: &str, run: &Run, anomalies: &[checker::Anomaly]) {
    eprintln!(
        "{name}: {} ops, {} acknowledged writes, {} reads, {} unknown outcomes, {} HLC restarts, {} anomalies",
        run.history.len(),
        run.acked_writes,
        run.reads,
        run.unknown,
        run.restarts,
        anomalies.len()
    );
    for a in anomalies.iter().take(5) {
        eprintln!("  {a}");
    }
}

/// A workload running in the background until [`Running::finish`].
struct Running {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<workload::Sample>>,
}

fn start_workload(cluster: &LocalCluster) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let base = cluster.client().unwrap();
    let task = tokio::spawn(workload::run(base, workload_cfg(), stop.clone()));
    Running { stop, task }
}

impl Running {
    async fn finish(self) -> Vec<workload::Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

fn workload_cfg() -> WorkloadConfig {
    WorkloadConfig {
        clients: 4,
        keys: 3,
        write_fraction: 0.5,
        consistency: pb::Consistency::Strong,
        seed: 7,
        read_from: None,
        first_client: 0,
    }
}

/// Cuts node `l` off from both other nodes for `secs` seconds, heals, and lets it settle 2 s.
async fn cut_off_and_heal(admin: &mut Client, cluster: &LocalCluster, l: u64, secs: u64) {
    let others: Vec<u64> = (1..=3).filter(|i| *i != l).collect();
    eprintln!("partitioning node {l} from {others:?}");
    let addr = cluster.addr(l).unwrap();
    admin.partition(&addr, others).await.unwrap();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    admin.partition(&addr, vec![]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
}

#[test]
fn external_consistency_holds_with_skew_within_epsilon_through_kills_and_a_partition() {
    let _g = serial();
    block(async {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        // Every clock is off, but by less than the ε it claims.
        cfg.epsilon_ns = 2_000_000;
        cfg.skews_ns = vec![1_500_000, -1_500_000, 900_000];
        let mut cluster = LocalCluster::start(cfg).unwrap();
        let mut admin = cluster.client().unwrap();
        leader_id(&mut admin).await;

        let wl = start_workload(&cluster);
        tokio::time::sleep(Duration::from_secs(2)).await;

        // 1. Kill the leader (SIGKILL), let the others elect, bring it back.
        let l = leader_id(&mut admin).await;
        eprintln!("killing leader {l}");
        cluster.kill(l);
        tokio::time::sleep(Duration::from_secs(3)).await;
        cluster.restart(l).unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;

        // 2. Kill a follower.
        let l = leader_id(&mut admin).await;
        let f = (1..=3).find(|i| *i != l).unwrap();
        eprintln!("killing follower {f}");
        cluster.kill(f);
        tokio::time::sleep(Duration::from_secs(2)).await;
        cluster.restart(f).unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;

        // 3. Cut the leader off from both followers, then heal.
        let l = leader_id(&mut admin).await;
        cut_off_and_heal(&mut admin, &cluster, l, 3).await;

        let samples = wl.finish().await;
        let extra = final_reads(&mut admin, 3, 3).await;
        let run = tally(&samples, extra);
        let anomalies = checker::check(&run.history);
        report("truetime, skew within ε, faults", &run, &anomalies);
        assert!(anomalies.is_empty(), "anomalies: {anomalies:?}");
        // Not vacuous: the clients got work done on both sides of every fault.
        assert!(
            run.acked_writes >= 20,
            "only {} acknowledged writes",
            run.acked_writes
        );
        assert!(run.reads >= 20, "only {} reads", run.reads);
        let seen = run
            .history
            .iter()
            .filter(|o| {
                matches!(
                    &o.kind,
                    OpKind::Read {
                        observed: Some(_),
                        ..
                    }
                )
            })
            .count();
        assert!(seen >= 10, "reads saw values only {seen} times");
        cluster.stop();
    })
}

/// The negative control on `cfg` (one shard or several): two nodes run 50 ms ahead while
/// claiming ε = 1 ms, node 3 is right, and there is no commit wait. The checker must find the
/// stale reads. Returns the workload's samples.
async fn negative_control(mut cfg: ClusterConfig, name: &str) -> Vec<workload::Sample> {
    cfg.commit_wait = false;
    cfg.epsilon_ns = 1_000_000;
    cfg.skews_ns = vec![50_000_000, 50_000_000, 0];
    let shards = cfg.shards;
    let mut cluster = LocalCluster::start(cfg).unwrap();
    let mut admin = cluster.client().unwrap();
    for g in 0..shards {
        let l = group_leader(&mut admin, g).await;
        assert_ne!(l, 3, "the scenario needs skewed leaders");
    }
    let wl = start_workload(&cluster);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let samples = wl.finish().await;
    let run = tally(&samples, vec![]);
    let anomalies = checker::check(&run.history);
    report(name, &run, &anomalies);
    assert!(
        anomalies.iter().any(|a| a.rule == "write -> read"),
        "the checker must find the stale reads: {anomalies:?}"
    );
    cluster.stop();
    samples
}

#[test]
fn negative_control_no_commit_wait_and_skew_beyond_epsilon_is_caught() {
    let _g = serial();
    block(async {
        let dir = tempfile::tempdir().unwrap();
        negative_control(config(dir.path()), "negative control").await;
    })
}

#[test]
fn hlc_mode_is_consistent_within_the_max_offset_and_counts_restarts() {
    let _g = serial();
    block(async {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.mode = Mode::Hlc;
        cfg.max_offset_ms = 10;
        // The leader (node 1, which initialises) runs ahead of the other gateways.
        cfg.skews_ns = vec![3_000_000, -2_000_000, -2_000_000];
        let mut cluster = LocalCluster::start(cfg).unwrap();
        let mut admin = cluster.client().unwrap();
        leader_id(&mut admin).await;
        let wl = start_workload(&cluster);
        tokio::time::sleep(Duration::from_secs(4)).await;
        let samples = wl.finish().await;
        let extra = final_reads(&mut admin, 3, 3).await;
        let run = tally(&samples, extra);
        let anomalies = checker::check(&run.history);
        report("hlc", &run, &anomalies);
        assert!(anomalies.is_empty(), "anomalies: {anomalies:?}");
        assert!(run.acked_writes >= 20 && run.reads >= 20);
        // Gateways behind the leader read below fresh commits and must restart past them.
        assert!(run.restarts > 0, "no read ever restarted");
        cluster.stop();
    })
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one three-node cluster, started once, taken through consistency levels, bad input, membership and a restart (starting a cluster per case would triple the test's time)"
)]
fn consistency_levels_bad_input_membership_and_restart_durability() {
    let _g = serial();
    block(async {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        // Snapshot often, so the node added below must be brought up by a snapshot install.
        cfg.snapshot_every = 20;
        let mut cluster = LocalCluster::start(cfg).unwrap();
        let addrs = cluster.addrs();
        let mut c = cluster.client().unwrap();
        leader_id(&mut c).await;
        let put = |k: &str, v: &str| pb::TxnRequest {
            writes: vec![pb::Write {
                key: k.into(),
                value: Some(v.into()),
            }],
            ..Default::default()
        };
        let read = |keys: &[&str], consistency: pb::Consistency| pb::ReadRequest {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            consistency: consistency as i32,
            ..Default::default()
        };

        // Commit wait: the reply comes after the commit timestamp has passed on every clock.
        let w1 = c.txn(put("a", "1")).await.unwrap();
        let s1 = w1.commit_ts.unwrap();
        assert!(
            realtime_ns() > s1.wall,
            "acknowledged before its commit timestamp"
        );
        assert!(w1.commit_wait_ns > 0);
        let w2 = c.txn(put("a", "2")).await.unwrap();
        assert!(w2.commit_ts.unwrap().wall > s1.wall);

        // strong, at a follower.
        let r = c
            .read(2, read(&["a", "nope"], pb::Consistency::Strong))
            .await
            .unwrap();
        assert_eq!(r.values[0].value.as_deref(), Some("2"));
        assert_eq!(r.values[1].value, None, "an unknown key reads as not found");
        assert_eq!(r.values[1].version, None);

        // snapshot at the first commit sees the old value, repeatably.
        let mut snap = read(&["a"], pb::Consistency::Snapshot);
        snap.at = Some(s1);
        for n in 0..3 {
            let before = realtime_ns();
            let r = c.read(n, snap.clone()).await.unwrap();
            assert_eq!(r.values[0].value.as_deref(), Some("1"));
            // The reply bounds how old its data may be: at least since the snapshot.
            assert!(r.staleness_bound_ns >= before - s1.wall, "{r:?}");
        }

        // session: read-your-writes at any replica.
        let w3 = c.txn(put("b", "x")).await.unwrap();
        let mut sess = read(&["b"], pb::Consistency::Session);
        sess.session = w3.commit_ts;
        for n in 0..3 {
            let r = c.read(n, sess.clone()).await.unwrap();
            assert_eq!(
                r.values[0].value.as_deref(),
                Some("x"),
                "node {n} did not read its session's write"
            );
            assert!(r.read_ts.unwrap().wall >= w3.commit_ts.unwrap().wall);
        }

        // bounded staleness: served locally, no staler than asked.
        let mut bs = read(&["a"], pb::Consistency::BoundedStaleness);
        bs.max_staleness_ns = 500_000_000;
        let before = realtime_ns();
        let r = c.read(1, bs.clone()).await.unwrap();
        assert!(before - r.read_ts.unwrap().wall <= 500_000_000 + 1_000_000);
        assert!(
            (0..=500_000_000 + 1_000_000_000).contains(&r.staleness_bound_ns),
            "{r:?}"
        );

        // Bad input: a clear refusal, nothing proposed.
        for bad in [
            pb::TxnRequest::default(),
            put("", "v"),
            pb::TxnRequest {
                writes: vec![
                    pb::Write {
                        key: "d".into(),
                        value: None,
                    },
                    pb::Write {
                        key: "d".into(),
                        value: Some("1".into()),
                    },
                ],
                ..Default::default()
            },
        ] {
            match c.txn(bad).await {
                Err(ClientError::Rejected(msg)) => eprintln!("refused as expected: {msg}"),
                other => panic!("bad request not refused: {other:?}"),
            }
        }
        bs.max_staleness_ns = 0;
        assert!(matches!(c.read(0, bs).await, Err(ClientError::Rejected(_))));
        let mut no_at = read(&["a"], pb::Consistency::Snapshot);
        no_at.at = None;
        assert!(matches!(
            c.read(0, no_at).await,
            Err(ClientError::Rejected(_))
        ));

        // Compare-and-set.
        let cas = pb::TxnRequest {
            compares: vec![pb::Compare {
                key: "a".into(),
                version: Some(s1),
            }],
            writes: vec![pb::Write {
                key: "a".into(),
                value: Some("3".into()),
            }],
            reads: vec!["a".into()],
            ..Default::default()
        };
        let r = c.txn(cas).await.unwrap();
        assert!(!r.succeeded, "a stale compare must fail");
        assert_eq!(r.reads[0].value.as_deref(), Some("2"));

        // Membership: add node 4, remove node 3; the data is on node 4 and writes still commit.
        // Let closed-timestamp entries push the log well past a snapshot and a purge.
        let leader = c.find_leader().await.unwrap();
        for _ in 0..100 {
            if c.status(&leader).await.unwrap().purged_index > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            c.status(&leader).await.unwrap().purged_index > 0,
            "the leader never purged its log"
        );
        let a4 = cluster.spawn_extra(4).unwrap();
        let m = c.membership(4, Some(a4.clone())).await.unwrap();
        assert!(m.members.iter().any(|m| m.id == 4 && m.voter), "{m:?}");
        let m = c.membership(3, None).await.unwrap();
        assert!(!m.members.iter().any(|m| m.id == 3 && m.voter), "{m:?}");
        let mut c4 = Client::with_security(
            &[addrs[0].clone(), addrs[1].clone(), a4.clone()],
            cluster.security().unwrap(),
        );
        c4.txn(put("c", "after-change")).await.unwrap();
        let r = c4
            .read(2, read(&["a", "c"], pb::Consistency::Strong))
            .await
            .unwrap();
        assert_eq!(r.served_by, 4);
        assert!(
            c4.status(&a4).await.unwrap().snapshot_index > 0,
            "node 4 joined after the log was purged, so it must hold a snapshot"
        );
        assert_eq!(r.values[0].value.as_deref(), Some("2"));
        assert_eq!(r.values[1].value.as_deref(), Some("after-change"));

        // A learner: a member that does not vote, and serves strong reads.
        let a5 = cluster.spawn_extra(5).unwrap();
        let m = c4.add_learner(5, a5.clone()).await.unwrap();
        assert!(m.members.iter().any(|m| m.id == 5 && !m.voter), "{m:?}");
        let voters: Vec<u64> = m.members.iter().filter(|m| m.voter).map(|m| m.id).collect();
        assert_eq!(voters, vec![1, 2, 4], "{m:?}");
        c4.txn(put("c", "after-learner")).await.unwrap();
        let mut c5 = Client::with_security(std::slice::from_ref(&a5), cluster.security().unwrap());
        let r = c5
            .read(0, read(&["c"], pb::Consistency::Strong))
            .await
            .unwrap();
        assert_eq!(r.served_by, 5);
        assert_eq!(r.values[0].value.as_deref(), Some("after-learner"));
        c4.txn(put("c", "after-change")).await.unwrap();

        // Durability: kill every node, restart, the acknowledged writes are all there.
        for id in [1, 2, 4] {
            cluster.kill(id);
        }
        for id in [1, 2, 4] {
            cluster.restart(id).unwrap();
        }
        let r = c4
            .read(0, read(&["a", "b", "c"], pb::Consistency::Strong))
            .await
            .unwrap();
        let got: Vec<_> = r.values.iter().map(|v| v.value.as_deref()).collect();
        assert_eq!(got, vec![Some("2"), Some("x"), Some("after-change")]);
        cluster.stop();
    })
}

#[test]
fn cli_put_get_txn_and_status_speak_json() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::start(config(dir.path())).unwrap();
    let list = cluster.addrs().join(",");
    let token = cluster.token_file().to_path_buf();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(exe())
            .args(args)
            .env("TTSTORE_CLUSTER", &list)
            .env("TTSTORE_TOKEN_FILE", &token)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // The first request may arrive mid-election; the client retries.
    let (ok, out, err) = run(&["put", "k", "v1", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["succeeded"], true);
    let version = v["commit_ts"].as_str().unwrap().to_string();
    let (ok, out, _) = run(&[
        "get",
        "k",
        "--consistency",
        "strong",
        "--json",
        "--node",
        "2",
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["values"][0]["value"], "v1");
    assert_eq!(v["values"][0]["version"], version.as_str());
    let (ok, out, _) = run(&[
        "txn",
        "--if",
        &format!("k={version}"),
        "--put",
        "k=v2",
        "--read",
        "k",
        "--json",
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["succeeded"], true);
    assert_eq!(v["reads"][0]["value"], "v1");
    // Without the cluster token a write is refused and says why; a read still works.
    let other = dir.path().join("not-the-token");
    ttsys::mgmt::Token::generate(&other).unwrap();
    let out = std::process::Command::new(exe())
        .args(["put", "k", "stolen"])
        .env("TTSTORE_CLUSTER", &list)
        .env("TTSTORE_TOKEN_FILE", &other)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a write with the wrong token went through"
    );
    assert!(err.contains("token does not match"), "{err}");
    let (ok, out, _) = run(&["get", "k", "--json"]);
    assert!(ok);
    assert!(out.contains("v2"), "the refused write changed k: {out}");
    let (ok, out, _) = run(&["status", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(
        v.as_array()
            .unwrap()
            .iter()
            .filter(|n| n["role"] == "leader")
            .count(),
        1
    );
    // Bad input: a clear error naming the problem, non-zero exit.
    let (ok, _, err) = run(&["txn", "--put", "novalue"]);
    assert!(!ok && err.contains("KEY=VALUE"), "{err}");
    let (ok, _, err) = run(&["get", "k", "--consistency", "snapshot"]);
    assert!(!ok && err.contains("needs `at`"), "{err}");
    // A dead node: the CLI fails over to the next one.
    cluster.kill(1);
    let (ok, out, err) = run(&["get", "k", "--json"]);
    assert!(ok, "{err}");
    assert!(out.contains("v2"));
    cluster.stop();
}

/// Writes a page as timed would: the host's realtime as the model, ε `eps`, `status`, valid for
/// an hour — the nodes read it through the SDK exactly as they read timed's.
fn write_page(w: &mut ttsys::shm::PageWriter, eps: ttcore::Span, status: ttcore::ClockStatus) {
    w.write(&ttsys::shm::host_realtime_page(
        eps,
        ttcore::Rate::from_ppm(15),
        status,
    ));
}

async fn quarantine_reasons(c: &mut Client, addrs: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for a in addrs {
        out.push(c.status(a).await.expect("status answers").quarantined);
    }
    out
}

fn put(key: &str, value: &str) -> pb::TxnRequest {
    pb::TxnRequest {
        writes: vec![pb::Write {
            key: key.into(),
            value: Some(value.into()),
        }],
        ..Default::default()
    }
}

#[test]
fn a_node_whose_clock_turns_untrustworthy_or_too_wide_stands_aside_until_it_recovers() {
    use ttcore::{ClockStatus, Span};
    let _g = serial();
    block(async {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("page");
        let mut w = ttsys::shm::PageWriter::open(&page).unwrap();
        write_page(&mut w, Span::from_micros(100), ClockStatus::Synchronized);
        let mut cfg = config(&dir.path().join("c"));
        // Every node reads the page (the gRPC fallback is never needed: the page exists).
        cfg.timed = Some((page.clone(), "127.0.0.1:9".into()));
        cfg.max_epsilon_ns = Some(5_000_000);
        let cluster = LocalCluster::start(cfg).unwrap();
        let mut c = cluster.client().unwrap();
        c.find_leader().await.unwrap();
        c.txn(put("q", "before"))
            .await
            .expect("a healthy cluster commits");
        let addrs = cluster.addrs();
        assert!(
            quarantine_reasons(&mut c, &addrs)
                .await
                .iter()
                .all(String::is_empty)
        );

        let read = pb::ReadRequest {
            keys: vec!["q".into()],
            consistency: pb::Consistency::Strong as i32,
            ..Default::default()
        };
        c.deadline = Duration::from_secs(2);
        for (eps, status, why) in [
            (
                Span::from_millis(20),
                ClockStatus::Synchronized,
                "past the maximum",
            ),
            (
                Span::from_micros(100),
                ClockStatus::Unsynchronized,
                "no trustworthy time",
            ),
        ] {
            write_page(&mut w, eps, status);
            let reasons = quarantine_reasons(&mut c, &addrs).await;
            assert!(reasons.iter().all(|r| r.contains(why)), "{reasons:?}");
            // No node serves a read or proposes a write.
            let e = c.txn(put("q", "during")).await.unwrap_err().to_string();
            assert!(e.contains("quarantined"), "{e}");
            let e = c.read(0, read.clone()).await.unwrap_err().to_string();
            assert!(e.contains("quarantined"), "{e}");
        }

        // Recovered: back in service, and nothing was written while it stood aside.
        write_page(&mut w, Span::from_micros(100), ClockStatus::Synchronized);
        assert!(
            quarantine_reasons(&mut c, &addrs)
                .await
                .iter()
                .all(String::is_empty)
        );
        c.deadline = Duration::from_secs(10);
        let r = c.read(0, read.clone()).await.expect("reads again");
        assert_eq!(r.values[0].value.as_deref(), Some("before"));
        c.txn(put("q", "after")).await.expect("commits again");
    });
}

/// Shard `g`'s leader, asking every node until one says it leads it.
async fn group_leader(c: &mut Client, g: u32) -> u64 {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        for a in c.addrs().to_vec() {
            if let Ok(s) = c.group_status(&a, g).await {
                if s.role() == pb::Role::Leader {
                    return s.id;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("shard {g} elected no leader in 20 s");
}

/// Prepared parts still undecided, over every node and shard.
async fn undecided(c: &mut Client, shards: u32) -> u64 {
    let mut n = 0;
    for a in c.addrs().to_vec() {
        for g in 0..shards {
            n += c.group_status(&a, g).await.map_or(0, |s| s.prepared);
        }
    }
    n
}

/// How long, and how often, [`undecided_until`] waits for one decision to reach the followers.
const SETTLE: (Duration, Duration) = (Duration::from_secs(3), Duration::from_millis(20));

/// [`undecided`] over two shards, polled every `every` until `done` holds of it or `within`
/// has passed: the last count (replicas apply decisions when they catch up with their leader).
async fn undecided_until(
    c: &mut Client,
    done: impl Fn(u64) -> bool,
    (within, every): (Duration, Duration),
) -> u64 {
    let t0 = std::time::Instant::now();
    loop {
        let n = undecided(c, 2).await;
        if done(n) || t0.elapsed() >= within {
            return n;
        }
        tokio::time::sleep(every).await;
    }
}

/// Three nodes, two shards with their leaders on nodes 1 and 2, simulated clocks.
fn sharded_config(dir: &Path) -> ClusterConfig {
    let mut cfg = config(dir);
    cfg.shards = 2;
    cfg.group_homes = vec![1, 2];
    // The workload's keys k0…k2 fall in both shards (checked by the tests below).
    cfg
}

fn keys_span_both_shards() {
    let shards: std::collections::BTreeSet<u32> = (0..3)
        .map(|i| ttstore::node::shard_of(&format!("k{i}"), 2))
        .collect();
    assert_eq!(
        shards.len(),
        2,
        "the workload's keys must fall in both shards"
    );
}

#[test]
fn sharded_cluster_is_externally_consistent_across_shards_through_kills_and_a_partition() {
    let _g = serial();
    keys_span_both_shards();
    block(async {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = sharded_config(dir.path());
        cfg.epsilon_ns = 2_000_000;
        cfg.skews_ns = vec![1_500_000, -1_500_000, 900_000];
        let mut cluster = LocalCluster::start(cfg).unwrap();
        let mut admin = cluster.client().unwrap();
        // The leaders start where they were placed.
        assert_eq!(group_leader(&mut admin, 0).await, 1);
        assert_eq!(group_leader(&mut admin, 1).await, 2);

        let wl = start_workload(&cluster);
        tokio::time::sleep(Duration::from_secs(3)).await;
        // 1. Kill shard 1's leader: prepares and decisions there move to its successor, and
        //    parts it held are recovered.
        let l = group_leader(&mut admin, 1).await;
        eprintln!("killing shard 1's leader {l}");
        cluster.kill(l);
        tokio::time::sleep(Duration::from_secs(3)).await;
        cluster.restart(l).unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        // 2. Cut shard 0's leader (a coordinator shard) off from both others, then heal.
        let l = group_leader(&mut admin, 0).await;
        cut_off_and_heal(&mut admin, &cluster, l, 3).await;

        let samples = wl.finish().await;
        let cross = samples
            .iter()
            .filter(|s| s.shards > 1 && s.latency_ns.is_some())
            .count();
        let multi_reads = samples.iter().filter(|s| !s.txn && s.ops.len() > 1).count();
        let extra = final_reads(&mut admin, 3, 3).await;
        let run = tally(&samples, extra);
        let anomalies = checker::check(&run.history);
        report("sharded truetime, skew within ε, faults", &run, &anomalies);
        eprintln!("{cross} cross-shard transactions acknowledged, {multi_reads} two-key reads");
        assert!(anomalies.is_empty(), "anomalies: {anomalies:?}");
        assert!(
            cross >= 5,
            "only {cross} cross-shard transactions acknowledged"
        );
        assert!(multi_reads >= 5, "only {multi_reads} two-key reads");
        assert!(run.acked_writes >= 20 && run.reads >= 20);
        // Nothing is left prepared: every part was decided, by its coordinator or recovery.
        let every = Duration::from_millis(500);
        let left = undecided_until(&mut admin, |n| n == 0, (Duration::from_secs(15), every)).await;
        assert_eq!(left, 0, "prepared parts left undecided");
        cluster.stop();
    })
}

#[test]
fn negative_control_sharded_no_commit_wait_and_skew_beyond_epsilon_is_caught() {
    let _g = serial();
    keys_span_both_shards();
    block(async {
        let dir = tempfile::tempdir().unwrap();
        let samples =
            negative_control(sharded_config(dir.path()), "sharded negative control").await;
        let cross = samples
            .iter()
            .filter(|s| s.shards > 1 && s.latency_ns.is_some())
            .count();
        assert!(cross > 0, "no cross-shard transaction ran");
    })
}

/// A request whose first eight attempts were all aborted (as if an earlier run had lost them to
/// locks) still commits when retried: the coordinator skips the lost attempts. `key` is in
/// shard 1.
async fn lost_attempts_are_skipped(
    cluster: &LocalCluster,
    admin: &mut Client,
    c: &mut Client,
    key: &str,
) {
    let security = cluster.security().unwrap();
    let l0 = group_leader(admin, 0).await;
    let ch = security
        .endpoint(&cluster.addr(l0).unwrap())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw0 = pb::store_client::StoreClient::new(ch);
    for k in 0..8 {
        let d = raw0
            .decide(security.request(pb::DecideRequest {
                group: 0,
                txn_id: format!("unlucky/{k}"),
                commit: false,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(d.state(), pb::TxnState::Aborted);
    }
    let other = (0..)
        .map(|i| format!("other{i}"))
        .find(|k| ttstore::node::shard_of(k, 2) == 0)
        .unwrap();
    let w = c
        .txn(pb::TxnRequest {
            request_id: "unlucky".into(),
            writes: vec![
                pb::Write {
                    key: key.to_string(),
                    value: Some("x".into()),
                },
                pb::Write {
                    key: other,
                    value: Some("x".into()),
                },
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(w.groups, vec![0, 1]);
    assert!(w.succeeded && w.ts_retries >= 8, "{w:?}");
}

#[test]
fn an_undecided_prepare_holds_its_key_until_recovery_aborts_it_in_the_coordinator_shard() {
    let _g = serial();
    block(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = LocalCluster::start(sharded_config(dir.path())).unwrap();
        let mut admin = cluster.client().unwrap();
        group_leader(&mut admin, 0).await;
        let l1 = group_leader(&mut admin, 1).await;
        // A key of shard 1, prepared there by a "coordinator" that then goes silent.
        let key = (0..)
            .map(|i| format!("orphan{i}"))
            .find(|k| ttstore::node::shard_of(k, 2) == 1)
            .unwrap();
        let security = cluster.security().unwrap();
        let ch = security
            .endpoint(&cluster.addr(l1).unwrap())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut raw = pb::store_client::StoreClient::new(ch);
        let prepare = pb::PrepareRequest {
            group: 1,
            txn_id: "orphan-txn/0".into(),
            writes: vec![pb::Write {
                key: key.clone(),
                value: Some("never".into()),
            }],
            coordinator: 0,
            ..Default::default()
        };
        let p = raw
            .prepare(security.request(prepare.clone()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(p.state(), pb::TxnState::Prepared);
        let prepared_at = std::time::Instant::now();
        // One part on every replica, once the followers have applied it.
        let parts = undecided_until(&mut admin, |n| n >= 3, SETTLE).await;
        assert_eq!(parts, 3, "one part on every replica");
        // Without the token the internal calls are refused.
        let anon = pb::PrepareRequest {
            txn_id: "anon/0".into(),
            ..prepare.clone()
        };
        assert_eq!(
            raw.prepare(anon).await.unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        // A part addressed to a shard that does not own its key is refused (it would be written
        // where no read looks).
        let stray = (0..)
            .map(|i| format!("stray{i}"))
            .find(|k| ttstore::node::shard_of(k, 2) == 0)
            .unwrap();
        let wrong = pb::PrepareRequest {
            txn_id: "stray/0".into(),
            writes: vec![pb::Write {
                key: stray,
                value: Some("x".into()),
            }],
            ..prepare.clone()
        };
        let e = raw.prepare(security.request(wrong)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        // A write to the key waits for the lock; recovery (after 5 s) aborts the orphan in
        // shard 0, frees the key, and the write then commits.
        let mut c = cluster.client().unwrap();
        let w = c.txn(put(&key, "after")).await.unwrap();
        let waited = prepared_at.elapsed();
        eprintln!("the write waited {waited:?} for the orphan's lock");
        assert!(
            waited >= ttstore::node::RECOVER_AFTER,
            "the write got through a held lock after {waited:?}"
        );
        assert!(w.succeeded);
        // The leader released the key; the followers apply the abort when they catch up.
        let parts = undecided_until(&mut admin, |n| n == 0, SETTLE).await;
        assert_eq!(parts, 0, "an aborted part left on a replica after 3 s");
        // The decision stands in the coordinator shard: the same prepare again is refused.
        let again = raw
            .prepare(security.request(prepare))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again.state(), pb::TxnState::Aborted);
        let r = c
            .read(
                0,
                pb::ReadRequest {
                    keys: vec![key.clone()],
                    consistency: pb::Consistency::Strong as i32,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(r.values[0].value.as_deref(), Some("after"));

        lost_attempts_are_skipped(&cluster, &mut admin, &mut c, &key).await;
    })
}
