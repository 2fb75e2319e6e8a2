//! NTS's I/O (RFC 8915): TLS 1.3 configurations from PEM files and the client's NTS-KE over a
//! blocking TLS connection. The records, cookies and packet protection are pure code in
//! [`ttcore::ntp::nts`]; the master's NTS-KE server is in timemaster (async); random bytes come
//! from [`crate::random`].

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use ttcore::ntp::nts::{self, Keys, ke};

/// Why TLS or NTS-KE failed.
#[derive(Debug, Error)]
pub enum NtsKeError {
    /// A certificate, key or CA file.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// rustls refused the configuration or the session.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The connection.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer did not agree on `ntske/1`.
    #[error("the server did not agree on ALPN ntske/1")]
    Alpn,
    /// The records.
    #[error("{0}")]
    Nts(#[from] ttcore::ntp::nts::NtsError),
    /// No answer in time.
    #[error("NTS-KE took longer than {0:?}")]
    Timeout(Duration),
    /// The server name is not a DNS name or IP address.
    #[error("{0:?} is not a server name")]
    Name(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_err(path: &Path, why: impl ToString) -> NtsKeError {
    NtsKeError::File {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// The certificates in a PEM file (a chain: leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, NtsKeError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// A TLS 1.3 server configuration (certificate chain and key from PEM files) offering `alpn`.
pub fn server_config(
    cert: &Path,
    key: &Path,
    alpn: &[u8],
) -> Result<Arc<rustls::ServerConfig>, NtsKeError> {
    let chain = load_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e))?;
    let mut c = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    c.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(c))
}

/// A TLS 1.3 client configuration trusting the CA certificates in `ca` (PEM) and offering
/// `alpn`.
pub fn client_config(ca: &Path, alpn: &[u8]) -> Result<Arc<rustls::ClientConfig>, NtsKeError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(ca)? {
        roots.add(c).map_err(|e| file_err(ca, e))?;
    }
    let mut c = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(c))
}

/// What one NTS-KE gave the client.
#[derive(Clone, Debug)]
pub struct Established {
    /// The session keys exported from TLS.
    pub keys: Keys,
    /// The server's answer: cookies, and the NTP server and port if it named them.
    pub agreed: ke::Agreed,
}

/// Exports the two NTS keys from a TLS session.
pub fn export_keys(conn: &rustls::ConnectionCommon<impl Sized>) -> Result<Keys, rustls::Error> {
    let mut keys = Keys {
        c2s: [0; nts::KEY_LEN],
        s2c: [0; nts::KEY_LEN],
    };
    conn.export_keying_material(
        &mut keys.c2s,
        nts::EXPORTER_LABEL,
        Some(&nts::exporter_context(false)),
    )?;
    conn.export_keying_material(
        &mut keys.s2c,
        nts::EXPORTER_LABEL,
        Some(&nts::exporter_context(true)),
    )?;
    Ok(keys)
}

/// Client: one NTS-KE with the server at `addr` (`host:port`), whose certificate must name
/// `server_name`, within `timeout`.
pub fn key_exchange(
    addr: &str,
    server_name: &str,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Established, NtsKeError> {
    let deadline = Instant::now() + timeout;
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|_| NtsKeError::Name(server_name.into()))?;
    let sa = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{addr}: no address")))?;
    let tcp = TcpStream::connect_timeout(&sa, timeout)?;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(NtsKeError::Timeout(timeout))
    };
    tcp.set_read_timeout(Some(left()?))?;
    tcp.set_write_timeout(Some(left()?))?;
    let conn = rustls::ClientConnection::new(tls, name)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(&ke::client_request())?;
    s.flush()?;
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    let records = loop {
        if let Some((r, _)) = ke::decode(&buf)? {
            break r;
        }
        s.sock.set_read_timeout(Some(left()?))?;
        let n = match s.read(&mut chunk) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(NtsKeError::Timeout(timeout));
            }
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Err(ttcore::ntp::nts::NtsError::Ke("connection closed mid-message").into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if s.conn.alpn_protocol() != Some(nts::ALPN) {
        return Err(NtsKeError::Alpn);
    }
    let agreed = ke::client_response(&records)?;
    let keys = export_keys(&s.conn)?;
    s.conn.send_close_notify();
    let _ = s.flush();
    Ok(Established { keys, agreed })
}

