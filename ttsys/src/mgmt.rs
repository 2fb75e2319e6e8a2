//! The management plane's locks: TLS on every gRPC listener that is not loopback-only, and a
//! bearer token that every call outside a service's open (read-only) list must carry.
//!
//! The guard is a layer in front of a daemon's whole gRPC router, so it is **default-deny**: a
//! method is open only if its full path (`/package.Service/Method`) is in the list the daemon
//! passes; every other method — including one added to a `.proto` later — needs the token.
//!
//! - **TLS** ([`ManagementConfig::certificate`], [`ManagementConfig::private_key`]): required
//!   when the listen address is not a loopback address; a daemon refuses to start otherwise.
//!   With [`ManagementConfig::client_ca`] the listener also demands a client certificate signed
//!   by that CA (mutual TLS).
//! - **Token** ([`ManagementConfig::token_file`]): a file the service's user alone may read (mode
//!   `0600` or stricter; a daemon refuses to start otherwise), at least 32 characters. Clients
//!   send it as `authorization: Bearer <token>`; it is compared in constant time. Without a token
//!   file, every non-open call is refused (`PERMISSION_DENIED`): nothing changes state unless an
//!   operator set a credential.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};

/// The metadata key carrying the token.
pub const AUTHORIZATION: &str = "authorization";

/// Shortest token accepted (characters).
pub const MIN_TOKEN_LEN: usize = 32;

/// What went wrong setting up management security.
#[derive(Debug, thiserror::Error)]
pub enum MgmtError {
    /// A credential file is unreadable, too open or malformed.
    #[error("{}: {why}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        why: String,
    },
    /// A listener off loopback without TLS.
    #[error(
        "gRPC on {addr} is reachable beyond this host but has no TLS: set [management] \
         certificate and private-key, or listen on a loopback address"
    )]
    PlaintextOffLoopback {
        /// The listen address.
        addr: SocketAddr,
    },
    /// Half a key pair, or a client CA without a server certificate.
    #[error("[management] {0}")]
    Incomplete(&'static str),
    /// TLS could not be set up with these files.
    #[error("TLS: {0}")]
    Tls(String),
    /// A bad address for a client.
    #[error("bad address {addr:?}: {why}")]
    Address {
        /// The address given.
        addr: String,
        /// Why.
        why: String,
    },
}

/// `[management]`: how a daemon's gRPC listener is locked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ManagementConfig {
    /// PEM certificate chain served on the gRPC listener (TLS 1.3). Required unless the
    /// listener is loopback-only.
    pub certificate: Option<PathBuf>,
    /// PEM private key of `certificate` (mode 0600).
    pub private_key: Option<PathBuf>,
    /// PEM CA certificates: when set, clients must present a certificate they sign (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// File holding the bearer token that state-changing calls must carry (mode 0600, at least
    /// 32 characters). Without it, state-changing calls are refused.
    pub token_file: Option<PathBuf>,
}

impl ManagementConfig {
    /// Checks the settings against the listen address without touching files: TLS keys come in
    /// pairs, a client CA needs TLS, and a listener beyond loopback needs TLS.
    pub fn check(&self, listen: SocketAddr) -> Result<(), MgmtError> {
        match (&self.certificate, &self.private_key) {
            (Some(_), None) => return Err(MgmtError::Incomplete("certificate needs private-key")),
            (None, Some(_)) => return Err(MgmtError::Incomplete("private-key needs certificate")),
            _ => {}
        }
        if self.client_ca.is_some() && self.certificate.is_none() {
            return Err(MgmtError::Incomplete(
                "client-ca needs certificate and private-key (mutual TLS is TLS)",
            ));
        }
        if self.certificate.is_none() && !listen.ip().is_loopback() {
            return Err(MgmtError::PlaintextOffLoopback { addr: listen });
        }
        Ok(())
    }

    /// [`Self::check`] as a configuration error naming the key (`listen` for plaintext beyond
    /// loopback, `management` otherwise).
    pub fn check_key(&self, listen: SocketAddr) -> Result<(), crate::config::InvalidKey> {
        self.check(listen).map_err(|e| {
            let key = match e {
                MgmtError::PlaintextOffLoopback { .. } => "listen",
                _ => "management",
            };
            crate::config::InvalidKey::new(key, e.to_string())
        })
    }

    /// Loads the files and builds the server side: TLS (if configured) and the guard with the
    /// methods in `open` left open.
    pub fn server(
        &self,
        listen: SocketAddr,
        open: &'static [&'static str],
    ) -> Result<ServerSecurity, MgmtError> {
        self.check(listen)?;
        let tls = match (&self.certificate, &self.private_key) {
            (Some(c), Some(k)) => {
                let cert = read(c)?;
                private_file(k)?;
                let key = read(k)?;
                let mut t = tonic::transport::ServerTlsConfig::new()
                    .identity(tonic::transport::Identity::from_pem(cert, key));
                if let Some(ca) = &self.client_ca {
                    t = t.client_ca_root(tonic::transport::Certificate::from_pem(read(ca)?));
                }
                Some(t)
            }
            _ => None,
        };
        let token = self.token_file.as_deref().map(Token::load).transpose()?;
        Ok(ServerSecurity {
            tls,
            guard: Guard {
                inner: Arc::new(GuardInner { open, token }),
            },
        })
    }
}

