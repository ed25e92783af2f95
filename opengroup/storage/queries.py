"""The statements of the ordinary paths, as small functions over a SQLAlchemy connection.

The domain layer decides what happens and opens the transaction
(``Database.read()`` / ``Database.write()``); these functions only say how
it is stored. Nothing here knows about HTTP or permissions.

Other statements live elsewhere:

- the hot paths run theirs on the driver: :mod:`opengroup.storage.pollreader`
  (``compact_poll``, posting's token check) and :mod:`opengroup.storage.postwriter`
  (posting);
- :mod:`opengroup.storage.stats`: the counts of ``opengroup stats`` and the metrics;
- :mod:`opengroup.storage.bulk`: the legacy import's bulk writes;
- :mod:`opengroup.storage.migrate` and ``migrations/``: the schema, through Alembic.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    insert,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from opengroup.storage import paging
from opengroup.storage.driversql import HotStatement, padded
from opengroup.storage.roomhead import RoomHead, head_statement
from opengroup.storage.schema import (
    bans,
    deletions,
    files,
    future_permissions,
    global_bans,
    global_moderators,
    messages,
    moderators,
    pending_tokens,
    permission_overrides,
    pins,
    rate_events,
    reactions,
    room_activity,
    rooms,
    tokens,
)


@dataclass(frozen=True)
class Room:
    id: str
    name: str
    image_file_id: int | None


class Message(NamedTuple):
    """A v2 message (a named tuple, as the community API's messages are: a poll with
    news builds one for each message of its pages)."""

    server_id: int
    public_key: str
    timestamp: int
    data: str
    signature: str
    seqno: int = 0
    posted_at: float = 0.0


# -- rooms -------------------------------------------------------------------


def list_rooms(conn: Connection) -> list[Room]:
    rows = conn.execute(
        select(rooms.c.id, rooms.c.name, rooms.c.image_file_id).order_by(rooms.c.id)
    )
    return [Room(*row) for row in rows]


# The statements of every poll and authenticated request are built once, here, with
# named bind parameters: building a select() costs several times more than running
# it (SQLAlchemy then still finds the compiled form in its cache). Rarer
# statements are built where they run.
_GET_ROOM = select(rooms.c.id, rooms.c.name, rooms.c.image_file_id).where(
    rooms.c.id == bindparam("room_id")
)


def get_room(conn: Connection, room_id: str) -> Room | None:
    row = conn.execute(_GET_ROOM, {"room_id": room_id}).first()
    return Room(*row) if row else None


def insert_room(conn: Connection, room_id: str, name: str, now: float) -> bool:
    """Create a room; False if one exists already under that id in any case (room
    ids are matched without regard to case; the one lock makes the check hold)."""
    lock_name(conn, "rooms")
    same = select(rooms.c.id).where(func.lower(rooms.c.id) == room_id.lower())
    if conn.execute(same).first() is not None:
        return False
    conn.execute(
        insert(rooms).values(
            id=room_id, name=name, message_seq=0, deletion_seq=0, created_at=now, info_updates=1
        )
    )
    return True


def delete_room(conn: Connection, room_id: str) -> bool:
    """Delete a room and everything in it; False if there was no such room."""
    for table in (
        messages,
        deletions,
        moderators,
        bans,
        pending_tokens,
        tokens,
        files,
        room_activity,
        reactions,
        pins,
        permission_overrides,
        future_permissions,
    ):
        conn.execute(delete(table).where(table.c.room_id == room_id))
    return conn.execute(delete(rooms).where(rooms.c.id == room_id)).rowcount > 0


# The room's row lock, which the writers of a room's messages (posting too, see
# storage/postwriter.py; deleting, editing, reacting, pinning) take first: they take
# turns, and two never wait for each other in a circle. PostgreSQL: FOR NO KEY UPDATE,
# the lock an UPDATE of the room's counters takes anyway, which lets rows that refer to
# the room be written meanwhile.
# SQLite ignores it (BEGIN IMMEDIATE serialises its writers).
LOCK_ROOM = (
    select(rooms.c.message_seq)
    .where(rooms.c.id == bindparam("room_id"))
    .with_for_update(key_share=True)
)


def lock_room(conn: Connection, room_id: str) -> bool:
    """Hold the room's row lock until commit (check-then-write transactions:
    deletions, bans, moderators); False if there is no such room."""
    return conn.execute(LOCK_ROOM, {"room_id": room_id}).first() is not None


# One statement per counter of a room, run on the driver: every edit, deletion and
# reaction takes the next seqno.
_BUMP_ROOM_COUNTER = {
    counter: HotStatement(
        f"rooms.bump_{counter}",
        update(rooms)
        .where(rooms.c.id == bindparam("room_id"))
        .values({rooms.c[counter]: rooms.c[counter] + 1})
        .returning(rooms.c[counter]),
    )
    for counter in ("deletion_seq", "seqno", "info_updates")
}


def bump_room_counter(conn: Connection, room_id: str, counter: str) -> int:
    """Add one to a counter of the room (``deletion_seq``, ``seqno`` or
    ``info_updates``) and return it; the row stays locked until commit, so the
    room's writers take numbers one after another."""
    row = _BUMP_ROOM_COUNTER[counter].run(conn, {"room_id": room_id}).fetchone()
    if row is None:
        raise LookupError(f"no room {room_id!r}")  # (callers hold its row, or just read it)
    return int(row[0])


