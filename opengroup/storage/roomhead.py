"""A room's *head*: the one row that answers "who holds this token in this room, and
is there anything new", for the v2 API's token checks and polls.

It is written three times, each for a reason, and a test
(tests/test_room_heads.py) proves the three give the same :class:`RoomHead`s on
both backends:

- :func:`head_statement`, SQLAlchemy Core: one room (the sync token check, and
  the SQLite poll of one room, compiled for the driver);
- :data:`SQLITE_HEADS_SQL`: the rooms of one poll in one statement (``VALUES``);
- :data:`POSTGRES_HEADS_SQL`: the rooms of many polls in one statement
  (``unnest ... WITH ORDINALITY``), with a planner fence Core cannot express.

Staff, bans and permissions are the community API's: a moderator or admin of
the room or of every room is a v2 moderator; a ban counts until it expires, and
a ban from the whole server counts in every room, whether it names the holder's
Session id or the blinded id linked to it (a v2 token's claim links them, so a
person banned under the id today's clients show cannot carry on through the v2
API); staff are never banned. The holder may read, write and upload as the
room's defaults say, unless an override says otherwise (of their key, else of
the blinded id linked to it); staff always may. The moderator list v2 clients
see holds the visible staff only.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.engine import Dialect

from opengroup import rights
from opengroup.storage.schema import (
    bans,
    blinded_ids,
    global_bans,
    global_moderators,
    moderators,
    permission_overrides,
    room_activity,
    rooms,
    tokens,
)


class TokenHolder(NamedTuple):
    """Who a token belongs to in its room, and what they may do there."""

    public_key: str
    is_moderator: bool
    is_banned: bool
    # The room's permissions for them, as opengroup.rights decides them (staff may do
    # everything, a banned holder nothing, else their overrides over the defaults).
    may_read: bool
    may_write: bool
    may_upload: bool
    # When the key was last seen using a token in this room (None: never recorded).
    last_active: float | None = None


class RoomHead(NamedTuple):
    """The head row of a room (see the module docstring)."""

    message_seq: int
    deletion_seq: int
    holder_key: str | None  # None: no live token with that hash in the room
    holder_banned: bool
    holder_is_staff: bool
    last_active: float | None
    room_moderators: Any  # visible staff of the room: a list, or SQLite's joined text
    global_moderators: Any  # visible staff of every room: the same
    # read, write, upload: the room's defaults, then the holder's overrides (None: none)
    defaults: tuple[bool, bool, bool]
    overrides: tuple[bool | None, bool | None, bool | None]
    # The room's seqno and when it was made: which of the room's latest changes kept in
    # memory are as new as this head (opengroup.storage.recentchanges).
    seqno: int
    created_at: float

    @classmethod
    def of(cls, row: Any) -> RoomHead:
        return cls(
            row[0], row[1], row[2], bool(row[3]), bool(row[4]), row[5], row[6], row[7],
            (bool(row[8]), bool(row[9]), bool(row[10])),
            (_maybe(row[11]), _maybe(row[12]), _maybe(row[13])),
            row[14], row[15],
        )  # fmt: skip

    @property
    def holder(self) -> TokenHolder | None:
        if self.holder_key is None:
            return None
        staff = self.holder_is_staff
        banned = self.holder_banned and not staff
        read, write, upload = rights.decide(
            staff=staff, banned=banned, defaults=self.defaults, overrides=self.overrides
        )
        return TokenHolder(self.holder_key, staff, banned, read, write, upload, self.last_active)

    @property
    def moderators(self) -> list[str]:
        """The visible staff of the room, sorted, each once."""
        keys: set[str] = set()
        for value in (self.room_moderators, self.global_moderators):
            if isinstance(value, str):
                keys.update(value.split(","))
            elif value:
                keys.update(value)
        return sorted(keys)


def _maybe(value: Any) -> bool | None:
    """An override's right as a bool (SQLite gives 0 and 1), None where it sets none."""
    return None if value is None else bool(value)


def _live(expires_at: ColumnElement[float], now: BindParameter[float]) -> ColumnElement[bool]:
    return or_(expires_at.is_(None), expires_at > now)


