"""Moderators and bans, per room."""

from __future__ import annotations

from opengroup.api.exchange import JsonObject
from opengroup.api.routing import RoutedRequest
from opengroup.domain import values
from opengroup.domain.community import Community, Member


def get_moderators(og: Community, req: RoutedRequest, member: Member) -> JsonObject:
    return {"moderators": og.moderation.moderators(member.room_id)}


def add_moderator(og: Community, req: RoutedRequest, member: Member) -> JsonObject:
    """Body ``{public_key, room_id}``; the caller must moderate that room."""
    public_key = values.session_id(req.json().get("public_key"))
    og.moderation.add_moderator(member.room_id, public_key, by=member)
    return {}


def remove_moderator(og: Community, req: RoutedRequest, member: Member) -> JsonObject:
    public_key = values.session_id(req.path_params["public_key"])
    og.moderation.remove_moderator(member.room_id, public_key, by=member)
    return {}


def get_block_list(og: Community, req: RoutedRequest, member: Member) -> JsonObject:
    """The same list under both names: the reference server's and the seed document's."""
    banned = og.moderation.bans(member)
    return {"banned_members": banned, "moderators": banned}


def ban(og: Community, req: RoutedRequest, member: Member) -> JsonObject:
    og.moderation.ban(member, values.session_id(req.json().get("public_key")))
    return {}


def ban_and_delete_all(og: Community, req: RoutedRequest, member: Member) -> JsonObject:
    og.moderation.ban(member, values.session_id(req.json().get("public_key")), delete_all=True)
    return {}


def unban(og: Community, req: RoutedRequest, member: Member) -> JsonObject:
    og.moderation.unban(member, values.session_id(req.path_params["public_key"]))
    return {}
