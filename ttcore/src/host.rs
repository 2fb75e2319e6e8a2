//! The per-host synchronization logic (what `timed` runs, and the fleet simulator too): select
//! among masters, estimate the local oscillator's frequency, keep the [`ClockModel`], decide the
//! status.
//!
//! # One round
//!
//! 1. Each master's exchange gives an offset interval (timescale − raw) at its `t4`
//!    ([`crate::transfer::measure`]). They are brought to a common raw reading by widening with
//!    the drift bound over the gap.
//! 2. Marzullo over the trustworthy ones gives the interval `I` — the hull of what at least
//!    `n − f` of the `n` answers cover — and the agreeing (selected) masters. `f` is the
//!    configured `max_liars`, by default a minority of the masters *configured* (`⌊(N−1)/2⌋`),
//!    and stays so when some do not answer: with fewer answering the hull is wider, never a
//!    guess between two groups; with no more than `f` answering the round refuses.
//! 3. `I` is intersected with the current model's prediction (both are honest under the
//!    assumptions, so their intersection is too). An empty intersection means an assumption
//!    broke: the prediction is dropped and `I` alone is used.
//! 4. Frequency: from each interval kept in the window (up to `freq_window`, at least 1 s
//!    before) to `I`, the average rate of the offset over that span lies in
//!    `[(lo₂ − hi₁)/Δ, (hi₂ − lo₁)/Δ]`: the true offset was inside the old interval and is
//!    inside `I`. Each such bound is honest on its own; the narrowest is used (usually the
//!    oldest, since the width falls as 1/Δ — but not when an early round was wide, e.g. while a
//!    liar was still being voted out, which would otherwise widen the estimate until that round
//!    left the window). Its midpoint is the estimate, its half-width is added to the drift bound
//!    — so the estimate's own error is covered, not assumed.
//! 5. The model: reference `(raw, raw + mid)`, `ε_ref = radius`, drift bound
//!    `max_drift + half-width`.
//!
//! # Assumptions (visible in status output)
//!
//! * the local oscillator's rate stays within `max_drift` of its average over any span of the
//!   window that ends at the latest sync (the span the estimate was taken over);
//! * fewer than half of the masters selected from are wrong at once;
//! * each master's error is within its published ε; delays are positive.

use crate::clock_model::ClockModel;
use crate::disrupt::Disruption;
use crate::interval::{ClockStatus, EPSILON_BEYOND_MAX};
use crate::marzullo;
use crate::rate::Rate;
use crate::time::{RawReading, Span, Timestamp};
use crate::transfer::OffsetInterval;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt;

/// How the host treats its oscillator's frequency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FrequencyMode {
    /// Measure the rate from interval pairs; `max_drift` bounds only the wander around it, and
    /// the estimate's proven half-width is added on top (the default).
    #[default]
    Measured,
    /// No estimate: the raw clock is taken at rate 1 and `max_drift` bounds its whole error
    /// (Spanner 2012: 200 ppm).
    Assumed,
}

impl FrequencyMode {
    /// "measured" / "assumed".
    pub fn as_str(self) -> &'static str {
        match self {
            FrequencyMode::Measured => "measured",
            FrequencyMode::Assumed => "assumed",
        }
    }
}

/// Host parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostParams {
    /// `Measured`: bound on how far the oscillator's rate wanders from its measured average;
    /// `Assumed`: bound on its whole frequency error (`max-drift-ppm`).
    pub max_drift: Rate,
    /// Measured or assumed frequency.
    pub frequency: FrequencyMode,
    /// Liars to tolerate; `None` = ⌊(N−1)/2⌋ of the N masters configured. Held when masters
    /// fall silent: the round takes the hull of what `n − f` of the `n` answers cover, and
    /// refuses when no more than `f` answer.
    pub max_liars: Option<usize>,
    /// Beyond this ε the status is unsynchronized.
    pub max_epsilon: Span,
    /// Without a fresh sync for this long, the status is holdover.
    pub holdover_after: Span,
    /// How far back the frequency estimate looks.
    pub freq_window: Span,
}

impl HostParams {
    /// The liars a round tolerates among `configured` sources: `max_liars`, or a minority of
    /// them (`⌊(N−1)/2⌋`). A round takes what at least `n − f` of its `n` trustworthy answers
    /// cover.
    pub fn liars_tolerated(&self, configured: usize) -> usize {
        self.max_liars.unwrap_or((configured.max(1) - 1) / 2)
    }
}

