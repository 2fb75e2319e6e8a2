//! The master in virtual time against firmware-sim's devices: lock, a one-hour GPS outage on
//! the atomic clock, and a spoofed time jump — with truth checked at every sample.

use firmware_sim::scenario::Scenario;
use timemaster::core::master::{MasterParams, Reference};
use timemaster::core::outcome::MasterEvent;
use timemaster::sim::VirtualMaster;
use ttcore::osc::OscillatorParams;
use ttcore::{ClockStatus, NANOS_PER_SEC, Rate, Span};

const S: i64 = NANOS_PER_SEC;
const START: i64 = (1_790_000_000 + 37) * S;

fn local_quartz() -> OscillatorParams {
    OscillatorParams {
        freq_offset_ppm: 23.0,
        wander_ppm_per_sqrt_s: 0.0005,
        periodic_amplitude_ppm: 0.05,
        periodic_period_s: 3600.0,
        ..Default::default()
    }
}

struct Stats {
    samples: u64,
    violations: Vec<String>,
}

/// Samples the master every `step` from `from` to `to` (TAI), checking truth inside.
fn run(
    m: &mut VirtualMaster,
    from: i64,
    to: i64,
    step: i64,
    stats: &mut Stats,
    mut each: impl FnMut(i64, &timemaster::core::master::Snapshot, Span),
) {
    let mut t = from;
    while t <= to {
        // Sample off the event grid (337 ms into the step) so reads fall between pulses.
        let at = t + 337_000_000;
        let (snap, raw, truth) = m.observe(at);
        if snap.status.is_trustworthy() {
            let model = snap.model.as_ref().expect("trustworthy without a model");
            let i = model.interval_at(ttcore::RawReading::from_nanos(raw));
            stats.samples += 1;
            if !i.contains(truth) && stats.violations.len() < 5 {
                stats.violations.push(format!(
                    "t+{}s {:?} {i} truth {truth} ({})",
                    (at - START) / S,
                    snap.status,
                    snap.reason
                ));
            }
            each(at, &snap, i.epsilon());
        } else {
            each(at, &snap, Span::MAX);
        }
        t += step;
    }
}

#[test]
fn lock_then_one_hour_gps_outage_on_the_atomic_clock() {
    let sc = Scenario::from_toml(
        r#"
seed = 11
[gps]
cold-start-s = 3
[[fault]]
kind = "antenna-loss"
at-s = 300.0
duration-s = 3900.0
"#,
        "t",
    )
    .unwrap();
    let params = MasterParams::default();
    let drift = params.atomic.unwrap().drift;
    let mut m = VirtualMaster::new(params, sc, local_quartz(), 5, START);
    let mut stats = Stats {
        samples: 0,
        violations: Vec::new(),
    };
    // Lock within 10 s of the first pulse (pulses start after the 3 s cold start).
    let mut locked_at = None;
    run(&mut m, START, START + 20 * S, S, &mut stats, |t, s, _| {
        if s.status == ClockStatus::Synchronized && locked_at.is_none() {
            locked_at = Some((t - START) / S);
        }
    });
    let locked_at = locked_at.expect("never synchronized");
    assert!(locked_at <= 13, "synchronized only at t+{locked_at}s");
    // Synchronized on GPS: ε ≤ 2 µs.
    let mut max_gps_eps = Span::ZERO;
    run(
        &mut m,
        START + 21 * S,
        START + 299 * S,
        S,
        &mut stats,
        |_, s, e| {
            assert_eq!(s.status, ClockStatus::Synchronized, "{}", s.reason);
            max_gps_eps = max_gps_eps.max(e);
        },
    );
    assert!(max_gps_eps <= Span::from_micros(2), "GPS ε {max_gps_eps}");
    // One hour of outage: holdover on the atomic clock, ε growing at its configured bound.
    let mut eps_start = None;
    let mut eps_end = Span::ZERO;
    run(
        &mut m,
        START + 310 * S,
        START + 4190 * S,
        10 * S,
        &mut stats,
        |t, s, e| {
            assert_eq!(
                s.status,
                ClockStatus::Holdover,
                "at t+{}s: {}",
                (t - START) / S,
                s.reason
            );
            assert_eq!(s.reference, Reference::Atomic);
            if eps_start.is_none() {
                eps_start = Some((t, e));
            }
            eps_end = e;
        },
    );
    let (t0, e0) = eps_start.unwrap();
    let hours = (START + 4190 * S + 337_000_000 - t0) as f64 / 3600e9;
    let growth = (eps_end.as_nanos() - e0.as_nanos()) as f64;
    let expected = drift.as_ppm_f64() * 1e-6 * hours * 3600e9;
    assert!(
        growth >= 0.95 * expected && growth <= 1.5 * expected + 500.0,
        "ε grew {growth:.0} ns in {hours:.2} h; atomic bound gives {expected:.0} ns"
    );
    // GPS returns: re-acquired, synchronized again.
    let mut back = false;
    run(
        &mut m,
        START + 4210 * S,
        START + 4260 * S,
        S,
        &mut stats,
        |_, s, _| back |= s.status == ClockStatus::Synchronized,
    );
    assert!(back, "GPS not re-acquired");
    assert!(stats.samples > 600);
    assert!(stats.violations.is_empty(), "{:#?}", stats.violations);
    eprintln!(
        "samples {}, GPS ε max {max_gps_eps}, holdover ε {e0} → {eps_end} over {hours:.2} h (bound {})",
        stats.samples,
        Rate::from_ppt(drift.as_ppt())
    );
}

