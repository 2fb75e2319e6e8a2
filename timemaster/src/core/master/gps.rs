//! GPS: NMEA labels paired with pulses, the start-up rule, the filter update and the
//! refusal of jumps.

use super::*;
use ttcore::RawReading;

impl MasterCore {
    /// A GPS pulse edge captured at local raw reading `edge_raw`.
    pub fn on_gps_pulse(&mut self, edge_raw: RawReading) {
        let edge_raw = edge_raw.as_nanos();
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

    pub(super) fn try_pair(&mut self) {
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
    pub fn tick(&mut self, now_raw: RawReading) {
        let now_raw = now_raw.as_nanos();
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

    pub(super) fn jitter_bound(&self) -> f64 {
        let floor = self.p.gps.map_or(0.0, |g| g.jitter_floor_ns);
        if self.innovations.len() < 8 {
            return floor.max(1_000.0);
        }
        let n = self.innovations.len() as f64;
        let rms = (self.innovations.iter().map(|x| x * x).sum::<f64>() / n).sqrt();
        let max = self.innovations.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        floor.max(self.p.sigma_k * rms).max(1.2 * max)
    }

    pub(super) fn gps_base_ns(&self) -> f64 {
        let g = self.p.gps.unwrap_or(GpsParams {
            cable_delay_ns: 0,
            calibration_error_ns: 0,
            qerr_ns: 0,
            jitter_floor_ns: 0.0,
        });
        (g.calibration_error_ns + g.qerr_ns) as f64 + self.jitter_bound()
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
            _ => self.total_eps_ns(edge_raw) + self.gps_base_ns() + self.p.sigma_k * sigma,
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
            if self.reference == Reference::Gps {
                self.enter_holdover(raw, HoldoverCause::GpsRefused);
            }
        }
    }

    pub(super) fn startup_pulse(&mut self, edge_raw: i64, label: Timestamp, z: i64, r: f64) {
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
    pub(super) fn smear_rate_at(&self, t: Timestamp) -> f64 {
        self.leap
            .smear_rate_at(t.as_nanos().div_euclid(NANOS_PER_SEC))
    }

    /// Known rate change of the timescale at a smear boundary: applied to the frequency state
    /// so the filter does not have to learn it.
    pub(super) fn apply_smear_rate(&mut self, label: Timestamp) {
        let rate = self.smear_rate_at(label);
        if rate != self.smear_rate {
            if let Some(kf) = self.kf.as_mut() {
                kf.shift_freq(rate - self.smear_rate);
            }
            self.smear_rate = rate;
        }
    }
}
