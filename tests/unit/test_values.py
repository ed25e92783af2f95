"""opengroup.domain.values and users.parse_session_id: the values clients send.

Rules pinned here:

* Integers: a JSON integer or its decimal text (query strings), within bounds (by
  default 0 to 2**63 - 1, what SQLite and PostgreSQL store). Booleans are not integers.
  Text is ASCII decimal with an optional "-", at most 19 digits, surrounding spaces
  ignored: "²", other scripts' digits, "--5", "+5", "5.0", "1e3", "0x10" and "5 5" are
  refused. A refusal names the field; out of bounds says the bounds.
* ``optional_integer``: None and "" mean "not given".
* Base64: standard alphabet, padded (what every Session client sends); unpadded,
  URL-safe or otherwise invalid text is 400 naming the field.
* Session ids (``session_id``): "05" and 64 hex digits, upper case folded.
  ``parse_session_id`` also takes "15" blinded ids, and nothing but 64 hex digits
  after the prefix (no spaces).
* Room ids of new rooms: 1 to 64 of A-Z, a-z, 0-9, _ and -; the v2 rule
  (``is_room_id``) stays 2 to 64 of a-z, 0-9 and _.
"""

from __future__ import annotations

from typing import Any

import pytest

from opengroup.domain.errors import InvalidInput
from opengroup.domain.users import parse_session_id
from opengroup.domain.values import (
    MAX_INT64,
    base64_bytes,
    base64_text,
    integer,
    is_room_id,
    is_room_token,
    optional_integer,
    room_id,
    session_id,
)

MIN_INT64 = -(2**63)
KEY_HEX = "0123456789abcdef" * 4


# ---------------------------------------------------------------------------- integers


@pytest.mark.parametrize(
    "value, expected",
    [
        pytest.param(0, 0, id="zero"),
        pytest.param(42, 42, id="a JSON integer"),
        pytest.param("42", 42, id="decimal text"),
        pytest.param(" 42 ", 42, id="decimal text with surrounding spaces"),
        pytest.param("42\n", 42, id="decimal text with a newline"),
        pytest.param("007", 7, id="leading zeros"),
        pytest.param("-0", 0, id="minus zero"),
        pytest.param(MAX_INT64, MAX_INT64, id="the largest 64-bit integer"),
        pytest.param(str(MAX_INT64), MAX_INT64, id="the largest 64-bit integer as text"),
    ],
)
def test_integers_and_their_decimal_text_are_accepted(value: Any, expected: int) -> None:
    assert integer(value, "limit") == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(True, id="true"),
        pytest.param(False, id="false"),
        pytest.param(5.0, id="a float with no fraction"),
        pytest.param(5.5, id="a float"),
        pytest.param(None, id="null"),
        pytest.param([5], id="a list"),
        pytest.param({"v": 5}, id="an object"),
        pytest.param("", id="empty text"),
        pytest.param(" ", id="only a space"),
        pytest.param("²", id="superscript two"),
        pytest.param("\u0665", id="an Arabic-Indic digit"),
        pytest.param("\uff15", id="a fullwidth digit"),
        pytest.param("--5", id="two minus signs"),
        pytest.param("-", id="a lone minus sign"),
        pytest.param("+5", id="a plus sign"),
        pytest.param("5.0", id="a decimal point"),
        pytest.param("1e3", id="an exponent"),
        pytest.param("0x10", id="hex"),
        pytest.param("5 5", id="a space inside"),
        pytest.param("1_000", id="an underscore"),
        pytest.param("1" * 20, id="twenty digits"),
    ],
)
def test_anything_but_an_integer_is_refused_naming_the_field(value: Any) -> None:
    with pytest.raises(InvalidInput) as refused:
        integer(value, "limit")
    assert refused.value.reason == "limit must be an integer"


