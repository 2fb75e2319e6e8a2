//! timed's TOML configuration: kebab-case keys with units in their names, unknown keys rejected
//! with their line, `timed validate -c FILE`.
//!
//! ```toml
//! listen = "127.0.0.1:7100"           # gRPC Now / Status / WatchStatus
//! shm-path = "/run/timed/page"        # the TT.now() page
//! clockbound-shm-path = "/run/clockbound/shm0"  # optional ClockBound v2 segment
//! clockbound3-shm-path = "/run/clockbound/shm1" # optional ClockBound 3 segment (TSC mapping)
//! poll-interval-ms = 1000              # fixed, unless target-epsilon-ns is set:
//! # target-epsilon-ns = 5000          # poll as often as keeps ε under this between syncs,
//! # min-poll-interval-ms = 125        # but no faster than this
//! # max-poll-interval-ms = 16000      # and no slower than this
//! burst = 4                           # exchanges per master per poll; the narrowest is kept
//! max-drift-ppm = 15.0                # wander around the measured frequency
//! frequency = "measured"              # or "assumed" (Spanner 2012: no estimate, 200 ppm)
//! max-epsilon-ns = 10000000
//! [[master]]
//! addr = "10.0.0.1:123"               # the master's UDP time-transfer address
//! ```

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use ttcore::host::{FrequencyMode, HostParams};
use ttcore::{Rate, Span};
use ttsys::config::InvalidKey;

pub use ttsys::config::ConfigError;

/// How timed treats the system clock.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Steer {
    /// Never touch it (default; coexists with chrony/ntpd).
    #[default]
    Off,
    /// Slew it with adjtimex toward the timescale and set the kernel's maxerror/esterror
    /// (needs CAP_SYS_TIME; do not run another clock discipline beside it).
    Adjtimex,
}

/// What a source is.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// One of our timemasters: the TrueTime field carries its ε.
    #[default]
    Timemaster,
    /// A plain NTP server (chrony, ntpd, a cloud time service): bounded by the root distance
    /// it states, which is only as honest as its own chain.
    Ntp,
}

impl SourceKind {
    /// What the source's bound rests on, for the status.
    pub fn assumption(self) -> &'static str {
        match self {
            SourceKind::Timemaster => {
                "the master's ε: its reference's error budget (GPS, atomic, peers)"
            }
            SourceKind::Ntp => {
                "the server's root distance (root delay/2 + root dispersion) covers its error: its own chain is honest"
            }
        }
    }
}

fn default_max_root_distance_ms() -> u64 {
    100
}
fn default_xleave() -> bool {
    true
}

/// `[[master]]`: one time source — a timemaster, or with `kind = "ntp"` a plain NTP server.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MasterConfig {
    /// `host:port` of the master's UDP time-transfer service (its `ntp-listen`), or of the NTP
    /// server.
    pub addr: String,
    /// `timemaster` (default) or `ntp`: a plain NTPv4 server, asked in basic mode with 48-byte
    /// requests and bounded by its root distance.
    #[serde(default)]
    pub kind: SourceKind,
    /// `kind = "ntp"`: replies stating a root distance beyond this are refused (ms).
    #[serde(default = "default_max_root_distance_ms")]
    pub max_root_distance_ms: u64,
    /// `kind = "ntp"`: the server's timescale — `utc` (default; chrony's and ntpd's: leap
    /// seconds inserted, its stamps corrected onto our 24 h smear and exchanges within 2 s of a
    /// leap refused) or `smeared` (the same noon-to-noon smear as ours: Google's and AWS's
    /// public time services).
    pub timescale: Option<ttcore::ntp::client::ServerTimescale>,
    /// `kind = "ntp"`: ask for the interleaved mode (RFC 9769, chrony's `xleave`), in which the
    /// server's transmit stamp of each reply is the one taken after it left; a server without
    /// it answers in basic mode.
    #[serde(default = "default_xleave")]
    pub xleave: bool,
    /// `host:port` of the master's NTS-KE server: its time is then authenticated with NTS
    /// (RFC 8915) and any reply that does not authenticate is refused, the master counting as
    /// unreachable (needs `nts-trusted-certs`). Absent: plain NTP, shown as unauthenticated.
    pub nts_ke: Option<String>,
    /// The name the master's NTS-KE certificate must carry (default: the host of `nts-ke`).
    pub nts_server_name: Option<String>,
}

