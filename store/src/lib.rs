//! # ttstore — a replicated MVCC key-value store with Spanner commit-wait
//!
//! The demo that gives the SDK its reason to exist: a three-node [openraft] cluster whose
//! commit timestamps come from TrueTime, so that it is **externally consistent** — if a
//! transaction commits before another starts (in true time), it has the smaller timestamp, and
//! every read that starts after a write was acknowledged sees it — without the nodes talking
//! about time at all. For comparison it also runs in **HLC mode** (CockroachDB's approach): no
//! commit wait, but reads carry an uncertainty window and restart when they meet a value in it.
//!
//! * [`ap`] — the multi-leader (AP) side: LWW registers ordered by TrueTime with overlaps
//!   reported, version-vector siblings, and the PN-counter and OR-set CRDTs.
//! * [`apnode`] — `ttstore ap-node`, the AP mode as a running service: every node accepts
//!   writes, logs them durably, and replicates them to the others by pull.
//! * [`mvcc`] — the replicated state machine (pure): versions by commit timestamp, safe time,
//!   exactly-once retries.
//! * [`raft`] — openraft types, redb log storage (fsync before acknowledging), the state
//!   machine, and the tonic transport.
//! * [`node`] — shards (one Raft group each, every node a replica of all) and two-phase commit
//!   across them with TrueTime timestamps; timestamp choice, commit wait overlapped with
//!   replication, closed timestamps
//!   (in the future in global-table mode, so every replica serves strong reads locally), the
//!   clock quarantine, and the reads: `strong`, `snapshot`, `bounded-staleness`, `session`.
//! * [`client`] — leader discovery, redirects, retries with the same request id.
//! * [`checker`] — the history checker (linearizability / external consistency).
//! * [`region`] — regions and the delays between them, applied to every message that crosses one.
//! * [`workload`], [`cluster`] — concurrent clients and local clusters for tests and `ttbench`.
//!
//! ## What each consistency level guarantees
//!
//! | level | served by | reads at | guarantee |
//! |---|---|---|---|
//! | `strong` (TrueTime) | any replica | `TT.now().latest`, after safe time reaches it | linearizable |
//! | `strong` (HLC) | the leader (timestamp from the receiving node) | HLC time, restarted past uncertain values | linearizable while clock offsets stay below the max offset |
//! | `snapshot` | any replica | the given timestamp | a consistent snapshot (repeatable) |
//! | `bounded-staleness` | any replica | the replica's safe time | consistent, at most `max_staleness` old |
//! | `session` | any replica | ≥ the session token | read-your-writes, monotonic reads |
//!
//! The argument for `strong` in TrueTime mode: a write acknowledged at true time `t_a` has
//! `s < t_a` (commit wait); a read starting later reads at `r = TT.now().latest ≥ true time > s`
//! and waits until every commit at or below `r` is applied, so it sees the write. A strong read
//! never returns a version whose commit time has not certainly passed (it waits for
//! `TT.after(v)`), so a later strong read — whose `r` exceeds true time — cannot miss what an
//! earlier one saw.
//!
//! [openraft]: https://docs.rs/openraft

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ap;
pub mod apnode;
pub mod checker;
pub mod client;
pub mod cluster;
pub mod mvcc;
pub mod network;
pub mod node;
pub mod raft;
pub mod region;
pub mod workload;
