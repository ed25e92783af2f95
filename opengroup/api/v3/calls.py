"""The vocabulary of the community API's handlers: who may call a route
(:class:`Access`), what a handler is given (:class:`Call`) and what it answers
(:class:`Answer`)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import orjson

from opengroup.api.jsonbody import parse_json
from opengroup.domain import values
from opengroup.domain.access import RoomView
from opengroup.domain.errors import InvalidInput, NotAuthenticated, NotPermitted
from opengroup.domain.users import User
from opengroup.storage.inbox import StoredDirectMessage

if TYPE_CHECKING:
    from opengroup.api.exchange import ApiRequest
    from opengroup.domain.community import Community

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"
NO_CONTENT = ""  # the content type of an answer without a body (304)


class Access(Enum):
    """Who may call a route. The ``ROOM_*`` kinds name the room by the ``{token}`` of
    the path; staff may always do what the others may."""

    ANYONE = "anyone"  # a signature is optional (and checked if given)
    USER = "user"  # a signed request
    BLINDED = "blinded user"  # signed with a blinded ("15") key
    ROOM_VISIBLE = "anyone the room is visible to"
    ROOM_READER = "anyone who may read the room"
    ROOM_MEMBER = "a signed user who may read the room"
    ROOM_WRITER = "a signed user who may write in the room"
    ROOM_UPLOADER = "a signed user who may upload to the room"
    ROOM_MODERATOR = "a moderator of the room (or of every room)"
    ROOM_ADMIN = "an admin of the room (or of every room)"

    @property
    def needs_user(self) -> bool:
        return self not in (Access.ANYONE, Access.ROOM_VISIBLE, Access.ROOM_READER)

    @property
    def needs_room(self) -> bool:
        return self.name.startswith("ROOM_")

    @property
    def right(self) -> str | None:
        """The right of :class:`~opengroup.domain.access.RoomAccess` it needs, if any."""
        return _RIGHTS.get(self)


_RIGHTS = {
    Access.ROOM_READER: "read",
    Access.ROOM_MEMBER: "read",
    Access.ROOM_WRITER: "write",
    Access.ROOM_UPLOADER: "upload",
    Access.ROOM_MODERATOR: "moderator",
    Access.ROOM_ADMIN: "admin",
}


@dataclass(frozen=True)
class Answer:
    """A response: status, body bytes and their exact content type."""

    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Answer:
        return cls(status, orjson.dumps(value), JSON)

    @classmethod
    def text(cls, status: int, reason: str, headers: Mapping[str, str] | None = None) -> Answer:
        return cls(status, reason.encode(), TEXT, headers or {})

    @classmethod
    def binary(cls, data: bytes, headers: Mapping[str, str] | None = None) -> Answer:
        return cls(200, data, BINARY, headers or {})

    @classmethod
    def not_modified(cls) -> Answer:
        """304: no body, so no content type either (the transports send none)."""
        return cls(304, b"", NO_CONTENT)


@dataclass(frozen=True)
class Later:
    """A handler's answer that waits for the event loop first (a post, for the group-
    commit writer): the router awaits ``waiting`` on the loop, and ``then`` makes the
    answer of its result. Within a batch, its thread waits instead."""

    waiting: Coroutine[Any, Any, Any]
    then: Callable[[Any], Answer]


# A page of DMs a handler reads: ("inbox" or "outbox", after which id, how many).
DmPage = tuple[str, int, int]


@dataclass
class BatchReads:
    """What the ``GET`` items of a batch have read so far, for the items after them to
    find: the rooms named, with the signer's rights in each (by token), and pages of
    the signer's DMs read ahead. Forgotten when an item of another method runs (it may
    change any of it)."""

    rooms: dict[str, RoomView] = field(default_factory=dict)
    dm_pages: dict[DmPage, list[StoredDirectMessage]] = field(default_factory=dict)

    def clear(self) -> None:
        self.rooms.clear()
        self.dm_pages.clear()


@dataclass
class Call:
    """One call of a handler: the request, its path parameters, the signer (if any) and,
    for the ``ROOM_*`` routes, the room with the signer's rights in it."""

    community: Community
    request: ApiRequest
    params: dict[str, str]
    user: User | None
    # Answers another request as this one's signer (what /batch runs its items with).
    sub_request: Callable[[ApiRequest], Answer]
    room: RoomView | None = None
    # What this request's batch has read so far (see BatchReads).
    reads: BatchReads = field(default_factory=BatchReads)

    @property
    def signer(self) -> User:
        """The signer, on routes that require one (the router made sure)."""
        if self.user is None:
            raise NotAuthenticated("Authentication required")
        return self.user

    @property
    def in_room(self) -> RoomView:
        """The room, on the ``ROOM_*`` routes (the router looked it up)."""
        if self.room is None:
            raise NotPermitted("this route names no room")
        return self.room

    def json(self) -> Any:
        """The body as JSON (any value; the Content-Type is not required)."""
        if not self.request.body.strip():
            raise InvalidInput("a JSON body is required")
        return parse_json(self.request.body, self.community.settings.max_json_depth)

    def json_object(self) -> dict[str, Any]:
        value = self.json() if self.request.body.strip() else {}
        if not isinstance(value, dict):
            raise InvalidInput("the body must be a JSON object")
        return value

    def int_param(self, name: str) -> int:
        return values.integer(self.params[name], name)

    def query_int(self, name: str, default: int, *, minimum: int = 0, maximum: int) -> int:
        """An integer query parameter; values above ``maximum`` are capped to it."""
        raw = self.request.query.get(name)
        if raw is None or raw == "":
            return default
        return min(values.integer(raw, name, minimum=minimum), maximum)


Handler = Callable[[Call], Any]
