//! OS-facing helpers shared by the daemons and the SDK. `unsafe` lives only in [`pps`] (the
//! RFC 2783 ioctl), [`phc`] (the three PTP offset ioctls), [`shm`] (the shared-memory page views), [`steer`] (adjtimex), [`clock`]
//! (one `clock_gettime` call), [`tsc`] (one `rdtsc`), [`udp`] (socket timestamping), [`random`] (one `getrandom`
//! call), [`process`] (one `pre_exec` hook setting the parent-death
//! signal) and [`vmclock`] (volatile reads of the hypervisor's page),
//! documented in each.

pub mod clock;
pub mod config;
pub mod docs;
pub mod metrics;
pub mod mgmt;
pub mod ntp;
pub mod nts;
pub mod phc;
pub mod port;
pub mod pps;
pub mod process;
pub mod random;
pub mod shm;
pub mod steer;
pub mod tsc;
pub mod udp;
pub mod vmclock;
