//! Peer polling: the other masters, over the UDP time transfer (the same exchange timed uses).
//! Each round becomes an [`Input::PeerRound`] for the core (the cross-check, and an armageddon
//! master's start) and a [`PeerStat`] per peer for the status.

use super::Shared;
use super::inputs::Input;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};
use ttcore::{ClockStatus, OffsetInterval, Rate, RawReading};
use ttsys::clock::raw_ns;

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

/// Polls the peer masters over the UDP time transfer (the same exchange timed uses) and hands
/// the core a round of offset intervals: for the cross-check, and for an armageddon master's
/// start.
// One peer round: burst every peer in parallel, pick each one's narrowest sample, update the
// status, hand the round to the core.
pub(super) fn peer_thread(shared: Arc<Shared>, tx: Sender<Input>) {
    let cfg = &shared.config;
    let drift = Rate::bound_from_ppm_f64(cfg.max_freq_ppm).unwrap_or(Rate::from_ppm(500));
    let mut sources: Vec<ttsys::ntp::Source> = cfg
        .peers
        .iter()
        .map(|p| {
            let src = ttsys::ntp::Source::new(&p.addr);
            match (&p.nts_ke, &shared.peer_tls) {
                (Some(ke), Some(tls)) => {
                    src.with_nts(ttsys::ntp::NtsSource::new(ke, None, tls.clone()))
                }
                _ => src,
            }
        })
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
            .and_then(|m| m.estimate_at(RawReading::from_nanos(raw)))
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
        if tx
            .send(Input::PeerRound(ttcore::RawReading::from_nanos(raw), peers))
            .is_err()
        {
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
