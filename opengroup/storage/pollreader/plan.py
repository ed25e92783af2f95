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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ClauseElement
from sqlalchemy.engine import Dialect

from opengroup.storage import paging
from opengroup.storage.driversql import Statement, compile_statements
from opengroup.storage.queries import Message
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


class PollPlan:
    """One poll, statement by statement: first every room's head, then, for the
    rooms whose holder may read and whose counters are past a cursor, the messages
    and deletions. Both readers follow it; only how they execute differs."""

    def __init__(
        self,
        sql: dict[str, Statement],
        lookups: Sequence[PollLookup],
        now: float,
        limit: int,
        by_number: bool,
        heads_only: bool = False,
    ) -> None:
        self.sql = sql
        self.lookups = lookups
        self.limit = limit
        self.by_number = by_number
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
            queries.append(self._messages(lookup, message_seq))
            queries.append(self._deletions(lookup, deletion_seq, message_seq))
        return queries

    def _messages(self, lookup: PollLookup, message_seq: int) -> Query | None:
        room = lookup.room_id
        if lookup.messages_after is None:
            return self.sql["messages_newest"], {"room_id": room, "limit": self.limit}
        if lookup.messages_after >= message_seq:
            return None
        params = {"room_id": room, "after": lookup.messages_after, "limit": self.limit}
        return self.sql["messages_after"], params

    def _deletions(self, lookup: PollLookup, deletion_seq: int, message_seq: int) -> Query | None:
        if deletion_seq == 0:  # the room has never had a deletion
            return None
        # Deletions are numbered by deletion_seq, and each names a message id up to message_seq.
        top = deletion_seq if self.by_number else message_seq
        kind = "by_number" if self.by_number else "by_message"
        room = lookup.room_id
        if lookup.deletions_after is None:
            return self.sql[f"deletions_newest_{kind}"], {"room_id": room, "limit": self.limit}
        if lookup.deletions_after >= top:
            return None
        params = {"room_id": room, "after": lookup.deletions_after, "limit": self.limit}
        return self.sql[f"deletions_after_{kind}"], params

    def answers(
        self, head_rows: list[Sequence[Any] | None], follow_up_rows: list[list[Any]]
    ) -> list[RoomRows]:
        """Rows (the heads', then two lists per room as :meth:`follow_ups`) to answers."""
        answers = []
        for index, (lookup, row) in enumerate(zip(self.lookups, head_rows, strict=True)):
            if row is None:
                answers.append(RoomRows(False, None, [], [], []))
                continue
            head = RoomHead.of(row)
            msg_rows, del_rows = follow_up_rows[2 * index], follow_up_rows[2 * index + 1]
            if lookup.messages_after is None:
                msg_rows = msg_rows[::-1]  # read newest first
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
