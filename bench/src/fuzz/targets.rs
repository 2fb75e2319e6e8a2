//! The harnesses that need more than a parser call: text targets over a directory of seeds,
//! the shm page (random, mutated and torn pages through every read path), gRPC and store
//! requests after decoding, and the NTP request and reply paths.

use super::*;
use ttcore::RawReading;

/// A TOML file parser, seeded with the project's own files of that kind (`*.toml` in `dir`),
/// fed as the loaders read files: text that is not UTF-8 is refused before parsing.
pub(super) fn text_target(
    mut seeds: Vec<Vec<u8>>,
    dir: &str,
    parse: fn(&str) -> String,
) -> Harness {
    seeds.extend(text_files(&root().join(dir), "toml"));
    Harness {
        seeds,
        text: true,
        step: Box::new(move |b| match std::str::from_utf8(b) {
            Ok(s) => parse(s),
            Err(_) => "not-utf8".into(),
        }),
        fixup: no_fixup,
    }
}

/// The shm page as a reader sees it: any 256 bytes (random, mutated, or torn — a splice of two
/// valid pages), through open's checks, the full, hot, fast and counter reads and the interval
/// rules.
#[allow(
    clippy::too_many_lines,
    reason = "the page target's three input kinds (random, mutated, torn) and every read path each input goes through: one harness."
)]
pub(super) fn shm_page(mut seeds: Vec<Vec<u8>>) -> Result<Harness, Error> {
    use ttsys::shm::{PAGE_SIZE, PageData, PageReader, PageWriter};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("page");
    // Valid pages as timed writes them, read back as bytes.
    {
        let mut w = PageWriter::open(&path)?;
        for (i, st) in [
            ttcore::ClockStatus::Synchronized,
            ttcore::ClockStatus::Holdover,
            ttcore::ClockStatus::Unsynchronized,
        ]
        .into_iter()
        .enumerate()
        {
            let raw = 5_000_000_000 + i as i64;
            let mut d = PageData::unsynchronized(RawReading::from_nanos(raw));
            d.model = ttcore::ClockModel {
                ref_raw: RawReading::from_nanos(raw),
                ref_time: ttcore::Timestamp::from_nanos(1_790_000_000_000_000_000),
                freq: ttcore::Rate::from_ppb(-12_345),
                eps_ref: ttcore::Span::from_micros(7),
                drift_bound: ttcore::Rate::from_ppm(15),
            };
            d.status = st;
            d.max_eps = ttcore::Span::from_millis(10);
            d.void_after_raw = RawReading::from_nanos(raw + 10_000_000_000);
            d.holdover_after_raw = RawReading::from_nanos(raw + 5_000_000_000);
            d.clock_check = Some(ttcore::disrupt::ClockPair {
                raw,
                boot: raw + 77,
                gap: 0,
            });
            d.tsc = Some(ttsys::shm::TscBlock {
                map: ttcore::tsc::TscMap {
                    tsc_ref: 1 << 40,
                    base_ns: 1_790_000_000_000_000_000,
                    mult_q62: 1 << 61,
                    eps0_ns: 7_100,
                    grow_q62: 1 << 30,
                    until_ticks: 10_000_000_000,
                },
                status: st,
                real_minus_mono_ns: 1_700_000_000_000_000_000,
            });
            w.write(&d);
            seeds.push(std::fs::read(&path)?);
        }
    }
    let file = std::fs::OpenOptions::new().write(true).open(&path)?;
    let header = seeds[seeds.len() - 1][..16].to_vec();
    let mut reader: Option<PageReader> = None;
    let mut n = 0u64;
    Ok(Harness {
        seeds,
        text: false,
        step: Box::new(move |b| {
            let _keep = &dir;
            n += 1;
            let mut page = vec![0u8; PAGE_SIZE];
            let k = b.len().min(PAGE_SIZE);
            page[..k].copy_from_slice(&b[..k]);
            // Mostly a valid header (so the fields are reached), always an even generation (an
            // odd one is a writer mid-update: the reader waits 10 ms, tested in ttsys).
            if b.first().is_some_and(|c| c % 4 != 0) {
                page[..16].copy_from_slice(&header);
            }
            page[16] &= !1;
            if file.write_all_at(&page, 0).is_err() {
                return "io".into();
            }
            if reader.is_none() || n % 64 == 0 {
                match PageReader::open(&path) {
                    Ok(r) => reader = Some(r),
                    Err(e) => {
                        reader = None;
                        return format!("open:{}", kind(&e));
                    }
                }
            }
            let Some(r) = reader.as_ref() else {
                return "closed".into();
            };
            let d = match r.read() {
                Ok(d) => d,
                Err(e) => return format!("read:{}", kind(&e)),
            };
            let base = d.model.ref_raw.as_nanos();
            let mut out = "ok";
            for raw in [
                base,
                base.wrapping_add(1_000_000_000),
                base.wrapping_sub(1),
                i64::MAX,
                i64::MIN,
            ] {
                let raw = RawReading::from_nanos(raw);
                let x = d.read_at(raw);
                if x.interval.earliest() > x.interval.latest() {
                    return "inverted".into();
                }
                if let Ok(h) = r.read_hot() {
                    let _ = h.at(raw);
                    let n = raw.as_nanos();
                    let _ = h.continuous(raw, n.wrapping_add(77), Some(n as u64));
                }
                let f = r.read_fast();
                if let Some((iv, _)) = f.at(raw) {
                    out = "ok-fast";
                    assert!(iv.earliest() <= iv.latest());
                }
                let _ = f.continuous(raw, raw.as_nanos(), None);
            }
            // The counter block, at its own offset (so the window is reached) and others.
            let t = r.read_tsc();
            let (tref, off) = d
                .tsc
                .map_or((0, 0), |b| (b.map.tsc_ref, b.real_minus_mono_ns));
            for tsc in [
                tref,
                tref.wrapping_add(1_000_000_000),
                tref.wrapping_sub(1),
                0,
                u64::MAX,
            ] {
                for o in [off, off.wrapping_add(1)] {
                    if let Some((iv, _)) = t.at(tsc, o, Some(tsc)) {
                        out = "ok-counter";
                        assert!(iv.earliest() <= iv.latest());
                    }
                }
            }
            out.into()
        }),
        fixup: no_fixup,
    })
}

