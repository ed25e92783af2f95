"""The reactors of the messages pages show are kept between requests while each
message keeps its seqno (opengroup/storage/reactors.py): every change to a
message's reactions gives it a new one, and only then are they read again; the
summary shown of them to readers who are not among them is made once and shared.
On the real database of the run's backend. (That each such change does move the
seqno, and that clients see it, the community API's tests of reactions show.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from opengroup.storage import migrate, posts, queries
from opengroup.storage.database import Database
from opengroup.storage.postwriter import NewPost, PostWriter
from opengroup.storage.reactors import ReactionSummary, ReactorsCache

ROOM = "main"  # made by the first migration
ALICE, BOB = "05" + "aa" * 32, "05" + "bb" * 32


@pytest.fixture
def db(tmp_path: Path, fresh_database_url: str | None) -> Iterator[Database]:
    database = Database(fresh_database_url or f"sqlite:///{tmp_path / 'opengroup.db'}")
    migrate.upgrade(database)

    async def post_nine() -> None:
        writer = PostWriter(database)
        for n in range(1, 10):
            await writer.write(NewPost(ROOM, ALICE, n, f"post {n}", "sig", 100.0))
        await writer.close()

    asyncio.run(post_nine())
    yield database
    database.dispose()


def react(db: Database, message_id: int, who: str, kind: str = "👍", *, bump: bool = True) -> None:
    """A reaction as the domain writes one (its message takes the room's next seqno),
    or, with ``bump`` False, as no writer does."""
    with db.write() as conn:
        posts.add_reaction(conn, ROOM, message_id, kind, who, 200.0)
        if bump:
            posts.move_to_next_seqno(conn, ROOM, message_id)


def reactors(db: Database, cache: ReactorsCache, *ids: int) -> dict[int, dict[str, list[str]]]:
    """What a page of the messages ``ids``, read now, shows."""
    with db.read() as conn:
        page = [message for i in ids if (message := posts.one(conn, ROOM, i)) is not None]
        found = cache.of_messages(conn, ROOM, page)
    return {message_id: kept.by_kind for message_id, kept in found.items()}


def kept_with_a_reaction(db: Database) -> ReactorsCache:
    """A cache that read message 1 with ALICE's reaction."""
    cache = ReactorsCache()
    react(db, 1, ALICE)
    reactors(db, cache, 1)
    return cache


def test_reactors_are_read_again_only_when_the_message_changes(db: Database) -> None:
    cache = ReactorsCache()
    react(db, 1, ALICE)
    first = reactors(db, cache, 1, 2, 3)
    react(db, 1, BOB, bump=False)  # (unseen: the message kept its seqno)
    react(db, 2, BOB, bump=False)  # (unseen: kept without reactors)
    kept = reactors(db, cache, 1, 2, 3)
    react(db, 3, ALICE)  # moves message 3 only
    later = reactors(db, cache, 1, 2, 3)

    assert first == kept == {1: {"👍": [ALICE]}}
    assert later == {1: {"👍": [ALICE]}, 3: {"👍": [ALICE]}}


def test_a_changed_message_brings_every_reactor_then_read(db: Database) -> None:
    cache = kept_with_a_reaction(db)
    react(db, 1, BOB, "❤")

    assert reactors(db, cache, 1) == {1: {"👍": [ALICE], "❤": [BOB]}}


def test_a_deleted_message_shows_no_reactors(db: Database) -> None:
    cache = kept_with_a_reaction(db)
    with db.write() as conn:
        queries.mark_deleted(conn, ROOM, 1)

    assert reactors(db, cache, 1) == {}


def test_a_message_of_a_room_made_again_under_its_token_is_read_anew(db: Database) -> None:
    """Same room, id and seqno, but posted at another time: another message."""
    cache = kept_with_a_reaction(db)
    with db.write() as conn:
        posts.remove_reactions(conn, ROOM, 1)
        conn.exec_driver_sql(f"UPDATE messages SET posted_at = 999 WHERE room_id = '{ROOM}'")

    assert reactors(db, cache, 1) == {}


def test_the_least_recently_read_are_dropped_past_the_bound(db: Database) -> None:
    cache = ReactorsCache(max_kept=8)  # (one kept per message here)
    react(db, 1, ALICE)
    reactors(db, cache, 1)
    reactors(db, cache, *range(2, 9))  # eight kept
    reactors(db, cache, 1)  # read last: message 2 is now the least recently read
    reactors(db, cache, 9)  # a ninth: message 2 is dropped
    react(db, 1, BOB, bump=False)
    react(db, 2, BOB, bump=False)

    assert reactors(db, cache, 1, 2) == {1: {"👍": [ALICE]}, 2: {"👍": [BOB]}}


def test_a_message_with_a_quarter_of_the_bound_in_reactors_is_never_kept(db: Database) -> None:
    cache = ReactorsCache(max_kept=8)
    for who in (ALICE, BOB):
        react(db, 1, who)
    react(db, 1, "05" + "cc" * 32, bump=False)
    reactors(db, cache, 1)  # three reactors: more than 8 // 4
    react(db, 1, "05" + "dd" * 32, bump=False)

    assert len(reactors(db, cache, 1)[1]["👍"]) == 4


def test_readers_not_among_the_reactors_share_one_summary_and_a_reactor_gets_their_own(
    db: Database,
) -> None:
    react(db, 1, ALICE)
    react(db, 1, BOB)
    react(db, 1, BOB, "❤")  # (all at one time: first use goes by key)
    cache = ReactorsCache()
    with db.read() as conn:
        page = [posts.one(conn, ROOM, 1)]
        kept = cache.of_messages(conn, ROOM, [m for m in page if m is not None])[1]
    carol, dave = frozenset({"05" + "cc" * 32}), frozenset({"05" + "dd" * 32})

    carols, carol_reacted = kept.summaries(carol, 1)
    daves, _ = kept.summaries(dave, 1)
    alices, alice_reacted = kept.summaries(frozenset({"15" + "00" * 32, ALICE}), 1)

    assert carols is daves
    assert dict(carols) == {
        "👍": ReactionSummary(0, 2, [ALICE], you=False),
        "❤": ReactionSummary(1, 1, [BOB], you=False),
    }
    assert not carol_reacted
    assert alice_reacted
    assert dict(alices) == {
        "👍": ReactionSummary(0, 2, [ALICE], you=True),
        "❤": ReactionSummary(1, 1, [BOB], you=False),
    }
    assert kept.summaries(carol, 2)[0]["👍"].reactors == [ALICE, BOB]
