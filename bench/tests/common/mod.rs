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