/// gRPC requests after decoding: random protobuf bytes decoded as every request the daemons
/// accept, and the decoded values through the checks the handlers make (the knob's range).
pub(super) fn grpc(mut seeds: Vec<Vec<u8>>) -> Harness {
    use prost::Message;
    use ttproto::v1;
    let knob = v1::ClockKnobRequest {
        skew_ppm: 12.5,
        step_ns: -1_000,
    };
    seeds.push(knob.encode_to_vec());
    seeds.push(v1::StatusRequest::default().encode_to_vec());
    Harness {
        seeds,
        text: false,
        step: Box::new(|b| {
            let k = v1::ClockKnobRequest::decode(b);
            let _ = v1::StatusRequest::decode(b);
            let _ = v1::NowRequest::decode(b);
            let _ = v1::WatchRequest::decode(b);
            match k {
                Ok(r) => {
                    // timed's handler: finite and within ±1000 ppm, then a rate.
                    if r.skew_ppm.is_finite() && r.skew_ppm.abs() <= 1000.0 {
                        let _ = ttcore::Rate::estimate_from_ppm_f64(r.skew_ppm);
                        "knob-accepted".into()
                    } else {
                        "knob-refused".into()
                    }
                }
                Err(_) => "undecodable".into(),
            }
        }),
        fixup: no_fixup,
    }
}

