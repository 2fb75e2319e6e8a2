//! A PTP hardware clock (`/dev/ptpN`) as a time source, sans I/O: from PHC readings bracketed
//! by the host's raw clock, and the PHC's own error bound, an honest offset interval.
//!
//! The shell (`ttsys::phc`) reads the PHC the way chrony does — `PTP_SYS_OFFSET_PRECISE` (a
//! hardware cross-timestamp), else `PTP_SYS_OFFSET_EXTENDED` (system, PHC, system triples),
//! else the basic `PTP_SYS_OFFSET` — and hands over each reading as a [`Bracketed`]: the PHC
//! value and the raw readings (`CLOCK_MONOTONIC_RAW`) known to be before and after it, rounded
//! outward. Everything that decides what the reading is worth lives here:
//!
//! - the narrowest bracket of the readings is used;
//! - the PHC's timescale is configuration: a TAI or UTC PHC is mapped onto ours (UTC with the
//!   24 h leap smear) with the leap table;
//! - the PHC's own error is either configured or published by the device (AWS ENA:
//!   `phc_error_bound`, in ns). A published bound describes the device's latest reading, so it
//!   must be read *after* the PHC and soon after: read later than `max_bound_delay` after the
//!   bracket closed it may describe another reading, and the sample is refused as stale.
//!
//! The interval, for a reading `P` (UTC) between raw readings `b` and `a`, error `e`, drift
//! bound `ρ` of the raw clock: `UTC − raw ∈ [P − e − a − ρ(a − b), P + e − b + ρ(a − b)]` at raw
//! reading `a`. Every rounding widens it.

use crate::leap::LeapTable;
use crate::rate::Rate;
use crate::time::{Span, Timestamp};
use crate::transfer::{OffsetInterval, SyncMeasurement};
use thiserror::Error;

/// One PHC reading between two raw-clock readings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bracketed {
    /// A raw reading (ns) taken no later than the PHC was read (rounded early).
    pub raw_before: i64,
    /// The PHC's value (ns in its own timescale).
    pub phc_ns: i64,
    /// A raw reading (ns) taken no earlier than the PHC was read (rounded late).
    pub raw_after: i64,
}

/// The PHC's timescale: configuration, since nothing on the device says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Timescale {
    /// TAI, counted from 1970-01-01T00:00:00 TAI (PTP's own timescale, what `ptp4l` and
    /// `phc2sys` keep a PHC on): mapped onto ours exactly with the leap table, leap seconds
    /// included.
    Tai,
    /// UTC kept the POSIX way (leap seconds inserted): mapped with the leap table, and
    /// refused within [`crate::leap::LEAP_GUARD`] of a leap.
    Utc,
    /// UTC smeared over 24 h noon to noon, as ours: taken as it is.
    Smeared,
}

/// The PHC's own error bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorBound {
    /// A configured bound (ns): what the operator knows of the PHC's discipline.
    Configured(Span),
    /// A bound the device published (AWS ENA's `phc_error_bound`), read at raw reading
    /// `read_raw` (ns).
    Published {
        /// The bound (ns).
        ns: i64,
        /// When it was read (raw ns).
        read_raw: i64,
    },
}

/// How a PHC source is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhcParams {
    /// The PHC's timescale.
    pub timescale: Timescale,
    /// A published bound read later than this after the bracket closed is stale.
    pub max_bound_delay: Span,
    /// The raw clock's frequency error bound, over the bracket.
    pub drift: Rate,
    /// Brackets wider than this are refused (the reading was interrupted).
    pub max_bracket: Span,
}

