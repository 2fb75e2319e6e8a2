//! `ttbench sim`: the deterministic fleet simulator.
//!
//! Masters are the real [`timemaster::core::master::MasterCore`] driven through
//! [`timemaster::sim::VirtualMaster`] by firmware-sim's device models; hosts are the real
//! [`ttcore::host::HostClock`] fed by the real time transfer — the NTPv4 packets of
//! [`ttcore::ntp`], encoded, answered by the master's [`ttcore::ntp::answer`], checked and
//! bounded by [`ttcore::ntp::Client`], interleaved — over a simulated network; each host's raw clock is a seeded [`ttcore::osc::Oscillator`]. Every
//! sampled `TT.now()` is checked against true time. Nothing here re-implements the algorithms:
//! the simulator only moves time, delivers messages and counts.
//!
//! Commit wait is measured as the SDK defines it: the time until `TT.after(s)` holds for
//! `s = TT.now().latest`, found on the host's model (a sync during the wait, which would only
//! shorten it, is not modelled).

use crate::error::Error;
use firmware_sim::scenario::Scenario as DeviceScenario;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::json;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::HashMap;
use timemaster::core::master::{MasterKind, MasterParams};
use timemaster::sim::VirtualMaster;
use ttcore::disrupt::ClockPair;
use ttcore::host::{FrequencyMode, HostClock, HostParams, MasterSample, RoundNote};
use ttcore::ntp::{Client, RawStamp, ReplyOutcome, SentReply};
use ttcore::osc::{Oscillator, OscillatorParams, PhaseStep};
use ttcore::{ClockStatus, NANOS_PER_SEC, OffsetInterval, Rate, Span};

const S: i64 = NANOS_PER_SEC;
/// Default start: 2026-09-21T13:33:20Z as TAI.
const DEFAULT_START_TAI: i64 = (1_790_000_000 + 37) * S;

/// A fleet scenario (TOML, kebab-case, unknown keys rejected).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FleetScenario {
    /// Name for reports.
    pub name: String,
    /// One line on what it shows.
    #[serde(default)]
    pub description: String,
    /// Seed for everything.
    #[serde(default = "one")]
    pub seed: u64,
    /// Virtual duration (s).
    pub duration_s: f64,
    /// How often each host's TT.now() is checked (s).
    #[serde(default = "ten")]
    pub sample_interval_s: f64,
    /// Samples before this instant (s) are left out of `status_share_after_warm_up`.
    #[serde(default = "sixty")]
    pub warm_up_s: f64,
    /// Masters.
    #[serde(rename = "master")]
    pub masters: Vec<MasterSpec>,
    /// Hosts.
    pub hosts: HostSpec,
    /// Network.
    #[serde(default)]
    pub network: NetworkSpec,
    /// Host id to trace ε over time for (the sawtooth), if any.
    pub trace_host: Option<usize>,
    /// UTC start (`YYYY-MM-DDTHH:MM:SSZ`); default 2026-09-21T13:33:20Z.
    pub start_utc: Option<String>,
}

fn one() -> u64 {
    1
}
fn ten() -> f64 {
    10.0
}

/// One master.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MasterSpec {
    /// `gps` or `armageddon`.
    pub kind: MasterKind,
    /// firmware-sim scenario for its devices (TOML text; faults such as a GPS outage).
    #[serde(default)]
    pub devices: String,
    /// A liar: its answers are shifted by this much (ms) — a master that is wrong and does not
    /// know it.
    #[serde(default)]
    pub lie_ms: f64,
    /// Unreachable (crashed) during these windows: `[[at-s, duration-s], …]`.
    #[serde(default)]
    pub down: Vec<[f64; 2]>,
}

