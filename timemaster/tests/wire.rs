//! The master's UDP time service against every kind of request a network can send it: no reply
//! is ever larger than its request (no amplification for a spoofed source), fields the master
//! does not know are ignored and answered in basic mode, and control (mode 6), private (mode 7)
//! and symmetric queries get nothing at all.

mod common;

use common::*;
use std::net::UdpSocket;
use std::time::Duration;
use ttcore::ntp::packet::{Header, Mode, Packet, TtField, TtRequest};

/// A request with header `h` and the TrueTime request field, encoded.
fn tt_request(h: Header, r: TtRequest) -> Vec<u8> {
    let mut v = Vec::new();
    Packet {
        header: h,
        tt: Some(TtField::Request(r)),
    }
    .encode(&mut v);
    v
}

/// A header-only request of version `vn` and mode bits `mode`.
fn header_only(vn: u8, mode: Mode, cookie: u64) -> Vec<u8> {
    let mut h = Header::client(cookie);
    h.version = vn;
    h.mode = mode;
    let mut v = Vec::new();
    Packet {
        header: h,
        tt: None,
    }
    .encode(&mut v);
    v
}

/// An RFC 7822 extension field of type `ty` with a body of `body` bytes (a multiple of 4).
fn field(ty: u16, body: &[u8]) -> Vec<u8> {
    let mut v = ty.to_be_bytes().to_vec();
    v.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// Sends `req`, returns the reply's bytes, or `None` after `wait` with no reply.
fn send(sock: &UdpSocket, port: u16, req: &[u8], wait: Duration) -> Option<Vec<u8>> {
    sock.set_read_timeout(Some(wait)).unwrap();
    sock.send_to(req, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 2048];
    sock.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one table of request shapes against one running master"
)]
fn no_reply_is_larger_than_its_request_and_unknown_fields_get_a_basic_reply() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&tmp.path().join("sim"), "");
    let port = free_port();
    let cfg = format!(
        "id = \"wire\"\nkind = \"gps\"\nlisten = \"127.0.0.1:{port}\"\n{}",
        sim.gps_sections(false)
    );
    let _m = start_master(tmp.path(), "wire", &cfg);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Up: a plain request answered (the master answers from its first instant, unsynchronized
    // or not; sizes do not depend on its status).
    let plain = header_only(4, Mode::Client, 1);
    let t0 = std::time::Instant::now();
    while send(&sock, port, &plain, Duration::from_millis(200)).is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the master never answered"
        );
    }

    // A TrueTime request as our clients send it, then one naming that reply (interleaved).
    let first = tt_request(Header::client(2), TtRequest::default());
    let rep = send(&sock, port, &first, Duration::from_secs(2)).expect("a TrueTime reply");
    let t2 = match Packet::decode(&rep).unwrap().tt {
        Some(TtField::Reply(r)) => r.t2_ns,
        other => panic!("no TrueTime field in the reply: {other:?}"),
    };
    let interleaved = tt_request(
        Header::client(3),
        TtRequest {
            prev_t2_ns: t2,
            prev_cookie: 2,
        },
    );
    // The first layout of the TrueTime request: a 28-byte body, no padding (80 bytes).
    let mut legacy = plain.clone();
    let mut body = vec![1u8, 1, 0, 0];
    body.extend_from_slice(&[0u8; 24]);
    legacy.extend(field(0xF454, &body));
    assert_eq!(legacy.len(), 80);
    // What ClockBound 3's daemon sends: a v4 client header and its 16-byte 0xFEC2 field
    // (version 1, ClockBound 3.0, a startup id), as its source lays it out.
    let mut clockbound3 = header_only(4, Mode::Client, 4);
    clockbound3.extend(field(
        0xFEC2,
        &[1, 3, 0, 0, 0xDE, 0xAD, 0xBE, 0xEF, 0, 0, 0, 1],
    ));
    // An NTPv5-draft-like field of a type nobody here knows, alone and beside our field.
    let mut unknown = header_only(4, Mode::Client, 5);
    unknown.extend(field(0x2005, &[7u8; 24]));
    let mut tt_and_unknown = tt_request(Header::client(6), TtRequest::default());
    tt_and_unknown.extend(field(0x2005, &[7u8; 12]));
    // NTS fields (unique id, cookie, authenticator) at a master that has no NTS: ignored.
    let mut nts_at_plain = header_only(4, Mode::Client, 7);
    nts_at_plain.extend(field(0x0104, &[9u8; 32]));
    nts_at_plain.extend(field(0x0204, &[9u8; 100]));
    nts_at_plain.extend(field(
        0x0404,
        &[
            0, 16, 0, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 1, 2, 3, 4, 5, 6,
            7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        ],
    ));

    // (what, request, whether it must carry the TrueTime field back).
    let answered: Vec<(&str, Vec<u8>, bool)> = vec![
        ("plain NTPv4", plain.clone(), false),
        ("plain NTPv3", header_only(3, Mode::Client, 8), false),
        ("TrueTime", first, true),
        ("TrueTime, interleaved", interleaved, true),
        ("TrueTime, first layout (unpadded)", legacy, false),
        ("ClockBound 3", clockbound3, false),
        ("unknown field", unknown, false),
        ("TrueTime beside an unknown field", tt_and_unknown, true),
        ("NTS fields at a plain master", nts_at_plain, false),
    ];
    for (what, req, tt) in &answered {
        let rep = send(&sock, port, req, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("{what}: no reply"));
        eprintln!(
            "{what}: request {} bytes, reply {} bytes",
            req.len(),
            rep.len()
        );
        assert!(
            rep.len() <= req.len(),
            "{what}: reply of {} bytes to a request of {}",
            rep.len(),
            req.len()
        );
        let p = Packet::decode(&rep).unwrap();
        assert_eq!(p.header.mode, Mode::Server, "{what}");
        assert_eq!(
            p.header.origin_ts,
            Packet::decode(req).unwrap().header.transmit_ts,
            "{what}: the reply answers this request"
        );
        assert_eq!(p.tt.is_some(), *tt, "{what}: TrueTime field in the reply");
        if !tt {
            assert_eq!(rep.len(), 48, "{what}: a basic reply");
        }
    }

    // Mode 6 (control: a 12-byte READSTAT), mode 7 (private: monlist, padded to 48 bytes),
    // symmetric active and broadcast modes, and a truncated packet: no reply at all.
    let mut monlist = vec![0x17, 0x00, 0x03, 0x2a];
    monlist.resize(48, 0);
    let silent: Vec<(&str, Vec<u8>)> = vec![
        (
            "mode 6 READSTAT",
            vec![0x16, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        ("mode 6, 48 bytes", header_only(4, Mode::Other(6), 9)),
        ("mode 7 monlist", monlist),
        (
            "mode 1 symmetric active",
            header_only(4, Mode::Other(1), 10),
        ),
        ("mode 5 broadcast", header_only(4, Mode::Other(5), 11)),
        ("47 bytes", plain[..47].to_vec()),
    ];
    for (what, req) in &silent {
        assert_eq!(
            send(&sock, port, req, Duration::from_millis(300)),
            None,
            "{what}: answered"
        );
    }
    // And the master still serves.
    assert!(send(&sock, port, &plain, Duration::from_secs(2)).is_some());
}
