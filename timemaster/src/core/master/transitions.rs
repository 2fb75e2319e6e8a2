//! One test per edge of the discipline's transition table (`discipline.rs`), and a property
//! test: whatever the inputs, a master that reports a trustworthy status never publishes an ε
//! below the error terms of the reference it names.

use super::tests::{arm, burst};
use super::*;
use proptest::prelude::*;
use ttcore::{RawReading, UtcLabel};

const S: i64 = NANOS_PER_SEC;
/// Raw clock = truth − 1e18 (large offsets, as with a real boot-time clock).
const OFF: i64 = 1_000_000_000_000_000_000;
const T0: i64 = 1_790_000_000 * S;
/// The atomic clock's pulses lead the true second by this much (ns).
const ATOMIC_PHASE: i64 = 300;

/// A GPS master, with or without an atomic clock (locked from the start).
fn gps_master(atomic: bool) -> MasterCore {
    let p = MasterParams {
        atomic: atomic.then(AtomicParams::default),
        ..Default::default()
    };
    let mut m = MasterCore::new(p, LeapTable::builtin());
    if atomic {
        m.on_atomic_lock(true, RawReading::from_nanos(T0 - OFF));
    }
    m
}

/// True second `k`: a GPS pulse and its label (shifted by `jump_s`) when `gps`, an atomic pulse
/// when `atomic`, and a tick.
fn second(m: &mut MasterCore, k: i64, gps: bool, atomic: bool, jump_s: i64) {
    let t = T0 + k * S;
    if atomic {
        m.on_atomic_pulse(RawReading::from_nanos(t - ATOMIC_PHASE - OFF));
    }
    if gps {
        m.on_gps_pulse(RawReading::from_nanos(t + 50 - OFF));
        let _ = m.on_nmea_line(
            &burst(t / S + jump_s),
            RawReading::from_nanos(t + 200_000_000 - OFF),
        );
    }
    m.tick(RawReading::from_nanos(t + 300_000_000 - OFF));
}

fn run(m: &mut MasterCore, secs: std::ops::Range<i64>, gps: bool, atomic: bool) {
    for k in secs {
        second(m, k, gps, atomic, 0);
    }
}

/// The snapshot at the end of true second `k` (after its tick), and whether truth is inside.
fn at(m: &MasterCore, k: i64) -> (Snapshot, bool) {
    let raw = T0 + k * S + 300_000_000 - OFF;
    let s = m.snapshot(RawReading::from_nanos(raw));
    let inside = s.model.as_ref().is_some_and(|md| {
        md.interval_at(RawReading::from_nanos(raw))
            .contains(Timestamp::from_nanos(raw + OFF))
    });
    (s, inside)
}

fn saw(m: &MasterCore, f: impl Fn(&MasterEvent) -> bool) -> bool {
    m.events().any(|(_, e)| f(e))
}

#[test]
fn acquiring_to_gps_after_three_stepping_pulses() {
    let mut m = gps_master(false);
    assert_eq!(m.discipline_state(), "acquiring");
    assert_eq!(at(&m, -1).0.reason, MasterReason::WaitingForGps);
    run(&mut m, 0..2, true, false);
    assert_eq!(m.discipline_state(), "acquiring");
    assert_eq!(at(&m, 1).0.reason, MasterReason::AcquiringGps);
    run(&mut m, 2..3, true, false);
    assert_eq!(m.discipline_state(), "gps");
    assert!(saw(&m, |e| matches!(e, MasterEvent::GpsLocked(_))));
    let (s, inside) = at(&m, 2);
    assert_eq!(
        (s.status, s.reference),
        (ClockStatus::Synchronized, Reference::Gps)
    );
    assert!(inside);
}

#[test]
fn acquiring_to_peer_time_on_an_atomic_pulse() {
    let mut m = arm();
    let offer = OffsetInterval::new(Span::from_micros(-50), Span::from_micros(50)).unwrap();
    m.on_peer_time(RawReading::from_nanos(S), offer);
    assert_eq!(m.discipline_state(), "acquiring");
    m.on_atomic_pulse(RawReading::from_nanos(2 * S));
    assert_eq!(m.discipline_state(), "peer-time");
    let s = m.snapshot(RawReading::from_nanos(2 * S));
    assert_eq!(
        (s.status, s.reason, s.reference),
        (
            ClockStatus::Synchronized,
            MasterReason::AtomicFromPeers,
            Reference::Atomic
        )
    );
    assert!(s.components.peer_ns >= 50_000, "{:?}", s.components);
}

