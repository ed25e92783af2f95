"""Member activity and `opengroup stats` (operators' interface).

Using a token in a room (claiming it, any authenticated request, a
`compact_poll` entry) records the key's last activity there in
`room_activity`, but only when the recorded time is older than
`activity_interval_seconds` (default 300): most polls stay read-only.
`opengroup stats` reports rooms, messages (live and deleted), active users
over 1, 7 and 30 days (per room, and distinct over all rooms) and files
(uploads and room images, count and bytes).
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness import probe
from harness.server import ServerProcess
from harness.v2client import DEFAULT_ROOM, Client, Identity, Persona

ServerFactory = Callable[..., ServerProcess]
PersonaFactory = Callable[..., Persona]
DAY = 24 * 3600
INTERVAL = 300  # the default activity_interval_seconds


# --------------------------------------------------------------------------- helpers


def last_active(server: ServerProcess, room: str, session_id: str) -> float | None:
    """The recorded last activity of a key in a room, None if there is none."""
    rows = probe.run(
        server,
        "SELECT last_active FROM room_activity WHERE room_id = %s AND public_key = %s",
        room,
        session_id,
    )
    return float(rows[0][0]) if rows else None


def set_last_active(server: ServerProcess, room: str, session_id: str, when: float) -> None:
    """Pretend the key was last active at ``when``."""
    probe.run(
        server,
        "UPDATE room_activity SET last_active = %s WHERE room_id = %s AND public_key = %s",
        when,
        room,
        session_id,
    )
    assert last_active(server, room, session_id) == when


def use_token(client: Client, persona: Persona, how: str) -> None:
    """One request that uses the persona's token, as a poll or a direct call."""
    if how == "compact_poll":
        entry = {"room_id": persona.room, "auth_token": persona.token, "from_message_server_id": 0}
        result = client.compact_poll([entry])
        assert result["results"][0]["status_code"] == 200, result
    else:
        result = client.request("GET", "messages?limit=1", room=persona.room, token=persona.token)
        assert result["status_code"] == 200, result


@contextlib.contextmanager
def writers_locked_out(server: ServerProcess) -> Iterator[None]:
    """Hold a lock that makes any write to room_activity wait (reads go on)."""
    sqlite = server.database_url is None
    with probe.connect(server, autocommit=sqlite) as conn:
        if sqlite:
            conn.execute("BEGIN IMMEDIATE")  # the one SQLite write lock
        else:
            conn.execute("LOCK TABLE room_activity IN EXCLUSIVE MODE")  # reads still allowed
        try:
            yield
        finally:
            conn.rollback()


def stats_json(server: ServerProcess) -> dict[str, Any]:
    """`opengroup stats --json`, parsed."""
    return json.loads(server.cli("stats", "--json").stdout)


USES = [pytest.param("compact_poll", id="compact_poll"), pytest.param("direct", id="GET-messages")]


# --------------------------------------------------------------------------- activity


def test_claiming_a_token_records_activity_in_that_room_only(
    server: ServerProcess, make_persona: PersonaFactory
) -> None:
    started = time.time()
    member = make_persona()
    recorded = last_active(server, DEFAULT_ROOM, member.session_id)
    assert recorded is not None and started - 1 <= recorded <= time.time() + 1
    rows = probe.run(
        server, "SELECT room_id FROM room_activity WHERE public_key = %s", member.session_id
    )
    assert rows == [(DEFAULT_ROOM,)]


@pytest.mark.parametrize("how", USES)
def test_using_a_token_refreshes_activity_older_than_the_interval(
    server: ServerProcess, client: Client, make_persona: PersonaFactory, how: str
) -> None:
    member = make_persona()
    stale = time.time() - INTERVAL - 60
    set_last_active(server, DEFAULT_ROOM, member.session_id, stale)
    before = time.time()
    use_token(client, member, how)
    refreshed = last_active(server, DEFAULT_ROOM, member.session_id)
    assert refreshed is not None and before - 1 <= refreshed <= time.time() + 1


