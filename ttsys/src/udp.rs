//! UDP sockets with kernel timestamps (`SO_TIMESTAMPING`): receive stamps from control messages,
//! transmit stamps from the socket's error queue, batched `recvmmsg` / `sendmmsg`.
//!
//! Every stamp here is `CLOCK_REALTIME` as the kernel took it; [`crate::clock::RealtimeMap`]
//! maps it onto the raw clock with its uncertainty. Where the kernel gives no stamp, callers
//! fall back to raw-clock reads in user space (and say so).
//!
//! # Safety
//! This module holds the project's raw socket calls: `recvmmsg`/`sendmmsg` over arrays of
//! `mmsghdr` that point into buffers owned by the same stack frame, and control-message parsing
//! with the `CMSG_*` macros over a buffer the kernel filled and whose length it reported. Each
//! `unsafe` block states what it relies on.

use std::io;
use std::mem::{MaybeUninit, size_of, zeroed};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Largest datagram handled (bytes). Longer ones are truncated and refused by the codec.
pub const MAX_DATAGRAM: usize = 1100;
/// Messages per `recvmmsg` / `sendmmsg` call.
pub const BATCH: usize = 32;
const CONTROL_LEN: usize = 256;
/// Error-queue data: the frame as sent (link, IP, UDP headers and payload).
const ERRQ_DATA: usize = 1400;

/// What the kernel stamps on this socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stamping {
    /// `SO_TIMESTAMPING`: receive and transmit software stamps.
    Kernel,
    /// `SO_TIMESTAMPNS`: receive stamps only.
    KernelRxOnly,
    /// None: user-space reads only.
    User,
}

/// A UDP socket with kernel timestamping.
#[derive(Debug)]
pub struct TsSocket {
    sock: UdpSocket,
    stamping: Stamping,
    /// Transmit stamps requested for every packet (client sockets, with `OPT_ID` keys).
    tx_all: bool,
    next_key: u32,
}

/// One received datagram.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    /// Bytes in the buffer.
    pub len: usize,
    /// Sender.
    pub src: SocketAddr,
    /// Kernel receive stamp (`CLOCK_REALTIME` ns), if any.
    pub stamp_rt: Option<i64>,
    /// The datagram did not fit the buffer.
    pub truncated: bool,
}

/// One transmit stamp from the error queue.
#[derive(Clone, Copy, Debug)]
pub struct TxStamp {
    /// `CLOCK_REALTIME` ns.
    pub stamp_rt: i64,
    /// `OPT_ID` key (client sockets) — the index of the packet since timestamping was enabled.
    pub key: u32,
    /// Offset and length of the frame data in the caller's buffer (server sockets).
    pub data: (usize, usize),
}

fn ts_ns(t: &libc::timespec) -> i64 {
    t.tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec)
}