/// The hosts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HostSpec {
    /// How many.
    pub count: usize,
    /// Poll interval (s), ±10 % jitter.
    #[serde(default = "one_f")]
    pub poll_interval_s: f64,
    /// timed's `max-drift-ppm` (the assumption): wander around the measured frequency, or with
    /// `frequency = "assumed"` the whole frequency error.
    #[serde(default = "fifteen")]
    pub max_drift_ppm: f64,
    /// timed's `frequency`: `measured` (default) or `assumed` (Spanner 2012).
    #[serde(default)]
    pub frequency: FrequencyMode,
    /// Exchanges per master per poll (the narrowest is kept).
    #[serde(default = "one_u")]
    pub burst: usize,
    /// timed's `max-liars` (default: ⌊(N−1)/2⌋ of the N masters configured).
    #[serde(default)]
    pub max_liars: Option<usize>,
    /// timed's frequency window (s).
    #[serde(default = "sixty_four")]
    pub freq_window_s: f64,
    /// timed's `max-epsilon` (ms).
    #[serde(default = "ten")]
    pub max_epsilon_ms: f64,
    /// Oscillator frequency error, uniform in ±this (ppm).
    #[serde(default = "fifty")]
    pub freq_offset_ppm: f64,
    /// Random-walk wander (ppm/√s).
    #[serde(default)]
    pub wander_ppm_per_sqrt_s: f64,
    /// Temperature-like periodic frequency term amplitude (ppm).
    #[serde(default)]
    pub temperature_ppm: f64,
    /// Its period (s).
    #[serde(default = "day")]
    pub temperature_period_s: f64,
    /// Phase steps of every host's raw clock: `[[at-s, step-ms], …]`; boot time does not see
    /// them, so the disruption rule does.
    #[serde(default)]
    pub steps: Vec<[f64; 2]>,
    /// Stalls of every host's raw clock: `[[at-s, duration-ms], …]` — the raw clock stops
    /// while boot time (and truth) go on, as in a suspend.
    #[serde(default)]
    pub stalls: Vec<[f64; 2]>,
    /// Pauses of the whole virtual machine: `[[at-s, duration-ms], …]` — raw and boot time
    /// both stop while truth goes on. Without a VMClock device nothing on the host can see
    /// this: "the raw clock is never paused unnoticed" is an assumption, and a scenario with
    /// pauses and no VMClock is a negative control.
    #[serde(default)]
    pub vm_pauses: Vec<[f64; 2]>,
    /// Hosts have a VMClock device whose disruption marker changes at the end of every VM
    /// pause; timed checks it every 50 ms and at every poll, readers on every read.
    #[serde(default)]
    pub vmclock: bool,
    /// Every host restarts timed at these instants (s): the thundering herd.
    #[serde(default)]
    pub restart_at_s: Vec<f64>,
}

fn sixty() -> f64 {
    60.0
}
fn one_f() -> f64 {
    1.0
}
fn fifteen() -> f64 {
    15.0
}
fn one_u() -> usize {
    1
}
fn sixty_four() -> f64 {
    64.0
}
fn fifty() -> f64 {
    50.0
}
fn day() -> f64 {
    86_400.0
}

/// The network between hosts and masters.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct NetworkSpec {
    /// Per-link base one-way delay, uniform in [min, max] (µs).
    pub delay_us: [f64; 2],
    /// Per-message extra delay, exponential with this mean (µs).
    pub jitter_us: f64,
    /// Extra one-way delay on the host → master direction (µs): an asymmetric route.
    pub asymmetry_us: f64,
    /// Message loss probability.
    pub loss: f64,
    /// Time between a master's user-space transmit read and the kernel's transmit stamp (µs):
    /// what basic mode over-counts and interleaved mode removes.
    pub send_path_us: f64,
    /// Partitions: `[[at-s, duration-s, first-master, last-master]]` — hosts cannot reach those
    /// masters in the window.
    pub partitions: Vec<[f64; 4]>,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec {
            delay_us: [50.0, 200.0],
            jitter_us: 20.0,
            asymmetry_us: 0.0,
            loss: 0.0,
            send_path_us: 5.0,
            partitions: Vec::new(),
        }
    }
}

impl FleetScenario {
    /// The same scenario with every lying master's lie set to `lie_ms` in magnitude (each
    /// keeps its sign): one point of a lie-size sweep.
    pub fn with_lie(&self, lie_ms: f64) -> FleetScenario {
        let mut sc = self.clone();
        for m in sc.masters.iter_mut().filter(|m| m.lie_ms != 0.0) {
            m.lie_ms = lie_ms.abs() * m.lie_ms.signum();
        }
        sc.name = format!("{} (lie {lie_ms} ms)", self.name);
        sc
    }

    /// Parses a scenario file's text.
    pub fn from_toml(src: &str, path: &str) -> Result<Self, Error> {
        let s: FleetScenario = toml::from_str(src).map_err(|e| Error::at(path, e))?;
        if s.masters.is_empty() || s.hosts.count == 0 || s.duration_s <= 0.0 {
            return Err(Error::failed(format!(
                "{path}: needs masters, hosts and a positive duration-s"
            )));
        }
        for (i, m) in s.masters.iter().enumerate() {
            DeviceScenario::from_toml(&m.devices, &format!("{path}: master {i} devices"))?;
        }
        Ok(s)
    }
}

struct Master {
    vm: VirtualMaster,
    lie_ns: i64,
    down: Vec<(i64, i64)>,
    kind: MasterKind,
    /// Interleave records of the replies it sent, by `(t2_ns, cookie)`.
    sent: HashMap<(i64, u64), SentReply>,
    /// Its client state towards each other master (cross-checks, armageddon start).
    peers: Vec<Client>,
}

