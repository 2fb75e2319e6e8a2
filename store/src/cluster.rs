//! A local cluster of `ttstore node` child processes on loopback — what `ttstore cluster`, the
//! integration tests and `ttbench store` start. Each node logs to `<dir>/node<id>.log`.

use crate::node::Mode;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How to start a local cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The `ttstore` executable.
    pub exe: PathBuf,
    /// Data and log directory.
    pub dir: PathBuf,
    /// Number of nodes (ids 1..=n).
    pub nodes: u64,
    /// First port (`None`: any free ports).
    pub base_port: Option<u16>,
    /// Timestamp mode.
    pub mode: Mode,
    /// Commit wait on (TrueTime mode).
    pub commit_wait: bool,
    /// Per-node clock skew from the host clock (ns), by node index; missing entries are 0.
    pub skews_ns: Vec<i64>,
    /// The ε every simulated clock claims (ns).
    pub epsilon_ns: i64,
    /// Use timed (page path, gRPC address) instead of simulated clocks.
    pub timed: Option<(PathBuf, String)>,
    /// One page per node (node `i` reads `pages[i − 1]`), each written by the caller as timed
    /// would: per-node clocks whose ε and status the caller controls. Takes precedence over
    /// `timed`.
    pub pages: Vec<PathBuf>,
    /// HLC max offset (ms).
    pub max_offset_ms: u64,
    /// The ε past which a node quarantines itself (ns; `None`: 80 % of the max offset).
    pub max_epsilon_ns: Option<i64>,
    /// Global-table lead (ms; 0: off).
    pub global_lead_ms: u64,
    /// Idle close interval (ms).
    pub close_interval_ms: u64,
    /// Snapshot every this many log entries.
    pub snapshot_every: u64,
    /// Serve TLS with a throwaway CA (`<dir>/pki`); the cluster token (`<dir>/token`) is
    /// always on.
    pub tls: bool,
    /// Regions and the delays between them (written to `<dir>/topology.toml` for the nodes).
    pub topology: Option<crate::region::Topology>,
    /// Shards (Raft groups). With more than one, shard `g`'s leader is first placed on node
    /// `group_homes[g]` (default: node `g mod nodes + 1`).
    pub shards: u32,
    /// The node each shard is initialised on (and so led by first), by shard.
    pub group_homes: Vec<u64>,
    /// Run AP nodes (`ttstore ap-node`: multi-leader, asynchronous replication) instead of the
    /// Raft store; the mode, commit-wait, shard and Raft options do not apply.
    pub ap: bool,
}

impl ClusterConfig {
    /// Three TrueTime nodes with simulated clocks of bound `epsilon_ns` and no skew.
    pub fn new(exe: &Path, dir: &Path) -> ClusterConfig {
        ClusterConfig {
            exe: exe.to_path_buf(),
            dir: dir.to_path_buf(),
            nodes: 3,
            base_port: None,
            mode: Mode::Truetime,
            commit_wait: true,
            skews_ns: vec![],
            epsilon_ns: 1_000_000,
            timed: None,
            pages: Vec::new(),
            max_offset_ms: 250,
            max_epsilon_ns: None,
            global_lead_ms: 0,
            close_interval_ms: 50,
            snapshot_every: 5000,
            tls: false,
            topology: None,
            shards: 1,
            group_homes: Vec::new(),
            ap: false,
        }
    }
}

struct Proc {
    id: u64,
    addr: String,
    child: Option<Child>,
}

/// Running nodes; dropping the cluster kills them.
pub struct LocalCluster {
    cfg: ClusterConfig,
    procs: Vec<Proc>,
    token_file: PathBuf,
    pki: Option<ttsys::nts::Pki>,
}

use ttsys::port::free_port;

