"""The community API's hot statements run on the database driver
(opengroup/storage/driversql.py's HotStatement), compiled from their Core
statements. On the real database of the run's backend, each must give exactly
the rows SQLAlchemy gives for its Core statement, for every number of keys a
person is known under (none for anonymous callers, up to three), with rows to
find and without; and the values the storage functions build from them must
have the types SQLAlchemy's would (SQLite hands back booleans as 0 and 1).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Table, insert, select

from opengroup.domain.access import (
    view_room,
    view_rooms,
    view_rooms_and_newest_dms,
    view_rooms_and_newest_dms_of_each,
)
from opengroup.domain.errors import NoSuchRoom
from opengroup.storage import (
    inbox,
    migrate,
    paging,
    people,
    posts,
    postwriter,  # noqa: F401  (imported: its statements are made)
    queries,
    roomdetails,
)
from opengroup.storage.database import Database
from opengroup.storage.driversql import HotStatement
from opengroup.storage.schema import (
    bans,
    blinded_ids,
    direct_messages,
    files,
    global_bans,
    global_moderators,
    messages,
    moderators,
    permission_overrides,
    reactions,
    request_nonces,
    room_activity,
    rooms,
    users,
)

NOW = 1_000_000.0
ROOM = "lobby"


def key(prefix: str, n: int) -> str:
    return prefix + f"{n:02x}" * 32


ALICE, ALICE_15, ALICE_15_OTHER = key("05", 1), key("15", 1), key("15", 2)
BOB, MOD, GLOBAL_ADMIN, BANNED = key("05", 3), key("05", 4), key("05", 5), key("15", 6)
# The lists of keys a caller may be known under: anonymous, one key, a blinded
# signer with its linked Session id, and all three.
KEY_LISTS: list[list[str]] = [
    [],
    [BOB],
    [ALICE_15, ALICE],
    [ALICE_15, ALICE_15_OTHER, ALICE],
    [MOD],
    [GLOBAL_ADMIN],
    [BANNED],
]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, database_url: str | None) -> Iterator[Database]:
    path: Path = tmp_path_factory.mktemp("hot") / "opengroup.db"
    database = Database(database_url or f"sqlite:///{path}")
    migrate.upgrade(database)
    with database.write() as conn:
        insert_rows(conn, rooms,
            [
                {"id": ROOM, "name": "Lobby", "created_at": 1.5, "seqno": 9, "info_updates": 4,
                 "default_write": False, "slow_mode_seconds": 30},
                {"id": "Quiet", "name": "Quiet", "created_at": 2.0, "description": "shh",
                 "default_read": False, "default_upload": False},
            ],
        )  # fmt: skip
        insert_rows(
            conn,
            messages,
            [
                message(1, ALICE_15, seqno=1),
                message(2, BOB, seqno=5, whisper_to=ALICE_15),
                message(3, MOD, seqno=6, whisper_mods=True),
                message(4, BOB, seqno=7, deleted=True, seqno_created=3),
                message(5, ALICE, seqno=8, edited_at=NOW - 5, seqno_data=8, seqno_created=2),
                message(6, BOB, seqno=9, deleted=True, seqno_created=9),
            ],
        )
        insert_rows(conn, reactions,
            [
                {"room_id": ROOM, "message_id": 1, "reaction": "👍", "public_key": BOB,
                 "reacted_at": 3.0},
                {"room_id": ROOM, "message_id": 1, "reaction": "👍", "public_key": ALICE_15,
                 "reacted_at": 2.0},
                {"room_id": ROOM, "message_id": 5, "reaction": "🎉", "public_key": BOB,
                 "reacted_at": 2.0},
            ],
        )  # fmt: skip
        insert_rows(conn, moderators,
            [
                {"room_id": ROOM, "public_key": MOD, "added_at": 1.0, "admin": False,
                 "visible": True},
                {"room_id": ROOM, "public_key": ALICE, "added_at": 1.0, "admin": True,
                 "visible": False},
            ],
        )  # fmt: skip
        insert_rows(
            conn,
            global_moderators,
            [{"public_key": GLOBAL_ADMIN, "added_at": 1.0, "admin": True, "visible": False}],
        )
        insert_rows(
            conn,
            bans,
            [
                {"room_id": ROOM, "public_key": BANNED, "banned_at": 1.0, "expires_at": None},
                {"room_id": ROOM, "public_key": BOB, "banned_at": 1.0, "expires_at": NOW - 1},
            ],
        )
        insert_rows(
            conn,
            global_bans,
            [
                {"public_key": BANNED, "banned_at": 1.0, "expires_at": NOW + 60},
                {"public_key": ALICE, "banned_at": 1.0, "expires_at": NOW - 60},
            ],
        )
        insert_rows(conn, permission_overrides,
            [
                {"room_id": ROOM, "public_key": ALICE_15, "read": None, "accessible": None,
                 "write": True, "upload": False},
                {"room_id": ROOM, "public_key": ALICE, "read": False, "accessible": None,
                 "write": False, "upload": None},
                {"room_id": ROOM, "public_key": BOB, "read": True, "accessible": True,
                 "write": None, "upload": None},
            ],
        )  # fmt: skip
        insert_rows(
            conn,
            room_activity,
            [
                {"room_id": ROOM, "public_key": ALICE, "last_active": NOW - 10},
                {"room_id": ROOM, "public_key": BOB, "last_active": NOW - 1000},
            ],
        )
        insert_rows(
            conn,
            users,
            [{"session_id": ALICE, "first_seen": 1.0, "last_seen": NOW - 3, "first_spoke": 2.0}],
        )
        insert_rows(conn, blinded_ids, [{"session_id": ALICE, "blinded_abs": ALICE_15}])
        insert_rows(conn, direct_messages,
            [
                {"sender": ALICE_15, "recipient": BANNED, "data": b"\x00hi", "posted_at": NOW - 9,
                 "expires_at": NOW + 9},
                {"sender": BANNED, "recipient": ALICE_15, "data": b"yo", "posted_at": NOW - 8,
                 "expires_at": NOW + 9},
                {"sender": ALICE_15, "recipient": BANNED, "data": b"old", "posted_at": NOW - 99,
                 "expires_at": NOW - 1},
            ],
        )  # fmt: skip
    yield database
    database.dispose()


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    for row in rows:  # one by one: each row names only the columns it sets
        conn.execute(insert(table).values(row))


def message(server_id: int, author: str, *, seqno: int, **columns: Any) -> dict[str, Any]:
    row = {
        "room_id": ROOM,
        "server_id": server_id,
        "public_key": author,
        "timestamp": 1000 + server_id,
        "data": f"data-{server_id}",
        "signature": f"sig-{server_id}",
        "posted_at": NOW - 100 + server_id,
        "seqno": seqno,
        "seqno_data": seqno,
        "seqno_created": seqno,
    }
    return {**row, **columns}


def as_sqlalchemy_gives(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Rows in comparable form: booleans as the integers SQLite stores, binary as bytes."""

    def value(v: Any) -> Any:
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, memoryview):
            return bytes(v)
        return v

    return [tuple(value(v) for v in row) for row in rows]


