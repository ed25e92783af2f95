"""`opengroup import-pysogs`: a pysogs server taken over with its key, history and people.

The pysogs server is built by tests/harness/pysogsdata.py from pysogs' own schema file,
written the way pysogs writes (its triggers number the seqnos). It is imported
with the CLI, our real server is started on the result, and what clients see
is checked over HTTP and onion requests against what pysogs would answer for
the same rows: that rule is written once, in ``pysogs_message``. The target is
the run's backend (--backend); one test reads a PostgreSQL pysogs database.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from typing import Any

import psycopg
import pytest
from harness import probe
from harness.communityclient import BlindedIdentity, CommunityClient, sogs_headers
from harness.expect import expect_cli_refused
from harness.pysogsdata import PysogsData, build_pysogs, pysogs_padded
from harness.server import REPO_ROOT, Backend, ServerProcess, free_port, run_cli, server_env
from harness.v2client import Identity

SERVER_ENV = {"OPENGROUP_DELETIONS_FORMAT": "objects"}
LOBBY = "lobby"
DEV = "Dev-Talk"
REACTORS = 4
LOBBY_COUNTS = (
    "room lobby (The Lobby, new room): imported messages=6 deleted=1 whispers=2 "
    "reactions=3 pins=1 moderators=4 bans=2 overrides=1 future_permissions=1 files=2 "
    "room_image=1 activity=2"
)
THUMBS = "\U0001f44d"
PARTY = "\U0001f389"


# --------------------------------------------------------------------------- pysogs' answers


def pysogs_message(
    row: dict[str, Any],
    reactions: list[tuple[int, str, str, float]],
    viewer: str | None,
    since: int = 0,
) -> dict[str, Any]:
    """The message object pysogs serves for a row of its ``messages`` (model/room.py
    get_messages_for and get_reactions): data padded back to ``data_size``, a deleted
    one as ``data: null, deleted: true``, a change of reactions only (after ``since``)
    as ``{id, seqno, reactions}``, reactions indexed in the order pysogs made them,
    first reactors by time, ``you`` for the viewer's own."""
    summary = reaction_summary(row["id"], reactions, viewer)
    if since and row["seqno_reactions"] > since >= row["seqno_data"]:
        return {"id": row["id"], "seqno": row["seqno"], "reactions": summary}
    out: dict[str, Any] = {
        "id": row["id"],
        "session_id": row["session_id"],
        "posted": row["posted"],
        "seqno": row["seqno"],
    }
    if row["edited"] is not None:
        out["edited"] = row["edited"]
    if row["data"] is None:
        out["data"] = None
        out["deleted"] = True
        return out
    out["data"] = base64.b64encode(pysogs_padded(bytes(row["data"]), row["data_size"])).decode()
    out["signature"] = base64.b64encode(bytes(row["signature"])).decode()
    if row["whisper_to"] is not None or row["whisper_mods"]:
        out["whisper"] = True
        out["whisper_mods"] = bool(row["whisper_mods"])
        if row["whisper_to"] is not None:
            out["whisper_to"] = row["whisper_to"]
    out["reactions"] = summary
    return out


def reaction_summary(
    message: int, reactions: list[tuple[int, str, str, float]], viewer: str | None
) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for message_id, reaction, who, _at in reactions:
        if message_id != message:
            continue
        entry = summary.setdefault(reaction, {"index": len(summary), "count": 0, "reactors": []})
        entry["count"] += 1
        if len(entry["reactors"]) < REACTORS:
            entry["reactors"].append(who)
        if who == viewer:
            entry["you"] = True
    return summary


def pysogs_sees(row: dict[str, Any], viewer: str | None, moderator: bool) -> bool:
    """pysogs' whisper rule (get_messages_for); filtered posts are shown to no one."""
    if row["filtered"]:
        return False
    if moderator:
        return bool(
            row["whisper_mods"]
            or row["whisper_to"] == viewer
            or row["session_id"] == viewer
            or row["whisper_to"] is None
        )
    public = row["whisper_to"] is None and not row["whisper_mods"]
    return public or (viewer is not None and row["whisper_to"] == viewer)


