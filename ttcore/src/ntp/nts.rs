//! Network Time Security (RFC 8915) for the time transfer, sans I/O: the NTS-KE records, the
//! server's stateless cookies, and the protection of NTP packets with AEAD_AES_SIV_CMAC_256
//! (algorithm 15, the mandatory one and the only one Debian 12's chrony knows).
//!
//! The TLS session of NTS-KE and every random byte (unique identifiers, nonces, master keys)
//! come from the shells: here only bytes in, bytes out. Decoders are total (fuzzed: targets
//! `nts-ke` and `nts-request`).
//!
//! # Packet layout
//! A protected request is the NTP header, any fields of ours (the TrueTime request), then the
//! Unique Identifier, the Cookie, zero or more Cookie Placeholders, and the Authenticator, which
//! must be the **last** field: everything before it is associated data, so the TrueTime field is
//! authenticated. A protected reply is the header, the TrueTime reply, the Unique Identifier
//! echoed, and the Authenticator whose encrypted part holds one new cookie for the request's
//! cookie and each placeholder. Requests and replies are the same size by construction
//! (placeholders are as large as cookies), so NTS adds no amplification.

use super::packet::{HEADER_LEN, PacketError, fields};
use aes_siv::aead::{Aead, KeyInit, Payload};
use aes_siv::{Aes128SivAead, Nonce};
use thiserror::Error;

/// AEAD algorithm 15: AEAD_AES_SIV_CMAC_256 (RFC 5297), the one this implementation speaks.
pub const AEAD_AES_SIV_CMAC_256: u16 = 15;
/// NTS next protocol 0: NTPv4.
pub const NEXT_PROTOCOL_NTPV4: u16 = 0;
/// Key length of algorithm 15 (bytes): two AES-128 keys.
pub const KEY_LEN: usize = 32;
/// Nonce length used in our authenticators and cookies (bytes).
pub const NONCE_LEN: usize = 16;
/// AES-SIV's synthetic IV (the tag) prepended to every ciphertext (bytes).
pub const TAG_LEN: usize = 16;
/// Length of the unique identifier our clients send (bytes; RFC 8915: at least 32).
pub const UNIQUE_ID_LEN: usize = 32;
/// Our cookies: key id (4) ‖ nonce (16) ‖ AES-SIV of both session keys (16 + 64).
pub const COOKIE_LEN: usize = 4 + NONCE_LEN + TAG_LEN + 2 * KEY_LEN;
/// Cookies handed out by NTS-KE (RFC 8915 suggests 8).
pub const KE_COOKIES: usize = 8;
/// The most placeholders a client puts in one request: with our cookies and the TrueTime
/// field such a request is 628 bytes, well inside the 1024 a server accepts (after many lost
/// replies a client refills over several exchanges instead of sending one oversized request).
pub const MAX_PLACEHOLDERS: usize = 3;
/// The longest cookie a client keeps (bytes). RFC 8915 sets no bound; ours are [`COOKIE_LEN`]
/// and other servers' about as small. Without a bound, a server handing out a cookie near 64 KiB
/// would make every request's extension-field length overflow its 16 bits.
pub const MAX_COOKIE_LEN: usize = 1024;
/// The TLS exporter label (RFC 8915 §5.1).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-network-time-security";
/// The ALPN protocol id of NTS-KE.
pub const ALPN: &[u8] = b"ntske/1";
/// The IANA port of NTS-KE.
pub const KE_PORT: u16 = 4460;

/// NTP extension field types of NTS.
pub mod field {
    /// Unique Identifier.
    pub const UNIQUE_ID: u16 = 0x0104;
    /// NTS Cookie.
    pub const COOKIE: u16 = 0x0204;
    /// NTS Cookie Placeholder.
    pub const PLACEHOLDER: u16 = 0x0304;
    /// NTS Authenticator and Encrypted Extension Fields.
    pub const AUTHENTICATOR: u16 = 0x0404;
}

/// The TLS exporter context for one direction: next protocol ‖ AEAD id ‖ 0 (client to server)
/// or 1 (server to client).
pub fn exporter_context(server_to_client: bool) -> [u8; 5] {
    let p = NEXT_PROTOCOL_NTPV4.to_be_bytes();
    let a = AEAD_AES_SIV_CMAC_256.to_be_bytes();
    [p[0], p[1], a[0], a[1], u8::from(server_to_client)]
}

