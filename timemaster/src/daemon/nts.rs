//! NTS on the master (RFC 8915): the master keys that seal cookies (a file only the service's
//! user may read, rotated on a schedule with old keys kept for a grace period) and the NTS-KE
//! server (TLS 1.3, ALPN `ntske/1`) that hands out eight cookies per handshake. The time server
//! ([`crate::ntp_server`]) opens the cookies with the same ring.
//!
//! A flood of handshakes costs the KE server, not time service: each handshake has a deadline,
//! at most [`MAX_HANDSHAKES`] run at once (more are closed at once), and time is answered by
//! other threads.

use crate::config::NtsConfig;
use arc_swap::ArcSwap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ttcore::ntp::nts::{self, KeyRing, MasterKey, ke};

/// Handshakes served at once; more connections are closed immediately.
pub const MAX_HANDSHAKES: usize = 256;
/// The longest one NTS-KE session may take.
pub const KE_DEADLINE: Duration = Duration::from_secs(5);

/// Why NTS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NtsSetupError {
    /// The key file.
    #[error("nts key-file {path}: {why}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The certificate or its key.
    #[error("nts: {0}")]
    Tls(#[from] ttsys::nts::NtsKeError),
}

/// Counters of NTS on this master.
#[derive(Debug, Default)]
pub struct NtsStats {
    /// NTS-KE handshakes completed with cookies.
    pub ke_ok: AtomicU64,
    /// NTS-KE sessions that failed (TLS, ALPN, records, deadline).
    pub ke_failed: AtomicU64,
    /// NTS-KE connections closed at once (too many at a time).
    pub ke_shed: AtomicU64,
    /// Time requests that authenticated.
    pub authenticated: AtomicU64,
    /// Time requests answered with a NAK (unknown cookie or failed authenticator).
    pub refused: AtomicU64,
    /// Key rotations.
    pub rotations: AtomicU64,
}

/// One line of the key file: `<id> <created, Unix s> <key, 64 hex digits>`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct StoredKey {
    id: u32,
    created_s: i64,
    key: [u8; nts::KEY_LEN],
}

fn key_err(path: &Path, why: impl ToString) -> NtsSetupError {
    NtsSetupError::KeyFile {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

fn parse_keys(path: &Path, text: &str) -> Result<Vec<StoredKey>, NtsSetupError> {
    let mut v = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| key_err(path, format!("line {}: {why}", n + 1));
        let f: Vec<&str> = line.split_whitespace().collect();
        let [id, created, hex] = f[..] else {
            return Err(bad("expected `<id> <created-unix-s> <64 hex digits>`"));
        };
        let id = id.parse().map_err(|_| bad("bad id"))?;
        let created_s = created.parse().map_err(|_| bad("bad creation time"))?;
        if hex.len() != 2 * nts::KEY_LEN || !hex.is_ascii() {
            return Err(bad("a key is 64 hex digits"));
        }
        let mut key = [0u8; nts::KEY_LEN];
        for (i, b) in key.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad("bad hex"))?;
        }
        v.push(StoredKey { id, created_s, key });
    }
    Ok(v)
}

fn render_keys(keys: &[StoredKey]) -> String {
    let mut s = String::from(
        "# timemaster NTS master keys: <id> <created, Unix s> <key>. Secret: mode 0600.\n",
    );
    for k in keys {
        s.push_str(&format!("{} {} ", k.id, k.created_s));
        for b in k.key {
            s.push_str(&format!("{b:02x}"));
        }
        s.push('\n');
    }
    s
}

/// Writes the key file atomically with mode 0600.
fn store_keys(path: &Path, keys: &[StoredKey]) -> Result<(), NtsSetupError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| key_err(&tmp, e))?;
    f.write_all(render_keys(keys).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| key_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| key_err(path, e))
}

/// The master keys, kept in a file.
pub struct Keys {
    path: std::path::PathBuf,
    keys: Vec<StoredKey>,
    rotate_after_s: i64,
    keep: usize,
}

impl Keys {
    /// Reads the key file (creating it with a first key when it does not exist). The file must
    /// not be readable or writable by group or others: a refusal names the mode.
    pub fn open(c: &NtsConfig, now_s: i64) -> Result<Keys, NtsSetupError> {
        let path = c.key_file.clone();
        let mut k = Keys {
            path: path.clone(),
            keys: Vec::new(),
            rotate_after_s: c.rotate_after_s as i64,
            keep: c.keep_keys,
        };
        match std::fs::metadata(&path) {
            Ok(m) => {
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(key_err(
                        &path,
                        format!("mode {mode:04o}: group or others may access it; chmod 600"),
                    ));
                }
                let text = std::fs::read_to_string(&path).map_err(|e| key_err(&path, e))?;
                k.keys = parse_keys(&path, &text)?;
                if k.keys.is_empty() {
                    k.add(now_s)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => k.add(now_s)?,
            Err(e) => return Err(key_err(&path, e)),
        }
        Ok(k)
    }

    /// Adds a fresh key (the new newest), drops the oldest beyond `keep-keys`, and persists.
    fn add(&mut self, now_s: i64) -> Result<(), NtsSetupError> {
        let id = self
            .keys
            .iter()
            .map(|k| k.id)
            .max()
            .map_or(1, |m| m.wrapping_add(1));
        self.keys.push(StoredKey {
            id,
            created_s: now_s,
            key: ttsys::random::bytes(),
        });
        let drop = self.keys.len().saturating_sub(self.keep.max(1));
        self.keys.drain(..drop);
        store_keys(&self.path, &self.keys)
    }

    /// Rotates when the newest key is older than `rotate-after-s`; says whether it did.
    pub fn rotate_if_due(&mut self, now_s: i64) -> Result<bool, NtsSetupError> {
        let newest = self.keys.last().map_or(i64::MIN, |k| k.created_s);
        if now_s.saturating_sub(newest) < self.rotate_after_s {
            return Ok(false);
        }
        self.add(now_s)?;
        Ok(true)
    }

    /// The ring the time server and NTS-KE use.
    pub fn ring(&self) -> KeyRing {
        KeyRing::new(
            self.keys
                .iter()
                .map(|k| MasterKey {
                    id: k.id,
                    key: k.key,
                })
                .collect(),
        )
        .expect("the key file holds at least one key")
    }
}

/// Unix seconds now.
pub fn unix_now_s() -> i64 {
    ttsys::clock::realtime_ns().div_euclid(1_000_000_000)
}

/// Rotates the keys on schedule until `stop`, publishing each new ring.
pub async fn rotate(
    mut keys: Keys,
    ring: Arc<ArcSwap<KeyRing>>,
    stats: Arc<NtsStats>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        match keys.rotate_if_due(unix_now_s()) {
            Ok(true) => {
                ring.store(Arc::new(keys.ring()));
                stats.rotations.fetch_add(1, Ordering::Relaxed);
                tracing::info!("nts: master key rotated");
            }
            Ok(false) => {}
            Err(e) => tracing::error!("nts: rotation failed, keeping the current key: {e}"),
        }
    }
}

