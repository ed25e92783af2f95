"""opengroup.api.jsonbody: the one rule on how deep a JSON body may nest.

Rules pinned here:

* Depth counts objects and arrays: a scalar is 0 levels, ``{}`` and ``[]`` are 1,
  ``{"a": [1]}`` is 2. A body nested exactly ``max_depth`` levels parses; one level more
  is refused with :data:`DEEP_JSON` (400 through :func:`parse_json`).
* Brackets inside strings do not count: the quick text bound
  (:func:`cannot_nest_deeper`) only lets a body skip the walk, never refuses it.
* ``max_depth`` 0 means no limit of ours; orjson's own limit (1024 levels) still
  holds and is answered as "too deep", not as "not JSON".
* Anything that is not JSON (empty, truncated, not UTF-8, NaN) is
  ``orjson.JSONDecodeError`` from :func:`loads_json` and 400 "body is not valid JSON"
  from :func:`parse_json`; no other exception escapes.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from opengroup.api.errors import status_of
from opengroup.api.jsonbody import (
    DEEP_JSON,
    JsonTooDeep,
    cannot_nest_deeper,
    json_too_deep,
    loads_json,
    parse_json,
)
from opengroup.domain.errors import InvalidInput

ORJSON_MAX_DEPTH = 1024


def arrays(depth: int) -> str:
    """``[[...[1]...]]``: ``depth`` nested arrays."""
    return "[" * depth + "1" + "]" * depth


def objects(depth: int) -> str:
    """``{"a":{"a":...{"a":1}...}}``: ``depth`` nested objects."""
    return '{"a":' * depth + "1" + "}" * depth


def mixed(depth: int) -> str:
    """Objects and arrays alternating, ``depth`` levels, with flat siblings at each level."""
    text = "1"
    for level in range(depth):
        text = f'{{"x":{text},"y":2}}' if level % 2 else f'[0,{text},"]"]'
    return text


SHAPES = [
    pytest.param(arrays, id="arrays"),
    pytest.param(objects, id="objects"),
    pytest.param(mixed, id="objects and arrays"),
]


@pytest.mark.parametrize(
    "text, depth",
    [
        pytest.param("1", 0, id="a number is 0 levels"),
        pytest.param('"[{"', 0, id="a string with brackets is 0 levels"),
        pytest.param("{}", 1, id="an empty object is 1 level"),
        pytest.param("[]", 1, id="an empty array is 1 level"),
        pytest.param('{"a": [1]}', 2, id="an array in an object is 2 levels"),
        pytest.param("[[], [[]], {}]", 3, id="the deepest sibling counts"),
        pytest.param('[{"a": 1}, {"b": {"c": []}}]', 4, id="a later sibling is deeper"),
    ],
)
def test_depth_counts_objects_and_arrays_only(text: str, depth: int) -> None:
    value = orjson.loads(text)
    assert not json_too_deep(value, depth + 1)
    if depth:
        assert not json_too_deep(value, depth)
    if depth > 1:  # (a limit of 0 is no limit)
        assert json_too_deep(value, depth - 1)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("limit", [pytest.param(1, id="limit 1"), pytest.param(32, id="limit 32")])
def test_a_body_nested_exactly_max_depth_parses_and_one_more_is_refused(
    shape: Any, limit: int
) -> None:
    assert loads_json(shape(limit), limit) == orjson.loads(shape(limit))
    with pytest.raises(JsonTooDeep, match=DEEP_JSON):
        loads_json(shape(limit + 1), limit)


@pytest.mark.parametrize("shape", SHAPES)
def test_parse_json_refuses_a_too_deep_body_as_a_bad_request(shape: Any) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_json(shape(33), 32)
    assert refused.value.reason == DEEP_JSON
    assert status_of(refused.value) == 400


@pytest.mark.parametrize(
    "data",
    [
        pytest.param('["{{{{[[[[", "]]]]}}}}"]', id="brackets in strings"),
        pytest.param('{"[[[[": "{{{{", "k": ["[", "{"]}', id="brackets in keys and values"),
        pytest.param(b'["\\u005b[[[["]', id="escaped bracket in bytes"),
    ],
)
def test_brackets_inside_strings_do_not_count_as_levels(data: str | bytes) -> None:
    assert not cannot_nest_deeper(data, 2)  # the quick bound cannot tell...
    assert loads_json(data, 2) == orjson.loads(data)  # ...so the walk decides: 2 levels at most


@pytest.mark.parametrize(
    "data, limit, certain",
    [
        pytest.param("[[1]]", 2, True, id="two brackets under limit 2"),
        pytest.param(b"[[1]]", 2, True, id="bytes too"),
        pytest.param("[{}]", 1, False, id="two openers over limit 1"),
        pytest.param('"{"', 0, False, id="a bracket in a string counts for the bound"),
        pytest.param("12", 0, True, id="no brackets at all"),
    ],
)
def test_the_quick_bound_counts_every_opening_bracket(
    data: str | bytes, limit: int, certain: bool
) -> None:
    assert cannot_nest_deeper(data, limit) is certain


@pytest.mark.parametrize("shape", SHAPES)
def test_max_depth_zero_means_no_limit_of_ours(shape: Any) -> None:
    deep = shape(500)
    assert loads_json(deep, 0) == orjson.loads(deep)
    assert parse_json(deep, 0) == orjson.loads(deep)
    assert not json_too_deep(orjson.loads(deep), 0)
    assert not json_too_deep(orjson.loads(deep), -1)


@pytest.mark.parametrize(
    "limit",
    [pytest.param(0, id="no limit of ours"), pytest.param(5000, id="a limit above orjson's")],
)
def test_orjsons_own_depth_limit_is_answered_as_too_deep(limit: int) -> None:
    assert loads_json(arrays(ORJSON_MAX_DEPTH), limit) is not None
    with pytest.raises(JsonTooDeep, match=DEEP_JSON):
        loads_json(arrays(ORJSON_MAX_DEPTH + 1), limit)
    with pytest.raises(InvalidInput) as refused:
        parse_json(objects(ORJSON_MAX_DEPTH + 1), limit)
    assert refused.value.reason == DEEP_JSON


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"   ", id="only spaces"),
        pytest.param(b'{"a": 1', id="truncated object"),
        pytest.param(b"[1,]", id="trailing comma"),
        pytest.param(b"{'a': 1}", id="single quotes"),
        pytest.param(b"NaN", id="NaN"),
        pytest.param(b'"\xff"', id="not UTF-8"),
        pytest.param(b"1 2", id="two values"),
        pytest.param("[" * 40, id="only opening brackets"),
    ],
)
def test_non_json_is_a_decode_error_and_a_bad_request(data: bytes | str) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        loads_json(data, 32)
    with pytest.raises(InvalidInput) as refused:
        parse_json(data, 32)
    assert refused.value.reason == "body is not valid JSON"


@pytest.mark.parametrize(
    "data, value",
    [
        pytest.param(b"null", None, id="null"),
        pytest.param(b" 7 ", 7, id="a number with spaces"),
        pytest.param('{"é": "ü"}', {"é": "ü"}, id="text with non-ASCII"),
        pytest.param(b'[{"a": []}, 2]', [{"a": []}, 2], id="bytes"),
    ],
)
def test_json_within_the_limit_parses_to_its_value(data: bytes | str, value: Any) -> None:
    assert parse_json(data, 3) == value


def test_a_wide_body_is_not_deep() -> None:
    wide = orjson.dumps([{"k": [i]} for i in range(10_000)])
    assert len(parse_json(wide, 3)) == 10_000
    with pytest.raises(InvalidInput, match=DEEP_JSON):
        parse_json(wide, 2)
