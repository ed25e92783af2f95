"""A room's latest changes are kept per process for the clients that poll it
(opengroup/storage/recentchanges.py), and the pages it gives are the database's
own: for every reader (anonymous, poster, whisper's recipient, moderator), every
seqno a client may hold, with and without reaction changes, as the room goes
through posts, whispers, edits, deletions and reactions. On the real database of
the run's backend. A window of a few seqnos here stands for the server's 256.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection

from opengroup.storage import migrate, posts, queries
from opengroup.storage.database import Database
from opengroup.storage.postwriter import NewPost, PostWriter
from opengroup.storage.recentchanges import RecentChanges

ROOM = "main"  # made by the first migration
ALICE, BOB, CAROL = ("05" + byte * 32 for byte in ("aa", "bb", "cc"))
READERS = {  # name: (keys, moderator)
    "anonymous": ((), False),
    "alice": ((ALICE, "15" + "aa" * 32), False),
    "bob": ((BOB,), False),
    "moderator": ((CAROL,), True),
}


@pytest.fixture
def db(tmp_path: Path, fresh_database_url: str | None) -> Iterator[Database]:
    database = Database(fresh_database_url or f"sqlite:///{tmp_path / 'opengroup.db'}")
    migrate.upgrade(database)
    yield database
    database.dispose()


def post(db: Database, *new: NewPost) -> None:
    async def write() -> None:
        writer = PostWriter(db)
        for one in new:
            await writer.write(one)
        await writer.close()

    asyncio.run(write())


def said(who: str, text: str, whisper_to: str | None = None, whisper_mods: bool = False) -> NewPost:
    return NewPost(ROOM, who, 1, text, "sig", 100.0, whisper_to, whisper_mods)


def head(db: Database) -> tuple[tuple[str, float], int]:
    """The room as a poll's view shows it: its key for the windows, and its seqno."""
    with db.read() as conn:
        seqno, created = conn.exec_driver_sql(
            f"SELECT seqno, created_at FROM rooms WHERE id = '{ROOM}'"
        ).one()
    return (ROOM, created), seqno


def page(
    db: Database, recent: RecentChanges, reader: str, seqno: int, limit: int, reactions: bool
) -> list[posts.StoredMessage]:
    room, now = head(db)
    keys, moderator = READERS[reader]
    with db.read() as conn:
        return recent.changes_since(
            conn, room, now, seqno, limit, keys, moderator, with_reactions=reactions
        )


def database_page(
    db: Database, reader: str, seqno: int, limit: int, reactions: bool
) -> list[posts.StoredMessage]:
    keys, moderator = READERS[reader]
    with db.read() as conn:
        return posts.changes_since(
            conn, ROOM, seqno, limit, keys, moderator, with_reactions=reactions
        )


def assert_every_page_is_the_databases(db: Database, recent: RecentChanges) -> None:
    _, now = head(db)
    for seqno in range(now + 1):
        for reader in READERS:
            for limit in (2, 256):
                for reactions in (False, True):
                    expected = database_page(db, reader, seqno, limit, reactions)
                    got = page(db, recent, reader, seqno, limit, reactions)
                    assert got == expected, (seqno, reader, limit, reactions)


def busy_room(db: Database, recent: RecentChanges) -> None:
    """A room's life, every page checked after each step."""
    steps = [
        lambda: post(db, *(said(ALICE, f"hello {n}") for n in range(4))),
        lambda: post(db, said(ALICE, "psst", whisper_to=BOB), said(BOB, "mods", whisper_mods=True)),
        lambda: edit(db, 2),
        lambda: change(db, lambda conn: queries.mark_deleted(conn, ROOM, 3)),
        lambda: post(db, said(BOB, "soon gone")),
        lambda: change(db, lambda conn: queries.mark_deleted(conn, ROOM, 7)),
        lambda: react(db, 1),
        lambda: post(db, *(said(BOB, f"more {n}") for n in range(9))),
        lambda: react(db, 5),
        lambda: change(db, lambda conn: queries.mark_deleted(conn, ROOM, 5)),
    ]
    for step in steps:
        step()
        assert_every_page_is_the_databases(db, recent)