/// The demo store's requests after decoding: random protobuf bytes as a transaction and as a
/// two-phase-commit prepare (then the node's validation, which runs before anything is
/// proposed), as a decision, and as a Raft message (then its
/// JSON payload as each Raft request type, as the Raft service decodes it).
pub(super) fn store(mut seeds: Vec<Vec<u8>>) -> Harness {
    use prost::Message;
    use ttproto::store as pb;
    let txn = pb::TxnRequest {
        writes: vec![pb::Write {
            key: "k".into(),
            value: Some("v".into()),
        }],
        reads: vec!["r".into()],
        ..Default::default()
    };
    seeds.push(txn.encode_to_vec());
    seeds.push(ap_pull_seed());
    let vote =
        br#"{"vote":{"leader_id":{"term":1,"node_id":1},"committed":false},"last_log_id":null}"#;
    let append = br#"{"vote":{"leader_id":{"term":1,"node_id":1},"committed":true},"prev_log_id":null,"entries":[],"leader_commit":null}"#;
    for payload in [&vote[..], &append[..]] {
        seeds.push(
            pb::RaftMessage {
                from: 1,
                payload: payload.to_vec(),
                group: 0,
            }
            .encode_to_vec(),
        );
    }
    Harness {
        seeds,
        text: false,
        step: Box::new(|b| {
            let txn = match pb::TxnRequest::decode(b) {
                Ok(r) => match ttstore::node::validate_txn(&r) {
                    Ok(()) => "txn-valid",
                    Err(_) => "txn-refused",
                },
                Err(_) => "txn-undecodable",
            };
            let prepare = match pb::PrepareRequest::decode(b) {
                Ok(r) => match ttstore::node::validate_prepare(&r) {
                    Ok(()) => "prepare-valid",
                    Err(_) => "prepare-refused",
                },
                Err(_) => "prepare-undecodable",
            };
            let _ = pb::DecideRequest::decode(b);
            let ap = ap_inputs(b);
            let raft = match pb::RaftMessage::decode(b) {
                Ok(m) => {
                    use ttstore::network::decode;
                    use ttstore::raft::TypeConfig;
                    let vote = decode::<openraft::raft::VoteRequest<u64>>(&m).is_ok();
                    let append =
                        decode::<openraft::raft::AppendEntriesRequest<TypeConfig>>(&m).is_ok();
                    let snap =
                        decode::<openraft::raft::InstallSnapshotRequest<TypeConfig>>(&m).is_ok();
                    match (append, snap, vote) {
                        (true, ..) => "raft-append",
                        (_, true, _) => "raft-snapshot",
                        (.., true) => "raft-vote",
                        _ => "raft-refused",
                    }
                }
                Err(_) => "raft-undecodable",
            };
            format!("{txn},{prepare},{ap},{raft}")
        }),
        fixup: no_fixup,
    }
}

/// A peer's pull reply with one register write and one decrement (a seed to mutate).
fn ap_pull_seed() -> Vec<u8> {
    use prost::Message;
    use ttproto::store as pb;
    let pull = pb::ApPullReply {
        ops: vec![
            pb::ApOp {
                origin: 1,
                seq: 1,
                op: Some(pb::ap_op::Op::Put(pb::ApPutOp {
                    key: "k".into(),
                    value: "v".into(),
                    wall_ns: 1,
                    earliest_ns: 1,
                    latest_ns: 3,
                })),
            },
            pb::ApOp {
                origin: 1,
                seq: 2,
                op: Some(pb::ap_op::Op::Add(pb::ApAddRequest {
                    counter: "c".into(),
                    delta: -2,
                })),
            },
        ],
    };
    pull.encode_to_vec()
}

/// The AP node's inputs: its requests, a peer's pull reply (replayed as a log of whole
/// records, which must replay whole), and its own log on disk (any bytes: a torn or damaged
/// record ends the replay, never a panic).
fn ap_inputs(b: &[u8]) -> &'static str {
    use prost::Message;
    use ttproto::store as pb;
    let _ = pb::ApPutRequest::decode(b);
    let _ = pb::ApAddRequest::decode(b);
    let _ = pb::ApPullRequest::decode(b);
    let (_, whole) = ttstore::apnode::replay_log(b);
    assert!(whole <= b.len());
    match pb::ApPullReply::decode(b) {
        Ok(r) => {
            let mut log = Vec::new();
            for op in &r.ops {
                let _ = op.encode_length_delimited(&mut log);
            }
            let (applied, whole) = ttstore::apnode::replay_log(&log);
            assert_eq!(whole, log.len(), "a log of whole records replays whole");
            assert!(applied <= r.ops.len());
            "ap-pull"
        }
        Err(_) => "ap-undecodable",
    }
}

