"""Moderators and bans, per room."""

from __future__ import annotations

from opengroup.api.routing import ApiRequest, JsonObject
from opengroup.domain import values
from opengroup.domain.community import Community
from opengroup.domain.errors import BadRequest


def get_moderators(og: Community, req: ApiRequest) -> JsonObject:
    member = og.authenticate(req.room, req.token)
    return {"moderators": og.moderators(member.room_id)}


def add_moderator(og: Community, req: ApiRequest) -> JsonObject:
    """Body ``{public_key, room_id}``; the caller must moderate that room."""
    body = req.json()
    public_key = values.session_id(body.get("public_key"))
    room_id = body.get("room_id")
    if room_id is None:
        room_id = req.room
    elif not isinstance(room_id, str):
        raise BadRequest("room_id must be a string")
    member = og.authenticate(room_id, req.token)
    og.add_moderator(member.room_id, public_key, by=member)
    return {}


def remove_moderator(og: Community, req: ApiRequest) -> JsonObject:
    member = og.authenticate(req.room, req.token)
    public_key = values.session_id(req.path_params["public_key"])
    og.remove_moderator(member.room_id, public_key, by=member)
    return {}


def get_block_list(og: Community, req: ApiRequest) -> JsonObject:
    """The same list under both names: the reference server's and the seed document's."""
    banned = og.bans(og.authenticate(req.room, req.token))
    return {"banned_members": banned, "moderators": banned}


def ban(og: Community, req: ApiRequest) -> JsonObject:
    member = og.authenticate(req.room, req.token)
    og.ban(member, values.session_id(req.json().get("public_key")))
    return {}


def ban_and_delete_all(og: Community, req: ApiRequest) -> JsonObject:
    member = og.authenticate(req.room, req.token)
    og.ban(member, values.session_id(req.json().get("public_key")), delete_all=True)
    return {}


def unban(og: Community, req: ApiRequest) -> JsonObject:
    member = og.authenticate(req.room, req.token)
    og.unban(member, values.session_id(req.path_params["public_key"]))
    return {}
