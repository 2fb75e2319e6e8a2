//! The pure core of the time master: no I/O, no clocks. See [`master`].

pub mod kalman;
pub mod master;
pub mod nmea;
pub mod outcome;
pub mod telemetry;