fn file_err(path: &Path, why: impl ToString) -> MgmtError {
    MgmtError::File {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, MgmtError> {
    std::fs::read(path).map_err(|e| file_err(path, e))
}

/// Refuses a file that group or others may access: a secret the service's user alone may read.
pub fn private_file(path: &Path) -> Result<(), MgmtError> {
    let m = std::fs::metadata(path).map_err(|e| file_err(path, e))?;
    let mode = m.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(file_err(
            path,
            format!("mode {mode:04o}: group or others may access it; chmod 600"),
        ));
    }
    Ok(())
}

/// A management token (a secret: `Debug` does not print it).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// Reads a token file: owner-only mode, one line of at least [`MIN_TOKEN_LEN`] visible ASCII
    /// characters (surrounding whitespace is trimmed).
    pub fn load(path: &Path) -> Result<Token, MgmtError> {
        private_file(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
        let t = text.trim();
        if t.len() < MIN_TOKEN_LEN {
            return Err(file_err(
                path,
                format!(
                    "the token has {} characters; at least {MIN_TOKEN_LEN} are needed \
                     (e.g. `openssl rand -hex 32`)",
                    t.len()
                ),
            ));
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(file_err(
                path,
                "the token must be one line of visible ASCII characters",
            ));
        }
        Ok(Token(t.to_string()))
    }

    /// A fresh random token (64 hex digits), written to `path` with mode 0600.
    pub fn generate(path: &Path) -> Result<Token, MgmtError> {
        use std::io::Write;
        let t: String = crate::random::bytes::<32>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| file_err(path, e))?;
        writeln!(f, "{t}").map_err(|e| file_err(path, e))?;
        Ok(Token(t))
    }

    /// The `authorization` header value.
    fn header(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `value` is this token's header, compared in time independent of where they differ.
    fn admits(&self, value: &[u8]) -> bool {
        let want = self.header();
        let want = want.as_bytes();
        if value.len() != want.len() {
            return false;
        }
        want.iter()
            .zip(value)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The server side of a listener: TLS (if configured) and the guard.
pub struct ServerSecurity {
    tls: Option<tonic::transport::ServerTlsConfig>,
    guard: Guard,
}

impl ServerSecurity {
    /// Whether the listener speaks TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A tonic server builder with TLS and the guard in place: add the services and serve.
    pub fn builder(
        &self,
    ) -> Result<tonic::transport::Server<tower_layer::Stack<Guard, tower_layer::Identity>>, MgmtError>
    {
        let mut b = tonic::transport::Server::builder();
        if let Some(t) = &self.tls {
            b = b
                .tls_config(t.clone())
                .map_err(|e| MgmtError::Tls(e.to_string()))?;
        }
        Ok(b.layer(self.guard.clone()))
    }
}

struct GuardInner {
    open: &'static [&'static str],
    token: Option<Token>,
}

/// The default-deny layer: open methods pass, every other call needs the token.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<GuardInner>,
}

impl Guard {
    /// `None` if the call may go on, else the refusal.
    fn verdict(&self, path: &str, headers: &http::HeaderMap) -> Option<tonic::Status> {
        let g = &self.inner;
        if g.open.contains(&path) {
            return None;
        }
        match &g.token {
            None => Some(tonic::Status::permission_denied(format!(
                "{path} changes state and no [management] token-file is configured: it is off"
            ))),
            Some(t) => match headers.get(AUTHORIZATION) {
                Some(v) if t.admits(v.as_bytes()) => None,
                Some(_) => Some(tonic::Status::unauthenticated(format!(
                    "{path}: the management token does not match"
                ))),
                None => Some(tonic::Status::unauthenticated(format!(
                    "{path} changes state: send the management token (authorization: Bearer …)"
                ))),
            },
        }
    }
}

impl<S> tower_layer::Layer<S> for Guard {
    type Service = Guarded<S>;
    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded {
            inner,
            guard: self.clone(),
        }
    }
}

/// A service behind the [`Guard`].
#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    guard: Guard,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, R> tower_service::Service<http::Request<B>> for Guarded<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match self.guard.verdict(req.uri().path(), req.headers()) {
            None => Box::pin(self.inner.call(req)),
            Some(refusal) => Box::pin(std::future::ready(Ok(refusal.into_http()))),
        }
    }
}

/// The client side: the CA to trust (TLS) and the token to send.
#[derive(Clone, Debug, Default)]
pub struct ClientSecurity {
    /// PEM CA certificates to trust; `None`: plaintext.
    pub ca: Option<PathBuf>,
    /// The token sent with state-changing calls.
    pub token: Option<Token>,
}

impl ClientSecurity {
    /// Plaintext, no token (loopback reads).
    pub fn none() -> ClientSecurity {
        ClientSecurity::default()
    }

