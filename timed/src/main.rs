//! `timed`: the per-host TrueTime daemon.
//!
//! ```text
//! timed run -c /etc/truetime/timed.toml
//! timed validate -c FILE
//! ```

#![forbid(unsafe_code)]

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(version, about = "TrueTime per-host daemon")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon.
    Run {
        /// Configuration file.
        #[arg(short, long)]
        config: PathBuf,
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let r = match Cli::parse().cmd {
        Cmd::Validate { config } => timed::config::Config::load(&config)
            .map(|c| {
                println!(
                    "{}: ok ({} master(s), {} PHC(s), page {}, max-drift {} ppm)",
                    config.display(),
                    c.masters.len(),
                    c.phcs.len(),
                    c.shm_path.display(),
                    c.max_drift_ppm
                );
            })
            .map_err(|e| e.to_string()),
        Cmd::GenerateDocs { out } => ttsys::docs::write_docs(
            Cli::command(),
            "8",
            Some(&timed::config::manual()),
            &[("FILES", "`/etc/truetime/timed.toml`: the configuration, described in `timed.toml`(5).\n\n`/run/timed/page`: the TT.now() page (read it with `ttctl now`, libtruetime or the SDKs)."), ("SEE ALSO", "`timed.toml`(5), `ttctl`(1), `timemaster`(8); `timed.service` runs `timed run`, `timed-wait.service` holds `time-sync.target` until the page is trustworthy.")],
            &out,
        )
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", out.display())),
        Cmd::Run { config } => timed::config::Config::load(&config)
            .map_err(|e| e.to_string())
            .and_then(|c| timed::daemon::run(c).map_err(|e| e.to_string())),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("timed: {e}");
            ExitCode::FAILURE
        }
    }
}
