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
import contextlib
import hashlib
import os
import random
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
import xeddsa
from serverprocess import ServerProcess
from sessionclient import (
    DEFAULT_ROOM,
    Client,
    Persona,
    Transport,
    encode_visible_message,
    make_message_body,
    pad_message,
)

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
    padded = pad_message(encode_visible_message(f"crash {n} {os.urandom(8).hex()}"))
    return make_message_body(
        persona.identity, padded, persona.identity.sign(padded), int(time.time() * 1000)
    )


def hammer(
    server: ServerProcess, persona: Persona, index: int, ledger: Ledger, stop: threading.Event
) -> None:
    """Post and upload as fast as answers come, until the server is gone (or told to stop)."""
    rng = random.Random(os.urandom(16))  # new bytes every burst: a file is known by its digest
    transport: Transport = "http" if index % 2 else "onion"
    with server.client(transport, timeout=BURST_TIMEOUT) as client:
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


def burst_and_kill(
    server: ServerProcess, users: list[Persona], ledger: Ledger, kill_after: int
) -> None:
    """Run the burst, SIGKILL the server once kill_after posts are acknowledged, restart it."""
    ledger.acks_this_burst = ledger.cut_off = 0
    stop = threading.Event()
    threads = [
        threading.Thread(target=hammer, args=(server, p, i, ledger, stop), daemon=True)
        for i, p in enumerate(users)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + BURST_TIMEOUT
    try:
        while ledger.acks_this_burst < kill_after:
            assert time.monotonic() < deadline, f"only {ledger.acks_this_burst} acks"
            assert any(t.is_alive() for t in threads), "every poster stopped before the kill"
            time.sleep(0.001)
        server.kill()
    finally:
        stop.set()
        for t in threads:
            t.join(BURST_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a poster hung after the kill"
    server.start()


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
    if server.database_url is None:
        with contextlib.closing(sqlite3.connect(server.data_dir / "opengroup.db")) as conn:
            return conn.execute(query).fetchall()
    with psycopg.connect(server.database_url, autocommit=True) as conn:
        return conn.execute(query).fetchall()


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
    for file_id, size, data in database_rows(server, "SELECT id, size, data FROM files"):
        assert len(data) == size, f"file {file_id} is torn: {len(data)} of {size} bytes"
        assert ledger.sent_files.get(hashlib.sha256(data).hexdigest()) == size, file_id

    # New messages are numbered after every stored one: no id is handed out twice.
    after = setup_client.post_message(reader.identity, reader.token, reader.room)
    assert after["status_code"] == 200, after
    assert after["message"]["server_id"] > max(ids, default=0)
    ledger.ack_post(after["message"])
    ledger.sent_posts[after["message"]["data"]] = after["message"]

    assert "Traceback" not in server.output(), server.output()[-3000:]