    /// From optional CA and token files (the token file is checked like the server's).
    pub fn from_files(
        ca: Option<&Path>,
        token: Option<&Path>,
    ) -> Result<ClientSecurity, MgmtError> {
        if let Some(ca) = ca {
            read(ca)?;
        }
        Ok(ClientSecurity {
            ca: ca.map(Path::to_path_buf),
            token: token.map(Token::load).transpose()?,
        })
    }

    /// An endpoint for `addr` (`host:port`): `https` trusting the CA if one is set, else `http`.
    /// The server name checked is `addr`'s host.
    pub fn endpoint(&self, addr: &str) -> Result<tonic::transport::Endpoint, MgmtError> {
        let bad = |why: String| MgmtError::Address {
            addr: addr.to_string(),
            why,
        };
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        let mut ep = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| bad(e.to_string()))?;
        if let Some(ca) = &self.ca {
            let host = crate::ntp::host_of(addr).to_string();
            let tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?))
                .domain_name(host);
            ep = ep.tls_config(tls).map_err(|e| bad(e.to_string()))?;
        }
        Ok(ep)
    }

    /// `msg` as a request carrying the token, if there is one.
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if let Some(t) = &self.token
            && let Ok(v) = t.header().parse()
        {
            r.metadata_mut().insert(AUTHORIZATION, v);
        }
        r
    }
}

/// The `[management]` table of the configuration reference (`docs/CONFIG.md` and the config
/// files' man pages), from [`ManagementConfig`]'s source.
pub fn reference() -> crate::docs::Section {
    crate::docs::Section::new(
        "`[management]` (the gRPC listener: TLS and the token for state-changing calls)",
        include_str!("mgmt.rs"),
        "ManagementConfig",
        toml::Table::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn plaintext_is_refused_beyond_loopback_and_pairs_are_checked() {
        let none = ManagementConfig::default();
        assert!(none.check(addr("127.0.0.1:7100")).is_ok());
        assert!(none.check(addr("[::1]:7100")).is_ok());
        for a in ["0.0.0.0:7001", "10.1.2.3:7001", "[::]:7001"] {
            let e = none.check(addr(a)).unwrap_err();
            assert!(
                matches!(e, MgmtError::PlaintextOffLoopback { .. }),
                "{a}: {e}"
            );
            assert!(e.to_string().contains("certificate and private-key"), "{e}");
        }
        let tls = ManagementConfig {
            certificate: Some("c.pem".into()),
            private_key: Some("k.pem".into()),
            ..Default::default()
        };
        assert!(tls.check(addr("0.0.0.0:7001")).is_ok());
        let half = ManagementConfig {
            certificate: Some("c.pem".into()),
            ..Default::default()
        };
        assert!(matches!(
            half.check(addr("127.0.0.1:1")),
            Err(MgmtError::Incomplete(_))
        ));
        let ca_only = ManagementConfig {
            client_ca: Some("ca.pem".into()),
            ..Default::default()
        };
        assert!(matches!(
            ca_only.check(addr("127.0.0.1:1")),
            Err(MgmtError::Incomplete(_))
        ));
    }

    #[test]
    fn tokens_must_be_private_long_and_one_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("token");
        let t = Token::generate(&p).unwrap();
        assert_eq!(Token::load(&p).unwrap(), t);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = Token::load(&p).unwrap_err().to_string();
        assert!(e.contains("mode 0640") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&p, "short\n").unwrap();
        assert!(
            Token::load(&p)
                .unwrap_err()
                .to_string()
                .contains("at least 32")
        );
        std::fs::write(&p, format!("{0} {0}\n", "a".repeat(32))).unwrap();
        assert!(
            Token::load(&p)
                .unwrap_err()
                .to_string()
                .contains("one line")
        );
        assert!(
            !format!("{t:?}").contains(&t.0),
            "Debug must not print the secret"
        );
    }

    #[test]
    fn the_guard_is_default_deny() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("token");
        let t = Token::generate(&p).unwrap();
        let open: &'static [&'static str] = &["/pkg.S/Read"];
        let guard = |token: Option<Token>| Guard {
            inner: Arc::new(GuardInner { open, token }),
        };
        let mut good = http::HeaderMap::new();
        good.insert(AUTHORIZATION, t.header().parse().unwrap());
        let mut bad = http::HeaderMap::new();
        let mut wrong = t.header();
        wrong.pop();
        wrong.push('!');
        bad.insert(AUTHORIZATION, wrong.parse().unwrap());
        let empty = http::HeaderMap::new();
        let g = guard(Some(t.clone()));
        assert!(g.verdict("/pkg.S/Read", &empty).is_none());
        assert!(g.verdict("/pkg.S/Write", &good).is_none());
        for h in [&bad, &empty] {
            let s = g.verdict("/pkg.S/Write", h).unwrap();
            assert_eq!(s.code(), tonic::Code::Unauthenticated);
        }
        // A method nobody listed is closed too.
        assert!(g.verdict("/pkg.S/NewMethod", &empty).is_some());
        // Without a token configured nothing that changes state goes through, even with a header.
        let off = guard(None);
        assert_eq!(
            off.verdict("/pkg.S/Write", &good).unwrap().code(),
            tonic::Code::PermissionDenied
        );
        assert!(off.verdict("/pkg.S/Read", &empty).is_none());
    }
}