fn set_opt(fd: i32, level: i32, name: i32, val: u32) -> io::Result<()> {
    // SAFETY: setsockopt reads `size_of::<u32>()` bytes from a live u32.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&val as *const u32).cast(),
            size_of::<u32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

const RX_FLAGS: u32 = libc::SOF_TIMESTAMPING_RX_SOFTWARE | libc::SOF_TIMESTAMPING_SOFTWARE;
const TX_FLAGS: u32 = libc::SOF_TIMESTAMPING_TX_SOFTWARE
    | libc::SOF_TIMESTAMPING_OPT_ID
    | libc::SOF_TIMESTAMPING_OPT_TSONLY;

/// Turns on `SO_TIMESTAMPING` with `flags`, else `SO_TIMESTAMPNS` (receive only), else
/// nothing; says which took.
fn enable_stamping(sock: &UdpSocket, flags: u32) -> Stamping {
    let fd = sock.as_raw_fd();
    if set_opt(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPING, flags).is_ok() {
        Stamping::Kernel
    } else if set_opt(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1).is_ok() {
        Stamping::KernelRxOnly
    } else {
        Stamping::User
    }
}

impl TsSocket {
    /// Binds a server socket (`SO_REUSEPORT` when `reuse_port`, so several threads can each
    /// own one). Receive stamps always; transmit stamps per packet on request
    /// ([`TsSocket::send_batch`]).
    pub fn bind_server(addr: SocketAddr, reuse_port: bool) -> io::Result<TsSocket> {
        let s = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        if reuse_port {
            s.set_reuse_port(true)?;
        }
        s.bind(&addr.into())?;
        let sock: UdpSocket = s.into();
        let stamping = enable_stamping(&sock, RX_FLAGS);
        Ok(TsSocket {
            sock,
            stamping,
            tx_all: false,
            next_key: 0,
        })
    }

    /// A client socket connected to `peer`, with receive and transmit stamps on every packet.
    pub fn connect(peer: SocketAddr) -> io::Result<TsSocket> {
        let local: SocketAddr = if peer.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal address")
        } else {
            "[::]:0".parse().expect("literal address")
        };
        let sock = UdpSocket::bind(local)?;
        sock.connect(peer)?;
        let stamping = enable_stamping(&sock, RX_FLAGS | TX_FLAGS);
        Ok(TsSocket {
            sock,
            stamping,
            tx_all: stamping == Stamping::Kernel,
            next_key: 0,
        })
    }

    /// What the kernel stamps.
    pub fn stamping(&self) -> Stamping {
        self.stamping
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The underlying socket (for timeouts).
    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    /// Sends one datagram on a connected socket; returns the `OPT_ID` key its transmit stamp
    /// will carry (client sockets).
    pub fn send(&mut self, buf: &[u8]) -> io::Result<u32> {
        self.sock.send(buf)?;
        let k = self.next_key;
        if self.tx_all {
            self.next_key = self.next_key.wrapping_add(1);
        }
        Ok(k)
    }

    /// Receives one datagram on a connected socket, waiting at most `timeout`; the kernel
    /// receive stamp if there is one.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<(usize, Option<i64>)> {
        self.sock
            .set_read_timeout(Some(timeout.max(Duration::from_micros(1))))?;
        let mut bufs = [[0u8; MAX_DATAGRAM]; 1];
        let mut out = Vec::with_capacity(1);
        self.recv_batch(&mut bufs, &mut out, true)?;
        let r = out.first().ok_or(io::ErrorKind::WouldBlock)?;
        let n = r.len.min(buf.len());
        buf[..n].copy_from_slice(&bufs[0][..n]);
        Ok((n, r.stamp_rt))
    }

    /// Receives up to `bufs.len()` (≤ [`BATCH`]) datagrams with one `recvmmsg`. `block`: wait
    /// (up to the socket's read timeout) for the first, take what is queued after it.
    pub fn recv_batch(
        &self,
        bufs: &mut [[u8; MAX_DATAGRAM]],
        out: &mut Vec<Received>,
        block: bool,
    ) -> io::Result<usize> {
        out.clear();
        let n = bufs.len().min(BATCH);
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut ctrl = [[0u64; CONTROL_LEN / 8]; BATCH];
        for i in 0..n {
            iovs[i].iov_base = bufs[i].as_mut_ptr().cast();
            iovs[i].iov_len = MAX_DATAGRAM;
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = ctrl[i].as_mut_ptr().cast();
            h.msg_controllen = CONTROL_LEN as _;
        }
        let flags = if block {
            libc::MSG_WAITFORONE
        } else {
            libc::MSG_DONTWAIT
        };
        // SAFETY: `hdrs[..n]` point at buffers, addresses and control space that live until
        // this function returns; the kernel writes at most the lengths given.
        let got = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                n as _,
                flags as _,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        for h in hdrs.iter().take(got as usize) {
            let src = sockaddr_to_std(h.msg_hdr.msg_name.cast(), h.msg_hdr.msg_namelen);
            let Some(src) = src else { continue };
            out.push(Received {
                len: (h.msg_len as usize).min(MAX_DATAGRAM),
                src,
                stamp_rt: rx_stamp(&h.msg_hdr),
                truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            });
        }
        Ok(out.len())
    }

    /// Sends `msgs` (≤ [`BATCH`]: destination, payload, whether to request a kernel transmit
    /// stamp) with `sendmmsg`; returns how many were sent.
    pub fn send_batch(&self, msgs: &[(SocketAddr, &[u8], bool)]) -> io::Result<usize> {
        let n = msgs.len().min(BATCH);
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut ctrl = [[0u64; 4]; BATCH];
        // SAFETY: CMSG_SPACE is arithmetic on a constant.
        let space = unsafe { libc::CMSG_SPACE(size_of::<u32>() as u32) } as usize;
        for i in 0..n {
            let (dst, payload, stamp) = msgs[i];
            iovs[i].iov_base = payload.as_ptr() as *mut libc::c_void;
            iovs[i].iov_len = payload.len();
            let len = std_to_sockaddr(dst, &mut addrs[i]);
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = len;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            if stamp && self.stamping == Stamping::Kernel {
                h.msg_control = ctrl[i].as_mut_ptr().cast();
                h.msg_controllen = space as _;
                // SAFETY: the control buffer (32 bytes) holds one cmsghdr with a u32
                // (CMSG_SPACE(4) = 24 on LP64); CMSG_FIRSTHDR is non-null for that length.
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(h);
                    (*c).cmsg_level = libc::SOL_SOCKET;
                    (*c).cmsg_type = libc::SO_TIMESTAMPING;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<u32>() as u32) as _;
                    std::ptr::write_unaligned(
                        libc::CMSG_DATA(c).cast::<u32>(),
                        libc::SOF_TIMESTAMPING_TX_SOFTWARE,
                    );
                }
            }
        }
        // SAFETY: the headers point into `iovs`, `addrs`, `ctrl` and the callers' payloads,
        // all alive for the call; the kernel only reads them.
        let sent = unsafe { libc::sendmmsg(self.sock.as_raw_fd(), hdrs.as_mut_ptr(), n as _, 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }

    /// Drains queued transmit stamps without waiting; `data` receives the frames (server
    /// sockets, where [`TxStamp::data`] locates each in it).
    pub fn tx_stamps(&self, data: &mut Vec<u8>, out: &mut Vec<TxStamp>) -> io::Result<usize> {
        out.clear();
        if data.len() < ERRQ_DATA * BATCH {
            data.resize(ERRQ_DATA * BATCH, 0);
        }
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut ctrl = [[0u64; CONTROL_LEN / 8]; BATCH];
        for i in 0..BATCH {
            iovs[i].iov_base = data[i * ERRQ_DATA..].as_mut_ptr().cast();
            iovs[i].iov_len = ERRQ_DATA;
            let h = &mut hdrs[i].msg_hdr;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = ctrl[i].as_mut_ptr().cast();
            h.msg_controllen = CONTROL_LEN as _;
        }
        // SAFETY: as in recv_batch: every pointer targets memory owned here for the call.
        let got = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as _,
                (libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) as _,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(e)
            };
        }
        for (i, h) in hdrs.iter().take(got as usize).enumerate() {
            if let Some((stamp_rt, key)) = tx_stamp(&h.msg_hdr) {
                out.push(TxStamp {
                    stamp_rt,
                    key,
                    data: (i * ERRQ_DATA, (h.msg_len as usize).min(ERRQ_DATA)),
                });
            }
        }
        Ok(out.len())
    }

    /// Waits up to `timeout` for the transmit stamp with `key` (client sockets), dropping
    /// older ones.
    pub fn wait_tx_stamp(&self, key: u32, timeout: Duration) -> Option<i64> {
        if self.stamping != Stamping::Kernel {
            return None;
        }
        let deadline = std::time::Instant::now() + timeout;
        let mut data = Vec::new();
        let mut out = Vec::new();
        loop {
            if self.tx_stamps(&mut data, &mut out).is_ok()
                && let Some(s) = out.iter().find(|s| s.key == key)
            {
                return Some(s.stamp_rt);
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return None;
            }
            let mut pfd = libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: 0, // POLLERR is always reported
                revents: 0,
            };
            let ms = (deadline - now).as_millis().clamp(1, 1000) as i32;
            // SAFETY: one pollfd we own.
            unsafe { libc::poll(&mut pfd, 1, ms) };
        }
    }
}