/// One simulated exchange: the host's request crosses the network (`up` ns), the master answers
/// with the real [`ttcore::ntp::answer`] (its transmit read `residence` after arrival, the
/// kernel's transmit stamp `send_path` later), the reply crosses back (`down`), and the
/// client's real [`Client::on_reply`] checks and bounds it. `client_raw` reads the client's
/// raw clock at a true instant.
#[allow(clippy::too_many_arguments)]
fn exchange(
    m: &mut Master,
    client: &mut Client,
    cookie: u64,
    t_send: i64,
    (up, down, send_path): (i64, i64, i64),
    max_eps: Span,
    drift: Rate,
    client_raw: &mut dyn FnMut(i64) -> i64,
) -> Option<ReplyOutcome> {
    let mut req = Vec::with_capacity(80);
    let mut rep = Vec::with_capacity(144);
    client.request(cookie, &mut req);
    let t2_true = t_send + up;
    let t3_true = t2_true + 8_000;
    let tx_kernel = t3_true + send_path;
    let t4_true = tx_kernel + down;
    let r2 = m.vm.raw_at(t2_true);
    let r3 = m.vm.raw_at(t3_true);
    let rk = m.vm.raw_at(tx_kernel);
    let mut view = timemaster::ntp_server::view_of(&m.vm.core.snapshot(r2), m.kind, "sim", max_eps);
    // A liar is wrong and does not know it: its whole timescale is shifted.
    if let Some(model) = view.model.as_mut() {
        model.ref_time = model.ref_time.saturating_add(Span::from_nanos(m.lie_ns));
    }
    let sent = &m.sent;
    let a = ttcore::ntp::answer(
        &req,
        RawStamp {
            raw: r2,
            kernel: true,
        },
        r3,
        &|t2, c| sent.get(&(t2, c)).copied(),
        &view,
        &mut rep,
    )
    .ok()?;
    if m.sent.len() > 100_000 {
        m.sent.clear();
    }
    m.sent.insert(
        (a.t2_ns, cookie),
        ttcore::ntp::sent_reply(&view, a.t2_ns, rk, true),
    );
    let t1 = client_raw(t_send);
    let t4 = client_raw(t4_true);
    client.on_reply(&rep, cookie, t1, t4, true, drift).ok()
}

struct Host {
    osc: Oscillator,
    clock: HostClock,
    /// Its client state towards each master.
    clients: Vec<Client>,
    /// timed's last checked (raw, boot) pair: the disruption rule's baseline and the pair its
    /// page carries for readers.
    check: ClockPair,
    boot_offset: i64,
    /// Phase of its watch ticks (ns, in [0, WATCH)).
    watch_phase: i64,
    /// The VMClock marker timed last checked (and put on its page).
    vm_marker: u64,
}

/// timed's watch period (`timed::daemon::WATCH_MS`, ns).
const WATCH: i64 = 50_000_000;

/// What the disruptions of a scenario do to a host's clocks, as functions of true time.
struct Disruptions {
    /// Raw-clock stalls: (start, duration) ns.
    stalls: Vec<(i64, i64)>,
    /// Whole-VM pauses: (start, duration) ns.
    pauses: Vec<(i64, i64)>,
    /// Merged windows around every disruption, where timed's watch ticks are simulated one by
    /// one; outside them `boot − raw` moves only at the oscillator's rate error (boot time runs
    /// at truth's rate here), far inside the rule's 500 ppm, so every skipped tick would have
    /// passed.
    windows: Vec<(i64, i64)>,
}

impl Disruptions {
    fn lost(list: &[(i64, i64)], t: i64) -> i64 {
        list.iter().map(|&(a, d)| (t - a).clamp(0, d)).sum()
    }

    /// (raw, boot) of a host at true time `t`, from its oscillator reading (which carries the
    /// phase steps) and its boot offset.
    fn clocks(&self, osc_reading: i64, boot_offset: i64, t: i64) -> ClockPair {
        let paused = Self::lost(&self.pauses, t);
        ClockPair {
            raw: osc_reading - Self::lost(&self.stalls, t) - paused,
            boot: t + boot_offset - paused,
            gap: 0,
        }
    }

    /// The VMClock marker at `t`: how many pauses have ended.
    fn marker(&self, t: i64) -> u64 {
        self.pauses.iter().filter(|&&(a, d)| t >= a + d).count() as u64
    }

    /// The end of the pause `t` falls in, if any: nothing on the host runs until then.
    fn paused_until(&self, t: i64) -> Option<i64> {
        self.pauses
            .iter()
            .find(|&&(a, d)| t >= a && t < a + d)
            .map(|&(a, d)| a + d)
    }

    fn in_window(&self, t: i64) -> bool {
        self.windows.iter().any(|&(a, b)| t >= a && t <= b)
    }
}

