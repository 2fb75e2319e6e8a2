//! The management plane is locked. Every gRPC method in every `.proto` file is called on a live
//! daemon — timemaster, timed and a store node, all serving TLS with a throwaway CA — without a
//! token, with a wrong token, and with the right one:
//!
//! - reads (the list below, and nothing else) answer anyone who reaches the listener;
//! - every other method is refused `UNAUTHENTICATED` without the right token, and nothing
//!   changed (timed's knob, the store's members, partitions, keys and term);
//! - with the token the same calls get through (the refusal was the credential, not the
//!   payload), and a real change made with it is seen by the same state check (its negative
//!   control);
//! - a plaintext client cannot talk to a TLS listener, and a daemon whose listener is not
//!   loopback refuses to start without TLS.
//!
//! The methods come from the protos, so a new RPC is covered the day it is added: if it is not a
//! read listed here, it must refuse callers without the token.

use crate::common::Kill;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;
use ttproto::store as pb;
use ttproto::v1;

/// The reads anyone may call.
const OPEN: &[&str] = &[
    "/truetime.v1.TimeMaster/Status",
    "/truetime.v1.TimeDaemon/Now",
    "/truetime.v1.TimeDaemon/Status",
    "/truetime.v1.TimeDaemon/WatchStatus",
    "/ttstore.v1.Store/Read",
    "/ttstore.v1.Store/Status",
    "/ttstore.v1.Ap/Get",
    "/ttstore.v1.Ap/State",
];

/// One method from a `.proto` file.
#[derive(Clone, Debug)]
struct Method {
    /// `/package.Service/Method`.
    path: String,
    service: String,
    server_streaming: bool,
}

/// Every method of every service in the protos (a small parser for the subset we write:
/// `package x;`, `service S {`, `rpc M(Req) returns (stream? Resp);`).
fn methods() -> Vec<Method> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ttproto/proto");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "proto"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "protos not found in {}", dir.display());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut package = String::new();
        let mut service = None::<String>;
        for line in text.lines() {
            let l = line.split("//").next().unwrap().trim();
            if let Some(p) = l.strip_prefix("package ") {
                package = p.trim_end_matches(';').trim().to_string();
            } else if let Some(s) = l.strip_prefix("service ") {
                service = Some(s.trim_end_matches('{').trim().to_string());
            } else if l == "}" {
                service = None;
            } else if let (Some(svc), Some(rpc)) = (&service, l.strip_prefix("rpc ")) {
                let name = rpc.split('(').next().unwrap().trim();
                let returns = rpc.split("returns").nth(1).unwrap_or("");
                out.push(Method {
                    path: format!("/{package}.{svc}/{name}"),
                    service: svc.clone(),
                    server_streaming: returns.trim_start().starts_with("(stream "),
                });
            }
        }
    }
    out
}

/// Calls `path` with an empty message (every request message decodes from zero bytes), with
/// `authorization` set to `header` if given. `Ok` means the call got past the guard.
async fn call(
    ch: tonic::transport::Channel,
    m: &Method,
    header: Option<&str>,
) -> Result<(), tonic::Status> {
    let mut g = tonic::client::Grpc::new(ch);
    g.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut req = tonic::Request::new(());
    req.set_timeout(Duration::from_secs(3));
    if let Some(h) = header {
        req.metadata_mut()
            .insert("authorization", h.parse().unwrap());
    }
    let path: http::uri::PathAndQuery = m.path.parse().unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    if m.server_streaming {
        g.server_streaming(req, path, codec).await.map(|_| ())
    } else {
        g.unary(req, path, codec).await.map(|_| ())
    }
}

fn refused(r: &Result<(), tonic::Status>) -> bool {
    matches!(r, Err(s) if matches!(s.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied))
}

/// One store node as far as a refused call could change it.
#[derive(Debug, PartialEq)]
struct NodeState {
    id: u64,
    members: Vec<(u64, bool)>,
    blocked: Vec<u64>,
    keys: u64,
    term: u64,
}

