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
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::HashMap;
use timemaster::core::master::{MasterKind, MasterParams};
use timemaster::sim::VirtualMaster;
use ttcore::disrupt::ClockPair;
use ttcore::host::{FrequencyMode, HostClock, HostParams, MasterSample, RoundNote};
use ttcore::ntp::client::ServerTimescale;
use ttcore::ntp::{Client, RawStamp, ReplyOutcome, SentReply};
use ttcore::osc::{Oscillator, OscillatorParams, PhaseStep};
use ttcore::{ClockStatus, NANOS_PER_SEC, OffsetInterval, Rate, Span};
use ttsys::config::InvalidKey;

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
    #[serde(rename = "master", default)]
    pub masters: Vec<MasterSpec>,
    /// Plain NTP servers the hosts poll beside the masters (timed's `kind = "ntp"`), in one
    /// selection with them.
    #[serde(rename = "ntp-server", default)]
    pub ntp_servers: Vec<NtpServerSpec>,
    /// Hosts.
    pub hosts: HostSpec,
    /// Network.
    #[serde(default)]
    pub network: NetworkSpec,
    /// Host id to trace ε over time for (the sawtooth), if any.
    pub trace_host: Option<usize>,
    /// UTC start (`YYYY-MM-DDTHH:MM:SSZ`); default 2026-09-21T13:33:20Z.
    pub start_utc: Option<String>,
    /// Shards the fleet is cut into, each with its own copy of the masters and its own random
    /// stream, run on as many threads as `ttbench sim --threads` gives (default 1: one event
    /// loop). The output depends on this, never on the thread count.
    #[serde(default = "one_usize")]
    pub shards: usize,
}

fn one_usize() -> usize {
    1
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
    /// Its cross-check must evict it (its own reference lies, e.g. a spoofed GPS); every master
    /// without this must never be evicted. A mismatch is reported (`eviction_mismatches`).
    #[serde(default)]
    pub expect_evicted: bool,
}

/// A plain NTP server (chrony, ntpd, a cloud time service), answered with plain NTPv4 replies:
/// its clock follows true time with an error that swings within ±`error-ms`, and every reply
/// states `root-distance-ms`. Honest while the stated root distance covers the error; a server
/// whose root distance is below its error is the liar the negative control needs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NtpServerSpec {
    /// Amplitude of its clock's error (ms): a sine of this amplitude with a random phase.
    #[serde(default)]
    pub error_ms: f64,
    /// The sine's period (s).
    #[serde(default = "error_period")]
    pub error_period_s: f64,
    /// The root distance its replies state (ms; as root dispersion, with root delay 0).
    pub root_distance_ms: f64,
    /// The timescale it keeps: `utc` (leap seconds inserted: it announces a leap on its last
    /// day and repeats 23:59:59) or `smeared` (the same 24 h smear as ours).
    #[serde(default)]
    pub timescale: ServerTimescale,
    /// What the hosts' timed is told (its `timescale` key); default: the truth.
    pub configured_timescale: Option<ServerTimescale>,
    /// Unreachable during these windows: `[[at-s, duration-s], …]`.
    #[serde(default)]
    pub down: Vec<[f64; 2]>,
}

fn error_period() -> f64 {
    1_800.0
}

