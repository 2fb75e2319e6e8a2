//! The timemaster's TOML configuration. Keys are kebab-case with units in their names; unknown
//! keys are rejected with their line; `timemaster validate -c FILE` checks a file.
//!
//! ```toml
//! id = "gps-a"
//! kind = "gps"                      # or "armageddon"
//! listen = "127.0.0.1:7001"         # gRPC Status (management)
//! ntp-listen = "0.0.0.0:123"        # UDP time transfer (default: the same address as `listen`)
//! metrics-listen = "127.0.0.1:9101" # OpenMetrics (optional)
//! max-epsilon-ns = 1000000
//!
//! [gps]
//! nmea-device = "/dev/ttyS0"
//! baud = 38400
//! cable-delay-ns = 50
//! calibration-error-ns = 50
//! pps = { source = "sock", path = "/run/timemaster/pps.sock" }  # or kernel / gpio
//!
//! [atomic]
//! telemetry-device = "/dev/ttyUSB0"
//! drift-ppt = 100
//! pps = { source = "kernel", device = "/dev/pps1" }
//! lock-line = { source = "gpio", chip = "/dev/gpiochip0", line = 17 }
//!
//! [[peer]]
//! addr = "10.0.0.2:7001"
//!
//! [rate-limit]                      # per client address (the defaults; per-second = 0: off)
//! per-second = 64
//! burst = 128
//! ```

use crate::core::master::{AtomicParams, GpsParams, MasterKind, MasterParams};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use ttcore::{LeapTable, Rate, Span, Timestamp, UtcLabel};
use ttsys::config::InvalidKey;

pub use ttsys::config::ConfigError;

/// Where pulses come from.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PpsSource {
    /// chrony SOCK datagrams on a Unix socket we bind (gpsd, firmware-sim).
    Sock {
        /// Socket path.
        path: PathBuf,
    },
    /// Kernel PPS (`/dev/ppsN`, RFC 2783).
    Kernel {
        /// Device.
        device: PathBuf,
    },
    /// Rising edges of a GPIO line with kernel timestamps.
    Gpio {
        /// `/dev/gpiochipN`.
        chip: PathBuf,
        /// Line offset.
        line: u32,
    },
}

/// Where the atomic clock's lock line is read.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LockLine {
    /// A GPIO input line (through `linux-embedded-hal`).
    Gpio {
        /// `/dev/gpiochipN`.
        chip: PathBuf,
        /// Line offset.
        line: u32,
        /// Locked when the line is low.
        #[serde(default)]
        active_low: bool,
    },
    /// A file holding `1` or `0` (firmware-sim's simulated line).
    File {
        /// Path.
        path: PathBuf,
    },
}

/// `[gps]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GpsConfig {
    /// Serial device with NMEA.
    pub nmea_device: PathBuf,
    /// Serial speed.
    #[serde(default = "default_gps_baud")]
    pub baud: u32,
    /// Pulse source.
    pub pps: PpsSource,
    /// Antenna cable + receiver delay, compensated (ns).
    #[serde(default)]
    pub cable_delay_ns: i64,
    /// Uncertainty of that delay (ns).
    #[serde(default = "default_calibration")]
    pub calibration_error_ns: i64,
    /// Receiver quantization bound (ns).
    #[serde(default = "default_qerr")]
    pub qerr_ns: i64,
    /// Lower bound on the pulse-jitter bound (ns).
    #[serde(default = "default_jitter_floor")]
    pub jitter_floor_ns: f64,
}

fn default_gps_baud() -> u32 {
    38_400
}
fn default_calibration() -> i64 {
    GpsParams::default().calibration_error_ns
}
fn default_qerr() -> i64 {
    GpsParams::default().qerr_ns
}
fn default_jitter_floor() -> f64 {
    GpsParams::default().jitter_floor_ns
}

/// `[atomic]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AtomicConfig {
    /// Serial device with the telemetry protocol (optional).
    pub telemetry_device: Option<PathBuf>,
    /// Serial speed.
    #[serde(default = "default_atomic_baud")]
    pub baud: u32,
    /// 1PPS source.
    pub pps: PpsSource,
    /// Lock line (optional).
    pub lock_line: Option<LockLine>,
    /// Frequency bound of the device: offset + aging + temperature (parts per 10¹²).
    pub drift_ppt: u64,
    /// 1PPS jitter bound (ns).
    #[serde(default = "default_atomic_jitter")]
    pub jitter_ns: f64,
}

