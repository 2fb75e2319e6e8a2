//! The replicated state machine: a multi-version key-value map keyed by commit timestamp.
//!
//! Pure logic — no I/O, no clock. Every replica applies the same [`Command`]s in Raft log order
//! and so holds the same versions. Two rules make timestamps safe to read at:
//!
//! * **Monotone commits.** A transaction whose timestamp is not above the replica's *safe time*
//!   (the highest commit or closed timestamp applied so far) is refused with
//!   [`Applied::TooOld`] and changes nothing; the leader retries it with a later timestamp.
//!   So versions are appended in timestamp order, and once a replica has applied up to safe
//!   time `t`, no version at or below `t` can ever appear — a read at `r ≤ t` is final.
//! * **Exactly once.** Each transaction carries a client request id; a retried request that
//!   already committed gets its first outcome back instead of being applied twice.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// How long committed request ids are remembered for exactly-once retries, and how far back
/// old versions are kept for snapshot reads (ns of commit-timestamp time): 10 minutes.
pub const RETAIN_NS: i64 = 600_000_000_000;
/// Garbage collection runs every this many committed transactions.
const GC_EVERY: u64 = 256;

/// A commit or read timestamp: wall time (ns since the Unix epoch, UTC) plus a logical counter.
/// In TrueTime mode the wall part is a TrueTime bound; in HLC mode it is hybrid-logical time.
pub use ttclient::hlc::HlcTimestamp as Ts;

/// A guard: the key's newest version must be `version` (`None`: the key must be absent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// Key.
    pub key: String,
    /// Expected newest version (commit timestamp), or `None` for "absent".
    pub version: Option<Ts>,
}

/// A write: `Some(value)` sets, `None` deletes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    /// Key.
    pub key: String,
    /// New value, or `None` to delete.
    pub value: Option<String>,
}

/// A read-write transaction, applied atomically at timestamp `ts`: if every compare holds, all
/// writes take effect at `ts`; the reads see the state just before `ts` either way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnCmd {
    /// Client request id (exactly-once across retries).
    pub id: String,
    /// Commit timestamp chosen by the leader.
    pub ts: Ts,
    /// Guards.
    pub compares: Vec<Compare>,
    /// Writes.
    pub writes: Vec<Write>,
    /// Keys to read.
    pub reads: Vec<String>,
}

/// A Raft log command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A transaction.
    Txn(TxnCmd),
    /// A closed timestamp: the leader promises no transaction at or below `ts` will follow.
    Close {
        /// Closed timestamp.
        ts: Ts,
    },
    /// Two-phase commit, phase one: this shard's part of a cross-shard transaction, at its
    /// prepare timestamp `txn.ts`. Checks the compares, reads, and locks every key the part
    /// touches until the decision.
    Prepare {
        /// The part (its `id` is the attempt's id, `ts` the prepare timestamp).
        txn: TxnCmd,
        /// The coordinator shard (whose log holds the decision).
        coordinator: u32,
        /// The transaction's age (the coordinator's clock when it first tried it; kept across
        /// attempts): an older transaction may wait for a younger one's lock, never the other
        /// way round (wait-die, so no deadlock).
        #[serde(default)]
        priority: Ts,
    },
    /// Two-phase commit, phase two: commit at `commit` (writes applied if `apply_writes`), or
    /// abort (`None`). The first decision for an id wins; a later one gets the first's outcome.
    Decide {
        /// The attempt's id.
        id: String,
        /// The commit timestamp, or `None` to abort.
        commit: Option<Ts>,
        /// Whether the writes take effect (every part's compares held).
        apply_writes: bool,
    },
}

/// A prepared part of a cross-shard transaction, holding its keys' locks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepared {
    /// The part as prepared (`ts`: the prepare timestamp).
    pub txn: TxnCmd,
    /// The coordinator shard.
    pub coordinator: u32,
    /// The transaction's age (see [`Command::Prepare`]).
    #[serde(default)]
    pub priority: Ts,
    /// Whether this part's compares held.
    pub compares_ok: bool,
    /// The reads, as of the prepare (unchanged until the decision: their keys are locked).
    pub reads: Vec<Value>,
}

/// A key's value as read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    /// Key.
    pub key: String,
    /// Value (`None`: absent or deleted).
    pub value: Option<String>,
    /// Commit timestamp of the version read (`None`: the key was never written).
    pub version: Option<Ts>,
}

