//! timed: the per-host TrueTime daemon. It polls several masters over UDP (NTPv4 wire, kernel
//! timestamps, interleaved; `docs/PROTOCOL-transfer.md`), selects
//! among them with Marzullo ([`ttcore::host`]), keeps the host clock model and publishes it in a
//! shared-memory page (`PROTOCOL.md`) from which clients compute `TT.now()` with one vDSO clock
//! read; optionally also an AWS ClockBound v2 segment.

#![forbid(unsafe_code)]

pub mod config;
pub mod daemon;
