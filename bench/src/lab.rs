//! The whole stack on one machine, as real processes on loopback: three firmware-sim devices,
//! three timemasters (two GPS, one armageddon) and a timed. `ttlab`, the stack tests and
//! `ttbench commit-wait` all start it from here.

use crate::error::Error;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use ttproto::v1;
use ttsys::process::die_with_parent;

/// Lab options.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// Working directory (created; removed on drop unless `keep`).
    pub dir: PathBuf,
    /// Keep the directory afterwards.
    pub keep: bool,
    /// Make master `gps-b` lie by this many ns (its pulses late by that much from power-on),
    /// and turn off the masters' cross-checks so it does not evict itself: timed must reject it.
    pub liar_ns: Option<i64>,
    /// Let tests change timed's view of its clock (SetClockKnob).
    pub allow_knob: bool,
    /// Also write a ClockBound segment here.
    pub clockbound: Option<PathBuf>,
    /// Also write a ClockBound 3 segment (`shm1`) here.
    pub clockbound3: Option<PathBuf>,
    /// timed's poll interval (ms) when there is no `target_epsilon_ns`.
    pub poll_ms: u64,
    /// timed's `target-epsilon-ns`: poll as the error budget asks (`None`: every `poll_ms`).
    pub target_epsilon_ns: Option<i64>,
    /// timed's max-drift-ppm.
    pub max_drift_ppm: f64,
    /// Where the binaries are (default: next to the current executable, built on demand).
    pub bin_dir: Option<PathBuf>,
    /// timed's VMClock device (default: timed's own default, `/dev/vmclock0`).
    pub vmclock: Option<PathBuf>,
    /// NTS everywhere time moves: a throwaway CA and certificate, NTS-KE on every master, timed
    /// and the peer cross-checks on NTS (unauthenticated replies refused).
    pub secure: bool,
    /// One more source beside the three masters: a real chronyd (`local stratum 1`, serving the
    /// host clock, never touching it) polled as a plain NTP server (on NTS with `secure`).
    pub ntp_source: bool,
}

/// The lab's default `target-epsilon-ns` for timed: at the default 15 ppm wander bound, polls
/// every ~200 ms (one interleaved exchange per master between full bursts).
pub const DEFAULT_TARGET_EPSILON_NS: i64 = 4_000;

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            dir: std::env::temp_dir().join(format!("ttlab-{}", std::process::id())),
            keep: false,
            liar_ns: None,
            allow_knob: false,
            clockbound: None,
            clockbound3: None,
            poll_ms: 1000,
            target_epsilon_ns: Some(DEFAULT_TARGET_EPSILON_NS),
            max_drift_ppm: 15.0,
            bin_dir: None,
            vmclock: None,
            secure: false,
            ntp_source: false,
        }
    }
}

struct Proc {
    name: String,
    child: Child,
}

/// A running lab. Dropping it stops everything (SIGTERM, then SIGKILL after 2 s).
pub struct Lab {
    procs: Vec<Proc>,
    /// Options it was started with.
    pub opts: LabOptions,
    /// Master gRPC addresses, `gps-a`, `gps-b`, `arm-c`.
    pub masters: Vec<(String, String)>,
    /// timed's gRPC address.
    pub timed_addr: String,
    /// The page.
    pub page: PathBuf,
    /// Binaries.
    pub bins: PathBuf,
    /// What a management client needs: the CA (with `--secure`, every gRPC listener serves
    /// TLS) and the token timed's SetClockKnob wants.
    pub mgmt: ttsys::mgmt::ClientSecurity,
    /// The chronyd source (`ntp_source`), and its NTP address.
    pub chronyd: Option<(crate::chrony::Chronyd, String)>,
    /// Every daemon's OpenMetrics endpoint: (`gps-a` … `timed`, `http://…/metrics`).
    pub metrics: Vec<(String, String)>,
    timed_cfg: PathBuf,
}

pub use ttsys::port::{free_port, free_udp_port};