/// The time-transfer packets, through the master's request path and the client's reply path.
pub(super) mod ntp {
    use super::{Harness, kind, no_fixup};
    use std::cell::Cell;
    use ttcore::ntp::packet::{Header, Packet, TtField, TtReply, TtRequest};
    use ttcore::ntp::{Client, MasterView, RawStamp, SentReply, answer};
    use ttcore::{ClockModel, ClockStatus, Rate, Span, Timestamp};

    fn view() -> MasterView {
        MasterView {
            model: Some(ClockModel {
                ref_raw: ttcore::RawReading::from_nanos(1_000_000_000),
                ref_time: Timestamp::from_nanos(1_790_000_000_000_000_000),
                freq: Rate::from_ppb(12),
                eps_ref: Span::from_nanos(400),
                drift_bound: Rate::from_ppb(1),
            }),
            status: ClockStatus::Synchronized,
            max_epsilon: Span::from_millis(1),
            kind: 1,
            id: TtReply::id_from("fuzz"),
            reference_id: *b"GPS\0",
            tai_minus_utc_s: 37,
            next_leap_posix_s: 0,
            next_leap_delta: 0,
        }
    }

    fn prev(t2: i64, _: u64) -> Option<SentReply> {
        Some(SentReply {
            t2_ns: t2,
            t3_ns: Some(t2.wrapping_add(5_000)),
            eps_ns: 500,
            kernel: true,
        })
    }

    /// Valid requests (plain and TrueTime) and a valid reply.
    fn seeds() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for tt in [
            None,
            Some(TtField::Request(TtRequest {
                prev_t2_ns: 1_790_000_000_000_000_000,
                prev_cookie: 77,
            })),
        ] {
            let mut b = Vec::new();
            Packet {
                header: Header::client(42),
                tt,
            }
            .encode(&mut b);
            out.push(b);
        }
        if let Some(rep) = seed_reply(&out[1]) {
            out.push(rep);
        }
        out
    }

    /// The fuzz master's reply to `req`, received at raw 2 s and sent 10 µs later.
    fn seed_reply(req: &[u8]) -> Option<Vec<u8>> {
        let mut rep = Vec::new();
        let stamp = RawStamp {
            raw: 2_000_000_000,
            kernel: true,
        };
        answer(
            req,
            req.len(),
            stamp,
            2_000_010_000,
            &prev,
            &view(),
            &mut rep,
        )
        .ok()?;
        Some(rep)
    }

    pub(in crate::fuzz) fn request(mut s: Vec<Vec<u8>>) -> Harness {
        s.extend(seeds());
        let v = view();
        let mut out = Vec::new();
        let raw = Cell::new(1i64 << 40);
        Harness {
            seeds: s,
            text: false,
            step: Box::new(move |b| {
                raw.set(raw.get().wrapping_mul(6364136223846793005).wrapping_add(1) >> 2);
                let rx = RawStamp {
                    raw: raw.get(),
                    kernel: raw.get() & 1 == 0,
                };
                match answer(
                    b,
                    b.len(),
                    rx,
                    rx.raw.saturating_add(3_000),
                    &prev,
                    &v,
                    &mut out,
                ) {
                    Ok(_) => {
                        // What we send must be a well-formed server reply.
                        let p = Packet::decode(&out).expect("our reply decodes");
                        assert_eq!(p.header.mode, ttcore::ntp::packet::Mode::Server);
                        "answered".into()
                    }
                    Err(e) => format!("err:{}", kind(&e)),
                }
            }),
            fixup: no_fixup,
        }
    }

    /// Plain NTP replies to cookie 42: basic, interleaved (the second cookie echoed), and one
    /// a second before the leap second of 2016-12-31 (refused by a `utc` client).
    fn ntp_seeds() -> Vec<Vec<u8>> {
        let mut req = Vec::new();
        Packet {
            header: Header::client(42),
            tt: None,
        }
        .encode(&mut req);
        let Some(rep) = seed_reply(&req) else {
            return Vec::new();
        };
        let mut xleave = rep.clone();
        let c = ttcore::ntp::client::interleave_cookie(42);
        xleave[24..32].copy_from_slice(&c.to_be_bytes());
        let mut leap = rep.clone();
        let t = ttcore::ntp::packet::NtpTimestamp::from_unix_ns_floor(1_483_228_799_500_000_000);
        leap[32..40].copy_from_slice(&t.0.to_be_bytes());
        leap[40..48].copy_from_slice(&t.0.to_be_bytes());
        vec![rep, xleave, leap]
    }

    pub(in crate::fuzz) fn reply(mut s: Vec<Vec<u8>>) -> Harness {
        s.extend(seeds());
        s.extend(ntp_seeds());
        use ttcore::ntp::client::ServerTimescale;
        // A timemaster's client, and NTP servers' on each timescale (interleaved once one
        // exchange has completed).
        let mut clients = [
            Client::new(),
            Client::ntp(Span::from_secs(16), ServerTimescale::Utc),
            Client::ntp(Span::from_secs(16), ServerTimescale::Smeared),
        ];
        let mut k = 0u64;
        Harness {
            seeds: s,
            text: false,
            step: Box::new(move |b| {
                k = k.wrapping_add(0x9e37_79b9_7f4a_7c15);
                // The seed reply's cookie most of the time, so mutations pass the origin check.
                let cookie = if k % 4 == 0 { k } else { 42 };
                let t1 = (k >> 3) as i64;
                let t4 = t1.saturating_add((k % 10_000_000) as i64);
                let client = &mut clients[(k % 3) as usize];
                match client.on_reply(b, cookie, t1, t4, k & 2 == 0, Rate::from_ppm(15)) {
                    Ok(o) => {
                        assert!(o.basic.m.bounds.lo <= o.basic.m.bounds.hi);
                        "accepted".into()
                    }
                    Err(e) => format!("err:{}", kind(&e)),
                }
            }),
            fixup: no_fixup,
        }
    }
}

