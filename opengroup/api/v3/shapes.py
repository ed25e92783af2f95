"""How the community API's objects look on the wire (docs/spec/sogs-v3.md 1.7).

Keys that do not apply are left out rather than sent as null, except where
clients read a null (``data`` of a deleted message)."""

from __future__ import annotations

from typing import Any

from opengroup.domain.posts import MessageView
from opengroup.domain.room_info import RoomSnapshot


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
