//! The daemon around [`MasterCore`], one room per concern:
//!
//! - [`inputs`]: one thread per device (NMEA, PPS, atomic telemetry and lock line), each
//!   sending raw-clock-stamped [`Input`]s;
//! - [`core_loop`]: the one thread owning the core; it publishes a [`Published`] snapshot and
//!   the transfer view, which everything else loads without locking;
//! - [`peers`]: polls the other masters for the cross-check;
//! - [`rpc`] and [`metrics`]: the gRPC status and the OpenMetrics endpoint;
//! - [`crate::ntp_server`]: the UDP time transfer, answering from the published view;
//! - [`nts`]: NTS-KE and the master keys that seal cookies, when `[nts]` is configured.
//!
//! [`run`] binds every socket first (a taken port is a start-up error), then starts them all.

pub mod core_loop;
pub mod inputs;
pub mod metrics;
pub mod nts;
pub mod peers;
pub mod rpc;

pub use inputs::pps::sock_edge_sys_ns;
pub use inputs::{Input, InputStat};
pub use metrics::metrics_text;
pub use peers::PeerStat;
pub use rpc::Service;

use crate::config::{Config, LockLine, PpsSource};
use crate::core::master::{MasterCore, Snapshot};
use crate::ntp_server::{ServerStats, empty_view};
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use ttcore::ntp::MasterView;
use ttcore::{LeapTable, Span};
use ttproto::v1;
use ttsys::clock::raw_ns;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration's parameters are inconsistent.
    #[error(transparent)]
    Config(ttsys::config::InvalidKey),
    /// A signal handler could not be installed.
    #[error("signal handler: {0}")]
    Signal(#[source] std::io::Error),
    /// A listening socket could not be bound.
    #[error("{what} {addr}: {source}")]
    Bind {
        /// Which socket (the config key).
        what: &'static str,
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("tokio: {0}")]
    Runtime(#[source] std::io::Error),
    /// The gRPC server failed.
    #[error("gRPC: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The management credentials could not be set up.
    #[error("[management] {0}")]
    Management(#[from] ttsys::mgmt::MgmtError),
    /// NTS could not be set up (key file, certificate, key, trusted CAs).
    #[error(transparent)]
    Nts(#[from] nts::NtsSetupError),
}

/// What the core thread publishes.
#[derive(Clone, Debug)]
pub struct Published {
    /// The snapshot.
    pub snap: Snapshot,
    /// Counters.
    pub counters: crate::core::master::Counters,
    /// Recent events.
    pub events: Vec<String>,
    /// Atomic lock.
    pub atomic_locked: bool,
}

/// State shared by the threads and tasks.
pub struct Shared {
    /// Latest publication.
    pub published: ArcSwap<Published>,
    /// Inputs.
    pub inputs: Mutex<Vec<InputStat>>,
    /// Peers.
    pub peers: Mutex<Vec<PeerStat>>,
    /// Raw reading at start.
    pub started_raw: i64,
    /// Configuration.
    pub config: Config,
    /// Set to stop everything.
    pub stop: Arc<AtomicBool>,
    /// What time replies are built from (updated with every publication).
    pub view: Arc<ArcSwap<MasterView>>,
    /// The time-transfer server's counters.
    pub transfer: Arc<ServerStats>,
    /// NTS, when configured: the master keys' ring (shared with the time server) and counters.
    pub nts: Option<NtsState>,
    /// TLS client configuration for peers' NTS-KE (`nts-trusted-certs`).
    pub peer_tls: Option<Arc<rustls::ClientConfig>>,
}

/// NTS's shared state on a master.
pub struct NtsState {
    /// The master keys that open cookies (the newest seals them).
    pub ring: Arc<ArcSwap<ttcore::ntp::nts::KeyRing>>,
    /// Counters.
    pub stats: Arc<nts::NtsStats>,
}

impl Shared {
    fn input(&self, name: &str, f: impl FnOnce(&mut InputStat)) {
        let mut v = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = v.iter_mut().find(|s| s.name == name) {
            f(s);
        }
    }
}

/// Runs the daemon until SIGINT/SIGTERM. When simulating, firmware-sim's devices are already in
/// the config's paths (`timemaster run --simulate`).
#[allow(
    clippy::too_many_lines,
    reason = "the daemon's start-up in order: signals, every socket bound, NTS keys and certificates checked, then the input, core, NTS-KE and peer threads and the gRPC server; one sequence so that everything that can fail at start-up visibly does so before any thread runs"
)]
pub fn run(config: Config, leap: LeapTable) -> Result<(), DaemonError> {
    let params = config.params().map_err(DaemonError::Config)?;
    let core = MasterCore::new(params, leap);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(DaemonError::Signal)?;
    }
    let started_raw = raw_ns();
    // Time transfer: bind every socket before anything starts, so a taken port is a clear
    // start-up error.
    let ntp_addr = config.ntp_addr();
    let n_threads = config.ntp_thread_count();
    let sockets = (0..n_threads)
        .map(|_| ttsys::udp::TsSocket::bind_server(ntp_addr, n_threads > 1))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| DaemonError::Bind {
            what: "ntp-listen",
            addr: ntp_addr,
            source,
        })?;
    let max_eps = Span::from_nanos(config.max_epsilon_ns);
    // NTS: the key file, the certificate and the KE socket, all checked before anything runs.
    let nts_setup = match &config.nts {
        Some(c) => {
            let keys = nts::Keys::open(c, nts::unix_now_s())?;
            let tls =
                ttsys::nts::server_config(&c.certificate, &c.private_key, ttcore::ntp::nts::ALPN)
                    .map_err(nts::NtsSetupError::from)?;
            let listener =
                std::net::TcpListener::bind(c.ke_listen).map_err(|source| DaemonError::Bind {
                    what: "nts.ke-listen",
                    addr: c.ke_listen,
                    source,
                })?;
            Some((keys, tls, listener))
        }
        None => None,
    };
    let peer_tls = match &config.nts_trusted_certs {
        Some(ca) => Some(
            ttsys::nts::client_config(ca, ttcore::ntp::nts::ALPN)
                .map_err(nts::NtsSetupError::from)?,
        ),
        None => None,
    };
    let nts_state = nts_setup.as_ref().map(|(k, _, _)| NtsState {
        ring: Arc::new(ArcSwap::from_pointee(k.ring())),
        stats: Arc::new(nts::NtsStats::default()),
    });
    let shared = Arc::new(Shared {
        published: ArcSwap::from_pointee(Published {
            snap: core.snapshot(ttcore::RawReading::from_nanos(started_raw)),
            counters: core.counters(),
            events: Vec::new(),
            atomic_locked: false,
        }),
        inputs: Mutex::new(Vec::new()),
        peers: Mutex::new(Vec::new()),
        started_raw,
        config: config.clone(),
        stop: stop.clone(),
        view: Arc::new(ArcSwap::from_pointee(empty_view(
            config.kind,
            &config.id,
            max_eps,
        ))),
        transfer: Arc::new(ServerStats::default()),
        nts: nts_state,
        peer_tls,
    });
    let (tx, rx) = channel();
    let mut threads = spawn_inputs(&config, &tx, &shared);
    {
        let s = shared.clone();
        threads.push(std::thread::spawn(move || {
            core_loop::core_thread(core, rx, s)
        }));
    }
    if let Some(s0) = sockets.first() {
        shared.transfer.set_stamping(s0.stamping());
    }
    let limit = config.rate_limit.params();
    for sock in sockets {
        let (v, st, stop) = (
            shared.view.clone(),
            shared.transfer.clone(),
            shared.stop.clone(),
        );
        let nts = shared
            .nts
            .as_ref()
            .map(|n| (n.ring.clone(), n.stats.clone()));
        threads.push(std::thread::spawn(move || {
            crate::ntp_server::serve(sock, v, st, nts, limit, stop)
        }));
    }
    tracing::info!(
        "time transfer on udp {ntp_addr} ({n_threads} thread(s), {} stamps)",
        shared.transfer.stamping_str()
    );
    if !config.peers.is_empty() {
        let (s, t) = (shared.clone(), tx.clone());
        threads.push(std::thread::spawn(move || peers::peer_thread(s, t)));
    }
    let result = serve_rpc(
        &config,
        Arc::new(Service::new(shared.clone())),
        nts_setup.map(|(k, tls, l)| (k, tls, l, ntp_addr.port())),
        &stop,
    );
    stop.store(true, Ordering::Relaxed);
    drop(tx);
    for t in threads {
        let _ = t.join();
    }
    tracing::info!("timemaster stopped");
    result
}

