//! `ttctl`: the operator's view of TrueTime, in the spirit of `chronyc tracking` / `sources`.
//! Every command prints a human-readable report, or one JSON object with `--json`.
//!
//! ```text
//! ttctl now    [--page /run/timed/page] [--addr 127.0.0.1:7100] [--json]
//! ttctl status [--addr 127.0.0.1:7100] [--json]
//! ttctl wait   [--page /run/timed/page] [--timeout-s 600]
//! ttctl master --addr 127.0.0.1:7001 [--json]
//! ```

#![forbid(unsafe_code)]
// The status objects are large json! literals.
#![recursion_limit = "256"]

use clap::{CommandFactory, Parser, Subcommand};
use serde_json::json;
use std::process::ExitCode;
use std::time::Duration;
use ttproto::v1;

#[derive(Parser)]
#[command(name = "ttctl", version, about = "TrueTime operator CLI")]
struct Cli {
    /// PEM CA certificates to trust when the daemon's gRPC listener serves TLS (its
    /// `[management] certificate`); without it ttctl speaks plaintext (loopback listeners).
    #[arg(long, global = true)]
    ca: Option<std::path::PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write this program's man pages and shell completions under DIR (for packaging).
    #[command(hide = true)]
    GenerateDocs {
        /// Output directory (man/, completions/{bash,zsh,fish}/).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// TT.now(): the interval, from timed's shared-memory page (or its gRPC service when the page
    /// is absent).
    Now {
        /// The page.
        #[arg(long, default_value = "/run/timed/page")]
        page: std::path::PathBuf,
        /// timed's gRPC address, used when the page cannot be opened.
        #[arg(long, default_value = "127.0.0.1:7100")]
        addr: String,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Wait until the page offers a trustworthy interval (for timed-wait.service); exit 1 on
    /// timeout.
    Wait {
        /// The page.
        #[arg(long, default_value = "/run/timed/page")]
        page: std::path::PathBuf,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600.0)]
        timeout_s: f64,
    },
    /// timed's status: the model, the assumptions, and each master (selected or why not).
    Status {
        /// timed's gRPC address.
        #[arg(long, default_value = "127.0.0.1:7100")]
        addr: String,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Status of a time master.
    Master {
        /// The master's gRPC address (host:port).
        #[arg(long, default_value = "127.0.0.1:7001")]
        addr: String,
        /// One JSON object instead of the report.
        #[arg(long)]
        json: bool,
        /// RPC timeout in milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
}

fn kind_name(k: i32) -> &'static str {
    ttproto::kind_from_wire(k).map_or("unknown", ttcore::MasterKind::as_str)
}

fn status_name(s: i32) -> &'static str {
    ttproto::status_from_wire(s).as_str()
}

fn master_json(s: &v1::MasterStatus) -> serde_json::Value {
    let c = s.components.unwrap_or_default();
    json!({
        "id": s.id,
        "kind": kind_name(s.kind),
        "status": status_name(s.status),
        "reason": s.reason,
        "reference": s.reference,
        "epsilon_ns": s.epsilon_ns,
        "epsilon_components_ns": {
            "pps_jitter": c.pps_jitter_ns, "qerr": c.qerr_ns, "calibration": c.calibration_ns,
            "filter": c.filter_ns, "drift": c.drift_ns, "holdover": c.holdover_ns, "peer": c.peer_ns,
        },
        "holdover_s": s.holdover_s,
        "evicted": s.evicted,
        "freq_ppm": s.freq_ppm,
        "pulses_seen": s.pulses_seen,
        "pulses_rejected": s.pulses_rejected,
        "labels_rejected": s.labels_rejected,
        "atomic_locked": s.atomic_locked,
        "earliest_ns": s.earliest_ns,
        "latest_ns": s.latest_ns,
        "host_realtime_ns": s.host_realtime_ns,
        "uptime_s": s.uptime_s,
        "inputs": s.inputs.iter().map(|i| json!({
            "name": i.name, "source": i.source, "ok": i.ok, "detail": i.detail,
            "events": i.events, "errors": i.errors, "last_event_age_s": i.last_event_age_s,
        })).collect::<Vec<_>>(),
        "peers": s.peers.iter().map(|p| json!({
            "addr": p.addr, "id": p.id, "reachable": p.reachable, "agrees": p.agrees,
            "offset_ns": p.offset_ns, "delay_ns": p.delay_ns, "epsilon_ns": p.epsilon_ns,
            "status": status_name(p.status), "error": p.error, "stamping": p.stamping,
            "auth": p.auth,
        })).collect::<Vec<_>>(),
        "events": s.events,
        "transfer": s.transfer.as_ref().map(|t| json!({
            "transport": "udp", "listen": t.listen, "stamping": t.stamping, "threads": t.threads,
            "received": t.received, "answered": t.answered, "interleaved": t.interleaved,
            "malformed": t.malformed, "downsized": t.downsized, "wrong_mode": t.wrong_mode,
            "kernel_rx": t.kernel_rx, "kernel_tx": t.kernel_tx, "send_errors": t.send_errors,
            "nts": nts_json(t),
            "rate_limit": json!({
                "per_second": t.rate_limit_per_second, "burst": t.rate_limit_burst,
                "kissed": t.rate_kissed, "dropped": t.rate_dropped,
            }),
        })),
    })
}

