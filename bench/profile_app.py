"""The server's CPU per onion v4 batch poll, whole app, in one process.

:mod:`bench.profile_v3` times the community API router alone; this times
everything the server does for scenario (e) except HTTP parsing: the ASGI app
(the onion endpoint, the envelope, the v4 framing, the admission of the signer
in groups, the worker thread, the router, the sealed answer), fed onion v4
requests prepared before the clock, ``--concurrency`` at a time on one event
loop, as uvicorn would hand them over. Then the same requests through the v4
ceiling app (:func:`bench.ceiling_app.onion_v4_echo`), so the two CPU costs per
request compare like the benchmark's ratio (without uvicorn's own share, which
both pay)::

    .venv/bin/python -m bench.profile_app --requests 3000
    .venv/bin/python -m bench.profile_app --backend postgresql --rooms 10
    .venv/bin/python -m bench.profile_app --yappi --top 40   # where the time goes
    .venv/bin/python -m bench.profile_app --behind 100       # polls that carry 100 messages

CPU time is the process's (every thread), so the numbers hold on a busy
machine better than a rate does. ``--yappi`` needs ``pip install yappi`` (not a
dependency of the project).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

from bench import ceiling_app
from bench.community import (
    MAIN_ROOM,
    ONION_V4_PATH,
    OnionV4Channel,
    desktop_json,
    encode_v4_request,
    identity,
    signed_headers,
)
from bench.loadgen import User
from bench.profile_v3 import arguments, poll_items, workspace
from bench.run import EXTRA_ROOMS, PostgresDatabase, insert_history, insert_nonces
from opengroup.app import create_app
from opengroup.config import load_settings
from opengroup.domain.room_settings import RoomSettings
from opengroup.startup import prepare


def poll_plaintext(seed: bytes, server_pk: bytes, rooms: list[str], seqno: int) -> bytes:
    """Scenario (e)'s batch poll of a caught-up client, signed now (a fresh nonce)."""
    body = desktop_json(poll_items(rooms, seqno))
    headers = signed_headers(identity(seed), server_pk, "POST", "/batch", body)
    plaintext: bytes = encode_v4_request("POST", "/batch", headers, body)
    return plaintext


def envelope(channel: OnionV4Channel, plaintext: bytes) -> bytes:
    """The HTTP body of the onion request (the channel builds the whole HTTP request)."""
    return channel.wrap(plaintext).split(b"\r\n\r\n", 1)[1]


class AsgiDriver:
    """Calls an ASGI app as a server would: lifespan, then HTTP requests."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lifespan_in: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._lifespan_out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._lifespan: asyncio.Task[None] | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._lifespan = asyncio.create_task(
            self.app(scope, self._lifespan_in.get, self._lifespan_out.put)
        )
        await self._lifespan_in.put({"type": "lifespan.startup"})
        message = await self._lifespan_out.get()
        assert message["type"] == "lifespan.startup.complete", message

    async def stop(self) -> None:
        await self._lifespan_in.put({"type": "lifespan.shutdown"})
        await self._lifespan_out.get()
        assert self._lifespan is not None
        await self._lifespan

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)  # a client that stays connected
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


async def drive(
    driver: AsgiDriver, channel: OnionV4Channel, bodies: list[bytes], concurrency: int
) -> tuple[float, float]:
    """Send every body, ``concurrency`` at a time; (wall seconds, process CPU seconds)."""
    queue = iter(bodies)

    async def worker() -> None:
        for body in queue:
            status, answer = await driver.post(ONION_V4_PATH, body)
            code, _ = channel.unwrap(answer)
            if status != 200 or code != 200:
                raise SystemExit(f"answer {status}/{code}")

    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, time.process_time() - cpu_started


def run(args: argparse.Namespace, tmp: Path) -> None:
    database_url = ""
    pg = None
    if args.backend == "postgresql":
        pg = PostgresDatabase(args.database_url)
        database_url = pg.url
    settings = load_settings(overrides={"data_dir": str(tmp), "database_url": database_url}, env={})
    prepared = prepare(settings)
    assert prepared.keys is not None
    server_pk = prepared.keys.public_key
    rooms = [MAIN_ROOM, *EXTRA_ROOMS][: args.rooms]
    for room in rooms:
        RoomSettings(prepared.db, settings, time.time).create(room, room.title())
    prepared.db.dispose()
    insert_history(tmp, database_url or None, args.messages, [User.generate()])
    if args.nonces:
        insert_nonces(tmp, database_url or None, args.nonces)

    channel = OnionV4Channel("127.0.0.1", 80, server_pk)
    seeds = [os.urandom(32) for _ in range(args.users)]
    cursor = max(args.messages - args.behind, 0)
    warm = [envelope(channel, poll_plaintext(s, server_pk, rooms, cursor)) for s in seeds]
    bodies = [
        envelope(channel, poll_plaintext(seeds[i % len(seeds)], server_pk, rooms, cursor))
        for i in range(args.requests)
    ]
    n = len(bodies)

    async def main() -> None:
        driver = AsgiDriver(create_app(settings))
        await driver.start()
        await drive(driver, channel, warm, args.concurrency)  # each user known from now on
        if args.yappi:
            import yappi  # type: ignore[import-not-found, import-untyped, unused-ignore]  # optional

            yappi.set_clock_type("cpu")
            yappi.start()
        wall, cpu = await drive(driver, channel, bodies, args.concurrency)
        if args.yappi:
            yappi.stop()
        await driver.stop()
        print(
            f"# server, {args.backend}, {len(rooms)} room(s), M={args.messages}, "
            f"{args.behind} behind, K={args.users}, {args.nonces} nonces stored before, "
            f"{args.concurrency} at a time: {cpu / n * 1000:.3f} ms of CPU "
            f"per batch poll ({n / wall:.0f} per second on one event loop)"
            f"{' (profiled)' if args.yappi else ''}"
        )
        if args.yappi:
            stats = yappi.get_func_stats()
            stats.sort(args.sort)
            stats.print_all(
                columns={0: ("name", 90), 1: ("ncall", 9), 2: ("tsub", 8), 3: ("ttot", 8)},
            )
            yappi.clear_stats()

        os.environ["BENCH_ONION_PRIVATE_KEY_FILE"] = str(settings.private_key_path)
        ceiling = AsgiDriver(ceiling_app.onion_v4_echo)
        await ceiling.start()
        wall, cpu = await drive(ceiling, channel, bodies, args.concurrency)
        await ceiling.stop()
        print(
            f"# v4 ceiling app, same requests: {cpu / n * 1000:.3f} ms of CPU per request "
            f"({n / wall:.0f} per second)"
        )

    asyncio.run(main())
    if pg is not None:
        pg.drop()


def main(argv: list[str] | None = None) -> None:
    p = arguments(__doc__)
    p.add_argument("--requests", type=int, default=2000, help="batch polls measured")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    p.add_argument("--nonces", type=int, default=0, help="request nonces stored before")
    p.add_argument(
        "--behind", type=int, default=0,
        help="messages each poll is behind (its answer carries them; at most 256)",
    )  # fmt: skip
    p.add_argument("--yappi", action="store_true", help="profile every thread with yappi")
    p.add_argument("--sort", default="ttot", help="yappi sort key (ttot, tsub, ncall)")
    p.add_argument("--top", type=int, default=40, help="functions listed")
    args = p.parse_args(argv)
    for tmp in workspace():
        run(args, tmp)


if __name__ == "__main__":
    main()
