"""Statements about people: users seen, blinded-id links, request nonces, staff,
bans and permission overrides (room and server-wide), as functions over a
connection.

A person may be named by more than one key: the blinded id ("15...") they sign
in with, and the Session id ("05...") an operator or moderator named them by
before that id appeared. Functions that ask about a person take all their
``keys`` (see :class:`opengroup.domain.users.User`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Float,
    LargeBinary,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    tuple_,
    union,
    union_all,
    update,
)

from opengroup.storage.driversql import HotStatement, rows_with_key_in
from opengroup.storage.queries import (
    absent_rows_values,
    insert_absent_rows,
    insert_absent_statement,
    insert_if_absent,
)
from opengroup.storage.roomdetails import (
    DEFAULT_PERMISSIONS,
    ROOM_TAIL,
    RoomDetails,
    details_of,
)
from opengroup.storage.schema import (
    bans,
    blinded_ids,
    direct_messages,
    future_permissions,
    global_bans,
    global_moderators,
    moderators,
    permission_overrides,
    request_nonces,
    rooms,
    tokens,
    untimed_nonces,
    users,
)

PERMISSIONS = ("read", "accessible", "write", "upload")
# What a scheduled change may set.
FUTURE_PERMISSIONS = ("read", "write", "upload")


@dataclass(frozen=True)
class StaffRole:
    admin: bool
    visible: bool


@dataclass(frozen=True)
class StaffEntry:
    public_key: str
    admin: bool
    visible: bool
    is_global: bool


# -- users and blinded ids ---------------------------------------------------------------


def user_last_seen(conn: Connection, session_id: str) -> float | None:
    return conn.execute(
        select(users.c.last_seen).where(users.c.session_id == session_id)
    ).scalar_one_or_none()


def insert_user(conn: Connection, session_id: str, now: float) -> bool:
    """Record a user's first request; False if a concurrent one did already."""
    return insert_if_absent(conn, users, session_id=session_id, first_seen=now, last_seen=now)


def touch_users(conn: Connection, session_ids: Sequence[str], now: float) -> None:
    """Record that the users were seen now (one statement)."""
    if session_ids:
        _TOUCH.run(conn, {"now": now}, session_ids=session_ids)


def _touch_statement(dialect_name: str) -> Any:
    now = bindparam("now", type_=Float)
    seen = rows_with_key_in(users.c.session_id, "session_ids", dialect_name)
    return (
        update(users)
        .where(users.c.session_id.in_(select(seen.c.session_id)), users.c.last_seen < now)
        .values(last_seen=now)
    )


_TOUCH = HotStatement("people.touch_users", _touch_statement, expanding=["session_ids"])


def user_first_seen(conn: Connection, session_id: str) -> float | None:
    return conn.execute(
        select(users.c.first_seen).where(users.c.session_id == session_id)
    ).scalar_one_or_none()


def user_first_seen_and_spoke(
    conn: Connection, session_id: str
) -> tuple[float, float | None] | None:
    """When the user was first seen and first spoke (None: not recorded); None if the
    user was never seen."""
    row = conn.execute(
        select(users.c.first_seen, users.c.first_spoke).where(users.c.session_id == session_id)
    ).first()
    return None if row is None else (float(row[0]), row[1])


def set_first_spoke(conn: Connection, session_id: str, now: float) -> bool:
    """Record when the user first spoke; False if it was recorded already."""
    changed = conn.execute(
        update(users)
        .where(users.c.session_id == session_id, users.c.first_spoke.is_(None))
        .values(first_spoke=now)
        .returning(users.c.session_id)
    ).first()
    return changed is not None


def link_session_id(conn: Connection, session_id: str, blinded_abs: str) -> None:
    """Remember that ``session_id`` signs in here under the blinded key ``blinded_abs``
    (either sign); nothing if it is remembered already."""
    insert_if_absent(conn, blinded_ids, session_id=session_id, blinded_abs=blinded_abs)


def set_seen_blinded_id(conn: Connection, blinded_abs: str, blinded_id: str) -> None:
    conn.execute(
        update(blinded_ids)
        .where(blinded_ids.c.blinded_abs == blinded_abs)
        .values(blinded_id=blinded_id)
    )


def session_ids_of_blinded(conn: Connection, blinded_abs: str) -> list[str]:
    """The Session ids ("05...") linked to a blinded key."""
    rows = conn.execute(
        select(blinded_ids.c.session_id).where(blinded_ids.c.blinded_abs == blinded_abs)
    )
    return [row[0] for row in rows]


def seen_blinded_ids(conn: Connection, session_ids: Sequence[str]) -> dict[str, str]:
    """session id -> the blinded id it was seen signing in with, for those seen."""
    if not session_ids:
        return {}
    rows = conn.execute(
        select(blinded_ids.c.session_id, blinded_ids.c.blinded_id).where(
            blinded_ids.c.session_id.in_(list(session_ids)),
            blinded_ids.c.blinded_id.is_not(None),
        )
    )
    return {row[0]: row[1] for row in rows}


def unlinked_session_ids(conn: Connection) -> list[str]:
    """Session ids named as staff or banned, or holding a v2 token, that have no
    blinded link yet."""
    named = union(
        select(moderators.c.public_key),
        select(bans.c.public_key),
        select(global_moderators.c.public_key),
        select(global_bans.c.public_key),
        select(tokens.c.public_key),
    ).subquery()
    linked = select(blinded_ids.c.session_id)
    rows = conn.execute(
        select(named.c.public_key).where(
            named.c.public_key.like("05%"), named.c.public_key.not_in(linked)
        )
    )
    return [row[0] for row in rows]


