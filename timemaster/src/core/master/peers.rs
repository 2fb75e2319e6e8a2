//! Peers: an armageddon master's one-time start from its peers' time, the cross-check that
//! evicts a master disagreeing with the peer majority, and clock disruptions.

use super::*;
use ttcore::RawReading;

impl MasterCore {
    /// Time from the peers (Marzullo of their offset intervals, timescale − raw) measured at raw
    /// `raw`. An armageddon master takes it once, at its next atomic pulse.
    pub fn on_peer_time(&mut self, raw: RawReading, offset: OffsetInterval) {
        let raw = raw.as_nanos();
        if self.p.kind != MasterKind::Armageddon {
            return;
        }
        let (limit, max_eps, quartz) = (
            self.p.peer_max_radius,
            self.p.max_epsilon,
            self.p.quartz_holdover,
        );
        let Some(Acquisition { offers, .. }) = self.discipline.acquisition_mut() else {
            return;
        };
        if offset.radius() <= limit {
            offers.usable = Some((raw, offset));
            return;
        }
        // Too wide: remember the narrowest; after PEER_ROUNDS rounds take it if it still fits
        // well inside max-epsilon (a busy network may never offer a narrow one).
        offers.too_wide += 1;
        if offers
            .best
            .is_none_or(|(_, b)| offset.radius() < b.radius())
        {
            offers.best = Some((raw, offset));
        }
        let first_report = !std::mem::replace(&mut offers.reported, true);
        let mut taken = None;
        if offers.too_wide >= PEER_ROUNDS
            && let Some((r, best)) = offers.best
            && best.radius().as_nanos().saturating_mul(2) <= max_eps.as_nanos()
        {
            // Carry the old measurement to now: widen by the quartz bound over the gap.
            let widened = best.widen(quartz.bound_over(Span::from_nanos(raw - r)));
            offers.usable = Some((raw, widened));
            taken = Some(widened.radius());
        }
        if first_report {
            let radius = offset.radius();
            self.event(raw, MasterEvent::PeerTimeTooWide { radius, limit });
        }
        if let Some(radius) = taken {
            let rounds = PEER_ROUNDS;
            self.event(raw, MasterEvent::PeerTimeTakenNarrowest { rounds, radius });
        }
    }

    /// The peer time an armageddon master would start from now, if any.
    pub fn peer_offer(&self) -> Option<(i64, OffsetInterval)> {
        self.discipline.acquisition().and_then(|a| a.offers.usable)
    }

    /// One peer round for an armageddon master that still needs time: `peers[i]` is configured
    /// peer `i`'s offset interval (timescale − our raw) at `raw`, `None` if unreachable or
    /// untrustworthy.
    ///
    /// The fleet (the peers and this master) is assumed to hold at most
    /// `f = ⌊(peers + 1 − 1) / 2⌋` faulty masters — lying, silent or untrustworthy alike — and
    /// this master is not one of them. Each peer without an answer uses up one of the `f`, so at
    /// most `f − missing` of the answers lie and the truth is covered by at least
    /// `usable − (f − missing)` of them: the hull of what that many cover is taken
    /// ([`marzullo::covered_hull`]), wide when liars agree with each other, never wrong. (A
    /// majority rule over the answers alone let two liars of four that overlap the honest pair
    /// pick their overlap.) `Ok(false)`: nothing to do (not armageddon, or time already taken).
    pub fn on_peer_round(
        &mut self,
        raw: RawReading,
        peers: &[Option<OffsetInterval>],
    ) -> Result<bool, marzullo::MarzulloError> {
        let raw = raw.as_nanos();
        if !self.wants_peer_time() {
            return Ok(false);
        }
        let usable: Vec<OffsetInterval> = peers.iter().flatten().copied().collect();
        let f = peers.len() / 2;
        let liars = f.saturating_sub(peers.len() - usable.len());
        let sel = marzullo::covered_hull(&usable, usable.len().saturating_sub(liars))?;
        self.on_peer_time(RawReading::from_nanos(raw), sel.interval);
        Ok(true)
    }

    /// Whether an armageddon master still needs time from its peers.
    pub fn wants_peer_time(&self) -> bool {
        self.p.kind == MasterKind::Armageddon && self.discipline.acquisition().is_some()
    }

