"""Schema migrations: the tables the code expects are the tables the migrations build,
and a database made by an older version opens in this one with its data intact."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from harness.server import ServerProcess
from harness.v2client import Identity

from opengroup.storage import migrate
from opengroup.storage.database import Database
from opengroup.storage.schema import metadata


def _database(tmp_path: Path, database_url: str | None) -> Database:
    if database_url is None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        return Database(f"sqlite:///{tmp_path / 'opengroup.db'}")
    return Database(database_url)


def _upgraded(tmp_path: Path, database_url: str | None, revision: str = "head") -> Database:
    """A fresh database of the test, brought to ``revision``."""
    db = _database(tmp_path / "data", database_url)
    migrate.upgrade(db, revision)
    return db


def _schema_differences(db: Database) -> list[object]:
    """What Alembic finds between the database's tables and those the code uses."""
    with db.engine.connect() as conn:
        differences: list[object] = compare_metadata(MigrationContext.configure(conn), metadata)
    return differences


def test_migrations_build_exactly_the_tables_the_code_uses(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    db = _upgraded(tmp_path, fresh_database_url)
    differences = _schema_differences(db)
    db.dispose()
    assert differences == []


def test_upgrade_is_a_no_op_at_the_newest_revision(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    db = _upgraded(tmp_path, fresh_database_url)
    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()
    with db.engine.connect() as conn:
        rooms = conn.execute(sa.text("SELECT id FROM rooms")).scalars().all()
    db.dispose()
    assert rooms == ["main"], "the default room is created once, by the first migration"


def test_a_database_of_the_first_version_opens_with_its_data(
    tmp_path: Path,
    fresh_database_url: str | None,
    server_factory: Callable[..., ServerProcess],
) -> None:
    data_dir = tmp_path / "data"
    db = _database(data_dir, fresh_database_url)
    migrate.upgrade(db, "0001")
    assert migrate.current_revision(db) == "0001"
    alice = Identity.generate()
    token = secrets.token_bytes(48)
    data = b"\x0a\x03old" + b"\x80" + b"\x00" * 150
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE rooms SET message_seq = 7 WHERE id = 'main'"))
        conn.execute(
            sa.text(
                "INSERT INTO messages (room_id, server_id, public_key, timestamp, data,"
                " signature, posted_at, deleted) VALUES ('main', 7, :pk, 1600000000000, :data,"
                " :sig, :now, false)"
            ),
            {
                "pk": alice.session_id,
                "data": base64.b64encode(data).decode(),
                "sig": base64.b64encode(alice.sign(data)).decode(),
                "now": time.time(),
            },
        )
        conn.execute(
            sa.text(
                "INSERT INTO tokens (token_hash, room_id, public_key, expires_at)"
                " VALUES (:h, 'main', :pk, :exp)"
            ),
            {
                "h": hashlib.sha256(token).digest(),
                "pk": alice.session_id,
                "exp": time.time() + 3600,
            },
        )
    db.dispose()

    server = server_factory(data_dir=data_dir, database_url=fresh_database_url)
    with server.client("onion") as client:
        listed = client.request("GET", "messages", room="main", token=token.hex())
        posted = client.post_message(alice, token.hex(), "main")
    assert listed["status_code"] == 200, listed
    assert [m["server_id"] for m in listed["messages"]] == [7]
    assert listed["messages"][0]["timestamp"] == 1600000000000
    assert posted["message"]["server_id"] == 8

    db = _database(data_dir, fresh_database_url)
    assert migrate.current_revision(db) == migrate.head_revision()
    db.dispose()


def test_rooms_and_users_of_0003_follow_the_servers_spam_settings(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    """0004 adds a room's own spam rules (NULL: the server's settings) and when a user
    first spoke (NULL: not recorded, so a user seen before is never new)."""
    db = _upgraded(tmp_path, fresh_database_url, "0003")
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO users (session_id, first_seen, last_seen) VALUES (:s, 1, 2)"),
            {"s": "15" + "ab" * 32},
        )
    migrate.upgrade(db)
    with db.engine.connect() as conn:
        rules = conn.execute(
            sa.text("SELECT slow_mode_seconds, new_poster_wait_seconds FROM rooms")
        ).all()
        spoke = conn.execute(sa.text("SELECT first_spoke, first_seen FROM users")).all()
    db.dispose()
    assert [tuple(row) for row in rules] == [(None, None)]
    assert [tuple(row) for row in spoke] == [(None, 1.0)]


@pytest.mark.parametrize("revision", ["0001", "0002", "0003", "0004", "0005"])
def test_every_revision_upgrades_from_nothing(
    tmp_path: Path, fresh_database_url: str | None, revision: str
) -> None:
    db = _upgraded(tmp_path, fresh_database_url, revision)
    assert migrate.current_revision(db) == revision
    db.dispose()


def test_nonces_stored_before_0006_are_kept_without_their_time(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    """0006 keys nonces by their request's time; those stored before, whose time is
    unknown, move to untimed_nonces (a request carrying one is refused until it
    expires: tests/test_admission.py)."""
    db = _upgraded(tmp_path, fresh_database_url, "0005")
    stored = [(secrets.token_bytes(16), 1_000.0 + n) for n in range(3)]
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO request_nonces (nonce, expires_at) VALUES (:n, :at)"),
            [{"n": nonce, "at": at} for nonce, at in stored],
        )
    migrate.upgrade(db)
    with db.engine.connect() as conn:
        untimed = conn.execute(sa.text("SELECT nonce, expires_at FROM untimed_nonces")).all()
        timed = conn.execute(sa.text("SELECT signed_at, nonce FROM request_nonces")).all()
    db.dispose()
    assert sorted((bytes(n), at) for n, at in untimed) == sorted(stored)
    assert timed == []


# ------------------------------------------------------------------ going back a version

OLDER_REVISIONS = [revision for revision, _ in migrate.revisions()][:-1]


def _stored_message_ids(db: Database) -> list[int]:
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT server_id FROM messages WHERE room_id = 'main'"))
        return [row[0] for row in rows]


@pytest.mark.parametrize("target", OLDER_REVISIONS)
def test_each_older_revision_is_reached_back_and_left_again_with_the_rows_it_holds(
    tmp_path: Path, fresh_database_url: str | None, target: str
) -> None:
    """``opengroup db downgrade``'s work: from the newest schema back to an older one,
    the revisions undone newest first, the messages (a table of every revision) kept;
    then forward again to exactly the tables the code uses."""
    db = _upgraded(tmp_path, fresh_database_url, "0001")
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO messages (room_id, server_id, public_key, timestamp, data,"
                " signature, posted_at, deleted) VALUES ('main', 1, :pk, 1600000000000,"
                " 'ZGF0YQ==', 'c2ln', 1.0, false)"
            ),
            {"pk": "05" + "ab" * 32},
        )
    migrate.upgrade(db)

    undone = migrate.downgrade(db, target)

    later = [revision for revision, _ in migrate.revisions()]
    later = later[later.index(target) + 1 :]
    assert [revision for revision, _ in undone] == later[::-1]
    assert all(description for _, description in undone)
    assert migrate.current_revision(db) == target
    assert _stored_message_ids(db) == [1]
    migrate.upgrade(db)
    differences = _schema_differences(db)
    assert differences == []
    assert _stored_message_ids(db) == [1]
    db.dispose()


def test_nonces_are_kept_across_the_way_back_before_0006_and_forward_again(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    """Back before 0006 a nonce keeps its place in the store of that revision, until
    the time the default window would keep it; forward again, it is refused as one
    whose request's time is unknown (see the test above of 0006)."""
    db = _upgraded(tmp_path, fresh_database_url)
    nonce = secrets.token_bytes(16)
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO request_nonces (signed_at, nonce) VALUES (1000, :n)"),
            {"n": nonce},
        )
    migrate.downgrade(db, "0005")
    with db.engine.connect() as conn:
        back = conn.execute(sa.text("SELECT nonce, expires_at FROM request_nonces")).all()
    migrate.upgrade(db)
    with db.engine.connect() as conn:
        forward = conn.execute(sa.text("SELECT nonce, expires_at FROM untimed_nonces")).all()
    db.dispose()
    assert [(bytes(n), at) for n, at in back] == [(nonce, 1000 + 86401)]
    assert [(bytes(n), at) for n, at in forward] == [(nonce, 1000 + 86401)]


def test_going_back_refuses_what_it_cannot_do_and_changes_nothing(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    db = _upgraded(tmp_path, fresh_database_url, "0003")
    with pytest.raises(migrate.MigrationRefused, match="no schema revision '0999'"):
        migrate.downgrade(db, "0999")
    with pytest.raises(migrate.MigrationRefused, match="older than 0005"):
        migrate.downgrade(db, "0005")
    assert migrate.current_revision(db) == "0003"
    db.dispose()


def test_a_database_a_newer_version_upgraded_is_refused_untouched(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    """Its revision is unknown here: neither upgraded nor taken back, whatever it holds."""
    db = _upgraded(tmp_path, fresh_database_url)
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    for attempt in (lambda: migrate.upgrade(db), lambda: migrate.downgrade(db, "0005")):
        with pytest.raises(migrate.NewerSchema, match=r"revision 0999.*newer version"):
            attempt()
    assert migrate.current_revision(db) == "0999"
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM request_nonces")).scalar() == 0
    db.dispose()
