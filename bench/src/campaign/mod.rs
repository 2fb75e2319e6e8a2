//! `ttbench campaign`: a multi-host fault campaign on real processes in real network
//! namespaces, checked against truth on every sample.
//!
//! Topology: one Linux bridge in the root namespace (`10.77.N.254/24`), and one network
//! namespace per master and per host, each joined to the bridge by a veth pair. Masters are
//! `timemaster run --simulate` (their own firmware-sim GPS receiver and atomic clock); hosts are
//! `timed`, each polling every master over UDP and writing its own page. The controller (this
//! process, root namespace) reads every host's page through the SDK ten times a second and
//! checks each trustworthy interval against truth (the machine's `CLOCK_REALTIME`, the devices'
//! truth), bracketed by a read before and after.
//!
//! Faults, from a seeded schedule: `kill -9` of a master or of a timed and their restarts,
//! storms (every timed at once, three masters at once), partitions (a node's veth set down: no
//! `tc netem` or iptables exist here), steps of a host's clock through timed's test knob, and a
//! master lying by a fixed amount throughout (its devices' time jumps at power-on; it has no
//! peers, so it never evicts itself). The negative control makes a majority of masters lie
//! together: hosts must follow them, and the checker must see it.
//!
//! Needs root and iproute2 (`ip netns`).

use crate::error::Error;
use crate::lab::{binaries, grpc_channel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use timemaster::config::{AtomicConfig, Config as MasterConfig, GpsConfig, PeerConfig, PpsSource};
use ttcore::ClockStatus;
use ttproto::v1;

mod net;

use net::*;

/// What to run.
#[derive(Clone, Debug)]
pub struct CampaignOptions {
    /// Seconds of faults after warm-up.
    pub duration_s: f64,
    /// Seed of the fault schedule.
    pub seed: u64,
    /// Masters (≥ 3).
    pub masters: usize,
    /// Hosts running timed.
    pub hosts: usize,
    /// How far the lying master (or, in the negative control, the lying majority) is off (ms).
    pub lie_ms: f64,
    /// A majority of masters lie together: the checker must find violations.
    pub negative_control: bool,
    /// Working directory (logs, configs, pages); removed afterwards unless `keep`.
    pub dir: PathBuf,
    /// Keep the directory.
    pub keep: bool,
    /// Where the binaries are (default: next to this executable, built on demand).
    pub bin_dir: Option<PathBuf>,
}

impl Default for CampaignOptions {
    fn default() -> Self {
        CampaignOptions {
            duration_s: 600.0,
            seed: 1,
            masters: 5,
            hosts: 3,
            lie_ms: 5.0,
            negative_control: false,
            dir: std::env::temp_dir().join(format!("ttcampaign-{}", std::process::id())),
            keep: false,
            bin_dir: None,
        }
    }
}

/// What `ttbench campaign --json` prints: the one definition the writer, the text form and the
/// tests share (a renamed or missing field fails to parse, it never reads as 0).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignReport {
    /// Whether this was the negative control (a majority of masters lying together).
    pub negative_control: bool,
    /// Seconds of faults after the warm-up.
    pub duration_s: f64,
    /// Seconds until every host was synchronized, before the faults began (0.1 s resolution).
    pub warm_up_s: f64,
    /// Masters, each in its own network namespace.
    pub masters: usize,
    /// Hosts (timed), each in its own network namespace.
    pub hosts: usize,
    /// Masters lying throughout.
    pub lying_masters: usize,
    /// How far they lie (ms, signed).
    pub lie_ms: f64,
    /// The fault plan's seed.
    pub seed: u64,
    /// How the hosts' masters were authenticated at the end (`ttctl status`'s `auth`), counted.
    pub master_auth: BTreeMap<String, u64>,
    /// Page reads, all hosts.
    pub samples: u64,
    /// Of those, synchronized or holdover.
    pub trustworthy_samples: u64,
    /// Trustworthy reads whose interval missed truth.
    pub violations: u64,
    /// The first five violations.
    pub first_violations: Vec<CampaignViolation>,
    /// Share of reads per status (sums to 1).
    pub status_share: BTreeMap<String, f64>,
    /// Faults per kind (`injection-failed` when one could not be injected).
    pub fault_counts: BTreeMap<String, u64>,
    /// Every fault, in order.
    pub faults: Vec<Fault>,
    /// The run's directory (kept with `--keep`).
    pub dir: String,
}

