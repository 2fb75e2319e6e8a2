//! Fuzzing of the time-transfer parsers on the stable toolchain: random and mutated packets
//! thrown at the master's request path ([`ttcore::ntp::answer`]) and the client's reply path
//! ([`ttcore::ntp::Client::on_reply`]). Nothing may panic; every input must come out as an
//! answer or a typed refusal, and every answer must itself decode. `TT_FUZZ_ITERS` sets the count
//! per parser (default 1,000,000).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use ttcore::ntp::packet::{Header, Packet, TtField, TtReply, TtRequest};
use ttcore::ntp::{Client, MasterView, RawStamp, SentReply, answer};
use ttcore::{ClockModel, ClockStatus, Rate, Span, Timestamp};

/// "Variant/Inner" of an error's Debug form: a readable tally key.
fn kind(e: &impl std::fmt::Debug) -> String {
    let d = format!("{e:?}");
    d.split(['(', ' ', '{'])
        .take(2)
        .map(|p| p.trim_end_matches([')', ',']))
        .filter(|p| {
            !p.is_empty()
                && !p
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit() || c == '-')
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn iters() -> usize {
    std::env::var("TT_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn view() -> MasterView {
    MasterView {
        model: Some(ClockModel {
            ref_raw_ns: 1_000_000_000,
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

/// Seeds: valid requests (plain and TrueTime) and valid replies.
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
    let v = view();
    let mut rep = Vec::new();
    let prev = |_: i64, _: u64| {
        Some(SentReply {
            t2_ns: 1_790_000_000_000_000_000,
            t3_ns: Some(1_790_000_000_000_010_000),
            eps_ns: 500,
            kernel: true,
        })
    };
    let req = out[1].clone();
    answer(
        &req,
        RawStamp {
            raw: 2_000_000_000,
            kernel: true,
        },
        2_000_010_000,
        &prev,
        &v,
        &mut rep,
    )
    .unwrap();
    out.push(rep);
    out
}

fn mutate(rng: &mut ChaCha8Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    match rng.random_range(0..8) {
        // Pure noise of any length up to past the size limit.
        0 => {
            let n = rng.random_range(0..1100);
            (0..n).map(|_| rng.random()).collect()
        }
        // Noise with a plausible first byte (version 4, client or server).
        1 => {
            let n = rng.random_range(40..200);
            let mut v: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            if let Some(b) = v.first_mut() {
                *b = if rng.random() { 0x23 } else { 0x24 };
            }
            v
        }
        // A seed with random bit flips.
        2 | 3 => {
            let mut v = seeds[rng.random_range(0..seeds.len())].clone();
            for _ in 0..rng.random_range(1..8) {
                let i = rng.random_range(0..v.len());
                v[i] ^= 1 << rng.random_range(0..8);
            }
            v
        }
        // A seed truncated or extended with noise.
        4 => {
            let mut v = seeds[rng.random_range(0..seeds.len())].clone();
            let n = rng.random_range(0..v.len() + 64);
            v.resize(n, rng.random());
            v
        }
        // A seed whose extension-field header is rewritten (type and length).
        5 => {
            let mut v = seeds[rng.random_range(0..seeds.len())].clone();
            if v.len() >= 52 {
                let ty: u16 = if rng.random() { 0xF454 } else { rng.random() };
                let len: u16 = rng.random_range(0..200);
                v[48..50].copy_from_slice(&ty.to_be_bytes());
                v[50..52].copy_from_slice(&len.to_be_bytes());
            }
            v
        }
        // Two seeds spliced.
        6 => {
            let a = &seeds[rng.random_range(0..seeds.len())];
            let b = &seeds[rng.random_range(0..seeds.len())];
            let i = rng.random_range(0..=a.len());
            let j = rng.random_range(0..=b.len());
            [&a[..i], &b[j..]].concat()
        }
        // A seed with random 64-bit words in the body (timestamps, ε, ids).
        _ => {
            let mut v = seeds[rng.random_range(0..seeds.len())].clone();
            for _ in 0..rng.random_range(1..4) {
                if v.len() >= 8 {
                    let i = rng.random_range(0..v.len() - 7);
                    let w: u64 = rng.random();
                    v[i..i + 8].copy_from_slice(&w.to_be_bytes());
                }
            }
            v
        }
    }
}

#[test]
fn master_request_parser_survives_random_and_mutated_packets() {
    let n = iters();
    let seeds = seeds();
    let mut rng = ChaCha8Rng::seed_from_u64(0xf022);
    let v = view();
    let mut out = Vec::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let prev = |t2: i64, _: u64| {
        Some(SentReply {
            t2_ns: t2,
            t3_ns: Some(t2.wrapping_add(5_000)),
            eps_ns: 500,
            kernel: true,
        })
    };
    for _ in 0..n {
        let pkt = mutate(&mut rng, &seeds);
        let rx = RawStamp {
            raw: rng.random_range(-1i64 << 62..1 << 62),
            kernel: rng.random(),
        };
        let tx = rx.raw.saturating_add(rng.random_range(0..1_000_000));
        let key = match answer(&pkt, rx, tx, &prev, &v, &mut out) {
            Ok(_) => {
                // What we send must be a well-formed server reply.
                let p = Packet::decode(&out).expect("our reply decodes");
                assert_eq!(p.header.mode, ttcore::ntp::packet::Mode::Server);
                "answered".to_string()
            }
            Err(e) => kind(&e),
        };
        *outcomes.entry(key).or_default() += 1;
    }
    let total: usize = outcomes.values().sum();
    eprintln!("{n} packets at the master's parser: {outcomes:?}");
    assert_eq!(total, n, "every packet is counted once");
    assert!(
        outcomes.len() >= 3,
        "the inputs reach several outcomes: {outcomes:?}"
    );
    assert!(outcomes.get("answered").copied().unwrap_or(0) > n / 100);
}

#[test]
fn client_reply_parser_survives_random_and_mutated_packets() {
    let n = iters();
    let seeds = seeds();
    let mut rng = ChaCha8Rng::seed_from_u64(0xc11e);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut client = Client::new();
    for _ in 0..n {
        let pkt = mutate(&mut rng, &seeds);
        // The cookie of the seed reply, so mutated replies get past the origin check often.
        let cookie = if rng.random_range(0..4) == 0 {
            rng.random()
        } else {
            42
        };
        let t1: i64 = rng.random_range(-1i64 << 62..1 << 62);
        let t4 = if rng.random() {
            t1.saturating_add(rng.random_range(0..10_000_000))
        } else {
            rng.random()
        };
        let key = match client.on_reply(
            &pkt,
            cookie,
            t1,
            t4,
            rng.random(),
            Rate::from_ppm(rng.random_range(0..1000)),
        ) {
            Ok(o) => {
                // Every sample handed out is a real interval.
                assert!(o.basic.m.bounds.lo <= o.basic.m.bounds.hi);
                if let Some(i) = o.interleaved {
                    assert!(i.m.bounds.lo <= i.m.bounds.hi);
                }
                "accepted".to_string()
            }
            Err(e) => kind(&e),
        };
        *outcomes.entry(key).or_default() += 1;
    }
    let total: usize = outcomes.values().sum();
    eprintln!("{n} packets at the client's parser: {outcomes:?}");
    assert_eq!(total, n, "every packet is counted once");
    assert!(
        outcomes.len() >= 5,
        "the inputs reach several outcomes: {outcomes:?}"
    );
    assert!(outcomes.get("accepted").copied().unwrap_or(0) > 0);
}
