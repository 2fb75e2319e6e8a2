//! The `timed` binary: configuration errors name the line and the key; with every master dead
//! it keeps running and publishes a page that is not trustworthy; SIGTERM stops it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use ttcore::ClockStatus;

fn timed() -> Command {
    Command::new(env!("CARGO_BIN_EXE_timed"))
}

#[test]
fn validate_accepts_the_shipped_config_and_names_the_bad_line() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd/timed.toml");
    let out = timed().args(["validate", "-c", shipped]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
    let shipped_cfg = timed::config::Config::load(std::path::Path::new(shipped)).unwrap();
    assert!(
        shipped_cfg.masters.iter().all(|m| m.nts_ke.is_some()),
        "the example uses NTS for every master"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"127.0.0.1:0\"\nshm-path = \"/tmp/x\"\npoll-intervall-ms = 5\n",
    )
    .unwrap();
    let out = timed().args(["validate", "-c"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3") && err.contains("poll-intervall-ms"),
        "{err}"
    );
}

#[test]
fn with_every_master_dead_it_runs_on_and_publishes_an_untrusted_page() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page");
    let cfg = dir.path().join("timed.toml");
    // Nothing listens on these ports (bound and released just now).
    let dead = || std::net::SocketAddr::from(([127, 0, 0, 1], ttsys::port::free_port().unwrap()));
    let (a, b, c) = (dead(), dead(), dead());
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nshm-path = \"{}\"\npoll-interval-ms = 200\n\
             [[master]]\naddr = \"{a}\"\n[[master]]\naddr = \"{b}\"\n[[master]]\naddr = \"{c}\"\n",
            page.display()
        ),
    )
    .unwrap();
    let mut child = timed()
        .args(["run", "-c"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !page.exists() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        child.try_wait().unwrap().is_none(),
        "timed exited with every master dead"
    );
    let r = ttsys::shm::PageReader::open(&page).expect("timed publishes a page");
    let reading = r.read().unwrap().read_at(ttsys::clock::raw());
    // Not yet synchronized is its own state, not a fault: unsynchronized, never disrupted.
    assert_eq!(reading.status, ClockStatus::Unsynchronized);
    assert!(
        r.read_fast().at(ttsys::clock::raw()).is_none(),
        "no fast path on an untrusted page"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "timed ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
