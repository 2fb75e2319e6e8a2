//! Scenario files: device parameters and a timeline of faults, in TOML.
//!
//! ```toml
//! seed = 7
//! [truth]
//! start = "2016-12-31T23:59:30Z"   # optional: virtual start; default is the host's realtime
//! [gps]
//! talker = "GN"
//! pps-jitter-ns = 15.0
//! [atomic]
//! warmup-s = 5.0
//! [[fault]]
//! kind = "antenna-loss"
//! at-s = 20.0
//! duration-s = 10.0
//! ```
//! Unknown keys are rejected; every error names the line (and the key where it is about one).

use serde::Deserialize;
use std::fmt;
use thiserror::Error;
use ttcore::leap::{LeapSecond, days_from_civil};
use ttcore::{LeapTable, UtcLabel};

/// A scenario file that could not be used.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// TOML syntax, an unknown key or a wrongly typed value (toml's message names line and key).
    #[error("{path}: {msg}")]
    Parse {
        /// File name (or `<string>`).
        path: String,
        /// Parser message, including line and column.
        msg: String,
    },
    /// A semantically invalid value.
    #[error("{path}:{line}: {key}: {msg}")]
    Invalid {
        /// File name.
        path: String,
        /// 1-based line.
        line: usize,
        /// The offending key.
        key: String,
        /// What is wrong.
        msg: String,
    },
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File name.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Everything a run needs.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Scenario {
    /// Seed for every random draw (jitter, corruption, wander).
    pub seed: u64,
    /// The definition of true time.
    pub truth: TruthConfig,
    /// The GPS receiver.
    pub gps: GpsConfig,
    /// The atomic clock.
    pub atomic: AtomicConfig,
    /// The fault timeline.
    #[serde(rename = "fault")]
    pub faults: Vec<toml::Spanned<Fault>>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            seed: 1,
            truth: TruthConfig::default(),
            gps: GpsConfig::default(),
            atomic: AtomicConfig::default(),
            faults: Vec::new(),
        }
    }
}

/// Where true time comes from.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct TruthConfig {
    /// `None`: true time is the host's `CLOCK_REALTIME` (UTC). `Some("YYYY-MM-DDTHH:MM:SSZ")`:
    /// true time starts at that UTC label when the simulator starts and advances in SI seconds
    /// (so a leap second can be simulated on any day).
    pub start: Option<String>,
}

/// GPS receiver parameters.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct GpsConfig {
    /// Whether the receiver exists.
    pub enabled: bool,
    /// Talker for RMC/GGA/ZDA/GSA: `GP`, `GN`, `GL`, `GA` or `BD`.
    pub talker: String,
    /// Talker for GSV (receivers differ: many use `GP`/`GL` per constellation, some `GN`).
    pub gsv_talker: String,
    /// Sentences in each burst, in order: any of `rmc`, `gga`, `zda`, `gsa`, `gsv`.
    pub sentences: Vec<String>,
    /// Serial speed (bits/s); bytes are paced at 10 bits each.
    pub baud: u32,
    /// Seconds of cold start (no fix, no pulses) after power-on.
    pub cold_start_s: u32,
    /// Delay from the pulse to the first byte of the burst that labels it (ms, 100–500 typical).
    pub burst_delay_ms: u32,
    /// Antenna-cable and receiver delay: the pulse edge is this late (ns).
    pub cable_delay_ns: i64,
    /// Gaussian pulse jitter, standard deviation (ns).
    pub pps_jitter_ns: f64,
    /// Quantization sawtooth amplitude (ns): the edge is off by up to ± this (like a timing
    /// receiver's qErr).
    pub qerr_ns: f64,
    /// Latitude (degrees).
    pub lat_deg: f64,
    /// Longitude (degrees).
    pub lon_deg: f64,
    /// Altitude (m).
    pub alt_m: f64,
    /// Satellites in view with a fix.
    pub satellites: u8,
    /// Also send the NMEA time as a `pulse = 0` SOCK sample.
    pub nmea_sock_samples: bool,
}

impl Default for GpsConfig {
    fn default() -> Self {
        GpsConfig {
            enabled: true,
            talker: "GP".into(),
            gsv_talker: "GP".into(),
            sentences: ["rmc", "gga", "zda", "gsa", "gsv"]
                .map(String::from)
                .to_vec(),
            baud: 38_400,
            cold_start_s: 4,
            burst_delay_ms: 150,
            cable_delay_ns: 50,
            pps_jitter_ns: 20.0,
            qerr_ns: 4.0,
            lat_deg: 44.068897,
            lon_deg: -121.314271,
            alt_m: 1144.8,
            satellites: 9,
            nmea_sock_samples: true,
        }
    }
}