impl Default for HostParams {
    fn default() -> Self {
        HostParams {
            max_drift: Rate::from_ppm(15),
            frequency: FrequencyMode::Measured,
            max_liars: None,
            max_epsilon: Span::from_millis(100),
            holdover_after: Span::from_secs(5),
            freq_window: Span::from_secs(64),
        }
    }
}

/// One master's contribution to a round.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MasterSample {
    /// Offset interval (timescale − our raw clock, ns) at `at_raw`.
    pub bounds: OffsetInterval,
    /// The raw reading the bounds refer to (the exchange's `t4`).
    pub at_raw: RawReading,
    /// Whether the master says its time is trustworthy (synchronized or holdover).
    pub trustworthy: bool,
}

/// Why a master was or was not used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "verdict", content = "reason")]
pub enum Verdict {
    /// In the agreeing set.
    Selected,
    /// No answer this round.
    Unreachable,
    /// The master says its time is not trustworthy.
    Untrustworthy,
    /// Outside the interval agreed by the majority.
    Disagrees,
    /// No majority existed this round.
    NoMajority,
}

impl Verdict {
    /// A sentence for status output.
    pub fn reason(&self) -> &'static str {
        match self {
            Verdict::Selected => "in the agreeing set",
            Verdict::Unreachable => "no answer",
            Verdict::Untrustworthy => "master reports itself unsynchronized or disrupted",
            Verdict::Disagrees => {
                "rejected: outside the interval the majority agrees on (Marzullo)"
            }
            Verdict::NoMajority => "no majority of masters agrees",
        }
    }
}

/// A measurement that could not be reconciled with the model's prediction: both are honest
/// under the assumptions, so an assumption broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inconsistency {
    /// The round's interval (timescale − raw).
    pub measured: OffsetInterval,
    /// The model's prediction at the same raw reading.
    pub predicted: OffsetInterval,
    /// The drift assumption in force.
    pub max_drift: Rate,
}

impl fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "measurement [{}, {}] cannot be reconciled with the prediction [{}, {}]: the max-drift-ppm assumption ({}) or a master's ε broke; restarting the model",
            self.measured.lo,
            self.measured.hi,
            self.predicted.lo,
            self.predicted.hi,
            self.max_drift
        )
    }
}

/// Why the host dropped its model (the status is disrupted until the next fresh sync).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disturbance {
    /// The raw clock was disrupted (suspend, stall, step, the hypervisor's marker).
    Clock(Disruption),
    /// The host clock was stepped on purpose (timed's test knob), by this much (ns).
    Stepped(i64),
    /// A measurement broke an assumption.
    Inconsistent(Inconsistency),
}

impl fmt::Display for Disturbance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disturbance::Clock(d) => write!(f, "{d}"),
            Disturbance::Stepped(ns) => write!(f, "test knob stepped the host clock by {ns} ns"),
            Disturbance::Inconsistent(i) => write!(f, "{i}"),
        }
    }
}

/// Something about a round worth telling the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundNote {
    /// Too few trustworthy masters answered to outvote the liars tolerated.
    TooFewToOutvote {
        /// Trustworthy answers.
        answering: usize,
        /// Liars tolerated (f).
        liars: usize,
    },
    /// The answers share no point covered by enough of them.
    NoAgreement,
    /// The measurement broke an assumption; the model restarts from it.
    Inconsistent(Inconsistency),
    /// The first fresh sync after a disturbance.
    Resynchronized,
}

impl fmt::Display for RoundNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoundNote::TooFewToOutvote { answering, liars } => write!(
                f,
                "only {answering} trustworthy masters answer; tolerating {liars} liars needs at least {}",
                liars + 1
            ),
            RoundNote::NoAgreement => f.write_str("masters do not agree"),
            RoundNote::Inconsistent(i) => write!(f, "{i}"),
            RoundNote::Resynchronized => f.write_str("re-synchronized"),
        }
    }
}

/// Why the host's status is what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostReason {
    /// Disrupted: the model was dropped.
    Disturbed(Disturbance),
    /// No round has succeeded yet.
    NotYetSynchronized,
    /// ε has grown beyond `max-epsilon` (the limit).
    EpsilonBeyondMax(Span),
    /// No fresh sync for this long (ns).
    NoFreshSync(i64),
    /// The last round was recent enough.
    FreshSync,
}

