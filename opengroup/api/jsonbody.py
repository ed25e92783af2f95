"""Parsing JSON bodies, with one rule on how deep they may nest.

Both APIs and both onion framings parse JSON here: a body nested more than
``max_json_depth`` levels is refused (400 :data:`DEEP_JSON`) before any
handler walks it.
"""

from __future__ import annotations

from typing import Any

import orjson

from opengroup.domain.errors import InvalidInput

DEEP_JSON = "JSON nested too deeply"


class JsonTooDeep(ValueError):
    """Parsed JSON nests deeper than ``max_json_depth``: answered 400 :data:`DEEP_JSON`."""


def json_too_deep(value: Any, limit: int) -> bool:
    """Whether parsed JSON nests objects/arrays more than ``limit`` levels (0: no limit).

    ``{}`` is one level, ``{"a": [1]}`` two. Level by level, without recursion;
    the cost is one visit per object or array, about that of parsing it.
    """
    if limit <= 0:
        return False
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        children: list[Any] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            children += [i for i in items if type(i) is dict or type(i) is list]
        level = children
    return False


def cannot_nest_deeper(data: bytes | str, limit: int) -> bool:
    """A quick bound from the text: every level opens with a ``{`` or ``[``, so text
    with at most ``limit`` of them (in strings or not) cannot nest deeper. Nearly
    every request passes here and skips :func:`json_too_deep`."""
    if isinstance(data, str):
        return data.count("{") + data.count("[") <= limit
    return data.count(b"{") + data.count(b"[") <= limit


def loads_json(data: bytes | str, max_depth: int) -> Any:
    """Parse JSON nested at most ``max_depth`` levels: :class:`JsonTooDeep` if deeper,
    ``orjson.JSONDecodeError`` if it is not JSON."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson gives up by itself past 1024 levels
            raise JsonTooDeep(DEEP_JSON) from None
        raise
    if (
        max_depth > 0
        and not cannot_nest_deeper(data, max_depth)
        and json_too_deep(value, max_depth)
    ):
        raise JsonTooDeep(DEEP_JSON)
    return value


def parse_json(data: bytes | str, max_depth: int) -> Any:
    """:func:`loads_json` with its failures as one 400 saying why."""
    try:
        return loads_json(data, max_depth)
    except JsonTooDeep:
        raise InvalidInput(DEEP_JSON) from None
    except orjson.JSONDecodeError:
        raise InvalidInput("body is not valid JSON") from None
