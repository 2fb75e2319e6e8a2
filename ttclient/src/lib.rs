//! # ttclient — TrueTime for transaction code
//!
//! ```no_run
//! use ttclient::TrueTime;
//! # fn main() -> Result<(), ttclient::TtError> {
//! let tt = TrueTime::connect_default()?;            // timed's page, else its gRPC service
//! tt.wait_until_synchronized(std::time::Duration::from_secs(30))?;
//! let now = tt.now()?;                              // [earliest, latest] ∋ true time
//! let s = tt.commit_timestamp()?;                   // s ≥ now().latest, strictly increasing
//! let waited = tt.commit_wait_blocking(s)?;         // returns once TT.after(s) holds
//! # let _ = (now, waited); Ok(()) }
//! ```
//!
//! ## The guarantee, and what callers must check
//!
//! Every interval returned by [`TrueTime::now`] (and every `Ok` of [`TrueTime::after`] /
//! [`TrueTime::before`]) contains true time, under the assumptions `timed` publishes: the host
//! oscillator stays within `max-drift-ppm` of its estimated rate, fewer than half of the masters
//! it selects from are wrong, each master's error is within the ε it publishes, and network
//! delays are positive. When the daemon cannot vouch for that — status `unsynchronized` (never
//! synced, ε beyond its maximum, the page void because timed stopped) or `disrupted` (suspend,
//! clock step, restart) — these calls **refuse** with [`TtError::NotUsable`] rather than return a
//! confident wrong interval. `holdover` intervals are honest (wider, growing) and are returned.
//! [`TrueTime::reading`] returns the interval with its status for callers that want to look.
//!
//! ## Sources
//!
//! * **shm** — timed's shared-memory page (`timed/PROTOCOL.md`): one vDSO clock read and a
//!   seqlock copy, no syscall, no lock; safe from any number of threads and tasks.
//! * **grpc** — timed's `Now` RPC, when the page is absent (a container without `/run/timed`):
//!   the answer's `latest` is widened by the round trip, since true time moved on meanwhile.
//! * **simulated** — a fixed model over a supplied clock, for tests ([`SimSource`]).
//!
//! ## Commit wait
//!
//! [`TrueTime::commit_wait_blocking`] / [`TrueTime::commit_wait`] return only once
//! `TT.after(s)` holds: they sleep for the predicted remainder, then re-read until `earliest > s`.
//!
//! ## Hybrid logical clock
//!
//! [`hlc::Hlc`]: CockroachDB-style timestamps whose physical part comes from TrueTime (see the
//! module docs for which end and why, and for the live max-offset mode).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod hlc;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;
pub use ttcore::RawReading;
use ttcore::{ClockModel, ClockStatus, Span, TTInterval, Timestamp};
use ttsys::shm::{PageData, PageReader};

/// Default page path.
pub const DEFAULT_PAGE: &str = "/run/timed/page";
/// Default timed gRPC address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7100";

/// A cause kept with an error, shareable so the error stays `Clone`.
pub type Cause = std::sync::Arc<dyn std::error::Error + Send + Sync>;

