//! The GPS receiver model, in virtual time: one call per true (TAI) second returns the pulse
//! that marks it and the NMEA burst that labels it, with faults applied.
//!
//! Physics: the pulse for second `S` leaves the receiver at `S + cable delay + jitter + qErr`
//! (+ any spoofing phase); the burst that labels `S` starts `burst-delay-ms` later (+ up to
//! 10 ms of scheduling jitter) — NMEA labels the pulse that *precedes* it.

use crate::nmea_gen::{self, FixInfo};
use crate::scenario::{ActiveFaults, GpsConfig};
use crate::truth::Truth;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::Serialize;
use ttcore::leap::{civil_from_days, days_from_civil};
use ttcore::{NANOS_PER_SEC, UtcLabel};

/// Days in 1024 GPS weeks: how far back a week-rollover bug moves dates.
pub const WEEK_ROLLOVER_DAYS: i64 = 7168;

/// One PPS edge.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Pulse {
    /// The TAI second it marks.
    pub second_tai_s: i64,
    /// When the edge really happens (TAI ns).
    pub edge_tai_ns: i64,
    /// `edge − second` (ns): cable delay + jitter + qErr + spoofing.
    pub edge_error_ns: i64,
    /// The quantization error part alone (ns), as a timing receiver would report it.
    pub qerr_ns: f64,
}

/// One NMEA burst.
#[derive(Clone, Debug, PartialEq)]
pub struct Burst {
    /// When its first byte is written (TAI ns).
    pub start_tai_ns: i64,
    /// The sentences (and any garbage) in order, each a chunk written as a unit.
    pub chunks: Vec<Vec<u8>>,
    /// The label written (what the receiver claims), if any.
    pub label: Option<UtcLabel>,
    /// Whether the burst reports a fix.
    pub fix: bool,
}

/// Everything the receiver does for one true second.
#[derive(Clone, Debug, PartialEq)]
pub struct GpsSecond {
    /// The TAI second.
    pub second_tai_s: i64,
    /// Its true UTC label.
    pub true_label: UtcLabel,
    /// The pulse, unless dropped.
    pub pulse: Option<Pulse>,
    /// The burst, unless the line is hung up.
    pub burst: Option<Burst>,
}

/// The receiver.
#[derive(Clone, Debug)]
pub struct GpsReceiver {
    cfg: GpsConfig,
    rng: ChaCha8Rng,
    start_tai_s: i64,
    qerr_phase: f64,
}

