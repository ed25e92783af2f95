"""Moderation: moderators (added by the operator or another moderator) and bans."""

from __future__ import annotations

from opengroup.domain.errors import BadRequest
from opengroup.domain.parts import CommunityPart, Member
from opengroup.storage import queries as q


class Moderation(CommunityPart):
    """Moderators and bans of a room."""

    def moderators(self, room_id: str) -> list[str]:
        with self.db.read() as conn:
            self._room(conn, room_id)
            return q.list_moderators(conn, room_id)

    def add_moderator(self, room_id: str, public_key: str, by: Member | None = None) -> bool:
        """Make someone a moderator; ``by`` is None for the operator's CLI."""
        if by is not None:
            self._require_moderator(by, room_id)
        with self.db.write() as conn:
            q.lock_room(conn, room_id)
            self._room(conn, room_id)
            q.remove_ban(conn, room_id, public_key)
            return q.add_moderator(conn, room_id, public_key, self.clock())

    def remove_moderator(self, room_id: str, public_key: str, by: Member | None = None) -> bool:
        if by is not None:
            self._require_moderator(by, room_id)
        with self.db.write() as conn:
            self._room(conn, room_id)
            return q.remove_moderator(conn, room_id, public_key)

    def bans(self, member: Member) -> list[str]:
        with self.db.read() as conn:
            return q.list_bans(conn, member.room_id)

    def ban(self, member: Member, public_key: str, *, delete_all: bool = False) -> None:
        self._require_moderator(member)
        with self.db.write() as conn:
            q.lock_room(conn, member.room_id)  # concurrent bans: one ban, one deletion each
            if q.is_moderator(conn, member.room_id, public_key):
                raise BadRequest("a moderator cannot be banned; remove them as moderator first")
            q.add_ban(conn, member.room_id, public_key, self.clock())
            if delete_all:
                for server_id in q.live_message_ids_by(conn, member.room_id, public_key):
                    q.mark_deleted(conn, member.room_id, server_id)

    def unban(self, member: Member, public_key: str) -> None:
        self._require_moderator(member)
        with self.db.write() as conn:
            q.remove_ban(conn, member.room_id, public_key)
