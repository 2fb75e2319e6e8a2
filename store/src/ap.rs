//! The AP (multi-leader) side of the store, as pure replicated data types: every region accepts
//! writes locally and ships them to the others asynchronously; these types decide what a replica
//! holds once it has seen a set of writes, in any order, any number of times. Each one is a
//! state-based merge: commutative, associative and idempotent, so replicas that have seen the same
//! writes hold the same state (convergence after a partition heals).
//!
//! * [`LwwMap`] — last-writer-wins registers under a [`LwwRule`]:
//!   - [`LwwRule::WallClock`]: plain LWW on each replica's wall clock (the seed's "simple,
//!     loses data"): a write that came later in true time but carries an earlier wall-clock
//!     stamp loses, and nothing says so.
//!   - [`LwwRule::TrueTime`]: ordered by TrueTime intervals. When one write's interval ends
//!     before the other's begins the order is certain; when they **overlap** the order is
//!     unknown, and the pair is **reported** as a conflict ([`LwwMap::conflicts`]), never
//!     decided silently. The value kept is then chosen by a documented deterministic rule (the
//!     later `latest`, then the origin id, then the sequence number) so replicas converge.
//! * [`SiblingMap`] — version vectors: a write that is concurrent with the kept ones becomes a
//!   sibling, and the application merges siblings (the seed's "vector clocks + app merge").
//! * [`PnCounter`] — a positive-negative counter CRDT: no increment is ever lost.
//! * [`OrSet`] — an observed-remove set CRDT: a remove takes away only the adds it has seen, so a
//!   concurrent add survives.

use std::collections::{BTreeMap, BTreeSet};
use ttcore::TTInterval;

/// A replica (one per region).
pub type ReplicaId = u32;

/// One write to a register, as shipped between replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The key.
    pub key: String,
    /// The value written.
    pub value: String,
    /// The replica that accepted it.
    pub origin: ReplicaId,
    /// Its sequence number at that replica (unique with `origin`).
    pub seq: u64,
    /// The origin's wall clock when it accepted the write (ns).
    pub wall_ns: i64,
    /// The origin's `TT.now()` when it accepted the write.
    pub tt: TTInterval,
}

impl Version {
    /// The write's identity.
    pub fn id(&self) -> (ReplicaId, u64) {
        (self.origin, self.seq)
    }
}

/// How an [`LwwMap`] orders two writes to one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LwwRule {
    /// By the origins' wall clocks (then origin, then sequence): plain LWW.
    WallClock,
    /// By TrueTime intervals; overlapping intervals are a reported conflict.
    TrueTime,
}

/// Two writes to one key whose TrueTime intervals overlap: their order is unknown.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Conflict {
    /// The key.
    pub key: String,
    /// The two writes (the smaller identity first).
    pub writes: [(ReplicaId, u64); 2],
}

/// Last-writer-wins registers by key.
#[derive(Clone, Debug)]
pub struct LwwMap {
    rule: LwwRule,
    /// Every write seen, by key and identity (the TrueTime rule compares a new write with all
    /// of them, so that every overlapping pair is reported whatever the arrival order).
    seen: BTreeMap<String, BTreeMap<(ReplicaId, u64), Version>>,
    conflicts: BTreeSet<Conflict>,
}

impl LwwMap {
    /// An empty map under `rule`.
    pub fn new(rule: LwwRule) -> LwwMap {
        LwwMap {
            rule,
            seen: BTreeMap::new(),
            conflicts: BTreeSet::new(),
        }
    }

    /// Whether `a` is kept over `b` (the deterministic total order; under the TrueTime rule it
    /// agrees with the certain order whenever there is one).
    pub fn wins(&self, a: &Version, b: &Version) -> bool {
        match self.rule {
            LwwRule::WallClock => (a.wall_ns, a.origin, a.seq) > (b.wall_ns, b.origin, b.seq),
            LwwRule::TrueTime => {
                if a.tt.after(b.tt.latest()) {
                    true
                } else if b.tt.after(a.tt.latest()) {
                    false
                } else {
                    (a.tt.latest(), a.origin, a.seq) > (b.tt.latest(), b.origin, b.seq)
                }
            }
        }
    }

    /// Whether the order of `a` and `b` is unknown (their intervals overlap).
    pub fn overlap(a: &TTInterval, b: &TTInterval) -> bool {
        !(a.after(b.latest()) || b.after(a.latest()))
    }

    /// Applies a write (local or remote; again is a no-op).
    pub fn apply(&mut self, v: &Version) {
        let versions = self.seen.entry(v.key.clone()).or_default();
        if versions.contains_key(&v.id()) {
            return;
        }
        if self.rule == LwwRule::TrueTime {
            for o in versions.values() {
                if Self::overlap(&o.tt, &v.tt) {
                    let (x, y) = if o.id() < v.id() {
                        (o.id(), v.id())
                    } else {
                        (v.id(), o.id())
                    };
                    self.conflicts.insert(Conflict {
                        key: v.key.clone(),
                        writes: [x, y],
                    });
                }
            }
        }
        versions.insert(v.id(), v.clone());
    }

