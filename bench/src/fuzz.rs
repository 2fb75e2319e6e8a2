//! `ttbench fuzz`: fuzzing on the stable toolchain of every parser that sees outside bytes.
//!
//! Each target takes one input (bytes) through the same code the daemons and clients run on
//! outside data, and names its outcome (accepted, or which typed refusal). Inputs are random
//! and mutated (bit flips, overwrites, truncation, splices of two seeds, inserted separators and
//! extreme numbers, replaced fields), seeded from valid examples, the project's corpus
//! (`bench/fuzz-corpus/<target>/`: every past finding stays there as a regression) and, for
//! NMEA, the real receiver captures in `../shared/corpus/nmea/`. The generator is a seeded
//! ChaCha, so a run is reproducible.
//!
//! A panic is a finding: release builds abort on panic, so it would be a daemon crash. The
//! panic hook writes the input to `fuzz-crash-<target>-<n>.bin` in the working directory before
//! the process dies; add it to the corpus with the fix.

use crate::error::Error;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// Every target, by name.
pub const TARGETS: [&str; 13] = [
    "nmea",
    "sock",
    "telemetry",
    "shm-page",
    "config-timed",
    "config-timemaster",
    "scenario-devices",
    "scenario-fleet",
    "ntp-request",
    "ntp-reply",
    "grpc-requests",
    "vmclock",
    "store-requests",
];

/// What one run found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Target name.
    pub target: String,
    /// Inputs run.
    pub inputs: u64,
    /// Seeds the mutations started from.
    pub seeds: usize,
    /// Outcome → count (every input is counted once).
    pub outcomes: BTreeMap<String, u64>,
    /// Wall time (s).
    pub seconds: f64,
}

/// How long to run.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// This many inputs.
    Inputs(u64),
    /// For this long (s).
    Seconds(f64),
}

/// The input being run, for the panic hook.
static CURRENT: Mutex<Option<(String, Vec<u8>)>> = Mutex::new(None);

/// Installs (once) a panic hook that saves the input being run before the default hook runs.
fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(g) = CURRENT.try_lock()
                && let Some((target, input)) = g.as_ref()
            {
                let path = (0..)
                    .map(|n| PathBuf::from(format!("fuzz-crash-{target}-{n}.bin")))
                    .find(|p| !p.exists())
                    .unwrap_or_else(|| PathBuf::from("fuzz-crash.bin"));
                let _ = std::fs::write(&path, input);
                eprintln!(
                    "fuzz: {target} panicked on a {}-byte input, saved to {} ({:?})",
                    input.len(),
                    path.display(),
                    String::from_utf8_lossy(&input[..input.len().min(200)])
                );
            }
            prev(info);
        }));
    });
}