/// The two session keys of one NTS association.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    /// Client to server.
    pub c2s: [u8; KEY_LEN],
    /// Server to client.
    pub s2c: [u8; KEY_LEN],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// Why NTS bytes are refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum NtsError {
    /// The packet's fields are malformed.
    #[error("{0}")]
    Packet(#[from] PacketError),
    /// A required field is missing (which one).
    #[error("no {0} field")]
    Missing(&'static str),
    /// A field appears more often than allowed (which one).
    #[error("more than one {0} field")]
    Duplicate(&'static str),
    /// A field follows the authenticator (it would not be authenticated).
    #[error("a field follows the authenticator")]
    AfterAuthenticator,
    /// The authenticator's lengths do not fit its field.
    #[error("malformed authenticator")]
    BadAuthenticator,
    /// A placeholder's length differs from the cookie's.
    #[error("a cookie placeholder is not as long as the cookie")]
    BadPlaceholder,
    /// The cookie is not one of ours, or was sealed with a key no longer kept.
    #[error("unknown or expired cookie")]
    BadCookie,
    /// The authenticator does not verify (forged, altered, or the wrong keys).
    #[error("authentication failed")]
    Unauthenticated,
    /// The reply does not echo our unique identifier (not an answer to this request).
    #[error("unique identifier mismatch")]
    NotOurs,
    /// The server said it cannot read our cookie (Kiss-o'-Death NTSN): run NTS-KE again.
    #[error("the server refused our cookie (NTS NAK)")]
    Nak,
    /// NTS-KE: a malformed record stream.
    #[error("NTS-KE: {0}")]
    Ke(&'static str),
    /// NTS-KE: the server answered with an error record (code).
    #[error("NTS-KE: the server sent error {0}")]
    KeError(u16),
    /// NTS-KE: no common next protocol or AEAD algorithm.
    #[error("NTS-KE: the server offers no NTPv4 with AEAD_AES_SIV_CMAC_256")]
    KeNoAgreement,
    /// A server handed out a cookie longer than [`MAX_COOKIE_LEN`] (its length).
    #[error("a cookie of {0} bytes (at most {MAX_COOKIE_LEN} are kept)")]
    CookieTooLong(usize),
    /// A field or record would not fit its 16-bit length (its body's length): nothing was
    /// written for it.
    #[error("a field of {0} bytes does not fit a 16-bit length")]
    FieldTooLong(usize),
}

// ----- cookies ------------------------------------------------------------------------------

/// One master key of the server's ring.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    /// Its id, carried in every cookie it seals.
    pub id: u32,
    /// The AES-SIV key.
    pub key: [u8; KEY_LEN],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

/// The server's master keys: the newest seals cookies, every key kept opens them (so cookies
/// sealed before a rotation stay valid for the grace period the shell keeps old keys for).
#[derive(Clone, Debug)]
pub struct KeyRing {
    keys: Vec<MasterKey>,
}

impl KeyRing {
    /// A ring whose newest key is the last of `keys`; `None` when `keys` is empty.
    pub fn new(keys: Vec<MasterKey>) -> Option<KeyRing> {
        (!keys.is_empty()).then_some(KeyRing { keys })
    }

    /// The keys, oldest first.
    pub fn keys(&self) -> &[MasterKey] {
        &self.keys
    }

    fn newest(&self) -> &MasterKey {
        self.keys.last().expect("a ring is never empty")
    }

    /// A cookie holding `keys`, sealed with the newest master key under `nonce` (random,
    /// never reused with the same key).
    pub fn seal(&self, keys: &Keys, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let mk = self.newest();
        let id = mk.id.to_be_bytes();
        let mut plain = [0u8; 2 * KEY_LEN];
        plain[..KEY_LEN].copy_from_slice(&keys.c2s);
        plain[KEY_LEN..].copy_from_slice(&keys.s2c);
        let ct = seal(&mk.key, &nonce, &id, &plain);
        let mut cookie = Vec::with_capacity(COOKIE_LEN);
        cookie.extend_from_slice(&id);
        cookie.extend_from_slice(&nonce);
        cookie.extend_from_slice(&ct);
        cookie
    }

    /// The keys in `cookie`, if one of the ring's keys sealed it and it is intact.
    pub fn open(&self, cookie: &[u8]) -> Result<Keys, NtsError> {
        if cookie.len() != COOKIE_LEN {
            return Err(NtsError::BadCookie);
        }
        let (id, rest) = cookie.split_at(4);
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let id_n = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        let mk = self
            .keys
            .iter()
            .find(|k| k.id == id_n)
            .ok_or(NtsError::BadCookie)?;
        let plain = open(&mk.key, nonce, id, ct).ok_or(NtsError::BadCookie)?;
        let mut keys = Keys {
            c2s: [0; KEY_LEN],
            s2c: [0; KEY_LEN],
        };
        keys.c2s.copy_from_slice(&plain[..KEY_LEN]);
        keys.s2c.copy_from_slice(&plain[KEY_LEN..]);
        Ok(keys)
    }
}

fn seal(key: &[u8; KEY_LEN], nonce: &[u8], aad: &[u8], msg: &[u8]) -> Vec<u8> {
    Aes128SivAead::new(key.into())
        .encrypt(Nonce::from_slice(nonce), Payload { msg, aad })
        .expect("AES-SIV encryption of a bounded message cannot fail")
}

fn open(key: &[u8; KEY_LEN], nonce: &[u8], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    if nonce.len() != NONCE_LEN {
        return None;
    }
    Aes128SivAead::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

// ----- NTP packet protection ----------------------------------------------------------------

/// Appends one extension field (`body` padded to 4 bytes); refuses a body whose field length
/// would not fit 16 bits, writing nothing.
fn put_field(out: &mut Vec<u8>, ty: u16, body: &[u8]) -> Result<(), NtsError> {
    let padded = body.len().div_ceil(4) * 4;
    let len = u16::try_from(padded + 4).map_err(|_| NtsError::FieldTooLong(body.len()))?;
    out.extend_from_slice(&ty.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + padded - body.len(), 0);
    Ok(())
}

/// Appends the authenticator over everything in `out` so far: `plain` encrypted under `key`.
fn put_authenticator(
    out: &mut Vec<u8>,
    key: &[u8; KEY_LEN],
    nonce: [u8; NONCE_LEN],
    plain: &[u8],
) -> Result<(), NtsError> {
    let ct = seal(key, &nonce, out, plain);
    let ct_len = u16::try_from(ct.len()).map_err(|_| NtsError::FieldTooLong(ct.len()))?;
    let mut body = Vec::with_capacity(4 + NONCE_LEN + ct.len());
    #[allow(clippy::cast_possible_truncation, reason = "NONCE_LEN is 16")]
    let nonce_len = NONCE_LEN as u16;
    body.extend_from_slice(&nonce_len.to_be_bytes());
    body.extend_from_slice(&ct_len.to_be_bytes());
    body.extend_from_slice(&nonce);
    body.extend_from_slice(&ct);
    put_field(out, field::AUTHENTICATOR, &body)
}

/// The length of an authenticator field carrying `plain_len` bytes of plaintext.
const fn authenticator_len(plain_len: usize) -> usize {
    4 + 4 + NONCE_LEN + (TAG_LEN + plain_len).div_ceil(4) * 4
}

/// The NTS fields of a packet, located.
struct Located<'a> {
    unique_id: Option<&'a [u8]>,
    cookie: Option<&'a [u8]>,
    placeholders: Vec<usize>,
    /// (offset of the authenticator field, its body).
    auth: Option<(usize, &'a [u8])>,
}

fn locate(b: &[u8]) -> Result<Located<'_>, NtsError> {
    let mut l = Located {
        unique_id: None,
        cookie: None,
        placeholders: Vec::new(),
        auth: None,
    };
    for f in fields(b) {
        let (at, ty, body) = f?;
        if l.auth.is_some() {
            return Err(NtsError::AfterAuthenticator);
        }
        match ty {
            field::UNIQUE_ID if l.unique_id.is_some() => {
                return Err(NtsError::Duplicate("unique identifier"));
            }
            field::UNIQUE_ID => l.unique_id = Some(body),
            field::COOKIE if l.cookie.is_some() => return Err(NtsError::Duplicate("cookie")),
            field::COOKIE => l.cookie = Some(body),
            field::PLACEHOLDER => l.placeholders.push(body.len()),
            field::AUTHENTICATOR => l.auth = Some((at, body)),
            _ => {}
        }
    }
    Ok(l)
}

/// (nonce, ciphertext) of an authenticator's body.
fn split_authenticator(body: &[u8]) -> Result<(&[u8], &[u8]), NtsError> {
    if body.len() < 4 {
        return Err(NtsError::BadAuthenticator);
    }
    let nl = u16::from_be_bytes([body[0], body[1]]) as usize;
    let cl = u16::from_be_bytes([body[2], body[3]]) as usize;
    let nonce_end = 4 + nl.div_ceil(4) * 4;
    if nonce_end > body.len() || cl > body.len() - nonce_end || cl < TAG_LEN {
        return Err(NtsError::BadAuthenticator);
    }
    Ok((&body[4..4 + nl], &body[nonce_end..nonce_end + cl]))
}

/// Client: appends the NTS fields to the request in `out` (header and our fields already in
/// it): `unique_id`, `cookie`, `placeholders` placeholders (to get that many more cookies back)
/// and the authenticator under `keys.c2s` with `nonce`. A cookie longer than
/// [`MAX_COOKIE_LEN`] is refused.
pub fn protect_request(
    out: &mut Vec<u8>,
    unique_id: &[u8; UNIQUE_ID_LEN],
    cookie: &[u8],
    placeholders: usize,
    keys: &Keys,
    nonce: [u8; NONCE_LEN],
) -> Result<(), NtsError> {
    if cookie.len() > MAX_COOKIE_LEN {
        return Err(NtsError::CookieTooLong(cookie.len()));
    }
    put_field(out, field::UNIQUE_ID, unique_id)?;
    put_field(out, field::COOKIE, cookie)?;
    let zeros = vec![0u8; cookie.len()];
    for _ in 0..placeholders {
        put_field(out, field::PLACEHOLDER, &zeros)?;
    }
    put_authenticator(out, &keys.c2s, nonce, &[])
}

/// Server: what an authenticated NTS request brought.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Its unique identifier, to echo.
    pub unique_id: Vec<u8>,
    /// The session keys from its cookie.
    pub keys: Keys,
    /// Cookies to send back: one for the cookie spent, one per placeholder.
    pub cookies_wanted: usize,
}

impl Request {
    /// Bytes [`protect_reply`] adds after the reply's own fields.
    pub fn reply_overhead(&self) -> usize {
        reply_overhead(self.unique_id.len(), self.cookies_wanted)
    }
}

/// Bytes [`protect_reply`] adds to a reply for a unique identifier of `unique_id_len` bytes
/// and `cookies` of our cookies.
pub const fn reply_overhead(unique_id_len: usize, cookies: usize) -> usize {
    4 + unique_id_len.div_ceil(4) * 4 + authenticator_len(cookies * (4 + COOKIE_LEN))
}

/// Server: the outcome of reading a request's NTS fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// No NTS fields: a plain request.
    Plain,
    /// Authenticated.
    Authenticated(Request),
    /// A cookie was present but cannot be used (unknown key, damaged, forged authenticator):
    /// answer with an NTS NAK echoing this unique identifier, never with time.
    Refused {
        /// The unique identifier to echo (empty if there was none: then no NAK is sent).
        unique_id: Vec<u8>,
        /// Why.
        why: NtsError,
    },
}

/// Server: reads and verifies a request's NTS fields with `ring`. Malformed NTS fields are an
/// error (drop the request); a cookie or authenticator that fails is [`Opened::Refused`].
pub fn open_request(req: &[u8], ring: &KeyRing) -> Result<Opened, NtsError> {
    let l = locate(req)?;
    let Some(cookie) = l.cookie else {
        return if l.auth.is_some() || l.unique_id.is_some() {
            Err(NtsError::Missing("cookie"))
        } else {
            Ok(Opened::Plain)
        };
    };
    let unique_id = l.unique_id.ok_or(NtsError::Missing("unique identifier"))?;
    let (auth_at, auth) = l.auth.ok_or(NtsError::Missing("authenticator"))?;
    if l.placeholders.iter().any(|&n| n != cookie.len()) {
        return Err(NtsError::BadPlaceholder);
    }
    let refused = |why| {
        Ok(Opened::Refused {
            unique_id: unique_id.to_vec(),
            why,
        })
    };
    let keys = match ring.open(cookie) {
        Ok(k) => k,
        Err(e) => return refused(e),
    };
    let (nonce, ct) = split_authenticator(auth)?;
    if open(&keys.c2s, nonce, &req[..auth_at], ct).is_none() {
        return refused(NtsError::Unauthenticated);
    }
    Ok(Opened::Authenticated(Request {
        unique_id: unique_id.to_vec(),
        keys,
        cookies_wanted: 1 + l.placeholders.len(),
    }))
}

/// Server: appends the unique identifier and the authenticator (with `cookies`, fresh ones
/// sealed for this association) to the reply in `out`.
pub fn protect_reply(
    out: &mut Vec<u8>,
    req: &Request,
    cookies: &[Vec<u8>],
    nonce: [u8; NONCE_LEN],
) -> Result<(), NtsError> {
    put_field(out, field::UNIQUE_ID, &req.unique_id)?;
    let mut plain = Vec::with_capacity(cookies.len() * (4 + COOKIE_LEN));
    for c in cookies {
        put_field(&mut plain, field::COOKIE, c)?;
    }
    put_authenticator(out, &req.keys.s2c, nonce, &plain)
}

/// Server: the NTS NAK (RFC 8915 §5.7): a Kiss-o'-Death reply with code `NTSN` that echoes the
/// request's origin cookie and unique identifier, unauthenticated and carrying no time.
pub fn nak(
    req_header: &[u8; HEADER_LEN],
    unique_id: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), NtsError> {
    out.clear();
    out.extend_from_slice(req_header);
    let vn = (req_header[0] >> 3) & 7;
    out[0] = (3 << 6) | (vn << 3) | 4; // LI 3 (unsynchronized), mode 4
    out[1] = 0; // stratum 0: a kiss code
    out[12..16].copy_from_slice(b"NTSN");
    let origin: [u8; 8] = req_header[40..48].try_into().expect("8 bytes");
    out[16..48].fill(0);
    out[24..32].copy_from_slice(&origin);
    put_field(out, field::UNIQUE_ID, unique_id)
}

/// Client: verifies a reply to the request with `unique_id` under `keys.s2c` and returns the new
/// cookies it carries. Every field before the authenticator (the header and the TrueTime field)
/// is covered by it; a reply with a field after it is refused.
pub fn open_reply(
    reply: &[u8],
    unique_id: &[u8; UNIQUE_ID_LEN],
    keys: &Keys,
) -> Result<Vec<Vec<u8>>, NtsError> {
    let l = locate(reply)?;
    if l.unique_id != Some(&unique_id[..]) {
        return Err(NtsError::NotOurs);
    }
    let Some((auth_at, auth)) = l.auth else {
        // Only a NAK may come without an authenticator; it can be forged, so it only makes the
        // client fetch fresh cookies, never accept time.
        let kod = reply.len() >= HEADER_LEN && reply[1] == 0 && &reply[12..16] == b"NTSN";
        return Err(if kod {
            NtsError::Nak
        } else {
            NtsError::Missing("authenticator")
        });
    };
    let (nonce, ct) = split_authenticator(auth)?;
    let plain = open(&keys.s2c, nonce, &reply[..auth_at], ct).ok_or(NtsError::Unauthenticated)?;
    let mut cookies = Vec::new();
    // The encrypted part is a run of extension fields; only cookies are used.
    let mut at = 0;
    while at + 4 <= plain.len() {
        let ty = u16::from_be_bytes([plain[at], plain[at + 1]]);
        let len = u16::from_be_bytes([plain[at + 2], plain[at + 3]]) as usize;
        if len < 4 || len % 4 != 0 || len > plain.len() - at {
            return Err(NtsError::BadAuthenticator);
        }
        if ty == field::COOKIE {
            let c = &plain[at + 4..at + len];
            if c.len() > MAX_COOKIE_LEN {
                return Err(NtsError::CookieTooLong(c.len()));
            }
            cookies.push(c.to_vec());
        }
        at += len;
    }
    Ok(cookies)
}

// ----- NTS-KE records -----------------------------------------------------------------------

/// NTS-KE (RFC 8915 §4): the records of one message.
pub mod ke {
    use super::{AEAD_AES_SIV_CMAC_256, KE_COOKIES, NEXT_PROTOCOL_NTPV4, NtsError};

    /// The largest NTS-KE message read (bytes); larger is refused (a memory bound).
    pub const MAX_MESSAGE: usize = 16 * 1024;

    /// Record types.
    pub mod ty {
        /// End of Message.
        pub const END: u16 = 0;
        /// NTS Next Protocol Negotiation.
        pub const NEXT_PROTOCOL: u16 = 1;
        /// Error.
        pub const ERROR: u16 = 2;
        /// Warning.
        pub const WARNING: u16 = 3;
        /// AEAD Algorithm Negotiation.
        pub const AEAD: u16 = 4;
        /// New Cookie for NTPv4.
        pub const NEW_COOKIE: u16 = 5;
        /// NTPv4 Server Negotiation.
        pub const SERVER: u16 = 6;
        /// NTPv4 Port Negotiation.
        pub const PORT: u16 = 7;
    }

    /// Error codes.
    pub mod code {
        /// Unrecognized Critical Record.
        pub const UNRECOGNIZED_CRITICAL: u16 = 0;
        /// Bad Request.
        pub const BAD_REQUEST: u16 = 1;
    }

    /// One record.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Record {
        /// The critical bit.
        pub critical: bool,
        /// The record type (15 bits).
        pub ty: u16,
        /// The body.
        pub body: Vec<u8>,
    }

    impl Record {
        /// A record of type `ty` with `body`.
        pub fn new(critical: bool, ty: u16, body: Vec<u8>) -> Record {
            Record { critical, ty, body }
        }
        /// A record whose body is the list `v` of 16-bit values.
        pub fn u16s(critical: bool, ty: u16, v: &[u16]) -> Record {
            Record::new(
                critical,
                ty,
                v.iter().flat_map(|x| x.to_be_bytes()).collect(),
            )
        }
        fn as_u16s(&self) -> Result<Vec<u16>, NtsError> {
            if self.body.len() % 2 != 0 {
                return Err(NtsError::Ke("a list record of odd length"));
            }
            Ok(self
                .body
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect())
        }
    }

    /// Encodes `records` (in order) onto `out`; a record whose body does not fit a 16-bit
    /// length is refused and nothing is written.
    pub fn encode(records: &[Record], out: &mut Vec<u8>) -> Result<(), NtsError> {
        let mut buf = Vec::new();
        for r in records {
            let len =
                u16::try_from(r.body.len()).map_err(|_| NtsError::FieldTooLong(r.body.len()))?;
            let t = (r.ty & 0x7fff) | if r.critical { 0x8000 } else { 0 };
            buf.extend_from_slice(&t.to_be_bytes());
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(&r.body);
        }
        out.extend_from_slice(&buf);
        Ok(())
    }

    /// Decodes one message from the start of `b`: `Ok(Some((records, bytes used)))` once its
    /// End of Message record is in, `Ok(None)` when more bytes are needed.
    pub fn decode(b: &[u8]) -> Result<Option<(Vec<Record>, usize)>, NtsError> {
        let mut at = 0;
        let mut v = Vec::new();
        while b.len() - at >= 4 {
            let t = u16::from_be_bytes([b[at], b[at + 1]]);
            let len = u16::from_be_bytes([b[at + 2], b[at + 3]]) as usize;
            if at + 4 + len > MAX_MESSAGE {
                return Err(NtsError::Ke("message too large"));
            }
            if b.len() - at - 4 < len {
                return Ok(None);
            }
            let r = Record::new(
                t & 0x8000 != 0,
                t & 0x7fff,
                b[at + 4..at + 4 + len].to_vec(),
            );
            at += 4 + len;
            if r.ty == ty::END {
                if !r.body.is_empty() {
                    return Err(NtsError::Ke("End of Message with a body"));
                }
                v.push(r);
                return Ok(Some((v, at)));
            }
            v.push(r);
        }
        if at + 4 > MAX_MESSAGE {
            return Err(NtsError::Ke("message too large"));
        }
        Ok(None)
    }

    /// The client's request: NTPv4 with AEAD_AES_SIV_CMAC_256.
    pub fn client_request() -> Vec<u8> {
        let mut out = Vec::new();
        encode(
            &[
                Record::u16s(true, ty::NEXT_PROTOCOL, &[NEXT_PROTOCOL_NTPV4]),
                Record::u16s(true, ty::AEAD, &[AEAD_AES_SIV_CMAC_256]),
                Record::new(true, ty::END, Vec::new()),
            ],
            &mut out,
        )
        .expect("three constant records of at most 2 bytes fit a 16-bit length");
        out
    }

    /// What the server agreed to.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Agreed {
        /// Cookies for NTPv4.
        pub cookies: Vec<Vec<u8>>,
        /// The NTP server to use, if not the NTS-KE host.
        pub server: Option<String>,
        /// The NTP port to use, if not 123.
        pub port: Option<u16>,
    }

    /// Client: reads the server's response.
    pub fn client_response(records: &[Record]) -> Result<Agreed, NtsError> {
        let mut protocol_ok = false;
        let mut aead_ok = false;
        let mut a = Agreed {
            cookies: Vec::new(),
            server: None,
            port: None,
        };
        for r in records {
            match r.ty {
                ty::END => {}
                ty::ERROR => {
                    let c = r.as_u16s()?;
                    return Err(NtsError::KeError(c.first().copied().unwrap_or(u16::MAX)));
                }
                ty::NEXT_PROTOCOL => protocol_ok = r.as_u16s()? == [NEXT_PROTOCOL_NTPV4],
                ty::AEAD => aead_ok = r.as_u16s()? == [AEAD_AES_SIV_CMAC_256],
                ty::NEW_COOKIE if r.body.len() > super::MAX_COOKIE_LEN => {
                    return Err(NtsError::CookieTooLong(r.body.len()));
                }
                ty::NEW_COOKIE => a.cookies.push(r.body.clone()),
                ty::SERVER => {
                    a.server = Some(
                        String::from_utf8(r.body.clone())
                            .map_err(|_| NtsError::Ke("server name not ASCII"))?,
                    );
                }
                ty::PORT => {
                    let p = r.as_u16s()?;
                    a.port = Some(*p.first().ok_or(NtsError::Ke("empty port record"))?);
                }
                ty::WARNING => {}
                _ if r.critical => return Err(NtsError::Ke("unrecognized critical record")),
                _ => {}
            }
        }
        if !protocol_ok || !aead_ok {
            return Err(NtsError::KeNoAgreement);
        }
        if a.cookies.is_empty() {
            return Err(NtsError::Ke("no cookies"));
        }
        Ok(a)
    }

    /// Server: the response to a client's request `records`. On agreement it holds
    /// [`KE_COOKIES`] cookies from `cookie` and, when given, the NTP `port`; the returned flag
    /// says whether keys were agreed (export them from the TLS session and seal the cookies
    /// with them: `cookie` is only called then).
    pub fn server_response(
        records: &[Record],
        port: Option<u16>,
        mut cookie: impl FnMut() -> Vec<u8>,
    ) -> (Vec<Record>, bool) {
        let error = |code: u16| {
            (
                vec![
                    Record::u16s(true, ty::ERROR, &[code]),
                    Record::new(true, ty::END, Vec::new()),
                ],
                false,
            )
        };
        let (mut protocols, mut aeads) = (None, None);
        for r in records {
            match r.ty {
                ty::END | ty::WARNING => {}
                ty::NEXT_PROTOCOL if protocols.is_none() => match r.as_u16s() {
                    Ok(v) => protocols = Some(v),
                    Err(_) => return error(code::BAD_REQUEST),
                },
                ty::AEAD if aeads.is_none() => match r.as_u16s() {
                    Ok(v) => aeads = Some(v),
                    Err(_) => return error(code::BAD_REQUEST),
                },
                ty::NEXT_PROTOCOL | ty::AEAD | ty::ERROR | ty::NEW_COOKIE => {
                    return error(code::BAD_REQUEST);
                }
                // Server and port records from a client are only suggestions.
                ty::SERVER | ty::PORT => {}
                _ if r.critical => return error(code::UNRECOGNIZED_CRITICAL),
                _ => {}
            }
        }
        let Some(protocols) = protocols else {
            return error(code::BAD_REQUEST);
        };
        let ntp = protocols.contains(&NEXT_PROTOCOL_NTPV4);
        let aead = aeads.is_some_and(|a| a.contains(&AEAD_AES_SIV_CMAC_256));
        let mut out = vec![Record::u16s(
            true,
            ty::NEXT_PROTOCOL,
            if ntp { &[NEXT_PROTOCOL_NTPV4] } else { &[] },
        )];
        if ntp && aead {
            out.push(Record::u16s(true, ty::AEAD, &[AEAD_AES_SIV_CMAC_256]));
            if let Some(p) = port {
                out.push(Record::u16s(false, ty::PORT, &[p]));
            }
            for _ in 0..KE_COOKIES {
                out.push(Record::new(false, ty::NEW_COOKIE, cookie()));
            }
        } else if ntp {
            out.push(Record::u16s(true, ty::AEAD, &[]));
        }
        out.push(Record::new(true, ty::END, Vec::new()));
        (out, ntp && aead)
    }
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "test arithmetic on small, bounded values"
)]
mod tests {
    use super::*;
    use crate::ntp::packet::{Header, Packet, TtField, TtRequest};