/// The master's NTS counters (`enabled` false: every reply is unauthenticated).
fn nts_json(t: &v1::TransferStats) -> serde_json::Value {
    json!({
        "enabled": t.nts, "authenticated": t.nts_authenticated, "refused": t.nts_refused,
        "ke_ok": t.nts_ke_ok, "ke_failed": t.nts_ke_failed, "ke_shed": t.nts_ke_shed,
        "rotations": t.nts_rotations,
    })
}

fn ns(v: i64) -> String {
    ttcore::Span::from_nanos(v).to_string()
}

fn master_report(s: &v1::MasterStatus) -> String {
    let c = s.components.unwrap_or_default();
    let mut o = String::new();
    o.push_str(&format!(
        "Master ID       : {} ({})\n",
        s.id,
        kind_name(s.kind)
    ));
    o.push_str(&format!(
        "Status          : {} — {}\n",
        status_name(s.status),
        s.reason
    ));
    o.push_str(&format!(
        "Reference       : {}{}\n",
        s.reference,
        if s.evicted { " (EVICTED)" } else { "" }
    ));
    o.push_str(&format!("Epsilon         : ±{}\n", ns(s.epsilon_ns)));
    o.push_str(&format!(
        "  components    : jitter {} qerr {} calibration {} filter {} drift {} holdover {} peer {}\n",
        ns(c.pps_jitter_ns), ns(c.qerr_ns), ns(c.calibration_ns), ns(c.filter_ns), ns(c.drift_ns), ns(c.holdover_ns), ns(c.peer_ns)
    ));
    o.push_str(&format!("Holdover        : {:.1} s\n", s.holdover_s));
    o.push_str(&format!(
        "Frequency       : {:+.3} ppm (timescale vs raw clock)\n",
        s.freq_ppm
    ));
    o.push_str(&format!(
        "Pulses          : {} seen, {} rejected; {} labels rejected\n",
        s.pulses_seen, s.pulses_rejected, s.labels_rejected
    ));
    o.push_str(&format!(
        "Atomic locked   : {}\n",
        if s.atomic_locked { "yes" } else { "no" }
    ));
    o.push_str(&format!("Uptime          : {:.0} s\n", s.uptime_s));
    if let Some(t) = &s.transfer {
        o.push_str(&format!(
            "Time transfer   : udp {} ({} stamps, {} thread(s)): {} received, {} answered ({} interleaved, {} downsized to basic); dropped {} malformed, {} wrong mode; {} send errors\n",
            t.listen, t.stamping, t.threads, t.received, t.answered, t.interleaved, t.downsized, t.malformed, t.wrong_mode, t.send_errors
        ));
        o.push_str(&if t.rate_limit_per_second > 0 {
            format!(
                "Rate limit      : {}/s per client, bursts of {}: {} RATE kisses, {} dropped\n",
                t.rate_limit_per_second, t.rate_limit_burst, t.rate_kissed, t.rate_dropped
            )
        } else {
            "Rate limit      : off\n".to_string()
        });
        o.push_str(&if t.nts {
            format!(
                "NTS             : on: {} authenticated, {} refused (NAK); NTS-KE {} ok, {} failed, {} shed; {} key rotations; plain requests answered unauthenticated\n",
                t.nts_authenticated, t.nts_refused, t.nts_ke_ok, t.nts_ke_failed, t.nts_ke_shed, t.nts_rotations
            )
        } else {
            "NTS             : off: every reply is unauthenticated\n".to_string()
        });
    }
    o.push_str("Inputs:\n");
    for i in &s.inputs {
        o.push_str(&format!(
            "  {:<17} {:<3} {:>8} events {:>5} errors  {}  [{}]\n",
            i.name,
            if i.ok { "ok" } else { "BAD" },
            i.events,
            i.errors,
            i.detail,
            i.source
        ));
    }
    if !s.peers.is_empty() {
        o.push_str("Peers:\n");
        for p in &s.peers {
            o.push_str(&format!(
                "  {:<22} {:<10} {:<14} {:<9} {:<5} offset {:>12} delay {:>10} ε {:>10} {}\n",
                p.addr,
                p.id,
                status_name(p.status),
                if p.agrees { "agrees" } else { "DISAGREES" },
                p.auth,
                ns(p.offset_ns),
                ns(p.delay_ns),
                ns(p.epsilon_ns),
                p.error
            ));
        }
    }
    if !s.events.is_empty() {
        o.push_str("Recent events:\n");
        for e in s.events.iter().rev().take(8).rev() {
            o.push_str(&format!("  {e}\n"));
        }
    }
    o
}