def pysogs_since(
    data: PysogsData, room: str, since: int, viewer: str | None, moderator: bool
) -> list[dict[str, Any]]:
    """GET /room/:t/messages/since/:seqno as pysogs answers it."""
    reactions = data.reaction_rows()
    rows = [
        r
        for r in data.message_rows()
        if r["room"] == room
        and r["seqno"] > since
        and pysogs_sees(r, viewer, moderator)
        and not (r["data"] is None and r["seqno_creation"] > since)
    ]
    ordered = sorted(rows, key=lambda r: r["seqno"])
    return [pysogs_message(r, reactions, viewer, since) for r in ordered]


# --------------------------------------------------------------------------- helpers


def import_pysogs(
    data_dir: Path, database_url: str | None, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return run_cli(data_dir, database_url, "import-pysogs", *args, check=check)


def our_value(data_dir: Path, database_url: str | None, sql: str) -> Any:
    """One value of our database."""
    return probe.value(probe.DatabaseAt(data_dir, database_url), sql)


def our_tables(data_dir: Path, database_url: str | None) -> probe.Tables:
    """Every row of our database."""
    return probe.dump_tables(probe.DatabaseAt(data_dir, database_url))


def since(community: CommunityClient, room: str, seqno: int, who: BlindedIdentity) -> Any:
    answer = community.get(
        f"/room/{room}/messages/since/{seqno}?reactors={REACTORS}&t=r", identity=who
    )
    assert answer.status == 200, answer
    return answer.body


# --------------------------------------------------------------------------- the imported server


@pytest.fixture(scope="module")
def pysogs(tmp_path_factory: pytest.TempPathFactory) -> PysogsData:
    return build_pysogs(tmp_path_factory.mktemp("pysogs") / "sogs")


@pytest.fixture(scope="module")
def imported(
    pysogs: PysogsData, tmp_path_factory: pytest.TempPathFactory, database_url: str | None
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    data_dir = tmp_path_factory.mktemp("imported") / "data"
    return data_dir, import_pysogs(data_dir, database_url, str(pysogs.path))


@pytest.fixture(scope="module")
def server(
    imported: tuple[Path, subprocess.CompletedProcess[str]], database_url: str | None
) -> Iterator[ServerProcess]:
    """Our server on the imported data (overrides conftest's)."""
    proc = ServerProcess(imported[0], database_url=database_url, env=SERVER_ENV)
    proc.start()
    yield proc
    proc.stop()


def test_the_server_keeps_pysogs_key(server: ServerProcess, pysogs: PysogsData) -> None:
    assert server.public_key == pysogs.public_key
    assert (server.data_dir / "x25519_private_key.pem").stat().st_mode & 0o077 == 0
    assert f"public_key={pysogs.public_key.hex()}" in server.cli("url").stdout


def test_the_summary_counts_what_was_imported_and_prints_the_settings(
    imported: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out = imported[1].stdout
    assert (
        "server: imported users=13 global_moderators=2 global_bans=1 blinded_links=1 "
        "direct_messages=1 nonces=1" in out
    )
    assert LOBBY_COUNTS in out
    assert 'public_url = "https://sogs.example.org"' in out
    assert "max_upload_bytes = 5000000" in out
    assert "file_ttl_seconds = 1728000" in out
    assert "[messages] profanity_filter = yes: no equivalent here" in out
    assert "1 filtered message(s)" in imported[1].stderr


@pytest.mark.parametrize("room", [LOBBY, DEV])
@pytest.mark.parametrize("viewer", ["alice", "mod", "room_admin", "global_admin"])
def test_every_room_reads_as_pysogs_served_it(
    community: CommunityClient, pysogs: PysogsData, room: str, viewer: str
) -> None:
    who = pysogs.people[viewer]
    moderator = viewer != "alice"
    expected = pysogs_since(pysogs, room, 0, pysogs.blinded(viewer), moderator)
    assert since(community, room, 0, who) == expected
    assert expected  # the fixture is not empty


def test_a_deletion_reads_as_pysogs_tombstone(
    community: CommunityClient, pysogs: PysogsData
) -> None:
    deleted = next(r for r in pysogs.message_rows() if r["data"] is None)
    cursor = deleted["seqno_creation"]
    expected = pysogs_since(pysogs, LOBBY, cursor, pysogs.blinded("alice"), False)
    got = since(community, LOBBY, cursor, pysogs.people["alice"])
    assert got == expected
    assert {"id": deleted["id"], "data": None, "deleted": True}.items() <= got[-1].items()


def test_rooms_keep_tokens_counters_pins_image_and_staff(
    community: CommunityClient, pysogs: PysogsData
) -> None:
    lobby = pysogs.room_row(LOBBY)
    answer = community.get(f"/room/{LOBBY}", identity=pysogs.people["mod"])
    assert answer.status == 200
    body = answer.body
    assert body["token"] == LOBBY and body["name"] == "The Lobby"
    assert body["description"] == "Say hello"
    assert body["message_sequence"] == lobby["message_sequence"]
    assert body["info_updates"] == lobby["info_updates"]
    assert body["created"] == lobby["created"]
    assert body["image_id"] == pysogs.image_id
    assert [p["id"] for p in body["pinned_messages"]] == [1]
    assert body["pinned_messages"][0]["pinned_by"] == pysogs.blinded("room_admin")
    # pysogs lists a moderator named by Session id under that id until they sign in.
    visible = [pysogs.blinded("mod"), pysogs.blinded("global_mod")]
    assert body["moderators"] == sorted([*visible, pysogs.people["pending_mod"].session_id])
    assert body["admins"] == [pysogs.blinded("room_admin")]
    assert pysogs.blinded("hidden_mod") in body["hidden_moderators"]
    assert pysogs.blinded("global_admin") in body["hidden_admins"]
    assert body["moderator"] is True
    dev = community.get(f"/room/{DEV}", identity=pysogs.people["alice"])
    assert dev.status == 200
    assert dev.body["token"] == DEV
    assert (dev.body["read"], dev.body["write"]) == (True, False)  # pysogs' room default


def test_permissions_bans_and_schedules_carry_over(
    community: CommunityClient, pysogs: PysogsData
) -> None:
    people = pysogs.people
    assert community.get(f"/room/{LOBBY}", identity=people["troll"]).status == 403
    assert community.get(f"/room/{LOBBY}", identity=people["timed"]).status == 403
    assert community.get(f"/room/{LOBBY}", identity=people["global_banned"]).status == 403
    muted = community.get(f"/room/{LOBBY}", identity=people["muted"])
    assert muted.status == 200 and muted.body["write"] is False
    perms = community.get(f"/room/{LOBBY}/permissions", identity=people["mod"])
    assert perms.status == 200
    assert perms.body[pysogs.blinded("muted")]["write"] is False
    futures = community.get(f"/room/{LOBBY}/futurePermissions", identity=people["mod"])
    assert futures.status == 200
    assert [f["write"] for f in futures.body if f["session_id"] == pysogs.blinded("muted")] == [
        True
    ]


def test_bans_keep_the_end_pysogs_scheduled(server: ServerProcess, pysogs: PysogsData) -> None:
    """pysogs ends a ban with a scheduled unban (user_ban_futures); here it is the ban's
    expiry. A ban with none stays until lifted."""
    futures = pysogs.ban_futures()
    lines = {
        tuple(line.split("\t")[:2]): line.split("\t")[2]
        for line in server.cli("bans", "list").stdout.splitlines()
    }

    def until(at: float) -> str:
        return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")

    assert lines[(LOBBY, pysogs.blinded("troll"))] == "permanent"
    assert lines[(LOBBY, pysogs.blinded("timed"))] == until(futures[(LOBBY, "timed")])
    assert lines[("(global)", pysogs.blinded("global_banned"))] == until(
        futures[(None, "global_banned")]
    )


def test_a_05_moderator_becomes_moderator_when_their_blinded_id_signs(
    community: CommunityClient, pysogs: PysogsData
) -> None:
    answer = community.get(f"/room/{LOBBY}", identity=pysogs.people["pending_mod"])
    assert answer.status == 200
    assert answer.body["moderator"] is True


def test_a_user_who_signed_in_before_is_recognised(
    community: CommunityClient, pysogs: PysogsData
) -> None:
    """Blinded ids pysogs knew stay theirs: alice's reactions are hers, the moderator
    pysogs knew by blinded id is moderator, both signing in as their clients do."""
    got = since(community, LOBBY, 0, pysogs.people["alice"])
    first = next(m for m in got if m["id"] == 1)
    assert first["reactions"][THUMBS]["you"] is True
    answer = community.get(f"/room/{LOBBY}", identity=pysogs.people["mod"])
    assert answer.status == 200 and answer.body["moderator"] is True


def test_files_and_the_room_image_keep_their_ids_and_bytes(
    community: CommunityClient, pysogs: PysogsData
) -> None:
    alice = pysogs.people["alice"]
    reader = pysogs.reader()
    try:
        rows = reader.x("SELECT id, filename, expiry FROM files")
        named = {int(r[0]): (r[1], r[2]) for r in rows}
    finally:
        reader.close()
    for file_id, content in pysogs.files.items():
        room = DEV if file_id == 201 else LOBBY
        answer = community.get(f"/room/{room}/file/{file_id}", identity=alice)
        assert answer.status == 200, file_id
        assert answer.raw_body == content
        filename, expiry = named[file_id]
        assert answer.headers["content-disposition"].endswith(f"filename*=UTF-8''{filename}")
        if expiry is None:  # the room image
            assert "expires" not in answer.headers
        else:
            assert answer.headers["expires"] == formatdate(expiry, usegmt=True)
    for file_id in pysogs.expired_files:
        assert community.get(f"/room/{LOBBY}/file/{file_id}", identity=alice).status == 404


def test_unexpired_direct_messages_keep_their_ids(
    community: CommunityClient, pysogs: PysogsData
) -> None:
    answer = community.get("/inbox", identity=pysogs.people["bob"])
    assert answer.status == 200
    assert [m["id"] for m in answer.body] == [pysogs.live_dm]
    assert base64.b64decode(answer.body[0]["message"]) == b"\x00sealed message request"
    assert answer.body[0]["sender"] == pysogs.blinded("alice")


def test_new_direct_messages_take_ids_after_pysogs_ones(
    setup_community: CommunityClient, pysogs: PysogsData
) -> None:
    """Clients page their inbox by id: a new message must come after the imported ones."""
    sent = setup_community.post(
        f"/inbox/{pysogs.blinded('bob')}",
        {"message": base64.b64encode(b"\x00after the move").decode()},
        identity=pysogs.people["alice"],
    )
    assert sent.status == 201
    assert sent.body["id"] > pysogs.live_dm
    later = setup_community.get(f"/inbox/since/{pysogs.live_dm}", identity=pysogs.people["bob"])
    assert [m["id"] for m in later.body] == [sent.body["id"]]


def test_a_nonce_pysogs_saw_cannot_be_replayed(
    community: CommunityClient, pysogs: PysogsData
) -> None:
    alice = pysogs.people["alice"]
    path = f"/room/{LOBBY}"
    replay = sogs_headers(alice, pysogs.public_key, "GET", path, b"", nonce=pysogs.live_nonce)
    assert community.get(path, headers=replay).status == 425
    fresh = sogs_headers(alice, pysogs.public_key, "GET", path, b"", nonce=os.urandom(16))
    assert community.get(path, headers=fresh).status == 200


def test_the_v2_view_is_what_pysogs_v2_served(server: ServerProcess, pysogs: PysogsData) -> None:
    rows = [r for r in pysogs.message_rows() if r["room"] == LOBBY]
    with server.client("http") as client:
        token = client.authenticate(Identity.generate(), LOBBY)
        got = client.request("GET", "messages", room=LOBBY, token=token)
        deletions = client.request("GET", "deleted_messages", room=LOBBY, token=token)
    assert got["status_code"] == 200
    expected = [
        {
            "server_id": r["id"],
            "public_key": r["session_id"],
            "timestamp": int(r["posted"] * 1000),
            "data": base64.b64encode(pysogs_padded(bytes(r["data"]), r["data_size"])).decode(),
            "signature": base64.b64encode(bytes(r["signature"])).decode(),
        }
        for r in rows
        if r["data"] is not None and pysogs_sees(r, None, False)
    ]
    assert sorted(got["messages"], key=lambda m: m["server_id"]) == expected
    assert deletions["ids"] == [
        {"id": r["seqno"], "deleted_message_id": r["id"]} for r in rows if r["data"] is None
    ]


# --------------------------------------------------------------------------- runs and refusals


def test_a_second_import_changes_nothing(
    pysogs: PysogsData, tmp_path: Path, fresh_database_url: str | None
) -> None:
    data_dir = tmp_path / "data"
    import_pysogs(data_dir, fresh_database_url, str(pysogs.path))
    before = our_tables(data_dir, fresh_database_url)
    again = import_pysogs(data_dir, fresh_database_url, str(pysogs.path))
    assert our_tables(data_dir, fresh_database_url) == before
    assert "total: imported messages=0 deleted=0 whispers=0 reactions=0 pins=0" in again.stdout
    assert "server: imported users=0" in again.stdout
    checked = import_pysogs(data_dir, fresh_database_url, str(pysogs.path), "--dry-run")
    assert "total: would import messages=0 deleted=0" in checked.stdout
    assert our_tables(data_dir, fresh_database_url) == before


def imported_copy(
    pysogs: PysogsData, tmp_path: Path, database_url: str | None
) -> tuple[Path, Path]:
    """A copy of the pysogs data dir to change before a rerun, imported once: (the copy,
    our data dir)."""
    source, data_dir = tmp_path / "sogs", tmp_path / "data"
    shutil.copytree(pysogs.path, source)
    import_pysogs(data_dir, database_url, str(source))
    return source, data_dir


def test_a_rerun_imports_what_pysogs_added_since(
    pysogs: PysogsData, tmp_path: Path, fresh_database_url: str | None
) -> None:
    source, data_dir = imported_copy(pysogs, tmp_path, fresh_database_url)
    conn = sqlite3.connect(source / "sogs.db", isolation_level=None)
    room = conn.execute("SELECT id FROM rooms WHERE token = 'lobby'").fetchone()[0]
    conn.execute(
        'INSERT INTO messages (room, "user", data, data_size, signature) '
        "VALUES (?, (SELECT MIN(id) FROM users), ?, 40, ?)",
        (room, b"one more", b"s" * 64),
    )
    new_id, seqno = conn.execute("SELECT id, seqno FROM messages ORDER BY id DESC").fetchone()
    newcomer = BlindedIdentity.generate().blinded_id(pysogs.public_key)
    conn.execute("INSERT INTO users (session_id) VALUES (?)", (newcomer,))
    conn.execute(
        'INSERT INTO user_permission_overrides (room, "user", moderator) '
        "VALUES (?, (SELECT id FROM users WHERE session_id = ?), TRUE)",
        (room, newcomer),
    )
    conn.close()
    info = "SELECT info_updates FROM rooms WHERE id = 'lobby'"
    info_before = our_value(data_dir, fresh_database_url, info)
    again = import_pysogs(data_dir, fresh_database_url, str(source))
    assert "room lobby (The Lobby, existing room): imported messages=1 deleted=0" in again.stdout
    assert "pins=0 moderators=1 bans=0" in again.stdout
    # A new moderator is a change of the room's details, which servers keep by info_updates.
    assert our_value(data_dir, fresh_database_url, info) > info_before
    ours = [r for r in our_tables(data_dir, fresh_database_url)["messages"] if r[0] == LOBBY]
    assert max(r[1] for r in ours) == new_id
    assert base64.b64decode(next(r for r in ours if r[1] == new_id)[4]) == pysogs_padded(
        b"one more", 40
    )
    # The room's seqno followed pysogs' message_sequence.
    room_seqno = "SELECT seqno FROM rooms WHERE id = 'lobby'"
    assert our_value(data_dir, fresh_database_url, room_seqno) == seqno


def test_a_rerun_into_a_running_server_shows_the_reactions_added_to_messages_it_had(
    pysogs: PysogsData, tmp_path: Path, fresh_database_url: str | None
) -> None:
    source, data_dir = imported_copy(pysogs, tmp_path, fresh_database_url)
    proc = ServerProcess(data_dir, database_url=fresh_database_url, env=SERVER_ENV)
    proc.start()
    try:
        alice = pysogs.people["alice"]
        with CommunityClient(proc.base_url, proc.public_key, "http") as community:
            before = since(community, LOBBY, 0, alice)  # (the server keeps these reactors)
            [first] = [m for m in before if m["id"] == 1]
            seqno = our_value(
                data_dir, fresh_database_url, "SELECT seqno FROM rooms WHERE id = 'lobby'"
            )
            conn = sqlite3.connect(source / "sogs.db", isolation_level=None)
            conn.execute(
                'INSERT INTO message_reactions (message, reaction, "user") '
                "VALUES (1, ?, (SELECT MIN(id) FROM users))",
                (PARTY,),
            )
            conn.close()
            import_pysogs(data_dir, fresh_database_url, str(source))
            after = since(community, LOBBY, seqno, alice)
    finally:
        proc.stop()
    [moved] = [m for m in after if m["id"] == 1]
    assert moved["seqno"] > seqno
    assert PARTY not in first["reactions"] and moved["reactions"][PARTY]["count"] == 1
    assert moved["reactions"][THUMBS] == first["reactions"][THUMBS]


def test_a_room_of_ours_with_other_messages_under_the_same_ids_is_left_alone(
    pysogs: PysogsData, tmp_path: Path, fresh_database_url: str | None
) -> None:
    data_dir = tmp_path / "data"
    import_pysogs(data_dir, fresh_database_url, str(pysogs.path))
    before = our_tables(data_dir, fresh_database_url)
    other = tmp_path / "other"
    shutil.copytree(pysogs.path, other)
    conn = sqlite3.connect(other / "sogs.db", isolation_level=None)
    conn.execute("UPDATE messages SET posted = posted - 1000 WHERE id = 1")
    conn.close()
    result = import_pysogs(data_dir, fresh_database_url, str(other))
    assert "room lobby: skipped" in result.stdout
    assert "holds other messages under the same ids (e.g. 1)" in result.stderr
    assert "room Dev-Talk (Developers, existing room): imported messages=0" in result.stdout
    assert our_tables(data_dir, fresh_database_url)["messages"] == before["messages"]


def test_a_dry_run_writes_nothing(
    pysogs: PysogsData, tmp_path: Path, fresh_database_url: str | None
) -> None:
    data_dir = tmp_path / "data"
    result = import_pysogs(data_dir, fresh_database_url, str(pysogs.path), "--dry-run")
    assert "room lobby (The Lobby, no database yet): would import messages=6" in result.stdout
    assert not data_dir.exists()
    assert our_tables(data_dir, fresh_database_url) == {}


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]], ids=["import", "dry-run"])
def test_a_database_of_ours_that_does_not_answer_stops_the_import_with_its_reason(
    pysogs: PysogsData, tmp_path: Path, dry_run: list[str]
) -> None:
    silent = f"postgresql://og:hunter2@127.0.0.1:{free_port()}/og"
    result = import_pysogs(tmp_path / "data", silent, str(pysogs.path), *dry_run, check=False)
    expect_cli_refused(result, "cannot open the database postgresql://og:***@127.0.0.1")
    assert "hunter2" not in result.stdout + result.stderr


