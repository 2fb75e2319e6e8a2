//! The daemon around [`MasterCore`]: input threads read devices and send timestamped events to
//! one core thread, which publishes a snapshot that the gRPC service and the metrics endpoint
//! read without locking; a peer task polls the other masters for cross-checks.

use crate::config::{Config, LockLine, PpsSource};
use crate::core::master::{CrossCheck, MasterCore, MasterKind, Reference, Snapshot};
use crate::ntp_server::{ServerStats, empty_view, view_of};
use crate::sim::parse_status_line;
use arc_swap::ArcSwap;
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::{Request, Response};
use ttcore::ntp::MasterView;
use ttcore::sock::SockSample;
use ttcore::{ClockStatus, LeapTable, NANOS_PER_SEC, OffsetInterval, Rate, Span};
use ttproto::v1;
use ttsys::clock::{self, raw_ns};

/// An event for the core thread, stamped with the raw reading at which it happened.
#[derive(Debug)]
pub enum Input {
    /// A GPS pulse edge.
    GpsPulse(i64),
    /// One NMEA line and its receipt time.
    Nmea(String, i64),
    /// An atomic 1PPS edge.
    AtomicPulse(i64),
    /// Atomic telemetry: status, alarm.
    AtomicTelemetry(u8, u16, i64),
    /// Lock line level.
    AtomicLock(bool, i64),
    /// A peer round: raw reading, per-peer offset intervals (None = not usable).
    PeerRound(i64, Vec<Option<OffsetInterval>>),
}

/// Per-input statistics shown in Status.
#[derive(Clone, Debug, Default)]
pub struct InputStat {
    /// Name ("nmea", "pps", …).
    pub name: String,
    /// Device or socket.
    pub source: String,
    /// Working right now.
    pub ok: bool,
    /// Last error or state.
    pub detail: String,
    /// Events delivered.
    pub events: u64,
    /// Errors seen.
    pub errors: u64,
    /// Raw reading of the last event.
    pub last_raw: Option<i64>,
}

/// What a peer looked like at the last round.
#[derive(Clone, Debug, Default)]
pub struct PeerStat {
    /// Address.
    pub addr: String,
    /// Its id.
    pub id: String,
    /// Answered.
    pub reachable: bool,
    /// In the agreeing set.
    pub agrees: bool,
    /// Its timescale − ours (ns, midpoint).
    pub offset_ns: i64,
    /// Round trip (ns).
    pub delay_ns: i64,
    /// Its ε (ns).
    pub epsilon_ns: i64,
    /// Its status.
    pub status: Option<ClockStatus>,
    /// Last error.
    pub error: String,
    /// How the best sample's stamps were taken.
    pub stamping: String,
}

/// What the core thread publishes.
#[derive(Clone, Debug)]
pub struct Published {
    /// The snapshot.
    pub snap: Snapshot,
    /// Counters.
    pub counters: crate::core::master::Counters,
    /// Recent events.
    pub events: Vec<String>,
    /// Atomic lock.
    pub atomic_locked: bool,
}

/// State shared by the threads and tasks.
pub struct Shared {
    /// Latest publication.
    pub published: ArcSwap<Published>,
    /// Inputs.
    pub inputs: Mutex<Vec<InputStat>>,
    /// Peers.
    pub peers: Mutex<Vec<PeerStat>>,
    /// Raw reading at start.
    pub started_raw: i64,
    /// Configuration.
    pub config: Config,
    /// Set to stop everything.
    pub stop: Arc<AtomicBool>,
    /// What time replies are built from (updated with every publication).
    pub view: Arc<ArcSwap<MasterView>>,
    /// The time-transfer server's counters.
    pub transfer: Arc<ServerStats>,
}

impl Shared {
    fn input(&self, name: &str, f: impl FnOnce(&mut InputStat)) {
        let mut v = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = v.iter_mut().find(|s| s.name == name) {
            f(s);
        }
    }
}

fn register(shared: &Shared, name: &str, source: &Path) {
    shared
        .inputs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(InputStat {
            name: name.into(),
            source: source.display().to_string(),
            detail: "starting".into(),
            ..Default::default()
        });
}

// ----- input threads ---------------------------------------------------------------------