/// Starts one thread per configured input, registering each in the status.
fn spawn_inputs(config: &Config, tx: &Sender<Input>, shared: &Arc<Shared>) -> Vec<JoinHandle<()>> {
    let mut threads = Vec::new();
    let mut spawn = |f: Box<dyn FnOnce() + Send>| threads.push(std::thread::spawn(f));
    if let Some(g) = &config.gps {
        inputs::register(shared, "nmea", &g.nmea_device);
        let (p, b, t, s) = (g.nmea_device.clone(), g.baud, tx.clone(), shared.clone());
        spawn(Box::new(move || inputs::nmea::thread(p, b, "nmea", t, s)));
        inputs::register(shared, "pps", &pps_path(&g.pps));
        let (src, t, s) = (g.pps.clone(), tx.clone(), shared.clone());
        spawn(Box::new(move || {
            inputs::pps::thread(src, "pps", false, t, s)
        }));
    }
    if let Some(a) = &config.atomic {
        inputs::register(shared, "atomic-pps", &pps_path(&a.pps));
        let (src, t, s) = (a.pps.clone(), tx.clone(), shared.clone());
        spawn(Box::new(move || {
            inputs::pps::thread(src, "atomic-pps", true, t, s)
        }));
        if let Some(dev) = &a.telemetry_device {
            inputs::register(shared, "atomic-telemetry", dev);
            let (p, b, t, s) = (dev.clone(), a.baud, tx.clone(), shared.clone());
            spawn(Box::new(move || {
                inputs::atomic::telemetry_thread(p, b, t, s)
            }));
        }
        match &a.lock_line {
            Some(l) => {
                let src = match l {
                    LockLine::File { path } => path.clone(),
                    LockLine::Gpio { chip, .. } => chip.clone(),
                };
                inputs::register(shared, "lock-line", &src);
                let (l, t, s) = (l.clone(), tx.clone(), shared.clone());
                spawn(Box::new(move || inputs::atomic::lock_line_thread(l, t, s)));
            }
            // Without a lock line the telemetry (or nothing) decides; assume locked so the
            // telemetry status is the only gate.
            None => {
                let _ = tx.send(Input::AtomicLock(
                    true,
                    ttcore::RawReading::from_nanos(raw_ns()),
                ));
            }
        }
    }
    threads
}