def next_deletion_id(conn: Connection, room_id: str) -> int:
    return bump_room_counter(conn, room_id, "deletion_seq")


# -- tokens ------------------------------------------------------------------


def insert_pending_token(
    conn: Connection, room_id: str, public_key: str, token_hash: bytes, expires_at: float
) -> None:
    conn.execute(
        insert(pending_tokens).values(
            token_hash=token_hash, room_id=room_id, public_key=public_key, expires_at=expires_at
        )
    )


def take_pending_token(
    conn: Connection, room_id: str, public_key: str, token_hash: bytes, now: float
) -> bool:
    """Remove a live pending token of that key in that room; True if there was one."""
    result = conn.execute(
        delete(pending_tokens).where(
            pending_tokens.c.token_hash == token_hash,
            pending_tokens.c.room_id == room_id,
            pending_tokens.c.public_key == public_key,
            pending_tokens.c.expires_at > now,
        )
    )
    return result.rowcount > 0


def insert_token(
    conn: Connection, room_id: str, public_key: str, token_hash: bytes, expires_at: float
) -> None:
    conn.execute(
        insert(tokens).values(
            token_hash=token_hash, room_id=room_id, public_key=public_key, expires_at=expires_at
        )
    )


# One statement per dialect (the moderator list's aggregate differs), built on first use.
_ROOM_HEADS: dict[str, Select[Any]] = {}


def room_head(conn: Connection, room_id: str, token_hash: bytes, now: float) -> RoomHead | None:
    """The room's head with the token's holder (:mod:`opengroup.storage.roomhead`), in one
    round trip; None if there is no such room."""
    name = conn.dialect.name
    statement = _ROOM_HEADS.get(name)
    if statement is None:
        statement = _ROOM_HEADS[name] = head_statement(conn.dialect)
    row = conn.execute(
        statement, {"room_id": room_id, "token_hash": token_hash, "now": now}
    ).first()
    return RoomHead.of(row) if row is not None else None


def insert_if_absent(conn: Connection, table: Table, **values: Any) -> bool:
    """Insert a row unless one with the same key is there; whether it was inserted.
    (Two transactions may both find a row absent; the database decides, not a read.)"""
    return bool(insert_absent_rows(conn, table, [values]))


