"""Crash safety: a server killed mid-burst loses no acknowledged write and shows no torn one.

docs/spec/SPEC.md section 5: "No acknowledged write is lost when a process is
killed; a crash mid-request leaves no half-written state." Several users post
messages and upload files at once (threads, both transports, rate limits off);
the server is killed with SIGKILL while requests are in flight, at three
moments (at the first acknowledgement, a little later, and well into the
burst), and restarted on the same data dir and database. Then:

- every acknowledged (200) message is there with exactly the acknowledged
  server_id, public_key, timestamp, data and signature; every acknowledged
  file downloads completely, byte for byte;
- nothing half-written is visible: every stored message is one that was
  really sent (data, signature and sender as sent), complete, with a valid
  signature over its data; message ids are unique; the API serves exactly the
  rows the database holds; every stored file is complete and is one that was
  really uploaded;
- the server numbers new messages after every stored one (no id reused);
- on SQLite, `PRAGMA integrity_check` says ok.

The acknowledgements of all the kills add up: each restart re-checks all of them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import xeddsa
from harness import probe
from harness.communityclient import BlindedIdentity, CommunityClient, WireFormatError
from harness.communityclient import Transport as CommunityTransport
from harness.flows import b64, message_body, posted, session_padded
from harness.server import ServerProcess
from harness.v2client import (
    DEFAULT_ROOM,
    Client,
    Persona,
    Transport,
    encode_visible_message,
    signed_message,
)
from nacl.signing import VerifyKey

SERVER_ENV = {  # no limit may refuse a request of the burst
    "OPENGROUP_POST_RATE_LIMIT_SECONDS": "0",
    "OPENGROUP_UPLOAD_RATE_LIMIT_SECONDS": "0",
}
USERS = 8
UPLOAD_EVERY = 5  # every fifth request of a user is an upload
UPLOAD_SIZES = (1_000, 400_000)
PAGE = 256
BURST_TIMEOUT = 30.0
# Kill once this many posts have been acknowledged in the current burst.
KILL_MOMENTS = [
    pytest.param(1, id="at-the-first-acknowledgement"),
    pytest.param(50, id="after-50-acknowledgements"),
    pytest.param(300, id="after-300-acknowledgements"),
]


# --------------------------------------------------------------------------- the ledger


@dataclass
class Ledger:
    """What was sent and what was acknowledged, over every burst of the module."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    # data (base64) -> the message body as sent, plus who sent it
    sent_posts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # server_id -> the "message" of the 200 answer
    acked_posts: dict[int, dict[str, Any]] = field(default_factory=dict)
    # sha256 of the bytes -> size, of every upload attempted
    sent_files: dict[str, int] = field(default_factory=dict)
    # file id -> sha256 of the acknowledged upload
    acked_files: dict[int, str] = field(default_factory=dict)
    # answers that were not 200 (there should be none: no limit applies)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    acks_this_burst: int = 0
    # users whose last request of the burst died with the server
    cut_off: int = 0

    def send_post(self, persona: Persona, body: dict[str, Any]) -> None:
        """Record a post before it leaves (it may be stored even if never acknowledged)."""
        with self.lock:
            self.sent_posts[body["data"]] = {**body, "public_key": persona.session_id}

    def ack_post(self, message: dict[str, Any]) -> None:
        """Record an acknowledged post."""
        with self.lock:
            assert message["server_id"] not in self.acked_posts, message
            self.acked_posts[message["server_id"]] = message
            self.acks_this_burst += 1

    def send_file(self, data: bytes) -> str:
        """Record an upload before it leaves; returns its digest."""
        digest = hashlib.sha256(data).hexdigest()
        with self.lock:
            self.sent_files[digest] = len(data)
        return digest

    def ack_file(self, file_id: int, digest: str) -> None:
        """Record an acknowledged upload."""
        with self.lock:
            assert file_id not in self.acked_files, file_id
            self.acked_files[file_id] = digest

    def refuse(self, answer: dict[str, Any]) -> None:
        """Record an unexpected refusal."""
        with self.lock:
            self.refusals.append(answer)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def users(make_persona: Any) -> list[Persona]:
    """The posting users, with tokens claimed once (tokens survive the restarts)."""
    return [make_persona() for _ in range(USERS)]


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    """One ledger for all bursts of the module."""
    return Ledger()


# --------------------------------------------------------------------------- the burst


