//! NMEA time extraction that survives real receivers.
//!
//! Every line is checked for a `$…*HH` frame with a correct checksum first (noise before the
//! `$` is skipped). RMC and ZDA give a full UTC label (the receiver's claim about the pulse that
//! preceded the burst); `$PSIMLS` gives TAI − UTC and an announced leap second. Everything else
//! that checks out is `Other`. The `nmea` crate parses RMC/ZDA; where it cannot represent a
//! field (a `23:59:60` leap second in 0.8) the fields are read directly.

use thiserror::Error;
use ttcore::UtcLabel;
use ttcore::leap::{LeapSecond, days_from_civil};

/// What a line says.
#[derive(Clone, Debug, PartialEq)]
pub enum NmeaEvent {
    /// A time label. `valid` is false for status `V` (no fix): the time must not be trusted.
    Time {
        /// The UTC label.
        label: UtcLabel,
        /// Status `A` (RMC) — ZDA carries no status and counts as valid only with a fix seen.
        valid: bool,
        /// `"RMC"` or `"ZDA"`.
        sentence: &'static str,
    },
    /// A fix-quality report without a date (GGA): whether the receiver has a fix.
    Fix(bool),
    /// The receiver's leap-second state (`$PSIMLS`).
    Leap {
        /// TAI − UTC (s).
        tai_minus_utc: i32,
        /// A pending leap second, if announced.
        pending: Option<LeapSecond>,
    },
    /// A well-formed sentence that carries nothing we use.
    Other,
}

/// Why a line was rejected.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum NmeaError {
    /// No `$` in the line.
    #[error("not an NMEA sentence (no '$')")]
    NoSentence,
    /// A byte outside ASCII in a sentence whose checksum matches (line noise that the lossy
    /// UTF-8 decoding turned into a multi-byte character): NMEA 0183 is ASCII only.
    #[error("non-ASCII bytes in the sentence")]
    NotAscii,
    /// No `*HH` checksum (often a truncated line).
    #[error("missing checksum (truncated line?)")]
    NoChecksum,
    /// The checksum does not match.
    #[error("checksum mismatch: line says {stated:02X}, computed {computed:02X}")]
    BadChecksum {
        /// Checksum in the line.
        stated: u8,
        /// Checksum of the body.
        computed: u8,
    },
    /// A time-bearing sentence with unusable fields.
    #[error("bad {0} fields: {1}")]
    Fields(&'static str, String),
}

/// Parses one line (with or without CR/LF).
pub fn parse_line(raw: &str) -> Result<NmeaEvent, NmeaError> {
    let line = raw.trim_end_matches(['\r', '\n']);
    let start = line.find('$').ok_or(NmeaError::NoSentence)?;
    let line = &line[start..];
    let (body, cs) = line[1..].rsplit_once('*').ok_or(NmeaError::NoChecksum)?;
    let stated = u8::from_str_radix(cs.get(..2).ok_or(NmeaError::NoChecksum)?, 16)
        .map_err(|_| NmeaError::NoChecksum)?;
    let computed = body.bytes().fold(0u8, |a, b| a ^ b);
    if stated != computed {
        return Err(NmeaError::BadChecksum { stated, computed });
    }
    // Every field below is sliced by byte position: only ASCII makes that safe.
    if !body.is_ascii() {
        return Err(NmeaError::NotAscii);
    }
    let fields: Vec<&str> = body.split(',').collect();
    let id = fields[0];
    if id == "PSIMLS" {
        return parse_psimls(&fields);
    }
    if id.len() != 5 || id.starts_with('P') {
        return Ok(NmeaEvent::Other);
    }
    match &id[2..] {
        "RMC" => parse_rmc(line, &fields),
        "ZDA" => parse_zda(line, &fields),
        "GGA" => Ok(NmeaEvent::Fix(
            fields
                .get(6)
                .and_then(|q| q.parse::<u8>().ok())
                .unwrap_or(0)
                > 0,
        )),
        _ => Ok(NmeaEvent::Other),
    }
}

fn hms(f: &str) -> Option<(u8, u8, u8, u32)> {
    if f.len() < 6 || !f.is_char_boundary(6) {
        return None;
    }
    let h = f[0..2].parse().ok()?;
    let m = f[2..4].parse().ok()?;
    let s = f[4..6].parse().ok()?;
    let frac = match f.get(6..) {
        Some(r) if r.starts_with('.') && r.len() > 1 => {
            let digits = &r[1..r.len().min(10)];
            let v: u32 = digits.parse().ok()?;
            v * 10u32.pow(9 - digits.len() as u32)
        }
        _ => 0,
    };
    Some((h, m, s, frac))
}

fn label(year: i32, month: u8, day: u8, t: (u8, u8, u8, u32)) -> UtcLabel {
    UtcLabel {
        year,
        month,
        day,
        hour: t.0,
        minute: t.1,
        second: t.2,
        nanos: t.3,
    }
}