impl LocalCluster {
    /// Starts `cfg.nodes` nodes; node 1 initialises the cluster.
    pub fn start(cfg: ClusterConfig) -> io::Result<LocalCluster> {
        std::fs::create_dir_all(&cfg.dir)?;
        let mut procs = Vec::new();
        for id in 1..=cfg.nodes {
            let port = match cfg.base_port {
                Some(p) => p + (id - 1) as u16,
                None => free_port()?,
            };
            procs.push(Proc {
                id,
                addr: format!("127.0.0.1:{port}"),
                child: None,
            });
        }
        // One token for the cluster, kept if the directory already has one (a restart).
        let token_file = cfg.dir.join("token");
        if ttsys::mgmt::Token::load(&token_file).is_err() {
            ttsys::mgmt::Token::generate(&token_file).map_err(io::Error::other)?;
        }
        let pki = if cfg.tls {
            let d = cfg.dir.join("pki");
            std::fs::create_dir_all(&d)?;
            Some(ttsys::nts::throwaway_pki(&d, &["127.0.0.1"]).map_err(io::Error::other)?)
        } else {
            None
        };
        if let Some(t) = &cfg.topology {
            std::fs::write(cfg.dir.join("topology.toml"), t.to_toml())?;
        }
        let mut c = LocalCluster {
            cfg,
            procs,
            token_file,
            pki,
        };
        for id in 1..=c.cfg.nodes {
            c.spawn(id)?;
        }
        Ok(c)
    }

    /// The file holding the cluster token (mode 0600).
    pub fn token_file(&self) -> &Path {
        &self.token_file
    }

    /// What a client needs: the CA (with TLS) and the cluster token.
    pub fn security(&self) -> io::Result<ttsys::mgmt::ClientSecurity> {
        ttsys::mgmt::ClientSecurity::from_files(
            self.pki.as_ref().map(|p| p.ca.as_path()),
            Some(&self.token_file),
        )
        .map_err(io::Error::other)
    }

    /// A client holding the cluster's credentials.
    pub fn client(&self) -> io::Result<crate::client::Client> {
        Ok(crate::client::Client::with_security(
            &self.addrs(),
            self.security()?,
        ))
    }

    /// Node addresses, by id order.
    pub fn addrs(&self) -> Vec<String> {
        self.procs.iter().map(|p| p.addr.clone()).collect()
    }

