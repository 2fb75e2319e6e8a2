//! Child processes that do not outlive the program that started them.
//!
//! The lab, the campaign and the tests start daemons (firmware-sim, timemaster, timed, chronyd)
//! as child processes. When the parent is killed with SIGKILL (a harness timing out, the OOM
//! killer) it gets no chance to stop them, and they would run on as orphans holding their ports.
//! [`die_with_parent`] asks the kernel to send the child SIGKILL when its parent goes away
//! (`PR_SET_PDEATHSIG`).
//!
//! `unsafe`: one `pre_exec` hook. It runs in the child between `fork` and `exec` and calls only
//! `prctl` and `getppid`, which are async-signal-safe and allocate nothing.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the child that `cmd` starts receive SIGKILL when its parent dies.
///
/// The setting survives `exec` (for binaries that are not set-uid), so it holds through a
/// wrapper that execs the daemon (`ip netns exec`). Linux ties it to the *thread* that forked
/// the child: spawn from a thread that lives as long as the child should (the main thread, or
/// the test's own thread). If the parent died between `fork` and the `prctl`, the child has
/// already been re-parented and is never told: the hook sees that and the spawn fails.
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the hook runs in the forked child before exec; it calls only prctl(2) and
    // getppid(2) (async-signal-safe), touches no lock and allocates nothing on success.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Child;
    use std::time::{Duration, Instant};

    /// Starts `sleep 30` from a thread that then ends (the kernel's "parent" for the death
    /// signal is the forking thread), and says whether the child was gone within 2 s.
    fn dies_when_the_spawner_ends(set: bool) -> bool {
        let mut child: Child = std::thread::spawn(move || {
            let mut cmd = Command::new("sleep");
            cmd.arg("30");
            if set {
                die_with_parent(&mut cmd);
            }
            cmd.spawn().expect("spawn sleep")
        })
        .join()
        .unwrap();
        let t0 = Instant::now();
        let gone = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            if t0.elapsed() > Duration::from_secs(2) {
                break false;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let _ = child.kill();
        let _ = child.wait();
        gone
    }

    #[test]
    fn a_child_dies_with_its_parent() {
        assert!(dies_when_the_spawner_ends(true));
    }

    /// Negative control: without the setting the same child outlives its parent.
    #[test]
    fn without_it_a_child_outlives_its_parent() {
        assert!(!dies_when_the_spawner_ends(false));
    }
}
