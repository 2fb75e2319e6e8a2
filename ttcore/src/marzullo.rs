//! Marzullo's intersection algorithm, tolerating up to `f` faulty sources ("liars").
//!
//! Given `n` closed offset intervals of which at most `f` may be wrong, every correct interval
//! contains the true offset, so the truth is covered by at least `n − f` intervals. The result
//! is the convex hull of all points covered by at least `n − f` intervals — the smallest single
//! interval guaranteed to contain the truth under that assumption — and the *agreeing set*: the
//! sources whose interval touches a point of that coverage. The others are the suspected liars.
//!
//! With `2f ≥ n` a liar majority could outvote the truth, so the function refuses rather than
//! guessing. Endpoints are inclusive: touching intervals agree on the shared point.

use crate::time::Span;
use crate::transfer::OffsetInterval;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The outcome of a selection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// The hull of the points covered by at least `n − f` intervals (ns offsets). Contains the
    /// true offset whenever at most `f` sources are wrong.
    pub interval: OffsetInterval,
    /// Indices (into the input) of the sources that agree, in ascending order.
    pub agreeing: Vec<usize>,
    /// The largest number of intervals that overlap at any single point.
    pub max_overlap: usize,
}

/// Why no selection could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MarzulloError {
    /// No sources were given.
    #[error("no sources")]
    NoSources,
    /// `2f ≥ n`: a majority of liars cannot be ruled out.
    #[error("cannot tolerate {f} faulty of {n} sources (need n > 2f)")]
    TooManyFaults {
        /// Sources given.
        n: usize,
        /// Faults to tolerate.
        f: usize,
    },
    /// No point is covered by `n − f` intervals: more than `f` sources are wrong.
    #[error("no agreement: need {needed} overlapping sources, at most {best} overlap")]
    NoAgreement {
        /// `n − f`.
        needed: usize,
        /// The largest overlap found.
        best: usize,
    },
}

/// Selects the offset interval agreed by at least `n − f` of `intervals` (see module docs).
///
/// Runs in `O(n log n)`. Exact: no rounding.
pub fn select(intervals: &[OffsetInterval], f: usize) -> Result<Selection, MarzulloError> {
    let n = intervals.len();
    if n == 0 {
        return Err(MarzulloError::NoSources);
    }
    if 2 * f >= n {
        return Err(MarzulloError::TooManyFaults { n, f });
    }
    covered_hull(intervals, n - f)
}

