//! The pure core of TrueTime: no I/O, no clocks, no threads. Time and measurements are
//! arguments; decisions come out. The daemons (`timemaster`, `timed`), the SDK (`ttclient`) and
//! the deterministic fleet simulator (`bench`) all run this same code.
//!
//! * [`time`] — [`Timestamp`] and [`Span`]: `i64` nanoseconds with checked and saturating
//!   arithmetic.
//! * [`rate`] — [`Rate`]: frequency errors and drift bounds in parts per 10¹², rounded outward.
//! * [`interval`] — [`TTInterval`] (`after` / `before`) and [`ClockStatus`].
//! * [`leap`] — UTC labels (with `23:59:60`) ↔ the continuous timescale (24 h linear smear).
//! * [`transfer`] — two-way time transfer: offset, delay, honest offset interval.
//! * [`marzullo`] — interval selection tolerating `f` liars.
//! * [`disrupt`] — the one rule for raw-clock disruptions (suspend, stall, step).
//! * [`clock_model`] — the host's raw-clock → timescale model with ε growing with age.
//! * [`host`] — per-host selection among masters, frequency estimate with bounds, status.
//! * [`osc`] — seeded oscillator models for simulation.
//! * [`sock`] — chrony's SOCK refclock datagram codec.
//! * [`vmclock`] — the VMClock structure (`/dev/vmclock0`): decoding and the disruption rule.
//! * [`master_kind`] — [`MasterKind`]: what a master disciplines its time with, and its codes.
//! * [`ntp`] — time transfer on the NTPv4 wire: packet codec, master reply, client exchange.
//! * [`phc`] — a PTP hardware clock as a source: bracketed readings and its error bound.
//! * [`poll`] — how often a host polls: a fixed interval, or what the error budget asks for.
//! * [`tsc`] — the time-stamp counter against the raw clock, and ClockBound 3's view of it.
//!
//! **The invariant.** Every interval produced here under a trustworthy status contains true time
//! as long as the stated assumptions hold; every rounding widens.

// A silent truncation here is a wrong length on the wire or a wrong time: every narrowing cast
// is checked, or carries the bound that makes it exact.
#![warn(clippy::cast_possible_truncation)]
#![forbid(unsafe_code)]

pub mod clock_model;
pub mod clockbound;
pub mod disrupt;
pub mod host;
pub mod interval;
pub mod leap;
pub mod marzullo;
pub mod master_kind;
pub mod ntp;
pub mod osc;
pub mod phc;
pub mod poll;
pub mod rate;
pub mod sock;
pub mod time;
pub mod transfer;
pub mod tsc;
pub mod vmclock;

pub use clock_model::ClockModel;
pub use interval::{ClockStatus, EPSILON_BEYOND_MAX, IntervalError, TTInterval};
pub use leap::{LeapError, LeapSecond, LeapTable, UtcLabel};
pub use marzullo::{MarzulloError, Selection};
pub use master_kind::MasterKind;
pub use rate::{RAW_CLOCK_MAX_RATE, Rate};
pub use time::{NANOS_PER_SEC, RawReading, Span, Timestamp};
pub use transfer::{OffsetInterval, SyncMeasurement, SyncTimestamps, TransferError};