def new_post(persona: Persona, n: int) -> dict[str, Any]:
    """A fresh, signed, padded message body, unique by its text."""
    return signed_message(
        persona.identity, encode_visible_message(f"crash {n} {os.urandom(8).hex()}")
    )


def hammer(
    server: ServerProcess,
    persona: Persona,
    index: int,
    ledger: Ledger,
    ready: threading.Barrier,
    stop: threading.Event,
) -> None:
    """Post and upload as fast as answers come, until the server is gone (or told to stop)."""
    rng = random.Random(os.urandom(16))  # new bytes every burst: a file is known by its digest
    transport: Transport = "http" if index % 2 else "onion"
    with server.client(transport, timeout=BURST_TIMEOUT) as client:
        ready.wait(BURST_TIMEOUT)
        n = 0
        while not stop.is_set():
            n += 1
            try:
                if n % UPLOAD_EVERY == 0:
                    data = rng.randbytes(rng.randint(*UPLOAD_SIZES))
                    digest = ledger.send_file(data)
                    answer = client.request(
                        "POST",
                        "files",
                        body={"file": base64.b64encode(data).decode()},
                        room=persona.room,
                        token=persona.token,
                    )
                    if answer["status_code"] == 200:
                        ledger.ack_file(answer["result"], digest)
                else:
                    body = new_post(persona, n)
                    ledger.send_post(persona, body)
                    answer = client.request(
                        "POST", "messages", body=body, room=persona.room, token=persona.token
                    )
                    if answer["status_code"] == 200:
                        ledger.ack_post(answer["message"])
                if answer["status_code"] != 200:
                    ledger.refuse(answer)
            except httpx.TransportError:
                with ledger.lock:
                    ledger.cut_off += 1
                return  # the server was killed under this request


def kill_mid_burst(
    server: ServerProcess,
    threads: list[threading.Thread],
    ready: threading.Barrier,
    stop: threading.Event,
    acks: Callable[[], int],
    kill_after: int,
    who: str,
) -> None:
    """Start the threads, let them all begin at once (each waits at ``ready`` with its
    client made: a thread still making it when the first write is acknowledged would
    see ``stop`` and never send), SIGKILL the server once ``kill_after`` writes are
    acknowledged, stop the threads and restart the server."""
    for t in threads:
        t.start()
    ready.wait(BURST_TIMEOUT)
    deadline = time.monotonic() + BURST_TIMEOUT
    try:
        while acks() < kill_after:
            assert time.monotonic() < deadline, f"only {acks()} acks"
            assert any(t.is_alive() for t in threads), f"every {who} stopped before the kill"
            time.sleep(0.001)
        server.kill()
    finally:
        stop.set()
        for t in threads:
            t.join(BURST_TIMEOUT)
    assert not any(t.is_alive() for t in threads), f"a {who} hung after the kill"
    server.start()


def burst_and_kill(
    server: ServerProcess, users: list[Persona], ledger: Ledger, kill_after: int
) -> None:
    """Run the burst, SIGKILL the server once kill_after posts are acknowledged, restart it."""
    ledger.acks_this_burst = ledger.cut_off = 0
    ready, stop = threading.Barrier(len(users) + 1), threading.Event()
    threads = [
        threading.Thread(target=hammer, args=(server, p, i, ledger, ready, stop), daemon=True)
        for i, p in enumerate(users)
    ]
    kill_mid_burst(
        server, threads, ready, stop, lambda: ledger.acks_this_burst, kill_after, "poster"
    )


# --------------------------------------------------------------------------- reading back


def signature_is_valid(session_id: str, data_b64: str, signature_b64: str) -> bool:
    """XEdDSA check of a stored message, independent of the server's own code."""
    signature = base64.b64decode(signature_b64, validate=True)
    if len(signature) != 64:
        return False
    ed_public = xeddsa.curve25519_pub_to_ed25519_pub(
        bytes.fromhex(session_id[2:]), bool(signature[63] & 0x80)
    )
    plain = signature[:63] + bytes([signature[63] & 0x7F])
    return bool(xeddsa.ed25519_verify(plain, ed_public, base64.b64decode(data_b64)))


def database_rows(server: ServerProcess, query: str) -> list[tuple[Any, ...]]:
    """Rows of a query, read from the server's database itself."""
    return probe.run(server, query)


# --------------------------------------------------------------------------- the test


