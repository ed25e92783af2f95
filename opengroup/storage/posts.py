"""Statements for the community API's messages: pages by seqno or id, one message,
edits, reactions and their reactors, and the files a post names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    delete,
    false,
    func,
    or_,
    select,
    update,
)

from opengroup.storage.driversql import DriverConnection, HotStatement, driver_connection
from opengroup.storage.queries import insert_if_absent, next_seqno
from opengroup.storage.schema import files, messages, reactions, rooms


class StoredMessage(NamedTuple):
    """A message as stored. A named tuple, not a frozen dataclass: one is built for
    every row of every page a poll reads, and a frozen dataclass's ``__init__`` (a
    ``setattr`` per field) cost a poll carrying 100 messages a tenth of its CPU."""

    id: int
    session_id: str
    posted: float
    edited: float | None
    seqno: int
    seqno_data: int
    seqno_created: int
    data: str  # base64, as posted ("" once deleted)
    signature: str
    deleted: bool
    whisper_to: str | None
    whisper_mods: bool
    timestamp: int  # as the v2 API took it (milliseconds); the v2 API's pages show it


@dataclass(frozen=True)
class Reaction:
    message_id: int
    reaction: str
    public_key: str
    reacted_at: float


_COLUMNS = (  # in the order of StoredMessage's fields
    messages.c.server_id,
    messages.c.public_key,
    messages.c.posted_at,
    messages.c.edited_at,
    messages.c.seqno,
    messages.c.seqno_data,
    messages.c.seqno_created,
    messages.c.data,
    messages.c.signature,
    messages.c.deleted,
    messages.c.whisper_to,
    messages.c.whisper_mods,
    messages.c.timestamp,
)


def _message(row: Any) -> StoredMessage:
    """The message of a row of ``_COLUMNS`` (the same order as the fields); SQLite's
    flags are 0 or 1."""
    return StoredMessage(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
        bool(row[9]), row[10], bool(row[11]), row[12],
    )  # fmt: skip


# The pages below are built once, with their values as parameters: ``keys``
# (expanding: every key the reader is known under, none for anonymous) and
# ``moderator`` decide which whispers the reader sees.
_ROOM = bindparam("room_id", type_=String)
_SEQNO = bindparam("seqno", type_=BigInteger)
_KEYS = bindparam("keys", expanding=True, type_=String)
_MODERATOR = bindparam("moderator", type_=Boolean)
_LIMIT = bindparam("limit", type_=Integer)

# Messages the reader may see: every message that is not a whisper, whispers to them
# or from them, and, for moderators, whispers to moderators.
_VISIBLE = or_(
    and_(messages.c.whisper_to.is_(None), messages.c.whisper_mods == false()),
    messages.c.whisper_to.in_(_KEYS),
    messages.c.public_key.in_(_KEYS),
    and_(_MODERATOR, messages.c.whisper_mods),
)


def is_for_everyone(message: StoredMessage) -> bool:
    """Whether a message read is not a whisper."""
    return message.whisper_to is None and not message.whisper_mods


def visible_to(message: StoredMessage, keys: Sequence[str], moderator: bool) -> bool:
    """:data:`_VISIBLE` for a message already read: whether the reader known under
    ``keys`` may see it."""
    if is_for_everyone(message):
        return True
    return (
        message.session_id in keys
        or message.whisper_to in keys
        or (moderator and message.whisper_mods)
    )


def shows_change(
    message: StoredMessage, seqno: int, keys: Sequence[str], moderator: bool, with_reactions: bool
) -> bool:
    """:func:`_changes_since`'s rule for a message changed after ``seqno`` and already
    read: whether that page shows it to the reader. (tests/test_recent_changes.py
    holds the two forms to the same pages.)"""
    if message.deleted and message.seqno_created > seqno:
        return False  # posted and deleted since: the reader never saw it
    if not with_reactions and message.seqno_data <= seqno:
        return False  # only its reactions changed
    return visible_to(message, keys, moderator)


def _changes_since(with_reactions: bool) -> Any:
    query = select(*_COLUMNS).where(
        messages.c.room_id == _ROOM,
        messages.c.seqno > _SEQNO,
        _VISIBLE,
        ~(messages.c.deleted & (messages.c.seqno_created > _SEQNO)),
    )
    if not with_reactions:
        query = query.where(messages.c.seqno_data > _SEQNO)
    return query.order_by(messages.c.seqno).limit(_LIMIT)


_CHANGES_SINCE = {
    flag: HotStatement(f"messages.since.reactions={flag}", _changes_since(flag), expanding=["keys"])
    for flag in (True, False)
}


def changes_since(
    conn: Connection,
    room_id: str,
    seqno: int,
    limit: int,
    keys: Sequence[str],
    moderator: bool,
    *,
    with_reactions: bool,
) -> list[StoredMessage]:
    """The room's messages changed after ``seqno`` that the reader known under ``keys``
    may see, in seqno order: posts and edits, deletions of messages posted by then, and
    (``with_reactions``) reaction changes."""
    params = {"room_id": room_id, "seqno": seqno, "moderator": moderator, "limit": limit}
    rows = _CHANGES_SINCE[with_reactions].rows(conn, params, keys=keys)
    return [_message(row) for row in rows]


_EVERY_CHANGE_SINCE = HotStatement(
    "messages.every_change_since",
    select(*_COLUMNS)
    .where(messages.c.room_id == _ROOM, messages.c.seqno > _SEQNO)
    .order_by(messages.c.seqno)
    .limit(_LIMIT),
)


def every_change_since(
    conn: Connection, room_id: str, seqno: int, limit: int
) -> list[StoredMessage]:
    """The room's messages changed after ``seqno``, in seqno order, whoever may see them
    (whispers, and deleted messages however new): for
    :class:`~opengroup.storage.recentchanges.RecentChanges`, which sorts them per reader
    by :func:`shows_change`."""
    return every_change_since_on(
        driver_connection(conn.connection), conn.dialect.name, room_id, seqno, limit
    )


def every_change_since_on(
    conn: DriverConnection, dialect_name: str, room_id: str, seqno: int, limit: int
) -> list[StoredMessage]:
    """:func:`every_change_since` on a driver connection of the dialect
    ``dialect_name`` (the v2 API's poll readers')."""
    params = {"room_id": room_id, "seqno": seqno, "limit": limit}
    rows = _EVERY_CHANGE_SINCE.run_on(conn, dialect_name, params).fetchall()
    return [_message(row) for row in rows]


def _newest(before: bool) -> Any:
    query = select(*_COLUMNS).where(messages.c.room_id == _ROOM, ~messages.c.deleted, _VISIBLE)
    if before:
        query = query.where(messages.c.server_id < bindparam("before", type_=BigInteger))
    return query.order_by(messages.c.server_id.desc()).limit(_LIMIT)


_NEWEST = {
    flag: HotStatement(f"messages.newest.before={flag}", _newest(flag), expanding=["keys"])
    for flag in (True, False)
}


def newest(
    conn: Connection,
    room_id: str,
    limit: int,
    keys: Sequence[str],
    moderator: bool,
    before: int | None = None,
) -> list[StoredMessage]:
    """The room's newest live messages (with ids below ``before``) that the reader known
    under ``keys`` may see, newest first."""
    params = {"room_id": room_id, "moderator": moderator, "limit": limit}
    if before is not None:
        params["before"] = before
    return [_message(row) for row in _NEWEST[before is not None].rows(conn, params, keys=keys)]


def one(conn: Connection, room_id: str, message_id: int) -> StoredMessage | None:
    row = conn.execute(
        select(*_COLUMNS).where(messages.c.room_id == room_id, messages.c.server_id == message_id)
    ).first()
    return _message(row) if row is not None else None


class LockedRoom(NamedTuple):
    """A room whose row lock this transaction holds, with one of its messages."""

    seqno: int  # the room's, as the lock found it
    message: StoredMessage | None  # None: there is no such message


_MESSAGE_ID = bindparam("message_id", type_=BigInteger)
_ONE_IN_LOCKED_ROOM = HotStatement(
    "messages.one_in_locked_room",
    select(rooms.c.seqno, *_COLUMNS)
    .select_from(
        rooms.outerjoin(
            messages, and_(messages.c.room_id == rooms.c.id, messages.c.server_id == _MESSAGE_ID)
        )
    )
    .where(rooms.c.id == _ROOM)
    # (queries.LOCK_ROOM's lock: a concurrent deletion or reaction waits until commit)
    .with_for_update(key_share=True, of=rooms),
)


def one_in_locked_room(conn: Connection, room_id: str, message_id: int) -> LockedRoom | None:
    """Take the room's row lock until commit (:func:`queries.lock_room`) and read the
    message, in one statement (a check-then-write: edits, deletions, reactions); None
    if there is no such room."""
    row = _ONE_IN_LOCKED_ROOM.run(conn, {"room_id": room_id, "message_id": message_id}).fetchone()
    if row is None:
        return None
    return LockedRoom(row[0], _message(row[1:]) if row[1] is not None else None)


def edit(
    conn: Connection,
    room_id: str,
    message_id: int,
    data: str,
    signature: str,
    seqno: int,
    now: float,
) -> None:
    conn.execute(
        update(messages)
        .where(messages.c.room_id == room_id, messages.c.server_id == message_id)
        .values(data=data, signature=signature, edited_at=now, seqno=seqno, seqno_data=seqno)
    )


_SET_SEQNO = HotStatement(
    "messages.set_seqno",
    update(messages)
    .where(messages.c.room_id == _ROOM, messages.c.server_id == _MESSAGE_ID)
    .values(seqno=bindparam("seqno", type_=BigInteger)),
)


def move_to_next_seqno(conn: Connection, room_id: str, message_id: int) -> int:
    """Give a message whose reactions changed the room's next seqno (and return it): the
    pollers past its old one get it again, and reactors kept by seqno are read anew."""
    seqno = next_seqno(conn, room_id)
    _SET_SEQNO.run(conn, {"room_id": room_id, "message_id": message_id, "seqno": seqno})
    return seqno


def live_ids_by(conn: Connection, room_id: str, keys: Sequence[str]) -> list[int]:
    rows = conn.execute(
        select(messages.c.server_id)
        .where(
            messages.c.room_id == room_id,
            messages.c.public_key.in_(list(keys)),
            ~messages.c.deleted,
        )
        .order_by(messages.c.server_id)
    )
    return [row[0] for row in rows]


# -- reactions ---------------------------------------------------------------------------


def reactions_of(conn: Connection, room_id: str, message_ids: Sequence[int]) -> list[Reaction]:
    """Every reaction to the messages, by message, each message's oldest first."""
    if not message_ids:
        return []
    rows = _REACTIONS_OF.rows(conn, {"room_id": room_id}, message_ids=message_ids)
    return [Reaction(*row) for row in rows]


