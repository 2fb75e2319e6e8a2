//! ε and what is published: the budget's components, the model handed to the transfer and
//! the page, and the status with its reason.

use super::*;
use ttcore::RawReading;

impl MasterCore {
    /// The reference's part of ε at `raw` (ns) and its components; infinite while acquiring.
    /// Each state carries its own terms: none is ever taken as zero for want of data.
    pub(super) fn base_eps_at(&self, raw: i64) -> (f64, EpsilonComponents) {
        let mut c = EpsilonComponents::default();
        let base = match &self.discipline {
            Discipline::Gps { gps: g, .. } => {
                c.calibration_ns = g.calibration_error_ns;
                c.qerr_ns = g.qerr_ns;
                c.pps_jitter_ns = self.jitter_bound(g).ceil() as i64;
                self.gps_base_ns(g)
            }
            Discipline::PeerTime {
                atomic, at, eps_ns, ..
            } => {
                let grown = atomic
                    .drift
                    .bound_over(Span::from_nanos((raw - at).max(0)))
                    .as_nanos() as f64;
                c.peer_ns = eps_ns.ceil() as i64;
                c.pps_jitter_ns = atomic.jitter_ns.ceil() as i64;
                c.holdover_ns = grown as i64;
                eps_ns + atomic.jitter_ns + grown
            }
            Discipline::Holdover { on, seg, .. } => {
                let h = seg.eps_at(raw);
                let j = match on {
                    HoldoverOn::Atomic(a) => a.jitter_ns,
                    HoldoverOn::Quartz => 0.0,
                };
                c.holdover_ns = h.ceil() as i64;
                c.pps_jitter_ns = j.ceil() as i64;
                h + j
            }
            Discipline::Acquiring(_) | Discipline::Disrupted(_) => f64::INFINITY,
        };
        (base, c)
    }

    /// The filter's phase uncertainty k·σ (ns); infinite without a filter.
    pub(super) fn filter_eps(&self) -> f64 {
        self.discipline
            .kf()
            .map_or(f64::INFINITY, |k| self.p.sigma_k * k.phase_sigma_ns())
    }

