//! timed's OpenMetrics text (`GET /metrics` on `metrics-listen`, served by
//! [`ttsys::metrics`]), from the same status `ttctl status` shows: the status as a one-hot
//! gauge, ε and its parts, the frequency, sync and disruption counts, and per source its
//! reachability, selection, offset, round trip, bound and stated error.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use ttcore::ClockStatus;
use ttproto::v1;
use ttsys::metrics::Escaped;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Status {
    status: Escaped,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Source {
    source: Escaped,
    kind: Escaped,
    auth: Escaped,
}

/// A per-source value out of the status.
type PerSource = fn(&v1::MasterSource) -> f64;

/// One unlabelled gauge.
fn gauge(reg: &mut Registry, name: &str, help: &str, v: f64) {
    let g = Gauge::<f64, AtomicU64>::default();
    g.set(v);
    reg.register(name, help, g);
}

/// The OpenMetrics text for `s`.
#[allow(
    clippy::too_many_lines,
    reason = "one Prometheus family after another, in the exposition order; a list, not logic"
)]
pub fn metrics_text(s: &v1::DaemonStatus) -> String {
    let mut reg = Registry::default();
    let status = ttproto::status_from_wire(s.status);
    let statuses = Family::<Status, Gauge>::default();
    for st in [
        ClockStatus::Synchronized,
        ClockStatus::Holdover,
        ClockStatus::Unsynchronized,
        ClockStatus::Disrupted,
    ] {
        let l = Status {
            status: Escaped(st.to_string()),
        };
        statuses.get_or_create(&l).set(i64::from(st == status));
    }
    reg.register("timed_status", "1 for the page's current status", statuses);
    let gauges: [(&str, &str, f64); 6] = [
        (
            "timed_epsilon_ns",
            "Current half-width of TT.now() in nanoseconds",
            s.epsilon_ns as f64,
        ),
        (
            "timed_epsilon_at_sync_ns",
            "Half-width at the last sync, before the drift term grows it",
            s.epsilon_sync_ns as f64,
        ),
        (
            "timed_frequency_ppm",
            "Measured frequency of the timescale against the raw clock",
            s.freq_ppm,
        ),
        (
            "timed_frequency_bound_ppm",
            "Bound on the frequency estimate's error",
            s.freq_bound_ppm,
        ),
        (
            "timed_last_sync_age_seconds",
            "Seconds since the last successful round (-1: none yet)",
            s.last_sync_age_s,
        ),
        (
            "timed_sources_configured",
            "Sources in the selection (masters, NTP servers, PHCs)",
            s.masters.len() as f64,
        ),
    ];
    for (name, help, v) in gauges {
        gauge(&mut reg, name, help, v);
    }
    for (name, help, v) in [
        ("timed_syncs", "Successful rounds", s.syncs),
        (
            "timed_disruptions",
            "Host clock disruptions seen (suspend, step, VM pause)",
            s.disruptions,
        ),
    ] {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        reg.register(name, help, c);
    }
    let per_source: [(&str, &str, PerSource); 6] = [
        (
            "timed_source_reachable",
            "1 when the source answered its last poll",
            |m| f64::from(u8::from(m.reachable)),
        ),
        (
            "timed_source_selected",
            "1 when the source is in the agreeing set",
            |m| f64::from(u8::from(m.selected)),
        ),
        (
            "timed_source_offset_ns",
            "The source's offset from timed's estimate",
            |m| m.offset_ns as f64,
        ),
        (
            "timed_source_round_trip_ns",
            "Round trip of its best exchange in the last poll",
            |m| m.delay_ns as f64,
        ),
        (
            "timed_source_radius_ns",
            "Half-width of its best sample: its contribution to the selection",
            |m| m.radius_ns as f64,
        ),
        (
            "timed_source_epsilon_ns",
            "The error the source states (a master's ε, an NTP server's root distance, a PHC's bound)",
            |m| m.epsilon_ns as f64,
        ),
    ];
    for (name, help, f) in per_source {
        let fam = Family::<Source, Gauge<f64, AtomicU64>>::default();
        for m in &s.masters {
            let l = Source {
                source: Escaped(m.addr.clone()),
                kind: Escaped(if m.kind.is_empty() {
                    "master".into()
                } else {
                    m.kind.clone()
                }),
                auth: Escaped(m.auth.clone()),
            };
            fam.get_or_create(&l).set(f(m));
        }
        reg.register(name, help, fam);
    }
    ttsys::metrics::encode(&reg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_reads_as_openmetrics() {
        let s = v1::DaemonStatus {
            status: ttproto::status_to_wire(ClockStatus::Synchronized) as i32,
            epsilon_ns: 8_300,
            syncs: 12,
            masters: vec![v1::MasterSource {
                addr: "10.0.0.1:123".into(),
                kind: "ntp".into(),
                auth: "nts".into(),
                selected: true,
                reachable: true,
                delay_ns: 600,
                ..Default::default()
            }],
            ..Default::default()
        };
        let t = metrics_text(&s);
        assert!(t.contains("timed_status{status=\"synchronized\"} 1"), "{t}");
        assert!(t.contains("timed_status{status=\"holdover\"} 0"), "{t}");
        assert!(t.contains("timed_epsilon_ns 8300.0"), "{t}");
        assert!(t.contains("timed_syncs_total 12"), "{t}");
        let l = r#"{source="10.0.0.1:123",kind="ntp",auth="nts"}"#;
        assert!(t.contains(&format!("timed_source_selected{l} 1.0")), "{t}");
        assert!(
            t.contains(&format!("timed_source_round_trip_ns{l} 600.0")),
            "{t}"
        );
        assert!(t.ends_with("# EOF\n"));
    }
}
