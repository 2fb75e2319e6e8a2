//! NMEA 0183 sentence generation: RMC, GGA, ZDA, GSA, GSV and a proprietary leap-second line.
//!
//! Every function returns complete sentences, `$…*CS\r\n`, with a valid XOR checksum.
//! Times are UTC labels as a receiver prints them (so `23:59:60` appears during an inserted leap
//! second); sub-second digits are always `.00` because a burst labels a whole-second pulse.

use ttcore::UtcLabel;

/// Position and satellite picture reported with a fix.
#[derive(Clone, Debug, PartialEq)]
pub struct FixInfo {
    /// Latitude, degrees (north positive).
    pub lat_deg: f64,
    /// Longitude, degrees (east positive).
    pub lon_deg: f64,
    /// Altitude above mean sea level, metres.
    pub alt_m: f64,
    /// Satellites in view: (PRN, elevation °, azimuth °, SNR dB-Hz).
    pub sats: Vec<(u8, u8, u16, u8)>,
    /// Horizontal dilution of precision.
    pub hdop: f64,
}

/// XOR of the bytes between `$` and `*`.
pub fn checksum(body: &str) -> u8 {
    body.bytes().fold(0, |a, b| a ^ b)
}

/// `$body*CS\r\n`.
pub fn sentence(body: &str) -> String {
    format!("${}*{:02X}\r\n", body, checksum(body))
}

fn hhmmss(l: &UtcLabel) -> String {
    format!("{:02}{:02}{:02}.00", l.hour, l.minute, l.second)
}

fn ddmmyy(l: &UtcLabel) -> String {
    format!("{:02}{:02}{:02}", l.day, l.month, l.year.rem_euclid(100))
}

fn lat(deg: f64) -> (String, char) {
    let h = if deg < 0.0 { 'S' } else { 'N' };
    let a = deg.abs();
    let d = a.trunc();
    (format!("{:02}{:08.5}", d as u32, (a - d) * 60.0), h)
}

fn lon(deg: f64) -> (String, char) {
    let h = if deg < 0.0 { 'W' } else { 'E' };
    let a = deg.abs();
    let d = a.trunc();
    (format!("{:03}{:08.5}", d as u32, (a - d) * 60.0), h)
}

/// RMC. `time`: the receiver's time-of-day (`None` before it has one); `date`: whether the date
/// field is filled (empty during a cold start); `fix`: `Some` gives status `A`, `None` status `V`.
pub fn rmc(talker: &str, l: Option<&UtcLabel>, date: bool, fix: Option<&FixInfo>) -> String {
    let t = l.map(hhmmss).unwrap_or_default();
    let d = if date {
        l.map(ddmmyy).unwrap_or_default()
    } else {
        String::new()
    };
    match fix {
        Some(f) => {
            let (la, lh) = lat(f.lat_deg);
            let (lo, oh) = lon(f.lon_deg);
            sentence(&format!(
                "{talker}RMC,{t},A,{la},{lh},{lo},{oh},0.02,,{d},,,A"
            ))
        }
        None => sentence(&format!("{talker}RMC,{t},V,,,,,,,{d},,,N")),
    }
}

/// GGA: quality 1 with a fix, 0 without.
pub fn gga(talker: &str, l: Option<&UtcLabel>, fix: Option<&FixInfo>) -> String {
    let t = l.map(hhmmss).unwrap_or_default();
    match fix {
        Some(f) => {
            let (la, lh) = lat(f.lat_deg);
            let (lo, oh) = lon(f.lon_deg);
            let used = f.sats.len().min(12);
            sentence(&format!(
                "{talker}GGA,{t},{la},{lh},{lo},{oh},1,{used:02},{:.2},{:.1},M,-21.4,M,,",
                f.hdop, f.alt_m
            ))
        }
        None => sentence(&format!("{talker}GGA,{t},,,,,0,00,99.99,,,,,,")),
    }
}

/// ZDA: time and full date (local zone 00:00).
pub fn zda(talker: &str, l: &UtcLabel) -> String {
    sentence(&format!(
        "{talker}ZDA,{},{:02},{:02},{:04},00,00",
        hhmmss(l),
        l.day,
        l.month,
        l.year
    ))
}

