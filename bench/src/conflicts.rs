//! `ttbench conflicts`: the seed's conflict-resolution matrix, measured. Two regions accept
//! writes at once (multi-leader, AP) and replicate asynchronously over a link with a delay and a
//! partition in the middle of the run; the same stream of writes goes through every strategy of
//! `ttstore::ap` — plain LWW on wall clocks, LWW ordered by TrueTime with overlaps reported,
//! version vectors with siblings, and the PN-counter beside a read-modify-write LWW counter.
//! Deterministic for a seed: writes, true times, clock offsets and delays come from one RNG.
//!
//! An acknowledged write counts as **lost** when the strategy ranks below it a write that came
//! *before* it in true time (the simulator knows true time): its value is discarded in favour
//! of an older one, whatever comes later. A loss is **silent** unless the strategy reported the
//! pair (TrueTime's overlapping intervals). Version vectors rank nothing: a write is dropped only
//! when a later write had seen it, and concurrent ones are kept as siblings.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use ttcore::{Span, TTInterval, Timestamp};
use ttstore::ap::{Applied, LwwMap, LwwRule, PnCounter, ReplicaId, Sibling, SiblingMap, Version};

/// What to run.
#[derive(Clone, Debug)]
pub struct ConflictBench {
    /// Simulated seconds.
    pub duration_s: f64,
    /// Writes per second in each region.
    pub rate: f64,
    /// Keys both regions write.
    pub keys: usize,
    /// One-way delay between the regions (ms), and its jitter (ms).
    pub one_way_ms: f64,
    /// Jitter (ms).
    pub jitter_ms: f64,
    /// The regions' wall clocks are this far apart (ms; each off by half, opposite ways).
    pub wall_skew_ms: f64,
    /// Every replica's TrueTime ε (µs); its offset is within it.
    pub epsilon_us: f64,
    /// The link is cut over this window (s from the start); writes continue on both sides.
    pub partition_s: (f64, f64),
    /// RNG seed.
    pub seed: u64,
}

impl Default for ConflictBench {
    fn default() -> Self {
        ConflictBench {
            duration_s: 20.0,
            rate: 200.0,
            keys: 8,
            one_way_ms: 40.0,
            jitter_ms: 1.0,
            wall_skew_ms: 1.0,
            epsilon_us: 20.0,
            partition_s: (5.0, 10.0),
            seed: 1,
        }
    }
}

/// One strategy's row of the matrix.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyRow {
    /// The strategy.
    pub strategy: String,
    /// Acknowledged writes (or increments, for the counters).
    pub acknowledged: u64,
    /// Conflicts the strategy reported: overlapping pairs (TrueTime), writes kept as a
    /// concurrent sibling (version vectors); plain LWW and the counters report none.
    pub conflicts_reported: u64,
    /// Acknowledged writes lost (see the module docs); for counters, increments missing from
    /// the final value.
    pub lost: u64,
    /// Of those, lost without the strategy saying so.
    pub lost_silently: u64,
    /// Keys left with siblings for the application to merge.
    pub unmerged_keys: u64,
    /// Whether both replicas hold the same state at the end.
    pub converged: bool,
    /// Cross-region round trips a write waits for before it is acknowledged (all AP
    /// strategies acknowledge locally: 0).
    pub write_round_trips: u32,
}

/// What `ttbench conflicts --json` prints.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictReport {
    /// Simulated seconds.
    pub duration_s: f64,
    /// Writes per second per region.
    pub rate: f64,
    /// Keys.
    pub keys: usize,
    /// One-way delay (ms).
    pub one_way_ms: f64,
    /// Wall clocks apart (ms).
    pub wall_skew_ms: f64,
    /// TrueTime ε (µs).
    pub epsilon_us: f64,
    /// The partition (s).
    pub partition_s: (f64, f64),
    /// Seed.
    pub seed: u64,
    /// Overlapping pairs counted by brute force over every write (what TrueTime must report).
    pub overlapping_pairs: u64,
    /// One row per strategy.
    pub rows: Vec<StrategyRow>,
}

