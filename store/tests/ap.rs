//! The AP mode on real processes: three `ttstore ap-node`s in three regions (their delays on
//! every pull), writers in two regions writing the same keys and counters at once, one region
//! cut off and healed. After the heal every node holds the same state; no acknowledged
//! increment of the PN-counter is lost; every pair of acknowledged writes to one key whose
//! TrueTime intervals overlap is reported — and the counter kept as a read-modify-write
//! register, the negative control, loses increments that the same check catches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use ttproto::store as pb;
use ttstore::ap::{LwwMap, LwwRule, Version};
use ttstore::cluster::{ClusterConfig, LocalCluster};

type Ap = pb::ap_client::ApClient<Channel>;

/// What one writer had acknowledged.
#[derive(Default)]
struct Acked {
    puts: Vec<Version>,
    increments: i64,
    rmw_increments: i64,
}

/// A writer at one node: puts unique values to `k0…k3`, increments the PN-counter `c`, and
/// increments the register `rmw` by reading it and writing it back (the negative control).
async fn writer(
    mut ap: Ap,
    security: ttsys::mgmt::ClientSecurity,
    tag: u32,
    stop: Arc<AtomicBool>,
) -> Acked {
    let mut out = Acked::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("k{}", n % 4);
        let value = format!("w{tag}-{n}");
        if let Ok(r) = ap
            .put(security.request(pb::ApPutRequest {
                key: key.clone(),
                value: value.clone(),
            }))
            .await
        {
            out.puts
                .push(ttstore::apnode::acknowledged(key, value, &r.into_inner()));
        }
        if ap
            .add(security.request(pb::ApAddRequest {
                counter: "c".into(),
                delta: 1,
            }))
            .await
            .is_ok()
        {
            out.increments += 1;
        }
        // Read-modify-write of a register: the lost update the PN-counter exists to avoid.
        if let Ok(g) = ap
            .get(pb::ApGetRequest {
                keys: vec!["rmw".into()],
                counters: vec![],
            })
            .await
        {
            let old: i64 = g.into_inner().registers[0]
                .value
                .as_deref()
                .map_or(0, |v| v.parse().unwrap_or(0));
            let value = (old + 1).to_string();
            if let Ok(r) = ap
                .put(security.request(pb::ApPutRequest {
                    key: "rmw".into(),
                    value: value.clone(),
                }))
                .await
            {
                out.rmw_increments += 1;
                out.puts.push(ttstore::apnode::acknowledged(
                    "rmw".into(),
                    value,
                    &r.into_inner(),
                ));
            }
        }
    }
    out
}

async fn connect(addr: &str, security: &ttsys::mgmt::ClientSecurity) -> Ap {
    let ch = security.endpoint(addr).unwrap().connect().await.unwrap();
    pb::ap_client::ApClient::new(ch)
}

