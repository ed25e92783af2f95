"""A pysogs server's data, built the way pysogs writes it, for `opengroup import-pysogs`.

The database is made from pysogs' own schema files (tests/fixtures/pysogs, copied
unmodified), so its triggers number seqnos, note edits, count info_updates and
keep reactions as pysogs does. Rows are written with the statements pysogs runs:
posts are inserted with their padding stripped and ``data_size`` the padded size,
edits UPDATE ``data``, deletions go through the ``message_details`` view,
reactions through ``message_reactions``. People are real key pairs
(communityclient.BlindedIdentity) so they can sign in to our server afterwards.

``build_pysogs`` writes a SQLite data directory (sogs.db, key_x25519, uploads/,
sogs.ini) or, given a PostgreSQL URL, the same rows there (and the key and
uploads in the directory). ``PysogsData`` holds who is who and reads the rows
back (``message_rows``) so tests derive what pysogs would answer from them.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .communityclient import BlindedIdentity
from .v2client import encode_visible_message, pad_message

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pysogs"
DAY = 86400.0
IMAGE_BYTES = b"\x89PNG\r\n\x1a\n the lobby's room image"

SOGS_INI = """\
[db]
url = sqlite:///sogs.db

[net]
base_url = https://sogs.example.org
http_show_recent = no

[files]
expiry = 20
max_size = 5000000

[users]
require_blind_keys = yes

[messages]
profanity_filter = yes

[log]
level = WARNING
"""

PEOPLE = (
    "alice", "bob", "carol", "mod", "hidden_mod", "room_admin", "global_admin",
    "global_mod", "pending_mod", "troll", "timed", "global_banned", "muted",
)  # fmt: skip


class Writer:
    """One connection to the pysogs database; ``?`` placeholders on both drivers."""

    def __init__(self, sqlite_path: Path | None, pg_url: str | None, *, create: bool) -> None:
        """create: make pysogs' schema first (its own file, as pysogs does on first start)."""
        self.pg = pg_url is not None
        if pg_url is not None:
            self.conn: Any = psycopg.connect(pg_url, autocommit=True)
            if create:
                self.conn.execute((FIXTURES / "schema.pgsql").read_text())
        else:
            assert sqlite_path is not None
            self.conn = sqlite3.connect(sqlite_path, isolation_level=None)
            if create:
                self.conn.executescript((FIXTURES / "schema.sqlite").read_text())

    def x(self, sql: str, *params: Any) -> list[Any]:
        if self.pg:
            cur = self.conn.execute(sql.replace("?", "%s"), params)
            return list(cur.fetchall()) if cur.description else []
        return list(self.conn.execute(sql, params).fetchall())

    def one(self, sql: str, *params: Any) -> Any:
        return self.x(sql, *params)[0][0]

    def close(self) -> None:
        self.conn.close()


@dataclass
class PysogsData:
    """The pysogs server the tests import, and who is who in it."""

    path: Path  # data directory: key_x25519, uploads/, sogs.ini (and sogs.db on SQLite)
    pg_url: str | None
    public_key: bytes
    people: dict[str, BlindedIdentity]
    rooms: dict[str, int] = field(default_factory=dict)  # token -> pysogs room id
    files: dict[int, bytes] = field(default_factory=dict)  # live uploads
    expired_files: list[int] = field(default_factory=list)
    image_id: int = 0
    live_dm: int = 0
    live_nonce: bytes = b""

    def blinded(self, who: str) -> str:
        return self.people[who].blinded_id(self.public_key)

    def reader(self) -> Writer:
        return Writer(self.path / "sogs.db", self.pg_url, create=False)

    def message_rows(self) -> list[dict[str, Any]]:
        """Every message as pysogs holds it (after its triggers), with the session ids."""
        w = self.reader()
        try:
            rows = w.x(
                "SELECT m.id, r.token, u.session_id, m.posted, m.edited, m.seqno, "
                "m.seqno_creation, m.seqno_data, m.seqno_reactions, m.data, m.data_size, "
                "m.signature, m.filtered, "
                "wu.session_id, m.whisper_mods FROM messages m JOIN rooms r ON r.id = m.room "
                'JOIN users u ON u.id = m."user" LEFT JOIN users wu ON wu.id = m.whisper '
                "ORDER BY m.id"
            )
        finally:
            w.close()
        keys = (
            "id", "room", "session_id", "posted", "edited", "seqno", "seqno_creation",
            "seqno_data", "seqno_reactions", "data",
            "data_size", "signature", "filtered", "whisper_to", "whisper_mods",
        )  # fmt: skip
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def reaction_rows(self) -> list[tuple[int, str, str, float]]:
        """(message, reaction, session id, at), in pysogs' order (reaction id, time)."""
        w = self.reader()
        try:
            return [
                (int(r[0]), str(r[1]), str(r[2]), float(r[3]))
                for r in w.x(
                    "SELECT r.message, r.reaction, u.session_id, ur.at FROM reactions r "
                    'JOIN user_reactions ur ON ur.reaction = r.id JOIN users u ON u.id = ur."user" '
                    "ORDER BY r.id, ur.at"
                )
            ]
        finally:
            w.close()

    def ban_futures(self) -> dict[tuple[str | None, str], float]:
        """(room token or None, who) -> when pysogs lifts the ban."""
        by_id = {ident.blinded_id(self.public_key): who for who, ident in self.people.items()}
        w = self.reader()
        try:
            rows = w.x(
                "SELECT r.token, u.session_id, f.at FROM user_ban_futures f "
                'JOIN users u ON u.id = f."user" LEFT JOIN rooms r ON r.id = f.room '
                "WHERE NOT f.banned"
            )
        finally:
            w.close()
        return {(row[0], by_id[row[1]]): float(row[2]) for row in rows}

    def room_row(self, token: str) -> dict[str, Any]:
        w = self.reader()
        try:
            row = w.x(
                "SELECT message_sequence, info_updates, created, name, description, image "
                "FROM rooms WHERE token = ?",
                token,
            )[0]
        finally:
            w.close()
        return dict(
            zip(
                ("message_sequence", "info_updates", "created", "name", "description", "image"),
                row,
                strict=True,
            )
        )


