"""Fuzzing: hostile or random input never crashes the server, hangs it, or changes its data.

Hypothesis generates, against the real running server (docs/spec/SPEC.md sections 2 and 3):

- onion blobs: random bytes, wrong length prefixes, truncations, flipped bits,
  bad metadata (no key, a wrong key, low-order points), and well-formed
  envelopes around random plaintext;
- inner requests: the real endpoints with random path parameters and query
  strings, random endpoints and methods, headers whose values are strings,
  numbers, booleans or nested JSON, bodies that are JSON, not JSON, or nested
  thousands deep; real tokens, ids and keys are mixed in so that requests get
  past authentication and reach the handlers;
- the same kind of requests made directly over HTTP, and compact_poll bodies.

Endpoints come in the three forms docs/spec/SPEC-v3.md section 1 routes: bare
(`rooms`: v2 through onion v3, the root directly), under `/legacy/` (v2 both
ways) and with a leading `/` (the community (v3) API through onion v3, the root
directly, where v2 answers the paths v3 has no route of that method for).

What must hold for every example: the answer is a 2xx or 4xx of the promised
shape (a plain-text 400/413 for an envelope that cannot be opened; otherwise an
outer 200 around an encrypted JSON object with an integer 2xx/4xx
`status_code`, never 500, 406 or 421, or for a v3 request its success body or
its bare `{"status_code": N}`; directly under `/legacy/`, a JSON object whose
`status_code` equals the HTTP status; directly at the root, either that or a v3
answer of one of the three content types, a refusal in plain text); nothing
hangs (every call has a timeout); the server stays up and logs no traceback;
and a rejected request leaves the stored data exactly as it was (a fingerprint
of the tables, read from the database itself, before and after).

Budget: OPENGROUP_FUZZ_EXAMPLES examples per property (default 200). The run
is derandomized, so CI sees the same examples every time; OPENGROUP_FUZZ_RANDOM=1
draws new ones on every run (see docs/SECURITY.md for a long run).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import string
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from harness import probe
from harness.server import ServerProcess
from harness.v2client import (
    CLIENT_LIMITS,
    DEFAULT_ROOM,
    LEGACY_PREFIX,
    ONION_PATH,
    Client,
    Identity,
    Persona,
    decrypt_aes_gcm,
    decrypt_onion_response,
    derive_symmetric_key,
    encrypt_onion_payload,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("OPENGROUP_FUZZ_EXAMPLES", "200"))
# CI: the same examples every run. OPENGROUP_FUZZ_RANDOM=1: new ground every run (reproduce
# a failure with the printed @reproduce_failure blob, or pytest --hypothesis-seed=N).
RANDOM = bool(os.environ.get("OPENGROUP_FUZZ_RANDOM"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
TIMEOUT = 10.0
OTHER_ROOM = "fuzz_other"
ONION_PATHS = (ONION_PATH, "/oxen/v3/lsrpc", "/oxen/v4/lsrpc")
PLAIN = "text/plain; charset=utf-8"
# What the v3 API answers with (docs/spec/SPEC-v3.md section 3), refusals included.
V3_CONTENT_TYPES = ("application/json", PLAIN, "application/octet-stream")

# --------------------------------------------------------------------------- placeholders
# Strategies are built before the server exists, so they draw these markers; each
# request is resolved against the live world (tokens, ids) just before it is sent.

USER_TOKEN = "@@USER_TOKEN@@"
MOD_TOKEN = "@@MOD_TOKEN@@"
USER_ID = "@@USER_ID@@"
MOD_ID = "@@MOD_ID@@"
MESSAGE_ID = "@@MESSAGE_ID@@"
FILE_ID = "@@FILE_ID@@"
INT_MESSAGE_ID = "@@INT_MESSAGE_ID@@"
INT_FILE_ID = "@@INT_FILE_ID@@"
PLACEHOLDERS = (USER_TOKEN, MOD_TOKEN, USER_ID, MOD_ID, MESSAGE_ID, FILE_ID)


@dataclass(frozen=True)
class World:
    """Live values the placeholders stand for: a member, a moderator, a message, a file."""

    user: Persona
    moderator: Persona
    message_id: int
    file_id: int

    def resolve(self, value: Any) -> Any:
        """Replace every placeholder in strings, lists and dicts (keys too) by its value."""
        if isinstance(value, str):
            if value == INT_MESSAGE_ID:
                return self.message_id
            if value == INT_FILE_ID:
                return self.file_id
            for marker, real in (
                (USER_TOKEN, self.user.token),
                (MOD_TOKEN, self.moderator.token),
                (USER_ID, self.user.session_id),
                (MOD_ID, self.moderator.session_id),
                (MESSAGE_ID, str(self.message_id)),
                (FILE_ID, str(self.file_id)),
            ):
                value = value.replace(marker, real)
            return value
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {self.resolve(k): self.resolve(v) for k, v in value.items()}
        return value


# --------------------------------------------------------------------------- strategies

DEEP_ARRAY = "[" * 50_000 + "]" * 50_000
DEEP_OBJECT = '{"a":' * 5_000 + "1" + "}" * 5_000
TRICKY_TEXT = (
    "",
    " ",
    "\x00",
    "main\x00",
    "null",
    "true",
    "[]",
    "{}",
    "0",
    "-1",
    "--5",
    "+5",
    " 7 ",
    "\u00b2",  # superscript two: str.isdigit() says yes, int() says no
    "\u0663",  # Arabic-Indic three
    "\uff15",  # fullwidth five
    "1e3",
    "0x10",
    "9" * 19,
    "9" * 30,
    str(2**31),
    str(2**53),
    str(2**63),
    str(2**64),
    "05" + "ab" * 32,
    "05" + "AB" * 32,
    "05" + "ab" * 31,
    "15" + "ab" * 32,
    "a" * 65,
    "%00",
    "%2F",
    "../..",
    "\ud800",
    "\udfff",
    "\u202e",
    "\U0001f600",
)
SURROGATES = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(TRICKY_TEXT),
    st.sampled_from(PLACEHOLDERS),
    SURROGATES,
)
INTEGERS = st.one_of(
    st.integers(min_value=-3, max_value=5),
    st.sampled_from([2**31 - 1, 2**31, 2**53, 2**63 - 1, 2**63, 2**64, -(2**63) - 1]),
    st.integers(),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    INTEGERS,
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    st.sampled_from([INT_MESSAGE_ID, INT_FILE_ID]),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
B64 = st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode())
SESSION_IDS = st.one_of(
    st.sampled_from([USER_ID, MOD_ID]),
    st.from_regex(r"05[0-9a-f]{64}", fullmatch=True),
)
FIELD_VALUES = st.one_of(JSON_VALUES, B64, SESSION_IDS, st.sampled_from(["", DEFAULT_ROOM]))
BODY_FIELDS = (
    "public_key",
    "timestamp",
    "data",
    "signature",
    "file",
    "ids",
    "requests",
    "room_id",
    "auth_token",
    "from_message_server_id",
    "from_deletion_server_id",
)
POLL_ENTRIES = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "room_id": st.one_of(st.sampled_from([DEFAULT_ROOM, OTHER_ROOM, "nope"]), TEXT),
            "auth_token": st.one_of(st.sampled_from([USER_TOKEN, MOD_TOKEN]), JSON_VALUES),
            "from_message_server_id": st.one_of(INTEGERS, JSON_VALUES),
            "from_deletion_server_id": st.one_of(INTEGERS, JSON_VALUES),
        },
    ),
    JSON_VALUES,
)
MESSAGE_BODIES = st.fixed_dictionaries(
    {
        "data": st.one_of(B64, JSON_VALUES),
        "signature": st.one_of(
            st.binary(min_size=64, max_size=64).map(lambda b: base64.b64encode(b).decode()),
            B64,
            JSON_VALUES,
        ),
        "timestamp": st.one_of(INTEGERS, JSON_VALUES),
    },
    optional={"public_key": st.one_of(SESSION_IDS, JSON_VALUES)},
)
BODY_OBJECTS = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(BODY_FIELDS), TEXT), FIELD_VALUES, max_size=5),
    MESSAGE_BODIES,
    st.fixed_dictionaries({"requests": st.lists(POLL_ENTRIES, max_size=4)}),
    st.fixed_dictionaries(
        {"ids": st.lists(st.one_of(st.just(INT_MESSAGE_ID), INTEGERS, JSON_VALUES), max_size=4)}
    ),
    st.fixed_dictionaries({"public_key": SESSION_IDS}, optional={"room_id": TEXT}),
    st.fixed_dictionaries({"file": st.one_of(B64, JSON_VALUES)}),
)
# The inner request's "body": usually the JSON text of an object, sometimes anything.
INNER_BODIES = st.one_of(
    BODY_OBJECTS.map(json.dumps),
    st.sampled_from(["", "null", " ", "{}", "[]", "0", '"x"', "{", "}{", DEEP_ARRAY, DEEP_OBJECT]),
    TEXT,
    JSON_VALUES,
)

ENDPOINTS = (
    ("GET", "rooms"),
    ("GET", "rooms/{}"),
    ("GET", "rooms/{}/image"),
    ("POST", "rooms/{}/image"),
    ("GET", "auth_token_challenge"),
    ("POST", "claim_auth_token"),
    ("DELETE", "auth_token"),
    ("GET", "member_count"),
    ("POST", "compact_poll"),
    ("POST", "messages"),
    ("GET", "messages"),
    ("DELETE", "messages/{}"),
    ("POST", "delete_messages"),
    ("GET", "deleted_messages"),
    ("POST", "files"),
    ("GET", "files/{}"),
    ("GET", "moderators"),
    ("POST", "moderators"),
    ("DELETE", "moderators/{}"),
    ("GET", "block_list"),
    ("POST", "block_list"),
    ("DELETE", "block_list/{}"),
    ("POST", "ban_and_delete_all"),
)
METHODS = ("GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS")
PATH_PARAMS = st.one_of(
    st.sampled_from([DEFAULT_ROOM, OTHER_ROOM, "nope", MESSAGE_ID, FILE_ID, USER_ID, MOD_ID]),
    INTEGERS.map(str),
    TEXT,
)
QUERY_NAMES = st.one_of(st.sampled_from(["from_server_id", "limit", "public_key"]), TEXT)
QUERY_VALUES = st.one_of(INTEGERS.map(str), SESSION_IDS, TEXT)


@st.composite
def endpoints(draw: st.DrawFn) -> tuple[str, str]:
    """(the usual method, an endpoint): a real one with random parts, or random text."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(METHODS)), draw(TEXT)
    method, template = draw(st.sampled_from(ENDPOINTS))
    path = template.format(draw(PATH_PARAMS)) if "{}" in template else template
    form = draw(st.integers(0, 2))
    if form == 1:
        path = "/" + path  # onion v3: the v3 API; directly: the root (v2 where v3 has none)
    elif form == 2:
        path = LEGACY_PREFIX + "/" + path  # the v2 API's own home, both ways
    if draw(st.integers(0, 5)) == 0:
        path += "/"
    pairs = draw(st.lists(st.tuples(QUERY_NAMES, QUERY_VALUES), max_size=3))
    if pairs:
        if draw(st.booleans()):
            path += "?" + "&".join(f"{k}={v}" for k, v in pairs)  # raw, as clients may send
        else:
            path += "?" + urlencode(pairs, quote_via=quote, errors="surrogatepass")
    return method, path


