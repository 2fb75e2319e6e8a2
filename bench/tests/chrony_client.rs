//! A real chronyd as a client of two timemasters over the NTPv4 wire (`-x`: it never touches
//! the clock). The synchronized master is selected (`*`) with an offset within its ε plus the
//! round trip; the master whose ε is beyond its maximum answers leap 3 and is shown
//! unsynchronized and never selected. The other way round, chronyd as a source of timed, is in
//! [`ntp_sources`]. Needs chronyd (installed by `.ci/run`).

mod common;

/// chronyd as a *source* of timed (`kind = "ntp"`), honest and lying.
#[path = "chrony_client/ntp_sources.rs"]
mod ntp_sources;

use bench::chrony::{Chronyd, chronyd_path};
use bench::lab::SimulatedMaster;
use std::process::Command;
use std::time::{Duration, Instant};

/// `Name : value seconds` from `chronyc ntpdata`, in ns.
fn field_ns(ntpdata: &str, name: &str) -> Option<f64> {
    ntpdata.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| {
            v.split_whitespace()
                .next()
                .and_then(|x| x.parse::<f64>().ok())
                .map(|s| s * 1e9)
        })?
    })
}

#[test]
#[ignore = "needs chronyd"]
fn chronyd_selects_a_timemaster_and_refuses_an_untrustworthy_one() {
    let bins = bench::lab::binaries(None).expect("the stack binaries");
    let tmp = tempfile::tempdir().unwrap();
    let good = SimulatedMaster::start(&bins, tmp.path(), "good", |_| {}).unwrap();
    // ε can never be within 2 ns: this master has a model but answers unsynchronized (LI 3).
    let port_b = bench::lab::free_port().unwrap();
    let bad = SimulatedMaster::start(&bins, tmp.path(), "bad", |c| {
        c.ntp_listen = Some(([127, 0, 0, 2], port_b).into());
        c.max_epsilon_ns = 2;
        c.armageddon_max_peer_radius_ns = 1;
    })
    .unwrap();
    good.wait_for(Duration::from_secs(60), |s| {
        ttproto::status_from_wire(s.status).is_trustworthy()
    })
    .unwrap();
    bad.wait_for(Duration::from_secs(60), |s| {
        s.reason.contains("max-epsilon") || s.transfer.as_ref().is_some_and(|t| t.answered > 0)
    })
    .ok();
    let chronyd = Chronyd::start(
        &chronyd_path().expect("chronyd is installed"),
        &tmp.path().join("chrony"),
        &format!(
            "server 127.0.0.1 port {} minpoll 0 maxpoll 0 iburst\nserver 127.0.0.2 port {port_b} minpoll 0 maxpoll 0 iburst\nport 0\n",
            good.port
        ),
    )
    .unwrap();
    let chronyc = |args: &[&str]| chronyd.chronyc(args).unwrap();
    let t0 = Instant::now();
    let mut sources = String::new();
    let mut selected = false;
    while t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(1));
        sources = chronyc(&["sources"]);
        selected = sources
            .lines()
            .any(|l| l.starts_with("^*") && l.contains("127.0.0.1"));
        if selected && t0.elapsed() > Duration::from_secs(12) {
            break;
        }
    }
    eprintln!("{sources}");
    assert!(
        selected,
        "chronyd did not select the timemaster:\n{sources}"
    );
    let bad_line = sources
        .lines()
        .find(|l| l.contains("127.0.0.2"))
        .expect("the second source is listed");
    assert!(
        !bad_line.starts_with("^*") && !bad_line.starts_with("^+"),
        "the untrustworthy master was used: {bad_line}"
    );
    let nd_bad = chronyc(&["ntpdata", "127.0.0.2"]);
    assert!(
        nd_bad.contains("Not synchronised"),
        "leap 3 is shown: {nd_bad}"
    );
    let nd = chronyc(&["ntpdata", "127.0.0.1"]);
    eprintln!("{nd}");
    assert!(nd.contains("Stratum         : 1"), "{nd}");
    assert!(nd.contains("Reference ID    : 47505300 (GPS)"), "{nd}");
    let offset = field_ns(&nd, "Offset").expect("offset");
    let delay = field_ns(&nd, "Peer delay").expect("peer delay");
    let disp = field_ns(&nd, "Root dispersion").expect("root dispersion");
    let eps = Command::new(bins.join("ttctl"))
        .args([
            "master",
            "--addr",
            &format!("127.0.0.1:{}", good.port),
            "--json",
        ])
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|j| j["epsilon_ns"].as_f64())
        .expect("the master's ε");
    eprintln!(
        "chronyd: offset {offset:.0} ns, peer delay {delay:.0} ns, root dispersion {disp:.0} ns; master ε {eps:.0} ns"
    );
    // Truth is the host's realtime here, which chronyd measures against: its offset is the
    // master's error plus the asymmetry, within ε plus the round trip.
    assert!(
        offset.abs() <= eps + delay,
        "offset {offset} ns beyond ε {eps} + delay {delay}"
    );
    // Root dispersion is at least the master's ε (rounded up to 2⁻¹⁶ s).
    assert!(disp >= 15_000.0, "root dispersion {disp}");
}
