//! Atomic-clock inputs other than its pulse: the telemetry query over serial, and the lock
//! line (a file holding 0/1, or a GPIO line).

use super::{Input, open_serial};
use crate::config::LockLine;
use crate::core::telemetry;
use crate::daemon::Shared;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};
use ttsys::clock::raw_ns;

/// Why the lock line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// The file holds something other than 0 or 1.
    #[error("unexpected content {0:?} (want 0 or 1)")]
    Content(String),
    /// The GPIO line could not be opened.
    #[error("{}:{line}: {source}", chip.display())]
    Gpio {
        /// The chip.
        chip: PathBuf,
        /// The line offset.
        line: u32,
        /// The error.
        #[source]
        source: gpio_cdev::Error,
    },
    /// The GPIO line could not be read.
    #[error("cannot read the line: {0}")]
    Read(String),
}

/// Queries the telemetry every second, reopening the line after errors.
pub fn telemetry_thread(path: PathBuf, baud: u32, tx: Sender<Input>, shared: Arc<Shared>) {
    let name = "atomic-telemetry";
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(mut port) = open_serial(&path, baud, Duration::from_millis(500), name, &shared)
        else {
            return;
        };
        loop {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            if port.write_all(b"!^\r\n").is_err() {
                break;
            }
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            let deadline = Instant::now() + Duration::from_millis(800);
            let mut broken = false;
            while Instant::now() < deadline {
                match port.read(&mut b) {
                    Ok(1) if b[0] == b'\n' => break,
                    Ok(1) => {
                        if line.len() < 256 {
                            line.push(b[0]);
                        }
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                    Err(_) => {
                        broken = true;
                        break;
                    }
                }
            }
            if broken {
                break;
            }
            let raw = raw_ns();
            let text = String::from_utf8_lossy(&line).into_owned();
            match telemetry::parse(&text) {
                Ok(t) => {
                    let _ = tx.send(Input::AtomicTelemetry(
                        t,
                        ttcore::RawReading::from_nanos(raw),
                    ));
                    shared.input(name, |s| {
                        s.ok = true;
                        s.events += 1;
                        s.last_raw = Some(raw);
                        s.detail = format!("status {}, alarm {:#06x}", t.status, t.alarm);
                    });
                }
                Err(e) => shared.input(name, |s| {
                    s.errors += 1;
                    s.detail = format!("unparseable answer {:?}: {e}", text.trim());
                }),
            }
            std::thread::sleep(Duration::from_millis(1000));
        }
        shared.input(name, |s| {
            s.ok = false;
            s.detail = "line lost; reopening".into();
        });
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Reads the lock line every 100 ms; sends a change at once and the level at least every second.
pub fn lock_line_thread(line: LockLine, tx: Sender<Input>, shared: Arc<Shared>) {
    let name = "lock-line";
    let read: Box<dyn FnMut() -> Result<bool, LineError>> = match line {
        LockLine::File { path } => Box::new(move || {
            let s = std::fs::read_to_string(&path)?;
            match s.trim() {
                "1" => Ok(true),
                "0" => Ok(false),
                other => Err(LineError::Content(other.into())),
            }
        }),
        LockLine::Gpio {
            chip,
            line,
            active_low,
        } => {
            use embedded_hal::digital::InputPin;
            let mut pin: Option<linux_embedded_hal::CdevPin> = None;
            Box::new(move || {
                let p = match &mut pin {
                    Some(p) => p,
                    None => {
                        let gpio = |source| LineError::Gpio {
                            chip: chip.clone(),
                            line,
                            source,
                        };
                        let handle = gpio_cdev::Chip::new(&chip)
                            .and_then(|mut c| c.get_line(line))
                            .and_then(|l| {
                                l.request(gpio_cdev::LineRequestFlags::INPUT, 0, "timemaster-lock")
                            })
                            .map_err(gpio)?;
                        pin.insert(linux_embedded_hal::CdevPin::new(handle).map_err(gpio)?)
                    }
                };
                let high = p.is_high().map_err(|e| LineError::Read(format!("{e:?}")))?;
                Ok(high != active_low)
            })
        }
    };
    let mut read = read;
    let mut last: Option<bool> = None;
    let mut last_sent = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        match read() {
            Ok(v) => {
                let raw = raw_ns();
                if last != Some(v) || last_sent.elapsed() > Duration::from_secs(1) {
                    let _ = tx.send(Input::AtomicLock(v, ttcore::RawReading::from_nanos(raw)));
                    last = Some(v);
                    last_sent = Instant::now();
                }
                shared.input(name, |s| {
                    s.ok = true;
                    s.events += 1;
                    s.last_raw = Some(raw);
                    s.detail = if v {
                        "locked".into()
                    } else {
                        "unlocked".into()
                    };
                });
            }
            Err(e) => {
                if last.is_some() {
                    // A line we cannot read is not a lock.
                    let _ = tx.send(Input::AtomicLock(
                        false,
                        ttcore::RawReading::from_nanos(raw_ns()),
                    ));
                    last = None;
                }
                shared.input(name, |s| {
                    s.ok = false;
                    s.errors += 1;
                    s.detail = e.to_string();
                });
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