HEADER_NAMES = st.one_of(
    st.sampled_from(["Room", "room", "ROOM", "Authorization", "authorization", "Content-Type"]),
    TEXT,
)
HEADER_VALUES = st.one_of(
    st.sampled_from([DEFAULT_ROOM, OTHER_ROOM, USER_TOKEN, MOD_TOKEN]),
    JSON_VALUES,
)


@st.composite
def header_maps(draw: st.DrawFn) -> dict[str, Any]:
    """Usually a Room and an Authorization header (real or not) plus random others."""
    headers: dict[str, Any] = {}
    if draw(st.integers(0, 3)):
        headers["Room"] = draw(HEADER_VALUES)
    if draw(st.integers(0, 3)):
        headers["Authorization"] = draw(HEADER_VALUES)
    headers.update(draw(st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=3)))
    return headers


@dataclass(frozen=True)
class Call:
    """One inner request; any field may be of the wrong JSON type."""

    method: Any
    endpoint: Any
    headers: Any
    body: Any


@st.composite
def calls(draw: st.DrawFn) -> Call:
    """Mostly plausible requests (so they reach handlers), sometimes wrongly typed fields."""
    usual, endpoint = draw(endpoints())
    method = draw(
        st.one_of(
            st.just(usual),
            st.just(usual),
            st.just(usual.lower()),
            st.sampled_from(METHODS),
            TEXT,
            JSON_VALUES,
        )
    )
    headers = draw(st.one_of(header_maps(), header_maps(), header_maps(), JSON_VALUES))
    if draw(st.integers(0, 19)) == 0:
        endpoint = draw(JSON_VALUES)
    return Call(method, endpoint, headers, draw(INNER_BODIES))


