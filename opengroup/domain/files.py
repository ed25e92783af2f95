"""Files: uploads, downloads and room images, all kept in the database.

File ids are random (between 2**31 and 2**53), so they tell nobody how many files
a room holds.
"""

from __future__ import annotations

import secrets

from sqlalchemy import Connection

from opengroup.domain import limits
from opengroup.domain.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge
from opengroup.domain.parts import CommunityPart, Member
from opengroup.storage import queries as q

FILE_ID_MIN = 2**31
FILE_ID_MAX = 2**53


class Files(CommunityPart):
    """Uploads, downloads and room images."""

    def room_image(self, room_id: str) -> bytes:
        with self.db.read() as conn:
            room = self._room(conn, room_id)
            data = None
            if room.image_file_id is not None:
                data = q.file_data(conn, room_id, room.image_file_id, self.clock())
        if data is None:
            raise NotFound(f"room {room_id} has no image")
        return data

    def set_room_image(self, member: Member, room_id: str, data: bytes) -> int:
        if member.room_id != room_id or not member.is_moderator:
            raise Forbidden("only moderators of this room may set its image")
        self._check_upload_size(data)
        with self.db.write() as conn:
            self._room(conn, room_id)
            file_id = self._store_file(conn, room_id, member.public_key, data, expires_at=None)
            q.set_room_image(conn, room_id, file_id)
        return file_id

    def _check_upload_size(self, data: bytes) -> None:
        if not data:
            raise BadRequest("file is empty")
        if len(data) > self.settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"file is {len(data)} bytes; the limit is {self.settings.max_upload_bytes}"
            )

    def _store_file(
        self,
        conn: Connection,
        room_id: str,
        uploader: str,
        data: bytes,
        expires_at: float | None,
    ) -> int:
        now = self.clock()
        while True:
            file_id = FILE_ID_MIN + secrets.randbelow(FILE_ID_MAX - FILE_ID_MIN)
            if q.insert_file(conn, file_id, room_id, uploader, data, now, expires_at):
                return file_id

    def upload(self, member: Member, data: bytes) -> int:
        self._check_upload_size(data)
        now = self.clock()
        expires_at = now + self.settings.file_ttl_seconds
        with self.db.write() as conn:
            if not member.is_moderator:
                self._check_upload_rate(conn, member, now)
            return self._store_file(conn, member.room_id, member.public_key, data, expires_at)

    def _check_upload_rate(self, conn: Connection, member: Member, now: float) -> None:
        """Counted from the files table by uploader; moderators are exempt (as for posts)."""
        window = limits.Window(
            self.settings.upload_rate_limit_count,
            self.settings.upload_rate_limit_seconds,
            "uploads",
        )
        if window.enabled:
            q.lock_name(conn, f"upload:{member.room_id}:{member.public_key}")
            since = window.since(now)
            window.check(q.upload_times(conn, member.room_id, member.public_key, since), now)

    def download(self, member: Member, file_id: int) -> bytes:
        with self.db.read() as conn:
            data = q.file_data(conn, member.room_id, file_id, self.clock())
        if data is None:
            raise NotFound(f"no such file: {file_id}")
        return data