def change(db: Database, write: Callable[[Connection], object]) -> None:
    with db.write() as conn:
        write(conn)


def edit(db: Database, message_id: int) -> None:
    """An edit as the domain writes one: under the room's next seqno."""
    with db.write() as conn:
        seqno = queries.next_seqno(conn, ROOM)
        posts.edit(conn, ROOM, message_id, "edited", "sig2", seqno, 150.0)


def react(db: Database, message_id: int) -> None:
    """A reaction as the domain writes one: the message takes the room's next seqno."""
    with db.write() as conn:
        posts.add_reaction(conn, ROOM, message_id, "👍", CAROL, 200.0)
        posts.move_to_next_seqno(conn, ROOM, message_id)


@pytest.mark.parametrize("read_rows", [64, 2])
def test_a_window_gives_the_databases_page_to_every_reader_through_a_rooms_life(
    db: Database, read_rows: int
) -> None:
    """(Read 64 changes a statement, as the server does, or 2: in several.)"""
    busy_room(db, RecentChanges(span=6, read_rows=read_rows))


def test_a_window_too_small_to_hold_the_changes_still_gives_the_databases_pages(
    db: Database,
) -> None:
    """Bound to a couple of rows: windows are dropped, cut and made again all along."""
    recent = RecentChanges(span=1, max_bytes=500, read_rows=1)
    busy_room(db, recent)

    assert sum(window.weight for window in recent._windows.values()) <= 500


def test_a_read_cut_short_by_the_bound_holds_only_what_it_read(db: Database) -> None:
    """Messages of 1 kB against a bound of about two: a window's reading stops after
    the third, and the window must not take the rest as read."""
    post(db, *(said(ALICE, "x" * 1000) for _ in range(8)))
    recent = RecentChanges(span=8, max_bytes=2500, read_rows=1)
    assert_every_page_is_the_databases(db, recent)


def test_pages_within_the_window_are_read_from_it(db: Database) -> None:
    """A change made as no writer makes one (no new seqno) is not seen by a poll the
    window holds, and is by one from further back, which the database answers."""
    recent = RecentChanges(span=4)
    post(db, *(said(ALICE, f"hello {n}") for n in range(10)))
    before = page(db, recent, "bob", 8, 256, False)
    change(db, lambda conn: conn.exec_driver_sql("UPDATE messages SET data = 'unseen'"))

    assert page(db, recent, "bob", 8, 256, False) == before
    assert [m.data for m in page(db, recent, "bob", 2, 256, False)] == ["unseen"] * 8


def test_a_room_made_again_under_its_token_is_read_anew(db: Database) -> None:
    recent = RecentChanges(span=4)
    post(db, *(said(ALICE, f"hello {n}") for n in range(3)))
    page(db, recent, "bob", 1, 256, False)
    change(db, lambda conn: conn.exec_driver_sql("UPDATE messages SET data = 'new room'"))
    change(db, lambda conn: conn.exec_driver_sql("UPDATE rooms SET created_at = 999"))

    assert [m.data for m in page(db, recent, "bob", 1, 256, False)] == ["new room"] * 2


def test_a_read_begun_before_another_adds_only_what_is_newer(db: Database) -> None:
    """Two polls of a process read the same room's new changes at once, and the one
    begun first ends last: what it read that the window holds already, or that has
    changed since, must not come back."""
    recent = RecentChanges(span=8)
    post(db, said(ALICE, "hello"))
    room, start = head(db)
    page(db, recent, "bob", start, 256, False)  # the window starts at the room's head
    post(db, said(BOB, "new"))
    _, early_head = head(db)
    with db.read() as conn:
        early_read = posts.every_change_since(conn, ROOM, start, 16)  # the first poll's
    edit(db, 2)
    page(db, recent, "bob", start, 256, False)  # the second poll, done first

    recent._windows[room].extend(start, early_read, early_head, complete=True)

    assert_every_page_is_the_databases(db, recent)