# ---- onion envelopes, built deterministically from drawn keys and IVs

LOW_ORDER_POINTS = (
    "00" * 32,
    "01" + "00" * 31,
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
)


@dataclass(frozen=True)
class Blob:
    """An onion request body, and the key its answer is sealed with if the server opens it."""

    body: bytes
    key: bytes | None
    note: str


def seal_envelope(
    server_key: bytes, secret: bytes, iv: bytes, plaintext: bytes, metadata: dict[str, Any]
) -> tuple[bytes, bytes, bytes]:
    """(prefix, ciphertext, key) of an envelope from a drawn ephemeral secret and IV."""
    ephemeral = X25519PrivateKey.from_private_bytes(secret)
    key = derive_symmetric_key(ephemeral, server_key)
    ciphertext = iv + AESGCM(key).encrypt(iv, plaintext, None)
    metadata["ephemeral_key"] = ephemeral.public_key().public_bytes_raw().hex()
    return struct.pack("<I", len(ciphertext)), ciphertext, key


INNER_PLAINTEXTS = st.one_of(
    st.binary(max_size=120),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"", b"null", b"{}", b"[]", DEEP_ARRAY.encode(), DEEP_OBJECT.encode()]),
    st.fixed_dictionaries(
        {},
        optional={
            "endpoint": st.one_of(st.just("rooms"), TEXT, JSON_VALUES),
            "method": st.one_of(st.sampled_from(METHODS), JSON_VALUES),
            "headers": JSON_VALUES,
            "body": JSON_VALUES,
        },
    ).map(lambda v: json.dumps(v).encode()),
)
BAD_METADATA = st.one_of(
    st.binary(max_size=60),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(TEXT, JSON_VALUES, max_size=3).map(lambda v: json.dumps(v).encode()),
    st.one_of(
        st.sampled_from(LOW_ORDER_POINTS),
        st.binary(min_size=32, max_size=32).map(bytes.hex),  # somebody else's key
        st.text(max_size=70),
        st.from_regex(r"[0-9a-f]{63}|[0-9a-f]{65}|[0-9a-g]{64}", fullmatch=True),
        JSON_VALUES,
    ).map(lambda k: json.dumps({"ephemeral_key": k}).encode()),
)


