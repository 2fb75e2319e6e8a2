"""TrueTime for Python: ``TT.now()`` as ``[earliest, latest]``, guaranteed to contain true time.

Reads timed's shared-memory page through the Rust SDK (the same code Rust callers run)::

    import truetime
    tt = truetime.TrueTime()          # /run/timed/page
    print(tt.now())                   # Interval(earliest_ns=…, latest_ns=…, status='synchronized', …)

Times are integers in nanoseconds, like ``time.time_ns()``.
"""

import asyncio

from ._native import (
    DEFAULT_PAGE,
    Hlc,
    HlcRejectedError,
    Interval,
    PageMissingError,
    PageVoidError,
    TrueTime,
    TrueTimeError,
    UntrustworthyError,
)

__all__ = [
    "DEFAULT_PAGE",
    "Hlc",
    "HlcRejectedError",
    "Interval",
    "PageMissingError",
    "PageVoidError",
    "TrueTime",
    "TrueTimeError",
    "UntrustworthyError",
    "commit_wait_async",
]


async def commit_wait_async(tt: TrueTime, s_ns: int) -> int:
    """``tt.commit_wait(s_ns)`` for asyncio: the wait runs on a worker thread (with the GIL
    released), so the event loop keeps serving other tasks. Returns the nanoseconds waited."""
    return await asyncio.to_thread(tt.commit_wait, s_ns)
