//! A TrueTime-aware hybrid logical clock in the style of CockroachDB's `pkg/util/hlc`.
//!
//! A timestamp is `(wall ns, logical)` ordered lexicographically. `now()` returns a timestamp
//! greater than every one this clock issued or received; `update(remote)` merges a timestamp
//! from a message so causality is preserved; the logical counter is bounded by
//! [`LOGICAL_MAX`] and overflows into the wall part (1 ns later) instead of growing.
//!
//! ## Which end of the interval is the physical time
//!
//! **`latest`.** With `p = TT.now().latest`, `p ≥ true time` always, so every HLC timestamp is at
//! or above the true time at which it was issued, as Spanner's commit timestamps are
//! (`s ≥ TT.now().latest`). Using `earliest` would let a timestamp sit below true time, and a
//! reader at a later true time could then see it as "in the past" while it was still being
//! committed. The cost is that wall times run ahead of true time by up to 2ε.
//!
//! ## Max offset: fixed or live
//!
//! CockroachDB rejects a remote timestamp whose wall time is more than `max_offset` (500 ms by
//! default) ahead of the local clock: a node whose clock is that far ahead is broken and must not
//! drag everyone's HLC forward. With TrueTime the bound can follow the live ε instead:
//!
//! > A remote node that is honestly synchronized stamped `w = latest_r(T_send) ≤ T_send + 2ε_r`
//! > (its interval has width 2ε_r and contains `T_send`). We receive it at `T_recv ≥ T_send`,
//! > and our `latest_l ≥ T_recv`. Hence `w − latest_l ≤ 2ε_r`.
//!
//! So [`MaxOffset::Live`] rejects exactly the timestamps that **no** honestly synchronized sender
//! could have produced: `w − latest_l > 2ε_r`, with `ε_r` carried in the message (or, when the
//! sender did not say, the cluster-wide cap — timed's `max-epsilon`, beyond which no node calls
//! itself synchronized). That is safe — it never rejects an honest node — and far tighter than
//! 500 ms (microseconds to milliseconds), so a broken clock is caught sooner. It is also the right
//! width for read uncertainty windows: a write that truly finished before a read started has a
//! wall time at most `2ε_writer` above the reader's `latest`.

use crate::{TrueTime, TtError};
use std::sync::Mutex;
use thiserror::Error;
use ttcore::Span;

/// Largest logical counter; one more moves the wall time forward 1 ns instead.
pub const LOGICAL_MAX: u32 = u16::MAX as u32;

/// An HLC timestamp: wall nanoseconds on the TrueTime timescale, and a logical counter.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct HlcTimestamp {
    /// Wall time (ns).
    pub wall: i64,
    /// Logical counter (≤ [`LOGICAL_MAX`]).
    pub logical: u32,
}

impl HlcTimestamp {
    /// The next timestamp after this one (overflowing the counter into the wall time).
    pub fn next(self) -> HlcTimestamp {
        if self.logical >= LOGICAL_MAX {
            HlcTimestamp {
                wall: self.wall.saturating_add(1),
                logical: 0,
            }
        } else {
            HlcTimestamp {
                wall: self.wall,
                logical: self.logical + 1,
            }
        }
    }
}

/// How far ahead a remote timestamp may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxOffset {
    /// A fixed bound (CockroachDB's default is 500 ms).
    Fixed(Span),
    /// `2 × ε_remote` (see the module docs); `cap` stands in for `ε_remote` when the sender
    /// did not send its ε.
    Live {
        /// The cluster-wide ε cap.
        cap: Span,
    },
}

/// HLC errors.
#[derive(Debug, Error, Clone)]
pub enum HlcError {
    /// The remote wall time is further ahead than any correct clock could be.
    #[error("remote wall time {remote} is {ahead} ahead of our clock (allowed {allowed})")]
    RemoteTooFarAhead {
        /// Remote wall time (ns).
        remote: i64,
        /// How far ahead.
        ahead: Span,
        /// The limit.
        allowed: Span,
    },
    /// No physical time.
    #[error(transparent)]
    Clock(#[from] TtError),
}

/// Where the physical time comes from: `(latest ns, ε)` now.
pub trait Physical: Send + Sync {
    /// `TT.now().latest` and `TT.now().epsilon()`, or why not.
    fn latest_and_eps(&self) -> Result<(i64, Span), TtError>;
}

impl Physical for TrueTime {
    fn latest_and_eps(&self) -> Result<(i64, Span), TtError> {
        let i = self.now()?;
        Ok((i.latest().as_nanos(), i.epsilon()))
    }
}

impl<F: Fn() -> Result<(i64, Span), TtError> + Send + Sync> Physical for F {
    fn latest_and_eps(&self) -> Result<(i64, Span), TtError> {
        self()
    }
}

/// The clock. Thread-safe; the state is a small critical section (like CockroachDB's).
pub struct Hlc<P: Physical> {
    physical: P,
    max_offset: MaxOffset,
    last: Mutex<HlcTimestamp>,
}

impl<P: Physical> Hlc<P> {
    /// A clock over `physical` with `max_offset`.
    pub fn new(physical: P, max_offset: MaxOffset) -> Self {
        Hlc {
            physical,
            max_offset,
            last: Mutex::new(HlcTimestamp::default()),
        }
    }

