//! What kind of master a time master is: one definition for its config, its transfer replies
//! (a byte in the TrueTime field), its gRPC status and every display.

use serde::{Deserialize, Serialize};

/// What a master disciplines its time with. The discriminants are the wire codes (the
/// TrueTime field's `kind` byte and the gRPC enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MasterKind {
    /// GPS receiver, optionally with an atomic clock for holdover.
    Gps = 1,
    /// Atomic clock only; takes time from its peers once.
    Armageddon = 2,
}

impl MasterKind {
    /// The wire code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The kind with wire code `c`, if known.
    pub const fn from_code(c: i64) -> Option<MasterKind> {
        match c {
            1 => Some(MasterKind::Gps),
            2 => Some(MasterKind::Armageddon),
            _ => None,
        }
    }

    /// Its name in configs and status output.
    pub const fn as_str(self) -> &'static str {
        match self {
            MasterKind::Gps => "gps",
            MasterKind::Armageddon => "armageddon",
        }
    }

    /// The name of wire code `c`, `"unknown"` for a code this version does not know.
    pub const fn name_of(c: i64) -> &'static str {
        match Self::from_code(c) {
            Some(k) => k.as_str(),
            None => "unknown",
        }
    }

    /// The NTP reference identifier a master of this kind sends (RFC 5905 §7.3, stratum 1).
    pub const fn reference_id(self) -> [u8; 4] {
        match self {
            MasterKind::Gps => *b"GPS\0",
            MasterKind::Armageddon => *b"ATOM",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for k in [MasterKind::Gps, MasterKind::Armageddon] {
            assert_eq!(MasterKind::from_code(i64::from(k.code())), Some(k));
            assert_eq!(MasterKind::name_of(i64::from(k.code())), k.as_str());
        }
        assert_eq!(MasterKind::name_of(0), "unknown");
        assert_eq!(MasterKind::name_of(3), "unknown");
    }
}