fn default_atomic_baud() -> u32 {
    57_600
}
fn default_atomic_jitter() -> f64 {
    AtomicParams::default().jitter_ns
}

/// `[[peer]]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PeerConfig {
    /// `host:port` of the peer's UDP time-transfer service (its `ntp-listen`).
    pub addr: String,
    /// `host:port` of the peer's NTS-KE server: its time is then authenticated with NTS and
    /// unauthenticated replies are refused (needs `nts-trusted-certs`). Absent: plain, shown as
    /// unauthenticated.
    pub nts_ke: Option<String>,
}

impl PeerConfig {
    /// A plain peer at `addr`.
    pub fn new(addr: &str) -> PeerConfig {
        PeerConfig {
            addr: addr.into(),
            nts_ke: None,
        }
    }
}

/// `[nts]`: NTS (RFC 8915) for the time this master serves. Requests that carry NTS fields are
/// answered authenticated; plain requests are still answered, unauthenticated.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NtsConfig {
    /// NTS-KE listen address (TLS 1.3 over TCP; 4460 is the IANA port).
    pub ke_listen: SocketAddr,
    /// PEM certificate chain (leaf first) for NTS-KE; clients check it names the address they
    /// dial.
    pub certificate: PathBuf,
    /// PEM private key of that certificate.
    pub private_key: PathBuf,
    /// File of the master keys that seal cookies; created (mode 0600) when missing; refused when
    /// group or others may access it.
    pub key_file: PathBuf,
    /// A new master key after this long (s).
    #[serde(default = "default_rotate")]
    pub rotate_after_s: u64,
    /// Master keys kept (the newest and older ones, whose cookies stay valid): old cookies are
    /// accepted for (keep-keys − 1) × rotate-after-s.
    #[serde(default = "default_keep_keys")]
    pub keep_keys: usize,
}

impl NtsConfig {
    /// NTS-KE on `ke_listen` with this certificate, key and key file; rotation at its defaults.
    pub fn new(
        ke_listen: SocketAddr,
        certificate: PathBuf,
        private_key: PathBuf,
        key_file: PathBuf,
    ) -> NtsConfig {
        NtsConfig {
            ke_listen,
            certificate,
            private_key,
            key_file,
            rotate_after_s: default_rotate(),
            keep_keys: default_keep_keys(),
        }
    }
}

/// `[rate-limit]`: how fast one client address may ask for time. Over the limit it gets an NTP
/// `RATE` kiss (at most one per `kiss-interval-ms`), which timed answers by backing off; other
/// requests over the limit are dropped. Each serving thread limits the clients the kernel sends
/// it (a client stays on one thread).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Average requests per second per client address; 0 = no limit.
    #[serde(default = "default_rl_rate")]
    pub per_second: u32,
    /// Requests a client may send back to back.
    #[serde(default = "default_rl_burst")]
    pub burst: u32,
    /// At most one kiss per client per this long (ms).
    #[serde(default = "default_rl_kiss")]
    pub kiss_interval_ms: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_second: default_rl_rate(),
            burst: default_rl_burst(),
            kiss_interval_ms: default_rl_kiss(),
        }
    }
}

impl RateLimitConfig {
    /// No limit (e.g. for a capacity benchmark from one address).
    pub fn off() -> Self {
        RateLimitConfig {
            per_second: 0,
            ..Default::default()
        }
    }

    /// The limiter's parameters, or `None` when off.
    pub fn params(&self) -> Option<ttcore::ntp::RateLimitParams> {
        (self.per_second > 0).then(|| ttcore::ntp::RateLimitParams {
            per_second: self.per_second,
            burst: self.burst,
            kiss_interval: Span::from_millis(self.kiss_interval_ms as i64),
            ..Default::default()
        })
    }
}

fn default_rl_rate() -> u32 {
    ttcore::ntp::RateLimitParams::default().per_second
}
fn default_rl_burst() -> u32 {
    ttcore::ntp::RateLimitParams::default().burst
}
fn default_rl_kiss() -> u64 {
    ttcore::ntp::RateLimitParams::default()
        .kiss_interval
        .as_nanos() as u64
        / 1_000_000
}

fn default_rotate() -> u64 {
    86_400
}
fn default_keep_keys() -> usize {
    3
}

