//! The atomic clock model (chip-scale atomic clock style), in virtual time: its oscillator and
//! 1PPS, warm-up and lock, its lock/alarm line, and a telemetry protocol modelled on such
//! devices.
//!
//! # Telemetry dialect
//!
//! Commands end in `\r\n`; every answer is one line ending in `\r\n`.
//!
//! | command | answer |
//! |---|---|
//! | `!^` | status line, comma-separated, fields as in `!6` |
//! | `!6` | header: `Status,Alarm,SN,Mode,Contrast,LaserI,TCXO,HeatP,Sig,Temp,Steer,ATune,Phase,DisOK,TOD,LTime,FW_ver` |
//! | `!F?` | `Steer,<n>` — current frequency steer in parts per 10¹⁵ |
//! | `!FD<n>` | set the steer to `n` (parts per 10¹⁵, ±20 000 000) → `Steer,<n>` |
//! | `!FA<n>` | add `n` to the steer → `Steer,<n>` |
//! | `!MD` / `!Md` | enable / disable 1PPS disciplining → `Discipline,1` / `Discipline,0` |
//! | anything else | `ERR,unknown command` |
//!
//! `Status` is 0 when locked and counts down 8…1 through warm-up; `Alarm` bits: `0x0010` lock
//! lost, `0x0080` warming up. `Phase` is the 1PPS phase error against true time in ns (what a
//! disciplining input would measure), `LTime` seconds since lock, `TOD` seconds since power-on.

use crate::scenario::{ActiveFaults, AtomicConfig, FaultKind, Scenario};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::Serialize;
use ttcore::NANOS_PER_SEC;
use ttcore::osc::{Oscillator, OscillatorParams};

/// Field names of the status line, in order.
pub const HEADER: &str = "Status,Alarm,SN,Mode,Contrast,LaserI,TCXO,HeatP,Sig,Temp,Steer,ATune,Phase,DisOK,TOD,LTime,FW_ver";
/// Alarm bit: lock lost.
pub const ALARM_LOCK_LOST: u16 = 0x0010;
/// Alarm bit: warming up.
pub const ALARM_WARMUP: u16 = 0x0080;
/// Largest steer magnitude accepted (parts per 10¹⁵).
pub const MAX_STEER_PP15: i64 = 20_000_000;

/// The device's state at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct AtomicState {
    /// Locked to the atomic resonance.
    pub locked: bool,
    /// Status code (0 locked, 8…1 warming up, 9 lock lost).
    pub status: u8,
    /// Alarm bits.
    pub alarm: u16,
    /// Seconds since lock (0 when not locked).
    pub since_lock_s: f64,
    /// Seconds since power-on or restart.
    pub since_power_s: f64,
}

/// The atomic clock.
#[derive(Clone, Debug)]
pub struct AtomicClock {
    cfg: AtomicConfig,
    osc: Oscillator,
    rng: ChaCha8Rng,
    start_tai_ns: i64,
    restarts_s: Vec<f64>,
    unlock_windows_s: Vec<(f64, f64)>,
    /// (TAI ns from which it applies, steer in parts per 10¹⁵), in order.
    steer: Vec<(i64, i64)>,
    discipline: bool,
}

