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

and of the community API, through onion v4 with 15-blinded users
(:mod:`bench.community`, which builds them with the test suite's independent
client):

``v4poll``  ``POST /batch`` holding what desktop polls, for ``Job.rooms``;
``v4post``  ``POST /room/<first room>/message``, pre-signed;
``v4mix``   per request, a post with probability ``Job.post_fraction``, a
            reaction (``PUT``, then ``DELETE`` of the same) with probability
            ``Job.react_fraction``, else a batch poll.

Closed loop by default. With ``Job.open_loop_rate`` set, each process sends at
a fixed rate instead (its share of the rate, evenly spaced) on whichever of its
connections is free, and measures each latency from the request's intended
send time, so a stall shows as clients would see it (no coordinated omission);
a request that cannot go out on time (no connection free, or the process
behind) waits and its wait counts.

Nothing here imports the server package; only :mod:`bench.community` imports
the tests' client.
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
from typing import Any, Protocol

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

    kind: str  # poll | post | mix | fixed | v4poll | v4post | v4mix
    host: str
    port: int
    server_public: bytes
    rooms: list[str]
    users: list[User]
    heads: dict[str, int]  # room -> newest message server_id (v2) or seqno (v4) at the start
    connections: int
    first_conn: int
    total_conns: int
    warmup_s: float
    duration_s: float
    post_fraction: float = 0.05
    react_fraction: float = 0.0
    seed: int = 0
    seeds: list[bytes] = field(default_factory=list)  # community API users: Ed25519 seeds
    reaction_ids: list[int] = field(default_factory=list)  # recent messages to react to
    presign_posts: int = 0  # pre-signed posts per user (v4)
    presign_reactions: int = 0  # pre-signed reactions per user (v4)
    presign_polls: int = 0  # pre-signed polls per user (v4, where nothing is posted)
    open_loop_rate: float = 0.0  # requests/s of all processes together; 0: closed loop
    late_ms: float = 10.0  # open loop: a send this late (or more) counts as missed


@dataclass
class Result:
    """What one process measured in the window."""

    count: int = 0
    latencies_ns: bytes = b""
    poll_latencies_ns: bytes = b""  # the polls' alone, for a mix's tail
    write_latencies_ns: bytes = b""  # the posts' and reactions' alone
    errors: dict[str, int] = field(default_factory=dict)
    cpu_s: float = 0.0
    sign_s: float = 0.0  # time spent signing requests in the window (v4 polls, dry pools)
    window_s: float = 0.0
    polls: int = 0
    posts: int = 0
    reactions: int = 0
    messages_seen: int = 0
    signed: int = 0  # requests signed in the window (v4)
    presigned: int = 0  # pre-signed requests sent in the window (v4)
    intended: int = 0  # open loop: sends due in the window
    missed: int = 0  # open loop: of those, sent late_ms or more after their time, or never
    unsent: int = 0  # open loop: of those, never sent (the drain ran out)
    lags_ns: bytes = b""  # open loop: how late each send of the window went out


def proc_cpu_seconds() -> float:
    """user + system CPU time of this process, from /proc/self/stat."""
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class LoadClient(Protocol):
    """One connection's client, of either API."""

    n_users: int
    conn: HttpConnection | None
    sign_ns: int

    def next_user(self) -> int: ...

    def build(self, u: int) -> tuple[bytes, str, bool]:
        """(the HTTP request for user u, what it is: poll | post | react, signed just now)."""
        ...

    def read(
        self, u: int, what: str, status: int, body: bytes
    ) -> tuple[str | None, int, list[str]]:
        """(error, messages seen, other errors) of the answer; moves u's cursors."""
        ...