impl MasterConfig {
    /// A plain (unauthenticated) master at `addr`.
    pub fn new(addr: &str) -> MasterConfig {
        MasterConfig {
            addr: addr.into(),
            kind: SourceKind::Timemaster,
            max_root_distance_ms: default_max_root_distance_ms(),
            timescale: None,
            xleave: default_xleave(),
            nts_ke: None,
            nts_server_name: None,
        }
    }

    /// A plain NTP server at `addr`.
    pub fn ntp(addr: &str) -> MasterConfig {
        MasterConfig {
            kind: SourceKind::Ntp,
            ..MasterConfig::new(addr)
        }
    }

    /// The protocol its source speaks.
    pub fn protocol(&self) -> ttcore::ntp::client::Protocol {
        match self.kind {
            SourceKind::Timemaster => ttcore::ntp::client::Protocol::TrueTime,
            SourceKind::Ntp => ttcore::ntp::client::Protocol::Ntp {
                max_root_distance: Span::from_millis(self.max_root_distance_ms as i64),
                timescale: self.timescale.unwrap_or_default(),
                interleave: self.xleave,
            },
        }
    }

    /// What its bound rests on, for the status: the kind's assumption and, for an NTP server,
    /// its timescale.
    pub fn assumption(&self) -> &'static str {
        use ttcore::ntp::client::ServerTimescale;
        match (self.kind, self.timescale.unwrap_or_default()) {
            (SourceKind::Timemaster, _) => self.kind.assumption(),
            (SourceKind::Ntp, ServerTimescale::Utc) => {
                "the server's root distance (root delay/2 + root dispersion) covers its error: its own chain is honest; it inserts leap seconds (timescale utc): stamps corrected onto the 24 h smear, refused within 2 s of a leap"
            }
            (SourceKind::Ntp, ServerTimescale::Smeared) => {
                "the server's root distance (root delay/2 + root dispersion) covers its error: its own chain is honest; it smears leap seconds noon to noon over 24 h as we do (timescale smeared)"
            }
        }
    }

    /// The same master with NTS through the NTS-KE server at `ke`.
    pub fn with_nts(mut self, ke: &str) -> MasterConfig {
        self.nts_ke = Some(ke.into());
        self
    }
}

fn default_phc_max_bracket_us() -> u64 {
    50
}
fn default_phc_max_bound_delay_us() -> u64 {
    1_000
}
fn default_phc_samples() -> usize {
    5
}

/// `[[phc]]`: a PTP hardware clock (`/dev/ptpN`) as a source, in the same selection as the
/// masters. Read with `PTP_SYS_OFFSET_PRECISE`, else `_EXTENDED`, else the basic ioctl;
/// bounded by the read's bracket on the raw clock plus the PHC's own error bound.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PhcConfig {
    /// The device (`/dev/ptp0`; a udev name like `/dev/ptp_ena` works too).
    pub device: PathBuf,
    /// Its timescale, required (nothing on the device says it): `tai` (what `ptp4l` and
    /// `phc2sys` keep), `utc` (leap seconds inserted: refused within 2 s of a leap) or
    /// `smeared` (the same 24 h smear as ours).
    pub timescale: ttcore::phc::Timescale,
    /// The PHC's own error bound when the operator knows it (ns) — or:
    pub error_bound_ns: Option<u64>,
    /// A file where the device publishes its bound (one integer, ns), read after every PHC
    /// read: AWS ENA's `/sys/bus/pci/devices/<slot>/phc_error_bound`. Exactly one of the two.
    pub error_bound_path: Option<PathBuf>,
    /// Readings whose bracket on the raw clock is wider than this are refused (µs).
    #[serde(default = "default_phc_max_bracket_us")]
    pub max_bracket_us: u64,
    /// A published bound read later than this after the PHC is stale, and refused (µs).
    #[serde(default = "default_phc_max_bound_delay_us")]
    pub max_bound_delay_us: u64,
    /// Readings per poll with the extended and basic ioctls (1–25; the narrowest is used).
    #[serde(default = "default_phc_samples")]
    pub samples: usize,
}

