//! A history checker for the store: per-key linearizability and external consistency of
//! commit timestamps, over concurrent client histories with real-time (true-time) stamps.
//!
//! Each client records, per operation, when it was invoked and when it completed on a common
//! clock that stands for true time (tests use the host's `CLOCK_REALTIME`, which is also what the
//! simulated TrueTime sources are built on). Writes carry unique values per key, and reads
//! report the version (commit timestamp) of what they saw, so the version order is the witness
//! order for each key. The checker reports every violation of:
//!
//! * **commit order** — a write that completed before another began must have the smaller
//!   commit timestamp (Spanner's external consistency, across all keys);
//! * **write → read** — a read that began after a write completed must see it or a later version;
//! * **read → read** — a read that began after another read of the key completed must not see
//!   an older version;
//! * **no future reads** — a read must not see a value whose write began after the read ended;
//! * **integrity** — a read's (value, version) must be one that some write produced;
//! * **snapshot** — a read at timestamp `r` that saw version `v` must not have skipped an
//!   acknowledged write with a timestamp in `(v, r]`;
//! * **atomicity** — a transaction is all or nothing across keys and shards: once a read saw
//!   one of its writes (so it committed, at the version seen), no read of another of its keys
//!   at or after that version may miss it. This binds writes whose outcome the client never
//!   learned, which the snapshot rule cannot (their timestamp comes from the read that saw
//!   them).
//!
//! Writes whose outcome is unknown (the client gave up) may or may not have happened; they are
//! only used to explain values that reads saw.

use crate::mvcc::Ts;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// What an operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Wrote `value` to `key` (values are unique per key).
    Write {
        /// Key.
        key: String,
        /// Value written.
        value: String,
    },
    /// Read `key` at timestamp `at`, seeing `observed` = (value, version), or nothing.
    Read {
        /// Key.
        key: String,
        /// Read timestamp (`None` if the store did not say).
        at: Option<Ts>,
        /// What was seen: `None` for "never written", `Some((None, v))` for a deletion.
        observed: Option<(Option<String>, Ts)>,
    },
}

/// One operation in a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// Which client (for messages).
    pub client: u32,
    /// What it did.
    pub kind: OpKind,
    /// True time at invocation (ns).
    pub invoke_ns: i64,
    /// True time at completion (ns); `None` = outcome unknown (writes only; unknown reads are
    /// simply left out).
    pub complete_ns: Option<i64>,
    /// Commit timestamp (writes whose outcome is known).
    pub ts: Option<Ts>,
    /// The transaction the op belongs to, when it touched several keys (the writes of one
    /// multi-key transaction share it); `None` for a single-key op.
    pub txn: Option<u64>,
}

/// A violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    /// Which rule.
    pub rule: &'static str,
    /// Details (ops, times, timestamps).
    pub detail: String,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