class Builder:
    """Writes rooms, people and posts like pysogs' model code does."""

    def __init__(self, w: Writer, data: PysogsData, now: float) -> None:
        self.w, self.data, self.now = w, data, now
        self.user_ids: dict[str, int] = {}
        self.clock = now - 5 * DAY

    def tick(self) -> float:
        self.clock += 37.25
        return self.clock

    def user(self, session_id: str, **flags: bool) -> int:
        if session_id in self.user_ids:
            return self.user_ids[session_id]
        columns = ", ".join(["session_id", "created", "last_active", *flags])
        marks = ", ".join("?" * (3 + len(flags)))
        self.w.x(
            f"INSERT INTO users ({columns}) VALUES ({marks})",
            session_id,
            self.now - 9 * DAY,
            self.now - 3600,
            *flags.values(),
        )
        uid = int(self.w.one("SELECT id FROM users WHERE session_id = ?", session_id))
        self.user_ids[session_id] = uid
        return uid

    def person(self, who: str, *, blinded: bool = True, **flags: bool) -> int:
        ident = self.data.people[who]
        return self.user(
            ident.blinded_id(self.data.public_key) if blinded else ident.session_id, **flags
        )

    def room(self, token: str, name: str, description: str | None, **defaults: bool) -> int:
        columns = ", ".join(["token", "name", "description", "created", *defaults])
        marks = ", ".join("?" * (4 + len(defaults)))
        self.w.x(
            f"INSERT INTO rooms ({columns}) VALUES ({marks})",
            token, name, description, self.now - 30 * DAY, *defaults.values(),
        )  # fmt: skip
        rid = int(self.w.one("SELECT id FROM rooms WHERE token = ?", token))
        self.data.rooms[token] = rid
        return rid

    def post(
        self,
        room: str,
        who: str,
        text: str,
        *,
        blinded: bool = True,
        padded: bool = True,
        whisper_to: str | None = None,
        whisper_mods: bool = False,
        filtered: bool = False,
    ) -> int:
        """Room.add_post: padding stripped into ``data``, ``data_size`` the full length."""
        ident = self.data.people[who]
        body = encode_visible_message(text)
        full = pad_message(body) if padded else body
        stripped = strip_padding(full)
        signature = ident.sign_message_data(full, self.data.public_key, blinded=blinded)
        whisper = self.person(whisper_to) if whisper_to else None
        self.w.x(
            "INSERT INTO messages (room, \"user\", posted, data, data_size, signature, filtered, "
            "whisper, whisper_mods) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self.data.rooms[room], self.person(who, blinded=blinded), self.tick(), stripped,
            len(full), signature, filtered, whisper, whisper_mods,
        )  # fmt: skip
        return int(self.w.one("SELECT MAX(id) FROM messages"))

    def edit(self, message_id: int, who: str, text: str) -> None:
        """Room.edit_post: the data changes, so pysogs' trigger notes the edit."""
        full = pad_message(encode_visible_message(text))
        signature = self.data.people[who].sign_message_data(full, self.data.public_key)
        self.w.x(
            "UPDATE messages SET data = ?, data_size = ?, signature = ? WHERE id = ?",
            strip_padding(full), len(full), signature, message_id,
        )  # fmt: skip

    def delete(self, message_id: int) -> None:
        self.w.x("DELETE FROM message_details WHERE id = ?", message_id)

    def react(self, message_id: int, who: str, reaction: str) -> None:
        self.w.x(
            'INSERT INTO message_reactions (message, reaction, "user") VALUES (?, ?, ?)',
            message_id, reaction, self.person(who),
        )  # fmt: skip
        time.sleep(0.005)  # pysogs stamps reactions with the time: keep them apart

    def unreact(self, message_id: int, who: str, reaction: str) -> None:
        self.w.x(
            'DELETE FROM user_reactions WHERE "user" = ? AND reaction IN '
            "(SELECT id FROM reactions WHERE message = ? AND reaction = ?)",
            self.person(who), message_id, reaction,
        )  # fmt: skip

    def overrides(self, room: str, who: str, *, blinded: bool = True, **values: Any) -> None:
        columns = ", ".join(["room", '"user"', *values])
        marks = ", ".join("?" * (2 + len(values)))
        self.w.x(
            f"INSERT INTO user_permission_overrides ({columns}) VALUES ({marks})",
            self.data.rooms[room], self.person(who, blinded=blinded), *values.values(),
        )  # fmt: skip

    def upload(self, room: str, who: str, file_id: int, name: str, expiry: float | None) -> bytes:
        """Room.upload_file: the file in uploads/<token>/<id>_<name>, its row naming it."""
        content = f"file {file_id} of {room}: ".encode() + os.urandom(16)
        rel = f"uploads/{room}/{file_id}_{name}"
        (self.data.path / "uploads" / room).mkdir(parents=True, exist_ok=True)
        (self.data.path / rel).write_bytes(content)
        self.w.x(
            'INSERT INTO files (id, room, uploader, size, uploaded, expiry, filename, path) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            file_id, self.data.rooms[room], self.person(who), len(content), self.tick(), expiry,
            name, rel,
        )  # fmt: skip
        return content