@pytest.mark.parametrize("how", USES)
def test_using_a_token_leaves_recent_activity_alone(
    server: ServerProcess, client: Client, make_persona: PersonaFactory, how: str
) -> None:
    member = make_persona()
    recent = time.time() - INTERVAL + 60
    set_last_active(server, DEFAULT_ROOM, member.session_id, recent)
    for _ in range(3):
        use_token(client, member, how)
    assert last_active(server, DEFAULT_ROOM, member.session_id) == recent


def test_polls_with_recent_activity_write_nothing(
    server: ServerProcess, make_persona: PersonaFactory
) -> None:
    # While writers are locked out, a recently active member's polls and requests
    # are answered (a write would wait for the lock), and the recorded time stays.
    member = make_persona()
    recent = time.time() - INTERVAL + 60
    set_last_active(server, DEFAULT_ROOM, member.session_id, recent)
    answered = threading.Event()
    failures: list[Exception] = []

    def poll_and_read() -> None:
        try:
            with server.client("onion", timeout=30.0) as quick:
                for _ in range(5):
                    use_token(quick, member, "compact_poll")
                    use_token(quick, member, "direct")
        except Exception as exc:  # reported on the test's thread, below
            failures.append(exc)
        answered.set()

    with writers_locked_out(server):
        user = threading.Thread(target=poll_and_read)
        user.start()
        assert answered.wait(10.0), "a request with recent activity waited for the write lock"
    user.join(30)
    assert failures == []
    assert last_active(server, DEFAULT_ROOM, member.session_id) == recent


def test_a_stale_poll_waits_for_the_lock_then_records_activity(
    server: ServerProcess, make_persona: PersonaFactory
) -> None:
    # The other side of the test above: a refresh really is a write.
    member = make_persona()
    stale = time.time() - INTERVAL - 60
    set_last_active(server, DEFAULT_ROOM, member.session_id, stale)
    answered = threading.Event()

    def poll() -> None:
        with server.client("http", timeout=30.0) as slow:
            use_token(slow, member, "compact_poll")
        answered.set()

    with writers_locked_out(server):
        poller = threading.Thread(target=poll)
        poller.start()
        assert not answered.wait(1.5), "the refresh should have waited for the write lock"
    poller.join(30)
    assert answered.is_set()
    refreshed = last_active(server, DEFAULT_ROOM, member.session_id)
    assert refreshed is not None and refreshed > stale


def test_the_interval_is_configurable(server_factory: ServerFactory) -> None:
    eager = server_factory(env={"OPENGROUP_ACTIVITY_INTERVAL_SECONDS": "0"})
    with eager.client("http") as client:
        identity = Identity.generate()
        member = Persona(identity, client.authenticate(identity, DEFAULT_ROOM), DEFAULT_ROOM)
        first = last_active(eager, DEFAULT_ROOM, member.session_id)
        time.sleep(0.05)
        use_token(client, member, "compact_poll")
        second = last_active(eager, DEFAULT_ROOM, member.session_id)
    assert first is not None and second is not None and second > first


def test_banned_members_are_not_recorded_as_active(
    server: ServerProcess, client: Client, banned_user: Persona
) -> None:
    stale = time.time() - INTERVAL - 60
    set_last_active(server, DEFAULT_ROOM, banned_user.session_id, stale)
    result = client.request("GET", "messages", room=DEFAULT_ROOM, token=banned_user.token)
    assert result["status_code"] == 403
    assert last_active(server, DEFAULT_ROOM, banned_user.session_id) == stale


# --------------------------------------------------------------------------- opengroup stats


def upload(client: Client, persona: Persona, data: bytes) -> int:
    """POST files in the persona's room; the new file id."""
    body = {"file": base64.b64encode(data).decode()}
    result = client.request("POST", "files", body=body, room=persona.room, token=persona.token)
    assert result["status_code"] == 200, result
    return int(result["result"])