fn parse_rmc(line: &str, f: &[&str]) -> Result<NmeaEvent, NmeaError> {
    let bad = |why: &str| NmeaError::Fields("RMC", why.to_string());
    let valid = f.get(2) == Some(&"A");
    let (Some(t), Some(d)) = (f.get(1), f.get(9)) else {
        return Err(bad("too few fields"));
    };
    if t.is_empty() || d.is_empty() {
        // Cold start: no time or no date yet.
        return Ok(NmeaEvent::Fix(false));
    }
    // The nmea crate first.
    if let Ok(nmea::ParseResult::RMC(r)) = nmea::parse_str(line)
        && let (Some(time), Some(date)) = (r.fix_time, r.fix_date)
    {
        return Ok(NmeaEvent::Time {
            label: label_of(&date, &time),
            valid,
            sentence: "RMC",
        });
    }
    // Fallback: fields the crate cannot represent (23:59:60).
    let t = hms(t).ok_or_else(|| bad("time"))?;
    if d.len() != 6 {
        return Err(bad("date"));
    }
    let day: u8 = d[0..2].parse().map_err(|_| bad("date"))?;
    let month: u8 = d[2..4].parse().map_err(|_| bad("date"))?;
    let yy: i32 = d[4..6].parse().map_err(|_| bad("date"))?;
    // Two-digit years: 80–99 → 1980s/90s (GPS epoch), else 2000s.
    let year = if yy >= 80 { 1900 + yy } else { 2000 + yy };
    Ok(NmeaEvent::Time {
        label: label(year, month, day, t),
        valid,
        sentence: "RMC",
    })
}

fn parse_zda(line: &str, f: &[&str]) -> Result<NmeaEvent, NmeaError> {
    let bad = |why: &str| NmeaError::Fields("ZDA", why.to_string());
    if f.len() < 5 || f[1].is_empty() || f[4].is_empty() {
        return Ok(NmeaEvent::Fix(false));
    }
    if let Ok(nmea::ParseResult::ZDA(z)) = nmea::parse_str(line)
        && let (Some(time), Some(d), Some(m), Some(y)) = (z.utc_time, z.day, z.month, z.year)
    {
        if let Some(date) = chrono::NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32) {
            return Ok(NmeaEvent::Time {
                label: label_of(&date, &time),
                valid: true,
                sentence: "ZDA",
            });
        }
    }
    let t = hms(f[1]).ok_or_else(|| bad("time"))?;
    let day = f[2].parse().map_err(|_| bad("day"))?;
    let month = f[3].parse().map_err(|_| bad("month"))?;
    let year = f[4].parse().map_err(|_| bad("year"))?;
    Ok(NmeaEvent::Time {
        label: label(year, month, day, t),
        valid: true,
        sentence: "ZDA",
    })
}

fn parse_psimls(f: &[&str]) -> Result<NmeaEvent, NmeaError> {
    let bad = |why: &str| NmeaError::Fields("PSIMLS", why.to_string());
    let tai_minus_utc = f
        .get(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("TAI-UTC"))?;
    let delta: i8 = f
        .get(3)
        .and_then(|v| v.trim_start_matches('+').parse().ok())
        .ok_or_else(|| bad("delta"))?;
    let pending = match f.get(2) {
        Some(d) if d.len() == 8 && delta != 0 => {
            let y: i32 = d[0..4].parse().map_err(|_| bad("date"))?;
            let m: u8 = d[4..6].parse().map_err(|_| bad("date"))?;
            let dd: u8 = d[6..8].parse().map_err(|_| bad("date"))?;
            Some(LeapSecond {
                effective_posix_s: (days_from_civil(y, m, dd) + 1) * 86_400,
                delta,
            })
        }
        _ => None,
    };
    Ok(NmeaEvent::Leap {
        tai_minus_utc,
        pending,
    })
}

