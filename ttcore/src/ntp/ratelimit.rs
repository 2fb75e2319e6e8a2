//! Per-client rate limiting for the master, sans I/O: a GCRA token bucket per client address,
//! answered with the NTP `RATE` kiss-o'-death (RFC 5905 §7.4) when a client asks faster than
//! allowed, and silence after that kiss until the client slows down.
//!
//! # The rule
//!
//! A client may send `per_second` requests per second on average and `burst` back to back. This
//! is the generic cell rate algorithm: each client has one number, its *theoretical arrival
//! time* `tat` (raw ns). A request at `t` conforms when `tat − t ≤ (burst − 1) · T`, with
//! `T = 10⁹ / per_second` ns; it then moves `tat` to `max(tat, t) + T`. A request that does not
//! conform costs nothing (its `tat` stays), so a client that backs off is admitted again as soon
//! as its average falls under the limit.
//!
//! A non-conforming request is answered with a `RATE` kiss at most once per `kiss_interval` per
//! client and dropped otherwise: a client that honours the kiss needs only one; a flooder gets
//! one reply per `kiss_interval` (a kiss is 48 bytes, never larger than the request, so the
//! limiter cannot be used to amplify).
//!
//! # Memory
//!
//! Records are kept in two generations of at most `capacity` clients each: when the current one
//! is full it becomes the old one and the old one is forgotten, so memory is bounded
//! (≈ 2 × `capacity` × 40 bytes) and a record lives at least `capacity` new clients. A client
//! forgotten that way starts again with a full bucket — a source-spoofing flood can rotate the
//! table, which costs the master no more than it would without a limiter.

use crate::time::Span;
use std::collections::HashMap;
use std::net::IpAddr;

/// The limits (a master's `[rate-limit]` configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitParams {
    /// Average requests per second allowed per client address (≥ 1).
    pub per_second: u32,
    /// Requests a client may send back to back (≥ 1).
    pub burst: u32,
    /// At most one `RATE` kiss per client per this span; other refused requests are dropped.
    pub kiss_interval: Span,
    /// Client records per generation (two generations are kept).
    pub capacity: usize,
}

impl Default for RateLimitParams {
    /// 64 requests/s with bursts of 128: well above what timed asks with its fastest polling
    /// (every 125 ms, bursts of 4: 32 requests/s), far below what one core answers.
    fn default() -> Self {
        RateLimitParams {
            per_second: 64,
            burst: 128,
            kiss_interval: Span::from_secs(1),
            capacity: 1 << 16,
        }
    }
}

/// What to do with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Within the limit: answer it.
    Answer,
    /// Over the limit: answer with a `RATE` kiss (see [`super::server::kiss`]).
    Kiss,
    /// Over the limit and kissed recently: drop it.
    Drop,
}

/// One client's record.
#[derive(Clone, Copy, Debug)]
struct Record {
    /// Theoretical arrival time (raw ns).
    tat: i64,
    /// When it was last kissed (raw ns), if ever.
    kissed: Option<i64>,
}

/// The limiter of one serving thread (the kernel keeps a client on one `SO_REUSEPORT` socket).
#[derive(Debug)]
pub struct RateLimiter {
    p: RateLimitParams,
    /// `T`, ns per request at the average rate.
    step: i64,
    /// `(burst − 1) · T`, ns.
    tolerance: i64,
    cur: HashMap<IpAddr, Record>,
    old: HashMap<IpAddr, Record>,
}

impl RateLimiter {
    /// A limiter with no clients yet. `per_second` and `burst` of 0 are taken as 1.
    pub fn new(p: RateLimitParams) -> Self {
        let step = 1_000_000_000 / i64::from(p.per_second.max(1));
        RateLimiter {
            p,
            step,
            tolerance: step.saturating_mul(i64::from(p.burst.max(1) - 1)),
            cur: HashMap::new(),
            old: HashMap::new(),
        }
    }

    /// The limits.
    pub fn params(&self) -> &RateLimitParams {
        &self.p
    }

    /// Clients with a record.
    pub fn clients(&self) -> usize {
        self.cur.len() + self.old.len()
    }

