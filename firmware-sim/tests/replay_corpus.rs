//! Every vendored receiver capture (`testdata/nmea/`) replays onto a real pty without a crash, and every
//! byte of every burst arrives.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn corpus() -> Vec<PathBuf> {
    let v = firmware_sim::replay::captures().unwrap_or_else(|e| panic!("{e}"));
    assert!(v.len() >= 20, "corpus has only {} captures", v.len());
    v
}

struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn replay_one(capture: &PathBuf) -> Result<usize, String> {
    let data =
        std::fs::read(capture).unwrap_or_else(|e| panic!("reading {}: {e}", capture.display()));
    let expected: usize = firmware_sim::replay::split_bursts(&data)
        .iter()
        .map(Vec::len)
        .sum();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("replay");
    let mut child = KillOnDrop(
        Command::new(bin())
            .arg("replay")
            .arg(capture)
            .arg("--link")
            .arg(&link)
            .args(["--speed", "100"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    out.read_line(&mut ready).unwrap();
    if !ready.contains("\"ready\"") {
        return Err(format!("no ready line: {ready:?}"));
    }
    let mut port = serialport::new(link.to_string_lossy(), 115_200)
        .timeout(Duration::from_millis(100))
        .open()
        .map_err(|e| e.to_string())?;
    let mut got = 0usize;
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < expected && Instant::now() < deadline {
        match port.read(&mut buf) {
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(format!("read after {got} bytes: {e}")),
        }
    }
    let status = child.wait().unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    if !status.success() {
        return Err(format!(
            "exit {status}: {}",
            slurp(child.stderr.take().unwrap())
        ));
    }
    if !rest.contains("\"done\"") {
        return Err(format!("no done line: {rest:?}"));
    }
    if got != expected {
        return Err(format!("received {got} of {expected} bytes"));
    }
    Ok(got)
}

#[test]
fn every_capture_replays_onto_a_pty() {
    let files = corpus();
    let results: Vec<(PathBuf, Result<usize, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(files.len().div_ceil(4))
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|f| (f.clone(), replay_one(f)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let failed: Vec<_> = results.iter().filter(|r| r.1.is_err()).collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn every_capture_splits_into_parseable_bursts() {
    // The nmea crate must not panic on anything in the corpus; count what it accepts so a
    // regression that breaks splitting (nothing parses) fails.
    let (mut ok, mut total) = (0usize, 0usize);
    for f in corpus() {
        let data = std::fs::read(&f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
        let bursts = firmware_sim::replay::split_bursts(&data);
        assert!(!bursts.is_empty(), "{}", f.display());
        for b in bursts {
            for line in String::from_utf8_lossy(&b).lines() {
                let line = line.trim_end();
                if let Some(i) = line.find('$') {
                    total += 1;
                    if nmea::parse_str(&line[i..]).is_ok() {
                        ok += 1;
                    }
                }
            }
        }
    }
    assert!(
        ok * 2 > total,
        "only {ok} of {total} corpus sentences parsed"
    );
}
