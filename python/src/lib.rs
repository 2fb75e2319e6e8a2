//! `truetime._native`: the Rust SDK ([`ttclient`]) behind a Python API. Every read goes through
//! [`ttclient::TrueTime`], the same code Rust callers run (the page's seqlock, its fast block,
//! the continuity check against `CLOCK_BOOTTIME`); nothing here reinterprets the page.
//!
//! Times are integers in nanoseconds on the project timescale (UTC with leap seconds smeared
//! over 24 h, POSIX time outside smear windows), like `time.time_ns()`.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;
use ttclient::hlc::{Hlc, HlcError, HlcTimestamp, MaxOffset};
use ttclient::{SimSource, TrueTime as Tt, TtError};
use ttcore::{ClockStatus, Span, Timestamp};

create_exception!(
    _native,
    TrueTimeError,
    PyException,
    "Any TrueTime failure; the subclasses name the cause."
);
create_exception!(
    _native,
    PageMissingError,
    TrueTimeError,
    "timed's page could not be opened (is timed running? is the path right?)."
);
create_exception!(
    _native,
    UntrustworthyError,
    TrueTimeError,
    "The interval must not be used now: its status is unsynchronized or disrupted."
);
create_exception!(
    _native,
    PageVoidError,
    UntrustworthyError,
    "timed stopped updating its page (void): no interval can be trusted."
);
create_exception!(
    _native,
    HlcRejectedError,
    TrueTimeError,
    "A remote HLC timestamp is further ahead than the max offset allows; it was not merged."
);

/// The Python exception for a Rust SDK error on `tt`.
fn to_py(tt: &Tt, e: TtError) -> PyErr {
    match &e {
        TtError::Unavailable { .. } => PageMissingError::new_err(e.to_string()),
        TtError::NotUsable { .. } => {
            if tt.page_degraded() == Some(ttsys::shm::Degraded::Void) {
                PageVoidError::new_err(format!("{e} (the page is void: timed stopped)"))
            } else {
                UntrustworthyError::new_err(e.to_string())
            }
        }
        _ => TrueTimeError::new_err(e.to_string()),
    }
}

/// `TT.now()`: an interval guaranteed to contain true time, and the status it may be used
/// under.
#[pyclass(frozen, module = "truetime._native", name = "Interval")]
#[derive(Clone, Copy)]
pub struct Interval {
    /// The earliest the true time can be (ns).
    #[pyo3(get)]
    earliest_ns: i64,
    /// The latest the true time can be (ns).
    #[pyo3(get)]
    latest_ns: i64,
    status: ClockStatus,
}

#[pymethods]
impl Interval {
    /// The status: `synchronized` or `holdover` (both trustworthy).
    #[getter]
    fn status(&self) -> &'static str {
        self.status.as_str()
    }

    /// Half the width (ns): what a commit wait costs, about twice this.
    #[getter]
    fn epsilon_ns(&self) -> i64 {
        (self.latest_ns - self.earliest_ns + 1) / 2
    }

    /// The midpoint (ns).
    #[getter]
    fn midpoint_ns(&self) -> i64 {
        self.earliest_ns + (self.latest_ns - self.earliest_ns) / 2
    }

    /// Whether `t_ns` lies inside.
    fn contains(&self, t_ns: i64) -> bool {
        (self.earliest_ns..=self.latest_ns).contains(&t_ns)
    }

    fn __repr__(&self) -> String {
        format!(
            "Interval(earliest_ns={}, latest_ns={}, status='{}', epsilon_ns={})",
            self.earliest_ns,
            self.latest_ns,
            self.status.as_str(),
            self.epsilon_ns()
        )
    }
}

/// A TrueTime handle on timed's page (or a simulated source, for tests).
#[pyclass(frozen, module = "truetime._native", name = "TrueTime")]
pub struct TrueTime {
    tt: Tt,
}

impl TrueTime {
    fn interval(&self) -> PyResult<Interval> {
        let r = self.tt.now_reading().map_err(|e| to_py(&self.tt, e))?;
        Ok(Interval {
            earliest_ns: r.interval.earliest().as_nanos(),
            latest_ns: r.interval.latest().as_nanos(),
            status: r.status,
        })
    }
}

#[pymethods]
impl TrueTime {
    /// Opens timed's page at `page` (default `/run/timed/page`). Raises `PageMissingError`.
    #[new]
    #[pyo3(signature = (page = None))]
    fn new(page: Option<PathBuf>) -> PyResult<Self> {
        let path = page.unwrap_or_else(|| PathBuf::from(ttclient::DEFAULT_PAGE));
        let tt = Tt::open(&path).map_err(|e| PageMissingError::new_err(e.to_string()))?;
        Ok(TrueTime { tt })
    }

    /// A simulated source for tests: true time is `time.time_ns()` (this host's
    /// `CLOCK_REALTIME`) and every interval is ±`epsilon_ns` around it; `status` is what it
    /// reports (`synchronized`, `holdover`, `unsynchronized`, `disrupted`).
    #[staticmethod]
    #[pyo3(signature = (epsilon_ns, status = "synchronized"))]
    fn simulated(epsilon_ns: i64, status: &str) -> PyResult<Self> {
        let status = [
            ClockStatus::Synchronized,
            ClockStatus::Holdover,
            ClockStatus::Unsynchronized,
            ClockStatus::Disrupted,
        ]
        .into_iter()
        .find(|s| s.as_str() == status)
        .ok_or_else(|| {
            TrueTimeError::new_err(format!(
                "unknown status {status:?}: synchronized, holdover, unsynchronized, disrupted"
            ))
        })?;
        let model = ttclient::sim_model(
            ttclient::RawReading::from_nanos(0),
            0,
            Span::from_nanos(epsilon_ns.max(0)),
            ttcore::Rate::ZERO,
        );
        let tt = Tt::simulated(SimSource {
            model,
            status,
            raw: Box::new(|| ttclient::RawReading::from_nanos(ttsys::clock::realtime_ns())),
        });
        Ok(TrueTime { tt })
    }

