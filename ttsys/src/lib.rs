//! OS-facing helpers shared by the daemons and the SDK. `unsafe` lives only in [`pps`] (the
//! RFC 2783 ioctl), [`shm`] (the shared-memory page views), [`steer`] (adjtimex) and [`clock`]
//! (one `clock_gettime` call), documented in each.

pub mod clock;
pub mod config;
pub mod ntp;
pub mod pps;
pub mod shm;
pub mod steer;
pub mod udp;