#[test]
fn spoofed_time_jump_is_refused_and_truth_stays_inside() {
    let sc = Scenario::from_toml(
        r#"
seed = 12
[gps]
cold-start-s = 2
[[fault]]
kind = "time-jump"
at-s = 120.0
jump-s = 3600
phase-ns = 250000
"#,
        "t",
    )
    .unwrap();
    let mut m = VirtualMaster::new(MasterParams::default(), sc, local_quartz(), 6, START);
    let mut stats = Stats {
        samples: 0,
        violations: Vec::new(),
    };
    run(&mut m, START, START + 119 * S, S, &mut stats, |_, _, _| {});
    assert_eq!(
        m.observe(START + 119 * S).0.status,
        ClockStatus::Synchronized
    );
    // The first jumped pulses are rejected (time kept, not followed); after `reject-limit` (5)
    // in a row GPS is refused and the master holds over.
    let mut statuses = Vec::new();
    run(
        &mut m,
        START + 121 * S,
        START + 125 * S,
        S,
        &mut stats,
        |_, s, _| statuses.push(s.status),
    );
    assert!(statuses.iter().all(|s| s.is_trustworthy()), "{statuses:?}");
    statuses.clear();
    run(
        &mut m,
        START + 127 * S,
        START + 600 * S,
        5 * S,
        &mut stats,
        |_, s, _| statuses.push(s.status),
    );
    assert!(
        statuses.iter().all(|s| *s == ClockStatus::Holdover),
        "{statuses:?}"
    );
    assert!(
        m.core
            .events()
            .any(|e| matches!(e.1, MasterEvent::GpsJumpRefused { .. })),
        "no refusal event"
    );
    assert!(stats.violations.is_empty(), "{:#?}", stats.violations);
}

#[test]
fn negative_control_a_dishonest_drift_bound_is_caught() {
    // Claim an atomic clock 1000× better than it is: over an hour's outage truth leaves the
    // interval, and the checker above must see it.
    let sc = Scenario::from_toml(
        r#"
seed = 13
[atomic]
freq-offset-ppt = 5000.0
[[fault]]
kind = "antenna-loss"
at-s = 120.0
"#,
        "t",
    )
    .unwrap();
    let mut p = MasterParams::default();
    p.atomic.as_mut().unwrap().drift = Rate::from_ppt(5);
    let mut m = VirtualMaster::new(p, sc, local_quartz(), 7, START);
    let mut stats = Stats {
        samples: 0,
        violations: Vec::new(),
    };
    run(
        &mut m,
        START,
        START + 3600 * S,
        30 * S,
        &mut stats,
        |_, _, _| {},
    );
    assert!(
        !stats.violations.is_empty(),
        "a 5000 ppt clock claimed as 5 ppt went unnoticed"
    );
}
