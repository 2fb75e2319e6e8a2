//! The master's OpenMetrics text (`GET /metrics` on `metrics-listen`, served by
//! [`ttsys::metrics`]), from the same status the gRPC service answers with.

use super::rpc::Service;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use ttcore::ClockStatus;
use ttproto::v1;
use ttsys::metrics::Escaped;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Id {
    id: Escaped,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IdStatus {
    id: Escaped,
    status: Escaped,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IdAuth {
    id: Escaped,
    auth: Escaped,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IdPeer {
    id: Escaped,
    peer: Escaped,
}

/// The OpenMetrics text for `s`: status as a one-hot gauge per status, ε and its companions as
/// gauges, the pulse and label counts as counters, and one `peer_agrees` gauge per peer.
#[allow(
    clippy::too_many_lines,
    reason = "one Prometheus family after another, in the exposition order; a list, not logic"
)]
pub fn metrics_text(s: &v1::MasterStatus) -> String {
    let id = || Id {
        id: Escaped(s.id.clone()),
    };
    let mut reg = Registry::default();
    let status = ttproto::status_from_wire(s.status);
    let statuses = Family::<IdStatus, Gauge>::default();
    for st in [
        ClockStatus::Synchronized,
        ClockStatus::Holdover,
        ClockStatus::Unsynchronized,
        ClockStatus::Disrupted,
    ] {
        let labels = IdStatus {
            id: Escaped(s.id.clone()),
            status: Escaped(st.to_string()),
        };
        statuses.get_or_create(&labels).set(i64::from(st == status));
    }
    reg.register("timemaster_status", "1 for the current status", statuses);
    let gauges: [(&str, &str, f64); 5] = [
        (
            "epsilon_ns",
            "Current error bound in nanoseconds",
            s.epsilon_ns as f64,
        ),
        ("holdover_seconds", "Seconds in holdover", s.holdover_s),
        (
            "frequency_ppm",
            "Estimated frequency of the timescale against the raw clock",
            s.freq_ppm,
        ),
        (
            "evicted",
            "1 when evicted by the peer cross-check",
            f64::from(u8::from(s.evicted)),
        ),
        (
            "atomic_locked",
            "1 when the atomic clock is locked",
            f64::from(u8::from(s.atomic_locked)),
        ),
    ];
    for (name, help, v) in gauges {
        let g = Family::<Id, Gauge<f64, AtomicU64>>::default();
        g.get_or_create(&id()).set(v);
        reg.register(format!("timemaster_{name}"), help, g);
    }
    let counters = [
        ("pulses_seen", "GPS pulses received", s.pulses_seen),
        ("pulses_rejected", "GPS pulses rejected", s.pulses_rejected),
        ("labels_rejected", "NMEA labels rejected", s.labels_rejected),
    ];
    for (name, help, v) in counters {
        let c = Family::<Id, Counter>::default();
        c.get_or_create(&id()).inc_by(v);
        reg.register(format!("timemaster_{name}"), help, c);
    }
    if let Some(t) = &s.transfer {
        // Time replies by authentication: NTS-protected, NAKs, and plain (unauthenticated).
        let replies = Family::<IdAuth, Counter>::default();
        let plain = t
            .answered
            .saturating_sub(t.nts_authenticated)
            .saturating_sub(t.nts_refused);
        for (auth, v) in [
            ("nts", t.nts_authenticated),
            ("nts-nak", t.nts_refused),
            ("none", plain),
        ] {
            let labels = IdAuth {
                id: Escaped(s.id.clone()),
                auth: Escaped(auth.into()),
            };
            replies.get_or_create(&labels).inc_by(v);
        }
        reg.register(
            "timemaster_time_replies",
            "Time replies sent, by authentication (nts, nts-nak, none = unauthenticated)",
            replies,
        );
        let nts = [
            (
                "nts_ke_ok",
                "NTS-KE sessions that handed out cookies",
                t.nts_ke_ok,
            ),
            (
                "nts_ke_failed",
                "NTS-KE sessions that failed",
                t.nts_ke_failed,
            ),
            (
                "nts_ke_shed",
                "NTS-KE connections closed at once (too many)",
                t.nts_ke_shed,
            ),
            (
                "nts_key_rotations",
                "NTS master key rotations",
                t.nts_rotations,
            ),
            (
                "time_requests_malformed",
                "Time requests dropped as malformed",
                t.malformed,
            ),
            (
                "time_requests_rate_kissed",
                "Time requests over their client's rate limit, answered with a RATE kiss",
                t.rate_kissed,
            ),
            (
                "time_requests_rate_dropped",
                "Time requests over their client's rate limit, dropped",
                t.rate_dropped,
            ),
        ];
        for (name, help, v) in nts {
            let c = Family::<Id, Counter>::default();
            c.get_or_create(&id()).inc_by(v);
            reg.register(format!("timemaster_{name}"), help, c);
        }
        let on = Family::<Id, Gauge>::default();
        on.get_or_create(&id()).set(i64::from(t.nts));
        reg.register("timemaster_nts_enabled", "1 when NTS is configured", on);
    }
    let agrees = Family::<IdPeer, Gauge>::default();
    for p in &s.peers {
        let labels = IdPeer {
            id: Escaped(s.id.clone()),
            peer: Escaped(p.addr.clone()),
        };
        agrees.get_or_create(&labels).set(i64::from(p.agrees));
    }
    reg.register(
        "timemaster_peer_agrees",
        "1 when the peer is in the agreeing set",
        agrees,
    );
    ttsys::metrics::encode(&reg)
}

/// What a scrape of this master answers.
pub fn render(svc: Arc<Service>) -> ttsys::metrics::Render {
    Arc::new(move || metrics_text(&svc.status_now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_openmetrics_with_escaped_labels() {
        let s = v1::MasterStatus {
            id: "m\"1\\\n".into(),
            status: ttproto::status_to_wire(ClockStatus::Holdover) as i32,
            epsilon_ns: 1500,
            pulses_seen: 7,
            peers: vec![v1::PeerStatus {
                addr: "10.0.0.2:123".into(),
                agrees: true,
                ..Default::default()
            }],
            ..Default::default()
        };
        let t = metrics_text(&s);
        let id = r#"id="m\"1\\\n""#;
        assert!(
            t.contains(&format!("timemaster_status{{{id},status=\"holdover\"}} 1")),
            "{t}"
        );
        assert!(t.contains(&format!(
            "timemaster_status{{{id},status=\"synchronized\"}} 0"
        )));
        assert!(
            t.contains(&format!("timemaster_epsilon_ns{{{id}}} 1500")),
            "{t}"
        );
        assert!(
            t.contains(&format!("timemaster_pulses_seen_total{{{id}}} 7")),
            "{t}"
        );
        assert!(t.contains("# TYPE timemaster_pulses_seen counter"), "{t}");
        assert!(t.contains(&format!(
            "timemaster_peer_agrees{{{id},peer=\"10.0.0.2:123\"}} 1"
        )));
        assert!(t.ends_with("# EOF\n"));
        // Every sample line has balanced quotes once escapes are removed.
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let unescaped = line.replace("\\\\", "").replace("\\\"", "");
            assert_eq!(unescaped.matches('"').count() % 2, 0, "{line}");
        }
    }
}
