//! The simulated fleet: masters (the real master core on simulated devices), hosts (timed's
//! core on a simulated oscillator), the network between them, the clock disruptions, and what
//! each host event does (timed's watch, a reader's sample, a poll).

use super::floor::Floor;
use super::*;
use std::hash::BuildHasherDefault;
use ttcore::{RawReading, Timestamp};

pub(super) struct Master {
    pub(super) vm: VirtualMaster,
    pub(super) lie_ns: i64,
    pub(super) down: Vec<(i64, i64)>,
    pub(super) kind: MasterKind,
    /// Interleave records of the replies it sent, by `(t2_ns, cookie)`.
    pub(super) sent: HashMap<(i64, u64), SentReply, BuildHasherDefault<KeyHasher>>,
    /// Its client state towards each other master (cross-checks, armageddon start).
    pub(super) peers: Vec<Client>,
    /// When (true time, ns) its cross-check first evicted it, if ever.
    pub(super) evicted_at: Option<i64>,
    /// The scenario expects it to evict itself.
    pub(super) expect_evicted: bool,
    /// Its published view, with the count of device events its core had seen when it was
    /// taken ([`timemaster::sim::VirtualMaster::events`]): reused until the core changes (the
    /// masters' round clears it).
    pub(super) view: Option<(u64, ttcore::ntp::MasterView)>,
}

impl Master {
    /// How far the time it publishes may be from the truth on each side while it stays honest,
    /// over one round's exchanges, given as its first and last true instants with the truth at
    /// each (`(t, truth)`): `(hi − truth, truth − lo)` of its interval, the smaller of the two
    /// ends (both are linear over a round, in which the master's state does not change). `None`
    /// when it is not honest (a liar, or its ε does not cover its error): the links the
    /// [`Floor`] may count on.
    pub(super) fn honest_slack(&mut self, ends: [(i64, Timestamp); 2]) -> Option<(i64, i64)> {
        let mut slack = (i64::MAX, i64::MAX);
        for (t, truth) in ends {
            let raw = RawReading::from_nanos(self.vm.raw_at(t));
            let iv = self.view.as_ref()?.1.model.as_ref()?.interval_at(raw);
            if !iv.contains(truth) {
                return None;
            }
            slack.0 = slack.0.min(iv.latest().as_nanos() - truth.as_nanos());
            slack.1 = slack.1.min(truth.as_nanos() - iv.earliest().as_nanos());
        }
        Some(slack)
    }
}

/// Interleave records a simulated master keeps before it starts over.
pub(super) const SENT_CAP: usize = 100_000;

/// A hasher for the interleave records' `(t2_ns, cookie)` keys: the cookie is random, so a
/// multiply-rotate mix is enough (SipHash's protection against chosen keys is not needed in a
/// simulation, and was a visible share of its time). Iteration order is never used.
#[derive(Default)]
pub(super) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(23) ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64);
    }
}

pub(super) struct Host {
    pub(super) osc: Oscillator,
    pub(super) clock: HostClock,
    /// Its client state towards each master.
    pub(super) clients: Vec<Client>,
    /// timed's last checked (raw, boot) pair: the disruption rule's baseline and the pair its
    /// page carries for readers.
    pub(super) check: ClockPair,
    pub(super) boot_offset: i64,
    /// Phase of its watch ticks (ns, in [0, WATCH)).
    pub(super) watch_phase: i64,
    /// The VMClock marker timed last checked (and put on its page).
    pub(super) vm_marker: u64,
    /// Exchanges per source in its next poll, as timed's poll loop keeps them.
    pub(super) cycle: ttcore::poll::BurstCycle,
    /// What no honest estimator could have narrowed its interval to ([`Floor`]).
    pub(super) floor: Floor,
}

/// timed's watch period (`timed::daemon::WATCH_MS`, ns).
pub(super) const WATCH: i64 = 50_000_000;