# (statement name, its parameters, its expanding lists): every read the hot paths make.
READS: list[tuple[str, dict[str, Any], dict[str, list[Any]]]] = [
    ("rooms.by_id", {"token": ROOM}, {}),
    ("rooms.by_id", {"token": "quiet"}, {}),
    ("rooms.by_folded_id", {"token": "quiet"}, {}),
    *(
        ("rooms.last_activity", {"room_id": room, "public_key": who}, {})
        for room in (ROOM, "Quiet")
        for who in (ALICE, BOB, ALICE_15)
    ),
    ("rooms.active_users", {"room_id": ROOM, "since": NOW - 100}, {}),
    ("rooms.active_users", {"room_id": "Quiet", "since": NOW - 100}, {}),
    *(
        ("people.rights_facts", {"now": NOW}, {"rooms": rooms_, "keys": keys})
        for rooms_ in ([ROOM], ["Quiet"], [ROOM, "Quiet"], [ROOM, "nowhere", "Quiet"])
        for keys in KEY_LISTS
    ),
    *(
        ("people.rooms_and_rights_facts", {"now": NOW}, {"rooms": rooms_, "keys": keys})
        for rooms_ in ([ROOM], [ROOM, "Quiet"], ["quiet", "nowhere"])
        for keys in KEY_LISTS
    ),
    *(
        (
            "people.rooms_rights_and_newest_dms",
            {"now": NOW, "dm_key": who},
            {"rooms": rooms_, "keys": keys},
        )
        for rooms_ in ([ROOM], [ROOM, "Quiet"], ["quiet", "nowhere"])
        for keys in KEY_LISTS[:4]
        for who in (ALICE_15, BANNED, BOB)
    ),
    *(
        (
            "people.signers_facts",
            {"now": NOW},
            {"session_ids": sids, "blinded_abs": abs_, "keys": keys},
        )
        for sids, abs_, keys in [
            ([ALICE], [ALICE_15], [ALICE_15, ALICE]),
            ([ALICE], [], [ALICE]),
            ([BANNED], [BANNED], [BANNED]),
            ([BOB], [], [BOB]),
            ([ALICE, BANNED, BOB], [ALICE_15, BANNED], [ALICE_15, ALICE, BANNED, BOB]),
            ([], [], []),
        ]
    ),
    *(
        (
            f"messages.since.reactions={flag}",
            {"room_id": ROOM, "seqno": seqno, "moderator": moderator, "limit": 256},
            {"keys": keys},
        )
        for flag in (True, False)
        for seqno in (0, 2, 6, 9)
        for moderator in (False, True)
        for keys in KEY_LISTS[:4]
    ),
    *(
        (
            "messages.every_change_since",
            {"room_id": room, "seqno": seqno, "limit": limit},
            {},
        )
        for room in (ROOM, "Quiet")
        for seqno in (0, 2, 6, 9)
        for limit in (3, 256)
    ),
    *(
        (
            f"messages.newest.before={before is not None}",
            {"room_id": ROOM, "moderator": moderator, "limit": limit}
            | ({"before": before} if before is not None else {}),
            {"keys": keys},
        )
        for before in (None, 4)
        for moderator in (False, True)
        for limit in (2, 100)
        for keys in KEY_LISTS[:4]
    ),
    *(
        ("postwriter.posts_of_keys", {"room_id": room, "since": since}, {"keys": keys})
        for room in (ROOM, "Quiet")
        for since in (0.0, NOW - 97.5)
        for keys in [*KEY_LISTS[1:4], [BOB, ALICE, MOD]]
    ),
    *(
        ("postwriter.first_seen", {}, {"keys": keys})
        for keys in ([ALICE], [BOB], [ALICE, BOB, ALICE_15])
    ),
    *(
        ("reactions.of_messages", {"room_id": room}, {"message_ids": ids})
        for room in (ROOM, "Quiet")
        for ids in ([1], [1, 5], [5, 2, 1], [4, 6, 9, 1, 5])
    ),
    *(
        (f"direct_messages.{box}", {"key": who, "after_id": after, "now": NOW, "limit": 10}, {})
        for box in ("to", "from")
        for who in (ALICE_15, BANNED, BOB)
        for after in (0, 1)
    ),
    *(
        (
            "direct_messages.both",
            {
                "key": who,
                "now": NOW,
                "after_to": after,
                "limit_to": 10,
                "after_from": 0,
                "limit_from": limit,
            },
            {},
        )
        for who in (ALICE_15, BANNED, BOB)
        for after in (0, 1)
        for limit in (1, 10)
    ),
]