    fn ring(ids: &[u32]) -> KeyRing {
        KeyRing::new(
            ids.iter()
                .map(|&id| MasterKey {
                    id,
                    key: [id as u8; KEY_LEN],
                })
                .collect(),
        )
        .unwrap()
    }

    fn keys() -> Keys {
        Keys {
            c2s: [1; KEY_LEN],
            s2c: [2; KEY_LEN],
        }
    }

    fn tt_request(cookie: u64) -> Vec<u8> {
        let mut v = Vec::new();
        Packet {
            header: Header::client(cookie),
            tt: Some(TtField::Request(TtRequest::default())),
        }
        .encode(&mut v);
        v
    }

    #[test]
    fn cookies_seal_open_and_survive_one_rotation() {
        let old = ring(&[1]);
        let c = old.seal(&keys(), [9; NONCE_LEN]);
        assert_eq!(c.len(), COOKIE_LEN);
        assert_eq!(old.open(&c).unwrap(), keys());
        // After rotation the old key still opens old cookies; new cookies use the new key.
        let rotated = ring(&[1, 2]);
        assert_eq!(rotated.open(&c).unwrap(), keys());
        assert_eq!(
            &rotated.seal(&keys(), [9; NONCE_LEN])[..4],
            &2u32.to_be_bytes()
        );
        // Once the old key is dropped, its cookies are refused.
        assert_eq!(ring(&[2]).open(&c), Err(NtsError::BadCookie));
        // Any altered byte is refused.
        for i in 0..COOKIE_LEN {
            let mut bad = c.clone();
            bad[i] ^= 0x40;
            assert_eq!(old.open(&bad), Err(NtsError::BadCookie), "byte {i}");
        }
        assert_eq!(old.open(&c[..COOKIE_LEN - 1]), Err(NtsError::BadCookie));
    }