/// Errors. Each keeps its cause as [`std::error::Error::source`].
#[derive(Debug, Error, Clone)]
pub enum TtError {
    /// The interval must not be used: the status says why.
    #[error("TrueTime not usable: {status} ({reason})")]
    NotUsable {
        /// The status.
        status: ClockStatus,
        /// Why.
        reason: String,
    },
    /// No source could be opened.
    #[error("no TrueTime source: {what}: {cause}")]
    Unavailable {
        /// What could not be opened (a page path, timed's address).
        what: String,
        /// Why.
        #[source]
        cause: Cause,
    },
    /// The page could not be read (a writer stuck mid-update).
    #[error("page read failed: {0}")]
    Page(#[source] std::sync::Arc<ttsys::shm::ShmError>),
    /// The gRPC source failed.
    #[error("timed RPC failed: {}", .0.message())]
    Rpc(#[source] tonic::Status),
    /// timed answered with something that is not an interval.
    #[error("timed's answer is not an interval: {0}")]
    BadAnswer(String),
    /// The gRPC source serves intervals, not a raw-clock model.
    #[error("the gRPC source has no raw-clock model")]
    NoRawModel,
    /// The SDK's gRPC thread is gone (its runtime could not run).
    #[error("the gRPC client thread is gone")]
    RpcThreadGone,
    /// A wait timed out.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl TtError {
    /// `what` could not be opened because of `cause`.
    pub fn unavailable(
        what: impl std::fmt::Display,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> TtError {
        TtError::Unavailable {
            what: what.to_string(),
            cause: std::sync::Arc::new(cause),
        }
    }
}

/// Which source a handle reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// timed's shared-memory page (the fast path).
    Shm,
    /// timed's gRPC `Now` (fallback).
    Grpc,
    /// A simulated source.
    Simulated,
}

/// An interval with its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// The interval (meaningful only when `status.is_trustworthy()`).
    pub interval: TTInterval,
    /// The status at the instant of the reading.
    pub status: ClockStatus,
    /// Where it came from.
    pub source: SourceKind,
}

/// A simulated source: a fixed clock model evaluated against a supplied raw clock. Tests use it
/// to run commit-wait and the HLC against a host clock that drifts as they choose.
pub struct SimSource {
    /// The model (what a page would hold).
    pub model: ClockModel,
    /// The status to report.
    pub status: ClockStatus,
    /// The host's raw clock.
    pub raw: Box<dyn Fn() -> RawReading + Send + Sync>,
}

enum Source {
    /// The page, the VMClock device when this process can map one, and whether reads may take
    /// the counter path.
    Shm(PageReader, Option<ttsys::vmclock::VmClock>, bool),
    Grpc(grpc::Client),
    Sim(SimSource),
}

struct Inner {
    source: Source,
    last_commit: AtomicI64,
    path: Option<PathBuf>,
}

/// A TrueTime handle: cheap to clone (an `Arc`), `Send + Sync`, lock-free on the read path.
#[derive(Clone)]
pub struct TrueTime {
    inner: Arc<Inner>,
}

/// How a commit wait went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitWait {
    /// Time spent waiting (0 if `after(s)` already held).
    pub waited: Duration,
    /// The interval that finally satisfied `after(s)`.
    pub interval: TTInterval,
}

impl TrueTime {
    /// The page at `path`.
    ///
    /// Where `/dev/vmclock0` exists and is readable, every read also compares its disruption
    /// marker with the one timed verified (a live migration is refused at once, not at timed's
    /// next check).
    pub fn open(path: &Path) -> Result<TrueTime, TtError> {
        Self::open_with_vmclock(path, Path::new(ttsys::vmclock::DEFAULT_PATH))
    }

    /// [`TrueTime::open`] with the VMClock device at `vmclock` (a file with the same layout in
    /// tests); a missing or unreadable device is not an error (the check is skipped).
    pub fn open_with_vmclock(path: &Path, vmclock: &Path) -> Result<TrueTime, TtError> {
        Self::open_page(path, vmclock, true)
    }

    /// [`TrueTime::open`] reading the raw clock on every read, never the time-stamp counter
    /// (PROTOCOL.md "Counter path"): for comparing the two paths, and for hosts where the
    /// counter is not wanted. The intervals are the same model's.
    pub fn open_raw_clock_path(path: &Path) -> Result<TrueTime, TtError> {
        Self::open_page(path, Path::new(ttsys::vmclock::DEFAULT_PATH), false)
    }

    fn open_page(path: &Path, vmclock: &Path, counter: bool) -> Result<TrueTime, TtError> {
        let r = PageReader::open(path).map_err(|e| TtError::unavailable(path.display(), e))?;
        let vm = ttsys::vmclock::VmClock::open(vmclock).ok();
        Ok(Self::from_source(
            Source::Shm(r, vm, counter),
            Some(path.to_path_buf()),
        ))
    }

    /// timed's gRPC service at `addr` (`host:port`).
    pub fn grpc(addr: &str) -> Result<TrueTime, TtError> {
        Ok(Self::from_source(
            Source::Grpc(grpc::Client::connect(addr)?),
            None,
        ))
    }

    /// The page at `page` if it can be opened, else timed's gRPC service at `addr`.
    pub fn connect(page: &Path, addr: &str) -> Result<TrueTime, TtError> {
        match Self::open(page) {
            Ok(t) => Ok(t),
            Err(page_err) => Self::grpc(addr)
                .map_err(|e| TtError::unavailable(format!("{page_err}; and timed at {addr}"), e)),
        }
    }

