//! The command line: validation errors name the line and key; virtual time is deterministic.

mod common;
use common::*;
use std::process::Command;

#[test]
fn validate_reports_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(
        &f,
        "seed = 1\n\n[[fault]]\nkind = \"antenna-loss\"\nat-s = 1.0\nbytes = 4\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("validate")
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3: bytes: not valid for kind antenna-loss"),
        "{err}"
    );
    std::fs::write(&f, "[gps]\nbaud = \"fast\"\n").unwrap();
    let out = Command::new(bin())
        .arg("validate")
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("line 2") && err.contains("baud"),
        "{err}"
    );
    let out = Command::new(bin())
        .arg("validate")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    std::fs::write(
        &f,
        "[[fault]]\nkind = \"atomic-unlock\"\nat-s = 3.0\nduration-s = 2.0\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("validate")
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("atomic-unlock"));
}

#[test]
fn virtual_time_is_deterministic_per_seed() {
    let dir = tempfile::tempdir().unwrap();
    let run = |seed: u64| {
        let f = dir.path().join(format!("s{seed}.toml"));
        std::fs::write(&f, format!("seed = {seed}\n[[fault]]\nkind = \"missing-pulses\"\nat-s = 10.0\nprobability = 0.5\n")).unwrap();
        let out = Command::new(bin())
            .args(["virtual", "--seconds", "600", "--scenario"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let (a, b, c) = (run(9), run(9), run(10));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&a)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 600);
    // With p = 0.5 some pulses are missing and some are not, only after t = 10 s.
    let missing = lines
        .iter()
        .skip(10)
        .filter(|l| l["gps_pulse_error_ns"].is_null())
        .count();
    assert!(missing > 200 && missing < 400, "{missing}");
    assert!(lines[5]["gps_pulse_error_ns"].is_i64());
}

#[test]
fn shipped_scenarios_validate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let out = Command::new(bin())
            .arg("validate")
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        n += 1;
    }
    assert!(n >= 3);
}
