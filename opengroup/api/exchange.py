"""The vocabulary a transport and the routers exchange: the transport-neutral request
(:class:`ApiRequest`, made once by the transport or a batch and never changed after),
the v2 API's answer (:class:`ApiResponse`) and JSON-given header values.

The community API answers with :class:`~opengroup.api.v3.calls.Answer`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class ApiRequest:
    """A transport-neutral request. Header names are lower case, values strings."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    # The query as sent, undecoded: what a community API signature covers.
    query_string: str = ""


@dataclass
class ApiResponse:
    """A v2 answer, as the router builds it: its status and JSON body (which always
    carries ``status_code``)."""

    status: int
    body: JsonObject
    headers: Mapping[str, str] = field(default_factory=dict)
    # The matched route's pattern ("/rooms/{room_id}"), "" if none matched: what logs
    # and metrics name a request by (never the raw path, which carries keys and ids).
    route: str = ""

    def encode(self) -> bytes:
        return orjson.dumps(self.body)


def query_of(query_string: str) -> dict[str, str]:
    """A query string's parameters, decoded, the first value of each name winning (a
    name without ``=`` has the value ""). One without escapes (``%``, ``+``), as
    clients' polls send them, is split without the general parser (several per
    request: every item of a batch has one)."""
    query: dict[str, str] = {}
    if "%" in query_string or "+" in query_string:
        for name, value in parse_qsl(query_string, keep_blank_values=True):
            query.setdefault(name, value)
        return query
    for pair in query_string.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            query.setdefault(name, value)
    return query


def json_headers(headers: Mapping[Any, Any]) -> dict[str, str]:
    """Headers given as a JSON object (inside onion requests and batch items) as
    request headers: names lower-cased, null values left out, and the numbers and
    booleans Android sends (``"Room": 5``, ``true``) as the text they stand for."""
    return {
        str(name).lower(): _header_text(value)
        for name, value in headers.items()
        if value is not None
    }


def _header_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)
