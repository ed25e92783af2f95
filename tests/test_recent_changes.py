"""A room's latest changes are kept per process for the clients that poll it
(opengroup/storage/recentchanges.py), and the pages it gives are the database's
own: for every reader (anonymous, poster, whisper's recipient, moderator), every
seqno a client may hold, with and without reaction changes, and the v2 API's
pages for every message id a v2 client may hold, as the room goes through posts,
whispers, edits, deletions and reactions. On the real database of the run's
backend. A window of a few seqnos here stands for the server's 256.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select

from opengroup.storage import migrate, paging, posts, queries, roomdetails
from opengroup.storage.database import Database
from opengroup.storage.pollreader import Pages, PollLookup, open_poll_reader
from opengroup.storage.postwriter import NewPost, PostWriter
from opengroup.storage.recentchanges import ReadChanges, RecentChanges
from opengroup.storage.roomdetails import RoomDetails
from opengroup.storage.schema import messages, tokens

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


def view(db: Database, room: str = ROOM) -> RoomDetails:
    """The room as a poll's view shows it."""
    with db.read() as conn:
        found = roomdetails.find_room(conn, room)
    assert found is not None
    return found


def window_key(room: RoomDetails) -> tuple[str, float]:
    """What a room's window is known by."""
    return room.id, room.created_at


def page(
    db: Database,
    recent: RecentChanges,
    reader: str,
    seqno: int,
    limit: int,
    reactions: bool,
    room: str = ROOM,
) -> list[posts.StoredMessage]:
    seen = view(db, room)
    keys, moderator = READERS[reader]
    with db.read() as conn:
        return recent.changes_since(
            conn, seen, seqno, limit, keys, moderator, with_reactions=reactions
        )


def database_page(
    db: Database, reader: str, seqno: int, limit: int, reactions: bool, room: str = ROOM
) -> list[posts.StoredMessage]:
    keys, moderator = READERS[reader]
    with db.read() as conn:
        return posts.changes_since(
            conn, room, seqno, limit, keys, moderator, with_reactions=reactions
        )


V2Row = tuple[int, str, int, str, str]  # paging.MESSAGES_AFTER's columns


def v2_page(
    db: Database, recent: RecentChanges, after: int, limit: int, room: str = ROOM
) -> list[V2Row] | None:
    """The v2 API's page past ``after`` from the room's window (None: not held)."""
    seen = view(db, room)
    with db.read() as conn:
        held = recent.live_after(
            window_key(seen),
            seen.seqno,
            after,
            limit,
            lambda seqno, most: posts.every_change_since(conn, room, seqno, most),
        )
    if held is None:
        return None
    return [(m.id, m.session_id, m.timestamp, m.data, m.signature) for m in held]


def v2_database_page(db: Database, after: int, limit: int, room: str = ROOM) -> list[V2Row]:
    with db.read() as conn:
        params = {"room_id": room, "after": after, "limit": limit}
        return [tuple(row) for row in conn.execute(paging.MESSAGES_AFTER, params)]


def assert_every_page_is_the_databases(
    db: Database, recent: RecentChanges, room: str = ROOM
) -> int:
    """Every page of the community API, and every page of the v2 API the window holds,
    checked against the database's; how many of the v2 API's it held."""
    now = view(db, room).seqno
    for seqno in range(now + 1):
        for reader in READERS:
            for limit in (2, 256):
                for reactions in (False, True):
                    expected = database_page(db, reader, seqno, limit, reactions, room)
                    got = page(db, recent, reader, seqno, limit, reactions, room)
                    assert got == expected, (seqno, reader, limit, reactions)
    held = 0
    with db.read() as conn:
        last_id = conn.execute(
            select(func.coalesce(func.max(messages.c.server_id), 0)).where(
                messages.c.room_id == room
            )
        ).scalar_one()
    for after in range(last_id + 1):
        for limit in (2, 256):
            got_v2 = v2_page(db, recent, after, limit, room)
            if got_v2 is not None:
                held += 1
                assert got_v2 == v2_database_page(db, after, limit, room), (after, limit)
    return held


def busy_room(db: Database, recent: RecentChanges) -> int:
    """A room's life, every page checked after each step; how many of the v2 API's
    pages the window held."""
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
    held = 0
    for step in steps:
        step()
        held += assert_every_page_is_the_databases(db, recent)
    return held


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
    assert busy_room(db, RecentChanges(span=6, read_rows=read_rows)) > 0


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