    #[test]
    fn a_request_round_trips_and_the_reply_is_no_larger() {
        let r = ring(&[7]);
        let cookie = r.seal(&keys(), [3; NONCE_LEN]);
        let uid = [5u8; UNIQUE_ID_LEN];
        let mut req = tt_request(42);
        protect_request(&mut req, &uid, &cookie, 2, &keys(), [4; NONCE_LEN]).unwrap();
        let Opened::Authenticated(got) = open_request(&req, &r).unwrap() else {
            panic!("not authenticated");
        };
        assert_eq!(got.keys, keys());
        assert_eq!(got.cookies_wanted, 3);
        // The TrueTime field is still there for the time layer (fields before it untouched).
        assert!(Packet::decode(&req).unwrap().tt.is_some());
        // The largest request a client sends fits what a server accepts.
        let mut big = tt_request(43);
        protect_request(
            &mut big,
            &uid,
            &cookie,
            MAX_PLACEHOLDERS,
            &keys(),
            [4; NONCE_LEN],
        )
        .unwrap();
        assert!(
            big.len() <= crate::ntp::packet::MAX_PACKET_LEN,
            "{}",
            big.len()
        );
        assert!(Packet::decode(&big).is_ok());
        // A reply: a TrueTime-sized body, then uid + authenticator with three cookies.
        let mut rep = Packet {
            header: Header::client(42),
            tt: Some(TtField::Request(TtRequest::default())),
        };
        rep.header.mode = crate::ntp::packet::Mode::Server;
        let mut out = Vec::new();
        rep.encode(&mut out);
        let before = out.len();
        let fresh: Vec<Vec<u8>> = (0..3).map(|i| r.seal(&keys(), [i; NONCE_LEN])).collect();
        protect_reply(&mut out, &got, &fresh, [8; NONCE_LEN]).unwrap();
        assert_eq!(out.len() - before, got.reply_overhead());
        assert!(out.len() <= req.len(), "{} > {}", out.len(), req.len());
        assert_eq!(open_reply(&out, &uid, &keys()).unwrap(), fresh);
        // Tampering anywhere in the reply (header, TrueTime field, ciphertext) is caught.
        for i in [0, 20, 50, 100, out.len() - 1] {
            let mut bad = out.clone();
            bad[i] ^= 1;
            assert!(open_reply(&bad, &uid, &keys()).is_err(), "byte {i}");
        }
        // The wrong keys, or another request's identifier: refused.
        let other = Keys {
            c2s: [1; KEY_LEN],
            s2c: [3; KEY_LEN],
        };
        assert_eq!(
            open_reply(&out, &uid, &other),
            Err(NtsError::Unauthenticated)
        );
        assert_eq!(
            open_reply(&out, &[6; UNIQUE_ID_LEN], &keys()),
            Err(NtsError::NotOurs)
        );
    }