/// The whole file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// This master's name.
    pub id: String,
    /// `gps` or `armageddon`.
    pub kind: MasterKind,
    /// gRPC listen address (management: Status).
    pub listen: SocketAddr,
    /// UDP time-transfer address (NTPv4 wire). Default: the same address and port as `listen`
    /// (TCP and UDP ports are separate).
    pub ntp_listen: Option<SocketAddr>,
    /// Threads (each with its own `SO_REUSEPORT` socket) answering time requests. Default: the
    /// number of CPUs, at most 4.
    pub ntp_threads: Option<usize>,
    /// OpenMetrics listen address.
    pub metrics_listen: Option<SocketAddr>,
    /// Beyond this ε: unsynchronized (ns).
    #[serde(default = "default_max_eps")]
    pub max_epsilon_ns: i64,
    /// Local oscillator wander bound between reference pulses (ppb).
    #[serde(default = "default_wander")]
    pub local_wander_ppb: u64,
    /// Local oscillator drift bound in holdover without an atomic clock (ppm).
    #[serde(default = "default_quartz")]
    pub quartz_holdover_ppm: f64,
    /// Largest plausible frequency of the local clock against a true reference (ppm).
    #[serde(default = "default_max_freq")]
    pub max_freq_ppm: f64,
    /// Labels before this UTC instant are refused (`YYYY-MM-DDTHH:MM:SSZ`).
    #[serde(default = "default_earliest")]
    pub earliest_valid_utc: String,
    /// Consecutive disagreeing GPS pulses before GPS is refused.
    #[serde(default = "default_reject_limit")]
    pub reject_limit: u32,
    /// Peer polling interval (ms).
    #[serde(default = "default_peer_poll")]
    pub peer_poll_interval_ms: u64,
    /// Armageddon masters: the widest peer transfer (radius, ns) they take their time from.
    #[serde(default = "default_peer_radius")]
    pub armageddon_max_peer_radius_ns: i64,
    /// GPS receiver.
    pub gps: Option<GpsConfig>,
    /// Atomic clock.
    pub atomic: Option<AtomicConfig>,
    /// Peer masters.
    #[serde(default, rename = "peer")]
    pub peers: Vec<PeerConfig>,
    /// NTS for the time served (absent: plain NTP only).
    pub nts: Option<NtsConfig>,
    /// Per-client limit on time requests (on by default; `per-second = 0` turns it off).
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// PEM file of the CA certificates trusted for peers' NTS-KE.
    pub nts_trusted_certs: Option<PathBuf>,
    /// How the gRPC listener is locked: TLS (required beyond loopback), optionally mutual, and
    /// the token any future state-changing call will need (every current call is a read).
    #[serde(default)]
    pub management: ttsys::mgmt::ManagementConfig,
}

fn default_max_eps() -> i64 {
    MasterParams::default().max_epsilon.as_nanos()
}
fn default_wander() -> u64 {
    (MasterParams::default().local_wander.as_ppt() / 1_000) as u64
}
fn default_quartz() -> f64 {
    MasterParams::default().quartz_holdover.as_ppm_f64()
}
fn default_max_freq() -> f64 {
    MasterParams::default().max_freq.as_ppm_f64()
}
fn default_earliest() -> String {
    LeapTable::builtin()
        .timescale_to_utc(MasterParams::default().earliest_valid)
        .to_iso()
}
fn default_reject_limit() -> u32 {
    MasterParams::default().reject_limit
}
fn default_peer_poll() -> u64 {
    1_000
}
fn default_peer_radius() -> i64 {
    MasterParams::default().peer_max_radius.as_nanos()
}

impl GpsConfig {
    /// A receiver on `nmea_device` with its pulse from `pps`, every other key at its default.
    pub fn new(nmea_device: PathBuf, pps: PpsSource) -> GpsConfig {
        GpsConfig {
            nmea_device,
            baud: default_gps_baud(),
            pps,
            cable_delay_ns: 0,
            calibration_error_ns: default_calibration(),
            qerr_ns: default_qerr(),
            jitter_floor_ns: default_jitter_floor(),
        }
    }
}

impl AtomicConfig {
    /// An atomic clock pulsing on `pps` with drift bound `drift_ppt`, every other key at its
    /// default (no telemetry, no lock line).
    pub fn new(pps: PpsSource, drift_ppt: u64) -> AtomicConfig {
        AtomicConfig {
            telemetry_device: None,
            baud: default_atomic_baud(),
            pps,
            lock_line: None,
            drift_ppt,
            jitter_ns: default_atomic_jitter(),
        }
    }
}

