//! Attacks as real processes. An on-path forger (`ttbench attack`, its own process) stands
//! between timed and its only master and shifts the time of every reply by 20 ms: it answers
//! for every master at once, which no vote can outvote.
//!
//! - Under NTS the forged replies do not authenticate: timed never hands out an interval built
//!   on them (0 samples outside the interval) and says why.
//! - The negative control is the same attack on plain NTP: timed synchronizes to the forged
//!   time and the checker finds truth outside its intervals — the attack works, which is why
//!   plain mode is shown as unauthenticated.
//! - A replayer in the same place answers with old recorded replies dressed up as answers to
//!   the current requests (origin stamp and NTS unique identifier rewritten): refused under
//!   NTS, taken as current time by plain NTP (the negative control).
//! - A flood of garbage and NTS-KE handshakes does not stop the master serving honest clients.
//! - Every state-changing gRPC method refuses callers without the management token
//!   ([`management`]).

/// Unauthenticated calls to every state-changing RPC (its own module: it shares nothing with
/// the time attacks above but the binary).
mod common;

#[path = "attacks/management.rs"]
mod management;

use common::Kill;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use ttcore::ClockStatus;

fn spawn(cmd: &mut Command, log: &std::path::Path) -> Kill {
    common::spawn_logged(cmd, log)
}

/// What timed's page said over `secs`: (trustworthy samples, of them outside truth, statuses).
fn watch(page: &std::path::Path, secs: f64) -> (u64, u64, Vec<ClockStatus>) {
    let (ok, outside, seen, _) = common::watch_page(page, secs);
    (ok, outside, seen)
}

/// A synchronized simulated master in `d` serving NTS, its certificate naming `names`: the
/// master, the PKI, and its NTS-KE port.
fn nts_master(
    bins: &std::path::Path,
    d: &std::path::Path,
    names: &[&str],
) -> (bench::lab::SimulatedMaster, ttsys::nts::Pki, u16) {
    let pki = ttsys::nts::throwaway_pki(d, names).unwrap();
    let ke = bench::lab::free_port().unwrap();
    let (p, c) = (pki.clone(), d.to_path_buf());
    let master = bench::lab::SimulatedMaster::start(bins, &d.join("m"), "m", move |cfg| {
        cfg.nts = Some(timemaster::config::NtsConfig::new(
            ([127, 0, 0, 1], ke).into(),
            p.cert,
            p.key,
            c.join("nts-keys"),
        ));
    })
    .unwrap();
    master
        .wait_for(Duration::from_secs(40), |s| {
            ttproto::status_from_wire(s.status).is_trustworthy()
        })
        .unwrap();
    (master, pki, ke)
}

/// What timed saw behind an attacker: trustworthy samples, of them outside truth, the statuses,
/// and what `ttctl status` said about the master (reason and authentication).
type Seen = (u64, u64, Vec<ClockStatus>, String);