/// Why a command failed: printed once by `main`, whatever the cause.
type Failure = Box<dyn std::error::Error>;

async fn channel(
    addr: &str,
    ca: Option<&std::path::Path>,
    timeout_ms: u64,
) -> Result<tonic::transport::Channel, Failure> {
    ttsys::mgmt::ClientSecurity::from_files(ca, None)?
        .endpoint(addr)?
        .connect_timeout(Duration::from_millis(timeout_ms))
        .timeout(Duration::from_millis(timeout_ms))
        .connect()
        .await
        .map_err(|e| format!("cannot reach {addr}: {e}").into())
}

fn now_from_page(page: &std::path::Path) -> Result<serde_json::Value, Failure> {
    let r = ttsys::shm::PageReader::open(page)?;
    let d = r.read()?;
    let (raw, rt, _) = ttsys::clock::pair(ttsys::clock::realtime_ns);
    let x = d.read_at(ttclient::RawReading::from_nanos(raw));
    Ok(json!({
        "earliest_ns": x.interval.earliest().as_nanos(),
        "latest_ns": x.interval.latest().as_nanos(),
        "epsilon_ns": x.interval.epsilon().as_nanos(),
        "status": x.status.as_str(),
        "degraded": format!("{:?}", x.degraded).to_lowercase(),
        "source": "shm",
        "page": page.display().to_string(),
        "host_realtime_ns": rt,
        "sync_count": d.sync_count,
    }))
}

fn print_now(j: &serde_json::Value, as_json: bool) {
    if as_json {
        println!("{j}");
        return;
    }
    let e = j["earliest_ns"].as_i64().unwrap_or(0);
    let l = j["latest_ns"].as_i64().unwrap_or(0);
    let fmt = |t: i64| ttcore::Timestamp::from_nanos(t).to_string();
    println!("TT.now()  : [{}, {}]", fmt(e), fmt(l));
    println!("Epsilon   : ±{}", ns(j["epsilon_ns"].as_i64().unwrap_or(0)));
    println!("Status    : {}", j["status"].as_str().unwrap_or("?"));
    println!("Source    : {}", j["source"].as_str().unwrap_or("?"));
    if let Some(rt) = j["host_realtime_ns"].as_i64() {
        println!(
            "System    : {} ({} from the midpoint)",
            fmt(rt),
            ns(rt - (e / 2 + l / 2))
        );
    }
}