impl Config {
    /// A master `id` of `kind` serving on `listen`, every other key at its default (no
    /// devices, no peers).
    pub fn new(id: &str, kind: MasterKind, listen: SocketAddr) -> Config {
        Config {
            id: id.into(),
            kind,
            listen,
            ntp_listen: None,
            ntp_threads: None,
            metrics_listen: None,
            max_epsilon_ns: default_max_eps(),
            local_wander_ppb: default_wander(),
            quartz_holdover_ppm: default_quartz(),
            max_freq_ppm: default_max_freq(),
            earliest_valid_utc: default_earliest(),
            reject_limit: default_reject_limit(),
            peer_poll_interval_ms: default_peer_poll(),
            armageddon_max_peer_radius_ns: default_peer_radius(),
            gps: None,
            atomic: None,
            peers: Vec::new(),
            nts: None,
            rate_limit: RateLimitConfig::default(),
            nts_trusted_certs: None,
            management: Default::default(),
        }
    }

    /// The UDP time-transfer address.
    pub fn ntp_addr(&self) -> SocketAddr {
        self.ntp_listen.unwrap_or(self.listen)
    }

    /// Threads answering time requests.
    pub fn ntp_thread_count(&self) -> usize {
        self.ntp_threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .min(4)
        })
    }

    /// Parses and validates `src`; `path` names it in errors.
    pub fn from_toml(src: &str, path: &str) -> Result<Config, ConfigError> {
        ttsys::config::parse(src, path, |c: &Config| c.params().map(|_| ()))
    }

    /// Reads a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        ttsys::config::load(path, |c: &Config| c.params().map(|_| ()))
    }

    /// The core's parameters, or (key, reason) for the first invalid value.
    #[allow(
        clippy::too_many_lines,
        reason = "a flat list of independent checks, one per key, then the conversion to the core's parameters: splitting it would scatter the rules."
    )]
    pub fn params(&self) -> Result<MasterParams, InvalidKey> {
        let bad = |k: &str, m: &str| Err(InvalidKey::new(k, m));
        self.management.check_key(self.listen)?;
        if self.id.is_empty() {
            return bad("id", "must not be empty");
        }
        match self.kind {
            MasterKind::Gps if self.gps.is_none() => {
                return bad("gps", "a gps master needs a [gps] section");
            }
            MasterKind::Armageddon if self.gps.is_some() => {
                return bad("gps", "an armageddon master has no GPS");
            }
            MasterKind::Armageddon if self.atomic.is_none() => {
                return bad("atomic", "an armageddon master needs an [atomic] section");
            }
            MasterKind::Armageddon if self.peers.is_empty() => {
                return bad(
                    "peer",
                    "an armageddon master needs at least one [[peer]] to take time from",
                );
            }
            _ => {}
        }
        if self.max_epsilon_ns <= 0 {
            return bad("max-epsilon-ns", "must be positive");
        }
        if !(self.quartz_holdover_ppm > 0.0 && self.quartz_holdover_ppm < 1e4) {
            return bad("quartz-holdover-ppm", "must be in (0, 10000)");
        }
        if !(self.max_freq_ppm > 0.0 && self.max_freq_ppm < 1e5) {
            return bad("max-freq-ppm", "must be in (0, 100000)");
        }
        if self.armageddon_max_peer_radius_ns <= 0
            || self.armageddon_max_peer_radius_ns * 2 > self.max_epsilon_ns
        {
            return bad(
                "armageddon-max-peer-radius-ns",
                "must be positive and at most half of max-epsilon-ns",
            );
        }
        if let Some((i, p)) = self
            .peers
            .iter()
            .enumerate()
            .find(|(_, p)| !ttsys::config::valid_host_port(&p.addr))
        {
            return Err(InvalidKey::new(
                format!("peer[{i}].addr"),
                format!("{:?} is not host:port", p.addr),
            ));
        }
        if let Some(n) = &self.nts {
            if n.rotate_after_s < 60 {
                return bad("nts.rotate-after-s", "must be at least 60");
            }
            if !(1..=100).contains(&n.keep_keys) {
                return bad("nts.keep-keys", "must be in 1..=100");
            }
        }
        ttsys::config::check_nts_sources(
            "peer",
            self.peers.iter().map(|p| p.nts_ke.as_deref()),
            self.nts_trusted_certs.is_some(),
        )?;
        let rl = &self.rate_limit;
        if rl.per_second > 0 && !(1..=1_000_000).contains(&rl.burst) {
            return bad("rate-limit.burst", "must be in 1..=1000000");
        }
        if rl.per_second > 1_000_000 {
            return bad(
                "rate-limit.per-second",
                "must be at most 1000000 (0 = no limit)",
            );
        }
        if self.ntp_threads == Some(0) || self.ntp_threads.is_some_and(|n| n > 64) {
            return bad("ntp-threads", "must be in 1..=64");
        }
        if self.peer_poll_interval_ms < 10 {
            return bad("peer-poll-interval-ms", "must be at least 10");
        }
        let earliest = UtcLabel::parse_iso(&self.earliest_valid_utc)
            .and_then(|l| LeapTable::builtin().utc_to_timescale(&l).ok())
            .ok_or_else(|| {
                InvalidKey::new(
                    "earliest-valid-utc",
                    format!("{:?} is not YYYY-MM-DDTHH:MM:SSZ", self.earliest_valid_utc),
                )
            })?;
        if let Some(g) = &self.gps {
            if g.calibration_error_ns < 0 || g.qerr_ns < 0 || g.jitter_floor_ns < 0.0 {
                return bad("gps", "error bounds must not be negative");
            }
        }
        if let Some(a) = &self.atomic
            && a.jitter_ns < 0.0
        {
            return bad("atomic.jitter-ns", "must not be negative");
        }
        let core = MasterParams::default();
        Ok(MasterParams {
            kind: self.kind,
            gps: self.gps.as_ref().map(|g| GpsParams {
                cable_delay_ns: g.cable_delay_ns,
                calibration_error_ns: g.calibration_error_ns,
                qerr_ns: g.qerr_ns,
                jitter_floor_ns: g.jitter_floor_ns,
            }),
            atomic: self.atomic.as_ref().map(|a| AtomicParams {
                drift: Rate::from_ppt(a.drift_ppt as i64),
                jitter_ns: a.jitter_ns,
            }),
            local_wander: Rate::from_ppb(self.local_wander_ppb as i64),
            quartz_holdover: Rate::bound_from_ppm_f64(self.quartz_holdover_ppm)
                .unwrap_or(core.quartz_holdover),
            max_freq: Rate::bound_from_ppm_f64(self.max_freq_ppm).unwrap_or(core.max_freq),
            max_epsilon: Span::from_nanos(self.max_epsilon_ns),
            reject_limit: self.reject_limit.max(1),
            earliest_valid: Timestamp::from_nanos(earliest.as_nanos()),
            peer_max_radius: Span::from_nanos(self.armageddon_max_peer_radius_ns),
            // Not configurable: the filter's gate, loss timeout and tuning.
            ..core
        })
    }
}