# -- nonces ------------------------------------------------------------------------------


def take_nonces(conn: Connection, nonces: Sequence[tuple[int, bytes]]) -> set[tuple[int, bytes]]:
    """Record requests' (signed at, nonce) pairs in one statement; the ones not recorded
    before (the others are replays)."""
    rows = insert_absent_rows(conn, request_nonces, _nonce_rows(nonces))
    return {(int(at), bytes(nonce)) for at, nonce in rows}


def _nonce_rows(nonces: Sequence[tuple[int, bytes]]) -> list[dict[str, Any]]:
    """The rows of ``request_nonces`` for the pairs, in the keys' order (the sort keeps
    a repeated key's first row first): two transactions that insert the same keys wait
    for each other in one order, never in a circle (PostgreSQL would end one of them as
    deadlocked)."""
    return [{"signed_at": at, "nonce": nonce} for at, nonce in sorted(nonces)]


def _clear_expired_nonces_statement(dialect_name: str) -> Any:
    key = tuple_(request_nonces.c.signed_at, request_nonces.c.nonce)
    signed_at = request_nonces.c.signed_at
    oldest = (
        select(signed_at, request_nonces.c.nonce)
        .where(signed_at >= bindparam("signed_from"), signed_at < bindparam("signed_before"))
        .order_by(signed_at)
        .limit(bindparam("most"))
    )
    if dialect_name == "postgresql":
        # (rows another transaction is clearing are left to it, not waited for)
        oldest = oldest.with_for_update(skip_locked=True)
    return delete(request_nonces).where(key.in_(oldest)).returning(signed_at)


_CLEAR_EXPIRED_NONCES = HotStatement("people.clear_expired_nonces", _clear_expired_nonces_statement)


def clear_expired_nonces(
    conn: Connection, signed_from: int, signed_before: int, most: int
) -> list[int]:
    """Delete up to ``most`` nonces of requests signed from ``signed_from`` (every one
    before it known to be deleted) and before ``signed_before`` (which can no longer be
    accepted), the oldest first; when each deleted one was signed.

    ``signed_from`` matters on PostgreSQL: a deleted row stays in the index until a
    vacuum, so a search from the oldest end would step over every nonce deleted since
    the last one (millions on a busy server)."""
    params = {"signed_from": signed_from, "signed_before": signed_before, "most": most}
    return [int(row[0]) for row in _CLEAR_EXPIRED_NONCES.run(conn, params).fetchall()]


def untimed_nonces_until(conn: Connection) -> float | None:
    """When the last nonce whose request time is unknown expires (None: there are none)."""
    until = conn.execute(select(func.max(untimed_nonces.c.expires_at))).scalar()
    return None if until is None else float(until)


def known_untimed_nonces(conn: Connection, nonces: Sequence[bytes], now: float) -> set[bytes]:
    """Those of ``nonces`` recorded, unexpired, without their request's time (any
    number of them: 500 to a statement)."""
    known = rows_with_key_in(untimed_nonces.c.nonce, "nonces", conn.dialect.name)
    statement = select(known.c.nonce).where(known.c.expires_at > now)
    found: set[bytes] = set()
    for start in range(0, len(nonces), 500):
        rows = conn.execute(statement, {"nonces": list(nonces[start : start + 500])})
        found.update(bytes(row[0]) for row in rows)
    return found


def clear_expired_untimed_nonces(conn: Connection, now: float, most: int) -> int:
    """Delete up to ``most`` expired nonces whose request time is unknown; how many."""
    oldest = (
        select(untimed_nonces.c.nonce)
        .where(untimed_nonces.c.expires_at <= now)
        .order_by(untimed_nonces.c.expires_at)
        .limit(most)
    )
    statement = delete(untimed_nonces).where(untimed_nonces.c.nonce.in_(oldest.scalar_subquery()))
    return int(conn.execute(statement).rowcount)


@dataclass(frozen=True)
class Signer:
    """A request's signer, as :func:`signers_facts` asks about them."""

    session_id: str
    blinded_abs: str | None  # None for a "05" signer
    keys: Sequence[str]  # every key they sign in as


@dataclass(frozen=True)
class SignerFacts:
    """What the tables say of a request's signer (see :func:`signers_facts`)."""

    linked_session_ids: list[str]  # the "05" ids linked to a blinded signer
    last_seen: float | None  # None: never seen before
    globally_banned: bool  # under their own keys or a linked one


def signers_facts(
    conn: Connection, signers: Sequence[Signer], now: float
) -> dict[str, SignerFacts]:
    """Each signer's links, last sighting and server ban, by session id: one statement
    for them all."""
    if not signers:
        return {}
    rows = _SIGNERS.rows(conn, {"now": now}, **_signers_lists(signers))
    return _signers_facts(signers, rows)


def _signers_lists(signers: Sequence[Signer]) -> dict[str, list[str]]:
    """The values of :func:`_signers_statement`'s expanding parameters."""
    return {
        "session_ids": [s.session_id for s in signers],
        "blinded_abs": [s.blinded_abs for s in signers if s.blinded_abs is not None],
        "keys": [key for s in signers for key in s.keys],
    }


