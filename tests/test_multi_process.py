"""Several server processes, one database (docs/spec/SPEC.md section 5).

Everything that matters lives in the database, nothing in one process's
memory, so any number of `opengroup serve` processes (or workers of one
process) behave as one server: a token, a pending challenge, a message, a
file, a ban, a room image and the posting rate limit are the same whichever
process a request reaches.

Each behaviour is checked on two deployments:

- "two-processes": two `opengroup serve` on different ports sharing one
  database (SQLite: the same data dir, so the same file and key pair;
  PostgreSQL: the same --database-url and the same data dir for the keys).
  Requests alternate between the two.
- "two-workers": one `opengroup serve --workers 2`. The worker cannot be
  chosen, so every request goes on a fresh TCP connection and each check is
  repeated CHECK_ROUNDS times; the kernel spreads connections over both.

Then: processes started at the same moment on empty storage (the same data
dir; the same empty PostgreSQL database) agree on one key pair, the one in the
key files, and create exactly one room.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness.expect import expect_ok
from harness.server import Backend, ServerProcess
from harness.v2client import DEFAULT_ROOM, Client, Identity, Persona, Transport, decrypt_challenge

ServerFactory = Callable[..., ServerProcess]

CHECK_ROUNDS = 6  # fresh connections per check: both processes / both workers get their turn
RATE_LIMIT_COUNT = 5  # the default: 5 posts per 16 s per user per room
STARTING_TOGETHER = 4  # processes started at once on empty storage (more: the race is likelier)
JOIN_URL_KEY = re.compile(r"[?&]public_key=([0-9a-f]{64})\b")


# --------------------------------------------------------------------------- deployments


@dataclass
class Deployment:
    """Server processes serving one database, and a moderator of `main` there."""

    processes: list[ServerProcess]
    moderator: Identity


def fresh_connection_client(proc: ServerProcess, transport: Transport) -> Client:
    """A Client that opens a new TCP connection for every request (no keep-alive).

    With several workers behind one port, each connection may reach another worker.
    """
    http = httpx.Client(
        base_url=proc.base_url,
        timeout=15.0,
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0),
    )
    return Client(proc.base_url, proc.public_key, transport=transport, http_client=http)


class Entries:
    """The deployment's entry points: request number k goes to process k mod n."""

    def __init__(self, deployment: Deployment, transport: Transport) -> None:
        """One fresh-connection client per process, all on the same transport."""
        self.deployment = deployment
        self.clients = [fresh_connection_client(p, transport) for p in deployment.processes]

    def at(self, k: int) -> Client:
        """The client of the k-th entry (alternating processes; any worker)."""
        return self.clients[k % len(self.clients)]

    def rounds(self, start: int = 1) -> Iterator[Client]:
        """CHECK_ROUNDS entries beginning with `start`: by default the *other* process first."""
        for k in range(start, start + CHECK_ROUNDS):
            yield self.at(k)

    def authenticate(self, identity: Identity, room: str = DEFAULT_ROOM) -> Persona:
        """Challenge and claim, both through entry 0."""
        return Persona(identity, self.at(0).authenticate(identity, room), room)

    def close(self) -> None:
        """Close every client."""
        for c in self.clients:
            c.close()


