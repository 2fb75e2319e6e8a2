//! `ttlab`: the whole TrueTime stack on simulated hardware — firmware-sim, three timemasters
//! (two GPS, one armageddon) and a timed, as real processes on loopback — printing one line per
//! second: the TT.now() interval, ε, status, selected masters, and truth.
//!
//! ```text
//! cargo run --release --bin ttlab [-- --duration 60] [--json]
//! ```

#![forbid(unsafe_code)]

use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(version, about = "The TrueTime stack on simulated hardware")]
struct Cli {
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
    /// One JSON object per line (earliest_ns, latest_ns, epsilon_ns, status, truth_ns, …).
    #[arg(long)]
    json: bool,
    /// Working directory (default: a fresh one under the temp dir, removed at the end).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Keep the working directory (logs, configs, the page).
    #[arg(long)]
    keep: bool,
    /// Make master gps-b lie by this many milliseconds (and turn off the masters' cross-checks,
    /// so timed has to reject it).
    #[arg(long)]
    liar_ms: Option<f64>,
    /// NTS on every time transfer (timed ↔ masters and the masters' cross-checks), with a
    /// throwaway CA: unauthenticated replies are refused.
    #[arg(long)]
    secure: bool,
    /// One more source beside the three masters: a real chronyd (`local stratum 1`, serving
    /// this host's clock without touching it), polled as a plain NTP server (NTS with --secure).
    #[arg(long)]
    ntp_source: bool,
    /// timed's target-epsilon-ns: it polls as often as keeps ε under this between syncs; 0:
    /// a fixed poll every --poll-ms.
    #[arg(long, default_value_t = bench::lab::DEFAULT_TARGET_EPSILON_NS)]
    target_epsilon_ns: i64,
    /// timed's fixed poll interval (ms) with --target-epsilon-ns 0.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
}

#[allow(
    clippy::too_many_lines,
    reason = "the lab's main loop: start, then one line per second until Ctrl-C or the duration, reporting dead processes; one sequence."
)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("ttlab: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut opts = bench::lab::LabOptions {
        keep: cli.keep,
        liar_ns: cli.liar_ms.map(|ms| (ms * 1e6) as i64),
        secure: cli.secure,
        ntp_source: cli.ntp_source,
        target_epsilon_ns: (cli.target_epsilon_ns > 0).then_some(cli.target_epsilon_ns),
        poll_ms: cli.poll_ms,
        ..Default::default()
    };
    if let Some(d) = cli.dir {
        opts.dir = d;
    }
    if !cli.json {
        eprintln!(
            "ttlab: starting firmware-sim ×3, timemaster ×3 (gps-a, gps-b, arm-c), timed in {}",
            opts.dir.display()
        );
    }
    let mut lab = match bench::lab::Lab::start(opts) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ttlab: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !cli.json {
        for (name, url) in &lab.metrics {
            eprintln!("ttlab: {name} metrics at {url}");
        }
    }
    let rt = bench::lab::Lab::rt();
    let t0 = Instant::now();
    let mut reader = None;
    let mut tick = Instant::now();
    let mut rng = {
        use rand::SeedableRng;
        rand_chacha::ChaCha8Rng::seed_from_u64(ttsys::clock::raw_ns() as u64)
    };
    let mut reported_dead: Vec<String> = Vec::new();
    while !stop.load(Ordering::Relaxed)
        && cli.duration.is_none_or(|d| t0.elapsed().as_secs_f64() < d)
    {
        if reader.is_none() {
            reader = ttsys::shm::PageReader::open(&lab.page).ok();
        }
        let status = rt.block_on(lab.status()).ok();
        if let Some(r) = &reader {
            let mut j = lab.sample(r, status.as_ref());
            j.t_s = (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0;
            if cli.json {
                match serde_json::to_string(&j) {
                    Ok(line) => println!("{line}"),
                    Err(e) => eprintln!("ttlab: {e}"),
                }
            } else {
                let sel: Vec<String> = j
                    .masters
                    .iter()
                    .map(|m| format!("{}{}", m.id, if m.selected { "*" } else { "" }))
                    .collect();
                let (e, l, truth) = (j.earliest_ns, j.latest_ns, j.truth_ns);
                println!(
                    "{:>6.1}s  [{}, {}]  ε ±{:<10}  {:<14}  masters {:<24}  truth {}",
                    j.t_s,
                    ttcore::Timestamp::from_nanos(e),
                    ttcore::Timestamp::from_nanos(l),
                    ttcore::Span::from_nanos(j.epsilon_ns).to_string(),
                    j.status.as_str(),
                    sel.join(" "),
                    match (j.status.is_trustworthy(), j.contains_truth) {
                        (true, true) => format!(
                            "inside ({} from the midpoint)",
                            ttcore::Span::from_nanos(truth - (e / 2 + l / 2))
                        ),
                        (true, false) => "OUTSIDE".to_string(),
                        _ => format!(
                            "(no trustworthy interval: {})",
                            j.reason.as_deref().unwrap_or("timed not answering")
                        ),
                    },
                );
            }
        }
        for name in lab.exited() {
            if !reported_dead.contains(&name) {
                eprintln!("ttlab: {name} exited (see its log with --keep)");
                reported_dead.push(name);
            }
        }
        // One line per second, each at a random instant within its second: timed polls about
        // once a second too, and samples locked to the poll phase would see one point of the
        // ε sawtooth only (its floor or its peak), not its distribution.
        tick += Duration::from_secs(1);
        let at = tick + Duration::from_nanos(rand::Rng::random_range(&mut rng, 0..1_000_000_000));
        while Instant::now() < at && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    if !cli.json {
        eprintln!("ttlab: stopping");
    }
    lab.stop();
    ExitCode::SUCCESS
}