def _signers_facts(signers: Sequence[Signer], rows: Sequence[Any]) -> dict[str, SignerFacts]:
    """The facts of each signer, from :func:`_signers_statement`'s rows."""
    links: dict[str, list[str]] = {}
    last_seen: dict[str, float] = {}
    banned: set[str] = set()
    for kind, key, linked, seen in rows:
        if kind == "link":
            links.setdefault(key, []).append(linked)
        elif kind == "seen":
            last_seen[key] = seen
        else:
            banned.add(key)
    facts = {}
    for signer in signers:
        linked_ids = links.get(signer.blinded_abs, []) if signer.blinded_abs else []
        facts[signer.session_id] = SignerFacts(
            linked_ids,
            last_seen.get(signer.session_id),
            any(key in banned for key in (*signer.keys, *linked_ids)),
        )
    return facts


def _signers_statement(dialect_name: str) -> Any:
    """(kind, key, linked, seen) rows: ``("link", blinded_abs, session id, -)`` for
    each Session id linked to one of ``blinded_abs``; ``("seen", session_id, -,
    last_seen)`` for each of ``session_ids`` seen before; ``("ban", key, -, -)`` for
    each live server ban of one of ``keys`` or of a linked id (a ban of both, twice).
    The parameters: ``session_ids``, ``blinded_abs`` and ``keys`` (lists, each value
    looked up in its table's index: :func:`rows_with_key_in`), and ``now``."""
    now = bindparam("now", type_=Float)
    none_text, none_time = null().cast(String), null().cast(Float)
    links = rows_with_key_in(blinded_ids.c.blinded_abs, "blinded_abs", dialect_name)
    seen = rows_with_key_in(users.c.session_id, "session_ids", dialect_name)
    banned = rows_with_key_in(global_bans.c.public_key, "keys", dialect_name)

    def live(ban: Any) -> Any:
        return or_(ban.c.expires_at.is_(None), ban.c.expires_at > now)

    return union_all(
        select(
            literal("link").label("kind"),
            links.c.blinded_abs.label("key"),
            links.c.session_id.label("linked"),
            none_time.label("seen"),
        ),
        select(literal("seen"), seen.c.session_id, none_text, seen.c.last_seen),
        select(literal("ban"), banned.c.public_key, none_text, none_time).where(live(banned)),
        select(literal("ban"), global_bans.c.public_key, none_text, none_time).where(
            global_bans.c.public_key.in_(select(links.c.session_id)), live(global_bans)
        ),
    )


_SIGNERS = HotStatement(
    "people.signers_facts",
    _signers_statement,
    expanding=["session_ids", "blinded_abs", "keys"],
)


# -- admissions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Admissions:
    """What :func:`admit` did and found."""

    cleared: list[int]  # when each expired nonce it deleted was signed
    fresh: set[tuple[int, bytes]]  # the (signed at, nonce) pairs not recorded before
    facts: dict[str, SignerFacts]  # each signer's, by session id


def admit(
    conn: Connection,
    nonces: Sequence[tuple[int, bytes]],
    signers: Sequence[Signer],
    now: float,
    *,
    clear_from: int,
    clear_before: int,
    most_cleared: int,
) -> Admissions:
    """The writes and reads of admitting a group of signed requests: delete up to
    ``most_cleared`` expired nonces (:func:`clear_expired_nonces`), record the group's
    (:func:`take_nonces`), and read its signers' facts (:func:`signers_facts`).

    On PostgreSQL one statement does it all, so that in autocommit
    (:meth:`~opengroup.storage.database.Database.one_statement_write`) it is one round
    trip instead of five, and its commit does not wait for the disk (docs/SECURITY.md,
    "Signed requests and replays"); SQLite runs the three, without round trips."""
    if conn.dialect.name == "sqlite":
        return Admissions(
            clear_expired_nonces(conn, clear_from, clear_before, most_cleared),
            take_nonces(conn, nonces),
            signers_facts(conn, signers, now),
        )
    if not nonces:
        return Admissions([], set(), {})
    size, params = absent_rows_values(_nonce_rows(nonces))
    statement = _ADMISSIONS.get(size)
    if statement is None:
        statement = _ADMISSIONS[size] = HotStatement(
            f"people.admit.{size}",
            functools.partial(_admission_statement, size),
            expanding=["session_ids", "blinded_abs", "keys"],
        )
    params.update(signed_from=clear_from, signed_before=clear_before, most=most_cleared, now=now)
    cleared: list[int] = []
    fresh: set[tuple[int, bytes]] = set()
    facts_rows = []
    for kind, signed_at, nonce, key, linked, seen in statement.rows(
        conn, params, **_signers_lists(signers)
    ):
        if kind == "cleared":
            cleared.append(int(signed_at))
        elif kind == "fresh":
            fresh.add((int(signed_at), bytes(nonce)))
        else:
            facts_rows.append((kind, key, linked, seen))
    return Admissions(cleared, fresh, _signers_facts(signers, facts_rows))


def _admission_statement(size: int, dialect_name: str) -> Any:
    """PostgreSQL's statement for :func:`admit`, for ``size`` nonces: (kind, signed at,
    nonce, key, linked, seen) rows, ``("cleared", signed at, ...)`` for each expired
    nonce deleted, ``("fresh", signed at, nonce, ...)`` for each nonce recorded, and
    :func:`_signers_statement`'s rows after them (theirs the last four columns)."""
    cleared = _clear_expired_nonces_statement(dialect_name).cte("cleared")
    taken = insert_absent_statement(request_nonces, ("signed_at", "nonce"), size, dialect_name).cte(
        "taken"
    )
    facts = _signers_statement(dialect_name).subquery("facts")
    # The statement's own transaction commits without waiting for the disk (as SET
    # LOCAL; docs/SECURITY.md, "Signed requests and replays"): a branch that returns no
    # row runs the setting.
    quick = select(func.set_config("synchronous_commit", "off", True).label("value")).cte(
        "quick_commit"
    )
    none_at, none_nonce = null().cast(BigInteger), null().cast(LargeBinary)
    none_text, none_time = null().cast(String), null().cast(Float)
    return union_all(
        select(
            literal("cleared").label("kind"),
            cleared.c.signed_at,
            none_nonce.label("nonce"),
            none_text.label("key"),
            none_text.label("linked"),
            none_time.label("seen"),
        ),
        select(literal("fresh"), taken.c.signed_at, taken.c.nonce, none_text, none_text, none_time),
        select(facts.c.kind, none_at, none_nonce, facts.c.key, facts.c.linked, facts.c.seen),
        select(quick.c.value, none_at, none_nonce, none_text, none_text, none_time).where(
            quick.c.value.is_(None)
        ),
    )