/// Opens the serial device at `path` (input buffer cleared), retrying every second until it
/// opens or the daemon stops (`None`). Every failure counts in the input's status; the first
/// of a run of failures is logged.
fn open_serial(
    path: &Path,
    baud: u32,
    timeout: Duration,
    name: &'static str,
    shared: &Shared,
) -> Option<Box<dyn serialport::SerialPort>> {
    let mut logged = false;
    while !shared.stop.load(Ordering::Relaxed) {
        match serialport::new(path.to_string_lossy(), baud)
            .timeout(timeout)
            .open()
        {
            Ok(port) => {
                tracing::info!("{name}: reading {}", path.display());
                let _ = port.clear(serialport::ClearBuffer::Input);
                return Some(port);
            }
            Err(e) => {
                if !logged {
                    tracing::warn!(
                        "{name}: cannot open {}: {e}; retrying every second",
                        path.display()
                    );
                    logged = true;
                }
                shared.input(name, |s| {
                    s.ok = false;
                    s.errors += 1;
                    s.detail = format!("cannot open: {e}");
                });
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    None
}

/// Reads NMEA lines from a serial device, reopening it after errors.
fn nmea_thread(
    path: PathBuf,
    baud: u32,
    name: &'static str,
    tx: Sender<Input>,
    shared: Arc<Shared>,
) {
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(mut port) = open_serial(&path, baud, Duration::from_millis(200), name, &shared)
        else {
            return;
        };
        shared.input(name, |s| {
            s.ok = true;
            s.detail = "open".into();
        });
        let mut line: Vec<u8> = Vec::with_capacity(128);
        let mut buf = [0u8; 1024];
        while !shared.stop.load(Ordering::Relaxed) {
            match port.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let raw = raw_ns();
                    for &b in &buf[..n] {
                        if b == b'\n' {
                            let text = String::from_utf8_lossy(&line).into_owned();
                            line.clear();
                            if tx.send(Input::Nmea(text, raw)).is_err() {
                                return;
                            }
                            shared.input(name, |s| {
                                s.events += 1;
                                s.last_raw = Some(raw);
                            });
                        } else if line.len() < 256 {
                            line.push(b);
                        } else {
                            // An overlong "line" is noise: drop it and resynchronize.
                            line.clear();
                            shared.input(name, |s| s.errors += 1);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => {
                    tracing::warn!("{name}: {}: {e}; reopening", path.display());
                    shared.input(name, |s| {
                        s.ok = false;
                        s.errors += 1;
                        s.detail = format!("read error: {e}");
                    });
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The exact system time of a PPS edge from a SOCK sample: `offset` = (true second − edge
/// system time), and `tv` is the edge truncated to µs, so the edge is the nearest whole second
/// of `tv + offset`, minus `offset`.
pub fn sock_edge_sys_ns(s: &SockSample) -> i64 {
    let t = s.true_time_ns();
    let second = (t + NANOS_PER_SEC / 2).div_euclid(NANOS_PER_SEC) * NANOS_PER_SEC;
    second - s.offset_ns()
}

fn pps_thread(
    src: PpsSource,
    name: &'static str,
    atomic: bool,
    tx: Sender<Input>,
    shared: Arc<Shared>,
) {
    let send = |raw: i64| {
        let _ = tx.send(if atomic {
            Input::AtomicPulse(raw)
        } else {
            Input::GpsPulse(raw)
        });
        shared.input(name, |s| {
            s.events += 1;
            s.ok = true;
            s.last_raw = Some(raw);
            s.detail = "pulses arriving".into();
        });
    };
    let fail = |e: String| {
        shared.input(name, |s| {
            s.ok = false;
            s.errors += 1;
            s.detail = e;
        });
    };
    match src {
        PpsSource::Sock { path } => {
            let _ = std::fs::remove_file(&path);
            let sock = match UnixDatagram::bind(&path) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(
                        "{name}: cannot bind {}: {e}; this input is off",
                        path.display()
                    );
                    fail(format!("cannot bind: {e}"));
                    return;
                }
            };
            let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 128];
            while !shared.stop.load(Ordering::Relaxed) {
                match sock.recv(&mut buf) {
                    Ok(n) => match SockSample::decode(&buf[..n]) {
                        Ok(s) if s.pulse => send(clock::realtime_to_raw(sock_edge_sys_ns(&s))),
                        Ok(_) => {
                            shared.input(name, |s| s.detail = "ignoring pulse = 0 samples".into())
                        }
                        Err(e) => {
                            tracing::warn!("{name}: bad SOCK datagram: {e}");
                            fail(format!("bad datagram: {e}"));
                        }
                    },
                    Err(e) if ttsys::udp::is_timeout(&e) => {}
                    Err(e) => {
                        fail(e.to_string());
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
            let _ = std::fs::remove_file(&path);
        }
        PpsSource::Kernel { device } => {
            while !shared.stop.load(Ordering::Relaxed) {
                let mut dev = match ttsys::pps::KernelPps::open(&device) {
                    Ok(d) => d,
                    Err(e) => {
                        fail(e.to_string());
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                };
                loop {
                    if shared.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    match dev.fetch(1500) {
                        Ok(Some((rt, _))) => send(clock::realtime_to_raw(rt)),
                        Ok(None) => shared.input(name, |s| s.detail = "no pulse in 1.5 s".into()),
                        Err(e) => {
                            tracing::warn!("{name}: {e}");
                            fail(e.to_string());
                            std::thread::sleep(Duration::from_secs(1));
                            break;
                        }
                    }
                }
            }
        }
        PpsSource::Gpio { chip, line } => {
            use gpio_cdev::{Chip, EventRequestFlags, LineRequestFlags};
            while !shared.stop.load(Ordering::Relaxed) {
                let events = Chip::new(&chip)
                    .and_then(|mut c| c.get_line(line))
                    .and_then(|l| {
                        l.events(
                            LineRequestFlags::INPUT,
                            EventRequestFlags::RISING_EDGE,
                            "timemaster-pps",
                        )
                    });
                match events {
                    Ok(ev) => {
                        for e in ev {
                            match e {
                                // Kernel ≥ 5.7 stamps line events with CLOCK_MONOTONIC.
                                Ok(e) => send(clock::monotonic_to_raw(e.timestamp() as i64)),
                                Err(e) => {
                                    fail(e.to_string());
                                    break;
                                }
                            }
                            if shared.stop.load(Ordering::Relaxed) {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        fail(format!("{}:{line}: {e}", chip.display()));
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        }
    }
}

fn telemetry_thread(path: PathBuf, baud: u32, tx: Sender<Input>, shared: Arc<Shared>) {
    let name = "atomic-telemetry";
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(mut port) = open_serial(&path, baud, Duration::from_millis(500), name, &shared)
        else {
            return;
        };
        loop {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            if port.write_all(b"!^\r\n").is_err() {
                break;
            }
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            let deadline = Instant::now() + Duration::from_millis(800);
            let mut broken = false;
            while Instant::now() < deadline {
                match port.read(&mut b) {
                    Ok(1) if b[0] == b'\n' => break,
                    Ok(1) => {
                        if line.len() < 256 {
                            line.push(b[0]);
                        }
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                    Err(_) => {
                        broken = true;
                        break;
                    }
                }
            }
            if broken {
                break;
            }
            let raw = raw_ns();
            let text = String::from_utf8_lossy(&line).into_owned();
            match parse_status_line(&text) {
                Some((st, alarm)) => {
                    let _ = tx.send(Input::AtomicTelemetry(st, alarm, raw));
                    shared.input(name, |s| {
                        s.ok = true;
                        s.events += 1;
                        s.last_raw = Some(raw);
                        s.detail = format!("status {st}, alarm {alarm:#06x}");
                    });
                }
                None => shared.input(name, |s| {
                    s.errors += 1;
                    s.detail = format!("unparseable answer {:?}", text.trim());
                }),
            }
            std::thread::sleep(Duration::from_millis(1000));
        }
        shared.input(name, |s| {
            s.ok = false;
            s.detail = "line lost; reopening".into();
        });
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn lock_line_thread(line: LockLine, tx: Sender<Input>, shared: Arc<Shared>) {
    let name = "lock-line";
    let read: Box<dyn FnMut() -> Result<bool, String>> = match line {
        LockLine::File { path } => Box::new(move || {
            std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|s| match s.trim() {
                    "1" => Ok(true),
                    "0" => Ok(false),
                    other => Err(format!("unexpected content {other:?}")),
                })
        }),
        LockLine::Gpio {
            chip,
            line,
            active_low,
        } => {
            use embedded_hal::digital::InputPin;
            let mut pin: Option<linux_embedded_hal::CdevPin> = None;
            Box::new(move || {
                if pin.is_none() {
                    let handle = gpio_cdev::Chip::new(&chip)
                        .and_then(|mut c| c.get_line(line))
                        .and_then(|l| {
                            l.request(gpio_cdev::LineRequestFlags::INPUT, 0, "timemaster-lock")
                        })
                        .map_err(|e| format!("{}:{line}: {e}", chip.display()))?;
                    pin =
                        Some(linux_embedded_hal::CdevPin::new(handle).map_err(|e| e.to_string())?);
                }
                let p = pin.as_mut().ok_or("no pin")?;
                let high = p.is_high().map_err(|e| format!("{e:?}"))?;
                Ok(high != active_low)
            })
        }
    };
    let mut read = read;
    let mut last: Option<bool> = None;
    let mut last_sent = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        match read() {
            Ok(v) => {
                let raw = raw_ns();
                if last != Some(v) || last_sent.elapsed() > Duration::from_secs(1) {
                    let _ = tx.send(Input::AtomicLock(v, raw));
                    last = Some(v);
                    last_sent = Instant::now();
                }
                shared.input(name, |s| {
                    s.ok = true;
                    s.events += 1;
                    s.last_raw = Some(raw);
                    s.detail = if v {
                        "locked".into()
                    } else {
                        "unlocked".into()
                    };
                });
            }
            Err(e) => {
                if last.is_some() {
                    // A line we cannot read is not a lock.
                    let _ = tx.send(Input::AtomicLock(false, raw_ns()));
                    last = None;
                }
                shared.input(name, |s| {
                    s.ok = false;
                    s.errors += 1;
                    s.detail = e;
                });
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ----- the core thread -------------------------------------------------------------------

fn publish(core: &MasterCore, shared: &Shared) {
    let raw = raw_ns();
    let snap = core.snapshot(raw);
    let c = &shared.config;
    shared.view.store(Arc::new(view_of(
        &snap,
        c.kind,
        &c.id,
        Span::from_nanos(c.max_epsilon_ns),
    )));
    shared.published.store(Arc::new(Published {
        snap,
        counters: core.counters(),
        events: core
            .events()
            .map(|(r, t)| format!("{:+.1}s {t}", (r - shared.started_raw) as f64 / 1e9))
            .collect(),
        atomic_locked: core.atomic_locked(),
    }));
}

fn core_thread(mut core: MasterCore, rx: Receiver<Input>, shared: Arc<Shared>) {
    let mut detector = clock::DisruptionDetector::new();
    let mut last_tick = Instant::now();
    let mut last_status: Option<(ClockStatus, Reference)> = None;
    let mut notified_ready = false;
    let mut last_watchdog = Instant::now();
    let mut usec = 0u64;
    let watchdog = sd_notify::watchdog_enabled(false, &mut usec);
    let ids = shared
        .config
        .peers
        .iter()
        .map(|p| p.addr.clone())
        .collect::<Vec<_>>();
    while !shared.stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Input::GpsPulse(r)) => core.on_gps_pulse(r),
            Ok(Input::Nmea(line, r)) => {
                if let Some(e) = core.on_nmea_line(&line, r) {
                    tracing::debug!("nmea: {e}: {:?}", line.trim_end());
                    shared.input("nmea", |s| {
                        s.errors += 1;
                        s.detail = e;
                    });
                }
            }
            Ok(Input::AtomicPulse(r)) => core.on_atomic_pulse(r),
            Ok(Input::AtomicTelemetry(st, al, r)) => core.on_atomic_telemetry(st, al, r),
            Ok(Input::AtomicLock(v, r)) => core.on_atomic_lock(v, r),
            Ok(Input::PeerRound(raw, peers)) => {
                if let Err(e) = core.on_peer_round(raw, &peers) {
                    tracing::warn!("peers do not agree enough to take time from: {e}");
                }
                if let CrossCheck::Decided { peers: agree, .. } = core.cross_check(raw, &peers) {
                    let mut ps = shared.peers.lock().unwrap_or_else(|e| e.into_inner());
                    for (i, a) in agree.iter().enumerate() {
                        if let Some(p) = ps.iter_mut().find(|p| Some(&p.addr) == ids.get(i)) {
                            p.agrees = *a;
                        }
                    }
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= Duration::from_millis(100) {
            last_tick = Instant::now();
            let raw = raw_ns();
            if let Err(why) = detector.check() {
                core.on_disruption(raw, &why.to_string());
            }
            core.tick(raw);
        }
        for e in core.take_new_events() {
            tracing::info!("{e}");
        }
        publish(&core, &shared);
        let p = shared.published.load();
        let now = (p.snap.status, p.snap.reference);
        if last_status != Some(now) {
            tracing::info!(
                "status {} ({}), reference {}",
                now.0,
                p.snap.reason,
                now.1.as_str()
            );
            let _ = sd_notify::notify(
                false,
                &[sd_notify::NotifyState::Status(&format!(
                    "{}: {}",
                    now.0, p.snap.reason
                ))],
            );
            last_status = Some(now);
        }
        if !notified_ready && p.snap.status.is_trustworthy() {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
            notified_ready = true;
        }
        if watchdog && last_watchdog.elapsed() >= Duration::from_secs(1) {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            last_watchdog = Instant::now();
        }
    }
}

// ----- peers -----------------------------------------------------------------------------

/// Polls the peer masters over the UDP time transfer (the same exchange timed uses) and hands
/// the core a round of offset intervals: for the cross-check, and for an armageddon master's
/// start.
fn peer_thread(shared: Arc<Shared>, tx: Sender<Input>) {
    let cfg = &shared.config;
    let drift = Rate::bound_from_ppm_f64(cfg.max_freq_ppm).unwrap_or(Rate::from_ppm(500));
    let mut sources: Vec<ttsys::ntp::Source> = cfg
        .peers
        .iter()
        .map(|p| ttsys::ntp::Source::new(&p.addr))
        .collect();
    let period = Duration::from_millis(cfg.peer_poll_interval_ms);
    let mut next = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        let results: Vec<(i64, ttsys::ntp::Burst)> = std::thread::scope(|sc| {
            let hs: Vec<_> = sources
                .iter_mut()
                .map(|src| {
                    sc.spawn(move || {
                        let b = src.burst(4, Duration::from_millis(500), drift, &|r| r);
                        (raw_ns(), b)
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_else(|_| (raw_ns(), Default::default())))
                .collect()
        });
        let raw = results.iter().map(|r| r.0).max().unwrap_or_else(raw_ns);
        let mut stats = Vec::new();
        let mut peers: Vec<Option<OffsetInterval>> = Vec::new();
        for (i, (_, b)) in results.iter().enumerate() {
            let mut st = PeerStat {
                addr: cfg.peers[i].addr.clone(),
                ..Default::default()
            };
            let best = ttcore::ntp::narrowest(&b.samples, raw, drift);
            if let Some(info) = &b.info {
                st.reachable = true;
                st.id = info.id.clone();
                st.epsilon_ns = info.eps_ns;
                st.status = info.status;
            }
            if b.samples.is_empty() {
                st.error = b.errors.last().cloned().unwrap_or_default();
            }
            let usable = best.filter(|s| s.trustworthy).map(|s| s.m.bounds);
            if let Some(s) = best {
                st.delay_ns = s.m.delay.as_nanos();
                st.offset_ns = s.m.offset.as_nanos();
                st.stamping = s.stamping.as_str().into();
            }
            peers.push(usable);
            stats.push(st);
        }
        // Express offsets relative to our own midpoint for display.
        let own = shared
            .published
            .load()
            .snap
            .model
            .and_then(|m| m.estimate_at(raw))
            .map(|e| e.as_nanos() - raw);
        {
            let mut ps = shared.peers.lock().unwrap_or_else(|e| e.into_inner());
            let old: Vec<bool> = ps.iter().map(|p| p.agrees).collect();
            for (i, s) in stats.iter_mut().enumerate() {
                if let (Some(o), Some(iv)) = (own, peers[i]) {
                    s.offset_ns = iv.midpoint().as_nanos() - o;
                }
                s.agrees = old.get(i).copied().unwrap_or(false) && peers[i].is_some();
            }
            *ps = stats;
        }
        if tx.send(Input::PeerRound(raw, peers)).is_err() {
            return;
        }
        next += period;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        while Instant::now() < next && !shared.stop.load(Ordering::Relaxed) {
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(100)));
        }
    }
}

// ----- gRPC ------------------------------------------------------------------------------

/// The gRPC service.
pub struct Service {
    shared: Arc<Shared>,
}

fn kind_wire(k: MasterKind) -> i32 {
    match k {
        MasterKind::Gps => v1::MasterKind::Gps as i32,
        MasterKind::Armageddon => v1::MasterKind::Armageddon as i32,
    }
}

impl Service {
    /// The full status at the current instant.
    pub fn status_now(&self) -> v1::MasterStatus {
        let (raw, rt, _) = clock::pair(clock::realtime_ns);
        let p = self.shared.published.load();
        let c = p.snap.components;
        let (earliest, latest, eps, status, reason) = match &p.snap.model {
            Some(m) => {
                let i = m.interval_at(raw);
                let eps = m.epsilon_at(raw);
                let over = eps > Span::from_nanos(self.shared.config.max_epsilon_ns)
                    && p.snap.status.is_trustworthy();
                (
                    i.earliest().as_nanos(),
                    i.latest().as_nanos(),
                    eps.as_nanos(),
                    if over {
                        ClockStatus::Unsynchronized
                    } else {
                        p.snap.status
                    },
                    if over {
                        "ε beyond max-epsilon".to_string()
                    } else {
                        p.snap.reason.clone()
                    },
                )
            }
            None => (0, 0, i64::MAX, p.snap.status, p.snap.reason.clone()),
        };
        let drift_ns = p.snap.model.as_ref().map_or(0, |m| {
            m.drift_bound
                .bound_over(m.age_at(raw).saturating_abs())
                .as_nanos()
        });
        let inputs = self
            .shared
            .inputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let peers = self
            .shared
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        v1::MasterStatus {
            id: self.shared.config.id.clone(),
            kind: kind_wire(self.shared.config.kind),
            status: ttproto::status_to_wire(status) as i32,
            reason,
            reference: p.snap.reference.as_str().into(),
            epsilon_ns: eps,
            components: Some(v1::EpsilonComponents {
                pps_jitter_ns: c.pps_jitter_ns,
                qerr_ns: c.qerr_ns,
                calibration_ns: c.calibration_ns,
                filter_ns: c.filter_ns,
                drift_ns,
                holdover_ns: c.holdover_ns,
                peer_ns: c.peer_ns,
            }),
            holdover_s: p.snap.holdover_s,
            evicted: p.snap.evicted,
            freq_ppm: p.snap.freq_ppm,
            pulses_seen: p.counters.pulses_seen,
            pulses_rejected: p.counters.pulses_rejected,
            labels_rejected: p.counters.labels_rejected,
            atomic_locked: p.atomic_locked,
            inputs: inputs
                .iter()
                .map(|s| v1::InputStatus {
                    name: s.name.clone(),
                    source: s.source.clone(),
                    ok: s.ok,
                    detail: s.detail.clone(),
                    events: s.events,
                    errors: s.errors,
                    last_event_age_s: s.last_raw.map_or(-1.0, |r| (raw - r) as f64 / 1e9),
                })
                .collect(),
            peers: peers
                .iter()
                .map(|s| v1::PeerStatus {
                    addr: s.addr.clone(),
                    id: s.id.clone(),
                    reachable: s.reachable,
                    agrees: s.agrees,
                    offset_ns: s.offset_ns,
                    delay_ns: s.delay_ns,
                    epsilon_ns: s.epsilon_ns,
                    status: s.status.map_or(0, |x| ttproto::status_to_wire(x) as i32),
                    error: s.error.clone(),
                    stamping: s.stamping.clone(),
                })
                .collect(),
            earliest_ns: earliest,
            latest_ns: latest,
            host_realtime_ns: rt,
            uptime_s: (raw - self.shared.started_raw) as f64 / 1e9,
            events: p.events.clone(),
            transfer: Some(self.transfer_stats()),
        }
    }

    /// The time-transfer server's counters.
    pub fn transfer_stats(&self) -> v1::TransferStats {
        let t = &self.shared.transfer;
        let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        v1::TransferStats {
            listen: self.shared.config.ntp_addr().to_string(),
            stamping: t.stamping_str().into(),
            threads: self.shared.config.ntp_thread_count() as u32,
            received: g(&t.received),
            answered: g(&t.answered),
            interleaved: g(&t.interleaved),
            malformed: g(&t.malformed),
            unknown_field: g(&t.unknown_field),
            wrong_mode: g(&t.wrong_mode),
            kernel_rx: g(&t.kernel_rx),
            kernel_tx: g(&t.kernel_tx),
            send_errors: g(&t.send_errors),
        }
    }
}

#[tonic::async_trait]
impl v1::time_master_server::TimeMaster for Service {
    async fn status(
        &self,
        _req: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::MasterStatus>, tonic::Status> {
        Ok(Response::new(self.status_now()))
    }
}

// ----- metrics ---------------------------------------------------------------------------

/// The OpenMetrics text for the current status.
pub fn metrics_text(s: &v1::MasterStatus) -> String {
    let id = &s.id;
    let mut o = String::new();
    let status = ttproto::status_from_wire(s.status);
    o.push_str(
        "# TYPE timemaster_status gauge\n# HELP timemaster_status 1 for the current status.\n",
    );
    for st in [
        ClockStatus::Synchronized,
        ClockStatus::Holdover,
        ClockStatus::Unsynchronized,
        ClockStatus::Disrupted,
    ] {
        o.push_str(&format!(
            "timemaster_status{{id=\"{id}\",status=\"{st}\"}} {}\n",
            u8::from(st == status)
        ));
    }
    let gauge = |o: &mut String, name: &str, unit_help: &str, v: f64| {
        o.push_str(&format!("# TYPE timemaster_{name} gauge\n# HELP timemaster_{name} {unit_help}\ntimemaster_{name}{{id=\"{id}\"}} {v}\n"));
    };
    gauge(
        &mut o,
        "epsilon_ns",
        "Current error bound in nanoseconds.",
        s.epsilon_ns as f64,
    );
    gauge(
        &mut o,
        "holdover_seconds",
        "Seconds in holdover.",
        s.holdover_s,
    );
    gauge(
        &mut o,
        "frequency_ppm",
        "Estimated frequency of the timescale against the raw clock.",
        s.freq_ppm,
    );
    gauge(
        &mut o,
        "evicted",
        "1 when evicted by the peer cross-check.",
        u8::from(s.evicted) as f64,
    );
    gauge(
        &mut o,
        "atomic_locked",
        "1 when the atomic clock is locked.",
        u8::from(s.atomic_locked) as f64,
    );
    let counter = |o: &mut String, name: &str, help: &str, v: u64| {
        o.push_str(&format!("# TYPE timemaster_{name} counter\n# HELP timemaster_{name} {help}\ntimemaster_{name}_total{{id=\"{id}\"}} {v}\n"));
    };
    counter(&mut o, "pulses_seen", "GPS pulses received.", s.pulses_seen);
    counter(
        &mut o,
        "pulses_rejected",
        "GPS pulses rejected.",
        s.pulses_rejected,
    );
    counter(
        &mut o,
        "labels_rejected",
        "NMEA labels rejected.",
        s.labels_rejected,
    );
    o.push_str("# TYPE timemaster_peer_agrees gauge\n");
    for p in &s.peers {
        o.push_str(&format!(
            "timemaster_peer_agrees{{id=\"{id}\",peer=\"{}\"}} {}\n",
            p.addr,
            u8::from(p.agrees)
        ));
    }
    o.push_str("# EOF\n");
    o
}

async fn metrics_task(addr: std::net::SocketAddr, svc: Arc<Service>) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("metrics: cannot listen on {addr}: {e}; metrics are off");
            return;
        }
    };
    tracing::info!("metrics on http://{addr}/metrics");
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let svc = svc.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = [0u8; 1024];
            let n = match tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let req = String::from_utf8_lossy(&buf[..n]);
            let (code, ctype, body) = if req.starts_with("GET /metrics") {
                (
                    "200 OK",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    metrics_text(&svc.status_now()),
                )
            } else {
                ("404 Not Found", "text/plain", "try /metrics\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}

// ----- start-up --------------------------------------------------------------------------

/// Runs the daemon until SIGINT/SIGTERM. When simulating, firmware-sim's devices are already in
/// the config's paths (`timemaster run --simulate`).
pub fn run(config: Config, leap: LeapTable) -> Result<(), String> {
    let params = config.params().map_err(|(k, m)| format!("{k}: {m}"))?;
    let core = MasterCore::new(params, leap);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    let started_raw = raw_ns();
    let max_eps = Span::from_nanos(config.max_epsilon_ns);
    // Time transfer: bind every socket before anything starts, so a taken port is a clear
    // start-up error.
    let ntp_addr = config.ntp_addr();
    let n_threads = config.ntp_thread_count();
    let mut sockets = Vec::new();
    for _ in 0..n_threads {
        sockets.push(
            ttsys::udp::TsSocket::bind_server(ntp_addr, n_threads > 1)
                .map_err(|e| format!("ntp-listen {ntp_addr}: {e}"))?,
        );
    }
    let shared = Arc::new(Shared {
        published: ArcSwap::from_pointee(Published {
            snap: core.snapshot(started_raw),
            counters: core.counters(),
            events: Vec::new(),
            atomic_locked: false,
        }),
        inputs: Mutex::new(Vec::new()),
        peers: Mutex::new(Vec::new()),
        started_raw,
        config: config.clone(),
        stop: stop.clone(),
        view: Arc::new(ArcSwap::from_pointee(empty_view(
            config.kind,
            &config.id,
            max_eps,
        ))),
        transfer: Arc::new(ServerStats::default()),
    });
    let (tx, rx) = channel();
    let mut threads = Vec::new();
    if let Some(g) = &config.gps {
        register(&shared, "nmea", &g.nmea_device);
        let (p, b, t, s) = (g.nmea_device.clone(), g.baud, tx.clone(), shared.clone());
        threads.push(std::thread::spawn(move || nmea_thread(p, b, "nmea", t, s)));
        register(&shared, "pps", &pps_path(&g.pps));
        let (src, t, s) = (g.pps.clone(), tx.clone(), shared.clone());
        threads.push(std::thread::spawn(move || {
            pps_thread(src, "pps", false, t, s)
        }));
    }
    if let Some(a) = &config.atomic {
        register(&shared, "atomic-pps", &pps_path(&a.pps));
        let (src, t, s) = (a.pps.clone(), tx.clone(), shared.clone());
        threads.push(std::thread::spawn(move || {
            pps_thread(src, "atomic-pps", true, t, s)
        }));
        if let Some(dev) = &a.telemetry_device {
            register(&shared, "atomic-telemetry", dev);
            let (p, b, t, s) = (dev.clone(), a.baud, tx.clone(), shared.clone());
            threads.push(std::thread::spawn(move || telemetry_thread(p, b, t, s)));
        }
        match &a.lock_line {
            Some(l) => {
                let src = match l {
                    LockLine::File { path } => path.clone(),
                    LockLine::Gpio { chip, .. } => chip.clone(),
                };
                register(&shared, "lock-line", &src);
                let (l, t, s) = (l.clone(), tx.clone(), shared.clone());
                threads.push(std::thread::spawn(move || lock_line_thread(l, t, s)));
            }
            // Without a lock line the telemetry (or nothing) decides; assume locked so the
            // telemetry status is the only gate.
            None => {
                let _ = tx.send(Input::AtomicLock(true, raw_ns()));
            }
        }
    }
    {
        let s = shared.clone();
        threads.push(std::thread::spawn(move || core_thread(core, rx, s)));
    }
    if let Some(s0) = sockets.first() {
        shared.transfer.set_stamping(s0.stamping());
    }
    for sock in sockets {
        let (v, st, stop) = (
            shared.view.clone(),
            shared.transfer.clone(),
            shared.stop.clone(),
        );
        threads.push(std::thread::spawn(move || {
            crate::ntp_server::serve(sock, v, st, stop)
        }));
    }
    tracing::info!(
        "time transfer on udp {ntp_addr} ({n_threads} thread(s), {} stamps)",
        shared.transfer.stamping_str()
    );
    if !config.peers.is_empty() {
        let (s, t) = (shared.clone(), tx.clone());
        threads.push(std::thread::spawn(move || peer_thread(s, t)));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;
    let svc = Arc::new(Service {
        shared: shared.clone(),
    });
    let result = rt.block_on(async {
        if let Some(m) = config.metrics_listen {
            tokio::spawn(metrics_task(m, svc.clone()));
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("listen {}: {e}", config.listen))?;
        tracing::info!(
            "timemaster {} ({:?}) serving gRPC on {}",
            config.id,
            config.kind,
            config.listen
        );
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let stop2 = stop.clone();
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(v1::time_master_server::TimeMasterServer::from_arc(svc))
            .serve_with_incoming_shutdown(incoming, async move {
                while !stop2.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
            .await
            .map_err(|e| format!("gRPC: {e}"))
    });
    stop.store(true, Ordering::Relaxed);
    drop(tx);
    for t in threads {
        let _ = t.join();
    }
    tracing::info!("timemaster stopped");
    result
}

fn pps_path(p: &PpsSource) -> PathBuf {
    match p {
        PpsSource::Sock { path } => path.clone(),
        PpsSource::Kernel { device } => device.clone(),
        PpsSource::Gpio { chip, .. } => chip.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sock_edge_recovers_nanoseconds() {
        // Edge 48 ns after the second, truncated to µs in tv.
        let s = SockSample::from_nanos(1_790_000_000_000_000_048, -48, true, 0);
        assert_eq!(sock_edge_sys_ns(&s), 1_790_000_000_000_000_048);
        // And for an edge 350 ns before the second.
        let s = SockSample::from_nanos(1_789_999_999_999_999_650, 350, true, 0);
        assert_eq!(sock_edge_sys_ns(&s), 1_789_999_999_999_999_650);
    }
}
