//! Real third-party peers accept the simulator's output: gpsd decodes the GPS pty and chronyd
//! selects the PPS refclock. These need the Debian packages `gpsd`, `gpsd-clients` and `chrony`;
//! `.ci/run` installs them and runs these tests with `--ignored`.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    ttsys::port::free_port().expect("a free loopback port")
}

#[test]
#[ignore = "needs gpsd and gpspipe (Debian packages gpsd, gpsd-clients)"]
fn gpsd_reports_fixes_at_true_time() {
    let sim = start("[gps]\ncold-start-s = 2\n", 40.0, &[]);
    let pty = std::fs::read_link(sim.path("gps_link")).unwrap();
    let port = free_port();
    let _gpsd = Kill(
        Command::new("gpsd")
            .args(["-N", "-n", "-S", &port.to_string()])
            .arg(&pty)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gpsd"),
    );
    std::thread::sleep(Duration::from_millis(800));
    let out = Command::new("timeout")
        .args([
            "30",
            "gpspipe",
            "-w",
            "-n",
            "25",
            &format!("localhost:{port}"),
        ])
        .output()
        .expect("gpspipe");
    let received_at = now_ns();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut checked = 0;
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["class"] != "TPV" || v["mode"].as_i64().unwrap_or(0) < 2 {
            continue;
        }
        let t = v["time"].as_str().unwrap();
        // "YYYY-MM-DDTHH:MM:SS.sssZ" → POSIX seconds.
        let date = &t[..10];
        let (y, m, d) = (
            date[..4].parse().unwrap(),
            date[5..7].parse().unwrap(),
            date[8..10].parse().unwrap(),
        );
        let hms: Vec<i64> = t[11..19].split(':').map(|x| x.parse().unwrap()).collect();
        let s =
            ttcore::leap::days_from_civil(y, m, d) * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
        // gpspipe printed it within the last 30 s; the fix time must match truth (realtime)
        // within 1 s of when it was produced, so it lies in [start, received_at + 1 s].
        let recent = received_at / 1_000_000_000 - 35;
        assert!(
            s >= recent && s <= received_at / 1_000_000_000 + 1,
            "TPV time {t} not near truth"
        );
        checked += 1;
    }
    assert!(checked >= 3, "gpsd produced {checked} fixes:\n{text}");
    // And each decoded fix time matches the simulator's own record of that second's true label
    // (written once the second's burst is out: wait for the last one).
    std::thread::sleep(Duration::from_millis(1_500));
    let truth = sim.truth();
    for line in text
        .lines()
        .filter(|l| l.contains("\"TPV\"") && l.contains("\"time\""))
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["mode"].as_i64().unwrap_or(0) < 2 {
            continue;
        }
        let t = v["time"].as_str().unwrap();
        let label = format!("{}.000000000Z", &t[..19]);
        assert!(
            truth
                .iter()
                .any(|r| r["device"] == "gps" && r["label"] == label && r["fix"] == true),
            "gpsd time {t} is not a true label the simulator sent with a fix"
        );
    }
}

#[test]
#[ignore = "needs chronyd and chronyc (Debian package chrony)"]
fn chronyd_selects_the_pps_refclock() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let conf = d.join("chrony.conf");
    std::fs::write(
        &conf,
        format!(
            "refclock SOCK {d}/nmea.sock refid NMEA poll 0 noselect\n\
             refclock SOCK {d}/pps.sock refid PPS poll 0 lock NMEA\n\
             bindcmdaddress {d}/chronyd.sock\ncmdport 0\nport 0\npidfile {d}/chronyd.pid\n",
            d = d.display()
        ),
    )
    .unwrap();
    let _chronyd = Kill(
        Command::new("chronyd")
            .args(["-x", "-d", "-u", "root", "-f"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chronyd"),
    );
    // chronyd creates the SOCK sockets; wait for them.
    let t0 = Instant::now();
    while !(d.join("pps.sock").exists() && d.join("nmea.sock").exists()) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "chronyd did not create its sockets"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pps = d.join("pps.sock");
    let nmea = d.join("nmea.sock");
    let _sim = start(
        "[gps]\ncold-start-s = 1\n",
        40.0,
        &[
            "--pps-sock",
            pps.to_str().unwrap(),
            "--nmea-sock",
            nmea.to_str().unwrap(),
        ],
    );
    let sock = d.join("chronyd.sock");
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let out = Command::new("chronyc")
            .arg("-h")
            .arg(&sock)
            .args(["-n", "-c", "sources"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        // CSV: mode,state,name,stratum,poll,reach,lastrx,offset,raw offset,error (seconds).
        if let Some(l) = text.lines().find(|l| l.contains(",PPS,"))
            && l.starts_with("#,*,")
        {
            let f: Vec<&str> = l.split(',').collect();
            let offset: f64 = f[7].parse().unwrap();
            let raw: f64 = f[8].parse().unwrap();
            assert!(
                offset.abs() < 100e-6 && raw.abs() < 100e-6,
                "PPS offset too large: {l}"
            );
            let tracking = Command::new("chronyc")
                .arg("-h")
                .arg(&sock)
                .args(["-n", "tracking"])
                .output()
                .unwrap();
            let t = String::from_utf8_lossy(&tracking.stdout);
            assert!(t.contains("(PPS)"), "{t}");
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(35),
            "chronyd never selected PPS:\n{text}"
        );
    }
}
