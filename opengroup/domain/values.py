"""Parsing of the values clients send: Session ids, room ids, base64, integers, a
room's name and description.

Each parser either returns a clean value or raises :class:`InvalidInput` with a
reason that names the field, so handlers stay free of validation noise. The
predicates (``is_room_id``, ``could_be_room_id`` ...) only answer yes or no.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from typing import Any

from opengroup.domain.errors import InvalidInput

SESSION_ID_RE = re.compile(r"05[0-9a-f]{64}")
# The v2 rule of room ids (the legacy import still takes only these).
ROOM_ID_RE = re.compile(r"[a-z0-9_]{2,64}")
# Room ids of new rooms: community API tokens (a superset of the v2 rule). Two rooms
# never differ only in case (see storage.queries.insert_room).
ROOM_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_INT64 = 2**63 - 1
DECIMAL_RE = re.compile(r"-?[0-9]{1,19}")


def session_id(value: Any, field: str = "public_key") -> str:
    """A Session id: 66 hex characters starting with 05 (upper case is folded)."""
    if not isinstance(value, str) or not SESSION_ID_RE.fullmatch(value.lower()):
        raise InvalidInput(f"{field} must be a Session id: 66 hex characters starting with 05")
    return value.lower()


def is_room_id(value: Any) -> bool:
    return isinstance(value, str) and ROOM_ID_RE.fullmatch(value) is not None


def is_room_token(value: Any) -> bool:
    return isinstance(value, str) and ROOM_TOKEN_RE.fullmatch(value) is not None


def could_be_room_id(text: str) -> bool:
    """False for a text no room's id can be: one with a NUL, which no room id has and
    PostgreSQL text cannot even hold (looking it up would fail, not find nothing)."""
    return "\x00" not in text


def room_id(value: Any) -> str:
    """The id of a new room: 1 to 64 of A-Z, a-z, 0-9, _ and -."""
    if not isinstance(value, str) or not is_room_token(value):
        raise InvalidInput("room ids are 1 to 64 of A-Z, a-z, 0-9, _ and -")
    return value


def base64_text(value: Any, field: str) -> str:
    """A base64 string as the client sent it (its decoding is :func:`base64_bytes`)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a base64 string")
    return value


def base64_bytes(value: Any, field: str) -> bytes:
    """Standard, padded base64 (what every Session client sends)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{field} is not valid base64") from None


def integer(value: Any, field: str, *, minimum: int = 0, maximum: int = MAX_INT64) -> int:
    """A JSON integer (or its decimal text, as in query strings) within bounds."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be an integer")
    if isinstance(value, str):
        text = value.strip()
        if not DECIMAL_RE.fullmatch(text):  # not isdigit(): "²" and "--5" pass that
            raise InvalidInput(f"{field} must be an integer")
        value = int(text)
    if not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer")
    if not minimum <= value <= maximum:
        raise InvalidInput(f"{field} must be between {minimum} and {maximum}")
    return value


def optional_integer(value: Any, field: str, **bounds: int) -> int | None:
    """Like :func:`integer`, but None, a missing value or "" mean "not given"."""
    if value is None or value == "":
        return None
    return integer(value, field, **bounds)


def room_name(value: Any) -> str:
    """A room's name as shown (set by an admin's client or the operator's command):
    without control characters, trimmed, not empty."""
    if value is None or not (name := _shown(value, "name")):
        raise InvalidInput("name must be a non-empty string")
    return name


def room_description(value: Any) -> str | None:
    """A room's description as shown: without control characters but line breaks and
    tabs (as pysogs), trimmed; None (none) if nothing is left, or for None."""
    if value is None:
        return None
    return _shown(value, "description", keep="\n\t") or None


def _shown(value: Any, field: str, keep: str = "") -> str:
    """``value``, a string, without the control characters not in ``keep``, trimmed;
    everything else stays (emoji joiners, other spaces)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string")
    return "".join(c for c in value if c in keep or unicodedata.category(c) != "Cc").strip()
