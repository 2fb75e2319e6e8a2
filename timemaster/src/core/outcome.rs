//! What the master core says, as data: what its time rests on ([`Reference`]), why its status is
//! what it is ([`MasterReason`]), what happened ([`MasterEvent`]), and why an input was refused
//! ([`NmeaRefusal`]). Each has a `Display` for logs and `ttctl`. The daemon and tests match on the
//! variants, never on text.

use super::nmea::NmeaError;
use std::fmt;
use ttcore::disrupt::Disruption;
use ttcore::leap::LeapSecond;
use ttcore::{ClockStatus, EPSILON_BEYOND_MAX, LeapError, Rate, Span, Timestamp, UtcLabel};

/// What the master's time currently rests on (published; the discipline state behind it is the
/// master core's own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference {
    /// Nothing yet.
    None,
    /// GPS pulses.
    Gps,
    /// The atomic clock's 1PPS.
    Atomic,
    /// The local quartz oscillator alone (holdover).
    Quartz,
}

impl Reference {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reference::None => "none",
            Reference::Gps => "gps",
            Reference::Atomic => "atomic",
            Reference::Quartz => "quartz",
        }
    }
}

/// Why the master's status is what it is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MasterReason {
    /// A clock disruption dropped the model; the reference must be acquired again.
    Disrupted,
    /// A GPS master with no pulses and labels yet.
    WaitingForGps,
    /// A GPS master pairing its first pulses with labels.
    AcquiringGps,
    /// An armageddon master without time from its peers yet.
    WaitingForPeers,
    /// An armageddon master with peer time, waiting for a locked atomic pulse.
    WaitingForAtomicPulse,
    /// The master evicted itself: it disagrees with the peer majority.
    Evicted(Eviction),
    /// The reference runs this far from the local oscillator (ppm), beyond the bound.
    FrequencyBeyondBound {
        /// Estimated frequency (ppm).
        ppm: f64,
        /// The bound.
        bound: Rate,
    },
    /// ε has grown beyond `max-epsilon` (the limit).
    EpsilonBeyondMax(Span),
    /// Disciplined by GPS.
    Gps,
    /// An armageddon master running on its atomic clock.
    AtomicFromPeers,
    /// Holding over on this reference.
    Holdover(Reference),
}

impl MasterReason {
    /// The status and reason to publish where ε is `eps`: a trustworthy status whose ε passed
    /// `max` becomes unsynchronized, and the reason says so; anything else is kept. The one rule
    /// both the core's snapshot and the RPC's per-request answer apply.
    pub fn at_epsilon(
        status: ClockStatus,
        reason: MasterReason,
        eps: Span,
        max: Span,
    ) -> (ClockStatus, MasterReason) {
        match status.within(eps, max) {
            s if s == status => (status, reason),
            s => (s, MasterReason::EpsilonBeyondMax(max)),
        }
    }
}

impl fmt::Display for MasterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterReason::Disrupted => {
                f.write_str("clock disruption detected; waiting for the reference")
            }
            MasterReason::WaitingForGps => f.write_str("waiting for GPS pulses and labels"),
            MasterReason::AcquiringGps => f.write_str("acquiring GPS"),
            MasterReason::WaitingForPeers => f.write_str("waiting for time from peers"),
            MasterReason::WaitingForAtomicPulse => f.write_str("waiting for a locked atomic pulse"),
            MasterReason::Evicted(e) => write!(f, "evicted: {e}"),
            MasterReason::FrequencyBeyondBound { ppm, bound } => write!(
                f,
                "reference runs {ppm:.3} ppm from the local oscillator, beyond its bound {bound}"
            ),
            MasterReason::EpsilonBeyondMax(max) => write!(f, "{EPSILON_BEYOND_MAX} {max}"),
            MasterReason::Gps => f.write_str("GPS"),
            MasterReason::AtomicFromPeers => f.write_str("atomic clock (time from peers at start)"),
            MasterReason::Holdover(r) => write!(f, "holdover on {}", r.as_str()),
        }
    }
}