/// What must not change when a call is refused.
#[derive(Debug, PartialEq)]
struct Observed {
    knob: (f64, i64),
    store: Vec<NodeState>,
    /// The AP node's digest, operations and partition list.
    ap: (u64, Vec<(u32, u64)>, Vec<u64>),
}

async fn observe(
    timed: &tonic::transport::Channel,
    nodes: &[tonic::transport::Channel],
    ap: &tonic::transport::Channel,
) -> Observed {
    let s = v1::time_daemon_client::TimeDaemonClient::new(timed.clone())
        .status(v1::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut store = Vec::new();
    for n in nodes {
        let st = pb::store_client::StoreClient::new(n.clone())
            .status(pb::StatusRequest { group: 0 })
            .await
            .unwrap()
            .into_inner();
        store.push(NodeState {
            id: st.id,
            members: st.members.iter().map(|m| (m.id, m.voter)).collect(),
            blocked: st.blocked.clone(),
            keys: st.keys,
            term: st.term,
        });
    }
    let a = pb::ap_client::ApClient::new(ap.clone())
        .state(pb::ApStateRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut known: Vec<(u32, u64)> = a.known.into_iter().collect();
    known.sort_unstable();
    Observed {
        knob: (s.knob_ppm, s.knob_step_ns),
        store,
        ap: (a.digest, known, a.blocked),
    }
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one table of every state-changing RPC, each called without the token and checked, on one running lab"
)]
fn every_state_changing_rpc_refuses_callers_without_the_token() {
    let mut needed = bench::lab::STACK_BINARIES.to_vec();
    needed.push(("ttstore", "ttstore"));
    let bins = bench::lab::binaries_for(None, &needed).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = ttsys::nts::throwaway_pki(d, &["127.0.0.1"]).unwrap();
    let token_file = d.join("mgmt.token");
    let token = ttsys::mgmt::Token::generate(&token_file).unwrap();
    let management = ttsys::mgmt::ManagementConfig {
        certificate: Some(pki.cert.clone()),
        private_key: Some(pki.key.clone()),
        client_ca: None,
        token_file: Some(token_file.clone()),
    };
    let sec = ttsys::mgmt::ClientSecurity {
        ca: Some(pki.ca.clone()),
        token: Some(token),
    };
    let right = format!(
        "Bearer {}",
        std::fs::read_to_string(&token_file).unwrap().trim()
    );
    let wrong = format!("Bearer {}", "0".repeat(64));

    // The three servers, TLS on each.
    let m = management.clone();
    let master = bench::lab::SimulatedMaster::start(&bins, &d.join("m"), "m", move |c| {
        c.management = m;
    })
    .unwrap();
    let timed_port = bench::lab::free_port().unwrap();
    let tcfg = timed::config::Config {
        listen: ([127, 0, 0, 1], timed_port).into(),
        shm_path: d.join("page"),
        allow_test_knob: true,
        vmclock: d.join("no-vmclock"),
        management: management.clone(),
        ..timed::config::Config::new(vec![timed::config::MasterConfig::new(&format!(
            "127.0.0.1:{}",
            master.port
        ))])
    };
    std::fs::write(d.join("timed.toml"), toml::to_string(&tcfg).unwrap()).unwrap();
    let _timed = Kill(
        ttsys::process::die_with_parent(Command::new(bins.join("timed")).args(["run", "-c"]))
            .arg(d.join("timed.toml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("timed.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut ccfg = ttstore::cluster::ClusterConfig::new(&bins.join("ttstore"), &d.join("store"));
    ccfg.tls = true;
    let cluster = ttstore::cluster::LocalCluster::start(ccfg).unwrap();
    // One AP node, TLS too.
    let mut acfg = ttstore::cluster::ClusterConfig::new(&bins.join("ttstore"), &d.join("ap"));
    acfg.tls = true;
    acfg.ap = true;
    acfg.nodes = 1;
    let ap = ttstore::cluster::LocalCluster::start(acfg).unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // TLS channels, once each server is up.
        let connect = |addr: String, sec: ttsys::mgmt::ClientSecurity| async move {
            let mut last = String::new();
            for _ in 0..200 {
                match sec.endpoint(&addr).unwrap().connect().await {
                    Ok(ch) => return ch,
                    Err(e) => last = format!("{e:?}"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{addr} never accepted a TLS connection: {last}");
        };
        let master_ch = connect(format!("127.0.0.1:{}", master.port), sec.clone()).await;
        let timed_ch = connect(format!("127.0.0.1:{timed_port}"), sec.clone()).await;
        // The cluster has its own CA and token (`<dir>/pki`, `<dir>/token`).
        let store_sec = cluster.security().unwrap();
        let store_right = format!(
            "Bearer {}",
            std::fs::read_to_string(cluster.token_file())
                .unwrap()
                .trim()
        );
        let mut nodes = Vec::new();
        for a in cluster.addrs() {
            nodes.push(connect(a, store_sec.clone()).await);
        }
        cluster.client().unwrap().find_leader().await.unwrap();
        let ap_sec = ap.security().unwrap();
        let ap_right = format!(
            "Bearer {}",
            std::fs::read_to_string(ap.token_file()).unwrap().trim()
        );
        let ap_ch = connect(ap.addrs()[0].clone(), ap_sec.clone()).await;
        let by_service: BTreeMap<&str, &tonic::transport::Channel> = [
            ("TimeMaster", &master_ch),
            ("TimeDaemon", &timed_ch),
            ("Store", &nodes[0]),
            ("Raft", &nodes[0]),
            ("Ap", &ap_ch),
        ]
        .into();

        // The daemons' own open lists are exactly the reads.
        let mut theirs: Vec<&str> = timemaster::daemon::OPEN_METHODS
            .iter()
            .chain(timed::daemon::OPEN_METHODS)
            .chain(ttstore::node::OPEN_METHODS)
            .chain(ttstore::apnode::AP_OPEN_METHODS)
            .copied()
            .collect();
        theirs.sort();
        let mut ours = OPEN.to_vec();
        ours.sort();
        assert_eq!(theirs, ours, "a daemon opened a method that is not a read");

        // A plaintext client gets nowhere on a TLS listener.
        let plain = ttsys::mgmt::ClientSecurity::none()
            .endpoint(&format!("127.0.0.1:{timed_port}"))
            .unwrap()
            .connect()
            .await;
        if let Ok(ch) = plain {
            let r = v1::time_daemon_client::TimeDaemonClient::new(ch)
                .status(v1::StatusRequest {})
                .await;
            assert!(
                r.is_err(),
                "a plaintext call was answered on a TLS listener"
            );
        }

        let all = methods();
        let before = observe(&timed_ch, &nodes, &ap_ch).await;
        let mut closed = Vec::new();
        for m in &all {
            let ch = by_service.get(m.service.as_str()).unwrap_or_else(|| {
                panic!("service {} has no server in this test: add it", m.service)
            });
            let none = call((*ch).clone(), m, None).await;
            let bad = call((*ch).clone(), m, Some(&wrong)).await;
            if OPEN.contains(&m.path.as_str()) {
                assert!(!refused(&none), "{}: a read was refused: {none:?}", m.path);
            } else {
                for (what, r) in [("no token", &none), ("a wrong token", &bad)] {
                    let Err(s) = r else {
                        panic!("{} answered a caller with {what}", m.path);
                    };
                    assert_eq!(s.code(), tonic::Code::Unauthenticated, "{}: {s:?}", m.path);
                }
                closed.push(m.clone());
            }
        }
        let paths: Vec<&str> = closed.iter().map(|m| m.path.as_str()).collect();
        eprintln!("refused without the token: {paths:?}");
        for must in [
            "/truetime.v1.TimeDaemon/SetClockKnob",
            "/ttstore.v1.Store/Partition",
            "/ttstore.v1.Store/Close",
            "/ttstore.v1.Store/AddNode",
            "/ttstore.v1.Store/RemoveNode",
            "/ttstore.v1.Raft/AppendEntries",
            "/ttstore.v1.Raft/Vote",
            "/ttstore.v1.Raft/InstallSnapshot",
            "/ttstore.v1.Store/Prepare",
            "/ttstore.v1.Store/Decide",
            "/ttstore.v1.Ap/Put",
            "/ttstore.v1.Ap/Add",
            "/ttstore.v1.Ap/Pull",
            "/ttstore.v1.Ap/Partition",
        ] {
            assert!(
                paths.contains(&must),
                "{must} is missing from the protos' methods"
            );
        }
        assert_eq!(
            observe(&timed_ch, &nodes, &ap_ch).await,
            before,
            "a refused call changed state"
        );

        // With the token every one of them gets past the guard (an empty payload may still be
        // refused as invalid, but not for want of a credential).
        for m in &closed {
            if m.service == "Raft" {
                // An empty Raft message is not a vote or an append; it must not be taken as one.
                continue;
            }
            let ch = by_service[m.service.as_str()];
            let token = if m.path.starts_with("/ttstore.v1.Ap/") {
                &ap_right
            } else if m.path.starts_with("/ttstore.") {
                &store_right
            } else {
                &right
            };
            let r = call(ch.clone(), m, Some(token)).await;
            assert!(
                !refused(&r),
                "{}: refused with the right token: {r:?}",
                m.path
            );
        }
        // The state check sees a change made with the token (its negative control).
        v1::time_daemon_client::TimeDaemonClient::new(timed_ch.clone())
            .set_clock_knob(sec.request(v1::ClockKnobRequest {
                skew_ppm: 3.0,
                step_ns: 0,
            }))
            .await
            .unwrap();
        pb::store_client::StoreClient::new(nodes[2].clone())
            .partition(store_sec.request(pb::PartitionRequest { blocked: vec![1] }))
            .await
            .unwrap();
        pb::ap_client::ApClient::new(ap_ch.clone())
            .put(ap_sec.request(pb::ApPutRequest {
                key: "k".into(),
                value: "v".into(),
            }))
            .await
            .unwrap();
        let after = observe(&timed_ch, &nodes, &ap_ch).await;
        assert_ne!(after.knob, before.knob, "the knob change was not seen");
        assert_ne!(after.store, before.store, "the partition was not seen");
        assert_ne!(after.ap, before.ap, "the AP write was not seen");
    });
    drop(cluster);
    drop(ap);
}

#[test]
fn a_listener_beyond_loopback_needs_tls_to_start() {
    let bins = bench::lab::binaries(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = timed::config::Config {
        listen: ([0, 0, 0, 0], 7100).into(),
        ..timed::config::Config::new(vec![timed::config::MasterConfig::new("127.0.0.1:1")])
    };
    let path = dir.path().join("timed.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    for verb in ["validate", "run"] {
        let out = Command::new(bins.join("timed"))
            .args([verb, "-c"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "timed {verb} accepted plaintext on 0.0.0.0"
        );
        assert!(
            err.contains("listen") && err.contains("no TLS"),
            "timed {verb}: {err}"
        );
    }
    // The same with TLS configured is accepted by validate (files are checked at start).
    let ok = timed::config::Config {
        management: ttsys::mgmt::ManagementConfig {
            certificate: Some("/etc/truetime/tls/server.pem".into()),
            private_key: Some("/etc/truetime/tls/server.key".into()),
            ..Default::default()
        },
        ..cfg
    };
    std::fs::write(&path, toml::to_string(&ok).unwrap()).unwrap();
    crate::common::stdout_ok(
        Command::new(bins.join("timed"))
            .args(["validate", "-c"])
            .arg(&path),
    );
}
