//! `ttctl`: the operator's view of TrueTime, in the spirit of `chronyc tracking` / `sources`.
//! Every command prints a human-readable report, or one JSON object with `--json`.
//!
//! ```text
//! ttctl master --addr 127.0.0.1:7001 [--json]
//! ```

use clap::{Parser, Subcommand};
use serde_json::json;
use std::process::ExitCode;
use std::time::Duration;
use ttproto::v1;

#[derive(Parser)]
#[command(version, about = "TrueTime operator CLI")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
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
    match v1::MasterKind::try_from(k) {
        Ok(v1::MasterKind::Gps) => "gps",
        Ok(v1::MasterKind::Armageddon) => "armageddon",
        _ => "unknown",
    }
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
            "status": status_name(p.status), "error": p.error,
        })).collect::<Vec<_>>(),
        "events": s.events,
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
                "  {:<22} {:<10} {:<14} {:<9} offset {:>12} delay {:>10} ε {:>10} {}\n",
                p.addr,
                p.id,
                status_name(p.status),
                if p.agrees { "agrees" } else { "DISAGREES" },
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

async fn run(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Master {
            addr,
            json,
            timeout_ms,
        } => {
            let ep = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| format!("bad address {addr}: {e}"))?
                .connect_timeout(Duration::from_millis(timeout_ms))
                .timeout(Duration::from_millis(timeout_ms));
            let ch = ep
                .connect()
                .await
                .map_err(|e| format!("cannot reach master at {addr}: {e}"))?;
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
