"""A room's head (opengroup/storage/roomhead.py) is written three times: SQLAlchemy
Core for one room, and two hand-written statements that read many rooms at once
(SQLite's VALUES, PostgreSQL's unnest). On the real database of the run's backend,
all of them must give the same RoomHead for every case: no token, a live and an
expired token, a moderator (room, global, hidden), a ban (room, global, expired,
with a timeout still running, or of the blinded id linked to the holder's key),
permissions (a room's defaults, overrides either way, staff), and a room
without staff.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from opengroup.storage import migrate, queries
from opengroup.storage.database import Database
from opengroup.storage.roomhead import (
    POSTGRES_HEADS_SQL,
    SQLITE_HEADS_SQL,
    RoomHead,
    TokenHolder,
)

NOW = 1_000_000.0
KEYS = {
    name: "05" + f"{n:02x}" * 32
    for n, name in enumerate(
        [
            "plain",
            "mod",
            "hidden_mod",
            "global_mod",
            "banned",
            "global_banned",
            "expired_ban",
            "timed_ban",
            "staff_banned",
            "expired_token",
            "no_read",
            "read_only",
            "granted",
            "banned_as_blinded",
            "globally_banned_as_blinded",
            "linked_not_banned",
            "overridden_as_blinded",
            "own_beats_linked",
        ],
        start=1,
    )
}

# The blinded ids linked to some of the keys (as a v2 token's claim links them).
BLINDED = {name: "15" + key[2:] for name, key in KEYS.items()}


@pytest.fixture
def db(tmp_path: Path, fresh_database_url: str | None) -> Iterator[Database]:
    url = fresh_database_url or f"sqlite:///{tmp_path / 'opengroup.db'}"
    database = Database(url)
    migrate.upgrade(database)
    with database.write() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO rooms (id, name, message_seq, deletion_seq, created_at)"
                " VALUES ('lobby', 'Lobby', 3, 1, 0), ('empty', 'Empty', 0, 0, 0)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO rooms (id, name, message_seq, deletion_seq, created_at,"
                " default_read, default_write, default_upload)"
                " VALUES ('closed', 'Closed', 0, 0, 0, false, false, false)"
            )
        )
        for room, name, key in CLOSED_TOKENS:
            conn.execute(
                sa.text(
                    "INSERT INTO tokens (token_hash, room_id, public_key, expires_at)"
                    " VALUES (:h, :r, :k, :e)"
                ),
                {"h": token(name), "r": room, "k": KEYS[key], "e": NOW + 3600},
            )
        overrides = [
            ("lobby", "no_read", False, None, None),
            ("lobby", "read_only", None, False, False),
            ("lobby", "mod", False, False, False),  # staff: no matter
            ("closed", "granted", True, True, None),
            ("lobby", "own_beats_linked", None, True, None),
        ]
        linked_overrides = [  # under the blinded ids linked to the keys
            ("lobby", "overridden_as_blinded", None, False, False),
            ("lobby", "own_beats_linked", False, False, None),
        ]
        rows = [(KEYS[entry[1]], entry) for entry in overrides]
        rows += [(BLINDED[entry[1]], entry) for entry in linked_overrides]
        for key, (room_id, _name, read, write, upload) in rows:
            conn.execute(
                sa.text(
                    'INSERT INTO permission_overrides (room_id, public_key, "read", "write",'
                    " upload) VALUES (:r, :k, :read, :write, :upload)"
                ),
                {"r": room_id, "k": key, "read": read, "write": write, "upload": upload},
            )
        for name, key in KEYS.items():
            expires = NOW - 1 if name == "expired_token" else NOW + 3600
            conn.execute(
                sa.text(
                    "INSERT INTO tokens (token_hash, room_id, public_key, expires_at)"
                    " VALUES (:h, 'lobby', :k, :e)"
                ),
                {"h": token(name), "k": key, "e": expires},
            )
        staff = [("mod", True), ("hidden_mod", False), ("staff_banned", True)]
        for name, visible in staff:
            conn.execute(
                sa.text(
                    "INSERT INTO moderators (room_id, public_key, added_at, admin, visible)"
                    " VALUES ('lobby', :k, 0, false, :v)"
                ),
                {"k": KEYS[name], "v": visible},
            )
        conn.execute(
            sa.text(
                "INSERT INTO global_moderators (public_key, added_at, admin, visible)"
                " VALUES (:k, 0, true, true)"
            ),
            {"k": KEYS["global_mod"]},
        )
        bans: list[tuple[str, float | None]] = [
            ("banned", None),
            ("expired_ban", NOW - 5),
            ("timed_ban", NOW + 5),
            ("staff_banned", None),
        ]
        for name, ban_expires in bans:
            conn.execute(
                sa.text(
                    "INSERT INTO bans (room_id, public_key, banned_at, expires_at)"
                    " VALUES ('lobby', :k, 0, :e)"
                ),
                {"k": KEYS[name], "e": ban_expires},
            )
        conn.execute(
            sa.text("INSERT INTO global_bans (public_key, banned_at) VALUES (:k, 0)"),
            {"k": KEYS["global_banned"]},
        )
        linked = ("banned_as_blinded", "globally_banned_as_blinded", "linked_not_banned",
                  "overridden_as_blinded", "own_beats_linked")  # fmt: skip
        for name in linked:
            conn.execute(
                sa.text(
                    "INSERT INTO blinded_ids (session_id, blinded_abs, blinded_id)"
                    " VALUES (:k, :abs, :b)"
                ),
                {"k": KEYS[name], "abs": BLINDED[name], "b": BLINDED[name]},
            )
        conn.execute(
            sa.text("INSERT INTO bans (room_id, public_key, banned_at) VALUES ('lobby', :b, 0)"),
            {"b": BLINDED["banned_as_blinded"]},
        )
        conn.execute(
            sa.text("INSERT INTO global_bans (public_key, banned_at) VALUES (:b, 0)"),
            {"b": BLINDED["globally_banned_as_blinded"]},
        )
        conn.execute(
            sa.text(
                "INSERT INTO room_activity (room_id, public_key, last_active)"
                " VALUES ('lobby', :k, 42.5)"
            ),
            {"k": KEYS["plain"]},
        )
    yield database
    database.dispose()


def token(name: str) -> bytes:
    return name.encode().ljust(32, b"\0")


# Tokens in the closed room (no read, write or upload by default): (room, token, key).
CLOSED_TOKENS = [
    ("closed", "closed_plain", "plain"),
    ("closed", "closed_granted", "granted"),
    ("closed", "closed_global_mod", "global_mod"),
]
LOOKUPS = (
    [("lobby", token(name)) for name in KEYS]
    + [("lobby", token("nobody")), ("empty", token("plain")), ("missing", token("plain"))]
    + [(room, token(name)) for room, name, _ in CLOSED_TOKENS]
)


def core_heads(db: Database) -> list[RoomHead | None]:
    with db.read() as conn:
        return [queries.room_head(conn, room, hashed, NOW) for room, hashed in LOOKUPS]


def sqlite_heads(db: Database) -> list[RoomHead | None]:
    path = sa.make_url(db.url).database
    assert path is not None
    sql = SQLITE_HEADS_SQL.format(entries=", ".join(["(?, ?, ?, ?)"] * len(LOOKUPS)))
    values = [v for n, (room, hashed) in enumerate(LOOKUPS) for v in (n, room, hashed, NOW)]
    with sqlite3.connect(path) as conn:
        rows = {row[0]: RoomHead.of(row[1:]) for row in conn.execute(sql, values)}
    return [rows.get(n) for n in range(len(LOOKUPS))]


def postgres_heads(db: Database) -> list[RoomHead | None]:
    conninfo = sa.make_url(db.url).set(drivername="postgresql").render_as_string(False)

    async def read() -> list[RoomHead | None]:
        async with await psycopg.AsyncConnection.connect(conninfo) as conn:
            params = {
                "room_ids": [room for room, _ in LOOKUPS],
                "token_hashes": [hashed for _, hashed in LOOKUPS],
                "nows": [NOW] * len(LOOKUPS),
            }
            found = await (await conn.execute(POSTGRES_HEADS_SQL, params)).fetchall()
        rows = {row[0]: RoomHead.of(row[1:]) for row in found}
        return [rows.get(n + 1) for n in range(len(LOOKUPS))]

    return asyncio.run(read())


def test_the_hand_written_heads_answer_exactly_what_the_core_statement_does(db: Database) -> None:
    core = core_heads(db)
    many = sqlite_heads(db) if db.is_sqlite else postgres_heads(db)
    assert [h and (h.holder, h.moderators, h.message_seq, h.deletion_seq) for h in many] == [
        h and (h.holder, h.moderators, h.message_seq, h.deletion_seq) for h in core
    ]


def test_the_head_applies_the_staff_and_ban_rules(db: Database) -> None:
    heads = dict(zip([name for name in KEYS], core_heads(db), strict=False))
    assert heads["expired_token"] is not None and heads["expired_token"].holder is None
    holder = {name: head.holder for name, head in heads.items() if head and head.holder is not None}
    assert holder["plain"] == (KEYS["plain"], False, False, True, True, True, 42.5)
    assert holder["mod"].is_moderator and holder["hidden_mod"].is_moderator
    assert holder["global_mod"].is_moderator
    assert holder["banned"].is_banned and holder["global_banned"].is_banned
    assert holder["timed_ban"].is_banned, "a ban with time left bans"
    assert not holder["expired_ban"].is_banned, "an expired ban no longer bans"
    assert not holder["staff_banned"].is_banned, "staff are never banned"
    assert holder["banned_as_blinded"].is_banned, "a ban of the linked blinded id bans"
    assert holder["globally_banned_as_blinded"].is_banned
    assert not holder["linked_not_banned"].is_banned
    assert "expired_token" not in holder
    lobby = heads["plain"]
    assert lobby is not None
    assert lobby.moderators == sorted([KEYS["mod"], KEYS["staff_banned"], KEYS["global_mod"]])
    assert (lobby.message_seq, lobby.deletion_seq) == (3, 1)


def test_the_head_applies_the_rooms_permissions_and_the_holders_overrides(
    db: Database,
) -> None:
    core = core_heads(db)
    lobby = {name: head.holder for name, head in zip(KEYS, core, strict=False) if head}
    closed = [head.holder if head else None for head in core[-len(CLOSED_TOKENS) :]]

    def rights(holder: TokenHolder | None) -> tuple[bool, bool, bool]:
        assert holder is not None
        return holder.may_read, holder.may_write, holder.may_upload

    assert rights(lobby["plain"]) == (True, True, True), "the lobby's defaults"
    assert rights(lobby["no_read"]) == (False, True, True), "an override of one right"
    assert rights(lobby["read_only"]) == (True, False, False)
    assert rights(lobby["mod"]) == (True, True, True), "staff may, whatever the overrides"
    assert rights(lobby["overridden_as_blinded"]) == (True, False, False), "the linked id's"
    assert rights(lobby["own_beats_linked"]) == (False, True, True), "own key first, each right"
    closed_plain, closed_granted, closed_global_mod = closed
    assert rights(closed_plain) == (False, False, False), "the closed room's defaults"
    assert rights(closed_granted) == (True, True, False), "an override wins; None keeps"
    assert rights(closed_global_mod) == (True, True, True), "global staff may"


def test_a_missing_room_has_no_head_and_an_empty_one_has_no_staff(db: Database) -> None:
    core = core_heads(db)
    empty, missing = core[len(KEYS) + 1], core[len(KEYS) + 2]
    assert missing is None
    assert empty is not None and empty.holder is None
    assert empty.moderators == [KEYS["global_mod"]]
