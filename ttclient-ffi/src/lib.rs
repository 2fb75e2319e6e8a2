//! `libtruetime.so`: the C ABI of the TrueTime SDK (`include/truetime.h`): `tt_open`, `tt_now`, `tt_after`, `tt_before`,
//! `tt_commit_timestamp`, `tt_commit_wait`, `tt_close`. Handles are thread-safe.
//!
//! # Safety
//!
//! Every function checks its pointers for null; callers must pass pointers obtained from
//! `tt_open` (not yet closed) and valid, writable output pointers. No Rust panic crosses the
//! boundary: each call runs under `catch_unwind` (release builds abort on panic instead).

use std::ffi::{CStr, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use ttclient::{TrueTime, TtError};
use ttcore::Timestamp;

/// Success.
pub const TT_OK: c_int = 0;
/// The status does not allow using the interval (the out-struct's status says which).
pub const TT_ERR_NOT_USABLE: c_int = 1;
/// No source.
pub const TT_ERR_UNAVAILABLE: c_int = 2;
/// The page could not be read.
pub const TT_ERR_PAGE: c_int = 3;
/// The RPC failed.
pub const TT_ERR_RPC: c_int = 4;
/// Timed out.
pub const TT_ERR_TIMEOUT: c_int = 5;
/// A null or invalid argument.
pub const TT_ERR_ARG: c_int = 6;
/// An internal error (a caught panic).
pub const TT_ERR_INTERNAL: c_int = 7;

/// `tt_interval`: an interval and its status (1 synchronized, 2 holdover, 3 unsynchronized,
/// 4 disrupted).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TtInterval {
    /// Lower end (ns on the TrueTime timescale).
    pub earliest_ns: i64,
    /// Upper end (ns).
    pub latest_ns: i64,
    /// Status code.
    pub status: i32,
}

/// Opaque handle.
pub struct TtHandle(TrueTime);

fn code(e: &TtError) -> c_int {
    match e {
        TtError::NotUsable { .. } => TT_ERR_NOT_USABLE,
        TtError::Unavailable { .. } | TtError::NoRawModel => TT_ERR_UNAVAILABLE,
        TtError::Page(_) => TT_ERR_PAGE,
        TtError::Rpc(_) | TtError::BadAnswer(_) | TtError::RpcThreadGone => TT_ERR_RPC,
        TtError::Timeout(_) => TT_ERR_TIMEOUT,
    }
}

fn guard(f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(TT_ERR_INTERNAL)
}

/// Opens timed's page at `page_path`, or (NULL) the default page with the gRPC fallback.
/// Returns NULL on failure.
///
/// # Safety
/// `page_path` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tt_open(page_path: *const c_char) -> *mut TtHandle {
    let r = catch_unwind(|| {
        let tt = if page_path.is_null() {
            TrueTime::connect_default()
        } else {
            // SAFETY: non-null, NUL-terminated per the contract.
            let p = unsafe { CStr::from_ptr(page_path) };
            match p.to_str() {
                Ok(s) => TrueTime::open(Path::new(s)),
                Err(_) => return std::ptr::null_mut(),
            }
        };
        match tt {
            Ok(t) => Box::into_raw(Box::new(TtHandle(t))),
            Err(_) => std::ptr::null_mut(),
        }
    });
    r.unwrap_or(std::ptr::null_mut())
}

/// Closes a handle (NULL is ignored).
///
/// # Safety
/// `h` must come from `tt_open` and not be used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tt_close(h: *mut TtHandle) {
    if !h.is_null() {
        // SAFETY: from Box::into_raw in tt_open, closed once.
        drop(unsafe { Box::from_raw(h) });
    }
}

/// Writes `r` into `*out`.
///
/// # Safety
/// `out` is non-null, aligned and writable (the C caller's contract, checked for null by the
/// entry points).
unsafe fn fill(out: *mut TtInterval, r: &ttclient::Reading) {
    // SAFETY: this function's contract.
    unsafe {
        *out = TtInterval {
            earliest_ns: r.interval.earliest().as_nanos(),
            latest_ns: r.interval.latest().as_nanos(),
            status: r.status.as_u8() as i32,
        };
    }
}

/// TT.now() into `*out`. Returns TT_OK, or TT_ERR_NOT_USABLE with `*out` still filled (its
/// status says why), or another error.
///
/// # Safety
/// `h` from `tt_open`; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tt_now(h: *const TtHandle, out: *mut TtInterval) -> c_int {
    if h.is_null() || out.is_null() {
        return TT_ERR_ARG;
    }
    guard(|| {
        // SAFETY: non-null handle from tt_open.
        let tt = unsafe { &(*h).0 };
        match tt.reading() {
            Ok(r) => {
                // SAFETY: `out` is non-null (checked above) and writable per the contract.
                unsafe { fill(out, &r) };
                if r.status.is_trustworthy() {
                    TT_OK
                } else {
                    TT_ERR_NOT_USABLE
                }
            }
            Err(e) => code(&e),
        }
    })
}