/// The hosts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HostSpec {
    /// How many.
    pub count: usize,
    /// Poll interval (s), ±10 % jitter, when there is no `target-epsilon-ns`.
    #[serde(default = "one_f")]
    pub poll_interval_s: f64,
    /// timed's `target-epsilon-ns`: each host polls as its error budget asks
    /// ([`ttcore::poll`]), up to 10 % early, with light bursts between full ones.
    #[serde(default)]
    pub target_epsilon_ns: Option<i64>,
    /// timed's `min-poll-interval-ms` with a target (s; default timed's).
    #[serde(default)]
    pub min_poll_interval_s: Option<f64>,
    /// timed's `max-poll-interval-ms` with a target (s; default timed's).
    #[serde(default)]
    pub max_poll_interval_s: Option<f64>,
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

    /// Parses a scenario file's text and [`check`](Self::check)s every value; an error names
    /// the file, the line and the key.
    pub fn from_toml(src: &str, path: &str) -> Result<Self, Error> {
        let s: FleetScenario = ttsys::config::parse(src, path, FleetScenario::check)?;
        for (i, m) in s.masters.iter().enumerate() {
            DeviceScenario::from_toml(&m.devices, &format!("{path}: master[{i}].devices"))?;
        }
        Ok(s)
    }

    /// Every value in its range, so that a scenario that is accepted runs and ends: the first
    /// key out of range, and why. Limits keep a run finite (a poll interval of 0 would never
    /// advance virtual time) and every random draw defined (a negative magnitude is an empty
    /// range).
    pub fn check(&self) -> Result<(), InvalidKey> {
        if self.name.trim().is_empty() {
            return Err(InvalidKey::new("name", "must not be empty"));
        }
        within("duration-s", self.duration_s, 1e-3, MAX_DURATION_S)?;
        within(
            "sample-interval-s",
            self.sample_interval_s,
            1e-3,
            MAX_DURATION_S,
        )?;
        within("warm-up-s", self.warm_up_s, 0.0, MAX_DURATION_S)?;
        if self.masters.len() > MAX_MASTERS || self.ntp_servers.len() > MAX_MASTERS {
            return Err(InvalidKey::new(
                "master",
                format!("at most {MAX_MASTERS} [[master]] and {MAX_MASTERS} [[ntp-server]] tables"),
            ));
        }
        if self.masters.is_empty() && self.ntp_servers.is_empty() {
            return Err(InvalidKey::new(
                "master",
                "no [[master]] and no [[ntp-server]]: the hosts need a source",
            ));
        }
        for (i, m) in self.masters.iter().enumerate() {
            within(&format!("master[{i}].lie-ms"), m.lie_ms, -1e6, 1e6)?;
            windows(&format!("master[{i}].down"), &m.down, MAX_DURATION_S)?;
        }
        for (i, n) in self.ntp_servers.iter().enumerate() {
            let k = |what: &str| format!("ntp-server[{i}].{what}");
            within(&k("error-ms"), n.error_ms, 0.0, 1e6)?;
            within(&k("error-period-s"), n.error_period_s, 1.0, 1e9)?;
            // timed's own limit on max-root-distance-ms: replies beyond it are refused anyway.
            within(&k("root-distance-ms"), n.root_distance_ms, 0.0, 16_000.0)?;
            windows(&k("down"), &n.down, MAX_DURATION_S)?;
        }
        self.hosts
            .check(self.masters.len() + self.ntp_servers.len())?;
        self.network.check(self.masters.len())?;
        if let Some(h) = self.trace_host
            && h >= self.hosts.count
        {
            return Err(InvalidKey::new(
                "trace-host",
                format!("host {h} of {} (0-based)", self.hosts.count),
            ));
        }
        if let Some(u) = &self.start_utc
            && ttcore::UtcLabel::parse_iso(u)
                .and_then(|l| ttcore::LeapTable::builtin().utc_to_tai_ns(&l).ok())
                .is_none()
        {
            return Err(InvalidKey::new(
                "start-utc",
                format!("{u:?} is not YYYY-MM-DDTHH:MM:SSZ"),
            ));
        }
        Ok(())
    }
}

/// The longest run a scenario may ask for (s): 30 days of virtual time.
pub const MAX_DURATION_S: f64 = 30.0 * 86_400.0;
/// The most masters a scenario may have.
pub const MAX_MASTERS: usize = 64;
/// The most hosts a scenario may have.
pub const MAX_HOSTS: usize = 100_000;

/// `v` is finite and in `[lo, hi]`, or `key` is refused saying so.
fn within(key: &str, v: f64, lo: f64, hi: f64) -> Result<(), InvalidKey> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(InvalidKey::new(key, format!("{v} is not in [{lo}, {hi}]")))
    }
}

