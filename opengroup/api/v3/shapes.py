"""How the community API's objects look on the wire (docs/spec/sogs-v3.md 1.7).

Keys that do not apply are left out rather than sent as null, except where
clients read a null (``data`` of a deleted message)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from opengroup.domain.community import Community
from opengroup.domain.posts import MessageView
from opengroup.domain.room_info import RoomSnapshot

# The bytes of shaped messages a worker keeps for each community (see shaped_messages).
SHAPED_BYTES_KEPT = 8 * 1024 * 1024


def message_json(view: MessageView, *, reaction_only: bool = False) -> dict[str, Any]:
    """A message; a deletion (``data`` null, ``deleted`` true); or, for a change of
    reactions only, exactly ``{id, seqno, reactions}`` (clients tell it by its keys)."""
    m = view.message
    reactions = {
        name: {
            "index": r.place,
            "count": r.total,
            **({"reactors": r.reactors} if r.reactors else {}),
            **({"you": True} if r.you else {}),
        }
        for name, r in view.reactions.items()
    }
    if reaction_only:
        return {"id": m.id, "seqno": m.seqno, "reactions": reactions}
    out: dict[str, Any] = {"id": m.id, "session_id": m.session_id, "posted": m.posted}
    if m.edited is not None:
        out["edited"] = m.edited
    out["seqno"] = m.seqno
    if m.deleted:
        out["data"] = None
        out["deleted"] = True
        return out
    out["data"] = m.data
    out["signature"] = m.signature
    if m.whisper_to is not None or m.whisper_mods:
        out["whisper"] = True
        out["whisper_mods"] = m.whisper_mods
        if m.whisper_to is not None:
            out["whisper_to"] = m.whisper_to
    out["reactions"] = reactions
    return out


def shaped_messages(
    community: Community,
    room_id: str,
    views: Sequence[MessageView],
    reactors: int,
    reaction_only: Callable[[MessageView], bool] = lambda _: False,
) -> list[Any]:
    """:func:`message_json` of each view (``reaction_only`` tells which are changes of
    reactions only), for a page of messages: as JSON already encoded where it is kept.

    A message looks the same to every reader who may see it but those among its
    reactors (``you``), for as long as it keeps its seqno: every change to it moves
    its seqno, its reactions included. So each worker keeps the JSON of the messages
    it sent last (up to ``SHAPED_BYTES_KEPT`` bytes per community, the oldest dropped
    first) by message, seqno, reactors shown and form, and a busy room's new messages
    are shaped once, not once per poller. A reader among a message's reactors gets it
    shaped for them. A message is known by its room, its id and when it was posted
    (ids and seqnos are the room's; a room deleted and made again under the same
    token numbers its messages afresh)."""
    kept = _SHAPED.get(community)
    if kept is None:
        kept = _SHAPED.setdefault(community, _ShapedMessages())
    out: list[Any] = []
    for view in views:
        only = reaction_only(view)
        if view.reader_reacted:
            out.append(message_json(view, reaction_only=only))
            continue
        m = view.message
        key = (room_id, m.id, m.posted, m.seqno, reactors, only)
        shaped = kept.get(key)
        if shaped is None:
            shaped = orjson.dumps(message_json(view, reaction_only=only))
            kept.keep(key, shaped)
        out.append(orjson.Fragment(shaped))
    return out


# room, message id, when it was posted, its seqno, reactors shown, whether as a change
# of reactions only
_ShapeKey = tuple[str, int, float, int, int, bool]


class _ShapedMessages:
    """Messages' JSON by :data:`_ShapeKey`, up to ``SHAPED_BYTES_KEPT`` bytes (the
    oldest kept dropped first). Request threads and the event loop share it."""

    def __init__(self) -> None:
        self._kept: dict[_ShapeKey, bytes] = {}
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: _ShapeKey) -> bytes | None:
        return self._kept.get(key)

    def keep(self, key: _ShapeKey, shaped: bytes) -> None:
        with self._lock:
            if key in self._kept or len(shaped) > SHAPED_BYTES_KEPT:
                return
            self._kept[key] = shaped
            self._size += len(shaped)
            while self._size > SHAPED_BYTES_KEPT:
                self._size -= len(self._kept.pop(next(iter(self._kept))))


_SHAPED: weakref.WeakKeyDictionary[Community, _ShapedMessages] = weakref.WeakKeyDictionary()


def permissions_json(snapshot: RoomSnapshot) -> dict[str, Any]:
    """The caller's rights: ``read``, ``write``, ``upload`` always; staff flags when
    true; the room's defaults for moderators."""
    access = snapshot.access
    out: dict[str, Any] = {"read": access.read, "write": access.write, "upload": access.upload}
    for flag in ("moderator", "admin", "global_moderator", "global_admin"):
        if getattr(access, flag):
            out[flag] = True
    if access.moderator:
        room = snapshot.room
        out["default_read"] = room.default_read
        out["default_accessible"] = room.default_accessible
        out["default_write"] = room.default_write
        out["default_upload"] = room.default_upload
    return out


def room_json(snapshot: RoomSnapshot, active_users_cutoff: int) -> dict[str, Any]:
    room = snapshot.room
    staff = snapshot.staff
    out: dict[str, Any] = {"token": room.id, "name": room.name}
    if room.description:
        out["description"] = room.description
    out.update(
        {
            "info_updates": room.info_updates,
            "message_sequence": room.seqno,
            "created": room.created_at,
            "active_users": snapshot.active_users,
            "active_users_cutoff": active_users_cutoff,
            "admins": staff.admins,
            "moderators": staff.moderators,
        }
    )
    if snapshot.access.moderator:
        if staff.hidden_admins:
            out["hidden_admins"] = staff.hidden_admins
        if staff.hidden_moderators:
            out["hidden_moderators"] = staff.hidden_moderators
    if room.image_file_id is not None:
        out["image_id"] = room.image_file_id
    if snapshot.pins:
        # Only admins pin: a pinner who is not visible staff is shown to moderators only.
        shown = set(staff.admins) | set(staff.moderators)
        out["pinned_messages"] = [
            {"id": p.message_id, "pinned_at": p.pinned_at}
            | (
                {"pinned_by": p.pinned_by}
                if snapshot.access.moderator or p.pinned_by in shown
                else {}
            )
            for p in snapshot.pins
        ]
    out.update(permissions_json(snapshot))
    return out
