"""Files: uploads, downloads and room images, all kept in the database.

Size, rate limit and ids follow the rules of :mod:`opengroup.domain.uploads`, the same
for both APIs (file ids are random, between 2**31 and 2**53).
"""

from __future__ import annotations

from collections.abc import Callable

from opengroup.config import Settings
from opengroup.domain import uploads
from opengroup.domain.access import room_access
from opengroup.domain.errors import NoRoomImage, NoSuchFile, NotPermitted
from opengroup.domain.parts import Member, find_room
from opengroup.domain.values import could_be_room_id
from opengroup.storage import queries as q
from opengroup.storage import roomdetails
from opengroup.storage.database import Database


class Files:
    """Uploads, downloads and room images."""

    def __init__(self, db: Database, settings: Settings, clock: Callable[[], float]) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    def room_image(self, room_id: str) -> bytes:
        with self.db.read() as conn:
            room = find_room(conn, room_id)
            data = None
            if room.image_file_id is not None:
                data = q.file_data(conn, room_id, room.image_file_id, self.clock())
        if data is None:
            raise NoRoomImage(room_id)
        return data

    def public_room_image(self, room_id: str) -> bytes:
        """The image of a room the home page shows; :class:`NoRoomImage` otherwise."""
        now = self.clock()
        with self.db.read() as conn:
            room = roomdetails.find_room(conn, room_id) if could_be_room_id(room_id) else None
            if room is None or not room_access(conn, room, (), now).may_see_room:
                raise NoRoomImage(room_id)
        return self.room_image(room.id)

    def set_room_image(self, member: Member, room_id: str, data: bytes) -> int:
        if member.room_id != room_id or not member.is_moderator:
            raise NotPermitted("only moderators of this room may set its image")
        uploads.check_size(self.settings, data)
        with self.db.write() as conn:
            find_room(conn, room_id)
            file_id = uploads.store(conn, room_id, member.public_key, data, self.clock(), None)
            roomdetails.set_image(conn, room_id, file_id)
            roomdetails.bump_info_updates(conn, room_id)  # community API clients refetch it
        return file_id

    def upload(self, member: Member, data: bytes) -> int:
        member.check_may_upload()
        uploads.check_size(self.settings, data)
        now = self.clock()
        expires_at = now + self.settings.file_ttl_seconds
        with self.db.write() as conn:
            if not member.is_moderator:
                uploads.check_rate(conn, self.settings, member.room_id, [member.public_key], now)
            return uploads.store(conn, member.room_id, member.public_key, data, now, expires_at)

    def download(self, member: Member, file_id: int) -> bytes:
        with self.db.read() as conn:
            data = q.file_data(conn, member.room_id, file_id, self.clock())
        if data is None:
            raise NoSuchFile(file_id)
        return data
