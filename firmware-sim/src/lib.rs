//! firmware-sim: the hardware this project has no access to — a GPS timing receiver (NMEA +
//! PPS) and a chip-scale-style atomic clock (telemetry + 1PPS + lock line) — as deterministic
//! models in virtual time ([`gps`], [`atomic`]), driven by scenario files ([`scenario`]) against
//! one definition of true time ([`truth`]). The `firmware-sim` binary runs the same models in
//! real time on pseudo-terminals and sockets ([`rt`]); the fleet simulator and the tests drive
//! them directly.

#![forbid(unsafe_code)]

pub mod atomic;
pub mod gps;
pub mod nmea_gen;
pub mod replay;
pub mod rt;
pub mod scenario;
pub mod truth;
