"""Replayed signed requests of the community API, and the nonce store over time.

docs/spec/sogs-v3.md section 2: a signed request carries a 16-byte nonce and its time;
the server accepts a nonce once and refuses it again with 425 `Invalid authentication:
X-SOGS-Nonce cannot be reused`, and refuses a time more than the window
(`request_time_window_seconds`, a day) away from its own with 425 too. What is checked
here, on the real server:

- a replay is refused whichever process or worker it reaches, over either transport,
  and after every process restarted; of the same request sent through all processes
  at once exactly one is accepted;
- the nonce is kept until the request's *own* time leaves the window (its timestamp
  plus the window), not the time it arrived plus the window: a request stamped in the
  future, inside the window, is refused at every moment it is replayed, before its
  nonce is pruned (reused) and after (too far from the server's time);
- the store is bounded by time: a flood of validly signed requests from fresh keys
  adds one row each, and every row is pruned once its request's time has left the
  window; with 100,000 rows in it, half of them expired, pruning brings it down to the
  live ones and signed requests are still answered quickly.

The module's server uses the default window; the short-window server a window of
4 s and a pruning pass every second, so that time can pass within a test.
"""

from __future__ import annotations

import base64
import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from harness import probe
from harness.communityclient import (
    BlindedIdentity,
    CommunityAnswer,
    CommunityClient,
    Transport,
    desktop_json,
    sogs_headers,
)
from harness.expect import expect_ok, expect_refused
from harness.flows import ROOM, message_body, since, start_server, wait_until
from harness.server import Backend, ServerProcess

NONCE_REUSED = "Invalid authentication: X-SOGS-Nonce cannot be reused"
TIMESTAMP_OFF = "Invalid authentication: X-SOGS-Timestamp is too far from current time"
SHORT_WINDOW = 4  # seconds, on the short-window server
PRUNE_EVERY = 1  # second, likewise
ROUNDS = 6  # replays per check, each on a fresh connection (any process, any worker)
FLOOD = 200  # signed requests from as many fresh keys
STORED_NONCES = 100_000


# --------------------------------------------------------------------------- deployments


def fresh_connection_client(proc: ServerProcess, transport: Transport) -> CommunityClient:
    """A client that opens a new TCP connection for every request: with several workers
    behind one port, each may reach another worker."""
    http = httpx.Client(
        base_url=proc.base_url,
        timeout=15.0,
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0),
    )
    return CommunityClient(proc.base_url, proc.public_key, transport, http_client=http)


@pytest.fixture(scope="module")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[ServerProcess]:
    """One `opengroup serve --workers 2` on its own storage."""
    url = backend.new_database_url()
    proc = ServerProcess(
        tmp_path_factory.mktemp("workers") / "data", database_url=url, extra_args=["--workers", "2"]
    )
    proc.start()
    yield proc
    proc.stop()
    backend.drop_database(url)


@pytest.fixture(scope="module", params=["two-processes", "two-workers"])
def processes(request: pytest.FixtureRequest) -> list[ServerProcess]:
    """The processes of each deployment: two serving one database, or one with two
    workers."""
    if request.param == "two-processes":
        return [request.getfixturevalue("server"), request.getfixturevalue("twin")]
    return [request.getfixturevalue("two_workers")]


@pytest.fixture(params=["http", "onion"], ids=["http", "onion4"])
def entries(
    request: pytest.FixtureRequest, processes: list[ServerProcess]
) -> Iterator[list[CommunityClient]]:
    """A fresh-connection client per process and transport: entry k goes to process
    k mod n over transport k mod 2, the first over the parametrised one."""
    other: Transport = "onion" if request.param == "http" else "http"
    made = [
        fresh_connection_client(proc, transport)
        for transport in (request.param, other)
        for proc in processes
    ]
    yield made
    for c in made:
        c.close()


