//! A time master in virtual time: the real [`MasterCore`] driven by firmware-sim's device
//! models and a simulated local oscillator. Tests and the fleet simulator use it; nothing here
//! re-implements the master's logic.
//!
//! True time is TAI nanoseconds (the simulator's physics); the master's local raw clock is an
//! [`Oscillator`] reading of true time minus a boot offset; every device event (pulse edge,
//! each NMEA sentence at its serial pacing, atomic pulse, telemetry, lock line) is delivered at
//! the raw reading of the instant it happens, interleaved with ticks every 100 ms.

use crate::core::master::{MasterCore, MasterParams, Snapshot};
use crate::core::telemetry;
use firmware_sim::atomic::AtomicClock;
use firmware_sim::gps::{GpsReceiver, serial_time_ns};
use firmware_sim::scenario::Scenario;
use firmware_sim::truth::Truth;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use ttcore::osc::{Oscillator, OscillatorParams};
use ttcore::{LeapTable, NANOS_PER_SEC, RawReading, Timestamp};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    GpsPulse,
    Nmea(String),
    AtomicPulse,
    AtomicStatus,
    Tick,
}

/// A master with its devices in virtual time.
pub struct VirtualMaster {
    /// The real master logic.
    pub core: MasterCore,
    scenario: Scenario,
    truth: Truth,
    gps: Option<GpsReceiver>,
    atomic: Option<AtomicClock>,
    osc: Oscillator,
    /// raw = oscillator reading − `boot`.
    boot: i64,
    start_tai: i64,
    now_tai: i64,
    next_gps_s: i64,
    next_atomic_k: i64,
    next_tick: i64,
    queue: BinaryHeap<Reverse<(i64, u64, Ev)>>,
    seq: u64,
    /// Device events fed to the core so far: while it stays the same, so does the core (a
    /// caller may keep what it derived from the core until it changes).
    pub events: u64,
}

impl VirtualMaster {
    /// A master with `params`, devices from `scenario` (its `gps`/`atomic` sections; a device is
    /// absent when disabled there or when `params` has no such input), a local oscillator
    /// `local`, starting at TAI `start_tai`.
    pub fn new(
        params: MasterParams,
        scenario: Scenario,
        local: OscillatorParams,
        seed: u64,
        start_tai: i64,
    ) -> Self {
        let leap = scenario
            .leap_table()
            .unwrap_or_else(|_| LeapTable::builtin());
        let truth = Truth::virtual_start(leap.clone(), &leap.tai_to_utc(start_tai), 0)
            .unwrap_or_else(|_| Truth::realtime(LeapTable::builtin()));
        let gps = (scenario.gps.enabled && params.gps.is_some()).then(|| {
            GpsReceiver::new(
                scenario.gps.clone(),
                scenario.seed,
                start_tai / NANOS_PER_SEC,
            )
        });
        let atomic = (scenario.atomic.enabled && params.atomic.is_some())
            .then(|| AtomicClock::new(&scenario, start_tai));
        let osc = Oscillator::new(local, start_tai, seed);
        let first = start_tai.div_euclid(NANOS_PER_SEC) + 1;
        VirtualMaster {
            core: MasterCore::new(params, leap),
            scenario,
            truth,
            gps,
            atomic,
            osc,
            boot: start_tai - 5 * NANOS_PER_SEC,
            start_tai,
            now_tai: start_tai,
            next_gps_s: first,
            next_atomic_k: first,
            next_tick: start_tai,
            queue: BinaryHeap::new(),
            seq: 0,
            events: 0,
        }
    }

    /// The master's raw clock reading at TAI `tai`.
    pub fn raw_at(&mut self, tai: i64) -> i64 {
        self.osc.reading_at(tai) - self.boot
    }

    /// True time (the project timescale) at TAI `tai`.
    pub fn truth_at(&self, tai: i64) -> Timestamp {
        self.truth.timescale_at_tai(tai)
    }

    /// The TAI instant of the master's raw reading `raw` (inverse of [`VirtualMaster::raw_at`]).
    pub fn tai_at_raw(&mut self, raw: i64) -> i64 {
        self.osc.true_at(raw + self.boot)
    }

    /// Current virtual time (TAI ns).
    pub fn now(&self) -> i64 {
        self.now_tai
    }

    fn push(&mut self, at: i64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    /// Generates device events for every second that starts before `until`.
    fn schedule(&mut self, until: i64) {
        while self.next_gps_s * NANOS_PER_SEC <= until {
            let s = self.next_gps_s;
            self.next_gps_s += 1;
            let f = self
                .scenario
                .active((s * NANOS_PER_SEC - self.start_tai) as f64 / 1e9);
            if let Some(g) = self.gps.as_mut() {
                let sec = g.second(s, &self.truth, &f);
                let baud = g.config().baud;
                if let Some(p) = sec.pulse {
                    self.push(p.edge_tai_ns, Ev::GpsPulse);
                }
                if let Some(b) = sec.burst {
                    let mut t = b.start_tai_ns;
                    for c in b.chunks {
                        t += serial_time_ns(c.len(), baud);
                        self.push(t, Ev::Nmea(String::from_utf8_lossy(&c).into_owned()));
                    }
                }
            }
        }
        while self.atomic.is_some() && self.next_atomic_k * NANOS_PER_SEC <= until {
            let k = self.next_atomic_k;
            self.next_atomic_k += 1;
            if let Some(a) = self.atomic.as_mut() {
                let edge = a.pulse_edge(k);
                self.push(edge, Ev::AtomicPulse);
                self.push(k * NANOS_PER_SEC + 500_000_000, Ev::AtomicStatus);
            }
        }
        while self.next_tick <= until {
            let t = self.next_tick;
            self.next_tick += 100_000_000;
            self.push(t, Ev::Tick);
        }
    }

    /// Runs every event up to TAI `until`.
    pub fn advance_to(&mut self, until: i64) {
        self.schedule(until + 2 * NANOS_PER_SEC);
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > until {
                break;
            }
            let Some(Reverse((at, _, ev))) = self.queue.pop() else {
                break;
            };
            let raw = RawReading::from_nanos(self.raw_at(at));
            self.events += 1;
            match ev {
                Ev::GpsPulse => self.core.on_gps_pulse(raw),
                Ev::Nmea(text) => {
                    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
                        let _ = self.core.on_nmea_line(line, raw);
                    }
                }
                Ev::AtomicPulse => self.core.on_atomic_pulse(raw),
                Ev::AtomicStatus => {
                    let f = self.scenario.active((at - self.start_tai) as f64 / 1e9);
                    if let Some(a) = self.atomic.as_mut() {
                        let st = a.state_at(at, &f);
                        let line = a.status_line(at, &f);
                        self.core.on_atomic_lock(st.locked, raw);
                        if let Ok(t) = telemetry::parse(&line) {
                            self.core.on_atomic_telemetry(t.status, t.alarm, raw);
                        }
                    }
                }
                Ev::Tick => self.core.tick(raw),
            }
        }
        self.now_tai = self.now_tai.max(until);
    }

    /// The master's snapshot and true time at TAI `tai` (advancing to it first).
    pub fn observe(&mut self, tai: i64) -> (Snapshot, i64, Timestamp) {
        self.advance_to(tai);
        let raw = self.raw_at(tai);
        (
            self.core.snapshot(RawReading::from_nanos(raw)),
            raw,
            self.truth_at(tai),
        )
    }
}