class Client:
    """One connection's v2 client: its onion key, users, cursors and signed-message pools."""

    def __init__(self, job: Job, index: int, users: list[User]) -> None:
        self.job = job
        self.users = users
        self.n_users = len(users)
        self.next_u = 0
        self.conn: HttpConnection | None = None
        self.sign_ns = 0
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

    def next_user(self) -> int:
        u = self.next_u
        self.next_u = (u + 1) % self.n_users
        return u

    def build(self, u: int) -> tuple[bytes, str, bool]:
        kind = self.job.kind
        if kind == "post" or (kind == "mix" and self.rng.random() < self.job.post_fraction):
            return self.post_request(u), "post", False
        return self.poll_request(u), "poll", False

    def read(
        self, u: int, what: str, status: int, body: bytes
    ) -> tuple[str | None, int, list[str]]:
        if status != 200:
            return f"http_{status}", 0, []
        if self.job.kind == "fixed":
            return None, 0, []
        try:
            inner = orjson.loads(unseal(self.aead, base64.b64decode(body)))
        except Exception:
            return "undecryptable", 0, []
        code = inner.get("status_code")
        if code != 200:
            return f"status_{code}", 0, []
        if what != "poll":
            return None, 0, []
        seen, room_errors = self.read_poll(u, inner)
        return None, seen, room_errors

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


class Window:
    """The measured window of one process, and what was counted in it."""

    def __init__(self, t_go: int, t_measure: int, t_end: int, *, signed_polls: bool) -> None:
        self.t_go, self.t_measure, self.t_end = t_go, t_measure, t_end
        self.signed_polls = signed_polls  # (v4: a poll not signed now was signed before)
        self.lat = array.array("q")
        self.poll_lat = array.array("q")
        self.write_lat = array.array("q")
        self.lags = array.array("q")
        self.errors: Counter[str] = Counter()
        self.res = Result()
        self.reported = False

    def inside(self, t: int) -> bool:
        return self.t_measure <= t < self.t_end

    def record(
        self, what: str, live: bool, latency: int, error: str | None, seen: int, extra: list[str]
    ) -> None:
        res = self.res
        self.lat.append(latency)
        if error:
            self.errors[error] += 1
        for other in extra:
            self.errors[other] += 1
        if what == "post":
            res.posts += 1
            self.write_lat.append(latency)
        elif what == "react":
            res.reactions += 1
            self.write_lat.append(latency)
        else:
            res.polls += 1
            self.poll_lat.append(latency)
        if live:
            res.signed += 1
        elif what != "poll" or self.signed_polls:
            res.presigned += 1
        res.messages_seen += seen

    def transport_error(self, exc: Exception) -> None:
        self.errors["timeout" if "timeout" in str(exc) else "connection"] += 1

    def report_once(self, exc: Exception) -> None:
        if not self.reported:
            self.reported = True
            print(f"load generator: {exc!r} (reported once)", file=sys.stderr, flush=True)


async def _exchange(job: Job, client: LoadClient, data: bytes) -> tuple[int, bytes]:
    """Send one request on the client's connection (opened again if it closed)."""
    if client.conn is None or client.conn.closed:
        client.conn = await HttpConnection.open(job.host, job.port)
    return await client.conn.request(data)


async def _drive(job: Job, client: LoadClient, w: Window) -> None:
    """One connection's closed loop, from t_go to t_end (perf_counter_ns)."""
    clock = time.perf_counter_ns
    delay = (w.t_go - clock()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)
    while clock() < w.t_end:
        u = client.next_user()
        data, what, live = client.build(u)
        start = clock()
        try:
            status, body = await _exchange(job, client, data)
        except (OSError, HttpError) as exc:
            if start < w.t_end and clock() >= w.t_measure:
                # it overlapped the window: a server that hangs shows as timeouts, not as
                # an empty window without errors
                w.transport_error(exc)
            w.report_once(exc)
            if client.conn is not None:
                client.conn.close()
            client.conn = None
            await asyncio.sleep(0.05)
            continue
        error, seen, extra = client.read(u, what, status, body)
        done = clock()
        if w.inside(done):
            w.record(what, live, done - start, error, seen, extra)
    if client.conn is not None:
        client.conn.close()


OPEN_LOOP_DRAIN_S = 10.0  # sends due in the window may go out this long after it, no longer


