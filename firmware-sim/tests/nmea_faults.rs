//! Real-process test: the GPS pty, read with `serialport` and parsed with `nmea`, shows every
//! NMEA fault kind of a scenario at the time the scenario puts it.

mod common;
use common::*;

const SCENARIO: &str = r#"
seed = 3
[gps]
cold-start-s = 2
[[fault]]
kind = "label-slip"
at-s = 4.0
duration-s = 2.0
[[fault]]
kind = "time-jump"
at-s = 7.0
duration-s = 2.0
jump-s = 3600
[[fault]]
kind = "checksum-errors"
at-s = 10.0
duration-s = 2.0
[[fault]]
kind = "truncated-lines"
at-s = 13.0
duration-s = 2.0
[[fault]]
kind = "garbage-bytes"
at-s = 16.0
duration-s = 2.0
bytes = 40
[[fault]]
kind = "week-rollover"
at-s = 19.0
duration-s = 2.0
"#;

#[test]
fn every_nmea_fault_is_observed_on_the_pty() {
    let sim = start(SCENARIO, 24.0, &[]);
    let (bursts, err) = read_bursts(&sim.path("gps_link"), 23.0);
    assert!(err.is_none(), "{err:?}");
    let truth = sim.truth();
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    let mut clean = 0;
    for b in &bursts {
        // The burst labels the second that began 100–500 ms before it arrived.
        let s = (b.at_ns - 100_000_000).div_euclid(1_000_000_000);
        let Some(faults) = faults_at(&truth, "gps", s) else {
            continue;
        };
        let lines = b.lines();
        let rmc = b.rmc();
        let label = rmc.as_ref().and_then(|(t, _, d)| posix_of(t, d));
        let fix = rmc.as_ref().is_some_and(|r| r.1 == "A");
        let has = |k: &str| faults.iter().any(|f| f == k);
        if faults.is_empty() && fix {
            // A clean second: every sentence checks, the nmea crate accepts it, the label is true.
            for l in &lines {
                assert!(checksum_ok(l), "bad line in a clean burst: {l:?}");
                if !l.starts_with("$P") {
                    nmea::parse_str(l).unwrap_or_else(|e| panic!("{l}: {e:?}"));
                }
            }
            assert_eq!(label, Some(s), "clean label");
            clean += 1;
        }
        if has("label-slip") && label == Some(s + 1) {
            *seen.entry("label-slip").or_default() += 1;
        }
        if has("time-jump") && label == Some(s + 3600) {
            *seen.entry("time-jump").or_default() += 1;
        }
        if has("checksum-errors") {
            let bad = lines
                .iter()
                .filter(|l| l.starts_with('$') && l.contains('*') && !checksum_ok(l));
            let n = bad.clone().count();
            for l in bad {
                assert!(
                    nmea::parse_str(l).is_err(),
                    "nmea accepted a bad checksum: {l}"
                );
            }
            if n > 0 {
                *seen.entry("checksum-errors").or_default() += 1;
            }
        }
        if has("truncated-lines") && lines.iter().any(|l| l.starts_with('$') && !l.contains('*')) {
            *seen.entry("truncated-lines").or_default() += 1;
        }
        if has("garbage-bytes") && lines.iter().any(|l| !l.starts_with('$')) {
            *seen.entry("garbage-bytes").or_default() += 1;
        }
        if has("week-rollover")
            && let Some((t, _, d)) = &rmc
            && let Some(p) = posix_of(t, d)
            && (s - p) == 7168 * 86_400
        {
            *seen.entry("week-rollover").or_default() += 1;
        }
    }
    assert!(clean >= 5, "only {clean} clean bursts in {}", bursts.len());
    for k in [
        "label-slip",
        "time-jump",
        "checksum-errors",
        "truncated-lines",
        "garbage-bytes",
        "week-rollover",
    ] {
        assert!(
            seen.get(k).copied().unwrap_or(0) >= 1,
            "fault {k} not observed; seen {seen:?}"
        );
    }
}

#[test]
fn leap_second_is_announced_then_inserted() {
    let sc = r#"
[truth]
start = "2016-12-31T23:59:54Z"
[gps]
cold-start-s = 1
[[fault]]
kind = "leap-second"
at-s = 0.0
date = "2016-12-31"
"#;
    let sim = start(sc, 11.0, &[]);
    let (bursts, _) = read_bursts(&sim.path("gps_link"), 10.0);
    let mut times = Vec::new();
    let mut announced_before = false;
    let mut zda_dates = Vec::new();
    for b in &bursts {
        for l in b.lines() {
            if l.starts_with("$PSIMLS,36,20161231,+1*") && !times.contains(&"235960".to_string()) {
                announced_before = true;
            }
            if let Some(i) = l.find("ZDA,") {
                let f: Vec<&str> = l[i..].split(',').collect();
                zda_dates.push(format!("{}{}{}", f[2], f[3], f[4]));
            }
        }
        if let Some((t, _, _)) = b.rmc()
            && t.len() >= 6
        {
            times.push(t[..6].to_string());
        }
    }
    let pos = times
        .iter()
        .position(|t| t == "235960")
        .unwrap_or_else(|| panic!("no 23:59:60 in {times:?}"));
    assert_eq!(times[pos - 1], "235959");
    assert_eq!(times[pos + 1], "000000");
    assert!(
        announced_before,
        "leap second not announced before it happened"
    );
    assert!(
        zda_dates.contains(&"31122016".to_string()) && zda_dates.contains(&"01012017".to_string())
    );
}