impl GpsReceiver {
    /// A receiver powered on at TAI second `start_tai_s`.
    pub fn new(cfg: GpsConfig, seed: u64, start_tai_s: i64) -> Self {
        GpsReceiver {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6770_7300),
            start_tai_s,
            qerr_phase: 0.31,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GpsConfig {
        &self.cfg
    }

    fn fix_info(&self) -> FixInfo {
        let sats = (0..self.cfg.satellites)
            .map(|i| {
                let prn = [2u8, 3, 4, 6, 9, 16, 22, 23, 26, 27, 29, 31][i as usize % 12];
                (
                    prn,
                    10 + (i * 7) % 70,
                    (i as u16 * 41) % 360,
                    25 + (i * 3) % 20,
                )
            })
            .collect();
        FixInfo {
            lat_deg: self.cfg.lat_deg,
            lon_deg: self.cfg.lon_deg,
            alt_m: self.cfg.alt_m,
            sats,
            hdop: 0.9,
        }
    }

    /// What happens in TAI second `s` under faults `f`.
    // One simulated second of a receiver: every fault kind's effect on this second's pulse and
    // labels, applied in order.
    pub fn second(&mut self, s: i64, truth: &Truth, f: &ActiveFaults) -> GpsSecond {
        let true_label = truth.label_at_tai(s * NANOS_PER_SEC);
        let age = s - self.start_tai_s;
        let cold = age < self.cfg.cold_start_s as i64;
        let has_fix = !cold && !f.antenna_loss;
        // Pulse.
        let jitter = if self.cfg.pps_jitter_ns > 0.0 {
            Normal::new(0.0, self.cfg.pps_jitter_ns)
                .map(|n| n.sample(&mut self.rng))
                .unwrap_or(0.0)
        } else {
            0.0
        };
        self.qerr_phase = (self.qerr_phase + 0.137_035_999).fract();
        let qerr = self.cfg.qerr_ns * (2.0 * self.qerr_phase - 1.0);
        let dropped = f.missing_pulse_p > 0.0 && self.rng.random::<f64>() < f.missing_pulse_p;
        let pulse = (has_fix && !dropped).then(|| {
            let err = self.cfg.cable_delay_ns + (jitter + qerr).round() as i64 + f.pulse_shift_ns;
            Pulse {
                second_tai_s: s,
                edge_tai_ns: s * NANOS_PER_SEC + err,
                edge_error_ns: err,
                qerr_ns: qerr,
            }
        });
        // Label written.
        let mut label = truth.label_at_tai((s + f.label_shift_s) * NANOS_PER_SEC);
        if f.week_rollover {
            let days = days_from_civil(label.year, label.month, label.day) - WEEK_ROLLOVER_DAYS;
            let (y, m, d) = civil_from_days(days);
            (label.year, label.month, label.day) = (y, m, d);
        }
        let (time, date) = if cold {
            (age >= self.cfg.cold_start_s as i64 / 2, false)
        } else {
            (true, true)
        };
        let lab = time.then_some(label);
        let fix = has_fix.then(|| self.fix_info());
        let t = self.cfg.talker.as_str();
        let mut sentences: Vec<String> = Vec::new();
        for kind in &self.cfg.sentences {
            match kind.as_str() {
                "rmc" => sentences.push(nmea_gen::rmc(t, lab.as_ref(), date, fix.as_ref())),
                "gga" => sentences.push(nmea_gen::gga(t, lab.as_ref(), fix.as_ref())),
                "zda" if date => sentences.push(nmea_gen::zda(t, &label)),
                "gsa" => sentences.push(nmea_gen::gsa(t, fix.as_ref())),
                "gsv" => sentences.extend(nmea_gen::gsv(&self.cfg.gsv_talker, fix.as_ref())),
                _ => {}
            }
        }
        if has_fix {
            let tmu = truth.leap_table().tai_minus_utc_s(posix_s(&true_label));
            let (day, delta) = match f.leap_announced {
                Some((d, delta)) => (Some(d), delta),
                None => (None, 0),
            };
            sentences.push(nmea_gen::leap_announcement(tmu, day, delta));
        }
        let mut chunks: Vec<Vec<u8>> = sentences.into_iter().map(|s| self.corrupt(s, f)).collect();
        if f.garbage_bytes > 0 {
            let at = self.rng.random_range(0..=chunks.len());
            let g: Vec<u8> = (0..f.garbage_bytes)
                .map(|_| {
                    loop {
                        let b: u8 = self.rng.random();
                        if b != b'$' && b != b'\n' {
                            break b;
                        }
                    }
                })
                .collect();
            chunks.insert(at, g);
        }
        let delay =
            self.cfg.burst_delay_ms as i64 * 1_000_000 + self.rng.random_range(0..10_000_000);
        let burst = (!f.gps_hangup).then(|| Burst {
            start_tai_ns: s * NANOS_PER_SEC + self.cfg.cable_delay_ns + delay,
            chunks,
            label: lab,
            fix: has_fix,
        });
        GpsSecond {
            second_tai_s: s,
            true_label,
            pulse,
            burst,
        }
    }

    fn corrupt(&mut self, s: String, f: &ActiveFaults) -> Vec<u8> {
        let mut b = s.into_bytes();
        if f.checksum_p > 0.0 && self.rng.random::<f64>() < f.checksum_p {
            // Replace the checksum's last hex digit with a different one.
            let n = b.len();
            if n >= 4 {
                let c = b[n - 3];
                b[n - 3] = if c == b'0' { b'1' } else { b'0' };
            }
        }
        if f.truncate_p > 0.0 && self.rng.random::<f64>() < f.truncate_p && b.len() > 6 {
            let cut = self.rng.random_range(2..b.len() - 4);
            b.truncate(cut);
            b.extend_from_slice(b"\r\n");
        }
        b
    }
}

/// POSIX seconds of a label (`23:59:60` counts as `23:59:59`).
fn posix_s(l: &UtcLabel) -> i64 {
    days_from_civil(l.year, l.month, l.day) * 86_400
        + l.hour as i64 * 3600
        + l.minute as i64 * 60
        + l.second.min(59) as i64
}

/// Time to send `bytes` at `baud` (10 bits a byte), ns.
pub fn serial_time_ns(bytes: usize, baud: u32) -> i64 {
    (bytes as i64 * 10 * NANOS_PER_SEC) / baud.max(1) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;
    use ttcore::LeapTable;

    fn run(src: &str, secs: i64) -> Vec<GpsSecond> {
        let sc = Scenario::from_toml(src, "t").unwrap();
        let truth = Truth::realtime(sc.leap_table().unwrap());
        let start = 1_790_000_000 + 37;
        let mut g = GpsReceiver::new(sc.gps.clone(), sc.seed, start);
        (0..secs)
            .map(|k| g.second(start + k, &truth, &sc.active(k as f64)))
            .collect()
    }

    fn text(b: &Burst) -> String {
        b.chunks
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect()
    }

    #[test]
    fn cold_start_then_fix() {
        let out = run("", 8);
        for s in &out[..4] {
            assert!(s.pulse.is_none());
            let t = text(s.burst.as_ref().unwrap());
            assert!(t.contains("RMC,") && t.contains(",V,"), "{t}");
            assert!(t.contains("GSV,1,1,00*"), "{t}");
            assert!(!t.contains("ZDA"), "no date during cold start: {t}");
        }
        // First half of the cold start has no time at all.
        assert!(text(out[0].burst.as_ref().unwrap()).starts_with("$GPRMC,,V"));
        for s in &out[4..] {
            let p = s.pulse.unwrap();
            assert!((p.edge_error_ns - 50).abs() < 200, "{p:?}");
            let b = s.burst.as_ref().unwrap();
            assert!(b.fix && text(b).contains(",A,"));
            assert!(b.start_tai_ns - p.edge_tai_ns > 100_000_000);
            assert_eq!(b.label, Some(s.true_label));
        }
    }

    #[test]
    fn every_sentence_has_a_valid_checksum() {
        for s in run("", 6) {
            for c in &s.burst.unwrap().chunks {
                let line = std::str::from_utf8(c).unwrap().trim_end();
                let (body, cs) = line[1..].split_once('*').unwrap();
                assert_eq!(
                    u8::from_str_radix(cs, 16).unwrap(),
                    nmea_gen::checksum(body),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn deterministic_per_seed() {
        let a = run("seed = 5", 10);
        let b = run("seed = 5", 10);
        let c = run("seed = 6", 10);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn faults_show_up() {
        let src = r#"
gps.cold-start-s = 0
[[fault]]
kind = "antenna-loss"
at-s = 1.0
duration-s = 1.0
[[fault]]
kind = "label-slip"
at-s = 2.0
duration-s = 1.0
[[fault]]
kind = "checksum-errors"
at-s = 3.0
duration-s = 1.0
[[fault]]
kind = "week-rollover"
at-s = 4.0
duration-s = 1.0
[[fault]]
kind = "garbage-bytes"
at-s = 5.0
duration-s = 1.0
bytes = 17
[[fault]]
kind = "missing-pulses"
at-s = 6.0
duration-s = 1.0
"#;
        let out = run(src, 7);
        assert!(out[0].pulse.is_some() && out[0].burst.as_ref().unwrap().fix);
        assert!(out[1].pulse.is_none() && !out[1].burst.as_ref().unwrap().fix);
        let l2 = out[2].burst.as_ref().unwrap().label.unwrap();
        assert_eq!(
            LeapTable::builtin().utc_to_tai_ns(&l2).unwrap() / NANOS_PER_SEC,
            out[2].second_tai_s + 1
        );
        let bad = out[3].burst.as_ref().unwrap().chunks.iter().filter(|c| {
            let l = std::str::from_utf8(c).unwrap().trim_end();
            let (body, cs) = l[1..].split_once('*').unwrap();
            u8::from_str_radix(cs, 16).unwrap() != nmea_gen::checksum(body)
        });
        assert!(bad.count() >= 5);
        let l4 = out[4].burst.as_ref().unwrap().label.unwrap();
        assert_eq!(
            days_from_civil(
                out[4].true_label.year,
                out[4].true_label.month,
                out[4].true_label.day
            ) - days_from_civil(l4.year, l4.month, l4.day),
            WEEK_ROLLOVER_DAYS
        );
        assert!(
            out[5]
                .burst
                .as_ref()
                .unwrap()
                .chunks
                .iter()
                .any(|c| c.len() == 17)
        );
        assert!(out[6].pulse.is_none() && out[6].burst.as_ref().unwrap().fix);
    }

    #[test]
    fn pacing() {
        assert_eq!(serial_time_ns(960, 9600), NANOS_PER_SEC);
    }
}
