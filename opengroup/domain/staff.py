"""Staff, bans and permissions: who moderates which room, who may not be there, and
one person's own permissions in a room; also deleting everything someone posted.

One person may be known here under several keys: the Session id ("05...") an
operator or moderator named them by, and the blinded id ("15...") they sign in
with (see :mod:`opengroup.domain.users`). Every rule below looks at all of a
person's keys:

- a ``05`` id stands for itself and both blinded ids its owner may use here;
- a ``15`` id stands for itself and the Session ids linked to it (named before).

Roles and bans are changed where the person already has one (under whichever key),
otherwise stored under the key given: a role or ban given to a ``05`` id then
also reaches that person's v2 identity, whose tokens name the ``05`` key. A ban
given to a blinded id reaches it too, once a v2 token's claim has linked the two.
Permission overrides and scheduled changes are stored under the blinded id once it
is known, else under the ``05`` id given. A v2 token is judged by the override of its
own key (the ``05`` id), else by the one under the blinded id its claim linked.

Who may do what (docs/spec/sogs-v3.md 1.4; docs/API.md "Community API"):

- roles: an admin of every room named (or a global admin, for the server's staff);
- bans: a moderator of every room named (or a global moderator); staff cannot be
  banned (400): remove the role first;
- permissions: a moderator of the room;
- the operator (``by`` None, the CLI) may do everything.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from opengroup.config import Settings
from opengroup.domain.access import RoomAccess, RoomView, room_access
from opengroup.domain.errors import InvalidInput, NoSuchRoom, NotPermitted
from opengroup.domain.posts import Posts
from opengroup.domain.users import User, Users, parse_session_id
from opengroup.domain.values import could_be_room_id
from opengroup.storage import people, posts, queries, roomdetails
from opengroup.storage.database import Database
from opengroup.storage.people import FUTURE_PERMISSIONS, PERMISSIONS, StaffEntry
from opengroup.storage.roomdetails import RoomDetails

# rooms: ["*"] names every room in which the caller holds the role needed.
ALL_MY_ROOMS = "*"
# The longest ban or delay accepted, in seconds (a larger value is most likely a
# timestamp sent by mistake).
MAX_SECONDS = 1_000_000_000


@dataclass(frozen=True)
class Scope:
    """Where a role or ban applies: some rooms (ids as given), every room the caller
    holds the role needed in (``mine``), or the whole server (``server``)."""

    rooms: tuple[str, ...] = ()
    mine: bool = False
    server: bool = False

    @classmethod
    def of_rooms(cls, rooms: Sequence[str]) -> Scope:
        return cls(rooms=tuple(dict.fromkeys(rooms)))

    @classmethod
    def everywhere(cls) -> Scope:
        return cls(server=True)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Scope:
        """``{"rooms": [token, ...] | ["*"]}`` or ``{"global": true}``, not both."""
        rooms, server = body.get("rooms"), body.get("global", False)
        if server is None:
            server = False
        if not isinstance(server, bool):
            raise InvalidInput("global must be true or false")
        if rooms is not None and not (
            isinstance(rooms, list) and all(isinstance(r, str) for r in rooms)
        ):
            raise InvalidInput("rooms must be a list of room tokens")
        if rooms and server:
            raise InvalidInput("give rooms or global, not both")
        if not rooms and not server:
            raise InvalidInput('give rooms (a list of room tokens, or ["*"]) or global: true')
        if server:
            return cls.everywhere()
        assert rooms is not None
        if ALL_MY_ROOMS in rooms:
            if len(rooms) > 1:
                raise InvalidInput('"*" must be the only room')
            return cls(mine=True)
        return cls.of_rooms(rooms)


@dataclass(frozen=True)
class RoleChange:
    """What to do to a person's role (docs/API.md lists every combination)."""

    moderator: bool | None = None
    admin: bool | None = None
    visible: bool | None = None

    def __post_init__(self) -> None:
        if self.moderator is None and self.admin is None:
            raise InvalidInput("give moderator or admin (true or false)")
        if self.admin is True and self.moderator is False:
            raise InvalidInput("an admin is always a moderator: admin true needs moderator true")

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> RoleChange:
        return cls(
            moderator=optional_bool(body, "moderator"),
            admin=optional_bool(body, "admin"),
            visible=optional_bool(body, "visible"),
        )

    @property
    def removes(self) -> bool:
        """Whether the person stops being staff."""
        return self.moderator is False