impl PhcConfig {
    /// A PHC at `device` on `timescale` with a configured bound of `error_bound_ns`.
    pub fn new(device: &Path, timescale: ttcore::phc::Timescale, error_bound_ns: u64) -> Self {
        PhcConfig {
            device: device.to_path_buf(),
            timescale,
            error_bound_ns: Some(error_bound_ns),
            error_bound_path: None,
            max_bracket_us: default_phc_max_bracket_us(),
            max_bound_delay_us: default_phc_max_bound_delay_us(),
            samples: default_phc_samples(),
        }
    }

    /// Its source for timed's poll.
    pub fn source(&self) -> ttsys::phc::PhcSource {
        let bound = match (&self.error_bound_path, self.error_bound_ns) {
            (Some(p), _) => ttsys::phc::BoundSource::Published(p.clone()),
            (None, ns) => ttsys::phc::BoundSource::Configured(Span::from_nanos(
                ns.unwrap_or(0).min(1_000_000_000) as i64,
            )),
        };
        let params = ttcore::phc::PhcParams {
            timescale: self.timescale,
            max_bound_delay: Span::from_micros(self.max_bound_delay_us as i64),
            drift: Rate::ZERO,
            max_bracket: Span::from_micros(self.max_bracket_us as i64),
        };
        ttsys::phc::PhcSource::new(
            &self.device,
            bound,
            params,
            self.samples,
            ttcore::LeapTable::builtin(),
        )
    }

    /// What its bound rests on, for the status.
    pub fn assumption(&self) -> &'static str {
        if self.error_bound_path.is_some() {
            "the error bound the device publishes covers the PHC's error (its discipline is honest), and the timescale configured is the PHC's"
        } else {
            "the configured error bound covers the PHC's error (its discipline, e.g. ptp4l/phc2sys, is honest), and the timescale configured is the PHC's"
        }
    }

    fn check(&self, i: usize) -> Result<(), InvalidKey> {
        let k = |what: &str| format!("phc[{i}].{what}");
        match (self.error_bound_ns, &self.error_bound_path) {
            (None, None) | (Some(_), Some(_)) => {
                return Err(InvalidKey::new(
                    k("error-bound-ns"),
                    "exactly one of error-bound-ns and error-bound-path is needed",
                ));
            }
            (Some(ns), None) if ns > 1_000_000_000 => {
                return Err(InvalidKey::new(k("error-bound-ns"), "at most 1 s"));
            }
            _ => {}
        }
        if !(1..=1_000_000).contains(&self.max_bracket_us) {
            return Err(InvalidKey::new(
                k("max-bracket-us"),
                "must be in 1..=1000000",
            ));
        }
        if !(1..=1_000_000).contains(&self.max_bound_delay_us) {
            return Err(InvalidKey::new(
                k("max-bound-delay-us"),
                "must be in 1..=1000000",
            ));
        }
        if !(1..=25).contains(&self.samples) {
            return Err(InvalidKey::new(k("samples"), "must be in 1..=25"));
        }
        Ok(())
    }
}

