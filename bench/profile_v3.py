"""Where a community API batch poll spends the server's time, in one process.

The benchmark measures the whole server from outside; this profiles the part
after the transport: the community API router answering the batch poll of
scenario (e) (capabilities, per room ``pollInfo/0`` and ``messages/since`` with
reactions, the inbox and outbox), signed by real blinded users, on a real
database, under :mod:`cProfile`, one request after another in this thread::

    .venv/bin/python -m bench.profile_v3 --backend sqlite --users 200 --requests 2000
    .venv/bin/python -m bench.profile_v3 --backend postgresql --rooms 10 --top 40

It prints the milliseconds per request, the statements each request ran, and
the functions that took the time. The requests are signed before the clock
starts; the transport (onion decryption and framing) is left out, as the v4
ceiling app measures it.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event

from bench.community import MAIN_ROOM, identity, signed_headers
from bench.loadgen import User
from bench.run import DEFAULT_PG, EXTRA_ROOMS, PostgresDatabase, insert_history
from opengroup.api.routing import ApiRequest
from opengroup.api.v3.routes import router
from opengroup.config import load_settings
from opengroup.domain.room_settings import RoomSettings
from opengroup.startup import prepare


def poll_items(rooms: list[str], seqno: int) -> list[dict[str, str]]:
    """The items of a caught-up client's batch poll of ``rooms``."""
    items: list[dict[str, str]] = [{"method": "GET", "path": "/capabilities"}]
    for room in rooms:
        items.append({"method": "GET", "path": f"/room/{room}/pollInfo/0"})
        items.append(
            {"method": "GET", "path": f"/room/{room}/messages/since/{seqno}?t=r&reactors=5"}
        )
    return [*items, {"method": "GET", "path": "/inbox"}, {"method": "GET", "path": "/outbox"}]


def batch_request(seed: bytes, server_pk: bytes, rooms: list[str], seqno: int) -> ApiRequest:
    """The batch poll of a caught-up client, signed now with a fresh nonce."""
    body = orjson.dumps(poll_items(rooms, seqno))
    headers = signed_headers(identity(seed), server_pk, "POST", "/batch", body)
    return ApiRequest("POST", "/batch", {}, {k.lower(): v for k, v in headers.items()}, body)


class StatementCounter:
    """Counts the statements run on an engine's connections."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_args: Any) -> None:
        self.count += 1


def run(args: argparse.Namespace, tmp: Path) -> None:
    database_url = ""
    if args.backend == "postgresql":
        pg = PostgresDatabase(args.database_url)
        database_url = pg.url
    settings = load_settings(overrides={"data_dir": str(tmp), "database_url": database_url}, env={})
    prepared = prepare(settings)
    community = prepared.community()
    assert prepared.keys is not None
    server_pk = prepared.keys.public_key
    rooms = [MAIN_ROOM, *EXTRA_ROOMS][: args.rooms]
    for room in rooms:
        RoomSettings(prepared.db, settings, time.time).create(room, room.title())
    insert_history(tmp, database_url or None, args.messages, [User.generate()])
    seeds = [os.urandom(32) for _ in range(args.users)]
    seqno = args.messages
    for seed in seeds:  # each user's first request: they are known from then on
        router.handle(community, batch_request(seed, server_pk, rooms, seqno))
    requests = [
        batch_request(seeds[i % len(seeds)], server_pk, rooms, seqno) for i in range(args.requests)
    ]
    counter = StatementCounter()
    event.listen(prepared.db.engine, "before_cursor_execute", counter)
    profile = cProfile.Profile()
    started, cpu_started = time.perf_counter(), time.thread_time()
    if args.profile:
        profile.enable()
    for request in requests:
        answer, _ = router.handle(community, request)
        assert answer.status == 200, (answer.status, answer.body[:200])
    profile.disable()
    elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
    event.remove(prepared.db.engine, "before_cursor_execute", counter)
    n = len(requests)
    print(
        f"# {args.backend}, {len(rooms)} room(s), M={args.messages}, K={args.users}: "
        f"{elapsed / n * 1000:.3f} ms per batch poll, {cpu / n * 1000:.3f} ms of CPU"
        f"{' (profiled)' if args.profile else ''}, "
        f"{counter.count / n:.1f} statements per poll (SQLAlchemy-executed; driver-level "
        "statements of the hot paths are not counted)"
    )
    if args.profile:
        pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)
    prepared.db.dispose()
    if args.backend == "postgresql":
        pg.drop()


def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="opengroup-profile-") as tmp:
        yield Path(tmp)


def arguments(description: str | None) -> argparse.ArgumentParser:
    """The options both profilers take: where, and what the polls cover."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--database-url", default=DEFAULT_PG, help="PostgreSQL server to use")
    p.add_argument("--rooms", type=int, default=1, help="rooms each poll covers (1 to 10)")
    p.add_argument("--messages", type=int, default=1000, help="history in the main room (M)")
    p.add_argument("--users", type=int, default=200, help="blinded users (K)")
    return p


def main(argv: list[str] | None = None) -> None:
    p = arguments(__doc__)
    p.add_argument("--requests", type=int, default=1000, help="batch polls profiled")
    p.add_argument("--sort", default="cumulative", help="pstats sort key (e.g. tottime)")
    p.add_argument("--top", type=int, default=30, help="functions listed")
    p.add_argument(
        "--no-profile", dest="profile", action="store_false",
        help="only the time and statements per poll, without the profiler's overhead",
    )  # fmt: skip
    args = p.parse_args(argv)
    for tmp in workspace():
        run(args, tmp)


if __name__ == "__main__":
    main()