@pytest.mark.parametrize(
    "value, bounds",
    [
        pytest.param(-1, {}, id="below the default minimum 0"),
        pytest.param("-1", {}, id="negative text below the default minimum 0"),
        pytest.param(MAX_INT64 + 1, {}, id="2**63"),
        pytest.param(str(MAX_INT64 + 1), {}, id="2**63 as text"),
        pytest.param(MIN_INT64 - 1, {"minimum": MIN_INT64}, id="below -2**63"),
        pytest.param(0, {"minimum": 1}, id="below a minimum of 1"),
        pytest.param(257, {"maximum": 256}, id="above a maximum of 256"),
    ],
)
def test_integers_out_of_bounds_are_refused_with_the_bounds(
    value: Any, bounds: dict[str, int]
) -> None:
    minimum, maximum = bounds.get("minimum", 0), bounds.get("maximum", MAX_INT64)
    with pytest.raises(InvalidInput) as refused:
        integer(value, "limit", **bounds)
    assert refused.value.reason == f"limit must be between {minimum} and {maximum}"


@pytest.mark.parametrize(
    "value, bounds",
    [
        pytest.param(MIN_INT64, {"minimum": MIN_INT64}, id="-2**63"),
        pytest.param(str(MIN_INT64), {"minimum": MIN_INT64}, id="-2**63 as text"),
        pytest.param(1, {"minimum": 1}, id="at a minimum of 1"),
        pytest.param("256", {"maximum": 256}, id="at a maximum of 256"),
    ],
)
def test_integers_at_the_bounds_are_accepted(value: Any, bounds: dict[str, int]) -> None:
    assert integer(value, "limit", **bounds) == int(value)


@pytest.mark.parametrize(
    "value, expected",
    [
        pytest.param(None, None, id="null is not given"),
        pytest.param("", None, id="empty text is not given"),
        pytest.param("0", 0, id="zero is given"),
        pytest.param(12, 12, id="an integer"),
    ],
)
def test_optional_integers_treat_null_and_empty_text_as_not_given(
    value: Any, expected: int | None
) -> None:
    assert optional_integer(value, "since") == expected


def test_optional_integers_keep_the_bounds_and_the_refusals() -> None:
    with pytest.raises(InvalidInput, match="since must be between 1 and 10"):
        optional_integer("0", "since", minimum=1, maximum=10)
    with pytest.raises(InvalidInput, match="since must be an integer"):
        optional_integer(False, "since")


# ---------------------------------------------------------------------------- base64


@pytest.mark.parametrize(
    "text, data",
    [
        pytest.param("", b"", id="empty"),
        pytest.param("YQ==", b"a", id="two padding characters"),
        pytest.param("YWI=", b"ab", id="one padding character"),
        pytest.param("YWJj", b"abc", id="no padding needed"),
        pytest.param("+/8=", b"\xfb\xff", id="the standard alphabet's + and /"),
    ],
)
def test_padded_standard_base64_is_decoded(text: str, data: bytes) -> None:
    assert base64_bytes(text, "data") == data


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("YQ", id="unpadded"),
        pytest.param("YWI", id="unpadded, one short"),
        pytest.param("-_8=", id="URL-safe alphabet"),
        pytest.param("YW Jj", id="a space inside"),
        pytest.param("YWJj\n", id="a trailing newline"),
        pytest.param("YQ===", id="too much padding"),
        pytest.param("Y===", id="a lone character"),
        pytest.param("YQ==YQ==", id="padding in the middle"),
        pytest.param("é", id="non-ASCII"),
    ],
)
def test_invalid_base64_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        base64_bytes(text, "data")
    assert refused.value.reason == "data is not valid base64"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="null"),
        pytest.param(b"YQ==", id="bytes"),
        pytest.param(12, id="a number"),
        pytest.param(["YQ=="], id="a list"),
    ],
)
def test_base64_must_be_a_string(value: Any) -> None:
    with pytest.raises(InvalidInput, match=r"^signature must be a base64 string$"):
        base64_bytes(value, "signature")
    with pytest.raises(InvalidInput, match=r"^signature must be a base64 string$"):
        base64_text(value, "signature")


def test_base64_text_is_kept_as_sent() -> None:
    assert base64_text("YQ", "data") == "YQ"


# ---------------------------------------------------------------------------- Session ids


@pytest.mark.parametrize(
    "value, expected",
    [
        pytest.param("05" + KEY_HEX, "05" + KEY_HEX, id="lower case"),
        pytest.param("05" + KEY_HEX.upper(), "05" + KEY_HEX, id="upper case is folded"),
    ],
)
def test_session_ids_are_05_and_64_hex_digits(value: str, expected: str) -> None:
    assert session_id(value) == expected


