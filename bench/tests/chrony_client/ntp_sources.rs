//! Plain NTP servers as sources: real chronyd processes (`local stratum 1`, `-x`: they serve the
//! host clock, which is the truth here, and never touch it) polled by a real timed with
//! `kind = "ntp"`.
//!
//! - timed on one chronyd alone serves intervals that contain truth, and `ttctl status` shows
//!   the source's kind and the assumption its bound rests on;
//! - a chronyd that lies — the on-path forger (`ttbench attack`) shifts its replies by 20 ms
//!   while its root distance still claims microseconds, exactly a server whose stated root
//!   dispersion understates its error — is out-voted among three honest chronyds;
//! - the same liar alone is followed, and the checker sees truth outside the intervals: the
//!   negative control.
//!
//! Needs chronyd (`.ci/run` installs it), so ignored by default.

use crate::common;
use common::{Kill, watch_page as watch};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A timed in `d` named `name` polling `sources`; its page and gRPC address.
fn timed(
    bins: &std::path::Path,
    d: &std::path::Path,
    name: &str,
    sources: Vec<timed::config::MasterConfig>,
) -> (Kill, std::path::PathBuf, String) {
    timed_with(bins, d, name, timed::config::Config::new(sources))
}

/// A timed in `d` named `name` run with `cfg` (its listen address, page and VMClock set here).
fn timed_with(
    bins: &std::path::Path,
    d: &std::path::Path,
    name: &str,
    cfg: timed::config::Config,
) -> (Kill, std::path::PathBuf, String) {
    let page = d.join(format!("{name}.page"));
    let listen: std::net::SocketAddr = ([127, 0, 0, 1], bench::lab::free_port().unwrap()).into();
    let cfg = timed::config::Config {
        listen,
        shm_path: page.clone(),
        vmclock: d.join("no-vmclock"),
        ..cfg
    };
    let path = d.join(format!("{name}.toml"));
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let k = Kill(
        ttsys::process::die_with_parent(Command::new(bins.join("timed")).args(["run", "-c"]))
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join(format!("{name}.log"))).unwrap())
            .spawn()
            .unwrap(),
    );
    (k, page, listen.to_string())
}

/// Waits until the page is trustworthy (at most 40 s).
fn wait_trustworthy(page: &std::path::Path) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(40) {
        if let Ok(r) = ttsys::shm::PageReader::open(page)
            && let Ok(d) = r.read()
            && d.read_at(ttsys::clock::raw()).status.is_trustworthy()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{} never became trustworthy", page.display());
}

fn chronyds(d: &std::path::Path, n: usize) -> Vec<(bench::chrony::Chronyd, u16)> {
    let bin = bench::chrony::chronyd_path().expect("chronyd is installed");
    (0..n)
        .map(|i| {
            let port = bench::lab::free_udp_port().unwrap();
            let c =
                bench::sync_rps::chronyd_server(&bin, &d.join(format!("chronyd{i}")), port, None)
                    .unwrap();
            (c, port)
        })
        .collect()
}