@pytest.mark.parametrize("kill_after", KILL_MOMENTS)
def test_a_killed_server_keeps_every_acknowledged_write_and_shows_no_torn_one(
    server: ServerProcess,
    users: list[Persona],
    ledger: Ledger,
    setup_client: Client,
    kill_after: int,
) -> None:
    burst_and_kill(server, users, ledger, kill_after)
    assert ledger.refusals == []
    assert ledger.acks_this_burst >= kill_after
    assert ledger.cut_off >= 1, "the kill must land while requests are being made"

    # On SQLite the file itself must be sound after the crash and the recovery.
    if server.database_url is None:
        assert database_rows(server, "PRAGMA integrity_check") == [("ok",)]
        assert database_rows(server, "PRAGMA foreign_key_check") == []

    # Messages: every acknowledged one, exactly as acknowledged ...
    reader = users[0]
    stored = setup_client.all_messages(reader, PAGE)
    by_id = {m["server_id"]: m for m in stored}
    ids = [m["server_id"] for m in stored]
    assert len(by_id) == len(stored), [i for i, n in Counter(ids).items() if n > 1]
    lost = [m for i, m in ledger.acked_posts.items() if by_id.get(i) != m]
    assert lost == [], f"{len(lost)} acknowledged messages lost or changed, e.g. {lost[:2]}"
    # ... and nothing that was not really sent, whole, with a valid signature.
    for message in stored:
        sent = ledger.sent_posts.get(message["data"])
        assert sent is not None, f"a stored message nobody sent: {message}"
        for key in ("public_key", "timestamp", "signature"):
            assert message[key] == sent[key], (message, sent)
        assert signature_is_valid(message["public_key"], message["data"], message["signature"])
    # The API shows exactly the rows the database holds (none deleted in this module).
    rows = database_rows(server, f"SELECT server_id FROM messages WHERE room_id = '{DEFAULT_ROOM}'")
    assert sorted(r[0] for r in rows) == sorted(ids)

    # Files: every acknowledged one downloads whole; every stored one is whole and was sent.
    for file_id, digest in ledger.acked_files.items():
        answer = setup_client.request(
            "GET", f"files/{file_id}", room=reader.room, token=reader.token
        )
        assert answer["status_code"] == 200, (file_id, answer)
        assert hashlib.sha256(base64.b64decode(answer["result"])).hexdigest() == digest
    v2_files = f"SELECT id, size, data FROM files WHERE room_id = '{DEFAULT_ROOM}'"
    for file_id, size, data in database_rows(server, v2_files):
        assert len(data) == size, f"file {file_id} is torn: {len(data)} of {size} bytes"
        assert ledger.sent_files.get(hashlib.sha256(data).hexdigest()) == size, file_id

    # New messages are numbered after every stored one: no id is handed out twice.
    after = setup_client.post_message(reader.identity, reader.token, reader.room)
    assert after["status_code"] == 200, after
    assert after["message"]["server_id"] > max(ids, default=0)
    ledger.ack_post(after["message"])
    ledger.sent_posts[after["message"]["data"]] = after["message"]

    assert "Traceback" not in server.output(), server.output()[-3000:]


# =========================================================================== the community API
#
# The same kills under the community API's writes, in a room of their own (`crash3`):
# posts, edits of one's own posts, reactions, pins (by the room's admin), direct messages
# and uploads, by V3_USERS users at once over direct HTTP and onion v4. After each restart,
# over every burst so far:
#
# - every acknowledged post is there, by its poster, holding the data of its last
#   acknowledged edit (or of an edit sent after it, whose answer the kill cut off), with
#   a valid signature over that data; every stored message was really sent;
# - `seqno` never goes back: the room's message_sequence is at least every seqno ever
#   acknowledged, each message's at least the one acknowledged for it, and the next post
#   is numbered after every stored one;
# - every acknowledged reaction is there, no reaction is stored (or counted) twice, and
#   the counts the API shows are the rows the database holds;
# - every acknowledged pin, direct message and upload is there, whole.

V3_ROOM = "crash3"
V3_PATH = f"/room/{V3_ROOM}"
V3_USERS = 6
V3_KILL_MOMENTS = [
    pytest.param(1, id="at-the-first-acknowledgement"),
    pytest.param(40, id="after-40-acknowledgements"),
    pytest.param(200, id="after-200-acknowledgements"),
]
EMOJI = ("\U0001f44d", "\u2764\ufe0f", "\U0001f602")


