//! ε and what is published: the budget's components, the model handed to the transfer and
//! the page, and the status with its reason.

use super::*;
use ttcore::RawReading;

impl MasterCore {
    pub(super) fn base_eps_at(&self, raw: i64) -> (f64, EpsilonComponents) {
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
                let (since, peer) = match self.peer_start {
                    PeerStart::Started { at, eps_ns } => (at, eps_ns),
                    PeerStart::Waiting(_) => (raw, 0.0),
                };
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

    pub(super) fn filter_eps(&self) -> f64 {
        self.kf
            .as_ref()
            .map_or(f64::INFINITY, |k| self.p.sigma_k * k.phase_sigma_ns())
    }

    /// The drift bound of the published model (per raw ns).
    pub(super) fn drift_rate(&self) -> Rate {
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
    pub fn total_eps_at(&self, raw: RawReading) -> f64 {
        self.total_eps_ns(raw.as_nanos())
    }

    /// [`MasterCore::total_eps_at`] inside the core, where readings are bare ns.
    pub(super) fn total_eps_ns(&self, raw: i64) -> f64 {
        match self.model() {
            Some(m) => m.epsilon_at(raw).as_nanos() as f64,
            None => f64::INFINITY,
        }
    }

    pub(super) fn model(&self) -> Option<ClockModel> {
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
    pub fn snapshot(&self, now_raw: RawReading) -> Snapshot {
        let now_raw = now_raw.as_nanos();
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
            evicted: matches!(self.standing, Standing::Evicted { .. }),
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
    pub(super) fn status_with_reason(
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
}