def is_unicode(value: Any) -> bool:
    """Whether a JSON value's strings are all real text (no lone surrogate escapes)."""
    try:  # as JSON text: a pair of surrogate escapes is one real character
        json.dumps(json.loads(json.dumps(value)), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


KINDS = ("random", "valid", "prefix", "truncated", "flipped", "metadata", "extra")


def onion_blobs(server_key: bytes) -> st.SearchStrategy[Blob]:
    """Every kind of envelope, each labelled with whether it should open."""

    @st.composite
    def build(draw: st.DrawFn) -> Blob:
        kind = draw(st.sampled_from(KINDS))
        if kind == "random":
            return Blob(draw(st.binary(max_size=300)), None, kind)
        secret = draw(st.binary(min_size=32, max_size=32))
        iv = draw(st.binary(min_size=12, max_size=12))
        metadata: dict[str, Any] = {}
        if kind == "extra":
            metadata.update(draw(st.dictionaries(TEXT, JSON_VALUES, max_size=3)))
            metadata.pop("ephemeral_key", None)
        prefix, ciphertext, key = seal_envelope(
            server_key, secret, iv, draw(INNER_PLAINTEXTS), metadata
        )
        whole = prefix + ciphertext + json.dumps(metadata).encode()
        if kind == "valid" or (kind == "extra" and is_unicode(metadata)):
            return Blob(whole, key, kind)
        if kind == "extra":  # a lone surrogate escape is JSON syntax but not text: unparseable
            return Blob(whole, None, "extra with a lone surrogate")
        if kind == "prefix":
            size = draw(st.integers(0, 2**32 - 1).filter(lambda n: n != len(ciphertext)))
            return Blob(struct.pack("<I", size) + whole[4:], None, kind)
        if kind == "truncated":
            return Blob(whole[: draw(st.integers(0, len(whole) - 1))], None, kind)
        if kind == "flipped":  # inside the prefix or the ciphertext: never opens
            bit = draw(st.integers(0, 8 * (4 + len(ciphertext)) - 1))
            flipped = bytearray(whole)
            flipped[bit // 8] ^= 1 << (bit % 8)
            return Blob(bytes(flipped), None, kind)
        return Blob(prefix + ciphertext + draw(BAD_METADATA), None, kind)

    return build()


# ---- direct HTTP: what an HTTP client can actually put on the wire

FRAMING_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "expect",
        "te",
        "trailer",
        "proxy-connection",
    }
)
HTTP_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
    str.strip
)
HTTP_HEADER_NAMES = st.one_of(
    st.sampled_from(["Room", "room", "Authorization", "AUTHORIZATION", "Content-Type"]),
    st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True).filter(
        lambda n: n.lower() not in FRAMING_HEADERS
    ),
)
HTTP_HEADER_VALUES = st.one_of(
    st.sampled_from([DEFAULT_ROOM, OTHER_ROOM, USER_TOKEN, MOD_TOKEN, "", "null"]),
    INTEGERS.map(str),
    st.booleans().map(str),
    HTTP_TEXT,
)
# The methods the HTTP parser in front of the app (llhttp, in uvicorn's httptools) knows.
# Anything else is not HTTP to it: it answers a plain "400 Invalid HTTP request received."
# and closes the connection before the application sees a thing.
PARSER_METHODS = frozenset(
    [
        "DELETE",
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "OPTIONS",
        "TRACE",
        "COPY",
        "LOCK",
        "MKCOL",
        "MOVE",
        "PROPFIND",
        "PROPPATCH",
        "SEARCH",
        "UNLOCK",
        "BIND",
        "REBIND",
        "UNBIND",
        "ACL",
        "REPORT",
        "MKACTIVITY",
        "CHECKOUT",
        "MERGE",
        "M-SEARCH",
        "NOTIFY",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "PATCH",
        "PURGE",
        "MKCALENDAR",
        "LINK",
        "UNLINK",
        "SOURCE",
        "QUERY",
    ]
)
HTTP_METHODS = st.one_of(
    st.sampled_from(METHODS),
    st.sampled_from([m.lower() for m in METHODS]),
    st.sampled_from(["HEAD", "TRACE", "PROPFIND", "FOO"]),
    st.from_regex(r"[A-Z]{1,12}", fullmatch=True).filter(lambda m: m != "CONNECT"),
)
HTTP_BODIES = st.one_of(
    st.none(),
    BODY_OBJECTS.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.sampled_from([b"", b"null", b"{", b"[]", DEEP_ARRAY.encode(), DEEP_OBJECT.encode()]),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
)


@dataclass(frozen=True)
class HttpCall:
    """One direct request: method, endpoint (path and query), headers and raw body."""

    method: str
    endpoint: str
    headers: dict[str, str]
    body: bytes | None


@st.composite
def http_calls(draw: st.DrawFn) -> HttpCall:
    """Mostly the real endpoints, with the method they expect, through real HTTP."""
    usual, endpoint = draw(endpoints())
    method = draw(st.one_of(st.just(usual), st.just(usual), HTTP_METHODS))
    headers: dict[str, str] = {}
    if draw(st.integers(0, 3)):
        headers["Room"] = draw(HTTP_HEADER_VALUES)
    if draw(st.integers(0, 3)):
        headers["Authorization"] = draw(HTTP_HEADER_VALUES)
    headers.update(draw(st.dictionaries(HTTP_HEADER_NAMES, HTTP_HEADER_VALUES, max_size=3)))
    return HttpCall(method, endpoint, headers, draw(HTTP_BODIES))


# --------------------------------------------------------------------------- storage fingerprint

FINGERPRINT_QUERIES = (
    "SELECT id, name, message_seq, deletion_seq, image_file_id FROM rooms ORDER BY id",
    "SELECT room_id, server_id, public_key, timestamp, data, signature, deleted "
    "FROM messages ORDER BY room_id, server_id",
    "SELECT room_id, id, message_id FROM deletions ORDER BY room_id, id",
    "SELECT room_id, public_key FROM moderators ORDER BY room_id, public_key",
    "SELECT room_id, public_key FROM bans ORDER BY room_id, public_key",
    "SELECT id, room_id, uploader, size, expires_at FROM files ORDER BY id",
    "SELECT token_hash, room_id, public_key FROM tokens ORDER BY token_hash",
    "SELECT token_hash, room_id, public_key, expires_at FROM pending_tokens ORDER BY token_hash",
)