/// A label from the `nmea` crate's chrono date and time. chrono represents a leap second as
/// second 59 with nanoseconds ≥ 10⁹; that becomes second 60.
fn label_of(d: &chrono::NaiveDate, t: &chrono::NaiveTime) -> UtcLabel {
    use chrono::{Datelike, Timelike};
    let leap = t.nanosecond() >= 1_000_000_000;
    UtcLabel {
        year: d.year(),
        month: d.month() as u8,
        day: d.day() as u8,
        hour: t.hour() as u8,
        minute: t.minute() as u8,
        second: if leap { 60 } else { t.second() as u8 },
        nanos: t.nanosecond() % 1_000_000_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(body: &str) -> String {
        format!("${}*{:02X}", body, body.bytes().fold(0u8, |a, b| a ^ b))
    }

    #[test]
    fn multibyte_characters_with_a_valid_checksum_are_refused_not_a_crash() {
        // Found by issue 13: `from_utf8_lossy` of line noise gives U+FFFD (3 bytes); with a
        // checksum that matches, the time field used to be sliced inside the character.
        for body in [
            "GPRMC,1\u{FFFD}3456.00,A,4404.13387,N,12118.85628,W,0.029,,100117,,,A",
            "GPRMC,123456.\u{FFFD}\u{FFFD}\u{FFFD},A,4404.1,N,12118.8,W,0.0,,100117,,,A",
            "GPRMC,123456.00,A,4404.1,N,12118.8,W,0.0,,1\u{e9}0117,,,A",
            "GPZDA,12\u{e9}456.00,10,01,2017,00,00",
            "PSIMLS,37,2016123\u{e9},+1",
            "G\u{e9}RMC,123456.00,A,4404.1,N,12118.8,W,0.0,,100117,,,A",
        ] {
            assert_eq!(parse_line(&s(body)), Err(NmeaError::NotAscii), "{body}");
        }
    }

    #[test]
    fn rmc_label() {
        let e =
            parse_line("$GNRMC,000941.00,A,4404.13387,N,12118.85628,W,0.029,,100117,,,A*7D\r\n")
                .unwrap();
        assert_eq!(
            e,
            NmeaEvent::Time {
                label: UtcLabel {
                    year: 2017,
                    month: 1,
                    day: 10,
                    hour: 0,
                    minute: 9,
                    second: 41,
                    nanos: 0
                },
                valid: true,
                sentence: "RMC"
            }
        );
    }

    #[test]
    fn leap_second_label() {
        let e = parse_line(&s(
            "GPRMC,235960.00,A,4404.13382,N,12118.85626,W,0.02,,311216,,,A",
        ))
        .unwrap();
        match e {
            NmeaEvent::Time { label, .. } => {
                assert_eq!((label.hour, label.minute, label.second), (23, 59, 60))
            }
            other => panic!("{other:?}"),
        }
        let z = parse_line(&s("GPZDA,235960.00,31,12,2016,00,00")).unwrap();
        assert!(matches!(
            z,
            NmeaEvent::Time {
                label: UtcLabel {
                    second: 60,
                    year: 2016,
                    ..
                },
                ..
            }
        ));
    }

    #[test]
    fn cold_start_and_no_fix() {
        assert_eq!(
            parse_line(&s("GPRMC,,V,,,,,,,,,,N")).unwrap(),
            NmeaEvent::Fix(false)
        );
        assert_eq!(
            parse_line(&s("GPRMC,112704.00,V,,,,,,,,,,N")).unwrap(),
            NmeaEvent::Fix(false)
        );
        assert!(matches!(
            parse_line(&s("GPRMC,112704.00,V,,,,,,,060180,,,N")).unwrap(),
            NmeaEvent::Time { valid: false, .. }
        ));
        assert_eq!(
            parse_line(&s("GPGGA,112705.00,,,,,0,00,99.99,,,,,,")).unwrap(),
            NmeaEvent::Fix(false)
        );
    }

    #[test]
    fn errors() {
        assert_eq!(parse_line("garbage"), Err(NmeaError::NoSentence));
        assert_eq!(parse_line("$GPRMC,1234"), Err(NmeaError::NoChecksum));
        assert!(matches!(
            parse_line("$GPRMC,1*00"),
            Err(NmeaError::BadChecksum { .. })
        ));
        assert!(matches!(
            parse_line(&s("GPRMC,99x,A,,,,,,,1x0117,,,A")),
            Err(NmeaError::Fields(..))
        ));
        // Noise before the sentence is skipped.
        assert!(parse_line(&format!("\u{1}\u{2}{}", s("GPGSV,1,1,00"))).is_ok());
    }

    #[test]
    fn leap_announcement() {
        assert_eq!(
            parse_line(&s("PSIMLS,36,20161231,+1")).unwrap(),
            NmeaEvent::Leap {
                tai_minus_utc: 36,
                pending: Some(LeapSecond {
                    effective_posix_s: 1_483_228_800,
                    delta: 1
                })
            }
        );
        assert_eq!(
            parse_line(&s("PSIMLS,37,,+0")).unwrap(),
            NmeaEvent::Leap {
                tai_minus_utc: 37,
                pending: None
            }
        );
        // Other proprietary sentences are fine.
        assert_eq!(parse_line(&s("PGRMF,1,2,3")).unwrap(), NmeaEvent::Other);
        assert_eq!(parse_line(&s("GNGSV,1,1,00")).unwrap(), NmeaEvent::Other);
    }

    #[test]
    fn whole_corpus_never_panics_and_yields_labels() {
        let mut labels = 0;
        let mut files = 0;
        for p in firmware_sim::replay::captures().unwrap_or_else(|e| panic!("{e}")) {
            files += 1;
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            for line in String::from_utf8_lossy(&data).lines() {
                if let Ok(NmeaEvent::Time { .. }) = parse_line(line) {
                    labels += 1;
                }
            }
        }
        assert!(
            files >= 20 && labels > 1000,
            "{files} files, {labels} labels"
        );
    }
}