fn status_json(s: &v1::DaemonStatus) -> serde_json::Value {
    json!({
        "status": status_name(s.status),
        "reason": s.reason,
        "epsilon_ns": s.epsilon_ns,
        "earliest_ns": s.earliest_ns,
        "latest_ns": s.latest_ns,
        "host_realtime_ns": s.host_realtime_ns,
        "freq_ppm": s.freq_ppm,
        "freq_bound_ppm": s.freq_bound_ppm,
        "max_drift_ppm": s.max_drift_ppm,
        "max_epsilon_ns": s.max_epsilon_ns,
        "last_sync_age_s": s.last_sync_age_s,
        "syncs": s.syncs,
        "disruptions": s.disruptions,
        "shm_path": s.shm_path,
        "clockbound_path": s.clockbound_path,
        "knob_ppm": s.knob_ppm,
        "knob_step_ns": s.knob_step_ns,
        "poll_interval_s": s.poll_interval_s,
        "poll_reason": s.poll_reason,
        "target_epsilon_ns": s.target_epsilon_ns,
        "exchanges": s.exchanges,
        "exchanges_per_s": if s.uptime_s > 0.0 { s.exchanges as f64 / s.uptime_s } else { 0.0 },
        "uptime_s": s.uptime_s,
        "frequency_mode": s.frequency_mode,
        "drift_bound_ppm": s.drift_bound_ppm,
        "epsilon_sync_ns": s.epsilon_sync_ns,
        "burst": s.burst,
        "pause_detection": s.pause_detection,
        "kernel_slew": s.kernel_slew,
        "counter": s.counter,
        "masters": s.masters.iter().map(|m| json!({
            "addr": m.addr, "id": m.id, "kind": m.kind, "reachable": m.reachable,
            "selected": m.selected, "reason": m.reason, "offset_ns": m.offset_ns,
            "delay_ns": m.delay_ns, "epsilon_ns": m.epsilon_ns, "status": status_name(m.status),
            "transport": m.transport, "stamping": m.stamping, "interleaved": m.interleaved,
            "samples": m.samples, "radius_ns": m.radius_ns, "auth": m.auth,
            "assumption": m.assumption, "min_poll_interval_s": m.min_poll_interval_s,
            "rate_kisses": m.rate_kisses,
        })).collect::<Vec<_>>(),
    })
}

fn status_report(s: &v1::DaemonStatus) -> String {
    let mut o = String::new();
    o.push_str(&format!(
        "Status          : {} — {}\n",
        status_name(s.status),
        s.reason
    ));
    o.push_str(&format!("Epsilon         : ±{}\n", ns(s.epsilon_ns)));
    o.push_str(&format!(
        "Frequency       : {:+.3} ppm ± {:.3} ppm (raw clock → timescale)\n",
        s.freq_ppm, s.freq_bound_ppm
    ));
    o.push_str(&format!(
        "Drift           : {} frequency; wander bound {} ppm (max-drift-ppm) + estimate ±{:.3} ppm = ε grows {:.3} ppm; max epsilon {}\n",
        s.frequency_mode,
        s.max_drift_ppm,
        s.freq_bound_ppm,
        s.drift_bound_ppm,
        ns(s.max_epsilon_ns)
    ));
    o.push_str(&format!(
        "Epsilon at sync : ±{} (bursts of {} per master)\n",
        ns(s.epsilon_sync_ns),
        s.burst
    ));
    o.push_str(&format!(
        "Last sync       : {:.1} s ago ({} syncs, {} disruptions)\n",
        s.last_sync_age_s, s.syncs, s.disruptions
    ));
    o.push_str(&format!(
        "Polling         : next in {:.3} s — {}{}; {} exchanges sent ({:.1}/s)\n",
        s.poll_interval_s,
        s.poll_reason,
        if s.target_epsilon_ns > 0 {
            format!(" (target ±{})", ns(s.target_epsilon_ns))
        } else {
            String::new()
        },
        s.exchanges,
        if s.uptime_s > 0.0 {
            s.exchanges as f64 / s.uptime_s
        } else {
            0.0
        }
    ));
    o.push_str(&format!("VM pauses       : {}\n", s.pause_detection));
    o.push_str(&format!("Kernel slew     : {}\n", s.kernel_slew));
    o.push_str(&format!("Counter (TSC)   : {}\n", s.counter));
    o.push_str(&format!(
        "Page            : {}{}\n",
        s.shm_path,
        if s.clockbound_path.is_empty() {
            String::new()
        } else {
            format!("; ClockBound {}", s.clockbound_path)
        }
    ));
    if s.knob_ppm != 0.0 || s.knob_step_ns != 0 {
        o.push_str(&format!(
            "TEST KNOB       : {:+} ppm, step {}\n",
            s.knob_ppm,
            ns(s.knob_step_ns)
        ));
    }
    o.push_str(&sources_report(s));
    o
}