def test_a_different_key_of_ours_is_refused(
    pysogs: PysogsData, tmp_path: Path, fresh_database_url: str | None
) -> None:
    data_dir = tmp_path / "data"
    run_cli(data_dir, fresh_database_url, "url")  # makes our own key pair and database
    before = our_tables(data_dir, fresh_database_url)
    result = import_pysogs(data_dir, fresh_database_url, str(pysogs.path), check=False)
    assert result.returncode != 0
    assert "holds a different key pair" in result.stderr
    assert "Traceback" not in result.stderr
    assert our_tables(data_dir, fresh_database_url) == before


def test_an_older_pysogs_schema_is_refused(pysogs: PysogsData, tmp_path: Path) -> None:
    """pysogs before its user_perm_futures migration: no user_ban_futures table (the
    current schema less what that migration adds). Nothing is written, not even keys."""
    old = tmp_path / "old"
    shutil.copytree(pysogs.path, old)
    conn = sqlite3.connect(old / "sogs.db")
    conn.execute("DROP TABLE user_ban_futures")
    conn.commit()
    conn.close()
    data_dir = tmp_path / "data"
    result = import_pysogs(data_dir, None, str(old), check=False)
    assert result.returncode != 0
    assert "older schema" in result.stderr and "table user_ban_futures" in result.stderr
    assert "Start pysogs" in result.stderr and "Traceback" not in result.stderr
    assert not data_dir.exists()


