"""One poll, statement by statement, whichever backend reads it.

The poll's statements are SQLAlchemy Core built from
:mod:`opengroup.storage.schema` (a room's head from
:mod:`opengroup.storage.roomhead`, the pages of messages and deletions from
:mod:`opengroup.storage.paging`), compiled once for the driver. A
:class:`PollPlan` says which of them a poll needs: every room's head first;
then, only for the rooms whose holder may read and whose counters are past the
poll's cursors, the messages and deletions. It runs no statement itself, so it
is tested without a database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import ClauseElement
from sqlalchemy.engine import Dialect

from opengroup.storage import paging
from opengroup.storage.driversql import Statement, compile_statements
from opengroup.storage.posts import StoredMessage
from opengroup.storage.queries import Message
from opengroup.storage.recentchanges import RecentChanges
from opengroup.storage.roomhead import RoomHead, TokenHolder, head_statement


@dataclass(frozen=True)
class PollLookup:
    """What one poll entry asks of one room."""

    room_id: str
    token_hash: bytes
    messages_after: int | None
    deletions_after: int | None


@dataclass(frozen=True)
class RoomRows:
    """What the database holds for one :class:`PollLookup`.

    ``room_exists`` False: no such room (the rest is empty). ``holder`` None: no
    live token with that hash in the room. Messages and deletions are read only
    for a holder who may see them (not banned).
    """

    room_exists: bool
    holder: TokenHolder | None
    messages: list[Message]
    deletions: list[tuple[int, int]]
    moderators: list[str]


def _statements(dialect: Dialect) -> dict[str, ClauseElement]:
    """The poll's statements (bind parameters by name)."""
    statements: dict[str, ClauseElement] = {
        "head": head_statement(dialect),
        "messages_after": paging.MESSAGES_AFTER,
        "messages_newest": paging.MESSAGES_NEWEST,
    }
    for name, by_number in (("by_number", True), ("by_message", False)):
        after, newest = paging.DELETIONS[by_number]
        statements[f"deletions_after_{name}"] = after
        statements[f"deletions_newest_{name}"] = newest
    return statements


def compile_poll_statements(dialect: Dialect) -> dict[str, Statement]:
    """Every poll statement, compiled for ``dialect``."""
    return compile_statements(_statements(dialect), dialect)


Query = tuple[Statement, dict[str, Any]]
# Reads a room's changes after a seqno, at most so many, on the reader's connection
# (room id, seqno, limit): posts.every_change_since_on.
ReadRoomChanges = Callable[[str, int, int], list[StoredMessage]]


@dataclass(frozen=True)
class Pages:
    """How much of each room a poll reads: at most ``limit`` rows a page, and at most
    ``most_rows`` over all its rooms (0: no more than the pages'; see
    :class:`PollPlan`); deletions numbered by their own number (``by_number``) or by
    the message they delete; at most ``most_bytes`` of messages in the answer (0: no
    bound of bytes; see :meth:`PollPlan.answers`)."""

    limit: int
    by_number: bool
    most_rows: int = 0
    most_bytes: int = 0