/// A write as accepted, with its true time.
struct Accepted {
    true_ns: i64,
    version: Version,
    sibling: Sibling,
    counter: Version,
    /// The origin's PN-counter state after this increment (what a state-based CRDT ships).
    pn: PnCounter,
}

/// Both replicas' states.
struct Replica {
    wall: LwwMap,
    tt: LwwMap,
    vv: SiblingMap,
    pn: PnCounter,
    lww_counter: LwwMap,
    concurrent: u64,
}

impl Replica {
    fn new() -> Replica {
        Replica {
            wall: LwwMap::new(LwwRule::WallClock),
            tt: LwwMap::new(LwwRule::TrueTime),
            vv: SiblingMap::default(),
            pn: PnCounter::default(),
            lww_counter: LwwMap::new(LwwRule::WallClock),
            concurrent: 0,
        }
    }

    fn apply(&mut self, a: &Accepted) {
        self.wall.apply(&a.version);
        self.tt.apply(&a.version);
        if self.vv.apply(&a.version.key, a.sibling.clone()) == Applied::Concurrent {
            self.concurrent += 1;
        }
        self.lww_counter.apply(&a.counter);
        self.pn.merge(&a.pn);
    }
}

/// Runs the simulation.
pub fn run(b: &ConflictBench) -> ConflictReport {
    let mut rng = ChaCha8Rng::seed_from_u64(b.seed);
    let ns = |s: f64| (s * 1e9) as i64;
    let end = ns(b.duration_s);
    // Every region's writes, in true-time order (Poisson arrivals).
    let mut starts: Vec<(i64, ReplicaId)> = Vec::new();
    for r in [1, 2] {
        let mut t = 0i64;
        loop {
            t += ns(-(1.0 - rng.random::<f64>()).ln() / b.rate);
            if t >= end {
                break;
            }
            starts.push((t, r));
        }
    }
    starts.sort_unstable();
    let eps = Span::from_nanos((b.epsilon_us * 1e3) as i64);
    let wall_off = |r: ReplicaId| ns(b.wall_skew_ms / 2e3) * if r == 1 { 1 } else { -1 };
    // Each replica's TrueTime offset: honest, inside ε.
    let tt_off: BTreeMap<ReplicaId, i64> = [1, 2]
        .into_iter()
        .map(|r| {
            (
                r,
                ((rng.random::<f64>() * 1.6 - 0.8) * eps.as_nanos() as f64) as i64,
            )
        })
        .collect();
    let mut reps: BTreeMap<ReplicaId, Replica> = [(1, Replica::new()), (2, Replica::new())].into();
    let mut seq: BTreeMap<ReplicaId, u64> = BTreeMap::new();
    let mut accepted: Vec<Accepted> = Vec::new();
    // Deliveries: (at, to, index into `accepted`).
    let mut queue: BinaryHeap<Reverse<(i64, ReplicaId, usize)>> = BinaryHeap::new();
    let (cut_from, cut_to) = (ns(b.partition_s.0), ns(b.partition_s.1));
    let deliver_until = |t: i64,
                         reps: &mut BTreeMap<ReplicaId, Replica>,
                         queue: &mut BinaryHeap<Reverse<(i64, ReplicaId, usize)>>,
                         accepted: &[Accepted]| {
        while let Some(Reverse((at, to, i))) = queue.peek().copied() {
            if at > t {
                break;
            }
            queue.pop();
            if let Some(r) = reps.get_mut(&to) {
                r.apply(&accepted[i]);
            }
        }
    };
    for (t, r) in starts {
        deliver_until(t, &mut reps, &mut queue, &accepted);
        let n = seq.entry(r).or_insert(0);
        *n += 1;
        let key = format!("k{}", rng.random_range(0..b.keys.max(1)));
        let rep = reps.get_mut(&r).expect("two replicas");
        let tt = TTInterval::around(Timestamp::from_nanos(t + tt_off[&r]), eps)
            .unwrap_or_else(|_| TTInterval::point(Timestamp::from_nanos(t)));
        let version = Version {
            key: key.clone(),
            value: format!("r{r}-{n}"),
            origin: r,
            seq: *n,
            wall_ns: t + wall_off(r),
            tt,
        };
        let sibling = Sibling {
            value: version.value.clone(),
            vv: rep.vv.next_vv(&key, r, *n),
        };
        // The read-modify-write counter: read the local value, write it plus one.
        let cur: i64 = rep
            .lww_counter
            .get("counter")
            .and_then(|v| v.value.parse().ok())
            .unwrap_or(0);
        let counter = Version {
            key: "counter".into(),
            value: (cur + 1).to_string(),
            ..version.clone()
        };
        rep.pn.add(r, 1);
        let a = Accepted {
            true_ns: t,
            version,
            sibling,
            counter,
            pn: rep.pn.clone(),
        };
        rep.apply(&a);
        // Ship it: after the link's delay, or when the partition heals.
        let sent = if (cut_from..cut_to).contains(&t) {
            cut_to
        } else {
            t
        };
        let delay = ns((b.one_way_ms + b.jitter_ms * rng.random::<f64>()) / 1e3);
        let to = if r == 1 { 2 } else { 1 };
        accepted.push(a);
        queue.push(Reverse((sent + delay, to, accepted.len() - 1)));
    }
    deliver_until(i64::MAX, &mut reps, &mut queue, &accepted);
    report(b, &reps, &accepted)
}

