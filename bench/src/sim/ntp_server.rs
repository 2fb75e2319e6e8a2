//! A simulated plain NTP server: a clock that follows true time with a known error, answering
//! 48-byte NTPv4 requests with the root distance it is configured to state. Hosts ask it
//! through timed's own client for `kind = "ntp"` ([`Client::with_protocol`] with the protocol
//! timed's config maps to), so the simulator checks the same bound and the same leap-second
//! correction as the daemon.

use super::*;
use std::sync::LazyLock;
use ttcore::Timestamp;
use ttcore::ntp::packet::{Header, LeapIndicator, Mode, NtpTimestamp, Packet, short_from_ns_ceil};

/// The leap table truth is kept with when no master carries one.
static BUILTIN: LazyLock<ttcore::LeapTable> = LazyLock::new(ttcore::LeapTable::builtin);

/// True time (the project timescale) at TAI `t`: the masters' truth, or the built-in leap
/// table's when the scenario has no master.
pub(super) fn truth_at(masters: &[Master], t: i64) -> Timestamp {
    match masters.first() {
        Some(m) => m.vm.truth_at(t),
        None => BUILTIN
            .tai_to_timescale(t)
            .unwrap_or(Timestamp::from_nanos(t)),
    }
}

pub(super) struct NtpServer {
    /// Error amplitude (ns), period (ns) and phase (rad) of its clock.
    error_ns: f64,
    period_ns: f64,
    phase: f64,
    root_distance_ns: i64,
    timescale: ServerTimescale,
    pub(super) down: Vec<(i64, i64)>,
    start: i64,
}

impl NtpServer {
    pub(super) fn new(spec: &NtpServerSpec, rng: &mut ChaCha8Rng, start: i64) -> NtpServer {
        NtpServer {
            error_ns: spec.error_ms * 1e6,
            period_ns: spec.error_period_s * 1e9,
            phase: rng.random_range(0.0..std::f64::consts::TAU),
            root_distance_ns: (spec.root_distance_ms * 1e6) as i64,
            timescale: spec.timescale,
            down: spec
                .down
                .iter()
                .map(|d| (at_s(start, d[0]), at_s(start, d[0] + d[1])))
                .collect(),
            start,
        }
    }

    /// A host's client for it, as timed configures one from `[[master]] kind = "ntp"` with the
    /// timescale the host is told.
    pub(super) fn client(spec: &NtpServerSpec) -> Client {
        let cfg = timed::config::MasterConfig {
            timescale: Some(spec.configured_timescale.unwrap_or(spec.timescale)),
            ..timed::config::MasterConfig::ntp("sim:123")
        };
        Client::with_protocol(cfg.protocol())
    }

    pub(super) fn reachable(&self, t: i64) -> bool {
        !self.down.iter().any(|&(a, b)| t >= a && t < b)
    }

    /// Its clock at TAI `t` (ns on its own scale: POSIX labels for `utc`, the smear for
    /// `smeared`), and the leap indicator it sends then.
    fn clock_at(&self, masters: &[Master], t: i64) -> (i64, LeapIndicator) {
        let truth = truth_at(masters, t);
        let err = (self.error_ns
            * ((t - self.start) as f64 / self.period_ns * std::f64::consts::TAU + self.phase).sin())
            as i64;
        match self.timescale {
            ServerTimescale::Smeared => (truth.as_nanos() + err, LeapIndicator::None),
            ServerTimescale::Utc => {
                // A kernel inserting the leap second shows 23:59:60 as a second 23:59:59.
                let l = BUILTIN.timescale_to_utc(truth);
                let day = ttcore::leap::days_from_civil(l.year, l.month, l.day) * 86_400;
                let s = day + l.hour as i64 * 3600 + l.minute as i64 * 60 + l.second.min(59) as i64;
                let leap = BUILTIN
                    .entries()
                    .iter()
                    .any(|e| e.effective_posix_s == day + 86_400 && e.delta == 1);
                let li = if leap {
                    LeapIndicator::Insert
                } else {
                    LeapIndicator::None
                };
                (s * NANOS_PER_SEC + l.nanos as i64 + err, li)
            }
        }
    }

    /// Its reply to `req`, received at TAI `t2` and sent at `t3`; `None` for what it would
    /// not answer.
    pub(super) fn answer(
        &self,
        masters: &[Master],
        req: &[u8],
        t2: i64,
        t3: i64,
    ) -> Option<Vec<u8>> {
        let p = Packet::decode(req).ok()?;
        if p.header.mode != Mode::Client {
            return None;
        }
        let (c2, li) = self.clock_at(masters, t2);
        let (c3, _) = self.clock_at(masters, t3);
        let mut out = Vec::with_capacity(48);
        Packet {
            header: Header {
                leap: li,
                version: 4,
                mode: Mode::Server,
                stratum: 2,
                poll: 0,
                precision: -20,
                root_delay: 0,
                root_dispersion: short_from_ns_ceil(self.root_distance_ns),
                reference_id: [192, 0, 2, 1],
                reference_ts: NtpTimestamp::from_unix_ns_floor(c2 - NANOS_PER_SEC),
                origin_ts: p.header.transmit_ts,
                receive_ts: NtpTimestamp::from_unix_ns_floor(c2),
                transmit_ts: NtpTimestamp::from_unix_ns_floor(c3),
            },
            tt: None,
        }
        .encode(&mut out);
        Some(out)
    }
}

/// One simulated exchange with an NTP server: the host's plain request crosses the network
/// (`up`), the server answers 10 µs later, the reply crosses back (`down`), and the host's
/// client checks and bounds it exactly as timed's does.
#[allow(clippy::too_many_arguments)]
pub(super) fn ntp_exchange(
    server: &NtpServer,
    masters: &[Master],
    client: &mut Client,
    cookie: u64,
    t_send: i64,
    (up, down): (i64, i64),
    drift: Rate,
    client_raw: &mut dyn FnMut(i64) -> i64,
) -> Option<ReplyOutcome> {
    let mut req = Vec::with_capacity(48);
    client.request(cookie, &mut req);
    let t2 = t_send + up;
    let t3 = t2 + 10_000;
    let rep = server.answer(masters, &req, t2, t3)?;
    let t1 = client_raw(t_send);
    let t4 = client_raw(t3 + down);
    client.on_reply(&rep, cookie, t1, t4, true, drift).ok()
}