@pytest.mark.parametrize(("name", "params", "lists"), READS)
def test_a_hot_read_gives_the_rows_of_its_core_statement(
    db: Database, name: str, params: dict[str, Any], lists: dict[str, list[Any]]
) -> None:
    statement = HotStatement.made[name]
    with db.read() as conn:
        hot = statement.rows(conn, params, **lists)
        core = statement.core_rows(conn, params, **lists)
    assert as_sqlalchemy_gives(hot) == as_sqlalchemy_gives(core)


def test_every_hot_statement_is_held_to_its_core_statement(db: Database) -> None:
    with db.write() as conn:  # the inserts are made on first use
        people.take_nonces(conn, [(int(NOW), b"n" * 16)])
        people.insert_user(conn, BOB, NOW)
        people.link_session_id(conn, BOB, key("15", 3))
    covered = {name for name, _params, _lists in READS} | {
        name for name in HotStatement.made if name.startswith("insert_if_absent.")
    }
    # below: writes, held to what they must change
    covered |= {"files.keep", "people.touch_users", "people.clear_expired_nonces"}
    covered |= {"messages.one_in_locked_room", "messages.set_seqno"}
    covered |= {name for name in HotStatement.made if name.startswith("rooms.bump_")}
    covered |= {name for name in HotStatement.made if name.startswith("people.admit.")}
    assert set(HotStatement.made) <= covered