/// The row of an LWW strategy: every write ranked below an older one is lost; reported when
/// the pair is among the strategy's conflicts.
fn lww_row(
    name: &str,
    [m1, m2]: [&LwwMap; 2],
    rule: LwwRule,
    by_key: &BTreeMap<&str, Vec<&Accepted>>,
) -> StrategyRow {
    let (mut lost, mut silent) = (0u64, 0u64);
    for (key, ws) in by_key {
        for w in ws {
            // An older write this strategy keeps over `w`.
            let above = ws
                .iter()
                .find(|v| v.true_ns < w.true_ns && m1.wins(&v.version, &w.version));
            let Some(v) = above else { continue };
            lost += 1;
            let pair = if v.version.id() < w.version.id() {
                [v.version.id(), w.version.id()]
            } else {
                [w.version.id(), v.version.id()]
            };
            let reported = rule == LwwRule::TrueTime
                && m1
                    .conflicts()
                    .iter()
                    .any(|c| c.key == **key && c.writes == pair);
            if !reported {
                silent += 1;
            }
        }
    }
    StrategyRow {
        strategy: name.into(),
        acknowledged: by_key.values().map(|w| w.len() as u64).sum(),
        conflicts_reported: m1.conflicts().len() as u64,
        lost,
        lost_silently: silent,
        unmerged_keys: 0,
        converged: m1.values() == m2.values() && m1.conflicts() == m2.conflicts(),
        write_round_trips: 0,
    }
}