    /// Decides on one request from `client` arriving at raw reading `now` (ns; monotone per
    /// thread — an earlier `now` than a client's last only makes that client wait longer).
    pub fn admit(&mut self, client: IpAddr, now: i64) -> Admit {
        let rec = match self.cur.get_mut(&client) {
            Some(r) => r,
            None => {
                let r = self.old.remove(&client).unwrap_or(Record {
                    tat: now,
                    kissed: None,
                });
                if self.cur.len() >= self.p.capacity.max(1) {
                    self.old = std::mem::take(&mut self.cur);
                }
                self.cur.entry(client).or_insert(r)
            }
        };
        let tat = rec.tat.max(now);
        if tat.saturating_sub(now) <= self.tolerance {
            rec.tat = tat.saturating_add(self.step);
            return Admit::Answer;
        }
        match rec.kissed {
            Some(k) if now.saturating_sub(k) < self.p.kiss_interval.as_nanos() => Admit::Drop,
            _ => {
                rec.kissed = Some(now);
                Admit::Kiss
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn limiter(per_second: u32, burst: u32) -> RateLimiter {
        RateLimiter::new(RateLimitParams {
            per_second,
            burst,
            ..Default::default()
        })
    }

    #[test]
    fn a_burst_then_the_average_rate() {
        let mut l = limiter(10, 4);
        // Four back to back are answered, the fifth is kissed, the sixth dropped.
        for _ in 0..4 {
            assert_eq!(l.admit(ip(1), 0), Admit::Answer);
        }
        assert_eq!(l.admit(ip(1), 0), Admit::Kiss);
        assert_eq!(l.admit(ip(1), MS), Admit::Drop);
        // 100 ms later one token is back (10/s), not two.
        assert_eq!(l.admit(ip(1), 100 * MS), Admit::Answer);
        assert_eq!(l.admit(ip(1), 100 * MS), Admit::Drop);
        // At the average rate a client is always answered.
        let mut t = 10_000 * MS;
        for _ in 0..1000 {
            assert_eq!(l.admit(ip(1), t), Admit::Answer);
            t += 100 * MS;
        }
    }

    #[test]
    fn clients_are_limited_apart() {
        let mut l = limiter(1, 1);
        assert_eq!(l.admit(ip(1), 0), Admit::Answer);
        assert_eq!(l.admit(ip(1), 0), Admit::Kiss);
        assert_eq!(l.admit(ip(2), 0), Admit::Answer);
    }

    #[test]
    fn a_flooder_gets_one_kiss_per_interval() {
        let mut l = limiter(10, 10);
        let (mut answered, mut kissed, mut dropped) = (0, 0, 0);
        // 10,000 requests/s for 10 s.
        for i in 0..100_000i64 {
            match l.admit(ip(2), i * 100_000) {
                Admit::Answer => answered += 1,
                Admit::Kiss => kissed += 1,
                Admit::Drop => dropped += 1,
            }
        }
        // 10/s for 10 s plus the first burst; one kiss per second.
        assert!((100..=111).contains(&answered), "{answered}");
        assert!((10..=11).contains(&kissed), "{kissed}");
        assert_eq!(answered + kissed + dropped, 100_000);
    }

    #[test]
    fn memory_is_bounded_and_a_known_client_keeps_its_record() {
        let mut l = RateLimiter::new(RateLimitParams {
            per_second: 1,
            burst: 1,
            capacity: 100,
            ..Default::default()
        });
        assert_eq!(l.admit(ip(1), 0), Admit::Answer);
        for i in 0..150u32 {
            l.admit(IpAddr::from(std::net::Ipv6Addr::from(u128::from(i) + 1)), 0);
        }
        assert!(l.clients() <= 200, "{}", l.clients());
        // Still remembered (in the old generation): refused.
        assert_eq!(l.admit(ip(1), 0), Admit::Kiss);
        for i in 0..1000u32 {
            l.admit(
                IpAddr::from(std::net::Ipv6Addr::from(u128::from(i) + 1000)),
                0,
            );
        }
        assert!(l.clients() <= 200, "{}", l.clients());
    }
}