    /// `TT.now()`: an `Interval` containing true time. Raises `UntrustworthyError` (or
    /// `PageVoidError`) when no honest interval exists now.
    fn now(&self) -> PyResult<Interval> {
        self.interval()
    }

    /// `TT.after(t_ns)`: `t_ns` has definitely passed (`earliest > t_ns`).
    fn after(&self, t_ns: i64) -> PyResult<bool> {
        self.tt
            .after(Timestamp::from_nanos(t_ns))
            .map_err(|e| to_py(&self.tt, e))
    }

    /// `TT.before(t_ns)`: `t_ns` has definitely not arrived (`latest < t_ns`).
    fn before(&self, t_ns: i64) -> PyResult<bool> {
        self.tt
            .before(Timestamp::from_nanos(t_ns))
            .map_err(|e| to_py(&self.tt, e))
    }

    /// A commit timestamp (ns): at least `now().latest_ns`, strictly greater than every one
    /// this handle returned before.
    fn commit_timestamp(&self) -> PyResult<i64> {
        self.tt
            .commit_timestamp()
            .map(|t| t.as_nanos())
            .map_err(|e| to_py(&self.tt, e))
    }

    /// Blocks until `after(s_ns)` holds, with the GIL released; returns the nanoseconds
    /// waited. Never returns early; an untrustworthy status raises, and the transaction must
    /// then retry or abort.
    fn commit_wait(&self, py: Python<'_>, s_ns: i64) -> PyResult<i64> {
        let tt = self.tt.clone();
        let r = py.detach(move || tt.commit_wait_blocking(Timestamp::from_nanos(s_ns)));
        r.map(|w| Span::from_duration(w.waited).as_nanos())
            .map_err(|e| to_py(&self.tt, e))
    }

    /// Where the handle reads: `shm` (timed's page) or `simulated`.
    #[getter]
    fn source(&self) -> &'static str {
        match self.tt.source() {
            ttclient::SourceKind::Shm => "shm",
            ttclient::SourceKind::Grpc => "grpc",
            ttclient::SourceKind::Simulated => "simulated",
        }
    }
}

/// A hybrid logical clock whose physical part is `TT.now().latest`: timestamps `(wall_ns,
/// logical)` that order causally related events across hosts, with remote timestamps beyond
/// `max_offset_ns` refused (CockroachDB's default is 500 ms; with TrueTime it can be 2ε).
#[pyclass(frozen, module = "truetime._native", name = "Hlc")]
pub struct PyHlc {
    hlc: Arc<Hlc<Tt>>,
    tt: Tt,
}

#[pymethods]
impl PyHlc {
    /// An HLC on `tt` refusing remote timestamps more than `max_offset_ns` ahead.
    #[new]
    fn new(tt: &TrueTime, max_offset_ns: i64) -> Self {
        let hlc = Hlc::new(
            tt.tt.clone(),
            MaxOffset::Fixed(Span::from_nanos(max_offset_ns.max(0))),
        );
        PyHlc {
            hlc: Arc::new(hlc),
            tt: tt.tt.clone(),
        }
    }

    /// A timestamp greater than every one issued or received: `(wall_ns, logical)`.
    fn now(&self) -> PyResult<(i64, u32)> {
        self.hlc
            .now()
            .map(|t| (t.wall, t.logical))
            .map_err(|e| self.err(e))
    }

    /// Merges a remote `(wall_ns, logical)` and returns a timestamp greater than both it and
    /// everything before. Raises `HlcRejectedError` (and merges nothing) when the remote wall
    /// time is beyond the max offset.
    fn update(&self, remote: (i64, u32)) -> PyResult<(i64, u32)> {
        let r = HlcTimestamp {
            wall: remote.0,
            logical: remote.1,
        };
        self.hlc
            .update(r, None)
            .map(|t| (t.wall, t.logical))
            .map_err(|e| self.err(e))
    }
}

impl PyHlc {
    fn err(&self, e: HlcError) -> PyErr {
        match e {
            HlcError::Clock(e) => to_py(&self.tt, e),
            e => HlcRejectedError::new_err(e.to_string()),
        }
    }
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Interval>()?;
    m.add_class::<TrueTime>()?;
    m.add_class::<PyHlc>()?;
    let py = m.py();
    m.add("TrueTimeError", py.get_type::<TrueTimeError>())?;
    m.add("PageMissingError", py.get_type::<PageMissingError>())?;
    m.add("UntrustworthyError", py.get_type::<UntrustworthyError>())?;
    m.add("PageVoidError", py.get_type::<PageVoidError>())?;
    m.add("HlcRejectedError", py.get_type::<HlcRejectedError>())?;
    m.add("DEFAULT_PAGE", ttclient::DEFAULT_PAGE)?;
    Ok(())
}