/// Summary of a run.
pub struct Report {
    /// JSON.
    pub json: serde_json::Value,
    /// ε of the traced host over time: (t_s, ε ns, status).
    pub trace: Vec<(f64, i64, ClockStatus)>,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("histogram bounds")
}

/// A host's simulated event, in the order ties are served (a poll before a sample before a
/// watch tick at the same instant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// timed polls every master.
    Poll,
    /// A reader samples `TT.now()` and checks it against truth.
    Sample,
    /// timed's 50 ms watch (simulated only inside the disruption windows).
    Watch,
}

/// Seconds after the scenario's start → ns on the TAI axis.
fn at_s(start: i64, s: f64) -> i64 {
    start + (s * 1e9) as i64
}

/// The scenario's start on the TAI axis.
fn start_tai(sc: &FleetScenario) -> Result<i64, Error> {
    match &sc.start_utc {
        Some(u) => {
            let l = ttcore::UtcLabel::parse_iso(u)
                .ok_or_else(|| Error::failed(format!("bad start-utc {u:?}")))?;
            Ok(ttcore::LeapTable::builtin().utc_to_tai_ns(&l)?)
        }
        None => Ok(DEFAULT_START_TAI),
    }
}

/// The masters, each running the real master core on its simulated devices.
fn build_masters(
    sc: &FleetScenario,
    rng: &mut ChaCha8Rng,
    start: i64,
) -> Result<Vec<Master>, Error> {
    let mut masters: Vec<Master> = Vec::new();
    for (i, m) in sc.masters.iter().enumerate() {
        let mut dev = DeviceScenario::from_toml(&m.devices, "devices")?;
        // The devices' truth starts where the fleet's does.
        if sc.start_utc.is_some() {
            dev.truth.start = sc.start_utc.clone();
        }
        dev.seed = sc.seed.wrapping_mul(31).wrapping_add(i as u64);
        let params = match m.kind {
            MasterKind::Gps => MasterParams::default(),
            MasterKind::Armageddon => MasterParams {
                kind: MasterKind::Armageddon,
                gps: None,
                ..Default::default()
            },
        };
        let local = OscillatorParams {
            freq_offset_ppm: rng.random_range(-20.0..20.0),
            wander_ppm_per_sqrt_s: 0.0005,
            ..Default::default()
        };
        masters.push(Master {
            vm: VirtualMaster::new(params, dev, local, sc.seed ^ (0x5eed + i as u64), start),
            lie_ns: (m.lie_ms * 1e6) as i64,
            down: m
                .down
                .iter()
                .map(|d| (at_s(start, d[0]), at_s(start, d[0] + d[1])))
                .collect(),
            kind: m.kind,
            sent: HashMap::new(),
            peers: (0..sc.masters.len()).map(|_| Client::new()).collect(),
        });
    }
    Ok(masters)
}

/// The hosts' parameters, as timed derives them from its config.
fn host_params(sc: &FleetScenario) -> Result<HostParams, Error> {
    Ok(HostParams {
        max_drift: Rate::bound_from_ppm_f64(sc.hosts.max_drift_ppm)
            .ok_or(Error::failed("bad max-drift-ppm"))?,
        frequency: sc.hosts.frequency,
        max_liars: sc.hosts.max_liars,
        max_epsilon: Span::from_nanos((sc.hosts.max_epsilon_ms * 1e6) as i64),
        holdover_after: Span::from_nanos((5.0 * sc.hosts.poll_interval_s * 1e9) as i64),
        freq_window: Span::from_nanos((sc.hosts.freq_window_s * 1e9) as i64),
    })
}

/// The scenario's clock disruptions, and the windows around them where watch ticks run.
fn disruptions(sc: &FleetScenario, start: i64, steps: &[PhaseStep]) -> Disruptions {
    let span = |v: &Vec<[f64; 2]>| -> Vec<(i64, i64)> {
        v.iter()
            .map(|s| (at_s(start, s[0]), (s[1] * 1e6) as i64))
            .collect()
    };
    let (stalls, pauses) = (span(&sc.hosts.stalls), span(&sc.hosts.vm_pauses));
    let mut w: Vec<(i64, i64)> = steps
        .iter()
        .map(|s| (s.at_ns, 0))
        .chain(stalls.iter().copied())
        .chain(pauses.iter().copied())
        .map(|(a, d)| (a - 2 * WATCH, a + d.max(0) + 4 * WATCH))
        .collect();
    w.sort();
    let mut windows: Vec<(i64, i64)> = Vec::new();
    for (a, b) in w {
        match windows.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => windows.push((a, b)),
        }
    }
    Disruptions {
        stalls,
        pauses,
        windows,
    }
}