/// The configuration reference's tables for `timemaster.toml`, from these structs' source and
/// defaults: `docs/CONFIG.md` and `timemaster.toml(5)` are both rendered from it.
pub fn reference() -> Vec<ttsys::docs::Section> {
    use ttsys::docs::{Section, as_table};
    const SRC: &str = include_str!("config.rs");
    let mut top = as_table(&Config::new("", MasterKind::Gps, ([0, 0, 0, 0], 0).into()));
    for required in ["id", "kind", "listen"] {
        top.remove(required);
    }
    let pps = || PpsSource::Sock {
        path: Default::default(),
    };
    let mut gps = as_table(&GpsConfig::new(Default::default(), pps()));
    gps.remove("nmea-device");
    gps.remove("pps");
    let mut atomic = as_table(&AtomicConfig::new(pps(), 0));
    atomic.remove("pps");
    atomic.remove("drift-ppt");
    let mut nts = as_table(&NtsConfig::new(
        ([0, 0, 0, 0], 0).into(),
        Default::default(),
        Default::default(),
        Default::default(),
    ));
    for required in ["ke-listen", "certificate", "private-key", "key-file"] {
        nts.remove(required);
    }
    vec![
        Section::new("top level", SRC, "Config", top),
        Section::new("`[gps]`", SRC, "GpsConfig", gps),
        Section::new("`[atomic]`", SRC, "AtomicConfig", atomic),
        Section::new(
            "`[[peer]]` (one per peer master)",
            SRC,
            "PeerConfig",
            toml::Table::new(),
        ),
        Section::new("`[nts]` (NTS for the time served)", SRC, "NtsConfig", nts),
    ]
}