def insert_absent_rows(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]]
) -> set[tuple[Any, ...]]:
    """Insert, in one statement, each of ``rows`` (all with the same columns) whose
    primary key is neither in the table nor earlier in ``rows``; the primary keys of
    those inserted. (As for :func:`insert_if_absent`, the database decides.)"""
    if len(rows) > _MOST_ROWS:
        return insert_absent_rows(conn, table, rows[:_MOST_ROWS]) | insert_absent_rows(
            conn, table, rows[_MOST_ROWS:]
        )
    if not rows:
        return set()
    columns = tuple(rows[0])
    size, values = absent_rows_values(rows)
    key = (table.name, columns, size)
    statement = _INSERTS_IF_ABSENT.get(key)
    if statement is None:
        statement = _INSERTS_IF_ABSENT[key] = HotStatement(
            f"insert_if_absent.{table.name}.{size}",
            functools.partial(insert_absent_statement, table, columns, size),
        )
    return {tuple(row) for row in statement.run(conn, values).fetchall()}


def absent_rows_values(rows: Sequence[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """The rows (all with the same columns) as :func:`insert_absent_statement`'s values:
    padded to a power of two (a repeated row is a conflict, so skipped), and how many."""
    rows = padded(rows)
    values = {f"{name}_{n}": value for n, row in enumerate(rows) for name, value in row.items()}
    return len(rows), values


def insert_absent_statement(
    table: Table, columns: tuple[str, ...], size: int, dialect_name: str
) -> Any:
    """:func:`insert_absent_rows`'s statement for ``size`` rows: parameters ``{column}_{n}``
    (n from 0), the primary keys of the rows inserted returned."""
    dialect = sqlite if dialect_name == "sqlite" else postgresql
    rows: list[dict[str, Any]] = [
        {name: bindparam(f"{name}_{n}") for name in columns} for n in range(size)
    ]
    # RETURNING says which rows went in (a skipped conflict returns none); the
    # rowcount of such an insert is not reliable across drivers.
    return (
        dialect.insert(table)
        .values(rows)
        .on_conflict_do_nothing()
        .returning(*table.primary_key.columns)
    )


# Rows per statement at most (well within both databases' limits on parameters).
_MOST_ROWS = 256
# (table, columns, rows) -> the statement: built once, its values as parameters
_INSERTS_IF_ABSENT: dict[tuple[str, tuple[str, ...], int], HotStatement] = {}


def touch_activity(conn: Connection, room_id: str, public_key: str, now: float) -> None:
    """Record that the key used a token in the room now (one upsert, never moves back)."""
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    upsert = dialect.insert(room_activity).values(
        room_id=room_id, public_key=public_key, last_active=now
    )
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[room_activity.c.room_id, room_activity.c.public_key],
            set_={"last_active": upsert.excluded.last_active},
            where=room_activity.c.last_active < upsert.excluded.last_active,
        )
    )


_LAST_ACTIVITY = HotStatement(
    "rooms.last_activity",
    select(room_activity.c.last_active).where(
        room_activity.c.room_id == bindparam("room_id"),
        room_activity.c.public_key == bindparam("public_key"),
    ),
)


def last_activity(conn: Connection, room_id: str, public_key: str) -> float | None:
    """When the key was last recorded active in the room (a poll asks, for each of its
    rooms, once per ``activity_interval_seconds`` per process)."""
    row = _LAST_ACTIVITY.run(conn, {"room_id": room_id, "public_key": public_key}).fetchone()
    return None if row is None else float(row[0])


def delete_token(conn: Connection, room_id: str, token_hash: bytes) -> bool:
    result = conn.execute(
        delete(tokens).where(tokens.c.token_hash == token_hash, tokens.c.room_id == room_id)
    )
    return result.rowcount > 0


def member_count(conn: Connection, room_id: str, now: float) -> int:
    banned = select(bans.c.public_key).where(bans.c.room_id == room_id)
    return conn.execute(
        select(func.count(func.distinct(tokens.c.public_key))).where(
            tokens.c.room_id == room_id,
            tokens.c.expires_at > now,
            tokens.c.public_key.not_in(banned),
        )
    ).scalar_one()


# -- moderators and bans -----------------------------------------------------


_LIST_MODERATORS = (
    select(moderators.c.public_key)
    .where(moderators.c.room_id == bindparam("room_id"))
    .order_by(moderators.c.public_key)
)