    #[test]
    fn forged_or_altered_requests_are_refused() {
        let r = ring(&[7]);
        let cookie = r.seal(&keys(), [3; NONCE_LEN]);
        let uid = [5u8; UNIQUE_ID_LEN];
        let mut req = tt_request(42);
        protect_request(&mut req, &uid, &cookie, 0, &keys(), [4; NONCE_LEN]).unwrap();
        // An on-path change to the TrueTime field or the header breaks the authenticator.
        for i in [1, 40, 60] {
            let mut bad = req.clone();
            bad[i] ^= 1;
            assert!(
                matches!(
                    open_request(&bad, &r),
                    Ok(Opened::Refused {
                        why: NtsError::Unauthenticated,
                        ..
                    })
                ),
                "byte {i}"
            );
        }
        // A cookie from another server: refused with a NAK for this identifier.
        let mut foreign = tt_request(42);
        let fc = ring(&[9]).seal(&keys(), [3; NONCE_LEN]);
        protect_request(&mut foreign, &uid, &fc, 0, &keys(), [4; NONCE_LEN]).unwrap();
        assert_eq!(
            open_request(&foreign, &r),
            Ok(Opened::Refused {
                unique_id: uid.to_vec(),
                why: NtsError::BadCookie
            })
        );
        // A field after the authenticator would be unauthenticated: malformed.
        let mut after = req.clone();
        put_field(&mut after, 0x2005, &[0; 12]).unwrap();
        assert_eq!(open_request(&after, &r), Err(NtsError::AfterAuthenticator));
        // A plain request is plain.
        assert_eq!(open_request(&tt_request(1), &r), Ok(Opened::Plain));
    }

