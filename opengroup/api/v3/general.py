"""Capabilities, and many requests in one: ``/batch`` and ``/sequence``."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson

from opengroup.api.errors import v3_refusal
from opengroup.api.exchange import ApiRequest, json_headers, query_of
from opengroup.api.v3.calls import JSON, Answer, BatchReads, Call
from opengroup.domain import values
from opengroup.domain.access import RoomsAndBoxes, view_rooms, view_rooms_and_newest_dms_of_each
from opengroup.domain.community import Community
from opengroup.domain.direct_messages import DEFAULT_PAGE as DM_DEFAULT_PAGE
from opengroup.domain.errors import InvalidInput, TooLarge
from opengroup.domain.users import User
from opengroup.storage.people import NewestDirectMessages

METHODS = ("GET", "POST", "PUT", "DELETE")
BATCH_PATHS = ("/batch", "/sequence")
ANSWER_TOO_LARGE = "this batch's answer is full (max_batch_answer_bytes): ask again for the rest"


def capability_list(call: Call) -> list[str]:
    found = ["reactions", "sogs"]
    if call.community.settings.require_blinded_ids:
        found.append("blind")
    return sorted(found)


def capabilities(call: Call) -> Answer:
    """``{"capabilities": [...]}``; 412 with ``missing`` if ``?required=`` names one we
    lack."""
    found = capability_list(call)
    required = [c for c in call.request.query.get("required", "").split(",") if c]
    missing = [c for c in required if c not in found]
    if missing:
        return Answer.json({"capabilities": found, "missing": missing}, 412)
    return Answer.json({"capabilities": found})


def batch(call: Call) -> list[dict[str, Any]]:
    """Every sub-request, in order, each answered in its place (a malformed one too).

    Consecutive ``GET`` items share one read transaction (see the router); the
    signer's activity in the rooms polled is recorded at the end, in one write."""
    items = _items(call)
    community = call.community
    with community.room_info.activity_together(), community.db.shared_reads():
        _read_ahead(call, items)
        return _answers(call, items, until_failure=False)


def sequence(call: Call) -> list[dict[str, Any]]:
    """Sub-requests in order until the first that does not succeed (its answer included)."""
    items = _items(call)
    with call.community.db.shared_reads():
        return _answers(call, items, until_failure=True)


def _answers(call: Call, items: list[Any], *, until_failure: bool) -> list[dict[str, Any]]:
    """Each item's answer, in order (``until_failure``: up to the first that is not
    2xx). Once the bodies answered add up to ``max_batch_answer_bytes``, the items
    left are not run: each is 413, to be asked for again in another request. The
    first item always runs, so a client that asks again makes progress."""
    most = call.community.settings.max_batch_answer_bytes
    answers: list[dict[str, Any]] = []
    answered = 0
    for item in items:
        if answered >= most and answers:  # (the first runs whatever the setting)
            answer = v3_refusal(TooLarge(ANSWER_TOO_LARGE))
        else:
            answer = _run(call, item)
            answered += len(answer.body)
        answers.append(_item_answer(answer))
        if until_failure and not 200 <= answer.status < 300:
            break
    return answers


# The DM polls a batch's items are read ahead for: a box, from its start or since an id.
# A page of a box asked for: (after_id, limit).
DmPageAsk = tuple[int, int]
_DM_POLL = re.compile(r"/(inbox|outbox)(?:/since/([0-9]{1,18}))?")


@dataclass(frozen=True)
class _Ahead:
    """What a batch's leading ``GET`` items will read that is read ahead for them: the
    rooms not read yet, and the signer's inbox and outbox pages (box -> (after, page)),
    if both are polled by a blinded signer and not read yet."""

    tokens: list[str]
    boxes: dict[str, DmPageAsk] | None
    signer: User | None

    @classmethod
    def of(cls, items: list[Any], reads: BatchReads, signer: User | None) -> _Ahead:
        tokens: list[str] = []
        after: dict[str, int] = {}
        for item in items:
            if not isinstance(item, dict) or item.get("method") != "GET":
                break  # an item of another method may change them: read again after it
            path = item.get("path")
            if not isinstance(path, str) or "%" in path:
                continue
            if path.startswith("/room/"):
                token = path.split("?", 1)[0].split("/")[2]
                if token and token not in reads.rooms and token not in tokens:
                    tokens.append(token)
            elif (dm_poll := _DM_POLL.fullmatch(path)) is not None:
                after.setdefault(dm_poll[1], int(dm_poll[2] or 0))
        boxes = {box: (cursor, DM_DEFAULT_PAGE) for box, cursor in after.items()}
        if (
            len(boxes) != 2
            or signer is None
            or not signer.blinded
            or all((box, *page) in reads.dm_pages for box, page in boxes.items())
        ):
            return cls(tokens, None, signer)
        return cls(tokens, boxes, signer)

    @property
    def rooms_and_boxes(self) -> RoomsAndBoxes | None:
        """What one statement reads, if both rooms and boxes are to be read (a poll)."""
        if not self.tokens or self.boxes is None or self.signer is None:
            return None
        return self.tokens, self.signer.keys, self.signer.session_id

    def read_boxes(
        self, community: Community, reads: BatchReads, newest: NewestDirectMessages | None
    ) -> None:
        """Both boxes' pages, into ``reads`` (none read if ``newest`` says neither box
        holds anything past its cursor)."""
        if self.boxes is None or self.signer is None:
            return
        inbox, outbox = community.inbox.both_boxes(
            self.signer, self.boxes["inbox"], self.boxes["outbox"], newest
        )
        reads.dm_pages[("inbox", *self.boxes["inbox"])] = inbox
        reads.dm_pages[("outbox", *self.boxes["outbox"])] = outbox


