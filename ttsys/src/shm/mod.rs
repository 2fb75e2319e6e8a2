//! The TrueTime shared-memory page (written by `timed`, read by every client) and an AWS
//! ClockBound v2 segment writer. The byte layout is specified in `timed/PROTOCOL.md`.
//!
//! # Safety
//!
//! A mapping is viewed as a `#[repr(C)]` struct made only of atomics. This is sound because:
//! the file is created by the writer at exactly the struct's size (and readers refuse smaller
//! files) so the view never reaches past the mapping; `mmap` returns page-aligned memory, which
//! satisfies the struct's alignment; every field is an atomic, so concurrent access from other
//! processes through the shared mapping is a data race in no field; and the mapping lives as
//! long as the view (it is owned by the same struct and never remapped). Consistency across
//! fields is the seqlock's job: the generation is odd while the writer updates, and a reader
//! retries until it sees the same even generation before and after copying the fields.

mod clockbound;
mod layout;
mod reader;
mod writer;

pub use clockbound::*;
pub use layout::*;
pub use reader::*;
pub use writer::*;

use std::path::Path;
use thiserror::Error;

/// Errors opening or reading a page.
#[derive(Debug, Error)]
pub enum ShmError {
    /// The file could not be opened or mapped.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a TrueTime page (magic), or a layout this code does not know (version), or too small.
    #[error("{path}: {what}")]
    Format {
        /// Path.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// The writer has held the page mid-update for too long (it may have died while writing).
    #[error("page is being written (generation stays odd)")]
    Busy,
}

/// Views the start of a page mapping as the page's struct.
///
/// # Safety
///
/// `ptr` must be the start of a live mapping of at least [`PAGE_SIZE`] bytes (page-aligned, as
/// `mmap` returns), and the mapping must outlive every use of the returned reference: callers
/// tie the lifetime to the struct that owns the mapping. See the module docs for why viewing
/// shared memory as atomics is sound.
unsafe fn view<'a>(ptr: *const u8) -> &'a PageRaw {
    // SAFETY: the caller's contract above.
    unsafe { &*(ptr as *const PageRaw) }
}

/// An I/O error on `path`, as a [`ShmError`].
fn io(path: &Path) -> impl Fn(std::io::Error) -> ShmError + '_ {
    move |source| ShmError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests;
