"""Sliding-window rate limits, one rule for all of them.

A limit allows ``count`` events per ``seconds``. The caller reads the times of
the accepted events of the window from the database (posts from ``messages``,
uploads from ``files``, challenges from ``rate_events``) inside the write
transaction that would add one more, and :meth:`Window.check` refuses with
:class:`~opengroup.domain.errors.RateLimited` (or the window's own kind of it) when the
window is full. Refused requests are not counted, so a client that waits
as told gets through. The state lives in the database, never in a process:
every worker process and every server on the database shares it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from opengroup.domain.errors import RateLimited


@dataclass(frozen=True)
class Window:
    """``count`` events per ``seconds``; 0 in either disables the limit."""

    count: int
    seconds: float
    what: str  # plural noun for the error text: "posts", "uploads", ...
    refusal: type[RateLimited] = RateLimited  # what a full window raises

    @property
    def enabled(self) -> bool:
        return self.count > 0 and self.seconds > 0

    def since(self, now: float) -> float:
        """Events after this time are in the window."""
        return now - self.seconds

    def check(self, recent: Sequence[float], now: float) -> None:
        """Raise 429 if ``recent`` (times of the window's events) leaves no room for one more.

        The retry hint is when the oldest event that keeps the window full leaves it.
        """
        if not self.enabled or len(recent) < self.count:
            return
        blocking = sorted(recent)[-self.count]
        raise self.refusal(
            f"at most {self.count} {self.what} per {self.seconds:g} s",
            retry_after_seconds=max(blocking + self.seconds - now, 0.0),
        )
