//! OS-facing helpers shared by the daemons and the SDK. `unsafe` lives only in [`pps`] (the
//! RFC 2783 ioctl) and is documented there.

pub mod clock;
pub mod pps;