    /// The physical source.
    pub fn physical(&self) -> &P {
        &self.physical
    }

    /// Our current ε (to send along with timestamps for the live mode).
    pub fn epsilon(&self) -> Result<Span, TtError> {
        self.physical.latest_and_eps().map(|x| x.1)
    }

    /// A timestamp greater than every timestamp issued or received so far, with wall ≥ latest.
    pub fn now(&self) -> Result<HlcTimestamp, HlcError> {
        let (p, _) = self.physical.latest_and_eps()?;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let t = if p > last.wall {
            HlcTimestamp {
                wall: p,
                logical: 0,
            }
        } else {
            last.next()
        };
        *last = t;
        Ok(t)
    }

    /// Merges a remote timestamp (with the sender's ε, if it sent one) and returns a timestamp
    /// greater than both it and everything before. Rejects (and does not merge) a remote wall
    /// time beyond the max offset.
    pub fn update(
        &self,
        remote: HlcTimestamp,
        remote_eps: Option<Span>,
    ) -> Result<HlcTimestamp, HlcError> {
        let (p, _) = self.physical.latest_and_eps()?;
        let allowed = match self.max_offset {
            MaxOffset::Fixed(d) => d,
            MaxOffset::Live { cap } => {
                let e = remote_eps.unwrap_or(cap).min(cap).max(Span::ZERO);
                Span::from_nanos(e.as_nanos().saturating_mul(2))
            }
        };
        let ahead = Span::from_nanos(remote.wall.saturating_sub(p));
        if ahead > allowed {
            return Err(HlcError::RemoteTooFarAhead {
                remote: remote.wall,
                ahead,
                allowed,
            });
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let wall = p.max(last.wall).max(remote.wall);
        let t = if wall == last.wall && wall == remote.wall {
            HlcTimestamp {
                wall,
                logical: last.logical.max(remote.logical),
            }
            .next()
        } else if wall == last.wall {
            last.next()
        } else if wall == remote.wall {
            remote.next()
        } else {
            HlcTimestamp { wall, logical: 0 }
        };
        *last = t;
        Ok(t)
    }

    /// The read-uncertainty window for a read at `ts` under this clock's max offset: values with
    /// wall times in `(ts.wall, ts.wall + window]` may have been written before the read began.
    pub fn uncertainty_window(&self, remote_eps_cap: Option<Span>) -> Span {
        match self.max_offset {
            MaxOffset::Fixed(d) => d,
            MaxOffset::Live { cap } => Span::from_nanos(
                remote_eps_cap
                    .unwrap_or(cap)
                    .min(cap)
                    .as_nanos()
                    .saturating_mul(2),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    /// A physical clock we move by hand; `latest` = truth + skew.
    #[derive(Clone)]
    struct Manual(Arc<AtomicI64>, i64, Span);
    impl Physical for Manual {
        fn latest_and_eps(&self) -> Result<(i64, Span), TtError> {
            Ok((self.0.load(Ordering::Relaxed) + self.1, self.2))
        }
    }

    fn clock(skew: i64, eps: Span, mo: MaxOffset) -> (Arc<AtomicI64>, Hlc<Manual>) {
        let t = Arc::new(AtomicI64::new(1_000_000));
        (t.clone(), Hlc::new(Manual(t, skew, eps), mo))
    }

    #[test]
    fn logical_overflows_into_wall() {
        let (_, h) = clock(
            0,
            Span::from_micros(1),
            MaxOffset::Fixed(Span::from_millis(500)),
        );
        let first = h.now().unwrap();
        let mut t = first;
        for _ in 0..(LOGICAL_MAX as usize + 5) {
            let n = h.now().unwrap();
            assert!(n > t);
            assert!(n.logical <= LOGICAL_MAX);
            t = n;
        }
        assert_eq!(t.wall, first.wall + 1);
    }

    #[test]
    fn live_max_offset_rejects_what_no_honest_sender_could_send() {
        let eps = Span::from_micros(100);
        let (_, h) = clock(
            0,
            eps,
            MaxOffset::Live {
                cap: Span::from_millis(10),
            },
        );
        let (p, _) = h.physical().latest_and_eps().unwrap();
        // An honest sender with ε 100 µs can be up to 200 µs ahead of our latest.
        assert!(
            h.update(
                HlcTimestamp {
                    wall: p + 200_000,
                    logical: 3
                },
                Some(eps)
            )
            .is_ok()
        );
        let e = h
            .update(
                HlcTimestamp {
                    wall: p + 200_001 + 200_000,
                    logical: 0,
                },
                Some(eps),
            )
            .unwrap_err();
        assert!(matches!(e, HlcError::RemoteTooFarAhead { .. }), "{e}");
        // Without ε, the cap stands in.
        assert!(
            h.update(
                HlcTimestamp {
                    wall: p + 15_000_000,
                    logical: 0
                },
                None
            )
            .is_ok()
        );
        assert!(
            h.update(
                HlcTimestamp {
                    wall: p + 25_000_000,
                    logical: 0
                },
                None
            )
            .is_err()
        );
        // Fixed mode: 500 ms.
        let (_, f) = clock(0, eps, MaxOffset::Fixed(Span::from_millis(500)));
        assert!(
            f.update(
                HlcTimestamp {
                    wall: p + 400_000_000,
                    logical: 0
                },
                None
            )
            .is_ok()
        );
        assert!(
            f.update(
                HlcTimestamp {
                    wall: p + 600_000_000,
                    logical: 0
                },
                None
            )
            .is_err()
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Tick(i64),
        Send(u8, u8),
        Deliver(usize),
        Local(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0i64..5_000).prop_map(Op::Tick),
            (0u8..3, 0u8..3).prop_map(|(a, b)| Op::Send(a, b)),
            (0usize..16).prop_map(Op::Deliver),
            (0u8..3).prop_map(Op::Local),
        ]
    }

    proptest! {
        // Three nodes whose `latest` runs ahead of truth by different honest amounts (within
        // 2ε); messages delivered in random order. Each node's timestamps are strictly
        // increasing; every receive is after its send; logical stays bounded; honest messages
        // are never rejected in live mode.
        #[test]
        fn monotone_causal_bounded(ops in prop::collection::vec(op(), 1..300), skews in prop::array::uniform3(0i64..200)) {
            let truth = Arc::new(AtomicI64::new(1_000_000));
            let eps = Span::from_nanos(100);
            let nodes: Vec<Hlc<Manual>> = skews.iter().map(|s| Hlc::new(Manual(truth.clone(), *s, eps), MaxOffset::Live { cap: Span::from_micros(1) })).collect();
            let mut last: Vec<Option<HlcTimestamp>> = vec![None; 3];
            let mut inflight: Vec<(u8, HlcTimestamp)> = Vec::new();
            for o in ops {
                match o {
                    Op::Tick(d) => { truth.fetch_add(d, Ordering::Relaxed); }
                    Op::Local(n) | Op::Send(n, _) => {
                        let t = nodes[n as usize].now().unwrap();
                        if let Some(p) = last[n as usize] { prop_assert!(t > p); }
                        prop_assert!(t.logical <= LOGICAL_MAX);
                        last[n as usize] = Some(t);
                        if let Op::Send(_, to) = o { inflight.push((to, t)); }
                    }
                    Op::Deliver(i) => {
                        if inflight.is_empty() { continue; }
                        let (to, sent) = inflight.remove(i % inflight.len());
                        let r = nodes[to as usize].update(sent, Some(eps));
                        prop_assert!(r.is_ok(), "honest message rejected: {r:?}");
                        let r = r.unwrap();
                        prop_assert!(r > sent, "receive not after send");
                        if let Some(p) = last[to as usize] { prop_assert!(r > p); }
                        prop_assert!(r.logical <= LOGICAL_MAX);
                        last[to as usize] = Some(r);
                    }
                }
            }
        }

        // A remote more than the allowed offset ahead is always rejected, and does not move the
        // clock.
        #[test]
        fn too_far_ahead_rejected(ahead in 0i64..10_000_000, eps_us in 1i64..1000) {
            let eps = Span::from_micros(eps_us);
            let (_, h) = clock(0, eps, MaxOffset::Live { cap: Span::from_millis(5) });
            let before = h.now().unwrap();
            let (p, _) = h.physical().latest_and_eps().unwrap();
            let r = h.update(HlcTimestamp { wall: p + ahead, logical: 0 }, Some(eps));
            let allowed = 2 * eps_us.min(5_000) * 1_000;
            prop_assert_eq!(r.is_err(), ahead > allowed);
            if r.is_err() {
                prop_assert_eq!(h.now().unwrap(), before.next());
            }
        }
    }
}