    /// [`TrueTime::connect`] with the defaults (`/run/timed/page`, `127.0.0.1:7100`), or
    /// `TRUETIME_PAGE` / `TRUETIME_ADDR` from the environment.
    pub fn connect_default() -> Result<TrueTime, TtError> {
        let page = std::env::var("TRUETIME_PAGE").unwrap_or_else(|_| DEFAULT_PAGE.into());
        let addr = std::env::var("TRUETIME_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.into());
        Self::connect(Path::new(&page), &addr)
    }

    /// A simulated source.
    pub fn simulated(sim: SimSource) -> TrueTime {
        Self::from_source(Source::Sim(sim), None)
    }

    fn from_source(source: Source, path: Option<PathBuf>) -> TrueTime {
        TrueTime {
            inner: Arc::new(Inner {
                source,
                last_commit: AtomicI64::new(i64::MIN),
                path,
            }),
        }
    }

    /// Which source this handle reads.
    pub fn source(&self) -> SourceKind {
        match self.inner.source {
            Source::Shm(..) => SourceKind::Shm,
            Source::Grpc(_) => SourceKind::Grpc,
            Source::Sim(_) => SourceKind::Simulated,
        }
    }

    /// The page path, for the shm source.
    pub fn page_path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The interval now, with its status, whatever the status is.
    #[inline]
    pub fn reading(&self) -> Result<Reading, TtError> {
        match &self.inner.source {
            Source::Shm(r, vmclock, counter) => {
                match counter.then(|| Self::counter_reading(r, vmclock)).flatten() {
                    Some(x) => Ok(x),
                    None => Self::raw_clock_reading(r, vmclock),
                }
            }
            Source::Grpc(c) => c.now(),
            Source::Sim(s) => {
                let raw = (s.raw)();
                Ok(Reading {
                    interval: s.model.interval_at(raw),
                    status: s.status,
                    source: SourceKind::Simulated,
                })
            }
        }
    }

    /// The raw-clock path (PROTOCOL.md "Fast path" and "Reading"): the interval at
    /// `CLOCK_MONOTONIC_RAW`, disrupted unless the raw clock ran continuously since timed's check.
    #[inline]
    fn raw_clock_reading(
        r: &PageReader,
        vmclock: &Option<ttsys::vmclock::VmClock>,
    ) -> Result<Reading, TtError> {
        // The writer's fast block covers the common case (a trustworthy page inside
        // its validity window, the raw clock continuous since the writer's check);
        // anything else takes the general path.
        let fast = r.read_fast();
        let raw = ttsys::clock::raw();
        let boot = ttsys::clock::boottime_ns();
        let vm = vmclock.as_ref().map(|v| v.marker());
        if let Some((interval, status)) = fast.at(raw)
            && fast.continuous(raw, boot, vm)
        {
            return Ok(Reading {
                interval,
                status,
                source: SourceKind::Shm,
            });
        }
        let h = r.read_hot().map_err(|e| TtError::Page(e.into()))?;
        // A failed continuity check is read once more: a preemption between the two
        // clock reads looks like a stall, a real stall or step stays.
        let (raw, continuous) = if h.continuous(raw, boot, vm) {
            (raw, true)
        } else {
            let raw = ttsys::clock::raw();
            (raw, h.continuous(raw, ttsys::clock::boottime_ns(), vm))
        };
        let (interval, status) = h.at(raw);
        Ok(Reading {
            interval,
            status: if continuous {
                status
            } else {
                ClockStatus::Disrupted
            },
            source: SourceKind::Shm,
        })
    }

    /// The counter path (PROTOCOL.md "Counter path"): the page's counter block, the two coarse
    /// clocks for the suspend check, the VMClock marker, then the counter (ordered after all of
    /// them). `None` where it does not vouch for the interval: the caller reads the raw clock.
    #[inline(always)]
    fn counter_reading(
        r: &PageReader,
        vmclock: &Option<ttsys::vmclock::VmClock>,
    ) -> Option<Reading> {
        let t = r.read_tsc();
        // No block (a page without one, or a host without a usable counter): no clock reads.
        if !t.has_window() {
            return None;
        }
        let mono = ttsys::clock::monotonic_coarse_ns();
        let real = ttsys::clock::realtime_coarse_ns();
        let vm = vmclock.as_ref().map(|v| v.marker());
        let tsc = ttsys::tsc::read_ordered()?;
        let (interval, status) = t.at(tsc, real.wrapping_sub(mono), vm)?;
        Some(Reading {
            interval,
            status,
            source: SourceKind::Shm,
        })
    }

    /// The interval at a given raw reading (`CLOCK_MONOTONIC_RAW`) — for comparing
    /// implementations at one instant. Not available for the gRPC source.
    pub fn reading_at_raw(&self, raw: RawReading) -> Result<Reading, TtError> {
        match &self.inner.source {
            Source::Shm(r, ..) => {
                let d: PageData = r.read().map_err(|e| TtError::Page(e.into()))?;
                let x = d.read_at(raw);
                Ok(Reading {
                    interval: x.interval,
                    status: x.status,
                    source: SourceKind::Shm,
                })
            }
            Source::Sim(s) => Ok(Reading {
                interval: s.model.interval_at(raw),
                status: s.status,
                source: SourceKind::Simulated,
            }),
            Source::Grpc(_) => Err(TtError::NoRawModel),
        }
    }

    /// `TT.now()`: an interval containing true time, or a refusal when the status does not allow
    /// one (see the crate docs).
    #[inline]
    pub fn now(&self) -> Result<TTInterval, TtError> {
        // The counter path inlined here, so that the common case returns the interval without
        // building the full reading's result.
        if let Source::Shm(r, vm, true) = &self.inner.source {
            if let Some(x) = Self::counter_reading(r, vm)
                && x.status.is_trustworthy()
            {
                return Ok(x.interval);
            }
            // Declined: the raw clock, without trying the counter a second time.
            return usable(Self::raw_clock_reading(r, vm)?).map(|x| x.interval);
        }
        self.now_reading().map(|r| r.interval)
    }

    /// [`TrueTime::now`] with the status it may be used under (`Synchronized` or `Holdover`)
    /// and its source, from the same single read.
    #[inline]
    pub fn now_reading(&self) -> Result<Reading, TtError> {
        usable(self.reading()?)
    }

    /// Why the page's interval is not usable beyond its written status, read now:
    /// [`ttsys::shm::Degraded::Void`] when timed stopped updating it, `EpsilonTooLarge`,
    /// `Stale`; `None` for sources other than the page, or when it cannot be read.
    pub fn page_degraded(&self) -> Option<ttsys::shm::Degraded> {
        match &self.inner.source {
            Source::Shm(r, ..) => r
                .read()
                .ok()
                .map(|d| d.read_at(ttsys::clock::raw()).degraded),
            _ => None,
        }
    }

    /// `TT.after(t)`: `t` has definitely passed.
    pub fn after(&self, t: Timestamp) -> Result<bool, TtError> {
        self.now().map(|i| i.after(t))
    }

    /// `TT.before(t)`: `t` has definitely not arrived.
    pub fn before(&self, t: Timestamp) -> Result<bool, TtError> {
        self.now().map(|i| i.before(t))
    }

    /// Waits (polling every 50 ms) until an interval may be used.
    pub fn wait_until_synchronized(&self, timeout: Duration) -> Result<TTInterval, TtError> {
        let t0 = Instant::now();
        loop {
            match self.now() {
                Ok(i) => return Ok(i),
                Err(
                    TtError::NotUsable { .. }
                    | TtError::Rpc(_)
                    | TtError::Page(_)
                    | TtError::BadAnswer(_)
                    | TtError::RpcThreadGone,
                ) if t0.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(TtError::NotUsable { .. }) => return Err(TtError::Timeout(timeout)),
                Err(e) => return Err(e),
            }
        }
    }

    /// A commit timestamp: at least `now().latest`, and strictly greater than every timestamp
    /// this handle (and its clones) returned before. Lock-free (a compare-and-swap loop).
    pub fn commit_timestamp(&self) -> Result<Timestamp, TtError> {
        let latest = self.now()?.latest().as_nanos();
        let mut prev = self.inner.last_commit.load(Ordering::Relaxed);
        loop {
            let next = latest.max(prev.saturating_add(1));
            match self.inner.last_commit.compare_exchange_weak(
                prev,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(Timestamp::from_nanos(next)),
                Err(p) => prev = p,
            }
        }
    }

    /// Blocks until `TT.after(s)` holds: sleeps for the predicted remainder, then re-reads until
    /// `earliest > s`. Never returns early; an unusable status is an error (and the wait must
    /// then be retried or the transaction aborted).
    pub fn commit_wait_blocking(&self, s: Timestamp) -> Result<CommitWait, TtError> {
        let t0 = Instant::now();
        loop {
            let remaining = match self.wait_step(s, t0)? {
                Ok(done) => return Ok(done),
                Err(remaining) => remaining,
            };
            // Sleep while far away (the wake-up can be late by tens of µs on a busy host), then
            // yield, then spin for the last stretch.
            if remaining > SPIN_NS {
                std::thread::sleep(Duration::from_nanos((remaining - SPIN_NS) as u64));
            } else if remaining > SPIN_NS / 4 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// One look during a commit wait (started at `t0`): `Ok(Ok(_))` once `after(s)` holds,
    /// else `Ok(Err(ns))` with the predicted time until `earliest` passes `s` (`earliest`
    /// advances at about 1 ns per ns).
    fn wait_step(&self, s: Timestamp, t0: Instant) -> Result<Result<CommitWait, i64>, TtError> {
        let i = self.now()?;
        if i.after(s) {
            return Ok(Ok(CommitWait {
                waited: t0.elapsed(),
                interval: i,
            }));
        }
        Ok(Err(s
            .as_nanos()
            .saturating_sub(i.earliest().as_nanos())
            .saturating_add(1)))
    }

    /// [`TrueTime::commit_wait_blocking`] for async code: sleeps on the tokio timer for the bulk
    /// (millisecond resolution), then yields while re-reading for the last stretch.
    pub async fn commit_wait(&self, s: Timestamp) -> Result<CommitWait, TtError> {
        let t0 = Instant::now();
        loop {
            let remaining = match self.wait_step(s, t0)? {
                Ok(done) => return Ok(done),
                Err(remaining) => remaining,
            };
            if remaining > ASYNC_SPIN_NS {
                tokio::time::sleep(Duration::from_nanos((remaining - ASYNC_SPIN_NS) as u64)).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Below this predicted remainder the blocking wait spins instead of sleeping (ns).
const SPIN_NS: i64 = 1_000_000;
/// Below this the async wait yields instead of using the (1 ms) tokio timer.
const ASYNC_SPIN_NS: i64 = 2_000_000;

fn not_usable_reason(s: ClockStatus) -> String {
    match s {
        ClockStatus::Disrupted => {
            "clock disruption or daemon restart; wait for the next sync".into()
        }
        ClockStatus::Unsynchronized => {
            "no honest bound: not synchronized, ε beyond its maximum, or timed stopped".into()
        }
        _ => String::new(),
    }
}

/// The gRPC fallback: a background thread owns a small tokio runtime, so `now()` stays a plain
/// blocking call usable from any thread (inside a tokio runtime too).
mod grpc {
    use super::*;
    use std::sync::Mutex;
    use std::sync::mpsc::{Sender, channel};
    use ttproto::v1;

    type Reply = Sender<Result<Reading, TtError>>;

    pub struct Client {
        tx: Mutex<Sender<Reply>>,
    }

    impl Client {
        pub fn connect(addr: &str) -> Result<Client, TtError> {
            let ep = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| TtError::unavailable(format!("bad address {addr}"), e))?
                .connect_timeout(Duration::from_secs(1))
                .timeout(Duration::from_secs(2));
            let (tx, rx) = channel::<Reply>();
            let (ready_tx, ready_rx) = channel::<Result<(), TtError>>();
            std::thread::Builder::new()
                .name("ttclient-grpc".into())
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = ready_tx.send(Err(TtError::unavailable("tokio runtime", e)));
                            return;
                        }
                    };
                    let client = rt.block_on(async {
                        ep.connect()
                            .await
                            .map(v1::time_daemon_client::TimeDaemonClient::new)
                    });
                    let mut client = match client {
                        Ok(c) => {
                            let _ = ready_tx.send(Ok(()));
                            c
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(TtError::unavailable(
                                format!("timed at {}", ep.uri()),
                                e,
                            )));
                            return;
                        }
                    };
                    while let Ok(reply) = rx.recv() {
                        let sent = ttsys::clock::raw_ns();
                        let r = rt.block_on(client.now(v1::NowRequest {}));
                        let rtt = ttsys::clock::raw_ns() - sent;
                        let _ = reply.send(match r {
                            Ok(r) => {
                                let r = r.into_inner();
                                // The daemon's interval was true when it answered; by the time we
                                // hold it true time has moved on by less than the round trip (plus
                                // 0.1 % for our clock's rate): widen `latest` by that.
                                let grow = rtt + rtt / 1000 + 1;
                                TTInterval::new(
                                    Timestamp::from_nanos(r.earliest_ns),
                                    Timestamp::from_nanos(r.latest_ns.saturating_add(grow)),
                                )
                                .map(|interval| Reading {
                                    interval,
                                    status: ttproto::status_from_wire(r.status),
                                    source: SourceKind::Grpc,
                                })
                                .map_err(|e| TtError::BadAnswer(e.to_string()))
                            }
                            Err(e) => Err(TtError::Rpc(e)),
                        });
                    }
                })
                .map_err(|e| TtError::unavailable("the gRPC client thread", e))?;
            ready_rx.recv().map_err(|_| TtError::RpcThreadGone)??;
            Ok(Client { tx: Mutex::new(tx) })
        }

        pub fn now(&self) -> Result<Reading, TtError> {
            let (tx, rx) = channel();
            self.tx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send(tx)
                .map_err(|_| TtError::RpcThreadGone)?;
            rx.recv().map_err(|_| TtError::RpcThreadGone)?
        }
    }
}

/// `r` if its status allows using the interval, else why not.
#[inline]
fn usable(r: Reading) -> Result<Reading, TtError> {
    if r.status.is_trustworthy() {
        Ok(r)
    } else {
        Err(TtError::NotUsable {
            status: r.status,
            reason: not_usable_reason(r.status),
        })
    }
}

/// A model that maps raw reading `raw_ref` to timescale `time_ref` (ns) at nominal rate,
/// with ε `eps` at the reference growing at `drift`, for building [`SimSource`]s in tests and
/// examples.
pub fn sim_model(raw_ref: RawReading, time_ref: i64, eps: Span, drift: ttcore::Rate) -> ClockModel {
    ClockModel {
        ref_raw: raw_ref,
        ref_time: Timestamp::from_nanos(time_ref),
        freq: ttcore::Rate::ZERO,
        eps_ref: eps,
        drift_bound: drift,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicI64;
    use ttcore::Rate;

    fn virtual_clock() -> (Arc<AtomicI64>, Box<dyn Fn() -> RawReading + Send + Sync>) {
        let c = Arc::new(AtomicI64::new(1_000_000_000));
        let c2 = c.clone();
        (
            c,
            Box::new(move || RawReading::from_nanos(c2.load(Ordering::Relaxed))),
        )
    }

    #[test]
    fn refuses_untrustworthy() {
        for (st, ok) in [
            (ClockStatus::Synchronized, true),
            (ClockStatus::Holdover, true),
            (ClockStatus::Unsynchronized, false),
            (ClockStatus::Disrupted, false),
        ] {
            let (_, raw) = virtual_clock();
            let tt = TrueTime::simulated(SimSource {
                model: sim_model(
                    RawReading::from_nanos(0),
                    0,
                    Span::from_micros(5),
                    Rate::ZERO,
                ),
                status: st,
                raw,
            });
            assert_eq!(tt.now().is_ok(), ok, "{st:?}");
            assert_eq!(tt.after(Timestamp::from_nanos(0)).is_ok(), ok);
            assert!(matches!(tt.reading(), Ok(Reading { status, .. }) if status == st));
        }
    }

    /// A page as timed writes it now, with `clock_check` moved `shift_ns` off the real
    /// clocks' `boot − raw` (0: honest).
    fn page_with_check(dir: &Path, shift_ns: i64, fast: bool) -> TrueTime {
        use ttsys::clock::clock_pair;
        let path = dir.join(format!("page-{shift_ns}-{fast}"));
        let mut w = ttsys::shm::PageWriter::open(&path).unwrap();
        let raw = ttsys::clock::raw();
        let mut d = PageData::unsynchronized(raw);
        d.model = sim_model(
            raw,
            1_800_000_000_000_000_000,
            Span::from_micros(5),
            Rate::ZERO,
        );
        d.model.drift_bound = Rate::from_ppm(if fast { 15 } else { 0 });
        d.status = ClockStatus::Synchronized;
        d.max_eps = Span::from_millis(10);
        d.void_after_raw = raw.add(Span::from_secs(60));
        d.holdover_after_raw = raw.add(Span::from_secs(60));
        // A knob with no effect other than switching the fast block off.
        if !fast {
            d.knob.skew = Rate::from_ppt(1);
        }
        let mut p = clock_pair();
        p.boot += shift_ns;
        d.clock_check = Some(p);
        w.write(&d);
        TrueTime::open(&path).unwrap()
    }

    #[test]
    fn a_page_whose_raw_clock_lost_or_gained_time_reads_as_disrupted() {
        let dir = tempfile::tempdir().unwrap();
        for fast in [true, false] {
            let honest = page_with_check(dir.path(), 0, fast);
            assert_eq!(
                honest.reading().unwrap().status,
                ClockStatus::Synchronized,
                "fast path {fast}"
            );
            // The writer's pair says boot − raw was 200 µs less (the raw clock has since
            // lost 200 µs: a stall) or more (it gained: a step).
            for shift in [-200_000, 200_000] {
                let tt = page_with_check(dir.path(), shift, fast);
                let r = tt.reading().unwrap();
                assert_eq!(
                    r.status,
                    ClockStatus::Disrupted,
                    "fast {fast} shift {shift}"
                );
                assert!(tt.now().is_err());
            }
        }
    }

    /// The counter path keeps the per-read check: a page with a counter block whose writer's
    /// realtime offset and (raw, boot) pair both say the clocks have since moved 100 µs apart (a
    /// 100 µs suspend since timed's check) reads as disrupted from the very next read — the
    /// counter path declines, the raw clock's check refuses. The honest page reads through the
    /// counter path (its interval is the counter block's), and a page whose offset alone moved
    /// (the system clock was stepped, which does not disturb the raw clock) reads synchronized
    /// through the raw clock.
    #[test]
    fn the_counter_path_refuses_a_100_us_stall_from_the_next_read() {
        if let Some(why) = ttsys::tsc::unusable_reason() {
            panic!("this test needs a usable time-stamp counter: {why}");
        }
        let dir = tempfile::tempdir().unwrap();
        let honest = ttsys::shm::host_realtime_page_with_counter(
            Span::from_micros(20),
            Rate::from_ppm(15),
            ClockStatus::Synchronized,
            Duration::from_millis(1_100),
        );
        // The counter block made 500 µs wider than the model (still honest, only wider), so
        // that which path answered shows in ε.
        let mut honest = honest;
        honest.tsc.as_mut().expect("a counter block").map.eps0_ns += 500_000;
        let open = |name: &str, d: &PageData| {
            let path = dir.path().join(name);
            ttsys::shm::PageWriter::open(&path).unwrap().write(d);
            TrueTime::open(&path).unwrap()
        };
        let i = open("honest", &honest).now().unwrap();
        assert!(
            i.epsilon() > Span::from_micros(520),
            "the counter path's interval: {i}"
        );
        let raw_path = TrueTime::open_raw_clock_path(&dir.path().join("honest")).unwrap();
        let i = raw_path.now().unwrap();
        assert!(
            i.epsilon() < Span::from_micros(21),
            "the raw path's interval: {i}"
        );
        let mut stalled = honest;
        let b = stalled.tsc.as_mut().unwrap();
        b.real_minus_mono_ns -= 100_000;
        stalled.clock_check.as_mut().unwrap().boot -= 100_000;
        let tt = open("stalled", &stalled);
        assert_eq!(tt.reading().unwrap().status, ClockStatus::Disrupted);
        assert!(tt.now().is_err());
        let mut stepped = honest;
        stepped.tsc.as_mut().unwrap().real_minus_mono_ns += 3_600_000_000_000;
        let i = open("stepped", &stepped).now().unwrap();
        assert!(
            i.epsilon() < Span::from_micros(21),
            "the raw path's interval: {i}"
        );
    }

    #[test]
    fn commit_timestamps_strictly_increase_across_clones_and_threads() {
        let (_, raw) = virtual_clock(); // frozen clock: latest never moves
        let tt = TrueTime::simulated(SimSource {
            model: sim_model(
                RawReading::from_nanos(0),
                0,
                Span::from_micros(5),
                Rate::ZERO,
            ),
            status: ClockStatus::Synchronized,
            raw,
        });
        let latest = tt.now().unwrap().latest();
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let t = tt.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .map(|_| t.commit_timestamp().unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<Timestamp> = hs.into_iter().flat_map(|h| h.join().unwrap()).collect();
        assert!(all.iter().all(|t| *t >= latest));
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "duplicate commit timestamps");
    }

    fn assert_send_sync<T: Send + Sync + Clone>() {}

    #[test]
    fn handle_is_send_sync_clone() {
        assert_send_sync::<TrueTime>();
    }
}