/// What the disruptions of a scenario do to a host's clocks, as functions of true time.
pub(super) struct Disruptions {
    /// Raw-clock stalls: (start, duration) ns.
    pub(super) stalls: Vec<(i64, i64)>,
    /// Whole-VM pauses: (start, duration) ns.
    pub(super) pauses: Vec<(i64, i64)>,
    /// Merged windows around every disruption, where timed's watch ticks are simulated one by
    /// one; outside them `boot − raw` moves only at the oscillator's rate error (boot time runs
    /// at truth's rate here), far inside the rule's 500 ppm, so every skipped tick would have
    /// passed.
    pub(super) windows: Vec<(i64, i64)>,
}

impl Disruptions {
    pub(super) fn lost(list: &[(i64, i64)], t: i64) -> i64 {
        list.iter().map(|&(a, d)| (t - a).clamp(0, d)).sum()
    }

    /// (raw, boot) of a host at true time `t`, from its oscillator reading (which carries the
    /// phase steps) and its boot offset.
    pub(super) fn clocks(&self, osc_reading: i64, boot_offset: i64, t: i64) -> ClockPair {
        let paused = Self::lost(&self.pauses, t);
        ClockPair {
            raw: osc_reading - Self::lost(&self.stalls, t) - paused,
            boot: t + boot_offset - paused,
            gap: 0,
        }
    }

    /// The VMClock marker at `t`: how many pauses have ended.
    pub(super) fn marker(&self, t: i64) -> u64 {
        self.pauses.iter().filter(|&&(a, d)| t >= a + d).count() as u64
    }

    /// The end of the pause `t` falls in, if any: nothing on the host runs until then.
    pub(super) fn paused_until(&self, t: i64) -> Option<i64> {
        self.pauses
            .iter()
            .find(|&&(a, d)| t >= a && t < a + d)
            .map(|&(a, d)| a + d)
    }

    pub(super) fn in_window(&self, t: i64) -> bool {
        self.windows.iter().any(|&(a, b)| t >= a && t <= b)
    }
}

/// A host's simulated event, in the order ties are served (a poll before a sample before a
/// watch tick at the same instant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Ev {
    /// timed polls every master.
    Poll,
    /// A reader samples `TT.now()` and checks it against truth.
    Sample,
    /// timed's 50 ms watch (simulated only inside the disruption windows).
    Watch,
}

/// Seconds after the scenario's start → ns on the TAI axis.
pub(super) fn at_s(start: i64, s: f64) -> i64 {
    start + (s * 1e9) as i64
}

/// The scenario's start on the TAI axis.
pub(super) fn start_tai(sc: &FleetScenario) -> Result<i64, Error> {
    match &sc.start_utc {
        Some(u) => {
            let l = ttcore::UtcLabel::parse_iso(u)
                .ok_or_else(|| Error::failed(format!("bad start-utc {u:?}")))?;
            Ok(ttcore::LeapTable::builtin().utc_to_tai_ns(&l)?)
        }
        None => Ok(DEFAULT_START_TAI),
    }
}

/// The masters, each running the real master core on its simulated devices.
pub(super) fn build_masters(
    sc: &FleetScenario,
    rng: &mut ChaCha8Rng,
    start: i64,
) -> Result<Vec<Master>, Error> {
    let mut masters: Vec<Master> = Vec::new();
    for (i, m) in sc.masters.iter().enumerate() {
        let mut dev = DeviceScenario::from_toml(&m.devices, "devices")?;
        // The devices' truth starts where the fleet's does.
        if sc.start_utc.is_some() {
            dev.truth.start = sc.start_utc.clone();
        }
        dev.seed = sc.seed.wrapping_mul(31).wrapping_add(i as u64);
        let params = match m.kind {
            MasterKind::Gps => MasterParams::default(),
            MasterKind::Armageddon => MasterParams {
                kind: MasterKind::Armageddon,
                gps: None,
                ..Default::default()
            },
        };
        let local = OscillatorParams {
            freq_offset_ppm: rng.random_range(-20.0..20.0),
            wander_ppm_per_sqrt_s: 0.0005,
            ..Default::default()
        };
        masters.push(Master {
            vm: VirtualMaster::new(params, dev, local, sc.seed ^ (0x5eed + i as u64), start),
            lie_ns: (m.lie_ms * 1e6) as i64,
            down: m
                .down
                .iter()
                .map(|d| (at_s(start, d[0]), at_s(start, d[0] + d[1])))
                .collect(),
            kind: m.kind,
            sent: HashMap::with_capacity_and_hasher(SENT_CAP + 1, Default::default()),
            view: None,
            peers: (0..sc.masters.len()).map(|_| Client::new()).collect(),
            evicted_at: None,
            expect_evicted: m.expect_evicted,
        });
    }
    Ok(masters)
}