#[test]
fn gps_to_holdover_on_the_atomic_clock_when_pulses_stop() {
    let mut m = gps_master(true);
    run(&mut m, 0..30, true, true);
    assert_eq!(m.discipline_state(), "gps");
    run(&mut m, 30..34, false, true);
    assert_eq!(m.discipline_state(), "holdover-atomic");
    assert!(saw(&m, |e| matches!(
        e,
        MasterEvent::HoldoverEntered {
            cause: HoldoverCause::NoGpsPulses,
            reference: Reference::Atomic,
            ..
        }
    )));
    let (s, inside) = at(&m, 33);
    assert_eq!(
        (s.status, s.reference),
        (ClockStatus::Holdover, Reference::Atomic)
    );
    assert!(inside);
    // The atomic clock's own terms are in ε: its pulse jitter, and the holdover growth.
    assert_eq!(s.components.pps_jitter_ns, 5);
    assert!(s.components.holdover_ns > 0);
}

#[test]
fn gps_to_holdover_on_quartz_without_an_atomic_clock() {
    let mut m = gps_master(false);
    run(&mut m, 0..30, true, false);
    run(&mut m, 30..34, false, false);
    assert_eq!(m.discipline_state(), "holdover-quartz");
    let (s, inside) = at(&m, 33);
    assert_eq!(
        (s.status, s.reference),
        (ClockStatus::Holdover, Reference::Quartz)
    );
    assert!(inside);
}

#[test]
fn gps_to_holdover_when_gps_is_refused() {
    // A loss timeout longer than the refusal takes (5 rejected pulses), so the refusal is the
    // cause; with the default 2.5 s the missing accepted pulses would be.
    let mut m = MasterCore::new(
        MasterParams {
            atomic: None,
            loss_timeout: Span::from_secs(10),
            ..Default::default()
        },
        LeapTable::builtin(),
    );
    run(&mut m, 0..20, true, false);
    for k in 20..30 {
        second(&mut m, k, true, false, 3600);
    }
    assert_eq!(m.discipline_state(), "holdover-quartz");
    assert!(saw(&m, |e| matches!(
        e,
        MasterEvent::HoldoverEntered {
            cause: HoldoverCause::GpsRefused,
            ..
        }
    )));
    assert!(at(&m, 29).1);
}

#[test]
fn holdover_on_atomic_falls_back_to_quartz_when_it_unlocks() {
    let mut m = gps_master(true);
    run(&mut m, 0..30, true, true);
    run(&mut m, 30..34, false, true);
    assert_eq!(m.discipline_state(), "holdover-atomic");
    let eps = |m: &MasterCore, k: i64| {
        let raw = T0 + k * S + 300_000_000 - OFF;
        m.snapshot(RawReading::from_nanos(raw))
            .model
            .unwrap()
            .epsilon_at(RawReading::from_nanos(raw))
            .as_nanos()
    };
    let before = eps(&m, 33);
    let atomic_rate = at(&m, 33).0.model.unwrap().drift_bound;
    m.on_atomic_lock(false, RawReading::from_nanos(T0 + 34 * S - OFF));
    run(&mut m, 34..40, false, false);
    assert_eq!(m.discipline_state(), "holdover-quartz");
    assert!(saw(&m, |e| matches!(
        e,
        MasterEvent::HoldoverOnQuartz(HoldoverCause::AtomicUnlocked)
    )));
    let (s, inside) = at(&m, 39);
    assert_eq!(s.reference, Reference::Quartz);
    // ε keeps what it had and grows faster from the switch on (quartz's bound, not the
    // atomic clock's).
    assert!(eps(&m, 39) > before);
    assert!(s.model.as_ref().unwrap().drift_bound > atomic_rate);
    assert!(inside);
}

#[test]
fn holdover_to_gps_when_pulses_return() {
    let mut m = gps_master(false);
    run(&mut m, 0..30, true, false);
    run(&mut m, 30..40, false, false);
    assert_eq!(m.discipline_state(), "holdover-quartz");
    run(&mut m, 40..42, true, false);
    assert_eq!(m.discipline_state(), "gps");
    assert!(saw(&m, |e| matches!(e, MasterEvent::GpsReacquired { .. })));
    let (s, inside) = at(&m, 41);
    assert_eq!(
        (s.status, s.reference, s.holdover_s),
        (ClockStatus::Synchronized, Reference::Gps, 0.0)
    );
    assert!(inside);
}

