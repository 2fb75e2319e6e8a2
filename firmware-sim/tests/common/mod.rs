//! Shared helpers for firmware-sim's real-process tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A running `firmware-sim run`, killed on drop.
pub struct Sim {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub ready: serde_json::Value,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sim {
    pub fn path(&self, key: &str) -> PathBuf {
        PathBuf::from(
            self.ready[key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} in {}", self.ready)),
        )
    }

    /// Truth records written so far.
    pub fn truth(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path("truth_file"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_firmware-sim")
}

/// Starts the simulator with `scenario` (TOML text) for `duration` seconds, after `prepare`
/// has run with the directory (e.g. to bind the sockets the simulator sends to).
pub fn start(scenario: &str, duration: f64, extra: &[&str]) -> Sim {
    let dir = tempfile::tempdir().expect("tempdir");
    start_in(dir, scenario, duration, extra)
}

pub fn start_in(dir: tempfile::TempDir, scenario: &str, duration: f64, extra: &[&str]) -> Sim {
    let sc = dir.path().join("scenario.toml");
    std::fs::write(&sc, scenario).unwrap();
    let mut child = Command::new(bin())
        .args(["run", "--scenario"])
        .arg(&sc)
        .arg("--dir")
        .arg(dir.path().join("sim"))
        .args(["--duration", &duration.to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn firmware-sim");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("ready line");
    let ready: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(ready["event"], "ready");
    Sim { child, dir, ready }
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// A burst of bytes read from a serial port, with the receipt time of its first byte.
#[derive(Debug, Clone)]
pub struct ReadBurst {
    pub at_ns: i64,
    pub bytes: Vec<u8>,
}

impl ReadBurst {
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.bytes)
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    /// The RMC time-of-day and date fields of the first RMC in the burst.
    pub fn rmc(&self) -> Option<(String, String, String)> {
        self.lines().into_iter().find_map(|l| {
            let i = l.find("RMC,")?;
            let f: Vec<&str> = l[i..].split(',').collect();
            Some((
                f.get(1)?.to_string(),
                f.get(2)?.to_string(),
                f.get(9)?.to_string(),
            ))
        })
    }
}

/// Reads `path` with the `serialport` crate for `secs` seconds, splitting on gaps of 300 ms.
/// Stops early (returning what it has) on a read error such as a hang-up.
pub fn read_bursts(path: &Path, secs: f64) -> (Vec<ReadBurst>, Option<std::io::Error>) {
    let mut port = serialport::new(path.to_string_lossy(), 38_400)
        .timeout(Duration::from_millis(50))
        .open()
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut out: Vec<ReadBurst> = Vec::new();
    let mut last = Instant::now() - Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match port.read(&mut buf) {
            Ok(0) => return (out, Some(std::io::Error::other("eof"))),
            Ok(n) => {
                if last.elapsed() > Duration::from_millis(300) || out.is_empty() {
                    out.push(ReadBurst {
                        at_ns: now_ns(),
                        bytes: Vec::new(),
                    });
                }
                out.last_mut().unwrap().bytes.extend_from_slice(&buf[..n]);
                last = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// True if the line is `$body*HH` with a correct checksum.
pub fn checksum_ok(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('$') else {
        return false;
    };
    let Some((body, cs)) = rest.rsplit_once('*') else {
        return false;
    };
    cs.len() == 2 && u8::from_str_radix(cs, 16).ok() == Some(body.bytes().fold(0, |a, b| a ^ b))
}

/// POSIX seconds of an NMEA `hhmmss.ss` + `ddmmyy` pair (years 2000–2099).
pub fn posix_of(time: &str, date: &str) -> Option<i64> {
    if time.len() < 6 || date.len() != 6 {
        return None;
    }
    let n = |s: &str| s.parse::<i64>().ok();
    let (h, m, s) = (n(&time[0..2])?, n(&time[2..4])?, n(&time[4..6])?);
    let (d, mo, y) = (n(&date[0..2])?, n(&date[2..4])?, n(&date[4..6])? + 2000);
    Some(
        ttcore::leap::days_from_civil(y as i32, mo as u8, d as u8) * 86_400 + h * 3600 + m * 60 + s,
    )
}

/// Which faults the simulator declares for the GPS second whose true label is POSIX `s`.
pub fn faults_at(truth: &[serde_json::Value], device: &str, posix_s: i64) -> Option<Vec<String>> {
    truth
        .iter()
        .find(|r| r["device"] == device && r["truth_ns"].as_i64() == Some(posix_s * 1_000_000_000))
        .map(|r| {
            r["faults"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect()
        })
}

/// Reads everything from a reader into a string (for child stderr).
pub fn slurp(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}