@pytest.fixture(scope="module")
def multi_worker(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[ServerProcess]:
    """One `opengroup serve --workers 2` on its own fresh storage."""
    url = backend.new_database_url()
    data_dir = tmp_path_factory.mktemp("workers") / "data"
    proc = ServerProcess(data_dir, database_url=url, extra_args=["--workers", "2"])
    proc.start()
    yield proc
    proc.stop()
    backend.drop_database(url)


@pytest.fixture(scope="module", params=["two-processes", "two-workers"])
def deployment(request: pytest.FixtureRequest) -> Deployment:
    """Each deployment under test, with a moderator of `main` made through the CLI."""
    if request.param == "two-processes":
        processes = [request.getfixturevalue("server"), request.getfixturevalue("twin")]
    else:
        processes = [request.getfixturevalue("multi_worker")]
    moderator = Identity.generate()
    processes[0].cli("moderators", "add", moderator.session_id, DEFAULT_ROOM)
    return Deployment(processes, moderator)


@pytest.fixture(params=["http", "onion"])
def entries(request: pytest.FixtureRequest, deployment: Deployment) -> Iterator[Entries]:
    """The deployment's entry points, once over direct HTTP and once over onion requests."""
    e = Entries(deployment, request.param)
    yield e
    e.close()


# --------------------------------------------------------------------------- helpers


def post(client: Client, persona: Persona, text: str | None = None) -> dict[str, Any]:
    """POST a signed message as `persona`; returns the whole answer."""
    payload = None if text is None else text.encode()
    return client.post_message(persona.identity, persona.token, persona.room, payload)


def poll_messages(client: Client, persona: Persona, after: int) -> list[dict[str, Any]]:
    """compact_poll one room from a message cursor; the messages of its single result."""
    result = expect_ok(
        client.compact_poll(
            [
                {
                    "room_id": persona.room,
                    "auth_token": persona.token,
                    "from_message_server_id": after,
                    "from_deletion_server_id": None,
                }
            ]
        )
    )
    (room_result,) = result["results"]
    assert room_result["status_code"] == 200, room_result
    return room_result["messages"]


def error_status(result: dict[str, Any]) -> int:
    """The status of an error answer, checking it has the error shape."""
    assert set(result) == {"status_code", "error"}, result
    return result["status_code"]


# --------------------------------------------------------------------------- tokens


def test_a_token_claimed_through_one_process_works_through_every_other(
    entries: Entries,
) -> None:
    persona = entries.authenticate(Identity.generate())
    for c in entries.rounds():
        expect_ok(c.request("GET", "member_count", room=DEFAULT_ROOM, token=persona.token))


def test_a_challenge_requested_from_one_process_can_be_claimed_on_another(
    entries: Entries,
) -> None:
    for k in range(CHECK_ROUNDS):
        identity = Identity.generate()
        asked, claimer, user = entries.at(k), entries.at(k + 1), entries.at(k + 2)
        challenge = expect_ok(
            asked.request(
                "GET", f"auth_token_challenge?public_key={identity.session_id}", room=DEFAULT_ROOM
            )
        )["challenge"]
        token = decrypt_challenge(
            identity, challenge["ciphertext"], challenge["ephemeral_public_key"]
        )
        claim = claimer.request(
            "POST",
            "claim_auth_token",
            body={"public_key": identity.session_id},
            room=DEFAULT_ROOM,
            token=token,
        )
        assert claim == {"status_code": 200}
        expect_ok(user.request("GET", "messages?limit=1", room=DEFAULT_ROOM, token=token))


def test_a_token_revoked_on_one_process_is_refused_on_every_other(entries: Entries) -> None:
    persona = entries.authenticate(Identity.generate())
    expect_ok(entries.at(0).request("DELETE", "auth_token", room=DEFAULT_ROOM, token=persona.token))
    for c in entries.rounds():
        result = c.request("GET", "member_count", room=DEFAULT_ROOM, token=persona.token)
        assert error_status(result) == 401


# --------------------------------------------------------------------------- messages


def test_a_message_posted_on_one_process_appears_in_compact_poll_on_every_other(
    entries: Entries,
) -> None:
    poster = entries.authenticate(Identity.generate())
    reader = entries.authenticate(Identity.generate())
    answer = expect_ok(post(entries.at(0), poster))["message"]
    assert answer["public_key"] == poster.session_id
    for c in entries.rounds():
        assert poll_messages(c, reader, answer["server_id"] - 1) == [answer]


def test_a_message_deleted_on_one_process_is_gone_on_every_other(entries: Entries) -> None:
    poster = entries.authenticate(Identity.generate())
    server_id = expect_ok(post(entries.at(0), poster))["message"]["server_id"]
    expect_ok(
        entries.at(0).request(
            "DELETE", f"messages/{server_id}", room=DEFAULT_ROOM, token=poster.token
        )
    )
    for c in entries.rounds():
        assert poll_messages(c, poster, server_id - 1) == []
        deleted = expect_ok(
            c.request(
                "GET",
                f"deleted_messages?from_server_id={server_id - 1}",
                room=DEFAULT_ROOM,
                token=poster.token,
            )
        )
        assert server_id in deleted["ids"]


def test_the_post_rate_limit_is_shared_by_all_processes(entries: Entries) -> None:
    persona = entries.authenticate(Identity.generate())
    for k in range(RATE_LIMIT_COUNT):
        expect_ok(post(entries.at(k), persona))
    sixth = post(entries.at(RATE_LIMIT_COUNT), persona)
    assert sixth["status_code"] == 429, sixth
    # and every process keeps refusing while the window lasts
    for c in entries.rounds(RATE_LIMIT_COUNT + 1):
        assert post(c, persona)["status_code"] == 429


def test_simultaneous_posts_by_one_user_through_all_processes_accept_exactly_the_limit(
    entries: Entries,
) -> None:
    persona = entries.authenticate(Identity.generate())
    attempts = 2 * RATE_LIMIT_COUNT
    barrier = threading.Barrier(attempts, timeout=30)

    def attempt(k: int) -> int:
        barrier.wait()
        return post(entries.at(k), persona)["status_code"]

    with ThreadPoolExecutor(attempts) as pool:
        statuses = list(pool.map(attempt, range(attempts)))
    assert sorted(statuses) == [200] * RATE_LIMIT_COUNT + [429] * RATE_LIMIT_COUNT


def test_simultaneous_posts_some_refused_get_gapless_ids_each_stored_once(
    entries: Entries,
) -> None:
    """Posts that arrive together are written together (on SQLite in one transaction),
    and some of them are refused: a refused post takes no server_id and leaves no
    trace, and the others are stored exactly as acknowledged."""
    posters = [entries.authenticate(Identity.generate()) for _ in range(3)]
    head = expect_ok(post(entries.at(0), entries.authenticate(Identity.generate())))
    attempts = [(p, k) for p in posters for k in range(2 * RATE_LIMIT_COUNT)]
    barrier = threading.Barrier(len(attempts), timeout=30)

    def attempt(job: tuple[Persona, int]) -> dict[str, Any]:
        persona, k = job
        barrier.wait()
        return post(entries.at(k), persona, f"{persona.identity.session_id} {k}")

    with ThreadPoolExecutor(len(attempts)) as pool:
        answers = list(pool.map(attempt, attempts))
    assert sorted(a["status_code"] for a in answers) == (
        [200] * (len(posters) * RATE_LIMIT_COUNT) + [429] * (len(posters) * RATE_LIMIT_COUNT)
    )
    acknowledged = {a["message"]["server_id"]: a["message"] for a in answers if "message" in a}
    first = head["message"]["server_id"] + 1
    assert sorted(acknowledged) == list(range(first, first + len(acknowledged)))
    stored = poll_messages(entries.at(1), posters[0], first - 1)
    assert {m["server_id"]: m for m in stored} == acknowledged
    assert len(stored) == len(acknowledged)


# --------------------------------------------------------------------------- files


def test_a_file_uploaded_on_one_process_downloads_from_every_other(entries: Entries) -> None:
    persona = entries.authenticate(Identity.generate())
    data = os.urandom(3000)
    upload = expect_ok(
        entries.at(0).request(
            "POST",
            "files",
            body={"file": base64.b64encode(data).decode()},
            room=DEFAULT_ROOM,
            token=persona.token,
        )
    )
    file_id = upload["result"]
    for c in entries.rounds():
        got = c.request("GET", f"files/{file_id}", room=DEFAULT_ROOM, token=persona.token)
        assert got == {"status_code": 200, "result": base64.b64encode(data).decode()}


def test_a_room_image_set_on_one_process_is_served_by_every_other(
    entries: Entries, deployment: Deployment
) -> None:
    moderator = entries.authenticate(deployment.moderator)
    image = os.urandom(500)
    expect_ok(
        entries.at(0).request(
            "POST",
            f"rooms/{DEFAULT_ROOM}/image",
            body={"file": base64.b64encode(image).decode()},
            token=moderator.token,
        )
    )
    for c in entries.rounds():
        got = c.request("GET", f"rooms/{DEFAULT_ROOM}/image")
        assert got == {"status_code": 200, "result": base64.b64encode(image).decode()}


# --------------------------------------------------------------------------- moderation


def test_a_ban_made_on_one_process_applies_on_every_other(
    entries: Entries, deployment: Deployment
) -> None:
    moderator = entries.authenticate(deployment.moderator)
    victim = entries.authenticate(Identity.generate())
    expect_ok(
        entries.at(0).request(
            "POST",
            "block_list",
            body={"public_key": victim.session_id},
            room=DEFAULT_ROOM,
            token=moderator.token,
        )
    )
    for k, c in enumerate(entries.rounds()):
        listed = expect_ok(c.request("GET", "block_list", room=DEFAULT_ROOM, token=moderator.token))
        assert victim.session_id in listed["banned_members"]
        reading = c.request("GET", "messages?limit=1", room=DEFAULT_ROOM, token=victim.token)
        assert error_status(reading) == 403
        assert post(c, victim)["status_code"] == 403
        challenge = c.request(
            "GET", f"auth_token_challenge?public_key={victim.session_id}", room=DEFAULT_ROOM
        )
        assert error_status(challenge) == 403, f"round {k}"


# --------------------------------------------------------------------------- starting together


def start_together(processes: Sequence[ServerProcess]) -> None:
    """Start all processes at the same moment (threads); fail with any startup error."""
    with ThreadPoolExecutor(len(processes)) as pool:
        futures = [pool.submit(p.start) for p in processes]
        for f in futures:
            f.result()


def printed_public_keys(proc: ServerProcess) -> set[str]:
    """The server public keys in the join URLs a process printed on start."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = set(JOIN_URL_KEY.findall(proc.output()))
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"no join URL printed:\n{proc.output()}", pytrace=False)


def test_processes_started_together_on_empty_storage_agree_on_one_key_pair_and_one_room(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "empty" / "data"
    first = server_factory(data_dir=data_dir, start=False)
    procs = [first] + [
        server_factory(data_dir=data_dir, database_url=first.database_url, start=False)
        for _ in range(STARTING_TOGETHER - 1)
    ]
    assert not data_dir.exists()
    start_together(procs)

    file_key = first.public_key
    for proc in procs:
        assert printed_public_keys(proc) == {file_key.hex()}, proc.output()
        # each answers onion requests with the private half of the file's key
        with proc.client("onion") as c:
            assert c.request("GET", "rooms") == {
                "status_code": 200,
                "rooms": [{"id": DEFAULT_ROOM, "name": "Main"}],
            }
    assert first.cli("rooms", "list").stdout == f"{DEFAULT_ROOM}\tMain\n"
    leftovers = sorted(p.name for p in data_dir.iterdir() if p.name.startswith(".x25519"))
    assert leftovers == []
