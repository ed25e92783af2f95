"""The operator's changes to rooms (``opengroup rooms ...``): creating a room with a
description, renaming it, its description and image, its default permissions and
its own spam rules (slow mode, how long new posters wait: :mod:`opengroup.domain.spam`).

Each change of what clients are shown counts as a change of the room's details
(``info_updates``), so the community API's clients refetch them; v2 clients read the
same rows. The spam rules are not shown to clients, so changing them alone does not.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from sqlalchemy import Connection

from opengroup.config import Settings
from opengroup.domain import values
from opengroup.domain.errors import FileTooLarge, InvalidInput, NoSuchRoom
from opengroup.domain.images import IMAGE_TYPES, image_type
from opengroup.storage import queries, roomdetails
from opengroup.storage.database import Database
from opengroup.storage.roomdetails import DEFAULT_PERMISSIONS, RoomDetails

# Room images get random ids in the range of every other file's (see domain.files).
FILE_ID_MIN = 2**31
FILE_ID_MAX = 2**53
# A room's own spam rules, and the longest value accepted for one (a year).
SPAM_RULES = ("slow_mode_seconds", "new_poster_wait_seconds")
MAX_RULE_SECONDS = 365 * 24 * 3600


class RoomSettings:
    """What only the operator changes about rooms from the command line."""

    def __init__(self, db: Database, settings: Settings, clock: Callable[[], float]) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    def create(self, room_id: str, name: str, description: str | None = None) -> bool:
        """A new room; False if a room of that id (in any case) exists already."""
        room_id = values.room_id(room_id)
        name = values.room_name(name)
        described = values.room_description(description)
        with self.db.write() as conn:
            if not queries.insert_room(conn, room_id, name, self.clock()):
                return False
            if described is not None:
                roomdetails.update_room(conn, room_id, {"description": described})
            return True

    def update(
        self,
        room: str,
        *,
        name: str | None = None,
        description: str | None = None,
        image: bytes | None = None,
        rules: dict[str, int | None] | None = None,
    ) -> RoomDetails:
        """Rename the room, set (or, with "", remove) its description, replace its
        image, set its own spam rules (``rules``: a name of :data:`SPAM_RULES` -> seconds,
        0 for off, or None for the server's default); the room afterwards."""
        rules = dict(rules or {})
        for rule, value in rules.items():
            if rule not in SPAM_RULES:
                raise InvalidInput(f"the spam rules are {', '.join(SPAM_RULES)}")
            if value is not None and not 0 <= value <= MAX_RULE_SECONDS:
                raise InvalidInput(f"{rule} must be 0 to {MAX_RULE_SECONDS} seconds")
        changes: dict[str, object] = {}
        if name is not None:
            changes["name"] = values.room_name(name)
        if description is not None:
            changes["description"] = values.room_description(description)
        if image is not None:
            if not image:
                raise InvalidInput("the image file is empty")
            if image_type(image) is None:
                raise InvalidInput(f"the image must be a {IMAGE_TYPES} file")
            if len(image) > self.settings.max_upload_bytes:
                raise FileTooLarge(
                    f"the image is {len(image)} bytes; the limit is "
                    f"{self.settings.max_upload_bytes} (max_upload_bytes)"
                )
        if not changes and image is None and not rules:
            raise InvalidInput(
                "nothing to change: give --name, --description, --image, --slow-mode "
                "or --new-poster-wait"
            )
        with self.db.write() as conn:
            details = self._find(conn, room)
            if rules:
                roomdetails.update_room(conn, details.id, rules)
            if not changes and image is None:
                return self._find(conn, details.id)
            if changes:
                roomdetails.update_room(conn, details.id, changes)
            if image is not None:
                now = self.clock()
                file_id = FILE_ID_MIN + secrets.randbelow(FILE_ID_MAX - FILE_ID_MIN)
                while not queries.insert_file(conn, file_id, details.id, None, image, now, None):
                    file_id = FILE_ID_MIN + secrets.randbelow(FILE_ID_MAX - FILE_ID_MIN)
                roomdetails.set_image(conn, details.id, file_id)
            roomdetails.bump_info_updates(conn, details.id)
            return self._find(conn, details.id)

    def set_default_permissions(self, room: str, changes: dict[str, bool]) -> RoomDetails:
        """Change some of the room's default read, write, upload and accessible (what
        a user without a permission of their own may do); the room afterwards."""
        columns = {f"default_{name}": value for name, value in changes.items()}
        if any(column not in DEFAULT_PERMISSIONS for column in columns):
            raise InvalidInput("the permissions are read, write, upload and accessible")
        with self.db.write() as conn:
            details = self._find(conn, room)
            if columns:
                roomdetails.update_room(conn, details.id, columns)
                roomdetails.bump_info_updates(conn, details.id)
            return self._find(conn, details.id)

    def room(self, room: str) -> RoomDetails:
        with self.db.read() as conn:
            return self._find(conn, room)

    @staticmethod
    def _find(conn: Connection, room: str) -> RoomDetails:
        details = roomdetails.find_room(conn, room) if values.could_be_room_id(room) else None
        if details is None:
            raise NoSuchRoom(room)
        return details