/// Checks a history; returns every anomaly found (empty: consistent).
// The checker's passes over one history (index the writes, then check every read: integrity,
// no future reads, no acknowledged write skipped): kept together so the checks share one index.
pub fn check(history: &[Op]) -> Vec<Anomaly> {
    let mut out = Vec::new();
    // Writes by (key, value), and the acknowledged ones per key in timestamp order.
    let mut by_value: HashMap<(&str, &str), &Op> = HashMap::new();
    let mut acked: BTreeMap<&str, Vec<(Ts, &Op)>> = BTreeMap::new();
    for op in history {
        if let OpKind::Write { key, value } = &op.kind {
            if by_value.insert((key, value), op).is_some() {
                out.push(Anomaly {
                    rule: "history",
                    detail: format!(
                        "value {value:?} written to {key:?} twice; values must be unique"
                    ),
                });
            }
            if let (Some(_), Some(ts)) = (op.complete_ns, op.ts) {
                acked.entry(key).or_default().push((ts, op));
            }
        }
    }
    for v in acked.values_mut() {
        v.sort_by_key(|(ts, _)| *ts);
    }

    commit_order(history, &mut out);

    for op in history {
        let OpKind::Read { key, at, observed } = &op.kind else {
            continue;
        };
        let Some(done) = op.complete_ns else { continue };
        let seen = observed.as_ref().map(|(_, v)| *v);
        // Integrity and no future reads.
        // (A deletion carries no value to match; only the store's own deletes exist here.)
        if let Some((Some(value), version)) = observed {
            match by_value.get(&(key.as_str(), value.as_str())) {
                None => out.push(Anomaly {
                    rule: "integrity",
                    detail: format!(
                        "client {} read {key:?} = {value:?}, which nobody wrote",
                        op.client
                    ),
                }),
                Some(w) => {
                    if w.ts.is_some_and(|t| t != *version) {
                        out.push(Anomaly {
                                rule: "integrity",
                                detail: format!(
                                    "client {} read {key:?} = {value:?} at version {version:?}, but it was committed at {:?}",
                                    op.client, w.ts
                                ),
                            });
                    }
                    if w.invoke_ns > done {
                        out.push(Anomaly {
                                rule: "no future reads",
                                detail: format!(
                                    "client {} read {key:?} = {value:?} and finished at {done}, before its write began at {}",
                                    op.client, w.invoke_ns
                                ),
                            });
                    }
                }
            }
        }
        // Snapshot: no acknowledged write skipped in (seen, at].
        if let (Some(at), Some(ws)) = (at, acked.get(key.as_str())) {
            if let Some((t, w)) = ws.iter().rev().find(|(t, _)| *t <= *at && Some(*t) > seen) {
                out.push(Anomaly {
                    rule: "snapshot",
                    detail: format!(
                        "client {} read {key:?} at {at:?} and saw version {seen:?}, skipping the write of {:?} at {t:?}",
                        op.client,
                        write_value(w)
                    ),
                });
            }
        }
    }

    per_key_real_time(history, &mut out);
    atomicity(history, &mut out);
    out
}

/// A multi-key write whose outcome is unknown but which some read saw has committed at the
/// version seen: every read of its other keys at or after that version must see it too.
fn atomicity(history: &[Op], out: &mut Vec<Anomaly>) {
    // (key, value) → transaction, for unknown-outcome writes of multi-key transactions.
    let mut unknown: HashMap<(&str, &str), u64> = HashMap::new();
    // key → (transaction, value) of those writes.
    let mut by_key: HashMap<&str, Vec<(u64, &str)>> = HashMap::new();
    for op in history {
        if let (OpKind::Write { key, value }, Some(t), None) = (&op.kind, op.txn, op.ts) {
            unknown.insert((key, value), t);
            by_key.entry(key).or_default().push((t, value));
        }
    }
    // Transaction → the version a read saw one of its writes at, and that read's key.
    let mut happened: HashMap<u64, (Ts, &str)> = HashMap::new();
    for op in history {
        if let OpKind::Read {
            key,
            observed: Some((Some(value), v)),
            ..
        } = &op.kind
        {
            if let Some(t) = unknown.get(&(key.as_str(), value.as_str())) {
                happened.entry(*t).or_insert((*v, key));
            }
        }
    }
    for op in history {
        let OpKind::Read {
            key,
            at: Some(at),
            observed,
        } = &op.kind
        else {
            continue;
        };
        let seen = observed.as_ref().map(|(_, v)| *v);
        for (t, value) in by_key.get(key.as_str()).into_iter().flatten() {
            if let Some((ts, witness)) = happened.get(t) {
                if ts <= at && seen < Some(*ts) {
                    out.push(Anomaly {
                        rule: "atomicity",
                        detail: format!(
                            "client {} read {key:?} at {at:?} and saw {seen:?}, missing {value:?} of transaction {t}, which a read of {witness:?} saw committed at {ts:?}",
                            op.client
                        ),
                    });
                }
            }
        }
    }
}

fn write_value(op: &Op) -> &str {
    match &op.kind {
        OpKind::Write { value, .. } => value,
        OpKind::Read { .. } => "",
    }
}

