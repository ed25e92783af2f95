"""Who may do what in a room: the one place that decides, for both APIs.

A user's rights in a room come from, strongest first (the order itself is
:func:`opengroup.rights.decide`, which the v2 room head applies too):

1. staff: a room or global admin or moderator may do everything a user may,
   and is never held back by a ban or an override;
2. a ban (of the room, or of the whole server) that has not expired: nothing;
3. the user's own overrides of read, accessible, write and upload;
4. the room's defaults.

Anonymous callers (no signature) get the room's defaults for reading, and may
never write or upload.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from opengroup import rights
from opengroup.domain.errors import NoSuchRoom, NotPermitted
from opengroup.domain.values import could_be_room_id
from opengroup.storage import people, roomdetails
from opengroup.storage.batching import Batcher
from opengroup.storage.database import Database
from opengroup.storage.roomdetails import RoomDetails


@dataclass(frozen=True)
class RoomAccess:
    """One caller's rights in one room."""

    read: bool
    accessible: bool
    write: bool
    upload: bool
    moderator: bool = False  # of this room or of every room
    admin: bool = False
    global_moderator: bool = False
    global_admin: bool = False
    banned: bool = False
    # Visible staff (False: a hidden moderator or admin).
    visible: bool = False

    @property
    def may_see_room(self) -> bool:
        """Whether the room exists as far as the caller can tell."""
        return self.accessible or self.read or self.moderator


@dataclass(frozen=True)
class RoomView:
    """A room and the caller's rights in it."""

    room: RoomDetails
    access: RoomAccess

    @property
    def id(self) -> str:
        return self.room.id


def room_access(conn: Connection, room: RoomDetails, keys: Sequence[str], now: float) -> RoomAccess:
    """The rights of the person known under ``keys`` (none: anonymous) in ``room``."""
    if not keys:
        return _access(room, None)
    return _access(room, people.rights_facts(conn, room.id, keys, now))


def _access(room: RoomDetails, facts: people.RightsFacts | None) -> RoomAccess:
    """The caller's rights from what the tables say (None: an anonymous caller), in the
    order :func:`opengroup.rights.decide` holds them to."""
    if facts is None:
        return RoomAccess(
            read=room.default_read, accessible=room.default_accessible, write=False, upload=False
        )
    own, server = facts.room_role, facts.global_role
    staff = own is not None or server is not None
    banned = not staff and (facts.room_banned or facts.globally_banned)
    defaults = (room.default_read, room.default_accessible, room.default_write, room.default_upload)
    overrides = tuple(facts.overrides.get(right) for right in people.PERMISSIONS)
    read, accessible, write, upload = rights.decide(
        staff=staff, banned=banned, defaults=defaults, overrides=overrides
    )
    return RoomAccess(
        read=read,
        accessible=accessible,
        write=write,
        upload=upload,
        moderator=staff,
        admin=(own is not None and own.admin) or (server is not None and server.admin),
        global_moderator=server is not None,
        global_admin=server is not None and server.admin,
        banned=banned,
        visible=(own is not None and own.visible) or (server is not None and server.visible),
    )


def view_room(conn: Connection, token: str, keys: Sequence[str], now: float) -> RoomView:
    """The room named ``token`` with the caller's rights; 404 if there is none or the
    caller may not know of it. A room named by its exact id is read with the caller's
    rights in one statement."""
    if not could_be_room_id(token):
        raise NoSuchRoom(token)
    found = _rooms_with_access(conn, [token], keys, now).get(token)
    if found is None:  # perhaps named in another case
        room = roomdetails.find_room(conn, token)
        found = (room, room_access(conn, room, keys, now)) if room is not None else None
    view = _view(*found) if found is not None else None
    if view is None:
        raise NoSuchRoom(token)
    return view


def view_rooms(
    conn: Connection, tokens: Sequence[str], keys: Sequence[str], now: float
) -> dict[str, RoomView]:
    """:func:`view_room` of the rooms whose ids are exactly ``tokens``, in one statement
    (a ``/batch`` polling many rooms reads them so); the tokens of rooms that are not
    there, or that the caller may not know of, are left out."""
    return _visible(_rooms_with_access(conn, tokens, keys, now))


