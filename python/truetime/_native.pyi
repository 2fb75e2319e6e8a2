"""Type stubs for the Rust extension (``truetime._native``)."""

from typing import Optional, Tuple

DEFAULT_PAGE: str

class TrueTimeError(Exception):
    """Any TrueTime failure; the subclasses name the cause."""

class PageMissingError(TrueTimeError):
    """timed's page could not be opened (is timed running? is the path right?)."""

class UntrustworthyError(TrueTimeError):
    """The interval must not be used now: its status is unsynchronized or disrupted."""

class PageVoidError(UntrustworthyError):
    """timed stopped updating its page (void): no interval can be trusted."""

class HlcRejectedError(TrueTimeError):
    """A remote HLC timestamp is further ahead than the max offset allows; not merged."""

class Interval:
    """``TT.now()``: an interval guaranteed to contain true time."""

    @property
    def earliest_ns(self) -> int: ...
    @property
    def latest_ns(self) -> int: ...
    @property
    def status(self) -> str:
        """``synchronized`` or ``holdover`` (both trustworthy)."""
    @property
    def epsilon_ns(self) -> int:
        """Half the width: what a commit wait costs, about twice this."""
    @property
    def midpoint_ns(self) -> int: ...
    def contains(self, t_ns: int) -> bool: ...

class TrueTime:
    """A TrueTime handle on timed's page (or a simulated source, for tests)."""

    def __init__(self, page: Optional[str] = None) -> None:
        """Opens timed's page (default ``/run/timed/page``). Raises ``PageMissingError``."""
    @staticmethod
    def simulated(epsilon_ns: int, status: str = "synchronized") -> "TrueTime":
        """True time is this host's ``CLOCK_REALTIME``; intervals are ±``epsilon_ns`` around it."""
    def now(self) -> Interval:
        """Raises ``UntrustworthyError`` (or ``PageVoidError``) when no honest interval exists."""
    def after(self, t_ns: int) -> bool:
        """``t_ns`` has definitely passed."""
    def before(self, t_ns: int) -> bool:
        """``t_ns`` has definitely not arrived."""
    def commit_timestamp(self) -> int:
        """At least ``now().latest_ns``, strictly increasing per handle."""
    def commit_wait(self, s_ns: int) -> int:
        """Blocks (GIL released) until ``after(s_ns)``; returns the nanoseconds waited."""
    @property
    def source(self) -> str:
        """``shm`` or ``simulated``."""

class Hlc:
    """A hybrid logical clock over ``TT.now().latest``."""

    def __init__(self, tt: TrueTime, max_offset_ns: int) -> None: ...
    def now(self) -> Tuple[int, int]:
        """``(wall_ns, logical)``, greater than everything issued or received."""
    def update(self, remote: Tuple[int, int]) -> Tuple[int, int]:
        """Merges a remote timestamp; raises ``HlcRejectedError`` beyond the max offset."""
