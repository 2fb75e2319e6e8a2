//! The daemon around [`HostClock`]: a poll task queries every master each interval, runs the
//! round, and publishes the shared-memory page (and the optional ClockBound segment); a watch
//! task detects clock disruptions; the gRPC service answers Now / Status / WatchStatus.

use crate::config::{Config, Steer};
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Request, Response};
use ttcore::disrupt::ClockPair;
use ttcore::host::{Disturbance, HostClock, HostParams, MasterSample, Verdict};
use ttcore::tsc::{TscCalibration, TscPair, TscRate};
use ttcore::vmclock::Snapshot as VmSnapshot;
use ttcore::{ClockStatus, Rate, RawReading};
use ttproto::v1;
use ttsys::clock;
use ttsys::ntp::{Burst, Source};
use ttsys::shm::cb_status;
use ttsys::shm::{
    ClockBound3Data, ClockBound3Publish, ClockBound3Writer, ClockBoundData, ClockBoundPublish,
    ClockBoundWriter, Knob, PageData, PagePublish, PageWriter,
};
use ttsys::vmclock::VmClock;

mod poll;
mod rpc;

mod metrics;
use poll::poll_task;
pub use rpc::Service;

/// One master as seen at the last round.
#[derive(Clone, Debug, Default)]
pub struct MasterView {
    /// Address.
    pub addr: String,
    /// Its id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Answered.
    pub reachable: bool,
    /// Verdict of the last round.
    pub verdict: Option<Verdict>,
    /// Error text when unreachable.
    pub error: String,
    /// Its midpoint − our estimate (ns).
    pub offset_ns: i64,
    /// δ (ns).
    pub delay_ns: i64,
    /// Its ε (ns).
    pub epsilon_ns: i64,
    /// Its status.
    pub status: Option<ClockStatus>,
    /// Leap info it published.
    pub leap: Option<v1::LeapInfo>,
    /// How the selected sample's stamps were taken ("kernel", "mixed", "user").
    pub stamping: String,
    /// The selected sample was interleaved (the master's kernel transmit stamp).
    pub interleaved: bool,
    /// Usable samples in the last burst.
    pub samples: u32,
    /// "nts" (authenticated) or "none" (plain: unauthenticated).
    pub auth: &'static str,
    /// What its bound rests on.
    pub assumption: &'static str,
    /// Half-width of the selected sample's offset interval (ns).
    pub radius_ns: i64,
    /// Polled no faster than this (s; raised by RATE kisses), 0 when it sets no limit.
    pub min_interval_s: f64,
    /// RATE kisses from it.
    pub rate_kisses: u64,
}

/// What the poll task decided last (for status).
#[derive(Clone, Copy, Debug)]
pub struct PollState {
    /// The next poll.
    pub plan: ttcore::poll::PollPlan,
    /// Exchanges per master in it.
    pub burst: u32,
}

/// Everything the service reads.
pub struct State {
    /// The page as last written.
    pub page: ArcSwap<PageData>,
    /// Masters.
    pub masters: Mutex<Vec<MasterView>>,
    /// The core.
    pub host: Mutex<HostClock>,
    /// The test knob.
    pub knob: Mutex<Knob>,
    /// Where the page goes.
    pub writer: Mutex<Box<dyn PagePublish>>,
    /// Where ClockBound's segment goes, when configured.
    pub clockbound: Option<Mutex<Box<dyn ClockBoundPublish>>>,
    /// Where ClockBound 3's segment (`shm1`) goes, when configured.
    pub clockbound3: Option<Mutex<Box<dyn ClockBound3Publish>>>,
    /// The time-stamp counter's calibration against the raw clock (for the page's counter block
    /// and ClockBound 3's `shm1`).
    pub tsc: Mutex<TscState>,
    /// Configuration.
    pub config: Config,
    /// Disruptions so far.
    pub disruptions: std::sync::atomic::AtomicU64,
    /// The disruption count when the last poll started: a poll that finds it changed drops the
    /// sources' interleaving state (the stamps of their previous exchange).
    pub poll_epoch: std::sync::atomic::AtomicU64,
    /// The raw clock's continuity watch (boot vs raw, [`ttcore::disrupt`]).
    pub detector: Mutex<clock::DisruptionDetector>,
    /// The verified (raw, boot) pair on the page, for readers to check against.
    pub clock_check: Mutex<Option<ClockPair>>,
    /// The VMClock device and its last snapshot, when the host has one.
    pub vmclock: Option<Mutex<(VmClock, VmSnapshot)>>,
    /// Raw at start.
    pub started_raw: i64,
    /// Status stream.
    pub watch: tokio::sync::watch::Sender<v1::DaemonStatus>,
    /// TLS configuration for masters' NTS-KE (`nts-trusted-certs`), loaded at start.
    pub nts_tls: Option<Arc<rustls::ClientConfig>>,
    /// Stop flag.
    pub stop: Arc<AtomicBool>,
    /// The poll task's last decision.
    pub poll: Mutex<PollState>,
    /// Requests sent to sources since start.
    pub exchanges: std::sync::atomic::AtomicU64,
}

