//! The example configurations in `systemd/` validate, and they use NTS.

use std::process::Command;

#[test]
fn the_shipped_master_configs_validate_and_use_nts() {
    for name in ["timemaster-gps.toml", "timemaster-armageddon.toml"] {
        let path = format!("{}/../systemd/{name}", env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(env!("CARGO_BIN_EXE_timemaster"))
            .args(["validate", "-c", &path])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c = timemaster::config::Config::load(std::path::Path::new(&path)).unwrap();
        assert!(c.nts.is_some(), "{name} serves NTS");
        assert!(
            c.management.certificate.is_some(),
            "{name}: gRPC beyond loopback serves TLS"
        );
        assert!(
            c.peers.iter().all(|p| p.nts_ke.is_some()),
            "{name}: every peer on NTS"
        );
    }
}