# (nonces, padded) -> PostgreSQL's statement for them
_ADMISSIONS: dict[int, HotStatement] = {}


# -- staff -------------------------------------------------------------------------------


def room_role(conn: Connection, room_id: str, keys: Sequence[str]) -> StaffRole | None:
    """The strongest room staff role held under any of the keys (None: not staff)."""
    rows = conn.execute(
        select(moderators.c.admin, moderators.c.visible).where(
            moderators.c.room_id == room_id, moderators.c.public_key.in_(list(keys))
        )
    ).all()
    if not rows:
        return None
    return StaffRole(any(r[0] for r in rows), any(r[1] for r in rows))


def global_role(conn: Connection, keys: Sequence[str]) -> StaffRole | None:
    rows = conn.execute(
        select(global_moderators.c.admin, global_moderators.c.visible).where(
            global_moderators.c.public_key.in_(list(keys))
        )
    ).all()
    if not rows:
        return None
    return StaffRole(any(r[0] for r in rows), any(r[1] for r in rows))


def room_staff(conn: Connection, room_id: str) -> list[StaffEntry]:
    """The room's own staff and the server's, by key."""
    own = conn.execute(
        select(moderators.c.public_key, moderators.c.admin, moderators.c.visible).where(
            moderators.c.room_id == room_id
        )
    ).all()
    server = conn.execute(
        select(
            global_moderators.c.public_key, global_moderators.c.admin, global_moderators.c.visible
        )
    ).all()
    return [StaffEntry(r[0], bool(r[1]), bool(r[2]), False) for r in own] + [
        StaffEntry(r[0], bool(r[1]), bool(r[2]), True) for r in server
    ]


def set_room_staff(
    conn: Connection, room_id: str, public_key: str, admin: bool, visible: bool, now: float
) -> None:
    conn.execute(
        delete(moderators).where(
            moderators.c.room_id == room_id, moderators.c.public_key == public_key
        )
    )
    conn.execute(
        insert(moderators).values(
            room_id=room_id, public_key=public_key, admin=admin, visible=visible, added_at=now
        )
    )


def remove_room_staff(conn: Connection, room_id: str, public_key: str) -> bool:
    result = conn.execute(
        delete(moderators).where(
            moderators.c.room_id == room_id, moderators.c.public_key == public_key
        )
    )
    return result.rowcount > 0


def set_global_staff(
    conn: Connection, public_key: str, admin: bool, visible: bool, now: float
) -> None:
    conn.execute(delete(global_moderators).where(global_moderators.c.public_key == public_key))
    conn.execute(
        insert(global_moderators).values(
            public_key=public_key, admin=admin, visible=visible, added_at=now
        )
    )


def remove_global_staff(conn: Connection, public_key: str) -> bool:
    result = conn.execute(
        delete(global_moderators).where(global_moderators.c.public_key == public_key)
    )
    return result.rowcount > 0


def global_staff(conn: Connection) -> list[StaffEntry]:
    rows = conn.execute(
        select(
            global_moderators.c.public_key, global_moderators.c.admin, global_moderators.c.visible
        ).order_by(global_moderators.c.public_key)
    )
    return [StaffEntry(r[0], bool(r[1]), bool(r[2]), True) for r in rows]


# -- bans --------------------------------------------------------------------------------


def is_room_banned(conn: Connection, room_id: str, keys: Sequence[str], now: float) -> bool:
    row = conn.execute(
        select(bans.c.public_key).where(
            bans.c.room_id == room_id,
            bans.c.public_key.in_(list(keys)),
            or_(bans.c.expires_at.is_(None), bans.c.expires_at > now),
        )
    ).first()
    return row is not None


def is_globally_banned(conn: Connection, keys: Sequence[str], now: float) -> bool:
    row = conn.execute(
        select(global_bans.c.public_key).where(
            global_bans.c.public_key.in_(list(keys)),
            or_(global_bans.c.expires_at.is_(None), global_bans.c.expires_at > now),
        )
    ).first()
    return row is not None


def set_room_ban(
    conn: Connection, room_id: str, public_key: str, now: float, expires_at: float | None
) -> None:
    conn.execute(delete(bans).where(bans.c.room_id == room_id, bans.c.public_key == public_key))
    conn.execute(
        insert(bans).values(
            room_id=room_id, public_key=public_key, banned_at=now, expires_at=expires_at
        )
    )


def set_global_ban(conn: Connection, public_key: str, now: float, expires_at: float | None) -> None:
    conn.execute(delete(global_bans).where(global_bans.c.public_key == public_key))
    conn.execute(
        insert(global_bans).values(public_key=public_key, banned_at=now, expires_at=expires_at)
    )