/// The project directory (the workspace root).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Files in `dir` (not recursive), sorted; empty if it does not exist.
fn files(dir: &Path, ext: Option<&str>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .filter(|p| ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The regression corpus of a target: every file in `bench/fuzz-corpus/<target>/`.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    files(&root().join("bench/fuzz-corpus").join(target), None)
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

fn text_files(dir: &Path, ext: &str) -> Vec<Vec<u8>> {
    files(dir, Some(ext))
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

/// Tokens that break parsers: separators, extreme and malformed numbers, multi-byte text.
const TEXT_TOKENS: [&str; 24] = [
    ",",
    "*",
    "\r\n",
    "\n",
    "=",
    "\"",
    "[",
    "]",
    "-",
    ".",
    "-0",
    "0x",
    "99999999999999999999999",
    "-9223372036854775808",
    "18446744073709551616",
    "1e308",
    "NaN",
    "inf",
    "\u{fffd}",
    "é",
    "60.999",
    "235960",
    "$GP",
    "!^",
];

/// A mutated input from the seeds.
// One arm per mutation kind: a table.
pub fn mutate(rng: &mut ChaCha8Rng, seeds: &[Vec<u8>], text: bool) -> Vec<u8> {
    let pick = |rng: &mut ChaCha8Rng| seeds[rng.random_range(0..seeds.len())].clone();
    if seeds.is_empty() || rng.random_range(0..16) == 0 {
        let n = rng.random_range(0..600);
        return (0..n)
            .map(|_| {
                if text {
                    rng.random_range(0x20u8..0x7f)
                } else {
                    rng.random()
                }
            })
            .collect();
    }
    let mut v = pick(rng);
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..9) {
            // Bit flips.
            0 if !v.is_empty() => {
                for _ in 0..rng.random_range(1..6) {
                    let i = rng.random_range(0..v.len());
                    v[i] ^= 1 << rng.random_range(0..8);
                }
            }
            // Byte overwrites.
            1 if !v.is_empty() => {
                for _ in 0..rng.random_range(1..6) {
                    let i = rng.random_range(0..v.len());
                    v[i] = rng.random();
                }
            }
            // Truncated, or extended with noise.
            2 => {
                let n = rng.random_range(0..v.len() + 64);
                let fill = rng.random();
                v.resize(n, fill);
            }
            // Two seeds spliced.
            3 => {
                let b = pick(rng);
                let i = rng.random_range(0..=v.len());
                let j = rng.random_range(0..=b.len());
                v = [&v[..i], &b[j..]].concat();
            }
            // A token inserted.
            4 => {
                let t = TEXT_TOKENS[rng.random_range(0..TEXT_TOKENS.len())].as_bytes();
                let i = rng.random_range(0..=v.len());
                v.splice(i..i, t.iter().copied());
            }
            // A range deleted or duplicated.
            5 | 6 if !v.is_empty() => {
                let a = rng.random_range(0..v.len());
                let b = rng.random_range(a..=v.len().min(a + 32));
                if rng.random() {
                    v.drain(a..b);
                } else {
                    let d = v[a..b].to_vec();
                    v.splice(b..b, d);
                }
            }
            // A field (between separators) replaced by a token.
            7 if text && !v.is_empty() => {
                let seps = [b',', b'=', b'\n', b' '];
                let a = rng.random_range(0..v.len());
                let end = v[a..]
                    .iter()
                    .position(|c| seps.contains(c))
                    .map_or(v.len(), |p| a + p);
                let t = TEXT_TOKENS[rng.random_range(0..TEXT_TOKENS.len())].as_bytes();
                v.splice(a..end, t.iter().copied());
            }
            // An 8-byte word overwritten with an extreme value (binary formats).
            _ if v.len() >= 8 => {
                let i = rng.random_range(0..=v.len() - 8);
                let w: u64 = match rng.random_range(0..4) {
                    0 => 0,
                    1 => u64::MAX,
                    2 => i64::MAX as u64,
                    _ => rng.random(),
                };
                v[i..i + 8].copy_from_slice(&w.to_le_bytes());
            }
            _ => {}
        }
    }
    v
}

/// "Variant" of an error's Debug form: a short tally key.
fn kind(e: &impl std::fmt::Debug) -> String {
    let d = format!("{e:?}");
    let end = d.find(['(', ' ', '{']).unwrap_or(d.len());
    d[..end].to_string()
}

fn tally<T, E: std::fmt::Debug>(r: Result<T, E>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("err:{}", kind(&e)),
    }
}

/// A target's step: one input → its outcome's name.
type Step = Box<dyn FnMut(&[u8]) -> String>;

/// One target: its seeds and its step (input → outcome).
struct Harness {
    seeds: Vec<Vec<u8>>,
    text: bool,
    step: Step,
    /// Applied to every mutated input (e.g. fix an NMEA checksum half the time).
    fixup: fn(&mut ChaCha8Rng, &mut [u8]),
}

fn no_fixup(_: &mut ChaCha8Rng, _: &mut [u8]) {}

/// Half the time, make a line's NMEA checksum right, so mutations reach past the check.
fn nmea_checksum(rng: &mut ChaCha8Rng, v: &mut [u8]) {
    if rng.random() {
        return;
    }
    let (Some(s), Some(star)) = (
        v.iter().position(|&c| c == b'$' || c == b'!'),
        v.iter().rposition(|&c| c == b'*'),
    ) else {
        return;
    };
    if star <= s || star + 3 > v.len() {
        return;
    }
    let cs = v[s + 1..star].iter().fold(0u8, |a, b| a ^ b);
    let hex = format!("{cs:02X}");
    v[star + 1..star + 3].copy_from_slice(hex.as_bytes());
}

