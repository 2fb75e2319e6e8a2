//! `timemaster`: a GPS/PPS and atomic-clock disciplined time master.
//!
//! ```text
//! timemaster run -c /etc/truetime/timemaster.toml
//! timemaster run --simulate                 # on firmware-sim's devices, no config needed
//! timemaster run -c FILE --simulate         # the file's settings, firmware-sim's devices
//! timemaster validate -c FILE
//! ```

#![forbid(unsafe_code)]

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use timemaster::config::{AtomicConfig, Config, GpsConfig, LockLine, PpsSource};

#[derive(Parser)]
#[command(
    version,
    about = "TrueTime master: disciplined reference with an honest uncertainty"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the master.
    Run {
        /// Configuration file.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Run on simulated devices (firmware-sim, in this process, on real ptys and sockets).
        #[arg(long)]
        simulate: bool,
        /// firmware-sim scenario for --simulate.
        #[arg(long)]
        sim_scenario: Option<PathBuf>,
        /// Directory for the simulated devices.
        #[arg(long)]
        sim_dir: Option<PathBuf>,
    },
    /// Check a configuration file.
    Validate {
        /// Configuration file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Write this program's man pages and shell completions under DIR (for packaging).
    #[command(hide = true)]
    GenerateDocs {
        /// Output directory (man/, completions/{bash,zsh,fish}/).
        #[arg(long)]
        out: PathBuf,
    },
}

const SIM_DEFAULT: &str = r#"
id = "sim-gps"
kind = "gps"
listen = "127.0.0.1:7001"
[gps]
nmea-device = "/dev/null"
pps = { source = "sock", path = "/dev/null" }
[atomic]
drift-ppt = 100
pps = { source = "sock", path = "/dev/null" }
"#;

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
            eprintln!("timemaster: {e}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Validate { config } => {
            let c = Config::load(&config).map_err(|e| e.to_string())?;
            println!(
                "{}: ok (id {}, kind {:?}, {} peer(s), gps {}, atomic {})",
                config.display(),
                c.id,
                c.kind,
                c.peers.len(),
                if c.gps.is_some() { "yes" } else { "no" },
                if c.atomic.is_some() { "yes" } else { "no" }
            );
            Ok(())
        }
        Cmd::GenerateDocs { out } => ttsys::docs::write_docs(
            Cli::command(),
            "8",
            Some(&timemaster::config::manual()),
            &[("FILES", "`/etc/truetime/timemaster.toml`: the configuration, described in `timemaster.toml`(5).\n\n`/var/lib/timemaster`: state (the NTS master keys)."), ("SEE ALSO", "`timemaster.toml`(5), `timed`(8), `ttctl`(1); `timemaster.service` runs `timemaster run`.")],
            &out,
        )
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", out.display())),
        Cmd::Run {
            config,
            simulate,
            sim_scenario,
            sim_dir,
        } => {
            let mut cfg =
                match &config {
                    Some(p) => Config::load(p).map_err(|e| e.to_string())?,
                    None if simulate => {
                        Config::from_toml(SIM_DEFAULT, "<built-in>").map_err(|e| e.to_string())?
                    }
                    None => return Err(
                        "no configuration: pass -c FILE, or --simulate to run on simulated devices"
                            .into(),
                    ),
                };
            if simulate {
                start_simulator(&mut cfg, sim_scenario, sim_dir)?;
            }
            timemaster::daemon::run(cfg, ttcore::LeapTable::builtin()).map_err(|e| e.to_string())
        }
    }
}

/// Starts firmware-sim's devices in this process and points the configuration at them.
fn start_simulator(
    cfg: &mut Config,
    scenario: Option<PathBuf>,
    dir: Option<PathBuf>,
) -> Result<(), String> {
    use firmware_sim::rt::{Paths, RunOptions};
    let sc = match &scenario {
        Some(p) => firmware_sim::scenario::Scenario::load(p).map_err(|e| e.to_string())?,
        None => firmware_sim::scenario::Scenario::default(),
    };
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("timemaster-sim-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let paths = Paths::in_dir(&dir);
    let gps = cfg.gps.take();
    cfg.gps = gps.map(|g| GpsConfig {
        nmea_device: paths.gps_link.clone(),
        pps: PpsSource::Sock {
            path: paths.pps_sock.clone(),
        },
        cable_delay_ns: sc.gps.cable_delay_ns,
        ..g
    });
    let atomic = cfg.atomic.take();
    cfg.atomic = atomic.map(|a| AtomicConfig {
        telemetry_device: Some(paths.atomic_link.clone()),
        pps: PpsSource::Sock {
            path: paths.atomic_pps_sock.clone(),
        },
        lock_line: Some(LockLine::File {
            path: paths.lock_gpio.clone(),
        }),
        ..a
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::spawn(move || {
        let r = firmware_sim::rt::run(
            &sc,
            &RunOptions {
                paths,
                duration_s: None,
            },
            stop,
            |info| {
                let _ = tx.send(info);
            },
        );
        if let Err(e) = r {
            tracing::error!("simulated devices stopped: {e}");
        }
    });
    let info = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .map_err(|_| "simulated devices did not start".to_string())?;
    tracing::info!("simulated devices: {info}");
    Ok(())
}