/// One master on 127.0.0.1 serving NTS; an attacker (`ttbench attack` with `attack` args) on
/// 127.0.0.2 with the master's ports; timed behind it for 12 s under NTS, then on plain NTP.
fn behind_an_attacker(attack: &[&str]) -> (Seen, Seen) {
    let bins = bench::lab::binaries(None).unwrap();
    let ttbench = env!("CARGO_BIN_EXE_ttbench");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The master's certificate names the forger's address too: the client dials the forger
    // (it is on the path) and TLS still ends at the master.
    let (master, pki, ke) = nts_master(&bins, d, &["127.0.0.1", "127.0.0.2"]);
    let port = master.port;
    // The forger, on 127.0.0.2 with the master's port numbers.
    let _forger = spawn(
        Command::new(ttbench)
            .args([
                "attack",
                "--udp-listen",
                &format!("127.0.0.2:{port}"),
                "--udp-upstream",
                &format!("127.0.0.1:{port}"),
                "--tcp-listen",
                &format!("127.0.0.2:{ke}"),
                "--tcp-upstream",
                &format!("127.0.0.1:{ke}"),
            ])
            .args(attack),
        &d.join("forger.log"),
    );
    let run_timed = |name: &str, nts: bool| -> (u64, u64, Vec<ClockStatus>, String) {
        let page = d.join(format!("{name}.page"));
        let mut m = timed::config::MasterConfig::new(&format!("127.0.0.2:{port}"));
        if nts {
            m = m.with_nts(&format!("127.0.0.2:{ke}"));
        }
        let listen: std::net::SocketAddr =
            ([127, 0, 0, 1], bench::lab::free_port().unwrap()).into();
        let cfg = timed::config::Config {
            listen,
            shm_path: page.clone(),
            nts_trusted_certs: nts.then(|| pki.ca.clone()),
            vmclock: d.join("no-vmclock"),
            ..timed::config::Config::new(vec![m])
        };
        let path = d.join(format!("{name}.toml"));
        std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
        let log = d.join(format!("{name}.log"));
        let t = spawn(
            Command::new(bins.join("timed"))
                .args(["run", "-c"])
                .arg(&path),
            &log,
        );
        // Watch the page for 12 s; every 2 s ask why, as `ttctl status` shows it (the
        // master's reason and authentication).
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (mut ok, mut outside, mut seen, mut why) = (0, 0, Vec::new(), Vec::new());
        for _ in 0..6 {
            let r = watch(&page, 2.0);
            ok += r.0;
            outside += r.1;
            for s in r.2 {
                if !seen.contains(&s) {
                    seen.push(s);
                }
            }
            why.extend(rt.block_on(async {
                let mut c = ttproto::v1::time_daemon_client::TimeDaemonClient::connect(format!(
                    "http://{listen}"
                ))
                .await
                .ok()?;
                let s = c
                    .status(ttproto::v1::StatusRequest {})
                    .await
                    .ok()?
                    .into_inner();
                s.masters
                    .first()
                    .map(|m| format!("{} ({})", m.reason, m.auth))
            }));
        }
        drop(t);
        (ok, outside, seen, why.join(" | "))
    };

    let nts = run_timed("nts", true);
    let plain = run_timed("plain", false);
    (nts, plain)
}

/// Checks what timed saw under NTS (refused, and says why) and in the negative control on
/// plain NTP (the attack works, and the master is shown as unauthenticated).
fn nts_refuses_and_plain_falls(what: &str, (nts, plain): (Seen, Seen)) {
    let (ok, outside, seen, why) = nts;
    eprintln!(
        "NTS behind the {what}: {ok} trustworthy samples, {outside} outside truth, statuses {seen:?}; status: {why}"
    );
    assert_eq!(outside, 0, "a forged interval was handed out under NTS");
    assert_eq!(
        ok, 0,
        "timed trusted a master it could not authenticate: {seen:?}"
    );
    assert!(
        why.contains("NTS") && why.contains("(nts)"),
        "the status does not say why: {why:?}"
    );

    // Negative control: the same attack on plain NTP succeeds.
    let (ok, outside, seen, why) = plain;
    eprintln!(
        "plain behind the {what}: {ok} trustworthy samples, {outside} outside truth, statuses {seen:?}; status: {why}"
    );
    assert!(
        why.contains("(none)"),
        "plain is shown as unauthenticated: {why:?}"
    );
    assert!(
        outside > 0,
        "negative control: the {what} should move plain NTP's intervals off truth ({ok} samples, {seen:?})"
    );
}

#[test]
fn an_on_path_forger_is_refused_under_nts_and_wins_against_plain_ntp() {
    nts_refuses_and_plain_falls("forger", behind_an_attacker(&["--shift-ms", "20"]));
}