def remove_room_ban(conn: Connection, room_id: str, keys: Sequence[str]) -> int:
    return conn.execute(
        delete(bans).where(bans.c.room_id == room_id, bans.c.public_key.in_(list(keys)))
    ).rowcount


def remove_global_ban(conn: Connection, keys: Sequence[str]) -> int:
    return conn.execute(
        delete(global_bans).where(global_bans.c.public_key.in_(list(keys)))
    ).rowcount


def room_bans(conn: Connection, room_id: str, now: float) -> list[tuple[str, float | None]]:
    rows = conn.execute(
        select(bans.c.public_key, bans.c.expires_at)
        .where(bans.c.room_id == room_id, or_(bans.c.expires_at.is_(None), bans.c.expires_at > now))
        .order_by(bans.c.public_key)
    )
    return [(r[0], r[1]) for r in rows]


def server_bans(conn: Connection, now: float) -> list[tuple[str, float | None]]:
    rows = conn.execute(
        select(global_bans.c.public_key, global_bans.c.expires_at)
        .where(or_(global_bans.c.expires_at.is_(None), global_bans.c.expires_at > now))
        .order_by(global_bans.c.public_key)
    )
    return [(r[0], r[1]) for r in rows]


# -- permissions -------------------------------------------------------------------------


def overrides(conn: Connection, room_id: str, keys: Sequence[str]) -> dict[str, bool]:
    """The person's explicit permissions in the room (the first key's win)."""
    rows = conn.execute(
        select(
            permission_overrides.c.public_key,
            *(permission_overrides.c[name] for name in PERMISSIONS),
        ).where(
            permission_overrides.c.room_id == room_id,
            permission_overrides.c.public_key.in_(list(keys)),
        )
    ).all()
    return _first_keys_win(rows, keys)


def _first_keys_win(rows: Sequence[Any], keys: Sequence[str]) -> dict[str, bool]:
    """Rows of (key, read, accessible, write, upload) folded into one set of overrides,
    the earlier of ``keys`` winning where two keys set the same permission."""
    order = {key: n for n, key in enumerate(keys)}
    found: dict[str, bool] = {}
    for row in sorted(rows, key=lambda r: order.get(r[0], len(order)), reverse=True):
        for name, value in zip(PERMISSIONS, row[1:], strict=True):
            if value is not None:
                found[name] = bool(value)
    return found


def all_overrides(conn: Connection, room_id: str) -> dict[str, dict[str, bool]]:
    rows = conn.execute(
        select(
            permission_overrides.c.public_key,
            *(permission_overrides.c[name] for name in PERMISSIONS),
        ).where(permission_overrides.c.room_id == room_id)
    )
    return {
        row[0]: {
            name: bool(value)
            for name, value in zip(PERMISSIONS, row[1:], strict=True)
            if value is not None
        }
        for row in rows
    }


def set_overrides(
    conn: Connection, room_id: str, public_key: str, values: dict[str, bool | None]
) -> None:
    """Set (True/False) or clear (None) some of a key's permission overrides in a room."""
    current = conn.execute(
        select(*(permission_overrides.c[name] for name in PERMISSIONS)).where(
            permission_overrides.c.room_id == room_id,
            permission_overrides.c.public_key == public_key,
        )
    ).first()
    merged: dict[str, bool | None] = dict(
        zip(PERMISSIONS, current if current is not None else (None,) * 4, strict=True)
    )
    merged.update(values)
    conn.execute(
        delete(permission_overrides).where(
            permission_overrides.c.room_id == room_id,
            permission_overrides.c.public_key == public_key,
        )
    )
    if any(value is not None for value in merged.values()):
        conn.execute(
            insert(permission_overrides).values(room_id=room_id, public_key=public_key, **merged)
        )


def add_future_permissions(
    conn: Connection, room_id: str, public_key: str, at: float, values: dict[str, bool]
) -> None:
    conn.execute(
        insert(future_permissions).values(room_id=room_id, public_key=public_key, at=at, **values)
    )


@dataclass(frozen=True)
class FutureChange:
    """A scheduled change of some of a key's permissions in a room."""

    public_key: str
    at: float
    changes: dict[str, bool]


def future_changes(
    conn: Connection, room_id: str, keys: Sequence[str] | None = None
) -> list[FutureChange]:
    """The room's scheduled permission changes (of the keys only, if given), soonest first."""
    query = select(
        future_permissions.c.public_key,
        future_permissions.c.at,
        *(future_permissions.c[name] for name in FUTURE_PERMISSIONS),
    ).where(future_permissions.c.room_id == room_id)
    if keys is not None:
        query = query.where(future_permissions.c.public_key.in_(list(keys)))
    rows = conn.execute(query.order_by(future_permissions.c.at, future_permissions.c.id))
    return [
        FutureChange(
            row[0],
            row[1],
            {
                name: bool(value)
                for name, value in zip(FUTURE_PERMISSIONS, row[2:], strict=True)
                if value is not None
            },
        )
        for row in rows
    ]


def clear_future_changes(
    conn: Connection, room_id: str, keys: Sequence[str], names: Sequence[str]
) -> None:
    """Unschedule the changes of the named permissions of the keys (a scheduled row
    changing nothing else goes)."""
    names = [name for name in names if name in FUTURE_PERMISSIONS]
    if not names or not keys:
        return
    mine = and_(
        future_permissions.c.room_id == room_id,
        future_permissions.c.public_key.in_(list(keys)),
    )
    conn.execute(update(future_permissions).where(mine).values({name: None for name in names}))
    conn.execute(
        delete(future_permissions).where(
            mine, *(future_permissions.c[name].is_(None) for name in FUTURE_PERMISSIONS)
        )
    )