def test_insert_if_absent_says_which_rows_went_in(db: Database) -> None:
    t = int(NOW)
    a, b, c = b"a" * 16, b"b" * 16, b"c" * 16
    with db.write() as conn:
        assert people.take_nonces(conn, [(t, a)]) == {(t, a)}
        assert people.take_nonces(conn, [(t, a)]) == set()
        # in one statement: the new ones, each once (padded to four rows meanwhile)
        assert people.take_nonces(conn, [(t, b), (t, a), (t, b)]) == {(t, b)}
    with db.write() as conn:
        # the same nonce signed at another time is another request
        assert people.take_nonces(conn, [(t, a), (t + 1, a), (t, c)]) == {(t + 1, a), (t, c)}
        kept = conn.execute(select(request_nonces.c.signed_at, request_nonces.c.nonce)).all()
        assert {(at, bytes(n)) for at, n in kept} >= {(t, a), (t, b), (t, c), (t + 1, a)}
        assert queries.insert_if_absent(conn, users, session_id=key("15", 11), first_seen=1.0,
                                        last_seen=1.0) is True  # fmt: skip
        many = [(t, bytes([n % 256, n // 256]) * 8) for n in range(600)]
        assert people.take_nonces(conn, many + many[:10]) == set(many)


def test_clearing_expired_nonces_deletes_at_most_so_many_the_longest_expired_first(
    db: Database,
) -> None:
    before = int(NOW) - 10_000  # (the other tests' nonces are signed later)
    expired = [(before - 100 + n, b"expired-%08d" % n) for n in range(25)]  # oldest first
    live = [(before + n, b"live-%011d" % n) for n in range(5)]
    with db.write() as conn:
        people.take_nonces(conn, [*live, *expired])
        deleted = [len(people.clear_expired_nonces(conn, 0, before, 10)) for _ in range(4)]
        kept = set(conn.execute(select(request_nonces.c.signed_at, request_nonces.c.nonce)).all())
    assert deleted == [10, 10, 5, 0]
    assert kept >= set(live)
    assert kept.isdisjoint(expired)
    with db.write() as conn:
        people.take_nonces(conn, expired)
        assert sorted(people.clear_expired_nonces(conn, 0, before, 10)) == [
            t for t, _n in expired[:10]
        ]
        kept = set(conn.execute(select(request_nonces.c.signed_at, request_nonces.c.nonce)).all())
    assert kept.isdisjoint(expired[:10])
    assert kept >= set(expired[10:])
    with db.write() as conn:
        # from a time on: those signed earlier are not even looked at
        assert sorted(people.clear_expired_nonces(conn, before - 85, before, 100)) == [
            t for t, _n in expired[15:]
        ]
        assert sorted(people.clear_expired_nonces(conn, 0, before, 100)) == [
            t for t, _n in expired[10:15]
        ]


def test_an_admission_clears_takes_and_reads_as_its_three_parts_do(db: Database) -> None:
    """people.admit: on PostgreSQL one statement; what it deletes, records and finds."""
    before = int(NOW) - 20_000  # (the other tests' nonces are signed later)
    expired = [(before - 50 + n, b"old-%012d" % n) for n in range(6)]  # oldest first
    used, new = (int(NOW), b"used-%011d" % 1), (int(NOW), b"new-%012d" % 1)
    newer = (int(NOW) + 1, b"new-%012d" % 1)  # (the same nonce, another time)
    signers = [
        people.Signer(ALICE_15, ALICE_15, [ALICE_15]),
        people.Signer(ALICE, None, [ALICE]),
        people.Signer(BANNED, BANNED, [BANNED]),
    ]
    with db.write() as conn:
        people.take_nonces(conn, [*expired, used])
    with db.one_statement_write() as conn:
        done = people.admit(conn, [newer, used, new, new], signers, NOW,
                            clear_from=0, clear_before=before, most_cleared=4)  # fmt: skip
    assert sorted(done.cleared) == [t for t, _n in expired[:4]]
    assert done.fresh == {new, newer}
    with db.read() as conn:
        assert done.facts == people.signers_facts(conn, signers, NOW)
        kept = set(conn.execute(select(request_nonces.c.signed_at, request_nonces.c.nonce)).all())
    assert kept >= {used, new, newer, *expired[4:]}
    assert kept.isdisjoint(expired[:4])
    with db.one_statement_write() as conn:
        again = people.admit(conn, [new], signers[:1], NOW,
                             clear_from=0, clear_before=before, most_cleared=10)  # fmt: skip
    assert sorted(again.cleared) == [t for t, _n in expired[4:]]
    assert again.fresh == set() and again.facts == {ALICE_15: done.facts[ALICE_15]}


class RolledBack(Exception):
    """Raised to end a write transaction without keeping what it wrote."""


def test_a_message_read_in_its_locked_room_is_the_row_of_its_core_statement(
    db: Database,
) -> None:
    statement = HotStatement.made["messages.one_in_locked_room"]
    with pytest.raises(RolledBack), db.write() as conn:  # (FOR KEY SHARE: a write's)
        for room, message_id in [(ROOM, 1), (ROOM, 4), (ROOM, 99), ("Quiet", 1), ("Gone", 1)]:
            params = {"room_id": room, "message_id": message_id}
            hot, core = statement.rows(conn, params), statement.core_rows(conn, params)
            assert as_sqlalchemy_gives(hot) == as_sqlalchemy_gives(core)
        assert posts.one_in_locked_room(conn, ROOM, 5) == (9, posts.one(conn, ROOM, 5))
        assert posts.one_in_locked_room(conn, ROOM, 99) == (9, None)
        assert posts.one_in_locked_room(conn, "Gone", 1) is None
        raise RolledBack


def test_moving_a_message_to_the_next_seqno_changes_that_message_and_the_room_only(
    db: Database,
) -> None:
    def seqnos(conn: Connection) -> dict[Any, int]:
        found: dict[Any, int] = dict(conn.execute(select(rooms.c.id, rooms.c.seqno)).all())
        for room, message_id, seqno in conn.execute(
            select(messages.c.room_id, messages.c.server_id, messages.c.seqno)
        ):
            found[(room, message_id)] = seqno
        return found

    with pytest.raises(RolledBack), db.write() as conn:
        before = seqnos(conn)
        assert posts.move_to_next_seqno(conn, ROOM, 2) == 10
        assert posts.move_to_next_seqno(conn, ROOM, 1) == 11
        assert seqnos(conn) == before | {ROOM: 11, (ROOM, 2): 10, (ROOM, 1): 11}
        raise RolledBack


def test_touching_users_moves_their_last_sighting_only_forward(db: Database) -> None:
    carol, dave = key("15", 7), key("15", 8)
    with db.write() as conn:
        people.insert_user(conn, carol, NOW - 50)
        people.insert_user(conn, dave, NOW + 50)
        people.touch_users(conn, [carol, dave, key("15", 9)], NOW)
        assert people.user_last_seen(conn, carol) == NOW
        assert people.user_last_seen(conn, dave) == NOW + 50
        assert people.user_last_seen(conn, key("15", 9)) is None


def test_the_values_built_from_driver_rows_have_sqlalchemys_types(db: Database) -> None:
    with db.read() as conn:
        lobby = roomdetails.find_room(conn, ROOM)
        quiet = roomdetails.find_room(conn, "QUIET")
        assert lobby is not None and quiet is not None
        assert (lobby.default_read, lobby.default_write) == (True, False)
        assert all(
            type(flag) is bool
            for room in (lobby, quiet)
            for flag in (room.default_read, room.default_accessible, room.default_write,
                         room.default_upload)
        )  # fmt: skip
        assert (lobby.created_at, lobby.seqno, lobby.slow_mode_seconds) == (1.5, 9, 30)
        assert quiet.id == "Quiet" and quiet.description == "shh"
        assert roomdetails.active_users(conn, ROOM, NOW - 100) == 1
        assert queries.last_activity(conn, ROOM, ALICE) == NOW - 10
        assert queries.last_activity(conn, "Quiet", ALICE) is None

        facts = people.rights_facts(conn, ROOM, [ALICE_15, ALICE], NOW)
        assert facts.overrides == {"read": False, "write": True, "upload": False}
        assert all(type(v) is bool for v in facts.overrides.values())
        assert facts.room_role is not None and facts.room_role.admin is True
        assert facts.room_role.visible is False and facts.globally_banned is False
        banned = people.rights_facts(conn, ROOM, [BANNED], NOW)
        assert banned.room_banned is True and banned.globally_banned is True
        together = people.rooms_and_rights_facts(conn, [ROOM, "nowhere", "Quiet"],
                                                 [ALICE_15, ALICE], NOW)  # fmt: skip
        assert together == {
            ROOM: (lobby, facts),
            "Quiet": (quiet, people.rights_facts(conn, "Quiet", [ALICE_15, ALICE], NOW)),
        }
        assert people.rooms_and_rights_facts(conn, [ROOM], [BANNED], NOW)[ROOM][1] == banned

        signers = [
            people.Signer(ALICE_15, ALICE_15, [ALICE_15]),
            people.Signer(ALICE, None, [ALICE]),
            people.Signer(BANNED, BANNED, [BANNED]),
        ]
        assert people.signers_facts(conn, signers, NOW) == {
            ALICE_15: people.SignerFacts([ALICE], None, False),
            ALICE: people.SignerFacts([], NOW - 3, False),
            BANNED: people.SignerFacts([], None, True),
        }

        changed = posts.changes_since(conn, ROOM, 4, 256, [ALICE_15, ALICE], True,
                                      with_reactions=True)  # fmt: skip
        assert [m.id for m in changed] == [2, 3, 4, 5]
        assert all(type(m.deleted) is bool and type(m.whisper_mods) is bool for m in changed)
        assert [m.deleted for m in changed] == [False, False, True, False]
        assert changed[1].whisper_mods is True and changed[3].edited == NOW - 5

        assert posts.reactions_of(conn, ROOM, [5, 1, 3]) == [
            posts.Reaction(1, "👍", ALICE_15, 2.0),
            posts.Reaction(1, "👍", BOB, 3.0),
            posts.Reaction(5, "🎉", BOB, 2.0),
        ]

        assert posts.reactors_by_message(conn, ROOM, [5, 1, 3]) == {
            5: {"🎉": [BOB]},
            1: {"👍": [ALICE_15, BOB]},
        }
        assert posts.reactors_by_message(conn, ROOM, []) == {}

        received = inbox.messages_to(conn, BANNED, NOW, after_id=0, limit=10)
        assert [(m.sender, m.data) for m in received] == [(ALICE_15, b"\x00hi")]
        assert type(received[0].data) is bytes


@pytest.mark.parametrize("who", [ALICE_15, BANNED, BOB])
def test_both_boxes_read_together_are_the_pages_read_one_by_one(db: Database, who: str) -> None:
    with db.read() as conn:
        for after, limit in ((0, 10), (0, 1), (1, 10), (99, 10)):
            together = inbox.both_pages(conn, who, NOW, (after, limit), (0, limit))
            assert together == (
                inbox.messages_to(conn, who, NOW, after_id=after, limit=limit),
                inbox.messages_from(conn, who, NOW, after_id=0, limit=limit),
            )


@pytest.mark.parametrize("keys", KEY_LISTS)
@pytest.mark.parametrize("who", [ALICE_15, BANNED, BOB])
def test_rooms_read_with_the_newest_dms_are_both_read_apart(
    db: Database, keys: list[str], who: str
) -> None:
    """The rooms as view_rooms reads them, and the ids of the newest messages to and
    from ``who``: the last of each box read from its start (None if it is empty)."""
    tokens = [ROOM, "Quiet", "nowhere", "quiet"]
    with db.read() as conn:
        views, newest = view_rooms_and_newest_dms(conn, tokens, keys, NOW, who)
        assert views == view_rooms(conn, tokens, keys, NOW)
        # (from the start, every message: expired ones too, so a page may still be empty)
        received, sent = inbox.both_pages(conn, who, 0.0, (0, 100), (0, 100))
        assert newest == people.NewestDirectMessages(
            received[-1].id if received else None, sent[-1].id if sent else None
        )
        assert view_rooms_and_newest_dms(conn, ["no\x00room"], keys, NOW, who) == ({}, None)


def test_many_polls_read_ahead_together_each_get_what_they_read_alone(db: Database) -> None:
    """What batch polls read ahead together (on PostgreSQL, one pipeline of statements
    on the connection the event loop keeps for its reads) is, for each, what it reads
    alone: every signer, key list and room list, in any order, one poll with no room
    among them."""
    asks = [
        (tokens, keys, who)
        for tokens in ([ROOM], [ROOM, "Quiet", "nowhere"], ["no\x00room"], ["quiet"])
        for keys in KEY_LISTS[:4]
        for who in (ALICE_15, BANNED, BOB)
    ]
    with db.shared_reads(), db.read() as conn:
        together = view_rooms_and_newest_dms_of_each(conn, asks, NOW)
        backwards = view_rooms_and_newest_dms_of_each(conn, asks[::-1], NOW)
    with db.read() as conn:
        alone = [view_rooms_and_newest_dms(conn, *ask[:2], NOW, ask[2]) for ask in asks]
    assert together == alone
    assert backwards == alone[::-1]
    assert len({repr(answer) for answer in alone}) > 10  # (the asks differ in their answers)


@pytest.mark.parametrize("keys", KEY_LISTS)
def test_rooms_read_together_are_the_rooms_read_one_by_one(db: Database, keys: list[str]) -> None:
    tokens = [ROOM, "Quiet", "nowhere", "quiet"]
    with db.read() as conn:
        together = view_rooms(conn, tokens, keys, NOW)
        one_by_one = {}
        for token in tokens:
            with contextlib.suppress(NoSuchRoom):
                one_by_one[token] = view_room(conn, token, keys, NOW)
    # Read together, rooms are found by their exact ids only ("quiet" is found alone).
    assert together == {token: view for token, view in one_by_one.items() if token != "quiet"}
    assert one_by_one.get("quiet") == one_by_one.get("Quiet")


def test_keeping_files_extends_only_the_posters_expiring_uploads_to_the_room(
    db: Database,
) -> None:
    rows = [
        (101, ROOM, ALICE_15, NOW + 10),  # kept
        (102, ROOM, BOB, NOW + 10),  # another uploader's
        (103, ROOM, ALICE_15, None),  # never expires: stays so
        (104, "Quiet", ALICE_15, NOW + 10),  # another room's
        (105, ROOM, ALICE, NOW + 5000),  # already lives longer: never shortened
        (106, ROOM, ALICE, NOW + 20),  # kept (the poster's other key)
    ]
    with db.write() as conn:
        insert_rows(
            conn,
            files,
            [
                {"id": id_, "room_id": room, "uploader": who, "data": b"x", "size": 1,
                 "created_at": NOW, "expires_at": expires}
                for id_, room, who, expires in rows
            ],
        )  # fmt: skip
        kept = posts.keep_files(conn, ROOM, [ALICE_15, ALICE], [101, 102, 103, 104, 105, 106, 999],
                                NOW + 1000)  # fmt: skip
    assert kept == 2
    with db.read() as conn:
        found = dict(
            conn.execute(select(files.c.id, files.c.expires_at).where(files.c.id > 100)).all()
        )
    assert found == {101: NOW + 1000, 102: NOW + 10, 103: None, 104: NOW + 10, 105: NOW + 5000,
                     106: NOW + 1000}  # fmt: skip


def test_a_blinded_signer_is_banned_by_a_ban_of_its_linked_session_id(db: Database) -> None:
    session_id, blinded = key("05", 10), key("15", 10)
    with db.write() as conn:
        insert_rows(conn, blinded_ids, [{"session_id": session_id, "blinded_abs": blinded}])
        insert_rows(conn, global_bans, [{"public_key": session_id, "banned_at": 1.0}])
        facts = people.signers_facts(conn, [people.Signer(blinded, blinded, [blinded])], NOW)
    assert facts == {blinded: people.SignerFacts([session_id], None, True)}


def test_many_rooms_messages_after_are_each_rooms_page_read_alone(db: Database) -> None:
    """The v2 poll reader's one statement for a batch's pages on PostgreSQL."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL's LATERAL statement")
    pages = [(ROOM, 0, 10), (ROOM, 2, 1), ("Quiet", 0, 10), ("nowhere", 0, 5), (ROOM, 99, 10)]
    with db.read() as conn:
        together = conn.execute(
            paging.MANY_MESSAGES_AFTER,
            {"room_ids": [room for room, _, _ in pages], "afters": [a for _, a, _ in pages],
             "limits": [limit for _, _, limit in pages]},
        ).all()  # fmt: skip
        alone = [
            conn.execute(paging.MESSAGES_AFTER, {"room_id": room, "after": a, "limit": limit}).all()
            for room, a, limit in pages
        ]
    assert [tuple(row[1:]) for row in together] == [tuple(row) for page in alone for row in page]
    assert [row[0] for row in together] == [n for n, page in enumerate(alone, 1) for _ in page]
    assert any(alone[0]) and len(alone[1]) == 1  # (the rows hold pages to compare)


# Statements given a list of keys that may be long (a group's signers or posters), and
# their parameters for 32 of MANY_USERS.
MANY_USERS = [key("05", 0x40)[:-8] + f"{n:08x}" for n in range(1000)]
SOME_USERS = MANY_USERS[::31][:32]
KEYED_LOOKUPS = [
    ("people.signers_facts", {"now": NOW},
     {"session_ids": SOME_USERS, "blinded_abs": SOME_USERS, "keys": SOME_USERS}),
    ("people.touch_users", {"now": NOW}, {"session_ids": SOME_USERS}),
    ("postwriter.first_seen", {}, {"keys": SOME_USERS}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "params", "lists"), KEYED_LOOKUPS, ids=lambda v: str(v)[:24])
def test_a_long_list_of_keys_is_looked_up_in_the_index_among_a_thousand_users(
    db: Database, name: str, params: dict[str, Any], lists: dict[str, list[str]]
) -> None:
    """Statements that take a group's signers or posters find their rows through the
    tables' indexes, not by comparing every user with every key. Given a long ``IN``
    list, PostgreSQL's planner scans a table of a few thousand rows (in the generic
    plan a prepared statement runs), so there the lists are unnested and each value
    looked up alone (driversql.rows_with_key_in); SQLite looks an ``IN`` list up."""
    statement = HotStatement.made[name]
    sql, values = statement.bound("sqlite" if db.is_sqlite else "postgresql", params, **lists)
    with _among_many_users(db) as conn:
        conn.exec_driver_sql("ANALYZE users")
        plan = _plan(db, conn, sql, values)
    assert "users" in plan
    assert "Seq Scan on users" not in plan and "SCAN users" not in plan, plan


def test_a_groups_signers_are_found_among_a_thousand_users(db: Database) -> None:
    signers = [people.Signer(sid, None, [sid]) for sid in SOME_USERS]
    with _among_many_users(db) as conn:
        found = people.signers_facts(conn, [*signers, signers[0]], NOW)
    assert found == {s.session_id: people.SignerFacts([], 2.0, False) for s in signers}


@contextlib.contextmanager
def _among_many_users(db: Database) -> Iterator[Connection]:
    """A write transaction in which MANY_USERS were seen, rolled back at its end."""
    with contextlib.suppress(RolledBack), db.write() as conn:
        seen = [{"session_id": s, "first_seen": 1.0, "last_seen": 2.0} for s in MANY_USERS]
        insert_rows(conn, users, seen)
        yield conn
        raise RolledBack


def _plan(db: Database, conn: Connection, sql: str, values: Any) -> str:
    """The plan the statement runs with: SQLite's, and PostgreSQL's generic plan (a
    prepared statement's, once it has run five times)."""
    if db.is_sqlite:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", values)
        return " / ".join(str(row[-1]) for row in rows)
    from psycopg import sql as psql

    driver: Any = conn.connection.driver_connection
    driver.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    driver.execute(f"PREPARE planned AS {sql}")
    args = psql.SQL(", ").join(psql.Literal(value) for value in values).as_string(driver)
    return "\n".join(row[0] for row in driver.execute(f"EXPLAIN EXECUTE planned({args})"))
