//! The TrueTime gRPC protocol (`proto/truetime.proto`), generated with tonic/prost, plus
//! conversions to and from [`ttcore`] types.

#![forbid(unsafe_code)]

#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("truetime.v1");
}

/// The demo store's protocol (`proto/store.proto`).
#[allow(missing_docs, clippy::all)]
pub mod store {
    tonic::include_proto!("ttstore.v1");
}

use ttcore::{ClockStatus, MasterKind};

/// `ttcore` status → wire status.
pub fn status_to_wire(s: ClockStatus) -> v1::ClockStatus {
    match s {
        ClockStatus::Synchronized => v1::ClockStatus::Synchronized,
        ClockStatus::Holdover => v1::ClockStatus::Holdover,
        ClockStatus::Unsynchronized => v1::ClockStatus::Unsynchronized,
        ClockStatus::Disrupted => v1::ClockStatus::Disrupted,
    }
}

/// Wire status (as the raw `i32` prost stores) → `ttcore` status. Unknown or unspecified codes
/// map to `Unsynchronized`: a value we cannot interpret must never be trusted.
pub fn status_from_wire(code: i32) -> ClockStatus {
    match v1::ClockStatus::try_from(code) {
        Ok(v1::ClockStatus::Synchronized) => ClockStatus::Synchronized,
        Ok(v1::ClockStatus::Holdover) => ClockStatus::Holdover,
        Ok(v1::ClockStatus::Disrupted) => ClockStatus::Disrupted,
        _ => ClockStatus::Unsynchronized,
    }
}

/// `ttcore` master kind → wire kind.
pub fn kind_to_wire(k: MasterKind) -> v1::MasterKind {
    match k {
        MasterKind::Gps => v1::MasterKind::Gps,
        MasterKind::Armageddon => v1::MasterKind::Armageddon,
    }
}

/// Wire kind (the raw `i32` prost stores) → `ttcore` master kind; `None` for unspecified or
/// unknown codes.
pub fn kind_from_wire(code: i32) -> Option<MasterKind> {
    match v1::MasterKind::try_from(code) {
        Ok(v1::MasterKind::Gps) => Some(MasterKind::Gps),
        Ok(v1::MasterKind::Armageddon) => Some(MasterKind::Armageddon),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_round_trip_and_unknown_is_none() {
        for k in [MasterKind::Gps, MasterKind::Armageddon] {
            assert_eq!(kind_from_wire(kind_to_wire(k) as i32), Some(k));
        }
        assert_eq!(kind_from_wire(0), None);
        assert_eq!(kind_from_wire(99), None);
    }

    #[test]
    fn status_round_trip_and_unknown_is_untrusted() {
        for s in [
            ClockStatus::Synchronized,
            ClockStatus::Holdover,
            ClockStatus::Unsynchronized,
            ClockStatus::Disrupted,
        ] {
            assert_eq!(status_from_wire(status_to_wire(s) as i32), s);
        }
        assert_eq!(status_from_wire(0), ClockStatus::Unsynchronized);
        assert_eq!(status_from_wire(77), ClockStatus::Unsynchronized);
    }
}