/// The outcome of applying one log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Applied {
    /// The transaction committed at `ts` (`succeeded` false: a compare failed, nothing written).
    Committed {
        /// Commit timestamp.
        ts: Ts,
        /// Whether the compares held (and the writes were applied).
        succeeded: bool,
        /// The reads, as of just before `ts`.
        reads: Vec<Value>,
    },
    /// Refused: `ts` was not above safe time `safe`; nothing changed, retry with a later one.
    TooOld {
        /// The replica's safe time when it refused.
        safe: Ts,
    },
    /// A cross-shard part was prepared at `ts` (or had been: prepares are idempotent).
    Prepared {
        /// The prepare timestamp.
        ts: Ts,
        /// Whether this part's compares held.
        compares_ok: bool,
        /// The reads, as of the prepare.
        reads: Vec<Value>,
    },
    /// Refused: `key` is locked by the prepared transaction `by`; nothing changed.
    Locked {
        /// The locked key.
        key: String,
        /// The lock holder's id.
        by: String,
        /// The lock holder's age (see [`Command::Prepare`]).
        holder_priority: Ts,
    },
    /// A cross-shard transaction was aborted (or its decision came before its prepare).
    Aborted,
    /// Refused: a decision that cannot be applied (commit below the prepare timestamp, or a
    /// commit for a part never prepared here); nothing changed.
    Refused {
        /// Why.
        why: String,
    },
    /// A closed-timestamp entry was applied.
    Closed {
        /// Safe time after it.
        safe: Ts,
    },
    /// A blank or membership entry.
    #[default]
    Nothing,
}

/// The versions of every key, plus the bookkeeping for safe time and retries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mvcc {
    /// key → versions in ascending timestamp order (`None` value: a deletion).
    versions: BTreeMap<String, Vec<(Ts, Option<String>)>>,
    /// No transaction at or below this will ever be applied.
    safe: Ts,
    /// request id → outcome of committed transactions (the last [`RETAIN_NS`] of them).
    done: HashMap<String, Applied>,
    /// The ids in `done`, oldest first, with their commit timestamps.
    done_order: VecDeque<(Ts, String)>,
    /// Versions older than this may have been collected: reads below it are refused.
    gc_before: Ts,
    /// Transactions committed (drives the GC cadence).
    commits: u64,
    /// Prepared cross-shard parts by id, waiting for their decision.
    #[serde(default)]
    prepared: BTreeMap<String, Prepared>,
    /// key → (holder's id, its prepare timestamp) for every key a prepared part touches.
    #[serde(default)]
    locks: BTreeMap<String, (String, Ts)>,
}

/// Every key a transaction touches: its compares, writes and reads.
fn touched(t: &TxnCmd) -> impl Iterator<Item = &str> {
    t.compares
        .iter()
        .map(|c| c.key.as_str())
        .chain(t.writes.iter().map(|w| w.key.as_str()))
        .chain(t.reads.iter().map(String::as_str))
}

impl Mvcc {
    /// Applies one command (deterministic: every replica gets the same answer).
    pub fn apply(&mut self, cmd: &Command) -> Applied {
        match cmd {
            Command::Close { ts } => {
                self.safe = self.safe.max(*ts);
                Applied::Closed { safe: self.safe }
            }
            Command::Txn(t) => {
                if let Some(prev) = self.done.get(&t.id) {
                    return prev.clone();
                }
                if t.ts <= self.safe {
                    return Applied::TooOld { safe: self.safe };
                }
                if let Some(l) = self.lock_on(t) {
                    return l;
                }
                let reads = t.reads.iter().map(|k| self.latest(k)).collect();
                let succeeded = t
                    .compares
                    .iter()
                    .all(|c| self.latest(&c.key).version == c.version);
                if succeeded {
                    for w in &t.writes {
                        self.versions
                            .entry(w.key.clone())
                            .or_default()
                            .push((t.ts, w.value.clone()));
                    }
                }
                self.safe = t.ts;
                let out = Applied::Committed {
                    ts: t.ts,
                    succeeded,
                    reads,
                };
                self.done.insert(t.id.clone(), out.clone());
                self.done_order.push_back((t.ts, t.id.clone()));
                self.commits += 1;
                self.collect(t.ts);
                out
            }
            Command::Prepare {
                txn,
                coordinator,
                priority,
            } => self.prepare(txn, *coordinator, *priority),
            Command::Decide {
                id,
                commit,
                apply_writes,
            } => self.decide(id, *commit, *apply_writes),
        }
    }

