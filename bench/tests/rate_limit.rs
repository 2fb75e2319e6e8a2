//! The masters' per-client rate limit, with real processes: a client that ignores `RATE`
//! kisses is held to the limit while the lab's timed (another address) keeps its ε; and timed
//! itself, polling a master faster than that master allows, is kissed, backs off and says so.

mod common;

use bench::lab::{Lab, LabOptions};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use ttsys::shm::PageReader;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn lab(opts: LabOptions) -> (Lab, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let opts = LabOptions {
        dir: dir.path().join("lab"),
        ..opts
    };
    let lab = Lab::start(opts).expect("lab");
    lab.wait_synchronized(3, Duration::from_secs(60)).unwrap();
    (lab, dir)
}

/// The page's ε every 50 ms for `secs` (trustworthy readings only); panics if one misses truth.
fn epsilons(reader: &PageReader, secs: f64) -> Vec<i64> {
    let t0 = Instant::now();
    let mut out = Vec::new();
    while t0.elapsed().as_secs_f64() < secs {
        let (raw, truth, _) = ttsys::clock::pair(ttsys::clock::realtime_ns);
        let r = reader
            .read()
            .unwrap()
            .read_at(ttcore::RawReading::from_nanos(raw));
        if r.status.is_trustworthy() {
            assert!(
                r.interval.contains(ttcore::Timestamp::from_nanos(truth)),
                "truth outside {:?}",
                r.interval
            );
            out.push(r.interval.epsilon().as_nanos());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    out.sort_unstable();
    out
}

fn p(v: &[i64], q: f64) -> i64 {
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

#[test]
fn a_client_that_ignores_rate_is_limited_and_timed_keeps_its_epsilon() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (lab, _d) = lab(LabOptions::default());
    let rt = Lab::rt();
    let gps_a = rt.block_on(lab.master_status(0)).unwrap();
    let t = gps_a.transfer.as_ref().unwrap();
    let (limit, burst) = (t.rate_limit_per_second, t.rate_limit_burst);
    assert!(limit > 0, "the master's rate limit is on by default");
    let udp = t.listen.clone();
    let reader = PageReader::open(&lab.page).unwrap();
    let before = epsilons(&reader, 6.0);
    let seconds = 10.0;
    let flood = Command::new(env!("CARGO_BIN_EXE_ttbench"))
        .args(["flood", "--requests", &udp, "--from", "127.0.0.2"])
        .args(["--requests-per-second", "2000"])
        .args(["--seconds", &seconds.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let during = epsilons(&reader, 8.0);
    let out = flood.wait_with_output().unwrap();
    let sent: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let after = rt.block_on(lab.master_status(0)).unwrap();
    let t = after.transfer.unwrap();
    let st = rt.block_on(lab.status()).unwrap();
    let a = st.masters.iter().find(|m| m.id == "gps-a").unwrap();
    eprintln!(
        "flooder: {sent}; gps-a: {} RATE kisses, {} dropped, {} answered; timed ε p50/p99 before \
         {}/{} ns, during {}/{} ns; timed's gps-a: selected {}, {} kisses",
        t.rate_kissed,
        t.rate_dropped,
        t.answered,
        p(&before, 0.5),
        p(&before, 0.99),
        p(&during, 0.5),
        p(&during, 0.99),
        a.selected,
        a.rate_kisses
    );
    let (requests, time, kisses) = (
        sent["requests"].as_u64().unwrap(),
        sent["time_replies"].as_u64().unwrap(),
        sent["rate_kisses"].as_u64().unwrap(),
    );
    // The flood happened: thousands of requests at ~30× the limit.
    assert!(requests > 5_000, "{sent}");
    // It was held to the limit: the burst plus `limit` per second, no more.
    let allowed = u64::from(burst) + (f64::from(limit) * (seconds + 1.0)) as u64;
    assert!(
        time <= allowed,
        "the flooder got {time} answers; the limit allows {allowed}"
    );
    assert!(
        time >= u64::from(burst),
        "not even the burst was answered: {sent}"
    );
    // Told once per kiss interval (1 s), and the rest dropped by the master.
    assert!((1..=seconds as u64 + 2).contains(&kisses), "{sent}");
    assert!(t.rate_kissed >= kisses, "{t:?}");
    assert!(t.rate_dropped + time + kisses >= requests * 9 / 10, "{t:?}");
    // The honest host was never limited, kept gps-a, and kept its ε.
    assert_eq!(a.rate_kisses, 0, "timed was rate-limited: {a:?}");
    assert!(a.selected, "{a:?}");
    assert!(during.len() > 100, "timed lost its trustworthy status");
    assert!(
        p(&during, 0.5) <= 2 * p(&before, 0.5) + 1_000,
        "ε p50 {} ns during the flood vs {} ns before",
        p(&during, 0.5),
        p(&before, 0.5)
    );
}

/// timed under a 4 µs target (polls every ~200 ms, two or four exchanges each) against a master
/// that allows 2 requests/s: the master kisses, timed backs off (its status says so), the rate
/// the master sees falls to what it allows, and timed stays trustworthy on what it gets.
#[test]
fn timed_backs_off_when_its_master_says_rate() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bins = bench::lab::binaries(None).unwrap();
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let master = bench::lab::SimulatedMaster::start(&bins, &d.join("m"), "m", |c| {
        c.rate_limit = timemaster::config::RateLimitConfig {
            per_second: 2,
            burst: 8,
            ..Default::default()
        };
    })
    .unwrap();
    master
        .wait_for(Duration::from_secs(40), |s| {
            ttproto::status_from_wire(s.status).is_trustworthy()
        })
        .unwrap();
    let listen: std::net::SocketAddr = ([127, 0, 0, 1], bench::lab::free_port().unwrap()).into();
    let page = d.join("page");
    let cfg = timed::config::Config {
        listen,
        shm_path: page.clone(),
        vmclock: d.join("no-vmclock"),
        target_epsilon_ns: Some(4_000),
        max_poll_interval_ms: 8_000,
        ..timed::config::Config::new(vec![timed::config::MasterConfig::new(&format!(
            "127.0.0.1:{}",
            master.port
        ))])
    };
    let path = d.join("timed.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let _timed = common::spawn_logged(
        Command::new(bins.join("timed"))
            .args(["run", "-c"])
            .arg(&path),
        &d.join("timed.log"),
    );
    let t0 = Instant::now();
    let reader = loop {
        if let Ok(r) = PageReader::open(&page) {
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no page");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Let the backoff settle, then count what the master sees over 12 s.
    std::thread::sleep(Duration::from_secs(12));
    let rt = Lab::rt();
    let seen = |rt: &tokio::runtime::Runtime| -> u64 {
        let t = rt.block_on(master.status()).unwrap().transfer.unwrap();
        t.answered + t.rate_kissed + t.rate_dropped
    };
    let (n0, t0) = (seen(&rt), Instant::now());
    let eps = epsilons(&reader, 12.0);
    let rate = (seen(&rt) - n0) as f64 / t0.elapsed().as_secs_f64();
    let report = String::from_utf8(common::stdout_ok(Command::new(bins.join("ttctl")).args([
        "status",
        "--addr",
        &listen.to_string(),
    ])))
    .unwrap();
    let st = rt
        .block_on(async {
            let mut c = ttproto::v1::time_daemon_client::TimeDaemonClient::connect(format!(
                "http://{listen}"
            ))
            .await?;
            Ok::<_, Box<dyn std::error::Error>>(
                c.status(ttproto::v1::StatusRequest {}).await?.into_inner(),
            )
        })
        .unwrap();
    let m = &st.masters[0];
    eprintln!(
        "{report}\nrequests/s at the master: {rate:.2}; ε p50 {} ns over {} trustworthy readings",
        p(&eps, 0.5),
        eps.len()
    );
    assert!(m.rate_kisses > 0, "the master never kissed timed: {m:?}");
    assert!(m.min_poll_interval_s >= 0.5, "{m:?}");
    assert!(report.contains("rate-limited us"), "{report}");
    // Unlimited, timed would ask ~10 requests/s; the master allows 2 (bursts of 8).
    assert!(rate <= 3.0, "timed still asks {rate:.2} requests/s");
    // And it still synchronizes on what it gets.
    assert!(
        eps.len() > 150,
        "timed lost its trustworthy status: {report}"
    );
}
