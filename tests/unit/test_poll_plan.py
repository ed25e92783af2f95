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
* The answer holds at most ``most_bytes`` (``max_poll_answer_bytes``) of messages'
  data and signatures: the message that would pass it and every one after it, in
  the poll's order, are left for the next poll; the poll's first message always
  comes. 0: no bound of bytes.
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
    """A room's head row (RoomHead's columns) with a holder who may read (the room's
    seqno and creation time last)."""
    holder, defaults, overrides = ("05" + "ab" * 32, False, False), (1, 1, 1), (None,) * 3
    window = (message_seq + deletion_seq, 0.0)
    return (message_seq, deletion_seq, *holder, None, "", "", *defaults, *overrides, *window)


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


def message_row(server_id: int, size: int) -> tuple[Any, ...]:
    """A message row (``Message``'s fields) whose data and signature are ``size`` bytes."""
    return (server_id, "05" + "cd" * 32, 0, "d" * (size - 88), "s" * 88, server_id, 0.0)


def answered(pages: Pages, sizes: list[list[int]]) -> list[list[int]]:
    """The message ids each room answers, for rooms past a cursor whose pages hold
    messages of these ``sizes`` (ids from 1 in each room)."""
    lookups = [PollLookup(f"r{n}", b"t", 0, None) for n in range(len(sizes))]
    plan = PollPlan(SQL, lookups, NOW, pages)
    heads: list[Any] = [head_row(len(room)) for room in sizes]
    follow_ups: list[list[Any]] = []
    for room in sizes:
        follow_ups += [[message_row(n, size) for n, size in enumerate(room, 1)], []]
    return [[m.server_id for m in rows.messages] for rows in plan.answers(heads, follow_ups)]


def test_the_messages_past_the_polls_most_bytes_wait_for_the_next_poll() -> None:
    rooms = [[400, 400], [400, 400], [100]]
    # the small message after the cut waits too
    assert answered(Pages(256, True, 0, 1200), rooms) == [[1, 2], [1], []]
    # exactly the bound is answered
    assert answered(Pages(256, True, 0, 1600), rooms) == [[1, 2], [1, 2], []]
    assert answered(Pages(256, True, 0, 1700), rooms) == [[1, 2], [1, 2], [1]]


def test_the_polls_first_message_comes_however_large() -> None:
    assert answered(Pages(256, True, 0, 1000), [[], [5000, 100], [100]]) == [[], [1], []]


def test_no_most_bytes_leaves_the_messages_to_the_rows_bounds() -> None:
    assert answered(Pages(256, True), [[100_000] * 3, [100_000]]) == [[1, 2, 3], [1]]
