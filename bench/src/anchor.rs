//! `ttbench anchor-clockbound`: timed's interval beside AWS ClockBound's, sampled together.
//!
//! Both rest on the same chronyd server: timed polls it as an NTP source (`kind = "ntp"`), and a
//! chronyd client syncing to it feeds `clock-bound-d` (2.0.3, from crates.io, run with the same
//! drift assumption). This command only samples: every `interval` it reads timed's page and the
//! ClockBound segment back to back, with `CLOCK_REALTIME` (the truth on this host: every server
//! in the chain serves it) read around both, and reports each bound's p50/p99 and how many of
//! its trustworthy intervals contained truth. `bench/scripts/anchor-clockbound.sh` starts the
//! processes.

use crate::error::Error;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// Half-widths (ns) and truth checks of one side.
#[derive(Default)]
struct Side {
    radii: Vec<i64>,
    trustworthy: u64,
    outside: u64,
    samples: u64,
}

impl Side {
    fn add(&mut self, trustworthy: bool, earliest: i64, latest: i64, before: i64, after: i64) {
        self.samples += 1;
        if !trustworthy {
            return;
        }
        self.trustworthy += 1;
        self.radii.push((latest - earliest + 1) / 2);
        // Truth lies in [before, after]; the interval must be able to contain it.
        if latest < before || earliest > after {
            self.outside += 1;
        }
    }

    fn report(&mut self) -> Value {
        self.radii.sort_unstable();
        let p = |q: f64| {
            self.radii
                .get(
                    ((self.radii.len() as f64 * q) as usize)
                        .min(self.radii.len().saturating_sub(1)),
                )
                .map_or(Value::Null, |v| json!(*v as f64 / 1e3))
        };
        json!({
            "samples": self.samples,
            "trustworthy": self.trustworthy,
            "outside_truth": self.outside,
            "bound_p50_us": p(0.5),
            "bound_p99_us": p(0.99),
        })
    }
}

/// Samples timed's `page` and ClockBound's segment at `clockbound` for `duration`.
pub fn run(
    page: &Path,
    clockbound: &Path,
    duration: Duration,
    interval: Duration,
) -> Result<Value, Error> {
    let reader = ttsys::shm::PageReader::open(page)?;
    let mut cb = clock_bound_client::ClockBoundClient::new_with_path(
        clockbound
            .to_str()
            .ok_or_else(|| Error::failed("the ClockBound path is not UTF-8"))?,
    )
    .map_err(|e| Error::failed(format!("{}: {e:?}", clockbound.display())))?;
    let (mut ours, mut theirs) = (Side::default(), Side::default());
    let t0 = Instant::now();
    while t0.elapsed() < duration {
        let before = ttsys::clock::realtime_ns();
        let d = reader.read()?.read_at(ttsys::clock::raw());
        let c = cb.now();
        let after = ttsys::clock::realtime_ns();
        ours.add(
            d.status.is_trustworthy(),
            d.interval.earliest().as_nanos(),
            d.interval.latest().as_nanos(),
            before,
            after,
        );
        match c {
            Ok(n) => theirs.add(
                matches!(
                    n.clock_status,
                    clock_bound_client::ClockStatus::Synchronized
                        | clock_bound_client::ClockStatus::FreeRunning
                ),
                n.earliest.tv_sec() * 1_000_000_000 + n.earliest.tv_nsec(),
                n.latest.tv_sec() * 1_000_000_000 + n.latest.tv_nsec(),
                before,
                after,
            ),
            Err(_) => theirs.add(false, 0, 0, before, after),
        }
        std::thread::sleep(interval);
    }
    Ok(json!({
        "duration_s": duration.as_secs_f64(),
        "timed": ours.report(),
        "clockbound": theirs.report(),
    }))
}