def list_moderators(conn: Connection, room_id: str) -> list[str]:
    return list(conn.execute(_LIST_MODERATORS, {"room_id": room_id}).scalars())


def is_moderator(conn: Connection, room_id: str, public_key: str) -> bool:
    """A moderator or admin of the room, or of every room."""
    room_staff = exists().where(
        moderators.c.room_id == room_id, moderators.c.public_key == public_key
    )
    server_staff = exists().where(global_moderators.c.public_key == public_key)
    return bool(conn.execute(select(or_(room_staff, server_staff))).scalar_one())


def add_moderator(conn: Connection, room_id: str, public_key: str, now: float) -> bool:
    """False if they were a moderator already."""
    if is_moderator(conn, room_id, public_key):
        return False
    conn.execute(insert(moderators).values(room_id=room_id, public_key=public_key, added_at=now))
    return True


def remove_moderator(conn: Connection, room_id: str, public_key: str) -> bool:
    result = conn.execute(
        delete(moderators).where(
            moderators.c.room_id == room_id, moderators.c.public_key == public_key
        )
    )
    return result.rowcount > 0


def list_bans(conn: Connection, room_id: str) -> list[str]:
    rows = conn.execute(
        select(bans.c.public_key).where(bans.c.room_id == room_id).order_by(bans.c.public_key)
    )
    return [row[0] for row in rows]


def is_banned(conn: Connection, room_id: str, public_key: str, now: float) -> bool:
    """Banned from the room or the whole server by a ban that has not expired."""
    room_ban = exists().where(
        bans.c.room_id == room_id,
        bans.c.public_key == public_key,
        or_(bans.c.expires_at.is_(None), bans.c.expires_at > now),
    )
    server_ban = exists().where(
        global_bans.c.public_key == public_key,
        or_(global_bans.c.expires_at.is_(None), global_bans.c.expires_at > now),
    )
    return bool(conn.execute(select(or_(room_ban, server_ban))).scalar_one())


def add_ban(conn: Connection, room_id: str, public_key: str, now: float) -> bool:
    """Ban from the room until lifted; False if such a ban was there already (an
    expiring one becomes permanent)."""
    found = conn.execute(
        select(bans.c.expires_at).where(bans.c.room_id == room_id, bans.c.public_key == public_key)
    ).first()
    if found is not None and found[0] is None:
        return False
    conn.execute(delete(bans).where(bans.c.room_id == room_id, bans.c.public_key == public_key))
    conn.execute(insert(bans).values(room_id=room_id, public_key=public_key, banned_at=now))
    return True


def remove_ban(conn: Connection, room_id: str, public_key: str) -> bool:
    result = conn.execute(
        delete(bans).where(bans.c.room_id == room_id, bans.c.public_key == public_key)
    )
    return result.rowcount > 0


# -- messages and deletions --------------------------------------------------


def messages_after(conn: Connection, room_id: str, after: int, limit: int) -> list[Message]:
    """The oldest ``limit`` live messages with server_id > after, ascending."""
    rows = conn.execute(paging.MESSAGES_AFTER, {"room_id": room_id, "after": after, "limit": limit})
    return [Message(*row) for row in rows]


def newest_messages(conn: Connection, room_id: str, limit: int) -> list[Message]:
    """The newest ``limit`` live messages, ascending."""
    rows = conn.execute(paging.MESSAGES_NEWEST, {"room_id": room_id, "limit": limit})
    return [Message(*row) for row in reversed(rows.all())]


def message_senders(
    conn: Connection, room_id: str, server_ids: Sequence[int]
) -> dict[int, tuple[str, bool]]:
    """server_id -> (sender, already deleted) for those of the ids that exist."""
    rows = conn.execute(
        select(messages.c.server_id, messages.c.public_key, messages.c.deleted).where(
            messages.c.room_id == room_id, messages.c.server_id.in_(list(server_ids))
        )
    )
    return {row[0]: (row[1], bool(row[2])) for row in rows}