/// A gRPC channel to `addr` (`host:port`) with the lab's timeouts (1 s connect, 2 s per call),
/// over TLS when `sec` trusts a CA.
pub(crate) async fn grpc_channel(
    addr: &str,
    sec: &ttsys::mgmt::ClientSecurity,
) -> Result<tonic::transport::Channel, Error> {
    sec.endpoint(addr)
        .map_err(|e| Error::failed(e.to_string()))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(Error::from)
}

/// The stack's binaries and the packages that build them.
pub const STACK_BINARIES: &[(&str, &str)] = &[
    ("firmware-sim", "firmware-sim"),
    ("timemaster", "timemaster"),
    ("timed", "timed"),
    ("ttctl", "ttclient"),
];

/// The directory with the stack's binaries, building them when they are missing and cargo is
/// at hand (as under `cargo run` / `cargo test`).
pub fn binaries(hint: Option<&Path>) -> Result<PathBuf, Error> {
    binaries_for(hint, STACK_BINARIES)
}

/// The directory with the binaries `needed` (name, package), building the packages of the
/// missing ones when cargo is at hand.
pub fn binaries_for(hint: Option<&Path>, needed: &[(&str, &str)]) -> Result<PathBuf, Error> {
    let dir = match hint {
        Some(d) => d.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .map(|p| {
                if p.ends_with("deps") {
                    p.parent().unwrap_or(p).to_path_buf()
                } else {
                    p.to_path_buf()
                }
            })
            .ok_or(Error::failed("no executable directory"))?,
    };
    let missing: Vec<&str> = needed
        .iter()
        .filter(|(bin, _)| !dir.join(bin).exists())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(dir);
    }
    let release = dir.ends_with("release");
    let mut args = vec!["build"];
    for p in &missing {
        args.extend(["-p", p]);
    }
    if release {
        args.push("--release");
    }
    let cargo = std::env::var("CARGO").map_err(|_| {
        Error::failed(format!(
            "{} lacks binaries of {missing:?}; build them: cargo {}",
            dir.display(),
            args.join(" ")
        ))
    })?;
    let st = Command::new(cargo).args(&args).status()?;
    if !st.success() {
        return Err(Error::failed(format!("cargo {} failed", args.join(" "))));
    }
    Ok(dir)
}

/// One line of `ttlab --json`: `TT.now()` from timed's page beside truth, and timed's view of
/// its masters.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSample {
    /// Seconds since the lab started (0.1 s resolution).
    pub t_s: f64,
    /// The interval (ns on the timescale); 0 when the page cannot be read.
    pub earliest_ns: i64,
    /// The interval (ns on the timescale).
    pub latest_ns: i64,
    /// Its ε (ns); `i64::MAX` when the page cannot be read.
    pub epsilon_ns: i64,
    /// The page's status, after the time-dependent checks.
    pub status: ttcore::ClockStatus,
    /// Why, as timed says it (e.g. "no successful round yet" before the first sync); `None`
    /// when timed did not answer.
    pub reason: Option<String>,
    /// Truth: the host's realtime, read with the page (ns).
    pub truth_ns: i64,
    /// `earliest ≤ truth ≤ latest`.
    pub contains_truth: bool,
    /// timed's masters.
    pub masters: Vec<LabMaster>,
    /// Requests timed has sent to its sources since it started (`None`: timed did not answer).
    #[serde(default)]
    pub exchanges: Option<u64>,
    /// timed's next poll interval (s).
    #[serde(default)]
    pub poll_interval_s: Option<f64>,
}

/// One of timed's masters in a [`LabSample`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabMaster {
    /// Its id.
    pub id: String,
    /// Its address.
    pub addr: String,
    /// `gps`, `armageddon` or `ntp`.
    pub kind: String,
    /// Selected in the last round.
    pub selected: bool,
    /// Why selected or rejected.
    pub reason: String,
    /// `nts` or `none`.
    pub auth: String,
    /// Its published ε (ns).
    pub epsilon_ns: i64,
    /// The half-width of its selected sample's offset interval (ns).
    pub radius_ns: i64,
}

