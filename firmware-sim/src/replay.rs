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

/// The directory of the vendored receiver captures (`testdata/nmea/` at the repository's top,
/// see its README for their origin and licence). It is a source-tree path: it exists in a
/// checkout of the repository, not beside an installed binary.
pub fn captures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/nmea")
}

/// Why the vendored captures could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum CapturesError {
    /// The directory (or an entry of it) could not be read.
    #[error(
        "test data {dir} cannot be read ({source}); it is part of the repository \
         (testdata/nmea/): check out the whole tree"
    )]
    Unreadable {
        /// The directory.
        dir: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The directory holds no `*.log` capture.
    #[error("no *.log capture in {0}")]
    Empty(std::path::PathBuf),
}

/// The vendored captures (`*.log` in [`captures_dir`]), sorted by name.
///
/// # Errors
/// [`CapturesError`] naming the directory when it cannot be read or holds no capture: the test
/// data is part of the repository, so a missing directory means a damaged checkout, not
/// something to skip.
pub fn captures() -> Result<Vec<std::path::PathBuf>, CapturesError> {
    let dir = captures_dir();
    let unreadable = |source| CapturesError::Unreadable {
        dir: dir.clone(),
        source,
    };
    let mut v = Vec::new();
    for e in std::fs::read_dir(&dir).map_err(unreadable)? {
        let p = e.map_err(unreadable)?.path();
        if p.extension().is_some_and(|x| x == "log") {
            v.push(p);
        }
    }
    v.sort();
    if v.is_empty() {
        return Err(CapturesError::Empty(dir));
    }
    Ok(v)
}