async def _open_loop(job: Job, clients: list[LoadClient], w: Window) -> None:
    """Send at this process's share of the rate, evenly spaced, on whichever connection
    is free; each latency runs from the request's intended send time.

    The loop's timers have a resolution of 1 ms, so sends due within the next
    millisecond wait for it and then go out together; their latency includes that wait.
    """
    clock = time.perf_counter_ns
    rate = job.open_loop_rate * len(clients) / job.total_conns
    interval = 1e9 / rate
    offset = interval * job.first_conn / job.total_conns  # processes interleave their sends
    late_ns = int(job.late_ms * 1e6)
    drain_end = w.t_end + int(OPEN_LOOP_DRAIN_S * 1e9)
    schedule = [
        w.t_go + int(offset + k * interval) for k in range(int((w.t_end - w.t_go) / interval) + 1)
    ]
    schedule = [t for t in schedule if t < w.t_end]
    w.res.intended = sum(1 for t in schedule if w.inside(t))
    sent_in_window = 0
    free: asyncio.Queue[LoadClient] = asyncio.Queue()
    for client in clients:
        free.put_nowait(client)
    tasks: set[asyncio.Task[None]] = set()

    async def one(client: LoadClient, intended: int) -> None:
        measured = w.inside(intended)
        u = client.next_user()
        data, what, live = client.build(u)
        sent = clock()
        if measured:
            w.lags.append(sent - intended)
            if sent - intended >= late_ns:
                w.res.missed += 1
        try:
            status, body = await _exchange(job, client, data)
        except (OSError, HttpError) as exc:
            if measured:
                w.transport_error(exc)
            w.report_once(exc)
            if client.conn is not None:
                client.conn.close()
            client.conn = None
            await asyncio.sleep(0.05)
            free.put_nowait(client)
            return
        free.put_nowait(client)
        error, seen, extra = client.read(u, what, status, body)
        if measured:
            w.record(what, live, clock() - intended, error, seen, extra)

    for intended in schedule:
        now = clock()
        if intended > now:
            await asyncio.sleep(max((intended - now) / 1e9, 0.001))
        client = await free.get()
        if clock() >= drain_end:
            break  # the rest never goes out: counted as unsent
        if w.inside(intended):
            sent_in_window += 1
        task = asyncio.get_running_loop().create_task(one(client, intended))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    w.res.unsent = w.res.intended - sent_in_window
    w.res.missed += w.res.unsent
    if tasks:
        await asyncio.gather(*tasks)
    for client in clients:
        if client.conn is not None:
            client.conn.close()


async def _run(job: Job, pipe: Connection) -> Result:
    """Build the clients, report ready, wait for the start time, drive, and measure."""
    clients: list[LoadClient] = []
    v4 = job.kind.startswith("v4")
    if v4:
        from bench.community import V4Client  # imports the tests' client: only when needed
    everyone: list[Any] = list(job.seeds) if v4 else list(job.users)
    for i in range(job.connections):
        index = job.first_conn + i
        if len(everyone) >= job.total_conns:
            users = everyone[index :: job.total_conns]
        else:
            users = [everyone[index % len(everyone)]]
        clients.append(V4Client(job, index, users) if v4 else Client(job, index, users))
    pipe.send(("ready", None))
    _, t_go = pipe.recv()
    t_measure = t_go + int(job.warmup_s * 1e9)
    w = Window(
        t_go, t_measure, t_measure + int(job.duration_s * 1e9), signed_polls=job.kind == "v4poll"
    )
    cpu: list[float] = []
    signing: list[int] = []

    async def marks() -> None:
        for mark in (w.t_measure, w.t_end):
            await asyncio.sleep(max(0.0, (mark - time.perf_counter_ns()) / 1e9))
            cpu.append(proc_cpu_seconds())
            signing.append(sum(c.sign_ns for c in clients))

    marking = asyncio.ensure_future(marks())
    if job.open_loop_rate > 0:
        await _open_loop(job, clients, w)
    else:
        await asyncio.gather(*(_drive(job, c, w) for c in clients))
    await marking
    res = w.res
    res.count = len(w.lat)
    res.latencies_ns = w.lat.tobytes()
    res.poll_latencies_ns = w.poll_lat.tobytes()
    res.write_latencies_ns = w.write_lat.tobytes()
    res.lags_ns = w.lags.tobytes()
    res.errors = dict(w.errors)
    res.cpu_s = cpu[1] - cpu[0]
    res.sign_s = (signing[1] - signing[0]) / 1e9
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