/// Completed writes: one that completed before another began has the smaller timestamp.
fn commit_order(history: &[Op], out: &mut Vec<Anomaly>) {
    let mut writes: Vec<(&Op, i64, Ts)> = history
        .iter()
        .filter(|o| matches!(o.kind, OpKind::Write { .. }))
        .filter_map(|o| Some((o, o.complete_ns?, o.ts?)))
        .collect();
    let mut by_invoke: Vec<&(&Op, i64, Ts)> = writes.iter().collect();
    by_invoke.sort_by_key(|(o, _, _)| o.invoke_ns);
    let mut by_done = writes.clone();
    by_done.sort_by_key(|(_, done, _)| *done);
    // Sweep: the largest timestamp among writes completed before each invocation.
    let mut i = 0;
    let mut max: Option<(Ts, &Op)> = None;
    for (b, _, tb) in by_invoke {
        while i < by_done.len() && by_done[i].1 < b.invoke_ns {
            let (a, _, ta) = by_done[i];
            if max.is_none_or(|(m, _)| ta > m) {
                max = Some((ta, a));
            }
            i += 1;
        }
        if let Some((ta, a)) = max {
            if ta >= *tb {
                out.push(Anomaly {
                    rule: "commit order",
                    detail: format!(
                        "client {} wrote {:?} at {ta:?} and finished at {:?}, before client {} began writing {:?} at {:?} (t={}), which got the same or a smaller timestamp {tb:?}",
                        a.client,
                        write_value(a),
                        a.complete_ns,
                        b.client,
                        write_value(b),
                        b.ts,
                        b.invoke_ns
                    ),
                });
            }
        }
    }
    writes.clear();
}

/// Sweep position in a key's floor list and the highest floor so far (version, index).
type Cursor = (usize, Option<(Ts, usize)>);