def strip_padding(data: bytes) -> bytes:
    """pysogs' remove_session_message_padding (0x80 then zeros at the end)."""
    if data and data[-1] in (0x00, 0x80):
        stripped = data.rstrip(b"\x00")
        if stripped and stripped[-1] == 0x80:
            return stripped[:-1]
    return data


def build_pysogs(path: Path, pg_url: str | None = None) -> PysogsData:
    """Two rooms (``lobby`` and ``Dev-Talk``) with everything an import must carry."""
    now = time.time()
    path.mkdir(parents=True)
    key = X25519PrivateKey.generate()
    (path / "key_x25519").write_bytes(key.private_bytes_raw())
    os.chmod(path / "key_x25519", 0o400)
    (path / "sogs.ini").write_text(SOGS_INI)
    people = {who: BlindedIdentity.generate() for who in PEOPLE}
    data = PysogsData(path, pg_url, key.public_key().public_bytes_raw(), people)
    w = Writer(path / "sogs.db", pg_url, create=True)
    b = Builder(w, data, now)
    try:
        _fill(b, w, data, now)
    finally:
        w.close()
    return data


def _fill(b: Builder, w: Writer, data: PysogsData, now: float) -> None:
    # People: global staff and bans live on users; everyone signed in blinded but
    # carol (a 2021 client, 05) and pending_mod (named by Session id, never seen).
    b.person("global_admin", admin=True, moderator=True, visible_mod=False)
    b.person("global_mod", moderator=True, visible_mod=True)
    banned = b.person("global_banned", banned=True)
    w.x(
        'INSERT INTO user_ban_futures (room, "user", at, banned) VALUES (NULL, ?, ?, ?)',
        banned, now + 5 * DAY, False,
    )  # fmt: skip
    for who in ("alice", "bob", "mod", "hidden_mod", "room_admin", "troll", "timed", "muted"):
        b.person(who)
    b.person("carol", blinded=False)

    lobby = b.room("lobby", "The Lobby", "Say hello")
    b.room("Dev-Talk", "Developers", None, write=False)

    m1 = b.post("lobby", "alice", "hello everyone")
    m2 = b.post("lobby", "bob", "first version")
    m3 = b.post("lobby", "carol", "an unblinded post of 2021", blinded=False, padded=False)
    m4 = b.post("lobby", "alice", "oops, deleting this")
    b.post("lobby", "mod", "psst, alice", whisper_to="alice")
    b.post("lobby", "mod", "mods only", whisper_mods=True)
    b.post("lobby", "troll", "spam spam", filtered=True)
    b.react(m1, "bob", "\U0001f44d")
    b.react(m1, "alice", "\U0001f44d")
    b.react(m3, "alice", "\u2764\ufe0f")
    b.react(m2, "bob", "\U0001f602")
    b.react(m4, "bob", "\U0001f44d")
    b.edit(m2, "bob", "second version")
    b.unreact(m2, "bob", "\U0001f602")
    b.delete(m4)
    w.x(
        'INSERT INTO pinned_messages (room, message, pinned_by, pinned_at) VALUES (?, ?, ?, ?)',
        lobby, m1, b.person("room_admin"), now - DAY,
    )  # fmt: skip
    b.post("Dev-Talk", "alice", "a developer speaks")
    b.post("Dev-Talk", "carol", "me too", blinded=False)

    b.overrides("lobby", "mod", moderator=True)
    b.overrides("lobby", "hidden_mod", moderator=True, visible_mod=False)
    b.overrides("lobby", "room_admin", admin=True)
    b.overrides("lobby", "pending_mod", blinded=False, moderator=True)
    b.overrides("lobby", "troll", banned=True)
    b.overrides("lobby", "timed", banned=True)
    b.overrides("lobby", "muted", write=False)
    b.overrides("Dev-Talk", "carol", blinded=False, write=True)
    w.x(
        'INSERT INTO user_ban_futures (room, "user", at, banned) VALUES (?, ?, ?, ?)',
        lobby, b.person("timed"), now + 3 * DAY, False,
    )  # fmt: skip
    w.x(
        'INSERT INTO user_permission_futures (room, "user", at, write) VALUES (?, ?, ?, ?)',
        lobby, b.person("muted"), now + DAY, True,
    )  # fmt: skip
    pending = data.people["pending_mod"].session_id
    positive = _blinded_abs(data.people["pending_mod"].blinded_id(data.public_key))
    w.x(
        'INSERT INTO needs_blinding (blinded_abs, "user") VALUES (?, ?)',
        positive, b.user(pending),
    )  # fmt: skip
    for who in ("alice", "bob"):
        w.x(
            'INSERT INTO room_users (room, "user", last_active) VALUES (?, ?, ?)',
            lobby, b.person(who), now - 600,
        )  # fmt: skip

    data.files[101] = b.upload("lobby", "alice", 101, "cat.jpg", now + 10 * DAY)
    b.upload("lobby", "bob", 102, "old.txt", now - DAY)
    data.expired_files.append(102)
    data.files[201] = b.upload("Dev-Talk", "alice", 201, "notes.md", now + 2 * DAY)
    data.image_id = 103
    (data.path / "uploads" / "lobby").mkdir(parents=True, exist_ok=True)
    (data.path / "uploads" / "lobby" / "103_image.png").write_bytes(IMAGE_BYTES)
    w.x(
        'INSERT INTO files (id, room, uploader, size, uploaded, expiry, filename, path) '
        "VALUES (?, ?, ?, ?, ?, NULL, ?, ?)",
        103, lobby, b.person("room_admin"), len(IMAGE_BYTES), now - DAY, "image.png",
        "uploads/lobby/103_image.png",
    )  # fmt: skip
    w.x("UPDATE rooms SET image = ? WHERE id = ?", 103, lobby)
    data.files[103] = IMAGE_BYTES

    alice, bob = b.person("alice"), b.person("bob")
    w.x(
        "INSERT INTO inbox (recipient, sender, body, posted_at, expiry) VALUES (?, ?, ?, ?, ?)",
        bob, alice, b"an old message request", now - 20 * DAY, now - 5 * DAY,
    )  # fmt: skip
    w.x(
        "INSERT INTO inbox (recipient, sender, body, posted_at, expiry) VALUES (?, ?, ?, ?, ?)",
        bob, alice, b"\x00sealed message request", now - 3600, now + 14 * DAY,
    )  # fmt: skip
    data.live_dm = int(w.one("SELECT MAX(id) FROM inbox"))
    data.live_nonce = os.urandom(16)
    w.x(
        'INSERT INTO user_request_nonces ("user", nonce, expiry) VALUES (?, ?, ?)',
        alice, data.live_nonce, now + 3600,
    )  # fmt: skip
    w.x(
        'INSERT INTO user_request_nonces ("user", nonce, expiry) VALUES (?, ?, ?)',
        alice, os.urandom(16), now - 3600,
    )  # fmt: skip


def _blinded_abs(blinded_id: str) -> str:
    key = bytearray(bytes.fromhex(blinded_id[2:]))
    key[31] &= 0x7F
    return "15" + key.hex()


def pysogs_padded(data: bytes, size: int | None) -> bytes:
    """pysogs' add_session_message_padding, as its API applies it when serving."""
    if size is not None and size > len(data):
        return data + b"\x80" + b"\x00" * (size - len(data) - 1)
    return data


__all__: Sequence[str] = ("PysogsData", "build_pysogs", "pysogs_padded", "strip_padding")
