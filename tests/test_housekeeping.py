"""What a server does by itself now and then, beside the requests (ARCHITECTURE.md).

Pinned here: on SQLite each worker refreshes the query planner's statistics every
``statistics_interval_seconds`` (``ANALYZE`` of a sample of each index, into
``sqlite_stat1``), and goes on answering on the statistics it took up. PostgreSQL's
autovacuum keeps its own; the server leaves them alone, and warns at start if
autovacuum is off. (Pruning is pinned with what it prunes: tokens, files, nonces, DMs.)
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from harness import probe
from harness.flows import wait_until
from harness.server import Backend, ServerProcess
from harness.v2client import DEFAULT_ROOM, Identity


def test_on_sqlite_the_planners_statistics_are_refreshed_and_the_server_goes_on(
    server_factory: Callable[..., ServerProcess], backend: Backend
) -> None:
    if backend.name != "sqlite":
        pytest.skip("PostgreSQL's autovacuum gathers its statistics")
    server = server_factory(env={"OPENGROUP_STATISTICS_INTERVAL_SECONDS": "1"})
    with server.client("http") as client:
        identity = Identity.generate()
        token = client.authenticate(identity, DEFAULT_ROOM)
        assert client.post_message(identity, token, DEFAULT_ROOM)["status_code"] == 200

        def analyzed() -> set[str]:
            tables = probe.run(server, "SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")
            return (
                {row[0] for row in probe.run(server, "SELECT tbl FROM sqlite_stat1")}
                if tables
                else set()
            )

        # (a refresh may have run before the post, when only rooms had rows: the next one
        # takes them up)
        wait_until(lambda: {"messages", "tokens"} <= analyzed(), 10, "messages and tokens analyzed")
        answer = client.request("GET", "messages", room=DEFAULT_ROOM, token=token)
        assert answer["status_code"] == 200 and len(answer["messages"]) == 1, answer


def test_start_warns_when_postgresqls_autovacuum_is_off(
    server_factory: Callable[..., ServerProcess], backend: Backend
) -> None:
    """Without autovacuum PostgreSQL never reclaims the rows the server deletes (expired
    nonces, tokens, files); the operator is told at start. SQLite reuses them itself."""
    server = server_factory()
    autovacuum_off = backend.name == "postgresql" and probe.value(server, "SHOW autovacuum") != "on"
    warned = "PostgreSQL's autovacuum is off" in server.output()
    assert warned == autovacuum_off, server.output()
