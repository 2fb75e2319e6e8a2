//! GPS: NMEA labels paired with pulses, the start-up rule, the filter update and the
//! refusal of jumps.

use super::*;
use ttcore::{RAW_CLOCK_MAX_RATE, RawReading};

/// Unpaired pulses kept waiting for their label; older ones are dropped as rejected.
const PENDING_PULSES: usize = 4;
/// NMEA labels kept waiting for their pulse.
const PENDING_LABELS: usize = 8;
/// A label belongs to the pulse it follows by at least this much (ns): receivers send the
/// sentences for a second after its pulse…
const LABEL_AFTER_PULSE_MIN_NS: i64 = 50_000_000;
/// …and before the next one (ns).
const LABEL_AFTER_PULSE_MAX_NS: i64 = 990_000_000;
/// A pulse without a label this long (ns) is numbered by the model, or dropped.
const UNLABELLED_AFTER_NS: i64 = NANOS_PER_SEC;
/// The model numbers an unlabelled pulse only within this long (ns) of the last accepted one.
const NUMBERING_FRESH_NS: i64 = 3 * NANOS_PER_SEC;
/// Labels older than this (ns) are dropped.
const LABEL_MAX_AGE_NS: i64 = 2 * NANOS_PER_SEC;
/// Filter innovations needed before the jitter bound is measured rather than assumed.
const JITTER_MIN_SAMPLES: usize = 8;
/// The pulse jitter bound assumed until then (ns).
const JITTER_ASSUMED_NS: f64 = 1_000.0;
/// The jitter bound covers the largest innovation seen, with this margin.
const JITTER_MAX_MARGIN: f64 = 1.2;
/// The smallest pulse noise the filter is told of (ns, one σ).
const PULSE_SIGMA_MIN_NS: f64 = 5.0;
/// The narrowest gate a locked pulse must fall in (ns), however small σ gets.
const GATE_MIN_NS: f64 = 2_000.0;
/// Start-up pulses step with the local clock within [`RAW_CLOCK_MAX_RATE`] plus this (ns).
const STARTUP_SLACK_NS: i64 = 1_000_000;
/// Start-up pulses needed before the first model.
const STARTUP_PULSES: usize = 3;

impl MasterCore {
    /// A GPS pulse edge captured at local raw reading `edge_raw`.
    pub fn on_gps_pulse(&mut self, edge_raw: RawReading) {
        let edge_raw = edge_raw.as_nanos();
        if self.p.gps.is_none() {
            return;
        }
        self.counters.pulses_seen += 1;
        self.pending_pulses.push_back(edge_raw);
        while self.pending_pulses.len() > PENDING_PULSES {
            self.pending_pulses.pop_front();
            self.counters.pulses_rejected += 1;
        }
        self.try_pair();
    }

