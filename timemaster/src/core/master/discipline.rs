//! The master's discipline as one state: what its time rests on, each state carrying the data
//! its ε is computed from, so no state can lack an error term (there is no default to fall back
//! on, least of all zero).
//!
//! # Transitions
//!
//! Every change of state is one of these edges, made in the function named (each has a unit
//! test in `transitions.rs`):
//!
//! | from | to | when | where | events |
//! |---|---|---|---|---|
//! | `Acquiring` | `Gps` | three pulses whose labels step with the local clock | `startup_pulse` | `GpsLocked` |
//! | `Acquiring` | `PeerTime` | armageddon: a locked atomic pulse with a usable peer offer | `armageddon_start` | `TimeFromPeers` |
//! | `Gps` | `Holdover` (atomic) | no accepted pulse for `loss-timeout`, or GPS refused; atomic locked and calibrated | `enter_holdover` | `HoldoverEntered` |
//! | `Gps` | `Holdover` (quartz) | the same, without a usable atomic clock | `enter_holdover` | `HoldoverEntered` |
//! | `Holdover` (atomic) | `Holdover` (quartz) | the atomic clock unlocks or alarms (GPS master) | `fall_back_to_quartz` | `HoldoverOnQuartz` |
//! | `Holdover` | `Gps` | a GPS pulse inside the ε the master can vouch for | `gps_labelled` | `GpsReacquired` |
//! | any | `Disrupted` | a clock disruption: nothing measured before is kept | `on_disruption` | `ClockDisrupted` |
//! | `Disrupted` | `Gps` | three pulses whose labels step with the local clock | `startup_pulse` | `GpsLocked`, `Resynchronized` |
//! | `Disrupted` | `PeerTime` | armageddon: a fresh peer offer and a locked atomic pulse | `armageddon_start` | `TimeFromPeers`, `Resynchronized` |
//!
//! Nothing else moves the state: the cross-check (eviction) and the checks on ε and frequency
//! decide the *status* on top of it (`eps.rs`), not the discipline.

use super::{AtomicParams, GpsParams, Reference};
use crate::core::kalman::Kalman;
use ttcore::{OffsetInterval, Rate, Span, Timestamp};

/// What the master's time rests on, with what its ε needs.
#[derive(Clone, Debug)]
pub(super) enum Discipline {
    /// No model yet: a GPS master pairs its first pulses, an armageddon master collects peer
    /// offers.
    Acquiring(Acquisition),
    /// A clock disruption dropped everything measured against the old raw clock; the status is
    /// disrupted until the reference is acquired again.
    Disrupted(Acquisition),
    /// Locked on GPS pulses: ε = calibration + qErr + pulse jitter + filter.
    Gps {
        /// The filter.
        kf: Kalman,
        /// The receiver's error terms.
        gps: GpsParams,
    },
    /// A GPS master after GPS was lost or refused: ε grows from what it was at the loss, at the
    /// holdover reference's drift bound.
    Holdover {
        /// The filter (coasting on quartz; following the atomic pulses on the atomic clock).
        kf: Kalman,
        /// What it holds over on.
        on: HoldoverOn,
        /// The ε growth since the loss.
        seg: Holdover,
    },
    /// An armageddon master on its atomic clock since it took its peers' time:
    /// ε = the transfer's error + atomic jitter + atomic drift since.
    PeerTime {
        /// The filter (following the atomic pulses).
        kf: Kalman,
        /// The atomic clock's error terms.
        atomic: AtomicParams,
        /// Raw reading of the pulse the time was taken on.
        at: i64,
        /// ε then (ns).
        eps_ns: f64,
    },
}

/// What a master holds over on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum HoldoverOn {
    /// The atomic clock, with its error terms.
    Atomic(AtomicParams),
    /// The local quartz alone.
    Quartz,
}

/// What is gathered while acquiring: start-up pulses (GPS) and peer offers (armageddon).
#[derive(Clone, Debug, Default)]
pub(super) struct Acquisition {
    /// Labelled pulses so far, each stepping with the previous one.
    pub(super) startup: Vec<(i64, Timestamp)>,
    /// Peer time offered so far.
    pub(super) offers: PeerOffers,
}

