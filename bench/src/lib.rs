//! Benchmarks, the lab launcher (`ttlab`), the deterministic fleet simulator, and a real
//! chronyd to measure against.

pub mod anchor;
pub mod attack;
pub mod campaign;
pub mod chrony;
pub mod commit_wait;
pub mod config_ref;
pub mod conflicts;
pub mod error;
pub mod fuzz;
pub mod lab;
pub mod multiregion;
pub mod multiregion_ap;
pub mod now_latency;
pub mod report;
pub mod sim;
pub mod store;
pub mod sync_rps;
