"""Many clients at once, through several processes on one database (docs/spec/SPEC.md section 5).

Two `opengroup serve` processes share one database (posting rate limit off,
deletions in the numbered `objects` format so every deletion entry can be
counted). Threads, each with its own connections, act at the same moment
through both processes and both transports. What must hold:

- every acknowledged post is stored exactly once, as acknowledged; message
  server_ids are unique and, in a fresh room with no failed post, exactly
  1..N; ids become visible in increasing order, so a poller that follows
  the cursor (`from_message_server_id` = highest id seen) misses nothing;
- concurrent deletions of the same messages by several moderators leave
  exactly one deletion entry per message; concurrent bans and moderator
  additions are idempotent; a claim retried at once through both processes
  succeeds every time;
- concurrent uploads all get distinct file ids, and every file downloads;
- polls at the same moment, of different rooms, tokens and cursors, each get
  exactly their own answer (a process may read many waiting polls at once).
"""

from __future__ import annotations

import base64
import itertools
import os
import random
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from harness.flows import new_room
from harness.server import ServerProcess
from harness.v2client import Client, Identity, Persona, Transport, decrypt_challenge

CliRunner = Callable[..., Any]
T = TypeVar("T")

SERVER_ENV = {
    "OPENGROUP_POST_RATE_LIMIT_SECONDS": "0",
    "OPENGROUP_DELETIONS_FORMAT": "objects",
}
TRANSPORTS: tuple[Transport, Transport] = ("http", "onion")
POSTERS = 8
POSTS_EACH = 20
MODERATORS = 4
MESSAGES_TO_DELETE = 30
UPLOADERS = 8
UPLOADS_EACH = 4
FILE_ID_MIN = 2**31
FILE_ID_MAX = 2**53
PAGE = 50


# --------------------------------------------------------------------------- processes


@pytest.fixture(scope="module")
def processes(server: ServerProcess, twin: ServerProcess) -> list[ServerProcess]:
    """Both processes (the second on the same data dir and database, another port); work
    is spread over them."""
    return [server, twin]


class Connections:
    """One thread's own clients: one per process, each with its own connection pool."""

    def __init__(self, processes: Sequence[ServerProcess]) -> None:
        """Open a client of every process."""
        self.clients = [p.client("http") for p in processes]

    def pick(self, k: int) -> Client:
        """The client of process k mod n."""
        return self.clients[k % len(self.clients)]

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        for c in self.clients:
            c.close()


# --------------------------------------------------------------------------- helpers


def run_together(work: Callable[[int, threading.Barrier], T], n: int) -> list[T]:
    """Run work(i, barrier) in n threads; workers call barrier.wait() to start together.

    Returns the results in thread order; any exception in a thread fails the test.
    """
    barrier = threading.Barrier(n, timeout=60)
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(work, i, barrier) for i in range(n)]
        return [f.result(timeout=120) for f in futures]


def transport_of(k: int) -> Transport:
    """Alternate the transports request by request."""
    return TRANSPORTS[k % 2]


def poll_room(
    client: Client, persona: Persona, after: int, transport: Transport | None = None
) -> dict[str, Any]:
    """One compact_poll entry from a message cursor; returns that room's result."""
    result = client.compact_poll(
        [
            {
                "room_id": persona.room,
                "auth_token": persona.token,
                "from_message_server_id": after,
                "from_deletion_server_id": 0,
            }
        ],
        transport=transport,
    )
    assert result["status_code"] == 200, result
    (room_result,) = result["results"]
    assert room_result["status_code"] == 200, room_result
    return room_result


# --------------------------------------------------------------------------- posting at once


@dataclass
class PostingRun:
    """What happened when POSTERS users posted POSTS_EACH messages each, all at once."""

    room: str
    reader: Persona
    # per poster, in the order the poster sent them: every answer (200 or not)
    answers: list[list[dict[str, Any]]] = field(default_factory=list)
    # what the cursor-following poller saw, in the order it saw it
    polled: list[dict[str, Any]] = field(default_factory=list)
    # everything GET /messages pages through afterwards
    stored: list[dict[str, Any]] = field(default_factory=list)

    @property
    def acknowledged(self) -> list[dict[str, Any]]:
        """The "message" of every 200 answer."""
        return [a["message"] for per in self.answers for a in per if a["status_code"] == 200]


