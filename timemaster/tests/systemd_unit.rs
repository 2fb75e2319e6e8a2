//! `systemd/timemaster.service` passes `systemd-analyze verify` (with ExecStart pointed at the
//! binary this build produced), and a broken unit does not (so the check can fail).

use std::path::Path;
use std::process::Command;

fn verify(unit_text: &str, name: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, unit_text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
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