    /// The first key of `t` locked by another transaction's prepared part, as a refusal.
    fn lock_on(&self, t: &TxnCmd) -> Option<Applied> {
        touched(t).find_map(|k| {
            self.locks
                .get(k)
                .filter(|(by, _)| *by != t.id)
                .map(|(by, _)| Applied::Locked {
                    key: k.to_string(),
                    by: by.clone(),
                    holder_priority: self
                        .prepared
                        .get(by)
                        .map(|p| p.priority)
                        .unwrap_or_default(),
                })
        })
    }

    /// Phase one: check, read, lock (idempotent for an id already prepared or decided).
    fn prepare(&mut self, t: &TxnCmd, coordinator: u32, priority: Ts) -> Applied {
        if let Some(prev) = self.done.get(&t.id) {
            return prev.clone();
        }
        if let Some(p) = self.prepared.get(&t.id) {
            return Applied::Prepared {
                ts: p.txn.ts,
                compares_ok: p.compares_ok,
                reads: p.reads.clone(),
            };
        }
        if t.ts <= self.safe {
            return Applied::TooOld { safe: self.safe };
        }
        if let Some(l) = self.lock_on(t) {
            return l;
        }
        let reads: Vec<Value> = t.reads.iter().map(|k| self.latest(k)).collect();
        let compares_ok = t
            .compares
            .iter()
            .all(|c| self.latest(&c.key).version == c.version);
        for k in touched(t) {
            self.locks.insert(k.to_string(), (t.id.clone(), t.ts));
        }
        // No later transaction may take a timestamp at or below the prepare (as for a commit).
        self.safe = t.ts;
        self.prepared.insert(
            t.id.clone(),
            Prepared {
                txn: t.clone(),
                coordinator,
                priority,
                compares_ok,
                reads: reads.clone(),
            },
        );
        Applied::Prepared {
            ts: t.ts,
            compares_ok,
            reads,
        }
    }

    /// Phase two: the first decision for `id` wins; a commit applies the prepared writes at
    /// `commit` (≥ the prepare timestamp, so every version list stays in timestamp order: the
    /// keys were locked since the prepare) and moves safe time to it.
    fn decide(&mut self, id: &str, commit: Option<Ts>, apply_writes: bool) -> Applied {
        if let Some(prev) = self.done.get(id) {
            return prev.clone();
        }
        let out = match (commit, self.prepared.get(id)) {
            (Some(s), Some(p)) if s < p.txn.ts => {
                return Applied::Refused {
                    why: format!(
                        "commit timestamp {s:?} is below the prepare timestamp {:?}",
                        p.txn.ts
                    ),
                };
            }
            (Some(_), None) => {
                return Applied::Refused {
                    why: format!("commit for {id:?}, which was never prepared here"),
                };
            }
            (Some(s), Some(_)) => {
                let p = self
                    .release(id)
                    .unwrap_or_else(|| unreachable!("checked above"));
                let succeeded = apply_writes && p.compares_ok;
                if succeeded {
                    for w in &p.txn.writes {
                        self.versions
                            .entry(w.key.clone())
                            .or_default()
                            .push((s, w.value.clone()));
                    }
                }
                self.safe = self.safe.max(s);
                self.commits += 1;
                Applied::Committed {
                    ts: s,
                    succeeded,
                    reads: p.reads,
                }
            }
            (None, _) => {
                // An abort for an id never prepared here is remembered too, so a prepare that
                // arrives late (after a recovering participant gave up on it) is refused.
                self.release(id);
                Applied::Aborted
            }
        };
        let at = match &out {
            Applied::Committed { ts, .. } => *ts,
            _ => self.safe,
        };
        self.done.insert(id.to_string(), out.clone());
        self.done_order.push_back((at, id.to_string()));
        self.collect(at);
        out
    }

    /// Drops `id`'s prepared part and its locks.
    fn release(&mut self, id: &str) -> Option<Prepared> {
        let p = self.prepared.remove(id)?;
        self.locks.retain(|_, (by, _)| by != id);
        Some(p)
    }

    /// The prepared parts waiting for a decision: (id, prepare timestamp, coordinator).
    pub fn prepared(&self) -> Vec<(String, Ts, u32)> {
        self.prepared
            .iter()
            .map(|(id, p)| (id.clone(), p.txn.ts, p.coordinator))
            .collect()
    }