def apply_due_future_permissions(conn: Connection, now: float) -> int:
    """Turn the scheduled permission changes that are due into overrides; how many."""
    due = conn.execute(
        select(future_permissions)
        .where(future_permissions.c.at <= now)
        .order_by(future_permissions.c.at, future_permissions.c.id)
        # Several processes run this loop: on PostgreSQL each applies other rows than
        # the others (SQLite's writers take turns anyway).
        .with_for_update(skip_locked=True)
    ).all()
    for row in due:
        changes = {name: row._mapping[name] for name in FUTURE_PERMISSIONS}
        set_overrides(
            conn,
            row.room_id,
            row.public_key,
            {name: value for name, value in changes.items() if value is not None},
        )
    if due:
        conn.execute(
            delete(future_permissions).where(future_permissions.c.id.in_([r.id for r in due]))
        )
    return len(due)


def room_exists(conn: Connection, room_id: str) -> bool:
    return conn.execute(select(rooms.c.id).where(rooms.c.id == room_id)).first() is not None


# -- one person's staff roles and bans, under all their keys -----------------------------


def room_staff_of(conn: Connection, room_id: str, keys: Sequence[str]) -> list[StaffEntry]:
    """The room staff entries stored under any of the keys."""
    rows = conn.execute(
        select(moderators.c.public_key, moderators.c.admin, moderators.c.visible).where(
            moderators.c.room_id == room_id, moderators.c.public_key.in_(list(keys))
        )
    )
    return [StaffEntry(r[0], bool(r[1]), bool(r[2]), False) for r in rows]


def global_staff_of(conn: Connection, keys: Sequence[str]) -> list[StaffEntry]:
    rows = conn.execute(
        select(
            global_moderators.c.public_key, global_moderators.c.admin, global_moderators.c.visible
        ).where(global_moderators.c.public_key.in_(list(keys)))
    )
    return [StaffEntry(r[0], bool(r[1]), bool(r[2]), True) for r in rows]


def rooms_staffed_by(conn: Connection, keys: Sequence[str]) -> list[str] | None:
    """The rooms where any of the keys is staff; None: every room (server staff)."""
    if global_staff_of(conn, keys):
        return None
    rows = conn.execute(
        select(moderators.c.room_id).where(moderators.c.public_key.in_(list(keys))).distinct()
    )
    return [row[0] for row in rows]


def update_room_staff(
    conn: Connection, room_id: str, keys: Sequence[str], *, admin: bool, visible: bool
) -> int:
    """Change the role of the room staff entries stored under the keys; how many."""
    return conn.execute(
        update(moderators)
        .where(moderators.c.room_id == room_id, moderators.c.public_key.in_(list(keys)))
        .values(admin=admin, visible=visible)
    ).rowcount


def update_global_staff(
    conn: Connection, keys: Sequence[str], *, admin: bool, visible: bool
) -> int:
    return conn.execute(
        update(global_moderators)
        .where(global_moderators.c.public_key.in_(list(keys)))
        .values(admin=admin, visible=visible)
    ).rowcount


def remove_room_staff_of(conn: Connection, room_id: str, keys: Sequence[str]) -> int:
    return conn.execute(
        delete(moderators).where(
            moderators.c.room_id == room_id, moderators.c.public_key.in_(list(keys))
        )
    ).rowcount


def remove_global_staff_of(conn: Connection, keys: Sequence[str]) -> int:
    return conn.execute(
        delete(global_moderators).where(global_moderators.c.public_key.in_(list(keys)))
    ).rowcount


def staff_rooms_of(conn: Connection, keys: Sequence[str]) -> list[str]:
    """The rooms whose own staff includes any of the keys."""
    rows = conn.execute(
        select(moderators.c.room_id)
        .where(moderators.c.public_key.in_(list(keys)))
        .distinct()
        .order_by(moderators.c.room_id)
    )
    return [row[0] for row in rows]


def every_room_staff(conn: Connection) -> list[tuple[str, StaffEntry]]:
    """(room id, entry) of every room's own staff, by room and key."""
    rows = conn.execute(
        select(
            moderators.c.room_id, moderators.c.public_key, moderators.c.admin, moderators.c.visible
        ).order_by(moderators.c.room_id, moderators.c.public_key)
    )
    return [(r[0], StaffEntry(r[1], bool(r[2]), bool(r[3]), False)) for r in rows]


def update_room_bans(
    conn: Connection, room_id: str, keys: Sequence[str], now: float, expires_at: float | None
) -> int:
    """Renew the room bans stored under the keys (lifted ones too, until pruned); how many."""
    return conn.execute(
        update(bans)
        .where(bans.c.room_id == room_id, bans.c.public_key.in_(list(keys)))
        .values(banned_at=now, expires_at=expires_at)
    ).rowcount


def update_global_bans(
    conn: Connection, keys: Sequence[str], now: float, expires_at: float | None
) -> int:
    return conn.execute(
        update(global_bans)
        .where(global_bans.c.public_key.in_(list(keys)))
        .values(banned_at=now, expires_at=expires_at)
    ).rowcount


def every_room_ban(conn: Connection, now: float) -> list[tuple[str, str, float | None]]:
    """(room id, key, expiry) of every ban in force in any room, by room and key."""
    rows = conn.execute(
        select(bans.c.room_id, bans.c.public_key, bans.c.expires_at)
        .where(or_(bans.c.expires_at.is_(None), bans.c.expires_at > now))
        .order_by(bans.c.room_id, bans.c.public_key)
    )
    return [(r[0], r[1], r[2]) for r in rows]