def live_message_ids_by(conn: Connection, room_id: str, public_key: str) -> list[int]:
    rows = conn.execute(
        select(messages.c.server_id)
        .where(
            messages.c.room_id == room_id, messages.c.public_key == public_key, ~messages.c.deleted
        )
        .order_by(messages.c.server_id)
    )
    return [row[0] for row in rows]


def next_seqno(conn: Connection, room_id: str) -> int:
    """Take the room's next seqno (the community API's change counter)."""
    return bump_room_counter(conn, room_id, "seqno")


def mark_deleted(conn: Connection, room_id: str, server_id: int) -> None:
    """Blank a message (its reactions and pin go with it) and record its deletion for
    both APIs: under the room's next deletion number (v2) and its next seqno (v3)."""
    seqno = next_seqno(conn, room_id)
    conn.execute(
        update(messages)
        .where(messages.c.room_id == room_id, messages.c.server_id == server_id)
        .values(
            deleted=True,
            data="",
            signature="",
            seqno=seqno,
            seqno_data=seqno,
        )  # a whisper's deletion stays a whisper: only those who saw it learn of it
    )
    conn.execute(
        delete(reactions).where(reactions.c.room_id == room_id, reactions.c.message_id == server_id)
    )
    unpinned = conn.execute(
        delete(pins).where(pins.c.room_id == room_id, pins.c.message_id == server_id)
    ).rowcount
    if unpinned:  # the pins are room details: clients refetch them when info_updates moves
        conn.execute(
            update(rooms).where(rooms.c.id == room_id).values(info_updates=rooms.c.info_updates + 1)
        )
    deletion_id = next_deletion_id(conn, room_id)
    conn.execute(insert(deletions).values(room_id=room_id, id=deletion_id, message_id=server_id))


def deletions_after(
    conn: Connection, room_id: str, after: int | None, limit: int, *, by_number: bool
) -> list[tuple[int, int]]:
    """(deletion number, deleted message id) pairs, ascending.

    ``by_number`` orders and pages by the deletion number (the ``objects``
    format); otherwise by the deleted message's id (the seed's ``ids`` format).
    Without ``after``, the newest ``limit`` are returned, still ascending.
    """
    after_statement, newest_statement = paging.DELETIONS[by_number]
    if after is None:
        rows = conn.execute(newest_statement, {"room_id": room_id, "limit": limit}).all()[::-1]
    else:
        params = {"room_id": room_id, "after": after, "limit": limit}
        rows = conn.execute(after_statement, params).all()
    return [(row[0], row[1]) for row in rows]


# -- files -------------------------------------------------------------------


def insert_file(
    conn: Connection,
    file_id: int,
    room_id: str,
    uploader: str | None,
    data: bytes,
    now: float,
    expires_at: float | None,
    filename: str | None = None,
) -> bool:
    """Store a file under ``file_id``; False if that id is taken (draw another)."""
    try:
        with conn.begin_nested():
            conn.execute(
                insert(files).values(
                    id=file_id,
                    room_id=room_id,
                    uploader=uploader,
                    data=data,
                    size=len(data),
                    created_at=now,
                    expires_at=expires_at,
                    filename=filename,
                )
            )
    except IntegrityError:
        return False
    return True


@dataclass(frozen=True)
class StoredFile:
    """A live file with what a download shows of it."""

    id: int
    data: bytes
    filename: str | None
    created_at: float
    expires_at: float | None  # None: never (a room image)


def find_file(conn: Connection, room_id: str, file_id: int, now: float) -> StoredFile | None:
    """The file if it is in the room and has not expired."""
    row = conn.execute(
        select(files.c.data, files.c.filename, files.c.created_at, files.c.expires_at).where(
            files.c.id == file_id,
            files.c.room_id == room_id,
            (files.c.expires_at.is_(None)) | (files.c.expires_at > now),
        )
    ).first()
    if row is None:
        return None
    return StoredFile(file_id, bytes(row[0]), row[1], row[2], row[3])


def file_data(conn: Connection, room_id: str, file_id: int, now: float) -> bytes | None:
    row = conn.execute(
        select(files.c.data).where(
            files.c.id == file_id,
            files.c.room_id == room_id,
            (files.c.expires_at.is_(None)) | (files.c.expires_at > now),
        )
    ).first()
    return bytes(row[0]) if row else None