/// True for the errors a receive with a timeout (or `MSG_DONTWAIT`) gives when nothing came.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Waits up to `timeout_ms` until one of `socks` has a datagram queued; `ready[i]` says
/// whether socket `i` has.
pub fn poll_readable(socks: &[TsSocket], timeout_ms: i32, ready: &mut Vec<bool>) -> io::Result<()> {
    let mut fds: Vec<libc::pollfd> = socks
        .iter()
        .map(|s| libc::pollfd {
            fd: s.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `fds` is a live array of `fds.len()` pollfd structs.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    ready.clear();
    ready.extend(fds.iter().map(|f| f.revents & libc::POLLIN != 0));
    Ok(())
}

/// The kernel receive stamp in a received message's control data.
fn rx_stamp(h: &libc::msghdr) -> Option<i64> {
    let mut found = None;
    for_each_cmsg(h, |level, ty, data| {
        if level == libc::SOL_SOCKET && ty == libc::SO_TIMESTAMPING && data.len() >= 48 {
            let t = read_timespec(data, 0);
            if t != 0 {
                found = Some(t);
            }
        } else if level == libc::SOL_SOCKET && ty == libc::SO_TIMESTAMPNS && data.len() >= 16 {
            found = Some(read_timespec(data, 0));
        }
    });
    found
}

/// The transmit stamp and its key in an error-queue message.
fn tx_stamp(h: &libc::msghdr) -> Option<(i64, u32)> {
    let mut stamp = None;
    let mut key = None;
    for_each_cmsg(h, |level, ty, data| {
        if level == libc::SOL_SOCKET && ty == libc::SO_TIMESTAMPING && data.len() >= 48 {
            stamp = Some(read_timespec(data, 0));
        } else if ((level == libc::SOL_IP && ty == libc::IP_RECVERR)
            || (level == libc::SOL_IPV6 && ty == libc::IPV6_RECVERR))
            && data.len() >= size_of::<libc::sock_extended_err>()
        {
            // SAFETY: at least size_of::<sock_extended_err>() bytes; read unaligned.
            let e: libc::sock_extended_err =
                unsafe { std::ptr::read_unaligned(data.as_ptr().cast()) };
            if e.ee_origin == libc::SO_EE_ORIGIN_TIMESTAMPING && e.ee_info == 0 {
                key = Some(e.ee_data);
            }
        }
    });
    match (stamp, key) {
        (Some(s), Some(k)) if s != 0 => Some((s, k)),
        _ => None,
    }
}

fn read_timespec(data: &[u8], at: usize) -> i64 {
    let mut t = MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: the caller checked `data` holds a timespec at `at`; copy bytewise into
    // uninitialised storage of exactly that size, after which it is initialised.
    unsafe {
        std::ptr::copy_nonoverlapping(
            data[at..].as_ptr(),
            t.as_mut_ptr().cast::<u8>(),
            size_of::<libc::timespec>(),
        );
        ts_ns(&t.assume_init())
    }
}

fn for_each_cmsg(h: &libc::msghdr, mut f: impl FnMut(i32, i32, &[u8])) {
    if h.msg_control.is_null() || h.msg_controllen < size_of::<libc::cmsghdr>() {
        return;
    }
    // SAFETY: the kernel filled `msg_control` with `msg_controllen` bytes of well-formed
    // control messages; CMSG_FIRSTHDR/NXTHDR stay within that length and return null at the
    // end; each data slice is bounded by its cmsg_len, which NXTHDR checked.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            let hdr_len = libc::CMSG_LEN(0) as usize;
            let len = ((*c).cmsg_len as usize).saturating_sub(hdr_len);
            let data = std::slice::from_raw_parts(libc::CMSG_DATA(c), len);
            f((*c).cmsg_level, (*c).cmsg_type, data);
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
}

fn sockaddr_to_std(p: *const libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    // SAFETY: `p` points at a sockaddr_storage the kernel filled with `len` valid bytes.
    unsafe {
        match (*p).ss_family as i32 {
            libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
                let a = &*(p as *const libc::sockaddr_in);
                Some(SocketAddr::from((
                    u32::from_be(a.sin_addr.s_addr).to_be_bytes(),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
                let a = &*(p as *const libc::sockaddr_in6);
                Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                    a.sin6_addr.s6_addr.into(),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

fn std_to_sockaddr(a: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    let s: socket2::SockAddr = a.into();
    let len = s.len() as usize;
    // SAFETY: socket2 gives a valid sockaddr of `len` ≤ size_of::<sockaddr_storage>() bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            s.as_ptr().cast::<u8>(),
            (out as *mut libc::sockaddr_storage).cast::<u8>(),
            len,
        );
    }
    len as libc::socklen_t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_exchange_has_kernel_stamps() {
        let srv = TsSocket::bind_server("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let addr = srv.local_addr().unwrap();
        let mut cli = TsSocket::connect(addr).unwrap();
        assert_eq!(cli.stamping(), Stamping::Kernel, "this kernel stamps UDP");
        // The kernel turns receive timestamping on through deferred work: packets in the first
        // moments after the first timestamping socket may arrive unstamped.
        std::thread::sleep(Duration::from_millis(100));
        let before = crate::clock::realtime_ns();
        let key = cli.send(b"hello").unwrap();
        let t1 = cli.wait_tx_stamp(key, Duration::from_millis(200)).unwrap();
        srv.socket()
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut bufs = [[0u8; MAX_DATAGRAM]; 4];
        let mut got = Vec::new();
        srv.recv_batch(&mut bufs, &mut got, true).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(&bufs[0][..got[0].len], b"hello");
        let t2 = got[0].stamp_rt.unwrap();
        assert!(before <= t1 && t1 <= t2, "{before} {t1} {t2}");
        // Reply with a transmit stamp requested; it comes back through the error queue.
        let sent = srv.send_batch(&[(got[0].src, b"world!", true)]).unwrap();
        assert_eq!(sent, 1);
        let mut buf = [0u8; 64];
        let (n, t4) = cli.recv(&mut buf, Duration::from_secs(2)).unwrap();
        assert_eq!(&buf[..n], b"world!");
        let t4 = t4.unwrap();
        let mut data = Vec::new();
        let mut tx = Vec::new();
        for _ in 0..200 {
            srv.tx_stamps(&mut data, &mut tx).unwrap();
            if !tx.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(tx.len(), 1);
        let t3 = tx[0].stamp_rt;
        assert!(t2 <= t3 && t3 <= t4, "{t2} {t3} {t4}");
        let (off, len) = tx[0].data;
        assert!(
            data[off..off + len].ends_with(b"world!"),
            "frame ends with the payload"
        );
        // Nothing more queued, and no wait on an empty queue.
        assert_eq!(srv.tx_stamps(&mut data, &mut tx).unwrap(), 0);
    }
}
