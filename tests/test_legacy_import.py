"""`opengroup import-legacy PATH`: a reference server's data dir, taken over whole.

A fixture data directory is built here with the reference server's own table
layout (oxen-io/session-open-group-server, src/storage.rs): `database.db`
with the `main` room list, `rooms/<id>.db` per room, `files/<room>_files/<id>`
uploads, `files/<room>` room images and the two PEM key files. It is imported
with the CLI, then the real server is started on the result and checked over
HTTP and onion requests: same key, rooms, server_ids, deletion numbers,
tokens, moderators, bans and files, and numbering that continues after them.
Also: a second run changes nothing, a dry run writes nothing, and a data dir
holding another key pair is refused.

The module's server runs with deletions_format = objects so deletion numbers
(kept from the reference) are visible.
"""

from __future__ import annotations

import base64
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from harness.probe import DatabaseAt, dump_tables
from harness.server import ServerProcess, run_cli
from harness.v2client import Client, Identity, encode_visible_message, pad_message

# The reference server's tables, as src/storage.rs creates them.
MAIN_DDL = "CREATE TABLE IF NOT EXISTS main (id TEXT PRIMARY KEY, name TEXT, image_id TEXT)"
ROOM_DDL = (
    "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, public_key TEXT, "
    "timestamp INTEGER, data TEXT, signature TEXT, is_deleted INTEGER)",
    "CREATE TABLE IF NOT EXISTS deleted_messages (id INTEGER PRIMARY KEY, "
    "deleted_message_id INTEGER)",
    "CREATE TABLE IF NOT EXISTS moderators (public_key TEXT)",
    "CREATE TABLE IF NOT EXISTS block_list (public_key TEXT)",
    "CREATE TABLE IF NOT EXISTS pending_tokens (public_key TEXT, timestamp INTEGER, token BLOB)",
    "CREATE TABLE IF NOT EXISTS tokens (public_key TEXT PRIMARY KEY, timestamp INTEGER, "
    "token TEXT)",
    "CREATE TABLE IF NOT EXISTS files (id TEXT PRIMARY KEY, timestamp INTEGER)",
    "CREATE TABLE IF NOT EXISTS user_activity (public_key TEXT PRIMARY KEY, "
    "last_active INTEGER NOT NULL)",
)
DAY = 24 * 3600
IMAGE_BYTES = b"\x89PNG\r\n\x1a\n the reference room image"


# --------------------------------------------------------------------------- the fixture data dir


@dataclass
class LegacyRoomData:
    """What one reference room holds, and what a client should see after the import."""

    name: str
    live: list[dict[str, Any]] = field(default_factory=list)  # GET /messages, as served
    deletions: list[dict[str, int]] = field(default_factory=list)  # as served (objects)
    tokens: dict[str, str] = field(default_factory=dict)  # who -> hex token
    moderators: list[str] = field(default_factory=list)
    banned: list[str] = field(default_factory=list)
    files: dict[int, bytes] = field(default_factory=dict)  # live uploads: id -> bytes
    gone_files: list[int] = field(default_factory=list)  # expired or missing on disk
    top_message: int = 0
    top_deletion: int = 0


@dataclass
class Reference:
    """The fixture data dir and the facts it holds."""

    path: Path
    public_key: bytes
    people: dict[str, Identity]
    rooms: dict[str, LegacyRoomData]
    pending_token: bytes


