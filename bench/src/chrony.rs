//! A real chronyd beside our daemons (`-x`: it never touches the clock): a server under the
//! same load generator (`ttbench sync-rps`) and a client of our masters (the interop test).

use crate::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use ttsys::process::die_with_parent;

/// A running chronyd; killed on drop.
pub struct Chronyd {
    child: Child,
    /// Its directory (mode 0700, as chronyd requires): config, command socket, pid file.
    pub dir: PathBuf,
}

impl Drop for Chronyd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The chronyd binary, if installed.
pub fn chronyd_path() -> Option<PathBuf> {
    ["/usr/sbin/chronyd", "/usr/bin/chronyd", "/sbin/chronyd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Chronyd {
    /// Starts `bin` in `dir` (created, mode 0700) with `conf` plus its command socket and pid
    /// file in `dir` (`cmdport 0`: no UDP command port).
    pub fn start(bin: &Path, dir: &Path, conf: &str) -> Result<Chronyd, Error> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).map_err(|e| Error::at(dir.display(), e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let path = dir.join("chrony.conf");
        std::fs::write(
            &path,
            format!(
                "{conf}cmdport 0\nbindcmdaddress {d}/chronyd.sock\npidfile {d}/chronyd.pid\n",
                d = dir.display()
            ),
        )?;
        let child = die_with_parent(&mut Command::new(bin))
            .args(["-x", "-d", "-u", "root", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::at(bin.display(), e))?;
        Ok(Chronyd {
            child,
            dir: dir.to_path_buf(),
        })
    }

    /// `chronyc -n ARGS` against this chronyd's command socket; its standard output.
    pub fn chronyc(&self, args: &[&str]) -> Result<String, Error> {
        let out = Command::new("chronyc")
            .arg("-h")
            .arg(self.dir.join("chronyd.sock"))
            .arg("-n")
            .args(args)
            .output()
            .map_err(|e| Error::at("chronyc", e))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
