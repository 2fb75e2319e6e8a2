//! `ttbench`: TrueTime's benchmarks, the fleet simulator, fuzzing and the fault campaign
//! (`ttbench COMMAND --help` for each; `bench/README.md` for what they measure). This file is
//! the command line only — each subcommand's options, the dispatch and the text forms of the
//! results — and is long because the subcommands are many; the work is in the library.
//!
//! ```text
//! ttbench sim --scenario FILE [--lie-ms a,b,…] [--json]     # the deterministic fleet simulator
//! ttbench sim-report                                        # every scenario → bench/results/
//! ttbench config-reference                                  # docs/CONFIG.md, from the config structs
//! ttbench now-latency                                       # TT.now() vs clock_gettime vs ClockBound
//! ttbench commit-wait [--drift-ppm 0,100,200]               # on the real stack, beside the simulator
//! ttbench commit-wait-overshoot
//! ttbench sync-rps [--threads 2] [--window 128] [--duration 5] [--json]   # beside chronyd
//! ttbench store [--epsilon-us 1000] [--json]                # the demo store, TrueTime vs HLC
//! ttbench multiregion [--epsilon-us 20,1000,5000] [--json]  # the store across three regions
//! ttbench conflicts [--epsilon-us 20] [--json]              # the conflict-resolution matrix (AP)
//! ttbench fuzz [--target NAME|all] [--inputs N | --seconds S] [--seed N] [--json]
//! ttbench campaign [--duration 600] [--negative-control] [--json]   # root: network namespaces
//! ```

