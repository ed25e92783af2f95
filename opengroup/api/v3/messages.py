"""Messages: pages by seqno or id, one message, posting, editing, deleting,
reactions, and deleting everything of one user."""

from __future__ import annotations

from typing import Any

from opengroup.api.v3.calls import Answer, Call, Later
from opengroup.api.v3.shapes import message_json, shaped_messages
from opengroup.domain.posts import DEFAULT_PAGE, MAX_PAGE, MAX_REACTORS, MessageView

DEFAULT_REACTORS = 4


def _limit(call: Call) -> int:
    return call.query_int("limit", DEFAULT_PAGE, minimum=1, maximum=MAX_PAGE)


def _reactors(call: Call) -> int:
    return call.query_int("reactors", DEFAULT_REACTORS, maximum=MAX_REACTORS)


def since(call: Call) -> list[Any]:
    """Changes after a seqno: new and edited messages, deletions, and with ``t=r``
    reaction changes (as ``{id, seqno, reactions}``)."""
    seqno = call.int_param("seqno")
    with_reactions = "r" in call.request.query.get("t", "")
    reactors = _reactors(call)
    found = call.community.posts.since(
        call.in_room, call.user, seqno, _limit(call), reactors, with_reactions=with_reactions
    )
    return shaped_messages(
        call.community, call.in_room.id, found, reactors, lambda v: _reactions_only(v, seqno)
    )


def _reactions_only(view: MessageView, seqno: int) -> bool:
    """A live message whose data has not changed since ``seqno``: its reactions did."""
    return not view.message.deleted and view.message.seqno_data <= seqno


def recent(call: Call) -> list[Any]:
    reactors = _reactors(call)
    found = call.community.posts.newest(call.in_room, call.user, _limit(call), reactors)
    return shaped_messages(call.community, call.in_room.id, found, reactors)


def before(call: Call) -> list[Any]:
    reactors = _reactors(call)
    found = call.community.posts.newest(
        call.in_room, call.user, _limit(call), reactors, before=call.int_param("message_id")
    )
    return shaped_messages(call.community, call.in_room.id, found, reactors)


def get_message(call: Call) -> dict[str, Any]:
    view = call.community.posts.one(
        call.in_room, call.user, call.int_param("message_id"), _reactors(call)
    )
    return message_json(view)


def post_message(call: Call) -> Later:
    """201 with the message; the write waits for the group-commit writer on the event
    loop, not in a request thread (a thread each would cap the posts in a group)."""
    ready = call.community.posts.prepare(call.in_room, call.signer, call.json_object())
    return Later(
        ready.write(), lambda stored: Answer.json(message_json(ready.view_of(stored)), 201)
    )


def edit_message(call: Call) -> dict[str, Any]:
    call.community.posts.edit(
        call.in_room, call.signer, call.int_param("message_id"), call.json_object()
    )
    return {}


def delete_message(call: Call) -> dict[str, Any]:
    call.community.posts.delete(call.in_room, call.signer, call.int_param("message_id"))
    return {}


def add_reaction(call: Call) -> dict[str, Any]:
    added, seqno = call.community.posts.react(
        call.in_room, call.signer, call.int_param("message_id"), call.params["reaction"], True
    )
    return {"added": added, "seqno": seqno}


def remove_reaction(call: Call) -> dict[str, Any]:
    removed, seqno = call.community.posts.react(
        call.in_room, call.signer, call.int_param("message_id"), call.params["reaction"], False
    )
    return {"removed": removed, "seqno": seqno}


def clear_reactions(call: Call) -> dict[str, Any]:
    removed, seqno = call.community.posts.clear_reactions(
        call.in_room, call.int_param("message_id"), call.params.get("reaction")
    )
    return {"removed": removed, "seqno": seqno}


def reactors(call: Call) -> list[list[Any]]:
    found = call.community.posts.reactors(
        call.in_room,
        call.user,
        call.int_param("message_id"),
        call.params["reaction"],
        call.query_int("limit", MAX_REACTORS, minimum=1, maximum=MAX_REACTORS),
    )
    return [[session_id, at] for session_id, at in found]
