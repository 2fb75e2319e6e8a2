//! The GPS receiver's NMEA input: lines from a serial device, each stamped with the raw clock
//! at the read that completed it. The core parses them; this thread only frames lines.

use super::{Input, open_serial};
use crate::daemon::Shared;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::time::Duration;
use ttsys::clock::raw_ns;

/// Reads NMEA lines from a serial device, reopening it after errors.
pub fn thread(
    path: PathBuf,
    baud: u32,
    name: &'static str,
    tx: Sender<Input>,
    shared: Arc<Shared>,
) {
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(mut port) = open_serial(&path, baud, Duration::from_millis(200), name, &shared)
        else {
            return;
        };
        shared.input(name, |s| {
            s.ok = true;
            s.detail = "open".into();
        });
        let mut line: Vec<u8> = Vec::with_capacity(128);
        let mut buf = [0u8; 1024];
        while !shared.stop.load(Ordering::Relaxed) {
            match port.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let raw = raw_ns();
                    for &b in &buf[..n] {
                        if b == b'\n' {
                            let text = String::from_utf8_lossy(&line).into_owned();
                            line.clear();
                            if tx
                                .send(Input::Nmea(text, ttcore::RawReading::from_nanos(raw)))
                                .is_err()
                            {
                                return;
                            }
                            shared.input(name, |s| {
                                s.events += 1;
                                s.last_raw = Some(raw);
                            });
                        } else if line.len() < 256 {
                            line.push(b);
                        } else {
                            // An overlong "line" is noise: drop it and resynchronize.
                            line.clear();
                            shared.input(name, |s| s.errors += 1);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => {
                    tracing::warn!("{name}: {}: {e}; reopening", path.display());
                    shared.input(name, |s| {
                        s.ok = false;
                        s.errors += 1;
                        s.detail = format!("read error: {e}");
                    });
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
