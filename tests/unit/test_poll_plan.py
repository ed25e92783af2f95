"""How much a v2 poll reads (``storage/pollreader/plan.py``), without a database: the
plan's follow-up statements and their limits, given the rooms' head rows.

Rules pinned here (docs/API.md, ``compact_poll``):

* Each room's page holds at most the page's limit; the whole poll at most
  ``most_rows`` (``max_poll_items``) messages and deletions, the rooms in the poll's
  order; a room past it reads nothing this time.
* A page past a cursor is counted at no more than its counter allows (the ids past
  the cursor), so rooms with little that is new do not use the poll up.
* Deletions count with messages; a room that never had a deletion reads none.
* ``most_rows`` 0: only the pages bound the poll.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import sqlite

from opengroup.storage.pollreader.plan import (
    Pages,
    PollLookup,
    PollPlan,
    compile_poll_statements,
)

SQL = compile_poll_statements(sqlite.dialect(paramstyle="named"))
NOW = 1_000_000.0


def head_row(message_seq: int, deletion_seq: int = 0) -> tuple[Any, ...]:
    """A room's head row (RoomHead's columns) with a holder who may read."""
    holder, defaults, overrides = ("05" + "ab" * 32, False, False), (1, 1, 1), (None,) * 3
    return (message_seq, deletion_seq, *holder, None, "", "", *defaults, *overrides)


def limits(
    pages: Pages, rooms: Sequence[tuple[int | None, int | None, int, int]]
) -> list[int | None]:
    """The limit of each follow-up (None: not read) for rooms given as (messages after,
    deletions after, message_seq, deletion_seq)."""
    lookups = [PollLookup(f"r{n}", b"t", m, d) for n, (m, d, _, _) in enumerate(rooms)]
    plan = PollPlan(SQL, lookups, NOW, pages)
    rows: list[Any] = [head_row(seq, dels) for _, _, seq, dels in rooms]
    return [None if q is None else q[1]["limit"] for q in plan.follow_ups(rows)]


def test_the_rooms_past_the_polls_most_rows_read_less_or_nothing() -> None:
    rooms = [(0, None, 300, 0), (0, None, 300, 0), (0, None, 300, 0)]
    assert limits(Pages(256, True, 600), rooms) == [256, None, 256, None, 88, None]
    assert limits(Pages(256, True, 256), rooms) == [256, None, None, None, None, None]


def test_a_page_past_a_cursor_counts_no_more_than_the_ids_up_to_the_counter() -> None:
    rooms = [(299, None, 300, 0), (None, None, 300, 0), (300, None, 300, 0)]
    # one new message, the newest page (no cursor: the limit), none new
    assert limits(Pages(256, True, 10), rooms) == [1, None, 9, None, None, None]


def test_deletions_count_with_the_messages() -> None:
    rooms = [(0, 0, 5, 3), (0, 0, 5, 3)]
    assert limits(Pages(256, True, 10), rooms) == [5, 3, 2, None]
    # deletions named by the message they delete: counted up to the message counter
    assert limits(Pages(256, False, 12), rooms) == [5, 5, 2, None]


def test_no_most_rows_leaves_each_room_its_page() -> None:
    rooms = [(0, 0, 1000, 1000)] * 4
    assert limits(Pages(256, True), rooms) == [256] * 8