def test_a_database_that_is_not_pysogs_is_refused(pysogs: PysogsData, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "key_x25519").write_bytes((pysogs.path / "key_x25519").read_bytes())
    conn = sqlite3.connect(other / "sogs.db")
    conn.execute("CREATE TABLE main (id TEXT PRIMARY KEY, name TEXT)")  # the Rust server's
    conn.close()
    data_dir = tmp_path / "data"
    result = import_pysogs(data_dir, None, str(other), check=False)
    assert result.returncode != 0 and "not one of pysogs" in result.stderr
    assert "import-legacy" in result.stderr and "Traceback" not in result.stderr
    assert not data_dir.exists()


def with_big_room(pysogs: PysogsData, path: Path, messages: int) -> Path:
    """A copy of the pysogs data dir with one more room of many posts (pysogs' triggers
    number them), so an import can be stopped in the middle of a room."""
    shutil.copytree(pysogs.path, path)
    conn = sqlite3.connect(path / "sogs.db", isolation_level=None)
    conn.execute("INSERT INTO rooms (token, name) VALUES ('big', 'Big Room')")
    room = conn.execute("SELECT id FROM rooms WHERE token = 'big'").fetchone()[0]
    user = conn.execute("SELECT MIN(id) FROM users").fetchone()[0]
    conn.execute("BEGIN")
    conn.executemany(
        'INSERT INTO messages (room, "user", data, data_size, signature) VALUES (?, ?, ?, ?, ?)',
        [(room, user, os.urandom(40), 160, os.urandom(64)) for _ in range(messages)],
    )
    conn.execute("COMMIT")
    conn.close()
    return path