class Storage:
    """Reads the server's database directly, to see what a request really changed."""

    def __init__(self, conn: Any) -> None:
        """conn: a connection to the server's database (harness.probe.connect)."""
        self._conn = conn

    def fingerprint(self) -> str:
        """A digest of every row that a client's request may change (bookkeeping aside)."""
        digest = hashlib.sha256()
        for query in FINGERPRINT_QUERIES:
            digest.update(repr(self._conn.execute(query).fetchall()).encode())
        return digest.hexdigest()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def storage(server: ServerProcess) -> Iterator[Storage]:
    """Direct read access to the module server's tables."""
    with probe.connect(server) as conn:
        yield Storage(conn)


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    """A raw HTTP client of the module's server; every call times out rather than hang."""
    with httpx.Client(
        base_url=server.base_url, timeout=TIMEOUT, trust_env=False, limits=CLIENT_LIMITS
    ) as c:
        yield c


class AtTheRoot(Client):
    """A v2 client sending its direct requests at the root, where either API may answer
    (docs/spec/SPEC-v3.md section 1): each answer must pass :func:`assert_root_answer`,
    and comes back in the v2 shape."""

    def _request_http(
        self, method: str, endpoint: str, body: object | None, headers: dict[str, object]
    ) -> dict[str, Any]:
        content = None if body is None else json.dumps(body).encode()
        resp = self.http.request(
            method,
            "/" + endpoint.lstrip("/"),
            headers={k: str(v) for k, v in headers.items()},
            content=content,
        )
        return assert_root_answer(resp, (method, endpoint, headers))


@pytest.fixture(scope="module")
def clients(server: ServerProcess) -> Iterator[dict[str, Client]]:
    """One client per way in, reused by every example (a new one costs an SSL context):
    direct under /legacy/, direct at the root, and onion."""
    with (
        server.client("http", timeout=TIMEOUT) as over_http,
        AtTheRoot(server.base_url, server.public_key, timeout=TIMEOUT, http_prefix="") as root,
        server.client("onion", timeout=TIMEOUT) as over_onion,
    ):
        yield {"http": over_http, "root": root, "onion": over_onion}


@pytest.fixture(scope="module")
def other_room(server: ServerProcess) -> str:
    """A second room, so that cross-room mix-ups are tried too."""
    server.cli("rooms", "add", OTHER_ROOM, "Fuzz other")
    return OTHER_ROOM


@pytest.fixture(scope="module")
def admin(make_persona: Any, moderator_identity: Identity) -> Persona:
    """The module's moderator (made by the admin CLI); it appoints each world's moderator."""
    return make_persona(moderator_identity)


def make_world(setup_client: Client, make_persona: Any, admin: Persona) -> World:
    """A fresh member and a fresh moderator of `main`, one message and one file of theirs."""
    moderator_identity = Identity.generate()
    appointed = setup_client.request(
        "POST",
        "moderators",
        body={"public_key": moderator_identity.session_id, "room_id": DEFAULT_ROOM},
        room=DEFAULT_ROOM,
        token=admin.token,
    )
    assert appointed["status_code"] == 200, appointed
    user = make_persona()
    moderator = make_persona(moderator_identity)
    posted = setup_client.post_message(user.identity, user.token, DEFAULT_ROOM)
    assert posted["status_code"] == 200, posted
    uploaded = setup_client.request(
        "POST",
        "files",
        body={"file": base64.b64encode(b"fuzz file").decode()},
        room=DEFAULT_ROOM,
        token=user.token,
    )
    assert uploaded["status_code"] == 200, uploaded
    return World(user, moderator, posted["message"]["server_id"], uploaded["result"])


@pytest.fixture
def world(other_room: str, setup_client: Client, make_persona: Any, admin: Persona) -> World:
    """A world per fuzzing property: an example may revoke a token, ban the member, or use
    up a key's challenge allowance, and the next property must start whole."""
    return make_world(setup_client, make_persona, admin)


@pytest.fixture(scope="module")
def table_world(other_room: str, setup_client: Client, make_persona: Any, admin: Persona) -> World:
    """One world for the table of tricky texts (none of its requests can spoil it)."""
    return make_world(setup_client, make_persona, admin)


@pytest.fixture(autouse=True)
def server_stays_healthy(server: ServerProcess) -> Iterator[None]:
    """After each test: the server still runs and has logged no traceback meanwhile."""
    seen = len(server.output())
    yield
    assert server.running, f"the server died:\n{server.output()[-3000:]}"
    output = server.output()[seen:]
    assert "Traceback" not in output, output[-5000:]


# --------------------------------------------------------------------------- checks


def assert_client_status(code: object, what: object) -> int:
    """An integer 2xx or 4xx, never 406 or 421 (they mean something else to clients)."""
    assert isinstance(code, int) and not isinstance(code, bool), what
    assert 200 <= code < 300 or 400 <= code < 500, what
    assert code not in (406, 421), what
    return code


def assert_api_answer(answer: object, what: object) -> int:
    """A flat JSON object with a client status; an error also says why, in text."""
    assert isinstance(answer, dict), what
    code = assert_client_status(answer.get("status_code"), (answer, what))
    if code >= 400:
        assert isinstance(answer.get("error"), str) and answer["error"], (answer, what)
        assert "Traceback" not in answer["error"], (answer, what)
    return code


def is_legacy(path: str) -> bool:
    """Whether a (decoded) path is under /legacy/, the v2 API's home."""
    path = "/" + path.lstrip("/")
    return path == LEGACY_PREFIX or path.startswith(LEGACY_PREFIX + "/")


def speaks_v3_through_onion_v3(endpoint: object) -> bool:
    """Whether an onion v3 inner endpoint is for the v3 API: a leading `/`, not under
    /legacy/ (anything that is no endpoint at all is refused as a v2 request)."""
    if not isinstance(endpoint, str) or not endpoint.startswith("/"):
        return False
    return not is_legacy(unquote(endpoint.partition("?")[0], errors="surrogatepass"))