def room_ban_expiries(
    conn: Connection, room_id: str, now: float, keys: Sequence[str] | None = None
) -> list[tuple[str, float]]:
    """(key, when) of the room's bans in force that end by themselves (of the keys only,
    if given), soonest first."""
    query = select(bans.c.public_key, bans.c.expires_at).where(
        bans.c.room_id == room_id, bans.c.expires_at.is_not(None), bans.c.expires_at > now
    )
    if keys is not None:
        query = query.where(bans.c.public_key.in_(list(keys)))
    return [(r[0], r[1]) for r in conn.execute(query.order_by(bans.c.expires_at))]


def prune_expired_bans(conn: Connection, now: float) -> int:
    """Delete the bans (of rooms and of the server) whose time is up; how many."""
    gone = conn.execute(
        delete(bans).where(bans.c.expires_at.is_not(None), bans.c.expires_at <= now)
    ).rowcount
    return (
        gone
        + conn.execute(
            delete(global_bans).where(
                global_bans.c.expires_at.is_not(None), global_bans.c.expires_at <= now
            )
        ).rowcount
    )


# -- everything that decides one person's rights in one room, in one statement ------------


@dataclass(frozen=True)
class RightsFacts:
    """What the tables say of one person in one room (the rule is domain/access.py's)."""

    room_role: StaffRole | None
    global_role: StaffRole | None
    room_banned: bool
    globally_banned: bool
    overrides: dict[str, bool]


# The parameters of the statements below: ``now`` and, expanding, ``rooms`` and ``keys``.
_IN_ROOMS = bindparam("rooms", expanding=True, type_=String)
_KEYS = bindparam("keys", expanding=True, type_=String)
_NOW = bindparam("now", type_=Float)


def _tagged(
    kind: str, room: Any, key: Any, columns: Sequence[Any], tail: Sequence[Any]
) -> list[Any]:
    """The columns of a tagged row: (kind, room, key, a, b, c, d, *tail), ``columns``
    padded to four with NULL flags."""
    none = null().cast(Boolean)  # typed: PostgreSQL unites NULLs with booleans only so
    padded = [*columns, *([none] * (4 - len(columns)))]
    return [literal(kind).label("kind"), room.label("room"), key.label("key"), *padded, *tail]


def _facts_branches(tail: Sequence[Any] = ()) -> list[Any]:
    """Staff roles, live bans and overrides of the person's keys in some rooms, as tagged
    rows of (kind, room, key, a, b, c, d, *tail), the room NULL for the server's: one
    round trip instead of five per room."""
    no_room = null().cast(String)

    def tagged(kind: str, room: Any, key: Any, *columns: Any) -> list[Any]:
        return _tagged(kind, room, key, columns, tail)

    def live(table: Any) -> Any:
        return or_(table.c.expires_at.is_(None), table.c.expires_at > _NOW)

    mods, gmods, po = moderators, global_moderators, permission_overrides
    return [
        select(*tagged("room_staff", mods.c.room_id, mods.c.public_key, mods.c.admin,
                       mods.c.visible))
        .where(mods.c.room_id.in_(_IN_ROOMS), mods.c.public_key.in_(_KEYS)),
        select(*tagged("global_staff", no_room, gmods.c.public_key, gmods.c.admin,
                       gmods.c.visible))
        .where(gmods.c.public_key.in_(_KEYS)),
        select(*tagged("room_ban", bans.c.room_id, bans.c.public_key))
        .where(bans.c.room_id.in_(_IN_ROOMS), bans.c.public_key.in_(_KEYS), live(bans)),
        select(*tagged("global_ban", no_room, global_bans.c.public_key))
        .where(global_bans.c.public_key.in_(_KEYS), live(global_bans)),
        select(*tagged("override", po.c.room_id, po.c.public_key,
                       *(po.c[name] for name in PERMISSIONS)))
        .where(po.c.room_id.in_(_IN_ROOMS), po.c.public_key.in_(_KEYS)),
    ]  # fmt: skip


_FACTS = HotStatement(
    "people.rights_facts", union_all(*_facts_branches()), expanding=["rooms", "keys"]
)


# The tag of the row that holds the newest DMs' ids (see _rooms_and_facts_statement).
_NEWEST_DMS = "newest_dms"


def _rooms_and_facts_statement(*, newest_dms: bool = False) -> Any:
    """The rooms themselves, as rows tagged ``room`` whose four flags are the room's
    defaults and whose tail is the rest of the room, and :data:`_FACTS`' rows (their
    tail NULL), in one statement: what a request needs to know of the rooms it names
    and of its signer's rights in them, in one round trip.

    ``newest_dms``: two more columns, NULL but in one more row, tagged ``newest_dms``:
    the id of the newest direct message to ``dm_key`` and of the newest from it (NULL:
    none), so a poll of both DM boxes learns in the same round trip whether either has
    anything new (see :func:`rooms_rights_and_newest_dms_of_each`)."""
    room_rows = select(
        literal("room").label("kind"),
        rooms.c.id.label("room"),
        null().cast(String).label("key"),
        *(rooms.c[name] for name in DEFAULT_PERMISSIONS),
        *ROOM_TAIL,
    ).where(rooms.c.id.in_(_IN_ROOMS))
    no_room = [null().cast(column.type) for column in ROOM_TAIL]
    if not newest_dms:
        return union_all(room_rows, *_facts_branches(no_room))
    dm_id = direct_messages.c.id
    no_ids = [null().cast(dm_id.type)] * 2
    dm_key = bindparam("dm_key", type_=String)

    def newest(party: Any) -> Any:
        return select(func.max(dm_id)).where(party == dm_key).scalar_subquery()

    newest_ids = [newest(direct_messages.c.recipient), newest(direct_messages.c.sender)]
    no_text = null().cast(String)
    newest_row = select(*_tagged(_NEWEST_DMS, no_text, no_text, (), [*no_room, *newest_ids]))
    return union_all(
        room_rows.add_columns(*no_ids), *_facts_branches([*no_room, *no_ids]), newest_row
    )