/// The replayer answers every request with a recorded reply at least 500 ms old, its origin
/// stamp and unique identifier rewritten to the request's: under NTS the authenticator covers
/// both and nothing is accepted; plain NTP takes the stale time as current.
#[test]
fn replayed_replies_are_refused_under_nts_and_fool_plain_ntp() {
    nts_refuses_and_plain_falls(
        "replayer",
        behind_an_attacker(&["--replay-after-ms", "500"]),
    );
}

/// Honest NTS exchanges with a master: one every 100 ms for `secs`; (exchanges, answered,
/// median half-width of the answered samples in ns).
fn honest(src: &mut ttsys::ntp::Source, secs: f64) -> (u32, u32, i64) {
    let t0 = Instant::now();
    let (mut n, mut ok, mut radii) = (0, 0, Vec::new());
    while t0.elapsed().as_secs_f64() < secs {
        n += 1;
        let b = src.burst(
            1,
            Duration::from_millis(500),
            ttcore::Rate::from_ppm(500),
            &|r| r,
        );
        if let Some(s) = b.samples.iter().min_by_key(|s| s.m.bounds.radius()) {
            ok += 1;
            radii.push(s.m.bounds.radius().as_nanos());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    radii.sort();
    (n, ok, radii.get(radii.len() / 2).copied().unwrap_or(-1))
}

/// A flood from its own process (from 127.0.0.2) — random garbage and malformed NTP at the time
/// service (over the per-client limit: shed before parsing, once the burst is spent), two
/// threads of complete NTS-KE handshakes and 400 idle connections at NTS-KE — while an honest
/// NTS client keeps asking. The master keeps answering it (the time service has its own
/// threads; NTS-KE caps its sessions and their duration), and says what it shed.
#[test]
fn a_flooded_master_keeps_serving_honest_nts_clients() {
    let bins = bench::lab::binaries(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (master, pki, ke) = nts_master(&bins, dir.path(), &["127.0.0.1"]);
    let tls = ttsys::nts::client_config(&pki.ca, ttcore::ntp::nts::ALPN).unwrap();
    let mut src = ttsys::ntp::Source::new(&format!("127.0.0.1:{}", master.port)).with_nts(
        ttsys::ntp::NtsSource::new(&format!("127.0.0.1:{ke}"), None, tls),
    );
    let before = honest(&mut src, 3.0);
    let flood = Command::new(env!("CARGO_BIN_EXE_ttbench"))
        .args(["flood", "--udp", &format!("127.0.0.1:{}", master.port)])
        .args(["--ke", &format!("127.0.0.1:{ke}"), "--ca"])
        .arg(&pki.ca)
        .args(["--seconds", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let during = honest(&mut src, 6.0);
    let out = flood.wait_with_output().unwrap();
    let sent: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = rt.block_on(master.status()).unwrap().transfer.unwrap();
    eprintln!(
        "honest NTS client: before {}/{} answered, median radius {} ns; during the flood {}/{} \
         answered, median radius {} ns; flood sent {sent}; master: {} malformed dropped, NTS-KE \
         {} ok, {} failed, {} shed",
        before.1,
        before.0,
        before.2,
        during.1,
        during.0,
        during.2,
        t.malformed,
        t.nts_ke_ok,
        t.nts_ke_failed,
        t.nts_ke_shed
    );
    // The flood happened, and the master saw it.
    assert!(sent["datagrams"].as_u64().unwrap_or(0) > 10_000, "{sent}");
    assert!(sent["handshakes"].as_u64().unwrap_or(0) > 10, "{sent}");
    // From 127.0.0.2, over the per-client limit: most of it shed before it is parsed.
    assert!(t.malformed > 100, "{t:?}");
    assert!(t.rate_dropped > 1_000, "{t:?}");
    // And the honest client was still served: at least 8 in 10 exchanges answered.
    assert!(
        during.1 * 10 >= during.0 * 8,
        "the honest client lost {} of {} exchanges during the flood",
        during.0 - during.1,
        during.0
    );
}