/// `[[at-s, duration], …]` windows: each starts within the longest run (s) and lasts from 0 to
/// `max_duration` (in the key's own unit).
fn windows(key: &str, v: &[[f64; 2]], max_duration: f64) -> Result<(), InvalidKey> {
    for (i, w) in v.iter().enumerate() {
        within(&format!("{key}[{i}] at-s"), w[0], 0.0, MAX_DURATION_S)?;
        within(&format!("{key}[{i}] duration"), w[1], 0.0, max_duration)?;
    }
    Ok(())
}

impl HostSpec {
    /// [`FleetScenario::check`] for `[hosts]`, with `masters` sources (masters and NTP
    /// servers) configured.
    fn check(&self, masters: usize) -> Result<(), InvalidKey> {
        let key = |k: &str| format!("hosts.{k}");
        if !(1..=MAX_HOSTS).contains(&self.count) {
            return Err(InvalidKey::new(
                key("count"),
                format!("{} is not in 1..={MAX_HOSTS}", self.count),
            ));
        }
        // timed's own limits: polls of at least 10 ms, drift in (0, 1000] ppm, 1..=16 a burst.
        within(
            &key("poll-interval-s"),
            self.poll_interval_s,
            0.01,
            86_400.0,
        )?;
        within(&key("max-drift-ppm"), self.max_drift_ppm, 1e-6, 1000.0)?;
        if !(1..=16).contains(&self.burst) {
            return Err(InvalidKey::new(
                key("burst"),
                format!("{} is not in 1..=16", self.burst),
            ));
        }
        if let Some(f) = self.max_liars
            && 2 * f >= masters
        {
            return Err(InvalidKey::new(
                key("max-liars"),
                format!("tolerating {f} liars needs more than {} sources", 2 * f),
            ));
        }
        within(
            &key("freq-window-s"),
            self.freq_window_s,
            2.0,
            MAX_DURATION_S,
        )?;
        within(&key("max-epsilon-ms"), self.max_epsilon_ms, 1e-6, 1e6)?;
        within(&key("freq-offset-ppm"), self.freq_offset_ppm, 0.0, 1e4)?;
        within(
            &key("wander-ppm-per-sqrt-s"),
            self.wander_ppm_per_sqrt_s,
            0.0,
            1e3,
        )?;
        within(&key("temperature-ppm"), self.temperature_ppm, 0.0, 1e4)?;
        within(
            &key("temperature-period-s"),
            self.temperature_period_s,
            1.0,
            1e9,
        )?;
        for (i, s) in self.steps.iter().enumerate() {
            within(&key(&format!("steps[{i}] at-s")), s[0], 0.0, MAX_DURATION_S)?;
            within(&key(&format!("steps[{i}] step-ms")), s[1], -1e9, 1e9)?;
        }
        windows(&key("stalls"), &self.stalls, 1e9)?;
        windows(&key("vm-pauses"), &self.vm_pauses, 1e9)?;
        for (i, &t) in self.restart_at_s.iter().enumerate() {
            within(&key(&format!("restart-at-s[{i}]")), t, 0.0, MAX_DURATION_S)?;
        }
        Ok(())
    }
}