class RoomWriter:
    """Fills one rooms/<id>.db the way the reference server did."""

    def __init__(self, ref_dir: Path, room_id: str, data: LegacyRoomData, now: float) -> None:
        self.ref_dir, self.room_id, self.data, self.now = ref_dir, room_id, data, now
        (ref_dir / "rooms").mkdir(exist_ok=True)
        self.db = sqlite3.connect(ref_dir / "rooms" / f"{room_id}.db")
        for ddl in ROOM_DDL:
            self.db.execute(ddl)

    def post(self, server_id: int, who: Identity, text: str) -> None:
        padded = pad_message(encode_visible_message(text))
        timestamp = int(self.now * 1000) - 100_000 + server_id
        data = base64.b64encode(padded).decode()
        signature = base64.b64encode(who.sign(padded)).decode()
        self.db.execute(
            "INSERT INTO messages (id, public_key, timestamp, data, signature, is_deleted) "
            "VALUES (?, ?, ?, ?, ?, 0)",
            (server_id, who.session_id, timestamp, data, signature),
        )
        self.data.live.append(
            {
                "server_id": server_id,
                "public_key": who.session_id,
                "timestamp": timestamp,
                "data": data,
                "signature": signature,
            }
        )
        self.data.top_message = max(self.data.top_message, server_id)

    def delete(self, server_id: int, *deletion_ids: int, blank: bool = True) -> None:
        """Delete like the reference: blanked (newer) or content kept (older versions)."""
        if blank:
            self.db.execute(
                "UPDATE messages SET public_key = 'deleted', timestamp = 0, data = 'deleted', "
                "signature = 'deleted', is_deleted = 1 WHERE id = ?",
                (server_id,),
            )
        else:
            self.db.execute("UPDATE messages SET is_deleted = 1 WHERE id = ?", (server_id,))
        for number in deletion_ids:
            self.db.execute(
                "INSERT INTO deleted_messages (id, deleted_message_id) VALUES (?, ?)",
                (number, server_id),
            )
            self.data.top_deletion = max(self.data.top_deletion, number)
        self.data.live = [m for m in self.data.live if m["server_id"] != server_id]
        self.data.deletions.append({"id": deletion_ids[0], "deleted_message_id": server_id})

    def token(self, who: str, identity: Identity, age: float) -> str:
        token = os.urandom(48).hex()
        self.db.execute(
            "INSERT INTO tokens (public_key, timestamp, token) VALUES (?, ?, ?)",
            (identity.session_id, int(self.now - age), token),
        )
        self.data.tokens[who] = token
        return token

    def moderator(self, identity: Identity) -> None:
        self.db.execute("INSERT INTO moderators (public_key) VALUES (?)", (identity.session_id,))
        self.data.moderators.append(identity.session_id)

    def ban(self, identity: Identity) -> None:
        self.db.execute("INSERT INTO block_list (public_key) VALUES (?)", (identity.session_id,))
        self.data.banned.append(identity.session_id)

    def upload(self, file_id: int, age: float, *, on_disk: bool = True, live: bool = True) -> None:
        self.db.execute(
            "INSERT INTO files (id, timestamp) VALUES (?, ?)", (str(file_id), int(self.now - age))
        )
        content = f"upload {file_id} of {self.room_id}".encode() + os.urandom(8)
        if on_disk:
            folder = self.ref_dir / "files" / f"{self.room_id}_files"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / str(file_id)).write_bytes(content)
        if live and on_disk:
            self.data.files[file_id] = content
        else:
            self.data.gone_files.append(file_id)

    def close(self) -> None:
        self.db.commit()
        self.db.close()