/// The hosts: each an oscillator (with the scenario's phase steps) and timed's core, freshly
/// started (disrupted until its first sync).
fn build_hosts(
    sc: &FleetScenario,
    rng: &mut ChaCha8Rng,
    start: i64,
    hp: HostParams,
    steps: &[PhaseStep],
    dis: &Disruptions,
    n_masters: usize,
) -> Vec<Host> {
    (0..sc.hosts.count)
        .map(|h| {
            let p = OscillatorParams {
                initial_phase_ns: rng.random_range(-1e9..1e9),
                freq_offset_ppm: rng
                    .random_range(-sc.hosts.freq_offset_ppm..=sc.hosts.freq_offset_ppm),
                wander_ppm_per_sqrt_s: sc.hosts.wander_ppm_per_sqrt_s,
                periodic_amplitude_ppm: sc.hosts.temperature_ppm,
                periodic_period_s: sc.hosts.temperature_period_s,
                periodic_phase_rad: rng.random_range(0.0..std::f64::consts::TAU),
                steps: steps.to_vec(),
                ..Default::default()
            };
            let mut osc =
                Oscillator::new(p, start, sc.seed ^ (h as u64 + 1).wrapping_mul(0x9e37_79b9));
            let raw0 = osc.reading_at(start);
            Host {
                osc,
                clock: HostClock::new(hp, true),
                clients: (0..n_masters).map(|_| Client::new()).collect(),
                check: dis.clocks(raw0, raw0 - start, start),
                boot_offset: raw0 - start,
                watch_phase: rng.random_range(0..WATCH),
                vm_marker: 0,
            }
        })
        .collect()
}

/// The network and the fault schedule, fixed for the run.
struct Network {
    /// Per host, per master: base (up, down) delay (ns).
    links: Vec<Vec<(i64, i64)>>,
    /// (from, until, first master, last master) cut off from every host.
    partitions: Vec<(i64, i64, usize, usize)>,
}

impl Network {
    fn new(sc: &FleetScenario, rng: &mut ChaCha8Rng, start: i64, n_masters: usize) -> Network {
        let links = (0..sc.hosts.count)
            .map(|_| {
                (0..n_masters)
                    .map(|_| {
                        let d = rng.random_range(
                            sc.network.delay_us[0]
                                ..=sc.network.delay_us[1].max(sc.network.delay_us[0]),
                        );
                        let up = ((d + sc.network.asymmetry_us) * 1e3) as i64;
                        (up, (d * 1e3) as i64)
                    })
                    .collect()
            })
            .collect();
        let partitions = sc
            .network
            .partitions
            .iter()
            .map(|p| {
                (
                    at_s(start, p[0]),
                    at_s(start, p[0] + p[1]),
                    p[2] as usize,
                    p[3] as usize,
                )
            })
            .collect();
        Network { links, partitions }
    }

    /// Whether master `mi` (down during `down`) answers at `t`.
    fn reachable(&self, m: &Master, mi: usize, t: i64) -> bool {
        !m.down.iter().any(|&(a, b)| t >= a && t < b)
            && !self
                .partitions
                .iter()
                .any(|&(a, b, lo, hi)| t >= a && t < b && mi >= lo && mi <= hi)
    }
}

/// What the run counts.
struct Tally {
    eps: Histogram<u64>,
    commit_wait: Histogram<u64>,
    samples: u64,
    violations: u64,
    exchanges: u64,
    lost: u64,
    first: Vec<serde_json::Value>,
    status_count: [u64; 5],
    status_after: [u64; 5],
    trace: Vec<(f64, i64, ClockStatus)>,
    /// Rounds whose note said an assumption broke (the measurement and the prediction did
    /// not overlap), and rounds refused for too few answers or no agreement.
    inconsistent_rounds: u64,
    refused_rounds: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            eps: hist(),
            commit_wait: hist(),
            samples: 0,
            violations: 0,
            exchanges: 0,
            lost: 0,
            first: Vec::new(),
            status_count: [0; 5],
            status_after: [0; 5],
            trace: Vec::new(),
            inconsistent_rounds: 0,
            refused_rounds: 0,
        }
    }
}