/// Atomic clock (chip-scale style) parameters.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct AtomicConfig {
    /// Whether the device exists.
    pub enabled: bool,
    /// Seconds from power-on (or restart) to lock.
    pub warmup_s: f64,
    /// Locked frequency error (parts per 10¹²; 10–100 is typical: 1e-11 to 1e-10).
    pub freq_offset_ppt: f64,
    /// Frequency aging (parts per 10¹² per day).
    pub aging_ppt_per_day: f64,
    /// 1PPS phase relative to the true second at power-on (ns).
    pub initial_phase_ns: f64,
    /// Extra frequency error while not locked (parts per 10⁹).
    pub unlocked_freq_ppb: f64,
    /// Gaussian jitter of its 1PPS (ns).
    pub pps_jitter_ns: f64,
    /// The drift bound the device is specified for (parts per 10¹²): what a master configures.
    pub spec_drift_ppt: f64,
    /// Serial number in telemetry.
    pub serial: String,
}

impl Default for AtomicConfig {
    fn default() -> Self {
        AtomicConfig {
            enabled: true,
            warmup_s: 5.0,
            freq_offset_ppt: 30.0,
            aging_ppt_per_day: 10.0,
            initial_phase_ns: 0.0,
            unlocked_freq_ppb: 50.0,
            pps_jitter_ns: 1.0,
            spec_drift_ppt: 100.0,
            serial: "1234CS00001".into(),
        }
    }
}

/// Fault kinds.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// No fix and no pulses.
    AntennaLoss,
    /// Pulses dropped (all, or with `probability`); NMEA continues.
    MissingPulses,
    /// NMEA labels off by `slip-s` seconds (default 1).
    LabelSlip,
    /// Spoofing: labels jump by `jump-s` seconds and pulses by `phase-ns`.
    TimeJump,
    /// Sentences with a wrong checksum (`probability`, default 1).
    ChecksumErrors,
    /// Sentences cut short (`probability`, default 1).
    TruncatedLines,
    /// `bytes` random bytes per second between sentences (default 32).
    GarbageBytes,
    /// A leap second on `date` (`delta` ±1), announced from `at-s`.
    LeapSecond,
    /// Dates reported 1024 weeks early (a GPS week-number rollover bug).
    WeekRollover,
    /// The atomic clock loses lock.
    AtomicUnlock,
    /// The atomic clock restarts and warms up again.
    AtomicWarmup,
    /// The serial line of `device` (`gps` or `atomic`) hangs up.
    SerialHangup,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            FaultKind::AntennaLoss => "antenna-loss",
            FaultKind::MissingPulses => "missing-pulses",
            FaultKind::LabelSlip => "label-slip",
            FaultKind::TimeJump => "time-jump",
            FaultKind::ChecksumErrors => "checksum-errors",
            FaultKind::TruncatedLines => "truncated-lines",
            FaultKind::GarbageBytes => "garbage-bytes",
            FaultKind::LeapSecond => "leap-second",
            FaultKind::WeekRollover => "week-rollover",
            FaultKind::AtomicUnlock => "atomic-unlock",
            FaultKind::AtomicWarmup => "atomic-warmup",
            FaultKind::SerialHangup => "serial-hangup",
        };
        f.write_str(s)
    }
}

/// Which serial device a fault applies to.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Device {
    /// The GPS receiver's NMEA port.
    Gps,
    /// The atomic clock's telemetry port.
    Atomic,
}

/// One timeline entry.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Fault {
    /// What happens.
    pub kind: FaultKind,
    /// Start, seconds after the simulator starts.
    pub at_s: f64,
    /// Length in seconds; absent means until the end.
    pub duration_s: Option<f64>,
    /// For missing-pulses / checksum-errors / truncated-lines: chance per pulse or sentence.
    pub probability: Option<f64>,
    /// For time-jump: the jump of the labels (s).
    pub jump_s: Option<i64>,
    /// For time-jump: the jump of the pulse phase (ns).
    pub phase_ns: Option<i64>,
    /// For label-slip: the slip (s).
    pub slip_s: Option<i64>,
    /// For garbage-bytes: bytes per second.
    pub bytes: Option<u32>,
    /// For leap-second: the UTC day that ends with the leap second, `YYYY-MM-DD`.
    pub date: Option<String>,
    /// For leap-second: +1 (inserted, default) or -1 (deleted).
    pub delta: Option<i8>,
    /// For serial-hangup: `gps` (default) or `atomic`.
    pub device: Option<Device>,
}