def count_messages(data_dir: Path, database_url: str | None, room: str) -> int:
    return sum(
        1 for row in our_tables(data_dir, database_url).get("messages", []) if row[0] == room
    )


def test_a_killed_import_leaves_a_usable_database_and_the_next_run_completes_it(
    pysogs: PysogsData, tmp_path: Path, fresh_database_url: str | None, backend: Backend
) -> None:
    source = with_big_room(pysogs, tmp_path / "sogs", 40_000)
    data_dir = tmp_path / "data"
    cmd = [sys.executable, "-m", "opengroup", "import-pysogs", str(source)]
    cmd += ["--data-dir", str(data_dir)]
    if fresh_database_url:
        cmd += ["--database-url", fresh_database_url]
    with subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=server_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    ) as proc:  # fmt: skip
        assert proc.stderr is not None
        seen = b""
        while b"importing big" not in seen:  # lobby and Dev-Talk are in, big under way
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
        time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL, seen.decode()  # killed, not finished
    assert count_messages(data_dir, fresh_database_url, "big") == 0  # the room is all or nothing
    # Usable: the server starts on it and serves the rooms that were committed.
    with (
        ServerProcess(data_dir, database_url=fresh_database_url).start() as srv,
        CommunityClient(srv.base_url, srv.public_key, "http") as c,
    ):
        got = since(c, LOBBY, 0, pysogs.people["alice"])
        assert got == pysogs_since(pysogs, LOBBY, 0, pysogs.blinded("alice"), False)
    again = import_pysogs(data_dir, fresh_database_url, str(source))
    assert "room big (Big Room, new room): imported messages=40000" in again.stdout
    assert "room lobby (The Lobby, existing room): imported messages=0" in again.stdout
    complete = our_tables(data_dir, fresh_database_url)
    reference_dir = tmp_path / "reference"
    reference_url = backend.new_database_url()
    try:
        import_pysogs(reference_dir, reference_url, str(source))
        reference = our_tables(reference_dir, reference_url)
    finally:
        backend.drop_database(reference_url)
    for table in ("messages", "deletions", "reactions", "pins", "files", "direct_messages"):
        assert complete[table] == reference[table], table