// One arm per fuzz target (seeds and step): a table of 13 targets.
fn harness(target: &str) -> Result<Harness, Error> {
    let mut seeds = corpus(target);
    let h = match target {
        "nmea" => {
            use timemaster::core::master::{MasterCore, MasterParams};
            let dir = root().join("../shared/corpus/nmea");
            for f in files(&dir, Some("log")) {
                let Ok(b) = std::fs::read(&f) else { continue };
                seeds.extend(b.split(|&c| c == b'\n').take(300).map(|l| l.to_vec()));
            }
            seeds.push(
                b"$GPRMC,123519.00,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A".to_vec(),
            );
            seeds.push(b"$GPZDA,201530.00,04,07,2002,00,00*60".to_vec());
            let mut core = MasterCore::new(MasterParams::default(), ttcore::LeapTable::builtin());
            let mut raw = 1_000_000_000i64;
            Harness {
                seeds,
                text: true,
                // The line as the daemon hands it over (lossy UTF-8), through the parser and
                // the master core that consumes it.
                step: Box::new(move |b| {
                    let line = String::from_utf8_lossy(b);
                    raw += 100_000_000;
                    let parsed = tally(timemaster::core::nmea::parse_line(&line));
                    let _ = core.on_nmea_line(&line, raw);
                    parsed
                }),
                fixup: nmea_checksum,
            }
        }
        "sock" => {
            let ok = ttcore::sock::SockSample {
                tv_sec: 1_790_000_000,
                tv_usec: 123_456,
                offset: -0.000_123,
                pulse: true,
                leap: 0,
            };
            seeds.push(ok.encode().to_vec());
            Harness {
                seeds,
                text: false,
                step: Box::new(|b| tally(ttcore::sock::SockSample::decode(b))),
                fixup: no_fixup,
            }
        }
        "telemetry" => {
            seeds.extend([
                b"0,0x0000".to_vec(),
                b"3,0x0041\r\n".to_vec(),
                b" 1 , 0x8000".to_vec(),
            ]);
            Harness {
                seeds,
                text: true,
                step: Box::new(|b| {
                    tally(timemaster::core::telemetry::parse(
                        &String::from_utf8_lossy(b),
                    ))
                }),
                fixup: no_fixup,
            }
        }
        "shm-page" => shm_page(seeds)?,
        "config-timed" => text_target(seeds, "systemd", |s| {
            tally(timed::config::Config::from_toml(s, "fuzz.toml"))
        }),
        "config-timemaster" => text_target(seeds, "systemd", |s| {
            tally(timemaster::config::Config::from_toml(s, "fuzz.toml"))
        }),
        "scenario-devices" => text_target(seeds, "firmware-sim/scenarios", |s| {
            tally(firmware_sim::scenario::Scenario::from_toml(s, "fuzz.toml"))
        }),
        // Parsing only: running a fuzzed fleet would be a simulation per input.
        "scenario-fleet" => text_target(seeds, "bench/scenarios", |s| {
            tally(crate::sim::FleetScenario::from_toml(s, "fuzz.toml"))
        }),
        "ntp-request" => ntp::request(seeds),
        "ntp-reply" => ntp::reply(seeds),
        "grpc-requests" => grpc(seeds),
        "store-requests" => store(seeds),
        "vmclock" => {
            seeds.push(ttcore::vmclock::encode(0x1234_5678_9abc, 2, 6));
            seeds.push(ttcore::vmclock::encode(1, 4, 0)[..104].to_vec());
            let mut last: Option<ttcore::vmclock::Snapshot> = None;
            Harness {
                seeds,
                text: false,
                // The structure as timed copies it, then the rule against the previous copy.
                step: Box::new(move |b| {
                    let r = ttcore::vmclock::decode(b);
                    if let (Some(a), Ok(n)) = (&last, &r) {
                        let _ = ttcore::vmclock::check(a, n);
                    }
                    if let Ok(n) = r {
                        last = Some(n);
                    }
                    tally(r)
                }),
                fixup: no_fixup,
            }
        }
        other => {
            return Err(Error::failed(format!(
                "unknown fuzz target {other:?}; targets: {}",
                TARGETS.join(", ")
            )));
        }
    };
    Ok(h)
}