    #[test]
    fn nak_is_recognised_by_the_client_and_no_larger() {
        let uid = [5u8; UNIQUE_ID_LEN];
        let mut req = tt_request(42);
        protect_request(&mut req, &uid, &[0; COOKIE_LEN], 0, &keys(), [4; NONCE_LEN]).unwrap();
        let mut out = Vec::new();
        nak(req[..HEADER_LEN].try_into().unwrap(), &uid, &mut out).unwrap();
        assert!(out.len() <= req.len());
        assert_eq!(open_reply(&out, &uid, &keys()), Err(NtsError::Nak));
        let p = Packet::decode(&out).unwrap();
        assert_eq!(p.header.origin_ts.0, 42);
        assert_eq!(&p.header.reference_id, b"NTSN");
    }

    #[test]
    fn ke_negotiates_ntpv4_with_aes_siv() {
        use ke::*;
        let (req, used) = decode(&client_request()).unwrap().unwrap();
        assert_eq!(used, client_request().len());
        let (resp, agreed) = server_response(&req, Some(1234), || vec![7; COOKIE_LEN]);
        assert!(agreed);
        let mut wire = Vec::new();
        encode(&resp, &mut wire).unwrap();
        // Split anywhere: incomplete until the whole message is in.
        assert_eq!(decode(&wire[..wire.len() - 1]).unwrap(), None);
        let (back, _) = decode(&wire).unwrap().unwrap();
        let a = client_response(&back).unwrap();
        assert_eq!(a.cookies.len(), KE_COOKIES);
        assert_eq!(a.port, Some(1234));
        // No common AEAD: no cookies, and the client says why.
        let mut other = Vec::new();
        encode(
            &[
                Record::u16s(true, ty::NEXT_PROTOCOL, &[0]),
                Record::u16s(true, ty::AEAD, &[30]),
                Record::new(true, ty::END, vec![]),
            ],
            &mut other,
        )
        .unwrap();
        let (r, _) = decode(&other).unwrap().unwrap();
        let (resp, agreed) = server_response(&r, None, || panic!("no cookies without keys"));
        assert!(!agreed);
        assert_eq!(client_response(&resp), Err(NtsError::KeNoAgreement));
        // An unknown critical record gets error 0; a request with no protocol, error 1.
        let (resp, _) = server_response(&[Record::new(true, 99, vec![])], None, Vec::new);
        assert_eq!(client_response(&resp), Err(NtsError::KeError(0)));
        let (resp, _) = server_response(&[Record::new(true, ty::END, vec![])], None, Vec::new);
        assert_eq!(client_response(&resp), Err(NtsError::KeError(1)));
        // A record claiming more than the message bound is refused, not awaited.
        assert_eq!(
            decode(&[0, 5, 0xff, 0xff]),
            Err(NtsError::Ke("message too large"))
        );
    }