/// Files of a throwaway PKI ([`throwaway_pki`]).
#[derive(Clone, Debug)]
pub struct Pki {
    /// The CA certificate (PEM): what clients trust.
    pub ca: std::path::PathBuf,
    /// The server's leaf certificate (PEM), signed by the CA.
    pub cert: std::path::PathBuf,
    /// The leaf's private key (PEM, mode 0600).
    pub key: std::path::PathBuf,
}

/// A small CA and one leaf certificate for `names` (IP addresses or DNS names), written to
/// `dir` as `ca.pem`, `server.pem` and `server.key`: for the lab, tests and trials, never for
/// production (the CA's key is thrown away, so nothing else can be issued under it).
pub fn throwaway_pki(dir: &Path, names: &[&str]) -> Result<Pki, NtsKeError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    use std::os::unix::fs::OpenOptionsExt;
    let gen_err = |e: rcgen::Error| file_err(dir, format!("certificate generation: {e}"));
    let ca_key = KeyPair::generate().map_err(gen_err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "TrueTime throwaway CA");
    let ca_cert = ca.self_signed(&ca_key).map_err(gen_err)?;
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().map_err(gen_err)?;
    let mut leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .map_err(gen_err)?;
    leaf.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("truetime"),
    );
    leaf.is_ca = IsCa::ExplicitNoCa;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(gen_err)?;
    let pki = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    let write = |path: &Path, text: &str, mode: u32| -> Result<(), NtsKeError> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .map_err(|e| file_err(path, e))?;
        f.write_all(text.as_bytes()).map_err(|e| file_err(path, e))
    };
    write(&pki.ca, &ca_cert.pem(), 0o644)?;
    write(&pki.cert, &leaf_cert.pem(), 0o644)?;
    write(&pki.key, &leaf_key.serialize_pem(), 0o600)?;
    Ok(pki)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The throwaway PKI loads into both TLS configurations, and a client trusting another CA
    /// is refused (the negative control of the trust check).
    #[test]
    fn a_throwaway_pki_serves_a_handshake_and_a_stranger_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let pki = throwaway_pki(d.path(), &["127.0.0.1"]).unwrap();
        let server = server_config(&pki.cert, &pki.key, nts::ALPN).unwrap();
        let good = client_config(&pki.ca, nts::ALPN).unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        let other = throwaway_pki(other_dir.path(), &["127.0.0.1"]).unwrap();
        let stranger = client_config(&other.ca, nts::ALPN).unwrap();
        let handshake = |client: Arc<rustls::ClientConfig>| -> Result<(), rustls::Error> {
            let mut c =
                rustls::ClientConnection::new(client, ServerName::try_from("127.0.0.1").unwrap())?;
            let mut s = rustls::ServerConnection::new(server.clone())?;
            for _ in 0..10 {
                let mut buf = Vec::new();
                c.write_tls(&mut buf).unwrap();
                s.read_tls(&mut buf.as_slice()).unwrap();
                s.process_new_packets()?;
                let mut buf = Vec::new();
                s.write_tls(&mut buf).unwrap();
                c.read_tls(&mut buf.as_slice()).unwrap();
                c.process_new_packets()?;
                if !c.is_handshaking() && !s.is_handshaking() {
                    assert_eq!(c.alpn_protocol(), Some(nts::ALPN));
                    // Both ends export the same keys.
                    assert_eq!(export_keys(&c).unwrap(), export_keys(&s).unwrap());
                    return Ok(());
                }
            }
            panic!("no handshake");
        };
        handshake(good).unwrap();
        assert!(handshake(stranger).is_err());
    }
}
