"""Blinded direct messages: the inbox and outbox, polling them, sending, and clearing
the inbox (the rules are :mod:`opengroup.domain.direct_messages`')."""

from __future__ import annotations

import base64
from typing import Any

from opengroup.api.v3.calls import Answer, Call
from opengroup.domain.direct_messages import DEFAULT_PAGE, MAX_PAGE
from opengroup.storage.inbox import StoredDirectMessage


def _limit(call: Call) -> int:
    return call.query_int("limit", DEFAULT_PAGE, minimum=1, maximum=MAX_PAGE)


def dm_json(message: StoredDirectMessage, *, with_message: bool = True) -> dict[str, Any]:
    """A message as pysogs shapes it (keys sorted); the answer to sending one leaves
    out ``message``."""
    shaped: dict[str, Any] = {"expires_at": message.expires_at, "id": message.id}
    if with_message:
        shaped["message"] = base64.b64encode(message.data).decode()
    shaped |= {
        "posted_at": message.posted_at,
        "recipient": message.recipient,
        "sender": message.sender,
    }
    return shaped


def _page(found: list[StoredDirectMessage]) -> list[dict[str, Any]]:
    return [dm_json(message) for message in found]


def _news(found: list[StoredDirectMessage]) -> list[dict[str, Any]] | Answer:
    """The messages since a poll's last id, or 304 (no body) when there are none."""
    return _page(found) if found else Answer.not_modified()


def inbox(call: Call) -> list[dict[str, Any]]:
    return _page(_box(call, "inbox", 0))


def inbox_since(call: Call) -> list[dict[str, Any]] | Answer:
    return _news(_box(call, "inbox", call.int_param("message_id")))


def outbox(call: Call) -> list[dict[str, Any]]:
    return _page(_box(call, "outbox", 0))


def outbox_since(call: Call) -> list[dict[str, Any]] | Answer:
    return _news(_box(call, "outbox", call.int_param("message_id")))


def _box(call: Call, box: str, after_id: int) -> list[StoredDirectMessage]:
    """A page of the signer's inbox or outbox after ``after_id``: as the batch read it
    ahead, if it did (:class:`~opengroup.api.v3.calls.BatchReads`), else read now."""
    limit = _limit(call)
    found = call.reads.dm_pages.pop((box, after_id, limit), None)
    if found is not None:
        return found
    messages = call.community.inbox
    read = messages.received if box == "inbox" else messages.sent
    return read(call.signer, limit, after_id)


def send(call: Call) -> Answer:
    """201 with the stored message, without its bytes."""
    message = call.community.inbox.send(call.signer, call.params["blinded_id"], call.json_object())
    return Answer.json(dm_json(message, with_message=False), 201)


def clear_inbox(call: Call) -> dict[str, int]:
    return {"deleted": call.community.inbox.clear(call.signer)}