#[test]
fn any_state_to_disrupted_drops_the_model() {
    for (gps_secs, atomic) in [(0..0, false), (0..30, false), (0..30, true)] {
        let mut m = gps_master(atomic);
        run(&mut m, gps_secs.clone(), true, atomic);
        if !gps_secs.is_empty() {
            // In holdover, for the GPS masters that locked.
            run(&mut m, 30..34, false, atomic);
        }
        m.on_disruption(
            RawReading::from_nanos(T0 + 35 * S - OFF),
            Disruption::Lost { ns: 1_000_000 },
        );
        assert_eq!(m.discipline_state(), "disrupted");
        let (s, _) = at(&m, 35);
        assert_eq!(
            (s.status, s.reason),
            (ClockStatus::Disrupted, MasterReason::Disrupted)
        );
        assert!(s.model.is_none());
        assert_eq!(s.reference, Reference::None);
    }
}

/// A GPS master through a clock disruption and back: the disruption ends with the lock on
/// GPS (three stepping pulses, as at a cold start), and the re-acquired interval contains
/// truth. (Before the discipline was one state, the disruption flag outlived the lock until
/// a fourth pulse, so this failed at the status after the third.)
#[test]
fn disrupted_to_gps_when_three_pulses_lock_again() {
    let mut m = gps_master(true);
    run(&mut m, 0..30, true, true);
    m.on_disruption(
        RawReading::from_nanos(T0 + 30 * S - OFF),
        Disruption::Lost { ns: 1_000_000 },
    );
    run(&mut m, 30..32, true, true);
    assert_eq!(at(&m, 31).0.status, ClockStatus::Disrupted);
    run(&mut m, 32..33, true, true);
    let (s, inside) = at(&m, 32);
    assert_eq!(
        (s.status, s.reason, s.reference),
        (ClockStatus::Synchronized, MasterReason::Gps, Reference::Gps),
        "after the lock"
    );
    assert!(inside);
    assert!(saw(&m, |e| matches!(e, MasterEvent::Resynchronized)));
    // And GPS holdover works as before from the new lock.
    run(&mut m, 33..60, true, true);
    run(&mut m, 60..64, false, true);
    let (s, inside) = at(&m, 63);
    assert_eq!(
        (s.status, s.reference),
        (ClockStatus::Holdover, Reference::Atomic)
    );
    assert!(inside);
}

#[test]
fn disrupted_to_peer_time_with_a_fresh_offer() {
    let mut m = arm();
    let offer = OffsetInterval::new(Span::from_micros(-50), Span::from_micros(50)).unwrap();
    m.on_peer_time(RawReading::from_nanos(S), offer);
    m.on_atomic_pulse(RawReading::from_nanos(2 * S));
    m.on_disruption(RawReading::from_nanos(3 * S), Disruption::Lost { ns: 1 });
    assert_eq!(m.discipline_state(), "disrupted");
    m.on_atomic_pulse(RawReading::from_nanos(4 * S));
    assert_eq!(m.discipline_state(), "disrupted", "no offer since");
    m.on_peer_time(RawReading::from_nanos(5 * S), offer);
    m.on_atomic_pulse(RawReading::from_nanos(6 * S));
    assert_eq!(m.discipline_state(), "peer-time");
    assert_eq!(
        m.snapshot(RawReading::from_nanos(6 * S)).status,
        ClockStatus::Synchronized
    );
}