/// Why the master evicted itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eviction {
    /// Peers that agree with each other (not with us).
    pub agreeing: usize,
    /// Peers that answered usably.
    pub answering: usize,
}

impl fmt::Display for Eviction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "disagrees with the peer majority ({} of {} peers agree with each other, not with us)",
            self.agreeing, self.answering
        )
    }
}

/// Why the master entered holdover or changed what it holds over on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldoverCause {
    /// No GPS pulse was accepted for longer than the loss timeout.
    NoGpsPulses,
    /// GPS jumped and the jump was refused.
    GpsRefused,
    /// The atomic clock lost its lock.
    AtomicUnlocked,
}

impl fmt::Display for HoldoverCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HoldoverCause::NoGpsPulses => "no GPS pulses",
            HoldoverCause::GpsRefused => "GPS refused",
            HoldoverCause::AtomicUnlocked => "atomic clock unlocked",
        })
    }
}

/// Something that happened in the master, kept in its event log and logged by the daemon.
#[derive(Clone, Debug, PartialEq)]
pub enum MasterEvent {
    /// A leap second was announced by the receiver and added to the table.
    LeapAnnounced(LeapSecond),
    /// A label before the earliest valid date (a week-number rollover) was refused.
    LabelBeforeEarliestValid(Timestamp),
    /// GPS agrees with our time again after a refused jump.
    GpsAgreesAgain,
    /// GPS was re-acquired after this many seconds of holdover; the innovation (ns).
    GpsReacquired {
        /// Seconds in holdover.
        held_s: f64,
        /// The accepted pulse's innovation (ns).
        innovation_ns: f64,
    },
    /// The first accepted pulse after a disruption.
    Resynchronized,
    /// A GPS jump was refused.
    GpsJumpRefused {
        /// What jumped ("phase" or "label").
        what: &'static str,
        /// By how much (s).
        jump_s: f64,
        /// Pulses in a row that disagreed.
        in_row: u32,
    },
    /// GPS locked for the first time, at this label.
    GpsLocked(Timestamp),
    /// Holdover began on `reference`, with ε (ns) growing at `rate`.
    HoldoverEntered {
        /// Why.
        cause: HoldoverCause,
        /// The reference held over on.
        reference: Reference,
        /// ε at the start (ns).
        eps_ns: f64,
        /// ε's growth rate.
        rate: Rate,
    },
    /// Holdover continues on quartz.
    HoldoverOnQuartz(HoldoverCause),
    /// The atomic clock's lock line changed.
    AtomicLockLine(bool),
    /// The atomic clock's telemetry changed between healthy and not.
    AtomicTelemetry {
        /// Status code.
        status: u8,
        /// Alarm bits.
        alarm: u16,
    },
    /// Peer time was too wide to take; waiting for a better round.
    PeerTimeTooWide {
        /// Its radius.
        radius: Span,
        /// The limit.
        limit: Span,
    },
    /// The narrowest peer time of the waiting rounds is taken.
    PeerTimeTakenNarrowest {
        /// Rounds waited.
        rounds: u32,
        /// Its radius, carried to now.
        radius: Span,
    },
    /// An armageddon master took its time from the peers, with this ε (ns).
    TimeFromPeers(f64),
    /// Back in agreement with the peers: the eviction is lifted.
    EvictionLifted,
    /// The master evicted itself.
    Evicted(Eviction),
    /// The local clock was disrupted.
    ClockDisrupted(Disruption),
}