impl NetworkSpec {
    /// [`FleetScenario::check`] for `[network]`, with `masters` configured.
    fn check(&self, masters: usize) -> Result<(), InvalidKey> {
        let key = |k: &str| format!("network.{k}");
        within(&key("delay-us[0]"), self.delay_us[0], 0.0, 1e7)?;
        within(&key("delay-us[1]"), self.delay_us[1], self.delay_us[0], 1e7)?;
        within(&key("jitter-us"), self.jitter_us, 0.0, 1e7)?;
        within(
            &key("asymmetry-us"),
            self.asymmetry_us,
            -self.delay_us[0],
            1e7,
        )?;
        within(&key("loss"), self.loss, 0.0, 1.0)?;
        within(&key("send-path-us"), self.send_path_us, 0.0, 1e7)?;
        let last = masters.saturating_sub(1) as f64;
        for (i, p) in self.partitions.iter().enumerate() {
            let k = |what: &str| key(&format!("partitions[{i}] {what}"));
            within(&k("at-s"), p[0], 0.0, MAX_DURATION_S)?;
            within(&k("duration-s"), p[1], 0.0, MAX_DURATION_S)?;
            within(&k("first-master"), p[2], 0.0, last)?;
            within(&k("last-master"), p[3], p[2], last)?;
            if p[2].fract() != 0.0 || p[3].fract() != 0.0 {
                return Err(InvalidKey::new(
                    key(&format!("partitions[{i}]")),
                    "master indices must be whole numbers",
                ));
            }
        }
        Ok(())
    }
}

mod fleet;
pub mod floor;
mod ntp_server;
mod transfer;

use fleet::*;
use ntp_server::*;
use transfer::*;

/// Summary of a run.
pub struct Report {
    /// The summary (`ttbench sim --json` prints it; `sim-report` and the tests read it).
    pub summary: SimSummary,
    /// ε of the traced host over time: (t_s, ε ns, status).
    pub trace: Vec<(f64, i64, ClockStatus)>,
}

/// A run's summary: the one definition its writer and every reader share, so a renamed or
/// missing field is a compile error or a refused file, never a silent 0. Fields are in the
/// JSON's (alphabetical) order, so the output is what it was as untyped JSON, byte for byte.
#[derive(Clone, Debug, PartialEq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSummary {
    /// Commit wait over the trustworthy samples (ns).
    pub commit_wait_ns: Percentiles,
    /// The link floor at the trustworthy samples that had one (ns; [`floor`]): what no
    /// estimator honest under the hosts' assumptions could have narrowed ε to on the
    /// scenario's links. Absent when no sample had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon_floor_ns: Option<Percentiles>,
    /// ε over the trustworthy samples (ns).
    pub epsilon_ns: Percentiles,
    /// Masters whose cross-check verdict contradicts the scenario's `expect-evicted`.
    pub eviction_mismatches: Vec<usize>,
    /// Host ↔ master exchanges.
    pub exchanges: u64,
    /// The first violations (up to a few), for diagnosis.
    pub first_violations: Vec<Violation>,
    /// Hosts.
    pub hosts: usize,
    /// Exchanges lost on the network.
    pub lost_exchanges: u64,
    /// Each master's kind.
    pub master_kinds: Vec<MasterKind>,
    /// Masters.
    pub masters: usize,
    /// When each master's cross-check evicted it (s from the start), if it did.
    pub masters_evicted_at_s: Vec<Option<f64>>,
    /// Plain NTP servers.
    pub ntp_servers: usize,
    /// Host rounds whose answers did not agree.
    pub rounds_inconsistent: u64,
    /// Host rounds refused (too few answers, leap guard, …).
    pub rounds_refused: u64,
    /// Sampled TT.now() readings.
    pub samples: u64,
    /// Trustworthy samples whose ε was below the link floor (`epsilon_floor_ns`): an interval
    /// narrower than the hosts' assumptions allow.
    pub samples_below_floor: u64,
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Share of samples per status.
    pub status_share: StatusShare,
    /// The same after the warm-up.
    pub status_share_after_warm_up: StatusShareAfterWarmUp,
    /// Trustworthy samples whose interval missed true time.
    pub violations: u64,
    /// Simulated seconds.
    pub virtual_s: f64,
    /// Simulated seconds per wall-clock second (absent with `--no-wall-clock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_s_per_wall_s: Option<f64>,
    /// Wall-clock seconds the run took (absent with `--no-wall-clock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_s: Option<f64>,
    /// Memory per host: the process's peak resident set after the run less its resident set
    /// before the fleet was built, over the hosts (bytes; the masters' copies and the event
    /// queue included; absent with `--no-wall-clock`, like the other machine-dependent figures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_host: Option<u64>,
}