/// The hosts' parameters, derived by timed's own config mapping
/// ([`timed::config::Config::host_params`]) from a timed config holding the scenario's host
/// settings — so the simulated hosts run exactly what a timed with those settings would, its
/// defaults and its checks included. Intervals are whole milliseconds and the frequency window
/// whole seconds, as timed's config holds them.
pub(super) fn host_params(sc: &FleetScenario) -> Result<HostParams, Error> {
    host_config(sc)
        .host_params()
        .map_err(|e| Error::failed(format!("hosts: timed refuses these settings: {e}")))
}

/// How the hosts poll, from the same timed config ([`timed::config::Config::poll_params`]).
pub(super) fn poll_params(sc: &FleetScenario) -> ttcore::poll::PollParams {
    host_config(sc).poll_params()
}

/// A timed config holding the scenario's host settings.
fn host_config(sc: &FleetScenario) -> timed::config::Config {
    let h = &sc.hosts;
    let sources = sc.masters.len() + sc.ntp_servers.len();
    let mut c = timed::config::Config::new(
        (0..sources)
            .map(|i| timed::config::MasterConfig::new(&format!("source-{i}.sim:123")))
            .collect(),
    );
    c.poll_interval_ms = (h.poll_interval_s * 1e3).round() as u64;
    c.max_drift_ppm = h.max_drift_ppm;
    c.frequency = h.frequency;
    c.max_liars = h.max_liars;
    c.max_epsilon_ns = (h.max_epsilon_ms * 1e6) as i64;
    c.freq_window_s = h.freq_window_s.round() as u64;
    c.burst = h.burst as u32;
    c.target_epsilon_ns = h.target_epsilon_ns;
    if let Some(v) = h.min_poll_interval_s {
        c.min_poll_interval_ms = (v * 1e3).round() as u64;
    }
    if let Some(v) = h.max_poll_interval_s {
        c.max_poll_interval_ms = (v * 1e3).round() as u64;
    }
    c
}

/// The scenario's clock disruptions, and the windows around them where watch ticks run.
pub(super) fn disruptions(sc: &FleetScenario, start: i64, steps: &[PhaseStep]) -> Disruptions {
    let span = |v: &Vec<[f64; 2]>| -> Vec<(i64, i64)> {
        v.iter()
            .map(|s| (at_s(start, s[0]), (s[1] * 1e6) as i64))
            .collect()
    };
    let (stalls, pauses) = (span(&sc.hosts.stalls), span(&sc.hosts.vm_pauses));
    let mut w: Vec<(i64, i64)> = steps
        .iter()
        .map(|s| (s.at_ns, 0))
        .chain(stalls.iter().copied())
        .chain(pauses.iter().copied())
        .map(|(a, d)| (a - 2 * WATCH, a + d.max(0) + 4 * WATCH))
        .collect();
    w.sort();
    let mut windows: Vec<(i64, i64)> = Vec::new();
    for (a, b) in w {
        match windows.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => windows.push((a, b)),
        }
    }
    Disruptions {
        stalls,
        pauses,
        windows,
    }
}