/// Per key: reads see at least every version acknowledged (or read) before they began.
fn per_key_real_time(history: &[Op], out: &mut Vec<Anomaly>) {
    // (key) → completed events that establish a floor: (done, floor version, description).
    let mut floors: HashMap<&str, Vec<(i64, Ts, String)>> = HashMap::new();
    for op in history {
        let Some(done) = op.complete_ns else { continue };
        match &op.kind {
            OpKind::Write { key, value } => {
                if let Some(ts) = op.ts {
                    floors.entry(key).or_default().push((
                        done,
                        ts,
                        format!("client {}'s write of {value:?} at {ts:?}", op.client),
                    ));
                }
            }
            OpKind::Read {
                key,
                observed: Some((_, v)),
                ..
            } => {
                floors.entry(key).or_default().push((
                    done,
                    *v,
                    format!("client {}'s read of version {v:?}", op.client),
                ));
            }
            OpKind::Read { .. } => {}
        }
    }
    for f in floors.values_mut() {
        f.sort_by_key(|(done, _, _)| *done);
    }
    let mut reads: Vec<&Op> = history
        .iter()
        .filter(|o| matches!(o.kind, OpKind::Read { .. }) && o.complete_ns.is_some())
        .collect();
    reads.sort_by_key(|o| o.invoke_ns);
    let mut cursor: HashMap<&str, Cursor> = HashMap::new();
    for r in reads {
        let OpKind::Read { key, observed, .. } = &r.kind else {
            continue;
        };
        let Some(f) = floors.get(key.as_str()) else {
            continue;
        };
        let (i, max) = cursor.entry(key).or_insert((0, None));
        while *i < f.len() && f[*i].0 < r.invoke_ns {
            if max.is_none_or(|(m, _)| f[*i].1 > m) {
                *max = Some((f[*i].1, *i));
            }
            *i += 1;
        }
        let seen = observed.as_ref().map(|(_, v)| *v);
        if let Some((floor, j)) = *max {
            if seen < Some(floor) {
                out.push(Anomaly {
                    rule: if f[j].2.contains("write") { "write -> read" } else { "read -> read" },
                    detail: format!(
                        "client {} read {key:?} starting at {} and saw version {seen:?}, but {} had already finished at {}",
                        r.client, r.invoke_ns, f[j].2, f[j].0
                    ),
                });
            }
        }
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
    fn w(client: u32, key: &str, value: &str, inv: i64, done: i64, at: i64) -> Op {
        Op {
            client,
            kind: OpKind::Write {
                key: key.into(),
                value: value.into(),
            },
            invoke_ns: inv,
            complete_ns: Some(done),
            ts: Some(ts(at)),
            txn: None,
        }
    }
    fn r(client: u32, key: &str, seen: Option<(&str, i64)>, inv: i64, done: i64, at: i64) -> Op {
        Op {
            client,
            kind: OpKind::Read {
                key: key.into(),
                at: Some(ts(at)),
                observed: seen.map(|(v, t)| (Some(v.to_string()), ts(t))),
            },
            invoke_ns: inv,
            complete_ns: Some(done),
            ts: None,
            txn: None,
        }
    }
    fn rules(h: &[Op]) -> Vec<&'static str> {
        check(h).into_iter().map(|a| a.rule).collect()
    }

    #[test]
    fn a_linearizable_history_passes() {
        let h = vec![
            w(1, "k", "a", 0, 10, 5),
            r(2, "k", Some(("a", 5)), 11, 20, 15),
            // Concurrent with the read of b: may or may not see it.
            w(1, "k", "b", 21, 40, 30),
            r(2, "k", Some(("a", 5)), 22, 25, 24),
            r(3, "k", Some(("b", 30)), 35, 45, 38),
            w(3, "j", "x", 46, 50, 48),
        ];
        assert_eq!(check(&h), vec![]);
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_caught() {
        // The write finished at 10 with timestamp 50 (no commit wait, clock ahead); a read
        // at 20 reading at timestamp 25 misses it.
        let h = vec![w(1, "k", "a", 0, 10, 50), r(2, "k", None, 20, 30, 25)];
        assert_eq!(rules(&h), vec!["write -> read"]);
    }

    #[test]
    fn commit_timestamps_out_of_real_time_order_are_caught() {
        let h = vec![w(1, "k", "a", 0, 10, 50), w(2, "j", "b", 20, 30, 40)];
        assert_eq!(rules(&h), vec!["commit order"]);
    }

    #[test]
    fn going_back_in_time_between_reads_is_caught() {
        let h = vec![
            w(1, "k", "a", 0, 10, 5),
            w(1, "k", "b", 11, 100, 50),
            r(2, "k", Some(("b", 50)), 20, 30, 60),
            r(3, "k", Some(("a", 5)), 40, 45, 45),
        ];
        assert_eq!(rules(&h), vec!["read -> read"]);
    }

    #[test]
    fn invented_values_future_reads_and_skipped_versions_are_caught() {
        let h = vec![r(1, "k", Some(("zz", 5)), 0, 10, 10)];
        assert_eq!(rules(&h), vec!["integrity"]);
        let h = vec![
            w(1, "k", "a", 20, 30, 25),
            r(2, "k", Some(("a", 25)), 0, 10, 26),
        ];
        assert_eq!(rules(&h), vec!["no future reads"]);
        let h = vec![
            w(1, "k", "a", 0, 10, 5),
            w(1, "k", "b", 11, 15, 12),
            // Concurrent with nothing it skipped in real time, but its own snapshot is wrong.
            r(2, "k", Some(("a", 5)), 9, 20, 14),
        ];
        assert_eq!(rules(&h), vec!["snapshot"]);
    }

    #[test]
    fn unknown_outcome_writes_explain_reads_but_bind_nothing() {
        let mut lost = w(1, "k", "a", 0, 0, 0);
        lost.complete_ns = None;
        lost.ts = None;
        let h = vec![
            lost,
            r(2, "k", Some(("a", 7)), 50, 60, 70),
            r(3, "k", None, 1, 5, 3),
        ];
        assert_eq!(check(&h), vec![]);
    }

    /// A two-key write whose outcome is unknown: both halves, one transaction.
    fn unknown_pair(value: &str) -> Vec<Op> {
        ["k1", "k2"]
            .iter()
            .map(|k| {
                let mut op = w(1, k, value, 0, 0, 0);
                op.complete_ns = None;
                op.ts = None;
                op.txn = Some(7);
                op
            })
            .collect()
    }

    #[test]
    fn a_transaction_seen_on_one_key_and_missed_on_another_is_caught() {
        // Both keys read at 20: k1 sees the write (committed at 10), k2 misses it.
        let mut h = unknown_pair("t");
        h.push(r(2, "k1", Some(("t", 10)), 30, 40, 20));
        h.push(r(2, "k2", None, 30, 40, 20));
        assert_eq!(rules(&h), vec!["atomicity"]);
        // Seen on both, or missed by a read below its timestamp: consistent.
        let mut ok = unknown_pair("t");
        ok.push(r(2, "k1", Some(("t", 10)), 30, 40, 20));
        ok.push(r(2, "k2", Some(("t", 10)), 30, 40, 20));
        ok.push(r(3, "k2", None, 1, 5, 9));
        assert_eq!(check(&ok), vec![]);
    }
}
