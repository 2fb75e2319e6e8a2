//! Loading the daemons' TOML configuration files: errors name the file, and toml's messages name
//! the line and the key (the config structs reject unknown keys with `deny_unknown_fields`).

use serde::de::DeserializeOwned;
use std::path::Path;
use thiserror::Error;

/// A configuration that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Syntax, an unknown key or a wrongly typed value (toml's message names line and key).
    #[error("{path}: {msg}")]
    Parse {
        /// File.
        path: String,
        /// toml's message.
        msg: String,
    },
    /// A value that parses but makes no sense.
    #[error("{path}{}: {key}: {msg}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Invalid {
        /// File.
        path: String,
        /// The line (1-based) where the key is set or its table starts, when it is in the file
        /// (a default that does not fit another key's value has no line).
        line: Option<usize>,
        /// The key.
        key: String,
        /// Why.
        msg: String,
    },
}

/// A value that parses but makes no sense: which key, and why. The key is written as in the
/// file, with a table's name before it (`hosts.count`) and, in an array of tables, the entry's
/// index (`master[1].addr`, 0-based); a whole table is named alone (`network`).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{key}: {why}")]
pub struct InvalidKey {
    /// The key, as written in the file (see the type's docs for tables and arrays of tables).
    pub key: String,
    /// Why the value is refused.
    pub why: String,
}

impl InvalidKey {
    /// `key` is refused because `why`.
    pub fn new(key: impl Into<String>, why: impl Into<String>) -> Self {
        InvalidKey {
            key: key.into(),
            why: why.into(),
        }
    }
}

/// Parses `src` (called `path` in errors) and runs `validate`, which names the offending key.
pub fn parse<T: DeserializeOwned>(
    src: &str,
    path: &str,
    validate: impl FnOnce(&T) -> Result<(), InvalidKey>,
) -> Result<T, ConfigError> {
    let c: T = toml::from_str(src).map_err(|e| ConfigError::Parse {
        path: path.into(),
        msg: e.to_string(),
    })?;
    validate(&c).map_err(|e| ConfigError::Invalid {
        path: path.into(),
        line: line_of(src, &e.key),
        key: e.key,
        msg: e.why,
    })?;
    Ok(c)
}

/// Reads and [`parse`]s a file.
pub fn load<T: DeserializeOwned>(
    path: &Path,
    validate: impl FnOnce(&T) -> Result<(), InvalidKey>,
) -> Result<T, ConfigError> {
    let p = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: p.clone(),
        source,
    })?;
    parse(&src, &p, validate)
}

/// The line (1-based) of `src` where `key` (in [`InvalidKey`]'s form) is set, or where the table
/// it names starts; `None` when the file does not mention it.
///
/// A line scan over the TOML's plain shape (table headers, `key = value` lines, dotted keys at
/// the top), which is all the configs and scenarios use; it only reports, never decides.
pub fn line_of(src: &str, key: &str) -> Option<usize> {
    // "master[1].addr" → table "master", entry 1, leaf "addr"; "network" → the table itself.
    let (table, leaf) = key.rsplit_once('.').unwrap_or(("", key));
    let split_index = |t: &str| -> (String, Option<usize>) {
        match t.split_once('[') {
            Some((name, rest)) => (name.to_string(), rest.trim_end_matches(']').parse().ok()),
            None => (t.to_string(), None),
        }
    };
    let (table, index) = split_index(table);
    let (leaf_name, leaf_index) = split_index(leaf);
    let mut current = String::new();
    let mut current_index: Option<usize> = None;
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    let unquote = |k: &str| k.trim().trim_matches('"').to_string();
    for (n, line) in src.lines().enumerate() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix("[[").and_then(|h| h.split_once("]]")) {
            current = unquote(h.0);
            let k = seen.entry(current.clone()).or_default();
            current_index = Some(*k);
            *k += 1;
            // `key` names this entry of an array of tables (or, without an index, its first).
            if table.is_empty() && current == leaf_name && leaf_index.is_none_or(|i| i + 1 == *k) {
                return Some(n + 1);
            }
        } else if let Some(h) = t.strip_prefix('[').and_then(|h| h.split_once(']')) {
            current = unquote(h.0);
            current_index = None;
            if table.is_empty() && current == leaf_name {
                return Some(n + 1);
            }
        } else if let Some((k, _)) = t.split_once('=') {
            let k = unquote(k);
            let in_table = current == table && index.is_none_or(|i| current_index == Some(i));
            let dotted =
                current.is_empty() && !table.is_empty() && k == format!("{table}.{leaf_name}");
            if (in_table && k == leaf_name) || dotted {
                return Some(n + 1);
            }
        }
    }
    None
}

/// The NTS keys of a list of sources (`table`, e.g. `master`, with each entry's `nts-ke`): each
/// must be `host:port`, and any at all needs `nts-trusted-certs`.
pub fn check_nts_sources<'a>(
    table: &str,
    nts_ke: impl Iterator<Item = Option<&'a str>>,
    trusted_certs: bool,
) -> Result<(), InvalidKey> {
    let mut any = false;
    for (i, k) in nts_ke.enumerate() {
        let Some(k) = k else { continue };
        if !valid_host_port(k) {
            return Err(InvalidKey::new(
                format!("{table}[{i}].nts-ke"),
                format!("{k:?} is not host:port"),
            ));
        }
        any = true;
    }
    if any && !trusted_certs {
        return Err(InvalidKey::new(
            "nts-trusted-certs",
            format!("a {table} with nts-ke needs the CA certificates to trust"),
        ));
    }
    Ok(())
}

/// `host:port` with a non-zero numeric port (the host is resolved at run time).
pub fn valid_host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "name = \"x\"\nduration-s = 10\n\n[hosts]\ncount = 3\n\
                       poll-interval-s = 0.0\n\n[[master]]\nkind = \"gps\"\n\n[[master]]\n\
                       kind = \"gps\"\nlie-ms = 1\n[network]\n\"loss\" = 2\n";

    #[test]
    fn line_of_finds_keys_tables_and_entries() {
        assert_eq!(line_of(SRC, "duration-s"), Some(2));
        assert_eq!(line_of(SRC, "hosts.poll-interval-s"), Some(6));
        assert_eq!(line_of(SRC, "hosts"), Some(4));
        assert_eq!(line_of(SRC, "master[1].lie-ms"), Some(13));
        assert_eq!(line_of(SRC, "master[1].kind"), Some(12));
        assert_eq!(line_of(SRC, "master[1]"), Some(11));
        assert_eq!(line_of(SRC, "master.kind"), Some(9));
        assert_eq!(line_of(SRC, "master[0].lie-ms"), None);
        assert_eq!(line_of(SRC, "network.loss"), Some(15));
        assert_eq!(line_of(SRC, "seed"), None);
        assert_eq!(line_of("hosts.count = 0\n", "hosts.count"), Some(1));
    }

    #[test]
    fn invalid_values_name_the_line() {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "kebab-case")]
        struct C {
            a: i64,
            b: i64,
        }
        let e = parse("a = 1\nb = -4\n", "f.toml", |c: &C| {
            if c.b < 0 && c.a > 0 {
                Err(InvalidKey::new("b", "must not be negative"))
            } else {
                Ok(())
            }
        })
        .err()
        .expect("refused");
        assert_eq!(e.to_string(), "f.toml, line 2: b: must not be negative");
    }
}