def reactors_by_message(
    conn: Connection, room_id: str, message_ids: Sequence[int]
) -> dict[int, dict[str, list[str]]]:
    """The reactions to the messages, by message, then by kind in the order of their
    first use, each with its reactors' keys, oldest first (none for a message without
    reactions). A page of messages shows them so."""
    found: dict[int, dict[str, list[str]]] = {}
    if message_ids:
        for message_id, reaction, public_key, _at in _REACTIONS_OF.rows(
            conn, {"room_id": room_id}, message_ids=message_ids
        ):
            found.setdefault(message_id, {}).setdefault(reaction, []).append(public_key)
    return found


_REACTIONS_OF = HotStatement(
    "reactions.of_messages",
    select(reactions.c.message_id, reactions.c.reaction, reactions.c.public_key,
           reactions.c.reacted_at)
    .where(
        reactions.c.room_id == _ROOM,
        reactions.c.message_id.in_(bindparam("message_ids", expanding=True, type_=BigInteger)),
    )
    # (the order of the index reactions_in_order: nothing to sort)
    .order_by(reactions.c.message_id, reactions.c.reacted_at, reactions.c.public_key),
    expanding=["message_ids"],
)  # fmt: skip


def add_reaction(
    conn: Connection, room_id: str, message_id: int, reaction: str, public_key: str, now: float
) -> bool:
    """False if the key had that reaction on the message already."""
    return insert_if_absent(
        conn,
        reactions,
        room_id=room_id,
        message_id=message_id,
        reaction=reaction,
        public_key=public_key,
        reacted_at=now,
    )