def _key_list(dialect: Dialect, key: ColumnElement[str], *where: ColumnElement[bool]) -> Any:
    """Keys as one value: an array, or SQLite's comma-joined text."""
    aggregate = func.array_agg(key) if dialect.name == "postgresql" else func.group_concat(key, ",")
    return select(aggregate).where(*where).scalar_subquery()


def _banned_under(key: ColumnElement[str], now: BindParameter[float]) -> ColumnElement[bool]:
    """A live ban of ``key`` from the room or from the whole server."""
    return or_(
        exists().where(
            bans.c.room_id == rooms.c.id, bans.c.public_key == key, _live(bans.c.expires_at, now)
        ),
        exists().where(global_bans.c.public_key == key, _live(global_bans.c.expires_at, now)),
    )


def head_statement(dialect: Dialect) -> Select[Any]:
    """One room's head (no row: no such room). Binds ``room_id``, ``token_hash``, ``now``."""
    now: BindParameter[float] = bindparam("now")
    holder = tokens.c.public_key
    live_token = and_(
        tokens.c.room_id == rooms.c.id,
        tokens.c.token_hash == bindparam("token_hash"),
        tokens.c.expires_at > now,
    )
    activity = and_(room_activity.c.room_id == rooms.c.id, room_activity.c.public_key == holder)
    # Under the holder's key, or the blinded id it signs the community API with, once
    # linked: one lookup each (SQLite builds a table for an IN of two columns each time).
    banned = or_(*(_banned_under(key, now) for key in (holder, blinded_ids.c.blinded_id)))
    staff = or_(
        exists().where(moderators.c.room_id == rooms.c.id, moderators.c.public_key == holder),
        exists().where(global_moderators.c.public_key == holder),
    )
    # The holder's overrides: under their own key first, then under the linked blinded id.
    own = permission_overrides.alias("own_overrides")
    linked = permission_overrides.alias("linked_overrides")
    return (
        select(
            rooms.c.message_seq,
            rooms.c.deletion_seq,
            holder,
            banned,
            staff,
            room_activity.c.last_active,
            _key_list(
                dialect,
                moderators.c.public_key,
                moderators.c.room_id == rooms.c.id,
                moderators.c.visible == true(),
            ),
            _key_list(
                dialect, global_moderators.c.public_key, global_moderators.c.visible == true()
            ),
            rooms.c.default_read,
            rooms.c.default_write,
            rooms.c.default_upload,
            func.coalesce(own.c.read, linked.c.read),
            func.coalesce(own.c.write, linked.c.write),
            func.coalesce(own.c.upload, linked.c.upload),
            rooms.c.seqno,
            rooms.c.created_at,
        )
        .select_from(
            rooms.outerjoin(tokens, live_token)
            .outerjoin(room_activity, activity)
            .outerjoin(own, and_(own.c.room_id == rooms.c.id, own.c.public_key == holder))
            .outerjoin(blinded_ids, blinded_ids.c.session_id == holder)
            .outerjoin(
                linked,
                and_(
                    linked.c.room_id == rooms.c.id,
                    linked.c.public_key == blinded_ids.c.blinded_id,
                ),
            )
        )
        .where(rooms.c.id == bindparam("room_id"))
    )


# What both hand-written statements read last: the holder's rights (the room's
# defaults, then their overrides, under their own key first, else under the blinded id
# linked to it, each right on its own; the joins name the holder's key as each
# statement does), then the room's seqno and when it was made.
_LAST_COLUMNS = """
    rooms.default_read,
    rooms.default_write,
    rooms.default_upload,
    COALESCE(own.read, linked.read),
    COALESCE(own.write, linked.write),
    COALESCE(own.upload, linked.upload),
    rooms.seqno,
    rooms.created_at
"""


def _rights_joins(holder: str) -> str:
    return f"""
LEFT JOIN permission_overrides AS own ON own.room_id = rooms.id AND own.public_key = {holder}
LEFT JOIN blinded_ids ON blinded_ids.session_id = {holder}
LEFT JOIN permission_overrides AS linked ON linked.room_id = rooms.id
    AND linked.public_key = blinded_ids.blinded_id
"""


