//! Polling: a burst of UDP exchanges with every master each interval, the narrowest sample of
//! each into the core's round, then the page.

use super::*;
use crate::config::SourceKind;
use ttsys::phc::PhcSource;

/// One of timed's sources: a master or NTP server over UDP, or a PTP hardware clock.
pub(super) enum TimeSource {
    Net(Box<Source>),
    Phc(Box<PhcSource>),
}

impl TimeSource {
    fn burst(
        &mut self,
        n: usize,
        timeout: Duration,
        drift: Rate,
        host: &dyn Fn(i64) -> i64,
    ) -> Burst {
        match self {
            TimeSource::Net(s) => s.burst(n, timeout, drift, host),
            TimeSource::Phc(p) => p.burst(drift, host),
        }
    }

    fn reset(&mut self) {
        if let TimeSource::Net(s) = self {
            s.reset();
        }
    }
}

/// One poll: a burst of UDP exchanges with every master (in parallel, on blocking threads),
/// the narrowest sample of each into the core's round, then the page.
pub(super) async fn poll_once(state: &Arc<State>, mut sources: Vec<TimeSource>) -> Vec<TimeSource> {
    // A disruption before the burst forgets the model first (the page's write after the round
    // checks again, so one during the burst forgets the round's result too).
    let _ = state.check_clock();
    // Stamps taken across a disruption or a knob change mix two clocks: such a round is
    // dropped (and the interleaving state with it), never fed to a freshly reset model.
    let epoch = state.disruptions.load(Ordering::Relaxed);
    if state.poll_epoch.swap(epoch, Ordering::Relaxed) != epoch {
        sources.iter_mut().for_each(TimeSource::reset);
    }
    let cfg = &state.config;
    let timeout = Duration::from_millis(cfg.request_timeout_ms);
    let (drift, carry) = {
        let h = state.host.lock().unwrap_or_else(|e| e.into_inner());
        (h.exchange_drift(), h.carry_rate())
    };
    let burst = cfg.burst as usize;
    let knob = *state.knob.lock().unwrap_or_else(|e| e.into_inner());
    let joined = tokio::task::spawn_blocking(move || {
        let mut sources = sources;
        let host = move |r: i64| knob.apply(RawReading::from_nanos(r)).as_nanos();
        let bursts: Vec<Burst> = std::thread::scope(|sc| {
            let hs: Vec<_> = sources
                .iter_mut()
                .map(|src| sc.spawn(move || src.burst(burst, timeout, drift, &host)))
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        (sources, bursts)
    })
    .await;
    let (mut sources, bursts) = match joined {
        Ok(v) => v,
        Err(e) => {
            tracing::error!("poll: {e}");
            return sources_of(state);
        }
    };
    let _ = state.check_clock();
    if state.disruptions.load(Ordering::Relaxed) != epoch
        || *state.knob.lock().unwrap_or_else(|e| e.into_inner()) != knob
    {
        tracing::info!("poll dropped: the host clock was disrupted or re-knobbed during it");
        sources.iter_mut().for_each(TimeSource::reset);
        return sources;
    }
    let (samples, mut views) = burst_results(cfg, &bursts, carry);
    let raw = state.host_raw();
    let round = {
        let mut h = state.host.lock().unwrap_or_else(|e| e.into_inner());
        let round = h.on_round(raw, &samples);
        // Offsets relative to our (new) estimate, for display.
        if let Some(m) = h.model() {
            let ours = m
                .estimate_at(raw)
                .map_or(0, |t| t.as_nanos() - raw.as_nanos());
            for (v, s) in views.iter_mut().zip(&samples) {
                if let Some(s) = s {
                    v.offset_ns = s.bounds.midpoint().as_nanos() - ours;
                }
            }
        }
        round
    };
    for (v, verdict) in views.iter_mut().zip(round.verdicts.iter()) {
        v.verdict = Some(verdict.clone());
    }
    if let Some(n) = &round.note {
        tracing::info!("{n}");
    }
    *state.masters.lock().unwrap_or_else(|e| e.into_inner()) = views;
    state.publish(raw);
    if cfg.steer == Steer::Adjtimex {
        steer_system_clock(state);
    }
    sources
}

/// Each source's burst (masters, then PHCs) → its sample for the round (the narrowest, carried
/// at `carry`) and its view for the status.
pub(super) fn burst_results(
    cfg: &Config,
    bursts: &[Burst],
    carry: Rate,
) -> (Vec<Option<MasterSample>>, Vec<MasterView>) {
    let masters = &cfg.masters;
    let n = bursts.len();
    let mut samples = Vec::with_capacity(n);
    let mut views = Vec::with_capacity(n);
    for (i, b) in bursts.iter().enumerate() {
        let mut v = match cfg.phcs.get(i.wrapping_sub(masters.len())) {
            Some(p) if i >= masters.len() => MasterView {
                addr: p.device.display().to_string(),
                kind: "phc".into(),
                auth: "local",
                assumption: p.assumption(),
                ..Default::default()
            },
            _ => master_view(&masters[i]),
        };
        if let Some(info) = &b.info {
            v.reachable = true;
            v.id = info.id.clone();
            v.epsilon_ns = info.eps_ns;
            v.status = info.status;
            if v.kind.is_empty() {
                v.kind = info.kind.as_str().into();
                // Only a timemaster publishes TAI − UTC and the next leap.
                v.leap = Some(v1::LeapInfo {
                    tai_minus_utc_s: info.tai_minus_utc_s as i32,
                    next_leap_effective_posix_s: info.next_leap_posix_s,
                    next_leap_delta: info.next_leap_delta as i32,
                });
            }
        }
        burst_sample(&mut v, b, carry, &mut samples);
        views.push(v);
    }
    (samples, views)
}

/// A master's (or NTP server's) view before its burst is known.
fn master_view(m: &crate::config::MasterConfig) -> MasterView {
    MasterView {
        addr: m.addr.clone(),
        auth: if m.nts_ke.is_some() { "nts" } else { "none" },
        assumption: m.assumption(),
        kind: if m.kind == SourceKind::Ntp {
            "ntp".into()
        } else {
            String::new()
        },
        ..Default::default()
    }
}

/// The narrowest sample of a burst into the round, and what it was into the view.
fn burst_sample(
    v: &mut MasterView,
    b: &Burst,
    carry: Rate,
    samples: &mut Vec<Option<MasterSample>>,
) {
    v.samples = b.samples.len() as u32;
    let at = b.samples.iter().map(|s| s.m.at.as_nanos()).max();
    let best = at.and_then(|at| ttcore::ntp::narrowest(&b.samples, at, carry));
    match best {
        Some(s) => {
            v.delay_ns = s.m.delay.as_nanos();
            v.offset_ns = s.m.offset.as_nanos();
            v.stamping = s.stamping.as_str().into();
            v.interleaved = s.interleaved;
            v.radius_ns = s.m.bounds.radius().as_nanos();
            samples.push(Some(MasterSample {
                bounds: s.m.bounds,
                at_raw: RawReading::from_nanos(s.m.at.as_nanos()),
                trustworthy: s.trustworthy,
            }));
        }
        None => {
            v.error = b.errors.last().cloned().unwrap_or_default();
            samples.push(None);
        }
    }
}

/// After a round: with `steer = "adjtimex"`, slews the system clock toward the page's midpoint.
pub(super) fn steer_system_clock(state: &State) {
    let d = state.page.load();
    let r = d.read_at(clock::raw());
    if r.status.is_trustworthy() {
        let off = r.interval.midpoint().as_nanos() - clock::realtime_ns();
        if let Err(e) = ttsys::steer::steer(off, r.interval.epsilon().as_nanos()) {
            tracing::warn!("adjtimex: {e} (steer = \"adjtimex\" needs CAP_SYS_TIME)");
        }
    }
}

/// A source per configured master, with NTS where the master has `nts-ke`, then one per PHC.
pub(super) fn sources_of(state: &State) -> Vec<TimeSource> {
    let net = state.config.masters.iter().map(|m| {
        let src = Source::new(&m.addr).with_protocol(m.protocol());
        TimeSource::Net(Box::new(match (&m.nts_ke, &state.nts_tls) {
            (Some(ke), Some(tls)) => src.with_nts(ttsys::ntp::NtsSource::new(
                ke,
                m.nts_server_name.as_deref(),
                tls.clone(),
            )),
            _ => src,
        }))
    });
    let phc = state
        .config
        .phcs
        .iter()
        .map(|p| TimeSource::Phc(Box::new(p.source())));
    net.chain(phc).collect()
}

pub(super) async fn poll_task(state: Arc<State>) {
    let mut sources: Vec<TimeSource> = sources_of(&state);
    let mut seen_disruptions = 0;
    let base = state.config.poll_interval_ms as f64;
    let jitter = state.config.poll_jitter_pct as f64 / 100.0;
    let mut ready = false;
    let mut slew_beyond_rule = false;
    while !state.stop.load(Ordering::Relaxed) {
        // A kernel slewing CLOCK_MONOTONIC faster than the disruption rule allows (chronyd
        // through the tick) will show up as disruptions: say why, once per change.
        if let Ok(k) = ttsys::steer::kernel_slew()
            && k.within_rule() == slew_beyond_rule
        {
            slew_beyond_rule = !k.within_rule();
            if slew_beyond_rule {
                tracing::warn!("kernel slew {}", k.describe());
            } else {
                tracing::info!("kernel slew back {}", k.describe());
            }
        }
        // After a disruption the interleaving state refers to a clock that no longer exists.
        let d = state.disruptions.load(Ordering::Relaxed);
        if d != seen_disruptions {
            sources.iter_mut().for_each(TimeSource::reset);
            seen_disruptions = d;
        }
        sources = poll_once(&state, sources).await;
        let st = state.status();
        let trusted = ttproto::status_from_wire(st.status).is_trustworthy();
        if trusted && !ready {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
            tracing::info!(
                "synchronized: ε ±{} ns from {} master(s)",
                st.epsilon_ns,
                st.masters.iter().filter(|m| m.selected).count()
            );
            ready = true;
        }
        let _ = sd_notify::notify(
            false,
            &[sd_notify::NotifyState::Status(&format!(
                "{}: ±{} ns",
                ttproto::status_from_wire(st.status),
                st.epsilon_ns
            ))],
        );
        state.watch.send_replace(st);
        // Spread polls so a fleet does not poll in lockstep: the raw clock's low bits are as good
        // a random source as this needs.
        let k = ((clock::raw_ns().rem_euclid(2001)) as f64 / 1000.0 - 1.0) * jitter;
        tokio::time::sleep(Duration::from_secs_f64(base * (1.0 + k) / 1e3)).await;
    }
}
