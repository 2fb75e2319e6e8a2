//! Helpers shared by bench's integration tests: run a binary, insist it succeeded.
#![allow(dead_code)]

use std::process::Command;

/// Runs `cmd`, asserts it exited successfully (showing its stderr otherwise), returns stdout.
pub fn stdout_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// [`stdout_ok`], parsed as one JSON value.
pub fn json_ok(cmd: &mut Command) -> serde_json::Value {
    let out = stdout_ok(cmd);
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}: {}", String::from_utf8_lossy(&out)))
}

/// `ttbench ARGS`, which must succeed and print one JSON value.
pub fn ttbench_json(args: &[&str]) -> serde_json::Value {
    json_ok(Command::new(env!("CARGO_BIN_EXE_ttbench")).args(args))
}

/// A child process killed (and reaped) when dropped, so a failing test leaves nothing running.
pub struct Kill(pub std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` (dying with the test), its stderr into `log`, `RUST_LOG=info`.
pub fn spawn_logged(cmd: &mut Command, log: &std::path::Path) -> Kill {
    Kill(
        ttsys::process::die_with_parent(cmd)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// What timed's page said over `secs`, read every 20 ms against `CLOCK_REALTIME` (the truth in
/// these tests): trustworthy samples, of them outside truth, the statuses seen, and the
/// half-widths of the trustworthy ones (ns, sorted).
pub fn watch_page(
    page: &std::path::Path,
    secs: f64,
) -> (u64, u64, Vec<ttcore::ClockStatus>, Vec<i64>) {
    let t0 = std::time::Instant::now();
    let mut reader = None;
    let (mut ok, mut outside, mut seen, mut eps) = (0, 0, Vec::new(), Vec::new());
    while t0.elapsed().as_secs_f64() < secs {
        if reader.is_none() {
            reader = ttsys::shm::PageReader::open(page).ok();
        }
        if let Some(r) = &reader
            && let Ok(d) = r.read()
        {
            let (raw, truth, _) = ttsys::clock::pair(ttsys::clock::realtime_ns);
            let raw = ttcore::RawReading::from_nanos(raw);
            let x = d.read_at(raw);
            if !seen.contains(&x.status) {
                seen.push(x.status);
            }
            if x.status.is_trustworthy() {
                ok += 1;
                eps.push(x.interval.epsilon().as_nanos());
                if !x.interval.contains(ttcore::Timestamp::from_nanos(truth)) {
                    outside += 1;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    eps.sort();
    (ok, outside, seen, eps)
}