@pytest.fixture(scope="module")
def short_window(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[ServerProcess]:
    """A server whose window is SHORT_WINDOW seconds, pruned every PRUNE_EVERY."""
    yield from start_server(
        tmp_path_factory,
        backend,
        {
            "OPENGROUP_REQUEST_TIME_WINDOW_SECONDS": str(SHORT_WINDOW),
            "OPENGROUP_PRUNE_INTERVAL_SECONDS": str(PRUNE_EVERY),
        },
    )


# --------------------------------------------------------------------------- helpers


class SignedPost:
    """One signed `POST /room/main/message`, kept byte for byte to be sent again."""

    def __init__(self, server_pk: bytes, *, timestamp: int | None = None) -> None:
        self.identity = BlindedIdentity.generate()
        self.nonce = os.urandom(16)
        self.body = message_body(self.identity, server_pk)
        self.headers = sogs_headers(
            self.identity,
            server_pk,
            "POST",
            f"{ROOM}/message",
            desktop_json(self.body),
            nonce=self.nonce,
            timestamp=timestamp,
        )

    def send(self, client: CommunityClient) -> CommunityAnswer:
        return client.post(f"{ROOM}/message", self.body, headers=self.headers)

    def stored(self, client: CommunityClient) -> int:
        """How many messages of its signer the room holds."""
        poster = self.identity.blinded_id(client.server_pk)
        return sum(m["session_id"] == poster for m in since(client, None, 0, "limit=256"))


class Nonces:
    """The server's `request_nonces` table, read and filled directly. A row is a request's
    time and nonce; it may be pruned once that time has left the window (``window``
    seconds, the server's setting)."""

    def __init__(self, server: ServerProcess, window: int) -> None:
        self.server = server
        self.keep = window + 1

    def expiry(self, nonce: bytes) -> float | None:
        """When the nonce may be pruned (None: not stored)."""
        rows = probe.run(
            self.server, "SELECT signed_at FROM request_nonces WHERE nonce = %s", nonce
        )
        return float(rows[0][0]) + self.keep if rows else None

    def count(self, *, live_at: float | None = None) -> int:
        """How many are stored (that may not be pruned before ``live_at``, if given)."""
        query = "SELECT count(*) FROM request_nonces"
        if live_at is not None:
            return int(
                probe.value(self.server, query + " WHERE signed_at > %s", live_at - self.keep)
            )
        return int(probe.value(self.server, query))

    def insert(self, rows: list[tuple[bytes, float]]) -> None:
        """Store (nonce, may be pruned at) rows as a flood of requests would have."""
        keyed = [(math.floor(at) - self.keep, nonce) for nonce, at in rows]
        with probe.connect(self.server, autocommit=False) as conn:
            if self.server.database_url is None:
                conn.executemany("INSERT INTO request_nonces VALUES (?, ?)", keyed)
            else:
                with conn.cursor().copy(
                    "COPY request_nonces (signed_at, nonce) FROM STDIN"
                ) as copy:
                    for row in keyed:
                        copy.write_row(row)
            conn.commit()


# --------------------------------------------------------------------------- every process


def test_a_replay_is_refused_by_every_process_and_worker_over_either_transport(
    entries: list[CommunityClient],
) -> None:
    post = SignedPost(entries[0].server_pk)
    assert post.send(entries[0]).status == 201

    for k in range(ROUNDS):
        expect_refused(post.send(entries[(k + 1) % len(entries)]), 425, NONCE_REUSED)
    assert post.stored(entries[0]) == 1


def test_of_one_request_sent_through_every_process_at_once_exactly_one_is_accepted(
    entries: list[CommunityClient],
) -> None:
    post = SignedPost(entries[0].server_pk)
    targets = [entries[k % len(entries)] for k in range(8)]

    with ThreadPoolExecutor(len(targets)) as pool:
        answers = list(pool.map(post.send, targets))

    assert sorted(a.status for a in answers) == [201] + [425] * 7, answers
    assert all(a.body == NONCE_REUSED for a in answers if a.status == 425), answers
    assert post.stored(entries[0]) == 1


def test_one_reaction_sent_again_and_again_at_once_through_every_process_counts_once(
    entries: list[CommunityClient],
) -> None:
    """Not a replay (each copy is signed anew) but its cousin: the same change requested
    many times at once is made once, and the room's seqno moves once for it."""
    client = entries[0]
    message = SignedPost(client.server_pk)
    assert message.send(client).status == 201
    (posted,) = [
        m
        for m in since(client, None, 0, "limit=256")
        if m["session_id"] == message.identity.blinded_id(client.server_pk)
    ]
    fan = BlindedIdentity.generate()
    path = f"{ROOM}/reaction/{posted['id']}/\U0001f44d"
    targets = [entries[k % len(entries)] for k in range(12)]

    with ThreadPoolExecutor(len(targets)) as pool:
        answers = list(pool.map(lambda c: c.put(path, identity=fan), targets))

    assert all(a.status == 200 for a in answers), answers
    assert sorted(a.body["added"] for a in answers) == [False] * 11 + [True], answers
    assert len({a.body["seqno"] for a in answers}) == 1, answers
    shown = expect_ok(client.get(f"{ROOM}/message/{posted['id']}"))
    assert shown["reactions"]["\U0001f44d"]["count"] == 1, shown
    assert shown["seqno"] == answers[0].body["seqno"], shown


def test_a_replay_after_every_process_restarted_is_refused(
    processes: list[ServerProcess],
) -> None:
    with fresh_connection_client(processes[0], "onion") as client:
        post = SignedPost(client.server_pk)
        assert post.send(client).status == 201
    for proc in processes:
        proc.restart()

    transports: tuple[Transport, ...] = ("http", "onion")
    for proc in processes:
        for transport in transports:
            with fresh_connection_client(proc, transport) as client:
                expect_refused(post.send(client), 425, NONCE_REUSED)
                assert post.stored(client) == 1


@pytest.mark.parametrize(
    "rewrite",
    [
        pytest.param({"X-SOGS-Nonce": "hex"}, id="nonce-as-hex"),
        pytest.param({"X-SOGS-Nonce": "unpadded"}, id="nonce-unpadded"),
        pytest.param({"X-SOGS-Signature": "hex", "X-SOGS-Pubkey": "upper"}, id="sig-hex-key-upper"),
        pytest.param({"X-SOGS-Timestamp": "zeros"}, id="timestamp-with-leading-zeros"),
    ],
)
def test_a_replay_with_its_headers_written_differently_is_still_refused(
    entries: list[CommunityClient], rewrite: dict[str, str]
) -> None:
    """The nonce is the 16 bytes, however they are written: writing them (or the key, or
    the signature) another way makes no new request. A timestamp written with leading
    zeros is another signed text, so its signature no longer checks out (401)."""
    client = entries[0]
    post = SignedPost(client.server_pk)
    assert post.send(client).status == 201
    headers = dict(post.headers)
    for name, how in rewrite.items():
        value = headers[name]
        if how == "hex":
            headers[name] = base64.b64decode(value).hex()
        elif how == "unpadded":
            headers[name] = value.rstrip("=")
        elif how == "upper":
            headers[name] = value.upper()
        else:
            headers[name] = "00" + value
    replay = client.post(f"{ROOM}/message", post.body, headers=headers)
    if "X-SOGS-Timestamp" in rewrite:
        assert replay.status == 401, replay
    else:
        expect_refused(replay, 425, NONCE_REUSED)
    assert post.stored(client) == 1


def test_a_request_refused_for_a_global_ban_is_refused_again_after_the_ban(
    server: ServerProcess,
) -> None:
    """Refused while its signer was banned from the server (403), the same request sent
    again once the ban is over is a replay (425): the user was told it did nothing."""
    with CommunityClient(server.base_url, server.public_key, "onion") as client:
        post = SignedPost(client.server_pk)
        blinded_id = post.identity.blinded_id(client.server_pk)
        server.cli("bans", "add", blinded_id, "--global", "--timeout", "2")
        refused_while_banned = post.send(client)
        assert refused_while_banned.status == 403, refused_while_banned
        wait_until(
            lambda: client.get("/capabilities", identity=post.identity).status == 200,
            10,
            "the ban over",
        )

        expect_refused(post.send(client), 425, NONCE_REUSED)
        assert post.stored(client) == 0


# --------------------------------------------------------------------------- over time


def test_a_request_from_the_future_is_never_accepted_again_before_or_after_pruning(
    short_window: ServerProcess,
) -> None:
    """Stamped SHORT_WINDOW - 1 s ahead: its nonce must outlive arrival + window (when an
    arrival-based expiry would let a replay in) until its timestamp leaves the window."""
    nonces = Nonces(short_window, SHORT_WINDOW)
    with CommunityClient(short_window.base_url, short_window.public_key, "http") as client:
        stamped = int(time.time()) + SHORT_WINDOW - 1
        post = SignedPost(client.server_pk, timestamp=stamped)
        assert post.send(client).status == 201
        assert nonces.expiry(post.nonce) == stamped + SHORT_WINDOW + 1

        # (each answer with the time its request was answered by: a request sent just
        # before the window's end may be judged by the server just after it)
        answers: list[tuple[float, CommunityAnswer]] = []
        while nonces.expiry(post.nonce) is not None or time.time() < stamped + SHORT_WINDOW + 2:
            answer = post.send(client)
            answers.append((time.time(), answer))
            time.sleep(0.25)
            assert time.time() < stamped + 4 * SHORT_WINDOW, "the nonce was never pruned"
        last = post.send(client)  # the nonce gone: the time refuses
        answers.append((time.time(), last))

        assert all(a.status == 425 for _, a in answers), answers
        # While its timestamp is in the window, the nonce refuses it (past arrival + window)
        in_window = [a.body for at, a in answers if at < stamped + SHORT_WINDOW]
        assert set(in_window) == {NONCE_REUSED}, answers
        assert answers[0][0] < stamped - 1 and answers[-1][1].body == TIMESTAMP_OFF, answers
        assert post.stored(client) == 1


def test_a_flood_of_fresh_keys_keeps_only_the_nonces_of_the_last_window(
    short_window: ServerProcess,
) -> None:
    """Every signed request adds a row; pruning removes it once its time has left the
    window (at most a pruning pass later): the table never holds more than the requests
    of the last window and a bit, and empties once the flood stops."""
    nonces = Nonces(short_window, SHORT_WINDOW)
    lifetime = SHORT_WINDOW + 1 + PRUNE_EVERY + 2  # window, rounding, a pass, slack
    sent: list[float] = []
    with CommunityClient(short_window.base_url, short_window.public_key, "http") as client:
        for k in range(FLOOD):
            sent.append(time.time())
            expect_ok(client.get(f"{ROOM}/messages/recent", identity=BlindedIdentity.generate()))
            if k % 25 == 24:
                stored, now = nonces.count(), time.time()
                assert 0 < stored <= sum(t > now - lifetime for t in sent), (k, stored)
    assert nonces.count() > 0
    took = wait_until(lambda: nonces.count() == 0, 3 * lifetime, "every nonce pruned")
    assert time.time() - sent[-1] <= lifetime + 1, took


def test_a_hundred_thousand_nonces_are_pruned_to_the_live_ones_and_requests_stay_fast(
    short_window: ServerProcess,
) -> None:
    """A day's flood: half the rows long expired (requests of up to a day ago), half
    still live (requests of the last seconds, kept up to 2 windows ahead)."""
    nonces = Nonces(short_window, SHORT_WINDOW)
    now = time.time()
    half = STORED_NONCES // 2
    live_until = now + 30  # kept alive through the test, then pruned by time too
    rows = [(os.urandom(16), now - 86_400 * (k + 1) / half) for k in range(half)]
    rows += [(os.urandom(16), live_until + k / half) for k in range(half)]
    nonces.insert(rows)

    wait_until(lambda: nonces.count() <= half + 50, 10, "the expired half pruned")
    assert nonces.count(live_at=live_until - 1) == half  # the live ones all kept

    with CommunityClient(short_window.base_url, short_window.public_key, "onion") as client:
        times = []
        for _ in range(30):
            started = time.perf_counter()
            expect_ok(client.get(f"{ROOM}/messages/recent", identity=BlindedIdentity.generate()))
            times.append(time.perf_counter() - started)
        replayed = SignedPost(client.server_pk)
        assert replayed.send(client).status == 201
        expect_refused(replayed.send(client), 425, NONCE_REUSED)
    times.sort()
    assert times[len(times) // 2] < 0.25 and times[-1] < 2.0, times
