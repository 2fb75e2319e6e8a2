//! Time transfer on the NTPv4 wire (RFC 5905), sans I/O: the packet codec with the TrueTime
//! extension field ([`packet`]), the master's reply ([`server`]) and the client's checks,
//! interleaving and burst filtering ([`client`]), per-client rate limiting ([`ratelimit`]), and NTS (RFC 8915) ([`nts`]). Sockets and kernel timestamps live in
//! `ttsys::ntp`; the packet layout and the error bound are specified in `docs/PROTOCOL-transfer.md`.

pub mod client;
pub mod nts;
pub mod packet;
pub mod ratelimit;
pub mod server;

pub use client::{
    Client, MasterInfo, ReplyError, ReplyOutcome, Sample, ServerKind, Stamping, narrowest,
};
pub use packet::{Packet, PacketError};
pub use ratelimit::{Admit, RateLimitParams, RateLimiter};
pub use server::{MasterView, RawStamp, Refusal, SentReply, answer, kiss, sent_reply};
