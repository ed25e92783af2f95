"""The community API's routing table: every endpoint, and who may call it.

Read it as the permission table of the API: the router authenticates the
signer and checks the access named here before any handler runs; the domain
then applies its own rules (who may delete which message, ...).
"""

from __future__ import annotations

from opengroup.api.v3 import dms, files, general, messages, permissions, rooms, users
from opengroup.api.v3.calls import Access
from opengroup.api.v3.routing import Route, Router

ANYONE = Access.ANYONE
USER = Access.USER
BLINDED = Access.BLINDED
VISIBLE = Access.ROOM_VISIBLE
READER = Access.ROOM_READER
MEMBER = Access.ROOM_MEMBER
WRITER = Access.ROOM_WRITER
UPLOADER = Access.ROOM_UPLOADER
MODERATOR = Access.ROOM_MODERATOR
ADMIN = Access.ROOM_ADMIN

ROOM = "/room/{token}"
REACTION = ROOM + "/reaction/{message_id}/{reaction}"
REACTIONS = ROOM + "/reactions/{message_id}"

ROUTES = [
    # general
    Route("GET", "/capabilities", general.capabilities, ANYONE),
    Route("POST", "/batch", general.batch, ANYONE, read_ahead=general.read_ahead_together),
    Route("POST", "/sequence", general.sequence, ANYONE),
    # rooms
    Route("GET", "/rooms", rooms.list_rooms, ANYONE),
    Route("GET", ROOM, rooms.get_room, VISIBLE),
    Route("PUT", ROOM, rooms.update_room, ADMIN),
    Route("GET", ROOM + "/pollInfo/{info_updated}", rooms.poll_info, READER),
    Route("POST", ROOM + "/pin/{message_id}", rooms.pin, ADMIN),
    Route("POST", ROOM + "/unpin/all", rooms.unpin_all, ADMIN),
    Route("POST", ROOM + "/unpin/{message_id}", rooms.unpin, ADMIN),
    # messages
    Route("GET", ROOM + "/messages/since/{seqno}", messages.since, READER),
    Route("GET", ROOM + "/messages/recent", messages.recent, READER),
    Route("GET", ROOM + "/messages/before/{message_id}", messages.before, READER),
    Route("GET", ROOM + "/message/{message_id}", messages.get_message, READER),
    Route("POST", ROOM + "/message", messages.post_message, WRITER, loop_until_write=True),
    Route("PUT", ROOM + "/message/{message_id}", messages.edit_message, WRITER),
    Route("DELETE", ROOM + "/message/{message_id}", messages.delete_message, WRITER),
    # reactions
    Route("PUT", REACTION, messages.add_reaction, MEMBER, one_write=True),
    Route("DELETE", REACTION, messages.remove_reaction, MEMBER, one_write=True),
    Route("DELETE", ROOM + "/reactions/{message_id}", messages.clear_reactions, MODERATOR),
    Route(
        "DELETE", ROOM + "/reactions/{message_id}/{reaction}", messages.clear_reactions, MODERATOR
    ),
    Route("GET", ROOM + "/reactors/{message_id}/{reaction}", messages.reactors, READER),
    # files
    Route("POST", ROOM + "/file", files.upload, UPLOADER),
    Route("GET", ROOM + "/file/{file_id}", files.download, READER, large_answer=True),
    Route("GET", ROOM + "/file/{file_id}/{filename}", files.download, READER, large_answer=True),
    # blinded direct messages
    Route("GET", "/inbox", dms.inbox, BLINDED),
    Route("GET", "/inbox/since/{message_id}", dms.inbox_since, BLINDED),
    Route("GET", "/outbox", dms.outbox, BLINDED),
    Route("GET", "/outbox/since/{message_id}", dms.outbox_since, BLINDED),
    Route("POST", "/inbox/{blinded_id}", dms.send, USER),
    Route("DELETE", "/inbox", dms.clear_inbox, BLINDED),
    # staff, bans and permissions
    Route("POST", "/user/{session_id}/moderator", users.set_moderator, USER),
    Route("POST", "/user/{session_id}/ban", users.ban, USER),
    Route("POST", "/user/{session_id}/unban", users.unban, USER),
    Route("DELETE", ROOM + "/all/{session_id}", users.delete_all_in_room, MEMBER),
    Route("DELETE", "/rooms/all/{session_id}", users.delete_all_everywhere, USER),
    Route("GET", ROOM + "/permissions", permissions.list_permissions, MODERATOR),
    Route("GET", ROOM + "/permissions/{session_id}", permissions.user_permissions, MODERATOR),
    Route("POST", ROOM + "/permissions/{session_id}", permissions.set_permissions, MODERATOR),
    Route("GET", ROOM + "/futurePermissions", permissions.future_permissions, MODERATOR),
    Route(
        "GET",
        ROOM + "/futurePermissions/{session_id}",
        permissions.user_future_permissions,
        MODERATOR,
    ),
    Route("POST", ROOM + "/futurePermissions/{session_id}", permissions.schedule, MODERATOR),
]

router = Router(ROUTES)