/// The file. Each default is defined once, in the `default_*` function its field names; a
/// [`Config::new`] has them all, and `docs/CONFIG.md` is generated from this struct.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// gRPC listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The shared-memory page.
    #[serde(default = "default_shm")]
    pub shm_path: PathBuf,
    /// Also write an AWS ClockBound v2 segment here.
    pub clockbound_shm_path: Option<PathBuf>,
    /// Also write an AWS ClockBound 3 segment (`shm1`, layout 3: a time-stamp counter → time
    /// mapping its clients read with no system call) here. Needs clocksource `tsc` and an
    /// invariant counter; otherwise the segment says `Unknown` and the log says why.
    pub clockbound3_shm_path: Option<PathBuf>,
    /// OpenMetrics (`GET /metrics`): read-only and unauthenticated, so an address only the
    /// scraper reaches.
    pub metrics_listen: Option<SocketAddr>,
    /// Poll interval (ms), when no `target-epsilon-ns` is set.
    #[serde(default = "default_poll")]
    pub poll_interval_ms: u64,
    /// Poll as often as it takes to keep ε under this between syncs (ns): the interval follows
    /// the error budget — (target − ε at sync) / drift bound — between `min-poll-interval-ms`
    /// and `max-poll-interval-ms`, with a light burst per master (an exchange and the
    /// interleaved one that brings its kernel transmit stamp) where that is enough and a full
    /// burst otherwise. Absent: every `poll-interval-ms`.
    pub target_epsilon_ns: Option<i64>,
    /// With `target-epsilon-ns`: the shortest interval (ms), also used while acquiring.
    #[serde(default = "default_min_poll")]
    pub min_poll_interval_ms: u64,
    /// With `target-epsilon-ns`: the longest interval (ms).
    #[serde(default = "default_max_poll")]
    pub max_poll_interval_ms: u64,
    /// With `target-epsilon-ns`: a full burst at least every this many polls.
    #[serde(default = "default_full_burst_every")]
    pub full_burst_every: u32,
    /// Random spread of each poll (percent of the interval).
    #[serde(default = "default_jitter")]
    pub poll_jitter_pct: u32,
    /// Per-request timeout (ms).
    #[serde(default = "default_timeout")]
    pub request_timeout_ms: u64,
    /// Exchanges per master per poll (the narrowest is kept).
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// With `frequency = "measured"`: bound on how far the oscillator's rate wanders from its
    /// measured average (ppm); the estimate's own half-width is added on top. With
    /// `"assumed"`: bound on the whole frequency error.
    #[serde(default = "default_drift")]
    pub max_drift_ppm: f64,
    /// `measured` (default) or `assumed` (Spanner 2012).
    #[serde(default)]
    pub frequency: FrequencyMode,
    /// Beyond this ε: unsynchronized (ns).
    #[serde(default = "default_max_eps")]
    pub max_epsilon_ns: i64,
    /// Without a fresh sync for this long: holdover (ms). Default 5 × `poll-interval-ms`.
    pub holdover_after_ms: Option<u64>,
    /// The page is void when not updated for this long (ms). Default 10 × `poll-interval-ms`,
    /// at least 5 s and at least twice the longest poll (`max-poll-interval-ms` with
    /// `target-epsilon-ns`).
    pub void_after_ms: Option<u64>,
    /// Liars tolerated among the sources configured (masters, NTP servers, PHCs; default
    /// ⌊(N−1)/2⌋), held when some fall silent: a round with no more than this many answering
    /// refuses. 0: trust any source.
    pub max_liars: Option<usize>,
    /// Frequency estimate window (s).
    #[serde(default = "default_window")]
    pub freq_window_s: u64,
    /// System clock steering.
    #[serde(default)]
    pub steer: Steer,
    /// Accept SetClockKnob (tests only).
    #[serde(default)]
    pub allow_test_knob: bool,
    /// The VMClock device: where it exists, a change of its disruption marker (a live
    /// migration, a VM pause) disrupts the page at once. Where it does not, the page's validity
    /// rests on the assumption that the raw clock is never paused unnoticed, and status says so.
    #[serde(default = "default_vmclock")]
    pub vmclock: PathBuf,
    /// PEM file of the CA certificates trusted for masters' NTS-KE.
    pub nts_trusted_certs: Option<PathBuf>,
    /// How the gRPC listener is locked: TLS (required beyond loopback) and the token that
    /// SetClockKnob needs.
    #[serde(default)]
    pub management: ttsys::mgmt::ManagementConfig,
    /// Masters (and NTP servers).
    #[serde(rename = "master", default)]
    pub masters: Vec<MasterConfig>,
    /// PTP hardware clocks, in the same selection after the masters.
    #[serde(rename = "phc", default)]
    pub phcs: Vec<PhcConfig>,
}