def test_a_postgresql_pysogs_database_imports_with_db_key_and_uploads(
    tmp_path: Path, backend: Backend, fresh_database_url: str | None
) -> None:
    try:
        source_url = Backend("postgresql", backend.admin_url).new_database_url()
    except psycopg.Error as exc:
        if backend.name == "postgresql":
            raise
        pytest.skip(f"no PostgreSQL for the pysogs source database: {exc}")
    assert source_url is not None
    try:
        data = build_pysogs(tmp_path / "pgsogs", pg_url=source_url)
        data_dir = tmp_path / "data"
        args = ["--db", source_url, "--key", str(data.path / "key_x25519")]
        args += ["--uploads", str(data.path / "uploads")]
        result = import_pysogs(data_dir, fresh_database_url, *args)
        assert LOBBY_COUNTS in result.stdout
        with ServerProcess(data_dir, database_url=fresh_database_url).start() as srv:
            assert srv.public_key == data.public_key
            with CommunityClient(srv.base_url, srv.public_key, "http") as c:
                for viewer, moderator in (("alice", False), ("mod", True)):
                    got = since(c, LOBBY, 0, data.people[viewer])
                    assert got == pysogs_since(data, LOBBY, 0, data.blinded(viewer), moderator)
    finally:
        with psycopg.connect(backend.admin_url, autocommit=True) as pg:
            name = source_url.rsplit("/", 1)[1]
            pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