/// The hosts: each an oscillator (with the scenario's phase steps) and timed's core, freshly
/// started (disrupted until its first sync).
pub(super) fn build_hosts(
    sc: &FleetScenario,
    rng: &mut ChaCha8Rng,
    start: i64,
    hp: HostParams,
    steps: &[PhaseStep],
    dis: &Disruptions,
    n_masters: usize,
) -> Vec<Host> {
    // Its clients: one per master, then one per NTP server, as timed configures them.
    let clients: Vec<Client> = (0..n_masters)
        .map(|_| Client::new())
        .chain(sc.ntp_servers.iter().map(NtpServer::client))
        .collect();
    (0..sc.hosts.count)
        .map(|h| {
            let p = OscillatorParams {
                initial_phase_ns: rng.random_range(-1e9..1e9),
                freq_offset_ppm: rng
                    .random_range(-sc.hosts.freq_offset_ppm..=sc.hosts.freq_offset_ppm),
                wander_ppm_per_sqrt_s: sc.hosts.wander_ppm_per_sqrt_s,
                periodic_amplitude_ppm: sc.hosts.temperature_ppm,
                periodic_period_s: sc.hosts.temperature_period_s,
                periodic_phase_rad: rng.random_range(0.0..std::f64::consts::TAU),
                steps: steps.to_vec(),
                ..Default::default()
            };
            let mut osc =
                Oscillator::new(p, start, sc.seed ^ (h as u64 + 1).wrapping_mul(0x9e37_79b9));
            let raw0 = osc.reading_at(start);
            Host {
                osc,
                clock: HostClock::new(hp),
                clients: clients.clone(),
                check: dis.clocks(raw0, raw0 - start, start),
                boot_offset: raw0 - start,
                watch_phase: rng.random_range(0..WATCH),
                vm_marker: 0,
                cycle: ttcore::poll::BurstCycle::new(sc.hosts.burst.max(1) as u32),
                floor: Floor::default(),
            }
        })
        .collect()
}

/// The network and the fault schedule, fixed for the run.
pub(super) struct Network {
    /// Per host, per master: base (up, down) delay (ns).
    pub(super) links: Vec<Vec<(i64, i64)>>,
    /// (from, until, first master, last master) cut off from every host.
    pub(super) partitions: Vec<(i64, i64, usize, usize)>,
}

impl Network {
    pub(super) fn new(
        sc: &FleetScenario,
        rng: &mut ChaCha8Rng,
        start: i64,
        n_masters: usize,
    ) -> Network {
        let links = (0..sc.hosts.count)
            .map(|_| {
                (0..n_masters)
                    .map(|_| {
                        let d = rng.random_range(
                            sc.network.delay_us[0]
                                ..=sc.network.delay_us[1].max(sc.network.delay_us[0]),
                        );
                        let up = ((d + sc.network.asymmetry_us) * 1e3) as i64;
                        (up, (d * 1e3) as i64)
                    })
                    .collect()
            })
            .collect();
        let partitions = sc
            .network
            .partitions
            .iter()
            .map(|p| {
                (
                    at_s(start, p[0]),
                    at_s(start, p[0] + p[1]),
                    p[2] as usize,
                    p[3] as usize,
                )
            })
            .collect();
        Network { links, partitions }
    }

    /// Whether master `mi` (down during `down`) answers at `t`.
    pub(super) fn reachable(&self, m: &Master, mi: usize, t: i64) -> bool {
        !m.down.iter().any(|&(a, b)| t >= a && t < b)
            && !self
                .partitions
                .iter()
                .any(|&(a, b, lo, hi)| t >= a && t < b && mi >= lo && mi <= hi)
    }
}