/// Serves NTS-KE on `listener` until `stop`: each connection gets eight cookies for the NTP
/// port `ntp_port`.
pub async fn serve_ke(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ring: Arc<ArcSwap<KeyRing>>,
    ntp_port: u16,
    stats: Arc<NtsStats>,
    stop: Arc<AtomicBool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    while !stop.load(Ordering::Relaxed) {
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        let (tcp, peer) = match accepted {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::debug!("nts-ke: accept: {e}");
                continue;
            }
            Err(_) => continue,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.ke_shed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let (acceptor, ring, stats) = (acceptor.clone(), ring.clone(), stats.clone());
        tokio::spawn(async move {
            let r =
                tokio::time::timeout(KE_DEADLINE, session(tcp, acceptor, &ring, ntp_port)).await;
            match r {
                Ok(Ok(())) => {
                    stats.ke_ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(e)) => {
                    stats.ke_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("nts-ke {peer}: {e}");
                }
                Err(_) => {
                    stats.ke_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("nts-ke {peer}: deadline");
                }
            }
            drop(slot);
        });
    }
}

/// One NTS-KE session: the TLS handshake, the client's request, the response with cookies.
async fn session(
    tcp: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    ring: &ArcSwap<KeyRing>,
    ntp_port: u16,
) -> Result<(), String> {
    let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    let records = loop {
        match ke::decode(&buf).map_err(|e| e.to_string())? {
            Some((r, _)) => break r,
            None => {
                let n = tls.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("closed before End of Message".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    };
    let conn = tls.get_ref().1;
    if conn.alpn_protocol() != Some(nts::ALPN) {
        return Err("no ntske/1 ALPN".into());
    }
    let keys = ttsys::nts::export_keys(conn).map_err(|e| e.to_string())?;
    let ring = ring.load();
    let (response, _agreed) = ke::server_response(&records, Some(ntp_port), || {
        ring.seal(&keys, ttsys::random::bytes())
    });
    let mut out = Vec::with_capacity(1200);
    ke::encode(&response, &mut out).map_err(|e| e.to_string())?;
    tls.write_all(&out).await.map_err(|e| e.to_string())?;
    tls.shutdown().await.map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> NtsConfig {
        NtsConfig {
            ke_listen: "127.0.0.1:4460".parse().unwrap(),
            certificate: dir.join("c.pem"),
            private_key: dir.join("k.pem"),
            key_file: dir.join("keys"),
            rotate_after_s: 100,
            keep_keys: 2,
        }
    }

    #[test]
    fn the_key_file_is_created_private_rotated_and_refused_when_loose() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(d.path());
        let k = Keys::open(&c, 1_000).unwrap();
        let mode = std::fs::metadata(&c.key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let first = k.ring();
        let cookie = first.seal(
            &nts::Keys {
                c2s: [1; 32],
                s2c: [2; 32],
            },
            [3; 16],
        );
        // Reopened: the same key.
        let mut k = Keys::open(&c, 1_050).unwrap();
        assert!(k.ring().open(&cookie).is_ok());
        // Not due yet; then due: a new key, the old one kept (grace), then dropped.
        assert!(!k.rotate_if_due(1_050).unwrap());
        assert!(k.rotate_if_due(1_100).unwrap());
        assert_eq!(k.ring().keys().len(), 2);
        assert!(
            k.ring().open(&cookie).is_ok(),
            "old cookies valid in the grace period"
        );
        assert!(k.rotate_if_due(1_200).unwrap());
        assert!(k.ring().open(&cookie).is_err(), "and refused after it");
        // Persisted: a restart keeps the rotated keys.
        assert_eq!(
            Keys::open(&c, 1_201).unwrap().ring().keys(),
            k.ring().keys()
        );
        // A key file others may read is refused, naming the mode.
        std::fs::set_permissions(&c.key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Keys::open(&c, 1_300).err().expect("refused").to_string();
        assert!(e.contains("0644"), "{e}");
        // A damaged file names the line.
        std::fs::write(&c.key_file, "1 2 zz\n").unwrap();
        std::fs::set_permissions(&c.key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = Keys::open(&c, 1_300).err().expect("refused").to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
