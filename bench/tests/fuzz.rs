//! The short pass of `ttbench fuzz` in `cargo test`: every target, its corpus first, then
//! random and mutated inputs. No input may panic (a panic fails the test and saves the input);
//! every input is counted once; the inputs reach both acceptance and several typed refusals, so
//! the harness is not stuck on one path. `TT_FUZZ_INPUTS` sets the count per target (default
//! 20,000; `ttbench fuzz` runs 1,000,000 per target).

use bench::fuzz::{Budget, TARGETS, run};

fn inputs() -> u64 {
    std::env::var("TT_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

#[test]
fn every_parser_survives_random_and_mutated_input() {
    let n = inputs();
    for t in TARGETS {
        let r = run(t, Budget::Inputs(n), 7).unwrap();
        eprintln!("{t}: {:?}", r.outcomes);
        assert_eq!(r.inputs, n, "{t}");
        assert_eq!(
            r.outcomes.values().sum::<u64>(),
            n,
            "{t}: every input counted once"
        );
        assert!(
            r.outcomes.len() >= 2,
            "{t}: one outcome only: {:?}",
            r.outcomes
        );
        // Accepting outcomes are named ok / accepted / answered / valid by every target.
        let accepted: u64 = r
            .outcomes
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("err")
                    && ["ok", "accepted", "answered", "valid"]
                        .iter()
                        .any(|w| k.contains(w))
            })
            .map(|(_, v)| v)
            .sum();
        assert!(accepted > 0, "{t}: nothing accepted: {:?}", r.outcomes);
    }
}

#[test]
fn the_nmea_finding_is_in_the_corpus_and_refused() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus/nmea");
    let line = std::fs::read(dir.join("issue-13-multibyte-time-field.nmea")).unwrap();
    let text = String::from_utf8_lossy(&line);
    assert!(text.contains('\u{fffd}'));
    assert_eq!(
        timemaster::core::nmea::parse_line(&text),
        Err(timemaster::core::nmea::NmeaError::NotAscii)
    );
    // The NMEA target's seeds include it and the real captures.
    let r = run("nmea", Budget::Inputs(1), 1).unwrap();
    assert!(r.seeds > 1000, "seeds {}", r.seeds);
}

#[test]
fn an_unknown_target_is_a_clear_error() {
    let e = run("nope", Budget::Inputs(1), 1).unwrap_err().to_string();
    assert!(
        e.contains("unknown fuzz target") && e.contains("nmea"),
        "{e}"
    );
}
