//! Pulse-per-second inputs, GPS or atomic, from one of three sources: gpsd's SOCK datagrams,
//! a kernel PPS device (`/dev/ppsN`), or a GPIO line's edge events. Each edge is converted to
//! the raw clock and sent to the core.

use super::Input;
use crate::config::PpsSource;
use crate::daemon::Shared;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::time::Duration;
use ttcore::NANOS_PER_SEC;
use ttcore::sock::SockSample;
use ttsys::clock;

/// The exact system time of a PPS edge from a SOCK sample: `offset` = (true second − edge
/// system time), and `tv` is the edge truncated to µs, so the edge is the nearest whole second
/// of `tv + offset`, minus `offset`.
pub fn sock_edge_sys_ns(s: &SockSample) -> i64 {
    let t = s.true_time_ns();
    let second = (t + NANOS_PER_SEC / 2).div_euclid(NANOS_PER_SEC) * NANOS_PER_SEC;
    second - s.offset_ns()
}

/// Where one pulse input's edges go: the core (as a GPS or an atomic pulse) and the status.
struct Sink {
    name: &'static str,
    atomic: bool,
    tx: Sender<Input>,
    shared: Arc<Shared>,
}

impl Sink {
    fn pulse(&self, raw: i64) {
        let _ = self.tx.send(if self.atomic {
            Input::AtomicPulse(ttcore::RawReading::from_nanos(raw))
        } else {
            Input::GpsPulse(ttcore::RawReading::from_nanos(raw))
        });
        self.shared.input(self.name, |s| {
            s.events += 1;
            s.ok = true;
            s.last_raw = Some(raw);
            s.detail = "pulses arriving".into();
        });
    }

    fn fail(&self, e: String) {
        self.shared.input(self.name, |s| {
            s.ok = false;
            s.errors += 1;
            s.detail = e;
        });
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }
}

/// Reads pulses from `src` until the daemon stops; `atomic` says whose pulse it is.
pub fn thread(
    src: PpsSource,
    name: &'static str,
    atomic: bool,
    tx: Sender<Input>,
    shared: Arc<Shared>,
) {
    let sink = Sink {
        name,
        atomic,
        tx,
        shared,
    };
    match src {
        PpsSource::Sock { path } => sock(&path, &sink),
        PpsSource::Kernel { device } => kernel(&device, &sink),
        PpsSource::Gpio { chip, line } => gpio(&chip, line, &sink),
    }
}

/// gpsd's SOCK protocol: a datagram per second on a Unix socket we bind.
fn sock(path: &Path, sink: &Sink) {
    let name = sink.name;
    let _ = std::fs::remove_file(path);
    let sock = match UnixDatagram::bind(path) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(
                "{name}: cannot bind {}: {e}; this input is off",
                path.display()
            );
            sink.fail(format!("cannot bind: {e}"));
            return;
        }
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 128];
    while !sink.stopped() {
        match sock.recv(&mut buf) {
            Ok(n) => match SockSample::decode(&buf[..n]) {
                Ok(s) if s.pulse => sink.pulse(clock::realtime_to_raw(sock_edge_sys_ns(&s))),
                Ok(_) => sink
                    .shared
                    .input(name, |s| s.detail = "ignoring pulse = 0 samples".into()),
                Err(e) => {
                    tracing::warn!("{name}: bad SOCK datagram: {e}");
                    sink.fail(format!("bad datagram: {e}"));
                }
            },
            Err(e) if ttsys::udp::is_timeout(&e) => {}
            Err(e) => {
                sink.fail(e.to_string());
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    let _ = std::fs::remove_file(path);
}

/// A kernel PPS device, reopened after errors.
fn kernel(device: &Path, sink: &Sink) {
    while !sink.stopped() {
        let mut dev = match ttsys::pps::KernelPps::open(device) {
            Ok(d) => d,
            Err(e) => {
                sink.fail(e.to_string());
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        while !sink.stopped() {
            match dev.fetch(1500) {
                Ok(Some((rt, _))) => sink.pulse(clock::realtime_to_raw(rt)),
                Ok(None) => sink
                    .shared
                    .input(sink.name, |s| s.detail = "no pulse in 1.5 s".into()),
                Err(e) => {
                    tracing::warn!("{}: {e}", sink.name);
                    sink.fail(e.to_string());
                    std::thread::sleep(Duration::from_secs(1));
                    break;
                }
            }
        }
    }
}

/// Rising edges of a GPIO line, re-requested after errors.
fn gpio(chip: &Path, line: u32, sink: &Sink) {
    use gpio_cdev::{Chip, EventRequestFlags, LineRequestFlags};
    while !sink.stopped() {
        let events = Chip::new(chip)
            .and_then(|mut c| c.get_line(line))
            .and_then(|l| {
                l.events(
                    LineRequestFlags::INPUT,
                    EventRequestFlags::RISING_EDGE,
                    "timemaster-pps",
                )
            });
        match events {
            Ok(ev) => {
                for e in ev {
                    match e {
                        // Kernel ≥ 5.7 stamps line events with CLOCK_MONOTONIC.
                        Ok(e) => sink.pulse(clock::monotonic_to_raw(e.timestamp() as i64)),
                        Err(e) => {
                            sink.fail(e.to_string());
                            break;
                        }
                    }
                    if sink.stopped() {
                        return;
                    }
                }
            }
            Err(e) => {
                sink.fail(format!("{}:{line}: {e}", chip.display()));
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sock_edge_recovers_nanoseconds() {
        // Edge 48 ns after the second, truncated to µs in tv.
        let s = SockSample::from_nanos(1_790_000_000_000_000_048, -48, true, 0);
        assert_eq!(sock_edge_sys_ns(&s), 1_790_000_000_000_000_048);
        // And for an edge 350 ns before the second.
        let s = SockSample::from_nanos(1_789_999_999_999_999_650, 350, true, 0);
        assert_eq!(sock_edge_sys_ns(&s), 1_789_999_999_999_999_650);
    }
}