/// A TOML file parser, seeded with the project's own files of that kind (`*.toml` in `dir`),
/// fed as the loaders read files: text that is not UTF-8 is refused before parsing.
fn text_target(mut seeds: Vec<Vec<u8>>, dir: &str, parse: fn(&str) -> String) -> Harness {
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
/// valid pages), through open's checks, the full, hot and fast reads and the interval rules.
// The page target's three input kinds (random, mutated, torn) and every read path each input goes
// through: one harness.
fn shm_page(mut seeds: Vec<Vec<u8>>) -> Result<Harness, Error> {
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
            let mut d = PageData::unsynchronized(raw);
            d.model = ttcore::ClockModel {
                ref_raw_ns: raw,
                ref_time: ttcore::Timestamp::from_nanos(1_790_000_000_000_000_000),
                freq: ttcore::Rate::from_ppb(-12_345),
                eps_ref: ttcore::Span::from_micros(7),
                drift_bound: ttcore::Rate::from_ppm(15),
            };
            d.status = st;
            d.max_eps = ttcore::Span::from_millis(10);
            d.void_after_raw = raw + 10_000_000_000;
            d.holdover_after_raw = raw + 5_000_000_000;
            d.clock_check = Some(ttcore::disrupt::ClockPair {
                raw,
                boot: raw + 77,
                gap: 0,
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
            let base = d.model.ref_raw_ns;
            let mut out = "ok";
            for raw in [
                base,
                base.wrapping_add(1_000_000_000),
                base.wrapping_sub(1),
                i64::MAX,
                i64::MIN,
            ] {
                let x = d.read_at(raw);
                if x.interval.earliest() > x.interval.latest() {
                    return "inverted".into();
                }
                if let Ok(h) = r.read_hot() {
                    let _ = h.at(raw);
                    let _ = h.continuous(raw, raw.wrapping_add(77), Some(raw as u64));
                }
                let f = r.read_fast();
                if let Some((iv, _)) = f.at(raw) {
                    out = "ok-fast";
                    assert!(iv.earliest() <= iv.latest());
                }
                let _ = f.continuous(raw, raw, None);
            }
            out.into()
        }),
        fixup: no_fixup,
    })
}

/// gRPC requests after decoding: random protobuf bytes decoded as every request the daemons
/// accept, and the decoded values through the checks the handlers make (the knob's range).
fn grpc(mut seeds: Vec<Vec<u8>>) -> Harness {
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

/// The demo store's requests after decoding: random protobuf bytes as a transaction (then the
/// node's validation, which runs before anything is proposed) and as a Raft message (then its
/// JSON payload as each Raft request type, as the Raft service decodes it).
fn store(mut seeds: Vec<Vec<u8>>) -> Harness {
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
    let vote =
        br#"{"vote":{"leader_id":{"term":1,"node_id":1},"committed":false},"last_log_id":null}"#;
    let append = br#"{"vote":{"leader_id":{"term":1,"node_id":1},"committed":true},"prev_log_id":null,"entries":[],"leader_commit":null}"#;
    for payload in [&vote[..], &append[..]] {
        seeds.push(
            pb::RaftMessage {
                from: 1,
                payload: payload.to_vec(),
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
            format!("{txn},{raft}")
        }),
        fixup: no_fixup,
    }
}

/// The time-transfer packets, through the master's request path and the client's reply path.
mod ntp {
    use super::{Harness, kind, no_fixup};
    use std::cell::Cell;
    use ttcore::ntp::packet::{Header, Packet, TtField, TtReply, TtRequest};
    use ttcore::ntp::{Client, MasterView, RawStamp, SentReply, answer};
    use ttcore::{ClockModel, ClockStatus, Rate, Span, Timestamp};

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
        let mut rep = Vec::new();
        let req = out[1].clone();
        let stamp = RawStamp {
            raw: 2_000_000_000,
            kernel: true,
        };
        if answer(&req, stamp, 2_000_010_000, &prev, &view(), &mut rep).is_ok() {
            out.push(rep);
        }
        out
    }

    pub(super) fn request(mut s: Vec<Vec<u8>>) -> Harness {
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
                match answer(b, rx, rx.raw.saturating_add(3_000), &prev, &v, &mut out) {
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

    pub(super) fn reply(mut s: Vec<Vec<u8>>) -> Harness {
        s.extend(seeds());
        let mut client = Client::new();
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

/// Runs `target` within `budget` from `seed`.
pub fn run(target: &str, budget: Budget, seed: u64) -> Result<Report, Error> {
    install_hook();
    let mut h = harness(target)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let t0 = Instant::now();
    let mut inputs = 0u64;
    loop {
        match budget {
            Budget::Inputs(n) if inputs >= n => break,
            Budget::Seconds(s) if inputs % 1024 == 0 && t0.elapsed().as_secs_f64() >= s => break,
            _ => {}
        }
        // Every seed once as it is, then mutations.
        let mut input = match h.seeds.get(inputs as usize) {
            Some(s) => s.clone(),
            None => mutate(&mut rng, &h.seeds, h.text),
        };
        (h.fixup)(&mut rng, &mut input);
        // Kept for the panic hook (a copy per input: tens of ns).
        *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((target.to_string(), input.clone()));
        let out = (h.step)(&input);
        *outcomes.entry(out).or_default() += 1;
        inputs += 1;
    }
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
    Ok(Report {
        target: target.to_string(),
        inputs,
        seeds: h.seeds.len(),
        outcomes,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