    /// The address of node `id`.
    pub fn addr(&self, id: u64) -> Option<String> {
        self.procs
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.addr.clone())
    }

    /// The node shard `g` is initialised on.
    pub fn home_of(&self, g: u32) -> u64 {
        self.cfg
            .group_homes
            .get(g as usize)
            .copied()
            .unwrap_or(u64::from(g) % self.cfg.nodes.max(1) + 1)
    }

    /// The node's clock: its own page, timed's, or a simulated clock with its skew.
    fn clock_args(&self, id: u64) -> Vec<String> {
        let own_page = self
            .cfg
            .pages
            .get((id - 1) as usize)
            .map(|p| (p.clone(), "127.0.0.1:9".to_string()));
        match own_page.as_ref().or(self.cfg.timed.as_ref()) {
            Some((page, addr)) => vec![
                "--page".into(),
                page.display().to_string(),
                "--timed".into(),
                addr.clone(),
            ],
            None => {
                let skew = self
                    .cfg
                    .skews_ns
                    .get((id - 1) as usize)
                    .copied()
                    .unwrap_or(0);
                vec![
                    format!("--skew-ns={skew}"),
                    format!("--epsilon-ns={}", self.cfg.epsilon_ns),
                ]
            }
        }
    }

    fn args(&self, id: u64) -> Vec<String> {
        let p = self.procs.iter().find(|p| p.id == id).expect("known node");
        let dir = self.cfg.dir.join(format!("node{id}")).display().to_string();
        let mut a = vec![
            if self.cfg.ap { "ap-node" } else { "node" }.to_string(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            p.addr.clone(),
            "--dir".into(),
            dir,
            "--token-file".into(),
            self.token_file.display().to_string(),
        ];
        if self.cfg.ap {
            let peers: Vec<String> = self
                .procs
                .iter()
                .map(|p| format!("{}={}", p.id, p.addr))
                .collect();
            a.extend(["--peers".into(), peers.join(",")]);
        } else {
            a.extend([
                "--mode".into(),
                self.cfg.mode.name().into(),
                "--max-offset-ms".into(),
                self.cfg.max_offset_ms.to_string(),
                "--close-interval-ms".into(),
                self.cfg.close_interval_ms.to_string(),
                "--snapshot-every".into(),
                self.cfg.snapshot_every.to_string(),
            ]);
        }
        if let Some(p) = &self.pki {
            for (flag, f) in [
                ("--tls-cert", &p.cert),
                ("--tls-key", &p.key),
                ("--tls-ca", &p.ca),
            ] {
                a.extend([flag.into(), f.display().to_string()]);
            }
        }
        a.extend(self.clock_args(id));
        if self.cfg.topology.is_some() {
            a.extend([
                "--topology".into(),
                self.cfg.dir.join("topology.toml").display().to_string(),
            ]);
        }
        if self.cfg.ap {
            return a;
        }
        if !self.cfg.commit_wait {
            a.push("--no-commit-wait".into());
        }
        if let Some(m) = self.cfg.max_epsilon_ns {
            a.push(format!("--max-epsilon-ns={m}"));
        }
        if self.cfg.global_lead_ms > 0 {
            a.push(format!("--global-lead-ms={}", self.cfg.global_lead_ms));
        }
        if self.cfg.shards > 1 {
            a.push(format!("--shards={}", self.cfg.shards));
        }
        let homes: Vec<u32> = (0..self.cfg.shards)
            .filter(|g| self.home_of(*g) == id)
            .collect();
        if self.cfg.shards > 1 && !homes.is_empty() {
            let list: Vec<String> = homes.iter().map(u32::to_string).collect();
            a.push(format!("--init-groups={}", list.join(",")));
        }
        if (self.cfg.shards <= 1 && id == 1) || (self.cfg.shards > 1 && !homes.is_empty()) {
            let init: Vec<String> = self
                .procs
                .iter()
                .filter(|p| p.id <= self.cfg.nodes)
                .map(|p| format!("{}={}", p.id, p.addr))
                .collect();
            a.extend(["--init".into(), init.join(",")]);
        }
        a
    }

    fn spawn(&mut self, id: u64) -> io::Result<()> {
        let args = self.args(id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.cfg.dir.join(format!("node{id}.log")))?;
        // Nodes die with the cluster's owner, even when it is SIGKILLed.
        let child = ttsys::process::die_with_parent(&mut Command::new(&self.cfg.exe))
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let p = self
            .procs
            .iter_mut()
            .find(|p| p.id == id)
            .expect("known node");
        p.child = Some(child);
        Ok(())
    }

    /// Adds a process for a new node `id` (not yet a member: add it with `add-node`).
    pub fn spawn_extra(&mut self, id: u64) -> io::Result<String> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        self.procs.push(Proc {
            id,
            addr: addr.clone(),
            child: None,
        });
        self.spawn(id)?;
        Ok(addr)
    }

    /// SIGKILLs node `id` (no chance to flush anything that was not already fsynced).
    pub fn kill(&mut self, id: u64) {
        if let Some(p) = self.procs.iter_mut().find(|p| p.id == id) {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Restarts a killed node with its data directory.
    pub fn restart(&mut self, id: u64) -> io::Result<()> {
        self.kill(id);
        self.spawn(id)
    }

    /// Stops every node: SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&mut self) {
        for p in &mut self.procs {
            if let Some(c) = &p.child {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        for p in &mut self.procs {
            if let Some(mut c) = p.child.take() {
                while std::time::Instant::now() < deadline {
                    if let Ok(Some(_)) = c.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// The node log of `id`.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.cfg.dir.join(format!("node{id}.log"))).unwrap_or_default()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