def _read_ahead(call: Call, items: list[Any]) -> None:
    """Read what the batch's leading ``GET`` items will read, where together it takes
    fewer statements than item by item; the items then find it read
    (:attr:`Call.reads`):

    - the rooms they name, with the signer's rights in each: one statement for them
      all, not one per room (a client polls all its rooms in one batch);
    - a page of the signer's inbox and one of their outbox, if both are polled (as
      every client does): one statement, not two. Only the plain forms, with the
      default page (what clients send); an item that asks otherwise reads its own.
      With rooms to read, the statement that reads them also says whether either box
      holds anything past its cursor; most polls find nothing, and read no pages.

    A batch answered on the event loop had this read before it ran, together with the
    other batches' (:func:`read_ahead_together`), and finds nothing left to read.
    """
    ahead = _Ahead.of(items, call.reads, call.user)
    community = call.community
    newest = None
    if (both := ahead.rooms_and_boxes) is not None:
        with community.db.read() as conn:
            [(views, newest)] = view_rooms_and_newest_dms_of_each(conn, [both], community.clock())
        call.reads.rooms.update(views)
    elif len(ahead.tokens) >= 2:  # (one room: the item reads it as quickly)
        keys = call.user.keys if call.user is not None else ()
        with community.db.read() as conn:
            call.reads.rooms.update(view_rooms(conn, ahead.tokens, keys, community.clock()))
    ahead.read_boxes(community, call.reads, newest)


async def read_ahead_together(
    community: Community, request: ApiRequest, signer: User | None, reads: BatchReads
) -> None:
    """A poll's read-ahead (:func:`_read_ahead`'s statement of rooms and boxes), before
    the batch runs on the event loop, read together with the other batches' that wait
    for the same turn of the loop (:class:`~opengroup.domain.access.RoomViewsTogether`:
    on PostgreSQL one round trip for them all). A batch that is not such a poll, or
    is malformed, and any batch on SQLite, reads as it runs."""
    if not community.room_views.gathers:
        return
    try:
        items = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return
    if not isinstance(items, list):
        return
    ahead = _Ahead.of(items, reads, signer)
    if (both := ahead.rooms_and_boxes) is None:
        return
    views, newest = await community.room_views.read(both)
    reads.rooms.update(views)
    with community.db.shared_reads():  # (as the batch's own reads: one statement)
        ahead.read_boxes(community, reads, newest)


def _items(call: Call) -> list[Any]:
    items = call.json()
    if not isinstance(items, list):
        raise InvalidInput("the body must be a JSON list of requests")
    most = call.community.settings.max_batch_requests
    if len(items) > most:
        raise TooLarge(f"at most {most} requests in one batch")
    return items


def _run(call: Call, item: Any) -> Answer:
    try:
        request = _sub_request(item)
    except InvalidInput as exc:
        return v3_refusal(exc)
    return call.sub_request(request)


def _sub_request(item: Any) -> ApiRequest:
    """One item ``{method, path, headers?, json? | b64? | bytes?}`` as a request."""
    if not isinstance(item, dict):
        raise InvalidInput("a batch item must be a JSON object")
    method, path = item.get("method"), item.get("path")
    if method not in METHODS:
        raise InvalidInput(f"a batch item's method must be one of {', '.join(METHODS)}")
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidInput("a batch item's path must start with /")
    path, _, query_string = path.partition("?")
    if "%" in path:
        try:
            path = unquote(path, errors="strict")  # as a transport decodes a request's path
        except UnicodeDecodeError:
            raise InvalidInput("a batch item's path is not UTF-8 once decoded") from None
    if "/" + path.strip("/") in BATCH_PATHS:  # as the path table finds routes
        raise InvalidInput("a batch cannot hold another batch")
    bodies = [key for key in ("json", "b64", "bytes") if key in item]
    if len(bodies) > 1:
        raise InvalidInput("a batch item has at most one of json, b64 and bytes")
    body = b""
    if bodies == ["json"]:
        body = orjson.dumps(item["json"])
    elif bodies == ["b64"]:
        body = values.base64_bytes(item["b64"], "b64")
    elif bodies == ["bytes"]:
        if not isinstance(item["bytes"], str):
            raise InvalidInput("bytes must be a string")
        body = item["bytes"].encode()
    headers = item.get("headers")
    if headers is None:
        headers = {}
    if not isinstance(headers, dict):
        raise InvalidInput("a batch item's headers must be an object")
    return ApiRequest(
        method=method,
        path=path,
        query=query_of(query_string),
        query_string=query_string,
        headers=json_headers(headers) if headers else {},
        body=body,
    )


def _item_answer(answer: Answer) -> dict[str, Any]:
    """``{code, headers, body}``: the body as JSON if it is JSON, else base64 (a 304 is
    ``{"code": 304, "headers": {}, "body": ""}``, as pysogs answers it).

    A JSON body goes into the batch's answer as the bytes it was encoded to, never
    decoded to be encoded again."""
    typed = {"content-type": answer.content_type} if answer.content_type else {}
    headers = {**typed, **answer.headers}
    if answer.content_type == JSON:
        body: Any = orjson.Fragment(answer.body)
    else:
        body = base64.b64encode(answer.body).decode()
    return {"code": answer.status, "headers": headers, "body": body}