class PollPlan:
    """One poll, statement by statement: first every room's head, then, for the
    rooms whose holder may read and whose counters are past a cursor, the messages
    and deletions. Both readers follow it; only how they execute differs.

    Each room's page holds at most ``pages.limit`` rows, and the whole poll at most
    ``pages.most_rows``: the rooms past it, in the poll's order, get fewer or none,
    and the rest in the next poll, from their cursors. A page is counted at the most
    rows it could hold, which the room's counter bounds (there are no more ids past a
    cursor than up to the counter), so a room with one new message counts one."""

    def __init__(
        self,
        sql: dict[str, Statement],
        lookups: Sequence[PollLookup],
        now: float,
        pages: Pages,
        heads_only: bool = False,
    ) -> None:
        self.sql = sql
        self.lookups = lookups
        self.limit = pages.limit
        self.by_number = pages.by_number
        self.most_rows = pages.most_rows
        self.most_bytes = pages.most_bytes
        self.now = now
        self.heads_only = heads_only  # a token check: the heads, never messages

    def heads(self) -> list[Query]:
        """One head statement per room (the SQLite reader's; PostgreSQL batches them)."""
        return [
            (
                self.sql["head"],
                {"room_id": lookup.room_id, "token_hash": lookup.token_hash, "now": self.now},
            )
            for lookup in self.lookups
        ]

    def follow_ups(self, head_rows: list[Sequence[Any] | None]) -> list[Query | None]:
        """Two per room: its messages and its deletions statement, None where not needed."""
        queries: list[Query | None] = []
        left = self.most_rows if self.most_rows > 0 else len(self.lookups) * 2 * self.limit
        for lookup, row in zip(self.lookups, head_rows, strict=True):
            head = None if row is None else RoomHead.of(row)
            holder = None if head is None else head.holder
            if (
                self.heads_only
                or head is None
                or holder is None
                or holder.is_banned
                or not holder.may_read
            ):
                queries += [None, None]  # a token check, no room, no holder, banned, or no read
                continue
            message_seq, deletion_seq = head.message_seq, head.deletion_seq
            page = self._page(left, lookup.messages_after, message_seq)
            queries.append(self._messages(lookup, page) if page else None)
            left -= page
            if deletion_seq == 0:  # the room has never had a deletion
                queries.append(None)
                continue
            # Deletions are numbered by deletion_seq, and each names a message id up to
            # message_seq.
            top = deletion_seq if self.by_number else message_seq
            page = self._page(left, lookup.deletions_after, top)
            queries.append(self._deletions(lookup, page) if page else None)
            left -= page
        return queries

    def take_held(
        self,
        head_rows: list[Sequence[Any] | None],
        queries: list[Query | None],
        recent: RecentChanges,
        read: ReadRoomChanges,
    ) -> tuple[list[Query | None], list[list[Any] | None]]:
        """Of :meth:`follow_ups`' ``queries``, the pages of messages after a cursor that
        the rooms' latest changes kept in memory hold (read past their end with
        ``read`` first if the head is newer): the queries left for the database (None
        where held), and the rows held (None where not), for :meth:`answers`."""
        left = list(queries)
        held: list[list[Any] | None] = [None] * len(queries)
        for index, (lookup, row) in enumerate(zip(self.lookups, head_rows, strict=True)):
            query = queries[2 * index]
            if row is None or query is None or query[0] is not self.sql["messages_after"]:
                continue
            head = RoomHead.of(row)
            params = query[1]
            page = recent.live_after(
                (lookup.room_id, head.created_at),
                head.seqno,
                params["after"],
                params["limit"],
                partial(read, lookup.room_id),
            )
            if page is not None:
                left[2 * index] = None
                held[2 * index] = [
                    (m.id, m.session_id, m.timestamp, m.data, m.signature) for m in page
                ]
        return left, held

    def _page(self, left: int, after: int | None, top: int) -> int:
        """The most rows a room's page may hold: its limit, within what the poll has
        ``left``, and past a cursor ``after`` no more than there are ids up to ``top``."""
        most = min(self.limit, left)
        return most if after is None else max(0, min(most, top - after))

    def _messages(self, lookup: PollLookup, page: int) -> Query:
        names = ("messages_newest", "messages_after")
        return self._page_query(names, lookup.room_id, lookup.messages_after, page)

    def _deletions(self, lookup: PollLookup, page: int) -> Query:
        kind = "by_number" if self.by_number else "by_message"
        names = (f"deletions_newest_{kind}", f"deletions_after_{kind}")
        return self._page_query(names, lookup.room_id, lookup.deletions_after, page)

    def _page_query(self, names: tuple[str, str], room: str, after: int | None, page: int) -> Query:
        """A room's page of ``page`` rows: its newest (no cursor), or those past ``after``;
        ``names`` are the two statements' (newest, past a cursor)."""
        newest, past = names
        if after is None:
            return self.sql[newest], {"room_id": room, "limit": page}
        return self.sql[past], {"room_id": room, "after": after, "limit": page}

    def answers(
        self,
        head_rows: list[Sequence[Any] | None],
        follow_up_rows: list[list[Any]],
        held: list[list[Any] | None] | None = None,
    ) -> list[RoomRows]:
        """Rows (the heads', then two lists per room as :meth:`follow_ups`; where
        ``held`` has rows, :meth:`take_held`'s, those) to answers.

        Messages are also bounded by their size: once their data and signatures (the
        base64 text) add up to more than ``most_bytes``, the message that would pass
        it and all after it, in the poll's order, are left for the next poll, from
        the rooms' cursors. The first message is always answered, however large, so
        a poll always gets on."""
        if held is not None:
            follow_up_rows = [
                rows if kept is None else kept
                for rows, kept in zip(follow_up_rows, held, strict=True)
            ]
        answers = []
        bytes_left = self.most_bytes if self.most_bytes > 0 else None
        answered = False  # a message so far
        for index, (lookup, row) in enumerate(zip(self.lookups, head_rows, strict=True)):
            if row is None:
                answers.append(RoomRows(False, None, [], [], []))
                continue
            head = RoomHead.of(row)
            msg_rows, del_rows = follow_up_rows[2 * index], follow_up_rows[2 * index + 1]
            if lookup.messages_after is None:
                msg_rows = msg_rows[::-1]  # read newest first
            if bytes_left is not None:
                kept, bytes_left = _within(msg_rows, bytes_left, first=not answered)
                msg_rows = msg_rows[:kept]
            answered = answered or bool(msg_rows)
            if lookup.deletions_after is None:
                del_rows = del_rows[::-1]
            answers.append(
                RoomRows(
                    room_exists=True,
                    holder=head.holder,
                    messages=[Message(*r) for r in msg_rows],
                    deletions=[(r[0], r[1]) for r in del_rows],
                    moderators=head.moderators,
                )
            )
        return answers


def _within(rows: Sequence[Sequence[Any]], bytes_left: int, *, first: bool) -> tuple[int, int]:
    """How many of the message ``rows``, from the first, fit in ``bytes_left``, and
    the bytes left after them (-1 once a row did not fit: nothing more does). A row
    counts its data and signature (``Message``'s fourth and fifth fields); the
    poll's ``first`` message always fits."""
    for count, row in enumerate(rows):
        size = len(row[3]) + len(row[4])
        if size > bytes_left and not (first and count == 0):
            return count, -1
        bytes_left -= size
    return len(rows), bytes_left