/// The sources table of `ttctl status`, what their bounds assume, and who rate-limited us.
fn sources_report(s: &v1::DaemonStatus) -> String {
    let mut o = String::new();
    o.push_str("Sources:\n");
    o.push_str("  S address                kind       id         status          offset    round trip      ε      auth stamps            reason\n");
    for m in &s.masters {
        o.push_str(&format!(
            "  {} {:<22} {:<10} {:<10} {:<15} {:>12} {:>10} {:>10}  {:<4} {} {:<10} {}\n",
            if m.selected {
                '*'
            } else if m.reachable {
                'x'
            } else {
                '?'
            },
            m.addr,
            m.kind,
            m.id,
            status_name(m.status),
            ns(m.offset_ns),
            ns(m.delay_ns),
            ns(m.epsilon_ns),
            m.auth,
            m.transport,
            format!(
                "{}{}",
                m.stamping,
                if m.interleaved { ",xleave" } else { "" }
            ),
            m.reason
        ));
    }
    // What each kind of bound rests on, once per distinct assumption.
    let mut said: Vec<&str> = Vec::new();
    for m in &s.masters {
        if !m.assumption.is_empty() && !said.contains(&m.assumption.as_str()) {
            said.push(&m.assumption);
            let kind = match m.kind.as_str() {
                k @ ("ntp" | "phc") => k,
                _ => "master",
            };
            o.push_str(&format!("  {kind} bounds assume: {}\n", m.assumption));
        }
    }
    for m in s.masters.iter().filter(|m| m.rate_kisses > 0) {
        o.push_str(&format!(
            "  {} rate-limited us ({} RATE kisses): {}\n",
            m.addr,
            m.rate_kisses,
            if m.min_poll_interval_s > 0.0 {
                format!("polled no faster than every {:.3} s", m.min_poll_interval_s)
            } else {
                "limit relaxed since".into()
            }
        ));
    }
    o
}

// One arm per subcommand: a dispatch table; the output formats are in their own functions.
async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.cmd {
        Cmd::GenerateDocs { out } => {
            ttsys::docs::write_docs(
                Cli::command(),
                "1",
                None,
                &[("SEE ALSO", "`timed`(8), `timed.toml`(5), `timemaster`(8).")],
                &out,
            )
            .map_err(|e| format!("{}: {e}", out.display()))?;
            Ok(())
        }
        Cmd::Now { page, addr, json } => {
            let j = match now_from_page(&page) {
                Ok(j) => j,
                Err(page_err) => {
                    let mut c = v1::time_daemon_client::TimeDaemonClient::new(
                        channel(&addr, cli.ca.as_deref(), 2000)
                            .await
                            .map_err(|e| format!("{page_err}; and {e}"))?,
                    );
                    let r = c
                        .now(v1::NowRequest {})
                        .await
                        .map_err(|e| e.message().to_string())?
                        .into_inner();
                    json!({
                        "earliest_ns": r.earliest_ns, "latest_ns": r.latest_ns, "epsilon_ns": r.epsilon_ns,
                        "status": status_name(r.status), "reason": r.reason, "source": "grpc",
                        "page_error": page_err.to_string(), "host_realtime_ns": r.host_realtime_ns,
                    })
                }
            };
            print_now(&j, json);
            Ok(())
        }
        Cmd::Wait { page, timeout_s } => {
            let t0 = std::time::Instant::now();
            loop {
                if let Ok(j) = now_from_page(&page)
                    && matches!(j["status"].as_str(), Some("synchronized" | "holdover"))
                {
                    println!(
                        "synchronized: ±{} after {:.1} s",
                        ns(j["epsilon_ns"].as_i64().unwrap_or(0)),
                        t0.elapsed().as_secs_f64()
                    );
                    return Ok(());
                }
                if t0.elapsed().as_secs_f64() > timeout_s {
                    return Err(Failure::from(format!(
                        "{} not synchronized after {timeout_s} s",
                        page.display()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Cmd::Status { addr, json } => {
            let mut c = v1::time_daemon_client::TimeDaemonClient::new(
                channel(&addr, cli.ca.as_deref(), 2000).await?,
            );
            let s = c
                .status(v1::StatusRequest {})
                .await
                .map_err(|e| e.message().to_string())?
                .into_inner();
            if json {
                println!("{}", status_json(&s));
            } else {
                print!("{}", status_report(&s));
            }
            Ok(())
        }
        Cmd::Master {
            addr,
            json,
            timeout_ms,
        } => {
            let ch = channel(&addr, cli.ca.as_deref(), timeout_ms)
                .await
                .map_err(|e| format!("master: {e}"))?;
            let mut c = v1::time_master_client::TimeMasterClient::new(ch);
            let s = c
                .status(v1::StatusRequest {})
                .await
                .map_err(|e| format!("{addr}: {}", e.message()))?
                .into_inner();
            if json {
                println!("{}", master_json(&s));
            } else {
                print!("{}", master_report(&s));
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ttctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ttctl: {e}");
            ExitCode::FAILURE
        }
    }
}