/// What the run counts.
pub(super) struct Tally {
    pub(super) eps: Histogram<u64>,
    pub(super) commit_wait: Histogram<u64>,
    pub(super) samples: u64,
    pub(super) violations: u64,
    pub(super) exchanges: u64,
    pub(super) lost: u64,
    pub(super) first: Vec<Violation>,
    pub(super) status_count: [u64; 5],
    pub(super) status_after: [u64; 5],
    pub(super) trace: Vec<(f64, i64, ClockStatus)>,
    /// Rounds whose note said an assumption broke (the measurement and the prediction did
    /// not overlap), and rounds refused for too few answers or no agreement.
    pub(super) inconsistent_rounds: u64,
    pub(super) refused_rounds: u64,
    /// The link floor at each checked sample that had one ([`Floor`]), and the samples whose
    /// ε was below it.
    pub(super) floor: Histogram<u64>,
    pub(super) below_floor: u64,
}

impl Tally {
    /// Adds another shard's tally (histograms, counts, statuses, violations, the trace).
    pub(super) fn merge(&mut self, o: Tally) {
        let _ = self.eps.add(&o.eps);
        let _ = self.commit_wait.add(&o.commit_wait);
        self.samples += o.samples;
        self.violations += o.violations;
        self.exchanges += o.exchanges;
        self.lost += o.lost;
        self.first.extend(o.first);
        for i in 0..5 {
            self.status_count[i] += o.status_count[i];
            self.status_after[i] += o.status_after[i];
        }
        self.trace.extend(o.trace);
        self.inconsistent_rounds += o.inconsistent_rounds;
        self.refused_rounds += o.refused_rounds;
        let _ = self.floor.add(&o.floor);
        self.below_floor += o.below_floor;
    }

    pub(super) fn new() -> Tally {
        Tally {
            eps: hist(),
            commit_wait: hist(),
            samples: 0,
            violations: 0,
            exchanges: 0,
            lost: 0,
            first: Vec::new(),
            status_count: [0; 5],
            status_after: [0; 5],
            trace: Vec::new(),
            inconsistent_rounds: 0,
            refused_rounds: 0,
            floor: hist(),
            below_floor: 0,
        }
    }
}

/// timed's disruption check ([`ttcore::disrupt::check`], the same rule), at every watch tick
/// and every poll: a disruption makes the core forget its model and the clients their
/// interleaving state.
pub(super) fn watch(host: &mut Host, now: ClockPair, marker: u64, vm_moved: bool) {
    let disruption = match ttcore::disrupt::check(host.check, now) {
        Err(d) => Some(d),
        Ok(()) if vm_moved => Some(ttcore::disrupt::Disruption::Hypervisor),
        Ok(()) => None,
    };
    if let Some(d) = disruption {
        host.clock
            .on_disruption(ttcore::host::Disturbance::Clock(d));
        host.clients.iter_mut().for_each(Client::reset);
        host.floor.reset();
    }
    host.check = now;
    host.vm_marker = marker;
}

/// Where and when a reader samples.
pub(super) struct SampleAt {
    pub(super) t: i64,
    pub(super) h: usize,
    pub(super) now: ClockPair,
    pub(super) vm_moved: bool,
    pub(super) start: i64,
    pub(super) warm_up_end: i64,
}

