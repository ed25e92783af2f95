"""Community API ("v3") load: onion v4 requests signed by 15-blinded users.

Requests are built as Session desktop builds them (docs/spec/sogs-v3.md
sections 2 to 4), with the cryptography and framing of the test suite's
independent client, ``tests/harness/communityclient.py``: 15-blinded keys, the four
``X-SOGS-*`` headers (a fresh 16-byte nonce each), the bencoded v4 request
and the relay metadata. This module is the one place that puts ``tests/`` on
``sys.path``; nothing here imports the server package.

Two shortcuts, both on the generator's side only:

* each connection makes one ephemeral X25519 key (as the v2 generator does),
  where a real client makes one per request: the server still does its X25519
  exchange on every request;
* a user's blinded key pair is derived once (:class:`BenchIdentity`); the
  client derives it again for every signature.

What is signed when:

* **Posts and reactions**, and **batch polls where nothing is posted** ((e), (f)
  and the v4 ceiling, whose users' cursors never move), are pre-signed before
  the clock starts: per user a pool of complete v4 request plaintexts, each with
  its own nonce and the timestamp of when it was made (well inside the server's
  24 h window), byte for byte what a client sends. A pre-signed poll goes out
  only while the user's cursors are those it was signed with. A user whose pool
  runs dry (or whose cursors moved) signs its next one on the fly, counted as
  signed in the run.
* **The mixes' batch polls** are signed when they are sent
  (:meth:`V4Client.build`): the signature covers the body, and the body
  holds the user's cursors, which move as messages arrive. The time spent
  signing is counted (``sign_ns``) and reported next to the generator's CPU.
"""

from __future__ import annotations

import base64
import random
import struct
import sys
import time
from collections import deque
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from nacl.signing import SigningKey

from bench.loadgen import HttpConnection, Job, padded_message

TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from harness.communityclient import (  # type: ignore[import-not-found, unused-ignore]  # noqa: E402
    ONION_V4_PATH,
    BlindedIdentity,
    BlindedKeyPair,
    OnionKey,
    WireFormatError,
    bdecode_strings,
    desktop_json,
    encode_v4_request,
    onion_decrypt,
    onion_encrypt,
    onion_key_for,
    relay_metadata,
    sogs_headers,
)

MAIN_ROOM = "main"
DATA_POOL_PER_USER = 8  # distinct signed message bodies per user (their signature has no nonce)
REACTIONS = ["👍", "❤", "😂", "🎉", "🙏"]
JSON = "application/json"

# Layout of a batch poll's items: (what, room) per item, in order.
CAPS, INFO, MESSAGES, INBOX, OUTBOX = "capabilities", "poll_info", "messages", "inbox", "outbox"

_KEYS: dict[tuple[bytes, bytes], BlindedKeyPair] = {}


class BenchIdentity(BlindedIdentity):  # type: ignore[misc, unused-ignore]
    """A user of the test client whose blinded keys for a server are derived once."""

    def blinded_keys(self, server_pk: bytes) -> BlindedKeyPair:
        key = (self.seed, server_pk)
        found = _KEYS.get(key)
        if found is None:
            found = _KEYS[key] = super().blinded_keys(server_pk)
        return found


def identity(seed: bytes) -> BenchIdentity:
    """The user with this Ed25519 seed."""
    return BenchIdentity(SigningKey(seed))


def signed_headers(
    user: BenchIdentity, server_pk: bytes, method: str, path: str, body: bytes = b""
) -> dict[str, str]:
    """The X-SOGS headers and Content-Type desktop sends with a request."""
    headers: dict[str, str] = sogs_headers(user, server_pk, method, path, body)
    headers["Content-Type"] = JSON
    return headers


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class OnionV4Channel:
    """One connection's onion channel to the server: its key, relay metadata and HTTP head."""

    def __init__(self, host: str, port: int, server_pk: bytes) -> None:
        ephemeral = X25519PrivateKey.generate()
        self.key: OnionKey = onion_key_for("aes-gcm", ephemeral, server_pk)
        metadata: dict[str, object] = {
            "ephemeral_key": ephemeral.public_key().public_bytes_raw().hex(),
            **relay_metadata(f"http://{host}:{port}", ONION_V4_PATH),
        }
        self.metadata = desktop_json(metadata)  # no enc_type: desktop leaves it out for AES-GCM
        self.head = (
            f"POST {ONION_V4_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: "
        ).encode()

    def wrap(self, plaintext: bytes) -> bytes:
        """The HTTP request the last service node sends: u32le(len) | sealed | metadata."""
        sealed: bytes = onion_encrypt(self.key, plaintext)
        body = struct.pack("<I", len(sealed)) + sealed + self.metadata
        return self.head + str(len(body)).encode() + b"\r\n\r\n" + body

    def unwrap(self, body: bytes) -> tuple[int, bytes]:
        """(code, body) of a v4 answer; WireFormatError if it does not open or parse."""
        parts = bdecode_strings(onion_decrypt(self.key, body))
        if len(parts) != 2:
            raise WireFormatError("a v4 answer is two strings")
        meta = orjson.loads(parts[0])
        return int(meta["code"]), parts[1]