impl fmt::Display for MasterEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterEvent::LeapAnnounced(l) => write!(
                f,
                "leap second announced: {:+} at POSIX {}",
                l.delta, l.effective_posix_s
            ),
            MasterEvent::LabelBeforeEarliestValid(label) => write!(
                f,
                "label {label} is before the earliest valid date: refused (week rollover?)"
            ),
            MasterEvent::GpsAgreesAgain => f.write_str("GPS agrees with our time again"),
            MasterEvent::GpsReacquired {
                held_s,
                innovation_ns,
            } => write!(
                f,
                "GPS re-acquired after {held_s:.0} s in holdover (innovation {innovation_ns:.0} ns)"
            ),
            MasterEvent::Resynchronized => f.write_str("re-synchronized after disruption"),
            MasterEvent::GpsJumpRefused {
                what,
                jump_s,
                in_row,
            } => write!(
                f,
                "GPS {what} jump of {jump_s:.6} s refused ({in_row} pulses in a row disagree)"
            ),
            MasterEvent::GpsLocked(label) => write!(f, "GPS locked at {label}"),
            MasterEvent::HoldoverEntered {
                cause,
                reference,
                eps_ns,
                rate,
            } => write!(
                f,
                "{cause}: holdover on {} (ε {eps_ns:.0} ns, growing at {rate})",
                reference.as_str()
            ),
            MasterEvent::HoldoverOnQuartz(cause) => {
                write!(f, "{cause}: holdover continues on quartz")
            }
            MasterEvent::AtomicLockLine(locked) => write!(
                f,
                "atomic clock lock line {}",
                if *locked {
                    "high (locked)"
                } else {
                    "low (unlocked)"
                }
            ),
            MasterEvent::AtomicTelemetry { status, alarm } => {
                write!(
                    f,
                    "atomic clock telemetry: status {status}, alarm {alarm:#06x}"
                )
            }
            MasterEvent::PeerTimeTooWide { radius, limit } => write!(
                f,
                "peer time ±{radius} is wider than {limit}: waiting for a better round"
            ),
            MasterEvent::PeerTimeTakenNarrowest { rounds, radius } => write!(
                f,
                "taking the narrowest peer time of {rounds} rounds (±{radius})"
            ),
            MasterEvent::TimeFromPeers(eps) => write!(
                f,
                "time taken from peers once (±{eps:.0} ns); running on the atomic clock"
            ),
            MasterEvent::EvictionLifted => {
                f.write_str("back in agreement with the peer majority: eviction lifted")
            }
            MasterEvent::Evicted(e) => write!(f, "evicting self: {e}"),
            MasterEvent::ClockDisrupted(d) => write!(f, "clock disruption: {d}"),
        }
    }
}

/// Why an NMEA line was not used. The core has counted it; the daemon shows it in the input's
/// status.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NmeaRefusal {
    /// The line does not parse.
    #[error(transparent)]
    Parse(#[from] NmeaError),
    /// The label is not a time on the timescale (e.g. a leap second the table does not know).
    #[error("label {label} refused: {error}")]
    Label {
        /// The label.
        label: UtcLabel,
        /// Why.
        error: LeapError,
    },
    /// The receiver announced a leap second that conflicts with the table.
    #[error("leap announcement refused: {0}")]
    LeapAnnouncement(LeapError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_max_epsilon_a_trustworthy_status_is_downgraded_and_says_why() {
        let max = Span::from_millis(1);
        let (lo, hi) = (Span::from_micros(999), Span::from_micros(1001));
        for s in [ClockStatus::Synchronized, ClockStatus::Holdover] {
            assert_eq!(
                MasterReason::at_epsilon(s, MasterReason::Gps, lo, max),
                (s, MasterReason::Gps)
            );
            assert_eq!(
                MasterReason::at_epsilon(s, MasterReason::Gps, hi, max),
                (
                    ClockStatus::Unsynchronized,
                    MasterReason::EpsilonBeyondMax(max)
                )
            );
        }
        // An untrustworthy status keeps its own reason, whatever ε.
        for s in [ClockStatus::Unsynchronized, ClockStatus::Disrupted] {
            assert_eq!(
                MasterReason::at_epsilon(s, MasterReason::Disrupted, hi, max),
                (s, MasterReason::Disrupted)
            );
        }
    }
}
