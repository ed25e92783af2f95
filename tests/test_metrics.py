"""Prometheus metrics at `GET /metrics` (operators' interface; README "Deployment").

Off by default (`/metrics` is then an unknown endpoint, 404). With
`metrics_enabled` they are served on the main port to `metrics_allow_from`
addresses only (default loopback), 403 to anyone else. Requests are counted
by route pattern (never a raw path), method, status and transport, with a
latency histogram; onion envelopes that fail to decrypt are counted; rooms,
messages and active users are gauges counted in the database at scrape time.
With `--workers N` every scrape adds up the counters of all workers.

The module's server runs two workers, so every exact count below also checks
that the workers' counters are added up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from harness.server import ServerProcess
from harness.v2client import DEFAULT_ROOM, Client, Persona
from harness.workers import connections_to_each_worker
from prometheus_client.parser import text_string_to_metric_families

ServerFactory = Callable[..., ServerProcess]
PersonaFactory = Callable[..., Persona]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

METRICS_ON = {"OPENGROUP_METRICS_ENABLED": "true"}


# --------------------------------------------------------------------------- helpers


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by (name, sorted labels)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(server: ServerProcess, **headers: str) -> Samples:
    """GET /metrics (must answer 200 in the Prometheus text format) and parse it."""
    resp = httpx.get(server.base_url + "/metrics", headers=headers, trust_env=False)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(resp.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when it is absent (a counter never incremented)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def requests_total(samples: Samples, endpoint: str, status: int, transport: str) -> float:
    """opengroup_requests_total for one GET route pattern, status and transport."""
    return value(
        samples,
        "opengroup_requests_total",
        endpoint=endpoint,
        method="GET",
        status=str(status),
        transport=transport,
    )


# --------------------------------------------------------------------------- fixtures


# The module's server: metrics on, two worker processes.
SERVER_ENV = METRICS_ON
SERVER_ARGS = ["--workers", "2"]


# --------------------------------------------------------------------------- on and off


def test_metrics_are_off_by_default(server_factory: ServerFactory) -> None:
    plain = server_factory()
    resp = httpx.get(plain.base_url + "/metrics", trust_env=False)
    # An unknown path at the root: the community API's plain-text 404.
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    assert "opengroup_" not in resp.text


def test_metrics_are_served_to_loopback_by_default(server: ServerProcess) -> None:
    samples = scrape(server)
    assert ("opengroup_rooms", ()) in samples


@pytest.mark.parametrize(
    "forwarded_for",
    [
        pytest.param("203.0.113.7", id="ipv4-outside"),
        pytest.param("2001:db8::7", id="ipv6-outside"),
    ],
)
def test_metrics_are_refused_to_other_addresses_behind_a_local_proxy(
    server: ServerProcess, forwarded_for: str
) -> None:
    # A reverse proxy on 127.0.0.1 passes the real client in X-Forwarded-For.
    resp = httpx.get(
        server.base_url + "/metrics",
        headers={"X-Forwarded-For": forwarded_for},
        trust_env=False,
    )
    assert resp.status_code == 403
    assert "opengroup_" not in resp.text


def test_metrics_allow_from_replaces_the_loopback_default(server_factory: ServerFactory) -> None:
    elsewhere = server_factory(
        env={**METRICS_ON, "OPENGROUP_METRICS_ALLOW_FROM": "192.0.2.0/24, 2001:db8::/32"}
    )
    assert httpx.get(elsewhere.base_url + "/metrics", trust_env=False).status_code == 403
    allowed = httpx.get(
        elsewhere.base_url + "/metrics", headers={"X-Forwarded-For": "192.0.2.9"}, trust_env=False
    )
    assert allowed.status_code == 200
    assert "opengroup_rooms" in allowed.text


def test_a_bad_metrics_allow_from_stops_the_server_with_a_clear_message(
    server_factory: ServerFactory,
) -> None:
    bad = server_factory(
        env={**METRICS_ON, "OPENGROUP_METRICS_ALLOW_FROM": "127.0.0.1,not-an-address"},
        start=False,
    )
    with pytest.raises(pytest.fail.Exception) as failed:
        bad.start(timeout=10)
    assert "metrics_allow_from" in str(failed.value)
    assert "not-an-address" in str(failed.value)
    assert "Traceback" not in bad.output()


# --------------------------------------------------------------------------- request counters


def test_requests_are_counted_by_route_pattern_status_and_transport(
    server: ServerProcess, client: Client
) -> None:
    transport = client.transport
    before = scrape(server)
    for _ in range(3):
        assert client.request("GET", f"rooms/{DEFAULT_ROOM}")["status_code"] == 200
    assert client.request("GET", "rooms/no_such_room")["status_code"] == 404
    after = scrape(server)
    pattern = "/rooms/{room_id}"
    assert (
        requests_total(after, pattern, 200, transport)
        - requests_total(before, pattern, 200, transport)
        == 3
    )
    assert (
        requests_total(after, pattern, 404, transport)
        - requests_total(before, pattern, 404, transport)
        == 1
    )
    other = "onion" if transport == "http" else "http"
    assert requests_total(after, pattern, 200, other) == requests_total(before, pattern, 200, other)


def test_latency_histogram_counts_every_request(server: ServerProcess, client: Client) -> None:
    labels = {"endpoint": "/rooms", "method": "GET", "transport": client.transport}
    before = scrape(server)
    for _ in range(4):
        assert client.request("GET", "rooms")["status_code"] == 200
    after = scrape(server)
    name = "opengroup_request_duration_seconds"
    assert value(after, name + "_count", **labels) - value(before, name + "_count", **labels) == 4
    assert value(after, name + "_sum", **labels) > value(before, name + "_sum", **labels)
    inf = value(after, name + "_bucket", le="+Inf", **labels)
    assert inf == value(after, name + "_count", **labels)


def test_metrics_never_name_a_raw_path(
    server: ServerProcess, setup_client: Client, user: Persona
) -> None:
    setup_client.request("GET", f"rooms/{DEFAULT_ROOM}")
    setup_client.request("DELETE", f"block_list/{user.session_id}", room=DEFAULT_ROOM)
    setup_client.request("GET", "no/such/endpoint/secret_path_part")
    text = httpx.get(server.base_url + "/metrics", trust_env=False).text
    endpoints = set(re.findall(r'endpoint="([^"]*)"', text))
    assert "/block_list/{public_key}" in endpoints
    assert "unmatched" in endpoints
    assert user.session_id not in text
    assert "secret_path_part" not in text
    assert f"/rooms/{DEFAULT_ROOM}" not in endpoints


def test_onion_decrypt_failures_are_counted(server: ServerProcess, client: Client) -> None:
    before = value(scrape(server), "opengroup_onion_decrypt_failures_total")
    for garbage in (b"", b"\x05\x00\x00\x00short", os.urandom(200)):
        assert client.raw_onion(garbage).status_code == 400
    after = value(scrape(server), "opengroup_onion_decrypt_failures_total")
    assert after - before == 3


# --------------------------------------------------------------------------- gauges


def test_gauges_count_rooms_messages_and_active_users_in_the_database(
    server: ServerProcess, setup_client: Client, make_persona: PersonaFactory
) -> None:
    before = scrape(server)
    room = f"gauge_{os.urandom(3).hex()}"
    server.cli("rooms", "add", room, "Gauges")
    author = make_persona(room=room)
    make_persona(room=room)
    ids = [
        setup_client.post_message(author.identity, author.token, room)["message"]["server_id"]
        for _ in range(3)
    ]
    deleted = setup_client.request("DELETE", f"messages/{ids[0]}", room=room, token=author.token)
    assert deleted["status_code"] == 200, deleted
    after = scrape(server)
    assert value(after, "opengroup_rooms") - value(before, "opengroup_rooms") == 1
    live = value(after, "opengroup_messages", state="live")
    assert live - value(before, "opengroup_messages", state="live") == 2
    gone = value(after, "opengroup_messages", state="deleted")
    assert gone - value(before, "opengroup_messages", state="deleted") == 1
    for window in ("1d", "7d", "30d"):
        new_users = value(after, "opengroup_active_users", window=window) - value(
            before, "opengroup_active_users", window=window
        )
        assert new_users == 2, window


# --------------------------------------------------------------------------- several workers


def test_every_scrape_adds_up_the_counters_of_all_workers(server: ServerProcess) -> None:
    pinned = connections_to_each_worker(server, 2)
    try:
        (pid_a, first), (pid_b, second) = pinned.items()
        assert pid_a != pid_b
        status, body = first.get("/metrics")
        assert status == 200
        before = requests_total(parse(body.decode()), "/rooms", 200, "http")
        for _ in range(5):
            assert first.get("/rooms")[0] == 200
        for _ in range(7):
            assert second.get("/rooms")[0] == 200
        for conn in (first, second):  # whichever worker answers the scrape
            status, body = conn.get("/metrics")
            assert status == 200
            assert requests_total(parse(body.decode()), "/rooms", 200, "http") - before == 12
    finally:
        for conn in pinned.values():
            conn.close()


def test_workers_share_a_fresh_directory_removed_when_the_server_stops(
    server_factory: ServerFactory,
) -> None:
    proc = server_factory(extra_args=["--workers", "2"], env=METRICS_ON)
    pinned = connections_to_each_worker(proc, 2)
    try:
        directories = {
            dict(
                item.split("=", 1)
                for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
                if "=" in item
            ).get("PROMETHEUS_MULTIPROC_DIR")
            for pid in pinned
        }
    finally:
        for conn in pinned.values():
            conn.close()
    assert len(directories) == 1
    (directory,) = directories
    assert directory is not None and Path(directory).is_dir()
    proc.stop()
    assert not Path(directory).exists()