/// The peer time offered so far (each an offset interval, timescale − raw, at a raw reading).
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct PeerOffers {
    /// An offer narrow enough to take (the latest).
    pub(super) usable: Option<(i64, OffsetInterval)>,
    /// Offers too wide to take, so far.
    pub(super) too_wide: u32,
    /// The narrowest of those.
    pub(super) best: Option<(i64, OffsetInterval)>,
    /// The first too-wide offer has been reported.
    pub(super) reported: bool,
}

/// ε growth in holdover: piecewise linear from the ε at the loss.
#[derive(Clone, Debug)]
pub(super) struct Holdover {
    /// Raw reading when the reference was lost (the last accepted reference pulse).
    pub(super) since_raw: i64,
    /// ε accumulated at `seg_raw` (ns).
    pub(super) seg_eps_ns: f64,
    /// Start of the current growth segment.
    pub(super) seg_raw: i64,
    /// Growth rate of the current segment.
    pub(super) rate: Rate,
}

impl Holdover {
    /// ε accumulated by `raw` (ns).
    pub(super) fn eps_at(&self, raw: i64) -> f64 {
        self.seg_eps_ns
            + self
                .rate
                .bound_over(Span::from_nanos((raw - self.seg_raw).max(0)))
                .as_nanos() as f64
    }

    /// From `raw` on, grow at `rate`.
    pub(super) fn switch_rate(&mut self, raw: i64, rate: Rate) {
        self.seg_eps_ns = self.eps_at(raw);
        self.seg_raw = raw;
        self.rate = rate;
    }
}

impl Discipline {
    /// The filter, once there is a model.
    pub(super) fn kf(&self) -> Option<&Kalman> {
        match self {
            Discipline::Acquiring(_) | Discipline::Disrupted(_) => None,
            Discipline::Gps { kf, .. }
            | Discipline::Holdover { kf, .. }
            | Discipline::PeerTime { kf, .. } => Some(kf),
        }
    }

    /// The filter, mutably.
    pub(super) fn kf_mut(&mut self) -> Option<&mut Kalman> {
        match self {
            Discipline::Acquiring(_) | Discipline::Disrupted(_) => None,
            Discipline::Gps { kf, .. }
            | Discipline::Holdover { kf, .. }
            | Discipline::PeerTime { kf, .. } => Some(kf),
        }
    }

    /// What is being gathered, while acquiring (first time or after a disruption).
    pub(super) fn acquisition(&self) -> Option<&Acquisition> {
        match self {
            Discipline::Acquiring(a) | Discipline::Disrupted(a) => Some(a),
            _ => None,
        }
    }

    /// The same, mutably.
    pub(super) fn acquisition_mut(&mut self) -> Option<&mut Acquisition> {
        match self {
            Discipline::Acquiring(a) | Discipline::Disrupted(a) => Some(a),
            _ => None,
        }
    }

    /// What the time rests on, as published.
    pub(super) fn reference(&self) -> Reference {
        match self {
            Discipline::Acquiring(_) | Discipline::Disrupted(_) => Reference::None,
            Discipline::Gps { .. } => Reference::Gps,
            Discipline::Holdover {
                on: HoldoverOn::Atomic(_),
                ..
            }
            | Discipline::PeerTime { .. } => Reference::Atomic,
            Discipline::Holdover {
                on: HoldoverOn::Quartz,
                ..
            } => Reference::Quartz,
        }
    }

    /// The name of the state, for tests and logs.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Discipline::Acquiring(_) => "acquiring",
            Discipline::Disrupted(_) => "disrupted",
            Discipline::Gps { .. } => "gps",
            Discipline::Holdover {
                on: HoldoverOn::Atomic(_),
                ..
            } => "holdover-atomic",
            Discipline::Holdover {
                on: HoldoverOn::Quartz,
                ..
            } => "holdover-quartz",
            Discipline::PeerTime { .. } => "peer-time",
        }
    }
}