def build_reference_dir(path: Path) -> Reference:
    """A reference data dir: rooms main and dev_talk, plus two the import must skip."""
    now = time.time()
    path.mkdir(parents=True)
    key = X25519PrivateKey.generate()
    (path / "x25519_private_key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (path / "x25519_public_key.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    people = {
        name: Identity.generate()
        for name in ("alice", "bob", "mod", "troll", "stale", "pending", "carol")
    }
    rooms = {"main": LegacyRoomData("Main Hall"), "dev_talk": LegacyRoomData("Developers")}
    main = sqlite3.connect(path / "database.db")
    main.execute(MAIN_DDL)
    main.executemany(
        "INSERT INTO main (id, name) VALUES (?, ?)",
        [("main", "Main Hall"), ("dev_talk", "Developers"), ("Bad-Room", "Bad"), ("ghost", "G")],
    )
    main.commit()
    main.close()

    room = RoomWriter(path, "main", rooms["main"], now)
    for server_id, who in enumerate(("alice", "bob", "bob", "alice", "bob", "mod"), start=1):
        room.post(server_id, people[who], f"message {server_id} from {who}")
    room.delete(3, 1, 2)  # the reference could record one deletion twice
    room.delete(5, 3, blank=False)
    room.moderator(people["mod"])
    room.ban(people["troll"])
    room.token("alice", people["alice"], age=3600)
    room.token("mod", people["mod"], age=60)
    room.token("troll", people["troll"], age=60)
    room.token("stale", people["stale"], age=8 * DAY)
    pending = os.urandom(48)
    room.db.execute(
        "INSERT INTO pending_tokens (public_key, timestamp, token) VALUES (?, ?, ?)",
        (people["pending"].session_id, int(now - 30), pending),
    )
    room.db.execute(
        "INSERT INTO user_activity (public_key, last_active) VALUES (?, ?)",
        (people["alice"].session_id, int(now)),
    )
    room.upload(1_234_567, age=3600)
    room.upload(2**52 + 12_345, age=14 * DAY)
    room.upload(777, age=16 * DAY, live=False)  # expired: 15 days
    room.upload(888, age=60, on_disk=False)  # its file is gone
    room.close()
    (path / "files" / "main").write_bytes(IMAGE_BYTES)

    room = RoomWriter(path, "dev_talk", rooms["dev_talk"], now)
    for server_id in (1, 2, 3):
        room.post(server_id, people["carol"], f"dev {server_id}")
    room.delete(2, 1)
    room.token("carol", people["carol"], age=10)
    room.moderator(people["carol"])
    room.close()

    # Listed, with a database, but an id Session desktop would not accept.
    RoomWriter(path, "Bad-Room", LegacyRoomData("Bad"), now).close()
    return Reference(path, key.public_key().public_bytes_raw(), people, rooms, pending)


# --------------------------------------------------------------------------- helpers


def import_legacy(
    data_dir: Path, database_url: str | None, ref: Path, *extra: str, check: bool = True
) -> Any:
    """Run `opengroup import-legacy REF [extra] --data-dir D [--database-url U]`."""
    return run_cli(data_dir, database_url, "import-legacy", str(ref), *extra, check=check)


def reported_counts(stdout: str) -> dict[str, dict[str, int]]:
    """{room or "total": {item: count}} from the command's report lines."""
    counts: dict[str, dict[str, int]] = {}
    for line in stdout.splitlines():
        found = re.match(r"(?:room (\S+) \(.*\)|(total)): (?:would import|imported) (.*)", line)
        if found:
            name = found.group(1) or found.group(2)
            counts[name] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found.group(3))}
    return counts


def key_files(data_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(data_dir.glob("x25519_*.pem"))}


# --------------------------------------------------------------------------- the imported server


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    return build_reference_dir(tmp_path_factory.mktemp("legacy") / "reference")


@pytest.fixture(scope="module")
def import_output(
    reference: Reference, tmp_path_factory: pytest.TempPathFactory, database_url: str | None
) -> tuple[Path, Any]:
    """Our data dir after importing the reference dir, and the command's result."""
    data_dir = tmp_path_factory.mktemp("imported") / "data"
    return data_dir, import_legacy(data_dir, database_url, reference.path)


@pytest.fixture(scope="module")
def server(import_output: tuple[Path, Any], database_url: str | None) -> Iterator[ServerProcess]:
    """The module's server, started on the imported data (overrides conftest's)."""
    proc = ServerProcess(
        import_output[0],
        database_url=database_url,
        env={"OPENGROUP_DELETIONS_FORMAT": "objects"},
    )
    proc.start()
    yield proc
    proc.stop()


def test_the_server_keeps_the_reference_key_pair(
    server: ServerProcess, reference: Reference
) -> None:
    assert server.public_key == reference.public_key
    assert key_files(server.data_dir) == key_files(reference.path)
    assert (server.data_dir / "x25519_private_key.pem").stat().st_mode & 0o077 == 0
    urls = server.cli("url").stdout
    assert f"/main?public_key={reference.public_key.hex()}" in urls


