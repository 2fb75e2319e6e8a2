//! `firmware-sim`: a GPS timing receiver and a chip-scale atomic clock, simulated on real
//! pseudo-terminals and sockets.
//!
//! ```text
//! firmware-sim run [--scenario FILE] [--dir DIR] [--duration S]   # the devices, in real time
//! firmware-sim replay CAPTURE [--link PATH] [--speed X]           # a recorded NMEA capture
//! firmware-sim validate FILE                                      # check a scenario file
//! firmware-sim virtual [--scenario FILE] --seconds N              # the models in virtual time
//! ```

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use firmware_sim::atomic::AtomicClock;
use firmware_sim::gps::GpsReceiver;
use firmware_sim::replay::split_bursts;
use firmware_sim::rt::{self, Paths, Pty, RunOptions};
use firmware_sim::scenario::Scenario;
use firmware_sim::truth::Truth;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use ttcore::NANOS_PER_SEC;
use ttcore::UtcLabel;

#[derive(Parser)]
#[command(
    version,
    about = "Simulated GPS receiver and atomic clock on ptys and sockets"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the devices in real time.
    Run {
        /// Scenario file (TOML); defaults apply without one.
        #[arg(long, short)]
        scenario: Option<PathBuf>,
        /// Directory for the pty links, sockets, lock line and truth log.
        #[arg(long, default_value_os_t = default_dir())]
        dir: PathBuf,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// SOCK socket for GPS PPS samples (default DIR/pps.sock).
        #[arg(long)]
        pps_sock: Option<PathBuf>,
        /// SOCK socket for NMEA time samples (default DIR/nmea.sock).
        #[arg(long)]
        nmea_sock: Option<PathBuf>,
        /// SOCK socket for the atomic clock's 1PPS (default DIR/atomic-pps.sock).
        #[arg(long)]
        atomic_pps_sock: Option<PathBuf>,
    },
    /// Replay a recorded NMEA capture onto a pty, one burst per second.
    Replay {
        /// The capture.
        capture: PathBuf,
        /// Symlink to create for the pty.
        #[arg(long, default_value_os_t = default_dir().join("replay"))]
        link: PathBuf,
        /// Bursts per second.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Repeat forever.
        #[arg(long)]
        repeat: bool,
    },
    /// Check a scenario file and print it back as the simulator understands it.
    Validate {
        /// The scenario.
        file: PathBuf,
    },
    /// Run the models in virtual time (no devices) and print each second as JSON.
    Virtual {
        /// Scenario file.
        #[arg(long, short)]
        scenario: Option<PathBuf>,
        /// Seconds to simulate.
        #[arg(long)]
        seconds: u64,
        /// UTC start (`YYYY-MM-DDTHH:MM:SSZ`); default 2026-01-01T00:00:00Z.
        #[arg(long)]
        start: Option<String>,
    },
}

fn default_dir() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("firmware-sim-{}", std::process::id()))
}

fn load(s: Option<&Path>) -> Result<Scenario, String> {
    match s {
        Some(p) => Scenario::load(p).map_err(|e| e.to_string()),
        None => Ok(Scenario::default()),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match real_main(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("firmware-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn stop_flag() -> Result<Arc<AtomicBool>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    Ok(stop)
}

#[allow(
    clippy::too_many_lines,
    reason = "one arm per subcommand (validate, run, replay, virtual): a dispatch table; the work is in the library."
)]
fn real_main(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Validate { file } => {
            let s = Scenario::load(&file).map_err(|e| e.to_string())?;
            println!(
                "{}: ok ({} faults, seed {})",
                file.display(),
                s.faults.len(),
                s.seed
            );
            for f in s.fault_list() {
                let end = f
                    .duration_s
                    .map_or("end".to_string(), |d| format!("{:.1}s", f.at_s + d));
                println!("  {:>8.1}s .. {:>8}  {}", f.at_s, end, f.kind);
            }
            Ok(())
        }
        Cmd::Run {
            scenario,
            dir,
            duration,
            pps_sock,
            nmea_sock,
            atomic_pps_sock,
        } => {
            let sc = load(scenario.as_deref())?;
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let mut paths = Paths::in_dir(&dir);
            if let Some(p) = pps_sock {
                paths.pps_sock = p;
            }
            if let Some(p) = nmea_sock {
                paths.nmea_sock = p;
            }
            if let Some(p) = atomic_pps_sock {
                paths.atomic_pps_sock = p;
            }
            let stop = stop_flag()?;
            rt::run(
                &sc,
                &RunOptions {
                    paths,
                    duration_s: duration,
                },
                stop,
                |info| {
                    println!("{info}");
                },
            )
            .map_err(|e| e.to_string())
        }
        Cmd::Replay {
            capture,
            link,
            speed,
            repeat,
        } => {
            let data =
                std::fs::read(&capture).map_err(|e| format!("{}: {e}", capture.display()))?;
            let bursts = split_bursts(&data);
            if let Some(d) = link.parent() {
                std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            }
            let pty = Pty::open(&link, 115_200).map_err(|e| format!("pty: {e}"))?;
            println!(
                "{}",
                json!({"event": "ready", "pty": pty.path, "link": link, "bursts": bursts.len()})
            );
            let stop = stop_flag()?;
            let period = (NANOS_PER_SEC as f64 / speed.max(0.001)) as i64;
            let mut t = rt::realtime_ns();
            loop {
                for b in &bursts {
                    t += period;
                    if !rt::sleep_until(t, &stop) {
                        let _ = std::fs::remove_file(&link);
                        return Ok(());
                    }
                    pty.write_lossy(b);
                }
                if !repeat {
                    break;
                }
            }
            // Give a reader time to drain the last burst.
            std::thread::sleep(std::time::Duration::from_millis(200));
            println!("{}", json!({"event": "done", "bursts": bursts.len()}));
            let _ = std::fs::remove_file(&link);
            stop.store(true, Ordering::Relaxed);
            Ok(())
        }
        Cmd::Virtual {
            scenario,
            seconds,
            start,
        } => {
            let sc = load(scenario.as_deref())?;
            let leap = sc.leap_table().map_err(|e| e.to_string())?;
            let start = start
                .or(sc.truth.start.clone())
                .unwrap_or("2026-01-01T00:00:00Z".into());
            let label = UtcLabel::parse_iso(&start).ok_or(format!("bad start {start:?}"))?;
            let truth = Truth::virtual_start(leap, &label, 0).map_err(|e| e.to_string())?;
            let t0 = truth.tai_at_realtime(0);
            let mut gps = GpsReceiver::new(sc.gps.clone(), sc.seed, t0 / NANOS_PER_SEC);
            let mut atomic = AtomicClock::new(&sc, t0);
            for k in 0..seconds as i64 {
                let s = t0 / NANOS_PER_SEC + k;
                let f = sc.active(k as f64);
                let g = gps.second(s, &truth, &f);
                let edge = atomic.pulse_edge(s);
                let st = atomic.state_at(edge, &f);
                println!(
                    "{}",
                    json!({
                        "t_s": k,
                        "label": g.true_label.to_string(),
                        "written_label": g.burst.as_ref().and_then(|b| b.label).map(|l| l.to_string()),
                        "gps_pulse_error_ns": g.pulse.map(|p| p.edge_error_ns),
                        "fix": g.burst.as_ref().is_some_and(|b| b.fix),
                        "atomic_pulse_error_ns": edge - s * NANOS_PER_SEC,
                        "atomic_locked": st.locked,
                        "faults": f.kinds.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
                    })
                );
            }
            Ok(())
        }
    }
}