    pub(super) fn armageddon_start(&mut self, edge_raw: i64, a: AtomicParams) {
        let Some((at, off)) = self.peer_offer() else {
            return;
        };
        let age = Span::from_nanos((edge_raw - at).abs());
        let t = edge_raw + off.midpoint().as_nanos();
        let eps = off.radius().as_nanos() as f64
            + self.p.quartz_holdover.bound_over(age).as_nanos() as f64
            + 1.0;
        let Some(phase) = self.tai_phase(t) else {
            return;
        };
        self.atomic_phase.clear();
        self.atomic_phase.push_back(phase);
        // The new filter's frequency holds no smear rate yet: the first pulse in a smear
        // window applies it.
        self.smear_rate = 0.0;
        let kf = Kalman::new(
            self.p.kalman,
            edge_raw,
            t - edge_raw,
            a.jitter_ns.max(1.0).powi(2),
        );
        let was_disrupted = matches!(self.discipline, Discipline::Disrupted(_));
        self.discipline = Discipline::PeerTime {
            kf,
            atomic: a,
            at: edge_raw,
            eps_ns: eps,
        };
        self.last_accept_raw = Some(edge_raw);
        self.event(edge_raw, MasterEvent::TimeFromPeers(eps));
        // Time from the peers is this master's reference: taking it again after a disruption
        // is the re-acquisition that ends it.
        if was_disrupted {
            self.event(edge_raw, MasterEvent::Resynchronized);
        }
    }

    /// Whether the cross-check has evicted this master (it disagrees with its peers' majority).
    pub fn evicted(&self) -> bool {
        matches!(self.standing, Standing::Evicted { .. })
    }

    /// Our own offset interval (timescale − raw) at `raw`, if synchronized.
    pub fn own_offset(&self, raw: RawReading) -> Option<OffsetInterval> {
        let m = self.model()?;
        let est = m.estimate_at(raw)?;
        let eps = m.epsilon_at(raw);
        let mid = est
            .as_nanos()
            .checked_sub(raw.as_nanos())
            .map(Span::from_nanos)?;
        OffsetInterval::new(mid.saturating_sub(eps), mid.saturating_add(eps))
    }

    /// One cross-check round at `raw` against the peers' offset intervals (timescale − our raw,
    /// `None` for unreachable or untrustworthy peers). Three rounds in a row decide an eviction
    /// or a return.
    pub fn cross_check(&mut self, raw: RawReading, peers: &[Option<OffsetInterval>]) -> CrossCheck {
        let raw = raw.as_nanos();
        let Some(own) = self.own_offset(RawReading::from_nanos(raw)) else {
            return CrossCheck::TooFew;
        };
        let mut ivs = vec![own];
        let mut idx = Vec::new();
        for (i, p) in peers.iter().enumerate() {
            if let Some(p) = p {
                idx.push(i);
                ivs.push(*p);
            }
        }
        if ivs.len() < 3 {
            return CrossCheck::TooFew;
        }
        let f = (ivs.len() - 1) / 2;
        let (agree, agreeing) = match marzullo::select(&ivs, f) {
            Ok(s) => (s.agreeing.contains(&0), s.agreeing),
            // Without a majority there is no one to disagree with: undecided.
            Err(_) => return CrossCheck::NoMajority,
        };
        let mut per_peer = vec![false; peers.len()];
        for (j, &i) in idx.iter().enumerate() {
            per_peer[i] = agreeing.contains(&(j + 1));
        }
        // Three decided rounds in a row move the standing either way.
        let next = match (self.standing, agree) {
            (Standing::InGood { .. }, true) => Standing::InGood { disagreeing: 0 },
            (Standing::InGood { disagreeing }, false) if disagreeing + 1 >= 3 => {
                let why = Eviction {
                    agreeing: per_peer.iter().filter(|a| **a).count(),
                    answering: idx.len(),
                };
                self.event(raw, MasterEvent::Evicted(why));
                Standing::Evicted { why, agreeing: 0 }
            }
            (Standing::InGood { disagreeing }, false) => Standing::InGood {
                disagreeing: disagreeing + 1,
            },
            (Standing::Evicted { agreeing, .. }, true) if agreeing + 1 >= 3 => {
                self.event(raw, MasterEvent::EvictionLifted);
                Standing::InGood { disagreeing: 0 }
            }
            (Standing::Evicted { why, agreeing }, true) => Standing::Evicted {
                why,
                agreeing: agreeing + 1,
            },
            (Standing::Evicted { why, .. }, false) => Standing::Evicted { why, agreeing: 0 },
        };
        self.standing = next;
        CrossCheck::Decided {
            agree,
            peers: per_peer,
        }
    }

    /// The host clock was disrupted (suspend, jump) at `raw`: forget the model until the
    /// reference is re-acquired.
    pub fn on_disruption(&mut self, raw: RawReading, why: Disruption) {
        let raw = raw.as_nanos();
        // Any → Disrupted: the filter, start-up pulses, holdover segment and peer offers were
        // all measured against the old raw clock.
        self.discipline = Discipline::Disrupted(Acquisition::default());
        self.pending_pulses.clear();
        self.labels.clear();
        self.event(raw, MasterEvent::ClockDisrupted(why));
    }
}
