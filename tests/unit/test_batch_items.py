"""/batch and /sequence items, in-process: opengroup.api.v3.general's ``_sub_request``
(an item to a request) and ``_item_answer`` (an answer to an item of the reply).

Rules pinned here (docs/API.md, "Batches"):

* An item is a JSON object ``{method, path, headers?, json? | b64? | bytes?}``. Anything
  else is a 400 with a reason, answered in the item's place: not an object, a method
  other than GET, POST, PUT, DELETE (upper case), a path not starting with ``/`` or not
  UTF-8 once percent-decoded, two bodies, a ``b64`` that is not padded standard base64,
  ``bytes`` that is not a string, headers that are not an object, and another
  ``/batch`` or ``/sequence`` (however it is spelt).
* The body is ``json`` serialised, ``b64`` decoded, or ``bytes`` as UTF-8; no body key is
  an empty body. The path is percent-decoded as a transport decodes it; the query is
  kept raw and parsed (first value wins); header names are lower-cased.
* An answer item is ``{code, headers, body}``: the content type first in the headers,
  the body as JSON for a JSON answer and as base64 otherwise; a 304 is
  ``{"code": 304, "headers": {}, "body": ""}``.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from opengroup.api.errors import status_of
from opengroup.api.v3.calls import BINARY, JSON, TEXT, Answer
from opengroup.api.v3.general import _item_answer, _sub_request
from opengroup.domain.errors import InvalidInput

BAD_METHOD = "a batch item's method must be one of GET, POST, PUT, DELETE"
BAD_PATH = "a batch item's path must start with /"
NESTED = "a batch cannot hold another batch"
TWO_BODIES = "a batch item has at most one of json, b64 and bytes"


def item(**fields: Any) -> dict[str, Any]:
    return {"method": "GET", "path": "/capabilities", **fields}


# ---------------------------------------------------------------------------- malformed items


@pytest.mark.parametrize(
    "bad, reason",
    [
        pytest.param([], "a batch item must be a JSON object", id="a list"),
        pytest.param("GET /rooms", "a batch item must be a JSON object", id="text"),
        pytest.param(None, "a batch item must be a JSON object", id="null"),
        pytest.param(5, "a batch item must be a JSON object", id="a number"),
        pytest.param({"path": "/rooms"}, BAD_METHOD, id="no method"),
        pytest.param(item(method="PATCH"), BAD_METHOD, id="PATCH"),
        pytest.param(item(method="HEAD"), BAD_METHOD, id="HEAD"),
        pytest.param(item(method="get"), BAD_METHOD, id="lower-case get"),
        pytest.param(item(method=["GET"]), BAD_METHOD, id="a list as method"),
        pytest.param(item(method=None), BAD_METHOD, id="a null method"),
        pytest.param({"method": "GET"}, BAD_PATH, id="no path"),
        pytest.param(item(path=""), BAD_PATH, id="an empty path"),
        pytest.param(item(path="rooms"), BAD_PATH, id="no leading slash"),
        pytest.param(item(path="https://example.org/rooms"), BAD_PATH, id="a URL"),
        pytest.param(item(path=5), BAD_PATH, id="a numeric path"),
        pytest.param(
            item(path="/room/%ff"),
            "a batch item's path is not UTF-8 once decoded",
            id="a path that decodes to no UTF-8",
        ),
        pytest.param(item(path="/batch"), NESTED, id="a batch"),
        pytest.param(item(path="/sequence"), NESTED, id="a sequence"),
        pytest.param(item(path="/batch/"), NESTED, id="a batch with a trailing slash"),
        pytest.param(item(path="/sequence?x=1"), NESTED, id="a sequence with a query"),
        pytest.param(item(path="/%62atch"), NESTED, id="a percent-encoded batch"),
        pytest.param(item(json={}, b64=""), TWO_BODIES, id="json and b64"),
        pytest.param(item(json={}, bytes=""), TWO_BODIES, id="json and bytes"),
        pytest.param(item(b64="", bytes=""), TWO_BODIES, id="b64 and bytes"),
        pytest.param(item(json=1, b64="", bytes=""), TWO_BODIES, id="all three"),
        pytest.param(item(b64="***"), "b64 is not valid base64", id="invalid b64"),
        pytest.param(item(b64="YQ"), "b64 is not valid base64", id="unpadded b64"),
        pytest.param(item(b64=12), "b64 must be a base64 string", id="numeric b64"),
        pytest.param(item(bytes=[1, 2]), "bytes must be a string", id="a list as bytes"),
        pytest.param(item(bytes=None), "bytes must be a string", id="null bytes"),
        pytest.param(
            item(headers=["Room"]), "a batch item's headers must be an object", id="list headers"
        ),
        pytest.param(
            item(headers=[]), "a batch item's headers must be an object", id="an empty list"
        ),
        pytest.param(
            item(headers=False), "a batch item's headers must be an object", id="false headers"
        ),
        pytest.param(
            item(headers="Room: main"),
            "a batch item's headers must be an object",
            id="text headers",
        ),
    ],
)
def test_a_malformed_item_is_a_bad_request_with_its_reason(bad: Any, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        _sub_request(bad)
    assert refused.value.reason == reason
    assert status_of(refused.value) == 400


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/batches", id="a longer name"),
        pytest.param("/room/batch", id="under a room"),
    ],
)
def test_only_batch_and_sequence_themselves_are_nested_batches(path: str) -> None:
    assert _sub_request(item(path=path)).path == path


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("//batch", id="two leading slashes"),
        pytest.param("/%2Fsequence", id="an encoded slash"),
        pytest.param("/batch//", id="trailing slashes"),
    ],
)
def test_a_batch_however_its_path_is_spelled_is_a_nested_batch(path: str) -> None:
    """The router finds /batch under all of these (it strips slashes): so does the check."""
    with pytest.raises(InvalidInput, match="a batch cannot hold another batch"):
        _sub_request(item(path=path))


# ---------------------------------------------------------------------------- requests


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_each_method_makes_a_request(method: str) -> None:
    request = _sub_request(item(method=method, path="/room/main"))
    assert (request.method, request.path, request.body) == (method, "/room/main", b"")


@pytest.mark.parametrize(
    "fields, body",
    [
        pytest.param({}, b"", id="no body key: no body"),
        pytest.param(
            {"json": {"data": "YQ==", "n": [1, 2]}}, b'{"data":"YQ==","n":[1,2]}', id="json"
        ),
        pytest.param({"json": None}, b"null", id="json null"),
        pytest.param({"json": "text"}, b'"text"', id="a json string"),
        pytest.param({"b64": "AP8/"}, b"\x00\xff?", id="b64"),
        pytest.param({"b64": ""}, b"", id="empty b64"),
        pytest.param({"bytes": "plain text"}, b"plain text", id="bytes"),
        pytest.param({"bytes": "é👍"}, "é👍".encode(), id="bytes as UTF-8"),
    ],
)
def test_the_body_is_json_serialised_b64_decoded_or_bytes_as_utf8(
    fields: dict[str, Any], body: bytes
) -> None:
    request = _sub_request(item(method="POST", path="/room/main/message", **fields))
    assert request.body == body


def test_a_json_body_reads_back_as_the_same_value() -> None:
    value = {"data": "YWJj", "signature": "c2ln", "whisper_to": None, "files": [3, 4]}
    assert orjson.loads(_sub_request(item(method="POST", json=value)).body) == value


def test_the_path_is_percent_decoded_and_the_query_kept_raw() -> None:
    request = _sub_request(
        item(path="/room/main/reaction/4/%F0%9F%91%8D?limit=5&t=a%20b&limit=6&flag")
    )
    assert request.path == "/room/main/reaction/4/👍"
    assert request.query_string == "limit=5&t=a%20b&limit=6&flag"
    assert dict(request.query) == {"limit": "5", "t": "a b", "flag": ""}


def test_a_raw_utf8_path_is_kept() -> None:
    assert _sub_request(item(path="/room/main/reaction/4/👍")).path == "/room/main/reaction/4/👍"


@pytest.mark.parametrize(
    "headers, expected",
    [
        pytest.param(None, {}, id="null: no headers"),
        pytest.param({}, {}, id="an empty object"),
        pytest.param(
            {"Room": "main", "X-Extra": "1"}, {"room": "main", "x-extra": "1"}, id="names"
        ),
        pytest.param({"If-None-Match": 5}, {"if-none-match": "5"}, id="a number becomes text"),
    ],
)
def test_header_names_are_lower_cased(headers: Any, expected: dict[str, str]) -> None:
    assert dict(_sub_request(item(headers=headers)).headers) == expected


def test_no_headers_key_is_no_headers() -> None:
    assert dict(_sub_request(item()).headers) == {}


# ---------------------------------------------------------------------------- answers


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    "answer, expected",
    [
        pytest.param(
            Answer.json({"a": [1, "b"]}),
            {"code": 200, "headers": {"content-type": JSON}, "body": {"a": [1, "b"]}},
            id="JSON: the value itself",
        ),
        pytest.param(
            Answer.json([], 201),
            {"code": 201, "headers": {"content-type": JSON}, "body": []},
            id="JSON with another status",
        ),
        pytest.param(
            Answer.json(None),
            {"code": 200, "headers": {"content-type": JSON}, "body": None},
            id="JSON null",
        ),
        pytest.param(
            Answer.json({"status_code": 404}, 404),
            {"code": 404, "headers": {"content-type": JSON}, "body": {"status_code": 404}},
            id="a JSON error",
        ),
        pytest.param(
            Answer.text(404, "no such room: x"),
            {"code": 404, "headers": {"content-type": TEXT}, "body": b64(b"no such room: x")},
            id="text: base64",
        ),
        pytest.param(
            Answer.text(429, "slow down", {"retry-after": "3"}),
            {
                "code": 429,
                "headers": {"content-type": TEXT, "retry-after": "3"},
                "body": b64(b"slow down"),
            },
            id="text with a header",
        ),
        pytest.param(
            Answer.binary(b"\x00\xffbinary", {"content-disposition": "attachment"}),
            {
                "code": 200,
                "headers": {"content-type": BINARY, "content-disposition": "attachment"},
                "body": b64(b"\x00\xffbinary"),
            },
            id="binary: base64",
        ),
        pytest.param(
            Answer.not_modified(),
            {"code": 304, "headers": {}, "body": ""},
            id="304: no content type, an empty body",
        ),
    ],
)
def test_an_answer_item_has_its_code_headers_and_body(
    answer: Answer, expected: dict[str, Any]
) -> None:
    got = _item_answer(answer)
    assert orjson.loads(orjson.dumps(got)) == expected  # as the batch's answer encodes it
    assert list(got["headers"])[:1] == list(expected["headers"])[:1]  # content type first
