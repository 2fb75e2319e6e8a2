//! `systemd/timemaster.service` passes `systemd-analyze verify` (with ExecStart pointed at the
//! binary this build produced), and a broken unit does not (so the check can fail).

mod common;

use std::path::Path;
use std::process::Command;

fn verify(unit_text: &str, name: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, unit_text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        // The units' Documentation= man pages exist once the packages install them
        // (packaging/check-debs verifies the installed units with that check on).
        .arg("--man=no")
        .arg(&p)
        .output()
        .expect("systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success()
            && !text.contains("Unknown key")
            && !text.contains("is not executable"),
        text,
    )
}

#[test]
#[ignore = "needs systemd-analyze (Debian package systemd)"]
fn timemaster_unit_verifies() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/timemaster.service");
    let text = std::fs::read_to_string(unit)
        .unwrap()
        .replace("/usr/bin/timemaster", env!("CARGO_BIN_EXE_timemaster"));
    let (ok, out) = verify(&text, "timemaster.service");
    assert!(ok, "{out}");
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "User=timemaster",
        "ProtectSystem=strict",
        "DevicePolicy=closed",
        "CapabilityBoundingSet=",
    ] {
        assert!(text.contains(key), "unit lacks {key}");
    }
    let (ok, _) = verify(
        &text.replace("Type=notify", "Type=notify\nBogusKey=1"),
        "bad.service",
    );
    assert!(!ok, "a unit with an unknown key passed");
}

#[test]
#[ignore = "needs systemd-analyze (Debian package systemd)"]
fn timed_units_verify() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd");
    let timed = common::workspace_bin("timed", "timed");
    let ttctl = common::workspace_bin("ttclient", "ttctl");
    for (unit, keys) in [
        (
            "timed.service",
            &[
                "Type=notify",
                "WatchdogSec=",
                "RuntimeDirectoryPreserve=yes",
                "ProtectClock=yes",
                "User=timed",
            ][..],
        ),
        (
            "timed-wait.service",
            &[
                "Before=time-sync.target",
                "Type=oneshot",
                "RemainAfterExit=yes",
            ][..],
        ),
    ] {
        let text = std::fs::read_to_string(root.join(unit))
            .unwrap()
            .replace("/usr/bin/timed", timed.to_str().unwrap())
            .replace("/usr/bin/ttctl", ttctl.to_str().unwrap());
        // Both units in one directory so the dependency between them resolves.
        std::fs::write(dir.path().join(unit), &text).unwrap();
        for k in keys {
            assert!(text.contains(k), "{unit} lacks {k}");
        }
    }
    for unit in ["timed.service", "timed-wait.service"] {
        let out = Command::new("systemd-analyze")
            .arg("verify")
            // The units' Documentation= man pages exist once the packages install them
            // (packaging/check-debs verifies the installed units with that check on).
            .arg("--man=no")
            .arg(dir.path().join(unit))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success()
                && !text.contains("Unknown key")
                && !text.contains("is not executable"),
            "{unit}: {text}"
        );
    }
}
