//! The time master's logic, pure: pulses, NMEA lines, atomic-clock events and peer
//! measurements go in (each with the local raw-clock reading at which it happened); the
//! published clock model, the status and the ε budget come out.
//!
//! # References and statuses
//!
//! | reference | when | status |
//! |---|---|---|
//! | `gps` | labelled GPS pulses accepted within the loss timeout | synchronized |
//! | `atomic` (GPS master) | GPS lost or refused, atomic clock locked and calibrated | holdover |
//! | `quartz` | GPS lost or refused, no usable atomic clock | holdover |
//! | `atomic` (armageddon) | after taking time from peers once | synchronized |
//! | `none` | never synchronized | unsynchronized |
//!
//! Independently: ε beyond `max-epsilon`, a reference rate the local oscillator cannot explain,
//! or disagreement with the peer majority (eviction) make the status unsynchronized; a detected
//! clock disruption makes it disrupted until the reference is re-acquired.
//!
//! # The ε budget (all ns, rounded up)
//!
//! At the filter's reference point: `base + filter + 1`, where `base` is
//! * GPS: `calibration + qErr + pulse-jitter bound` (jitter bound measured from innovations);
//! * holdover: the total ε when the reference was lost, grown since then at the holdover
//!   reference's drift bound (atomic spec, or quartz), plus the atomic pulse jitter bound;
//! * armageddon: the peer transfer error + atomic jitter + atomic drift since the transfer;
//!
//! and `filter = k·σ_phase`. It then grows at `k·σ_freq + local-wander` (+ the holdover drift
//! bound, + the smear rate near a leap-smear boundary) per raw nanosecond.

use super::kalman::{Kalman, KalmanParams, Update};
use super::nmea::{NmeaEvent, parse_line};
use super::outcome::{Eviction, HoldoverCause, MasterEvent, MasterReason, NmeaRefusal};
use std::collections::VecDeque;
use ttcore::disrupt::Disruption;
use ttcore::leap::LeapSecond;
use ttcore::marzullo;
use ttcore::{
    ClockModel, ClockStatus, LeapTable, NANOS_PER_SEC, OffsetInterval, Rate, Span, Timestamp,
};

pub use ttcore::MasterKind;

/// What the master's time currently rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference {
    /// Nothing yet.
    None,
    /// GPS pulses.
    Gps,
    /// The atomic clock's 1PPS.
    Atomic,
    /// The local quartz oscillator alone (holdover).
    Quartz,
}

impl Reference {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reference::None => "none",
            Reference::Gps => "gps",
            Reference::Atomic => "atomic",
            Reference::Quartz => "quartz",
        }
    }
}

/// GPS receiver parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GpsParams {
    /// Antenna cable + receiver delay: the pulse edge is this late (ns); compensated.
    pub cable_delay_ns: i64,
    /// Uncertainty of that calibration (ns).
    pub calibration_error_ns: i64,
    /// Receiver quantization error bound (ns).
    pub qerr_ns: i64,
    /// Lower bound on the pulse jitter bound (ns).
    pub jitter_floor_ns: f64,
}

/// Atomic clock parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AtomicParams {
    /// The device's frequency bound (the spec: offset + aging + temperature).
    pub drift: Rate,
    /// 1PPS jitter bound (ns).
    pub jitter_ns: f64,
}

/// Everything the core needs to know.
#[derive(Clone, Debug, PartialEq)]
pub struct MasterParams {
    /// Master kind.
    pub kind: MasterKind,
    /// GPS receiver, if any.
    pub gps: Option<GpsParams>,
    /// Atomic clock, if any.
    pub atomic: Option<AtomicParams>,
    /// How far the local oscillator's frequency may wander from the filter's estimate between
    /// reference pulses.
    pub local_wander: Rate,
    /// Drift bound of the local oscillator in holdover without an atomic clock.
    pub quartz_holdover: Rate,
    /// Largest plausible |frequency| of the local raw clock against a true reference; a
    /// reference that needs more is not believed.
    pub max_freq: Rate,
    /// Beyond this ε the status is unsynchronized.
    pub max_epsilon: Span,
    /// Multiplier turning filter σ into bounds.
    pub sigma_k: f64,
    /// Consecutive rejected GPS pulses after which GPS is refused.
    pub reject_limit: u32,
    /// Without an accepted reference pulse for this long, the master is in holdover.
    pub loss_timeout: Span,
    /// Labels earlier than this are refused (GPS week-rollover guard).
    pub earliest_valid: Timestamp,
    /// Filter tuning.
    pub kalman: KalmanParams,
    /// An armageddon master takes its one-time peer transfer only when its radius is at most
    /// this (a transfer taken during a network delay spike would bind it to a wide ε forever).
    pub peer_max_radius: Span,
}

/// The defaults of a receiver on a 50 ns cable (firmware-sim's), with a typical timing
/// receiver's error bounds. The config's defaults are these, except the cable (0 unless
/// configured).
impl Default for GpsParams {
    fn default() -> Self {
        GpsParams {
            cable_delay_ns: 50,
            calibration_error_ns: 50,
            qerr_ns: 4,
            jitter_floor_ns: 20.0,
        }
    }
}

/// A chip-scale atomic clock: 100 ppt drift bound, 5 ns pulse jitter.
impl Default for AtomicParams {
    fn default() -> Self {
        AtomicParams {
            drift: Rate::from_ppt(100),
            jitter_ns: 5.0,
        }
    }
}

impl Default for MasterParams {
    fn default() -> Self {
        MasterParams {
            kind: MasterKind::Gps,
            gps: Some(GpsParams::default()),
            atomic: Some(AtomicParams::default()),
            local_wander: Rate::from_ppb(500),
            quartz_holdover: Rate::from_ppm(10),
            max_freq: Rate::from_ppm(500),
            max_epsilon: Span::from_millis(1),
            sigma_k: 6.0,
            reject_limit: 5,
            loss_timeout: Span::from_millis(2_500),
            // 2016-06-01: before the last leap second (so it can still be simulated), long after
            // the 1999 and 2019 week rollovers' bogus dates.
            earliest_valid: Timestamp::from_nanos(1_464_739_200 * NANOS_PER_SEC),
            kalman: KalmanParams::default(),
            peer_max_radius: Span::from_micros(500),
        }
    }
}