impl Fault {
    /// True if the fault is in effect at `t_s` seconds after start.
    pub fn active_at(&self, t_s: f64) -> bool {
        t_s >= self.at_s && self.duration_s.is_none_or(|d| t_s < self.at_s + d)
    }
}

fn line_of(src: &str, byte: usize) -> usize {
    src[..byte.min(src.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

impl Scenario {
    /// Parses and validates scenario text; `path` is used in messages.
    pub fn from_toml(src: &str, path: &str) -> Result<Self, ScenarioError> {
        let sc: Scenario = toml::from_str(src).map_err(|e| ScenarioError::Parse {
            path: path.into(),
            msg: e.to_string(),
        })?;
        sc.validate(src, path)?;
        Ok(sc)
    }

    /// Reads and parses a scenario file.
    pub fn load(path: &std::path::Path) -> Result<Self, ScenarioError> {
        let p = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: p.clone(),
            source,
        })?;
        Self::from_toml(&src, &p)
    }

    #[allow(
        clippy::too_many_lines,
        reason = "a flat list of independent checks, one per key, each naming the key it refuses: splitting it would scatter the rules, not simplify them."
    )]
    fn validate(&self, src: &str, path: &str) -> Result<(), ScenarioError> {
        let find = |key: &str| {
            src.lines()
                .position(|l| l.trim_start().starts_with(key))
                .map(|i| i + 1)
                .unwrap_or(1)
        };
        let inv = |line: usize, key: &str, msg: String| ScenarioError::Invalid {
            path: path.into(),
            line,
            key: key.into(),
            msg,
        };
        if let Some(s) = &self.truth.start
            && UtcLabel::parse_iso(s).is_none()
        {
            return Err(inv(
                find("start"),
                "truth.start",
                format!("{s:?} is not YYYY-MM-DDTHH:MM:SSZ"),
            ));
        }
        let talkers = ["GP", "GN", "GL", "GA", "BD"];
        for (key, v) in [
            ("talker", &self.gps.talker),
            ("gsv-talker", &self.gps.gsv_talker),
        ] {
            if !talkers.contains(&v.as_str()) {
                return Err(inv(
                    find(key),
                    &format!("gps.{key}"),
                    format!("{v:?} is not one of {talkers:?}"),
                ));
            }
        }
        for s in &self.gps.sentences {
            if !["rmc", "gga", "zda", "gsa", "gsv"].contains(&s.as_str()) {
                return Err(inv(
                    find("sentences"),
                    "gps.sentences",
                    format!("unknown sentence {s:?}"),
                ));
            }
        }
        if self.gps.baud < 1200 {
            return Err(inv(
                find("baud"),
                "gps.baud",
                "must be at least 1200".into(),
            ));
        }
        if self.gps.burst_delay_ms >= 900 {
            return Err(inv(
                find("burst-delay-ms"),
                "gps.burst-delay-ms",
                "must be below 900".into(),
            ));
        }
        if self.gps.pps_jitter_ns < 0.0 || self.gps.qerr_ns < 0.0 || self.atomic.pps_jitter_ns < 0.0
        {
            return Err(inv(
                find("pps-jitter-ns"),
                "pps-jitter-ns",
                "must not be negative".into(),
            ));
        }
        if self.atomic.warmup_s < 0.0 {
            return Err(inv(
                find("warmup-s"),
                "atomic.warmup-s",
                "must not be negative".into(),
            ));
        }
        for f in &self.faults {
            let line = line_of(src, f.span().start);
            let f = f.get_ref();
            let bad = |key: &str, msg: &str| inv(line, key, msg.to_string());
            if f.at_s < 0.0 || !f.at_s.is_finite() {
                return Err(bad("at-s", "must be a non-negative number of seconds"));
            }
            if let Some(d) = f.duration_s
                && (d <= 0.0 || !d.is_finite())
            {
                return Err(bad("duration-s", "must be positive"));
            }
            if let Some(p) = f.probability
                && !(0.0..=1.0).contains(&p)
            {
                return Err(bad("probability", "must be between 0 and 1"));
            }
            let only = |present: bool, key: &str, kinds: &[FaultKind]| {
                if present && !kinds.contains(&f.kind) {
                    Err(bad(key, &format!("not valid for kind {}", f.kind)))
                } else {
                    Ok(())
                }
            };
            use FaultKind as K;
            only(
                f.probability.is_some(),
                "probability",
                &[K::MissingPulses, K::ChecksumErrors, K::TruncatedLines],
            )?;
            only(f.jump_s.is_some(), "jump-s", &[K::TimeJump])?;
            only(f.phase_ns.is_some(), "phase-ns", &[K::TimeJump])?;
            only(f.slip_s.is_some(), "slip-s", &[K::LabelSlip])?;
            only(f.bytes.is_some(), "bytes", &[K::GarbageBytes])?;
            only(f.date.is_some(), "date", &[K::LeapSecond])?;
            only(f.delta.is_some(), "delta", &[K::LeapSecond])?;
            only(f.device.is_some(), "device", &[K::SerialHangup])?;
            if f.kind == K::TimeJump && f.jump_s.is_none() && f.phase_ns.is_none() {
                return Err(bad("jump-s", "time-jump needs jump-s and/or phase-ns"));
            }
            if f.kind == K::LeapSecond {
                let Some(d) = f.date.as_deref() else {
                    return Err(bad("date", "leap-second needs date = \"YYYY-MM-DD\""));
                };
                if UtcLabel::parse_date(d).is_none() {
                    return Err(bad("date", &format!("{d:?} is not YYYY-MM-DD")));
                }
                if !matches!(f.delta, None | Some(1) | Some(-1)) {
                    return Err(bad("delta", "must be +1 or -1"));
                }
            }
        }
        self.leap_table()
            .map_err(|e| inv(find("date"), "date", e.to_string()))?;
        Ok(())
    }

    /// The faults without their spans.
    pub fn fault_list(&self) -> impl Iterator<Item = &Fault> {
        self.faults.iter().map(|f| f.get_ref())
    }

    /// The leap seconds that physically happen in this scenario: the built-in IERS table plus
    /// every `leap-second` fault.
    pub fn leap_table(&self) -> Result<LeapTable, ttcore::LeapError> {
        let mut t = LeapTable::builtin();
        for f in self
            .fault_list()
            .filter(|f| f.kind == FaultKind::LeapSecond)
        {
            if let Some((y, m, d)) = f.date.as_deref().and_then(UtcLabel::parse_date) {
                let eff = (days_from_civil(y, m, d) + 1) * 86_400;
                t = t.with_announced(LeapSecond {
                    effective_posix_s: eff,
                    delta: f.delta.unwrap_or(1),
                })?;
            }
        }
        Ok(t)
    }

    /// The faults in effect at `t_s` seconds after start, folded into one description.
    pub fn active(&self, t_s: f64) -> ActiveFaults {
        let mut a = ActiveFaults::default();
        for f in self.fault_list().filter(|f| f.active_at(t_s)) {
            a.kinds.push(f.kind);
            match f.kind {
                FaultKind::AntennaLoss => a.antenna_loss = true,
                FaultKind::MissingPulses => a.missing_pulse_p = f.probability.unwrap_or(1.0),
                FaultKind::LabelSlip => a.label_shift_s += f.slip_s.unwrap_or(1),
                FaultKind::TimeJump => {
                    a.label_shift_s += f.jump_s.unwrap_or(0);
                    a.pulse_shift_ns += f.phase_ns.unwrap_or(0);
                }
                FaultKind::ChecksumErrors => a.checksum_p = f.probability.unwrap_or(1.0),
                FaultKind::TruncatedLines => a.truncate_p = f.probability.unwrap_or(1.0),
                FaultKind::GarbageBytes => a.garbage_bytes = f.bytes.unwrap_or(32),
                FaultKind::LeapSecond => {
                    if let Some((y, m, d)) = f.date.as_deref().and_then(UtcLabel::parse_date) {
                        a.leap_announced = Some(((y, m, d), f.delta.unwrap_or(1)));
                    }
                }
                FaultKind::WeekRollover => a.week_rollover = true,
                FaultKind::AtomicUnlock => a.atomic_unlock = true,
                FaultKind::AtomicWarmup => {}
                FaultKind::SerialHangup => match f.device.unwrap_or(Device::Gps) {
                    Device::Gps => a.gps_hangup = true,
                    Device::Atomic => a.atomic_hangup = true,
                },
            }
        }
        a.kinds.sort();
        a.kinds.dedup();
        a
    }

    /// Start times (s after start) of every atomic-clock restart, including power-on at 0.
    pub fn atomic_restarts(&self) -> Vec<f64> {
        let mut v = vec![0.0];
        v.extend(
            self.fault_list()
                .filter(|f| f.kind == FaultKind::AtomicWarmup)
                .map(|f| f.at_s),
        );
        v.sort_by(f64::total_cmp);
        v
    }
}

