//! The link floor: a width no estimator honest under the host's own assumptions can go below
//! on the scenario's network. The simulator knows what the host cannot — each link's fixed
//! one-way delays — and reports this floor beside the hosts' ε, so a run says how much of ε is
//! the network and the assumptions, and how much is left to the estimator.
//!
//! # Why no honest estimator beats it
//!
//! Take another world in which the host's clock is off truth by a further constant `x` ns and
//! master `i`'s by a further `y`, every request to it takes `x − y` ns more and every reply
//! `x − y` ns less, and everything the host and the masters stamp is the same. The host sees
//! exactly the same bytes at exactly the same readings. That world obeys the laws of the
//! network — no delay below zero — iff `−up_i ≤ x − y ≤ down_i`, with `up_i`, `down_i` the
//! link's fixed delays (jitter only adds to them); and master `i` is still honest in it iff
//! its error `e_i + y` stays within its published `ε_i`. So `x` may lie anywhere in
//! `[−(up_i + ε_i + e_i), down_i + ε_i − e_i]`: the link's delay plus the master's slack on
//! each side (`latest − truth` and `truth − earliest` of its interval, the smaller over the
//! round's exchanges). Each such interval contains 0: the real world.
//!
//! A round tolerates `f` liars among its `n` trustworthy answers. So `x` is consistent with a
//! round when at least `k = n − f` of the honest masters that answered allow it: the others,
//! together with any real liars, are that world's liars (at most `n − k = f`). That is
//! `[−(k-th largest left extent), k-th largest right extent]`.
//!
//! With the same `x` for the whole history (the masters' `y` may change from round to round:
//! only their ε binds them), `x` must be consistent with every round since the host last lost
//! its state (a disruption, a restart, a broken assumption): the intersection. After the last
//! round, the host's assumption allows its oscillator to run up to `max-drift-ppm` faster or
//! slower than in the real world, and nothing has been observed since: at true age `Δ`, the set
//! grows by `max_drift × Δ` on each side.
//!
//! Every world in this set is consistent with everything the host saw, and with the host's
//! assumptions whenever the real world is. An interval the host hands out as trustworthy must
//! hold the truth of each of them, so its half-width is at least half the set's width plus
//! `max_drift × Δ` — the floor. It is a lower bound only: it leaves out the jitter, worlds whose
//! `x` changes over time, and the NTP servers (a server counts as a possible liar in every
//! world). A host's ε below the floor means the host relied on something its assumptions do not
//! give it — in the catalogue, only where a scenario breaks an assumption on purpose (the test
//! checks every sample).

use ttcore::Rate;

/// One host's floor: the offsets `x` (ns) consistent with every round since its last reset,
/// `[−a, b]`, and the raw reading of the last round that constrained them (module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Floor {
    /// `(a, b)`, both ≥ 0; `None` until a round constrains it.
    set: Option<(i64, i64)>,
    /// The last constraining round's raw reading (its latest `t4`).
    at_raw: i64,
}

impl Floor {
    /// The host lost its state (disruption, restart, broken assumption): nothing before counts.
    pub(super) fn reset(&mut self) {
        *self = Floor::default();
    }

    /// A round whose latest exchange ended at raw reading `raw`: `extents` holds, for each
    /// honest master that answered trustworthy, how far `x` may go each way (`(left, right)`,
    /// ns, both ≥ 0: its link's delay plus its slack), `answers` counts the trustworthy answers
    /// of all sources, `liars` the liars the round tolerates.
    pub(super) fn on_round(
        &mut self,
        raw: i64,
        extents: &[(i64, i64)],
        answers: usize,
        liars: usize,
    ) {
        let k = answers.saturating_sub(liars);
        if k == 0 {
            // Any x is covered by at least none of the answers: no constraint.
            return;
        }
        // The k-th largest extent on each side (a handful of masters: no sorting buffer); with
        // fewer honest answers than the round needs, only the real world (x = 0) is certain.
        let kth_largest = |side: fn(&(i64, i64)) -> i64| -> i64 {
            let values = extents.iter().map(side);
            values
                .clone()
                .filter(|&v| values.clone().filter(|&w| w >= v).count() >= k)
                .max()
                .map_or(0, |v| v.max(0))
        };
        let a = kth_largest(|e| e.0);
        let b = kth_largest(|e| e.1);
        self.set = Some(match self.set {
            Some((a0, b0)) => (a0.min(a), b0.min(b)),
            None => (a, b),
        });
        self.at_raw = raw;
    }

    /// The floor (ns) at raw reading `raw` for a host that assumes its oscillator stays within
    /// `max_drift`, if a round has constrained it. The raw age is turned into true age at the
    /// raw clock's worst rate (1000 ppm fast), so the floor stays below the exact one.
    pub(super) fn at(&self, raw: i64, max_drift: Rate) -> Option<i64> {
        let (a, b) = self.set?;
        let age = (raw - self.at_raw).max(0) as i128;
        let true_age = age - (age / 1000 + 1);
        let drift = (true_age.max(0) * max_drift.as_ppt().abs() as i128 / 1_000_000_000_000) as i64;
        Some((a + b) / 2 + drift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: i64 = 1_000;

    #[test]
    fn two_of_three_take_the_second_widest_link_and_age_adds_the_drift() {
        let mut f = Floor::default();
        assert_eq!(f.at(0, Rate::from_ppm(15)), None);
        // Extents 10, 20 and 300 µs each way; one liar tolerated among three: x may reach
        // the second largest on each side.
        f.on_round(
            0,
            &[(10 * US, 10 * US), (20 * US, 20 * US), (300 * US, 300 * US)],
            3,
            1,
        );
        assert_eq!(f.at(0, Rate::from_ppm(15)), Some(20 * US));
        // One second later at 15 ppm: 15 µs more, less the raw clock's allowance.
        let one_s = f.at(1_000_000_000, Rate::from_ppm(15)).unwrap();
        assert!((34_980..=35_000).contains(&one_s), "{one_s}");
        // Knowing there are no liars, the narrowest link sets it.
        let mut g = Floor::default();
        g.on_round(
            0,
            &[(10 * US, 10 * US), (20 * US, 20 * US), (300 * US, 300 * US)],
            3,
            0,
        );
        assert_eq!(g.at(0, Rate::ZERO), Some(10 * US));
    }

    #[test]
    fn asymmetric_extents_rounds_intersect_and_too_few_honest_answers_leave_only_truth() {
        let mut f = Floor::default();
        // Extents (30, 10) and (10, 30): both must allow x (no liars): [−10, 10].
        f.on_round(5, &[(30 * US, 10 * US), (10 * US, 30 * US)], 2, 0);
        assert_eq!(f.at(5, Rate::ZERO), Some(10 * US));
        // A later round through a master with longer links does not widen it again.
        f.on_round(9, &[(50 * US, 50 * US)], 1, 0);
        assert_eq!(f.at(9, Rate::ZERO), Some(10 * US));
        // Two answers, one of them a liar's (not in `links`), none tolerated: only x = 0.
        f.on_round(12, &[(50 * US, 50 * US)], 2, 0);
        assert_eq!(f.at(12, Rate::ZERO), Some(0));
        // No more answers than liars: no constraint, and the age keeps running from 12.
        f.on_round(20, &[(50 * US, 50 * US)], 1, 1);
        assert_eq!(f.at(20, Rate::ZERO), Some(0));
        f.reset();
        assert_eq!(f.at(20, Rate::ZERO), None);
    }
}