/// A reader on host `h` reads `TT.now()` at true time `t`, as the page would give it, and the
/// interval is checked against truth.
pub(super) fn sample_host(
    sc: &FleetScenario,
    host: &Host,
    masters: &[Master],
    dis: &Disruptions,
    at: &SampleAt,
    tally: &mut Tally,
) {
    let (t, h, raw) = (at.t, at.h, at.now.raw);
    let (mut st, _) = host.clock.status_at(RawReading::from_nanos(raw));
    // The reader's own check against the page's pair (PROTOCOL.md reading step 3); outside
    // the windows it passes (see `Disruptions::windows`). With a VMClock, the reader also
    // compares its marker with the page's.
    if at.vm_moved
        || dis.in_window(t)
            && !ttsys::shm::continuous(host.check.raw, host.check.offset(), at.now.raw, at.now.boot)
    {
        st = ClockStatus::Disrupted;
    }
    tally.status_count[st.as_u8() as usize] += 1;
    if t >= at.warm_up_end {
        tally.status_after[st.as_u8() as usize] += 1;
    }
    let t_s = (t - at.start) as f64 / 1e9;
    let traced = Some(h) == sc.trace_host;
    let model = host.clock.model().filter(|_| st.is_trustworthy());
    let Some(m) = model else {
        if traced {
            tally.trace.push((t_s, 0, st));
        }
        return;
    };
    let raw = RawReading::from_nanos(raw);
    let iv = m.interval_at(raw);
    let truth = truth_at(masters, t);
    tally.samples += 1;
    if !iv.contains(truth) {
        tally.violations += 1;
        if tally.first.len() < 5 {
            tally.first.push(Violation {
                t_s,
                host: h,
                earliest_ns: iv.earliest().as_nanos(),
                latest_ns: iv.latest().as_nanos(),
                truth_ns: truth.as_nanos(),
                status: st,
            });
        }
    }
    let eps_ns = iv.epsilon().as_nanos();
    let eps = eps_ns.max(1) as u64;
    let _ = tally.eps.record(eps);
    if let Some(floor) = host.floor.at(raw.as_nanos(), host.clock.params().max_drift) {
        let _ = tally.floor.record(floor.max(1) as u64);
        if eps_ns < floor {
            tally.below_floor += 1;
        }
    }
    // Commit wait for s = latest: until earliest passes s, on this model.
    let s = iv.latest();
    let hi = m.raw_when_after(
        s,
        raw,
        raw.add(Span::from_nanos(60 * S)),
        Span::from_nanos(1_000),
    );
    let _ = tally
        .commit_wait
        .record(hi.since(raw).as_nanos().max(1) as u64);
    if traced {
        tally.trace.push((t_s, eps as i64, st));
    }
}

/// A poll by host `h` at true time `t` (raw reading `raw`): a burst of exchanges with each
/// source (the masters, then the NTP servers), the narrowest sample of each into the core's
/// one round.
#[allow(clippy::too_many_arguments)]
pub(super) fn poll_host(
    sc: &FleetScenario,
    host: &mut Host,
    h: usize,
    (masters, servers): (&mut [Master], &[NtpServer]),
    net: &Network,
    dis: &Disruptions,
    t: i64,
    raw: i64,
    rng: &mut ChaCha8Rng,
    tally: &mut Tally,
) {
    let drift = host.clock.exchange_drift();
    let carry = host.clock.carry_rate();
    let nm = masters.len();
    let mut round: Vec<Option<MasterSample>> = Vec::with_capacity(nm + servers.len());
    let mut last_t4 = raw;
    // One buffer for every source's samples (a basic and an interleaved one per exchange).
    let mut samples = Vec::with_capacity(2 * host.cycle.next as usize);
    // For the floor: the trustworthy answers, the masters among them, and when the round's
    // last exchange ended.
    let mut answers = 0;
    let mut trusted = Vec::with_capacity(nm);
    let mut round_end = t;
    for mi in 0..nm + servers.len() {
        let reachable = match mi.checked_sub(nm) {
            None => net.reachable(&masters[mi], mi, t),
            Some(si) => servers[si].reachable(t),
        };
        samples.clear();
        let mut t_send = t;
        for _ in 0..host.cycle.next {
            tally.exchanges += 1;
            if !reachable || (sc.network.loss > 0.0 && rng.random::<f64>() < sc.network.loss) {
                tally.lost += 1;
                host.clients[mi].reset();
                continue;
            }
            let (up, down) = net.links[h][mi];
            let j = sc.network.jitter_us * 1e3;
            let up = up + (j * -rng.random::<f64>().max(1e-12).ln()) as i64;
            let down = down + (j * -rng.random::<f64>().max(1e-12).ln()) as i64;
            let send_path = (sc.network.send_path_us * 1e3) as i64;
            let cookie = rng.random::<u64>();
            let osc = &mut host.osc;
            let boot_offset = host.boot_offset;
            let mut client_raw = |tt| dis.clocks(osc.reading_at(tt), boot_offset, tt).raw;
            let out = match mi.checked_sub(nm) {
                None => exchange(
                    &mut masters[mi],
                    &mut host.clients[mi],
                    cookie,
                    t_send,
                    (up, down, send_path),
                    Span::from_millis(1),
                    drift,
                    &mut client_raw,
                ),
                Some(si) => ntp_exchange(
                    &servers[si],
                    masters,
                    &mut host.clients[mi],
                    cookie,
                    t_send,
                    (up, down),
                    drift,
                    &mut client_raw,
                ),
            };
            if let Some(o) = out {
                samples.push(o.basic);
                samples.extend(o.interleaved);
            }
            t_send += up + down + 20_000;
        }
        // (Its last reply arrived by the next send slot, or by the kernel's send path after
        // it.)
        round_end = round_end.max(t_send + (sc.network.send_path_us * 1e3) as i64);
        let at = samples.iter().map(|s| s.m.at.as_nanos()).max();
        let best = at.and_then(|at| ttcore::ntp::narrowest(&samples, at, carry));
        if let Some(at) = at {
            last_t4 = last_t4.max(at);
        }
        if best.is_some_and(|b| b.trustworthy) {
            answers += 1;
            if mi < nm {
                trusted.push(mi);
            }
        }
        round.push(best.map(|s| MasterSample {
            bounds: s.m.bounds,
            at_raw: RawReading::from_nanos(s.m.at.as_nanos()),
            trustworthy: s.trustworthy,
        }));
    }
    let r = host.clock.on_round(RawReading::from_nanos(last_t4), &round);
    match r.note {
        Some(RoundNote::Inconsistent(_)) => {
            tally.inconsistent_rounds += 1;
            // An assumption broke: the floor's worlds start over with the host's model.
            host.floor.reset();
        }
        Some(RoundNote::TooFewToOutvote { .. } | RoundNote::NoAgreement) => {
            tally.refused_rounds += 1
        }
        Some(RoundNote::Resynchronized) | None => {}
    }
    let liars = host.clock.params().liars_tolerated(round.len());
    floor_round(
        &mut host.floor,
        masters,
        &net.links[h],
        (t, round_end, last_t4),
        &trusted,
        (answers, liars),
    );
}

