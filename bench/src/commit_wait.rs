//! `ttbench commit-wait --drift-ppm 0,50,100,200`: commit-wait under host clock drift on real
//! processes — the ttlab stack, timed's test knob set to each drift — measured through the SDK
//! (`commit_timestamp` then `commit_wait_blocking` on the page), beside the fleet simulator's
//! figure for the same settings (1 s polls in bursts of 4, 15 ppm wander around the measured
//! frequency, the host oscillator off by that drift, loopback-like kernel-stamped delays).

use crate::error::Error;
use crate::lab::{Lab, LabOptions};
use crate::sim::{FleetScenario, run};
use hdrhistogram::Histogram;
use std::time::Duration;

const SIM_TEMPLATE: &str = r#"
name = "commit-wait-drift"
seed = 21
duration-s = 600.0
sample-interval-s = 2.0
[[master]]
kind = "gps"
[[master]]
kind = "gps"
[[master]]
kind = "armageddon"
devices = "gps.enabled = false"
[hosts]
count = 10
poll-interval-s = 1.0
burst = 4
max-drift-ppm = 15.0
freq-offset-ppm = 0.0
[network]
delay-us = [2.0, 6.0]
jitter-us = 2.0
send-path-us = 2.0
"#;

/// Percentiles in µs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Micros {
    /// Median (µs).
    pub p50: f64,
    /// 99th percentile (µs).
    pub p99: f64,
    /// Largest (µs; not given for ε).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// The real stack at one drift.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealSide {
    /// How long `commit_wait` waited.
    pub commit_wait_us: Micros,
    /// ε of `TT.now()` around the waits.
    pub epsilon_us: Micros,
    /// Completed waits.
    pub waits: u64,
    /// `now()` or waits refused (untrustworthy page).
    pub refused: u64,
    /// Waits that returned while true time (the host's realtime) was still at or before `s`.
    pub early_returns: u64,
}

/// The simulator at the same settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSide {
    /// Commit wait.
    pub commit_wait_us: Micros,
    /// ε.
    pub epsilon_us: Micros,
    /// Intervals that missed truth.
    pub violations: u64,
}

/// One drift value's row.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftRow {
    /// The host clock's injected drift (ppm).
    pub drift_ppm: f64,
    /// On the real stack.
    pub real: RealSide,
    /// In the simulator.
    pub sim: SimSide,
}

/// What `ttbench commit-wait --json` prints.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitWaitReport {
    /// One row per drift value.
    pub drifts: Vec<DriftRow>,
    /// How timed's frequency is set (`measured`).
    pub frequency: String,
    /// timed's wander bound (ppm).
    pub max_drift_ppm: f64,
    /// timed's poll interval (s).
    pub poll_interval_s: f64,
}

/// Runs the measurement; `waits` commit waits per drift value.
pub fn commit_wait_under_drift(drifts: &[f64], waits: usize) -> Result<CommitWaitReport, Error> {
    let dir = std::env::temp_dir().join(format!("ttbench-cw-lab-{}", std::process::id()));
    let opts = LabOptions {
        dir,
        allow_knob: true,
        // Fixed polls, as the published results were measured (the interval is in the report).
        target_epsilon_ns: None,
        ..Default::default()
    };
    let (max_drift, poll_s) = (opts.max_drift_ppm, opts.poll_ms as f64 / 1e3);
    let lab = Lab::start(opts)?;
    lab.wait_synchronized(3, Duration::from_secs(90))?;
    let rt = Lab::rt();
    let tt = ttclient::TrueTime::open(&lab.page)?;
    let mut rows = Vec::new();
    for &d in drifts {
        rt.block_on(lab.set_knob(d, 0))?;
        // Let a few polls see the new rate.
        std::thread::sleep(Duration::from_secs(8));
        let mut cw = Histogram::<u64>::new(3)?;
        let mut eps = Histogram::<u64>::new(3)?;
        let mut refused = 0u64;
        // True time is the host's CLOCK_REALTIME in the lab (firmware-sim's definition): a wait
        // that returns while it is still at or before s returned early.
        let mut early = 0u64;
        for _ in 0..waits {
            match tt.now() {
                Ok(i) => {
                    let _ = eps.record(i.epsilon().as_nanos().max(1) as u64);
                }
                Err(_) => refused += 1,
            }
            match tt
                .commit_timestamp()
                .and_then(|s| tt.commit_wait_blocking(s).map(|w| (s, w)))
            {
                Ok((s, w)) => {
                    if ttsys::clock::realtime_ns() <= s.as_nanos() {
                        early += 1;
                    }
                    let _ = cw.record(w.waited.as_nanos().max(1) as u64);
                }
                Err(_) => refused += 1,
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // The simulator's figure for the same settings.
        let mut sc = FleetScenario::from_toml(SIM_TEMPLATE, "commit-wait-drift")?;
        sc.hosts.freq_offset_ppm = d.abs();
        let sim = run(&sc)?.summary;
        let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e3;
        rows.push(DriftRow {
            drift_ppm: d,
            real: RealSide {
                commit_wait_us: Micros {
                    p50: us(&cw, 0.5),
                    p99: us(&cw, 0.99),
                    max: Some(cw.max() as f64 / 1e3),
                },
                epsilon_us: Micros {
                    p50: us(&eps, 0.5),
                    p99: us(&eps, 0.99),
                    max: None,
                },
                waits: cw.len(),
                refused,
                early_returns: early,
            },
            sim: SimSide {
                commit_wait_us: Micros {
                    p50: sim.commit_wait_ns.p50 as f64 / 1e3,
                    p99: sim.commit_wait_ns.p99 as f64 / 1e3,
                    max: Some(sim.commit_wait_ns.max as f64 / 1e3),
                },
                epsilon_us: Micros {
                    p50: sim.epsilon_ns.p50 as f64 / 1e3,
                    p99: sim.epsilon_ns.p99 as f64 / 1e3,
                    max: None,
                },
                violations: sim.violations,
            },
        });
    }
    Ok(CommitWaitReport {
        drifts: rows,
        frequency: "measured".into(),
        max_drift_ppm: max_drift,
        poll_interval_s: poll_s,
    })
}
