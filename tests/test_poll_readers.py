"""The v2 poll reader on PostgreSQL (opengroup/storage/pollreader/postgres.py)
reads a batch of polls one of two ways: on the event loop, on one connection
(the database on this machine), or on a pool of async connections (a database
elsewhere). Both must answer every poll exactly alike, and as the rooms hold:
the heads, the pages of messages after each cursor (one statement for several
pages), the deletions, a token check, rooms missing and tokens unknown.

The servers of the acceptance tests read on the loop (their PostgreSQL is on
this machine); the async way is read here, on the real database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from opengroup.storage import migrate, queries
from opengroup.storage.database import Database
from opengroup.storage.pollreader import Pages, PollLookup, RoomRows
from opengroup.storage.pollreader.postgres import PostgresPollReader
from opengroup.storage.postwriter import NewPost, PostWriter
from opengroup.storage.recentchanges import RecentChanges

NOW = 1_000_000.0
ALICE = "05" + "aa" * 32
ROOMS = ("main", "lobby")  # main is made by the first migration
TOKENS = {room: room.encode().ljust(32, b"\0") for room in ROOMS}  # (a token is of one room)


@pytest.fixture
def db(fresh_database_url: str | None) -> Iterator[Database]:
    if fresh_database_url is None:
        pytest.skip("PostgreSQL's poll reader")
    database = Database(fresh_database_url)
    migrate.upgrade(database)
    with database.write() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO rooms (id, name, message_seq, deletion_seq, created_at)"
                " VALUES ('lobby', 'Lobby', 0, 0, 0)"
            )
        )
        for room in ROOMS:
            conn.execute(
                sa.text(
                    "INSERT INTO tokens (token_hash, room_id, public_key, expires_at)"
                    " VALUES (:h, :r, :k, :e)"
                ),
                {"h": TOKENS[room], "r": room, "k": ALICE, "e": NOW + 3600},
            )

    async def post_all() -> None:
        writer = PostWriter(database)
        for n in range(1, 7):
            for room in ROOMS:
                await writer.write(NewPost(room, ALICE, n, f"{room} {n}", "sig", NOW))
        await writer.close()

    asyncio.run(post_all())
    with database.write() as conn:
        queries.mark_deleted(conn, "main", 2)
    yield database
    database.dispose()


# Each poll a list of lookups: (room, messages after, deletions after).
Poll = list[tuple[str, int | None, int | None]]
POLLS: list[Poll] = [
    [("main", 0, 0), ("lobby", 3, None)],
    [("main", None, None)],  # the newest of each
    [("main", 6, 6), ("lobby", 6, 0)],  # up to date (deletions by message id)
    [("missing", 0, 0)],
    [("lobby", 4, 0)],
]


def lookups(poll: Poll) -> list[PollLookup]:
    return [
        PollLookup(room, TOKENS.get(room, b"\0" * 32), after, deleted)
        for room, after, deleted in poll
    ]


def read_together(db: Database, *, on_loop: bool) -> tuple[list[list[RoomRows]], object]:
    """Every poll of POLLS, sent at once (so read as batches), and a token check."""
    conninfo = sa.make_url(db.url).set(drivername="postgresql").render_as_string(False)

    async def run() -> tuple[list[list[RoomRows]], object]:
        reader = PostgresPollReader(conninfo, on_loop=on_loop, recent=RecentChanges())
        try:
            polls = asyncio.gather(
                *(reader.read(lookups(poll), NOW, Pages(100, False)) for poll in POLLS)
            )
            token_check = reader.token_holder("lobby", TOKENS["lobby"], NOW)
            answers, holder = await asyncio.gather(polls, token_check)
        finally:
            await reader.close()
        return answers, holder

    return asyncio.run(run())


def data(rows: RoomRows) -> list[str]:
    return [message.data for message in rows.messages]


def test_both_ways_of_reading_answer_every_poll_alike(db: Database) -> None:
    on_loop = read_together(db, on_loop=True)
    pooled = read_together(db, on_loop=False)
    assert on_loop == pooled


@pytest.mark.parametrize("on_loop", [True, False], ids=["on the loop", "async"])
def test_each_poll_gets_what_its_rooms_hold_past_its_cursors(db: Database, on_loop: bool) -> None:
    answers, token_check = read_together(db, on_loop=on_loop)

    both, newest, up_to_date, missing, lobby = answers
    assert [data(rows) for rows in both] == [
        ["main 1", "main 3", "main 4", "main 5", "main 6"],  # 2 deleted
        ["lobby 4", "lobby 5", "lobby 6"],
    ]
    assert [rows.deletions for rows in both] == [[(1, 2)], []]
    assert data(newest[0]) == ["main 1", "main 3", "main 4", "main 5", "main 6"]
    assert [(data(rows), rows.deletions) for rows in up_to_date] == [([], []), ([], [])]
    assert missing == [RoomRows(False, None, [], [], [])]
    assert data(lobby[0]) == ["lobby 5", "lobby 6"]
    assert all(rows.holder is not None for rows in both + lobby)
    assert token_check == (True, both[1].holder)
    assert both[1].holder is not None and both[1].holder.public_key == ALICE


def test_on_the_loop_a_lost_connection_is_replaced_and_the_batch_read_again(
    db: Database,
) -> None:
    """PostgreSQL restarted, or the connection cut: the batch is read again on a new
    connection, and its polls never see it."""
    conninfo = sa.make_url(db.url).set(drivername="postgresql").render_as_string(False)
    poll = lookups([("lobby", 4, 0)])

    async def run() -> tuple[list[RoomRows], list[RoomRows]]:
        reader = PostgresPollReader(conninfo, on_loop=True, recent=RecentChanges())
        try:
            before = await reader.read(poll, NOW, Pages(100, False))
            cut_other_connections(conninfo)
            return before, await reader.read(poll, NOW, Pages(100, False))
        finally:
            await reader.close()

    before, after = asyncio.run(run())
    assert before == after and data(after[0]) == ["lobby 5", "lobby 6"]


def cut_other_connections(conninfo: str) -> None:
    """End every other session on the database, and wait until they are gone."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        others = "datname = current_database() AND pid <> pg_backend_pid()"
        conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}")
        for _ in range(100):
            if not conn.execute(f"SELECT 1 FROM pg_stat_activity WHERE {others}").fetchone():
                return
            time.sleep(0.05)
    raise AssertionError("the other sessions did not end")