/// The floor's part of a round that ran over true times `t..=end` and whose latest reply came
/// at raw `raw`: what the honest masters among the `trusted` ones allow — each one's slack over
/// the whole round (one truth per end, whichever master is asked), plus its link's fixed delays.
/// Kept out of line: it runs once per round, beside the exchanges' hot path.
#[inline(never)]
fn floor_round(
    floor: &mut Floor,
    masters: &mut [Master],
    links: &[(i64, i64)],
    (t, end, raw): (i64, i64, i64),
    trusted: &[usize],
    (answers, liars): (usize, usize),
) {
    let ends = [t, end].map(|at| (at, truth_at(masters, at)));
    let extents: Vec<(i64, i64)> = trusted
        .iter()
        .filter_map(|&mi| {
            let (late, early) = masters[mi].honest_slack(ends)?;
            let (up, down) = links[mi];
            Some((up + late, down + early))
        })
        .collect();
    floor.on_round(raw, &extents, answers, liars);
}

/// After a poll under a target (at the host's raw reading `raw`): its next burst and the wait
/// until its next poll (ns), as timed's poll loop decides them
/// ([`ttcore::poll::PollParams::after_round`]; the exchanges take no noticeable time here, so no
/// overhead), spread up to 10 % early.
pub(super) fn next_budget_poll(
    pp: &ttcore::poll::PollParams,
    host: &mut Host,
    raw: i64,
    rng: &mut ChaCha8Rng,
) -> i64 {
    let plan = pp.after_round(
        &mut host.cycle,
        host.clock.model(),
        RawReading::from_nanos(raw),
        Span::ZERO,
    );
    let i = plan.interval.as_nanos();
    i - rng.random_range(0..=i / 10)
}