    /// The value kept for `key`: the write that wins over every other.
    pub fn get(&self, key: &str) -> Option<&Version> {
        self.seen
            .get(key)?
            .values()
            .reduce(|best, v| if self.wins(v, best) { v } else { best })
    }

    /// Every key with its kept value.
    pub fn values(&self) -> BTreeMap<String, String> {
        self.seen
            .keys()
            .filter_map(|k| Some((k.clone(), self.get(k)?.value.clone())))
            .collect()
    }

    /// Every pair of overlapping writes seen (TrueTime rule; empty under the wall clock).
    pub fn conflicts(&self) -> &BTreeSet<Conflict> {
        &self.conflicts
    }
}

/// A version vector: per replica, how many of its writes are included.
pub type VersionVector = BTreeMap<ReplicaId, u64>;

fn dominates(a: &VersionVector, b: &VersionVector) -> bool {
    b.iter().all(|(r, n)| a.get(r).copied().unwrap_or(0) >= *n)
}

/// One sibling: a value and the version vector of the write that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sibling {
    /// The value.
    pub value: String,
    /// What the writer had seen, its own write included.
    pub vv: VersionVector,
}

/// Registers under version vectors: concurrent writes are kept side by side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiblingMap {
    keys: BTreeMap<String, Vec<Sibling>>,
}

/// What [`SiblingMap::apply`] did with a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Already seen, or older than a kept sibling: dropped.
    Dropped,
    /// It replaced every kept sibling (they were all in its past).
    Replaced,
    /// It is concurrent with a kept sibling: now one of several (a conflict to merge).
    Concurrent,
}

impl SiblingMap {
    /// The version vector a new write to `key` at replica `r` carries: the merge of the
    /// siblings it replaces, with `r`'s count raised to `seq`.
    pub fn next_vv(&self, key: &str, r: ReplicaId, seq: u64) -> VersionVector {
        let mut vv = VersionVector::new();
        for s in self.keys.get(key).into_iter().flatten() {
            for (k, n) in &s.vv {
                let e = vv.entry(*k).or_insert(0);
                *e = (*e).max(*n);
            }
        }
        vv.insert(r, seq);
        vv
    }

    /// Applies a write: siblings it dominates go; if a sibling dominates it (it was seen
    /// already, or is older), it is dropped; otherwise it joins them.
    pub fn apply(&mut self, key: &str, s: Sibling) -> Applied {
        let sibs = self.keys.entry(key.to_string()).or_default();
        if sibs.iter().any(|o| dominates(&o.vv, &s.vv)) {
            return Applied::Dropped;
        }
        sibs.retain(|o| !dominates(&s.vv, &o.vv));
        let concurrent = !sibs.is_empty();
        sibs.push(s);
        sibs.sort_by(|a, b| a.value.cmp(&b.value));
        if concurrent {
            Applied::Concurrent
        } else {
            Applied::Replaced
        }
    }

    /// The siblings of `key` (more than one: a conflict for the application to merge).
    pub fn get(&self, key: &str) -> &[Sibling] {
        self.keys.get(key).map_or(&[], Vec::as_slice)
    }

    /// Keys whose siblings the application still has to merge.
    pub fn unmerged(&self) -> usize {
        self.keys.values().filter(|s| s.len() > 1).count()
    }
}

/// A positive-negative counter: per replica, its increments and decrements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PnCounter {
    p: BTreeMap<ReplicaId, u64>,
    n: BTreeMap<ReplicaId, u64>,
}

impl PnCounter {
    /// Adds `d` at replica `r`.
    pub fn add(&mut self, r: ReplicaId, d: i64) {
        let m = if d >= 0 { &mut self.p } else { &mut self.n };
        *m.entry(r).or_insert(0) += d.unsigned_abs();
    }

    /// Merges another replica's state (entry-wise maximum).
    pub fn merge(&mut self, o: &PnCounter) {
        for (m, om) in [(&mut self.p, &o.p), (&mut self.n, &o.n)] {
            for (r, v) in om {
                let e = m.entry(*r).or_insert(0);
                *e = (*e).max(*v);
            }
        }
    }

    /// The counter's value.
    pub fn value(&self) -> i64 {
        self.p.values().sum::<u64>() as i64 - self.n.values().sum::<u64>() as i64
    }
}

/// An observed-remove set: each add has a unique tag; a remove takes the tags it has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrSet {
    adds: BTreeSet<(String, (ReplicaId, u64))>,
    removed: BTreeSet<(ReplicaId, u64)>,
}

impl OrSet {
    /// Adds `e` with the unique tag `tag`.
    pub fn add(&mut self, e: &str, tag: (ReplicaId, u64)) {
        self.adds.insert((e.to_string(), tag));
    }

    /// Removes `e` as this replica sees it: the tags of its adds seen so far.
    pub fn remove(&mut self, e: &str) {
        let tags: Vec<_> = self
            .adds
            .iter()
            .filter(|(x, _)| x == e)
            .map(|(_, t)| *t)
            .collect();
        self.removed.extend(tags);
    }