/// GSA: 3-D fix with the used PRNs, or mode 1 (no fix).
pub fn gsa(talker: &str, fix: Option<&FixInfo>) -> String {
    match fix {
        Some(f) => {
            let mut prns: Vec<String> = f
                .sats
                .iter()
                .take(12)
                .map(|s| format!("{:02}", s.0))
                .collect();
            prns.resize(12, String::new());
            let h = f.hdop;
            sentence(&format!(
                "{talker}GSA,A,3,{},{:.2},{h:.2},{:.2}",
                prns.join(","),
                h * 1.6,
                h * 1.3
            ))
        }
        None => sentence(&format!("{talker}GSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99")),
    }
}

/// GSV: satellites in view, four per sentence; one `…GSV,1,1,00` sentence when none.
pub fn gsv(talker: &str, fix: Option<&FixInfo>) -> Vec<String> {
    let sats: &[(u8, u8, u16, u8)] = fix.map(|f| f.sats.as_slice()).unwrap_or(&[]);
    if sats.is_empty() {
        return vec![sentence(&format!("{talker}GSV,1,1,00"))];
    }
    let n = sats.len().div_ceil(4);
    sats.chunks(4)
        .enumerate()
        .map(|(i, c)| {
            let mut b = format!("{talker}GSV,{n},{},{:02}", i + 1, sats.len());
            for (prn, el, az, snr) in c {
                b.push_str(&format!(",{prn:02},{el:02},{az:03},{snr:02}"));
            }
            sentence(&b)
        })
        .collect()
}

/// Proprietary leap-second announcement `$PSIMLS,<TAI−UTC s>,<YYYYMMDD of the leap day or
/// empty>,<+1|-1|0>` — the kind of line timing receivers send in their own dialect (u-blox
/// `UBX-NAV-TIMELS`, Garmin `$PGRMF`); the timemaster reads it, other programs ignore it.
pub fn leap_announcement(tai_minus_utc: i64, leap_day: Option<(i32, u8, u8)>, delta: i8) -> String {
    let d = leap_day
        .map(|(y, m, d)| format!("{y:04}{m:02}{d:02}"))
        .unwrap_or_default();
    sentence(&format!("PSIMLS,{tai_minus_utc},{d},{delta:+}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> UtcLabel {
        UtcLabel {
            year: 2017,
            month: 1,
            day: 10,
            hour: 0,
            minute: 9,
            second: 41,
            nanos: 0,
        }
    }

    #[test]
    fn known_checksum() {
        // From a real u-blox 8 capture in the corpus.
        assert_eq!(
            sentence("GNVTG,,T,,M,0.029,N,0.053,K,A"),
            "$GNVTG,,T,,M,0.029,N,0.053,K,A*30\r\n"
        );
    }

    #[test]
    fn sentences_parse_with_the_nmea_crate() {
        let fix = FixInfo {
            lat_deg: 44.0688978,
            lon_deg: -121.3142713,
            alt_m: 1144.8,
            sats: vec![
                (2, 5, 307, 30),
                (3, 21, 174, 29),
                (4, 12, 38, 23),
                (6, 7, 270, 26),
                (9, 67, 312, 39),
            ],
            hdop: 1.01,
        };
        let l = label();
        let mut all = vec![
            rmc("GP", Some(&l), true, Some(&fix)),
            gga("GP", Some(&l), Some(&fix)),
            zda("GP", &l),
            gsa("GP", Some(&fix)),
        ];
        all.extend(gsv("GP", Some(&fix)));
        for s in &all {
            let parsed = nmea::parse_str(s.trim_end());
            assert!(parsed.is_ok(), "{s:?}: {parsed:?}");
        }
        match nmea::parse_str(all[0].trim_end()).unwrap() {
            nmea::ParseResult::RMC(r) => {
                assert_eq!(r.fix_time.unwrap().to_string(), "00:09:41");
                assert_eq!(r.fix_date.unwrap().to_string(), "2017-01-10");
                assert!((r.lat.unwrap() - 44.0688978).abs() < 1e-6);
                assert!((r.lon.unwrap() + 121.3142713).abs() < 1e-6);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_fix_forms() {
        let s = rmc("GN", None, false, None);
        assert_eq!(s, sentence("GNRMC,,V,,,,,,,,,,N"));
        assert_eq!(gsv("GP", None), vec![sentence("GPGSV,1,1,00")]);
        let l = label();
        assert!(gga("GP", Some(&l), None).contains(",0,00,"));
        assert!(
            leap_announcement(37, Some((2016, 12, 31)), 1).starts_with("$PSIMLS,37,20161231,+1*")
        );
    }
}
