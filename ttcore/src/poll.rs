//! How often a host polls its masters: either a fixed interval, or the interval the error
//! budget asks for — the longest wait after which ε is still within `target_epsilon` — between
//! a minimum and a maximum. Pure: the model and the last poll's cost are arguments.
//!
//! # The budget
//!
//! Between syncs ε grows from `ε_ref` at the model's drift bound `d` (max-drift plus the
//! frequency estimate's half-width): `ε(age) = ε_ref + d·age + 1 ns`. The next round lands
//! `interval + overhead` after the reference (`overhead` = how long the last round's exchanges
//! took), so the largest interval that keeps ε ≤ target up to the next sync is
//! `(target − ε_ref − 1 ns) / d − overhead`. With the default 15 ppm a 5 µs target allows about
//! 300 ms; with 200 ppm (an assumed-frequency host), 25 µs.
//!
//! # Bursts
//!
//! A full burst (`burst` exchanges, the narrowest kept) costs `burst` × the requests of a single
//! exchange. When the last sync used at most half the target, a light burst of
//! [`LIGHT_BURST`] exchanges per master is enough; every `full_burst_every` rounds, and whenever
//! ε at sync has used more than half the budget, a full burst is sent.
//!
//! A light burst is a *pair*, not one exchange: a reply's own transmit stamp is taken in user
//! space before the send (the kernel's comes later, from the error queue), so a lone exchange's
//! bound includes the master's whole send path; the second exchange brings the kernel stamp of
//! the first (interleaved mode), which is fresh. The interleaved sample of the previous round's
//! exchange is no help at µs budgets: carried across a poll interval at the drift bound it
//! widens by more than the budget (15 ppm × 200 ms = 3 µs).

use crate::clock_model::ClockModel;
use crate::time::{RawReading, Span};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Exchanges per master in a light burst: an exchange and the interleaved one that brings its
/// kernel transmit stamp.
pub const LIGHT_BURST: u32 = 2;

/// The polling configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollParams {
    /// The interval when there is no target (ns).
    pub interval: Span,
    /// Keep ε under this at every instant (`None`: poll at the fixed `interval`).
    pub target_epsilon: Option<Span>,
    /// The shortest interval the budget may choose (and the one used while acquiring).
    pub min_interval: Span,
    /// The longest interval the budget may choose.
    pub max_interval: Span,
    /// Under a target: a full burst at least every this many rounds.
    pub full_burst_every: u32,
}

impl Default for PollParams {
    /// A fixed 1 s interval (no target); with a target, between 125 ms and 16 s, a full burst at
    /// least every 16 rounds.
    fn default() -> Self {
        PollParams {
            interval: Span::from_secs(1),
            target_epsilon: None,
            min_interval: Span::from_millis(125),
            max_interval: Span::from_secs(16),
            full_burst_every: 16,
        }
    }
}

/// Why the interval is what it is (shown in `ttctl status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PollReason {
    /// No target configured: the fixed interval.
    Fixed,
    /// No model yet: polling at the minimum to acquire.
    Acquiring,
    /// The budget's interval, between the minimum and the maximum.
    Budget,
    /// The budget asks for less than the minimum (ε at sync, or the drift bound, is too large
    /// for the target): polling at the minimum; ε will exceed the target between polls.
    AtMinimum,
    /// The budget allows more than the maximum: polling at the maximum.
    AtMaximum,
}

impl PollReason {
    /// A short phrase.
    pub fn as_str(self) -> &'static str {
        match self {
            PollReason::Fixed => "fixed interval (no target-epsilon-ns)",
            PollReason::Acquiring => "acquiring: no model yet, polling at the minimum",
            PollReason::Budget => "keeps ε under target-epsilon-ns until the next sync",
            PollReason::AtMinimum => {
                "at the minimum: ε at sync plus the drift bound leave no room for the target"
            }
            PollReason::AtMaximum => "at the maximum: the budget would allow longer",
        }
    }
}

impl fmt::Display for PollReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The next poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollPlan {
    /// Wait this long before the next round.
    pub interval: Span,
    /// Send a full burst (else a light burst of [`LIGHT_BURST`]).
    pub full_burst: bool,
    /// Why.
    pub reason: PollReason,
}

