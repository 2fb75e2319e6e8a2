//! commit_wait never returns before `after(s)` holds in truth: a simulated host clock drifts
//! (within the model's bound), true time is the machine's raw clock, and truth is read the
//! moment the wait returns. A negative control drifts beyond the bound and must be caught.

use proptest::prelude::*;
use std::sync::Arc;
use ttclient::{SimSource, TrueTime};
use ttcore::{ClockModel, ClockStatus, Rate, Span, Timestamp};

/// True time: the machine's raw clock shifted to a realistic epoch.
const EPOCH: i64 = 1_790_000_000_000_000_000;

fn truth() -> i64 {
    EPOCH + ttsys::clock::raw_ns()
}

/// A host whose raw clock runs `drift_ppm` fast (negative: slow) from now on, with a model that
/// was exact at the start (`ref_err_ns` off, within `eps`) and claims `bound_ppm`.
fn host(drift_ppm: f64, eps_ns: i64, ref_err_ns: i64, bound_ppm: f64) -> TrueTime {
    let r0 = ttsys::clock::raw_ns();
    let d = drift_ppm * 1e-6;
    let raw = Arc::new(move || r0 + ((ttsys::clock::raw_ns() - r0) as f64 * (1.0 + d)) as i64);
    let model = ClockModel {
        ref_raw: ttcore::RawReading::from_nanos(r0),
        ref_time: Timestamp::from_nanos(EPOCH + r0 + ref_err_ns),
        freq: Rate::ZERO,
        eps_ref: Span::from_nanos(eps_ns),
        drift_bound: Rate::bound_from_ppm_f64(bound_ppm).unwrap(),
    };
    let raw2 = raw.clone();
    TrueTime::simulated(SimSource {
        model,
        status: ClockStatus::Synchronized,
        raw: Box::new(move || ttcore::RawReading::from_nanos(raw2())),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, .. ProptestConfig::default() })]

    #[test]
    fn never_returns_before_after_s_holds(
        drift in -200.0f64..200.0,
        eps in 0i64..2_000_000,
        err_frac in -1.0f64..1.0,
        ahead_us in 0i64..3_000,
    ) {
        let tt = host(drift, eps, (eps as f64 * err_frac) as i64, 200.0);
        // Either a commit timestamp (latest) or a time a little beyond it.
        let s = Timestamp::from_nanos(tt.commit_timestamp().unwrap().as_nanos() + ahead_us * 1_000);
        let w = tt.commit_wait_blocking(s).unwrap();
        let t = truth();
        prop_assert!(t > s.as_nanos(), "returned {} ns before true after(s)", s.as_nanos() - t);
        prop_assert!(w.interval.after(s));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_form_never_returns_early_either() {
    for drift in [-150.0, 0.0, 150.0] {
        let tt = host(drift, 1_500_000, -700_000, 200.0);
        let s = tt.commit_timestamp().unwrap();
        let w = tt.commit_wait(s).await.unwrap();
        assert!(truth() > s.as_nanos());
        assert!(
            w.waited >= std::time::Duration::from_millis(2),
            "waited only {:?} with ε 1.5 ms",
            w.waited
        );
    }
}

#[test]
fn negative_control_dishonest_bound_returns_early() {
    // The host runs 2 % fast but the model claims 0 ppm and ε 0: the estimate runs ahead of
    // truth (by over 1 ms after the 50 ms sleep), after(s) turns true too soon, and the check
    // above must see it. The lead is far beyond how long a busy 2-core machine (the other tests
    // of this file spin beside it) keeps this thread off the CPU between the wait's return and
    // the truth read; a 5000 ppm lie over 5 ms (a 35 µs lead) was not.
    let mut early = 0;
    for _ in 0..20 {
        let tt = host(20_000.0, 0, 0, 0.0);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let s = Timestamp::from_nanos(tt.now().unwrap().latest().as_nanos() + 2_000_000);
        tt.commit_wait_blocking(s).unwrap();
        if truth() <= s.as_nanos() {
            early += 1;
        }
    }
    assert!(
        early > 10,
        "only {early} of 20 early returns with a 20000 ppm lie"
    );
}