/// Percentiles of a distribution (ns).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Percentiles {
    /// Largest.
    pub max: u64,
    /// Mean, rounded.
    pub mean: u64,
    /// 1st percentile.
    pub p1: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
}

/// Shares of samples per status (0–1).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusShare {
    /// Disrupted.
    pub disrupted: f64,
    /// Holdover.
    pub holdover: f64,
    /// Synchronized.
    pub synchronized: f64,
    /// Unsynchronized.
    pub unsynchronized: f64,
}

/// Shares of samples per status after the warm-up (0–1).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusShareAfterWarmUp {
    /// Disrupted.
    pub disrupted: f64,
    /// Holdover.
    pub holdover: f64,
    /// Synchronized.
    pub synchronized: f64,
    /// Unsynchronized.
    pub unsynchronized: f64,
    /// The warm-up (s).
    pub warm_up_s: f64,
}

/// One sample whose trustworthy interval missed true time.
#[derive(Clone, Debug, PartialEq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Violation {
    /// Earliest (ns).
    pub earliest_ns: i64,
    /// Host.
    pub host: usize,
    /// Latest (ns).
    pub latest_ns: i64,
    /// Its status.
    pub status: ClockStatus,
    /// When (s from the start).
    pub t_s: f64,
    /// True time (ns).
    pub truth_ns: i64,
}

impl Report {
    /// The summary as JSON (what `ttbench sim --json` prints).
    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(&self.summary).unwrap_or_default()
    }
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("histogram bounds")
}

/// Runs a scenario on one thread.
pub fn run(sc: &FleetScenario) -> Result<Report, Error> {
    run_threads(sc, 1)
}

/// What every shard of a run shares.
struct Shared<'a> {
    sc: &'a FleetScenario,
    start: i64,
    end: i64,
    hp: HostParams,
    pp: ttcore::poll::PollParams,
    dis: Disruptions,
    net: Network,
    servers: Vec<NtpServer>,
    restarts: Vec<i64>,
}

/// One shard: a contiguous range of hosts (global indices from `first`) with its own copy of
/// the masters and its own random stream.
struct Shard {
    first: usize,
    hosts: Vec<Host>,
    masters: Vec<Master>,
    rng: ChaCha8Rng,
}

