//! Benchmarks and (later) the deterministic fleet simulator, behind the `ttbench` binary.

pub mod sync_rps;
