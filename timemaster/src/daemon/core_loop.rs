//! The core thread: the one owner of [`MasterCore`]. It takes the inputs' events in arrival
//! order, ticks the core every 100 ms (checking the raw clock for disruptions first), and after
//! every event publishes a snapshot and the transfer view that readers load without locking.
//! It also tells systemd about readiness, status changes and the watchdog.

use super::inputs::Input;
use super::{Published, Shared};
use crate::core::master::{CrossCheck, MasterCore, Reference};
use crate::ntp_server::view_of;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use ttcore::{ClockStatus, RawReading, Span};
use ttsys::clock::{self, raw_ns};

/// Publishes the core's state at the current raw reading.
pub(super) fn publish(core: &MasterCore, shared: &Shared) {
    let raw = raw_ns();
    let snap = core.snapshot(RawReading::from_nanos(raw));
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

/// Runs until the daemon stops or every sender is gone.
// The core thread's loop: take an input, tick, publish, tell systemd; the order is the daemon's
// semantics.
pub(super) fn core_thread(mut core: MasterCore, rx: Receiver<Input>, shared: Arc<Shared>) {
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
                if let Err(e) = core.on_nmea_line(&line, r) {
                    tracing::debug!("nmea: {e}: {:?}", line.trim_end());
                    shared.input("nmea", |s| {
                        s.errors += 1;
                        s.detail = e.to_string();
                    });
                }
            }
            Ok(Input::AtomicPulse(r)) => core.on_atomic_pulse(r),
            Ok(Input::AtomicTelemetry(t, r)) => core.on_atomic_telemetry(t.status, t.alarm, r),
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
            let raw = RawReading::from_nanos(raw_ns());
            if let Err(why) = detector.check() {
                core.on_disruption(raw, why);
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