/// Why a PHC reading gave no sample.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PhcError {
    /// The read failed (the shell's error text).
    #[error("PHC read failed: {0}")]
    Read(String),
    /// No reading had a bracket in order and within `max_bracket`.
    #[error("no usable reading: the narrowest bracket is {narrowest_ns} ns (max {max_ns} ns)")]
    NoReading {
        /// The narrowest bracket seen (ns; -1 if none was in order).
        narrowest_ns: i64,
        /// The maximum (ns).
        max_ns: i64,
    },
    /// The published bound could not be read or parsed.
    #[error("the PHC's error bound is unavailable: {0}")]
    BoundUnavailable(String),
    /// The published bound was read too long after the reading.
    #[error(
        "the PHC's error bound was read {delay_ns} ns after the reading (max {max_ns} ns): stale"
    )]
    BoundStale {
        /// How long after the bracket closed (ns).
        delay_ns: i64,
        /// The maximum (ns).
        max_ns: i64,
    },
    /// A bound that is negative or absurd (over one second).
    #[error("the PHC's error bound {0} ns is not a bound")]
    BoundInvalid(i64),
    /// A UTC PHC read within [`crate::leap::LEAP_GUARD`] of a leap second.
    #[error("the PHC keeps UTC with inserted leap seconds and was read too near a leap second")]
    LeapSecond,
    /// The arithmetic overflowed (a corrupt reading).
    #[error("the PHC reading is out of range")]
    Overflow,
}

/// The narrowest in-order bracket of `readings`, if any is within `max`.
pub fn narrowest(readings: &[Bracketed], max: Span) -> Result<Bracketed, PhcError> {
    let best = readings
        .iter()
        .filter(|r| r.raw_after >= r.raw_before)
        .min_by_key(|r| r.raw_after - r.raw_before);
    match best {
        Some(b) if b.raw_after - b.raw_before <= max.as_nanos() => Ok(*b),
        b => Err(PhcError::NoReading {
            narrowest_ns: b.map_or(-1, |b| b.raw_after - b.raw_before),
            max_ns: max.as_nanos(),
        }),
    }
}