impl State {
    /// timed's state at raw reading `now`, publishing through `writer` (and `clockbound`):
    /// unsynchronized, "no successful round yet", until the first fresh sync. The VMClock device
    /// is opened from the configuration.
    pub fn new(
        config: Config,
        params: HostParams,
        writer: Box<dyn PagePublish>,
        clockbound: Option<Box<dyn ClockBoundPublish>>,
        stop: Arc<AtomicBool>,
        now: i64,
    ) -> State {
        let (watch, _) = tokio::sync::watch::channel(v1::DaemonStatus::default());
        State {
            page: ArcSwap::from_pointee(PageData::unsynchronized(RawReading::from_nanos(now))),
            masters: Mutex::new(Vec::new()),
            host: Mutex::new(HostClock::new(params)),
            knob: Mutex::new(Knob::default()),
            writer: Mutex::new(writer),
            clockbound: clockbound.map(Mutex::new),
            clockbound3: None,
            // Not yet checked: the first publish checks and logs what it found.
            tsc: Mutex::new(TscState {
                unusable: Some(String::new()),
                calibration: None,
            }),
            vmclock: open_vmclock(&config.vmclock).map(Mutex::new),
            disruptions: Default::default(),
            poll_epoch: Default::default(),
            detector: Mutex::new(clock::DisruptionDetector::new()),
            clock_check: Mutex::new(None),
            started_raw: now,
            watch,
            stop,
            nts_tls: None,
            poll: Mutex::new(PollState {
                plan: config_plan(&config),
                burst: config.burst,
            }),
            exchanges: Default::default(),
            config,
        }
    }

    /// The host clock as timed (and every reader of the page) sees it: raw + knob.
    pub fn host_raw(&self) -> RawReading {
        self.knob
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .apply(clock::raw())
    }

    /// Checks the raw clock's continuity now ([`ttcore::disrupt::check`] against the last
    /// check). A disruption makes the core forget its model. Returns the pair the page should
    /// carry for its readers: the fresh one when it was read tightly (bracket ≤ 500 ns, well
    /// inside the readers' 1 µs slack), else the last such pair.
    fn check_clock(&self) -> (Option<ClockPair>, Option<u64>) {
        let mut det = self.detector.lock().unwrap_or_else(|e| e.into_inner());
        let mut marker = None;
        let mut result = det.check();
        if let Some(vm) = &self.vmclock {
            let mut vm = vm.lock().unwrap_or_else(|e| e.into_inner());
            match vm.0.read() {
                Ok(now) => {
                    let seen = ttcore::vmclock::check(&vm.1, &now);
                    vm.1 = now;
                    if let Err(d) = seen {
                        result = Err(d);
                    }
                    marker = Some(now.marker);
                }
                // Unreadable now: treated as a disruption (the check cannot be made), the
                // marker left off the page.
                Err(e) => {
                    tracing::warn!("{}: {e}", vm.0.path().display());
                    result = Err(ttcore::disrupt::Disruption::Hypervisor);
                }
            }
        }
        let pair = match result {
            Ok(p) => p,
            Err(d) => {
                self.record_disruption(Disturbance::Clock(d));
                det.last()
            }
        };
        let mut published = self.clock_check.lock().unwrap_or_else(|e| e.into_inner());
        if pair.gap <= 500 {
            *published = Some(pair);
        }
        (*published, marker)
    }