async fn states(aps: &mut [Ap]) -> Vec<pb::ApStateReply> {
    let mut out = Vec::new();
    for ap in aps.iter_mut() {
        out.push(ap.state(pb::ApStateRequest {}).await.unwrap().into_inner());
    }
    out
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one AP cluster taken through its phases (writers, a cut, the heal, convergence, the checks, a restart): starting a cluster per phase would multiply the test's time"
)]
fn ap_nodes_converge_after_a_partition_lose_no_increment_and_report_every_overlap() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ClusterConfig::new(&PathBuf::from(env!("CARGO_BIN_EXE_ttstore")), dir.path());
        cfg.ap = true;
        cfg.topology = Some(ttstore::region::Topology::three_regions(3));
        // ε 5 ms, skews inside it: many writes from the two regions overlap.
        cfg.epsilon_ns = 5_000_000;
        cfg.skews_ns = vec![1_000_000, -1_000_000, 0];
        let mut cluster = LocalCluster::start(cfg).unwrap();
        let security = cluster.security().unwrap();
        let addrs = cluster.addrs();
        let mut aps = Vec::new();
        for a in &addrs {
            let t0 = Instant::now();
            loop {
                if let Ok(ch) = security.endpoint(a).unwrap().connect().await {
                    aps.push(pb::ap_client::ApClient::new(ch));
                    break;
                }
                assert!(t0.elapsed() < Duration::from_secs(10), "{a} never listened");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        // Writers in us-east (node 1) and eu-west (node 2).
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for (i, a) in addrs.iter().take(2).enumerate() {
            let ap = connect(a, &security).await;
            writers.push(tokio::spawn(writer(
                ap,
                security.clone(),
                i as u32 + 1,
                stop.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Cut eu-west off; both sides keep accepting writes.
        let p = aps[1]
            .partition(security.request(pb::PartitionRequest {
                blocked: vec![1, 3],
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(p.blocked, vec![1, 3]);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let during = states(&mut aps).await;
        aps[1]
            .partition(security.request(pb::PartitionRequest { blocked: vec![] }))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::Relaxed);
        let mut acked = Acked::default();
        for w in writers {
            let a = w.await.unwrap();
            acked.puts.extend(a.puts);
            acked.increments += a.increments;
            acked.rmw_increments += a.rmw_increments;
        }
        let healed = Instant::now();

        // Diverged during the cut: eu-west had not seen us-east's latest writes.
        assert_ne!(
            during[0].digest, during[1].digest,
            "no divergence during the cut"
        );
        // Converges after the heal.
        let mut s = states(&mut aps).await;
        while !(s.iter().all(|x| x.digest == s[0].digest)
            && s.iter().all(|x| x.known == s[0].known))
        {
            assert!(
                healed.elapsed() < Duration::from_secs(15),
                "no convergence: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            s = states(&mut aps).await;
        }
        eprintln!(
            "converged {:?} after the writers stopped; {} puts and {} increments acknowledged",
            healed.elapsed(),
            acked.puts.len(),
            acked.increments
        );

        // Every overlapping pair of acknowledged writes to one key, by brute force.
        let mut pairs = BTreeSet::new();
        for (i, a) in acked.puts.iter().enumerate() {
            for b in &acked.puts[i + 1..] {
                if a.key == b.key && LwwMap::overlap(&a.tt, &b.tt) {
                    pairs.insert((a.key.clone(), a.id().min(b.id()), a.id().max(b.id())));
                }
            }
        }
        let cross_region = pairs.iter().filter(|(_, a, b)| a.0 != b.0).count();
        eprintln!(
            "{} overlapping pairs ({cross_region} across regions); each node reports {}",
            pairs.len(),
            s[0].conflicts
        );
        assert!(
            cross_region > 0,
            "no two regions' writes overlapped: the test shows nothing"
        );
        for x in &s {
            assert_eq!(x.conflicts, pairs.len() as u64, "node {}", x.id);
        }
        // The kept values are what the TrueTime rule gives over every acknowledged write.
        let mut expect = LwwMap::new(LwwRule::TrueTime);
        for v in &acked.puts {
            expect.apply(v);
        }
        let keys: Vec<String> = expect.values().into_keys().collect();
        let mut lost_rmw = Vec::new();
        for ap in aps.iter_mut() {
            let g = ap
                .get(pb::ApGetRequest {
                    keys: keys.clone(),
                    counters: vec!["c".into()],
                })
                .await
                .unwrap()
                .into_inner();
            let got: BTreeMap<String, String> = g
                .registers
                .iter()
                .filter_map(|r| Some((r.key.clone(), r.value.clone()?)))
                .collect();
            assert_eq!(got, expect.values(), "node {}", g.served_by);
            // No acknowledged increment of the PN-counter is lost.
            assert_eq!(
                g.counters[0].value, acked.increments,
                "node {}",
                g.served_by
            );
            let rmw: i64 = g
                .registers
                .iter()
                .find(|r| r.key == "rmw")
                .and_then(|r| r.value.as_deref()?.parse().ok())
                .unwrap_or(0);
            lost_rmw.push(acked.rmw_increments - rmw);
        }
        // The negative control: the same loss check finds the read-modify-write register's
        // lost updates (two regions incrementing from the same old value).
        eprintln!(
            "read-modify-write register: {} increments acknowledged, {:?} lost",
            acked.rmw_increments, lost_rmw
        );
        assert!(
            lost_rmw.iter().all(|l| *l > 0),
            "the RMW register lost nothing: {lost_rmw:?}"
        );

        // A restarted node replays its log: same state.
        let before = s[2].digest;
        cluster.kill(3);
        cluster.restart(3).unwrap();
        let t0 = Instant::now();
        let after = loop {
            if let Ok(ch) = security.endpoint(&addrs[2]).unwrap().connect().await {
                let mut c = pb::ap_client::ApClient::new(ch);
                if let Ok(st) = c.state(pb::ApStateRequest {}).await {
                    break st.into_inner().digest;
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(after, before, "the log replayed to a different state");
        cluster.stop();
    });
}