impl AtomicClock {
    /// The device of `scenario`, powered on at TAI `start_tai_ns`.
    pub fn new(scenario: &Scenario, start_tai_ns: i64) -> Self {
        let cfg = scenario.atomic.clone();
        let p = OscillatorParams {
            initial_phase_ns: cfg.initial_phase_ns,
            freq_offset_ppm: cfg.freq_offset_ppt * 1e-6,
            aging_ppm_per_day: cfg.aging_ppt_per_day * 1e-6,
            ..Default::default()
        };
        let restarts_s = scenario.atomic_restarts();
        let mut unlock_windows_s: Vec<(f64, f64)> =
            restarts_s.iter().map(|&r| (r, r + cfg.warmup_s)).collect();
        unlock_windows_s.extend(
            scenario
                .fault_list()
                .filter(|f| f.kind == FaultKind::AtomicUnlock)
                .map(|f| (f.at_s, f.duration_s.map_or(f64::INFINITY, |d| f.at_s + d))),
        );
        AtomicClock {
            osc: Oscillator::new(p, start_tai_ns, scenario.seed ^ 0xa70c),
            rng: ChaCha8Rng::seed_from_u64(scenario.seed ^ 0xa70d),
            cfg,
            start_tai_ns,
            restarts_s,
            unlock_windows_s,
            steer: Vec::new(),
            discipline: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AtomicConfig {
        &self.cfg
    }

    fn rel_s(&self, tai_ns: i64) -> f64 {
        (tai_ns - self.start_tai_ns) as f64 / 1e9
    }

    /// State at TAI `tai_ns` under faults `f`.
    pub fn state_at(&self, tai_ns: i64, f: &ActiveFaults) -> AtomicState {
        let t = self.rel_s(tai_ns);
        let restart = self
            .restarts_s
            .iter()
            .copied()
            .filter(|&r| r <= t)
            .fold(0.0, f64::max);
        let since_power_s = (t - restart).max(0.0);
        if since_power_s < self.cfg.warmup_s {
            let frac = since_power_s / self.cfg.warmup_s.max(1e-9);
            let status = (8.0 - 8.0 * frac).ceil().clamp(1.0, 8.0) as u8;
            return AtomicState {
                locked: false,
                status,
                alarm: ALARM_WARMUP,
                since_lock_s: 0.0,
                since_power_s,
            };
        }
        if f.atomic_unlock {
            return AtomicState {
                locked: false,
                status: 9,
                alarm: ALARM_LOCK_LOST,
                since_lock_s: 0.0,
                since_power_s,
            };
        }
        // Locked since the later of warm-up end and the end of the last unlock window.
        let lock_start = self
            .unlock_windows_s
            .iter()
            .filter(|w| w.1 <= t)
            .map(|w| w.1)
            .fold(restart + self.cfg.warmup_s, f64::max);
        AtomicState {
            locked: true,
            status: 0,
            alarm: 0,
            since_lock_s: t - lock_start,
            since_power_s,
        }
    }

    /// Steer in effect at `tai_ns` (parts per 10¹⁵).
    pub fn steer_at(&self, tai_ns: i64) -> i64 {
        self.steer
            .iter()
            .rev()
            .find(|s| s.0 <= tai_ns)
            .map_or(0, |s| s.1)
    }

    /// The device's time error (its reading − TAI, ns) at TAI `tai_ns`: oscillator + extra
    /// frequency error while unlocked + steering, all integrated exactly.
    pub fn phase_error_ns(&mut self, tai_ns: i64) -> f64 {
        let t = self.rel_s(tai_ns);
        let unlocked_s: f64 = self
            .unlock_windows_s
            .iter()
            .map(|&(a, b)| (b.min(t) - a).max(0.0))
            .sum();
        let mut steer_ns = 0.0;
        for (i, &(from, pp15)) in self.steer.iter().enumerate() {
            let to = self.steer.get(i + 1).map_or(tai_ns, |n| n.0.min(tai_ns));
            if to > from {
                steer_ns += (to - from) as f64 * pp15 as f64 * 1e-15;
            }
        }
        self.osc.phase_error_ns(tai_ns)
            + unlocked_s * 1e9 * self.cfg.unlocked_freq_ppb * 1e-9
            + steer_ns
    }

    /// Fractional frequency error (parts per 10¹²) at `tai_ns`, including steering.
    pub fn freq_error_ppt_at(&mut self, tai_ns: i64, f: &ActiveFaults) -> f64 {
        let unlocked = !self.state_at(tai_ns, f).locked;
        self.osc.frequency_ppm_at(tai_ns) * 1e6
            + if unlocked {
                self.cfg.unlocked_freq_ppb * 1e3
            } else {
                0.0
            }
            + self.steer_at(tai_ns) as f64 * 1e-3
    }

    /// The TAI instant (ns) of the device's `k`-th 1PPS edge (its reading crosses second `k`,
    /// counted on the TAI scale), with jitter. Call in increasing `k` for reproducible jitter.
    pub fn pulse_edge(&mut self, k: i64) -> i64 {
        let target = k * NANOS_PER_SEC;
        let mut t = target;
        for _ in 0..4 {
            t = target - self.phase_error_ns(t).round() as i64;
        }
        let j = if self.cfg.pps_jitter_ns > 0.0 {
            Normal::new(0.0, self.cfg.pps_jitter_ns)
                .map(|n| n.sample(&mut self.rng))
                .unwrap_or(0.0)
        } else {
            0.0
        };
        t + j.round() as i64
    }

    /// The `!^` status line (without line ending).
    pub fn status_line(&mut self, tai_ns: i64, f: &ActiveFaults) -> String {
        let st = self.state_at(tai_ns, f);
        let phase = self.phase_error_ns(tai_ns).round() as i64;
        let t = self.rel_s(tai_ns);
        let temp = 45.0 + 0.8 * (t / 600.0).sin();
        format!(
            "{},0x{:04x},{},0x{:04x},{},{:.3},{:.3},{:.2},{:.3},{:.2},{},---,{},{},0x{:08x},{},1.08-sim",
            st.status,
            st.alarm,
            self.cfg.serial,
            if self.discipline { 0x0010 } else { 0 },
            if st.locked { 4490 } else { 1200 },
            1.025,
            1.210,
            if st.since_power_s < self.cfg.warmup_s {
                52.4
            } else {
                17.2
            },
            0.842,
            temp,
            self.steer_at(tai_ns),
            phase,
            u8::from(self.discipline && st.locked),
            st.since_power_s as u64,
            st.since_lock_s as u64,
        )
    }

    /// Answers one command line (without line ending) at TAI `tai_ns`.
    pub fn command(&mut self, line: &str, tai_ns: i64, f: &ActiveFaults) -> String {
        let line = line.trim();
        match line {
            "!^" => self.status_line(tai_ns, f),
            "!6" => HEADER.to_string(),
            "!F?" => format!("Steer,{}", self.steer_at(tai_ns)),
            "!MD" => {
                self.discipline = true;
                "Discipline,1".into()
            }
            "!Md" => {
                self.discipline = false;
                "Discipline,0".into()
            }
            _ => {
                let (abs, arg) = if let Some(a) = line.strip_prefix("!FD") {
                    (true, a)
                } else if let Some(a) = line.strip_prefix("!FA") {
                    (false, a)
                } else {
                    return "ERR,unknown command".into();
                };
                let Ok(n) = arg.trim().parse::<i64>() else {
                    return "ERR,bad number".into();
                };
                let new = if abs {
                    n
                } else {
                    self.steer_at(tai_ns).saturating_add(n)
                };
                if new.abs() > MAX_STEER_PP15 {
                    return "ERR,steer out of range".into();
                }
                self.steer.retain(|s| s.0 < tai_ns);
                self.steer.push((tai_ns, new));
                format!("Steer,{new}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_790_000_037 * NANOS_PER_SEC;

    fn clock(src: &str) -> (AtomicClock, Scenario) {
        let sc = Scenario::from_toml(src, "t").unwrap();
        (AtomicClock::new(&sc, T0), sc)
    }

    #[test]
    fn warms_up_then_locks() {
        let (c, sc) = clock("atomic.warmup-s = 8.0");
        let s0 = c.state_at(T0, &sc.active(0.0));
        assert!(!s0.locked && s0.status == 8 && s0.alarm == ALARM_WARMUP);
        let s4 = c.state_at(T0 + 4 * NANOS_PER_SEC, &sc.active(4.0));
        assert_eq!(s4.status, 4);
        let s9 = c.state_at(T0 + 9 * NANOS_PER_SEC, &sc.active(9.0));
        assert!(s9.locked && s9.status == 0 && s9.alarm == 0);
        assert!((s9.since_lock_s - 1.0).abs() < 1e-9);
    }

    #[test]
    fn drifts_at_its_configured_rate() {
        // 30 ppt locked, 50 ppb while warming for 5 s.
        let (mut c, _) = clock("atomic.aging-ppt-per-day = 0.0");
        let hour = 3600 * NANOS_PER_SEC;
        let e = c.phase_error_ns(T0 + hour);
        // 5 s × 50 ppb = 250 ns, plus 3600 s × 30 ppt = 108 ns.
        assert!((e - 358.0).abs() < 0.5, "{e}");
        // Pulses land where the phase error says.
        let k = T0 / NANOS_PER_SEC + 3600;
        let edge = c.pulse_edge(k);
        assert!(
            (edge - (k * NANOS_PER_SEC - 358)).abs() <= 5,
            "{}",
            edge - k * NANOS_PER_SEC
        );
    }

    #[test]
    fn unlock_fault_and_restart() {
        let src = "[[fault]]\nkind = \"atomic-unlock\"\nat-s = 20.0\nduration-s = 10.0\n[[fault]]\nkind = \"atomic-warmup\"\nat-s = 50.0\n";
        let (c, sc) = clock(src);
        let at = |s: i64| c.state_at(T0 + s * NANOS_PER_SEC, &sc.active(s as f64));
        assert!(at(10).locked);
        let u = at(25);
        assert!(!u.locked && u.alarm == ALARM_LOCK_LOST && u.status == 9);
        assert!(at(31).locked && (at(31).since_lock_s - 1.0).abs() < 1e-9);
        let w = at(52);
        assert!(!w.locked && w.alarm == ALARM_WARMUP);
        assert!(at(56).locked);
    }

    #[test]
    fn telemetry_and_commands() {
        let (mut c, sc) = clock("");
        let f = sc.active(10.0);
        let t = T0 + 10 * NANOS_PER_SEC;
        let line = c.command("!^", t, &f);
        assert_eq!(line.split(',').count(), HEADER.split(',').count(), "{line}");
        assert!(line.starts_with("0,0x0000,1234CS00001,"));
        assert_eq!(c.command("!6", t, &f), HEADER);
        assert_eq!(c.command("!FD1000", t, &f), "Steer,1000");
        assert_eq!(c.command("!FA-250", t + 1, &f), "Steer,750");
        assert_eq!(c.command("!F?", t + 2, &f), "Steer,750");
        assert_eq!(
            c.command("!FD99999999", t + 3, &f),
            "ERR,steer out of range"
        );
        assert_eq!(c.command("!FDx", t + 3, &f), "ERR,bad number");
        assert_eq!(c.command("!MD", t, &f), "Discipline,1");
        assert_eq!(c.command("hello", t, &f), "ERR,unknown command");
        // A steer of 1e-12 (1000 pp1e15) for 1000 s adds ~1 ns... 750 pp15 × 1000 s = 0.75 ns.
        let before = c.phase_error_ns(t + 1000 * NANOS_PER_SEC);
        c.command("!FD0", t + 2, &f);
        let after = c.phase_error_ns(t + 1000 * NANOS_PER_SEC);
        assert!((before - after - 0.75).abs() < 0.01, "{before} {after}");
    }
}