def test_stats_counts_rooms_messages_active_users_and_files(
    server_factory: ServerFactory,
) -> None:
    proc = server_factory()
    now = time.time()
    proc.cli("rooms", "add", "lobby", "The Lobby")
    proc.cli("rooms", "add", "empty", "Empty")
    admin = Identity.generate()
    proc.cli("moderators", "add", admin.session_id, "lobby")
    with proc.client("http") as client:

        def member(room: str, identity: Identity | None = None) -> Persona:
            ident = identity or Identity.generate()
            return Persona(ident, client.authenticate(ident, room), room)

        # lobby: the moderator, a, b, c; main: a (again) and d.
        mod = member("lobby", admin)
        a, b, c = member("lobby"), member("lobby"), member("lobby")
        a_main, d = member(DEFAULT_ROOM, a.identity), member(DEFAULT_ROOM)
        ids = [client.post_message(a.identity, a.token, "lobby")["message"]["server_id"]]
        ids += [client.post_message(b.identity, b.token, "lobby")["message"]["server_id"]]
        ids += [client.post_message(mod.identity, mod.token, "lobby")["message"]["server_id"]]
        client.post_message(d.identity, d.token, DEFAULT_ROOM)
        deleted = client.request(
            "POST", "delete_messages", body={"ids": ids[:2]}, room="lobby", token=mod.token
        )
        assert deleted["status_code"] == 200, deleted
        upload(client, a, b"x" * 1000)
        upload(client, b, b"y" * 234)
        expired = upload(client, a_main, b"z" * 50)
        image = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(92)).decode()
        result = client.request("POST", "rooms/lobby/image", body={"file": image}, token=mod.token)
        assert result["status_code"] == 200, result
    probe.run(proc, "UPDATE files SET expires_at = %s WHERE id = %s", now - 1, expired)
    # Activity: a and d today; b 3 days ago; c 10 days ago; the moderator 40 days ago.
    set_last_active(proc, "lobby", b.session_id, now - 3 * DAY)
    set_last_active(proc, "lobby", c.session_id, now - 10 * DAY)
    set_last_active(proc, "lobby", mod.session_id, now - 40 * DAY)

    def room(room_id: str, name: str, **counts: Any) -> dict[str, Any]:
        zero = {"1d": 0, "7d": 0, "30d": 0}
        base = {"messages": 0, "deleted_messages": 0, "active_users": zero, "uploads": 0}
        base |= {"upload_bytes": 0, "room_images": 0, "room_image_bytes": 0}
        return {"room_id": room_id, "name": name, **base, **counts}

    assert stats_json(proc) == {
        "rooms": [
            room("empty", "Empty"),
            room(
                "lobby",
                "The Lobby",
                messages=1,
                deleted_messages=2,
                active_users={"1d": 1, "7d": 2, "30d": 3},
                uploads=2,
                upload_bytes=1234,
                room_images=1,
                room_image_bytes=100,
            ),
            room(
                DEFAULT_ROOM,
                "Main",
                messages=1,
                active_users={"1d": 2, "7d": 2, "30d": 2},
            ),
        ],
        "total": {
            "rooms": 3,
            "messages": 2,
            "deleted_messages": 2,
            "active_users": {"1d": 2, "7d": 3, "30d": 4},  # a counts once
            "uploads": 2,
            "upload_bytes": 1234,
            "room_images": 1,
            "room_image_bytes": 100,
        },
    }
    text = proc.cli("stats").stdout
    assert "rooms: 3" in text
    assert "messages: 2 live, 2 deleted" in text
    assert "active users (1d/7d/30d, distinct over all rooms): 2/3/4" in text
    assert "files: 2 uploads (1234 bytes), 1 room images (100 bytes)" in text
    assert "lobby\t1\t2\t1/2/3\t2\t1234\t100" in text.splitlines()


def test_stats_of_a_fresh_server(server_factory: ServerFactory) -> None:
    proc = server_factory(start=False)
    proc.data_dir.mkdir(parents=True, exist_ok=True)
    counts = stats_json(proc)
    assert counts["total"] == {
        "rooms": 1,
        "messages": 0,
        "deleted_messages": 0,
        "active_users": {"1d": 0, "7d": 0, "30d": 0},
        "uploads": 0,
        "upload_bytes": 0,
        "room_images": 0,
        "room_image_bytes": 0,
    }
    assert [r["room_id"] for r in counts["rooms"]] == [DEFAULT_ROOM]