@dataclass
class V3Post:
    """One post of the community API and the data of each version sent, in order."""

    poster: str
    datas: list[str]
    acked: int = 0  # index in datas of the last acknowledged version
    seqno: int = 0  # the seqno acknowledged last for it


@dataclass
class V3Ledger:
    """What was sent and acknowledged through the community API, over every burst."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent_data: dict[str, str] = field(default_factory=dict)  # data (base64) -> poster
    posts: dict[int, V3Post] = field(default_factory=dict)  # acknowledged, by id
    sent_reactions: set[tuple[int, str, str]] = field(default_factory=set)
    acked_reactions: set[tuple[int, str, str]] = field(default_factory=set)
    acked_pins: set[int] = field(default_factory=set)
    sent_dms: set[bytes] = field(default_factory=set)
    acked_dms: dict[int, tuple[str, str, bytes]] = field(default_factory=dict)
    sent_files: dict[str, int] = field(default_factory=dict)  # sha256 -> size
    acked_files: dict[int, str] = field(default_factory=dict)
    max_seqno: int = 0
    max_info_updates: int = 0
    refusals: list[Any] = field(default_factory=list)
    acks_this_burst: int = 0
    cut_off: int = 0

    def ack(self, seqno: int | None = None) -> None:
        """Count an acknowledgement (call with the lock held)."""
        self.acks_this_burst += 1
        if seqno is not None:
            self.max_seqno = max(self.max_seqno, seqno)


@pytest.fixture(scope="module")
def v3_users(server: ServerProcess) -> list[BlindedIdentity]:
    """The room `crash3`, and its users: the first is its admin (and pins)."""
    server.cli("rooms", "add", V3_ROOM, "Crash 3")
    people = [BlindedIdentity.generate() for _ in range(V3_USERS)]
    server.cli("moderators", "add", people[0].session_id, V3_ROOM, "--admin")
    with CommunityClient(server.base_url, server.public_key, "http") as c:
        for person in people:  # seen by the server, so that they may receive DMs
            assert c.get("/capabilities", identity=person).status == 200
    return people


@pytest.fixture(scope="module")
def v3_ledger() -> V3Ledger:
    return V3Ledger()


def v3_action(
    client: CommunityClient,
    me: BlindedIdentity,
    index: int,
    n: int,
    people: list[BlindedIdentity],
    ledger: V3Ledger,
    rng: random.Random,
) -> None:
    """One write of the burst, recorded before it leaves and when it is acknowledged."""
    pk = client.server_pk
    my_id = me.blinded_id(pk)
    with ledger.lock:
        mine = [i for i, p in ledger.posts.items() if p.poster == my_id]
        anyone = list(ledger.posts)
    kind = 5 if index == 0 and n % 3 == 2 else n % 6  # the admin pins a third of the time
    if kind == 1 and mine:  # edit one of my posts
        message_id = rng.choice(mine)
        body = message_body(me, pk, session_padded(f"edit {n} {os.urandom(6).hex()}"))
        with ledger.lock:
            ledger.sent_data[body["data"]] = my_id
            post = ledger.posts[message_id]
            post.datas.append(body["data"])
            version = len(post.datas) - 1
        answer = client.put(f"{V3_PATH}/message/{message_id}", body, identity=me)
        if answer.status == 200:
            with ledger.lock:
                post.acked = max(post.acked, version)
                ledger.ack()
            return
    elif kind == 2 and anyone:  # react
        message_id, emoji = rng.choice(anyone), rng.choice(EMOJI)
        with ledger.lock:
            ledger.sent_reactions.add((message_id, emoji, my_id))
        answer = client.put(f"{V3_PATH}/reaction/{message_id}/{emoji}", identity=me)
        if answer.status == 200:
            with ledger.lock:
                ledger.acked_reactions.add((message_id, emoji, my_id))
                ledger.ack(answer.body["seqno"])
            return
    elif kind == 3:  # a direct message to someone else
        to = people[(index + 1 + n) % len(people)]
        if to is me:
            to = people[(index + 1) % len(people)]
        data = os.urandom(rng.randint(50, 2000))
        with ledger.lock:
            ledger.sent_dms.add(data)
        answer = client.post(f"/inbox/{to.blinded_id(pk)}", {"message": b64(data)}, identity=me)
        if answer.status == 201:
            with ledger.lock:
                ledger.acked_dms[answer.body["id"]] = (my_id, to.blinded_id(pk), data)
                ledger.ack()
            return
    elif kind == 4:  # an upload
        data = rng.randbytes(rng.randint(*UPLOAD_SIZES))
        digest = hashlib.sha256(data).hexdigest()
        with ledger.lock:
            ledger.sent_files[digest] = len(data)
        answer = client.post(f"{V3_PATH}/file", body=data, identity=me)
        if answer.status == 201:
            with ledger.lock:
                ledger.acked_files[answer.body["id"]] = digest
                ledger.ack()
            return
    elif kind == 5 and index == 0 and anyone:  # the admin pins
        message_id = rng.choice(anyone)
        answer = client.post(f"{V3_PATH}/pin/{message_id}", {}, identity=me)
        if answer.status == 200:
            with ledger.lock:
                ledger.acked_pins.add(message_id)
                ledger.max_info_updates = max(ledger.max_info_updates, answer.body["info_updates"])
                ledger.ack()
            return
    else:  # post
        body = message_body(me, pk, session_padded(f"crash3 {n} {os.urandom(6).hex()}"))
        with ledger.lock:
            ledger.sent_data[body["data"]] = my_id
        answer = client.post(f"{V3_PATH}/message", body, identity=me)
        if answer.status == 201:
            with ledger.lock:
                ledger.posts[answer.body["id"]] = V3Post(
                    my_id, [body["data"]], 0, answer.body["seqno"]
                )
                ledger.ack(answer.body["seqno"])
            return
    with ledger.lock:
        ledger.refusals.append(answer)


def v3_hammer(
    server: ServerProcess,
    people: list[BlindedIdentity],
    index: int,
    ledger: V3Ledger,
    ready: threading.Barrier,
    stop: threading.Event,
) -> None:
    """Write as fast as answers come, until the server is gone (or told to stop)."""
    rng = random.Random(os.urandom(16))
    transport: CommunityTransport = "http" if index % 2 else "onion"
    with CommunityClient(
        server.base_url, server.public_key, transport, timeout=BURST_TIMEOUT
    ) as client:
        ready.wait(BURST_TIMEOUT)
        n = 0
        while not stop.is_set():
            n += 1
            try:
                v3_action(client, people[index], index, n, people, ledger, rng)
            except (httpx.TransportError, WireFormatError):  # (onion: the outer answer)
                with ledger.lock:
                    ledger.cut_off += 1
                return


def v3_burst_and_kill(
    server: ServerProcess, people: list[BlindedIdentity], ledger: V3Ledger, kill_after: int
) -> None:
    ledger.acks_this_burst = ledger.cut_off = 0
    ready, stop = threading.Barrier(len(people) + 1), threading.Event()
    threads = [
        threading.Thread(
            target=v3_hammer, args=(server, people, i, ledger, ready, stop), daemon=True
        )
        for i in range(len(people))
    ]
    kill_mid_burst(
        server, threads, ready, stop, lambda: ledger.acks_this_burst, kill_after, "writer"
    )


def all_room_messages(client: CommunityClient, reader: BlindedIdentity) -> list[dict[str, Any]]:
    """Every message of `crash3` through the API, by seqno pages."""
    found: list[dict[str, Any]] = []
    seqno = 0
    while True:
        page = client.get(f"{V3_PATH}/messages/since/{seqno}?limit=256&t=r", identity=reader)
        assert page.status == 200, page
        if not page.body:
            return found
        found += page.body
        seqno = max(m["seqno"] for m in page.body)


@pytest.mark.parametrize("kill_after", V3_KILL_MOMENTS)
def test_a_killed_server_keeps_every_acknowledged_community_write_and_seqno_never_goes_back(
    server: ServerProcess, v3_users: list[BlindedIdentity], v3_ledger: V3Ledger, kill_after: int
) -> None:
    ledger = v3_ledger
    v3_burst_and_kill(server, v3_users, ledger, kill_after)
    assert ledger.refusals == []
    assert ledger.acks_this_burst >= kill_after
    assert ledger.cut_off >= 1, "the kill must land while requests are being made"
    if kill_after >= 40:  # by now every kind of write was acknowledged
        edits = sum(p.acked > 0 for p in ledger.posts.values())
        kinds = (ledger.acked_reactions, ledger.acked_pins, ledger.acked_dms, ledger.acked_files)
        assert edits and all(kinds), (edits, [len(k) for k in kinds])
    if server.database_url is None:
        assert database_rows(server, "PRAGMA integrity_check") == [("ok",)]
        assert database_rows(server, "PRAGMA foreign_key_check") == []

    with CommunityClient(server.base_url, server.public_key, "onion") as client:
        reader = v3_users[1]
        messages = all_room_messages(client, reader)
        by_id = {m["id"]: m for m in messages}
        assert len(by_id) == len(messages), Counter(m["id"] for m in messages)
        info = client.get(V3_PATH, identity=reader)
        assert info.status == 200, info

        # Posts and edits: every acknowledged one, the last acknowledged version or later.
        for message_id, post in ledger.posts.items():
            stored = by_id.get(message_id)
            assert stored is not None, f"acknowledged post {message_id} lost"
            assert stored["session_id"] == post.poster, stored
            assert stored["data"] in post.datas[post.acked :], (stored, post)
            assert stored["seqno"] >= post.seqno, (stored, post)
        for stored in messages:  # nothing torn, nothing nobody sent
            assert ledger.sent_data.get(stored["data"]) == stored["session_id"], stored
            key = VerifyKey(bytes.fromhex(stored["session_id"][2:]))
            key.verify(base64.b64decode(stored["data"]), base64.b64decode(stored["signature"]))

        # seqno never goes back.
        assert info.body["message_sequence"] >= ledger.max_seqno
        assert info.body["message_sequence"] >= max((m["seqno"] for m in messages), default=0)
        assert info.body["info_updates"] >= ledger.max_info_updates

        # Reactions: every acknowledged one there, none twice, the API counting the rows.
        rows = database_rows(
            server,
            f"SELECT message_id, reaction, public_key FROM reactions WHERE room_id = '{V3_ROOM}'",
        )
        assert len(rows) == len(set(rows)), Counter(rows).most_common(3)
        assert ledger.acked_reactions <= set(rows), ledger.acked_reactions - set(rows)
        assert set(rows) <= ledger.sent_reactions
        counted = Counter((message_id, reaction) for message_id, reaction, _ in rows)
        shown = {
            (m["id"], name): r["count"]
            for m in messages
            for name, r in m.get("reactions", {}).items()
        }
        assert shown == dict(counted)

        # Pins, direct messages, uploads.
        pins = database_rows(server, f"SELECT message_id FROM pins WHERE room_id = '{V3_ROOM}'")
        assert ledger.acked_pins <= {r[0] for r in pins}
        assert {p["id"] for p in info.body.get("pinned_messages", [])} == {r[0] for r in pins}
        dms = {
            r[0]: (r[1], r[2], bytes(r[3]))
            for r in database_rows(
                server, "SELECT id, sender, recipient, data FROM direct_messages"
            )
        }
        for dm_id, sent in ledger.acked_dms.items():
            assert dms.get(dm_id) == sent, (dm_id, dms.get(dm_id), sent)
        assert {d[2] for d in dms.values()} <= ledger.sent_dms
        for file_id, digest in ledger.acked_files.items():
            answer = client.get(f"{V3_PATH}/file/{file_id}", identity=reader)
            assert answer.status == 200, (file_id, answer)
            assert hashlib.sha256(answer.body).hexdigest() == digest
        v3_files = f"SELECT id, size, data FROM files WHERE room_id = '{V3_ROOM}'"
        for file_id, size, data in database_rows(server, v3_files):
            assert len(data) == size, f"file {file_id} is torn: {len(data)} of {size} bytes"
            assert ledger.sent_files.get(hashlib.sha256(data).hexdigest()) == size, file_id

        # The next post comes after every stored one, by id and by seqno.
        after = posted(client, v3_users[2], room=V3_PATH)
        assert after["id"] > max(by_id, default=0)
        assert after["seqno"] > max((m["seqno"] for m in messages), default=0)
        with ledger.lock:
            ledger.sent_data[after["data"]] = after["session_id"]
            ledger.posts[after["id"]] = V3Post(
                after["session_id"], [after["data"]], 0, after["seqno"]
            )
            ledger.max_seqno = max(ledger.max_seqno, after["seqno"])

    assert "Traceback" not in server.output(), server.output()[-3000:]