impl Config {
    /// A configuration polling `masters`, every other key at its default.
    pub fn new(masters: Vec<MasterConfig>) -> Config {
        Config {
            listen: default_listen(),
            shm_path: default_shm(),
            clockbound_shm_path: None,
            clockbound3_shm_path: None,
            metrics_listen: None,
            poll_interval_ms: default_poll(),
            target_epsilon_ns: None,
            min_poll_interval_ms: default_min_poll(),
            max_poll_interval_ms: default_max_poll(),
            full_burst_every: default_full_burst_every(),
            poll_jitter_pct: default_jitter(),
            request_timeout_ms: default_timeout(),
            burst: default_burst(),
            max_drift_ppm: default_drift(),
            frequency: FrequencyMode::default(),
            max_epsilon_ns: default_max_eps(),
            holdover_after_ms: None,
            void_after_ms: None,
            max_liars: None,
            freq_window_s: default_window(),
            steer: Steer::default(),
            allow_test_knob: false,
            vmclock: default_vmclock(),
            nts_trusted_certs: None,
            management: Default::default(),
            masters,
            phcs: Vec::new(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7100))
}
fn default_vmclock() -> PathBuf {
    PathBuf::from(ttsys::vmclock::DEFAULT_PATH)
}
fn default_shm() -> PathBuf {
    PathBuf::from("/run/timed/page")
}
fn default_poll() -> u64 {
    1_000
}
fn default_min_poll() -> u64 {
    ttcore::poll::PollParams::default().min_interval.as_nanos() as u64 / 1_000_000
}
fn default_max_poll() -> u64 {
    ttcore::poll::PollParams::default().max_interval.as_nanos() as u64 / 1_000_000
}
fn default_full_burst_every() -> u32 {
    ttcore::poll::PollParams::default().full_burst_every
}
fn default_jitter() -> u32 {
    10
}
fn default_timeout() -> u64 {
    500
}
fn default_drift() -> f64 {
    15.0
}
fn default_burst() -> u32 {
    4
}
fn default_max_eps() -> i64 {
    10_000_000
}
fn default_window() -> u64 {
    64
}

impl Config {
    /// Parses and validates.
    pub fn from_toml(src: &str, path: &str) -> Result<Config, ConfigError> {
        ttsys::config::parse(src, path, |c: &Config| c.host_params().map(|_| ()))
    }

    /// Reads a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        ttsys::config::load(path, |c: &Config| c.host_params().map(|_| ()))
    }

    /// The longest interval polls may have (ms): the fixed one, or the budget's maximum.
    pub fn longest_poll_ms(&self) -> u64 {
        match self.target_epsilon_ns {
            Some(_) => self.max_poll_interval_ms,
            None => self.poll_interval_ms,
        }
    }

    /// Holdover threshold.
    pub fn holdover_after(&self) -> Span {
        Span::from_millis(self.holdover_after_ms.unwrap_or(5 * self.poll_interval_ms) as i64)
    }

    /// Page void threshold.
    pub fn void_after(&self) -> Span {
        Span::from_millis(
            self.void_after_ms.unwrap_or(
                (10 * self.poll_interval_ms)
                    .max(2 * self.longest_poll_ms())
                    .max(5_000),
            ) as i64,
        )
    }

