//! Replaying a recorded NMEA capture one burst per second.
//!
//! A capture is split into bursts at each change of the time-of-day field of a time-bearing
//! sentence (RMC, GGA, GLL, ZDA, GNS, from any talker); lines without a time belong to the
//! current burst. `#` comment lines (the corpus header) are skipped; binary noise is kept and
//! replayed as it was recorded.

/// The time-of-day field of a time-bearing sentence, if the line is one.
fn time_field(line: &[u8]) -> Option<&[u8]> {
    let s = line.strip_prefix(b"$")?;
    if s.len() < 6 {
        return None;
    }
    let ty = &s[2..5];
    let idx = match ty {
        b"RMC" | b"GGA" | b"ZDA" | b"GNS" => 1,
        b"GLL" => 5,
        _ => return None,
    };
    let f = s.split(|b| *b == b',').nth(idx)?;
    (f.len() >= 6).then(|| &f[..6])
}

/// Splits a capture into bursts of raw lines (each line keeps its terminator).
pub fn split_bursts(capture: &[u8]) -> Vec<Vec<u8>> {
    let mut bursts: Vec<Vec<u8>> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut cur_time: Option<Vec<u8>> = None;
    for line in capture.split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b"#") {
            continue;
        }
        // A line may start with noise before its '$': look at the sentence part.
        let sentence = line
            .iter()
            .position(|b| *b == b'$')
            .map(|i| &line[i..])
            .unwrap_or(line);
        if let Some(t) = time_field(sentence) {
            match &cur_time {
                Some(ct) if ct.as_slice() != t => {
                    bursts.push(std::mem::take(&mut cur));
                    cur_time = Some(t.to_vec());
                }
                None => cur_time = Some(t.to_vec()),
                _ => {}
            }
        }
        cur.extend_from_slice(line);
    }
    if !cur.is_empty() {
        bursts.push(cur);
    }
    bursts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_time_changes() {
        let cap = b"# header\n$GPRMC,000001.00,A*00\r\n$GPGSV,1,1,00*79\r\n$GPGGA,000001.00*00\r\n$GPRMC,000002.00,A*00\r\n\x01\x02$GPGGA,000002.00*00\r\n$GPRMC,000003.00*00\r\n";
        let b = split_bursts(cap);
        assert_eq!(b.len(), 3);
        assert!(b[0].starts_with(b"$GPRMC,000001"));
        assert!(b[1].ends_with(b"$GPGGA,000002.00*00\r\n"));
        assert_eq!(b[2], b"$GPRMC,000003.00*00\r\n");
    }

    #[test]
    fn no_time_at_all_is_one_burst() {
        assert_eq!(split_bursts(b"garbage\n$GPGSV,1,1,00*79\n").len(), 1);
        assert!(split_bursts(b"").is_empty());
    }
}