def _sqlite_banned_under(key: str) -> str:
    """A live ban of ``key`` (an SQL expression) from the room or the whole server, as
    :func:`_banned_under` (one lookup each: see there)."""
    return f"""EXISTS (SELECT 1 FROM bans
        WHERE bans.room_id = rooms.id AND bans.public_key = {key}
            AND (bans.expires_at IS NULL OR bans.expires_at > req.now))
    OR EXISTS (SELECT 1 FROM global_bans
        WHERE global_bans.public_key = {key}
            AND (global_bans.expires_at IS NULL OR global_bans.expires_at > req.now))"""


# The token's holder is banned, under their key or their linked blinded id.
_SQLITE_HOLDER_BANNED = "\n    OR ".join(
    _sqlite_banned_under(key) for key in ("tokens.public_key", "blinded_ids.blinded_id")
)


# The heads of several rooms in one statement: one row per room that exists,
# numbered by its place in the poll; then the columns of RoomHead. {entries} is one
# "(?, ?, ?, ?)" per room: position, room id, token hash, now.
SQLITE_HEADS_SQL = (
    """
WITH req (n, room_id, token_hash, now) AS (VALUES {entries})
SELECT
    req.n,
    rooms.message_seq,
    rooms.deletion_seq,
    tokens.public_key,
    """
    + _SQLITE_HOLDER_BANNED
    + """,
    EXISTS (SELECT 1 FROM moderators
        WHERE moderators.room_id = rooms.id AND moderators.public_key = tokens.public_key)
    OR EXISTS (SELECT 1 FROM global_moderators
        WHERE global_moderators.public_key = tokens.public_key),
    room_activity.last_active,
    (SELECT group_concat(public_key, ',') FROM moderators
        WHERE moderators.room_id = rooms.id AND moderators.visible = 1),
    (SELECT group_concat(public_key, ',') FROM global_moderators WHERE visible = 1),
"""
    + _LAST_COLUMNS
    + """FROM req
JOIN rooms ON rooms.id = req.room_id
LEFT JOIN tokens ON tokens.token_hash = req.token_hash AND tokens.room_id = rooms.id
    AND tokens.expires_at > req.now
LEFT JOIN room_activity ON room_activity.room_id = rooms.id
    AND room_activity.public_key = tokens.public_key
"""
    + _rights_joins("tokens.public_key")
)

# The heads of many rooms (of many polls) in one statement: one row per room
# that exists, numbered by its place in the arrays; then the columns of RoomHead.
POSTGRES_HEADS_SQL = (
    """
SELECT
    req.n,
    rooms.message_seq,
    rooms.deletion_seq,
    holder.public_key,
    EXISTS (SELECT FROM bans
        WHERE bans.room_id = rooms.id
            AND bans.public_key IN (holder.public_key, blinded_ids.blinded_id)
            AND (bans.expires_at IS NULL OR bans.expires_at > req.now))
    OR EXISTS (SELECT FROM global_bans
        WHERE global_bans.public_key IN (holder.public_key, blinded_ids.blinded_id)
            AND (global_bans.expires_at IS NULL OR global_bans.expires_at > req.now)),
    EXISTS (SELECT FROM moderators
        WHERE moderators.room_id = rooms.id AND moderators.public_key = holder.public_key)
    OR EXISTS (SELECT FROM global_moderators
        WHERE global_moderators.public_key = holder.public_key),
    (SELECT last_active FROM room_activity
        WHERE room_activity.room_id = rooms.id AND room_activity.public_key = holder.public_key),
    (SELECT array_agg(public_key) FROM moderators
        WHERE moderators.room_id = rooms.id AND moderators.visible),
    (SELECT array_agg(public_key) FROM global_moderators WHERE visible),
"""
    + _LAST_COLUMNS
    + """FROM unnest(%(room_ids)s::varchar[], %(token_hashes)s::bytea[], %(nows)s::float8[])
    WITH ORDINALITY AS req (room_id, token_hash, now, n)
JOIN rooms ON rooms.id = req.room_id
LEFT JOIN LATERAL (
    SELECT tokens.public_key FROM tokens
    WHERE tokens.token_hash = req.token_hash AND tokens.room_id = req.room_id
        AND tokens.expires_at > req.now
    -- OFFSET 0 keeps this a lookup per entry by the token's hash (the primary key),
    -- whatever the table statistics say: joined freely, a new database's planner
    -- scanned every token of the room instead.
    OFFSET 0
) AS holder ON true
"""
    + _rights_joins("holder.public_key")
)
