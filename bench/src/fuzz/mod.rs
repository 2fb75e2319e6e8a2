//! `ttbench fuzz`: fuzzing on the stable toolchain of every parser that sees outside bytes.
//!
//! Each target takes one input (bytes) through the same code the daemons and clients run on
//! outside data, and names its outcome (accepted, or which typed refusal). Inputs are random
//! and mutated (bit flips, overwrites, truncation, splices of two seeds, inserted separators and
//! extreme numbers, replaced fields), seeded from valid examples, the project's corpus
//! (`bench/fuzz-corpus/<target>/`: every past finding stays there as a regression) and, for
//! NMEA, the real receiver captures vendored in `testdata/nmea/`. The generator is a seeded
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

mod mutate;
mod targets;

pub use mutate::mutate;
use targets::*;

/// Every target, by name.
pub const TARGETS: [&str; 17] = [
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
    "nts-ke",
    "nts-request",
    "nts-reply",
    "grpc-requests",
    "vmclock",
    "store-requests",
    "store-topology",
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

#[allow(
    clippy::too_many_lines,
    reason = "one arm per fuzz target (seeds and step): a table of 17 targets."
)]
fn harness(target: &str) -> Result<Harness, Error> {
    let mut seeds = corpus(target);
    let h = match target {
        "nmea" => {
            use timemaster::core::master::{MasterCore, MasterParams};
            for f in firmware_sim::replay::captures()? {
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
                    let _ = core.on_nmea_line(&line, ttcore::RawReading::from_nanos(raw));
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
        "store-topology" => text_target(seeds, "store/topologies", |s| {
            tally(ttstore::region::Topology::parse(s, "fuzz.toml"))
        }),
        "scenario-devices" => text_target(seeds, "firmware-sim/scenarios", |s| {
            tally(firmware_sim::scenario::Scenario::from_toml(s, "fuzz.toml"))
        }),
        // Every accepted scenario also runs, briefly: one that parses but panics, hangs or
        // fails to start is a finding.
        "scenario-fleet" => text_target(seeds, "bench/scenarios", targets::fleet_scenario),
        "ntp-request" => ntp::request(seeds),
        "ntp-reply" => ntp::reply(seeds),
        "nts-ke" => nts::ke(seeds),
        "nts-request" => nts::request(seeds),
        "nts-reply" => nts::reply(seeds),
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