def assert_root_answer(resp: httpx.Response, what: object) -> dict[str, Any]:
    """A direct answer at the root: the v2 API's (a JSON object whose status_code is the
    HTTP status), or the v3 API's (one of its content types, a refusal in plain text).
    Returns the v2 answer, or the v3 one summed up in the v2 shape."""
    code = assert_client_status(resp.status_code, (resp.text[:300], what))
    content_type = resp.headers.get("content-type", "")
    if content_type == "application/json":
        answer = resp.json()
        if isinstance(answer, dict) and "status_code" in answer:  # the v2 API's
            assert_api_answer(answer, what)
            assert answer["status_code"] == code, (answer, what)
            return answer
    assert content_type in V3_CONTENT_TYPES, (resp.headers, resp.text[:300], what)
    if code < 400:
        return {"status_code": code}
    assert content_type == PLAIN, (resp.headers, resp.text[:300], what)
    assert 0 < len(resp.text) < 300 and "Traceback" not in resp.text, (resp.text, what)
    return {"status_code": code, "error": resp.text}


def send_onion(http: httpx.Client, body: bytes) -> httpx.Response:
    """POST raw bytes to the onion endpoint (a timeout fails the example)."""
    return http.post(ONION_PATH, content=body)


def opened_answer(resp: httpx.Response, key: bytes, what: object) -> dict[str, Any]:
    """Outer 200 whose body is base64 of the sealed inner JSON object; returns that object."""
    assert resp.status_code == 200, (resp.status_code, resp.text[:300], what)
    answer = decrypt_onion_response(key, resp.text)
    assert_api_answer(answer, what)
    return answer


def assert_plain_refusal(resp: httpx.Response, what: object) -> None:
    """An envelope that cannot be opened: a plain-text 400 (or 413), never sealed."""
    assert resp.status_code in (400, 413), (resp.status_code, resp.text[:300], what)
    assert resp.headers.get("content-type", "").startswith("text/plain"), what
    assert "Traceback" not in resp.text, what


def opened_v3_answer(resp: httpx.Response, key: bytes, what: object) -> int:
    """A v3 request through onion v3: outer 200, base64 of the sealed v3 body (a success)
    or of its bare ``{"status_code": N}`` (a refusal; an inner request that cannot be read
    at all is refused in the v2 shape). Returns the status."""
    assert resp.status_code == 200, (resp.status_code, resp.text[:300], what)
    plaintext = decrypt_aes_gcm(key, base64.b64decode(resp.text, validate=True))
    try:
        answer = json.loads(plaintext)
    except ValueError:
        return 200  # a success whose body is not JSON (a file)
    if isinstance(answer, dict) and "status_code" in answer:
        code = assert_client_status(answer["status_code"], (answer, what))
        assert code >= 400 and set(answer) <= {"status_code", "error"}, (answer, what)
        return code
    return 200


URL_SAFE = "/:@!$&'()*+,;=~"  # quote() leaves these (and letters, digits, -._) as they are


def without_surrogates(text: str) -> str:
    """HTTP can carry only encodable text; lone surrogates exist only inside JSON."""
    return "".join(c for c in text if not 0xD800 <= ord(c) <= 0xDFFF)


# --------------------------------------------------------------------------- properties


@FUZZ
@given(data=st.data())
def test_any_onion_blob_gets_a_plain_400_or_an_encrypted_client_status(
    server: ServerProcess, http: httpx.Client, storage: Storage, data: st.DataObject
) -> None:
    """Whatever arrives at /loki/v3/lsrpc: unopenable -> plain 400; opened -> 200 + sealed."""
    blob = data.draw(onion_blobs(server.public_key), label="blob")
    before = storage.fingerprint()
    resp = send_onion(http, blob.body)
    if blob.key is None:
        assert_plain_refusal(resp, blob)
        assert storage.fingerprint() == before, blob
        return
    code = assert_api_answer(opened_answer(resp, blob.key, blob), blob)
    if code >= 400:
        assert storage.fingerprint() == before, blob


@FUZZ
@given(call=calls())
# Found by this fuzzer: "²" and "--5" passed str.isdigit() and then broke int() (500); a NUL
# in a room id broke PostgreSQL (500).
@example(Call("DELETE", "messages/\u00b2", {"Room": "main", "Authorization": USER_TOKEN}, ""))
@example(
    Call("GET", "messages?from_server_id=--5", {"Room": "main", "Authorization": USER_TOKEN}, "")
)
@example(Call("GET", "messages", {"Room": "main\x00", "Authorization": USER_TOKEN}, "null"))
@example(Call("GET", "rooms/\x00", {}, ""))
@example(Call("GET", "/rooms", {}, ""))
@example(Call("GET", "/legacy/rooms/\x00", {}, ""))
@example(Call("POST", "/room/main/message", {"Room": "main"}, "{}"))
def test_any_inner_request_gets_an_encrypted_json_client_status_and_changes_nothing_if_refused(
    server: ServerProcess, http: httpx.Client, storage: Storage, world: World, call: Call
) -> None:
    """Real and random endpoints, methods, headers and bodies inside a valid envelope: v2
    answers for a bare or /legacy/ endpoint, v3 answers for one with a leading `/`."""
    inner = {
        "endpoint": world.resolve(call.endpoint),
        "method": world.resolve(call.method),
        "headers": world.resolve(call.headers),
        "body": world.resolve(call.body),
    }
    blob, key = encrypt_onion_payload(server.public_key, json.dumps(inner).encode())
    before = storage.fingerprint()
    resp = send_onion(http, blob)
    if speaks_v3_through_onion_v3(inner["endpoint"]):
        code = opened_v3_answer(resp, key, inner)
    else:
        code = opened_answer(resp, key, inner)["status_code"]
    if code >= 400:
        assert storage.fingerprint() == before, (resp.text[:300], inner)


