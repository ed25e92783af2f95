"""What clients and the operator see when the database connections are lost
(PostgreSQL restarted, or its backends killed), docs/SECURITY.md "Lost database
connections".

A request that meets a lost connection is answered 503 with a short reason (the
v2 API's error shape, or the community API's plain text), never a 500; the log
says so in one line, without a traceback; and the server reconnects by itself,
so the next requests are answered as before. SQLite has no connection to lose.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from harness.communityclient import BlindedIdentity, CommunityClient
from harness.flows import post_message
from harness.server import Backend, ServerProcess
from harness.v2client import Identity

ServerFactory = Callable[..., ServerProcess]
ROUNDS = 6


def cut_connections(backend: Backend, server: ServerProcess) -> int:
    """Terminate every PostgreSQL backend of the server's database, as a restart does."""
    assert server.database_url is not None
    database = server.database_url.rsplit("/", 1)[1]
    with psycopg.connect(backend.admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return len(rows)


def test_lost_connections_answer_503_then_the_server_carries_on(
    server_factory: ServerFactory, backend: Backend
) -> None:
    if backend.name != "postgresql":
        pytest.skip("an SQLite file has no connection to lose")
    server = server_factory()
    alice = BlindedIdentity.generate()
    with (
        CommunityClient(server.base_url, server.public_key, "http") as community,
        server.client("http") as v2,
    ):
        # A poster of each API per round, each within the rate limits.
        v2_posters = [Identity.generate() for _ in range(ROUNDS + 1)]
        tokens = [v2.authenticate(identity, "main") for identity in v2_posters]
        token = tokens[0]

        def statuses() -> list[int]:
            """A post through each API (first: the first requests after the cut meet
            the broken connections), then one of each kind of read: community, signed
            and not, and v2. (A community post's 201 is counted as 200.)"""
            identity, poster_token = v2_posters.pop(), tokens.pop()
            posted = post_message(community, BlindedIdentity.generate()).status
            return [
                200 if posted == 201 else posted,
                v2.post_message(identity, poster_token, "main")["status_code"],
                community.get("/rooms").status,
                community.get("/room/main", identity=alice).status,
                community.get("/room/main/messages/recent", identity=alice).status,
                v2.request("GET", "rooms")["status_code"],
                v2.request("GET", "messages", room="main", token=token)["status_code"],
                v2.compact_poll([{"room_id": "main", "auth_token": token}])["status_code"],
            ]

        assert set(statuses()) == {200}
        assert cut_connections(backend, server) > 0
        seen = [statuses() for _ in range(ROUNDS)]
    assert {status for answers in seen for status in answers} <= {200, 503}, seen
    assert set(seen[-1]) == {200}, seen
    assert "Traceback" not in server.output(), server.output()
    assert "Exception" not in server.output(), server.output()