def test_the_import_reports_what_it_imported_and_what_it_skipped(
    import_output: tuple[Path, Any],
) -> None:
    result = import_output[1]
    counts = reported_counts(result.stdout)
    assert counts["main"] == {
        "messages": 6,
        "deletions": 2,
        "moderators": 1,
        "bans": 1,
        "tokens": 3,
        "pending_tokens": 1,
        "files": 2,
        "room_image": 1,
    }
    assert counts["dev_talk"]["messages"] == 3
    assert counts["total"]["messages"] == 9
    assert "room 'Bad-Room' skipped" in result.stderr
    assert "room ghost skipped" in result.stderr
    assert "file 888 is missing" in result.stderr


def test_rooms_keep_their_ids_and_names(client: Client) -> None:
    assert client.request("GET", "rooms") == {
        "status_code": 200,
        "rooms": [{"id": "dev_talk", "name": "Developers"}, {"id": "main", "name": "Main Hall"}],
    }


@pytest.mark.parametrize("room_id", ["main", "dev_talk"])
def test_messages_keep_server_ids_senders_timestamps_data_and_signatures(
    client: Client, reference: Reference, room_id: str
) -> None:
    room = reference.rooms[room_id]
    token = next(iter(room.tokens.values()))
    result = client.request("GET", "messages", room=room_id, token=token)
    assert result == {"status_code": 200, "messages": room.live}
    later = client.request("GET", "messages?from_server_id=1", room=room_id, token=token)
    assert [m["server_id"] for m in later["messages"]] == [
        m["server_id"] for m in room.live if m["server_id"] > 1
    ]


@pytest.mark.parametrize("room_id", ["main", "dev_talk"])
def test_deletions_keep_their_numbers(client: Client, reference: Reference, room_id: str) -> None:
    room = reference.rooms[room_id]
    token = next(iter(room.tokens.values()))
    result = client.request("GET", "deleted_messages", room=room_id, token=token)
    assert result == {"status_code": 200, "ids": room.deletions}


def test_compact_poll_shows_messages_deletions_and_moderators_of_each_room(
    client: Client, reference: Reference
) -> None:
    main, dev = reference.rooms["main"], reference.rooms["dev_talk"]
    result = client.compact_poll(
        [
            {"room_id": "main", "auth_token": main.tokens["alice"], "from_message_server_id": 2},
            {"room_id": "dev_talk", "auth_token": dev.tokens["carol"]},
        ]
    )
    assert result == {
        "status_code": 200,
        "results": [
            {
                "room_id": "main",
                "status_code": 200,
                "messages": [m for m in main.live if m["server_id"] > 2],
                "deletions": main.deletions,
                "moderators": main.moderators,
            },
            {
                "room_id": "dev_talk",
                "status_code": 200,
                "messages": dev.live,
                "deletions": dev.deletions,
                "moderators": dev.moderators,
            },
        ],
    }


def test_reference_tokens_count_as_members(client: Client, reference: Reference) -> None:
    main = reference.rooms["main"]
    result = client.request("GET", "member_count", room="main", token=main.tokens["alice"])
    assert result == {"status_code": 200, "member_count": 2}  # alice and mod; troll is banned


def test_an_expired_reference_token_is_not_imported(client: Client, reference: Reference) -> None:
    stale = reference.rooms["main"].tokens["stale"]
    result = client.request("GET", "messages", room="main", token=stale)
    assert result["status_code"] == 401


def test_a_reference_token_works_only_in_its_own_room(client: Client, reference: Reference) -> None:
    alice = reference.rooms["main"].tokens["alice"]
    assert client.request("GET", "messages", room="dev_talk", token=alice)["status_code"] == 401


def test_a_banned_key_is_still_banned(client: Client, reference: Reference) -> None:
    main = reference.rooms["main"]
    result = client.request("GET", "messages", room="main", token=main.tokens["troll"])
    assert result["status_code"] == 403
    troll = reference.people["troll"].session_id
    challenge = client.request("GET", f"auth_token_challenge?public_key={troll}", room="main")
    assert challenge["status_code"] == 403