def remove_reactions(
    conn: Connection,
    room_id: str,
    message_id: int,
    reaction: str | None = None,
    keys: Sequence[str] | None = None,
) -> int:
    """Remove reactions to a message: of one kind (or all), by some keys (or all)."""
    condition = and_(reactions.c.room_id == room_id, reactions.c.message_id == message_id)
    if reaction is not None:
        condition = and_(condition, reactions.c.reaction == reaction)
    if keys is not None:
        condition = and_(condition, reactions.c.public_key.in_(list(keys)))
    return conn.execute(delete(reactions).where(condition)).rowcount


def reactors(
    conn: Connection, room_id: str, message_id: int, reaction: str, limit: int
) -> list[tuple[str, float]]:
    rows = conn.execute(
        select(reactions.c.public_key, reactions.c.reacted_at)
        .where(
            reactions.c.room_id == room_id,
            reactions.c.message_id == message_id,
            reactions.c.reaction == reaction,
        )
        .order_by(reactions.c.reacted_at, reactions.c.public_key)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in rows]


# -- files named by posts ----------------------------------------------------------------


_UNTIL = bindparam("until", type_=Float)
_KEEP_FILES = HotStatement(
    "files.keep",
    update(files)
    .where(
        files.c.id.in_(bindparam("ids", expanding=True, type_=BigInteger)),
        files.c.room_id == _ROOM,
        files.c.uploader.in_(bindparam("keys", expanding=True, type_=String)),
        files.c.expires_at.is_not(None),
        files.c.expires_at < _UNTIL,
    )
    .values(expires_at=_UNTIL),
    expanding=["ids", "keys"],
)