    /// Builds and writes the page from the core's state at host raw reading `raw`, after
    /// checking the raw clock's continuity (so no page is written over an unseen disruption).
    fn publish(&self, raw: RawReading) {
        let (clock_check, vmclock_marker) = self.check_clock();
        let host = self.host.lock().unwrap_or_else(|e| e.into_inner());
        let knob = *self.knob.lock().unwrap_or_else(|e| e.into_inner());
        let (status, _) = host.status_at(raw);
        let leap = self
            .masters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|m| m.verdict == Some(Verdict::Selected))
            .find_map(|m| m.leap);
        let mut d = match host.model() {
            Some(m) => PageData {
                model: *m,
                status,
                max_eps: host.params().max_epsilon,
                void_after_raw: raw.add(self.config.void_after()),
                holdover_after_raw: host
                    .last_sync_raw()
                    .unwrap_or(raw)
                    .add(host.params().holdover_after),
                knob,
                tai_minus_utc_s: leap.map_or(0, |l| l.tai_minus_utc_s as i64),
                next_leap_posix_s: leap.map_or(0, |l| l.next_leap_effective_posix_s),
                next_leap_delta: leap.map_or(0, |l| l.next_leap_delta as i64),
                updated_raw: raw,
                sync_count: host.syncs() as i64,
                writer_pid: std::process::id() as i64,
                disruptions: self.disruptions.load(Ordering::Relaxed) as i64,
                clock_check,
                vmclock_marker,
                tsc: None,
            },
            None => {
                let mut d = PageData::unsynchronized(raw);
                d.status = status;
                d.knob = knob;
                d.void_after_raw = raw.add(self.config.void_after());
                d.disruptions = self.disruptions.load(Ordering::Relaxed) as i64;
                d.clock_check = clock_check;
                d.vmclock_marker = vmclock_marker;
                d
            }
        };
        d.writer_pid = std::process::id() as i64;
        let sample = self.tsc_sample();
        // Our interval at the counter pair, shared by the page's counter block and ClockBound 3's
        // segment.
        let at_pair = sample.and_then(|(p, rate)| Some(d.counter_inputs(p, rate?)));
        d.tsc = at_pair
            .and_then(|(i, status)| d.counter_block(&i, status, clock::realtime_offset_ns()?));
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .publish(&d);
        self.page.store(Arc::new(d));
        drop(host);
        if let Some(cb) = &self.clockbound {
            self.publish_clockbound(cb, &d);
        }
        if let Some(cb) = &self.clockbound3 {
            self.publish_clockbound3(cb, &d, sample.map(|s| s.0), at_pair);
        }
    }

    /// The ClockBound segment: ClockBound clients centre their interval on `CLOCK_REALTIME`, so
    /// the bound is |realtime − our estimate| + ε, growing at our drift bound plus the rate at
    /// which realtime and the timescale separate.
    fn publish_clockbound(&self, cb: &Mutex<Box<dyn ClockBoundPublish>>, d: &PageData) {
        let (raw_real, rt, w1) = clock::pair(clock::realtime_ns);
        // ClockBound's as_of / void_after are CLOCK_MONOTONIC_COARSE, and its client refuses a
        // coarse reading earlier than as_of: stamp with the coarse clock (≤ the fine one).
        let (raw_real2, mono, w2) = clock::pair(clock::monotonic_coarse_ns);
        let r = d.read_at(RawReading::from_nanos(raw_real));
        // The bound's arithmetic is ttcore's; here only the clocks are read.
        let b = ttcore::clockbound::bound(&ttcore::clockbound::CbInputs {
            interval: r.interval,
            status: r.status,
            realtime_ns: rt,
            // Pairing error: the two pair reads and the gap between them.
            pairing_ns: w1 + w2 + (raw_real2 - raw_real).abs(),
            model_freq: d.model.freq,
            model_drift: d.model.drift_bound,
            coarse_tick_ns: clock::monotonic_coarse_resolution_ns(),
        });
        let data = ClockBoundData {
            as_of_mono_ns: mono,
            void_after_mono_ns: mono + self.config.void_after().as_nanos(),
            bound_ns: b.bound_ns,
            max_drift_ppb: b.max_drift_ppb,
            status: b.status.code(),
            disruption_marker: self.disruptions.load(Ordering::Relaxed),
        };
        cb.lock().unwrap_or_else(|e| e.into_inner()).publish(&data);
    }

    /// The time-stamp counter paired with the raw clock now, and its calibrated rate (once the
    /// baseline is long enough). The pair is checked against the calibration: a pair off the
    /// line (a counter reset, a clocksource change) starts it over, and so does a host on which
    /// the counter became unusable (both logged). `None` without a usable counter.
    fn tsc_sample(&self) -> Option<(TscPair, Option<TscRate>)> {
        let mut t = self.tsc.lock().unwrap_or_else(|e| e.into_inner());
        let why = ttsys::tsc::unusable_reason();
        if why != t.unusable {
            match &why {
                Some(w) => tracing::warn!("time-stamp counter not used: {w}"),
                None => tracing::info!("calibrating the time-stamp counter against the raw clock"),
            }
            t.unusable = why.clone();
            t.calibration = None;
        }
        if why.is_some() {
            return None;
        }
        let p = ttsys::tsc::pair()?;
        let rate = match &mut t.calibration {
            Some(c) => match c.add(p) {
                Ok(()) => c.rate(),
                Err(e) => {
                    tracing::warn!("{e}: calibrating again");
                    t.calibration = Some(TscCalibration::start(p));
                    None
                }
            },
            None => {
                t.calibration = Some(TscCalibration::start(p));
                None
            }
        };
        Some((p, rate))
    }

    /// ClockBound 3's segment: our interval as a counter → time mapping, from the same counter
    /// pair and interval as the page's block (`at_pair`, [`PageData::counter_inputs`]); the
    /// arithmetic is [`ttcore::tsc::cb_v3`]. Without a usable counter or a trustworthy interval
    /// the segment says so (`Unknown`, `Disrupted`).
    fn publish_clockbound3(
        &self,
        cb: &Mutex<Box<dyn ClockBound3Publish>>,
        d: &PageData,
        pair: Option<TscPair>,
        at_pair: Option<(ttcore::tsc::CbV3Inputs, ClockStatus)>,
    ) {
        let marker = self.disruptions.load(Ordering::Relaxed);
        let void = self.config.void_after().as_nanos();
        let mut data = ClockBound3Data {
            as_of_tsc: pair.map_or(0, |p| p.tsc),
            as_of_ns: clock::realtime_ns(),
            void_after_ns: 0,
            period_s: 0.0,
            period_err: 0.0,
            bound_ns: ttcore::clockbound::UNKNOWN_BOUND_NS,
            max_drift_ppb: 0,
            status: cb_status::UNKNOWN,
            disruption_marker: marker,
        };
        if let Some((i, st)) = at_pair {
            let status = ttcore::clockbound::CbStatus::from(st);
            data.status = status.code();
            if st.is_trustworthy() && d.knob == Knob::default() {
                let v = ttcore::tsc::cb_v3(&i);
                data = ClockBound3Data {
                    as_of_tsc: v.as_of_tsc,
                    as_of_ns: v.as_of_ns,
                    void_after_ns: v.as_of_ns.saturating_add(void),
                    period_s: v.period_s,
                    period_err: v.period_err,
                    bound_ns: v.bound_ns,
                    max_drift_ppb: v.max_drift_ppb,
                    status: status.code(),
                    disruption_marker: marker,
                };
            } else if st.is_trustworthy() {
                // The test knob bends the host clock, which the counter does not follow.
                data.status = cb_status::UNKNOWN;
            }
        }
        cb.lock().unwrap_or_else(|e| e.into_inner()).publish(&data);
    }

    /// The Now answer at this instant.
    pub fn now(&self) -> v1::NowResponse {
        let (raw_real, rt, _) = clock::pair(clock::realtime_ns);
        let d = self.page.load();
        let r = d.read_at(RawReading::from_nanos(raw_real));
        let reason = self
            .host
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .status_at(r.raw)
            .1;
        v1::NowResponse {
            earliest_ns: r.interval.earliest().as_nanos(),
            latest_ns: r.interval.latest().as_nanos(),
            epsilon_ns: r.interval.epsilon().as_nanos(),
            status: ttproto::status_to_wire(r.status) as i32,
            reason: match r.degraded {
                ttsys::shm::Degraded::Void => "page void: timed stopped updating it".into(),
                _ => reason.to_string(),
            },
            host_realtime_ns: rt,
        }
    }

    /// The Status answer at this instant.
    // One struct literal: the status message, field by field.
    pub fn status(&self) -> v1::DaemonStatus {
        let now = self.now();
        let host = self.host.lock().unwrap_or_else(|e| e.into_inner());
        let raw = self.host_raw();
        let knob = *self.knob.lock().unwrap_or_else(|e| e.into_inner());
        let poll = *self.poll.lock().unwrap_or_else(|e| e.into_inner());
        let (freq_ppm, freq_bound_ppm) = match (host.model(), host.freq_bounds()) {
            (Some(m), Some((lo, hi))) => (m.freq.as_ppm_f64(), (hi - lo) as f64 / 2e6),
            (Some(m), None) => (m.freq.as_ppm_f64(), 1000.0),
            _ => (0.0, 0.0),
        };
        let masters = self
            .masters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        v1::DaemonStatus {
            status: now.status,
            reason: now.reason.clone(),
            epsilon_ns: now.epsilon_ns,
            earliest_ns: now.earliest_ns,
            latest_ns: now.latest_ns,
            host_realtime_ns: now.host_realtime_ns,
            freq_ppm,
            freq_bound_ppm,
            max_drift_ppm: self.config.max_drift_ppm,
            max_epsilon_ns: self.config.max_epsilon_ns,
            last_sync_age_s: host
                .last_sync_raw()
                .map_or(-1.0, |l| raw.since(l).as_nanos() as f64 / 1e9),
            syncs: host.syncs(),
            disruptions: self.disruptions.load(Ordering::Relaxed),
            masters: masters
                .iter()
                .map(|m| v1::MasterSource {
                    addr: m.addr.clone(),
                    id: m.id.clone(),
                    reachable: m.reachable,
                    selected: m.verdict == Some(Verdict::Selected),
                    reason: match &m.verdict {
                        Some(Verdict::Unreachable) | None if !m.error.is_empty() => {
                            format!("no answer: {}", m.error)
                        }
                        Some(v) => v.reason().to_string(),
                        None => "not polled yet".into(),
                    },
                    offset_ns: m.offset_ns,
                    delay_ns: m.delay_ns,
                    epsilon_ns: m.epsilon_ns,
                    status: m.status.map_or(0, |s| ttproto::status_to_wire(s) as i32),
                    kind: m.kind.clone(),
                    transport: if m.kind == "phc" { "ioctl" } else { "udp" }.into(),
                    stamping: m.stamping.clone(),
                    interleaved: m.interleaved,
                    samples: m.samples,
                    radius_ns: m.radius_ns,
                    auth: m.auth.into(),
                    assumption: m.assumption.into(),
                    min_poll_interval_s: m.min_interval_s,
                    rate_kisses: m.rate_kisses,
                })
                .collect(),
            shm_path: self.config.shm_path.display().to_string(),
            clockbound_path: self
                .config
                .clockbound_shm_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            knob_ppm: knob.skew.as_ppm_f64(),
            knob_step_ns: knob.step_ns,
            poll_interval_s: poll.plan.interval.as_nanos() as f64 / 1e9,
            poll_reason: poll.plan.reason.as_str().into(),
            exchanges: self.exchanges.load(Ordering::Relaxed),
            target_epsilon_ns: self.config.target_epsilon_ns.unwrap_or(0),
            uptime_s: (clock::raw_ns() - self.started_raw) as f64 / 1e9,
            frequency_mode: self.config.frequency.as_str().into(),
            drift_bound_ppm: host.model().map_or(0.0, |m| m.drift_bound.as_ppm_f64()),
            burst: poll.burst,
            epsilon_sync_ns: host.model().map_or(0, |m| m.eps_ref.as_nanos()),
            pause_detection: match &self.vmclock {
                Some(v) => format!(
                    "vmclock {}",
                    v.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                        .path()
                        .display()
                ),
                None => "none: assumes the raw clock is never paused unnoticed (no VMClock device)"
                    .into(),
            },
            kernel_slew: match ttsys::steer::kernel_slew() {
                Ok(k) => k.describe(),
                Err(e) => format!("unknown (adjtimex: {e})"),
            },
            counter: self.counter_description(),
        }
    }

    /// What `ttctl status` says about the time-stamp counter: its calibration, and whether the
    /// page carries a counter block now (TT.now()'s counter path).
    fn counter_description(&self) -> String {
        let t = self.tsc.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(why) = &t.unusable {
            return format!(
                "off: {}",
                if why.is_empty() {
                    "not checked yet"
                } else {
                    why
                }
            );
        }
        let Some(c) = t.calibration else {
            return "calibrating: no pair yet".into();
        };
        let Some(r) = c.rate() else {
            return "calibrating: baseline under 1 s".into();
        };
        let block = match self.page.load().tsc {
            Some(_) => "the page's counter block is written (TT.now() reads the counter)",
            None => "no counter block now (the page is not trustworthy)",
        };
        format!(
            "on: {:.6} ns/tick ({:.3} GHz) ± {:.3} ppb; {block}",
            r.ns_per_tick,
            1.0 / r.ns_per_tick,
            r.rel_err * 1e9
        )
    }

    /// Logs and counts a disruption, and makes the core forget its model.
    fn record_disruption(&self, why: Disturbance) {
        tracing::warn!("clock disruption: {why}");
        self.disruptions.fetch_add(1, Ordering::Relaxed);
        self.host
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .on_disruption(why);
    }

    /// Records a disruption: the core forgets its model and the page says so at once.
    pub fn disrupt(&self, why: Disturbance) {
        self.record_disruption(why);
        self.publish(self.host_raw());
    }
}