def test_the_moderator_keeps_moderator_rights(client: Client, reference: Reference) -> None:
    main = reference.rooms["main"]
    result = client.request("GET", "block_list", room="main", token=main.tokens["mod"])
    assert result == {
        "status_code": 200,
        "banned_members": main.banned,
        "moderators": main.banned,
    }
    moderators = client.request("GET", "moderators", room="main", token=main.tokens["alice"])
    assert moderators == {"status_code": 200, "moderators": main.moderators}


def test_uploads_download_under_their_reference_ids(client: Client, reference: Reference) -> None:
    main = reference.rooms["main"]
    for file_id, content in main.files.items():
        result = client.request("GET", f"files/{file_id}", room="main", token=main.tokens["alice"])
        assert result == {"status_code": 200, "result": base64.b64encode(content).decode()}


def test_expired_and_missing_uploads_are_not_imported(client: Client, reference: Reference) -> None:
    main = reference.rooms["main"]
    for file_id in main.gone_files:
        result = client.request("GET", f"files/{file_id}", room="main", token=main.tokens["alice"])
        assert result["status_code"] == 404


def test_the_room_image_is_served(client: Client) -> None:
    assert client.request("GET", "rooms/main/image") == {
        "status_code": 200,
        "result": base64.b64encode(IMAGE_BYTES).decode(),
    }
    assert client.request("GET", "rooms/dev_talk/image")["status_code"] == 404


def test_a_pending_reference_token_can_still_be_claimed(
    setup_client: Client, reference: Reference
) -> None:
    result = setup_client.request(
        "POST",
        "claim_auth_token",
        body={"public_key": reference.people["pending"].session_id},
        room="main",
        token=reference.pending_token.hex(),
    )
    assert result["status_code"] == 200
    messages = setup_client.request(
        "GET", "messages", room="main", token=reference.pending_token.hex()
    )
    assert messages["status_code"] == 200


# These change the rooms, so they come last: one room per transport.
@pytest.mark.parametrize(
    ("transport", "room_id", "who"),
    [
        pytest.param("http", "main", "alice", id="http-main"),
        pytest.param("onion", "dev_talk", "carol", id="onion-dev_talk"),
    ],
)
def test_new_posts_and_deletions_continue_after_the_imported_numbers(
    server: ServerProcess, reference: Reference, transport: str, room_id: str, who: str
) -> None:
    room = reference.rooms[room_id]
    token = room.tokens[who]
    with server.client(transport) as client:  # type: ignore[arg-type]
        posted = client.post_message(reference.people[who], token, room_id)
        assert posted["status_code"] == 200
        new_id = posted["message"]["server_id"]
        assert new_id == room.top_message + 1
        deleted = client.request("DELETE", f"messages/{new_id}", room=room_id, token=token)
        assert deleted == {"status_code": 200}
        after = client.request(
            "GET",
            f"deleted_messages?from_server_id={room.top_deletion}",
            room=room_id,
            token=token,
        )
        assert after == {
            "status_code": 200,
            "ids": [{"id": room.top_deletion + 1, "deleted_message_id": new_id}],
        }


# --------------------------------------------------------------------------- runs of the command


def test_a_second_run_changes_nothing(tmp_path: Path, fresh_database_url: str | None) -> None:
    ref = build_reference_dir(tmp_path / "reference")
    data_dir = tmp_path / "data"
    import_legacy(data_dir, fresh_database_url, ref.path)
    before, keys_before = dump_tables(DatabaseAt(data_dir, fresh_database_url)), key_files(data_dir)
    assert len(before["messages"]) == 9

    again = import_legacy(data_dir, fresh_database_url, ref.path)

    assert reported_counts(again.stdout)["total"] == dict.fromkeys(
        (
            "messages",
            "deletions",
            "moderators",
            "bans",
            "tokens",
            "pending_tokens",
            "files",
            "room_image",
        ),
        0,
    )
    assert "key pair: already in place" in again.stdout
    assert dump_tables(DatabaseAt(data_dir, fresh_database_url)) == before
    assert key_files(data_dir) == keys_before