impl fmt::Display for HostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostReason::Disturbed(d) => write!(f, "{d}"),
            HostReason::NotYetSynchronized => f.write_str("no successful round yet"),
            HostReason::EpsilonBeyondMax(max) => write!(f, "{EPSILON_BEYOND_MAX} {max}"),
            HostReason::NoFreshSync(ns) => {
                write!(f, "no fresh sync for {:.1} s", *ns as f64 / 1e9)
            }
            HostReason::FreshSync => f.write_str("fresh sync"),
        }
    }
}

/// The outcome of a round.
#[must_use = "a round says which masters were used and what went wrong"]
#[derive(Clone, Debug, PartialEq)]
pub struct Round {
    /// Per master, in input order.
    pub verdicts: Vec<Verdict>,
    /// Marzullo's interval (timescale − raw) at the round's raw reading, if any.
    pub selected: Option<OffsetInterval>,
    /// Whether the model was updated.
    pub updated: bool,
    /// Something the operator should hear about (e.g. the prediction was inconsistent).
    pub note: Option<RoundNote>,
}

/// The host's synchronization state.
#[derive(Clone, Debug)]
pub struct HostClock {
    p: HostParams,
    model: Option<ClockModel>,
    history: VecDeque<(i64, OffsetInterval)>,
    last_sync_raw: Option<i64>,
    disrupted: Option<Disturbance>,
    syncs: u64,
    /// Frequency interval (ppt) of the last estimate, for status.
    freq_bounds: Option<(i64, i64)>,
}

impl HostClock {
    /// A host that has not synchronized yet: `unsynchronized` ([`HostReason::NotYetSynchronized`])
    /// until its first successful round. A daemon's (re)start is not a disruption: there is no
    /// model yet to have been disrupted, and the first model is built from fresh rounds only.
    pub fn new(p: HostParams) -> Self {
        HostClock {
            p,
            model: None,
            history: VecDeque::new(),
            last_sync_raw: None,
            disrupted: None,
            syncs: 0,
            freq_bounds: None,
        }
    }

    /// Parameters.
    pub fn params(&self) -> &HostParams {
        &self.p
    }

    /// The current model, if any.
    pub fn model(&self) -> Option<&ClockModel> {
        self.model.as_ref()
    }

    /// Successful rounds so far.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Raw reading of the last successful round.
    pub fn last_sync_raw(&self) -> Option<RawReading> {
        self.last_sync_raw.map(RawReading::from_nanos)
    }

    /// The frequency estimate's bounds (ppt), if any.
    pub fn freq_bounds(&self) -> Option<(i64, i64)> {
        self.freq_bounds
    }

    /// The clock was disrupted (suspend, step): forget the model until the next fresh sync.
    pub fn on_disruption(&mut self, why: Disturbance) {
        self.disrupted = Some(why);
        self.model = None;
        self.history.clear();
        self.freq_bounds = None;
    }

    /// The rate that bounds how far our raw clock's offset moves per raw ns: |freq| + drift
    /// bound of the model, or 1000 ppm (any raw clock) before there is one. Used for a single
    /// exchange's round trip and, plus `max_drift`, to carry intervals across raw gaps.
    pub fn exchange_drift(&self) -> Rate {
        match (self.p.frequency, &self.model) {
            (FrequencyMode::Assumed, _) => self.p.max_drift,
            (_, Some(m)) => m.freq.abs().saturating_add(m.drift_bound),
            (_, None) => crate::RAW_CLOCK_MAX_RATE,
        }
    }

    /// The rate used to carry intervals across small raw gaps (between the samples of a burst,
    /// and from each master's sample to the round's reading): [`Self::exchange_drift`] +
    /// `max_drift`.
    pub fn carry_rate(&self) -> Rate {
        self.exchange_drift().saturating_add(self.p.max_drift)
    }