impl PollParams {
    /// The plan after a round, at raw reading `now`: `model` is the host's model, `overhead`
    /// how long the last round's exchanges took, `since_full` the rounds since the last full
    /// burst. The model's age at `now` is spent from the budget: after a round that did not
    /// update the model (no answer, no agreement) the next poll comes sooner, not a whole
    /// budget later.
    pub fn plan(
        &self,
        model: Option<&ClockModel>,
        now: RawReading,
        overhead: Span,
        since_full: u32,
    ) -> PollPlan {
        let Some(target) = self.target_epsilon else {
            return PollPlan {
                interval: self.interval,
                full_burst: true,
                reason: PollReason::Fixed,
            };
        };
        let Some(m) = model else {
            return PollPlan {
                interval: self.min_interval,
                full_burst: true,
                reason: PollReason::Acquiring,
            };
        };
        let eps_sync = m
            .eps_ref
            .max(Span::ZERO)
            .saturating_add(Span::from_nanos(1));
        let full_burst = since_full.saturating_add(1) >= self.full_burst_every
            || eps_sync.as_nanos().saturating_mul(2) > target.as_nanos();
        let (interval, reason) = match self.budget(m, target) {
            Some(age) => {
                let spent = now.since(m.ref_raw).max(Span::ZERO);
                let i = age
                    .saturating_sub(spent)
                    .saturating_sub(overhead.max(Span::ZERO));
                if i < self.min_interval {
                    (self.min_interval, PollReason::AtMinimum)
                } else if i > self.max_interval {
                    (self.max_interval, PollReason::AtMaximum)
                } else {
                    (i, PollReason::Budget)
                }
            }
            None => (self.min_interval, PollReason::AtMinimum),
        };
        PollPlan {
            interval,
            full_burst,
            reason,
        }
    }

    /// The largest age at which the model's ε is still within `target`, or `None` when it is
    /// beyond it already at the reference. A zero drift bound allows any age.
    pub fn budget(&self, m: &ClockModel, target: Span) -> Option<Span> {
        match m.raw_when_epsilon_exceeds(target) {
            // The first reading beyond the target, less one: the last one within it.
            Some(r) => Some(r.since(m.ref_raw).saturating_sub(Span::from_nanos(1))),
            None if m
                .eps_ref
                .max(Span::ZERO)
                .saturating_add(Span::from_nanos(1))
                > target =>
            {
                None
            }
            None => Some(Span::MAX),
        }
    }
}

/// A host's bursts from round to round: how many exchanges per source the coming round sends
/// (a full burst, or a light one) and the rounds since the last full burst. timed's poll loop
/// and the simulator's hosts both keep one and advance it with [`PollParams::after_round`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BurstCycle {
    /// Exchanges per source in a full burst (the configured `burst`).
    pub full: u32,
    /// Exchanges per source in the coming round.
    pub next: u32,
    /// Rounds since the last full burst.
    since_full: u32,
}

impl BurstCycle {
    /// Before the first round: a full burst of `full` exchanges.
    pub fn new(full: u32) -> Self {
        BurstCycle {
            full,
            next: full,
            since_full: 0,
        }
    }
}

impl PollParams {
    /// After a round that sent `cycle.next` exchanges per source: the plan ([`PollParams::plan`]
    /// at raw reading `now`), with `cycle.next` set for the coming round — the full burst, or a
    /// light one of [`LIGHT_BURST`].
    pub fn after_round(
        &self,
        cycle: &mut BurstCycle,
        model: Option<&ClockModel>,
        now: RawReading,
        overhead: Span,
    ) -> PollPlan {
        cycle.since_full = if cycle.next >= cycle.full {
            0
        } else {
            cycle.since_full.saturating_add(1)
        };
        let plan = self.plan(model, now, overhead, cycle.since_full);
        cycle.next = if plan.full_burst {
            cycle.full
        } else {
            cycle.full.min(LIGHT_BURST)
        };
        plan
    }
}

/// One source's own limit on how fast it is polled, raised when it answers with a `RATE` kiss
/// (RFC 5905 §7.4: the client must reduce its rate). Each kiss doubles the source's minimum
/// interval (from at least the interval then in use, to at most `max`); every `RELAX_AFTER`
/// polls without a kiss halve it again, so a master that stops limiting is polled normally
/// after a while.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceBackoff {
    /// Polled no faster than this; zero: no limit of its own.
    pub min_interval: Span,
    /// Raw reading (ns) of its last poll.
    pub last_poll: Option<i64>,
    /// Kisses so far.
    pub kisses: u64,
    /// Polls since the last kiss.
    pub clean: u32,
}

impl SourceBackoff {
    /// Kiss-free polls after which the minimum interval halves.
    pub const RELAX_AFTER: u32 = 16;