/// The combined effect of the faults active at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActiveFaults {
    /// Kinds in effect, sorted, for reporting.
    pub kinds: Vec<FaultKind>,
    /// No fix, no pulses.
    pub antenna_loss: bool,
    /// Probability that a pulse is dropped.
    pub missing_pulse_p: f64,
    /// Seconds added to every NMEA label.
    pub label_shift_s: i64,
    /// Nanoseconds added to every pulse edge.
    pub pulse_shift_ns: i64,
    /// Probability that a sentence gets a wrong checksum.
    pub checksum_p: f64,
    /// Probability that a sentence is truncated.
    pub truncate_p: f64,
    /// Garbage bytes injected per second.
    pub garbage_bytes: u32,
    /// An announced leap second: (UTC day it ends, delta).
    pub leap_announced: Option<((i32, u8, u8), i8)>,
    /// Dates reported 1024 weeks early.
    pub week_rollover: bool,
    /// The atomic clock is unlocked.
    pub atomic_unlock: bool,
    /// The GPS serial line is hung up.
    pub gps_hangup: bool,
    /// The atomic clock's serial line is hung up.
    pub atomic_hangup: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let s = Scenario::from_toml("", "x").unwrap();
        assert_eq!(s, Scenario::default());
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = Scenario::from_toml(
            "seed = 1\n[gps]\ntalker = \"GP\"\nbogus-key = 3\n",
            "s.toml",
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("line 4") && m.contains("bogus-key"), "{m}");
    }

    #[test]
    fn fault_validation_names_line_and_key() {
        let src = "seed = 1\n\n[[fault]]\nkind = \"antenna-loss\"\nat-s = 1.0\n\n[[fault]]\nkind = \"antenna-loss\"\nat-s = 2.0\njump-s = 5\n";
        let e = Scenario::from_toml(src, "s.toml").unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with("s.toml:7: jump-s:"), "{m}");
        let e = Scenario::from_toml("[[fault]]\nkind = \"explode\"\nat-s = 1.0\n", "s.toml")
            .unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = Scenario::from_toml(
            "[[fault]]\nkind = \"leap-second\"\nat-s = 1.0\ndate = \"2016-13-01\"\n",
            "s.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("s.toml:1: date"), "{e}");
        let e = Scenario::from_toml("[truth]\nstart = \"yesterday\"\n", "s.toml").unwrap_err();
        assert!(e.to_string().contains("s.toml:2: truth.start"), "{e}");
        let e = Scenario::from_toml("[gps]\ntalker = \"XX\"\n", "s.toml").unwrap_err();
        assert!(e.to_string().contains("s.toml:2: gps.talker"), "{e}");
    }

    #[test]
    fn timeline_folds_active_faults() {
        let src = r#"
[[fault]]
kind = "label-slip"
at-s = 10.0
duration-s = 5.0
[[fault]]
kind = "time-jump"
at-s = 12.0
jump-s = 3600
phase-ns = 250000
[[fault]]
kind = "leap-second"
at-s = 0.0
date = "2026-12-31"
"#;
        let s = Scenario::from_toml(src, "x").unwrap();
        assert_eq!(s.active(9.9).label_shift_s, 0);
        assert_eq!(s.active(10.0).label_shift_s, 1);
        let a = s.active(13.0);
        assert_eq!(a.label_shift_s, 3601);
        assert_eq!(a.pulse_shift_ns, 250_000);
        assert_eq!(
            a.kinds,
            vec![
                FaultKind::LabelSlip,
                FaultKind::TimeJump,
                FaultKind::LeapSecond
            ]
        );
        assert_eq!(s.active(15.0).label_shift_s, 3600);
        assert_eq!(s.leap_table().unwrap().entries().len(), 28);
    }
}