#[test]
#[ignore = "needs chronyd"]
fn timed_on_a_chronyd_alone_contains_truth_and_names_its_assumption() {
    let bins = bench::lab::binaries(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let servers = chronyds(d, 1);
    let (_t, page, addr) = timed(
        &bins,
        d,
        "alone",
        vec![timed::config::MasterConfig::ntp(&format!(
            "127.0.0.1:{}",
            servers[0].1
        ))],
    );
    wait_trustworthy(&page);
    let (ok, outside, seen, eps) = watch(&page, 15.0);
    let pct = |p: usize| eps.get(eps.len() * p / 100).copied().unwrap_or(-1);
    eprintln!(
        "timed on chronyd alone: {ok} trustworthy, {outside} outside truth, {seen:?}; ε p50 {} ns, p99 {} ns",
        pct(50),
        pct(99)
    );
    assert!(ok > 300, "{ok} trustworthy samples, {seen:?}");
    assert_eq!(outside, 0);
    let s = common::json_ok(
        Command::new(bins.join("ttctl")).args(["status", "--addr", &addr, "--json"]),
    );
    let m = &s["masters"][0];
    assert_eq!(m["kind"], "ntp", "{s}");
    assert_eq!(m["selected"], true, "{s}");
    assert!(
        m["assumption"].as_str().unwrap().contains("root distance"),
        "{s}"
    );
    assert!(m["epsilon_ns"].as_i64().unwrap() > 0, "{s}");
    // chronyd answers the interleaved mode (RFC 9769) timed asks for.
    assert_eq!(m["interleaved"], true, "{s}");
    let text = String::from_utf8(common::stdout_ok(
        Command::new(bins.join("ttctl")).args(["status", "--addr", &addr]),
    ))
    .unwrap();
    assert!(text.contains("ntp bounds assume:"), "{text}");
    assert!(text.contains(",xleave"), "{text}");
}

#[test]
#[ignore = "needs chronyd"]
fn a_lying_ntp_server_is_outvoted_as_a_minority_and_followed_alone() {
    let bins = bench::lab::binaries(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let servers = chronyds(d, 4);
    // The liar: chronyd 3 behind a forger on 127.0.0.2 that shifts every reply by 20 ms and
    // leaves the stated root distance (microseconds) alone.
    let liar_port = servers[3].1;
    let _forger = Kill(
        ttsys::process::die_with_parent(Command::new(env!("CARGO_BIN_EXE_ttbench")).args([
            "attack",
            "--udp-listen",
            &format!("127.0.0.2:{liar_port}"),
            "--udp-upstream",
            &format!("127.0.0.1:{liar_port}"),
            "--shift-ms",
            "20",
        ]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let liar = timed::config::MasterConfig::ntp(&format!("127.0.0.2:{liar_port}"));
    let mut all: Vec<_> = servers[..3]
        .iter()
        .map(|(_, p)| timed::config::MasterConfig::ntp(&format!("127.0.0.1:{p}")))
        .collect();
    all.push(liar.clone());
    {
        let (_t, page, addr) = timed(&bins, d, "mixed", all);
        wait_trustworthy(&page);
        let (ok, outside, seen, _) = watch(&page, 12.0);
        eprintln!("3 honest + 1 lying NTP server: {ok} trustworthy, {outside} outside, {seen:?}");
        assert!(ok > 200, "{ok} trustworthy, {seen:?}");
        assert_eq!(outside, 0, "the liar moved the intervals");
        let s = common::json_ok(
            Command::new(bins.join("ttctl")).args(["status", "--addr", &addr, "--json"]),
        );
        let liar_row = s["masters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["addr"].as_str().unwrap().starts_with("127.0.0.2"))
            .unwrap();
        assert_eq!(liar_row["selected"], false, "{s}");
    }
    // Negative control: the liar alone is followed and the checker sees it.
    let (_t, page, _) = timed(&bins, d, "liar-alone", vec![liar]);
    wait_trustworthy(&page);
    let (ok, outside, seen, _) = watch(&page, 8.0);
    eprintln!("the lying NTP server alone: {ok} trustworthy, {outside} outside, {seen:?}");
    assert!(
        outside > 0,
        "negative control: a lone lying server must show as violations ({ok}, {seen:?})"
    );
}

#[test]
#[ignore = "needs chronyd"]
fn ttlab_with_a_chronyd_source_beside_the_masters_keeps_truth_inside() {
    let out = common::stdout_ok(Command::new(env!("CARGO_BIN_EXE_ttlab")).args([
        "--ntp-source",
        "--duration",
        "25",
        "--json",
    ]));
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let trustworthy: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|j| matches!(j["status"].as_str(), Some("synchronized" | "holdover")))
        .collect();
    assert!(
        trustworthy.len() >= 10,
        "{} trustworthy lines",
        trustworthy.len()
    );
    for j in &trustworthy {
        assert_eq!(j["contains_truth"], true, "{j}");
    }
    let last = trustworthy.last().unwrap();
    let kinds: Vec<&str> = last["masters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds.len(), 4, "{last}");
    assert!(
        kinds.contains(&"ntp") && kinds.contains(&"gps"),
        "{kinds:?}"
    );
}

/// `[[phc]]` beside an NTP source: this machine has no PTP hardware clock, so the two PHCs are
/// a missing device and a regular file (every offset ioctl refused with ENOTTY, after the
/// fallback from PRECISE through EXTENDED to the basic one). timed runs on the chronyd (with
/// `max-liars = 0`: any one source may be trusted), truth stays inside, and `ttctl status`
/// shows each PHC as kind `phc` with why it gave nothing, and the assumption its bound would
/// rest on. The reading of a real PHC is untested here (see the README).
#[test]
#[ignore = "needs chronyd"]
fn phc_sources_that_cannot_be_read_are_shown_and_the_rest_runs_on() {
    use timed::config::PhcConfig;
    use ttcore::phc::Timescale;
    let bins = bench::lab::binaries(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let servers = chronyds(d, 1);
    let not_a_phc = d.join("not-a-phc");
    std::fs::write(&not_a_phc, b"").unwrap();
    let cfg = timed::config::Config {
        max_liars: Some(0),
        phcs: vec![
            PhcConfig::new(&d.join("ptp-missing"), Timescale::Tai, 100),
            PhcConfig::new(&not_a_phc, Timescale::Utc, 100),
        ],
        ..timed::config::Config::new(vec![timed::config::MasterConfig::ntp(&format!(
            "127.0.0.1:{}",
            servers[0].1
        ))])
    };
    let (_t, page, addr) = timed_with(&bins, d, "phc", cfg);
    wait_trustworthy(&page);
    let (ok, outside, seen, _) = watch(&page, 5.0);
    assert!(ok > 100, "{ok} trustworthy samples, {seen:?}");
    assert_eq!(outside, 0);
    let s = common::json_ok(
        Command::new(bins.join("ttctl")).args(["status", "--addr", &addr, "--json"]),
    );
    let m = s["masters"].as_array().unwrap();
    assert_eq!(m.len(), 3, "{s}");
    assert_eq!(m[0]["selected"], true, "{s}");
    for (p, why) in [(&m[1], "No such file"), (&m[2], "Inappropriate ioctl")] {
        assert_eq!(p["kind"], "phc", "{s}");
        assert_eq!(p["transport"], "ioctl", "{s}");
        assert_eq!(p["reachable"], false, "{s}");
        assert!(p["reason"].as_str().unwrap().contains(why), "{s}");
        assert!(
            p["assumption"].as_str().unwrap().contains("error bound"),
            "{s}"
        );
    }
    let text = String::from_utf8(common::stdout_ok(
        Command::new(bins.join("ttctl")).args(["status", "--addr", &addr]),
    ))
    .unwrap();
    assert!(text.contains("phc bounds assume:"), "{text}");
}