/// Runs a scenario.
pub fn run(sc: &FleetScenario) -> Result<Report, Error> {
    let wall = std::time::Instant::now();
    let start = start_tai(sc)?;
    let mut rng = ChaCha8Rng::seed_from_u64(sc.seed);
    let end = at_s(start, sc.duration_s);
    let mut masters = build_masters(sc, &mut rng, start)?;
    let hp = host_params(sc)?;
    let steps: Vec<PhaseStep> = sc
        .hosts
        .steps
        .iter()
        .map(|s| PhaseStep {
            at_ns: at_s(start, s[0]),
            step_ns: (s[1] * 1e6) as i64,
        })
        .collect();
    let dis = disruptions(sc, start, &steps);
    let mut hosts = build_hosts(sc, &mut rng, start, hp, &steps, &dis, masters.len());
    let net = Network::new(sc, &mut rng, start, masters.len());
    let restarts: Vec<i64> = sc
        .hosts
        .restart_at_s
        .iter()
        .map(|&s| at_s(start, s))
        .collect();
    let mut queue: BinaryHeap<Reverse<(i64, Ev, usize)>> = BinaryHeap::new();
    for &(a, _) in &dis.windows {
        for (h, host) in hosts.iter().enumerate() {
            let first = a + (host.watch_phase - a).rem_euclid(WATCH);
            queue.push(Reverse((first, Ev::Watch, h)));
        }
    }
    let poll = (sc.hosts.poll_interval_s * 1e9) as i64;
    let sample = (sc.sample_interval_s * 1e9) as i64;
    for h in 0..sc.hosts.count {
        queue.push(Reverse((
            start + rng.random_range(0..poll.max(1)),
            Ev::Poll,
            h,
        )));
        queue.push(Reverse((
            start + rng.random_range(0..sample.max(1)),
            Ev::Sample,
            h,
        )));
    }
    let mut tally = Tally::new();
    let mut master_time = start;
    let mut next_restart = 0usize;
    let mut master_sync_next = start;
    while let Some(Reverse((t, ev, h))) = queue.pop() {
        if t > end {
            break;
        }
        // Thundering herd: every host's timed restarts at once.
        while next_restart < restarts.len() && restarts[next_restart] <= t {
            for host in hosts.iter_mut() {
                host.clock = HostClock::new(hp, true);
            }
            next_restart += 1;
        }
        // Masters advance in time order; once a second they cross-check and armageddon masters
        // take peer time, over the same simulated time transfer.
        if t > master_time {
            while master_sync_next <= t {
                master_round(&mut masters, master_sync_next);
                master_sync_next += S;
            }
            for m in masters.iter_mut() {
                m.vm.advance_to(t);
            }
            master_time = t;
        }
        // Nothing on a paused VM runs: its events wait for the resume.
        if let Some(resume) = dis.paused_until(t) {
            queue.push(Reverse((resume, ev, h)));
            continue;
        }
        let host = &mut hosts[h];
        let now = dis.clocks(host.osc.reading_at(t), host.boot_offset, t);
        let marker = dis.marker(t);
        let vm_moved = sc.hosts.vmclock && marker != host.vm_marker;
        if ev != Ev::Sample {
            watch(host, now, marker, vm_moved);
        }
        match ev {
            Ev::Watch => {
                if dis.in_window(t + WATCH) {
                    queue.push(Reverse((t + WATCH, Ev::Watch, h)));
                }
            }
            Ev::Sample => {
                let ctx = SampleAt {
                    t,
                    h,
                    now,
                    vm_moved,
                    start,
                    warm_up_end: at_s(start, sc.warm_up_s),
                };
                sample_host(sc, host, &masters, &dis, &ctx, &mut tally);
                queue.push(Reverse((t + sample, Ev::Sample, h)));
            }
            Ev::Poll => {
                poll_host(
                    sc,
                    host,
                    h,
                    &mut masters,
                    &net,
                    &dis,
                    t,
                    now.raw,
                    &mut rng,
                    &mut tally,
                );
                let jitter = rng.random_range(-poll / 10..=poll / 10);
                queue.push(Reverse((t + poll + jitter, Ev::Poll, h)));
            }
        }
    }
    Ok(report(sc, &masters, tally, wall.elapsed().as_secs_f64()))
}

/// timed's disruption check ([`ttcore::disrupt::check`], the same rule), at every watch tick
/// and every poll: a disruption makes the core forget its model and the clients their
/// interleaving state.
fn watch(host: &mut Host, now: ClockPair, marker: u64, vm_moved: bool) {
    let disruption = match ttcore::disrupt::check(host.check, now) {
        Err(d) => Some(d),
        Ok(()) if vm_moved => Some(ttcore::disrupt::Disruption::Hypervisor),
        Ok(()) => None,
    };
    if let Some(d) = disruption {
        host.clock
            .on_disruption(ttcore::host::Disturbance::Clock(d));
        host.clients.iter_mut().for_each(Client::reset);
    }
    host.check = now;
    host.vm_marker = marker;
}

/// Where and when a reader samples.
struct SampleAt {
    t: i64,
    h: usize,
    now: ClockPair,
    vm_moved: bool,
    start: i64,
    warm_up_end: i64,
}