/// Warns when too few sources are configured to outvote a liar.
fn warn_few_sources(config: &Config) {
    if config.sources() < 3 {
        tracing::warn!(
            "only {} source(s) configured: a lying source cannot be outvoted with fewer than three",
            config.sources()
        );
    }
}

/// ClockBound 3's segment writer, when configured.
fn open_clockbound3(
    config: &Config,
) -> Result<Option<Mutex<Box<dyn ClockBound3Publish>>>, DaemonError> {
    Ok(match &config.clockbound3_shm_path {
        Some(p) => Some(Mutex::new(Box::new(ClockBound3Writer::open(p)?))),
        None => None,
    })
}

/// The time-stamp counter as timed uses it for ClockBound 3's segment.
#[derive(Debug, Default)]
pub struct TscState {
    /// Why the counter is not used (`None`: it is).
    pub unusable: Option<String>,
    /// The calibration so far.
    pub calibration: Option<TscCalibration>,
}

/// The first poll's plan: the configuration's, with no model yet.
fn config_plan(config: &Config) -> ttcore::poll::PollPlan {
    config
        .poll_params()
        .plan(None, RawReading::from_nanos(0), ttcore::Span::ZERO, 0)
}

/// The VMClock device at `path` and a first snapshot, if it exists and reads.
fn open_vmclock(path: &std::path::Path) -> Option<(VmClock, VmSnapshot)> {
    if !path.exists() {
        tracing::info!(
            "no VMClock at {}: assuming the raw clock is never paused unnoticed",
            path.display()
        );
        return None;
    }
    let opened = VmClock::open(path).map_err(|e| e.to_string());
    match opened.and_then(|v| v.read().map(|s| (v, s)).map_err(|e| e.to_string())) {
        Ok(v) => {
            tracing::info!("watching VMClock {} for disruptions", path.display());
            Some(v)
        }
        Err(e) => {
            tracing::warn!("VMClock {} unusable, not watched: {e}", path.display());
            None
        }
    }
}