/// The matrix from the final states.
fn report(
    b: &ConflictBench,
    reps: &BTreeMap<ReplicaId, Replica>,
    accepted: &[Accepted],
) -> ConflictReport {
    let mut by_key: BTreeMap<&str, Vec<&Accepted>> = BTreeMap::new();
    for a in accepted {
        by_key.entry(a.version.key.as_str()).or_default().push(a);
    }
    let overlapping_pairs: u64 = by_key
        .values()
        .map(|ws| {
            let mut n = 0u64;
            for (i, x) in ws.iter().enumerate() {
                for y in &ws[i + 1..] {
                    if LwwMap::overlap(&x.version.tt, &y.version.tt) {
                        n += 1;
                    }
                }
            }
            n
        })
        .sum();
    let (r1, r2) = (&reps[&1], &reps[&2]);
    let mut rows = vec![
        lww_row(
            "LWW, wall clocks",
            [&r1.wall, &r2.wall],
            LwwRule::WallClock,
            &by_key,
        ),
        lww_row(
            "LWW, TrueTime, overlaps reported",
            [&r1.tt, &r2.tt],
            LwwRule::TrueTime,
            &by_key,
        ),
    ];
    rows.push(StrategyRow {
        strategy: "version vectors, siblings merged by the application".into(),
        acknowledged: accepted.len() as u64,
        conflicts_reported: r1.concurrent.max(r2.concurrent),
        lost: 0,
        lost_silently: 0,
        unmerged_keys: r1.vv.unmerged() as u64,
        converged: r1.vv == r2.vv,
        write_round_trips: 0,
    });
    let total = accepted.len() as u64;
    let lww_count: u64 = r1
        .lww_counter
        .get("counter")
        .and_then(|v| v.value.parse().ok())
        .unwrap_or(0);
    rows.push(StrategyRow {
        strategy: "counter: read-modify-write LWW register".into(),
        acknowledged: total,
        conflicts_reported: 0,
        lost: total.saturating_sub(lww_count),
        lost_silently: total.saturating_sub(lww_count),
        unmerged_keys: 0,
        converged: r1.lww_counter.values() == r2.lww_counter.values(),
        write_round_trips: 0,
    });
    let pn = r1.pn.value().max(0) as u64;
    rows.push(StrategyRow {
        strategy: "counter: PN-counter CRDT".into(),
        acknowledged: total,
        conflicts_reported: 0,
        lost: total.saturating_sub(pn),
        lost_silently: total.saturating_sub(pn),
        unmerged_keys: 0,
        converged: r1.pn == r2.pn,
        write_round_trips: 0,
    });
    ConflictReport {
        duration_s: b.duration_s,
        rate: b.rate,
        keys: b.keys,
        one_way_ms: b.one_way_ms,
        wall_skew_ms: b.wall_skew_ms,
        epsilon_us: b.epsilon_us,
        partition_s: b.partition_s,
        seed: b.seed,
        overlapping_pairs,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_shows_what_each_strategy_loses_and_reports() {
        let r = run(&ConflictBench {
            duration_s: 6.0,
            partition_s: (2.0, 4.0),
            epsilon_us: 500.0,
            ..ConflictBench::default()
        });
        let row = |s: &str| r.rows.iter().find(|x| x.strategy.starts_with(s)).unwrap();
        for x in &r.rows {
            assert!(x.converged, "{x:?}");
            assert!(x.acknowledged > 1000, "{x:?}");
        }
        // Plain LWW on clocks 1 ms apart silently drops newer writes (the negative control).
        assert!(row("LWW, wall").lost_silently > 0, "{r:?}");
        // TrueTime reports every overlapping pair (checked by brute force) and loses nothing
        // silently.
        let tt = row("LWW, TrueTime");
        assert!(r.overlapping_pairs > 0);
        assert_eq!(tt.conflicts_reported, r.overlapping_pairs, "{r:?}");
        assert_eq!(tt.lost_silently, 0, "{r:?}");
        assert!(
            tt.lost > 0,
            "overlaps at ε = 500 µs put some pairs out of order: {r:?}"
        );
        // Siblings keep concurrent writes; the PN-counter loses no increment, the LWW counter
        // many.
        assert!(row("version vectors").conflicts_reported > 0, "{r:?}");
        assert_eq!(row("counter: PN").lost, 0, "{r:?}");
        assert!(row("counter: read-modify").lost > 100, "{r:?}");
        // Deterministic for a seed.
        assert_eq!(
            r,
            run(&ConflictBench {
                duration_s: 6.0,
                partition_s: (2.0, 4.0),
                epsilon_us: 500.0,
                ..ConflictBench::default()
            })
        );
    }
}