def optional_bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(f"{key} must be true, false or null")
    return value


def seconds(value: Any, field: str) -> float:
    """A duration: a JSON number of seconds, more than 0 and less than 10**9."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{field} must be a number of seconds")
    if not (math.isfinite(value) and 0 < value < MAX_SECONDS):
        raise InvalidInput(f"{field} must be more than 0 and less than {MAX_SECONDS} seconds")
    return float(value)


@dataclass(frozen=True)
class StaffLine:
    """One role, for the operator's listing."""

    room_id: str | None  # None: the whole server
    public_key: str
    admin: bool
    visible: bool


@dataclass(frozen=True)
class BanLine:
    room_id: str | None  # None: the whole server
    public_key: str
    expires_at: float | None


class Staff:
    """Roles, bans, permission overrides and scheduled permission changes."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        users: Users,
        posts: Posts,
        clock: Callable[[], float],
    ) -> None:
        self.db = db
        self.settings = settings
        self.users = users
        self.posts = posts
        self.clock = clock

    # -- people ---------------------------------------------------------------------------

    def _link(self, conn: Connection, session_id: str) -> None:
        """Link a named ``05`` id to its blinded id (nothing to link for a key that is no
        curve point: no blinded id can ever be its owner's)."""
        with contextlib.suppress(ValueError):
            self.users.link(conn, session_id)

    def _person(self, conn: Connection, session_id: str) -> list[str]:
        """Every key the person named by ``session_id`` may act under here."""
        return list(self.users.user(conn, session_id).keys)

    def _override_key(self, conn: Connection, session_id: str) -> str:
        """Where a permission override of the person is stored: the blinded id they were
        seen under, once they were."""
        if session_id.startswith("05"):
            return people.seen_blinded_ids(conn, [session_id]).get(session_id, session_id)
        return session_id

    # -- which rooms, and may the caller ------------------------------------------------

    def _rooms(
        self, conn: Connection, by: User | None, scope: Scope, *, admin: bool
    ) -> list[RoomDetails]:
        """The rooms of a room scope, each of which ``by`` must hold the role in (an admin
        for ``admin``, else a moderator): 404 for an unknown room, 403 without the role."""
        now = self.clock()
        keys = by.keys if by is not None else ()

        def holds(access: RoomAccess) -> bool:
            return access.admin if admin else access.moderator

        if scope.mine:
            found = roomdetails.all_rooms(conn)
            if by is None:
                return found
            mine = [room for room in found if holds(room_access(conn, room, keys, now))]
            if not mine:
                raise NotPermitted(f"you are {'an admin' if admin else 'a moderator'} of no room")
            return mine
        rooms = []
        for token in scope.rooms:
            room = roomdetails.find_room(conn, token) if could_be_room_id(token) else None
            if room is None:
                raise NoSuchRoom(token)
            rooms.append(room)
        if by is not None:
            for room in rooms:
                if not holds(room_access(conn, room, keys, now)):
                    role = "an admin" if admin else "a moderator"
                    raise NotPermitted(f"this needs {role} of room {room.id}")
        return list({room.id: room for room in rooms}.values())

    @staticmethod
    def _check_server_role(conn: Connection, by: User | None, *, admin: bool) -> None:
        if by is None:
            return
        role = people.global_role(conn, by.keys)
        if role is None or (admin and not role.admin):
            raise NotPermitted(f"this needs a global {'admin' if admin else 'moderator'}")

    # -- roles --------------------------------------------------------------------------

    def set_role(
        self, by: User | None, session_id: str, scope: Scope, change: RoleChange
    ) -> dict[str, int]:
        """Add, change or remove someone's role in rooms or on the whole server; each
        room's ``info_updates`` (every room's, for the server's staff)."""
        return self._set_role(by, session_id, scope, change)[0]

    def remove_role(self, by: User | None, session_id: str, scope: Scope) -> list[str | None]:
        """Remove someone's role in rooms or on the server; where they held one (room
        ids; None: the server)."""
        return self._set_role(by, session_id, scope, RoleChange(moderator=False))[1]

    def _set_role(
        self, by: User | None, session_id: str, scope: Scope, change: RoleChange
    ) -> tuple[dict[str, int], list[str | None]]:
        """(each room's ``info_updates``, where the role changed)."""
        session_id = parse_session_id(session_id)
        now = self.clock()
        with self.db.write() as conn:
            self._link(conn, session_id)
            keys = self._person(conn, session_id)
            if scope.server:
                self._check_server_role(conn, by, admin=True)
                entries = people.global_staff_of(conn, keys)
                changed = self._apply_role(conn, None, session_id, keys, entries, change, now)
                rooms = roomdetails.all_rooms(conn)
                if not changed:
                    return {room.id: room.info_updates for room in rooms}, []
                bumped = {room.id: roomdetails.bump_info_updates(conn, room.id) for room in rooms}
                return bumped, [None]
            info: dict[str, int] = {}
            where: list[str | None] = []
            for room in self._rooms(conn, by, scope, admin=True):
                entries = people.room_staff_of(conn, room.id, keys)
                if self._apply_role(conn, room.id, session_id, keys, entries, change, now):
                    info[room.id] = roomdetails.bump_info_updates(conn, room.id)
                    where.append(room.id)
                else:
                    info[room.id] = room.info_updates
            return info, where

    @staticmethod
    def _apply_role(
        conn: Connection,
        room_id: str | None,
        session_id: str,
        keys: Sequence[str],
        entries: Sequence[StaffEntry],
        change: RoleChange,
        now: float,
    ) -> bool:
        """Apply ``change`` to one scope (a room, or None: the server); whether anything
        changed. Someone who becomes staff there loses their ban there."""
        if change.removes:
            if room_id is None:
                return people.remove_global_staff_of(conn, keys) > 0
            return people.remove_room_staff_of(conn, room_id, keys) > 0
        was_admin = any(e.admin for e in entries)
        was_visible = any(e.visible for e in entries)
        if change.admin is True:
            admin = True
        elif change.admin is False:
            admin = False
            if change.moderator is None and not entries:
                return False  # "not an admin" of someone who holds no role: nothing to do
        else:
            admin = was_admin
        default_visible = room_id is not None  # room staff are visible, the server's hidden
        visible = change.visible
        if visible is None:
            visible = was_visible if entries else default_visible
        if entries:
            if (admin, visible) == (was_admin, was_visible) and len(entries) == 1:
                return False
            if room_id is None:
                people.update_global_staff(conn, keys, admin=admin, visible=visible)
            else:
                people.update_room_staff(conn, room_id, keys, admin=admin, visible=visible)
            return True
        if room_id is None:
            people.set_global_staff(conn, session_id, admin, visible, now)
            people.remove_global_ban(conn, keys)
        else:
            people.set_room_staff(conn, room_id, session_id, admin, visible, now)
            people.remove_room_ban(conn, room_id, keys)
        return True

    # -- bans ---------------------------------------------------------------------------

    def ban(
        self, by: User | None, session_id: str, scope: Scope, timeout: float | None = None
    ) -> None:
        """Ban someone from rooms or from the server, for ``timeout`` seconds or until
        lifted; 400 if they are staff there (a server ban: staff anywhere)."""
        session_id = parse_session_id(session_id)
        now = self.clock()
        expires_at = now + timeout if timeout is not None else None
        with self.db.write() as conn:
            self._link(conn, session_id)
            keys = self._person(conn, session_id)
            server_staff = people.global_role(conn, keys) is not None
            if scope.server:
                self._check_server_role(conn, by, admin=False)
                if server_staff or people.staff_rooms_of(conn, keys):
                    raise InvalidInput("staff cannot be banned; remove them as moderator first")
                if not people.update_global_bans(conn, keys, now, expires_at):
                    people.set_global_ban(conn, session_id, now, expires_at)
                return
            for room in self._rooms(conn, by, scope, admin=False):
                if server_staff or people.room_role(conn, room.id, keys) is not None:
                    raise InvalidInput(
                        f"a moderator of {room.id} cannot be banned there; "
                        "remove them as moderator first"
                    )
                if not people.update_room_bans(conn, room.id, keys, now, expires_at):
                    people.set_room_ban(conn, room.id, session_id, now, expires_at)

    def unban(self, by: User | None, session_id: str, scope: Scope) -> int:
        """Lift someone's bans in rooms or on the server; how many were lifted."""
        session_id = parse_session_id(session_id)
        with self.db.write() as conn:
            keys = self._person(conn, session_id)
            if scope.server:
                self._check_server_role(conn, by, admin=False)
                return people.remove_global_ban(conn, keys)
            return sum(
                people.remove_room_ban(conn, room.id, keys)
                for room in self._rooms(conn, by, scope, admin=False)
            )

    # -- the v2 API's moderators (a token holder of the room; see domain.moderation) -------

    def add_v2_moderator(self, room_id: str, session_id: str) -> bool:
        """Make someone a visible moderator of the room (and lift their ban there); False
        if they hold a role there already (which stays as it is)."""
        with self.db.write() as conn:
            queries.lock_room(conn, room_id)
            if queries.get_room(conn, room_id) is None:
                raise NoSuchRoom(room_id)
            self._link(conn, session_id)
            keys = self._person(conn, session_id)
            people.remove_room_ban(conn, room_id, keys)
            if people.room_staff_of(conn, room_id, keys):
                return False
            people.set_room_staff(conn, room_id, session_id, False, True, self.clock())
            roomdetails.bump_info_updates(conn, room_id)
            return True

    def remove_v2_moderator(self, room_id: str, session_id: str, by: str | None) -> bool:
        """Remove someone's role in the room; False if they held none. An admin is removed
        only by an admin (``by``: the caller's key; None: the operator)."""
        with self.db.write() as conn:
            if queries.get_room(conn, room_id) is None:
                raise NoSuchRoom(room_id)
            keys = self._person(conn, session_id)
            entries = people.room_staff_of(conn, room_id, keys)
            if not entries:
                return False
            if by is not None and any(e.admin for e in entries):
                caller = self._person(conn, by)
                own, server = (
                    people.room_role(conn, room_id, caller),
                    people.global_role(conn, caller),
                )
                if not ((own is not None and own.admin) or (server is not None and server.admin)):
                    raise NotPermitted("only an admin may remove an admin")
            people.remove_room_staff_of(conn, room_id, keys)
            roomdetails.bump_info_updates(conn, room_id)
            return True

    def v2_ban(self, room_id: str, session_id: str, *, delete_all: bool = False) -> None:
        """A ban until lifted in one room (the v2 API); with ``delete_all`` the person's
        messages there go too (under all their keys)."""
        with self.db.write() as conn:
            queries.lock_room(conn, room_id)  # concurrent bans: one ban, one deletion each
            self._link(conn, session_id)
            keys = self._person(conn, session_id)
            if people.room_role(conn, room_id, keys) or people.global_role(conn, keys):
                raise InvalidInput("a moderator cannot be banned; remove them as moderator first")
            now = self.clock()
            if not people.update_room_bans(conn, room_id, keys, now, None):
                people.set_room_ban(conn, room_id, session_id, now, None)
            if delete_all:
                for message_id in posts.live_ids_by(conn, room_id, keys):
                    queries.mark_deleted(conn, room_id, message_id)

    def v2_unban(self, room_id: str, session_id: str) -> None:
        with self.db.write() as conn:
            people.remove_room_ban(conn, room_id, self._person(conn, session_id))

    # -- the operator's lists -------------------------------------------------------------

    def staff_lines(self, room: str | None = None) -> list[StaffLine]:
        """Every role (of one room's own staff only, if given), by room then key; the
        server's staff last."""
        with self.db.read() as conn:
            if room is not None:
                details = roomdetails.find_room(conn, room)
                if details is None:
                    raise NoSuchRoom(room)
                entries = people.room_staff(conn, details.id)
                return [
                    StaffLine(details.id, e.public_key, e.admin, e.visible)
                    for e in sorted(entries, key=lambda e: e.public_key)
                    if not e.is_global
                ]
            lines = [
                StaffLine(room_id, e.public_key, e.admin, e.visible)
                for room_id, e in people.every_room_staff(conn)
            ]
            return lines + [
                StaffLine(None, e.public_key, e.admin, e.visible) for e in people.global_staff(conn)
            ]

    def ban_lines(self) -> list[BanLine]:
        """Every ban in force, by room then key; the server's bans last."""
        now = self.clock()
        with self.db.read() as conn:
            lines = [BanLine(*row) for row in people.every_room_ban(conn, now)]
            return lines + [BanLine(None, *row) for row in people.server_bans(conn, now)]

    # -- permissions of one person in a room (a moderator of the room asks) ---------------

    def permissions(self, view: RoomView) -> dict[str, dict[str, bool]]:
        """Everyone with something of their own in the room (a role, a ban in force, an
        override), by the id staff lists show them under."""
        now = self.clock()
        with self.db.read() as conn:
            own_staff = [e.public_key for e in people.room_staff(conn, view.id) if not e.is_global]
            banned = [key for key, _until in people.room_bans(conn, view.id, now)]
            overridden = list(people.all_overrides(conn, view.id))
            named = list(dict.fromkeys(own_staff + banned + overridden))
            display = self.users.display_ids(conn, named)
            groups: dict[str, list[str]] = {}
            for key in named:
                groups.setdefault(display[key], []).append(key)
            return {
                shown: self._entry(conn, view.id, sorted(keys, key=_blinded_first), now)
                for shown, keys in sorted(groups.items())
            }

    def user_permissions(self, view: RoomView, session_id: str) -> dict[str, bool]:
        session_id = parse_session_id(session_id)
        with self.db.read() as conn:
            return self._entry(conn, view.id, self._person(conn, session_id), self.clock())

    def set_permissions(
        self, view: RoomView, session_id: str, body: dict[str, Any]
    ) -> tuple[str, dict[str, bool]]:
        """Grant or revoke some of read, accessible, write and upload (``p``: true or
        false), or return them to the room's defaults (``default_p``: true). Scheduled
        changes of those permissions are dropped unless ``unschedule`` is false. The id
        the change was stored under, and the person's entry afterwards."""
        session_id = parse_session_id(session_id)
        changes: dict[str, bool | None] = {}
        for name in PERMISSIONS:
            value = optional_bool(body, name)
            default = optional_bool(body, "default_" + name)
            if value is not None:
                if default:
                    raise InvalidInput(f"give {name} or default_{name}, not both")
                changes[name] = value
            elif default:
                changes[name] = None
        unschedule = optional_bool(body, "unschedule")
        if not changes:
            raise InvalidInput(
                "nothing to change: give read, write, upload, accessible or default_*"
            )
        with self.db.write() as conn:
            self._link(conn, session_id)
            keys = self._person(conn, session_id)
            key = self._override_key(conn, session_id)
            if unschedule is not False:
                people.clear_future_changes(conn, view.id, keys, list(changes))
            for other in keys:
                if other != key:  # the person's other keys no longer decide these
                    people.set_overrides(conn, view.id, other, dict.fromkeys(changes))
            people.set_overrides(conn, view.id, key, changes)
            entry = self._entry(conn, view.id, [key, *keys], self.clock())
            return self.users.display_ids(conn, [key])[key], entry

    def future_permissions(
        self, view: RoomView, session_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The room's scheduled permission changes and ban ends, soonest first (of one
        person, without ``session_id`` keys, if ``session_id`` is given)."""
        with self.db.read() as conn:
            keys = None
            if session_id is not None:
                keys = self._person(conn, parse_session_id(session_id))
            return self._futures(conn, view.id, keys)

    def schedule(
        self, view: RoomView, session_id: str, body: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Schedule a change of some of read, write and upload ``in`` seconds; the
        person's scheduled changes afterwards."""
        session_id = parse_session_id(session_id)
        changes = {
            name: value
            for name in FUTURE_PERMISSIONS
            if (value := optional_bool(body, name)) is not None
        }
        if not changes:
            raise InvalidInput("give read, write or upload (true or false) to schedule")
        delay = seconds(body.get("in"), "in")
        with self.db.write() as conn:
            self._link(conn, session_id)
            key = self._override_key(conn, session_id)
            people.add_future_permissions(conn, view.id, key, self.clock() + delay, changes)
            return self._futures(conn, view.id, self._person(conn, session_id))

    def apply_due(self) -> dict[str, int]:
        """Apply the scheduled permission changes that are due and drop the bans whose
        time is up (the worker's loop); how many of each."""
        with self.db.write() as conn:
            return self.apply_due_in(conn)

    def apply_due_in(self, conn: Connection) -> dict[str, int]:
        """:meth:`apply_due` in the caller's write transaction."""
        now = self.clock()
        return {
            "future_permissions": people.apply_due_future_permissions(conn, now),
            "bans": people.prune_expired_bans(conn, now),
        }

    def _entry(
        self, conn: Connection, room_id: str, keys: Sequence[str], now: float
    ) -> dict[str, bool]:
        """One person's own standing in a room: their overrides (the first key's win),
        ``moderator`` or ``admin`` (and ``hidden``) for the room's own staff, ``banned``."""
        entry: dict[str, bool] = dict(people.overrides(conn, room_id, list(dict.fromkeys(keys))))
        staff = people.room_staff_of(conn, room_id, keys)
        if staff:
            entry["admin" if any(e.admin for e in staff) else "moderator"] = True
            if not any(e.visible for e in staff):
                entry["hidden"] = True
        if people.is_room_banned(conn, room_id, keys, now):
            entry["banned"] = True
        return entry

    def _futures(
        self, conn: Connection, room_id: str, keys: Sequence[str] | None
    ) -> list[dict[str, Any]]:
        rows: list[tuple[float, str, dict[str, bool]]] = [
            (change.at, change.public_key, dict(change.changes))
            for change in people.future_changes(conn, room_id, keys)
        ]
        rows += [
            (at, key, {"banned": False})
            for key, at in people.room_ban_expiries(conn, room_id, self.clock(), keys)
        ]
        rows.sort(key=lambda row: row[0])
        display = self.users.display_ids(conn, [key for _at, key, _changes in rows])
        out = []
        for at, key, changes in rows:
            item: dict[str, Any] = {"at": at, **changes}
            if keys is None:
                item["session_id"] = display[key]
            out.append(item)
        return out

    # -- deleting everything someone posted -----------------------------------------------

    def delete_all(self, view: RoomView, by: User, session_id: str) -> int:
        """Delete every message the person posted in the room (and expire their uploads,
        not the room image); how many. The person themself, or a moderator; an admin's
        messages only by an admin."""
        session_id = parse_session_id(session_id)
        with self.db.read() as conn:
            keys = self._person(conn, session_id)
            self._check_may_delete_all(conn, view, by, keys)
        return self.posts.delete_all_by(view, keys)

    def delete_everywhere(self, by: User, session_id: str) -> dict[str, int]:
        """:meth:`delete_all` in every room the caller may do it in (others are left out):
        room id -> how many."""
        session_id = parse_session_id(session_id)
        now = self.clock()
        views = []
        with self.db.read() as conn:
            keys = self._person(conn, session_id)
            for room in roomdetails.all_rooms(conn):
                view = RoomView(room, room_access(conn, room, by.keys, now))
                try:
                    self._check_may_delete_all(conn, view, by, keys)
                except NotPermitted:
                    continue
                views.append(view)
        return {view.id: self.posts.delete_all_by(view, keys) for view in views}

    def operator_delete_all(self, session_id: str, scope: Scope) -> dict[str, int]:
        """The operator deletes every message the person posted (and expires their
        uploads) in the scope's rooms, every room for the whole server: room id -> how
        many. Both APIs see the deletions."""
        session_id = parse_session_id(session_id)
        with self.db.read() as conn:
            keys = self._person(conn, session_id)
            if scope.server:
                found = roomdetails.all_rooms(conn)
            else:
                found = self._rooms(conn, None, scope, admin=False)
        operator = RoomAccess(
            read=True, accessible=True, write=True, upload=True, moderator=True, admin=True
        )
        return {room.id: self.posts.delete_all_by(RoomView(room, operator), keys) for room in found}

    @staticmethod
    def _check_may_delete_all(
        conn: Connection, view: RoomView, by: User, keys: Sequence[str]
    ) -> None:
        access = view.access
        if set(keys) & set(by.keys):
            if access.banned or not access.may_see_room:
                raise NotPermitted("you may not delete messages in this room")
            return
        if not access.moderator:
            raise NotPermitted("only a moderator may delete someone else's messages")
        own, server = people.room_role(conn, view.id, keys), people.global_role(conn, keys)
        target_admin = (own is not None and own.admin) or (server is not None and server.admin)
        if target_admin and not access.admin:
            raise NotPermitted("only an admin may delete an admin's messages")


def _blinded_first(key: str) -> tuple[bool, str]:
    return (not key.startswith("15"), key)
