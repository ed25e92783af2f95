"""Moderation through the v2 API: moderators (added by the operator or another
moderator) and bans, kept with the community API's staff and bans
(:mod:`opengroup.domain.staff`): a moderator added here is a visible moderator of
the room, and a Session id named here is linked to its blinded id, so the role or
ban reaches the same person's community API identity."""

from __future__ import annotations

from collections.abc import Callable

from opengroup.domain.errors import NoSuchRoom
from opengroup.domain.parts import Member, require_moderator
from opengroup.domain.staff import Staff
from opengroup.domain.values import could_be_room_id
from opengroup.storage import queries as q
from opengroup.storage.database import Database


class Moderation:
    """Moderators and bans of a room."""

    def __init__(self, db: Database, clock: Callable[[], float], staff: Staff) -> None:
        self.db = db
        self.clock = clock
        self.staff = staff

    def moderators(self, room_id: str) -> list[str]:
        """The room's visible staff, the room's own and the server's (the list its polls
        show too: :class:`opengroup.storage.roomhead.RoomHead`)."""
        with self.db.read() as conn:
            now = self.clock()
            head = q.room_head(conn, room_id, b"", now) if could_be_room_id(room_id) else None
        if head is None:
            raise NoSuchRoom(room_id)
        return head.moderators

    def add_moderator(self, room_id: str, public_key: str, by: Member | None = None) -> bool:
        """Make someone a moderator; ``by`` is None for the operator's CLI."""
        if by is not None:
            require_moderator(by, room_id)
        return self.staff.add_v2_moderator(room_id, public_key)

    def remove_moderator(self, room_id: str, public_key: str, by: Member | None = None) -> bool:
        if by is not None:
            require_moderator(by, room_id)
        return self.staff.remove_v2_moderator(
            room_id, public_key, by.public_key if by is not None else None
        )

    def bans(self, member: Member) -> list[str]:
        with self.db.read() as conn:
            return q.list_bans(conn, member.room_id)

    def ban(self, member: Member, public_key: str, *, delete_all: bool = False) -> None:
        require_moderator(member)
        self.staff.v2_ban(member.room_id, public_key, delete_all=delete_all)

    def unban(self, member: Member, public_key: str) -> None:
        require_moderator(member)
        self.staff.v2_unban(member.room_id, public_key)
