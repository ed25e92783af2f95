"""Uploads as the community API sees them, and the rules every upload obeys, whichever
API it came through.

The rules (used by the v2 API's :class:`~opengroup.domain.files.Files` too):

- size: 1 to ``max_upload_bytes`` bytes (400 for an empty file, 413 above the limit);
- rate: ``upload_rate_limit_count`` uploads per ``upload_rate_limit_seconds`` per
  uploader and room, counted from the ``files`` table (room images included);
  moderators are exempt;
- ids: random, between 2**31 and 2**53, so they tell nobody how many files a room
  holds (and stay exact in a JavaScript number).

A community API upload lives ``upload_ttl_seconds`` until a post names it in ``files``
(:meth:`opengroup.domain.posts.Posts.post` and ``edit``), then ``file_ttl_seconds``;
a room image (:meth:`opengroup.domain.room_info.RoomInfo.update`) never expires. File
ids are shared: a file uploaded through either API is downloaded through both.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

from sqlalchemy import Connection

from opengroup.config import Settings
from opengroup.domain import limits
from opengroup.domain.access import RoomView
from opengroup.domain.errors import FileTooLarge, InvalidInput, NoSuchFile, UploadRateLimited
from opengroup.domain.users import User
from opengroup.storage import queries as q
from opengroup.storage.database import Database
from opengroup.storage.queries import StoredFile

FILE_ID_MIN = 2**31
FILE_ID_MAX = 2**53

# The longest stored filename, in characters (a longer one keeps its end: the extension).
MAX_FILENAME_CHARS = 255
_KEPT_SUFFIX_CHARS = 16


def check_size(settings: Settings, data: bytes) -> None:
    """400 for an empty file, 413 above ``max_upload_bytes``."""
    if not data:
        raise InvalidInput("file is empty")
    if len(data) > settings.max_upload_bytes:
        raise FileTooLarge(f"file is {len(data)} bytes; the limit is {settings.max_upload_bytes}")


def check_rate(
    conn: Connection, settings: Settings, room_id: str, uploader_keys: Sequence[str], now: float
) -> None:
    """429 when the uploader (known under any of the keys) has no upload left in the window.

    Call it in the write transaction that stores the file, for non-moderators only. The
    keys are locked in sorted order, so two such transactions never wait in a circle.
    """
    window = limits.Window(
        settings.upload_rate_limit_count,
        settings.upload_rate_limit_seconds,
        "uploads",
        UploadRateLimited,
    )
    if not window.enabled:
        return
    for key in sorted(set(uploader_keys)):
        q.lock_name(conn, f"upload:{room_id}:{key}")
    window.check(q.upload_times(conn, room_id, uploader_keys, window.since(now)), now)


def store(
    conn: Connection,
    room_id: str,
    uploader: str | None,
    data: bytes,
    now: float,
    expires_at: float | None,
    filename: str | None = None,
) -> int:
    """Store the file under a fresh random id; the id."""
    while True:
        file_id = FILE_ID_MIN + secrets.randbelow(FILE_ID_MAX - FILE_ID_MIN)
        if q.insert_file(conn, file_id, room_id, uploader, data, now, expires_at, filename):
            return file_id


def clean_filename(name: str | None) -> str | None:
    """The name as stored: without control characters, a path separator as ``_``, at most
    :data:`MAX_FILENAME_CHARS` characters; None if nothing is left."""
    if name is None:
        return None
    kept = "".join("_" if c in "/\\" else c for c in name if c.isprintable() or c == " ").strip()
    if len(kept) > MAX_FILENAME_CHARS:
        stem, dot, extension = kept.rpartition(".")
        suffix = dot + extension if stem and len(extension) < _KEPT_SUFFIX_CHARS else ""
        kept = kept[: MAX_FILENAME_CHARS - len(suffix)] + suffix
    return kept or None


class Uploads:
    """The community API's uploads and downloads."""

    def __init__(self, db: Database, settings: Settings, clock: Callable[[], float]) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    def upload(self, view: RoomView, user: User, data: bytes, filename: str | None) -> int:
        """Store an upload of the signer (the router checked the upload right); its id.
        It lives ``upload_ttl_seconds`` unless a post names it."""
        check_size(self.settings, data)
        now = self.clock()
        expires_at = now + self.settings.upload_ttl_seconds
        with self.db.write() as conn:
            if not view.access.moderator:
                check_rate(conn, self.settings, view.id, user.keys, now)
            return store(
                conn, view.id, user.session_id, data, now, expires_at, clean_filename(filename)
            )

    def download(self, view: RoomView, file_id: int) -> StoredFile:
        """A live file of the room: 404 if there is none (expired, or of another room)."""
        with self.db.read() as conn:
            found = q.find_file(conn, view.id, file_id, self.clock())
        if found is None:
            raise NoSuchFile(file_id)
        return found