/// The hull of the points covered by at least `needed` of `intervals` (`needed ≥ 1`), and who
/// touches that coverage — [`select`] without its majority requirement. It contains the truth
/// whenever at least `needed` intervals do, so it is safe with `2f ≥ n` too; it is just wide
/// (it spans every group of `needed` that agrees) when liars agree among themselves.
pub fn covered_hull(
    intervals: &[OffsetInterval],
    needed: usize,
) -> Result<Selection, MarzulloError> {
    let n = intervals.len();
    if n == 0 || needed == 0 {
        return Err(MarzulloError::NoSources);
    }
    if needed > n {
        return Err(MarzulloError::NoAgreement { needed, best: n });
    }
    // Edges: (position, kind) with starts (0) sorted before ends (1) at equal positions so
    // that closed intervals touching at a point count as overlapping there.
    let mut edges: Vec<(i64, u8)> = Vec::with_capacity(2 * n);
    for iv in intervals {
        edges.push((iv.lo.as_nanos(), 0));
        edges.push((iv.hi.as_nanos(), 1));
    }
    edges.sort_unstable();
    // Sweep, collecting the maximal segments covered by >= needed intervals.
    let mut count = 0usize;
    let mut best = 0usize;
    let mut segments: Vec<(i64, i64)> = Vec::new();
    let mut open: Option<i64> = None;
    for &(pos, kind) in &edges {
        if kind == 0 {
            count += 1;
            best = best.max(count);
            if count == needed {
                open = Some(pos);
            }
        } else {
            if count == needed
                && let Some(start) = open.take()
            {
                segments.push((start, pos));
            }
            count -= 1;
        }
    }
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
        return Err(MarzulloError::NoAgreement { needed, best });
    };
    let interval = OffsetInterval {
        lo: Span::from_nanos(first.0),
        hi: Span::from_nanos(last.1),
    };
    let agreeing = intervals
        .iter()
        .enumerate()
        .filter(|(_, iv)| {
            segments
                .iter()
                .any(|&(a, b)| iv.lo.as_nanos() <= b && iv.hi.as_nanos() >= a)
        })
        .map(|(i, _)| i)
        .collect();
    Ok(Selection {
        interval,
        agreeing,
        max_overlap: best,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn iv(lo: i64, hi: i64) -> OffsetInterval {
        OffsetInterval::new(Span::from_nanos(lo), Span::from_nanos(hi)).unwrap()
    }

    #[test]
    fn one_liar_of_three() {
        let s = select(&[iv(0, 10), iv(2, 12), iv(100, 110)], 1).unwrap();
        assert_eq!(s.interval, iv(2, 10));
        assert_eq!(s.agreeing, vec![0, 1]);
        assert_eq!(s.max_overlap, 2);
    }

    #[test]
    fn covered_hull_spans_every_group_and_keeps_the_truth() {
        // Two honest around 0, two liars overlapping them at +300: covered by ≥ 2 from the
        // honest pair's start to the liars' end.
        let ivs = [iv(-250, 250), iv(-240, 260), iv(50, 550), iv(60, 560)];
        let s = covered_hull(&ivs, 2).unwrap();
        assert_eq!(s.interval, iv(-240, 550));
        assert!(s.interval.lo.as_nanos() <= 0 && s.interval.hi.as_nanos() >= 0);
        // Whereas f = 1 (needing 3) would pick the overlap that misses the truth.
        let wrong = select(&ivs, 1).unwrap();
        assert!(wrong.interval.lo.as_nanos() > 0);
        assert!(covered_hull(&ivs, 5).is_err());
        assert!(covered_hull(&ivs, 0).is_err());
    }

    #[test]
    fn all_agree_gives_intersection() {
        let s = select(&[iv(0, 10), iv(2, 12), iv(5, 20)], 0).unwrap();
        assert_eq!(s.interval, iv(5, 10));
        assert_eq!(s.agreeing, vec![0, 1, 2]);
    }

    #[test]
    fn touching_intervals_meet_in_a_point() {
        let s = select(&[iv(0, 5), iv(5, 10), iv(20, 30)], 1).unwrap();
        assert_eq!(s.interval, iv(5, 5));
        assert_eq!(s.agreeing, vec![0, 1]);
    }

    #[test]
    fn nested_intervals() {
        let s = select(&[iv(0, 100), iv(10, 20), iv(12, 18)], 0).unwrap();
        assert_eq!(s.interval, iv(12, 18));
        assert_eq!(s.agreeing, vec![0, 1, 2]);
    }

    #[test]
    fn ties_identical_intervals() {
        let s = select(&[iv(3, 7), iv(3, 7), iv(3, 7), iv(50, 60), iv(3, 7)], 2).unwrap();
        assert_eq!(s.interval, iv(3, 7));
        assert_eq!(s.agreeing, vec![0, 1, 2, 4]);
        assert_eq!(s.max_overlap, 4);
    }

    #[test]
    fn two_disjoint_pieces_hull_and_agreeing() {
        // n=5, f=2: need 3. Pieces [0,1] (a,b,c) and [9,10] (c,d,e); c spans both.
        let ivs = [iv(0, 1), iv(0, 1), iv(0, 10), iv(9, 10), iv(9, 10)];
        let s = select(&ivs, 2).unwrap();
        assert_eq!(s.interval, iv(0, 10));
        assert_eq!(s.agreeing, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn empty_intersection_is_an_error() {
        assert_eq!(
            select(&[iv(0, 1), iv(2, 3), iv(4, 5)], 1),
            Err(MarzulloError::NoAgreement { needed: 2, best: 1 })
        );
        assert_eq!(
            select(&[iv(0, 1), iv(2, 3)], 0),
            Err(MarzulloError::NoAgreement { needed: 2, best: 1 })
        );
    }

    #[test]
    fn refuses_liar_majority() {
        assert_eq!(
            select(&[iv(0, 1), iv(0, 1)], 1),
            Err(MarzulloError::TooManyFaults { n: 2, f: 1 })
        );
        assert_eq!(
            select(&[iv(0, 1), iv(0, 1), iv(0, 1), iv(0, 1)], 2),
            Err(MarzulloError::TooManyFaults { n: 4, f: 2 })
        );
        assert_eq!(select(&[], 0), Err(MarzulloError::NoSources));
        // A single source with f = 0 is just itself.
        assert_eq!(select(&[iv(1, 2)], 0).unwrap().interval, iv(1, 2));
    }

    proptest! {
        // With at most f liars (arbitrary intervals) and n > 2f, the true offset is always
        // inside the selection, and every honest source is in the agreeing set.
        #[test]
        fn truth_inside_with_at_most_f_liars(
            truth in -1_000_000i64..1_000_000,
            honest in prop::collection::vec((0i64..100_000, 0i64..100_000), 1..8),
            liars in prop::collection::vec((-10_000_000i64..10_000_000, 0i64..200_000), 0..4),
        ) {
            let n = honest.len() + liars.len();
            let f = liars.len();
            prop_assume!(n > 2 * f);
            let mut ivs: Vec<OffsetInterval> = honest.iter().map(|&(below, above)| iv(truth - below, truth + above)).collect();
            let honest_n = ivs.len();
            ivs.extend(liars.iter().map(|&(lo, w)| iv(lo, lo + w)));
            let s = select(&ivs, f).unwrap();
            prop_assert!(s.interval.contains(Span::from_nanos(truth)));
            for i in 0..honest_n {
                prop_assert!(s.agreeing.contains(&i));
            }
        }

        // The result never claims more than the data: every point of it is inside at least one
        // input interval's hull, and its ends are input endpoints.
        #[test]
        fn result_ends_are_endpoints(ivs in prop::collection::vec((-1000i64..1000, 0i64..500), 1..9), f in 0usize..4) {
            let ivs: Vec<_> = ivs.iter().map(|&(lo, w)| iv(lo, lo + w)).collect();
            if let Ok(s) = select(&ivs, f) {
                prop_assert!(ivs.iter().any(|i| i.lo == s.interval.lo));
                prop_assert!(ivs.iter().any(|i| i.hi == s.interval.hi));
                prop_assert!(s.agreeing.len() >= ivs.len() - f);
            }
        }
    }
}