impl Lab {
    /// Starts the stack and returns once every process is up (not yet synchronized: see
    /// [`Lab::wait_synchronized`]).
    #[allow(
        clippy::too_many_lines,
        reason = "the lab's start-up in order: ports, devices, three masters' configs, timed's config, then the processes; each config is built from the daemons' own structs."
    )]
    pub fn start(opts: LabOptions) -> Result<Lab, Error> {
        let bins = binaries(opts.bin_dir.as_deref())?;
        std::fs::create_dir_all(&opts.dir).map_err(|e| Error::at(opts.dir.display(), e))?;
        let port = || free_port().map_err(Error::from);
        let (pa, pb, pc, pt) = (port()?, port()?, port()?, port()?);
        let mut lab = Lab {
            procs: Vec::new(),
            masters: vec![
                ("gps-a".into(), format!("127.0.0.1:{pa}")),
                ("gps-b".into(), format!("127.0.0.1:{pb}")),
                ("arm-c".into(), format!("127.0.0.1:{pc}")),
            ],
            timed_addr: format!("127.0.0.1:{pt}"),
            page: opts.dir.join("page"),
            bins,
            timed_cfg: opts.dir.join("timed.toml"),
            mgmt: ttsys::mgmt::ClientSecurity::none(),
            chronyd: None,
            metrics: Vec::new(),
            opts,
        };
        // Each daemon's metrics on a port of its own.
        let mut metrics_at = |name: &str| -> Result<std::net::SocketAddr, Error> {
            let a: std::net::SocketAddr = ([127, 0, 0, 1], port()?).into();
            lab.metrics
                .push((name.into(), format!("http://{a}/metrics")));
            Ok(a)
        };
        let metrics_of: Vec<std::net::SocketAddr> = ["gps-a", "gps-b", "arm-c", "timed"]
            .iter()
            .map(|n| metrics_at(n))
            .collect::<Result<_, _>>()?;
        let d = lab.opts.dir.clone();
        let b_scenario = match lab.opts.liar_ns {
            Some(ns) => {
                format!("seed = 2\n[[fault]]\nkind = \"time-jump\"\nat-s = 0.0\nphase-ns = {ns}\n")
            }
            None => "seed = 2\n".into(),
        };
        for (name, scenario) in [
            ("sim-a", "seed = 1\n".to_string()),
            ("sim-b", b_scenario),
            ("sim-c", "seed = 3\ngps.enabled = false\n".into()),
        ] {
            lab.start_sim(name, &scenario)?;
        }
        // Configs are the daemons' own structs, serialized: a key the daemons do not know
        // cannot be written here.
        use timemaster::config::{
            AtomicConfig, Config as MasterConfig, GpsConfig, LockLine, PeerConfig, PpsSource,
        };
        let sim = |s: &str, f: &str| d.join(s).join(f);
        let sock = |s: &str, f: &str| PpsSource::Sock { path: sim(s, f) };
        let gps = |s: &str| GpsConfig {
            cable_delay_ns: 50,
            ..GpsConfig::new(sim(s, "gps"), sock(s, "pps.sock"))
        };
        let atomic = |s: &str| AtomicConfig {
            telemetry_device: Some(sim(s, "atomic")),
            lock_line: Some(LockLine::File {
                path: sim(s, "lock.gpio"),
            }),
            ..AtomicConfig::new(sock(s, "atomic-pps.sock"), 100)
        };
        let cross = lab.opts.liar_ns.is_none();
        let addrs: Vec<String> = lab.masters.iter().map(|m| m.1.clone()).collect();
        // --secure: one NTS-KE port per master, certificates from a throwaway CA.
        let secure = match lab.opts.secure {
            true => {
                let pki = ttsys::nts::throwaway_pki(&d, &["127.0.0.1"])
                    .map_err(|e| Error::failed(format!("certificates: {e}")))?;
                let ke: Vec<String> = (0..addrs.len())
                    .map(|_| Ok(format!("127.0.0.1:{}", port()?)))
                    .collect::<Result<_, Error>>()?;
                Some((pki, ke))
            }
            false => None,
        };
        let nts_of = |i: usize| {
            secure.as_ref().map(|(pki, ke)| {
                timemaster::config::NtsConfig::new(
                    ke[i].parse().expect("a socket address we formatted"),
                    pki.cert.clone(),
                    pki.key.clone(),
                    d.join(format!("nts-keys-{i}")),
                )
            })
        };
        let ke_of = |i: usize| secure.as_ref().map(|(_, ke)| ke[i].clone());
        let trusted = secure.as_ref().map(|(pki, _)| pki.ca.clone());
        // The management plane: a token for timed's knob always; TLS on every gRPC listener
        // with --secure.
        let token_file = d.join("mgmt.token");
        let token = ttsys::mgmt::Token::generate(&token_file)
            .map_err(|e| Error::failed(format!("management token: {e}")))?;
        let management = ttsys::mgmt::ManagementConfig {
            certificate: secure.as_ref().map(|(pki, _)| pki.cert.clone()),
            private_key: secure.as_ref().map(|(pki, _)| pki.key.clone()),
            client_ca: None,
            token_file: Some(token_file),
        };
        lab.mgmt = ttsys::mgmt::ClientSecurity {
            ca: trusted.clone(),
            token: Some(token),
        };
        let peers = |of: usize| -> Vec<PeerConfig> {
            (0..addrs.len())
                .filter(|&p| p != of && (cross || (of == 2 && p == 0)))
                .map(|p| PeerConfig {
                    nts_ke: ke_of(p),
                    ..PeerConfig::new(&addrs[p])
                })
                .collect()
        };
        let listen = |i: usize| -> Result<std::net::SocketAddr, Error> {
            addrs[i]
                .parse()
                .map_err(|e| Error::failed(format!("{}: {e}", addrs[i])))
        };
        for (i, (name, simname)) in [("gps-a", "sim-a"), ("gps-b", "sim-b")].iter().enumerate() {
            let cfg = MasterConfig {
                gps: Some(gps(simname)),
                atomic: Some(atomic(simname)),
                peers: peers(i),
                nts: nts_of(i),
                nts_trusted_certs: trusted.clone(),
                management: management.clone(),
                metrics_listen: Some(metrics_of[i]),
                ..MasterConfig::new(name, ttcore::MasterKind::Gps, listen(i)?)
            };
            lab.start_master(name, &toml::to_string(&cfg)?)?;
        }
        // arm-c's max-epsilon and transfer limit are looser than the datacenter defaults: a
        // loopback lab on a shared 2-core machine may never see a sub-millisecond round trip.
        let arm = MasterConfig {
            max_epsilon_ns: 5_000_000,
            armageddon_max_peer_radius_ns: 2_000_000,
            atomic: Some(atomic("sim-c")),
            peers: peers(2),
            nts: nts_of(2),
            nts_trusted_certs: trusted.clone(),
            management: management.clone(),
            metrics_listen: Some(metrics_of[2]),
            ..MasterConfig::new("arm-c", ttcore::MasterKind::Armageddon, listen(2)?)
        };
        lab.start_master("arm-c", &toml::to_string(&arm)?)?;
        let mut masters: Vec<timed::config::MasterConfig> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| timed::config::MasterConfig {
                nts_ke: ke_of(i),
                ..timed::config::MasterConfig::new(a)
            })
            .collect();
        if lab.opts.ntp_source {
            let bin = crate::chrony::chronyd_path()
                .ok_or_else(|| Error::failed("--ntp-source needs chronyd (apt install chrony)"))?;
            let udp = free_udp_port()?;
            let ke = match &secure {
                Some((pki, _)) => Some((pki, port()?)),
                None => None,
            };
            let c = crate::sync_rps::chronyd_server(&bin, &d.join("chronyd"), udp, ke)?;
            let addr = format!("127.0.0.1:{udp}");
            masters.push(timed::config::MasterConfig {
                nts_ke: ke.map(|(_, k)| format!("127.0.0.1:{k}")),
                ..timed::config::MasterConfig::ntp(&addr)
            });
            lab.chronyd = Some((c, addr));
        }
        let tcfg = timed::config::Config {
            listen: lab
                .timed_addr
                .parse()
                .map_err(|e| Error::failed(format!("{}: {e}", lab.timed_addr)))?,
            shm_path: lab.page.clone(),
            poll_interval_ms: lab.opts.poll_ms,
            target_epsilon_ns: lab.opts.target_epsilon_ns,
            // The lab polls every ~200 ms under its target; a 2 s ceiling keeps the page's void
            // deadline at its fixed-poll value (10 s), which the kill tests watch for.
            max_poll_interval_ms: 2_000,
            max_drift_ppm: lab.opts.max_drift_ppm,
            allow_test_knob: lab.opts.allow_knob,
            clockbound_shm_path: lab.opts.clockbound.clone(),
            clockbound3_shm_path: lab.opts.clockbound3.clone(),
            vmclock: lab
                .opts
                .vmclock
                .clone()
                .unwrap_or_else(|| ttsys::vmclock::DEFAULT_PATH.into()),
            nts_trusted_certs: trusted,
            management,
            metrics_listen: Some(metrics_of[3]),
            ..timed::config::Config::new(masters)
        };
        let tcfg = toml::to_string(&tcfg)?;
        std::fs::write(&lab.timed_cfg, tcfg)?;
        lab.start_timed()?;
        Ok(lab)
    }

    fn spawn(&mut self, name: &str, cmd: &mut Command) -> Result<(), Error> {
        let log = std::fs::File::create(self.opts.dir.join(format!("{name}.log")))?;
        let child = die_with_parent(cmd)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| Error::at(name, e))?;
        self.procs.push(Proc {
            name: name.into(),
            child,
        });
        Ok(())
    }

    fn start_sim(&mut self, name: &str, scenario: &str) -> Result<(), Error> {
        let dir = self.opts.dir.join(name);
        std::fs::create_dir_all(&dir)?;
        let sc = dir.join("scenario.toml");
        std::fs::write(&sc, scenario)?;
        let mut child = die_with_parent(&mut Command::new(self.bins.join("firmware-sim")))
            .arg("run")
            .arg("--scenario")
            .arg(&sc)
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::at("firmware-sim", e))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        if !line.contains("\"ready\"") {
            let _ = child.kill();
            return Err(Error::failed(format!("{name} did not start: {line:?}")));
        }
        self.procs.push(Proc {
            name: name.into(),
            child,
        });
        Ok(())
    }

    fn start_master(&mut self, name: &str, cfg: &str) -> Result<(), Error> {
        let path = self.opts.dir.join(format!("{name}.toml"));
        std::fs::write(&path, cfg)?;
        let bin = self.bins.join("timemaster");
        self.spawn(name, Command::new(bin).args(["run", "-c"]).arg(&path))
    }

    /// Starts timed (again).
    pub fn start_timed(&mut self) -> Result<(), Error> {
        let bin = self.bins.join("timed");
        let cfg = self.timed_cfg.clone();
        self.spawn("timed", Command::new(bin).args(["run", "-c"]).arg(&cfg))
    }

    /// Kills timed with SIGKILL (no chance to clean up), as a crash would.
    pub fn kill_timed(&mut self) {
        if let Some(i) = self.procs.iter().position(|p| p.name == "timed") {
            let mut p = self.procs.remove(i);
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// Names of processes that have exited.
    pub fn exited(&mut self) -> Vec<String> {
        self.procs
            .iter_mut()
            .filter_map(|p| matches!(p.child.try_wait(), Ok(Some(_))).then(|| p.name.clone()))
            .collect()
    }

    /// A runtime for the gRPC helpers.
    pub fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    }

    /// timed's status.
    pub async fn status(&self) -> Result<v1::DaemonStatus, Error> {
        let ch = grpc_channel(&self.timed_addr, &self.mgmt).await?;
        v1::time_daemon_client::TimeDaemonClient::new(ch)
            .status(v1::StatusRequest {})
            .await
            .map(|r| r.into_inner())
            .map_err(Error::from)
    }

    /// Master `i`'s status (`gps-a`, `gps-b`, `arm-c` in that order).
    pub async fn master_status(&self, i: usize) -> Result<v1::MasterStatus, Error> {
        let (_, addr) = self
            .masters
            .get(i)
            .ok_or_else(|| Error::failed(format!("no master {i}")))?;
        let ch = grpc_channel(addr, &self.mgmt).await?;
        v1::time_master_client::TimeMasterClient::new(ch)
            .status(v1::StatusRequest {})
            .await
            .map(|r| r.into_inner())
            .map_err(Error::from)
    }

    /// Sets timed's test knob.
    pub async fn set_knob(
        &self,
        skew_ppm: f64,
        step_ns: i64,
    ) -> Result<v1::ClockKnobResponse, Error> {
        let ch = grpc_channel(&self.timed_addr, &self.mgmt).await?;
        v1::time_daemon_client::TimeDaemonClient::new(ch)
            .set_clock_knob(
                self.mgmt
                    .request(v1::ClockKnobRequest { skew_ppm, step_ns }),
            )
            .await
            .map(|r| r.into_inner())
            .map_err(Error::from)
    }

    /// Waits until timed is synchronized with at least `min_selected` masters selected.
    pub fn wait_synchronized(
        &self,
        min_selected: usize,
        timeout: Duration,
    ) -> Result<v1::DaemonStatus, Error> {
        let rt = Self::rt();
        let t0 = Instant::now();
        let mut last = String::new();
        while t0.elapsed() < timeout {
            if let Ok(s) = rt.block_on(self.status()) {
                let sel = s.masters.iter().filter(|m| m.selected).count();
                if ttproto::status_from_wire(s.status) == ttcore::ClockStatus::Synchronized
                    && sel >= min_selected
                {
                    return Ok(s);
                }
                last = format!(
                    "{} ({}), {sel} selected",
                    ttproto::status_from_wire(s.status),
                    s.reason
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Err(Error::failed(format!(
            "not synchronized after {:?}: {last}",
            timeout
        )))
    }

    /// One line of the lab's output: the interval now from the page, and truth (the host's
    /// realtime, which is firmware-sim's definition of true time) read at the same instant.
    /// `t_s` is left at 0 for the caller.
    pub fn sample(
        &self,
        reader: &ttsys::shm::PageReader,
        status: Option<&v1::DaemonStatus>,
    ) -> LabSample {
        let (raw, truth, _) = ttsys::clock::pair(ttsys::clock::realtime_ns);
        let (e, l, eps, st) = match reader.read() {
            Ok(d) => {
                let r = d.read_at(ttcore::RawReading::from_nanos(raw));
                (
                    r.interval.earliest().as_nanos(),
                    r.interval.latest().as_nanos(),
                    r.interval.epsilon().as_nanos(),
                    r.status,
                )
            }
            Err(_) => (0, 0, i64::MAX, ttcore::ClockStatus::Unsynchronized),
        };
        let masters = status
            .map(|s| {
                s.masters
                    .iter()
                    .map(|m| LabMaster {
                        id: m.id.clone(),
                        addr: m.addr.clone(),
                        kind: m.kind.clone(),
                        selected: m.selected,
                        reason: m.reason.clone(),
                        auth: m.auth.clone(),
                        epsilon_ns: m.epsilon_ns,
                        radius_ns: m.radius_ns,
                    })
                    .collect()
            })
            .unwrap_or_default();
        LabSample {
            t_s: 0.0,
            earliest_ns: e,
            latest_ns: l,
            epsilon_ns: eps,
            status: st,
            reason: status.map(|s| s.reason.clone()),
            truth_ns: truth,
            contains_truth: e <= truth && truth <= l,
            masters,
            exchanges: status.map(|s| s.exchanges),
            poll_interval_s: status.map(|s| s.poll_interval_s),
        }
    }

    /// Stops every process: SIGTERM, then SIGKILL for what is still running after 2 s.
    pub fn stop(&mut self) {
        for p in &self.procs {
            let _ = Command::new("kill")
                .args(["-TERM", &p.child.id().to_string()])
                .status();
        }
        let t0 = Instant::now();
        for p in &mut self.procs {
            while t0.elapsed() < Duration::from_secs(2) {
                if matches!(p.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        self.procs.clear();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop();
        if !self.opts.keep {
            let _ = std::fs::remove_dir_all(&self.opts.dir);
        }
    }
}

/// One `timemaster run --simulate` (its own firmware-sim devices, in-process) with the extra
/// configuration `extra` (TOML lines after `id`, `kind` and `listen`). Killed on drop.
pub struct SimulatedMaster {
    child: Child,
    /// gRPC (TCP) and, unless `extra` sets `ntp-listen`, time-transfer (UDP) port on 127.0.0.1.
    pub port: u16,
    /// Its log (stderr).
    pub log: PathBuf,
}

impl Drop for SimulatedMaster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SimulatedMaster {
    /// Starts it in `dir` (created) with binaries from `bins`: a GPS master on firmware-sim's
    /// devices, its configuration as `tweak` leaves it.
    pub fn start(
        bins: &Path,
        dir: &Path,
        id: &str,
        tweak: impl FnOnce(&mut timemaster::config::Config),
    ) -> Result<Self, Error> {
        use timemaster::config::{Config, GpsConfig, PpsSource};
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let cfg = dir.join(format!("{id}.toml"));
        // The paths are placeholders: `--simulate` points them at its own devices.
        let mut c = Config {
            gps: Some(GpsConfig::new(
                "/dev/null".into(),
                PpsSource::Sock {
                    path: "/dev/null".into(),
                },
            )),
            ..Config::new(id, ttcore::MasterKind::Gps, ([127, 0, 0, 1], port).into())
        };
        tweak(&mut c);
        std::fs::write(&cfg, toml::to_string(&c)?)?;
        let log = dir.join(format!("{id}.log"));
        let child = die_with_parent(&mut Command::new(bins.join("timemaster")))
            .args(["run", "--simulate", "-c"])
            .arg(&cfg)
            .arg("--sim-dir")
            .arg(dir.join(format!("{id}-sim")))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| Error::at("timemaster", e))?;
        Ok(SimulatedMaster { child, port, log })
    }

    /// Its status over gRPC.
    pub async fn status(&self) -> Result<v1::MasterStatus, Error> {
        let ch = grpc_channel(
            &format!("127.0.0.1:{}", self.port),
            &ttsys::mgmt::ClientSecurity::none(),
        )
        .await?;
        v1::time_master_client::TimeMasterClient::new(ch)
            .status(v1::StatusRequest {})
            .await
            .map(|r| r.into_inner())
            .map_err(Error::from)
    }

    /// Waits until its status satisfies `ok` (e.g. trustworthy), up to `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        ok: impl Fn(&v1::MasterStatus) -> bool,
    ) -> Result<v1::MasterStatus, Error> {
        let rt = Lab::rt();
        let t0 = Instant::now();
        let mut last = String::new();
        while t0.elapsed() < timeout {
            match rt.block_on(self.status()) {
                Ok(s) if ok(&s) => return Ok(s),
                Ok(s) => last = format!("{} ({})", ttproto::status_from_wire(s.status), s.reason),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        Err(Error::failed(format!(
            "master not ready after {timeout:?}: {last}\n{}",
            log.lines().rev().take(15).collect::<Vec<_>>().join("\n")
        )))
    }
}