    /// How often to poll ([`ttcore::poll`]).
    pub fn poll_params(&self) -> ttcore::poll::PollParams {
        let ms = |v: u64| Span::from_millis(v as i64);
        ttcore::poll::PollParams {
            interval: ms(self.poll_interval_ms),
            target_epsilon: self.target_epsilon_ns.map(Span::from_nanos),
            min_interval: ms(self.min_poll_interval_ms),
            max_interval: ms(self.max_poll_interval_ms),
            full_burst_every: self.full_burst_every,
        }
    }

    /// How many sources the selection is over: masters, NTP servers and PHCs.
    pub fn sources(&self) -> usize {
        self.masters.len() + self.phcs.len()
    }

    /// The polling keys, or (key, why).
    fn check_polling(&self) -> Result<(), InvalidKey> {
        let bad = |k: &str, m: &str| Err(InvalidKey::new(k, m));
        if self.poll_interval_ms < 10 {
            return bad("poll-interval-ms", "must be at least 10");
        }
        if self.target_epsilon_ns.is_some_and(|t| t <= 0) {
            return bad("target-epsilon-ns", "must be positive");
        }
        if self.min_poll_interval_ms < 10 {
            return bad("min-poll-interval-ms", "must be at least 10");
        }
        if self.max_poll_interval_ms < self.min_poll_interval_ms
            || self.max_poll_interval_ms > 3_600_000
        {
            return bad(
                "max-poll-interval-ms",
                "must be at least min-poll-interval-ms and at most 3600000",
            );
        }
        if self.full_burst_every == 0 {
            return bad("full-burst-every", "must be at least 1");
        }
        if self.poll_jitter_pct > 50 {
            return bad("poll-jitter-pct", "must be at most 50");
        }
        Ok(())
    }

    /// The core's parameters, or (key, why).
    pub fn host_params(&self) -> Result<HostParams, InvalidKey> {
        let bad = |k: &str, m: &str| Err(InvalidKey::new(k, m));
        self.management.check_key(self.listen)?;
        if self.sources() == 0 {
            return bad(
                "master",
                "at least one [[master]] or [[phc]] is needed (three or more sources to tolerate a liar)",
            );
        }
        for (i, p) in self.phcs.iter().enumerate() {
            p.check(i)?;
        }
        if !(self.max_drift_ppm > 0.0 && self.max_drift_ppm <= 1000.0) {
            return bad("max-drift-ppm", "must be in (0, 1000]");
        }
        if self.max_epsilon_ns <= 0 {
            return bad("max-epsilon-ns", "must be positive");
        }
        self.check_polling()?;
        if let Some((i, m)) = self
            .masters
            .iter()
            .enumerate()
            .find(|(_, m)| !ttsys::config::valid_host_port(&m.addr))
        {
            return Err(InvalidKey::new(
                format!("master[{i}].addr"),
                format!("{:?} is not host:port", m.addr),
            ));
        }
        if let Some((i, _)) = self
            .masters
            .iter()
            .enumerate()
            .find(|(_, m)| !(1..=16_000).contains(&m.max_root_distance_ms))
        {
            return Err(InvalidKey::new(
                format!("master[{i}].max-root-distance-ms"),
                "must be in 1..=16000",
            ));
        }
        if let Some((i, _)) = self
            .masters
            .iter()
            .enumerate()
            .find(|(_, m)| m.kind == SourceKind::Timemaster && m.timescale.is_some())
        {
            return Err(InvalidKey::new(
                format!("master[{i}].timescale"),
                "only for kind = \"ntp\": a timemaster serves the smeared timescale itself",
            ));
        }
        ttsys::config::check_nts_sources(
            "master",
            self.masters.iter().map(|m| m.nts_ke.as_deref()),
            self.nts_trusted_certs.is_some(),
        )?;
        if !(1..=16).contains(&self.burst) {
            return bad("burst", "must be in 1..=16");
        }
        if self.request_timeout_ms == 0 {
            return bad("request-timeout-ms", "must be positive");
        }
        if let Some(f) = self.max_liars
            && 2 * f >= self.sources()
        {
            return bad(
                "max-liars",
                "tolerating f liars needs more than 2f sources ([[master]] and [[phc]])",
            );
        }
        if self.void_after() <= Span::from_millis(self.longest_poll_ms() as i64) {
            return bad(
                "void-after-ms",
                "must be longer than the poll interval (max-poll-interval-ms with target-epsilon-ns)",
            );
        }
        Ok(HostParams {
            max_drift: Rate::bound_from_ppm_f64(self.max_drift_ppm).unwrap_or(Rate::from_ppm(15)),
            frequency: self.frequency,
            max_liars: self.max_liars,
            max_epsilon: Span::from_nanos(self.max_epsilon_ns),
            holdover_after: self.holdover_after(),
            freq_window: Span::from_secs(self.freq_window_s.max(2) as i64),
        })
    }
}