@FUZZ
@given(call=http_calls())
# Found by this fuzzer: a method no route lists got Starlette's plain-text 405.
@example(HttpCall("TRACE", "", {}, None))
@example(HttpCall("PROPFIND", "rooms", {}, None))
@example(HttpCall("GET", "rooms/\x00", {}, None))
@example(HttpCall("GET", "legacy/rooms/\x00", {}, None))
@example(HttpCall("TRACE", "legacy", {}, None))
@example(HttpCall("GET", "rooms", {}, None))
@example(HttpCall("PUT", "rooms", {}, None))
def test_any_direct_request_gets_json_whose_status_code_is_the_http_status(
    server: ServerProcess, http: httpx.Client, storage: Storage, world: World, call: HttpCall
) -> None:
    """The same fuzzing over plain HTTP, no side effect of a refusal. Under /legacy/: a JSON
    body whose status_code is the HTTP status. At the root: that, where the v2 API answers,
    or the v3 API's answer (docs/spec/SPEC-v3.md sections 1 and 3)."""
    path, _, query = without_surrogates(world.resolve(call.endpoint)).partition("?")
    url = httpx.URL(
        scheme="http",
        host="127.0.0.1",
        port=server.port,
        path="/" + quote(path.lstrip("/"), safe=URL_SAFE),
        query=quote(query, safe=URL_SAFE + "?").encode(),
    )
    headers = {k: world.resolve(v) for k, v in call.headers.items()}
    request = http.build_request(call.method, url, headers=headers, content=call.body)
    assert request.url.host == "127.0.0.1"  # loopback only, whatever the path looks like
    what = (call.method, str(request.url), headers, (call.body or b"")[:200])
    before = storage.fingerprint()
    resp = http.send(request)
    assert_client_status(resp.status_code, (resp.text[:300], what))
    # httpx sends the method upper-cased; one the parser does not know never reaches the app
    if request.method not in PARSER_METHODS and resp.headers.get("content-type", "").startswith(
        "text/plain"
    ):
        assert resp.status_code == 400, what  # refused by the HTTP parser, not the app
        assert storage.fingerprint() == before, what
        return
    if request.url.path in ONION_PATHS and request.method == "POST":
        return  # the onion endpoints: the previous properties
    if request.method == "HEAD":
        assert resp.content == b"", what
    elif request.url.path == "/" and request.method == "GET":
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    elif not is_legacy(request.url.path):
        assert_root_answer(resp, what)
    else:
        assert resp.headers.get("content-type", "").startswith("application/json"), (
            resp.headers,
            resp.text[:300],
            what,
        )
        answer = resp.json()
        assert_api_answer(answer, what)
        assert answer["status_code"] == resp.status_code, (answer, what)
    if resp.status_code >= 400:
        assert storage.fingerprint() == before, (resp.text[:300], what)


@FUZZ
@given(entries=st.lists(POLL_ENTRIES, max_size=6), transport=st.sampled_from(["http", "onion"]))
def test_any_compact_poll_has_one_complete_result_per_entry_and_writes_nothing(
    clients: dict[str, Client],
    storage: Storage,
    world: World,
    entries: list[Any],
    transport: str,
) -> None:
    """Random entries: in order, every result has all five keys, errors have empty lists."""
    resolved = world.resolve(entries)
    before = storage.fingerprint()
    answer = clients[transport].compact_poll(resolved)
    if not is_unicode(resolved):  # a lone surrogate escape: the body is not valid JSON text
        assert answer["status_code"] == 400, (answer, resolved)
        assert storage.fingerprint() == before, resolved
        return
    assert answer["status_code"] == 200, (answer, resolved)
    results = answer["results"]
    assert len(results) == len(resolved), (answer, resolved)
    for entry, result in zip(resolved, results, strict=True):
        assert set(result) >= {"room_id", "status_code", "messages", "deletions", "moderators"}
        code = assert_client_status(result["status_code"], (result, entry))
        assert isinstance(result["room_id"], str), result
        for name in ("messages", "deletions", "moderators"):
            assert isinstance(result[name], list), result
            if code != 200:
                assert result[name] == [], (result, entry)
    assert storage.fingerprint() == before, resolved


@dataclass(frozen=True)
class Slot:
    """Where a piece of text goes into a request: the request, given the text in its forms."""

    name: str
    send: Callable[[Client, World, Forms], dict[str, Any]]


@dataclass(frozen=True)
class Forms:
    """One text as each part of a request can carry it on the chosen transport."""

    raw: str  # inside a JSON body
    header: str  # a header value
    path: str  # a path segment
    query: str  # a query-string value (percent-encoded)

    @classmethod
    def of(cls, text: str, transport: str) -> Forms:
        """Onion carries any text; HTTP only printable ASCII headers and quoted paths."""
        query = quote(text, safe="", errors="surrogatepass")
        if transport == "onion":
            path = text.replace("/", "%2F").replace("?", "%3F").replace("#", "%23")
            return cls(text, text, path, query)
        header = "".join(c for c in text if " " <= c <= "~").strip()
        return cls(text, header, quote(without_surrogates(text), safe=""), query)


