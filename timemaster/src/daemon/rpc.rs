//! The gRPC service (`ttproto`'s `TimeMaster`): the full status, read from the core thread's
//! last publication and evaluated at the instant of the request.

use super::Shared;
use crate::core::outcome::MasterReason;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tonic::{Request, Response};
use ttcore::{RawReading, Span};
use ttproto::v1;
use ttsys::clock;

/// The gRPC service.
pub struct Service {
    shared: Arc<Shared>,
}

impl Service {
    /// A service answering from `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Service { shared }
    }

    /// The state it answers from.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The full status at the current instant.
    #[allow(
        clippy::too_many_lines,
        reason = "one struct literal: the status message, field by field."
    )]
    pub fn status_now(&self) -> v1::MasterStatus {
        let (raw_ns, rt, _) = clock::pair(clock::realtime_ns);
        let raw = RawReading::from_nanos(raw_ns);
        let p = self.shared.published.load();
        let c = p.snap.components;
        let (earliest, latest, eps, status, reason) = match &p.snap.model {
            Some(m) => {
                let i = m.interval_at(raw);
                let eps = m.epsilon_at(raw);
                let max = Span::from_nanos(self.shared.config.max_epsilon_ns);
                let (status, reason) =
                    MasterReason::at_epsilon(p.snap.status, p.snap.reason, eps, max);
                (
                    i.earliest().as_nanos(),
                    i.latest().as_nanos(),
                    eps.as_nanos(),
                    status,
                    reason,
                )
            }
            None => (0, 0, i64::MAX, p.snap.status, p.snap.reason),
        };
        let drift_ns = p.snap.model.as_ref().map_or(0, |m| {
            m.drift_bound
                .bound_over(m.age_at(raw).saturating_abs())
                .as_nanos()
        });
        let inputs = self
            .shared
            .inputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let peers = self
            .shared
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        v1::MasterStatus {
            id: self.shared.config.id.clone(),
            kind: ttproto::kind_to_wire(self.shared.config.kind) as i32,
            status: ttproto::status_to_wire(status) as i32,
            reason: reason.to_string(),
            reference: p.snap.reference.as_str().into(),
            epsilon_ns: eps,
            components: Some(v1::EpsilonComponents {
                pps_jitter_ns: c.pps_jitter_ns,
                qerr_ns: c.qerr_ns,
                calibration_ns: c.calibration_ns,
                filter_ns: c.filter_ns,
                drift_ns,
                holdover_ns: c.holdover_ns,
                peer_ns: c.peer_ns,
            }),
            holdover_s: p.snap.holdover_s,
            evicted: p.snap.evicted,
            freq_ppm: p.snap.freq_ppm,
            pulses_seen: p.counters.pulses_seen,
            pulses_rejected: p.counters.pulses_rejected,
            labels_rejected: p.counters.labels_rejected,
            atomic_locked: p.atomic_locked,
            inputs: inputs
                .iter()
                .map(|s| v1::InputStatus {
                    name: s.name.clone(),
                    source: s.source.clone(),
                    ok: s.ok,
                    detail: s.detail.clone(),
                    events: s.events,
                    errors: s.errors,
                    last_event_age_s: s.last_raw.map_or(-1.0, |r| (raw_ns - r) as f64 / 1e9),
                })
                .collect(),
            peers: peers
                .iter()
                .map(|s| v1::PeerStatus {
                    addr: s.addr.clone(),
                    id: s.id.clone(),
                    reachable: s.reachable,
                    agrees: s.agrees,
                    offset_ns: s.offset_ns,
                    delay_ns: s.delay_ns,
                    epsilon_ns: s.epsilon_ns,
                    status: s.status.map_or(0, |x| ttproto::status_to_wire(x) as i32),
                    error: s.error.clone(),
                    stamping: s.stamping.clone(),
                    auth: if self
                        .shared
                        .config
                        .peers
                        .iter()
                        .any(|p| p.addr == s.addr && p.nts_ke.is_some())
                    {
                        "nts".into()
                    } else {
                        "none".into()
                    },
                })
                .collect(),
            earliest_ns: earliest,
            latest_ns: latest,
            host_realtime_ns: rt,
            uptime_s: (raw_ns - self.shared.started_raw) as f64 / 1e9,
            events: p.events.clone(),
            transfer: Some(self.transfer_stats()),
        }
    }

    /// The time-transfer server's counters.
    pub fn transfer_stats(&self) -> v1::TransferStats {
        let t = &self.shared.transfer;
        let n = self.shared.nts.as_ref().map(|n| &*n.stats);
        let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        v1::TransferStats {
            listen: self.shared.config.ntp_addr().to_string(),
            stamping: t.stamping_str().into(),
            threads: self.shared.config.ntp_thread_count() as u32,
            received: g(&t.received),
            answered: g(&t.answered),
            interleaved: g(&t.interleaved),
            malformed: g(&t.malformed),
            downsized: g(&t.downsized),
            wrong_mode: g(&t.wrong_mode),
            kernel_rx: g(&t.kernel_rx),
            kernel_tx: g(&t.kernel_tx),
            send_errors: g(&t.send_errors),
            nts: n.is_some(),
            nts_authenticated: n.map_or(0, |n| g(&n.authenticated)),
            nts_refused: n.map_or(0, |n| g(&n.refused)),
            nts_ke_ok: n.map_or(0, |n| g(&n.ke_ok)),
            nts_ke_failed: n.map_or(0, |n| g(&n.ke_failed)),
            nts_ke_shed: n.map_or(0, |n| g(&n.ke_shed)),
            nts_rotations: n.map_or(0, |n| g(&n.rotations)),
            rate_limit_per_second: self.shared.config.rate_limit.per_second,
            rate_limit_burst: self.shared.config.rate_limit.burst,
            rate_kissed: g(&t.rate_kissed),
            rate_dropped: g(&t.rate_dropped),
        }
    }
}

#[tonic::async_trait]
impl v1::time_master_server::TimeMaster for Service {
    async fn status(
        &self,
        _req: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::MasterStatus>, tonic::Status> {
        Ok(Response::new(self.status_now()))
    }
}