    /// The drift bound of the published model (per raw ns).
    pub(super) fn drift_rate(&self) -> Rate {
        let Some(kf) = self.discipline.kf() else {
            // No model, nothing published: there is no drift to bound.
            return Rate::ZERO;
        };
        let filt = Rate::bound_from_ppm_f64(self.p.sigma_k * kf.freq_sigma() * 1e6)
            .unwrap_or(Rate::from_ppm(1_000_000));
        let mut r = filt.saturating_add(self.p.local_wander);
        match &self.discipline {
            Discipline::Holdover {
                on: HoldoverOn::Quartz,
                ..
            } => r = r.saturating_add(self.p.quartz_holdover),
            Discipline::Holdover {
                on: HoldoverOn::Atomic(a),
                ..
            }
            | Discipline::PeerTime { atomic: a, .. } => r = r.saturating_add(a.drift),
            Discipline::Gps { .. } | Discipline::Acquiring(_) | Discipline::Disrupted(_) => {}
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
    pub fn total_eps_at(&self, raw: RawReading) -> f64 {
        self.total_eps_ns(raw.as_nanos())
    }

    /// [`MasterCore::total_eps_at`] inside the core, where readings are bare ns.
    pub(super) fn total_eps_ns(&self, raw: i64) -> f64 {
        match self.model() {
            Some(m) => m.epsilon_at(RawReading::from_nanos(raw)).as_nanos() as f64,
            None => f64::INFINITY,
        }
    }

    pub(super) fn model(&self) -> Option<ClockModel> {
        let kf = self.discipline.kf()?;
        let r = kf.ref_raw();
        let (base, _) = self.base_eps_at(r);
        let eps = base + self.filter_eps();
        if !eps.is_finite() {
            return None;
        }
        let (w, f) = kf.offset_at(r);
        Some(ClockModel {
            ref_raw: RawReading::from_nanos(r),
            ref_time: Timestamp::from_nanos(r + w + f.floor() as i64),
            freq: Rate::estimate_from_ppm_f64(kf.freq() * 1e6)?,
            // +1 for the floor above; ClockModel adds its own rounding guard for freq × age.
            eps_ref: Span::from_nanos(eps.ceil() as i64 + 1),
            drift_bound: self.drift_rate(),
        })
    }

    /// The published snapshot at raw reading `now_raw`.
    pub fn snapshot(&self, now: RawReading) -> Snapshot {
        let now_raw = now.as_nanos();
        let model = self.model();
        let r = self.discipline.kf().map_or(now_raw, |k| k.ref_raw());
        let (_, mut components) = self.base_eps_at(r);
        components.filter_ns = self.filter_eps().min(1e18).ceil() as i64;
        if let Some(m) = &model {
            components.drift_ns = m
                .drift_bound
                .bound_over(m.age_at(now).saturating_abs())
                .as_nanos();
        }
        let freq_ppm = self.discipline.kf().map_or(0.0, |k| k.freq() * 1e6);
        let holdover_s = match &self.discipline {
            Discipline::Holdover { seg, .. } => (now_raw - seg.since_raw) as f64 / 1e9,
            _ => 0.0,
        };
        let eps_now = model.as_ref().map(|m| m.epsilon_at(now));
        let (status, reason) = self.status_with_reason(model.is_some(), eps_now, freq_ppm);
        Snapshot {
            model,
            status,
            reason,
            reference: self.discipline.reference(),
            components,
            holdover_s,
            evicted: matches!(self.standing, Standing::Evicted { .. }),
            freq_ppm,
            tai_minus_utc: self.tai_minus_utc,
            next_leap: self
                .estimate(now_raw)
                .and_then(|t| self.leap.next_leap(Timestamp::from_nanos(t))),
        }
    }

    /// The status decision, in order: disrupted, no model, evicted, frequency out of bounds,
    /// ε beyond max-epsilon ([`ClockStatus::within`]), then by reference.
    pub(super) fn status_with_reason(
        &self,
        has_model: bool,
        eps_now: Option<Span>,
        freq_ppm: f64,
    ) -> (ClockStatus, MasterReason) {
        use MasterReason as R;
        if let Discipline::Disrupted(_) = self.discipline {
            return (ClockStatus::Disrupted, R::Disrupted);
        }
        if !has_model {
            let started = self
                .discipline
                .acquisition()
                .is_some_and(|a| !a.startup.is_empty());
            let why = match self.p.kind {
                MasterKind::Gps if started => R::AcquiringGps,
                MasterKind::Gps => R::WaitingForGps,
                MasterKind::Armageddon if self.peer_offer().is_none() => R::WaitingForPeers,
                MasterKind::Armageddon => R::WaitingForAtomicPulse,
            };
            return (ClockStatus::Unsynchronized, why);
        }
        if let Standing::Evicted { why, .. } = self.standing {
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
        let (status, reason) = match &self.discipline {
            Discipline::Gps { .. } => (ClockStatus::Synchronized, R::Gps),
            Discipline::PeerTime { .. } => (ClockStatus::Synchronized, R::AtomicFromPeers),
            d @ Discipline::Holdover { .. } => (ClockStatus::Holdover, R::Holdover(d.reference())),
            // A model without a reference cannot happen (acquiring has no filter); should it,
            // nothing is promised.
            Discipline::Acquiring(_) | Discipline::Disrupted(_) => {
                return (ClockStatus::Unsynchronized, R::WaitingForGps);
            }
        };
        // With a model there is an ε; without one (unreachable here) nothing is promised.
        let Some(eps) = eps_now else {
            return (ClockStatus::Unsynchronized, reason);
        };
        R::at_epsilon(status, reason, eps, self.p.max_epsilon)
    }
}