def _poll_result(answer: dict[str, Any]) -> dict[str, Any]:
    """The single room result of a poll, or the refusal of the whole body."""
    return answer["results"][0] if answer["status_code"] == 200 else answer


SLOTS = (
    Slot(
        "Room header",
        lambda c, w, f: c.request("GET", "messages", room=f.header, token=w.user.token),
    ),
    Slot("room id in the path", lambda c, w, f: c.request("GET", f"rooms/{f.path}")),
    Slot("room id of an image", lambda c, w, f: c.request("GET", f"rooms/{f.path}/image")),
    Slot(
        "room_id of a poll entry",
        lambda c, w, f: _poll_result(
            c.compact_poll([{"room_id": f.raw, "auth_token": w.user.token}])
        ),
    ),
    Slot(
        "Authorization header",
        lambda c, w, f: c.request("GET", "moderators", room=DEFAULT_ROOM, token=f.header),
    ),
    Slot(
        "auth_token of a poll entry",
        lambda c, w, f: _poll_result(
            c.compact_poll([{"room_id": DEFAULT_ROOM, "auth_token": f.raw}])
        ),
    ),
    Slot(
        "cursor of a poll entry",
        lambda c, w, f: _poll_result(
            c.compact_poll(
                [
                    {
                        "room_id": DEFAULT_ROOM,
                        "auth_token": w.user.token,
                        "from_message_server_id": f.raw,
                        "from_deletion_server_id": f.raw,
                    }
                ]
            )
        ),
    ),
    Slot(
        "public_key of a ban",
        lambda c, w, f: c.request(
            "POST",
            "block_list",
            body={"public_key": f.raw},
            room=DEFAULT_ROOM,
            token=w.moderator.token,
        ),
    ),
    Slot(
        "public_key of an unban",
        lambda c, w, f: c.request(
            "DELETE", f"block_list/{f.path}", room=DEFAULT_ROOM, token=w.moderator.token
        ),
    ),
    Slot(
        "public_key of a challenge",
        lambda c, w, f: c.request("GET", f"auth_token_challenge?public_key={f.query}", room="main"),
    ),
    Slot(
        "message id in the path",
        lambda c, w, f: c.request(
            "DELETE", f"messages/{f.path}", room=DEFAULT_ROOM, token=w.user.token
        ),
    ),
    Slot(
        "ids of delete_messages",
        lambda c, w, f: c.request(
            "POST",
            "delete_messages",
            body={"ids": [f.raw]},
            room=DEFAULT_ROOM,
            token=w.user.token,
        ),
    ),
    Slot(
        "file id in the path",
        lambda c, w, f: c.request("GET", f"files/{f.path}", room=DEFAULT_ROOM, token=w.user.token),
    ),
    Slot(
        "message cursor and limit",
        lambda c, w, f: c.request(
            "GET",
            f"messages?from_server_id={f.query}&limit={f.query}",
            room=DEFAULT_ROOM,
            token=w.user.token,
        ),
    ),
    Slot(
        "deletion cursor",
        lambda c, w, f: c.request(
            "GET",
            f"deleted_messages?from_server_id={f.query}",
            room=DEFAULT_ROOM,
            token=w.user.token,
        ),
    ),
)


def put_text_everywhere(client: Client, storage: Storage, world: World, text: str) -> None:
    """Send the text in every slot; each answer a client status, each refusal side-effect free."""
    forms = Forms.of(world.resolve(text), client.transport)
    before = storage.fingerprint()
    for slot in SLOTS:
        answer = slot.send(client, world, forms)
        what = (slot.name, client.transport, forms)
        refused = assert_api_answer(answer, what) >= 400
        after = storage.fingerprint()
        if refused:
            assert after == before, (what, answer)
        before = after


@pytest.mark.parametrize("transport", ["http", "root", "onion"])
@pytest.mark.parametrize("text", [pytest.param(t, id=ascii(t)) for t in TRICKY_TEXT])
def test_tricky_text_in_every_identifier_is_a_client_error_or_a_match(
    clients: dict[str, Client], storage: Storage, table_world: World, text: str, transport: str
) -> None:
    """NUL, digits that str.isdigit() likes but int() does not, huge numbers, surrogates, keys
    of the wrong length: wherever a room id, token, key, id or cursor goes, never a 500."""
    put_text_everywhere(clients[transport], storage, table_world, text)


@settings(FUZZ, max_examples=max(10, EXAMPLES // 5))  # each example is len(SLOTS) requests
@given(
    text=st.one_of(TEXT, st.sampled_from(string.punctuation), INTEGERS.map(str)),
    transport=st.sampled_from(["http", "root", "onion"]),
)
def test_any_text_in_every_identifier_is_a_client_error_or_a_match(
    clients: dict[str, Client], storage: Storage, world: World, text: str, transport: str
) -> None:
    """Room ids, tokens, keys, ids and cursors are parsed or looked up: any text is safe."""
    put_text_everywhere(clients[transport], storage, world, text)


def test_the_fuzzer_can_tell_a_success_from_a_refusal(
    server: ServerProcess, http: httpx.Client, storage: Storage, world: World
) -> None:
    """Self-check: a request that stores something does change the fingerprint."""
    before = storage.fingerprint()
    with server.client("onion", timeout=TIMEOUT) as c:
        posted = c.post_message(world.moderator.identity, world.moderator.token, DEFAULT_ROOM)
    assert posted["status_code"] == 200, posted
    assert storage.fingerprint() != before