    #[test]
    fn oversized_cookies_and_fields_are_refused_not_truncated() {
        use ke::*;
        // A KE server handing out a cookie past the bound: refused when the client reads it.
        let big = vec![7u8; MAX_COOKIE_LEN + 1];
        let (mut resp, _) =
            server_response(&decode(&client_request()).unwrap().unwrap().0, None, || {
                vec![9; COOKIE_LEN]
            });
        resp.insert(2, Record::new(false, ty::NEW_COOKIE, big.clone()));
        assert_eq!(
            client_response(&resp),
            Err(NtsError::CookieTooLong(MAX_COOKIE_LEN + 1))
        );
        // A request is never built on one, and nothing is written.
        let mut req = tt_request(1);
        let before = req.clone();
        assert_eq!(
            protect_request(
                &mut req,
                &[5; UNIQUE_ID_LEN],
                &big,
                0,
                &keys(),
                [4; NONCE_LEN]
            ),
            Err(NtsError::CookieTooLong(MAX_COOKIE_LEN + 1))
        );
        assert_eq!(req, before);
        // A field whose length would wrap 16 bits (65,529 bytes pad to 65,532, + 4 = 65,536,
        // which `as u16` made 0): refused, nothing written; the largest that fits is written
        // with its exact length.
        let mut out = Vec::new();
        assert_eq!(
            put_field(&mut out, field::UNIQUE_ID, &vec![0; 65_529]),
            Err(NtsError::FieldTooLong(65_529))
        );
        assert!(out.is_empty());
        put_field(&mut out, field::UNIQUE_ID, &vec![0; 65_528]).unwrap();
        assert_eq!(u16::from_be_bytes([out[2], out[3]]) as usize, out.len());
        assert_eq!(out.len(), 65_532);
        // A KE record past 16 bits: refused, nothing written.
        let mut wire = vec![1, 2, 3];
        assert_eq!(
            encode(
                &[Record::new(false, ty::NEW_COOKIE, vec![0; 65_536])],
                &mut wire
            ),
            Err(NtsError::FieldTooLong(65_536))
        );
        assert_eq!(wire, [1, 2, 3]);
    }

    #[test]
    fn exporter_contexts_follow_the_rfc() {
        assert_eq!(exporter_context(false), [0, 0, 0, 15, 0]);
        assert_eq!(exporter_context(true), [0, 0, 0, 15, 1]);
    }
}
