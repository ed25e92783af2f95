"""Rooms: the list, one room's details, polling for changes, an admin's edits and pins."""

from __future__ import annotations

from typing import Any

from opengroup.api.v3.calls import Call
from opengroup.api.v3.shapes import permissions_json, room_json


def list_rooms(call: Call) -> list[dict[str, Any]]:
    cutoff = call.community.settings.active_users_cutoff_seconds
    return [room_json(s, cutoff) for s in call.community.room_info.visible_rooms(call.user)]


def get_room(call: Call) -> dict[str, Any]:
    snapshot = call.community.room_info.snapshot(call.in_room)
    return room_json(snapshot, call.community.settings.active_users_cutoff_seconds)


def poll_info(call: Call) -> dict[str, Any]:
    """The caller's rights and the active users; the details too when the client's
    ``info_updates`` is not the room's."""
    known = call.int_param("info_updated")
    snapshot = call.community.room_info.snapshot(call.in_room)
    out: dict[str, Any] = {"token": snapshot.room.id, "active_users": snapshot.active_users}
    out.update(permissions_json(snapshot))
    if known != snapshot.room.info_updates:
        out["details"] = room_json(snapshot, call.community.settings.active_users_cutoff_seconds)
    if call.user is not None:
        call.community.room_info.note_activity(call.in_room.id, call.user.session_id)
    return out


def update_room(call: Call) -> dict[str, Any]:
    info_updates = call.community.room_info.update(call.in_room, call.json_object())
    return {"info_updates": info_updates}


def pin(call: Call) -> dict[str, Any]:
    room_info = call.community.room_info
    return {"info_updates": room_info.pin(call.in_room, call.signer, call.int_param("message_id"))}


def unpin(call: Call) -> dict[str, Any]:
    unpinned, info_updates = call.community.room_info.unpin(
        call.in_room, call.int_param("message_id")
    )
    return {"unpinned": unpinned > 0, "info_updates": info_updates}


def unpin_all(call: Call) -> dict[str, Any]:
    unpinned, info_updates = call.community.room_info.unpin(call.in_room, None)
    return {"unpinned": unpinned, "info_updates": info_updates}