    /// One polling round at raw reading `raw`; `samples[i]` is master `i`'s sample (`None` if
    /// it did not answer). The steps are the module docs' 1–5.
    pub fn on_round(&mut self, raw: RawReading, samples: &[Option<MasterSample>]) -> Round {
        let raw = raw.as_nanos();
        // 1–2: bring the answers to `raw` and select.
        let (verdicts, measured) = match self.select(raw, samples) {
            Ok(x) => x,
            Err(round) => return round,
        };
        // 3: intersect with the prediction; an empty intersection means an assumption broke.
        let (iv, inconsistent) = self.reconcile(raw, measured);
        let mut note = inconsistent.map(RoundNote::Inconsistent);
        if inconsistent.is_some() {
            self.history.clear();
        }
        // 4: frequency from the oldest interval in the window to this one.
        let (freq, freq_half) = self.frequency(raw, measured);
        // 5: the model.
        let mid = iv.midpoint();
        self.model = Some(ClockModel {
            ref_raw: RawReading::from_nanos(raw),
            ref_time: Timestamp::from_nanos(raw.saturating_add(mid.as_nanos())),
            freq,
            eps_ref: iv.radius().saturating_add(Span::from_nanos(1)),
            drift_bound: self.p.max_drift.saturating_add(freq_half),
        });
        self.last_sync_raw = Some(raw);
        self.syncs += 1;
        if self.disrupted.take().is_some() && note.is_none() {
            note = Some(RoundNote::Resynchronized);
        }
        if let Some(why) = inconsistent {
            self.disrupted = Some(Disturbance::Inconsistent(why));
        }
        Round {
            verdicts,
            selected: Some(measured),
            updated: true,
            note,
        }
    }

    /// Steps 1–2: each trustworthy answer widened to `raw` by the carry rate over its gap,
    /// then the hull of what `n − f` of them cover. `Err` is the refused round.
    fn select(
        &self,
        raw: i64,
        samples: &[Option<MasterSample>],
    ) -> Result<(Vec<Verdict>, OffsetInterval), Round> {
        let carry = self.carry_rate();
        let mut verdicts = vec![Verdict::Unreachable; samples.len()];
        let mut idx = Vec::new();
        let mut ivs = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            let Some(s) = s else { continue };
            if !s.trustworthy {
                verdicts[i] = Verdict::Untrustworthy;
                continue;
            }
            let gap = Span::from_nanos(raw.saturating_sub(s.at_raw.as_nanos())).saturating_abs();
            ivs.push(
                s.bounds
                    .widen(carry.bound_over(gap).saturating_add(Span::from_nanos(1))),
            );
            idx.push(i);
        }
        let refused = |verdicts, note| Round {
            verdicts,
            selected: None,
            updated: false,
            note,
        };
        if ivs.is_empty() {
            return Err(refused(verdicts, None));
        }
        let n = ivs.len();
        // f is an assumption about the configured fleet — `max_liars`, or a minority of the
        // masters configured — and holds when some fall silent: the silent ones may be the
        // honest ones. The truth is inside every honest answer, so inside what at least n − f
        // answers cover: that hull is taken (the majority rule when 2f < n; with fewer
        // answering it is wider, never a guess between groups). With no more than f answering,
        // they may all be liars: the round refuses (a last master standing is not trusted;
        // `max-liars = 0` says the fleet has no liars and uses it).
        let f = self.p.liars_tolerated(samples.len());
        let sel = match marzullo::covered_hull(&ivs, n.saturating_sub(f)) {
            Ok(s) => s,
            Err(e) => {
                for &i in &idx {
                    verdicts[i] = Verdict::NoMajority;
                }
                let note = match e {
                    marzullo::MarzulloError::NoSources => RoundNote::TooFewToOutvote {
                        answering: n,
                        liars: f,
                    },
                    _ => RoundNote::NoAgreement,
                };
                return Err(refused(verdicts, Some(note)));
            }
        };
        for (j, &i) in idx.iter().enumerate() {
            verdicts[i] = if sel.agreeing.contains(&j) {
                Verdict::Selected
            } else {
                Verdict::Disagrees
            };
        }
        Ok((verdicts, sel.interval))
    }

    /// Step 3: the measured interval intersected with the model's prediction at `raw`. Both
    /// are honest under the assumptions, so when they do not meet one broke (the oscillator
    /// wandered beyond max-drift-ppm, or a majority of masters is wrong beyond its ε): the
    /// measurement alone is used, and the inconsistency returned.
    fn reconcile(
        &self,
        raw: i64,
        measured: OffsetInterval,
    ) -> (OffsetInterval, Option<Inconsistency>) {
        let Some(m) = &self.model else {
            return (measured, None);
        };
        let Some(mid) = m
            .estimate_at(RawReading::from_nanos(raw))
            .map(|t| t.as_nanos() - raw)
        else {
            return (measured, None);
        };
        let e = m.epsilon_at(RawReading::from_nanos(raw));
        let pred = OffsetInterval {
            lo: Span::from_nanos(mid).saturating_sub(e),
            hi: Span::from_nanos(mid).saturating_add(e),
        };
        match OffsetInterval::new(measured.lo.max(pred.lo), measured.hi.min(pred.hi)) {
            Some(x) => (x, None),
            None => (
                measured,
                Some(Inconsistency {
                    measured,
                    predicted: pred,
                    max_drift: self.p.max_drift,
                }),
            ),
        }
    }

    /// Step 4: the frequency estimate and its half-width, from the interval kept in the window
    /// that gives the narrowest bound on the average rate up to `measured` (which joins the
    /// window). Assumed mode: zero, with the assumption alone as the bound.
    fn frequency(&mut self, raw: i64, measured: OffsetInterval) -> (Rate, Rate) {
        self.history.push_back((raw, measured));
        while let Some(&(r0, _)) = self.history.front() {
            if raw - r0 > self.p.freq_window.as_nanos() && self.history.len() > 2 {
                self.history.pop_front();
            } else {
                break;
            }
        }
        if self.p.frequency == FrequencyMode::Assumed {
            return (Rate::ZERO, Rate::ZERO);
        }
        // Every baseline at least 1 s old bounds the average rate since it; keep the narrowest
        // (the oldest on ties, the longest span).
        let best = self
            .history
            .iter()
            .filter(|&&(r0, _)| raw - r0 >= 1_000_000_000)
            .map(|&(r0, i0)| rate_bounds(raw - r0, i0, measured))
            .min_by_key(|&(lo, hi)| hi as i128 - lo as i128);
        match best {
            Some((lo, hi)) => {
                self.freq_bounds = Some((lo, hi));
                let mid = lo / 2 + hi / 2;
                (
                    Rate::from_ppt(mid),
                    Rate::from_ppt(crate::time::saturate_i64((hi as i128 - lo as i128 + 1) / 2)),
                )
            }
            // No baseline yet: no frequency knowledge beyond "a raw clock is within 1000 ppm".
            _ => (Rate::ZERO, crate::RAW_CLOCK_MAX_RATE),
        }
    }

    /// Status and reason at raw reading `raw`.
    pub fn status_at(&self, raw: RawReading) -> (ClockStatus, HostReason) {
        let raw = raw.as_nanos();
        if let Some(why) = self.disrupted {
            return (ClockStatus::Disrupted, HostReason::Disturbed(why));
        }
        let Some(m) = &self.model else {
            return (ClockStatus::Unsynchronized, HostReason::NotYetSynchronized);
        };
        let (status, reason) = match self.last_sync_raw {
            Some(l) if raw - l > self.p.holdover_after.as_nanos() => {
                (ClockStatus::Holdover, HostReason::NoFreshSync(raw - l))
            }
            _ => (ClockStatus::Synchronized, HostReason::FreshSync),
        };
        match status.within(
            m.epsilon_at(RawReading::from_nanos(raw)),
            self.p.max_epsilon,
        ) {
            ClockStatus::Unsynchronized => (
                ClockStatus::Unsynchronized,
                HostReason::EpsilonBeyondMax(self.p.max_epsilon),
            ),
            s => (s, reason),
        }
    }
}

