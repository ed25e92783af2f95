"""The routing table: every endpoint of the API, for both transports."""

from __future__ import annotations

from opengroup.api import auth, files, messages, moderation, poll, rooms
from opengroup.api.routing import Route, Router

ROUTES = [
    Route("GET", "/rooms", rooms.list_rooms),
    Route("GET", "/rooms/{room_id}", rooms.get_room),
    Route("GET", "/rooms/{room_id}/image", rooms.get_room_image),
    Route("POST", "/rooms/{room_id}/image", rooms.set_room_image),
    Route("GET", "/auth_token_challenge", auth.challenge),
    Route("POST", "/claim_auth_token", auth.claim),
    Route("DELETE", "/auth_token", auth.revoke),
    Route("GET", "/member_count", auth.member_count),
    Route("POST", "/compact_poll", poll.compact_poll),
    Route("POST", "/messages", messages.post_message),
    Route("GET", "/messages", messages.get_messages),
    Route("DELETE", "/messages/{message_id}", messages.delete_message),
    Route("POST", "/delete_messages", messages.delete_messages),
    Route("GET", "/deleted_messages", messages.get_deleted_messages),
    Route("POST", "/files", files.upload),
    Route("GET", "/files/{file_id}", files.download),
    Route("GET", "/moderators", moderation.get_moderators),
    Route("POST", "/moderators", moderation.add_moderator),
    Route("DELETE", "/moderators/{public_key}", moderation.remove_moderator),
    Route("GET", "/block_list", moderation.get_block_list),
    Route("POST", "/block_list", moderation.ban),
    Route("DELETE", "/block_list/{public_key}", moderation.unban),
    Route("POST", "/ban_and_delete_all", moderation.ban_and_delete_all),
]

router = Router(ROUTES)