    /// One NMEA line received at local raw reading `receipt_raw`. A refusal is counted here
    /// and returned for the caller to show; the core goes on either way.
    pub fn on_nmea_line(&mut self, line: &str, receipt_raw: RawReading) -> Result<(), NmeaRefusal> {
        let receipt_raw = receipt_raw.as_nanos();
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
                        while self.labels.len() > PENDING_LABELS {
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

    pub(super) fn try_pair(&mut self) {
        let mut i = 0;
        while i < self.pending_pulses.len() {
            let p = self.pending_pulses[i];
            let matches: Vec<Timestamp> = self
                .labels
                .iter()
                .filter(|(r, _)| {
                    *r - p >= LABEL_AFTER_PULSE_MIN_NS && *r - p <= LABEL_AFTER_PULSE_MAX_NS
                })
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
    pub fn tick(&mut self, now_raw: RawReading) {
        let now_raw = now_raw.as_nanos();
        while let Some(&p) = self.pending_pulses.front() {
            if now_raw - p <= UNLABELLED_AFTER_NS {
                break;
            }
            self.pending_pulses.pop_front();
            // No label arrived: number the pulse by our own model when that is unambiguous.
            let fresh = self
                .last_accept_raw
                .is_some_and(|a| p - a < NUMBERING_FRESH_NS);
            match (&self.discipline, self.estimate(p)) {
                (Discipline::Gps { gps: g, .. }, Some(est)) if fresh => {
                    let sec =
                        (est - g.cable_delay_ns + NANOS_PER_SEC / 2).div_euclid(NANOS_PER_SEC);
                    self.gps_labelled(p, Timestamp::from_nanos(sec * NANOS_PER_SEC), false);
                }
                _ => self.counters.pulses_rejected += 1,
            }
        }
        self.labels.retain(|(r, _)| now_raw - r < LABEL_MAX_AGE_NS);
        // Loss of the primary reference.
        if let Some(last) = self.last_accept_raw
            && matches!(self.discipline, Discipline::Gps { .. })
            && now_raw - last > self.p.loss_timeout.as_nanos()
        {
            self.enter_holdover(now_raw, HoldoverCause::NoGpsPulses);
        }
        if let Discipline::Holdover {
            on: HoldoverOn::Atomic(_),
            ..
        } = self.discipline
            && self.p.kind == MasterKind::Gps
            && !self.atomic_locked()
        {
            self.fall_back_to_quartz(now_raw, HoldoverCause::AtomicUnlocked);
        }
    }

    /// The GPS pulse jitter bound (ns): the receiver's floor, raised by what the filter's
    /// innovations show (k·rms, 1.2 × the largest); 1 µs until there are enough of them.
    pub(super) fn jitter_bound(&self, g: &GpsParams) -> f64 {
        let floor = g.jitter_floor_ns;
        if self.innovations.len() < JITTER_MIN_SAMPLES {
            return floor.max(JITTER_ASSUMED_NS);
        }
        let n = self.innovations.len() as f64;
        let rms = (self.innovations.iter().map(|x| x * x).sum::<f64>() / n).sqrt();
        let max = self.innovations.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        floor.max(self.p.sigma_k * rms).max(JITTER_MAX_MARGIN * max)
    }

    /// GPS's part of ε (ns): calibration + qErr + the pulse jitter bound.
    pub(super) fn gps_base_ns(&self, g: &GpsParams) -> f64 {
        (g.calibration_error_ns + g.qerr_ns) as f64 + self.jitter_bound(g)
    }

    pub(super) fn gps_labelled(&mut self, edge_raw: i64, label: Timestamp, labelled: bool) {
        let Some(g) = self.p.gps else { return };
        if label < self.p.earliest_valid {
            self.counters.labels_rejected += 1;
            self.counters.pulses_rejected += 1;
            self.event(edge_raw, MasterEvent::LabelBeforeEarliestValid(label));
            return;
        }
        let z = label.as_nanos() + g.cable_delay_ns - edge_raw;
        let r = (g.jitter_floor_ns.max(PULSE_SIGMA_MIN_NS)).powi(2) + (g.qerr_ns as f64).powi(2);
        if self.discipline.kf().is_none() {
            self.startup_pulse(edge_raw, label, g, r);
            return;
        }
        self.apply_smear_rate(label);
        let Some(est) = self.estimate(edge_raw) else {
            return;
        };
        if labelled && (label.as_nanos() + g.cable_delay_ns - est).abs() > NANOS_PER_SEC / 2 {
            self.counters.labels_rejected += 1;
            self.gps_reject(
                edge_raw,
                (label.as_nanos() + g.cable_delay_ns - est) as f64,
                "label",
            );
            return;
        }
        let kf = self.discipline.kf().map(|k| k.innovation(edge_raw, z, r));
        let sigma = kf.map_or(1e9, |x| x.1);
        let gate = match self.discipline {
            Discipline::Gps { .. } => (self.p.sigma_k * sigma)
                .max(GATE_MIN_NS)
                .max(2.0 * self.jitter_bound(&g)),
            // Re-acquisition: the pulse must fall inside what we can vouch for now.
            _ => self.total_eps_ns(edge_raw) + self.gps_base_ns(&g) + self.p.sigma_k * sigma,
        };
        let Some(kf) = self.discipline.kf_mut() else {
            return;
        };
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
                // Holdover → Gps (the only other state with a filter that GPS pulses reach).
                let held_since = match &self.discipline {
                    Discipline::Holdover { seg, .. } => Some(seg.since_raw),
                    _ => None,
                };
                if let Some(since) = held_since
                    && let Some(kf) = self.discipline.kf().cloned()
                {
                    self.discipline = Discipline::Gps { kf, gps: g };
                    self.event(
                        edge_raw,
                        MasterEvent::GpsReacquired {
                            held_s: (edge_raw - since) as f64 / 1e9,
                            innovation_ns: y,
                        },
                    );
                }
            }
            Update::Rejected(y) => self.gps_reject(edge_raw, y, "phase"),
        }
    }

    pub(super) fn gps_reject(&mut self, raw: i64, y: f64, what: &'static str) {
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
            if let Discipline::Gps { .. } = self.discipline {
                self.enter_holdover(raw, HoldoverCause::GpsRefused);
            }
        }
    }

    /// A labelled pulse while acquiring: three consecutive pulses whose labels step by whole
    /// seconds in step with the local clock (within 1000 ppm) start the model, so a single bad
    /// label cannot. Acquiring/Disrupted → Gps.
    pub(super) fn startup_pulse(&mut self, edge_raw: i64, label: Timestamp, g: GpsParams, r: f64) {
        let Some(acq) = self.discipline.acquisition_mut() else {
            return;
        };
        let startup = &mut acq.startup;
        if let Some(&(prev_raw, prev_label)) = startup.last() {
            let d_raw = edge_raw - prev_raw;
            let d_label = label.as_nanos() - prev_label.as_nanos();
            let tolerance = RAW_CLOCK_MAX_RATE
                .bound_over(Span::from_nanos(d_raw.max(0)))
                .as_nanos()
                + STARTUP_SLACK_NS;
            if d_label <= 0 || (d_label - d_raw).abs() > tolerance {
                startup.clear();
            }
        }
        startup.push((edge_raw, label));
        if startup.len() < STARTUP_PULSES {
            return;
        }
        let (r0, l0) = startup[0];
        let mut kf = Kalman::new(self.p.kalman, r0, l0.as_nanos() + g.cable_delay_ns - r0, r);
        for &(ri, li) in &startup[1..] {
            kf.update(ri, li.as_nanos() + g.cable_delay_ns - ri, r, f64::INFINITY);
        }
        let was_disrupted = matches!(self.discipline, Discipline::Disrupted(_));
        self.discipline = Discipline::Gps { kf, gps: g };
        self.last_accept_raw = Some(edge_raw);
        self.smear_rate = self.smear_rate_at(label);
        self.event(edge_raw, MasterEvent::GpsLocked(label));
        // The lock is the re-acquisition that ends a disruption: the model is as good as one
        // from a cold start, which is served as soon as it locks.
        if was_disrupted {
            self.event(edge_raw, MasterEvent::Resynchronized);
        }
    }

    /// The timescale's rate against SI inside a smear window (dimensionless), else 0.
    pub(super) fn smear_rate_at(&self, t: Timestamp) -> f64 {
        self.leap
            .smear_rate_at(t.as_nanos().div_euclid(NANOS_PER_SEC))
    }

    /// Known rate change of the timescale at a smear boundary: applied to the frequency state
    /// so the filter does not have to learn it.
    pub(super) fn apply_smear_rate(&mut self, label: Timestamp) {
        let rate = self.smear_rate_at(label);
        if rate != self.smear_rate {
            if let Some(kf) = self.discipline.kf_mut() {
                kf.shift_freq(rate - self.smear_rate);
            }
            self.smear_rate = rate;
        }
    }
}