def view_rooms_and_newest_dms(
    conn: Connection, tokens: Sequence[str], keys: Sequence[str], now: float, dm_key: str
) -> tuple[dict[str, RoomView], people.NewestDirectMessages | None]:
    """:func:`view_rooms`, and in the same statement the newest direct messages to and
    from ``dm_key`` (None if no token could name a room: nothing was read)."""
    [answer] = view_rooms_and_newest_dms_of_each(conn, [(tokens, keys, dm_key)], now)
    return answer


# What a batch poll reads ahead: the tokens of the rooms it names, the keys its signer
# is known under, and the key their direct messages are kept under.
RoomsAndBoxes = tuple[Sequence[str], Sequence[str], str]
RoomsAndNewest = tuple[dict[str, RoomView], people.NewestDirectMessages | None]


def view_rooms_and_newest_dms_of_each(
    conn: Connection, asks: Sequence[RoomsAndBoxes], now: float
) -> list[RoomsAndNewest]:
    """:func:`view_rooms_and_newest_dms` of each ask, in order: on PostgreSQL in one
    round trip for them all."""
    room_asks = [(_room_ids(tokens), keys, dm_key) for tokens, keys, dm_key in asks]
    found = iter(
        people.rooms_rights_and_newest_dms_of_each(conn, [ask for ask in room_asks if ask[0]], now)
    )
    answers: list[RoomsAndNewest] = []
    for room_ids, keys, _ in room_asks:
        if not room_ids:
            answers.append(({}, None))
            continue
        rooms, newest = next(found)
        answers.append((_visible(_with_access(rooms, keys)), newest))
    return answers


class RoomViewsTogether:
    """:func:`view_rooms_and_newest_dms` for batch polls answered on the event loop, on
    PostgreSQL: the asks made while the loop is busy wait for its next turn and are
    read together, in one round trip (a pipeline) instead of one each. The loop does
    nothing else while it waits for a round trip, and each costs both processes more
    CPU than the statement itself (a third of a batch poll's time on the loop went to
    this one). SQLite has no round trip to save: there a batch reads it as it runs,
    in its own read transaction (``gathers`` is false)."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        self.gathers = not db.is_sqlite
        self._together = Batcher(self._read_each, 1)

    async def read(self, ask: RoomsAndBoxes) -> RoomsAndNewest:
        return await self._together.submit(ask)

    async def _read_each(self, asks: list[RoomsAndBoxes]) -> list[RoomsAndNewest]:
        with self._db.shared_reads(), self._db.read() as conn:
            return view_rooms_and_newest_dms_of_each(conn, asks, self._clock())

    async def close(self) -> None:
        await self._together.close()


def _room_ids(tokens: Sequence[str]) -> list[str]:
    return [token for token in tokens if could_be_room_id(token)]


def _visible(rooms: dict[str, tuple[RoomDetails, RoomAccess]]) -> dict[str, RoomView]:
    """The rooms as the caller sees them (those they may not know of left out)."""
    views = {}
    for room_id, (room, access) in rooms.items():
        view = _view(room, access)
        if view is not None:
            views[room_id] = view
    return views


def _rooms_with_access(
    conn: Connection, tokens: Sequence[str], keys: Sequence[str], now: float
) -> dict[str, tuple[RoomDetails, RoomAccess]]:
    """The rooms whose ids are exactly ``tokens``, each with the caller's rights in it
    (whether or not they may know of it), in one statement."""
    room_ids = _room_ids(tokens)
    if not room_ids:
        return {}
    return _with_access(people.rooms_and_rights_facts(conn, room_ids, keys, now), keys)


def _with_access(
    found: dict[str, people.RoomAndFacts], keys: Sequence[str]
) -> dict[str, tuple[RoomDetails, RoomAccess]]:
    return {
        room_id: (room, _access(room, facts if keys else None))
        for room_id, (room, facts) in found.items()
    }


def _view(room: RoomDetails, access: RoomAccess) -> RoomView | None:
    """The room as the caller sees it; None if they may not know of it (a banned caller
    does: they are told they are banned)."""
    if not access.may_see_room and not access.banned:
        return None
    return RoomView(room, access)


def check_may_delete(author: str, keys: Sequence[str], moderator: bool, message_id: int) -> None:
    """Who may delete a message, whichever API asks: its author, or a moderator."""
    if not moderator and author not in keys:
        raise NotPermitted(f"message {message_id} is not yours to delete")
