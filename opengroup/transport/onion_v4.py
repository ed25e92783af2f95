"""Onion requests v4: the bencoded framing inside the envelope of ``/oxen/v4/lsrpc``
(the envelope itself is :func:`opengroup.transport.onion.open_envelope`'s).

Request plaintext: a bencoded list of one or two byte strings, the request's
metadata as JSON and, if it has one, its body::

    l 38:{"method":"GET","endpoint":"/capabilities"} e
    l 63:{"method":"POST","endpoint":"/room/main/message","headers":{..}} 120:<body> e

(without the spaces). ``endpoint`` starts with ``/``, may carry ``?query`` and
raw UTF-8 or percent-escapes. The answer is always two strings, the metadata
``{"code": <status>, "headers": {<lower-case names>}}`` and the body, sealed
with the request's key and sent raw with HTTP 200.
"""

from __future__ import annotations

from urllib.parse import unquote

import orjson

from opengroup.api.exchange import ApiRequest, json_headers, query_of
from opengroup.api.jsonbody import DEEP_JSON, JsonTooDeep, loads_json
from opengroup.transport.onion import InnerRequestError

MAX_LENGTH_DIGITS = 10


def bencode_strings(parts: list[bytes]) -> bytes:
    return b"l" + b"".join(b"%d:%s" % (len(part), part) for part in parts) + b"e"


def bdecode_strings(data: bytes) -> list[bytes]:
    """A bencoded list of byte strings, and nothing after it."""
    if not data.startswith(b"l") or not data.endswith(b"e"):
        raise InnerRequestError("not a bencoded list")
    parts, at, end = [], 1, len(data) - 1
    while at < end:
        colon = data.find(b":", at, min(end, at + MAX_LENGTH_DIGITS + 1))
        digits = data[at:colon] if colon != -1 else b""
        if not digits.isdigit() or (len(digits) > 1 and digits.startswith(b"0")):
            raise InnerRequestError("bad string length in the bencoded list")
        start = colon + 1
        stop = start + int(digits)
        if stop > end:
            raise InnerRequestError("a bencoded string runs past the end")
        parts.append(data[start:stop])
        at = stop
    return parts


def parse_request(plaintext: bytes, max_json_depth: int) -> ApiRequest:
    """The request inside a v4 envelope; :class:`InnerRequestError` if malformed."""
    parts = bdecode_strings(plaintext)
    if len(parts) not in (1, 2):
        raise InnerRequestError("a v4 request is one or two strings")
    try:
        meta = loads_json(parts[0], max_json_depth)
    except JsonTooDeep:
        raise InnerRequestError(DEEP_JSON) from None
    except orjson.JSONDecodeError:
        raise InnerRequestError("v4 request metadata is not JSON") from None
    if not isinstance(meta, dict):
        raise InnerRequestError("v4 request metadata must be a JSON object")
    method, endpoint = meta.get("method"), meta.get("endpoint")
    if not isinstance(method, str) or not method:
        raise InnerRequestError("v4 request lacks a method")
    if not isinstance(endpoint, str) or not endpoint.startswith("/"):
        raise InnerRequestError("v4 request endpoint must start with /")
    headers = meta.get("headers") or {}
    if not isinstance(headers, dict):
        raise InnerRequestError("v4 request headers must be a JSON object")
    path, _, query_string = endpoint.partition("?")
    return ApiRequest(
        method=method.upper(),
        path=unquote(path),
        query=query_of(query_string),
        query_string=query_string,
        headers=json_headers(headers),
        body=parts[1] if len(parts) == 2 else b"",
    )


def encode_response(status: int, content_type: str, headers: dict[str, str], body: bytes) -> bytes:
    """The answer's two strings; an empty ``content_type`` (a 304) sends no such header."""
    typed = {"content-type": content_type} if content_type else {}
    meta = {"code": status, "headers": {**typed, **headers}}
    return bencode_strings([orjson.dumps(meta), body])