    /// Whether to poll it in a round at raw reading `now` (ns). A round that starts up to 5 %
    /// early still counts, so scheduling noise does not skip a whole round.
    pub fn due(&self, now: i64) -> bool {
        let min = self.min_interval.as_nanos();
        self.last_poll
            .is_none_or(|l| now.saturating_sub(l).saturating_mul(20) >= min.saturating_mul(19))
    }

    /// Records a poll at `now` that was (or was not) answered with a kiss; `interval` is the
    /// host's interval then, `max` the longest the limit may grow to.
    pub fn polled(&mut self, now: i64, kissed: bool, interval: Span, max: Span) {
        self.last_poll = Some(now);
        if kissed {
            self.kisses += 1;
            self.clean = 0;
            let from = self.min_interval.max(interval).max(Span::from_nanos(1));
            self.min_interval = Span::from_nanos(from.as_nanos().saturating_mul(2)).min(max);
        } else {
            self.clean = self.clean.saturating_add(1);
            if self.clean >= Self::RELAX_AFTER && self.min_interval > Span::ZERO {
                self.clean = 0;
                let half = Span::from_nanos(self.min_interval.as_nanos() / 2);
                self.min_interval = if half <= interval { Span::ZERO } else { half };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::Rate;
    use crate::time::Timestamp;

    /// The models' reference reading: a plan made right after the round.
    const REF: RawReading = RawReading::from_nanos(1_000_000_000);

    fn model(eps_ref_ns: i64, drift_ppm: i64) -> ClockModel {
        ClockModel {
            ref_raw: REF,
            ref_time: Timestamp::from_nanos(5_000_000_000),
            freq: Rate::from_ppm(3),
            eps_ref: Span::from_nanos(eps_ref_ns),
            drift_bound: Rate::from_ppm(drift_ppm),
        }
    }

    fn budget(target_ns: i64) -> PollParams {
        PollParams {
            target_epsilon: Some(Span::from_nanos(target_ns)),
            ..Default::default()
        }
    }

    #[test]
    fn fixed_without_a_target() {
        let p = PollParams::default();
        let plan = p.plan(Some(&model(500, 15)), REF, Span::from_millis(3), 0);
        assert_eq!(plan.interval, Span::from_secs(1));
        assert!(plan.full_burst);
        assert_eq!(plan.reason, PollReason::Fixed);
    }

    #[test]
    fn acquiring_polls_at_the_minimum_with_full_bursts() {
        let plan = budget(5_000).plan(None, REF, Span::ZERO, 0);
        assert_eq!(plan.interval, Span::from_millis(125));
        assert!(plan.full_burst);
        assert_eq!(plan.reason, PollReason::Acquiring);
    }

    #[test]
    fn the_budget_keeps_epsilon_under_the_target_at_the_next_sync() {
        let p = budget(5_000);
        let m = model(800, 15);
        let overhead = Span::from_millis(2);
        let plan = p.plan(Some(&m), REF, overhead, 0);
        assert_eq!(plan.reason, PollReason::Budget);
        // (5000 − 801) ns / 15 ppm ≈ 279.9 ms, less the 2 ms the round takes.
        let ms = plan.interval.as_nanos() as f64 / 1e6;
        assert!((277.0..278.5).contains(&ms), "{ms}");
        // At the next sync (interval + overhead after the reference) ε is within the target;
        // 1 µs later it is not.
        let at = RawReading::from_nanos(
            m.ref_raw.as_nanos() + plan.interval.as_nanos() + overhead.as_nanos(),
        );
        assert!(m.epsilon_at(at) <= Span::from_nanos(5_000));
        let later = RawReading::from_nanos(at.as_nanos() + 1_000_000);
        assert!(m.epsilon_at(later) > Span::from_nanos(5_000));
        // ε at sync used under half the target: a light burst will do.
        assert!(!plan.full_burst);
    }

    #[test]
    fn bounds_and_full_bursts() {
        let p = budget(5_000);
        // ε at sync beyond the target: the minimum, and a full burst.
        let plan = p.plan(Some(&model(6_000, 15)), REF, Span::ZERO, 0);
        assert_eq!(plan.interval, p.min_interval);
        assert_eq!(plan.reason, PollReason::AtMinimum);
        assert!(plan.full_burst);
        // A large drift bound leaves less than the minimum.
        let plan = p.plan(Some(&model(800, 1_000)), REF, Span::ZERO, 0);
        assert_eq!(
            (plan.interval, plan.reason),
            (p.min_interval, PollReason::AtMinimum)
        );
        // A tiny drift bound (or none) allows more than the maximum.
        let plan = p.plan(Some(&model(800, 0)), REF, Span::ZERO, 0);
        assert_eq!(
            (plan.interval, plan.reason),
            (p.max_interval, PollReason::AtMaximum)
        );
        let plan = budget(1_000_000).plan(Some(&model(800, 1)), REF, Span::ZERO, 0);
        assert_eq!(plan.reason, PollReason::AtMaximum);
        // More than half the budget used at sync: a full burst.
        assert!(
            p.plan(Some(&model(2_600, 15)), REF, Span::ZERO, 0)
                .full_burst
        );
        assert!(
            !p.plan(Some(&model(2_400, 15)), REF, Span::ZERO, 0)
                .full_burst
        );
        // And at least every `full_burst_every` rounds.
        assert!(
            !p.plan(Some(&model(800, 15)), REF, Span::ZERO, 14)
                .full_burst
        );
        assert!(
            p.plan(Some(&model(800, 15)), REF, Span::ZERO, 15)
                .full_burst
        );
    }

    #[test]
    fn a_kissed_source_is_polled_less_and_recovers() {
        let ms = |v: i64| Span::from_millis(v);
        let max = Span::from_secs(16);
        let mut b = SourceBackoff::default();
        assert!(b.due(0));
        // Kissed while polling every 250 ms: no faster than 500 ms, then 1 s, 2 s…
        b.polled(0, true, ms(250), max);
        assert_eq!(b.min_interval, ms(500));
        assert!(!b.due(ms(250).as_nanos()));
        assert!(b.due(ms(480).as_nanos()));
        b.polled(ms(500).as_nanos(), true, ms(250), max);
        assert_eq!(b.min_interval, ms(1000));
        for _ in 0..10 {
            b.polled(0, true, ms(250), max);
        }
        assert_eq!(b.min_interval, max);
        assert_eq!(b.kisses, 12);
        // Kiss-free polls relax it, halving every RELAX_AFTER, back to no limit.
        let mut polls = 0;
        while b.min_interval > Span::ZERO {
            b.polled(0, false, ms(250), max);
            polls += 1;
            assert!(polls < 1000);
        }
        // 16 s → 8 → 4 → 2 → 1 → 0.5 → 0 (0.25 is not above the interval).
        assert_eq!(polls, 6 * SourceBackoff::RELAX_AFTER);
    }

    #[test]
    fn a_round_that_did_not_update_the_model_spends_its_budget() {
        let p = budget(5_000);
        let m = model(800, 15);
        let fresh = p.plan(Some(&m), REF, Span::ZERO, 0).interval;
        // 200 ms later, with the model unchanged (the round failed): what is left, not a
        // whole budget again.
        let later = RawReading::from_nanos(REF.as_nanos() + 200_000_000);
        let left = p.plan(Some(&m), later, Span::ZERO, 0);
        assert_eq!(
            left.interval,
            Span::from_nanos(fresh.as_nanos() - 200_000_000).max(p.min_interval)
        );
        // Past the budget: the minimum.
        let late = RawReading::from_nanos(REF.as_nanos() + 1_000_000_000);
        let plan = p.plan(Some(&m), late, Span::ZERO, 0);
        assert_eq!(
            (plan.interval, plan.reason),
            (p.min_interval, PollReason::AtMinimum)
        );
    }

    #[test]
    fn the_cycle_sends_light_bursts_between_full_ones() {
        let p = PollParams {
            full_burst_every: 4,
            ..budget(5_000)
        };
        let m = model(800, 15);
        let mut c = BurstCycle::new(4);
        let mut sent = vec![c.next];
        for _ in 0..8 {
            p.after_round(&mut c, Some(&m), REF, Span::ZERO);
            sent.push(c.next);
        }
        // A full burst at least every 4 rounds, pairs in between.
        assert_eq!(sent, [4, 2, 2, 2, 4, 2, 2, 2, 4]);
        // Fixed polls: always the full burst.
        let mut c = BurstCycle::new(4);
        PollParams::default().after_round(&mut c, Some(&m), REF, Span::ZERO);
        assert_eq!(c.next, 4);
        // A configured burst of 1 stays 1.
        let mut c = BurstCycle::new(1);
        p.after_round(&mut c, Some(&m), REF, Span::ZERO);
        assert_eq!(c.next, 1);
    }
}