/// A reader on host `h` reads `TT.now()` at true time `t`, as the page would give it, and the
/// interval is checked against truth.
fn sample_host(
    sc: &FleetScenario,
    host: &Host,
    masters: &[Master],
    dis: &Disruptions,
    at: &SampleAt,
    tally: &mut Tally,
) {
    let (t, h, raw) = (at.t, at.h, at.now.raw);
    let (mut st, _) = host.clock.status_at(raw);
    // The reader's own check against the page's pair (PROTOCOL.md reading step 3); outside
    // the windows it passes (see `Disruptions::windows`). With a VMClock, the reader also
    // compares its marker with the page's.
    if at.vm_moved
        || dis.in_window(t)
            && !ttsys::shm::continuous(host.check.raw, host.check.offset(), at.now.raw, at.now.boot)
    {
        st = ClockStatus::Disrupted;
    }
    tally.status_count[st.as_u8() as usize] += 1;
    if t >= at.warm_up_end {
        tally.status_after[st.as_u8() as usize] += 1;
    }
    let t_s = (t - at.start) as f64 / 1e9;
    let traced = Some(h) == sc.trace_host;
    let model = host.clock.model().filter(|_| st.is_trustworthy());
    let Some(m) = model else {
        if traced {
            tally.trace.push((t_s, 0, st));
        }
        return;
    };
    let iv = m.interval_at(raw);
    let truth = masters[0].vm.truth_at(t);
    tally.samples += 1;
    if !iv.contains(truth) {
        tally.violations += 1;
        if tally.first.len() < 5 {
            tally.first.push(json!({"t_s": t_s, "host": h, "earliest_ns": iv.earliest().as_nanos(), "latest_ns": iv.latest().as_nanos(), "truth_ns": truth.as_nanos(), "status": st.as_str()}));
        }
    }
    let eps = iv.epsilon().as_nanos().max(1) as u64;
    let _ = tally.eps.record(eps);
    // Commit wait for s = latest: until earliest passes s, on this model.
    let s = iv.latest();
    let hi = m.raw_when_after(s, raw, raw + 60 * S, 1_000);
    let _ = tally.commit_wait.record(((hi - raw).max(1)) as u64);
    if traced {
        tally.trace.push((t_s, eps as i64, st));
    }
}

/// A poll by host `h` at true time `t` (raw reading `raw`): a burst of exchanges with each
/// master, the narrowest sample of each into the core's round.
#[allow(clippy::too_many_arguments)]
fn poll_host(
    sc: &FleetScenario,
    host: &mut Host,
    h: usize,
    masters: &mut [Master],
    net: &Network,
    dis: &Disruptions,
    t: i64,
    raw: i64,
    rng: &mut ChaCha8Rng,
    tally: &mut Tally,
) {
    let drift = host.clock.exchange_drift();
    let carry = host.clock.carry_rate();
    let mut round: Vec<Option<MasterSample>> = Vec::with_capacity(masters.len());
    let mut last_t4 = raw;
    for (mi, m) in masters.iter_mut().enumerate() {
        let reachable = net.reachable(m, mi, t);
        let mut samples = Vec::new();
        let mut t_send = t;
        for _ in 0..sc.hosts.burst.max(1) {
            tally.exchanges += 1;
            if !reachable || (sc.network.loss > 0.0 && rng.random::<f64>() < sc.network.loss) {
                tally.lost += 1;
                host.clients[mi].reset();
                continue;
            }
            let (up, down) = net.links[h][mi];
            let j = sc.network.jitter_us * 1e3;
            let up = up + (j * -rng.random::<f64>().max(1e-12).ln()) as i64;
            let down = down + (j * -rng.random::<f64>().max(1e-12).ln()) as i64;
            let send_path = (sc.network.send_path_us * 1e3) as i64;
            let cookie = rng.random::<u64>();
            let osc = &mut host.osc;
            let boot_offset = host.boot_offset;
            if let Some(o) = exchange(
                m,
                &mut host.clients[mi],
                cookie,
                t_send,
                (up, down, send_path),
                Span::from_millis(1),
                drift,
                &mut |tt| dis.clocks(osc.reading_at(tt), boot_offset, tt).raw,
            ) {
                samples.push(o.basic);
                samples.extend(o.interleaved);
            }
            t_send += up + down + 20_000;
        }
        let at = samples.iter().map(|s| s.m.at.as_nanos()).max();
        let best = at.and_then(|at| ttcore::ntp::narrowest(&samples, at, carry));
        if let Some(at) = at {
            last_t4 = last_t4.max(at);
        }
        round.push(best.map(|s| MasterSample {
            bounds: s.m.bounds,
            at_raw: s.m.at.as_nanos(),
            trustworthy: s.trustworthy,
        }));
    }
    let r = host.clock.on_round(last_t4, &round);
    match r.note {
        Some(RoundNote::Inconsistent(_)) => tally.inconsistent_rounds += 1,
        Some(RoundNote::TooFewToOutvote { .. } | RoundNote::NoAgreement) => {
            tally.refused_rounds += 1
        }
        Some(RoundNote::Resynchronized) | None => {}
    }
}