/// ε components at the model's reference point (ns).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct EpsilonComponents {
    /// Pulse jitter bound.
    pub pps_jitter_ns: i64,
    /// Quantization bound.
    pub qerr_ns: i64,
    /// Calibration error.
    pub calibration_ns: i64,
    /// Filter phase uncertainty (k·σ).
    pub filter_ns: i64,
    /// Growth since the reference point, at the query instant.
    pub drift_ns: i64,
    /// Growth since the reference was lost.
    pub holdover_ns: i64,
    /// Peer transfer error (armageddon).
    pub peer_ns: i64,
}

/// What the master publishes.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Raw → timescale model (absent before the first synchronization).
    pub model: Option<ClockModel>,
    /// Status as of the snapshot (the server re-checks ε against `max_epsilon` per request).
    pub status: ClockStatus,
    /// Why.
    pub reason: MasterReason,
    /// Current reference.
    pub reference: Reference,
    /// ε components at the model's reference point (`drift_ns` = 0 there).
    pub components: EpsilonComponents,
    /// Seconds in holdover (0 when not).
    pub holdover_s: f64,
    /// Evicted by the cross-check.
    pub evicted: bool,
    /// Estimated frequency (ppm).
    pub freq_ppm: f64,
    /// Known leap seconds and TAI − UTC for the leap information.
    pub tai_minus_utc: i32,
    /// The next leap second, if announced.
    pub next_leap: Option<LeapSecond>,
}

/// Counters for status and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Counters {
    /// GPS pulses received.
    pub pulses_seen: u64,
    /// GPS pulses rejected (label conflicts, gate, unnumbered).
    pub pulses_rejected: u64,
    /// NMEA labels received.
    pub labels_seen: u64,
    /// NMEA labels rejected (mismatch, before the valid date, unknown leap second).
    pub labels_rejected: u64,
    /// NMEA lines that failed to parse (checksum, truncation, noise).
    pub nmea_errors: u64,
    /// Atomic pulses received.
    pub atomic_pulses: u64,
    /// Atomic pulses rejected by the gate.
    pub atomic_rejected: u64,
}

/// The result of a cross-check round.
#[derive(Clone, Debug, PartialEq)]
pub enum CrossCheck {
    /// Too few trustworthy sources to decide (needs self + 2).
    TooFew,
    /// No majority agrees on anything: nobody can be judged (no eviction, no return).
    NoMajority,
    /// Decided: whether we agree, and for each peer whether it agrees.
    Decided {
        /// We are in the agreeing set.
        agree: bool,
        /// Per peer (same order as given; false for absent peers).
        peers: Vec<bool>,
    },
}

#[derive(Clone, Debug)]
struct Holdover {
    /// Raw reading when the reference was lost (the last accepted reference pulse).
    since_raw: i64,
    /// ε accumulated at `seg_raw` (ns).
    seg_eps_ns: f64,
    /// Start of the current growth segment.
    seg_raw: i64,
    /// Growth rate of the current segment.
    rate: Rate,
}

impl Holdover {
    fn eps_at(&self, raw: i64) -> f64 {
        self.seg_eps_ns
            + self
                .rate
                .bound_over(Span::from_nanos((raw - self.seg_raw).max(0)))
                .as_nanos() as f64
    }
    fn switch_rate(&mut self, raw: i64, rate: Rate) {
        self.seg_eps_ns = self.eps_at(raw);
        self.seg_raw = raw;
        self.rate = rate;
    }
}

/// The master core.
#[derive(Clone, Debug)]
pub struct MasterCore {
    p: MasterParams,
    leap: LeapTable,
    tai_minus_utc: i32,
    kf: Option<Kalman>,
    reference: Reference,
    pending_pulses: VecDeque<i64>,
    labels: VecDeque<(i64, Timestamp)>,
    startup: Vec<(i64, Timestamp)>,
    last_accept_raw: Option<i64>,
    rejects_in_row: u32,
    gps_refused: bool,
    innovations: VecDeque<f64>,
    atomic_locked: bool,
    atomic_telemetry_ok: bool,
    atomic_phase: VecDeque<f64>,
    atomic_cal_eps_ns: f64,
    holdover: Option<Holdover>,
    armageddon: Option<(i64, f64)>,
    peer_time: Option<(i64, OffsetInterval)>,
    peer_too_wide_logged: bool,
    peer_rounds: u32,
    peer_best: Option<(i64, OffsetInterval)>,
    evicted: Option<Eviction>,
    agree_streak: u32,
    disagree_streak: u32,
    disrupted: bool,
    smear_rate: f64,
    counters: Counters,
    events: VecDeque<(i64, MasterEvent)>,
    new_events: Vec<MasterEvent>,
}

const EVENT_LOG: usize = 32;
const JITTER_WINDOW: usize = 64;
const ATOMIC_CAL_WINDOW: usize = 16;
/// Peer rounds an armageddon master waits for a narrow transfer before taking the narrowest.
const PEER_ROUNDS: u32 = 10;

fn signed_mod_second(ns: i64) -> f64 {
    let r = ns.rem_euclid(NANOS_PER_SEC);
    if r > NANOS_PER_SEC / 2 {
        (r - NANOS_PER_SEC) as f64
    } else {
        r as f64
    }
}

