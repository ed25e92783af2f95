"""The load generator: N processes, each a uvloop event loop with persistent connections.

Every connection is one closed loop: it sends a request, waits for the whole
answer, records the latency and sends the next. The wire code is minimal
HTTP/1.1 on an :class:`asyncio.Protocol` (a request with Content-Length out; a
status line, headers and a Content-Length body in), because a full HTTP client
would cost more CPU than the server it measures on a 2-core machine.

Onion requests are built as a Session client builds them, with one shortcut:
each connection makes one ephemeral X25519 key and derives the AES-GCM key
once (``HMAC-SHA256(key=b"LOKI", X25519(ephemeral, server))``), where a real
client makes a new one per request. The server still does its X25519 exchange
on every request; only the generator's share is saved. Each request is then
AES-GCM with a fresh IV, framed as ``u32 LE length | IV+ct+tag | JSON metadata``.

Kinds of work (``Job.kind``):

``poll``  ``compact_poll`` of ``Job.rooms`` with the user's token per room and
          the cursor a real client keeps (the largest message ``server_id``
          and deletion ``id`` it has seen per room; a key whose value is unknown
          is left out, as Session desktop does);
``post``  ``POST messages`` to the first room, XEdDSA-signed (a pool of signed
          messages per user is made before the clock starts);
``mix``   per request, a post with probability ``Job.post_fraction``, else a poll;
``fixed`` the poll request, sent to the framework ceiling (answer not decrypted).

Nothing here imports the server package or the tests.
"""

from __future__ import annotations

import array
import asyncio
import base64
import hashlib
import hmac
import os
import random
import socket
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import orjson
import uvloop
import xeddsa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ONION_PATH = "/loki/v3/lsrpc"
REQUEST_TIMEOUT_S = 30.0
POOL_PER_USER = 8
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- keys and crypto


