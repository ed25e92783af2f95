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
    select,
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


def _page(whose: Any) -> Any:
    """A page of unexpired messages by ``whose`` key, oldest first (built once)."""
    return (
        select(_dm.id, _dm.sender, _dm.recipient, _dm.data, _dm.posted_at, _dm.expires_at)
        .where(
            whose == bindparam("key", type_=String),
            _dm.id > bindparam("after_id", type_=BigInteger),
            _dm.expires_at > bindparam("now", type_=Float),
        )
        .order_by(_dm.id)
        .limit(bindparam("limit", type_=Integer))
    )


_TO = HotStatement("direct_messages.to", _page(_dm.recipient))
_FROM = HotStatement("direct_messages.from", _page(_dm.sender))


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


def _read_page(
    conn: Connection, page: HotStatement, key: str, now: float, after_id: int, limit: int
) -> list[StoredDirectMessage]:
    params = {"key": key, "after_id": after_id, "now": now, "limit": limit}
    return [
        StoredDirectMessage(id_, sender, recipient, bytes(data), posted_at, expires_at)
        for id_, sender, recipient, data, posted_at, expires_at in page.rows(conn, params)
    ]


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
