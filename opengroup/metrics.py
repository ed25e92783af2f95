"""Prometheus metrics at ``GET /metrics`` (off unless ``metrics_enabled``).

Design: the metrics are served **on the main port**, to clients whose address
is in ``metrics_allow_from`` (default loopback: ``127.0.0.1,::1``); anyone
else gets 403, and with metrics off ``/metrics`` is an unknown endpoint (404)
like any other. Behind a reverse proxy on the same host, uvicorn takes the
client address from ``X-Forwarded-For`` when the proxy is 127.0.0.1 (its
``--forwarded-allow-ips`` default), so remote clients stay outside the list;
the nginx example in ``deploy/`` also refuses ``/metrics`` outright.

What is exported:

- ``opengroup_requests_total{endpoint, method, status, transport}``: every
  answered request, named by its route pattern (``/rooms/{room_id}``, never a
  raw path; ``unmatched`` when no route matched), transport ``http``/``onion``;
- ``opengroup_request_duration_seconds{endpoint, method, transport}``: latency;
- ``opengroup_onion_decrypt_failures_total``: onion bodies that could not be
  parsed or decrypted (answered with a plain 400);
- gauges counted in the database at scrape time: ``opengroup_rooms``,
  ``opengroup_messages{state="live"|"deleted"}`` and
  ``opengroup_active_users{window="1d"|"7d"|"30d"}`` (distinct keys).

Several workers (``--workers N``): ``opengroup serve`` creates a fresh,
empty temporary directory before the workers start, points
``PROMETHEUS_MULTIPROC_DIR`` at it (prometheus_client's multiprocess mode) and
removes it when the server stops. Each worker writes its counters there and a
scrape, whichever worker answers it, adds up all of them. prometheus_client
reads that variable when it is first imported, so it is imported here lazily,
after ``serve`` has set it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from opengroup.config import ConfigError, Settings
from opengroup.transport.asgi import closing

if TYPE_CHECKING:
    from opengroup.domain.community import Community
    from opengroup.transport.observe import RequestLog

METRICS_ROUTE = "/metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"
METHODS = frozenset(("GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"))
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allow_from(text: str) -> list[Network]:
    """The networks of ``metrics_allow_from``; ConfigError naming a bad entry."""
    networks: list[Network] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(
                f"metrics_allow_from: {part!r} is not an IP address or network"
            ) from None
    return networks


@contextlib.contextmanager
def multiprocess_directory(settings: Settings) -> Iterator[str | None]:
    """Around the whole server run: the fresh directory the workers share counters in.

    Does nothing (yields None) when metrics are off.
    """
    if not settings.metrics_enabled:
        yield None
        return
    parse_allow_from(settings.metrics_allow_from)  # refuse a bad list before starting
    path = tempfile.mkdtemp(prefix="opengroup-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


class DatabaseCollector:
    """Gauges counted in the database when scraped (nothing kept in a process)."""

    def __init__(self, community: Community) -> None:
        self.community = community

    def describe(self) -> list[Any]:
        return []  # do not query the database when registered

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from opengroup.storage import stats

        with self.community.db.read() as conn:
            rooms = stats.room_count(conn)
            live, deleted = stats.message_counts(conn)
            active = stats.active_users(conn, self.community.clock())
        yield GaugeMetricFamily("opengroup_rooms", "Rooms on this server.", value=rooms)
        messages = GaugeMetricFamily(
            "opengroup_messages", "Messages stored, by state.", labels=["state"]
        )
        messages.add_metric(["live"], live)
        messages.add_metric(["deleted"], deleted)
        yield messages
        users = GaugeMetricFamily(
            "opengroup_active_users",
            "Distinct public keys that used a token in any room within the window.",
            labels=["window"],
        )
        for window, count in active.items():
            users.add_metric([window], count)
        yield users


class Metrics:
    """The counters of one worker and the registry a scrape reads."""

    def __init__(self, community: Community) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess

        self.allow_from = parse_allow_from(community.settings.metrics_allow_from)
        self.threads = community.threads
        self.requests = Counter(
            "opengroup_requests",
            "Requests answered, by route pattern, method, status and transport.",
            ["endpoint", "method", "status", "transport"],
            registry=None,
        )
        self.latency = Histogram(
            "opengroup_request_duration_seconds",
            "Time to answer a request, by route pattern, method and transport.",
            ["endpoint", "method", "transport"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.onion_failures = Counter(
            "opengroup_onion_decrypt_failures",
            "Onion request bodies that could not be parsed or decrypted.",
            registry=None,
        )
        self.registry = CollectorRegistry()
        if os.environ.get(MULTIPROC_ENV):
            # prometheus_client's collectors are not annotated.
            multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        else:  # one process (e.g. the app built in-process): its own counters
            for metric in (self.requests, self.latency, self.onion_failures):
                self.registry.register(metric)
        self.registry.register(DatabaseCollector(community))

    def allowed(self, client_host: str | None) -> bool:
        """Whether this client address may read the metrics."""
        if not client_host:
            return False
        try:
            address = ipaddress.ip_address(client_host)
        except ValueError:
            return False
        return any(address in network for network in self.allow_from)

    def observe(
        self, endpoint: str, method: str, status: int, transport: str, seconds: float
    ) -> None:
        """Count one answered request."""
        endpoint = endpoint or UNMATCHED
        method = method if method in METHODS else "OTHER"  # onion methods are free text
        self.requests.labels(endpoint, method, str(status), transport).inc()
        self.latency.labels(endpoint, method, transport).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The scrape body (queries the database) and its content type.

        Labelled as the classic text format 0.0.4, which every Prometheus reads
        (the body is the same: our names are plain ASCII).
        """
        from prometheus_client import exposition, generate_latest

        content_type = getattr(
            exposition, "CONTENT_TYPE_PLAIN_0_0_4", "text/plain; version=0.0.4; charset=utf-8"
        )
        return generate_latest(self.registry), content_type


class MetricsPage:
    """``GET /metrics``: the scrape, for ``metrics_allow_from`` addresses only (403)."""

    def __init__(self, metrics: Metrics, requests: RequestLog) -> None:
        self.metrics = metrics
        self.requests = requests

    async def scrape(self, request: Request) -> Response:
        started = time.perf_counter()
        client = request.client.host if request.client else None
        if not self.metrics.allowed(client):
            self.requests.record("http", "GET", METRICS_ROUTE, 403, started)
            return closing(request, PlainTextResponse("metrics are not served to you", 403))
        body, content_type = await self.metrics.threads.run(self.metrics.exposition)
        self.requests.record("http", "GET", METRICS_ROUTE, 200, started)
        return closing(request, Response(body, 200, media_type=content_type))
