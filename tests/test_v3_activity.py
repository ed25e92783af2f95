"""Activity and active users through the community API (docs/API.md, the room
object's ``active_users``; README, ``active_users_recount_seconds``):

- a signed ``/batch`` that polls several rooms records the signer as active in
  each of them (written together at the end of the batch);
- a worker shows a room's active users as it last counted them for up to
  ``active_users_recount_seconds``: one that another worker saw become active
  shows here once that time is over;
- one this worker sees become active is counted at once, without waiting;
- all of it alike whether the poll is answered on the event loop (the default for a
  database on the same machine) or in a request thread (``reads_on_event_loop`` off);
- a poll whose activity cannot be written is answered all the same, and the log
  says so; the signer's next poll writes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from harness import probe
from harness.communityclient import BlindedIdentity, CommunityClient
from harness.expect import expect_ok
from harness.flows import CliRunner, new_room
from harness.server import ServerProcess

RECOUNT_SECONDS = 4
SERVER_ENV = {"OPENGROUP_ACTIVE_USERS_RECOUNT_SECONDS": str(RECOUNT_SECONDS)}


def active_users(client: CommunityClient, token: str) -> int:
    count: int = expect_ok(client.get(f"/room/{token}"))["active_users"]
    return count


def poll_items(tokens: list[str]) -> list[dict[str, Any]]:
    """The rooms' part of a desktop batch poll."""
    items: list[dict[str, Any]] = []
    for token in tokens:
        items.append({"method": "GET", "path": f"/room/{token}/pollInfo/0"})
        items.append({"method": "GET", "path": f"/room/{token}/messages/recent?t=r"})
    return items


@pytest.mark.parametrize("reads_on_event_loop", [True, False])
def test_a_batch_poll_records_the_signer_active_in_every_room_it_polls(
    server: ServerProcess,
    server_factory: Callable[..., ServerProcess],
    reads_on_event_loop: bool,
) -> None:
    if not reads_on_event_loop:
        env = {**SERVER_ENV, "OPENGROUP_READS_ON_EVENT_LOOP": "false"}
        server = server_factory(env=env)
    cli = server.cli
    tokens = [new_room(cli, f"busy{n}_") for n in range(3)]
    quiet = new_room(cli, "quiet_")
    alice = BlindedIdentity.generate()
    with CommunityClient(server.base_url, server.public_key, "onion") as c:
        answers = expect_ok(c.post("/batch", json=poll_items(tokens), identity=alice))
        assert [a["code"] for a in answers] == [200] * 6

        assert [active_users(c, t) for t in tokens] == [1, 1, 1]
        assert active_users(c, quiet) == 0
    rooms = probe.run(
        server,
        "SELECT room_id FROM room_activity WHERE public_key = %s ORDER BY room_id",
        alice.blinded_id(server.public_key),
    )
    assert [room for (room,) in rooms] == sorted(tokens)


def test_a_worker_shows_others_activity_once_its_count_is_stale(
    server: ServerProcess, twin: ServerProcess, cli: CliRunner
) -> None:
    token = new_room(cli, "counted_")
    here = CommunityClient(server.base_url, server.public_key, "http")
    there = CommunityClient(twin.base_url, twin.public_key, "http")
    with here, there:
        assert active_users(here, token) == 0
        counted_at = time.monotonic()

        expect_ok(there.get(f"/room/{token}/pollInfo/0", identity=BlindedIdentity.generate()))

        assert active_users(there, token) == 1  # the worker that saw it: at once
        stale = active_users(here, token)
        if time.monotonic() - counted_at < RECOUNT_SECONDS - 0.5:
            assert stale == 0  # still the count of a moment ago
        time.sleep(max(0.0, counted_at + RECOUNT_SECONDS + 0.2 - time.monotonic()))
        assert active_users(here, token) == 1


def test_a_worker_counts_the_users_it_sees_become_active_at_once(
    server: ServerProcess, cli: CliRunner
) -> None:
    token = new_room(cli, "seen_")
    with CommunityClient(server.base_url, server.public_key, "http") as c:
        assert active_users(c, token) == 0
        for n in range(1, 4):
            expect_ok(c.get(f"/room/{token}/pollInfo/0", identity=BlindedIdentity.generate()))
            assert active_users(c, token) == n


# Triggers that refuse every write of room_activity (and nothing else), per backend.
REFUSE_ACTIVITY = {
    "sqlite": [
        f"CREATE TRIGGER refuse_activity_{op.lower()} BEFORE {op} ON room_activity"
        " BEGIN SELECT RAISE(ABORT, 'activity refused'); END"
        for op in ("INSERT", "UPDATE")
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_activity() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RAISE EXCEPTION 'activity refused'; END $$",
        "CREATE TRIGGER refuse_activity BEFORE INSERT OR UPDATE ON room_activity"
        " FOR EACH ROW EXECUTE FUNCTION refuse_activity()",
    ],
}
ALLOW_ACTIVITY = {
    "sqlite": ["DROP TRIGGER refuse_activity_insert", "DROP TRIGGER refuse_activity_update"],
    "postgresql": ["DROP TRIGGER refuse_activity ON room_activity"],
}


def test_a_poll_is_answered_when_its_activity_cannot_be_written_and_a_later_one_writes_it(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """Activity is statistics, not worth failing a request for: the poll is answered,
    the log says which room's activity was not written, and, nothing having been
    written, the signer's next poll writes it."""
    server = server_factory(env=SERVER_ENV)
    backend = "sqlite" if server.database_url is None else "postgresql"
    token = new_room(server.cli, "refused_")
    alice = BlindedIdentity.generate()
    with CommunityClient(server.base_url, server.public_key, "http") as c:
        for statement in REFUSE_ACTIVITY[backend]:
            probe.run(server, statement)

        answers = expect_ok(c.post("/batch", json=poll_items([token]), identity=alice))

        assert [a["code"] for a in answers] == [200, 200]
        assert f"could not record activity in room {token}" in server.output()
        assert active_users(c, token) == 0
        for statement in ALLOW_ACTIVITY[backend]:
            probe.run(server, statement)

        expect_ok(c.post("/batch", json=poll_items([token]), identity=alice))

        assert active_users(c, token) == 1