/// Bounds (ppt, outward-rounded) on the average rate of the offset over `d` ns, from the
/// interval `i0` at its start to `i1` at its end: `[(lo₁ − hi₀)/d, (hi₁ − lo₀)/d]`.
fn rate_bounds(d: i64, i0: OffsetInterval, i1: OffsetInterval) -> (i64, i64) {
    let d = d as i128;
    let lo =
        ((i1.lo.as_nanos() as i128 - i0.hi.as_nanos() as i128) * 1_000_000_000_000).div_euclid(d);
    let hi = ((i1.hi.as_nanos() as i128 - i0.lo.as_nanos() as i128) * 1_000_000_000_000 + d - 1)
        .div_euclid(d);
    (crate::time::saturate_i64(lo), crate::time::saturate_i64(hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::osc::{Oscillator, OscillatorParams};
    use proptest::prelude::*;

    const S: i64 = 1_000_000_000;

    fn iv(lo: i64, hi: i64) -> OffsetInterval {
        OffsetInterval::new(Span::from_nanos(lo), Span::from_nanos(hi)).unwrap()
    }

    fn sample(mid: i64, r: i64, at: i64) -> Option<MasterSample> {
        Some(MasterSample {
            bounds: iv(mid - r, mid + r),
            at_raw: RawReading::from_nanos(at),
            trustworthy: true,
        })
    }

    /// One wide early round (±5 ms, as while a liar is voted out) no longer sets the frequency
    /// bound for the whole window: the narrowest baseline does. Before, the estimate's
    /// half-width stayed ≈ 5 ms / Δ (500 ppm at 10 s) until that round left the window.
    #[test]
    fn one_wide_round_does_not_poison_the_frequency() {
        let mut h = HostClock::new(HostParams::default());
        let _ = h.on_round(RawReading::from_nanos(S), &[sample(0, 5_000_000, S)]);
        for k in 2..=11 {
            let _ = h.on_round(RawReading::from_nanos(k * S), &[sample(0, 1_000, k * S)]);
        }
        let m = h.model().unwrap();
        // The narrowest baseline is the round at 2 s: 2 µs over 9 s, ≈ 0.22 ppm.
        assert!(
            m.drift_bound <= Rate::from_ppm(15).saturating_add(Rate::from_ppb(300)),
            "drift bound {:?}",
            m.drift_bound
        );
        // Still honest: the true offset (0) is inside.
        assert!(
            m.interval_at(RawReading::from_nanos(12 * S))
                .contains(Timestamp::from_nanos(12 * S))
        );
        // The oldest baseline alone would have given 5 ms over 10 s: 500 ppm.
        let (lo, hi) = rate_bounds(10 * S, iv(-5_000_000, 5_000_000), iv(-1_000, 1_000));
        assert!(hi - lo > 1_000_000_000, "{lo}..{hi} ppt");
    }

    #[test]
    fn one_liar_of_three_is_rejected() {
        let mut h = HostClock::new(HostParams::default());
        let r = h.on_round(
            RawReading::from_nanos(10 * S),
            &[
                sample(1_000, 50_000, 10 * S),
                sample(-2_000, 50_000, 10 * S),
                sample(10_000_000, 50_000, 10 * S),
            ],
        );
        assert_eq!(
            r.verdicts,
            vec![Verdict::Selected, Verdict::Selected, Verdict::Disagrees]
        );
        assert!(r.updated);
        let m = h.model().unwrap();
        assert!(
            m.interval_at(RawReading::from_nanos(10 * S))
                .contains(Timestamp::from_nanos(10 * S))
        );
        assert_eq!(
            h.status_at(RawReading::from_nanos(10 * S)).0,
            ClockStatus::Synchronized
        );
    }

    #[test]
    fn f_holds_when_masters_fall_silent() {
        // Five configured (f = 2); one silent, and two liars that overlap each other and half
        // of the honest pair. A majority of the four answering (three) would pick the liars'
        // overlap, which misses the truth (0); what two cover reaches from the honest pair
        // into the liars' and keeps it.
        let round = [
            sample(0, 50_000, 10 * S),
            sample(10_000, 50_000, 10 * S),
            sample(80_000, 50_000, 10 * S),
            sample(80_000, 50_000, 10 * S),
            None,
        ];
        let mut h = HostClock::new(HostParams::default());
        let sel = h
            .on_round(RawReading::from_nanos(10 * S), &round)
            .selected
            .expect("selects");
        assert!(sel.lo.as_nanos() <= 0 && sel.hi.as_nanos() >= 0, "{sel:?}");
        // Negative control: the same answers as a fleet of four (f = 1) lose the truth.
        let mut four = HostClock::new(HostParams::default());
        let sel = four
            .on_round(RawReading::from_nanos(10 * S), &round[..4])
            .selected
            .expect("selects");
        assert!(sel.lo.as_nanos() > 0, "{sel:?}");
        // A configured max-liars is held strictly: with no more than f answering, refuse.
        let mut strict = HostClock::new(HostParams {
            max_liars: Some(2),
            ..Default::default()
        });
        let r = strict.on_round(
            RawReading::from_nanos(10 * S),
            &[
                sample(0, 50_000, 10 * S),
                sample(0, 50_000, 10 * S),
                None,
                None,
                None,
            ],
        );
        assert!(r.selected.is_none());
        assert!(
            r.verdicts
                .iter()
                .filter(|v| **v == Verdict::NoMajority)
                .count()
                == 2
        );
        assert_eq!(
            r.note,
            Some(RoundNote::TooFewToOutvote {
                answering: 2,
                liars: 2
            })
        );
        // So by default is a last master standing (it may be the liar of three); with
        // max-liars = 0 it is used.
        let alone = [sample(0, 50_000, 10 * S), None, None];
        let mut last = HostClock::new(HostParams::default());
        assert!(
            last.on_round(RawReading::from_nanos(10 * S), &alone)
                .selected
                .is_none()
        );
        let mut trusting = HostClock::new(HostParams {
            max_liars: Some(0),
            ..Default::default()
        });
        assert!(
            trusting
                .on_round(RawReading::from_nanos(10 * S), &alone)
                .selected
                .is_some()
        );
    }

    #[test]
    fn untrustworthy_and_unreachable_are_not_used() {
        // max-liars = 0: the one trustworthy answer alone may be used.
        let mut h = HostClock::new(HostParams {
            max_liars: Some(0),
            ..Default::default()
        });
        let bad = Some(MasterSample {
            bounds: iv(0, 10),
            at_raw: RawReading::from_nanos(0),
            trustworthy: false,
        });
        let r = h.on_round(RawReading::from_nanos(S), &[bad, None, sample(0, 100, S)]);
        assert_eq!(
            r.verdicts,
            vec![
                Verdict::Untrustworthy,
                Verdict::Unreachable,
                Verdict::Selected
            ]
        );
        let r = h.on_round(RawReading::from_nanos(2 * S), &[None, None]);
        assert!(!r.updated);
        // Two masters that disagree: no majority, no update.
        let r = h.on_round(
            RawReading::from_nanos(3 * S),
            &[sample(0, 100, 3 * S), sample(1_000_000, 100, 3 * S)],
        );
        assert_eq!(r.verdicts, vec![Verdict::NoMajority, Verdict::NoMajority]);
    }

    #[test]
    fn statuses_over_time_from_start() {
        let p = HostParams {
            max_epsilon: Span::from_millis(10),
            ..Default::default()
        };
        let mut h = HostClock::new(p);
        // A fresh start is not a fault: unsynchronized, with a reason saying why.
        assert_eq!(
            h.status_at(RawReading::from_nanos(0)),
            (ClockStatus::Unsynchronized, HostReason::NotYetSynchronized)
        );
        let _ = h.on_round(RawReading::from_nanos(S), &[sample(0, 1000, S)]);
        assert_eq!(
            h.status_at(RawReading::from_nanos(S)).0,
            ClockStatus::Synchronized
        );
        assert_eq!(
            h.status_at(RawReading::from_nanos(7 * S)).0,
            ClockStatus::Holdover
        );
        // ε grows at 15 ppm + the 1000 ppm "no baseline" term: past 10 ms within 10 s.
        assert_eq!(
            h.status_at(RawReading::from_nanos(20 * S)).0,
            ClockStatus::Unsynchronized
        );
        h.on_disruption(Disturbance::Clock(Disruption::Lost { ns: 1_000_000_000 }));
        assert_eq!(
            h.status_at(RawReading::from_nanos(21 * S)).0,
            ClockStatus::Disrupted
        );
        assert!(h.model().is_none());
    }

    #[test]
    fn inconsistent_prediction_restarts_the_model() {
        let mut h = HostClock::new(HostParams::default());
        let _ = h.on_round(RawReading::from_nanos(S), &[sample(0, 1000, S)]);
        let _ = h.on_round(RawReading::from_nanos(2 * S), &[sample(0, 1000, 2 * S)]);
        // A 5 ms jump the model cannot explain.
        let r = h.on_round(
            RawReading::from_nanos(3 * S),
            &[sample(5_000_000, 1000, 3 * S)],
        );
        let Some(RoundNote::Inconsistent(i)) = r.note else {
            panic!("{:?}", r.note)
        };
        assert!(i.to_string().contains("max-drift-ppm assumption"), "{i}");
        // The status says so until a later round agrees with the new model.
        let (st, why) = h.status_at(RawReading::from_nanos(3 * S));
        assert_eq!(st, ClockStatus::Disrupted);
        assert_eq!(why, HostReason::Disturbed(Disturbance::Inconsistent(i)));
        let _ = h.on_round(
            RawReading::from_nanos(4 * S),
            &[sample(5_000_000, 1000, 4 * S)],
        );
        assert_eq!(
            h.status_at(RawReading::from_nanos(4 * S)).0,
            ClockStatus::Synchronized
        );
        assert!(
            h.model()
                .unwrap()
                .interval_at(RawReading::from_nanos(3 * S))
                .contains(Timestamp::from_nanos(3 * S + 5_000_000))
        );
    }

    #[test]
    fn assumed_frequency_mode_has_no_estimate() {
        // Spanner 2012: the raw clock taken at rate 1, the whole error covered by max-drift.
        let p = HostParams {
            max_drift: Rate::from_ppm(200),
            frequency: FrequencyMode::Assumed,
            ..Default::default()
        };
        let mut h = HostClock::new(p);
        for k in 1..5 {
            // The clock runs 50 ppm fast: measured mode would learn it; assumed mode must not.
            let _ = h.on_round(
                RawReading::from_nanos(k * S),
                &[sample(-50_000 * k, 1_000, k * S)],
            );
        }
        let m = h.model().unwrap();
        assert_eq!(m.freq, Rate::ZERO);
        assert_eq!(m.drift_bound, Rate::from_ppm(200));
        assert_eq!(h.exchange_drift(), Rate::from_ppm(200));
        // Measured mode learns the rate and bounds only the wander (plus the estimate's error).
        let mut h = HostClock::new(HostParams::default());
        for k in 1..5 {
            let _ = h.on_round(
                RawReading::from_nanos(k * S),
                &[sample(-50_000 * k, 1_000, k * S)],
            );
        }
        let m = h.model().unwrap();
        assert!((m.freq.as_ppm_f64() + 50.0).abs() < 1.0, "{:?}", m.freq);
        assert!(m.drift_bound < Rate::from_ppm(20), "{:?}", m.drift_bound);
    }

    #[test]
    fn negative_control_drift_beyond_the_bound_is_caught() {
        // Declared 1 ppm, but the oscillator swings ±100 ppm every minute: truth must leave the
        // interval somewhere, or the checker in the property above proves nothing.
        let mut osc = Oscillator::new(
            OscillatorParams {
                periodic_amplitude_ppm: 100.0,
                periodic_period_s: 60.0,
                ..Default::default()
            },
            0,
            1,
        );
        let mut h = HostClock::new(HostParams {
            max_drift: Rate::from_ppm(1),
            max_epsilon: Span::from_secs(1),
            ..Default::default()
        });
        let mut violations = 0;
        for k in 1..200i64 {
            let t = k * 5 * S;
            let raw = osc.reading_at(t);
            let _ = h.on_round(RawReading::from_nanos(raw), &[sample(t - raw, 10_000, raw)]);
            let tt = t + 4 * S;
            let r = osc.reading_at(tt);
            if h.status_at(RawReading::from_nanos(r)).0.is_trustworthy()
                && !h
                    .model()
                    .unwrap()
                    .interval_at(RawReading::from_nanos(r))
                    .contains(Timestamp::from_nanos(tt))
            {
                violations += 1;
            }
        }
        assert!(violations > 10, "only {violations} violations");
    }

    proptest! {
        // A host whose oscillator stays within the drift bound, polling honest masters (with a
        // liar), always has truth inside its interval — at every instant between polls too.
        #[test]
        fn truth_inside_under_assumptions(
            seed in any::<u64>(),
            freq in -300.0f64..300.0,
            wander in 0.0f64..0.002,
            liar_offset in -50_000_000i64..50_000_000,
            poll_s in 1i64..30,
            wide_at in 1i64..40,
            wide in 100_000i64..5_000_000,
        ) {
            let mut osc = Oscillator::new(OscillatorParams { freq_offset_ppm: freq, wander_ppm_per_sqrt_s: wander, ..Default::default() }, 0, seed);
            let mut h = HostClock::new(HostParams { max_epsilon: Span::from_secs(1), ..Default::default() });
            for k in 1..40i64 {
                // One round (any) much wider than the others: the frequency estimate must
                // stay honest whichever baseline it then picks.
                let radius = if k == wide_at { wide } else { 100_000i64 };
                let t = k * poll_s * S; // true time of the poll
                let raw = osc.reading_at(t);
                let off = t - raw; // true offset timescale − raw
                let samples = [sample(off + 30_000, radius, raw), sample(off - 20_000, radius, raw), sample(off + liar_offset, 1_000, raw)];
                let _ = h.on_round(RawReading::from_nanos(raw), &samples);
                for frac in [0, 1, 3] {
                    let tt = t + frac * poll_s * S / 4;
                    let r = osc.reading_at(tt);
                    let (st, _) = h.status_at(RawReading::from_nanos(r));
                    if st.is_trustworthy() {
                        prop_assert!(h.model().unwrap().interval_at(RawReading::from_nanos(r)).contains(Timestamp::from_nanos(tt)), "k={k} frac={frac}");
                    }
                }
            }
        }
    }
}