/// A fleet scenario: parsed and checked, then, if accepted, run for at most 2 virtual seconds
/// with at most 2 hosts (the values themselves untouched, so every accepted combination of
/// faults, network and oscillators is exercised by the real simulator).
pub(super) fn fleet_scenario(s: &str) -> String {
    let mut sc = match crate::sim::FleetScenario::from_toml(s, "fuzz.toml") {
        Ok(sc) => sc,
        Err(crate::error::Error::Config(ttsys::config::ConfigError::Invalid { .. })) => {
            return "err:out-of-range".into();
        }
        Err(e) => return format!("err:{}", super::kind(&e)),
    };
    sc.duration_s = sc.duration_s.min(2.0);
    sc.hosts.count = sc.hosts.count.min(2);
    sc.trace_host = sc.trace_host.filter(|&h| h < sc.hosts.count);
    // An accepted scenario that cannot run is a finding, like a panic (the hook saves it).
    if let Err(e) = crate::sim::run(&sc) {
        panic!("an accepted scenario failed to run: {e}");
    }
    "ok-ran".into()
}

/// NTS (RFC 8915): the NTS-KE record stream both ways, a master opening requests, a client
/// opening replies. Seeds are valid messages made with fixed keys, so mutations start from
/// something that authenticates.
pub(in crate::fuzz) mod nts {
    use super::*;
    use ttcore::ntp::nts::{self as n, KeyRing, Keys, MasterKey, Opened, ke};
    use ttcore::ntp::packet::{Header, Packet, TtField, TtRequest};

    fn keys() -> Keys {
        Keys {
            c2s: [1; n::KEY_LEN],
            s2c: [2; n::KEY_LEN],
        }
    }
    fn ring() -> KeyRing {
        KeyRing::new(vec![MasterKey {
            id: 7,
            key: [7; n::KEY_LEN],
        }])
        .expect("one key")
    }
    const UID: [u8; n::UNIQUE_ID_LEN] = [5; n::UNIQUE_ID_LEN];

    /// A protected TrueTime request with `placeholders` placeholders.
    fn request_seed(placeholders: usize) -> Vec<u8> {
        let mut v = Vec::new();
        Packet {
            header: Header::client(42),
            tt: Some(TtField::Request(TtRequest::default())),
        }
        .encode(&mut v);
        let cookie = ring().seal(&keys(), [3; n::NONCE_LEN]);
        n::protect_request(
            &mut v,
            &UID,
            &cookie,
            placeholders,
            &keys(),
            [4; n::NONCE_LEN],
        )
        .expect("our own cookie fits");
        v
    }