    /// The decision recorded for `id`, if any (`Committed` or `Aborted`).
    pub fn decision(&self, id: &str) -> Option<&Applied> {
        self.done.get(id)
    }

    /// The first of `keys` that a read at `at` cannot be served for yet: locked by a prepared
    /// part whose prepare timestamp is at or below `at` (its commit may land at or below `at`).
    pub fn locked_at<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a String>,
        at: Ts,
    ) -> Option<(String, String)> {
        keys.into_iter().find_map(|k| {
            self.locks
                .get(k)
                .filter(|(_, ts)| *ts <= at)
                .map(|(by, _)| (k.clone(), by.clone()))
        })
    }

    /// Forgets request ids and versions older than [`RETAIN_NS`] before `now` (a commit
    /// timestamp, so every replica collects the same things at the same log position). Keeps
    /// each key's newest version at or below the horizon, so reads at or after it stay exact.
    fn collect(&mut self, now: Ts) {
        let horizon = Ts {
            wall: now.wall.saturating_sub(RETAIN_NS),
            logical: 0,
        };
        while self.done_order.front().is_some_and(|(ts, _)| *ts < horizon) {
            if let Some((_, id)) = self.done_order.pop_front() {
                self.done.remove(&id);
            }
        }
        if self.commits % GC_EVERY != 0 || horizon <= self.gc_before {
            return;
        }
        self.versions.retain(|_, vs| {
            let n = vs.partition_point(|(ts, _)| *ts <= horizon);
            // Keep the newest version at or below the horizon (it is what reads there see),
            // unless it is a deletion, which then needs no trace at all.
            let keep_from = n.saturating_sub(1);
            vs.drain(..keep_from);
            if vs.len() == 1 && vs[0].0 <= horizon && vs[0].1.is_none() {
                vs.clear();
            }
            !vs.is_empty()
        });
        self.gc_before = horizon;
    }

    /// Reads below this timestamp are refused: older versions may have been collected.
    pub fn gc_before(&self) -> Ts {
        self.gc_before
    }

    /// Safe time: every version at or below it is present, and none will be added.
    pub fn safe(&self) -> Ts {
        self.safe
    }

    /// The newest version of `key`.
    pub fn latest(&self, key: &str) -> Value {
        self.read_at(
            key,
            Ts {
                wall: i64::MAX,
                logical: u32::MAX,
            },
        )
    }

    /// `key` as of timestamp `at` (the newest version with timestamp ≤ `at`). Only final when
    /// `at ≤ safe()`.
    pub fn read_at(&self, key: &str, at: Ts) -> Value {
        let found = self.versions.get(key).and_then(|vs| {
            let n = vs.partition_point(|(ts, _)| *ts <= at);
            n.checked_sub(1).map(|i| &vs[i])
        });
        Value {
            key: key.to_string(),
            value: found.and_then(|(_, v)| v.clone()),
            version: found.map(|(ts, _)| *ts),
        }
    }

    /// The newest version of `key` in `(after, upto]`, if any (HLC-mode read uncertainty).
    pub fn newest_in(&self, key: &str, after: Ts, upto: Ts) -> Option<Ts> {
        let vs = self.versions.get(key)?;
        let n = vs.partition_point(|(ts, _)| *ts <= upto);
        n.checked_sub(1).map(|i| vs[i].0).filter(|ts| *ts > after)
    }

    /// Number of keys (including deleted ones) and of versions.
    pub fn size(&self) -> (usize, usize) {
        (
            self.versions.len(),
            self.versions.values().map(Vec::len).sum(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(w: i64) -> Ts {
        Ts {
            wall: w,
            logical: 0,
        }
    }

    fn put(id: &str, at: i64, k: &str, v: &str) -> Command {
        Command::Txn(TxnCmd {
            id: id.into(),
            ts: ts(at),
            compares: vec![],
            writes: vec![Write {
                key: k.into(),
                value: Some(v.into()),
            }],
            reads: vec![k.into()],
        })
    }

    #[test]
    fn versions_are_read_as_of_a_timestamp() {
        let mut m = Mvcc::default();
        assert!(matches!(
            m.apply(&put("a", 10, "k", "v1")),
            Applied::Committed {
                succeeded: true,
                ..
            }
        ));
        m.apply(&put("b", 20, "k", "v2"));
        assert_eq!(m.read_at("k", ts(9)).version, None);
        assert_eq!(m.read_at("k", ts(10)).value.as_deref(), Some("v1"));
        assert_eq!(m.read_at("k", ts(19)).value.as_deref(), Some("v1"));
        assert_eq!(m.read_at("k", ts(25)).value.as_deref(), Some("v2"));
        assert_eq!(m.newest_in("k", ts(10), ts(30)), Some(ts(20)));
        assert_eq!(m.newest_in("k", ts(20), ts(30)), None);
        assert_eq!(m.safe(), ts(20));
    }

    #[test]
    fn a_timestamp_at_or_below_safe_time_is_refused_and_changes_nothing() {
        let mut m = Mvcc::default();
        m.apply(&Command::Close { ts: ts(50) });
        assert_eq!(
            m.apply(&put("a", 50, "k", "v")),
            Applied::TooOld { safe: ts(50) }
        );
        assert_eq!(m.latest("k").version, None);
        // The refused request is not remembered: a retry with a later timestamp commits.
        assert!(matches!(
            m.apply(&put("a", 51, "k", "v")),
            Applied::Committed { .. }
        ));
    }

    #[test]
    fn a_retried_request_gets_its_first_outcome() {
        let mut m = Mvcc::default();
        let first = m.apply(&put("a", 10, "k", "v1"));
        let again = m.apply(&put("a", 30, "k", "v1"));
        assert_eq!(first, again);
        assert_eq!(m.size(), (1, 1));
    }

    #[test]
    fn old_versions_and_request_ids_are_collected_but_reads_after_the_horizon_stay_exact() {
        let mut m = Mvcc::default();
        let min = 60_000_000_000;
        m.apply(&put("x", 1, "k", "v1"));
        m.apply(&put("y", 2, "k", "v2"));
        m.apply(&put("z", 3, "gone", "v"));
        m.apply(&Command::Txn(TxnCmd {
            id: "del".into(),
            ts: ts(4),
            compares: vec![],
            writes: vec![Write {
                key: "gone".into(),
                value: None,
            }],
            reads: vec![],
        }));
        // Enough commits, eleven minutes later, to trigger a collection.
        for i in 0..GC_EVERY {
            m.apply(&put(
                &format!("f{i}"),
                11 * min + i as i64,
                "other",
                &format!("o{i}"),
            ));
        }
        assert!(m.gc_before() > ts(4));
        // The newest version below the horizon survives; older ones and deletions do not.
        assert_eq!(m.read_at("k", m.gc_before()).value.as_deref(), Some("v2"));
        assert_eq!(m.versions["k"].len(), 1);
        assert!(!m.versions.contains_key("gone"));
        // A retry of a forgotten id is applied again (ids are kept for RETAIN_NS).
        assert!(!m.done.contains_key("x"));
        assert!(m.done.contains_key(&format!("f{}", GC_EVERY - 1)));
    }

    #[test]
    fn compares_guard_the_writes() {
        let mut m = Mvcc::default();
        m.apply(&put("a", 10, "k", "v1"));
        let cas = |id: &str, at: i64, expect: Option<Ts>| {
            Command::Txn(TxnCmd {
                id: id.into(),
                ts: ts(at),
                compares: vec![Compare {
                    key: "k".into(),
                    version: expect,
                }],
                writes: vec![Write {
                    key: "k".into(),
                    value: None,
                }],
                reads: vec![],
            })
        };
        assert!(matches!(
            m.apply(&cas("b", 20, None)),
            Applied::Committed {
                succeeded: false,
                ..
            }
        ));
        assert_eq!(m.latest("k").value.as_deref(), Some("v1"));
        assert!(matches!(
            m.apply(&cas("c", 30, Some(ts(10)))),
            Applied::Committed {
                succeeded: true,
                ..
            }
        ));
        let v = m.latest("k");
        assert_eq!((v.value, v.version), (None, Some(ts(30))));
    }

    fn part(id: &str, at: i64, k: &str, v: &str, compares: Vec<Compare>) -> Command {
        Command::Prepare {
            txn: TxnCmd {
                id: id.into(),
                ts: ts(at),
                compares,
                writes: vec![Write {
                    key: k.into(),
                    value: Some(v.into()),
                }],
                reads: vec![k.into()],
            },
            coordinator: 0,
            priority: ts(at),
        }
    }

    fn decide(id: &str, commit: Option<i64>, apply_writes: bool) -> Command {
        Command::Decide {
            id: id.into(),
            commit: commit.map(ts),
            apply_writes,
        }
    }

    #[test]
    fn a_prepared_part_locks_its_keys_until_the_commit_lands_at_its_timestamp() {
        let mut m = Mvcc::default();
        m.apply(&put("a", 10, "k", "v1"));
        let p = m.apply(&part("t/0", 20, "k", "v2", vec![]));
        assert!(matches!(p, Applied::Prepared { ts: t, compares_ok: true, .. } if t == ts(20)));
        // Idempotent: the same prepare again gets the same answer and changes nothing.
        assert_eq!(m.apply(&part("t/0", 25, "k", "v2", vec![])), p);
        assert_eq!(m.prepared().len(), 1);
        // Another transaction on the key is refused; one on another key is not.
        assert_eq!(
            m.apply(&put("b", 30, "k", "x")),
            Applied::Locked {
                key: "k".into(),
                by: "t/0".into(),
                holder_priority: ts(20),
            }
        );
        assert!(matches!(
            m.apply(&put("c", 31, "other", "x")),
            Applied::Committed { .. }
        ));
        // A read below the prepare timestamp is final; at or above it, it must wait.
        let keys = vec!["k".to_string()];
        assert_eq!(m.locked_at(&keys, ts(19)), None);
        assert_eq!(m.locked_at(&keys, ts(20)), Some(("k".into(), "t/0".into())));
        // The commit lands at its timestamp — below safe time 31, allowed because the key was
        // locked — releases the lock and moves safe time up to it at least.
        assert!(matches!(
            m.apply(&decide("t/0", Some(28), true)),
            Applied::Committed {
                succeeded: true,
                ..
            }
        ));
        assert_eq!(m.read_at("k", ts(27)).value.as_deref(), Some("v1"));
        assert_eq!(m.read_at("k", ts(28)).value.as_deref(), Some("v2"));
        assert_eq!(m.locked_at(&keys, ts(100)), None);
        assert!(m.prepared().is_empty());
        // A later abort of the same id gets the commit back: the first decision stands.
        assert!(matches!(
            m.apply(&decide("t/0", None, false)),
            Applied::Committed { .. }
        ));
        assert!(matches!(
            m.apply(&put("b", 40, "k", "x")),
            Applied::Committed {
                succeeded: true,
                ..
            }
        ));
    }

    #[test]
    fn an_abort_releases_the_locks_writes_nothing_and_refuses_a_late_prepare() {
        let mut m = Mvcc::default();
        m.apply(&part("t/0", 20, "k", "v", vec![]));
        assert_eq!(m.apply(&decide("t/0", None, false)), Applied::Aborted);
        assert_eq!(m.latest("k").version, None);
        assert!(m.prepared().is_empty());
        // An abort that comes before its prepare (a recovering participant gave up on it) is
        // remembered: the prepare that arrives later is refused and locks nothing.
        assert_eq!(m.apply(&decide("u/0", None, false)), Applied::Aborted);
        assert_eq!(
            m.apply(&part("u/0", 30, "k", "v", vec![])),
            Applied::Aborted
        );
        assert!(m.prepared().is_empty());
        assert_eq!(m.decision("u/0"), Some(&Applied::Aborted));
    }

    #[test]
    fn a_commit_below_the_prepare_or_without_one_is_refused_and_changes_nothing() {
        let mut m = Mvcc::default();
        m.apply(&part("t/0", 20, "k", "v", vec![]));
        assert!(matches!(
            m.apply(&decide("t/0", Some(19), true)),
            Applied::Refused { .. }
        ));
        assert!(matches!(
            m.apply(&decide("never", Some(50), true)),
            Applied::Refused { .. }
        ));
        assert_eq!(m.prepared().len(), 1);
        assert_eq!(m.decision("never"), None);
    }

    #[test]
    fn a_failed_compare_is_reported_at_prepare_and_commits_no_writes() {
        let mut m = Mvcc::default();
        m.apply(&put("a", 10, "k", "v1"));
        let guard = vec![Compare {
            key: "k".into(),
            version: None,
        }];
        assert!(matches!(
            m.apply(&part("t/0", 20, "k", "v2", guard)),
            Applied::Prepared {
                compares_ok: false,
                ..
            }
        ));
        // The coordinator decides to commit without writes (another part's compare failed,
        // or this one's): the timestamp is taken, nothing is written.
        assert!(matches!(
            m.apply(&decide("t/0", Some(21), false)),
            Applied::Committed {
                succeeded: false,
                ..
            }
        ));
        assert_eq!(m.latest("k").value.as_deref(), Some("v1"));
    }
}