/// The offset interval (timescale − raw) a PHC gives from `readings` and its error `bound`;
/// `leaps` maps a TAI or UTC PHC onto the timescale.
pub fn measure(
    readings: &[Bracketed],
    bound: ErrorBound,
    p: &PhcParams,
    leaps: &LeapTable,
) -> Result<SyncMeasurement, PhcError> {
    let r = narrowest(readings, p.max_bracket)?;
    let e = match bound {
        ErrorBound::Configured(s) => s.as_nanos(),
        ErrorBound::Published { ns, read_raw } => {
            let delay = read_raw - r.raw_after;
            if delay > p.max_bound_delay.as_nanos() {
                return Err(PhcError::BoundStale {
                    delay_ns: delay,
                    max_ns: p.max_bound_delay.as_nanos(),
                });
            }
            if read_raw < r.raw_after {
                return Err(PhcError::BoundUnavailable(
                    "read before the PHC: it does not cover this reading".into(),
                ));
            }
            ns
        }
    };
    if !(0..=1_000_000_000).contains(&e) {
        return Err(PhcError::BoundInvalid(e));
    }
    // A mapped value is within 1 ns below the exact one (inside a smear window): 1 ns more.
    let (utc, e) = match p.timescale {
        Timescale::Smeared => (r.phc_ns, e),
        Timescale::Tai => (
            leaps
                .tai_to_timescale(r.phc_ns)
                .map_err(|_| PhcError::Overflow)?
                .as_nanos(),
            e + 1,
        ),
        Timescale::Utc => (
            leaps
                .posix_to_timescale(r.phc_ns)
                .ok_or(PhcError::LeapSecond)?
                .as_nanos(),
            e + 1,
        ),
    };
    let width = Span::from_nanos(r.raw_after - r.raw_before);
    let drift = p
        .drift
        .bound_over(width)
        .saturating_add(Span::from_nanos(1));
    let lo = utc
        .checked_sub(e)
        .and_then(|v| v.checked_sub(r.raw_after))
        .ok_or(PhcError::Overflow)?;
    let hi = utc
        .checked_add(e)
        .and_then(|v| v.checked_sub(r.raw_before))
        .ok_or(PhcError::Overflow)?;
    let bounds = OffsetInterval::new(
        Span::from_nanos(lo).saturating_sub(drift),
        Span::from_nanos(hi).saturating_add(drift),
    )
    .ok_or(PhcError::Overflow)?;
    Ok(SyncMeasurement {
        offset: bounds.midpoint(),
        delay: width,
        bounds,
        at: Timestamp::from_nanos(r.raw_after),
    })
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "test arithmetic on small, bounded values"
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const UTC: i64 = 1_796_000_000_000_000_000;

    fn params() -> PhcParams {
        PhcParams {
            timescale: Timescale::Smeared,
            max_bound_delay: Span::from_millis(10),
            drift: Rate::from_ppm(15),
            max_bracket: Span::from_micros(50),
        }
    }

    /// Three `PTP_SYS_OFFSET_EXTENDED` triples of the shape a PHC gives (a few hundred ns per
    /// bracket, one interrupted by a preemption); synthetic, since no PHC was at hand: the raw
    /// clock reads UTC − 10 s and the PHC is exact.
    fn recorded() -> Vec<Bracketed> {
        let off = UTC - 10_000_000_000;
        vec![
            Bracketed {
                raw_before: 1_000,
                phc_ns: off + 1_400,
                raw_after: 1_900,
            },
            Bracketed {
                raw_before: 5_000,
                phc_ns: off + 30_000,
                raw_after: 40_000,
            },
            Bracketed {
                raw_before: 50_000,
                phc_ns: off + 50_300,
                raw_after: 50_600,
            },
        ]
    }

    #[test]
    fn the_narrowest_bracket_and_the_error_bound_give_the_interval() {
        let m = measure(
            &recorded(),
            ErrorBound::Configured(Span::from_micros(2)),
            &params(),
            &LeapTable::builtin(),
        )
        .unwrap();
        let truth = Span::from_nanos(UTC - 10_000_000_000);
        assert!(m.bounds.contains(truth), "{:?}", m.bounds);
        assert_eq!(
            m.delay,
            Span::from_nanos(600),
            "the third triple is the narrowest"
        );
        assert_eq!(m.at, Timestamp::from_nanos(50_600));
        // 600 ns of bracket + 2 × 2 µs of PHC error + drift.
        let w = m.bounds.hi.as_nanos() - m.bounds.lo.as_nanos();
        assert!((4_600..4_700).contains(&w), "width {w}");
    }

    #[test]
    fn a_tai_phc_is_mapped_with_the_leap_table() {
        let tai: Vec<Bracketed> = recorded()
            .into_iter()
            .map(|r| Bracketed {
                phc_ns: r.phc_ns + 37_000_000_000,
                ..r
            })
            .collect();
        let p = PhcParams {
            timescale: Timescale::Tai,
            ..params()
        };
        let m = measure(
            &tai,
            ErrorBound::Configured(Span::from_micros(1)),
            &p,
            &LeapTable::builtin(),
        )
        .unwrap();
        assert!(m.bounds.contains(Span::from_nanos(UTC - 10_000_000_000)));
        // Misconfigured as smeared UTC, it is 37 s off: the timescale is not a detail.
        let m = measure(
            &tai,
            ErrorBound::Configured(Span::from_micros(1)),
            &params(),
            &LeapTable::builtin(),
        )
        .unwrap();
        assert!(!m.bounds.contains(Span::from_nanos(UTC - 10_000_000_000)));
    }

    #[test]
    fn across_a_leap_second_tai_is_exact_and_utc_is_refused_beside_it() {
        use crate::leap::{UtcLabel, days_from_civil};
        let leaps = LeapTable::builtin();
        let m_ns = days_from_civil(2017, 1, 1) * 86_400 * 1_000_000_000;
        let (mut refused, mut n) = (0, 0);
        for ms in (-20_000..20_000i64).step_by(100) {
            let truth = m_ns + ms * 1_000_000; // the timescale
            let l: UtcLabel = leaps.timescale_to_utc(Timestamp::from_nanos(truth));
            let tai = leaps.utc_to_tai_ns(&l).unwrap();
            let posix = (days_from_civil(l.year, l.month, l.day) * 86_400
                + l.hour as i64 * 3600
                + l.minute as i64 * 60
                + l.second.min(59) as i64)
                * 1_000_000_000
                + l.nanos as i64;
            // The raw clock reads the timescale − 10 s; a 200 ns bracket around the read.
            let raw = truth - 10_000_000_000;
            let read = |phc_ns| {
                [Bracketed {
                    raw_before: raw - 100,
                    phc_ns,
                    raw_after: raw + 100,
                }]
            };
            let bound = ErrorBound::Configured(Span::from_nanos(50));
            let off = Span::from_nanos(10_000_000_000);
            let p = |timescale| PhcParams {
                timescale,
                ..params()
            };
            let t = measure(&read(tai), bound, &p(Timescale::Tai), &leaps).unwrap();
            assert!(t.bounds.contains(off), "TAI at {ms} ms: {:?}", t.bounds);
            match measure(&read(posix), bound, &p(Timescale::Utc), &leaps) {
                Ok(u) => assert!(u.bounds.contains(off), "UTC at {ms} ms: {:?}", u.bounds),
                Err(PhcError::LeapSecond) => refused += 1,
                Err(e) => panic!("{e}"),
            }
            n += 1;
        }
        // 2 s either side of the repeated second, which itself passes twice: 6 s, at 100 ms.
        assert!((55..=65).contains(&refused), "{refused} of {n} refused");
    }

    #[test]
    fn a_published_bound_must_follow_the_reading_closely() {
        let r = recorded();
        // Read 2 ms after the bracket: fine.
        let ok = ErrorBound::Published {
            ns: 3_000,
            read_raw: 50_600 + 2_000_000,
        };
        assert!(measure(&r, ok, &params(), &LeapTable::builtin()).is_ok());
        // Read 50 ms after: stale.
        let stale = ErrorBound::Published {
            ns: 3_000,
            read_raw: 50_600 + 50_000_000,
        };
        assert!(matches!(
            measure(&r, stale, &params(), &LeapTable::builtin()),
            Err(PhcError::BoundStale { .. })
        ));
        // Read before the PHC: it cannot cover this reading.
        let early = ErrorBound::Published {
            ns: 3_000,
            read_raw: 50_000,
        };
        assert!(matches!(
            measure(&r, early, &params(), &LeapTable::builtin()),
            Err(PhcError::BoundUnavailable(_))
        ));
        for bad in [-1, 2_000_000_000] {
            let b = ErrorBound::Published {
                ns: bad,
                read_raw: 50_700,
            };
            assert_eq!(
                measure(&r, b, &params(), &LeapTable::builtin()),
                Err(PhcError::BoundInvalid(bad))
            );
        }
    }

    #[test]
    fn interrupted_or_inverted_readings_are_refused() {
        let r = vec![
            Bracketed {
                raw_before: 0,
                phc_ns: UTC,
                raw_after: 80_000,
            },
            Bracketed {
                raw_before: 10,
                phc_ns: UTC,
                raw_after: 5,
            },
        ];
        let e = measure(
            &r,
            ErrorBound::Configured(Span::ZERO),
            &params(),
            &LeapTable::builtin(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            PhcError::NoReading {
                narrowest_ns: 80_000,
                max_ns: 50_000
            }
        );
        let e = measure(
            &[],
            ErrorBound::Configured(Span::ZERO),
            &params(),
            &LeapTable::builtin(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no usable reading"), "{e}");
    }

    proptest! {
        /// Whatever the offset, bracket and error, if the PHC's error is within its bound the
        /// interval contains the truth.
        #[test]
        fn an_honest_phc_is_always_inside(
            off in -1_000_000_000_000i64..1_000_000_000_000,
            before in 0i64..20_000,
            after in 0i64..20_000,
            bound in 0i64..100_000,
            frac in -1.0f64..1.0,
        ) {
            let read_at = 1_000_000_000i64; // raw reading at the instant the PHC was read
            let err = (bound as f64 * frac) as i64;
            let r = Bracketed {
                raw_before: read_at - before,
                phc_ns: read_at + off + err,
                raw_after: read_at + after,
            };
            let m = measure(&[r], ErrorBound::Configured(Span::from_nanos(bound)), &params(), &LeapTable::builtin())
                .unwrap();
            prop_assert!(m.bounds.contains(Span::from_nanos(off)));
        }
    }
}