/// What may happen in one step of the property test.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// A second with or without GPS (its label shifted by `jump_s`) and atomic pulses.
    Second {
        gps: bool,
        atomic: bool,
        jump_s: i64,
    },
    /// The atomic clock's lock line.
    Lock(bool),
    /// An atomic telemetry alarm, or its end.
    Alarm(bool),
    /// A clock disruption.
    Disrupt,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (any::<bool>(), any::<bool>(), prop_oneof![9 => Just(0i64), 1 => Just(3600i64), 1 => Just(-1i64)])
            .prop_map(|(gps, atomic, jump_s)| Step::Second { gps, atomic, jump_s }),
        1 => any::<bool>().prop_map(Step::Lock),
        1 => any::<bool>().prop_map(Step::Alarm),
        1 => Just(Step::Disrupt),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For any input sequence, a master reporting a trustworthy status publishes an ε no smaller
    /// than the error terms of the reference it names, taken from its parameters (not from the
    /// code that computes ε): GPS's calibration + qErr + jitter floor; holdover keeps those and
    /// adds the atomic pulse jitter on the atomic clock.
    #[test]
    fn a_trustworthy_master_never_publishes_less_than_its_references_terms(
        steps in proptest::collection::vec(step(), 1..120)
    ) {
        let mut m = gps_master(true);
        let g = GpsParams::default();
        let a = AtomicParams::default();
        let gps_terms = (g.calibration_error_ns + g.qerr_ns) as f64 + g.jitter_floor_ns;
        let mut k = 0;
        for st in steps {
            let raw = T0 + k * S + 400_000_000 - OFF;
            match st {
                Step::Second { gps, atomic, jump_s } => {
                    k += 1;
                    second(&mut m, k, gps, atomic, jump_s);
                }
                Step::Lock(l) => m.on_atomic_lock(l, RawReading::from_nanos(raw)),
                Step::Alarm(on) => m.on_atomic_telemetry(0, u16::from(on), RawReading::from_nanos(raw)),
                Step::Disrupt => m.on_disruption(RawReading::from_nanos(raw), Disruption::Lost { ns: 1_000 }),
            }
            let (s, _) = at(&m, k);
            if !s.status.is_trustworthy() {
                continue;
            }
            let md = s.model.expect("a trustworthy master has a model");
            let floor = match s.reference {
                Reference::Gps | Reference::Quartz => gps_terms,
                Reference::Atomic => gps_terms + a.jitter_ns,
                Reference::None => f64::INFINITY,
            };
            prop_assert!(
                md.eps_ref.as_nanos() as f64 >= floor,
                "{:?} ({}): ε_ref {} ns < {} ns",
                s.reference, m.discipline_state(), md.eps_ref.as_nanos(), floor
            );
        }
    }
}

/// An armageddon master on its atomic clock inside a leap smear: the atomic clock ticks SI
/// seconds while the smeared timescale's seconds are 1/86400 longer, so its pulses are placed in
/// TAI and mapped onto the timescale. (Placing them at whole timescale seconds made the master
/// run 11.6 ppm wrong with a µs-level ε; the simulator's cross-check found it: the armageddon
/// master of the leap-second scenario evicted itself 47 s in.)
#[test]
fn peer_time_holds_truth_through_a_leap_smear() {
    let leap = LeapTable::builtin();
    let mut m = MasterCore::new(
        MasterParams {
            kind: MasterKind::Armageddon,
            gps: None,
            ..Default::default()
        },
        leap.clone(),
    );
    // 2016-12-31T23:50:00 UTC: inside the smear around that leap second.
    let label = UtcLabel::parse_iso("2016-12-31T23:50:00Z").unwrap();
    let tai0 = leap.utc_to_tai_ns(&label).unwrap();
    // The raw clock runs at SI rate, 1e18 ns behind TAI; pulses lead the TAI second by 300 ns.
    let raw_of = |tai: i64| tai - OFF;
    let truth = |tai: i64| leap.tai_to_timescale(tai).unwrap();
    m.on_atomic_lock(true, RawReading::from_nanos(raw_of(tai0)));
    let r0 = raw_of(tai0);
    let mid = truth(tai0).as_nanos() - r0;
    let offer = OffsetInterval::new(
        Span::from_nanos(mid - 20_000),
        Span::from_nanos(mid + 20_000),
    )
    .unwrap();
    m.on_peer_time(RawReading::from_nanos(r0), offer);
    let mut outside = 0;
    for k in 1..=1200 {
        let tai = tai0 + k * S - ATOMIC_PHASE;
        m.on_atomic_pulse(RawReading::from_nanos(raw_of(tai)));
        let q = tai + 500_000_000;
        let s = m.snapshot(RawReading::from_nanos(raw_of(q)));
        assert_eq!(s.status, ClockStatus::Synchronized, "{k}: {}", s.reason);
        let iv = s
            .model
            .unwrap()
            .interval_at(RawReading::from_nanos(raw_of(q)));
        if !iv.contains(truth(q)) {
            outside += 1;
        }
    }
    assert_eq!(m.discipline_state(), "peer-time");
    assert_eq!(
        outside, 0,
        "truth outside the interval in {outside} of 1200 s"
    );
}
