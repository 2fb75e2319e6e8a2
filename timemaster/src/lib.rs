//! timemaster: a GPS/PPS and atomic-clock disciplined time reference that publishes an honest
//! uncertainty. [`core`] holds the logic (pure, driven with explicit raw-clock readings so the
//! fleet simulator runs it unchanged); the rest of the crate is the daemon around it.

#![forbid(unsafe_code)]

pub mod config;
pub mod core;
pub mod daemon;
pub mod ntp_server;
pub mod sim;