impl MasterCore {
    /// A fresh master (unsynchronized).
    pub fn new(p: MasterParams, leap: LeapTable) -> Self {
        let tai_minus_utc = leap.tai_minus_utc_s(i64::MAX / NANOS_PER_SEC) as i32;
        MasterCore {
            p,
            leap,
            tai_minus_utc,
            kf: None,
            reference: Reference::None,
            pending_pulses: VecDeque::new(),
            labels: VecDeque::new(),
            startup: Vec::new(),
            last_accept_raw: None,
            rejects_in_row: 0,
            gps_refused: false,
            innovations: VecDeque::new(),
            atomic_locked: false,
            atomic_telemetry_ok: true,
            atomic_phase: VecDeque::new(),
            atomic_cal_eps_ns: 0.0,
            holdover: None,
            armageddon: None,
            peer_time: None,
            peer_too_wide_logged: false,
            peer_rounds: 0,
            peer_best: None,
            evicted: None,
            agree_streak: 0,
            disagree_streak: 0,
            disrupted: false,
            smear_rate: 0.0,
            counters: Counters::default(),
            events: VecDeque::new(),
            new_events: Vec::new(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &MasterParams {
        &self.p
    }

    /// Counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Recent events (raw reading, event), oldest first.
    pub fn events(&self) -> impl Iterator<Item = &(i64, MasterEvent)> {
        self.events.iter()
    }

    /// Events since the last call (for logging).
    #[must_use]
    pub fn take_new_events(&mut self) -> Vec<MasterEvent> {
        std::mem::take(&mut self.new_events)
    }

    /// Whether the atomic clock is locked (lock line and telemetry agree).
    pub fn atomic_locked(&self) -> bool {
        self.atomic_locked && self.atomic_telemetry_ok
    }

    fn event(&mut self, raw: i64, e: MasterEvent) {
        self.new_events.push(e.clone());
        self.events.push_back((raw, e));
        while self.events.len() > EVENT_LOG {
            self.events.pop_front();
        }
    }

    fn estimate(&self, raw: i64) -> Option<i64> {
        self.kf.as_ref().map(|k| {
            let (w, f) = k.offset_at(raw);
            raw + w + f.round() as i64
        })
    }

    // ----- GPS -------------------------------------------------------------------------------

    /// A GPS pulse edge captured at local raw reading `edge_raw`.
    pub fn on_gps_pulse(&mut self, edge_raw: i64) {
        if self.p.gps.is_none() {
            return;
        }
        self.counters.pulses_seen += 1;
        self.pending_pulses.push_back(edge_raw);
        while self.pending_pulses.len() > 4 {
            self.pending_pulses.pop_front();
            self.counters.pulses_rejected += 1;
        }
        self.try_pair();
    }

    /// One NMEA line received at local raw reading `receipt_raw`. A refusal is counted here
    /// and returned for the caller to show; the core goes on either way.
    pub fn on_nmea_line(&mut self, line: &str, receipt_raw: i64) -> Result<(), NmeaRefusal> {
        match parse_line(line) {
            Err(e) => {
                self.counters.nmea_errors += 1;
                Err(e.into())
            }
            Ok(NmeaEvent::Time { label, valid, .. }) => {
                if !valid {
                    return Ok(());
                }
                self.counters.labels_seen += 1;
                match self.leap.utc_to_timescale(&label) {
                    Ok(t) => {
                        // One burst has several labels (RMC, ZDA); keep each value once.
                        if !self
                            .labels
                            .iter()
                            .any(|(r, l)| *l == t && (receipt_raw - r).abs() < NANOS_PER_SEC)
                        {
                            self.labels.push_back((receipt_raw, t));
                        }
                        while self.labels.len() > 8 {
                            self.labels.pop_front();
                        }
                        self.try_pair();
                        Ok(())
                    }
                    Err(error) => {
                        self.counters.labels_rejected += 1;
                        Err(NmeaRefusal::Label { label, error })
                    }
                }
            }
            Ok(NmeaEvent::Leap {
                tai_minus_utc,
                pending,
            }) => {
                self.tai_minus_utc = tai_minus_utc;
                if let Some(l) = pending
                    && !self.leap.entries().contains(&l)
                {
                    match self.leap.with_announced(l) {
                        Ok(t) => {
                            self.leap = t;
                            self.event(receipt_raw, MasterEvent::LeapAnnounced(l));
                        }
                        Err(e) => return Err(NmeaRefusal::LeapAnnouncement(e)),
                    }
                }
                Ok(())
            }
            Ok(_) => Ok(()),
        }
    }

    fn try_pair(&mut self) {
        let mut i = 0;
        while i < self.pending_pulses.len() {
            let p = self.pending_pulses[i];
            let matches: Vec<Timestamp> = self
                .labels
                .iter()
                .filter(|(r, _)| *r - p >= 50_000_000 && *r - p <= 990_000_000)
                .map(|(_, t)| *t)
                .collect();
            if matches.is_empty() {
                i += 1;
                continue;
            }
            self.pending_pulses.remove(i);
            if matches.iter().any(|t| *t != matches[0]) {
                self.counters.pulses_rejected += 1;
                self.counters.labels_rejected += 1;
                continue;
            }
            self.labels.retain(|(_, t)| *t != matches[0]);
            self.gps_labelled(p, matches[0], true);
        }
    }

    /// Periodic work at raw reading `now_raw` (call ~10×/s): numbers unlabelled pulses,
    /// detects reference loss.
    pub fn tick(&mut self, now_raw: i64) {
        while let Some(&p) = self.pending_pulses.front() {
            if now_raw - p <= 1_000_000_000 {
                break;
            }
            self.pending_pulses.pop_front();
            // No label arrived: number the pulse by our own model when that is unambiguous.
            let fresh = self
                .last_accept_raw
                .is_some_and(|a| p - a < 3 * NANOS_PER_SEC);
            match (self.reference, self.estimate(p), self.p.gps) {
                (Reference::Gps, Some(est), Some(g)) if fresh => {
                    let sec =
                        (est - g.cable_delay_ns + NANOS_PER_SEC / 2).div_euclid(NANOS_PER_SEC);
                    self.gps_labelled(p, Timestamp::from_nanos(sec * NANOS_PER_SEC), false);
                }
                _ => self.counters.pulses_rejected += 1,
            }
        }
        self.labels.retain(|(r, _)| now_raw - r < 2 * NANOS_PER_SEC);
        // Loss of the primary reference.
        if let Some(last) = self.last_accept_raw
            && self.reference == Reference::Gps
            && now_raw - last > self.p.loss_timeout.as_nanos()
        {
            self.enter_holdover(now_raw, HoldoverCause::NoGpsPulses);
        }
        if matches!(self.reference, Reference::Atomic)
            && self.p.kind == MasterKind::Gps
            && !self.atomic_locked()
        {
            self.fall_back_to_quartz(now_raw, HoldoverCause::AtomicUnlocked);
        }
    }

    fn jitter_bound(&self) -> f64 {
        let floor = self.p.gps.map_or(0.0, |g| g.jitter_floor_ns);
        if self.innovations.len() < 8 {
            return floor.max(1_000.0);
        }
        let n = self.innovations.len() as f64;
        let rms = (self.innovations.iter().map(|x| x * x).sum::<f64>() / n).sqrt();
        let max = self.innovations.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        floor.max(self.p.sigma_k * rms).max(1.2 * max)
    }

    fn gps_base_ns(&self) -> f64 {
        let g = self.p.gps.unwrap_or(GpsParams {
            cable_delay_ns: 0,
            calibration_error_ns: 0,
            qerr_ns: 0,
            jitter_floor_ns: 0.0,
        });
        (g.calibration_error_ns + g.qerr_ns) as f64 + self.jitter_bound()
    }

    fn gps_labelled(&mut self, edge_raw: i64, label: Timestamp, labelled: bool) {
        let Some(g) = self.p.gps else { return };
        if label < self.p.earliest_valid {
            self.counters.labels_rejected += 1;
            self.counters.pulses_rejected += 1;
            self.event(edge_raw, MasterEvent::LabelBeforeEarliestValid(label));
            return;
        }
        let z = label.as_nanos() + g.cable_delay_ns - edge_raw;
        let r = (g.jitter_floor_ns.max(5.0)).powi(2) + (g.qerr_ns as f64).powi(2);
        if self.kf.is_none() {
            self.startup_pulse(edge_raw, label, z, r);
            return;
        }
        self.apply_smear_rate(label);
        let est = self.estimate(edge_raw).unwrap_or(0);
        if labelled && (label.as_nanos() + g.cable_delay_ns - est).abs() > NANOS_PER_SEC / 2 {
            self.counters.labels_rejected += 1;
            self.gps_reject(
                edge_raw,
                (label.as_nanos() + g.cable_delay_ns - est) as f64,
                "label",
            );
            return;
        }
        let kf = self.kf.as_ref().map(|k| k.innovation(edge_raw, z, r));
        let sigma = kf.map_or(1e9, |x| x.1);
        let gate = match self.reference {
            Reference::Gps => (self.p.sigma_k * sigma)
                .max(2_000.0)
                .max(2.0 * self.jitter_bound()),
            // Re-acquisition: the pulse must fall inside what we can vouch for now.
            _ => self.total_eps_at(edge_raw) + self.gps_base_ns() + self.p.sigma_k * sigma,
        };
        let Some(kf) = self.kf.as_mut() else { return };
        match kf.update(edge_raw, z, r, gate) {
            Update::Accepted(y) => {
                self.innovations.push_back(y);
                while self.innovations.len() > JITTER_WINDOW {
                    self.innovations.pop_front();
                }
                self.rejects_in_row = 0;
                self.last_accept_raw = Some(edge_raw);
                if self.gps_refused {
                    self.gps_refused = false;
                    self.event(edge_raw, MasterEvent::GpsAgreesAgain);
                }
                if self.reference != Reference::Gps {
                    let held = self
                        .holdover
                        .as_ref()
                        .map_or(0.0, |h| (edge_raw - h.since_raw) as f64 / 1e9);
                    self.event(
                        edge_raw,
                        MasterEvent::GpsReacquired {
                            held_s: held,
                            innovation_ns: y,
                        },
                    );
                    self.reference = Reference::Gps;
                    self.holdover = None;
                }
                if self.disrupted {
                    self.disrupted = false;
                    self.event(edge_raw, MasterEvent::Resynchronized);
                }
            }
            Update::Rejected(y) => self.gps_reject(edge_raw, y, "phase"),
        }
    }

    fn gps_reject(&mut self, raw: i64, y: f64, what: &'static str) {
        self.counters.pulses_rejected += 1;
        self.rejects_in_row += 1;
        if self.rejects_in_row >= self.p.reject_limit && !self.gps_refused {
            self.gps_refused = true;
            self.event(
                raw,
                MasterEvent::GpsJumpRefused {
                    what,
                    jump_s: y / 1e9,
                    in_row: self.rejects_in_row,
                },
            );
            if self.reference == Reference::Gps {
                self.enter_holdover(raw, HoldoverCause::GpsRefused);
            }
        }
    }

    fn startup_pulse(&mut self, edge_raw: i64, label: Timestamp, z: i64, r: f64) {
        // Three consecutive pulses whose labels step by whole seconds in step with the local
        // clock (within 1000 ppm) before the first model: a single bad label cannot start it.
        if let Some(&(prev_raw, prev_label)) = self.startup.last() {
            let d_raw = edge_raw - prev_raw;
            let d_label = label.as_nanos() - prev_label.as_nanos();
            if d_label <= 0 || (d_label - d_raw).abs() > d_raw / 1000 + 1_000_000 {
                self.startup.clear();
            }
        }
        self.startup.push((edge_raw, label));
        if self.startup.len() < 3 {
            return;
        }
        let g = self.p.gps.map_or(0, |g| g.cable_delay_ns);
        let (r0, l0) = self.startup[0];
        let mut kf = Kalman::new(self.p.kalman, r0, l0.as_nanos() + g - r0, r);
        for &(ri, li) in &self.startup[1..] {
            kf.update(ri, li.as_nanos() + g - ri, r, f64::INFINITY);
        }
        let _ = z;
        self.kf = Some(kf);
        self.startup.clear();
        self.reference = Reference::Gps;
        self.last_accept_raw = Some(edge_raw);
        self.smear_rate = self.smear_rate_at(label);
        self.event(edge_raw, MasterEvent::GpsLocked(label));
    }

    /// The timescale's rate against SI inside a smear window (dimensionless), else 0.
    fn smear_rate_at(&self, t: Timestamp) -> f64 {
        self.leap
            .smear_rate_at(t.as_nanos().div_euclid(NANOS_PER_SEC))
    }

    /// Known rate change of the timescale at a smear boundary: applied to the frequency state
    /// so the filter does not have to learn it.
    fn apply_smear_rate(&mut self, label: Timestamp) {
        let rate = self.smear_rate_at(label);
        if rate != self.smear_rate {
            if let Some(kf) = self.kf.as_mut() {
                kf.shift_freq(rate - self.smear_rate);
            }
            self.smear_rate = rate;
        }
    }

    // ----- holdover --------------------------------------------------------------------------

    fn atomic_calibrated(&self) -> bool {
        self.atomic_phase.len() >= 4
    }

    fn enter_holdover(&mut self, now_raw: i64, cause: HoldoverCause) {
        let since = self.last_accept_raw.unwrap_or(now_raw);
        let eps = self.total_eps_at(since);
        let (reference, rate) = match self.p.atomic {
            Some(a) if self.atomic_locked() && self.atomic_calibrated() => {
                (Reference::Atomic, a.drift)
            }
            _ => (Reference::Quartz, self.p.quartz_holdover),
        };
        let eps = if reference == Reference::Atomic {
            eps.max(self.atomic_cal_eps_ns)
        } else {
            eps
        };
        self.holdover = Some(Holdover {
            since_raw: since,
            seg_eps_ns: eps,
            seg_raw: since,
            rate,
        });
        self.reference = reference;
        self.event(
            now_raw,
            MasterEvent::HoldoverEntered {
                cause,
                reference,
                eps_ns: eps,
                rate,
            },
        );
    }

    fn fall_back_to_quartz(&mut self, now_raw: i64, cause: HoldoverCause) {
        let q = self.p.quartz_holdover;
        if let Some(h) = self.holdover.as_mut() {
            h.switch_rate(now_raw, q);
        }
        self.reference = Reference::Quartz;
        self.event(now_raw, MasterEvent::HoldoverOnQuartz(cause));
    }

    // ----- atomic clock ----------------------------------------------------------------------

    /// The atomic clock's lock line changed (or was read) at `raw`.
    pub fn on_atomic_lock(&mut self, locked: bool, raw: i64) {
        if locked != self.atomic_locked {
            self.event(raw, MasterEvent::AtomicLockLine(locked));
            if !locked {
                self.atomic_phase.clear();
            }
        }
        self.atomic_locked = locked;
    }

    /// The atomic clock's telemetry reports (status code, alarm bits) at `raw`.
    pub fn on_atomic_telemetry(&mut self, status: u8, alarm: u16, raw: i64) {
        let ok = status == 0 && alarm == 0;
        if ok != self.atomic_telemetry_ok {
            self.event(raw, MasterEvent::AtomicTelemetry { status, alarm });
            if !ok {
                self.atomic_phase.clear();
            }
        }
        self.atomic_telemetry_ok = ok;
    }

    /// An atomic 1PPS edge at local raw reading `edge_raw`.
    pub fn on_atomic_pulse(&mut self, edge_raw: i64) {
        let Some(a) = self.p.atomic else { return };
        self.counters.atomic_pulses += 1;
        if !self.atomic_locked() {
            return;
        }
        match self.reference {
            Reference::Gps => {
                // Calibrate the atomic clock's phase against GPS time.
                if let Some(t) = self.estimate(edge_raw) {
                    self.atomic_phase.push_back(signed_mod_second(t));
                    while self.atomic_phase.len() > ATOMIC_CAL_WINDOW {
                        self.atomic_phase.pop_front();
                    }
                    self.atomic_cal_eps_ns = self.total_eps_at(edge_raw) + a.jitter_ns;
                }
            }
            Reference::Atomic => {
                let phi = self.atomic_phase_cal();
                let Some(est) = self.estimate(edge_raw) else {
                    return;
                };
                let k = ((est as f64 - phi) / 1e9).round() as i64;
                let target = k * NANOS_PER_SEC + phi.round() as i64;
                let z = target - edge_raw;
                let r = a.jitter_ns.max(1.0).powi(2);
                let gate = (self.p.sigma_k
                    * self
                        .kf
                        .as_ref()
                        .map_or(1e9, |kf| kf.innovation(edge_raw, z, r).1))
                .max(1_000.0);
                if let Some(kf) = self.kf.as_mut() {
                    match kf.update(edge_raw, z, r, gate) {
                        Update::Accepted(_) => {
                            if self.p.kind == MasterKind::Gps {
                                self.last_accept_raw = self.last_accept_raw.max(Some(edge_raw));
                            }
                        }
                        Update::Rejected(_) => self.counters.atomic_rejected += 1,
                    }
                }
            }
            Reference::None if self.p.kind == MasterKind::Armageddon => {
                self.armageddon_start(edge_raw, a)
            }
            _ => {}
        }
    }

    fn atomic_phase_cal(&self) -> f64 {
        if self.atomic_phase.is_empty() {
            return 0.0;
        }
        self.atomic_phase.iter().sum::<f64>() / self.atomic_phase.len() as f64
    }

    // ----- armageddon ------------------------------------------------------------------------

    /// Time from the peers (Marzullo of their offset intervals, timescale − raw) measured at raw
    /// `raw`. An armageddon master takes it once, at its next atomic pulse.
    pub fn on_peer_time(&mut self, raw: i64, offset: OffsetInterval) {
        if self.p.kind != MasterKind::Armageddon || self.armageddon.is_some() {
            return;
        }
        if offset.radius() <= self.p.peer_max_radius {
            self.peer_time = Some((raw, offset));
            return;
        }
        // Too wide: remember the narrowest; after PEER_ROUNDS rounds take it if it still fits
        // well inside max-epsilon (a busy network may never offer a narrow one).
        self.peer_rounds += 1;
        if self
            .peer_best
            .is_none_or(|(_, b)| offset.radius() < b.radius())
        {
            self.peer_best = Some((raw, offset));
        }
        if !self.peer_too_wide_logged {
            self.peer_too_wide_logged = true;
            self.event(
                raw,
                MasterEvent::PeerTimeTooWide {
                    radius: offset.radius(),
                    limit: self.p.peer_max_radius,
                },
            );
        }
        if self.peer_rounds >= PEER_ROUNDS
            && let Some((r, best)) = self.peer_best
            && best.radius().as_nanos().saturating_mul(2) <= self.p.max_epsilon.as_nanos()
        {
            // Carry the old measurement to now: widen by the quartz bound over the gap.
            let widened = best.widen(self.p.quartz_holdover.bound_over(Span::from_nanos(raw - r)));
            self.event(
                raw,
                MasterEvent::PeerTimeTakenNarrowest {
                    rounds: PEER_ROUNDS,
                    radius: widened.radius(),
                },
            );
            self.peer_time = Some((raw, widened));
        }
    }

    /// One peer round for an armageddon master that still needs time: `peers[i]` is configured
    /// peer `i`'s offset interval (timescale − our raw) at `raw`, `None` if unreachable or
    /// untrustworthy.
    ///
    /// The fleet (the peers and this master) is assumed to hold at most
    /// `f = ⌊(peers + 1 − 1) / 2⌋` faulty masters — lying, silent or untrustworthy alike — and
    /// this master is not one of them. Each peer without an answer uses up one of the `f`, so at
    /// most `f − missing` of the answers lie and the truth is covered by at least
    /// `usable − (f − missing)` of them: the hull of what that many cover is taken
    /// ([`marzullo::covered_hull`]), wide when liars agree with each other, never wrong. (A
    /// majority rule over the answers alone let two liars of four that overlap the honest pair
    /// pick their overlap.) `Ok(false)`: nothing to do (not armageddon, or time already taken).
    pub fn on_peer_round(
        &mut self,
        raw: i64,
        peers: &[Option<OffsetInterval>],
    ) -> Result<bool, marzullo::MarzulloError> {
        if !self.wants_peer_time() {
            return Ok(false);
        }
        let usable: Vec<OffsetInterval> = peers.iter().flatten().copied().collect();
        let f = peers.len() / 2;
        let liars = f.saturating_sub(peers.len() - usable.len());
        let sel = marzullo::covered_hull(&usable, usable.len().saturating_sub(liars))?;
        self.on_peer_time(raw, sel.interval);
        Ok(true)
    }

    /// Whether an armageddon master still needs time from its peers.
    pub fn wants_peer_time(&self) -> bool {
        self.p.kind == MasterKind::Armageddon && self.armageddon.is_none()
    }

    fn armageddon_start(&mut self, edge_raw: i64, a: AtomicParams) {
        let Some((at, off)) = self.peer_time else {
            return;
        };
        let age = Span::from_nanos((edge_raw - at).abs());
        let t = edge_raw + off.midpoint().as_nanos();
        let eps = off.radius().as_nanos() as f64
            + self.p.quartz_holdover.bound_over(age).as_nanos() as f64
            + 1.0;
        self.atomic_phase.clear();
        self.atomic_phase.push_back(signed_mod_second(t));
        let kf = Kalman::new(
            self.p.kalman,
            edge_raw,
            t - edge_raw,
            a.jitter_ns.max(1.0).powi(2),
        );
        self.kf = Some(kf);
        self.armageddon = Some((edge_raw, eps));
        self.reference = Reference::Atomic;
        self.last_accept_raw = Some(edge_raw);
        self.event(edge_raw, MasterEvent::TimeFromPeers(eps));
    }

    // ----- ε and the published model ---------------------------------------------------------

    fn base_eps_at(&self, raw: i64) -> (f64, EpsilonComponents) {
        let mut c = EpsilonComponents::default();
        let base = match (self.reference, self.p.kind) {
            (Reference::Gps, _) => {
                let g = self.p.gps.unwrap_or(GpsParams {
                    cable_delay_ns: 0,
                    calibration_error_ns: 0,
                    qerr_ns: 0,
                    jitter_floor_ns: 0.0,
                });
                c.calibration_ns = g.calibration_error_ns;
                c.qerr_ns = g.qerr_ns;
                c.pps_jitter_ns = self.jitter_bound().ceil() as i64;
                self.gps_base_ns()
            }
            (Reference::Atomic, MasterKind::Armageddon) => {
                let a = self
                    .p
                    .atomic
                    .map_or((Rate::ZERO, 0.0), |a| (a.drift, a.jitter_ns));
                let (since, peer) = self.armageddon.unwrap_or((raw, 0.0));
                let grown =
                    a.0.bound_over(Span::from_nanos((raw - since).max(0)))
                        .as_nanos() as f64;
                c.peer_ns = peer.ceil() as i64;
                c.pps_jitter_ns = a.1.ceil() as i64;
                c.holdover_ns = grown as i64;
                peer + a.1 + grown
            }
            (Reference::Atomic | Reference::Quartz, _) => {
                let h = self.holdover.as_ref().map_or(0.0, |h| h.eps_at(raw));
                let j = if self.reference == Reference::Atomic {
                    self.p.atomic.map_or(0.0, |a| a.jitter_ns)
                } else {
                    0.0
                };
                c.holdover_ns = h.ceil() as i64;
                c.pps_jitter_ns = j.ceil() as i64;
                h + j
            }
            (Reference::None, _) => f64::INFINITY,
        };
        (base, c)
    }

    fn filter_eps(&self) -> f64 {
        self.kf
            .as_ref()
            .map_or(f64::INFINITY, |k| self.p.sigma_k * k.phase_sigma_ns())
    }

    /// The drift bound of the published model (per raw ns).
    fn drift_rate(&self) -> Rate {
        let Some(kf) = self.kf.as_ref() else {
            return Rate::ZERO;
        };
        let filt = Rate::bound_from_ppm_f64(self.p.sigma_k * kf.freq_sigma() * 1e6)
            .unwrap_or(Rate::from_ppm(1_000_000));
        let mut r = filt.saturating_add(self.p.local_wander);
        match self.reference {
            Reference::Quartz => r = r.saturating_add(self.p.quartz_holdover),
            Reference::Atomic => {
                r = r.saturating_add(self.p.atomic.map_or(Rate::ZERO, |a| a.drift))
            }
            _ => {}
        }
        // Within 2 s of a smear boundary the timescale's rate changes by 1/86400: cover it.
        if let Some(t) = self.estimate(kf.ref_raw()) {
            let ts = Timestamp::from_nanos(t);
            let later = Timestamp::from_nanos(t.saturating_add(2 * NANOS_PER_SEC));
            if self.smear_rate_at(ts) != self.smear_rate_at(later) {
                r = r.saturating_add(Rate::from_ppt(11_575_000));
            }
        }
        r
    }

    /// Total ε (ns) at raw `raw` as the published model computes it.
    pub fn total_eps_at(&self, raw: i64) -> f64 {
        match self.model() {
            Some(m) => m.epsilon_at(raw).as_nanos() as f64,
            None => f64::INFINITY,
        }
    }

    fn model(&self) -> Option<ClockModel> {
        let kf = self.kf.as_ref()?;
        let r = kf.ref_raw();
        let (base, _) = self.base_eps_at(r);
        let eps = base + self.filter_eps();
        if !eps.is_finite() {
            return None;
        }
        let (w, f) = kf.offset_at(r);
        Some(ClockModel {
            ref_raw_ns: r,
            ref_time: Timestamp::from_nanos(r + w + f.floor() as i64),
            freq: Rate::estimate_from_ppm_f64(kf.freq() * 1e6)?,
            // +1 for the floor above; ClockModel adds its own rounding guard for freq × age.
            eps_ref: Span::from_nanos(eps.ceil() as i64 + 1),
            drift_bound: self.drift_rate(),
        })
    }

    /// The published snapshot at raw reading `now_raw`.
    pub fn snapshot(&self, now_raw: i64) -> Snapshot {
        let model = self.model();
        let r = self.kf.as_ref().map_or(now_raw, |k| k.ref_raw());
        let (_, mut components) = self.base_eps_at(r);
        components.filter_ns = self.filter_eps().min(1e18).ceil() as i64;
        if let Some(m) = &model {
            components.drift_ns = m
                .drift_bound
                .bound_over(m.age_at(now_raw).saturating_abs())
                .as_nanos();
        }
        let freq_ppm = self.kf.as_ref().map_or(0.0, |k| k.freq() * 1e6);
        let holdover_s = self
            .holdover
            .as_ref()
            .map_or(0.0, |h| (now_raw - h.since_raw) as f64 / 1e9);
        let eps_now = model.as_ref().map(|m| m.epsilon_at(now_raw));
        let (status, reason) = self.status_with_reason(model.is_some(), eps_now, freq_ppm);
        Snapshot {
            model,
            status,
            reason,
            reference: self.reference,
            components,
            holdover_s,
            evicted: self.evicted.is_some(),
            freq_ppm,
            tai_minus_utc: self.tai_minus_utc,
            next_leap: self
                .kf
                .as_ref()
                .and_then(|_| self.estimate(now_raw))
                .and_then(|t| self.leap.next_leap(Timestamp::from_nanos(t))),
        }
    }

    /// The status decision, in order: disrupted, no model, evicted, frequency out of bounds,
    /// ε beyond max-epsilon ([`ClockStatus::within`]), then by reference.
    fn status_with_reason(
        &self,
        has_model: bool,
        eps_now: Option<Span>,
        freq_ppm: f64,
    ) -> (ClockStatus, MasterReason) {
        use MasterReason as R;
        if self.disrupted {
            return (ClockStatus::Disrupted, R::Disrupted);
        }
        if !has_model {
            let why = match self.p.kind {
                MasterKind::Gps if self.startup.is_empty() => R::WaitingForGps,
                MasterKind::Gps => R::AcquiringGps,
                MasterKind::Armageddon if self.peer_time.is_none() => R::WaitingForPeers,
                MasterKind::Armageddon => R::WaitingForAtomicPulse,
            };
            return (ClockStatus::Unsynchronized, why);
        }
        if let Some(why) = self.evicted {
            return (ClockStatus::Unsynchronized, R::Evicted(why));
        }
        if freq_ppm.abs() > self.p.max_freq.as_ppm_f64() {
            let bound = self.p.max_freq;
            return (
                ClockStatus::Unsynchronized,
                R::FrequencyBeyondBound {
                    ppm: freq_ppm,
                    bound,
                },
            );
        }
        let (status, reason) = match (self.reference, self.p.kind) {
            (Reference::Gps, _) => (ClockStatus::Synchronized, R::Gps),
            (Reference::Atomic, MasterKind::Armageddon) => {
                (ClockStatus::Synchronized, R::AtomicFromPeers)
            }
            (r, _) => (ClockStatus::Holdover, R::Holdover(r)),
        };
        let eps = eps_now.unwrap_or(Span::ZERO);
        match status.within(eps, self.p.max_epsilon) {
            s if s == status => (status, reason),
            s => (s, R::EpsilonBeyondMax(self.p.max_epsilon)),
        }
    }

    // ----- cross-checks and disruption -------------------------------------------------------

    /// Our own offset interval (timescale − raw) at `raw`, if synchronized.
    pub fn own_offset(&self, raw: i64) -> Option<OffsetInterval> {
        let m = self.model()?;
        let est = m.estimate_at(raw)?;
        let eps = m.epsilon_at(raw);
        let mid = Span::from_nanos(est.as_nanos() - raw);
        OffsetInterval::new(mid.saturating_sub(eps), mid.saturating_add(eps))
    }

    /// One cross-check round at `raw` against the peers' offset intervals (timescale − our raw,
    /// `None` for unreachable or untrustworthy peers). Three rounds in a row decide an eviction
    /// or a return.
    pub fn cross_check(&mut self, raw: i64, peers: &[Option<OffsetInterval>]) -> CrossCheck {
        let Some(own) = self.own_offset(raw) else {
            return CrossCheck::TooFew;
        };
        let mut ivs = vec![own];
        let mut idx = Vec::new();
        for (i, p) in peers.iter().enumerate() {
            if let Some(p) = p {
                idx.push(i);
                ivs.push(*p);
            }
        }
        if ivs.len() < 3 {
            return CrossCheck::TooFew;
        }
        let f = (ivs.len() - 1) / 2;
        let (agree, agreeing) = match marzullo::select(&ivs, f) {
            Ok(s) => (s.agreeing.contains(&0), s.agreeing),
            // Without a majority there is no one to disagree with: undecided.
            Err(_) => return CrossCheck::NoMajority,
        };
        let mut per_peer = vec![false; peers.len()];
        for (j, &i) in idx.iter().enumerate() {
            per_peer[i] = agreeing.contains(&(j + 1));
        }
        if agree {
            self.agree_streak += 1;
            self.disagree_streak = 0;
            if self.evicted.is_some() && self.agree_streak >= 3 {
                self.evicted = None;
                self.event(raw, MasterEvent::EvictionLifted);
            }
        } else {
            self.disagree_streak += 1;
            self.agree_streak = 0;
            if self.evicted.is_none() && self.disagree_streak >= 3 {
                let why = Eviction {
                    agreeing: per_peer.iter().filter(|a| **a).count(),
                    answering: idx.len(),
                };
                self.event(raw, MasterEvent::Evicted(why));
                self.evicted = Some(why);
            }
        }
        CrossCheck::Decided {
            agree,
            peers: per_peer,
        }
    }

    /// The host clock was disrupted (suspend, jump) at `raw`: forget the model until the
    /// reference is re-acquired.
    pub fn on_disruption(&mut self, raw: i64, why: Disruption) {
        self.disrupted = true;
        self.kf = None;
        self.startup.clear();
        self.pending_pulses.clear();
        self.labels.clear();
        self.holdover = None;
        self.reference = Reference::None;
        self.armageddon = None;
        self.event(raw, MasterEvent::ClockDisrupted(why));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = NANOS_PER_SEC;
    /// Raw clock = truth − 1e18 (so offsets are large, as with a real boot-time clock).
    const OFF: i64 = 1_000_000_000_000_000_000;
    const T0: i64 = 1_790_000_000 * S;

    fn burst(label_s: i64) -> String {
        let l = LeapTable::builtin().timescale_to_utc(Timestamp::from_nanos(label_s * S));
        let body = format!(
            "GPRMC,{:02}{:02}{:02}.00,A,4404.13382,N,12118.85626,W,0.02,,{:02}{:02}{:02},,,A",
            l.hour,
            l.minute,
            l.second,
            l.day,
            l.month,
            l.year % 100
        );
        format!("${}*{:02X}", body, body.bytes().fold(0u8, |a, b| a ^ b))
    }

    fn feed(m: &mut MasterCore, secs: std::ops::Range<i64>, jump_s: i64) {
        for k in secs {
            let t = T0 + k * S;
            m.on_gps_pulse(t + 50 - OFF);
            let _ = m.on_nmea_line(&burst(t / S + jump_s), t + 200_000_000 - OFF);
            m.tick(t + 300_000_000 - OFF);
        }
    }

    #[test]
    fn locks_after_three_pulses_and_contains_truth() {
        let mut m = MasterCore::new(
            MasterParams {
                atomic: None,
                ..Default::default()
            },
            LeapTable::builtin(),
        );
        assert_eq!(m.snapshot(T0 - OFF).status, ClockStatus::Unsynchronized);
        feed(&mut m, 0..30, 0);
        let raw = T0 + 30 * S - OFF;
        let s = m.snapshot(raw);
        assert_eq!(s.status, ClockStatus::Synchronized, "{}", s.reason);
        let i = s.model.unwrap().interval_at(raw);
        assert!(i.contains(Timestamp::from_nanos(T0 + 30 * S)), "{i}");
        assert!(i.epsilon() < Span::from_micros(2), "{i}");
    }

    #[test]
    fn a_label_jump_is_refused_not_followed() {
        let mut m = MasterCore::new(
            MasterParams {
                atomic: None,
                ..Default::default()
            },
            LeapTable::builtin(),
        );
        feed(&mut m, 0..20, 0);
        feed(&mut m, 20..40, 3600);
        let raw = T0 + 40 * S - OFF;
        let s = m.snapshot(raw);
        assert_eq!(s.status, ClockStatus::Holdover, "{}", s.reason);
        assert!(
            s.model
                .unwrap()
                .interval_at(raw)
                .contains(Timestamp::from_nanos(T0 + 40 * S))
        );
        assert!(
            m.events()
                .any(|e| matches!(e.1, MasterEvent::GpsJumpRefused { .. }))
        );
        assert!(m.counters().labels_rejected >= 5);
    }

    #[test]
    fn week_rollover_date_refused_at_start() {
        let mut m = MasterCore::new(
            MasterParams {
                atomic: None,
                ..Default::default()
            },
            LeapTable::builtin(),
        );
        // Labels 1024 weeks early never start the model.
        feed(&mut m, 0..10, -7168 * 86_400);
        assert_eq!(
            m.snapshot(T0 + 10 * S - OFF).status,
            ClockStatus::Unsynchronized
        );
        assert!(m.counters().labels_rejected >= 10);
    }

    #[test]
    fn armageddon_peer_time_keeps_the_truth_with_close_liars() {
        let arm = || {
            let mut m = MasterCore::new(
                MasterParams {
                    kind: MasterKind::Armageddon,
                    gps: None,
                    ..Default::default()
                },
                LeapTable::builtin(),
            );
            m.on_atomic_lock(true, 0);
            m
        };
        let us = |a: i64, b: i64| {
            Some(OffsetInterval::new(Span::from_micros(a), Span::from_micros(b)).unwrap())
        };
        // Truth at 0; two honest peers, two liars overlapping them at +300 µs.
        let mut m = arm();
        let peers = [us(-150, 150), us(-140, 160), us(150, 450), us(160, 460)];
        assert_eq!(m.on_peer_round(S, &peers), Ok(true));
        // The hull of what two cover: from the second honest start to the first liar's end,
        // truth (0) inside; a majority of the four (three) would have picked [150, 160].
        assert_eq!(m.peer_time, Some((S, us(-140, 450).unwrap())));
        m.on_atomic_pulse(2 * S);
        assert!(!m.wants_peer_time());
        // One of two peers silent: it is the fault, the other is taken.
        let mut m = arm();
        assert_eq!(m.on_peer_round(S, &[None, us(-100, 100)]), Ok(true));
        assert_eq!(m.peer_time, Some((S, us(-100, 100).unwrap())));
        // Both silent: nothing to take.
        let mut m = arm();
        assert!(m.on_peer_round(S, &[None, None]).is_err());
        // Not armageddon: nothing to do.
        let mut g = MasterCore::new(MasterParams::default(), LeapTable::builtin());
        assert_eq!(g.on_peer_round(S, &peers), Ok(false));
    }

    #[test]
    fn armageddon_waits_for_a_narrow_peer_transfer() {
        let p = MasterParams {
            kind: MasterKind::Armageddon,
            gps: None,
            ..Default::default()
        };
        let mut m = MasterCore::new(p, LeapTable::builtin());
        m.on_atomic_lock(true, 0);
        let wide = OffsetInterval::new(Span::from_millis(-2), Span::from_millis(2)).unwrap();
        m.on_peer_time(S, wide);
        m.on_atomic_pulse(2 * S);
        assert!(m.wants_peer_time(), "took a ±2 ms transfer");
        assert!(
            m.events()
                .any(|e| matches!(e.1, MasterEvent::PeerTimeTooWide { .. }))
        );
        // After ten wide rounds it would take the narrowest that fits max-epsilon (here ±2 ms of
        // a 1 ms max does not), so it is still waiting:
        for k in 0..12 {
            m.on_peer_time(S + k, wide);
        }
        m.on_atomic_pulse(2 * S + 1);
        assert!(m.wants_peer_time());
        let narrow = OffsetInterval::new(Span::from_micros(-100), Span::from_micros(100)).unwrap();
        m.on_peer_time(3 * S, narrow);
        m.on_atomic_pulse(4 * S);
        assert!(!m.wants_peer_time());
        let s = m.snapshot(4 * S);
        assert_eq!(s.status, ClockStatus::Synchronized, "{}", s.reason);
        assert!(s.components.peer_ns >= 100_000 && s.components.peer_ns < 200_000);
    }

    #[test]
    fn cross_check_evicts_after_three_rounds_and_returns() {
        let mut m = MasterCore::new(
            MasterParams {
                atomic: None,
                ..Default::default()
            },
            LeapTable::builtin(),
        );
        feed(&mut m, 0..10, 0);
        let raw = T0 + 10 * S - OFF;
        let own = m.own_offset(raw).unwrap();
        let far = OffsetInterval::new(
            own.lo.saturating_add(Span::from_millis(10)),
            own.hi.saturating_add(Span::from_millis(10)),
        )
        .unwrap();
        for round in 0..3 {
            let r = m.cross_check(raw, &[Some(far), Some(far)]);
            assert_eq!(
                r,
                CrossCheck::Decided {
                    agree: false,
                    peers: vec![true, true]
                }
            );
            assert_eq!(m.snapshot(raw).evicted, round == 2);
        }
        assert_eq!(m.snapshot(raw).status, ClockStatus::Unsynchronized);
        for _ in 0..3 {
            m.cross_check(raw, &[Some(own), Some(own)]);
        }
        assert!(!m.snapshot(raw).evicted);
        // One peer is not enough to decide.
        assert_eq!(m.cross_check(raw, &[Some(far), None]), CrossCheck::TooFew);
        // Everyone disagreeing with everyone (two liars, two ways): undecided, never an eviction.
        let far2 = OffsetInterval::new(
            own.lo.saturating_sub(Span::from_millis(20)),
            own.hi.saturating_sub(Span::from_millis(20)),
        )
        .unwrap();
        for _ in 0..5 {
            assert_eq!(
                m.cross_check(raw, &[Some(far), Some(far2), None]),
                CrossCheck::NoMajority
            );
        }
        assert!(!m.snapshot(raw).evicted);
    }
}