/// One trustworthy read whose interval missed truth: truth was somewhere in
/// `[truth_before_ns, truth_after_ns]` (realtime read around the SDK call) and the interval did
/// not reach into that bracket.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignViolation {
    /// Seconds after warm-up.
    pub t_s: f64,
    /// The host.
    pub host: usize,
    /// The interval (ns on the timescale).
    pub earliest_ns: i64,
    /// The interval (ns on the timescale).
    pub latest_ns: i64,
    /// Realtime right after the read (ns).
    pub truth_after_ns: i64,
    /// Realtime right before the read (ns).
    pub truth_before_ns: i64,
    /// The status the read came with.
    pub status: ClockStatus,
}

/// A fault as injected (for the report).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Seconds after warm-up.
    pub t_s: f64,
    /// What.
    pub kind: String,
    /// On which node(s).
    pub target: String,
}

#[derive(Clone, Copy)]
enum Action {
    KillMaster(usize),
    StartMaster(usize),
    KillTimed(usize),
    StartTimed(usize),
    Cut(usize),
    Heal(usize),
    Step(usize, i64),
}

/// The fault schedule: one fault every 6–16 s, each undone 2–25 s later; the seven kinds in a
/// shuffled rotation, so a short run still sees every kind.
#[allow(
    clippy::too_many_lines,
    reason = "one match arm per fault kind, each choosing its target and its undo: a table."
)]
fn schedule(
    rng: &mut ChaCha8Rng,
    duration: f64,
    masters: usize,
    hosts: usize,
    liar: Option<usize>,
) -> Vec<(f64, Action, Option<Fault>)> {
    let mut out: Vec<(f64, Action, Option<Fault>)> = Vec::new();
    let honest: Vec<usize> = (0..masters).filter(|m| Some(*m) != liar).collect();
    let mut t = 5.0;
    let fault = |t: f64, kind: &str, target: String| {
        Some(Fault {
            t_s: (t * 10.0f64).round() / 10.0,
            kind: kind.into(),
            target,
        })
    };
    let mut kinds: Vec<u32> = Vec::new();
    while t < duration - 20.0 {
        if kinds.is_empty() {
            kinds = (0..7).collect();
            for i in (1..kinds.len()).rev() {
                kinds.swap(i, rng.random_range(0..=i));
            }
        }
        match kinds.pop().unwrap_or(0) {
            0 => {
                let m = honest[rng.random_range(0..honest.len())];
                out.push((
                    t,
                    Action::KillMaster(m),
                    fault(t, "kill-9-master", format!("m{m}")),
                ));
                out.push((
                    t + rng.random_range(3.0..15.0),
                    Action::StartMaster(m),
                    None,
                ));
            }
            1 => {
                let h = rng.random_range(0..hosts);
                out.push((
                    t,
                    Action::KillTimed(h),
                    fault(t, "kill-9-timed", format!("h{h}")),
                ));
                out.push((t + rng.random_range(1.0..5.0), Action::StartTimed(h), None));
            }
            2 => {
                let m = rng.random_range(0..masters);
                let d = rng.random_range(5.0..25.0);
                out.push((
                    t,
                    Action::Cut(m),
                    fault(t, "partition-master", format!("m{m}")),
                ));
                out.push((t + d, Action::Heal(m), None));
            }
            3 => {
                let h = rng.random_range(0..hosts);
                let d = rng.random_range(2.0..15.0);
                out.push((
                    t,
                    Action::Cut(masters + h),
                    fault(t, "partition-host", format!("h{h}")),
                ));
                out.push((t + d, Action::Heal(masters + h), None));
            }
            4 => {
                let h = rng.random_range(0..hosts);
                let ms = rng.random_range(0.1..20.0) * if rng.random() { 1.0 } else { -1.0 };
                out.push((
                    t,
                    Action::Step(h, (ms * 1e6) as i64),
                    fault(t, "clock-step", format!("h{h} {ms:+.2} ms")),
                ));
            }
            5 => {
                let back = rng.random_range(1.0..4.0);
                for h in 0..hosts {
                    out.push((
                        t,
                        Action::KillTimed(h),
                        if h == 0 {
                            fault(t, "storm-timed", "all hosts".into())
                        } else {
                            None
                        },
                    ));
                    out.push((t + back, Action::StartTimed(h), None));
                }
            }
            _ => {
                let k = 3.min(honest.len());
                let back = rng.random_range(4.0..12.0);
                for (j, &m) in honest.iter().take(k).enumerate() {
                    out.push((
                        t,
                        Action::KillMaster(m),
                        if j == 0 {
                            fault(t, "storm-masters", format!("{k} masters"))
                        } else {
                            None
                        },
                    ));
                    out.push((t + back, Action::StartMaster(m), None));
                }
            }
        }
        t += rng.random_range(6.0..16.0);
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// Runs the campaign; its report.
#[allow(
    clippy::too_many_lines,
    reason = "the campaign in order — network, masters, hosts, warm-up, the fault loop, the report — each step a function except the loop, whose sampling and injection interleave by the clock."
)]
pub fn run(o: &CampaignOptions) -> Result<CampaignReport, Error> {
    if o.masters < 3 || o.hosts == 0 {
        return Err(Error::failed(
            "a campaign needs at least 3 masters and 1 host",
        ));
    }
    let bins = binaries(o.bin_dir.as_deref())?;
    std::fs::create_dir_all(&o.dir).map_err(|e| Error::at(o.dir.display(), e))?;
    let id = std::process::id() % 200 + 20;
    let names: Vec<String> = (0..o.masters)
        .map(|m| format!("m{m}"))
        .chain((0..o.hosts).map(|h| format!("h{h}")))
        .collect();
    let net = Net::new(id, &names)?;
    // Who lies: one master throughout, or a majority together in the negative control.
    let liars: Vec<usize> = if o.negative_control {
        (0..o.masters / 2 + 1).collect()
    } else {
        vec![o.masters - 1]
    };
    let sec = Secrets::new(o, &net)?;
    let mut masters = start_masters(o, &bins, &net, &liars, &sec)?;
    let (mut hosts, pages, timed_addrs) = start_hosts(o, &bins, &net, &sec)?;
    let rt = crate::lab::Lab::rt();
    let mut readers: Vec<Option<ttclient::TrueTime>> = vec![None; o.hosts];
    let mut stats = Stats::default();
    let warm = warm_up(o, &mut readers, &pages)?;
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let plan = schedule(
        &mut rng,
        o.duration_s,
        o.masters,
        o.hosts,
        (!o.negative_control).then_some(o.masters - 1),
    );
    let mut faults: Vec<Fault> = liars
        .iter()
        .map(|m| Fault {
            t_s: 0.0,
            kind: "lying-master".into(),
            target: format!("m{m} {:+} ms throughout", o.lie_ms),
        })
        .collect();
    let mut next = 0usize;
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < o.duration_s {
        let now = start.elapsed().as_secs_f64();
        while next < plan.len() && plan[next].0 <= now {
            let (_, a, f) = &plan[next];
            let r = inject(
                *a,
                &mut masters,
                &mut hosts,
                &net,
                &rt,
                (&timed_addrs, &sec.client),
            );
            if let Err(e) = r {
                // A fault that could not be injected is reported, not hidden.
                faults.push(Fault {
                    t_s: now,
                    kind: "injection-failed".into(),
                    target: e.to_string(),
                });
            }
            if let Some(f) = f {
                faults.push(f.clone());
            }
            next += 1;
        }
        for h in 0..o.hosts {
            sample(&mut readers[h], &pages[h], h, now, &mut stats);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // How the hosts' masters were authenticated at the end, as `ttctl status` shows it (over
    // TLS, like every other management call here).
    let mut auth: BTreeMap<String, u64> = BTreeMap::new();
    for a in &timed_addrs {
        if let Ok(s) = rt.block_on(status(a, &sec.client)) {
            for m in s.masters {
                *auth.entry(m.auth).or_default() += 1;
            }
        }
    }
    let total: u64 = stats.status.values().sum::<u64>().max(1);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for f in &faults {
        *counts.entry(f.kind.clone()).or_default() += 1;
    }
    let report = CampaignReport {
        negative_control: o.negative_control,
        duration_s: o.duration_s,
        warm_up_s: (warm * 10.0).round() / 10.0,
        masters: o.masters,
        hosts: o.hosts,
        lying_masters: liars.len(),
        lie_ms: o.lie_ms,
        seed: o.seed,
        master_auth: auth,
        samples: stats.samples,
        trustworthy_samples: stats.trustworthy,
        violations: stats.violations,
        first_violations: stats.first,
        status_share: stats
            .status
            .iter()
            .map(|(k, v)| (k.clone(), *v as f64 / total as f64))
            .collect(),
        fault_counts: counts,
        faults,
        dir: o.dir.display().to_string(),
    };
    drop(hosts);
    drop(masters);
    drop(net);
    if !o.keep {
        let _ = std::fs::remove_dir_all(&o.dir);
    }
    Ok(report)
}

/// `ip:port` as a socket address.
fn sock_addr(ip: &str, port: u16) -> Result<std::net::SocketAddr, Error> {
    format!("{ip}:{port}")
        .parse()
        .map_err(|e| Error::failed(format!("{ip}:{port}: {e}")))
}

/// The masters' time-transfer and gRPC port, in every namespace.
const PORT: u16 = 7000;

/// timed's gRPC port, in every host namespace.
const TIMED_PORT: u16 = 7100;

/// The masters' NTS-KE port, in every namespace.
const KE_PORT: u16 = 4460;

/// Everything locked, as a fleet would run: a throwaway CA whose one leaf certificate names
/// every namespace's address (NTS-KE on every master, TLS on every gRPC listener, since none is
/// loopback), and the management token timed's knob needs.
struct Secrets {
    pki: ttsys::nts::Pki,
    management: ttsys::mgmt::ManagementConfig,
    client: ttsys::mgmt::ClientSecurity,
}

impl Secrets {
    fn new(o: &CampaignOptions, net: &Net) -> Result<Secrets, Error> {
        let dir = o.dir.join("pki");
        std::fs::create_dir_all(&dir)?;
        let names: Vec<&str> = net.nodes.iter().map(|n| n.2.as_str()).collect();
        let pki = ttsys::nts::throwaway_pki(&dir, &names)
            .map_err(|e| Error::failed(format!("certificates: {e}")))?;
        let token_file = dir.join("mgmt.token");
        let token = ttsys::mgmt::Token::generate(&token_file)
            .map_err(|e| Error::failed(format!("management token: {e}")))?;
        Ok(Secrets {
            management: ttsys::mgmt::ManagementConfig {
                certificate: Some(pki.cert.clone()),
                private_key: Some(pki.key.clone()),
                client_ca: None,
                token_file: Some(token_file),
            },
            client: ttsys::mgmt::ClientSecurity {
                ca: Some(pki.ca.clone()),
                token: Some(token),
            },
            pki,
        })
    }
}

/// Starts the masters in their namespaces: firmware-sim devices inside each (`--simulate`),
/// the liars' devices jumped by the lie, and every honest master cross-checking the others,
/// all over NTS.
fn start_masters(
    o: &CampaignOptions,
    bins: &std::path::Path,
    net: &Net,
    liars: &[usize],
    sec: &Secrets,
) -> Result<Vec<Daemon>, Error> {
    let addr = |i: usize| net.nodes[i].2.clone();
    let lie_ns = (o.lie_ms * 1e6) as i64;
    let mut masters: Vec<Daemon> = Vec::new();
    for m in 0..o.masters {
        let dir = o.dir.join(format!("m{m}"));
        std::fs::create_dir_all(&dir)?;
        let lies = liars.contains(&m);
        let scenario = dir.join("devices.toml");
        let mut sc = format!("seed = {}\n", o.seed * 31 + m as u64);
        if lies {
            sc.push_str(&format!(
                "[[fault]]\nkind = \"time-jump\"\nat-s = 0.0\nphase-ns = {lie_ns}\n"
            ));
        }
        std::fs::write(&scenario, sc)?;
        // The device paths are placeholders: `--simulate` points them at its own devices.
        let null = || PpsSource::Sock {
            path: "/dev/null".into(),
        };
        let cfg = MasterConfig {
            gps: Some(GpsConfig::new("/dev/null".into(), null())),
            atomic: Some(AtomicConfig::new(null(), 100)),
            // Liars have no peers (so they never evict themselves); the others cross-check all.
            peers: (0..o.masters)
                .filter(|&p| p != m && !lies)
                .map(|p| PeerConfig {
                    nts_ke: Some(format!("{}:{KE_PORT}", addr(p))),
                    ..PeerConfig::new(&format!("{}:{PORT}", addr(p)))
                })
                .collect(),
            nts: Some(timemaster::config::NtsConfig::new(
                sock_addr(&addr(m), KE_PORT)?,
                sec.pki.cert.clone(),
                sec.pki.key.clone(),
                dir.join("nts-keys"),
            )),
            nts_trusted_certs: Some(sec.pki.ca.clone()),
            management: sec.management.clone(),
            ..MasterConfig::new(
                &format!("m{m}"),
                ttcore::MasterKind::Gps,
                sock_addr(&addr(m), PORT)?,
            )
        };
        let path = dir.join("timemaster.toml");
        std::fs::write(&path, toml::to_string(&cfg)?)?;
        let mut d = Daemon {
            name: format!("m{m}"),
            ns: net.nodes[m].0.clone(),
            argv: vec![
                bins.join("timemaster").display().to_string(),
                "run".into(),
                "--simulate".into(),
                "-c".into(),
                path.display().to_string(),
                "--sim-scenario".into(),
                scenario.display().to_string(),
                "--sim-dir".into(),
                dir.join("devices").display().to_string(),
            ],
            log: dir.join("timemaster.log"),
            child: None,
        };
        d.start()?;
        masters.push(d);
    }
    Ok(masters)
}

/// Starts one timed per host namespace, polling every master; its page, its gRPC address.
#[allow(clippy::type_complexity)]
fn start_hosts(
    o: &CampaignOptions,
    bins: &std::path::Path,
    net: &Net,
    sec: &Secrets,
) -> Result<(Vec<Daemon>, Vec<std::path::PathBuf>, Vec<String>), Error> {
    let addr = |i: usize| net.nodes[i].2.clone();
    let mut hosts: Vec<Daemon> = Vec::new();
    let mut pages = Vec::new();
    let mut timed_addrs = Vec::new();
    for h in 0..o.hosts {
        let i = o.masters + h;
        let dir = o.dir.join(format!("h{h}"));
        std::fs::create_dir_all(&dir)?;
        let page = dir.join("page");
        let masters = (0..o.masters)
            .map(|m| timed::config::MasterConfig {
                nts_ke: Some(format!("{}:{KE_PORT}", addr(m))),
                ..timed::config::MasterConfig::new(&format!("{}:{PORT}", addr(m)))
            })
            .collect();
        let cfg = timed::config::Config {
            listen: sock_addr(&addr(i), TIMED_PORT)?,
            shm_path: page.clone(),
            allow_test_knob: true,
            vmclock: dir.join("no-vmclock"),
            nts_trusted_certs: Some(sec.pki.ca.clone()),
            management: sec.management.clone(),
            ..timed::config::Config::new(masters)
        };
        let path = dir.join("timed.toml");
        std::fs::write(&path, toml::to_string(&cfg)?)?;
        let mut d = Daemon {
            name: format!("h{h}"),
            ns: net.nodes[i].0.clone(),
            argv: vec![
                bins.join("timed").display().to_string(),
                "run".into(),
                "-c".into(),
                path.display().to_string(),
            ],
            log: dir.join("timed.log"),
            child: None,
        };
        d.start()?;
        hosts.push(d);
        pages.push(page);
        timed_addrs.push(cfg.listen.to_string());
    }
    Ok((hosts, pages, timed_addrs))
}

/// Samples every host until all are synchronized (at most 180 s); the seconds it took.
fn warm_up(
    o: &CampaignOptions,
    readers: &mut [Option<ttclient::TrueTime>],
    pages: &[std::path::PathBuf],
) -> Result<f64, Error> {
    // Warm-up: until every host is synchronized (at most 180 s).
    let t0 = Instant::now();
    loop {
        let synced = (0..o.hosts)
            .filter(|&h| {
                sample(&mut readers[h], &pages[h], h, -1.0, &mut Stats::default())
                    == Some(ClockStatus::Synchronized)
            })
            .count();
        if synced == o.hosts {
            break Ok(t0.elapsed().as_secs_f64());
        }
        if t0.elapsed() > Duration::from_secs(180) {
            break Err(Error::failed(format!(
                "hosts not synchronized after 180 s ({synced} of {}); logs in {}",
                o.hosts,
                o.dir.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Carries out one planned action.
fn inject(
    a: Action,
    masters: &mut [Daemon],
    hosts: &mut [Daemon],
    net: &Net,
    rt: &tokio::runtime::Runtime,
    timed: (&[String], &ttsys::mgmt::ClientSecurity),
) -> Result<(), Error> {
    match a {
        Action::KillMaster(m) => {
            masters[m].kill9();
            Ok(())
        }
        Action::StartMaster(m) if !masters[m].running() => masters[m].start(),
        Action::KillTimed(h) => {
            hosts[h].kill9();
            Ok(())
        }
        Action::StartTimed(h) if !hosts[h].running() => hosts[h].start(),
        Action::Cut(i) => net.link(i, false),
        Action::Heal(i) => net.link(i, true),
        Action::Step(h, ns) => rt
            .block_on(step(&timed.0[h], timed.1, ns))
            .or_else(|e| if hosts[h].running() { Err(e) } else { Ok(()) }),
        _ => Ok(()),
    }
}

#[derive(Default)]
struct Stats {
    samples: u64,
    trustworthy: u64,
    violations: u64,
    status: BTreeMap<String, u64>,
    first: Vec<CampaignViolation>,
}

/// One read of host `h`'s page through the SDK, checked against truth (the machine's
/// realtime, read before and after: the interval must reach into that bracket).
fn sample(
    reader: &mut Option<ttclient::TrueTime>,
    page: &Path,
    h: usize,
    t: f64,
    st: &mut Stats,
) -> Option<ClockStatus> {
    if reader.is_none() {
        *reader = ttclient::TrueTime::open(page).ok();
    }
    let tt = reader.as_ref()?;
    let before = ttsys::clock::realtime_ns();
    let r = tt.reading().ok()?;
    let after = ttsys::clock::realtime_ns();
    st.samples += 1;
    *st.status.entry(r.status.as_str().to_string()).or_default() += 1;
    if r.status.is_trustworthy() {
        st.trustworthy += 1;
        let (e, l) = (
            r.interval.earliest().as_nanos(),
            r.interval.latest().as_nanos(),
        );
        if e > after || l < before {
            st.violations += 1;
            if st.first.len() < 5 {
                st.first.push(CampaignViolation {
                    t_s: t,
                    host: h,
                    earliest_ns: e,
                    latest_ns: l,
                    truth_after_ns: after,
                    truth_before_ns: before,
                    status: r.status,
                });
            }
        }
    }
    Some(r.status)
}

/// timed's status at `addr`.
async fn status(addr: &str, sec: &ttsys::mgmt::ClientSecurity) -> Result<v1::DaemonStatus, Error> {
    let ch = grpc_channel(addr, sec).await?;
    v1::time_daemon_client::TimeDaemonClient::new(ch)
        .status(v1::StatusRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(Error::from)
}

/// Steps host clock `addr`'s timed sees by `ns` through the test knob.
async fn step(addr: &str, sec: &ttsys::mgmt::ClientSecurity, ns: i64) -> Result<(), Error> {
    let ch = grpc_channel(addr, sec).await?;
    v1::time_daemon_client::TimeDaemonClient::new(ch)
        .set_clock_knob(sec.request(v1::ClockKnobRequest {
            skew_ppm: 0.0,
            step_ns: ns,
        }))
        .await
        .map(|_| ())
        .map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> CampaignReport {
        CampaignReport {
            negative_control: false,
            duration_s: 100.0,
            warm_up_s: 4.2,
            masters: 5,
            hosts: 4,
            lying_masters: 1,
            lie_ms: 50.0,
            seed: 3,
            master_auth: [("nts".to_string(), 20)].into(),
            samples: 3_000,
            trustworthy_samples: 2_900,
            violations: 1,
            first_violations: vec![CampaignViolation {
                t_s: 12.5,
                host: 2,
                earliest_ns: 10,
                latest_ns: 20,
                truth_after_ns: 40,
                truth_before_ns: 30,
                status: ClockStatus::Holdover,
            }],
            status_share: [("synchronized".to_string(), 1.0)].into(),
            fault_counts: [("clock-step".to_string(), 2)].into(),
            faults: vec![Fault {
                t_s: 1.0,
                kind: "clock-step".into(),
                target: "h1".into(),
            }],
            dir: "/tmp/x".into(),
        }
    }

    #[test]
    fn the_report_round_trips_and_a_renamed_field_is_refused_by_name() {
        let r = report();
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["first_violations"][0]["status"], "holdover");
        assert_eq!(
            serde_json::from_value::<CampaignReport>(j.clone()).unwrap(),
            r
        );
        let mut renamed = j.clone();
        let v = renamed
            .as_object_mut()
            .unwrap()
            .remove("violations")
            .unwrap();
        renamed["violation_count"] = v;
        let e = serde_json::from_value::<CampaignReport>(renamed)
            .unwrap_err()
            .to_string();
        assert!(e.contains("violation_count"), "{e}");
    }
}