def test_the_v2_poll_reader_reads_its_pages_from_the_window(db: Database) -> None:
    """The v2 API's poll reader on the event loop (SQLite's, and PostgreSQL's where the
    database is on this machine) takes a page past a cursor from the room's window:
    a change made as no writer makes one is not seen by a poll the window holds, but
    is by one from further back, which the database answers; a new post is read past
    the window's end."""
    token, now = b"t" * 32, time.time()
    with db.write() as conn:
        conn.execute(
            tokens.insert().values(
                token_hash=token, room_id=ROOM, public_key=BOB, expires_at=now + 3600
            )
        )
    post(db, *(said(ALICE, f"hello {n}") for n in range(10)))
    recent = RecentChanges(span=4)
    reader = open_poll_reader(db, on_loop=True, recent=recent)

    def poll(after: int) -> list[str]:
        lookup = PollLookup(ROOM, token, after, None)
        [rows] = asyncio.run(reader.read([lookup], now, Pages(256, False)))
        return [message.data for message in rows.messages]

    try:
        assert poll(8) == ["hello 8", "hello 9"]
        change(db, lambda conn: conn.exec_driver_sql("UPDATE messages SET data = 'unseen'"))
        assert poll(8) == ["hello 8", "hello 9"]
        assert poll(2) == ["unseen"] * 8
        post(db, said(BOB, "new"))
        assert poll(8) == ["hello 8", "hello 9", "new"]
    finally:
        asyncio.run(reader.close())


def test_a_room_made_again_under_its_token_is_read_anew(db: Database) -> None:
    recent = RecentChanges(span=4)
    post(db, *(said(ALICE, f"hello {n}") for n in range(3)))
    page(db, recent, "bob", 1, 256, False)
    change(db, lambda conn: conn.exec_driver_sql("UPDATE messages SET data = 'new room'"))
    change(db, lambda conn: conn.exec_driver_sql("UPDATE rooms SET created_at = 999"))

    assert [m.data for m in page(db, recent, "bob", 1, 256, False)] == ["new room"] * 2


class ReadMeanwhile(RecentChanges):
    """A process's windows where, the first time a window reads the room's changes,
    something else happens before that read is taken in (another poll, a write)."""

    def __init__(self, **kwargs: int) -> None:
        super().__init__(**kwargs)
        self.meanwhile: Callable[[], object] | None = None

    def _read_changes(
        self, read: ReadChanges, start: int
    ) -> tuple[list[posts.StoredMessage], bool]:
        changes = super()._read_changes(read, start)
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        return changes


def test_a_read_overtaken_by_another_is_not_taken_in(db: Database) -> None:
    """Two polls read the same room's new changes at once, and the one begun first
    ends last, with a version of a message that has changed since: it must not come
    back."""
    recent = ReadMeanwhile(span=8)
    post(db, said(ALICE, "hello"))
    start = view(db).seqno
    page(db, recent, "bob", start, 256, False)  # the window starts at the room's head
    post(db, said(BOB, "new"))

    def edit_then_poll() -> None:
        edit(db, 2)
        page(db, recent, "bob", start, 256, False)

    recent.meanwhile = edit_then_poll
    page(db, recent, "bob", start, 256, False)  # reads "new"; then the edit, and a poll

    assert_every_page_is_the_databases(db, recent)


def test_a_view_older_than_the_window_is_answered_as_of_its_own_snapshot(
    db: Database,
) -> None:
    """A batch's reads share one snapshot (on SQLite, one read transaction begun with
    the room's view). Another request's poll, after a reaction, takes the window past
    that view: the batch's page, and the reactors read after it, must still be those
    of its snapshot (on PostgreSQL, where each statement sees every commit before it,
    both are the newest)."""
    post(db, said(ALICE, "hello"))
    recent = RecentChanges(span=8)
    page(db, recent, "bob", 0, 256, True)
    with db.shared_reads():
        seen = view(db)  # the view: this thread's snapshot begins (SQLite)

        def react_then_poll() -> None:  # (another request, in another thread)
            react(db, 1)
            page(db, recent, "bob", 0, 256, True)

        meanwhile = threading.Thread(target=react_then_poll)
        meanwhile.start()
        meanwhile.join()
        keys, moderator = READERS["bob"]
        with db.read() as conn:
            got = recent.changes_since(conn, seen, 0, 256, keys, moderator, with_reactions=True)
            reactors = posts.reactors_by_message(conn, ROOM, [m.id for m in got])
            expected = posts.changes_since(conn, ROOM, 0, 256, keys, moderator, with_reactions=True)

    assert got == expected
    assert bool(reactors) == (got[0].seqno > seen.seqno)  # the reaction with the message it moved


def test_a_room_of_large_messages_keeps_to_its_share_of_the_bound(db: Database) -> None:
    """Its window is cut to half the bytes, readers behind what it keeps get the
    database's pages, and the other rooms' windows stay."""
    with db.write() as conn:
        conn.exec_driver_sql(
            "INSERT INTO rooms (id, name, message_seq, deletion_seq, created_at)"
            " VALUES ('big', 'Big', 0, 0, 0)"
        )
    post(db, *(said(ALICE, f"small {n}") for n in range(3)))
    post(db, *(NewPost("big", BOB, 1, "x" * 1000, "sig", 100.0) for _ in range(8)))
    recent = RecentChanges(span=8, max_bytes=5000, read_rows=4)
    page(db, recent, "bob", 0, 256, False)
    main_room, big_room = window_key(view(db)), window_key(view(db, "big"))

    assert_every_page_is_the_databases(db, recent, "big")

    assert recent._windows[big_room].weight <= 2500
    assert main_room in recent._windows
    assert_every_page_is_the_databases(db, recent)