class V4Client:
    """One connection's community API client: its channel, users, cursors and pools."""

    def __init__(self, job: Job, index: int, seeds: list[bytes]) -> None:
        self.job = job
        self.rng = random.Random(job.seed * 100_003 + index)
        self.server_pk = job.server_public
        self.users = [identity(seed) for seed in seeds]
        for user in self.users:
            user.blinded_keys(self.server_pk)  # derived now, before the clock
        self.n_users = len(self.users)
        self.next_u = 0
        self.conn: HttpConnection | None = None
        self.channel = OnionV4Channel(job.host, job.port, job.server_public)
        self.rooms = job.rooms
        # per user: room -> largest seqno seen (None: nothing yet, so messages/recent)
        self.cursors: list[dict[str, int | None]] = [
            {room: job.heads.get(room) for room in self.rooms} for _ in self.users
        ]
        self.inbox: list[int | None] = [None] * self.n_users
        self.outbox: list[int | None] = [None] * self.n_users
        self.layout: list[tuple[str, str]] = []  # items of the request in flight
        self.sign_ns = 0  # time spent signing in build(), whole run
        self.data: list[list[tuple[str, str]]] = []
        self.posts: list[deque[bytes]] = [deque() for _ in self.users]
        self.reactions: list[deque[tuple[bytes, str, int, str]]] = [deque() for _ in self.users]
        self.reacted: list[tuple[int, str] | None] = [None] * self.n_users
        # per user: pre-signed polls, each (the body it signed, the request)
        self.polls: list[deque[tuple[bytes, bytes]]] = [deque() for _ in self.users]
        if job.presign_polls:
            for u in range(self.n_users):
                body = self._poll_body(u)
                signed = (self._signed(u, "POST", "/batch", body) for _ in range(job.presign_polls))
                self.polls[u].extend((body, plaintext) for plaintext in signed)
        if job.kind in ("v4post", "v4mix"):
            for user in self.users:
                pool = []
                for _ in range(DATA_POOL_PER_USER):
                    data = padded_message(self.rng)
                    pool.append((b64(data), b64(user.sign_message_data(data, self.server_pk))))
                self.data.append(pool)
            for u in range(self.n_users):
                for _ in range(job.presign_posts):
                    self.posts[u].append(self._post_plaintext(u))
                pending: tuple[int, str] | None = None
                for _ in range(job.presign_reactions):
                    method, message_id, emoji = self._next_reaction(pending)
                    pending = None if method == "DELETE" else (message_id, emoji)
                    plaintext = self._reaction_plaintext(u, method, message_id, emoji)
                    self.reactions[u].append((plaintext, method, message_id, emoji))

    # -- requests

    def next_user(self) -> int:
        u = self.next_u
        self.next_u = (u + 1) % self.n_users
        return u

    def build(self, u: int) -> tuple[bytes, str, bool]:
        """(the HTTP request, what it is: poll | post | react, signed just now)."""
        kind = self.job.kind
        if kind == "v4post":
            return self._post(u)
        if kind == "v4mix":
            r = self.rng.random()
            if r < self.job.post_fraction:
                return self._post(u)
            if r < self.job.post_fraction + self.job.react_fraction:
                return self._react(u)
        return self._poll(u)

    def _signed(self, u: int, method: str, path: str, body: bytes = b"") -> bytes:
        start = time.perf_counter_ns()
        headers = signed_headers(self.users[u], self.server_pk, method, path, body)
        self.sign_ns += time.perf_counter_ns() - start
        plaintext: bytes = encode_v4_request(method, path, headers, body)
        return plaintext

    def _poll(self, u: int) -> tuple[bytes, str, bool]:
        """POST /batch as desktop polls (:meth:`_poll_body`): pre-signed while the user's
        cursors are those it was signed with, else signed now."""
        body = self._poll_body(u)
        pool = self.polls[u]
        if pool and pool[0][0] != body:  # (the cursors moved: the pool is of no use)
            pool.clear()
        if pool:
            return self.channel.wrap(pool.popleft()[1]), "poll", False
        return self.channel.wrap(self._signed(u, "POST", "/batch", body)), "poll", True

    def _poll_body(self, u: int) -> bytes:
        """The body of a poll as desktop sends it: capabilities, per room pollInfo and
        messages, then the inbox and outbox, each with the user's cursors (and their
        layout, for reading the answer)."""
        cursors = self.cursors[u]
        items: list[dict[str, str]] = [{"method": "GET", "path": "/capabilities"}]
        layout = [(CAPS, "")]
        for room in self.rooms:
            items.append({"method": "GET", "path": f"/room/{room}/pollInfo/0"})
            seqno = cursors[room]
            if seqno is None:
                path = f"/room/{room}/messages/recent?reactors=5"
            else:
                path = f"/room/{room}/messages/since/{seqno}?t=r&reactors=5"
            items.append({"method": "GET", "path": path})
            layout += [(INFO, room), (MESSAGES, room)]
        for box, last in (("inbox", self.inbox[u]), ("outbox", self.outbox[u])):
            path = f"/{box}" if last is None else f"/{box}/since/{last}"
            items.append({"method": "GET", "path": path})
            layout.append((box, ""))
        self.layout = layout
        return desktop_json(items)

    def _post_plaintext(self, u: int) -> bytes:
        data, signature = self.rng.choice(self.data[u])
        body = {"data": data, "signature": signature, "timestamp": time.time_ns() // 1_000_000}
        return self._signed(u, "POST", f"/room/{self.rooms[0]}/message", desktop_json(body))

    def _post(self, u: int) -> tuple[bytes, str, bool]:
        pool = self.posts[u]
        if pool:
            return self.channel.wrap(pool.popleft()), "post", False
        return self.channel.wrap(self._post_plaintext(u)), "post", True

    def _next_reaction(self, pending: tuple[int, str] | None) -> tuple[str, int, str]:
        """Take back the user's last reaction, or add one to a recent message: each user
        holds at most one, so the reactions stay bounded."""
        if pending is not None:
            return "DELETE", pending[0], pending[1]
        return "PUT", self.rng.choice(self.job.reaction_ids), self.rng.choice(REACTIONS)

    def _reaction_plaintext(self, u: int, method: str, message_id: int, emoji: str) -> bytes:
        # desktop puts the raw emoji in the endpoint; the signature covers the decoded path
        return self._signed(u, method, f"/room/{self.rooms[0]}/reaction/{message_id}/{emoji}")

    def _react(self, u: int) -> tuple[bytes, str, bool]:
        pool = self.reactions[u]
        if pool:
            plaintext, method, message_id, emoji = pool.popleft()
            live = False
        else:
            method, message_id, emoji = self._next_reaction(self.reacted[u])
            plaintext = self._reaction_plaintext(u, method, message_id, emoji)
            live = True
        self.reacted[u] = None if method == "DELETE" else (message_id, emoji)
        return self.channel.wrap(plaintext), "react", live

    # -- answers

    def read(
        self, u: int, what: str, status: int, body: bytes
    ) -> tuple[str | None, int, list[str]]:
        """(error, messages seen, errors of batch items); moves the user's cursors."""
        if status != 200:
            return f"http_{status}", 0, []
        try:
            code, payload = self.channel.unwrap(body)
        except (WireFormatError, ValueError, KeyError, TypeError):
            return "undecryptable", 0, []
        expected = 201 if what == "post" else 200
        if code != expected:
            return f"status_{code}", 0, []
        if what != "poll":
            return None, 0, []
        try:
            items = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return "batch_not_json", 0, []
        if not isinstance(items, list) or len(items) != len(self.layout):
            return "batch_items_missing", 0, []
        seen = 0
        item_errors: list[str] = []
        cursors = self.cursors[u]
        for (part, room), item in zip(self.layout, items, strict=True):
            code = item.get("code")
            result = item.get("body")
            if part in (INBOX, OUTBOX) and code == 304:
                continue
            if code != 200:
                item_errors.append(f"item_{part}_{code}")
                continue
            if part == MESSAGES and isinstance(result, list) and result:
                seen += len(result)
                top = max(m.get("seqno", 0) for m in result)
                cursor = cursors[room]
                if cursor is None or top > cursor:
                    cursors[room] = top
            elif part in (INBOX, OUTBOX) and isinstance(result, list) and result:
                top = max(m["id"] for m in result)
                boxes = self.inbox if part == INBOX else self.outbox
                last = boxes[u]
                if last is None or top > last:
                    boxes[u] = top
        return None, seen, item_errors