/// How often the page is re-checked and re-published (ms). Readers allow 500 ppm of the
/// page's check age, so 50 ms keeps their tolerance near 25 µs + 1 µs: any stall or step from
/// about 30 µs up is refused by the next read.
const WATCH_MS: u64 = 50;

/// Checks the raw clock's continuity and re-publishes the page (with a fresh verified pair)
/// every [`WATCH_MS`], and pets the watchdog.
async fn watch_task(state: Arc<State>) {
    let mut usec = 0u64;
    let watchdog = sd_notify::watchdog_enabled(false, &mut usec);
    let mut ticks = 0u64;
    while !state.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(WATCH_MS)).await;
        state.publish(state.host_raw());
        ticks += 1;
        if watchdog && ticks % (1000 / WATCH_MS) == 0 {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        }
    }
}

/// Why timed could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration's parameters are inconsistent.
    #[error(transparent)]
    Config(ttsys::config::InvalidKey),
    /// The page's directory could not be made.
    #[error("{}: {source}", dir.display())]
    PageDir {
        /// The directory.
        dir: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A page (ours or ClockBound's) could not be opened.
    #[error(transparent)]
    Page(#[from] ttsys::shm::ShmError),
    /// A signal handler could not be installed, or the runtime could not start.
    #[error("start-up: {0}")]
    Startup(#[source] std::io::Error),
    /// The gRPC address could not be bound.
    #[error("listen {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The management credentials could not be set up.
    #[error("[management] {0}")]
    Management(#[from] ttsys::mgmt::MgmtError),
    /// `nts-trusted-certs` could not be loaded.
    #[error("nts-trusted-certs: {0}")]
    Nts(#[from] ttsys::nts::NtsKeError),
}

/// Runs timed until SIGINT/SIGTERM.
pub fn run(config: Config) -> Result<(), DaemonError> {
    let params = config.host_params().map_err(DaemonError::Config)?;
    warn_few_sources(&config);
    if let Some(d) = config.shm_path.parent() {
        std::fs::create_dir_all(d).map_err(|source| DaemonError::PageDir {
            dir: d.to_path_buf(),
            source,
        })?;
    }
    let writer: Box<dyn PagePublish> = Box::new(PageWriter::open(&config.shm_path)?);
    let clockbound = match &config.clockbound_shm_path {
        Some(p) => Some(Box::new(ClockBoundWriter::open(p)?) as Box<dyn ClockBoundPublish>),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(DaemonError::Startup)?;
    }
    let nts_tls = match &config.nts_trusted_certs {
        Some(ca) => Some(ttsys::nts::client_config(ca, ttcore::ntp::nts::ALPN)?),
        None => None,
    };
    let now = clock::raw_ns();
    let mut state = State::new(
        config.clone(),
        params,
        writer,
        clockbound,
        stop.clone(),
        now,
    );
    state.nts_tls = nts_tls;
    state.clockbound3 = open_clockbound3(&config)?;
    let state = Arc::new(state);
    state.publish(RawReading::from_nanos(now));
    let security = config
        .management
        .server(config.listen, OPEN_METHODS)
        .map_err(DaemonError::Management)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(DaemonError::Startup)?;
    let result = rt.block_on(async {
        tokio::spawn(poll_task(state.clone()));
        if let Some(m) = config.metrics_listen {
            let st = state.clone();
            tokio::spawn(ttsys::metrics::serve(
                m,
                Arc::new(move || metrics::metrics_text(&st.status())),
            ));
        }
        tokio::spawn(watch_task(state.clone()));
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| DaemonError::Listen {
                addr: config.listen,
                source,
            })?;
        tracing::info!(
            "timed: {} master(s), {} PHC(s), page {}, gRPC on {} ({}, {})",
            config.masters.len(),
            config.phcs.len(),
            config.shm_path.display(),
            config.listen,
            if security.tls() {
                "TLS"
            } else {
                "plaintext, loopback"
            },
            if config.management.token_file.is_some() {
                "SetClockKnob needs the token"
            } else {
                "SetClockKnob off: no token-file"
            }
        );
        let stop2 = stop.clone();
        security
            .builder()?
            .add_service(v1::time_daemon_server::TimeDaemonServer::new(Service(
                state.clone(),
            )))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move {
                    while !stop2.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            )
            .await?;
        Ok(())
    });
    stop.store(true, Ordering::Relaxed);
    // The page stays: readers see it go void after void-after-ms, or a restarted timed resume it.
    tracing::info!("timed stopped");
    result
}

/// The gRPC methods anyone who reaches the listener may call (reads); every other method needs
/// the management token ([`ttsys::mgmt`]).
pub const OPEN_METHODS: &[&str] = &[
    "/truetime.v1.TimeDaemon/Now",
    "/truetime.v1.TimeDaemon/Status",
    "/truetime.v1.TimeDaemon/WatchStatus",
];

#[cfg(test)]
mod tests {
    use super::*;
    use ttcore::host::HostReason;
    use ttsys::shm::cb_status;

    /// Keeps what is published, for the test to look at.
    #[derive(Clone)]
    struct Recorder<T>(Arc<Mutex<Vec<T>>>);

    impl<T> Recorder<T> {
        fn new() -> Self {
            Recorder(Arc::new(Mutex::new(Vec::new())))
        }
    }

    impl PagePublish for Recorder<PageData> {
        fn publish(&mut self, d: &PageData) {
            self.0.lock().unwrap().push(*d);
        }
    }

    impl ClockBoundPublish for Recorder<ClockBoundData> {
        fn publish(&mut self, d: &ClockBoundData) {
            self.0.lock().unwrap().push(*d);
        }
    }

    #[test]
    fn publishing_without_files() {
        let cfg = Config::from_toml(
            "shm-path = \"/nonexistent/page\"\nvmclock = \"/nonexistent/vmclock\"\n\
             allow-test-knob = true\n[[master]]\naddr = \"127.0.0.1:7001\"\n",
            "t",
        )
        .unwrap();
        let params = cfg.host_params().unwrap();
        let (page, cb) = (Recorder::new(), Recorder::new());
        let now = clock::raw_ns();
        let state = State::new(
            cfg,
            params,
            Box::new(page.clone()),
            Some(Box::new(cb.clone())),
            Arc::new(AtomicBool::new(false)),
            now,
        );
        state.publish(RawReading::from_nanos(now));
        *state.knob.lock().unwrap() = Knob {
            step_ns: 5_000,
            ..Knob::default()
        };
        state.publish(RawReading::from_nanos(now + 1_000));
        let pages = page.0.lock().unwrap().clone();
        assert_eq!(pages.len(), 2);
        // A fresh start holds no model: unsynchronized (not disrupted: nothing went wrong), and
        // the status says why.
        assert!(
            pages
                .iter()
                .all(|d| d.status == ClockStatus::Unsynchronized),
            "{pages:?}"
        );
        let answer = state.now();
        assert_eq!(
            ttproto::status_from_wire(answer.status),
            ClockStatus::Unsynchronized
        );
        assert_eq!(answer.reason, HostReason::NotYetSynchronized.to_string());
        assert_eq!(pages[0].writer_pid, std::process::id() as i64);
        assert_eq!(pages[1].knob.step_ns, 5_000);
        assert_eq!(
            pages[1].void_after_raw,
            RawReading::from_nanos(now + 1_000 + 10_000_000_000)
        );
        // The reader's continuity check has a pair to check against.
        assert!(pages[1].clock_check.is_some());
        assert_eq!(**state.page.load(), pages[1]);
        // ClockBound's clients get the same refusal, with no usable bound.
        let cbs = cb.0.lock().unwrap().clone();
        assert_eq!(cbs.len(), 2);
        // ClockBound's own daemon writes Unknown until it has a bound; so do we.
        assert!(
            cbs.iter().all(|d| d.status == cb_status::UNKNOWN),
            "{cbs:?}"
        );
    }

    #[test]
    fn clockbound_status_codes_are_the_segments() {
        use ttcore::clockbound::CbStatus;
        for (ours, theirs) in [
            (CbStatus::Unknown, cb_status::UNKNOWN),
            (CbStatus::Synchronized, cb_status::SYNCHRONIZED),
            (CbStatus::FreeRunning, cb_status::FREE_RUNNING),
            (CbStatus::Disrupted, cb_status::DISRUPTED),
        ] {
            assert_eq!(ours.code(), theirs, "{ours:?}");
        }
    }
}
