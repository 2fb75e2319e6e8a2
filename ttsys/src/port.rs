//! Free loopback ports for tests, the lab and the local store cluster. A port is free when
//! it is asked for; another process may take it before the caller binds it, so callers bind
//! soon after.

use std::io;
use std::net::{TcpListener, UdpSocket};

/// A loopback port free for both TCP and UDP: the daemons serve gRPC (TCP) and the time
/// transfer (UDP) on ports a test may want to be the same number.
pub fn free_port() -> io::Result<u16> {
    for _ in 0..100 {
        let t = TcpListener::bind("127.0.0.1:0")?;
        let port = t.local_addr()?.port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::other(
        "no loopback port free for both TCP and UDP",
    ))
}

/// A loopback port free for UDP.
pub fn free_udp_port() -> io::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound_for_both() {
        let p = free_port().unwrap();
        assert_ne!(p, 0);
        let _t = TcpListener::bind(("127.0.0.1", p)).unwrap();
        let _u = UdpSocket::bind(("127.0.0.1", p)).unwrap();
        assert_ne!(free_udp_port().unwrap(), 0);
    }
}
