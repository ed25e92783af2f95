"""The one log line of each answered request, and its metrics (if they are on).

A request is named by its route pattern (``/room/{token}``), never by its path
or query, which carry keys and ids.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opengroup.metrics import Metrics

log = logging.getLogger("opengroup.requests")


class RequestLog:
    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics

    def record(
        self, transport: str, method: str, route: str, status: int, started: float, note: str = ""
    ) -> None:
        """Log (and count) a request answered since ``started`` (``time.perf_counter()``).

        ``note`` is a fixed reason text of ours (never request data), e.g. why an
        onion envelope was refused.
        """
        seconds = time.perf_counter() - started
        log.info(
            "%s %s %s %d %.1fms%s",
            transport,
            method,
            route or "unmatched",
            status,
            seconds * 1000,
            f" ({note})" if note else "",
        )
        if self.metrics is not None:
            self.metrics.observe(route, method, status, transport, seconds)

    def onion_failure(self) -> None:
        """Count an onion envelope that could not be opened."""
        if self.metrics is not None:
            self.metrics.onion_failures.inc()