def keep_files(
    conn: Connection,
    room_id: str,
    uploader_keys: Sequence[str],
    file_ids: Sequence[int],
    until: float,
) -> int:
    """Give the uploader's files in the room that a post names a longer life (never
    shorter, and never an expiry to a file that has none); how many."""
    driver = driver_connection(conn.connection)
    return keep_files_on(driver, conn.dialect.name, room_id, uploader_keys, file_ids, until)


def keep_files_on(
    conn: DriverConnection,
    dialect_name: str,
    room_id: str,
    uploader_keys: Sequence[str],
    file_ids: Sequence[int],
    until: float,
) -> int:
    """:func:`keep_files` on a driver connection (the post writer's, in the post's own
    transaction)."""
    if not file_ids:
        return 0
    params = {"room_id": room_id, "until": until}
    cursor = _KEEP_FILES.run_on(conn, dialect_name, params, ids=file_ids, keys=uploader_keys)
    return cursor.rowcount


def expire_files_of(
    conn: Connection, room_id: str, keys: Sequence[str], now: float, keep: int | None
) -> int:
    """Expire now every file the keys uploaded to the room, but the room image ``keep``."""
    condition = and_(files.c.room_id == room_id, files.c.uploader.in_(list(keys)))
    if keep is not None:
        condition = and_(condition, files.c.id != keep)
    return conn.execute(
        update(files)
        .where(condition, or_(files.c.expires_at.is_(None), files.c.expires_at > now))
        .values(expires_at=now)
    ).rowcount


def count_live(conn: Connection, room_id: str) -> int:
    return conn.execute(
        select(func.count()).where(messages.c.room_id == room_id, ~messages.c.deleted)
    ).scalar_one()