/// The interval the page gives at raw reading `raw_ns` (CLOCK_MONOTONIC_RAW, ns) — for tests
/// that compare implementations at the same instant. Shared-memory and simulated sources only.
///
/// # Safety
/// `h` from `tt_open`; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tt_interval_at_raw(
    h: *const TtHandle,
    raw_ns: i64,
    out: *mut TtInterval,
) -> c_int {
    if h.is_null() || out.is_null() {
        return TT_ERR_ARG;
    }
    guard(|| {
        // SAFETY: non-null handle from tt_open.
        let tt = unsafe { &(*h).0 };
        match tt.reading_at_raw(ttclient::RawReading::from_nanos(raw_ns)) {
            Ok(r) => {
                // SAFETY: `out` is non-null (checked above) and writable per the contract.
                unsafe { fill(out, &r) };
                TT_OK
            }
            Err(e) => code(&e),
        }
    })
}

/// `tt_after` (`after`) or `tt_before` into `*out`.
///
/// # Safety
/// `h` is null or from `tt_open` and not closed; `out` is null or writable.
unsafe fn bool_op(h: *const TtHandle, t: i64, out: *mut c_int, after: bool) -> c_int {
    if h.is_null() || out.is_null() {
        return TT_ERR_ARG;
    }
    guard(|| {
        // SAFETY: non-null handle from tt_open.
        let tt = unsafe { &(*h).0 };
        let r = if after {
            tt.after(Timestamp::from_nanos(t))
        } else {
            tt.before(Timestamp::from_nanos(t))
        };
        match r {
            Ok(b) => {
                // SAFETY: non-null, writable per the contract.
                unsafe { *out = b as c_int };
                TT_OK
            }
            Err(e) => code(&e),
        }
    })
}

/// TT.after(t): `*out` = 1 if `t` has definitely passed.
///
/// # Safety
/// `h` from `tt_open`; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tt_after(h: *const TtHandle, t_ns: i64, out: *mut c_int) -> c_int {
    // SAFETY: the same contract as this function's.
    unsafe { bool_op(h, t_ns, out, true) }
}

/// TT.before(t): `*out` = 1 if `t` has definitely not arrived.
///
/// # Safety
/// `h` from `tt_open`; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tt_before(h: *const TtHandle, t_ns: i64, out: *mut c_int) -> c_int {
    // SAFETY: the same contract as this function's.
    unsafe { bool_op(h, t_ns, out, false) }
}

/// A commit timestamp ≥ now().latest, strictly increasing per handle.
///
/// # Safety
/// `h` from `tt_open`; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tt_commit_timestamp(h: *const TtHandle, out: *mut i64) -> c_int {
    if h.is_null() || out.is_null() {
        return TT_ERR_ARG;
    }
    guard(|| {
        // SAFETY: non-null handle from tt_open.
        let tt = unsafe { &(*h).0 };
        match tt.commit_timestamp() {
            Ok(t) => {
                // SAFETY: non-null, writable.
                unsafe { *out = t.as_nanos() };
                TT_OK
            }
            Err(e) => code(&e),
        }
    })
}

/// Blocks until TT.after(s); `*waited_ns` (may be NULL) gets the time waited.
///
/// # Safety
/// `h` from `tt_open`; `waited_ns` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tt_commit_wait(
    h: *const TtHandle,
    s_ns: i64,
    waited_ns: *mut i64,
) -> c_int {
    if h.is_null() {
        return TT_ERR_ARG;
    }
    guard(|| {
        // SAFETY: non-null handle from tt_open.
        let tt = unsafe { &(*h).0 };
        match tt.commit_wait_blocking(Timestamp::from_nanos(s_ns)) {
            Ok(w) => {
                if !waited_ns.is_null() {
                    // SAFETY: non-null, writable.
                    unsafe { *waited_ns = w.waited.as_nanos() as i64 };
                }
                TT_OK
            }
            Err(e) => code(&e),
        }
    })
}

/// A static description of an error code.
#[unsafe(no_mangle)]
pub extern "C" fn tt_strerror(code: c_int) -> *const c_char {
    let s: &'static CStr = match code {
        TT_OK => c"ok",
        TT_ERR_NOT_USABLE => c"TrueTime not usable (status unsynchronized or disrupted)",
        TT_ERR_UNAVAILABLE => c"no TrueTime source",
        TT_ERR_PAGE => c"page read failed",
        TT_ERR_RPC => c"timed RPC failed",
        TT_ERR_TIMEOUT => c"timed out",
        TT_ERR_ARG => c"invalid argument",
        _ => c"internal error",
    };
    s.as_ptr()
}
