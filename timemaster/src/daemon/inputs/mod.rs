//! The input threads, one file per input (as ntpd-rs's `pps_source` / `sock_source`): each reads
//! its device, stamps every event with the raw clock at which it arrived, sends it to the core
//! thread as an [`Input`], and keeps its [`InputStat`] for the status.
//!
//! A device that is missing or fails is retried; its errors show in its status and the other
//! inputs go on.

pub mod atomic;
pub mod nmea;
pub mod pps;

use super::Shared;
use crate::core::telemetry::Telemetry;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;
use ttcore::{OffsetInterval, RawReading};

/// An event for the core thread, stamped with the raw reading at which it happened.
#[derive(Debug)]
pub enum Input {
    /// A GPS pulse edge.
    GpsPulse(RawReading),
    /// One NMEA line and its receipt time.
    Nmea(String, RawReading),
    /// An atomic 1PPS edge.
    AtomicPulse(RawReading),
    /// One atomic telemetry answer.
    AtomicTelemetry(Telemetry, RawReading),
    /// Lock line level.
    AtomicLock(bool, RawReading),
    /// A peer round: raw reading, per-peer offset intervals (None = not usable).
    PeerRound(RawReading, Vec<Option<OffsetInterval>>),
}

/// Per-input statistics shown in Status.
#[derive(Clone, Debug, Default)]
pub struct InputStat {
    /// Name ("nmea", "pps", …).
    pub name: String,
    /// Device or socket.
    pub source: String,
    /// Working right now.
    pub ok: bool,
    /// Last error or state.
    pub detail: String,
    /// Events delivered.
    pub events: u64,
    /// Errors seen.
    pub errors: u64,
    /// Raw reading of the last event.
    pub last_raw: Option<i64>,
}

/// Adds input `name` reading `source` to the status, as starting.
pub(super) fn register(shared: &Shared, name: &str, source: &Path) {
    shared
        .inputs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(InputStat {
            name: name.into(),
            source: source.display().to_string(),
            detail: "starting".into(),
            ..Default::default()
        });
}

/// Opens the serial device at `path` (input buffer cleared), retrying every second until it
/// opens or the daemon stops (`None`). Every failure counts in the input's status; the first
/// of a run of failures is logged.
pub(super) fn open_serial(
    path: &Path,
    baud: u32,
    timeout: Duration,
    name: &'static str,
    shared: &Shared,
) -> Option<Box<dyn serialport::SerialPort>> {
    let mut logged = false;
    while !shared.stop.load(Ordering::Relaxed) {
        match serialport::new(path.to_string_lossy(), baud)
            .timeout(timeout)
            .open()
        {
            Ok(port) => {
                tracing::info!("{name}: reading {}", path.display());
                let _ = port.clear(serialport::ClearBuffer::Input);
                return Some(port);
            }
            Err(e) => {
                if !logged {
                    tracing::warn!(
                        "{name}: cannot open {}: {e}; retrying every second",
                        path.display()
                    );
                    logged = true;
                }
                shared.input(name, |s| {
                    s.ok = false;
                    s.errors += 1;
                    s.detail = format!("cannot open: {e}");
                });
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    None
}