def test_a_dry_run_reports_the_same_counts_and_writes_nothing(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    ref = build_reference_dir(tmp_path / "reference")
    data_dir = tmp_path / "data"

    dry = import_legacy(data_dir, fresh_database_url, ref.path, "--dry-run")

    assert "dry run: nothing was written" in dry.stdout
    assert "key pair: would copy" in dry.stdout
    assert not data_dir.exists()
    assert dump_tables(DatabaseAt(data_dir, fresh_database_url)) == {}
    real = import_legacy(data_dir, fresh_database_url, ref.path)
    assert reported_counts(dry.stdout) == reported_counts(real.stdout)


def test_a_dry_run_on_imported_data_reports_nothing_new_and_writes_nothing(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    ref = build_reference_dir(tmp_path / "reference")
    data_dir = tmp_path / "data"
    import_legacy(data_dir, fresh_database_url, ref.path)
    before = dump_tables(DatabaseAt(data_dir, fresh_database_url))

    dry = import_legacy(data_dir, fresh_database_url, ref.path, "--dry-run")

    assert set(reported_counts(dry.stdout)["total"].values()) == {0}
    assert dump_tables(DatabaseAt(data_dir, fresh_database_url)) == before


def test_a_data_dir_with_another_key_pair_is_refused_untouched(
    tmp_path: Path, fresh_database_url: str | None
) -> None:
    ref = build_reference_dir(tmp_path / "reference")
    data_dir = tmp_path / "data"
    run_cli(data_dir, fresh_database_url, "url")  # our own key pair and database
    before, keys_before = dump_tables(DatabaseAt(data_dir, fresh_database_url)), key_files(data_dir)

    result = import_legacy(data_dir, fresh_database_url, ref.path, check=False)

    assert result.returncode == 1
    assert "holds a different key pair" in result.stderr
    assert "join URL" in result.stderr
    assert dump_tables(DatabaseAt(data_dir, fresh_database_url)) == before
    assert key_files(data_dir) == keys_before


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        pytest.param("database.db", "no database.db", id="no-room-list"),
        pytest.param("x25519_private_key.pem", "no x25519_private_key.pem", id="no-private-key"),
    ],
)
def test_a_directory_that_is_not_a_reference_data_dir_is_refused(
    tmp_path: Path, fresh_database_url: str | None, remove: str, message: str
) -> None:
    ref = build_reference_dir(tmp_path / "reference")
    (ref.path / remove).unlink()
    data_dir = tmp_path / "data"

    result = import_legacy(data_dir, fresh_database_url, ref.path, check=False)

    assert result.returncode == 1
    assert message in result.stderr
    assert not data_dir.exists()


def test_a_room_holding_other_messages_under_the_same_ids_is_left_alone(
    tmp_path: Path, fresh_database_url: str | None, server_factory: Any
) -> None:
    ref = build_reference_dir(tmp_path / "reference")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name in ("x25519_private_key.pem", "x25519_public_key.pem"):
        (data_dir / name).write_bytes((ref.path / name).read_bytes())
    (data_dir / "x25519_private_key.pem").chmod(0o600)
    ours = server_factory(data_dir=data_dir, database_url=fresh_database_url)
    poster = Identity.generate()
    with ours.client() as client:
        token = client.authenticate(poster, "main")
        assert client.post_message(poster, token, "main")["message"]["server_id"] == 1
    ours.stop()

    result = import_legacy(data_dir, fresh_database_url, ref.path)

    assert "differ from the reference's under the same server_id" in result.stderr
    assert "room main: skipped" in result.stdout
    assert reported_counts(result.stdout)["dev_talk"]["messages"] == 3
    ours.start()
    with ours.client() as client:
        messages = client.request("GET", "messages", room="main", token=token)["messages"]
        assert [m["public_key"] for m in messages] == [poster.session_id]
        assert client.request("GET", "rooms/main") == {
            "status_code": 200,
            "room": {"id": "main", "name": "Main"},
        }