def follow_cursor(
    processes: Sequence[ServerProcess], reader: Persona, done: threading.Event
) -> list[dict[str, Any]]:
    """Poll like a client: from the highest id seen, alternating processes and transports,
    until the posters are done and a poll after that brings nothing new."""
    seen: list[dict[str, Any]] = []
    cursor = 0
    k = 0
    with Connections(processes) as conns:
        while True:
            finished = done.is_set()
            messages = poll_room(conns.pick(k), reader, cursor, transport_of(k // 2))["messages"]
            k += 1
            seen.extend(messages)
            if messages:
                cursor = max(m["server_id"] for m in messages)
            elif finished:
                return seen


@pytest.fixture(scope="module")
def posting_run(processes: list[ServerProcess], cli: CliRunner, setup_client: Client) -> PostingRun:
    """Run the posting storm once for the module; the tests below check its outcome."""
    room = new_room(cli, "storm")
    reader_id = Identity.generate()
    reader = Persona(reader_id, setup_client.authenticate(reader_id, room), room)
    run = PostingRun(room, reader)
    done = threading.Event()

    def poster(i: int, barrier: threading.Barrier) -> list[dict[str, Any]]:
        identity = Identity.generate()
        answers = []
        with Connections(processes) as conns:
            token = conns.pick(i).authenticate(identity, room, transport=transport_of(i))
            barrier.wait()
            for k in range(POSTS_EACH):
                text = f"poster {i} post {k} {os.urandom(4).hex()}".encode()
                client = conns.pick(i + k)
                answers.append(
                    client.post_message(identity, token, room, text, transport=transport_of(k + i))
                )
        return answers

    with ThreadPoolExecutor(1) as pool:
        polling = pool.submit(follow_cursor, processes, reader, done)
        try:
            run.answers = run_together(poster, POSTERS)
        finally:
            done.set()
        run.polled = polling.result(timeout=120)
    run.stored = setup_client.all_messages(reader, PAGE)
    return run


def test_every_concurrent_post_is_acknowledged(posting_run: PostingRun) -> None:
    failures = [a for per in posting_run.answers for a in per if a["status_code"] != 200]
    assert failures == []
    assert len(posting_run.acknowledged) == POSTERS * POSTS_EACH


def test_every_acknowledged_post_is_stored_exactly_once_as_acknowledged(
    posting_run: PostingRun,
) -> None:
    acknowledged = posting_run.acknowledged
    stored = posting_run.stored
    assert len({(m["server_id"], m["data"]) for m in stored}) == len(stored)
    assert {(m["server_id"], m["data"]) for m in stored} == {
        (m["server_id"], m["data"]) for m in acknowledged
    }
    assert sorted(acknowledged, key=lambda m: m["server_id"]) == stored


def test_server_ids_are_unique_and_exactly_one_to_n_in_a_fresh_room(
    posting_run: PostingRun,
) -> None:
    ids = [m["server_id"] for m in posting_run.acknowledged]
    assert len(set(ids)) == len(ids), [i for i, n in Counter(ids).items() if n > 1]
    assert sorted(ids) == list(range(1, len(ids) + 1))


def test_each_senders_ids_increase_in_the_order_the_posts_were_acknowledged(
    posting_run: PostingRun,
) -> None:
    for per in posting_run.answers:
        ids = [a["message"]["server_id"] for a in per if a["status_code"] == 200]
        assert ids == sorted(ids) and len(set(ids)) == len(ids), ids


def test_a_poller_following_the_cursor_sees_every_message_exactly_once(
    posting_run: PostingRun,
) -> None:
    polled_ids = [m["server_id"] for m in posting_run.polled]
    # strictly increasing: no message arrives twice, none below the cursor shows up late
    assert all(a < b for a, b in itertools.pairwise(polled_ids)), polled_ids
    assert posting_run.polled == posting_run.stored


ROOMS_AT_ONCE = 3


def test_concurrent_posts_to_several_rooms_are_all_stored_and_numbered_per_room(
    processes: list[ServerProcess], cli: CliRunner, setup_client: Client
) -> None:
    """Posts waiting together are written in one transaction per process, which locks
    the rows of several rooms: both processes must take them in one order (else, on
    PostgreSQL, each waits for the other and one group of posts fails)."""
    rooms = [new_room(cli, "several") for _ in range(ROOMS_AT_ONCE)]
    posters = [
        Persona(identity, setup_client.authenticate(identity, room), room)
        for room in rooms
        for identity in (Identity.generate(), Identity.generate(), Identity.generate())
    ]

    def poster(i: int, barrier: threading.Barrier) -> list[dict[str, Any]]:
        persona = posters[i]
        with Connections(processes) as conns:
            barrier.wait()
            return [
                conns.pick(i + k).post_message(persona.identity, persona.token, persona.room)
                for k in range(POSTS_EACH)
            ]

    answers = [a for per in run_together(poster, len(posters)) for a in per]
    assert [a for a in answers if a["status_code"] != 200] == []
    for room in rooms:
        reader = next(p for p in posters if p.room == room)
        stored = [m["server_id"] for m in setup_client.all_messages(reader, PAGE)]
        assert stored == list(range(1, POSTS_EACH * len(posters) // ROOMS_AT_ONCE + 1))


# --------------------------------------------------------------------------- polling at once

POLLERS = 12
POLLS_EACH = 15


def test_concurrent_polls_each_get_exactly_their_own_answer(
    processes: list[ServerProcess], cli: CliRunner, setup_client: Client
) -> None:
    rooms = [new_room(cli, "polled") for _ in range(3)]
    members = [
        Persona(identity, setup_client.authenticate(identity, room), room)
        for room in rooms
        for identity in (Identity.generate(), Identity.generate())
    ]
    posted: dict[str, list[int]] = {room: [] for room in rooms}
    for n, member in enumerate(members):
        for _ in range(n % 3 + 1):
            sent = setup_client.post_message(member.identity, member.token, member.room)
            assert sent["status_code"] == 200, sent
            posted[member.room].append(sent["message"]["server_id"])
    moderator = make_moderators(cli, setup_client, rooms[0], 1)[0]
    banned = members[1]
    result = setup_client.request(
        "POST", "block_list", body={"public_key": banned.session_id},
        room=banned.room, token=moderator.token,
    )  # fmt: skip
    assert result["status_code"] == 200, result
    # Entries that differ in every way: rooms, tokens (good, banned, unknown) and
    # cursors (none, each point of the history); each with the answer it must get.
    entries: list[dict[str, Any]] = []
    expected: list[tuple[int, list[int]]] = []
    for member in members:
        for cursor in (None, 0, 1, 2):
            entries.append(
                {"room_id": member.room, "auth_token": member.token,
                 "from_message_server_id": cursor}
            )  # fmt: skip
            after = [i for i in posted[member.room] if cursor is None or i > cursor]
            expected.append((403, []) if member is banned else (200, after))
    entries.append({"room_id": rooms[2], "auth_token": secrets.token_hex(32)})
    expected.append((401, []))
    # Polls of one entry each, and of several at once.
    polls = [[n] for n in range(len(entries))]
    polls += [random.Random(n).sample(range(len(entries)), 4) for n in range(8)]

    def check(which: int, answer: dict[str, Any]) -> None:
        got = [
            (r["status_code"], [m["server_id"] for m in r["messages"]]) for r in answer["results"]
        ]
        assert got == [expected[n] for n in polls[which]], [entries[n] for n in polls[which]]

    def poll_many(i: int, barrier: threading.Barrier) -> list[tuple[int, dict[str, Any]]]:
        with Connections(processes) as conns:
            barrier.wait()
            answers = []
            for k in range(POLLS_EACH):
                which = (i * POLLS_EACH + k) % len(polls)
                requests = [entries[n] for n in polls[which]]
                answer = conns.pick(i + k).compact_poll(requests, transport=transport_of(k))
                answers.append((which, answer))
            return answers

    for which in range(len(polls)):  # alone
        check(which, setup_client.compact_poll([entries[n] for n in polls[which]]))
    for answers in run_together(poll_many, POLLERS):  # among many others at once
        for which, answer in answers:
            check(which, answer)


# --------------------------------------------------------------------------- deleting at once


def make_moderators(cli: CliRunner, setup_client: Client, room: str, count: int) -> list[Persona]:
    """`count` moderators of `room`: the first through the CLI, the rest added by it."""
    personas: list[Persona] = []
    for n in range(count):
        identity = Identity.generate()
        if n == 0:
            cli("moderators", "add", identity.session_id, room)
        else:
            added = setup_client.request(
                "POST",
                "moderators",
                body={"public_key": identity.session_id, "room_id": room},
                room=room,
                token=personas[0].token,
            )
            assert added["status_code"] == 200, added
        personas.append(Persona(identity, setup_client.authenticate(identity, room), room))
    return personas


def test_concurrent_deletions_by_several_moderators_leave_one_deletion_entry_per_message(
    processes: list[ServerProcess], cli: CliRunner, setup_client: Client
) -> None:
    room = new_room(cli, "deletions")
    author = Identity.generate()
    author_token = setup_client.authenticate(author, room)
    ids = []
    for _ in range(MESSAGES_TO_DELETE):
        answer = setup_client.post_message(author, author_token, room)
        assert answer["status_code"] == 200, answer
        ids.append(answer["message"]["server_id"])
    moderators = make_moderators(cli, setup_client, room, MODERATORS)

    def moderator(i: int, barrier: threading.Barrier) -> list[dict[str, Any]]:
        persona = moderators[i]
        order = random.Random(i).sample(ids, len(ids))
        answers = []
        with Connections(processes) as conns:
            barrier.wait()
            k = 0
            while order:
                client = conns.pick(i + k)
                transport = transport_of(k + i // 2)
                if k % 2:  # one at a time, as the seed's DELETE does
                    target = order.pop()
                    answers.append(
                        client.request(
                            "DELETE",
                            f"messages/{target}",
                            room=room,
                            token=persona.token,
                            transport=transport,
                        )
                    )
                else:  # a batch, as desktop's delete_messages does
                    batch, order = order[:4], order[4:]
                    answers.append(
                        client.request(
                            "POST",
                            "delete_messages",
                            body={"ids": batch},
                            room=room,
                            token=persona.token,
                            transport=transport,
                        )
                    )
                k += 1
        return answers

    answers = [a for per in run_together(moderator, MODERATORS) for a in per]
    assert [a for a in answers if a != {"status_code": 200}] == []

    author_view = Persona(author, author_token, room)
    with processes[1].client("onion") as other:
        entries = other.all_deletions(author_view, PAGE)
    assert sorted(e["deleted_message_id"] for e in entries) == sorted(ids)
    assert [e["id"] for e in entries] == list(range(1, len(ids) + 1))
    assert setup_client.all_messages(author_view, PAGE) == []


def test_concurrent_bans_of_one_key_all_succeed_and_delete_each_message_once(
    processes: list[ServerProcess], cli: CliRunner, setup_client: Client
) -> None:
    room = new_room(cli, "bans")
    victim = Identity.generate()
    victim_token = setup_client.authenticate(victim, room)
    posted = []
    for _ in range(10):
        answer = setup_client.post_message(victim, victim_token, room)
        assert answer["status_code"] == 200, answer
        posted.append(answer["message"]["server_id"])
    moderators = make_moderators(cli, setup_client, room, MODERATORS)

    def moderator(i: int, barrier: threading.Barrier) -> list[dict[str, Any]]:
        persona = moderators[i]
        with Connections(processes) as conns:
            barrier.wait()
            return [
                conns.pick(i + k).request(
                    "POST",
                    "ban_and_delete_all" if (i + k) % 2 else "block_list",
                    body={"public_key": victim.session_id},
                    room=room,
                    token=persona.token,
                    transport=transport_of(i + k // 2),
                )
                for k in range(4)
            ]

    answers = [a for per in run_together(moderator, MODERATORS) for a in per]
    assert [a for a in answers if a != {"status_code": 200}] == []

    judge = moderators[0]
    banned = setup_client.request("GET", "block_list", room=room, token=judge.token)
    assert banned["banned_members"] == [victim.session_id]
    entries = setup_client.all_deletions(judge, PAGE)
    assert sorted(e["deleted_message_id"] for e in entries) == posted
    assert [e["id"] for e in entries] == list(range(1, len(posted) + 1))


def test_concurrent_additions_of_one_moderator_all_succeed(
    processes: list[ServerProcess], cli: CliRunner, setup_client: Client
) -> None:
    room = new_room(cli, "mods")
    moderators = make_moderators(cli, setup_client, room, MODERATORS)
    newcomer = Identity.generate()

    def moderator(i: int, barrier: threading.Barrier) -> list[dict[str, Any]]:
        with Connections(processes) as conns:
            barrier.wait()
            return [
                conns.pick(i + k).request(
                    "POST",
                    "moderators",
                    body={"public_key": newcomer.session_id, "room_id": room},
                    room=room,
                    token=moderators[i].token,
                    transport=transport_of(i + k),
                )
                for k in range(3)
            ]

    answers = [a for per in run_together(moderator, MODERATORS) for a in per]
    assert [a for a in answers if a != {"status_code": 200}] == []
    listed = setup_client.request("GET", "moderators", room=room, token=moderators[0].token)
    assert listed["moderators"].count(newcomer.session_id) == 1


# --------------------------------------------------------------------------- claiming at once


def test_concurrent_claims_of_one_challenge_all_succeed_with_one_live_token(
    processes: list[ServerProcess], cli: CliRunner
) -> None:
    room = new_room(cli, "claims")
    identity = Identity.generate()
    with processes[0].client("http") as asker:
        challenge = asker.request(
            "GET", f"auth_token_challenge?public_key={identity.session_id}", room=room
        )
    assert challenge["status_code"] == 200, challenge
    token = decrypt_challenge(
        identity,
        challenge["challenge"]["ciphertext"],
        challenge["challenge"]["ephemeral_public_key"],
    )

    def claimer(i: int, barrier: threading.Barrier) -> list[dict[str, Any]]:
        """A client retrying its claim through both processes (as after a timeout)."""
        with Connections(processes) as conns:
            barrier.wait()
            return [
                conns.pick(i + k).request(
                    "POST",
                    "claim_auth_token",
                    body={"public_key": identity.session_id},
                    room=room,
                    token=token,
                    transport=transport_of(i + k),
                )
                for k in range(2)
            ]

    answers = [a for per in run_together(claimer, 6) for a in per]
    assert answers == [{"status_code": 200}] * len(answers)
    with processes[1].client("onion") as user:
        count = user.request("GET", "member_count", room=room, token=token)
    assert count == {"status_code": 200, "member_count": 1}


# --------------------------------------------------------------------------- uploading at once


def test_concurrent_uploads_get_distinct_file_ids_that_all_download(
    processes: list[ServerProcess], cli: CliRunner, setup_client: Client
) -> None:
    room = new_room(cli, "uploads")

    def uploader(i: int, barrier: threading.Barrier) -> list[tuple[int, bytes]]:
        identity = Identity.generate()
        stored = []
        with Connections(processes) as conns:
            token = conns.pick(i).authenticate(identity, room)
            barrier.wait()
            for k in range(UPLOADS_EACH):
                data = os.urandom(1000 + 97 * k)
                answer = conns.pick(i + k).request(
                    "POST",
                    "files",
                    body={"file": base64.b64encode(data).decode()},
                    room=room,
                    token=token,
                    transport=transport_of(i + k),
                )
                assert answer["status_code"] == 200, answer
                stored.append((answer["result"], data))
            # each file downloads through the other process than the one it went to
            for k, (file_id, data) in enumerate(stored):
                got = conns.pick(i + k + 1).request(
                    "GET", f"files/{file_id}", room=room, token=token, transport=transport_of(k)
                )
                assert got == {"status_code": 200, "result": base64.b64encode(data).decode()}
        return stored

    uploads = [u for per in run_together(uploader, UPLOADERS) for u in per]
    file_ids = [file_id for file_id, _ in uploads]
    assert len(file_ids) == UPLOADERS * UPLOADS_EACH
    assert len(set(file_ids)) == len(file_ids)
    assert all(isinstance(f, int) and FILE_ID_MIN <= f < FILE_ID_MAX for f in file_ids)