/// The configuration reference's tables for `timed.toml`, from these structs' source and
/// defaults: `docs/CONFIG.md` and `timed.toml(5)` are both rendered from it.
pub fn reference() -> Vec<ttsys::docs::Section> {
    use ttsys::docs::{Section, as_table};
    const SRC: &str = include_str!("config.rs");
    let mut master = as_table(&MasterConfig::new(""));
    master.remove("addr");
    let mut phc = as_table(&PhcConfig::new(
        Path::new(""),
        ttcore::phc::Timescale::Tai,
        0,
    ));
    for required in ["device", "timescale", "error-bound-ns"] {
        phc.remove(required);
    }
    vec![
        Section::new(
            "top level",
            SRC,
            "Config",
            as_table(&Config::new(Vec::new())),
        ),
        Section::new(
            "`[[master]]` (one per source: a timemaster, or an NTP server with `kind = \"ntp\"`)",
            SRC,
            "MasterConfig",
            master,
        ),
        Section::new(
            "`[[phc]]` (one per PTP hardware clock, in the same selection as the masters)",
            SRC,
            "PhcConfig",
            phc,
        ),
    ]
}

/// `timed.toml(5)`: the man page of the configuration file.
pub fn manual() -> ttsys::docs::ConfigPage {
    let mut sections = reference();
    sections.push(ttsys::mgmt::reference());
    ttsys::docs::ConfigPage {
        name: "timed.toml",
        daemon: "timed",
        path: "/etc/truetime/timed.toml",
        summary: "configuration of the TrueTime per-host daemon",
        sections,
        notes: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "shm-path = \"/tmp/p\"\n[[master]]\naddr = \"127.0.0.1:7001\"\n[[master]]\naddr = \"127.0.0.1:7002\"\n[[master]]\naddr = \"127.0.0.1:7003\"\n";

    #[test]
    fn new_has_the_files_defaults_and_round_trips() {
        let parsed = Config::from_toml(GOOD, "t").unwrap();
        let mut built = Config::new(parsed.masters.clone());
        built.shm_path = "/tmp/p".into();
        assert_eq!(built, parsed);
        let text = toml::to_string(&built).unwrap();
        assert_eq!(Config::from_toml(&text, "t").unwrap(), built, "{text}");
    }

    #[test]
    fn defaults() {
        let c = Config::from_toml(GOOD, "t").unwrap();
        assert_eq!(c.poll_interval_ms, 1000);
        assert_eq!(c.max_drift_ppm, 15.0);
        assert_eq!(c.frequency, FrequencyMode::Measured);
        assert_eq!(c.burst, 4);
        assert_eq!(c.steer, Steer::Off);
        assert!(!c.allow_test_knob);
        assert_eq!(c.host_params().unwrap().max_drift, Rate::from_ppm(15));
        let a = Config::from_toml(
            &format!("frequency = \"assumed\"\nmax-drift-ppm = 200\n{GOOD}"),
            "t",
        )
        .unwrap();
        assert_eq!(a.host_params().unwrap().frequency, FrequencyMode::Assumed);
        assert_eq!(c.void_after(), Span::from_secs(10));
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = Config::from_toml(&format!("{GOOD}max-drift-ppb = 5\n"), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max-drift-ppb"), "{e}");
        let e = Config::from_toml(
            &GOOD.replace("addr = \"127.0.0.1:7001\"", "adr = \"x\""),
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 3") && e.contains("adr"), "{e}");
        let e = Config::from_toml(&format!("max-liars = 2\n{GOOD}"), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max-liars"), "{e}");
        let e = Config::from_toml("listen = \"x\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1"), "{e}");
        let e = Config::from_toml(&format!("steer = \"hard\"\n{GOOD}"), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("hard"), "{e}");
    }

    #[test]
    fn a_phc_needs_its_timescale_and_one_bound_and_counts_as_a_source() {
        let phc = "[[phc]]\ndevice = \"/dev/ptp0\"\n";
        let ok = format!("{phc}timescale = \"tai\"\nerror-bound-ns = 200\n");
        let c = Config::from_toml(&ok, "t").unwrap();
        assert_eq!(c.phcs.len(), 1);
        assert_eq!(c.phcs[0].timescale, ttcore::phc::Timescale::Tai);
        assert_eq!(c.phcs[0].max_bracket_us, 50);
        assert_eq!(c.sources(), 1);
        assert!(c.phcs[0].assumption().contains("configured error bound"));
        let e = Config::from_toml(&format!("{phc}error-bound-ns = 200\n"), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("timescale"), "{e}");
        for bad in [
            format!("{phc}timescale = \"tai\"\n"),
            format!("{ok}error-bound-path = \"/sys/x\"\n"),
        ] {
            let e = Config::from_toml(&bad, "t.toml").unwrap_err().to_string();
            assert!(e.contains("phc[0].error-bound-ns"), "{e}");
        }
        let e = Config::from_toml(&format!("{ok}samples = 30\n"), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("phc[0].samples"), "{e}");
        // Three masters and a PHC: four sources, so one liar is all that can be tolerated.
        let c = Config::from_toml(&format!("max-liars = 1\n{GOOD}{ok}"), "t").unwrap();
        assert_eq!(c.sources(), 4);
        let e = Config::from_toml(&format!("max-liars = 2\n{GOOD}{ok}"), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max-liars"), "{e}");
        let e = Config::from_toml("shm-path = \"/tmp/p\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[[phc]]"), "{e}");
    }

    #[test]
    fn an_ntp_source_names_its_timescale_and_a_timemaster_may_not() {
        use ttcore::ntp::client::{Protocol, ServerTimescale};
        let ntp = "[[master]]\naddr = \"10.0.0.9:123\"\nkind = \"ntp\"\n";
        let c = Config::from_toml(&format!("{GOOD}{ntp}"), "t").unwrap();
        let want = |timescale| Protocol::Ntp {
            max_root_distance: Span::from_millis(100),
            timescale,
            interleave: true,
        };
        assert_eq!(c.masters[3].protocol(), want(ServerTimescale::Utc));
        assert!(c.masters[3].assumption().contains("timescale utc"));
        let c = Config::from_toml(&format!("{GOOD}{ntp}timescale = \"smeared\"\n"), "t").unwrap();
        assert_eq!(c.masters[3].protocol(), want(ServerTimescale::Smeared));
        assert!(c.masters[3].assumption().contains("timescale smeared"));
        let e = Config::from_toml(&format!("{GOOD}{ntp}timescale = \"tai\"\n"), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 11") && e.contains("tai"), "{e}");
        let e = Config::from_toml(
            &GOOD.replacen("7001\"\n", "7001\"\ntimescale = \"utc\"\n", 1),
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("master[0].timescale"), "{e}");
    }
}
