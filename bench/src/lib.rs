//! Benchmarks, the lab launcher (`ttlab`) and (later) the deterministic fleet simulator.

pub mod commit_wait;
pub mod lab;
pub mod now_latency;
pub mod report;
pub mod sim;
pub mod store;
pub mod sync_rps;