/// How `pps` and `lock-line` are written (the reference's closing note).
pub const PPS_NOTE: &str = "`pps` is `{ source = \"sock\", path = … }` (gpsd/chrony SOCK datagrams), `{ source = \"kernel\", device = \"/dev/ppsN\" }` or `{ source = \"gpio\", chip = \"/dev/gpiochipN\", line = N }`. `lock-line` is `{ source = \"gpio\", chip, line, active-low }` or `{ source = \"file\", path }` (a file holding 0 or 1).";

/// `timemaster.toml(5)`: the man page of the configuration file.
pub fn manual() -> ttsys::docs::ConfigPage {
    let mut sections = reference();
    sections.push(ttsys::mgmt::reference());
    ttsys::docs::ConfigPage {
        name: "timemaster.toml",
        daemon: "timemaster",
        path: "/etc/truetime/timemaster.toml",
        summary: "configuration of the TrueTime time master",
        sections,
        notes: vec![PPS_NOTE],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id = "gps-a"
kind = "gps"
listen = "127.0.0.1:7001"
[gps]
nmea-device = "/dev/ttyS0"
pps = { source = "sock", path = "/run/pps.sock" }
[atomic]
drift-ppt = 100
pps = { source = "kernel", device = "/dev/pps1" }
lock-line = { source = "gpio", chip = "/dev/gpiochip0", line = 17 }
[[peer]]
addr = "127.0.0.1:7002"
"#;

    #[test]
    fn new_has_the_files_defaults_and_round_trips() {
        let parsed = Config::from_toml(GOOD, "t").unwrap();
        let mut built = Config::new("gps-a", MasterKind::Gps, "127.0.0.1:7001".parse().unwrap());
        built.gps = Some(GpsConfig::new(
            "/dev/ttyS0".into(),
            PpsSource::Sock {
                path: "/run/pps.sock".into(),
            },
        ));
        built.atomic = Some(AtomicConfig::new(
            PpsSource::Kernel {
                device: "/dev/pps1".into(),
            },
            100,
        ));
        if let (Some(b), Some(p)) = (built.atomic.as_mut(), parsed.atomic.as_ref()) {
            b.lock_line = p.lock_line.clone();
            b.telemetry_device = p.telemetry_device.clone();
        }
        built.peers = parsed.peers.clone();
        assert_eq!(built, parsed);
        let text = toml::to_string(&built).unwrap();
        assert_eq!(Config::from_toml(&text, "t").unwrap(), built, "{text}");
        // The file's defaults are the core's.
        let (from_file, core) = (parsed.params().unwrap(), MasterParams::default());
        assert_eq!(from_file.max_epsilon, core.max_epsilon);
        assert_eq!(from_file.quartz_holdover, core.quartz_holdover);
        assert_eq!(from_file.earliest_valid, core.earliest_valid);
        assert_eq!(from_file.peer_max_radius, core.peer_max_radius);
    }

    #[test]
    fn good_config() {
        let c = Config::from_toml(GOOD, "m.toml").unwrap();
        assert_eq!(c.peers.len(), 1);
        let p = c.params().unwrap();
        assert_eq!(p.atomic.unwrap().drift, Rate::from_ppt(100));
        assert_eq!(c.gps.unwrap().baud, 38_400);
    }

    #[test]
    fn unknown_key_names_its_line() {
        let src = GOOD.replace("drift-ppt = 100", "drift-ppt = 100\ndrift-ppm = 1");
        let e = Config::from_toml(&src, "m.toml").unwrap_err().to_string();
        assert!(e.contains("line 10") && e.contains("drift-ppm"), "{e}");
        let e = Config::from_toml(
            &GOOD.replace("source = \"sock\"", "source = \"usb\""),
            "m.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 7") && e.contains("usb"), "{e}");
    }

    #[test]
    fn semantic_errors() {
        let arm = GOOD.replace("kind = \"gps\"", "kind = \"armageddon\"");
        let e = Config::from_toml(&arm, "m.toml").unwrap_err().to_string();
        assert!(e.contains("gps: an armageddon master has no GPS"), "{e}");
        let e = Config::from_toml(
            &GOOD.replace(
                "id = \"gps-a\"",
                "id = \"gps-a\"\nearliest-valid-utc = \"soon\"",
            ),
            "m.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("earliest-valid-utc"), "{e}");
        let e = Config::from_toml(&GOOD.replace("[gps]", "[gpx]"), "m.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gpx"), "{e}");
    }
}
