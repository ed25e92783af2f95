"""The v2 routing table: every endpoint of the v2 API, for every way in, and who may
call it (the router checks the token before the handler runs)."""

from __future__ import annotations

from opengroup.api import auth, files, messages, moderation, poll, rooms
from opengroup.api.routing import Route, Router, Who

MEMBER = Who.MEMBER

ROUTES = [
    Route("GET", "/rooms", rooms.list_rooms),
    Route("GET", "/rooms/{room_id}", rooms.get_room),
    Route("GET", "/rooms/{room_id}/image", rooms.get_room_image),
    Route("POST", "/rooms/{room_id}/image", rooms.set_room_image, Who.MEMBER_OF_PATH_ROOM),
    Route("GET", "/auth_token_challenge", auth.challenge),
    Route("POST", "/claim_auth_token", auth.claim),
    Route("DELETE", "/auth_token", auth.revoke),
    Route("GET", "/member_count", auth.member_count, MEMBER),
    Route("POST", "/compact_poll", poll.compact_poll),
    Route("POST", "/messages", messages.post_message, MEMBER),
    Route("GET", "/messages", messages.get_messages, MEMBER),
    Route("DELETE", "/messages/{message_id}", messages.delete_message, MEMBER),
    Route("POST", "/delete_messages", messages.delete_messages, MEMBER),
    Route("GET", "/deleted_messages", messages.get_deleted_messages, MEMBER),
    Route("POST", "/files", files.upload, MEMBER),
    Route("GET", "/files/{file_id}", files.download, MEMBER),
    Route("GET", "/moderators", moderation.get_moderators, MEMBER),
    Route("POST", "/moderators", moderation.add_moderator, Who.MEMBER_OF_BODY_ROOM),
    Route("DELETE", "/moderators/{public_key}", moderation.remove_moderator, MEMBER),
    Route("GET", "/block_list", moderation.get_block_list, MEMBER),
    Route("POST", "/block_list", moderation.ban, MEMBER),
    Route("DELETE", "/block_list/{public_key}", moderation.unban, MEMBER),
    Route("POST", "/ban_and_delete_all", moderation.ban_and_delete_all, MEMBER),
]

router = Router(ROUTES)