/// Serves gRPC (and the metrics endpoint, when configured) until `stop` is set.
fn serve_rpc(
    config: &Config,
    svc: Arc<Service>,
    nts_ke: Option<(
        nts::Keys,
        Arc<rustls::ServerConfig>,
        std::net::TcpListener,
        u16,
    )>,
    stop: &Arc<AtomicBool>,
) -> Result<(), DaemonError> {
    let security = config
        .management
        .server(config.listen, OPEN_METHODS)
        .map_err(DaemonError::Management)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    rt.block_on(async {
        if let (Some((keys, tls, listener, port)), Some(state)) = (nts_ke, &svc.shared().nts) {
            listener
                .set_nonblocking(true)
                .map_err(DaemonError::Runtime)?;
            let l = tokio::net::TcpListener::from_std(listener).map_err(DaemonError::Runtime)?;
            tracing::info!(
                "NTS-KE on {} (cookies for udp port {port})",
                l.local_addr().map_err(DaemonError::Runtime)?
            );
            tokio::spawn(nts::serve_ke(
                l,
                tls,
                state.ring.clone(),
                port,
                state.stats.clone(),
                stop.clone(),
            ));
            tokio::spawn(nts::rotate(
                keys,
                state.ring.clone(),
                state.stats.clone(),
                stop.clone(),
            ));
        }
        if let Some(m) = config.metrics_listen {
            tokio::spawn(ttsys::metrics::serve(m, metrics::render(svc.clone())));
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| DaemonError::Bind {
                what: "listen",
                addr: config.listen,
                source,
            })?;
        tracing::info!(
            "timemaster {} ({:?}) serving gRPC on {} ({})",
            config.id,
            config.kind,
            config.listen,
            if security.tls() {
                "TLS"
            } else {
                "plaintext, loopback"
            }
        );
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let stop2 = stop.clone();
        security
            .builder()?
            .tcp_nodelay(true)
            .add_service(v1::time_master_server::TimeMasterServer::from_arc(svc))
            .serve_with_incoming_shutdown(incoming, async move {
                while !stop2.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
            .await?;
        Ok(())
    })
}

/// The gRPC methods anyone who reaches the listener may call (reads); every other method needs
/// the management token ([`ttsys::mgmt`]).
pub const OPEN_METHODS: &[&str] = &["/truetime.v1.TimeMaster/Status"];

/// The device or socket a pulse source reads, for the status.
fn pps_path(p: &PpsSource) -> PathBuf {
    match p {
        PpsSource::Sock { path } => path.clone(),
        PpsSource::Kernel { device } => device.clone(),
        PpsSource::Gpio { chip, .. } => chip.clone(),
    }
}
