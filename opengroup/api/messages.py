"""Messages: post, read, delete, and the list of deletions."""

from __future__ import annotations

from opengroup.api.exchange import JsonObject
from opengroup.api.formats import deletions_json, message_json
from opengroup.api.routing import RoutedRequest
from opengroup.domain import values
from opengroup.domain.community import MAX_PAGE, Community, Member
from opengroup.domain.errors import InvalidInput


async def post_message(og: Community, req: RoutedRequest, member: Member) -> JsonObject:
    """On the event loop; the write goes to a worker thread (see ``Messages.post``)."""
    body = req.json()
    if not isinstance(body.get("timestamp"), int):
        raise InvalidInput("timestamp must be an integer (milliseconds)")
    timestamp = values.integer(body["timestamp"], "timestamp", minimum=1)
    if body.get("public_key") is not None:
        values.session_id(body["public_key"])  # checked, but the token says who posts
    data = values.base64_text(body.get("data"), "data")
    signature = values.base64_text(body.get("signature"), "signature")
    message = await og.messages.post(member, timestamp, data, signature)
    return {"message": message_json(message)}


def _paging(req: RoutedRequest) -> tuple[int | None, int]:
    after = values.optional_integer(req.query.get("from_server_id"), "from_server_id")
    limit = values.optional_integer(req.query.get("limit"), "limit", minimum=1)
    return after, min(limit or MAX_PAGE, MAX_PAGE)


def get_messages(og: Community, req: RoutedRequest, member: Member) -> JsonObject:
    after, limit = _paging(req)
    return {"messages": [message_json(m) for m in og.messages.page(member, after, limit)]}


def get_deleted_messages(og: Community, req: RoutedRequest, member: Member) -> JsonObject:
    after, limit = _paging(req)
    deletions = og.messages.deletions(member, after, limit)
    return {"ids": deletions_json(deletions, og.settings.deletions_format)}


def delete_message(og: Community, req: RoutedRequest, member: Member) -> JsonObject:
    server_id = values.integer(req.path_params["message_id"], "message id")
    og.messages.delete(member, [server_id])
    return {}


def delete_messages(og: Community, req: RoutedRequest, member: Member) -> JsonObject:
    ids = req.json().get("ids")
    if not isinstance(ids, list) or not ids:
        raise InvalidInput("ids must be a non-empty list of message ids")
    if len(ids) > MAX_PAGE:
        raise InvalidInput(f"at most {MAX_PAGE} ids at once")
    og.messages.delete(member, [values.integer(i, "ids[]") for i in ids])
    return {}