/// Runs a scenario on up to `threads` threads. The fleet is cut into the scenario's `shards`
/// (a property of the scenario, not of the machine): each shard simulates its own copy of the
/// masters (they evolve the same in every shard: nothing a host does changes a master's time)
/// and its hosts with its own random stream, and the shards' tallies are merged in shard
/// order. The output therefore depends on the scenario alone — byte-identical for any
/// `threads` — and with one shard it is the single-loop run's exactly.
pub fn run_threads(sc: &FleetScenario, threads: usize) -> Result<Report, Error> {
    let wall = std::time::Instant::now();
    // Peak memory from here on: writing 5 to clear_refs resets the process's VmHWM (Linux).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = proc_status_kb("VmRSS");
    let start = start_tai(sc)?;
    let mut rng = ChaCha8Rng::seed_from_u64(sc.seed);
    let end = at_s(start, sc.duration_s);
    let rng_masters = rng.clone();
    let masters = build_masters(sc, &mut rng, start)?;
    let hp = host_params(sc)?;
    let pp = poll_params(sc);
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
    let net = Network::new(sc, &mut rng, start, masters.len() + sc.ntp_servers.len());
    let servers: Vec<NtpServer> = sc
        .ntp_servers
        .iter()
        .map(|n| NtpServer::new(n, &mut rng, start))
        .collect();
    let restarts: Vec<i64> = sc
        .hosts
        .restart_at_s
        .iter()
        .map(|&s| at_s(start, s))
        .collect();
    let n = hosts.len();
    let n_shards = sc.shards.clamp(1, n.max(1));
    let mut shards = Vec::with_capacity(n_shards);
    let mut masters = Some(masters);
    for k in (0..n_shards).rev() {
        let first = k * n / n_shards;
        let hs = hosts.split_off(first);
        let (ms, r) = if n_shards == 1 {
            // One shard: the loop continues the setup's stream, as it always has.
            (masters.take().unwrap_or_default(), rng.clone())
        } else {
            let ms = match k {
                0 => masters.take().unwrap_or_default(),
                _ => build_masters(sc, &mut rng_masters.clone(), start)?,
            };
            let seed = sc.seed ^ 0x5AAD_0000_0000_0000 ^ k as u64;
            (ms, ChaCha8Rng::seed_from_u64(seed))
        };
        shards.push(Shard {
            first,
            hosts: hs,
            masters: ms,
            rng: r,
        });
    }
    shards.reverse();
    let shared = Shared {
        sc,
        start,
        end,
        hp,
        pp,
        dis,
        net,
        servers,
        restarts,
    };
    let results = run_shards(&shared, shards, threads);
    let mut merged: Option<ShardResult> = None;
    for (t, ms) in results {
        merged = Some(match merged {
            None => (t, ms),
            Some((mut acc, m0)) => {
                acc.merge(t);
                (acc, m0)
            }
        });
    }
    let (mut tally, masters) = merged.ok_or_else(|| Error::failed("no hosts"))?;
    if n_shards > 1 {
        // The first violations in time (then host) order, as one loop would have met them.
        tally
            .first
            .sort_by(|a, b| a.truth_ns.cmp(&b.truth_ns).then(a.host.cmp(&b.host)));
        tally.first.truncate(5);
    }
    let mut r = report(sc, &masters, start, tally, wall.elapsed().as_secs_f64());
    r.summary.bytes_per_host = match (rss_before, proc_status_kb("VmHWM")) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) * 1024 / n.max(1) as u64),
        _ => None,
    };
    Ok(r)
}

/// A `kB` line of `/proc/self/status` (`VmRSS`, `VmHWM`), if readable.
fn proc_status_kb(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// What a shard leaves: its tally and its masters.
type ShardResult = (Tally, Vec<Master>);

/// Runs every shard on up to `threads` threads; the results in shard order.
fn run_shards(shared: &Shared, shards: Vec<Shard>, threads: usize) -> Vec<ShardResult> {
    let n = shards.len();
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        return shards.into_iter().map(|s| run_shard(shared, s)).collect();
    }
    let work: std::sync::Mutex<Vec<(usize, Shard)>> =
        std::sync::Mutex::new(shards.into_iter().enumerate().rev().collect());
    let done: std::sync::Mutex<Vec<Option<ShardResult>>> =
        std::sync::Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| {
                loop {
                    let next = work.lock().unwrap_or_else(|e| e.into_inner()).pop();
                    let Some((i, shard)) = next else { break };
                    let r = run_shard(shared, shard);
                    done.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                }
            });
        }
    });
    done.into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// One shard's event loop.