BAD_SESSION_IDS = [
    pytest.param("05" + KEY_HEX[:-1], id="65 characters"),
    pytest.param("05" + KEY_HEX + "0", id="67 characters"),
    pytest.param("05" + KEY_HEX[:-1] + "g", id="a non-hex digit"),
    pytest.param("05" + KEY_HEX[:-2] + "  ", id="trailing spaces"),
    pytest.param("05" + KEY_HEX[:-4] + " ab ", id="spaces between hex pairs"),
    pytest.param(" 05" + KEY_HEX[:-1], id="a leading space"),
    pytest.param("05" + KEY_HEX + "\n", id="a trailing newline"),
    pytest.param("25" + KEY_HEX, id="prefix 25"),
    pytest.param("00" + KEY_HEX, id="prefix 00"),
    pytest.param(KEY_HEX + "05", id="no prefix"),
    pytest.param("", id="empty"),
    pytest.param(None, id="null"),
    pytest.param(5, id="a number"),
    pytest.param(bytes.fromhex("05" + KEY_HEX), id="bytes"),
]


@pytest.mark.parametrize("value", [*BAD_SESSION_IDS, pytest.param("15" + KEY_HEX, id="prefix 15")])
def test_anything_but_a_05_session_id_is_refused_naming_the_field(value: Any) -> None:
    with pytest.raises(InvalidInput) as refused:
        session_id(value, "whisper_to")
    assert refused.value.reason.startswith("whisper_to must be a Session id")


@pytest.mark.parametrize(
    "value, expected",
    [
        pytest.param("05" + KEY_HEX, "05" + KEY_HEX, id="a 05 Session id"),
        pytest.param("15" + KEY_HEX, "15" + KEY_HEX, id="a 15 blinded id"),
        pytest.param("15" + KEY_HEX.upper(), "15" + KEY_HEX, id="upper case is folded"),
    ],
)
def test_parse_session_id_takes_05_and_15_ids(value: str, expected: str) -> None:
    assert parse_session_id(value) == expected


@pytest.mark.parametrize("value", BAD_SESSION_IDS)
def test_parse_session_id_refuses_anything_else_naming_the_field(value: Any) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_session_id(value, "whisper_to")
    assert refused.value.reason == "whisper_to must be 66 hex digits starting with 05 or 15"


# ---------------------------------------------------------------------------- room ids


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("a", id="one character"),
        pytest.param("main", id="lower case"),
        pytest.param("Main-Room_2", id="upper case, dash, underscore and digit"),
        pytest.param("x" * 64, id="64 characters"),
    ],
)
def test_new_room_ids_are_1_to_64_token_characters(value: str) -> None:
    assert room_id(value) == value
    assert is_room_token(value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 65, id="65 characters"),
        pytest.param("a b", id="a space"),
        pytest.param("a.b", id="a dot"),
        pytest.param("a/b", id="a slash"),
        pytest.param("café", id="non-ASCII"),
        pytest.param("main\n", id="a trailing newline"),
        pytest.param(None, id="null"),
        pytest.param(5, id="a number"),
    ],
)
def test_anything_else_is_not_a_room_id(value: Any) -> None:
    assert not is_room_token(value)
    with pytest.raises(InvalidInput) as refused:
        room_id(value)
    assert refused.value.reason == "room ids are 1 to 64 of A-Z, a-z, 0-9, _ and -"


@pytest.mark.parametrize(
    "value, v2",
    [
        pytest.param("ab", True, id="two lower-case letters"),
        pytest.param("room_1", True, id="underscore and digit"),
        pytest.param("x" * 64, True, id="64 characters"),
        pytest.param("a", False, id="one character"),
        pytest.param("Main", False, id="upper case"),
        pytest.param("a-b", False, id="a dash"),
        pytest.param("x" * 65, False, id="65 characters"),
        pytest.param(None, False, id="null"),
    ],
)
def test_the_v2_room_id_rule_is_narrower(value: Any, v2: bool) -> None:
    assert is_room_id(value) is v2
    if v2:
        assert is_room_token(value)