    /// Merges another replica's state (union of adds and of removed tags).
    pub fn merge(&mut self, o: &OrSet) {
        self.adds.extend(o.adds.iter().cloned());
        self.removed.extend(o.removed.iter().copied());
    }

    /// Whether `e` is in the set.
    pub fn contains(&self, e: &str) -> bool {
        self.adds
            .iter()
            .any(|(x, t)| x == e && !self.removed.contains(t))
    }

    /// The elements.
    pub fn elements(&self) -> BTreeSet<String> {
        self.adds
            .iter()
            .filter(|(_, t)| !self.removed.contains(t))
            .map(|(x, _)| x.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttcore::{Span, Timestamp};

    fn v(origin: ReplicaId, seq: u64, wall: i64, at: i64, eps: i64) -> Version {
        Version {
            key: "k".into(),
            value: format!("r{origin}-{seq}"),
            origin,
            seq,
            wall_ns: wall,
            tt: TTInterval::around(Timestamp::from_nanos(at), Span::from_nanos(eps)).unwrap(),
        }
    }

    #[test]
    fn truetime_lww_reports_every_overlapping_pair_in_any_order_and_converges() {
        // Three writes: a [90, 110], b [105, 125] overlaps a, c [200, 220] after both.
        let (a, b, c) = (
            v(1, 1, 0, 100, 10),
            v(2, 1, 0, 115, 10),
            v(1, 2, 0, 210, 10),
        );
        let orders = [vec![&a, &b, &c], vec![&c, &b, &a], vec![&b, &c, &a, &b]];
        let mut states = Vec::new();
        for o in orders {
            let mut m = LwwMap::new(LwwRule::TrueTime);
            for w in o {
                m.apply(w);
            }
            assert_eq!(m.get("k").unwrap().value, "r1-2", "c is certainly last");
            let pairs: Vec<_> = m.conflicts().iter().map(|c| c.writes).collect();
            assert_eq!(pairs, vec![[(1, 1), (2, 1)]], "exactly the a–b pair");
            states.push(m.values());
        }
        assert!(states.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn plain_lww_on_skewed_wall_clocks_silently_keeps_the_earlier_write() {
        // b happened 50 µs after a in true time, but b's replica's wall clock is 1 ms behind
        // (it reads 1,050,000 − 1,000,000).
        let a = v(1, 1, 1_000_000, 1_000_000, 10);
        let b = v(2, 1, 50_000, 1_050_000, 10);
        let mut m = LwwMap::new(LwwRule::WallClock);
        m.apply(&a);
        m.apply(&b);
        assert_eq!(m.get("k").unwrap().value, "r1-1", "the later write is lost");
        assert!(m.conflicts().is_empty(), "and nothing says so");
        // TrueTime with honest 10 ns bounds orders them correctly.
        let mut t = LwwMap::new(LwwRule::TrueTime);
        t.apply(&b);
        t.apply(&a);
        assert_eq!(t.get("k").unwrap().value, "r2-1");
    }

    #[test]
    fn version_vectors_keep_concurrent_writes_as_siblings_and_drop_overwritten_ones() {
        let (mut x, mut y) = (SiblingMap::default(), SiblingMap::default());
        let w1 = Sibling {
            value: "a".into(),
            vv: x.next_vv("k", 1, 1),
        };
        x.apply("k", w1.clone());
        let w2 = Sibling {
            value: "b".into(),
            vv: y.next_vv("k", 2, 1),
        };
        y.apply("k", w2.clone());
        x.apply("k", w2.clone());
        y.apply("k", w1.clone());
        assert_eq!(x, y);
        assert_eq!(x.get("k").len(), 2, "concurrent: both kept");
        assert_eq!(x.unmerged(), 1);
        // The application merges: a write that has seen both replaces them.
        let m = Sibling {
            value: "a+b".into(),
            vv: x.next_vv("k", 1, 2),
        };
        x.apply("k", m.clone());
        y.apply("k", m);
        y.apply("k", w1);
        assert_eq!(x, y);
        assert_eq!(x.get("k").len(), 1);
        assert_eq!(x.get("k")[0].value, "a+b");
    }

    #[test]
    fn pn_counter_and_or_set_converge_and_lose_nothing() {
        let (mut x, mut y) = (PnCounter::default(), PnCounter::default());
        for _ in 0..5 {
            x.add(1, 1);
            y.add(2, 1);
        }
        y.add(2, -2);
        let (x0, y0) = (x.clone(), y.clone());
        x.merge(&y0);
        y.merge(&x0);
        x.merge(&y0); // again: no effect
        assert_eq!((x.value(), y.value()), (8, 8));
        // Add-wins: a remove does not take an add it has not seen.
        let (mut s, mut t) = (OrSet::default(), OrSet::default());
        s.add("e", (1, 1));
        let s0 = s.clone();
        t.merge(&s0);
        t.remove("e");
        s.add("e", (1, 2)); // concurrent with t's remove
        let (s1, t1) = (s.clone(), t.clone());
        s.merge(&t1);
        t.merge(&s1);
        assert_eq!(s, t);
        assert!(s.contains("e"));
        assert_eq!(s.elements().len(), 1);
    }
}
