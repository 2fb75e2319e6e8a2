//! Polling: a burst of UDP exchanges with every master each interval, the narrowest sample of
//! each into the core's round, then the page. The interval is fixed, or follows the error budget
//! ([`ttcore::poll`]); a master that answers `RATE` is polled less often
//! ([`ttcore::poll::SourceBackoff`]).

use super::*;
use crate::config::SourceKind;
use ttcore::Span;
use ttcore::poll::{BurstCycle, SourceBackoff};
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

/// One poll: a burst of `burst` UDP exchanges with every master that is `due` (in parallel, on
/// blocking threads), the narrowest sample of each into the core's round, then the page.
/// Returns the sources and what each one's burst was (`None`: not due).
pub(super) async fn poll_once(
    state: &Arc<State>,
    mut sources: Vec<TimeSource>,
    burst: usize,
    due: &[bool],
) -> (Vec<TimeSource>, Vec<Option<Option<[u8; 4]>>>) {
    let not_polled = || vec![None; due.len()];
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
    let knob = *state.knob.lock().unwrap_or_else(|e| e.into_inner());
    let due_now = due.to_vec();
    let joined = tokio::task::spawn_blocking(move || {
        let mut sources = sources;
        let host = move |r: i64| knob.apply(RawReading::from_nanos(r)).as_nanos();
        let bursts: Vec<Option<Burst>> = std::thread::scope(|sc| {
            let hs: Vec<_> = sources
                .iter_mut()
                .zip(&due_now)
                .map(|(src, &due)| {
                    due.then(|| sc.spawn(move || src.burst(burst, timeout, drift, &host)))
                })
                .collect();
            hs.into_iter()
                .map(|h| h.map(|h| h.join().unwrap_or_default()))
                .collect()
        });
        (sources, bursts)
    })
    .await;
    let (mut sources, bursts) = match joined {
        Ok(v) => v,
        Err(e) => {
            tracing::error!("poll: {e}");
            return (sources_of(state), not_polled());
        }
    };
    let requests: u64 = bursts.iter().flatten().map(|b| u64::from(b.requests)).sum();
    state.exchanges.fetch_add(requests, Ordering::Relaxed);
    let kisses: Vec<Option<Option<[u8; 4]>>> = bursts
        .iter()
        .map(|b| b.as_ref().map(|b| b.kissed))
        .collect();
    let bursts: Vec<Burst> = bursts
        .into_iter()
        .map(|b| {
            b.unwrap_or_else(|| Burst {
                errors: vec!["not polled this round: it answered RATE (backing off)".into()],
                ..Default::default()
            })
        })
        .collect();
    let _ = state.check_clock();
    if state.disruptions.load(Ordering::Relaxed) != epoch
        || *state.knob.lock().unwrap_or_else(|e| e.into_inner()) != knob
    {
        tracing::info!("poll dropped: the host clock was disrupted or re-knobbed during it");
        sources.iter_mut().for_each(TimeSource::reset);
        return (sources, kisses);
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
    (sources, kisses)
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

// The daemon's poll loop: disruption bookkeeping, the round, the backoffs, readiness, and the
// wait the plan chose, in the order one iteration needs them.
#[allow(
    clippy::too_many_lines,
    reason = "one loop iteration in order: slew warning, disruptions, the round, backoffs, readiness, the wait"
)]
pub(super) async fn poll_task(state: Arc<State>) {
    let mut sources: Vec<TimeSource> = sources_of(&state);
    let mut seen_disruptions = 0;
    let params = state.config.poll_params();
    let jitter = state.config.poll_jitter_pct as f64 / 100.0;
    let longest = Span::from_millis(state.config.longest_poll_ms() as i64);
    let mut backoff = vec![SourceBackoff::default(); sources.len()];
    let mut cycle = BurstCycle::new(state.config.burst);
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
        let plan = state.poll.lock().unwrap_or_else(|e| e.into_inner()).plan;
        let burst = cycle.next;
        let started = clock::raw_ns();
        let due: Vec<bool> = backoff.iter().map(|b| b.due(started)).collect();
        let kisses;
        (sources, kisses) = poll_once(&state, sources, burst as usize, &due).await;
        let overhead = Span::from_nanos(clock::raw_ns() - started);
        for (i, (b, k)) in backoff.iter_mut().zip(&kisses).enumerate() {
            let Some(k) = k else { continue };
            let rate = *k == Some(*b"RATE");
            if let Some(code) = k
                && !rate
            {
                tracing::warn!(
                    "source {i} answered kiss code {}",
                    String::from_utf8_lossy(code)
                );
            }
            let before = b.min_interval;
            b.polled(started, rate, plan.interval, longest);
            if b.min_interval != before {
                tracing::info!(
                    "source {i}: {} (RATE kisses so far: {}): polled no faster than every {:.3} s",
                    if rate {
                        "rate-limited"
                    } else {
                        "limit relaxed"
                    },
                    b.kisses,
                    b.min_interval.as_nanos() as f64 / 1e9
                );
            }
        }
        {
            let mut views = state.masters.lock().unwrap_or_else(|e| e.into_inner());
            for (v, b) in views.iter_mut().zip(&backoff) {
                v.min_interval_s = b.min_interval.as_nanos() as f64 / 1e9;
                v.rate_kisses = b.kisses;
            }
        }
        let next = {
            let h = state.host.lock().unwrap_or_else(|e| e.into_inner());
            params.after_round(&mut cycle, h.model(), state.host_raw(), overhead)
        };
        *state.poll.lock().unwrap_or_else(|e| e.into_inner()) = PollState {
            plan: next,
            burst: cycle.next,
        };
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
        // a random source as this needs. A fixed interval spreads both ways; the budget's only
        // shortens (a longer wait would let ε pass the target).
        let k = (clock::raw_ns().rem_euclid(2001)) as f64 / 1000.0 - 1.0;
        let spread = match next.reason {
            ttcore::poll::PollReason::Fixed => 1.0 + k * jitter,
            _ => 1.0 - k.abs() * jitter,
        };
        let wait = next.interval.as_nanos() as f64 * spread / 1e9;
        tokio::time::sleep(Duration::from_secs_f64(wait.max(0.0))).await;
    }
}
