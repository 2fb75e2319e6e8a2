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
    #[error("{path}: {key}: {msg}")]
    Invalid {
        /// File.
        path: String,
        /// The key.
        key: String,
        /// Why.
        msg: String,
    },
}

/// A value that parses but makes no sense: which key, and why.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{key}: {why}")]
pub struct InvalidKey {
    /// The key, as written in the file (`peer.addr` for a key inside a table array).
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

/// `host:port` with a non-zero numeric port (the host is resolved at run time).
pub fn valid_host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0))
}
