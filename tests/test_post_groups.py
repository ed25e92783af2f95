"""Posts written together (group commit, opengroup/storage/postwriter.py).

The posts waiting at one moment share one transaction. A post refused before
it writes anything (a rate limit, no such room) is answered alone and the
others are stored; a post that fails after it started writing takes its whole
group down, so no half-written post and no gap in the ids is ever committed.
These run the writer on the real database of the run's backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from opengroup.storage import migrate
from opengroup.storage.database import Database
from opengroup.storage.postwriter import GroupWriteFailed, PostTransaction, PostWriter

ROOM = "main"  # made by the first migration


class Refused(Exception):
    pass


class Broke(Exception):
    pass


@pytest.fixture
def db(tmp_path: Path, fresh_database_url: str | None) -> Iterator[Database]:
    url = fresh_database_url or f"sqlite:///{tmp_path / 'opengroup.db'}"
    database = Database(url)
    migrate.upgrade(database)
    yield database
    database.dispose()


def post(text: str, room: str = ROOM):
    def work(tx: PostTransaction) -> int | None:
        return tx.insert_next_message(room, "05" + "ab" * 32, 1, text, "sig", 0.0)

    return work


def refuse_after_reading(tx: PostTransaction) -> None:
    assert tx.lock_room(ROOM)
    raise Refused


def break_after_writing(tx: PostTransaction) -> None:
    tx.insert_next_message(ROOM, "05" + "ab" * 32, 1, "half", "sig", 0.0)
    raise Broke


def stored(db: Database) -> list[tuple[int, str]]:
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT server_id, data FROM messages ORDER BY server_id"))
        return [(row[0], row[1]) for row in rows]


async def write_together(writer: PostWriter, *works) -> list[object]:
    """Queued in one go, so the writer takes them as one group."""
    return await asyncio.gather(*(writer.write(ROOM, w) for w in works), return_exceptions=True)


def test_a_post_refused_before_writing_is_answered_alone(db: Database) -> None:
    writer = PostWriter(db)
    results = asyncio.run(write_together(writer, post("one"), refuse_after_reading, post("two")))

    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], Refused)
    assert stored(db) == [(1, "one"), (2, "two")]


def test_no_such_room_stores_nothing_and_takes_no_id(db: Database) -> None:
    writer = PostWriter(db)
    results = asyncio.run(write_together(writer, post("lost", room="nowhere"), post("one")))

    assert results == [None, 1]
    assert stored(db) == [(1, "one")]


def test_a_post_failing_after_it_wrote_fails_its_whole_group(db: Database) -> None:
    writer = PostWriter(db)
    group = asyncio.run(write_together(writer, post("one"), break_after_writing, post("two")))
    after = asyncio.run(write_together(writer, post("three")))

    assert all(isinstance(result, GroupWriteFailed) for result in group), group
    assert isinstance(group[1].__cause__, Broke)
    assert after == [1]  # the failed group took no ids
    assert stored(db) == [(1, "three")]
