//! The mutation engine: bit flips, overwrites, truncation and extension, splices of two
//! seeds, inserted separators, extreme numbers and multi-byte text, replaced fields.

use super::*;

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
