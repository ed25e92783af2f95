"""Statements about blinded direct messages ("message requests"), as functions over a
connection.

A direct message is opaque bytes from one id to another; the server keeps it until
it expires or its recipient clears their inbox. Reads leave out expired messages
that :func:`prune_expired` has not reached yet, so expiry is exact to the second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Float,
    Integer,
    String,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    union_all,
)

from opengroup.storage.driversql import HotStatement
from opengroup.storage.schema import direct_messages

_dm = direct_messages.c


@dataclass(frozen=True)
class StoredDirectMessage:
    id: int
    sender: str
    recipient: str
    data: bytes
    posted_at: float
    expires_at: float


def insert_message(
    conn: Connection,
    sender: str,
    recipient: str,
    data: bytes,
    posted_at: float,
    expires_at: float,
) -> StoredDirectMessage:
    """Store a message; returns it with its new id."""
    new_id = conn.execute(
        insert(direct_messages)
        .values(
            sender=sender,
            recipient=recipient,
            data=data,
            posted_at=posted_at,
            expires_at=expires_at,
        )
        .returning(_dm.id)
    ).scalar_one()
    return StoredDirectMessage(new_id, sender, recipient, data, posted_at, expires_at)


_KEY = bindparam("key", type_=String)
_NOW = bindparam("now", type_=Float)


def _page(whose: Any, after_id: str = "after_id", limit: str = "limit") -> Any:
    """A page of unexpired messages by ``whose`` key, oldest first (built once), from
    the parameters ``key``, ``now``, ``after_id`` and ``limit`` (or as named)."""
    return (
        select(_dm.id, _dm.sender, _dm.recipient, _dm.data, _dm.posted_at, _dm.expires_at)
        .where(
            whose == _KEY,
            _dm.id > bindparam(after_id, type_=BigInteger),
            _dm.expires_at > _NOW,
        )
        .order_by(_dm.id)
        .limit(bindparam(limit, type_=Integer))
    )


def _both_pages() -> Any:
    """A page of the inbox and one of the outbox, as rows tagged ``to`` or ``from``, in
    one statement (a client polls both in each batch)."""
    to = _page(_dm.recipient, "after_to", "limit_to").subquery()
    from_ = _page(_dm.sender, "after_from", "limit_from").subquery()
    return union_all(
        select(literal("to").label("box"), *to.c), select(literal("from").label("box"), *from_.c)
    ).order_by("box", "id")


_TO = HotStatement("direct_messages.to", _page(_dm.recipient))
_FROM = HotStatement("direct_messages.from", _page(_dm.sender))
_BOTH = HotStatement("direct_messages.both", _both_pages())


def messages_to(
    conn: Connection, recipient: str, now: float, *, after_id: int, limit: int
) -> list[StoredDirectMessage]:
    """The unexpired messages to ``recipient`` with an id above ``after_id``, oldest
    first, at most ``limit``."""
    return _read_page(conn, _TO, recipient, now, after_id, limit)


def messages_from(
    conn: Connection, sender: str, now: float, *, after_id: int, limit: int
) -> list[StoredDirectMessage]:
    """The unexpired messages from ``sender`` with an id above ``after_id``, oldest
    first, at most ``limit``."""
    return _read_page(conn, _FROM, sender, now, after_id, limit)


def both_pages(
    conn: Connection, key: str, now: float, inbox: tuple[int, int], outbox: tuple[int, int]
) -> tuple[list[StoredDirectMessage], list[StoredDirectMessage]]:
    """:func:`messages_to` and :func:`messages_from` of one person in one statement,
    each page given as (after_id, limit)."""
    params = {"key": key, "now": now, "after_to": inbox[0], "limit_to": inbox[1],
              "after_from": outbox[0], "limit_from": outbox[1]}  # fmt: skip
    pages: dict[str, list[StoredDirectMessage]] = {"to": [], "from": []}
    for box, *row in _BOTH.rows(conn, params):
        pages[box].append(_message(row))
    return pages["to"], pages["from"]


def _read_page(
    conn: Connection, page: HotStatement, key: str, now: float, after_id: int, limit: int
) -> list[StoredDirectMessage]:
    params = {"key": key, "after_id": after_id, "now": now, "limit": limit}
    return [_message(row) for row in page.rows(conn, params)]


def _message(row: Any) -> StoredDirectMessage:
    id_, sender, recipient, data, posted_at, expires_at = row
    return StoredDirectMessage(id_, sender, recipient, bytes(data), posted_at, expires_at)


def delete_messages_to(conn: Connection, recipient: str, now: float) -> int:
    """Delete every message to ``recipient`` (so they leave their senders' outboxes too);
    returns how many of them had not expired yet."""
    live = conn.execute(
        select(func.count())
        .select_from(direct_messages)
        .where(_dm.recipient == recipient, _dm.expires_at > now)
    ).scalar_one()
    conn.execute(delete(direct_messages).where(_dm.recipient == recipient))
    return int(live)


def prune_expired(conn: Connection, now: float) -> int:
    """Delete the messages that have expired; returns how many."""
    return conn.execute(delete(direct_messages).where(_dm.expires_at <= now)).rowcount
