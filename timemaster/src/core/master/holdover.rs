//! Holdover (on the atomic clock or quartz) and the atomic clock's inputs: lock line,
//! telemetry, and its pulse (calibrated against GPS, or disciplining in holdover).

use super::*;
use ttcore::RawReading;

impl MasterCore {
    pub(super) fn atomic_calibrated(&self) -> bool {
        self.atomic_phase.len() >= 4
    }

    /// Gps → Holdover: on the atomic clock when it is locked and calibrated against GPS, else on
    /// quartz; ε starts from the total at the last accepted pulse (on the atomic clock, at least
    /// the calibration's).
    pub(super) fn enter_holdover(&mut self, now_raw: i64, cause: HoldoverCause) {
        let since = self.last_accept_raw.unwrap_or(now_raw);
        let eps = self.total_eps_ns(since);
        let (on, rate) = match self.p.atomic {
            Some(a) if self.atomic_locked() && self.atomic_calibrated() => {
                (HoldoverOn::Atomic(a), a.drift)
            }
            _ => (HoldoverOn::Quartz, self.p.quartz_holdover),
        };
        let eps = match on {
            HoldoverOn::Atomic(_) => eps.max(self.atomic_cal_eps_ns),
            HoldoverOn::Quartz => eps,
        };
        let Discipline::Gps { kf, .. } = &self.discipline else {
            return;
        };
        self.discipline = Discipline::Holdover {
            kf: kf.clone(),
            on,
            seg: Holdover {
                since_raw: since,
                seg_eps_ns: eps,
                seg_raw: since,
                rate,
            },
        };
        let reference = self.discipline.reference();
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

    /// Holdover on the atomic clock → on quartz: ε grows at the quartz bound from now on.
    pub(super) fn fall_back_to_quartz(&mut self, now_raw: i64, cause: HoldoverCause) {
        let q = self.p.quartz_holdover;
        let Discipline::Holdover { on, seg, .. } = &mut self.discipline else {
            return;
        };
        seg.switch_rate(now_raw, q);
        *on = HoldoverOn::Quartz;
        self.event(now_raw, MasterEvent::HoldoverOnQuartz(cause));
    }

    // ----- atomic clock ----------------------------------------------------------------------

    /// The atomic clock's lock line changed (or was read) at `raw`.
    pub fn on_atomic_lock(&mut self, locked: bool, raw: RawReading) {
        let raw = raw.as_nanos();
        if locked != self.atomic_locked {
            self.event(raw, MasterEvent::AtomicLockLine(locked));
            if !locked {
                self.atomic_phase.clear();
            }
        }
        self.atomic_locked = locked;
    }

    /// The atomic clock's telemetry reports (status code, alarm bits) at `raw`.
    pub fn on_atomic_telemetry(&mut self, status: u8, alarm: u16, raw: RawReading) {
        let raw = raw.as_nanos();
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
    pub fn on_atomic_pulse(&mut self, edge_raw: RawReading) {
        let edge_raw = edge_raw.as_nanos();
        let Some(a) = self.p.atomic else { return };
        self.counters.atomic_pulses += 1;
        if !self.atomic_locked() {
            return;
        }
        match &self.discipline {
            Discipline::Gps { .. } => {
                // Calibrate the atomic clock's phase (in TAI: it ticks SI seconds) against GPS
                // time.
                if let Some(phase) = self.estimate(edge_raw).and_then(|t| self.tai_phase(t)) {
                    self.atomic_phase.push_back(phase);
                    while self.atomic_phase.len() > ATOMIC_CAL_WINDOW {
                        self.atomic_phase.pop_front();
                    }
                    self.atomic_cal_eps_ns = self.total_eps_ns(edge_raw) + a.jitter_ns;
                }
            }
            Discipline::Holdover {
                on: HoldoverOn::Atomic(_),
                ..
            }
            | Discipline::PeerTime { .. } => {
                let phi = self.atomic_phase_cal();
                let Some(est) = self.estimate(edge_raw) else {
                    return;
                };
                // The pulse is the TAI second nearest the estimate, at the calibrated phase,
                // mapped onto the timescale (inside a leap smear, timescale seconds are longer
                // or shorter than the SI seconds the atomic clock ticks).
                let Ok(est_tai) = self.leap.timescale_to_tai_ns(Timestamp::from_nanos(est)) else {
                    return;
                };
                let k = ((est_tai as f64 - phi) / 1e9).round() as i64;
                let Ok(target) = self
                    .leap
                    .tai_to_timescale(k * NANOS_PER_SEC + phi.round() as i64)
                else {
                    return;
                };
                // The smear's known rate goes into the filter's frequency, as for GPS pulses.
                self.apply_smear_rate(Timestamp::from_nanos(est));
                let z = target.as_nanos() - edge_raw;
                let r = a.jitter_ns.max(1.0).powi(2);
                let gate = (self.p.sigma_k
                    * self
                        .discipline
                        .kf()
                        .map_or(1e9, |kf| kf.innovation(edge_raw, z, r).1))
                .max(1_000.0);
                if let Some(kf) = self.discipline.kf_mut() {
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
            Discipline::Acquiring(_) | Discipline::Disrupted(_)
                if self.p.kind == MasterKind::Armageddon =>
            {
                self.armageddon_start(edge_raw, a)
            }
            Discipline::Acquiring(_)
            | Discipline::Disrupted(_)
            | Discipline::Holdover {
                on: HoldoverOn::Quartz,
                ..
            } => {}
        }
    }

    /// The phase (ns, within ±½ s) of a timescale instant in TAI.
    pub(super) fn tai_phase(&self, t: i64) -> Option<f64> {
        self.leap
            .timescale_to_tai_ns(Timestamp::from_nanos(t))
            .ok()
            .map(signed_mod_second)
    }

    pub(super) fn atomic_phase_cal(&self) -> f64 {
        if self.atomic_phase.is_empty() {
            return 0.0;
        }
        self.atomic_phase.iter().sum::<f64>() / self.atomic_phase.len() as f64
    }
}