#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(version, about = "TrueTime benchmarks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The demo store (3 nodes, loopback) in TrueTime mode and HLC mode, side by side.
    Store {
        /// Measured seconds per mode.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Concurrent clients.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Keys.
        #[arg(long, default_value_t = 16)]
        keys: usize,
        /// Share of operations that are write transactions.
        #[arg(long, default_value_t = 0.5)]
        write_fraction: f64,
        /// ε of every node's simulated TrueTime (µs).
        #[arg(long, default_value_t = 1000)]
        epsilon_us: i64,
        /// HLC mode's max clock offset (ms; CockroachDB's default is 500).
        #[arg(long, default_value_t = 500)]
        max_offset_ms: u64,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The demo store across three regions (the delays between them applied to every message),
    /// clients in every region, once per ε: write and read latency per region, commit wait's
    /// share beside the cross-region consensus round trip, every history checked.
    Multiregion {
        /// Measured seconds per ε.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Clients in each region.
        #[arg(long, default_value_t = 2)]
        clients_per_region: usize,
        /// Keys.
        #[arg(long, default_value_t = 16)]
        keys: usize,
        /// Share of operations that are write transactions.
        #[arg(long, default_value_t = 0.5)]
        write_fraction: f64,
        /// ε values (µs), one cluster run each.
        #[arg(long, value_delimiter = ',', default_value = "20,1000,5000")]
        epsilon_us: Vec<f64>,
        /// A topology file (regions, nodes, links; see `ttstore::region`); default: us-east,
        /// eu-west, ap-south with 40/100/65 ms one way.
        #[arg(long)]
        topology: Option<std::path::PathBuf>,
        /// The negative control: commit wait off and node 2's clock 1 s behind its claimed ε;
        /// the checker must find anomalies.
        #[arg(long)]
        negative_control: bool,
        /// How long each fault of the failure-mode table lasts (s; 0: no table). The table
        /// runs, on fresh clusters at the first ε: the farthest region cut off, the leader's
        /// region cut off, the leader killed.
        #[arg(long, default_value_t = 12)]
        fault_seconds: u64,
        /// Global-table runs (at the first ε): leads (ms), comma-separated; writes and closes
        /// that far ahead so strong reads are local everywhere. Empty: none.
        #[arg(long, value_delimiter = ',', default_value = "400,1000")]
        global_lead_ms: Vec<u64>,
        /// Shards (Raft groups), their leaders placed one per region in turn; two-key writes
        /// that span shards commit by two-phase commit. With more than one, the failure-mode
        /// table leaves out the clock row (a quarantined shard leader keeps its leadership).
        #[arg(long, default_value_t = 1)]
        shards: u32,
        /// Also run the failure-mode table's faults (a region cut off, a node killed) on the AP
        /// mode: three `ttstore ap-node`s, every write accepted locally.
        #[arg(long)]
        ap: bool,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The conflict-resolution matrix: two regions writing at once (multi-leader), replicating
    /// asynchronously through a partition, every strategy on the same writes (deterministic).
    Conflicts {
        /// Simulated seconds.
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
        /// Writes per second in each region.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Keys both regions write.
        #[arg(long, default_value_t = 8)]
        keys: usize,
        /// How far apart the regions' wall clocks are (ms).
        #[arg(long, default_value_t = 1.0)]
        wall_skew_ms: f64,
        /// TrueTime ε (µs).
        #[arg(long, default_value_t = 20.0)]
        epsilon_us: f64,
        /// RNG seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Commit-wait under host clock drift on the real stack, beside the simulator's figure.
    CommitWait {
        /// Drift values (ppm), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "0,50,100,200")]
        drift_ppm: Vec<f64>,
        /// Commit waits per drift value.
        #[arg(long, default_value_t = 300)]
        waits: usize,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print the configuration reference (docs/CONFIG.md) generated from the config structs.
    ConfigReference,
    /// Run every scenario and write the results table and plots.
    SimReport {
        /// Scenario directory.
        #[arg(long, default_value = "bench/scenarios")]
        scenarios: PathBuf,
        /// Output directory.
        #[arg(long, default_value = "bench/results")]
        out: PathBuf,
    },
    /// Multi-host fault campaign on real processes in network namespaces (needs root):
    /// kill -9 and restart storms, partitions, clock steps, a lying master; every sample checked
    /// against truth.
    Campaign {
        /// Seconds of faults after warm-up.
        #[arg(long, default_value_t = 600.0)]
        duration: f64,
        /// Seed of the fault schedule.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Masters.
        #[arg(long, default_value_t = 5)]
        masters: usize,
        /// Hosts (timed).
        #[arg(long, default_value_t = 3)]
        hosts: usize,
        /// How far the lying master(s) are off (ms).
        #[arg(long, default_value_t = 5.0)]
        lie_ms: f64,
        /// A majority of masters lie together: violations must be found.
        #[arg(long)]
        negative_control: bool,
        /// Keep the working directory (logs, configs) and print it.
        #[arg(long)]
        keep: bool,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Fuzz the parsers that see outside bytes (stable toolchain): random and mutated inputs
    /// from valid examples and the corpus; a panic saves its input to fuzz-crash-*.bin.
    Fuzz {
        /// Target name, or `all` (targets: nmea, sock, telemetry, shm-page, config-timed,
        /// config-timemaster, scenario-devices, scenario-fleet, ntp-request, ntp-reply,
        /// grpc-requests, vmclock).
        #[arg(long, default_value = "all")]
        target: String,
        /// Inputs per target (default 1,000,000 unless --seconds is given).
        #[arg(long)]
        inputs: Option<u64>,
        /// Run each target for this long instead (s).
        #[arg(long)]
        seconds: Option<f64>,
        /// Generator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// One JSON object per target.
        #[arg(long)]
        json: bool,
    },
    /// The deterministic fleet simulator: run a scenario, check every sampled TT.now().
    Sim {
        /// Scenario file (see bench/scenarios/).
        #[arg(long)]
        scenario: PathBuf,
        /// One JSON object.
        #[arg(long)]
        json: bool,
        /// Override the scenario's duration (s).
        #[arg(long)]
        duration: Option<f64>,
        /// Override the number of hosts.
        #[arg(long)]
        hosts: Option<usize>,
        /// Leave out the two wall-clock fields (`wall_s`, `virtual_s_per_wall_s`), so the same
        /// seed gives the same output byte for byte.
        #[arg(long)]
        no_wall_clock: bool,
        /// A lie-size sweep: run once per value (ms, comma-separated), with every lying master's
        /// lie set to it (keeping its sign); one line per point.
        #[arg(long, value_delimiter = ',')]
        lie_ms: Vec<f64>,
        /// Threads to run the scenario's shards on (default: every core). The output is the
        /// same for any value.
        #[arg(long)]
        threads: Option<usize>,
    },
    /// timed's interval beside AWS ClockBound's over the same chronyd, sampled together: each
    /// bound's p50/p99 and whether truth was inside (bench/scripts/anchor-clockbound.sh starts
    /// chronyd, clock-bound-d and timed, then runs this).
    AnchorClockbound {
        /// timed's page.
        #[arg(long)]
        page: PathBuf,
        /// ClockBound's segment.
        #[arg(long, default_value = "/var/run/clockbound/shm0")]
        clockbound: PathBuf,
        /// How long to sample (s).
        #[arg(long, default_value_t = 60.0)]
        duration: f64,
        /// Between samples (ms).
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
    },
    /// Cost of TrueTime::now() through the page vs clock_gettime(CLOCK_REALTIME), 1 and 2 threads.
    NowLatency {
        /// timed's page (default: a synthetic page written for the run).
        #[arg(long)]
        page: Option<PathBuf>,
        /// Batches of 1000 calls each (per thread, per kind).
        #[arg(long, default_value_t = 5000)]
        batches: usize,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// How long after the exact after(s) instant commit_wait returns (blocking and async).
    CommitWaitOvershoot {
        /// Number of waits.
        #[arg(long, default_value_t = 2000)]
        waits: usize,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// An attacker, as its own process (loopback only), until killed: `relay` forges every
    /// reply of one master, shifting its time (see bench/src/attack.rs).
    Attack {
        /// Where clients send time requests.
        #[arg(long)]
        udp_listen: std::net::SocketAddr,
        /// The master's time service.
        #[arg(long)]
        udp_upstream: std::net::SocketAddr,
        /// Relay NTS-KE from this address ...
        #[arg(long, requires = "tcp_upstream")]
        tcp_listen: Option<std::net::SocketAddr>,
        /// ... to this one (the master's NTS-KE).
        #[arg(long)]
        tcp_upstream: Option<std::net::SocketAddr>,
        /// How much later the forged replies say it is (ms).
        #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
        shift_ms: f64,
        /// Replay instead of shifting: answer each request with the newest recorded reply at
        /// least this old (ms), its origin and NTS unique identifier rewritten to the request's.
        #[arg(long, conflicts_with = "shift_ms")]
        replay_after_ms: Option<u64>,
    },
    /// A flooder, as its own process (loopback only), for `seconds`: garbage at a UDP time
    /// service and/or complete NTS-KE handshakes plus idle connections at an NTS-KE server.
    /// Prints what it sent as one JSON object.
    Flood {
        /// The address the UDP floods come from (another loopback address than the honest
        /// clients' 127.0.0.1, so a per-client limit can tell them apart).
        #[arg(long, default_value = "127.0.0.2")]
        from: std::net::IpAddr,
        /// UDP time service to send garbage and malformed NTP to.
        #[arg(long)]
        udp: Option<std::net::SocketAddr>,
        /// UDP time service to send well-formed TrueTime requests to, ignoring RATE kisses.
        #[arg(long)]
        requests: Option<std::net::SocketAddr>,
        /// The pace of --requests (per second).
        #[arg(long, default_value_t = 2000)]
        requests_per_second: u32,
        /// NTS-KE server to flood with handshakes (needs --ca).
        #[arg(long, requires = "ca")]
        ke: Option<std::net::SocketAddr>,
        /// The CA that issued the NTS-KE server's certificate.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// How long (s).
        #[arg(long)]
        seconds: f64,
    },
    /// Time exchanges per second one master answers over UDP, beside a chronyd server under
    /// the same load in the same run.
    SyncRps {
        /// An existing master's UDP time address; without it a simulated master is started.
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
        /// Load generator threads (one socket each).
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Requests in flight per generator thread.
        #[arg(long, default_value_t = 128)]
        window: usize,
        /// Measured seconds per server and request kind.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Also NTS exchanges (RFC 8915), to our master and to a chronyd NTS server, each after
        /// a real NTS-KE (a throwaway CA; needs the simulated master, not --addr).
        #[arg(long, conflicts_with = "addr")]
        nts: bool,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// A binary built next to this one.
fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Starts `timemaster run --simulate` on a free port and waits until it is synchronized.
/// A simulated master for `sync-rps`; with `nts`, NTS-KE on a free port with a throwaway CA's
/// certificate (its address and the PKI returned too).
type BenchMaster = (
    bench::lab::SimulatedMaster,
    String,
    tempdir::Dir,
    Option<(std::net::SocketAddr, ttsys::nts::Pki)>,
);

fn start_master(nts: bool) -> anyhow::Result<BenchMaster> {
    let dir = tempdir::Dir::new()?;
    let bins = sibling("timemaster")
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let nts = match nts {
        true => {
            let pki = ttsys::nts::throwaway_pki(&dir.0, &["127.0.0.1"])?;
            let ke: std::net::SocketAddr =
                format!("127.0.0.1:{}", bench::lab::free_port()?).parse()?;
            Some((ke, pki))
        }
        false => None,
    };
    let (n, d) = (nts.clone(), dir.0.clone());
    let m = bench::lab::SimulatedMaster::start(&bins, &dir.0, "bench", move |c| {
        // The load comes from one address, as fast as the master answers: a capacity
        // measurement, so no per-client limit (chronyd beside it has none by default either).
        c.rate_limit = timemaster::config::RateLimitConfig::off();
        c.nts = n.map(|(ke, pki)| {
            timemaster::config::NtsConfig::new(ke, pki.cert, pki.key, d.join("nts-keys"))
        });
    })?;
    m.wait_for(Duration::from_secs(40), |s| {
        ttproto::status_from_wire(s.status).is_trustworthy()
    })?;
    let addr = format!("127.0.0.1:{}", m.port);
    Ok((m, addr, dir, nts))
}

mod tempdir {
    /// A temporary directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> std::io::Result<Dir> {
            let p = std::env::temp_dir().join(format!(
                "ttbench-{}-{}",
                std::process::id(),
                ttsys::clock::raw_ns()
            ));
            std::fs::create_dir_all(&p)?;
            Ok(Dir(p))
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "one arm per subcommand, each turning its options into one library call and printing the result (text forms in the `print_*` functions below): a dispatch table, long because the subcommands are many, not because any arm is."
)]
fn real_main(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Store {
            duration,
            clients,
            keys,
            write_fraction,
            epsilon_us,
            max_offset_ms,
            json,
        } => {
            let r = bench::store::run(&bench::store::StoreBench {
                duration: std::time::Duration::from_secs(duration.max(1)),
                clients: clients.max(1),
                keys: keys.max(1),
                write_fraction: write_fraction.clamp(0.0, 1.0),
                epsilon_ns: epsilon_us.max(0) * 1000,
                max_offset_ms,
            })?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print_store(&r);
            }
            Ok(())
        }
        Cmd::CommitWait {
            drift_ppm,
            waits,
            json,
        } => {
            let r = bench::commit_wait::commit_wait_under_drift(&drift_ppm, waits)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print_commit_wait(&r);
            }
            Ok(())
        }
        Cmd::Campaign {
            duration,
            seed,
            masters,
            hosts,
            lie_ms,
            negative_control,
            keep,
            json,
        } => {
            let o = bench::campaign::CampaignOptions {
                duration_s: duration,
                seed,
                masters,
                hosts,
                lie_ms,
                negative_control,
                keep,
                ..Default::default()
            };
            let r = bench::campaign::run(&o)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print_campaign(&r);
            }
            Ok(())
        }
        Cmd::Fuzz {
            target,
            inputs,
            seconds,
            seed,
            json,
        } => {
            let budget = match (seconds, inputs) {
                (Some(s), _) => bench::fuzz::Budget::Seconds(s),
                (None, n) => bench::fuzz::Budget::Inputs(n.unwrap_or(1_000_000)),
            };
            let targets: Vec<&str> = if target == "all" {
                bench::fuzz::TARGETS.to_vec()
            } else {
                vec![target.as_str()]
            };
            for t in targets {
                let r = bench::fuzz::run(t, budget, seed)?;
                if json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    println!(
                        "{:<18} {:>9} inputs in {:>6.1} s, {} seeds, no panic; outcomes {:?}",
                        r.target, r.inputs, r.seconds, r.seeds, r.outcomes
                    );
                }
            }
            Ok(())
        }
        Cmd::ConfigReference => {
            print!("{}", bench::config_ref::markdown());
            Ok(())
        }
        Cmd::SimReport { scenarios, out } => {
            let md = bench::report::sim_report(&scenarios, &out)?;
            print!("{md}");
            eprintln!("wrote {}", out.join("results.md").display());
            Ok(())
        }
        Cmd::Sim {
            scenario,
            json,
            duration,
            hosts,
            no_wall_clock,
            lie_ms,
            threads,
        } => {
            let src = std::fs::read_to_string(&scenario)
                .with_context(|| scenario.display().to_string())?;
            let mut sc =
                bench::sim::FleetScenario::from_toml(&src, &scenario.display().to_string())?;
            if let Some(d) = duration {
                sc.duration_s = d;
            }
            if let Some(h) = hosts {
                sc.hosts.count = h;
            }
            sc.check().map_err(|e| {
                anyhow::anyhow!("{}: with --duration/--hosts: {e}", scenario.display())
            })?;
            if !lie_ms.is_empty() {
                return liar_sweep(&sc, &lie_ms, json);
            }
            let threads = threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            });
            let mut r = bench::sim::run_threads(&sc, threads)?;
            if no_wall_clock {
                r.summary.wall_s = None;
                r.summary.virtual_s_per_wall_s = None;
                r.summary.bytes_per_host = None;
            }
            if json {
                println!("{}", r.json());
            } else {
                print_sim(&r.summary);
            }
            Ok(())
        }
        Cmd::AnchorClockbound {
            page,
            clockbound,
            duration,
            interval_ms,
        } => {
            let r = bench::anchor::run(
                &page,
                &clockbound,
                Duration::from_secs_f64(duration.max(0.1)),
                Duration::from_millis(interval_ms.max(1)),
            )?;
            println!("{r}");
            Ok(())
        }
        Cmd::NowLatency {
            page,
            batches,
            json,
        } => {
            let r = bench::now_latency::now_latency(page.as_deref(), batches)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print_now_latency(&r);
            }
            Ok(())
        }
        Cmd::Multiregion {
            duration,
            clients_per_region,
            keys,
            write_fraction,
            epsilon_us,
            topology,
            negative_control,
            fault_seconds,
            global_lead_ms,
            shards,
            ap,
            json,
        } => {
            let topology = match topology {
                Some(p) => ttstore::region::Topology::load(&p)?,
                None => ttstore::region::Topology::three_regions(3),
            };
            let r = bench::multiregion::run(&bench::multiregion::MultiRegionBench {
                duration: std::time::Duration::from_secs(duration.max(1)),
                clients_per_region: clients_per_region.max(1),
                keys: keys.max(1),
                write_fraction: write_fraction.clamp(0.0, 1.0),
                epsilons_ns: epsilon_us
                    .iter()
                    .map(|u| (u.max(0.0) * 1e3) as i64)
                    .collect(),
                topology,
                negative_control,
                fault: (fault_seconds > 0).then(|| std::time::Duration::from_secs(fault_seconds)),
                global_leads_ms: global_lead_ms.into_iter().filter(|l| *l > 0).collect(),
                shards: shards.clamp(1, 64),
                ap,
            })?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print_multiregion(&r);
            }
            Ok(())
        }
        Cmd::Conflicts {
            duration,
            rate,
            keys,
            wall_skew_ms,
            epsilon_us,
            seed,
            json,
        } => {
            let r = bench::conflicts::run(&bench::conflicts::ConflictBench {
                duration_s: duration.max(1.0),
                rate: rate.max(1.0),
                keys: keys.max(1),
                wall_skew_ms,
                epsilon_us: epsilon_us.max(0.0),
                seed,
                ..Default::default()
            });
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{} s, {} writes/s per region on {} keys, link {} ms one way, cut {:?} s, wall clocks {} ms apart, TrueTime ε {} µs; {} overlapping pairs",
                    r.duration_s,
                    r.rate,
                    r.keys,
                    r.one_way_ms,
                    r.partition_s,
                    r.wall_skew_ms,
                    r.epsilon_us,
                    r.overlapping_pairs
                );
                for x in &r.rows {
                    println!(
                        "  {:<52} acknowledged {:>6}, conflicts reported {:>5}, lost {:>5} ({} silently), unmerged keys {}, converged {}",
                        x.strategy,
                        x.acknowledged,
                        x.conflicts_reported,
                        x.lost,
                        x.lost_silently,
                        x.unmerged_keys,
                        x.converged
                    );
                }
            }
            Ok(())
        }
        Cmd::CommitWaitOvershoot { waits, json } => {
            let r = bench::now_latency::commit_wait_overshoot(waits)?;
            if json {
                println!("{r}");
            } else {
                print_commit_wait_overshoot(&r, waits);
            }
            Ok(())
        }
        Cmd::Attack {
            udp_listen,
            udp_upstream,
            tcp_listen,
            tcp_upstream,
            shift_ms,
            replay_after_ms,
        } => {
            let r = bench::attack::Relay {
                udp_listen,
                udp_upstream,
                tcp: tcp_listen.zip(tcp_upstream),
                shift_ns: (shift_ms * 1e6) as i64,
                replay_after: replay_after_ms.map(Duration::from_millis),
            };
            match replay_after_ms {
                Some(ms) => eprintln!(
                    "ttbench attack: replaying {udp_upstream}'s replies on {udp_listen}, {ms} ms old"
                ),
                None => eprintln!(
                    "ttbench attack: forging {udp_upstream} on {udp_listen}, shift {shift_ms} ms"
                ),
            }
            bench::attack::relay(&r)?;
            Ok(())
        }
        Cmd::Flood {
            from,
            udp,
            requests,
            requests_per_second,
            ke,
            ca,
            seconds,
        } => {
            let r = bench::attack::flood(&bench::attack::Flood {
                from,
                udp,
                requests,
                requests_per_second,
                ke: ke.zip(ca),
                seconds,
            })?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Cmd::SyncRps {
            addr,
            threads,
            window,
            duration,
            nts,
            json,
        } => {
            let (_master, addr, dir, nts) = match addr {
                Some(a) => (None, a.to_string(), tempdir::Dir::new()?, None),
                None => {
                    let (m, a, d, n) = start_master(nts)?;
                    (Some(m), a, d, n)
                }
            };
            let addr: std::net::SocketAddr = addr.parse().with_context(|| addr.clone())?;
            let report = bench::sync_rps::report(
                addr,
                threads,
                window,
                duration,
                &dir.0.join("chronyd"),
                nts.as_ref().map(|(ke, pki)| (*ke, pki)),
            )?;
            if json {
                println!("{report}");
            } else {
                print_sync_rps(&report, threads, window);
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match real_main(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ttbench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `ttbench sim --lie-ms a,b,…`: one run per lie size; JSON lines or a table.
fn liar_sweep(sc: &bench::sim::FleetScenario, lies: &[f64], json: bool) -> anyhow::Result<()> {
    if !json {
        println!("lie ms  violations  synchronized after warm-up  ε p99 µs");
    }
    for &lie in lies {
        let r = bench::sim::run(&sc.with_lie(lie))?;
        let j = &r.summary;
        let synced = j.status_share_after_warm_up.synchronized;
        if json {
            println!(
                "{}",
                serde_json::json!({"lie_ms": lie, "violations": j.violations, "samples": j.samples, "synchronized_after_warm_up": synced, "status_share_after_warm_up": j.status_share_after_warm_up, "epsilon_ns": j.epsilon_ns})
            );
        } else {
            println!(
                "{lie:>6}  {:>10}  {:>26.4}  {:>8.1}",
                j.violations,
                synced,
                j.epsilon_ns.p99 as f64 / 1e3
            );
        }
    }
    Ok(())
}

/// The text form of `ttbench store`'s result.
fn print_store(r: &bench::store::StoreReport) {
    println!(
        "mode       txn/s   commit p50 / p99 (µs)   replicate p50   commit wait p50   wait share   reads/s   read p50 / p99 (µs)   restarts/read   anomalies"
    );
    for m in [&r.truetime, &r.hlc] {
        let v = &m.summary;
        println!(
            "{:<8} {:>7.0}   {:>9.0} / {:>9.0}   {:>13.0}   {:>15.0}   {:>9.1}%   {:>7.0}   {:>8.0} / {:>8.0}   {:>13.3}   {:>9}",
            m.mode,
            v.txn_per_s,
            v.commit_p50_us,
            v.commit_p99_us,
            v.replicate_p50_us,
            v.commit_wait_p50_us,
            100.0 * v.commit_wait_share,
            v.reads_per_s,
            v.read_p50_us,
            v.read_p99_us,
            v.restarts_per_read,
            m.anomalies
        );
    }
}

/// The text form of `ttbench commit-wait`'s result.
fn print_commit_wait(r: &bench::commit_wait::CommitWaitReport) {
    println!(
        "drift   real commit wait p50 / p99 / max (µs)   real ε p50   |   sim commit wait p50 / p99 (µs)   sim ε p50"
    );
    for d in &r.drifts {
        let (rc, sc) = (&d.real.commit_wait_us, &d.sim.commit_wait_us);
        println!(
            "{:>4} ppm   {:>8.0} / {:>8.0} / {:>8.0}   {:>10.0}   |   {:>8.0} / {:>8.0}   {:>10.0}",
            d.drift_ppm,
            rc.p50,
            rc.p99,
            rc.max.unwrap_or(rc.p99),
            d.real.epsilon_us.p50,
            sc.p50,
            sc.p99,
            d.sim.epsilon_us.p50,
        );
    }
}

/// The text form of `ttbench campaign`'s result.
fn print_campaign(r: &bench::campaign::CampaignReport) {
    println!(
        "{} s of faults after {} s warm-up, {} masters ({} lying {:+} ms), {} hosts: {} samples, {} trustworthy, {} violations",
        r.duration_s,
        r.warm_up_s,
        r.masters,
        r.lying_masters,
        r.lie_ms,
        r.hosts,
        r.samples,
        r.trustworthy_samples,
        r.violations
    );
    println!("status share: {:?}", r.status_share);
    println!("faults: {:?}", r.fault_counts);
    for v in &r.first_violations {
        println!(
            "violation: {:.1} s host {} [{}, {}] truth in [{}, {}] ({})",
            v.t_s,
            v.host,
            v.earliest_ns,
            v.latest_ns,
            v.truth_before_ns,
            v.truth_after_ns,
            v.status.as_str()
        );
    }
}

/// Each region's completions and longest gaps through a fault.
fn print_fault_regions(regions: &[bench::multiregion::FaultRegion]) {
    for g in regions {
        println!(
            "  {:<9} completed {:>4}, failed {:>3}, longest without a completion: {:.1} s before, {:.1} s during, {:.1} s after",
            g.region,
            g.completed,
            g.failed,
            g.longest_gap_before_s,
            g.longest_gap_during_s,
            g.longest_gap_after_s
        );
    }
}

/// The text form of `ttbench multiregion`'s result.
fn print_multiregion(r: &bench::multiregion::MultiRegionReport) {
    for run in &r.runs {
        if run.global_lead_ms > 0 {
            println!("global table, lead {} ms:", run.global_lead_ms);
        }
        if run.shard_leader_regions.len() > 1 {
            println!(
                "{} shards, leaders in {}:",
                run.shard_leader_regions.len(),
                run.shard_leader_regions.join(", ")
            );
        }
        println!(
            "ε {} µs, leader in {}: consensus p50 {:.1} ms, commit wait p50 {:.1} µs; commit wait is {:.3} % of write latency ({:.3} % exposed); {} ops checked, {} anomalies",
            run.epsilon_us,
            run.leader_region,
            run.consensus_p50_ms,
            run.commit_wait_p50_us,
            run.commit_wait_share * 100.0,
            run.exposed_wait_share * 100.0,
            run.history_ops,
            run.anomalies
        );
        for g in &run.regions {
            println!(
                "  {:<9} writes {:>4} p50 {:>7.1} ms p99 {:>7.1} ms (cross-shard {:>4} p50 {:>7.1} ms) | strong reads {:>4} p50 {:>7.1} ms p99 {:>7.1} ms | errors {}",
                g.region,
                g.writes,
                g.write_p50_ms,
                g.write_p99_ms,
                g.cross_shard_writes,
                g.cross_shard_write_p50_ms,
                g.reads,
                g.read_p50_ms,
                g.read_p99_ms,
                g.errors
            );
        }
    }
    for f in &r.failures {
        println!(
            "{} ({} s): election {}, leader after in {}, {} anomalies in {} ops",
            f.fault,
            f.fault_s,
            f.election_s
                .map_or("none".to_string(), |e| format!("{e:.1} s")),
            f.leader_region_after,
            f.anomalies,
            f.history_ops
        );
        print_fault_regions(&f.regions);
    }
    for f in &r.ap_failures {
        println!(
            "AP, {} ({} s): diverged {} (up to {} ops behind), caught up {} after the heal, converged {}; {} puts, {} overlapping pairs, {} reported, {} kept values off the rule ({} unacknowledged kept); {} increments acknowledged, {} unknown, counter {}, {} lost; {} of {} local reads stale",
            f.fault,
            f.fault_s,
            f.diverged_during,
            f.max_ops_behind,
            f.converge_s
                .map_or("never".to_string(), |c| format!("{c:.2} s")),
            f.converged,
            f.puts,
            f.overlapping_pairs,
            f.conflicts_reported,
            f.kept_value_mismatches,
            f.kept_unacknowledged,
            f.increments,
            f.increments_unknown,
            f.counter,
            f.lost_increments,
            f.stale_reads,
            f.reads
        );
        print_fault_regions(&f.regions);
    }
    println!(
        "CockroachDB global-table write by its formula (500 ms max-offset + 1.5 RTT to the farthest region): {:.0} ms",
        r.cockroach_global_write_formula_ms
    );
}

/// The text form of `ttbench now-latency`'s result.
fn print_now_latency(r: &bench::now_latency::NowLatency) {
    let path = if r.counter_path {
        "counter path"
    } else {
        "raw-clock path: the page has no counter block"
    };
    for (what, s) in [("1 thread ", &r.one_thread), ("2 threads", &r.threads_2)] {
        println!(
            "{what}: TrueTime::now() ({path}) {:.1} ns, clock_gettime(CLOCK_REALTIME) {:.1} ns, ratio {:.2} (p99 {:.1} / {:.1} ns); raw-clock path {:.1} ns ({:.2})",
            s.tt_now_ns,
            s.clock_gettime_ns,
            s.ratio,
            s.tt_now_ns_p99,
            s.clock_gettime_ns_p99,
            s.tt_now_raw_path_ns,
            s.raw_path_ratio
        );
    }
    println!(
        "ClockBound 2 client now(): {:.1} ns, ratio {:.2} to clock_gettime (2 threads {:.1} ns)",
        r.one_thread.clockbound_now_ns,
        r.one_thread.clockbound_ratio,
        r.threads_2.clockbound_now_ns
    );
    println!(
        "ClockBound 3 client now(): {:.1} ns, ratio {:.2} to clock_gettime (2 threads {:.1} ns)",
        r.one_thread.clockbound3_now_ns,
        r.one_thread.clockbound3_ratio,
        r.threads_2.clockbound3_now_ns
    );
}

/// The text form of `ttbench commit-wait-overshoot`'s result.
fn print_commit_wait_overshoot(r: &serde_json::Value, waits: usize) {
    println!(
        "commit_wait overshoot past the exact after(s) instant: blocking p50 {} µs, p99 {} µs, max {} µs; async p50 {} µs, p99 {} µs; {} early returns of {}",
        r["overshoot_us"]["p50"],
        r["overshoot_us"]["p99"],
        r["overshoot_us"]["max"],
        r["async_overshoot_us"]["p50"],
        r["async_overshoot_us"]["p99"],
        r["returned_early"],
        waits
    );
}

/// The text form of `ttbench sync-rps`'s result.
fn print_sync_rps(report: &serde_json::Value, threads: usize, window: usize) {
    println!(
        "timemaster: {} exchanges/s (plain NTP requests), {} exchanges/s (TrueTime requests, interleaved transmit stamps); chronyd: {} exchanges/s{}; {} generator threads × {} in flight on {} cores",
        report["exchanges_per_s"],
        report["truetime_exchanges_per_s"],
        report["chronyd_per_s"],
        report["chronyd_error"]
            .as_str()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default(),
        threads,
        window,
        report["cores"]
    );
    if !report["nts_exchanges_per_s"].is_null() {
        println!(
            "NTS: timemaster {} exchanges/s ({}× its plain rate), chronyd {} exchanges/s{} ({}× chronyd's NTS rate)",
            report["nts_exchanges_per_s"],
            report["nts_ratio_to_plain"],
            report["chronyd_nts_per_s"],
            report["chronyd_nts_error"]
                .as_str()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default(),
            report["nts_ratio_to_chronyd_nts"]
        );
    }
}

/// The text form of `ttbench sim`'s result.
fn print_sim(j: &bench::sim::SimSummary) {
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| v.to_string());
    println!(
        "{}: {} hosts × {} masters, {} virtual s in {} s ({} virtual s per wall s)",
        j.scenario,
        j.hosts,
        j.masters,
        j.virtual_s,
        opt(j.wall_s),
        opt(j.virtual_s_per_wall_s)
    );
    println!("  samples {}, violations {}", j.samples, j.violations);
    let e = &j.epsilon_ns;
    println!(
        "  ε ns: p50 {} p99 {} max {} mean {}",
        e.p50, e.p99, e.max, e.mean
    );
    if let Some(f) = &j.epsilon_floor_ns {
        println!(
            "  link floor ns (no honest estimator below it): p50 {} p99 {}; samples below it {}",
            f.p50, f.p99, j.samples_below_floor
        );
    }
    let c = &j.commit_wait_ns;
    println!(
        "  commit wait ns: p50 {} p99 {} max {}",
        c.p50, c.p99, c.max
    );
    let s = &j.status_share;
    println!(
        "  status share: synchronized {:.4}, holdover {:.4}, unsynchronized {:.4}, disrupted {:.4}",
        s.synchronized, s.holdover, s.unsynchronized, s.disrupted
    );
    if !j.eviction_mismatches.is_empty() {
        println!(
            "  eviction mismatches (masters): {:?}, evicted at {:?} s",
            j.eviction_mismatches, j.masters_evicted_at_s
        );
    }
    for v in &j.first_violations {
        println!("  violation: {v:?}");
    }
}