    pub(in crate::fuzz) fn ke(mut s: Vec<Vec<u8>>) -> Harness {
        s.push(ke::client_request());
        let (req, _) = ke::decode(&ke::client_request())
            .ok()
            .flatten()
            .expect("our request decodes");
        let (resp, _) = ke::server_response(&req, Some(123), || vec![9; n::COOKIE_LEN]);
        let mut wire = Vec::new();
        ke::encode(&resp, &mut wire).expect("our own records fit");
        s.push(wire);
        Harness {
            seeds: s,
            text: false,
            // The stream as either side reads it: the server answers it, the client reads it
            // as a response.
            step: Box::new(|b| match ke::decode(b) {
                Ok(Some((records, used))) => {
                    assert!(used <= b.len());
                    let (resp, agreed) =
                        ke::server_response(&records, Some(123), || vec![9; n::COOKIE_LEN]);
                    assert!(resp.last().is_some_and(|r| r.ty == ke::ty::END));
                    let _ = agreed;
                    match ke::client_response(&records) {
                        Ok(_) => "accepted-response".into(),
                        Err(e) => format!("ok-request:{}", kind(&e)),
                    }
                }
                Ok(None) => "incomplete".into(),
                Err(e) => format!("err:{}", kind(&e)),
            }),
            fixup: no_fixup,
        }
    }

    pub(in crate::fuzz) fn request(mut s: Vec<Vec<u8>>) -> Harness {
        s.extend([request_seed(0), request_seed(3)]);
        let ring = ring();
        Harness {
            seeds: s,
            text: false,
            // The master's side: open, and for an authenticated request build the protected
            // reply, which must not be larger than the request.
            step: Box::new(move |b| match n::open_request(b, &ring) {
                Ok(Opened::Plain) => "accepted-plain".into(),
                Ok(Opened::Authenticated(r)) => {
                    let mut out = b[..48].to_vec();
                    let cookies: Vec<Vec<u8>> = (0..r.cookies_wanted)
                        .map(|i| ring.seal(&r.keys, [i as u8; n::NONCE_LEN]))
                        .collect();
                    match n::protect_reply(&mut out, &r, &cookies, [8; n::NONCE_LEN]) {
                        Ok(()) => {
                            assert!(out.len() <= b.len(), "NTS reply larger than its request");
                            "accepted-authenticated".into()
                        }
                        Err(e) => format!("reply-refused:{}", kind(&e)),
                    }
                }
                Ok(Opened::Refused { why, .. }) => format!("refused:{}", kind(&why)),
                Err(e) => format!("err:{}", kind(&e)),
            }),
            fixup: no_fixup,
        }
    }

    pub(in crate::fuzz) fn reply(mut s: Vec<Vec<u8>>) -> Harness {
        let Opened::Authenticated(r) = n::open_request(&request_seed(2), &ring()).expect("seed")
        else {
            unreachable!("the seed authenticates")
        };
        let mut rep = Vec::new();
        Packet {
            header: Header::client(42),
            tt: None,
        }
        .encode(&mut rep);
        let cookies: Vec<Vec<u8>> = (0..3)
            .map(|_| ring().seal(&keys(), [1; n::NONCE_LEN]))
            .collect();
        n::protect_reply(&mut rep, &r, &cookies, [8; n::NONCE_LEN]).expect("our own cookies fit");
        s.push(rep);
        let mut nak = Vec::new();
        n::nak(
            request_seed(0)[..48].try_into().expect("48 bytes"),
            &UID,
            &mut nak,
        )
        .expect("a 32-byte identifier fits");
        s.push(nak);
        Harness {
            seeds: s,
            text: false,
            step: Box::new(|b| match n::open_reply(b, &UID, &keys()) {
                Ok(c) => format!("accepted-{}-cookies", c.len().min(9)),
                Err(e) => format!("err:{}", kind(&e)),
            }),
            fixup: no_fixup,
        }
    }
}
