//! The one definition of true time for a run, and conversions between its scales.
//!
//! Internally the simulator counts SI nanoseconds as TAI; pulses fall on TAI seconds, receiver
//! labels are UTC (with `23:59:60` when a leap second is inserted), and the project timescale
//! (what daemons hand out) is derived with [`ttcore::LeapTable::tai_to_timescale`].

use ttcore::{LeapTable, NANOS_PER_SEC, Timestamp, UtcLabel};

/// True time for one run.
#[derive(Clone, Debug)]
pub struct Truth {
    leap: LeapTable,
    /// `Some((tai at start, realtime at start))` for a virtual start; `None` = host realtime.
    virtual_start: Option<(i64, i64)>,
}

impl Truth {
    /// True time = the host's `CLOCK_REALTIME`, read as UTC outside leap seconds.
    pub fn realtime(leap: LeapTable) -> Self {
        Truth {
            leap,
            virtual_start: None,
        }
    }

    /// True time starts at UTC label `start` when the host realtime reads `anchor_rt_ns`, then
    /// advances in SI seconds. Fails if the label is invalid for the table.
    pub fn virtual_start(
        leap: LeapTable,
        start: &UtcLabel,
        anchor_rt_ns: i64,
    ) -> Result<Self, ttcore::LeapError> {
        let tai = leap.utc_to_tai_ns(start)?;
        Ok(Truth {
            leap,
            virtual_start: Some((tai, anchor_rt_ns)),
        })
    }

    /// The leap table in force.
    pub fn leap_table(&self) -> &LeapTable {
        &self.leap
    }

    /// TAI (ns) at host realtime `rt_ns`.
    pub fn tai_at_realtime(&self, rt_ns: i64) -> i64 {
        match self.virtual_start {
            Some((tai0, rt0)) => tai0 + (rt_ns - rt0),
            None => {
                rt_ns + self.leap.tai_minus_utc_s(rt_ns.div_euclid(NANOS_PER_SEC)) * NANOS_PER_SEC
            }
        }
    }

    /// Host realtime (ns) at TAI `tai_ns` (inverse of [`Truth::tai_at_realtime`]).
    pub fn realtime_at_tai(&self, tai_ns: i64) -> i64 {
        match self.virtual_start {
            Some((tai0, rt0)) => rt0 + (tai_ns - tai0),
            None => {
                let mut rt =
                    tai_ns - self.leap.tai_minus_utc_s(tai_ns / NANOS_PER_SEC) * NANOS_PER_SEC;
                rt = tai_ns
                    - self.leap.tai_minus_utc_s(rt.div_euclid(NANOS_PER_SEC)) * NANOS_PER_SEC;
                rt
            }
        }
    }

    /// The UTC label at TAI `tai_ns`.
    pub fn label_at_tai(&self, tai_ns: i64) -> UtcLabel {
        self.leap.tai_to_utc(tai_ns)
    }

    /// The project timescale at TAI `tai_ns` (ns; smeared UTC).
    pub fn timescale_at_tai(&self, tai_ns: i64) -> Timestamp {
        self.leap
            .tai_to_timescale(tai_ns)
            .unwrap_or_else(|_| Timestamp::from_nanos(self.realtime_at_tai(tai_ns)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_round_trip() {
        let t = Truth::realtime(LeapTable::builtin());
        let rt = 1_790_000_000_123_456_789;
        let tai = t.tai_at_realtime(rt);
        assert_eq!(tai - rt, 37 * NANOS_PER_SEC);
        assert_eq!(t.realtime_at_tai(tai), rt);
        assert_eq!(t.timescale_at_tai(tai).as_nanos(), rt);
    }

    #[test]
    fn virtual_start_crosses_a_leap_second() {
        let l = UtcLabel {
            year: 2016,
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 58,
            nanos: 0,
        };
        let t = Truth::virtual_start(LeapTable::builtin(), &l, 1_000).unwrap();
        let tai0 = t.tai_at_realtime(1_000);
        let labels: Vec<u8> = (0..4)
            .map(|k| t.label_at_tai(tai0 + k * NANOS_PER_SEC).second)
            .collect();
        assert_eq!(labels, vec![58, 59, 60, 0]);
    }
}