# -- limits ------------------------------------------------------------------


def lock_name(conn: Connection, name: str) -> None:
    """Serialise, until commit, the transactions that count and then add to ``name``.

    PostgreSQL: a transaction-level advisory lock on a 64-bit hash of the name,
    so two processes checking the same limit at once cannot both see room for
    one more. SQLite needs nothing: ``BEGIN IMMEDIATE`` already serialises writers.
    """
    if conn.dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def rate_event_times(conn: Connection, bucket: str, since: float) -> list[float]:
    """Times of the bucket's events after ``since``, ascending."""
    rows = conn.execute(
        select(rate_events.c.at)
        .where(rate_events.c.bucket == bucket, rate_events.c.at > since)
        .order_by(rate_events.c.at)
    )
    return [row[0] for row in rows]


def add_rate_event(conn: Connection, bucket: str, now: float) -> None:
    conn.execute(insert(rate_events).values(bucket=bucket, at=now))


def pending_token_expiries(
    conn: Connection, room_id: str, public_key: str, now: float
) -> list[float]:
    """When each live pending token of the key in the room expires, soonest first."""
    rows = conn.execute(
        select(pending_tokens.c.expires_at)
        .where(
            pending_tokens.c.room_id == room_id,
            pending_tokens.c.public_key == public_key,
            pending_tokens.c.expires_at > now,
        )
        .order_by(pending_tokens.c.expires_at)
    )
    return [row[0] for row in rows]


def evict_oldest_tokens(
    conn: Connection, room_id: str, public_key: str, keep: int, now: float
) -> int:
    """Delete the key's live tokens in the room beyond the ``keep`` newest; how many went.

    Newest means latest expiry (every token gets the same lifetime when claimed).
    """
    rows = conn.execute(
        select(tokens.c.token_hash)
        .where(
            tokens.c.room_id == room_id,
            tokens.c.public_key == public_key,
            tokens.c.expires_at > now,
        )
        .order_by(tokens.c.expires_at.desc(), tokens.c.token_hash)
        .offset(keep)
    ).all()
    if not rows:
        return 0
    doomed = [row[0] for row in rows]
    conn.execute(delete(tokens).where(tokens.c.token_hash.in_(doomed)))
    return len(doomed)


def upload_times(
    conn: Connection, room_id: str, uploaders: Sequence[str], since: float
) -> list[float]:
    """When the uploader (known under any of ``uploaders``) stored files in the room after
    ``since`` (room images included)."""
    rows = conn.execute(
        select(files.c.created_at)
        .where(
            files.c.room_id == room_id,
            files.c.uploader.in_(list(uploaders)),
            files.c.created_at > since,
        )
        .order_by(files.c.created_at)
    )
    return [row[0] for row in rows]


# -- pruning -----------------------------------------------------------------


def prune_expired(
    conn: Connection, now: float, *, rate_events_kept: Mapping[str, float]
) -> dict[str, int]:
    """Delete expired pending tokens, tokens and files, and rate events out of their
    window (``rate_events_kept``: bucket prefix -> seconds; a bucket of no prefix given
    goes at once); returns how many of each. (Request nonces, far more, are deleted a
    few at a time: :func:`opengroup.storage.people.clear_expired_nonces`.)"""
    kept = [
        and_(rate_events.c.bucket.startswith(prefix, autoescape=True), rate_events.c.at > now - s)
        for prefix, s in rate_events_kept.items()
    ]
    counts = {}
    for name, table, condition in (
        ("pending_tokens", pending_tokens, pending_tokens.c.expires_at <= now),
        ("tokens", tokens, tokens.c.expires_at <= now),
        ("files", files, and_(files.c.expires_at.is_not(None), files.c.expires_at <= now)),
        ("rate_events", rate_events, not_(or_(false(), *kept))),
    ):
        counts[name] = conn.execute(delete(table).where(condition)).rowcount
    return counts
