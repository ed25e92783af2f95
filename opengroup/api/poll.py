"""``compact_poll``: messages, deletions and moderators of many rooms in one request.

Exactly one result per request entry, in order, each with all five keys
(clients drop or choke on a result that lacks one). A bad entry fails alone,
with its own status and empty lists; it never fails the whole poll.
"""

from __future__ import annotations

from typing import Any

from opengroup.api.errors import status_of
from opengroup.api.exchange import JsonObject
from opengroup.api.formats import deletions_json, message_json
from opengroup.api.routing import RoutedRequest
from opengroup.domain import values
from opengroup.domain.community import Community, PollRequest, RoomPoll
from opengroup.domain.errors import InvalidInput, Refusal, TooLarge


def _empty_result(room_id: Any, status: int, reason: str) -> JsonObject:
    return {
        "room_id": room_id if isinstance(room_id, str) else "",
        "status_code": status,
        "error": reason,
        "messages": [],
        "deletions": [],
        "moderators": [],
    }


def _parse_entry(entry: Any) -> PollRequest:
    if not isinstance(entry, dict):
        raise InvalidInput("each request must be a JSON object")
    room_id = entry.get("room_id")
    if not isinstance(room_id, str) or not room_id:
        raise InvalidInput("room_id is required")
    token = entry.get("auth_token")
    return PollRequest(
        room_id=room_id,
        token=token if isinstance(token, str) else None,
        messages_after=values.optional_integer(
            entry.get("from_message_server_id"), "from_message_server_id"
        ),
        deletions_after=values.optional_integer(
            entry.get("from_deletion_server_id"), "from_deletion_server_id"
        ),
    )


def _result(og: Community, room_id: str, polled: RoomPoll | Refusal) -> JsonObject:
    if isinstance(polled, Refusal):
        return _empty_result(room_id, status_of(polled), polled.reason)
    return {
        "room_id": room_id,
        "status_code": 200,
        "messages": [message_json(m) for m in polled.messages],
        "deletions": deletions_json(polled.deletions, og.settings.deletions_format),
        "moderators": polled.moderators,
    }


async def compact_poll(og: Community, req: RoutedRequest) -> JsonObject:
    entries = req.json().get("requests")
    if not isinstance(entries, list):
        raise InvalidInput("requests must be a list")
    if len(entries) > og.settings.max_poll_rooms:
        raise TooLarge(f"at most {og.settings.max_poll_rooms} rooms per poll")
    # Each entry parsed, or the answer to its own bad request; then the good ones
    # polled together (one snapshot), their answers put back in their places.
    parsed: list[PollRequest | JsonObject] = []
    for entry in entries:
        try:
            parsed.append(_parse_entry(entry))
        except Refusal as exc:
            room_id = entry.get("room_id") if isinstance(entry, dict) else ""
            parsed.append(_empty_result(room_id, status_of(exc), exc.reason))
    polled = iter(await og.polling.poll([p for p in parsed if isinstance(p, PollRequest)]))
    return {
        "results": [
            _result(og, p.room_id, next(polled)) if isinstance(p, PollRequest) else p
            for p in parsed
        ]
    }
