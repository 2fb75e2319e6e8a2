//! Real-process test: the atomic clock's telemetry port, lock line and 1PPS.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};
use ttcore::sock::SockSample;

fn ask(port: &mut Box<dyn serialport::SerialPort>, cmd: &str) -> String {
    port.clear(serialport::ClearBuffer::Input).ok();
    port.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
    let mut r = BufReader::new(port.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line)
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    line.trim_end().to_string()
}

#[test]
fn telemetry_lock_line_and_pulses_follow_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let pps_path = dir.path().join("apps.sock");
    let pps = UnixDatagram::bind(&pps_path).unwrap();
    pps.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let sc = r#"
[atomic]
warmup-s = 3.0
[[fault]]
kind = "atomic-unlock"
at-s = 5.0
duration-s = 3.0
[[fault]]
kind = "atomic-warmup"
at-s = 10.0
"#;
    let sim = start_in(
        dir,
        sc,
        16.0,
        &["--atomic-pps-sock", pps_path.to_str().unwrap()],
    );
    let mut port = serialport::new(sim.path("atomic_link").to_string_lossy(), 57_600)
        .timeout(Duration::from_secs(2))
        .open()
        .unwrap();
    assert_eq!(ask(&mut port, "!6"), firmware_sim::atomic::HEADER);
    assert_eq!(ask(&mut port, "!FD1500"), "Steer,1500");
    assert_eq!(ask(&mut port, "!FA-500"), "Steer,1000");
    assert_eq!(ask(&mut port, "!F?"), "Steer,1000");
    assert_eq!(ask(&mut port, "!MD"), "Discipline,1");
    assert_eq!(ask(&mut port, "!XYZ"), "ERR,unknown command");
    let gpio = sim.path("lock_gpio");
    let t0 = Instant::now();
    let mut samples: Vec<(f64, u8, u16, String)> = Vec::new();
    let mut pulses: Vec<(f64, SockSample)> = Vec::new();
    let mut buf = [0u8; 64];
    while t0.elapsed() < Duration::from_secs(15) {
        let line = ask(&mut port, "!^");
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 17, "{line}");
        let status: u8 = f[0].parse().unwrap();
        let alarm = u16::from_str_radix(f[1].trim_start_matches("0x"), 16).unwrap();
        let lock = std::fs::read_to_string(&gpio)
            .unwrap_or_default()
            .trim()
            .to_string();
        samples.push((t0.elapsed().as_secs_f64(), status, alarm, lock));
        let until = Instant::now() + Duration::from_millis(250);
        while Instant::now() < until {
            if let Ok(n) = pps.recv(&mut buf) {
                pulses.push((
                    t0.elapsed().as_secs_f64(),
                    SockSample::decode(&buf[..n]).unwrap(),
                ));
            }
        }
    }
    let warm = |s: &(f64, u8, u16, String)| (1..=8).contains(&s.1) && s.2 == 0x0080;
    let locked = |s: &(f64, u8, u16, String)| s.1 == 0 && s.2 == 0 && s.3 == "1";
    let unlocked = |s: &(f64, u8, u16, String)| s.1 == 9 && s.2 == 0x0010;
    // Phases, with 0.6 s margins for start-up and polling: warm-up, lock, unlock, lock,
    // warm-up again, lock.
    let phase = |a: f64, b: f64| {
        samples
            .iter()
            .filter(move |s| s.0 > a + 0.6 && s.0 < b - 0.6)
    };
    assert!(
        phase(0.0, 3.0).count() > 0 && phase(0.0, 3.0).all(warm),
        "{samples:?}"
    );
    assert!(phase(3.0, 5.0).all(locked), "{samples:?}");
    assert!(
        phase(5.0, 8.0).count() > 0 && phase(5.0, 8.0).all(unlocked),
        "{samples:?}"
    );
    assert!(
        phase(5.0, 8.0).all(|s| s.3 == "0"),
        "lock line high while unlocked: {samples:?}"
    );
    assert!(phase(8.0, 10.0).all(locked), "{samples:?}");
    assert!(
        phase(10.0, 13.0).count() > 0 && phase(10.0, 13.0).all(warm),
        "{samples:?}"
    );
    assert!(
        phase(13.0, 15.0).count() > 0 && phase(13.0, 15.0).all(locked),
        "{samples:?}"
    );
    // One pulse a second, all pulses; when locked their error is tens of ns at most (30 ppt
    // and 1e-12 steering over seconds, plus 250 ns accumulated while warming: < 1 µs).
    assert!(pulses.len() >= 13, "{} pulses", pulses.len());
    for (_, p) in &pulses {
        assert!(p.pulse && p.offset_ns().abs() < 2_000_000, "{p:?}");
    }
}