/// The run's JSON summary.
fn report(sc: &FleetScenario, masters: &[Master], tally: Tally, wall_s: f64) -> Report {
    let pct = |h: &Histogram<u64>| json!({"p1": h.value_at_quantile(0.01), "p50": h.value_at_quantile(0.5), "p99": h.value_at_quantile(0.99), "max": h.max(), "mean": h.mean().round() as u64});
    let share = |c: &[u64; 5]| {
        let total = c.iter().sum::<u64>().max(1) as f64;
        (
            c[1] as f64 / total,
            c[2] as f64 / total,
            c[3] as f64 / total,
            c[4] as f64 / total,
        )
    };
    let (s1, s2, s3, s4) = share(&tally.status_count);
    let (a1, a2, a3, a4) = share(&tally.status_after);
    let json = json!({
        "scenario": sc.name,
        "seed": sc.seed,
        "masters": masters.len(),
        "hosts": sc.hosts.count,
        "samples": tally.samples,
        "violations": tally.violations,
        "first_violations": tally.first,
        "epsilon_ns": pct(&tally.eps),
        "commit_wait_ns": pct(&tally.commit_wait),
        "status_share": {
            "synchronized": s1,
            "holdover": s2,
            "unsynchronized": s3,
            "disrupted": s4,
        },
        "status_share_after_warm_up": {
            "warm_up_s": sc.warm_up_s,
            "synchronized": a1,
            "holdover": a2,
            "unsynchronized": a3,
            "disrupted": a4,
        },
        "rounds_inconsistent": tally.inconsistent_rounds,
        "rounds_refused": tally.refused_rounds,
        "exchanges": tally.exchanges,
        "lost_exchanges": tally.lost,
        "virtual_s": sc.duration_s,
        "wall_s": (wall_s * 1000.0).round() / 1000.0,
        "virtual_s_per_wall_s": (sc.duration_s / wall_s.max(1e-9)).round(),
        "master_kinds": masters.iter().map(|m| m.kind.as_str()).collect::<Vec<_>>(),
    });
    Report {
        json,
        trace: tally.trace,
    }
}

/// Once a second: masters exchange time with each other over the simulated network (200 µs
/// each way), through the same NTP exchange as the hosts, for the real cross-check and the
/// armageddon start.
fn master_round(masters: &mut [Master], t: i64) {
    let n = masters.len();
    for m in masters.iter_mut() {
        m.vm.advance_to(t);
    }
    let drift = Rate::from_ppm(500);
    for i in 0..n {
        let raw_i = masters[i].vm.raw_at(t);
        let mut got: Vec<Option<ttcore::ntp::Sample>> = Vec::with_capacity(n - 1);
        for j in 0..n {
            if j == i {
                continue;
            }
            let down = masters[j].down.iter().any(|&(a, b)| t >= a && t < b);
            if down {
                masters[i].peers[j].reset();
                got.push(None);
                continue;
            }
            // Split the borrow: the client lives in master i, the server is master j.
            let (mi, mj) = if i < j {
                let (a, b) = masters.split_at_mut(j);
                (&mut a[i], &mut b[0])
            } else {
                let (a, b) = masters.split_at_mut(i);
                (&mut b[0], &mut a[j])
            };
            let mut client = std::mem::take(&mut mi.peers[j]);
            let cookie = (t as u64) ^ ((i as u64) << 56) ^ ((j as u64) << 48);
            let vm = &mut mi.vm;
            let out = exchange(
                mj,
                &mut client,
                cookie,
                t,
                (200_000, 200_000, 5_000),
                Span::from_millis(1),
                drift,
                &mut |tt| vm.raw_at(tt),
            );
            mi.peers[j] = client;
            got.push(out.map(|o| o.best()).filter(|s| s.trustworthy));
        }
        // Every interval carried to the latest reading.
        let at = got
            .iter()
            .flatten()
            .map(|s| s.m.at.as_nanos())
            .max()
            .unwrap_or(raw_i);
        let peers: Vec<Option<OffsetInterval>> = got
            .iter()
            .map(|s| {
                s.and_then(|s| ttcore::ntp::narrowest(&[s], at, drift))
                    .map(|s| s.m.bounds)
            })
            .collect();
        let core = &mut masters[i].vm.core;
        let _ = core.on_peer_round(at, &peers);
        core.cross_check(at, &peers);
    }
}
