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

import httpx
import psycopg
import pytest
from harness.communityclient import BlindedIdentity, CommunityClient
from harness.flows import post_message
from harness.server import Backend, ServerProcess
from harness.v2client import Identity

ServerFactory = Callable[..., ServerProcess]
ROUNDS = 4  # of every kind of request, after each cut
KINDS = 9
POSTS = 1 + KINDS * (1 + ROUNDS)  # of each API


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
    """For each kind of request, the connections are cut and that request comes
    first: it meets a cut connection (every pooled one is) and answers 503. Then
    every kind of request is made until all answer as before."""
    if backend.name != "postgresql":
        pytest.skip("an SQLite file has no connection to lose")
    server = server_factory()
    alice = BlindedIdentity.generate()
    with (
        CommunityClient(server.base_url, server.public_key, "http") as community,
        server.client("http") as v2,
    ):
        token = v2.authenticate(Identity.generate(), "main")
        # A v2 poster for each post (within the rate limits), with a token from before.
        v2_posters = [Identity.generate() for _ in range(POSTS)]
        v2_tokens = [v2.authenticate(poster, "main") for poster in v2_posters]

        def v2_post() -> int:
            poster, poster_token = v2_posters.pop(), v2_tokens.pop()
            return int(v2.post_message(poster, poster_token, "main")["status_code"])

        def community_post() -> int:
            status = post_message(community, BlindedIdentity.generate()).status
            return 200 if status == 201 else status

        kinds: dict[str, Callable[[], int]] = {
            "web page": lambda: httpx.get(server.base_url + "/", trust_env=False).status_code,
            "community post": community_post,
            "v2 post": v2_post,
            "rooms": lambda: community.get("/rooms").status,
            "signed room": lambda: community.get("/room/main", identity=alice).status,
            "signed messages": lambda: (
                community.get("/room/main/messages/recent", identity=alice).status
            ),
            "v2 rooms": lambda: int(v2.request("GET", "rooms")["status_code"]),
            "v2 messages": lambda: int(
                v2.request("GET", "messages", room="main", token=token)["status_code"]
            ),
            "compact_poll": lambda: int(
                v2.compact_poll([{"room_id": "main", "auth_token": token}])["status_code"]
            ),
        }

        def statuses() -> dict[str, int]:
            return {name: request() for name, request in kinds.items()}

        assert len(kinds) == KINDS
        assert set(statuses().values()) == {200}
        for name, first in kinds.items():
            assert cut_connections(backend, server) > 0
            seen = [{name: first()}] + [statuses() for _ in range(ROUNDS)]
            # (the v2 poll's reader reads again on a new connection)
            assert seen[0][name] == (200 if name == "compact_poll" else 503), seen
            assert {status for answers in seen for status in answers.values()} <= {200, 503}, seen
            assert set(seen[-1].values()) == {200}, seen
    assert "Traceback" not in server.output(), server.output()
    assert "Exception" not in server.output(), server.output()
