//! The campaign's network and processes: a bridge with one network namespace per daemon
//! (`ip netns`, veth pairs), links cut and healed, and restartable daemons inside them.

use super::*;
use ttsys::process::die_with_parent;

pub(super) fn ip(args: &[&str]) -> Result<(), Error> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        Error::at(
            format!("ip {} (the campaign needs iproute2)", args.join(" ")),
            e,
        )
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::failed(format!(
            "ip {}: {} (the campaign needs root)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The bridge and the namespaces; removed on drop.
pub(super) struct Net {
    pub(super) bridge: String,
    /// (namespace, root-side veth, address) per node.
    pub(super) nodes: Vec<(String, String, String)>,
}

impl Net {
    pub(super) fn new(id: u32, names: &[String]) -> Result<Net, Error> {
        let bridge = format!("ttc{id}br");
        let mut net = Net {
            bridge: bridge.clone(),
            nodes: Vec::new(),
        };
        // Leftovers of an earlier run with the same id.
        let _ = ip(&["link", "del", &bridge]);
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("10.77.{id}.254/24"), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for (i, name) in names.iter().enumerate() {
            let ns = format!("ttc{id}-{name}");
            let veth = format!("ttc{id}v{i}");
            let addr = format!("10.77.{id}.{}", 10 + i);
            let _ = ip(&["netns", "del", &ns]);
            ip(&["netns", "add", &ns])?;
            net.nodes.push((ns.clone(), veth.clone(), addr.clone()));
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &veth, "master", &bridge, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// Cuts node `i` off (its veth down) or reconnects it.
    pub(super) fn link(&self, i: usize, up: bool) -> Result<(), Error> {
        ip(&[
            "link",
            "set",
            &self.nodes[i].1,
            if up { "up" } else { "down" },
        ])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for (ns, _, _) in &self.nodes {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// One daemon in a namespace, restartable.
pub(super) struct Daemon {
    pub(super) name: String,
    pub(super) ns: String,
    pub(super) argv: Vec<String>,
    pub(super) log: PathBuf,
    pub(super) child: Option<Child>,
}

impl Daemon {
    pub(super) fn start(&mut self) -> Result<(), Error> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        // `ip netns exec` execs the daemon, which keeps the parent-death signal.
        let child = die_with_parent(&mut Command::new("ip"))
            .args(["netns", "exec", &self.ns])
            .args(&self.argv)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| Error::at(&self.name, e))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL (`ip netns exec` execs the daemon, so the pid is the daemon's).
    pub(super) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(super) fn running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}