def raw_private(key: X25519PrivateKey) -> bytes:
    """The 32 raw bytes of an X25519 private key."""
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def raw_public(key: X25519PrivateKey) -> bytes:
    """The 32 raw bytes of an X25519 public key."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def loki_key(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    """The symmetric key of the LOKI channel: HMAC-SHA256(b"LOKI", X25519 shared secret)."""
    shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return hmac.new(b"LOKI", shared, hashlib.sha256).digest()


def seal(aead: AESGCM, plaintext: bytes) -> bytes:
    """IV(12) | AES-GCM ciphertext | tag(16)."""
    iv = os.urandom(12)
    return iv + aead.encrypt(iv, plaintext, None)


def unseal(aead: AESGCM, blob: bytes) -> bytes:
    return aead.decrypt(blob[:12], blob[12:], None)


def padded_message(rng: random.Random) -> bytes:
    """Random bytes shaped like a Session message: a protobuf of 20..140 bytes, padded
    with 0x80 then zeros to ceil((len+2)/160)*160 - 1 bytes (Session's off-by-one)."""
    body = rng.randbytes(rng.randint(20, 140))
    total = -(-(len(body) + 2) // 160) * 160 - 1
    return body + b"\x80" + b"\x00" * (total - len(body) - 1)


def sign(private: bytes, data: bytes) -> bytes:
    """XEdDSA signature of ``data`` by a raw X25519 private key (sign bit 0)."""
    return xeddsa.ed25519_priv_sign(xeddsa.priv_force_sign(private, False), data)


@dataclass
class User:
    """A Session identity with one token per room."""

    private: bytes  # raw X25519 private key
    session_id: str  # "05" + public key hex
    tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def generate(cls) -> User:
        key = X25519PrivateKey.generate()
        return cls(raw_private(key), "05" + raw_public(key).hex())


# --------------------------------------------------------------------------- HTTP/1.1


class HttpError(Exception):
    """The connection broke, timed out or answered something we cannot parse."""


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with at most one request in flight."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.head_end = -1
        self.need = 0
        self.status = 0
        self.closed = False
        self.close_after = False

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(lambda: cls(loop), host, port)
        sock = proto.transport.get_extra_info("socket") if proto.transport else None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(HttpError(f"connection lost: {exc}"))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None or self.waiter.done():
            return
        if self.head_end < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            try:
                self._parse_head(bytes(self.buf[:end]))
            except (ValueError, IndexError) as exc:
                self._fail(HttpError(f"bad response head: {exc}"))
                return
            self.head_end = end + 4
        if len(self.buf) - self.head_end < self.need:
            return
        stop = self.head_end + self.need
        body = bytes(self.buf[self.head_end : stop])
        del self.buf[:stop]
        self.head_end = -1
        self.waiter.set_result((self.status, body))

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split(b" ", 2)[1])
        self.need = -1
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                self.need = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                self.close_after = True
            elif name == b"transfer-encoding":
                raise ValueError("chunked answers are not supported")
        if self.need < 0:
            raise ValueError("no Content-Length")

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Send one complete request; (status, body) of the answer."""
        if self.closed or self.transport is None:
            raise HttpError("connection closed")
        waiter = self.loop.create_future()
        self.waiter = waiter
        timer = self.loop.call_later(REQUEST_TIMEOUT_S, self._fail, HttpError("timeout"))
        self.transport.write(data)
        try:
            return await waiter
        finally:
            timer.cancel()
            self.waiter = None
            if self.close_after:
                self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def http_request(
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> bytes:
    """The bytes of one HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --------------------------------------------------------------------------- jobs


@dataclass
class Job:
    """What one load generator process does. Connections ``first_conn ..`` of ``total_conns``."""

    kind: str  # poll | post | mix | fixed
    host: str
    port: int
    server_public: bytes
    rooms: list[str]
    users: list[User]
    heads: dict[str, int]  # room -> newest message server_id at the start (caught-up clients)
    connections: int
    first_conn: int
    total_conns: int
    warmup_s: float
    duration_s: float
    post_fraction: float = 0.05
    seed: int = 0


@dataclass
class Result:
    """What one process measured in the window."""

    count: int = 0
    latencies_ns: bytes = b""
    errors: dict[str, int] = field(default_factory=dict)
    cpu_s: float = 0.0
    window_s: float = 0.0
    polls: int = 0
    posts: int = 0
    messages_seen: int = 0


def proc_cpu_seconds() -> float:
    """user + system CPU time of this process, from /proc/self/stat."""
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Client:
    """One connection's client: its onion key, users, cursors and signed-message pools."""

    def __init__(self, job: Job, index: int, users: list[User]) -> None:
        self.job = job
        self.users = users
        self.next_user = 0
        self.rng = random.Random(job.seed * 100_003 + index)
        ephemeral = X25519PrivateKey.generate()
        self.aead = AESGCM(loki_key(ephemeral, job.server_public))
        meta = {
            "host": job.host,
            "target": ONION_PATH,
            "method": "POST",
            "protocol": "http",
            "port": job.port,
            "ephemeral_key": raw_public(ephemeral).hex(),
        }
        self.meta = orjson.dumps(meta)
        self.head = (
            f"POST {ONION_PATH} HTTP/1.1\r\nHost: {job.host}:{job.port}\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: "
        ).encode()
        # per user and room: [largest message server_id seen, largest deletion id seen]
        self.cursors: list[dict[str, list[int | None]]] = [
            {room: [job.heads.get(room), None] for room in job.rooms} for _ in users
        ]
        self.pools: list[list[tuple[str, str]]] = []
        if job.kind in ("post", "mix"):
            for user in users:
                pool = []
                for _ in range(POOL_PER_USER):
                    data = padded_message(self.rng)
                    pool.append(
                        (
                            base64.b64encode(data).decode(),
                            base64.b64encode(sign(user.private, data)).decode(),
                        )
                    )
                self.pools.append(pool)

    def onion(self, inner: dict[str, Any]) -> bytes:
        blob = seal(self.aead, orjson.dumps(inner))
        body = struct.pack("<I", len(blob)) + blob + self.meta
        return self.head + str(len(body)).encode() + b"\r\n\r\n" + body

    def poll_request(self, u: int) -> bytes:
        user, cursors = self.users[u], self.cursors[u]
        entries = []
        for room in self.job.rooms:
            entry: dict[str, Any] = {"room_id": room, "auth_token": user.tokens[room]}
            messages_after, deletions_after = cursors[room]
            if messages_after is not None:
                entry["from_message_server_id"] = messages_after
            if deletions_after is not None:
                entry["from_deletion_server_id"] = deletions_after
            entries.append(entry)
        body = orjson.dumps({"requests": entries}).decode()
        return self.onion(
            {
                "endpoint": "compact_poll",
                "method": "POST",
                "body": body,
                "headers": {"Content-Type": "application/json"},
            }
        )

    def post_request(self, u: int) -> bytes:
        user = self.users[u]
        data, signature = self.rng.choice(self.pools[u])
        room = self.job.rooms[0]
        body = {
            "public_key": user.session_id,
            "timestamp": time.time_ns() // 1_000_000,
            "data": data,
            "signature": signature,
        }
        return self.onion(
            {
                "endpoint": "messages",
                "method": "POST",
                "body": orjson.dumps(body).decode(),
                "headers": {
                    "Room": room,
                    "Authorization": user.tokens[room],
                    "Content-Type": "application/json",
                },
            }
        )

    def read_poll(self, u: int, inner: dict[str, Any]) -> tuple[int, list[str]]:
        """Advance the user's cursors like a client; (messages seen, per-room errors)."""
        seen = 0
        room_errors: list[str] = []
        cursors = self.cursors[u]
        results = inner.get("results")
        if not isinstance(results, list) or len(results) != len(self.job.rooms):
            room_errors.append("results_missing")
            results = ()
        for result in results:
            code = result.get("status_code")
            if code != 200:
                room_errors.append(f"room_{code}")
                continue
            cursor = cursors.get(result.get("room_id"))
            if cursor is None:
                room_errors.append("room_unknown")
                continue
            messages = result.get("messages")
            if messages:
                seen += len(messages)
                top = max(m["server_id"] for m in messages)
                if cursor[0] is None or top > cursor[0]:
                    cursor[0] = top
            deletions = result.get("deletions")
            if deletions:
                top = max(d["id"] if isinstance(d, dict) else d for d in deletions)
                if cursor[1] is None or top > cursor[1]:
                    cursor[1] = top
        return seen, room_errors


async def _drive(
    job: Job, client: Client, t_go: int, t_measure: int, t_end: int, lat: array.array, res: Result
) -> None:
    """One connection's closed loop, from t_go to t_end (perf_counter_ns)."""
    errors: Counter[str] = Counter()
    conn: HttpConnection | None = None
    clock = time.perf_counter_ns
    kind, fraction, rng = job.kind, job.post_fraction, client.rng
    n_users = len(client.users)
    reported = False
    delay = (t_go - clock()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)
    while True:
        start = clock()
        if start >= t_end:
            break
        u = client.next_user
        client.next_user = (u + 1) % n_users
        is_post = kind == "post" or (kind == "mix" and rng.random() < fraction)
        data = client.post_request(u) if is_post else client.poll_request(u)
        try:
            if conn is None or conn.closed:
                conn = await HttpConnection.open(job.host, job.port)
            status, body = await conn.request(data)
        except (OSError, HttpError) as exc:
            done = clock()
            if done >= t_measure and done < t_end:
                errors["timeout" if "timeout" in str(exc) else "connection"] += 1
            if not reported:
                reported = True
                print(f"load generator: {exc!r} (reported once)", file=sys.stderr, flush=True)
            if conn is not None:
                conn.close()
            conn = None
            await asyncio.sleep(0.05)
            continue
        error = None
        seen = 0
        room_errors: list[str] = []
        if status != 200:
            error = f"http_{status}"
        elif kind != "fixed":
            try:
                inner = orjson.loads(unseal(client.aead, base64.b64decode(body)))
            except Exception:
                error = "undecryptable"
            else:
                code = inner.get("status_code")
                if code != 200:
                    error = f"status_{code}"
                elif not is_post:
                    seen, room_errors = client.read_poll(u, inner)
        done = clock()
        if t_measure <= done < t_end:
            lat.append(done - start)
            if error:
                errors[error] += 1
            for room_error in room_errors:
                errors[room_error] += 1
            if is_post:
                res.posts += 1
            else:
                res.polls += 1
            res.messages_seen += seen
    if conn is not None:
        conn.close()
    for key, value in errors.items():
        res.errors[key] = res.errors.get(key, 0) + value


async def _run(job: Job, pipe: Connection) -> Result:
    """Build the clients, report ready, wait for the start time, drive, and measure."""
    clients = []
    for i in range(job.connections):
        index = job.first_conn + i
        if len(job.users) >= job.total_conns:
            users = job.users[index :: job.total_conns]
        else:
            users = [job.users[index % len(job.users)]]
        clients.append(Client(job, index, users))
    pipe.send(("ready", None))
    _, t_go = pipe.recv()
    t_measure = t_go + int(job.warmup_s * 1e9)
    t_end = t_measure + int(job.duration_s * 1e9)
    res = Result()
    lat = array.array("q")
    cpu: list[float] = []

    async def cpu_marks() -> None:
        for mark in (t_measure, t_end):
            await asyncio.sleep(max(0.0, (mark - time.perf_counter_ns()) / 1e9))
            cpu.append(proc_cpu_seconds())

    marks = asyncio.ensure_future(cpu_marks())
    await asyncio.gather(*(_drive(job, c, t_go, t_measure, t_end, lat, res) for c in clients))
    await marks
    res.count = len(lat)
    res.latencies_ns = lat.tobytes()
    res.cpu_s = cpu[1] - cpu[0]
    res.window_s = job.duration_s
    return res


def worker_main(job: Job, pipe: Connection) -> None:
    """Entry point of one load generator process."""
    try:
        result = uvloop.run(_run(job, pipe))
    except BaseException as exc:
        pipe.send(("error", repr(exc)))
        raise
    pipe.send(("result", result))