_ROOMS_AND_FACTS = HotStatement(
    "people.rooms_and_rights_facts", _rooms_and_facts_statement(), expanding=["rooms", "keys"]
)
_ROOMS_FACTS_AND_NEWEST_DMS = HotStatement(
    "people.rooms_rights_and_newest_dms",
    _rooms_and_facts_statement(newest_dms=True),
    expanding=["rooms", "keys"],
)
# A room and the rights in it, as read: the room, and the facts of the person in it.
RoomAndFacts = tuple[RoomDetails, RightsFacts]


@dataclass(frozen=True)
class NewestDirectMessages:
    """The ids of the newest direct messages to and from someone (None: none)."""

    to: int | None
    sent: int | None


def rooms_and_rights_facts(
    conn: Connection, room_ids: Sequence[str], keys: Sequence[str], now: float
) -> dict[str, RoomAndFacts]:
    """The rooms whose ids are exactly ``room_ids`` (those there), each with
    :func:`rights_facts` of the person known under ``keys`` in it, in one statement."""
    rows = _ROOMS_AND_FACTS.rows(conn, {"now": now}, rooms=room_ids, keys=keys)
    return _rooms_and_facts(rows, keys)


# What one person's batch poll reads ahead: the ids of the rooms it names, the keys the
# person is known under, and the key their direct messages are kept under.
RoomsAndBoxes = tuple[Sequence[str], Sequence[str], str]


def rooms_rights_and_newest_dms_of_each(
    conn: Connection, asks: Sequence[RoomsAndBoxes], now: float
) -> list[tuple[dict[str, RoomAndFacts], NewestDirectMessages]]:
    """Of each ask, in order: :func:`rooms_and_rights_facts`, and in the same statement
    the ids of the newest direct messages to and from its DM key. On PostgreSQL the
    asks' statements go together, in one round trip for them all."""
    runs = [
        ({"now": now, "dm_key": dm_key}, {"rooms": room_ids, "keys": keys})
        for room_ids, keys, dm_key in asks
    ]
    each = _ROOMS_FACTS_AND_NEWEST_DMS.rows_of_each(conn, runs)
    return [
        (_rooms_and_facts(rows, keys), _newest_dms(rows))
        for rows, (_, keys, _) in zip(each, asks, strict=True)
    ]


def _newest_dms(rows: Sequence[Any]) -> NewestDirectMessages:
    for row in rows:
        if row[0] == _NEWEST_DMS:
            return NewestDirectMessages(row[-2], row[-1])
    return NewestDirectMessages(None, None)


def _rooms_and_facts(rows: Sequence[Any], keys: Sequence[str]) -> dict[str, RoomAndFacts]:
    """The rooms and their facts from the tagged rows of the statements above."""
    found_rooms: dict[str, RoomDetails] = {}
    server: dict[str, list[Any]] = {}
    by_room: dict[str, dict[str, list[Any]]] = {}
    for row in rows:
        if row[0] == "room":
            found_rooms[row[1]] = details_of(row[1], row[3:])  # (extra columns after: unread)
        elif row[0] != _NEWEST_DMS:
            _file_fact(row, server, by_room)
    return {
        room_id: (details, _facts(by_room.get(room_id, {}), server, keys))
        for room_id, details in found_rooms.items()
    }


def rights_facts(conn: Connection, room_id: str, keys: Sequence[str], now: float) -> RightsFacts:
    """Everything :func:`opengroup.domain.access.room_access` weighs, read at once."""
    server: dict[str, list[Any]] = {}
    by_room: dict[str, dict[str, list[Any]]] = {}
    for row in _FACTS.rows(conn, {"now": now}, rooms=[room_id], keys=keys):
        _file_fact(row, server, by_room)
    return _facts(by_room.get(room_id, {}), server, keys)


def _file_fact(
    row: Any, server: dict[str, list[Any]], by_room: dict[str, dict[str, list[Any]]]
) -> None:
    """File a tagged row of :data:`_FACTS` (kind, room, key, a, b, c, d) by kind, under
    its room, or the server's when the room is NULL."""
    kind, room = row[0], row[1]
    found = server if room is None else by_room.setdefault(room, {})
    found.setdefault(kind, []).append(row[2:7])


def _facts(
    in_room: dict[str, list[Any]], server: dict[str, list[Any]], keys: Sequence[str]
) -> RightsFacts:
    """The facts of one room from its rows and the server's, (key, a, b, c, d) each."""

    def role(rows: list[Any] | None) -> StaffRole | None:
        if not rows:
            return None
        return StaffRole(any(r[1] for r in rows), any(r[2] for r in rows))

    return RightsFacts(
        room_role=role(in_room.get("room_staff")),
        global_role=role(server.get("global_staff")),
        room_banned="room_ban" in in_room,
        globally_banned="global_ban" in server,
        overrides=_first_keys_win(in_room.get("override", []), keys),
    )
