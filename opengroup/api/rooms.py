"""Rooms: the public list, one room's details, and its image."""

from __future__ import annotations

from opengroup.api.exchange import JsonObject
from opengroup.api.formats import b64, room_json
from opengroup.api.routing import RoutedRequest
from opengroup.domain import values
from opengroup.domain.community import Community, Member


def list_rooms(og: Community, req: RoutedRequest) -> JsonObject:
    """The rooms anyone may see (a room closed to anonymous callers is left out, as on
    the web page and in the community API)."""
    return {"rooms": [room_json(room) for room in og.rooms.public()]}


def get_room(og: Community, req: RoutedRequest) -> JsonObject:
    return {"room": room_json(og.rooms.get_public(req.path_params["room_id"]))}


def get_room_image(og: Community, req: RoutedRequest) -> JsonObject:
    return {"result": b64(og.files.public_room_image(req.path_params["room_id"]))}


def set_room_image(og: Community, req: RoutedRequest, member: Member) -> JsonObject:
    """Moderators of the room in the path; the Room header is not needed."""
    room_id = req.path_params["room_id"]
    data = values.base64_bytes(req.json().get("file"), "file")
    og.files.set_room_image(member, room_id, data)
    return {"room_id": room_id}