#[allow(
    clippy::too_many_lines,
    reason = "the event loop: the order of its steps (restarts, masters' rounds, pauses, the host's event) is the simulation's semantics, so it stays in one place; each step is a function."
)]
fn run_shard(shared: &Shared, shard: Shard) -> ShardResult {
    let Shared {
        sc,
        start,
        end,
        hp,
        pp,
        dis,
        net,
        servers,
        restarts,
    } = shared;
    let (sc, start, end, hp, pp) = (*sc, *start, *end, *hp, *pp);
    let Shard {
        first,
        mut hosts,
        mut masters,
        mut rng,
    } = shard;
    let mut queue: BinaryHeap<Reverse<(i64, Ev, usize)>> = BinaryHeap::new();
    for &(a, _) in &dis.windows {
        for (i, host) in hosts.iter().enumerate() {
            let first_tick = a + (host.watch_phase - a).rem_euclid(WATCH);
            queue.push(Reverse((first_tick, Ev::Watch, first + i)));
        }
    }
    let poll = (sc.hosts.poll_interval_s * 1e9) as i64;
    let sample = (sc.sample_interval_s * 1e9) as i64;
    for h in first..first + hosts.len() {
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
                host.clock = HostClock::new(hp);
                host.floor.reset();
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
        let host = &mut hosts[h - first];
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
                sample_host(sc, host, &masters, dis, &ctx, &mut tally);
                queue.push(Reverse((t + sample, Ev::Sample, h)));
            }
            Ev::Poll => {
                poll_host(
                    sc,
                    host,
                    h,
                    (&mut masters, servers),
                    net,
                    dis,
                    t,
                    now.raw,
                    &mut rng,
                    &mut tally,
                );
                let next = match pp.target_epsilon {
                    // Fixed polls, ±10 %.
                    None => poll + rng.random_range(-poll / 10..=poll / 10),
                    // The budget's interval, up to 10 % early (as timed spreads it).
                    Some(_) => next_budget_poll(&pp, host, now.raw, &mut rng),
                };
                queue.push(Reverse((t + next, Ev::Poll, h)));
            }
        }
    }
    (tally, masters)
}

/// The run's summary.
fn report(sc: &FleetScenario, masters: &[Master], start: i64, tally: Tally, wall_s: f64) -> Report {
    let pct = |h: &Histogram<u64>| Percentiles {
        max: h.max(),
        mean: h.mean().round() as u64,
        p1: h.value_at_quantile(0.01),
        p50: h.value_at_quantile(0.5),
        p99: h.value_at_quantile(0.99),
    };
    let share = |c: &[u64; 5]| {
        let total = c.iter().sum::<u64>().max(1) as f64;
        StatusShare {
            synchronized: c[1] as f64 / total,
            holdover: c[2] as f64 / total,
            unsynchronized: c[3] as f64 / total,
            disrupted: c[4] as f64 / total,
        }
    };
    let after = share(&tally.status_after);
    let summary = SimSummary {
        scenario: sc.name.clone(),
        seed: sc.seed,
        masters: masters.len(),
        ntp_servers: sc.ntp_servers.len(),
        hosts: sc.hosts.count,
        samples: tally.samples,
        samples_below_floor: tally.below_floor,
        violations: tally.violations,
        first_violations: tally.first,
        epsilon_floor_ns: (!tally.floor.is_empty()).then(|| pct(&tally.floor)),
        epsilon_ns: pct(&tally.eps),
        commit_wait_ns: pct(&tally.commit_wait),
        status_share: share(&tally.status_count),
        status_share_after_warm_up: StatusShareAfterWarmUp {
            warm_up_s: sc.warm_up_s,
            synchronized: after.synchronized,
            holdover: after.holdover,
            unsynchronized: after.unsynchronized,
            disrupted: after.disrupted,
        },
        rounds_inconsistent: tally.inconsistent_rounds,
        rounds_refused: tally.refused_rounds,
        exchanges: tally.exchanges,
        lost_exchanges: tally.lost,
        virtual_s: sc.duration_s,
        wall_s: Some((wall_s * 1000.0).round() / 1000.0),
        bytes_per_host: None,
        virtual_s_per_wall_s: Some((sc.duration_s / wall_s.max(1e-9)).round()),
        master_kinds: masters.iter().map(|m| m.kind).collect(),
        // When each master's cross-check evicted it, and the masters whose eviction (or its
        // absence) contradicts the scenario's `expect-evicted`.
        masters_evicted_at_s: masters
            .iter()
            .map(|m| m.evicted_at.map(|t| (t - start) as f64 / 1e9))
            .collect(),
        eviction_mismatches: masters
            .iter()
            .enumerate()
            .filter(|(_, m)| m.evicted_at.is_some() != m.expect_evicted)
            .map(|(i, _)| i)
            .collect(),
    };
    Report {
        summary,
        trace: tally.trace,
    }
}
