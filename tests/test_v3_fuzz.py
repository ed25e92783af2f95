"""Fuzzing the community API (v3): hostile or random input never crashes the server,
hangs it, leaks a traceback or changes stored data by a refusal.

Hypothesis generates, against the real running server, over real sockets:

- onion v4 envelopes (``/oxen/v4/lsrpc``): random bytes, wrong length prefixes,
  truncations, flipped bits, metadata that is not JSON or names a wrong key or
  cipher, and well-formed envelopes, sealed with AES-GCM or XChaCha20-Poly1305,
  around random plaintext or random bencode (wrong string lengths, leading zeros,
  missing ``e``, extra strings, metadata JSON of every type);
- inner requests of every route of ``opengroup/api/v3/routes.py`` (read from the
  table itself, so a new route is fuzzed without touching this file) with random
  path parameters, extra or missing segments, queries, headers, methods and
  bodies, sent directly and through onion v4 (both ciphers), signed by nobody, a
  member, a fresh key or the staff of a room of their own;
- ``/batch`` and ``/sequence`` with odd items: empty, huge, nested, of the wrong
  types, 1,000 of them;
- the ``X-SOGS-*`` headers in every malformed kind: wrong lengths, hex and base64
  of the right bytes, keys that are no point, the identity point, low-order
  points, non-canonical encodings and non-canonical signatures; here the exact
  answer is known (the first failing check of docs/spec/sogs-v3.md section 2) and
  compared.

What must hold for every example: the status is never 5xx and every body is free of
traceback text; nothing hangs (every call has a timeout); the server stays up and
logs no traceback; a refusal (and any GET) changes no stored data (a fingerprint of
every table a request may write, read from the database itself); and after the
whole fuzz the rooms, other people's messages, the staff, bans and permissions are
exactly as before (:func:`test_after_the_fuzz_the_rooms_are_as_before`).

Budget: OPENGROUP_FUZZ_EXAMPLES examples per property (default 200), the run
derandomized unless OPENGROUP_FUZZ_RANDOM=1 (docs/SECURITY.md has the long run).
"""

from __future__ import annotations

import base64
import json
import os
import re
import struct
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from json import loads as json_loads
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from harness import probe
from harness.communityclient import (
    CONTENT_BINARY,
    CONTENT_JSON,
    CONTENT_TEXT,
    ONION_V3_PATH,
    ONION_V4_PATH,
    BlindedIdentity,
    CommunityAnswer,
    CommunityClient,
    EncType,
    OnionKey,
    Transport,
    WireFormatError,
    bencode_strings,
    blake2b_512,
    build_onion_envelope,
    desktop_json,
    encode_v4_request,
    onion_decrypt,
    onion_encrypt,
    onion_key_for,
    parse_v4_reply,
    sogs_headers,
)
from harness.flows import ROOM, b64, message_body, posted
from harness.server import ServerProcess
from harness.v2client import DEFAULT_ROOM
from hypothesis import event, example, given, reject, settings
from hypothesis import strategies as st
from test_fuzz import (
    FUZZ,
    INTEGERS,
    JSON_VALUES,
    LOW_ORDER_POINTS,
    TIMEOUT,
    TRICKY_TEXT,
    Storage,
    is_unicode,
    without_surrogates,
)

from opengroup.api.v3.routes import ROUTES

EXAMPLES = int(os.environ.get("OPENGROUP_FUZZ_EXAMPLES", "200"))
V3_FUZZ = settings(FUZZ, max_examples=EXAMPLES)
STAFF_ROOM = "fuzz_staff"  # the fuzzing staff's own room: their writes stay there
WINDOW = 24 * 3600  # request_time_window_seconds, the default
MAX_BATCH = 64  # max_batch_requests, the default
ANSWER_TYPES = (CONTENT_JSON, CONTENT_TEXT, CONTENT_BINARY, "")
TRACEBACK = re.compile(rb"Traceback|File \"[^\"]+\", line \d+")

# --------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class World:
    """The people and things the fuzzed requests name: a bystander (whose message,
    file and settings must survive everything), a member (alice, with a message of
    her own), the staff of STAFF_ROOM, and ids that exist."""

    server_pk: bytes
    bystander: BlindedIdentity
    alice: BlindedIdentity
    staff: BlindedIdentity
    bystander_message: int
    alice_message: int
    file_id: int

    def signer(self, name: str) -> BlindedIdentity | None:
        """The identity a request is signed by ("fresh": a new key every time)."""
        if name == "fresh":
            return BlindedIdentity.generate()
        return {"alice": self.alice, "staff": self.staff}.get(name)

    def resolve(self, value: Any) -> Any:
        """Placeholders (@@NAME@@) replaced by their live value, in any JSON value."""
        if isinstance(value, str):
            for marker, real in self.placeholders().items():
                value = value.replace(marker, real)
            return value
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {self.resolve(k): self.resolve(v) for k, v in value.items()}
        return value

    def placeholders(self) -> dict[str, str]:
        return {
            "@@BYSTANDER@@": self.bystander.blinded_id(self.server_pk),
            "@@BYSTANDER_05@@": self.bystander.session_id,
            "@@ALICE@@": self.alice.blinded_id(self.server_pk),
            "@@ALICE_05@@": self.alice.session_id,
            "@@BYSTANDER_MSG@@": str(self.bystander_message),
            "@@ALICE_MSG@@": str(self.alice_message),
            "@@FILE@@": str(self.file_id),
        }


PLACEHOLDERS = (
    "@@BYSTANDER@@",
    "@@BYSTANDER_05@@",
    "@@ALICE@@",
    "@@ALICE_05@@",
    "@@BYSTANDER_MSG@@",
    "@@ALICE_MSG@@",
    "@@FILE@@",
)


# --------------------------------------------------------------------------- storage probes

# Every table a request of the community API may write, whole. Left out as bookkeeping:
# users (first and last seen), request_nonces, rate_events, room_activity and blinded_ids
# (a signer is recorded, a named Session id linked, before the request is judged).
WHOLE_TABLES = (
    "rooms",
    "messages",
    "deletions",
    "moderators",
    "global_moderators",
    "bans",
    "global_bans",
    "permission_overrides",
    "future_permissions",
    "reactions",
    "pins",
    "direct_messages",
    "tokens",
    "pending_tokens",
)
FINGERPRINT_QUERIES = (
    *(f"SELECT * FROM {table}" for table in WHOLE_TABLES),
    "SELECT id, room_id, uploader, size, created_at, expires_at, filename FROM files",
)


class Tables(Storage):
    """A direct reader of the server's database (SQLite file or PostgreSQL)."""

    def rows(self, query: str) -> list[str]:
        """The rows a query returns, as sorted text (each backend orders its own way)."""
        return sorted(repr(tuple(row)) for row in self._conn.execute(query).fetchall())

    def fingerprint(self) -> str:
        """Every row a request could write, all tables (bookkeeping aside)."""
        return repr([self.rows(q) for q in FINGERPRINT_QUERIES])

    def rooms_snapshot(self, world: World) -> list[list[str]]:
        """What no fuzzed request may change at all (no staff but the staff of STAFF_ROOM
        signs one): every room but STAFF_ROOM, the bystander's messages, file and DMs,
        staff, bans, permissions and pins everywhere but STAFF_ROOM."""
        by = world.bystander.blinded_id(world.server_pk)
        elsewhere = f"room_id <> '{STAFF_ROOM}'"
        return [
            self.rows(
                "SELECT id, name, description, image_file_id, default_read, default_accessible,"
                f" default_write, default_upload FROM rooms WHERE id <> '{STAFF_ROOM}'"
            ),
            self.rows(
                "SELECT room_id, server_id, public_key, timestamp, data, signature, deleted,"
                " edited_at, whisper_to, whisper_mods, seqno_data, seqno_created FROM messages"
                f" WHERE public_key = '{by}'"
            ),
            self.rows(f"SELECT id, room_id, size, expires_at FROM files WHERE uploader = '{by}'"),
            self.rows(f"SELECT sender, recipient, data FROM direct_messages WHERE sender = '{by}'"),
            self.rows(
                f"SELECT room_id, public_key, admin, visible FROM moderators WHERE {elsewhere}"
            ),
            self.rows("SELECT public_key, admin, visible FROM global_moderators"),
            self.rows(f"SELECT room_id, public_key, expires_at FROM bans WHERE {elsewhere}"),
            self.rows("SELECT public_key, expires_at FROM global_bans"),
            self.rows(f"SELECT * FROM permission_overrides WHERE {elsewhere}"),
            self.rows(f"SELECT * FROM future_permissions WHERE {elsewhere}"),
            self.rows(f"SELECT room_id, message_id, pinned_by FROM pins WHERE {elsewhere}"),
        ]


class OnionV3Client(CommunityClient):
    """The community API through the old onion v3 envelope (`/loki/v3/lsrpc`, an endpoint
    with a leading `/`): the inner request is JSON, its body a string; the answer is a
    success's body, or ``{"status_code": N}`` for a refusal, each summed up here as a
    :class:`CommunityAnswer` (content type by whether the body is JSON)."""

    def request(
        self,
        method: str,
        path: str,
        *,
        identity: BlindedIdentity | None = None,
        json: object = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        blinded: bool = True,
        transport: Transport | None = None,
    ) -> CommunityAnswer:
        text = (body or b"").decode("utf-8", "replace")  # JSON carries text only
        content = text.encode()
        inner_headers: dict[str, str] = {}
        if identity is not None:
            inner_headers.update(
                sogs_headers(identity, self.server_pk, method, path, content, blinded=blinded)
            )
        inner_headers.update(headers or {})
        inner = {"endpoint": path, "method": method, "headers": inner_headers}
        if text:
            inner["body"] = text
        envelope, key = build_onion_envelope(self.server_pk, desktop_json(inner))
        resp = self.raw_onion(envelope, target=ONION_V3_PATH)
        if resp.status_code != 200:
            raise WireFormatError(f"onion v3: outer HTTP {resp.status_code}: {resp.text[:300]}")
        plain = onion_decrypt(key, base64.b64decode(resp.content, validate=True))
        try:
            value = json_loads(plain)  # (the parameter json hides the module here)
        except ValueError:
            return CommunityAnswer(200, {}, plain, CONTENT_BINARY, plain)
        if isinstance(value, dict) and isinstance(value.get("status_code"), int):
            return CommunityAnswer(value["status_code"], {}, value, CONTENT_TEXT, plain)
        return CommunityAnswer(200, {}, value, CONTENT_JSON, plain)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tables(server: ServerProcess) -> Iterator[Tables]:
    with probe.connect(server) as conn:
        yield Tables(conn)


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    """A raw HTTP client; every call times out rather than hang."""
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT, trust_env=False) as c:
        yield c


@pytest.fixture(scope="module")
def clients(server: ServerProcess, http: httpx.Client) -> dict[str, CommunityClient]:
    """A community client per way in: direct, onion v4 with each cipher, onion v3."""
    made: dict[str, CommunityClient] = {}
    for name, transport, enc in (
        ("http", "http", "aes-gcm"),
        ("onion-aes", "onion", "aes-gcm"),
        ("onion-xchacha", "onion", "xchacha20"),
    ):
        made[name] = CommunityClient(
            server.base_url,
            server.public_key,
            transport,  # type: ignore[arg-type]  # the literal from the table above
            enc_type=enc,  # type: ignore[arg-type]  # likewise
            http_client=http,
            timeout=TIMEOUT,
        )
    made["onion3"] = OnionV3Client(
        server.base_url, server.public_key, "onion", http_client=http, timeout=TIMEOUT
    )
    return made


@pytest.fixture(scope="module")
def world(server: ServerProcess, clients: dict[str, CommunityClient]) -> World:
    """A second room whose staff sign fuzzed requests, a bystander's message and file in
    `main`, and a message of alice's."""
    server.cli("rooms", "add", STAFF_ROOM, "Fuzz staff")
    bystander, alice, staff = (BlindedIdentity.generate() for _ in range(3))
    server.cli("moderators", "add", staff.session_id, STAFF_ROOM, "--admin")
    c = clients["http"]
    by_message = posted(c, bystander)["id"]
    alice_message = posted(c, alice)["id"]
    uploaded = c.post(f"{ROOM}/file", body=b"bystander's file", identity=bystander)
    assert uploaded.status == 201, uploaded
    return World(
        c.server_pk, bystander, alice, staff, by_message, alice_message, uploaded.body["id"]
    )


@pytest.fixture(scope="module")
def rooms_before(world: World, tables: Tables) -> list[list[str]]:
    """The rooms as they are before any fuzzing."""
    return tables.rooms_snapshot(world)


@pytest.fixture(autouse=True)
def server_stays_healthy(server: ServerProcess) -> Iterator[None]:
    """After each test: the server still runs and has logged no traceback meanwhile."""
    seen = len(server.output())
    yield
    assert server.running, f"the server died:\n{server.output()[-3000:]}"
    output = server.output()[seen:]
    assert "Traceback" not in output, output[-5000:]


# --------------------------------------------------------------------------- checks


def assert_no_server_error(answer: CommunityAnswer, what: object) -> None:
    """A status a client can act on, a content type it decodes, no traceback text."""
    assert answer.status < 500, (answer, what)
    assert answer.content_type in ANSWER_TYPES, (answer, what)
    assert not TRACEBACK.search(answer.raw_body), (answer, what)
    if answer.status >= 400:
        assert answer.raw_body, (answer, what)  # a refusal says why


def wrote_something(method: str, answer: CommunityAnswer) -> bool:
    """Whether a request may have stored something: a write that succeeded, or a batch
    one of whose writes did."""
    if method.upper() == "GET" or not 200 <= answer.status < 300:
        return False
    if isinstance(answer.body, list):  # /batch, /sequence: the items' answers
        return any(isinstance(i, dict) and 200 <= i.get("code", 0) < 300 for i in answer.body)
    return True


def sent_path(path: str) -> str:
    """The path an HTTP client puts on the wire (httpx removes `.` and `..` segments)."""
    return httpx.URL("http://127.0.0.1" + path.partition("?")[0]).path


def send(
    client: CommunityClient,
    method: str,
    path: str,
    *,
    signer: BlindedIdentity | None,
    headers: dict[str, str],
    content: bytes,
    blinded: bool = True,
) -> CommunityAnswer:
    """One request as the client sends it; unsigned if the path cannot be signed (a
    percent escape that is not UTF-8)."""
    try:
        return client.request(
            method,
            path,
            identity=signer,
            body=content,
            headers={"Content-Type": CONTENT_JSON, **headers},
            blinded=blinded,
        )
    except UnicodeDecodeError:
        return client.request(method, path, body=content, headers=headers)


# --------------------------------------------------------------------------- strategies

SAFE_TEXT = st.one_of(
    st.text(max_size=24),
    st.sampled_from([t for t in TRICKY_TEXT if without_surrogates(t) == t]),
    st.sampled_from(PLACEHOLDERS),
).map(without_surrogates)
REAL_ROOMS = st.sampled_from([DEFAULT_ROOM, STAFF_ROOM])
REAL_MESSAGES = st.sampled_from(["@@BYSTANDER_MSG@@", "@@ALICE_MSG@@"])
REAL_PEOPLE = st.sampled_from(["@@BYSTANDER@@", "@@BYSTANDER_05@@", "@@ALICE@@", "@@ALICE_05@@"])
# Real values most of the time (one_of picks a branch evenly), so requests reach handlers.
ROOM_TOKENS = st.one_of(
    REAL_ROOMS, REAL_ROOMS, REAL_ROOMS, st.sampled_from(["nope", "MAIN"]), SAFE_TEXT
)
MESSAGE_IDS = st.one_of(
    REAL_MESSAGES,
    REAL_MESSAGES,
    st.sampled_from(["0", "-1", "9" * 19, "1e3"]),
    INTEGERS.map(str),
    SAFE_TEXT,
)
SESSION_IDS = st.one_of(
    REAL_PEOPLE,
    REAL_PEOPLE,
    st.from_regex(r"(05|15|00|25)[0-9a-f]{64}", fullmatch=True),
    st.sampled_from(["15" + p for p in LOW_ORDER_POINTS] + ["05" + "00" * 32, "15" + "ff" * 32]),
    SAFE_TEXT,
)
REACTIONS = st.one_of(
    st.sampled_from(["\U0001f44d", "\u2764\ufe0f", "%F0%9F%91%8D", "a" * 13, "", "%00", "%"]),
    SAFE_TEXT,
)
PARAMETERS: dict[str, st.SearchStrategy[str]] = {
    "token": ROOM_TOKENS,
    "message_id": MESSAGE_IDS,
    "seqno": st.one_of(INTEGERS.map(str), SAFE_TEXT),
    "info_updated": st.one_of(INTEGERS.map(str), SAFE_TEXT),
    "reaction": REACTIONS,
    "file_id": st.one_of(st.just("@@FILE@@"), INTEGERS.map(str), SAFE_TEXT),
    "filename": SAFE_TEXT,
    "session_id": SESSION_IDS,
    "blinded_id": SESSION_IDS,
}
QUERY_NAMES = st.one_of(
    st.sampled_from(["limit", "t", "r", "reactors", "required", "all", "room", "global"]),
    SAFE_TEXT,
)
QUERY_VALUES = st.one_of(
    INTEGERS.map(str), st.sampled_from(["r", "-r", "", "sogs,blind"]), SAFE_TEXT
)
BODY_FIELDS = (
    "data",
    "signature",
    "whisper_to",
    "whisper_mods",
    "files",
    "message",
    "rooms",
    "room",
    "global",
    "timeout",
    "moderator",
    "admin",
    "visible",
    "read",
    "write",
    "upload",
    "accessible",
    "default_read",
    "default_write",
    "unschedule",
    "in",
    "name",
    "description",
    "image",
)
FIELD_VALUES = st.one_of(
    JSON_VALUES,
    st.binary(max_size=64).map(b64),
    SESSION_IDS,
    st.lists(st.one_of(ROOM_TOKENS, st.just("*")), max_size=3),
)
BODIES = st.one_of(
    st.dictionaries(
        st.one_of(st.sampled_from(BODY_FIELDS), SAFE_TEXT), FIELD_VALUES, max_size=5
    ).map(lambda v: json.dumps(v).encode()),  # (lone surrogates as escapes: JSON, not text)
    JSON_VALUES.filter(lambda v: not isinstance(v, float)).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=120),
    st.sampled_from([b"", b"{", b"null", b"[]", b"[" * 5000 + b"]" * 5000]),
)
METHODS = ("GET", "POST", "PUT", "DELETE")
SIGNERS = ("anonymous", "alice", "fresh", "staff")
TEMPLATES = [(route.method, route.path) for route in ROUTES]
PARAMETER = re.compile(r"\{(\w+)(?::path)?\}")


@dataclass(frozen=True)
class Request:
    """A fuzzed request, placeholders unresolved: who signs it, how it travels."""

    transport: str
    signer: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@st.composite
def paths(draw: st.DrawFn) -> tuple[str, str]:
    """(the route's method, a path): a route of the table with random parameters, now and
    then mangled (a segment more or less, a trailing slash, random text), and a query."""
    method, template = draw(st.sampled_from(TEMPLATES))
    path = PARAMETER.sub(
        lambda m: quote(draw(PARAMETERS.get(m.group(1), SAFE_TEXT)), safe="%@"), template
    )
    mangle = draw(st.integers(0, 19))
    if mangle == 0:
        path = "/" + quote(draw(SAFE_TEXT), safe="/%")
    elif mangle == 1:
        path += "/" + quote(draw(SAFE_TEXT), safe="")
    elif mangle == 2:
        path = path.rsplit("/", 1)[0] or "/"
    elif mangle == 3:
        path += "/"
    pairs = draw(st.lists(st.tuples(QUERY_NAMES, QUERY_VALUES), max_size=3))
    if pairs:
        path += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    return method, path


ASCII_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
DISPOSITIONS = st.one_of(
    st.sampled_from(
        [
            "attachment; filename*=UTF-8''%F0%9F%98%80.png",
            "attachment; filename*=UTF-8''%ff%fe",
            "attachment; filename*=UTF-8''%00a%0d%0a",
            "attachment; filename*=utf-8'en'a%20b",
            "attachment; filename*=ISO-8859-1''%e9",
            'attachment; filename="a\\"b.txt"',
            'attachment; filename="../../etc/passwd"',
            'attachment; filename="unterminated',
            "attachment; filename*=",
            "attachment; filename",
            "attachment;;;",
            "inline; filename=" + "a" * 300,
            "attachment; filename*=UTF-8''" + "%41" * 2000,
        ]
    ),
    ASCII_TEXT.map(lambda t: "attachment; filename*=UTF-8''" + quote(t, safe="%")),
    ASCII_TEXT.map(lambda t: f'attachment; filename="{t}"'),
    ASCII_TEXT,
)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    usual, path = draw(paths())
    method = draw(st.one_of(st.just(usual), st.just(usual), st.sampled_from(METHODS)))
    headers = draw(
        st.dictionaries(
            st.sampled_from(["Content-Type", "Accept", "X-SOGS-Nonce", "Room", "Authorization"])
            | st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,12}", fullmatch=True),
            st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30).map(
                str.strip
            ),
            max_size=2,
        )
    )
    headers = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "host")}
    if draw(st.integers(0, 3)) == 0:  # an upload's name, however it is written
        headers["Content-Disposition"] = draw(DISPOSITIONS)
    return Request(
        draw(st.sampled_from(["http", "onion-aes", "onion-xchacha", "onion3"])),
        draw(st.sampled_from(SIGNERS)),
        method,
        path,
        headers,
        draw(BODIES),
    )


# --------------------------------------------------------------------------- inner requests


@V3_FUZZ
@given(request=requests())
@example(Request("http", "alice", "PUT", "/room/main/reaction/@@BYSTANDER_MSG@@/%", {}, b""))
@example(Request("onion-aes", "fresh", "POST", "/inbox/@@BYSTANDER@@", {}, b'{"message":1}'))
@example(Request("http", "staff", "POST", "/user/@@ALICE@@/ban", {}, b'{"rooms":["*"]}'))
@example(Request("http", "alice", "GET", "/room/main/messages/since/99999999999999999999", {}, b""))
def test_any_request_to_any_route_is_a_client_status_and_a_refusal_changes_nothing(
    clients: dict[str, CommunityClient],
    tables: Tables,
    world: World,
    rooms_before: list[list[str]],
    request: Request,
) -> None:
    """Every route of the table, random parts, random signer: never a 5xx or a traceback;
    a refusal or a read leaves every table as it was."""
    path = world.resolve(request.path)
    if request.transport == "http" and not sent_path(path).strip("/"):
        reject()  # the home page, HTML: not the API
    client = clients[request.transport]
    before = tables.fingerprint()
    answer = send(
        client,
        request.method,
        path,
        signer=world.signer(request.signer),
        headers=request.headers,
        content=world.resolve(request.body.decode("utf-8", "surrogateescape")).encode(
            "utf-8", "surrogateescape"
        ),
    )
    what = (request, path)
    event(f"{answer.status} ({request.signer})")  # --hypothesis-show-statistics shows them
    assert_no_server_error(answer, what)
    if not wrote_something(request.method, answer):
        assert tables.fingerprint() == before, what


# --------------------------------------------------------------------------- batches

BATCH_PATHS = st.one_of(
    paths().map(lambda mp: mp[1]),
    st.sampled_from(["/batch", "/sequence", "/batch/", "//batch", "/%62atch", "/capabilities"]),
    JSON_VALUES,
    st.just("/@@LONG@@"),
)


@st.composite
def batch_items(draw: st.DrawFn) -> Any:
    """One item: usually {method, path, body}; sometimes anything at all."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(JSON_VALUES)
    item: dict[str, Any] = {
        "method": draw(st.one_of(st.sampled_from(METHODS), st.sampled_from(["get", "PATCH"]))),
        "path": draw(BATCH_PATHS),
    }
    if kind == 1:
        item["method"] = draw(JSON_VALUES)
    body = draw(st.integers(0, 5))
    if body == 1:
        item["json"] = draw(JSON_VALUES)
    elif body == 2:
        item["b64"] = draw(st.one_of(st.binary(max_size=60).map(b64), JSON_VALUES))
    elif body == 3:
        item["bytes"] = draw(st.one_of(SAFE_TEXT, JSON_VALUES))
    elif body == 4:
        item.update(json={"a": 1}, b64="")
    elif body == 5:
        item["json"] = {"data": "@@HUGE@@"}  # a huge item
    if draw(st.booleans()):
        item["headers"] = draw(
            st.one_of(st.dictionaries(SAFE_TEXT, SAFE_TEXT, max_size=2), JSON_VALUES)
        )
    if draw(st.integers(0, 9)) == 0:
        item["requests"] = [dict(item)]  # nested, as if a batch could hold one
    return item


def expand(value: Any) -> Any:
    """Big values stand for themselves by a marker (a test case stays short to print):
    1,000 items, a 20,000-character path, a 200,000-character string."""
    if value == "@@THOUSAND@@":
        return [{"method": "GET", "path": "/capabilities"}] * 1000
    if isinstance(value, str):
        return value.replace("@@LONG@@", "a" * 20_000).replace("@@HUGE@@", "A" * 200_000)
    if isinstance(value, list):
        return [expand(v) for v in value]
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    return value


BATCH_BODIES = st.one_of(
    st.lists(batch_items(), max_size=8),
    st.lists(
        st.sampled_from([{"method": "GET", "path": "/capabilities"}, [], "/rooms", None]),
        min_size=MAX_BATCH,
        max_size=MAX_BATCH,
    ),
    st.just("@@THOUSAND@@"),
    st.just([[]] * (MAX_BATCH + 1)),
    st.just([]),
    JSON_VALUES,
)


@V3_FUZZ
@given(
    items=BATCH_BODIES,
    which=st.sampled_from(["/batch", "/sequence"]),
    transport=st.sampled_from(["http", "onion-aes", "onion-xchacha", "onion3"]),
    signer=st.sampled_from(SIGNERS),
)
@example(
    items=[{"method": "POST", "path": "/batch", "json": []}],
    which="/batch",
    transport="http",
    signer="alice",
)
def test_any_batch_is_answered_item_by_item_or_refused_whole(
    clients: dict[str, CommunityClient],
    tables: Tables,
    world: World,
    items: Any,
    which: str,
    transport: str,
    signer: str,
) -> None:
    """A list of at most 64 items: /batch answers each in its place, /sequence stops at
    the first failure; anything else is a refusal of the whole. No item is a 5xx."""
    body = expand(world.resolve(items))
    before = tables.fingerprint()
    answer = send(
        clients[transport],
        "POST",
        which,
        signer=world.signer(signer),
        headers={},
        content=json.dumps(body).encode(),
    )
    what = (which, signer, str(body)[:500])
    event(str(answer.status))
    assert_no_server_error(answer, what)
    if not isinstance(body, list) or not is_unicode(body):  # (a lone surrogate: not text)
        assert answer.status == 400, what
    elif len(body) > MAX_BATCH:
        assert answer.status == 413, what
    else:
        assert answer.status == 200 and isinstance(answer.body, list), (answer, what)
        if which == "/batch":
            assert len(answer.body) == len(body), what
        else:
            assert len(answer.body) <= len(body), what
            codes = [a["code"] for a in answer.body]
            assert all(200 <= c < 300 for c in codes[:-1]), (codes, what)
            assert len(codes) == len(body) or not 200 <= codes[-1] < 300, (codes, what)
        for item in answer.body:
            assert set(item) == {"code", "headers", "body"}, (item, what)
            assert isinstance(item["code"], int) and item["code"] < 500, (item, what)
            assert "Traceback" not in json.dumps(item["body"]), (item, what)
    if not wrote_something("POST", answer):
        assert tables.fingerprint() == before, what


# --------------------------------------------------------------------------- X-SOGS headers

# Ed25519 encodings no one can sign with, and keys of the wrong shape.
IDENTITY_POINT = "01" + "00" * 31
ORDER_8_POINT = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
ORDER_2_POINT = "ec" + "ff" * 30 + "7f"
NON_CANONICAL_Y = "ee" + "ff" * 30 + "7f"
NEGATIVE_ZERO_X = "01" + "00" * 30 + "80"
L = 2**252 + 27742317777372353535851937790883648493  # the order of the Ed25519 group

BAD_PUBKEY_FORMAT = "Invalid authentication: X-SOGS-Pubkey is not a valid 66-hex digit id"
BAD_PUBKEY_PREFIX = "Invalid authentication: X-SOGS-Pubkey must be 00- or 15- prefixed"
BLINDING_REQUIRED = "Invalid authentication: this server requires the use of blinded ids"
BAD_POINT = "Invalid authentication: given X-SOGS-Pubkey is not a valid Ed25519 pubkey"
BAD_NONCE = "Invalid authentication: X-SOGS-Nonce must be 16 bytes (encoded as base64 or hex)"
BAD_SIGNATURE_FORMAT = "Invalid authentication: X-SOGS-Signature is not base64[88]"
BAD_TIMESTAMP = "Invalid authentication: X-SOGS-Timestamp is not a valid timestamp"
TIMESTAMP_OFF = "Invalid authentication: X-SOGS-Timestamp is too far from current time"
SIGNATURE_FAILED = "Invalid authentication: X-SOGS-Signature verification failed"

# kind -> (how to write it, the refusal it earns; None: acceptable)
PUBKEY_KINDS: dict[str, str | None] = {
    "signer": None,
    "signer upper case": None,
    "someone else": SIGNATURE_FAILED,
    "unblinded 00": BLINDING_REQUIRED,
    "session id 05": BAD_PUBKEY_PREFIX,
    "prefix 25": BAD_PUBKEY_PREFIX,
    "64 hex digits": BAD_PUBKEY_FORMAT,
    "68 hex digits": BAD_PUBKEY_FORMAT,
    "not hex": BAD_PUBKEY_FORMAT,
    "base64": BAD_PUBKEY_FORMAT,
    "identity point": BAD_POINT,
    "order 8 point": BAD_POINT,
    "order 2 point": BAD_POINT,
    "non-canonical y": BAD_POINT,
    "negative zero x": BAD_POINT,
    "missing": "missing",
}
NONCE_KINDS: dict[str, str | None] = {
    "base64": None,
    "base64 unpadded": None,
    "hex": None,
    "hex upper case": None,
    "15 bytes": BAD_NONCE,
    "17 bytes": BAD_NONCE,
    "32 bytes hex of 8": BAD_NONCE,
    "garbage": BAD_NONCE,
    "missing": "missing",
}
TIMESTAMP_KINDS: dict[str, str | None] = {
    "now": None,
    "a day ago": None,
    "a day ahead": None,
    "beyond the window": TIMESTAMP_OFF,
    "ahead beyond the window": TIMESTAMP_OFF,
    "milliseconds": BAD_TIMESTAMP,  # 13 digits: refused as malformed (pysogs: 425)
    "negative": BAD_TIMESTAMP,
    "fraction": BAD_TIMESTAMP,
    "plus sign": BAD_TIMESTAMP,
    "arabic digits": BAD_TIMESTAMP,
    "13 digits": BAD_TIMESTAMP,
    "missing": "missing",
}
SIGNATURE_KINDS: dict[str, str | None] = {
    "base64": None,
    "base64 unpadded": None,
    "hex": None,
    "one bit flipped": SIGNATURE_FAILED,
    "s plus the group order": SIGNATURE_FAILED,  # non-canonical: S >= L
    "r of low order": SIGNATURE_FAILED,
    "zeros": SIGNATURE_FAILED,
    "63 bytes": BAD_SIGNATURE_FORMAT,
    "65 bytes": BAD_SIGNATURE_FORMAT,
    "garbage": BAD_SIGNATURE_FORMAT,
    "missing": "missing",
}
# The order the server checks in (docs/spec/sogs-v3.md section 2): the first that fails.
CHECK_ORDER = (
    BAD_PUBKEY_FORMAT,
    BAD_PUBKEY_PREFIX,
    BLINDING_REQUIRED,
    BAD_POINT,
    BAD_NONCE,
    BAD_SIGNATURE_FORMAT,
    BAD_TIMESTAMP,
    TIMESTAMP_OFF,
    SIGNATURE_FAILED,
)
STATUS = {TIMESTAMP_OFF: 425, SIGNATURE_FAILED: 401}


def pubkey_text(kind: str, signer: BlindedIdentity, server_pk: bytes) -> str:
    """The header value of that kind, for the signer."""
    own = signer.blinded_id(server_pk)
    return {
        "signer": own,
        "signer upper case": own.upper(),
        "someone else": BlindedIdentity.generate().blinded_id(server_pk),
        "unblinded 00": signer.unblinded_id,
        "session id 05": "05" + own[2:],
        "prefix 25": "25" + own[2:],
        "64 hex digits": own[2:],
        "68 hex digits": own + "00",
        "not hex": "15" + "zz" * 32,
        "base64": base64.b64encode(bytes.fromhex(own)).decode(),
        "identity point": "15" + IDENTITY_POINT,
        "order 8 point": "15" + ORDER_8_POINT,
        "order 2 point": "15" + ORDER_2_POINT,
        "non-canonical y": "15" + NON_CANONICAL_Y,
        "negative zero x": "15" + NEGATIVE_ZERO_X,
        "missing": "",
    }[kind]


def nonce_text(kind: str, nonce: bytes) -> str:
    return {
        "base64": base64.b64encode(nonce).decode(),
        "base64 unpadded": base64.b64encode(nonce).decode().rstrip("="),
        "hex": nonce.hex(),
        "hex upper case": nonce.hex().upper(),
        "15 bytes": base64.b64encode(nonce[:15]).decode(),
        "17 bytes": base64.b64encode(nonce + b"\x00").decode(),
        "32 bytes hex of 8": nonce[:8].hex() * 2 + "zz",
        "garbage": "!!not base64!!",
        "missing": "",
    }[kind]


def timestamp_text(kind: str, now: int) -> str:
    return {
        "now": str(now),
        "a day ago": str(now - WINDOW + 60),
        "a day ahead": str(now + WINDOW - 60),
        "beyond the window": str(now - WINDOW - 60),
        "ahead beyond the window": str(now + WINDOW + 60),
        "milliseconds": str(now * 1000),
        "negative": str(-now),
        "fraction": f"{now}.5",
        "plus sign": f"+{now}",
        "arabic digits": "\u0661" * 10,
        "13 digits": "1" + "0" * 12,
        "missing": "",
    }[kind]


def signature_text(kind: str, signature: bytes) -> str:
    r, s = signature[:32], signature[32:]
    if kind == "one bit flipped":
        signature = bytes([signature[0] ^ 1]) + signature[1:]
    elif kind == "s plus the group order":
        signature = r + (int.from_bytes(s, "little") + L).to_bytes(32, "little")
    elif kind == "r of low order":
        signature = bytes.fromhex(ORDER_8_POINT) + s
    elif kind == "zeros":
        signature = bytes(64)
    return {
        "base64 unpadded": base64.b64encode(signature).decode().rstrip("="),
        "hex": signature.hex(),
        "63 bytes": base64.b64encode(signature[:63]).decode(),
        "65 bytes": base64.b64encode(signature + b"\x00").decode(),
        "garbage": "\u00e9" * 88,
        "missing": "",
    }.get(kind, base64.b64encode(signature).decode())


def kinds_of(kinds: dict[str, str | None]) -> st.SearchStrategy[str]:
    """Half the time a well-formed kind, so that every check is reached often."""
    good = sorted(k for k, refusal in kinds.items() if refusal is None)
    return st.one_of(st.sampled_from(good), st.sampled_from(sorted(kinds)))


def expected_refusal(kinds: dict[str, str]) -> str | None:
    """The refusal text the first failing check gives (None: the request is accepted)."""
    outcomes = [
        PUBKEY_KINDS[kinds["pubkey"]],
        NONCE_KINDS[kinds["nonce"]],
        TIMESTAMP_KINDS[kinds["timestamp"]],
        SIGNATURE_KINDS[kinds["signature"]],
    ]
    missing = outcomes.count("missing")
    if missing:
        return f"Invalid authentication headers: missing {missing}/4 required X-SOGS-* headers"
    for refusal in CHECK_ORDER:
        if refusal in outcomes:
            return refusal
    return None


@V3_FUZZ
@given(
    pubkey=kinds_of(PUBKEY_KINDS),
    nonce=kinds_of(NONCE_KINDS),
    timestamp=kinds_of(TIMESTAMP_KINDS),
    signature=kinds_of(SIGNATURE_KINDS),
    transport=st.sampled_from(["http", "onion-aes", "onion-xchacha"]),
)
@example("signer", "hex upper case", "a day ahead", "hex", "onion-xchacha")
@example("identity point", "base64", "now", "base64", "http")
@example("signer", "base64", "now", "s plus the group order", "http")
def test_every_malformed_x_sogs_header_gets_its_exact_refusal_and_posts_nothing(
    clients: dict[str, CommunityClient],
    tables: Tables,
    world: World,
    pubkey: str,
    nonce: str,
    timestamp: str,
    signature: str,
    transport: str,
) -> None:
    """A post with its four headers each well-formed or broken in one way: the answer is
    the refusal of the first check that fails (400, 401 or 425, pysogs' texts), or 201
    when none does; a refused post stores nothing."""
    client = clients[transport]
    signer = BlindedIdentity.generate()
    body = desktop_json(message_body(signer, client.server_pk))
    path = f"{ROOM}/message"
    raw_nonce = os.urandom(16)
    ts = timestamp_text(timestamp, int(time.time()))
    pubkey_value = pubkey_text(pubkey, signer, client.server_pk)
    message = b"".join(  # as sogs_signature_message, but any timestamp text is signed
        (client.server_pk, raw_nonce, ts.encode(), b"POST", path.encode(), blake2b_512(body))
    )
    headers = {
        "X-SOGS-Pubkey": pubkey_value,
        "X-SOGS-Nonce": nonce_text(nonce, raw_nonce),
        "X-SOGS-Timestamp": ts,
        "X-SOGS-Signature": signature_text(
            signature, signer.sign_blinded(client.server_pk, message)
        ),
    }
    if transport == "http":  # HTTP carries ASCII header values only
        headers = {k: v if v.isascii() else quote(v) for k, v in headers.items()}
    refusal = expected_refusal(
        {"pubkey": pubkey, "nonce": nonce, "timestamp": timestamp, "signature": signature}
    )
    before = tables.fingerprint()
    answer = client.post(path, body=body, headers={"Content-Type": CONTENT_JSON, **headers})
    what = (pubkey, nonce, timestamp, signature, transport, headers)
    assert_no_server_error(answer, what)
    if refusal is None:
        assert answer.status == 201, (answer, what)
        return
    assert answer.status == STATUS.get(refusal, 400), (answer, what)
    assert answer.body == refusal, (answer, what)
    assert tables.fingerprint() == before, what


# --------------------------------------------------------------------------- onion v4 envelopes

ENVELOPE_KINDS = (
    "random",
    "valid",
    "prefix",
    "truncated",
    "flipped",
    "metadata",
    "wrong cipher",
    "extra metadata",
)
BENCODE_KINDS = ("request", "random", "lengths", "meta", "strings")


@dataclass(frozen=True)
class Envelope:
    """An onion v4 body, and the key its answer comes under if the server can open it."""

    body: bytes
    key: OnionKey | None
    note: str


@st.composite
def v4_plaintexts(draw: st.DrawFn) -> bytes:
    """What the envelope holds: a real request, random bytes, or bencode gone wrong."""
    kind = draw(st.sampled_from(BENCODE_KINDS))
    if kind == "request":
        method, path = draw(paths())
        return encode_v4_request(method, path, {}, draw(BODIES))
    if kind == "random":
        return draw(st.binary(max_size=200))
    if kind == "lengths":  # a string whose stated length is wrong, zero-padded or huge
        meta = b'{"method":"GET","endpoint":"/capabilities"}'
        stated = draw(
            st.sampled_from(
                [
                    b"0",
                    b"1",
                    b"00",
                    b"043",
                    str(len(meta) - 1).encode(),
                    str(len(meta) + 1).encode(),
                ]
            )
            | st.sampled_from([b"9" * 10, b"9" * 11, b"4294967296", b"-1", b""])
        )
        tail = draw(st.sampled_from([b"e", b"", b"ee", b"4:abcde"]))
        return b"l" + stated + b":" + meta + tail
    if kind == "meta":  # well-framed, its metadata any JSON value (or not JSON)
        meta = draw(
            st.one_of(
                JSON_VALUES.filter(lambda v: not isinstance(v, float)).map(
                    lambda v: json.dumps(v).encode()
                ),
                st.fixed_dictionaries(
                    {},
                    optional={
                        "method": st.one_of(st.sampled_from(METHODS), JSON_VALUES),
                        "endpoint": st.one_of(
                            paths().map(lambda mp: mp[1]), SAFE_TEXT, JSON_VALUES
                        ),
                        "headers": JSON_VALUES,
                    },
                ).map(lambda v: json.dumps(v).encode()),
                st.binary(max_size=40),
            )
        )
        return bencode_strings([meta])
    parts = draw(st.lists(st.binary(max_size=30), max_size=4))  # strings, any number
    return bencode_strings(parts)


@st.composite
def envelopes(draw: st.DrawFn, server_pk: bytes) -> Envelope:
    kind = draw(st.sampled_from(ENVELOPE_KINDS))
    if kind == "random":
        return Envelope(draw(st.binary(max_size=300)), None, kind)
    cipher: EncType = draw(st.sampled_from(["aes-gcm", "xchacha20"]))
    ephemeral = X25519PrivateKey.generate()
    key = onion_key_for(cipher, ephemeral, server_pk)
    ciphertext = onion_encrypt(key, draw(v4_plaintexts()))
    metadata: dict[str, Any] = {
        "ephemeral_key": ephemeral.public_key().public_bytes_raw().hex(),
        "enc_type": draw(
            st.sampled_from(
                {"aes-gcm": ["aes-gcm", "gcm"], "xchacha20": ["xchacha20", "xchacha20-poly1305"]}[
                    cipher
                ]
            )
        ),
    }
    if cipher == "aes-gcm" and draw(st.booleans()):
        del metadata["enc_type"]  # desktop sends none for AES-GCM
    if kind == "extra metadata":
        extra = draw(st.dictionaries(SAFE_TEXT, JSON_VALUES, max_size=3))
        metadata.update({k: v for k, v in extra.items() if k not in metadata})
    if kind == "wrong cipher":
        metadata["enc_type"] = draw(
            st.sampled_from(
                [{"aes-gcm": "xchacha20", "xchacha20": "aes-gcm"}[cipher], "AES-GCM", "", None, 1]
            )
        )
    whole = struct.pack("<I", len(ciphertext)) + ciphertext + json.dumps(metadata).encode()
    if kind == "valid" or (kind == "extra metadata" and is_unicode(metadata)):
        return Envelope(whole, key, kind)
    if kind == "extra metadata":  # a lone surrogate escape: JSON syntax, not text
        return Envelope(whole, None, "extra metadata with a lone surrogate")
    if kind == "wrong cipher":
        return Envelope(whole, None, kind)
    if kind == "prefix":
        size = draw(st.integers(0, 2**32 - 1).filter(lambda n: n != len(ciphertext)))
        return Envelope(struct.pack("<I", size) + whole[4:], None, kind)
    if kind == "truncated":
        return Envelope(whole[: draw(st.integers(0, len(whole) - 1))], None, kind)
    if kind == "flipped":  # in the prefix or the ciphertext: it never opens
        bit = draw(st.integers(0, 8 * (4 + len(ciphertext)) - 1))
        flipped = bytearray(whole)
        flipped[bit // 8] ^= 1 << (bit % 8)
        return Envelope(bytes(flipped), None, kind)
    bad = draw(
        st.one_of(
            st.binary(max_size=60),
            JSON_VALUES.filter(lambda v: not isinstance(v, float)).map(
                lambda v: json.dumps(v).encode()
            ),
            st.sampled_from(LOW_ORDER_POINTS).map(
                lambda p: json.dumps({"ephemeral_key": p, "enc_type": cipher}).encode()
            ),
            st.from_regex(r"[0-9a-f]{63}|[0-9a-f]{65}|[0-9a-g]{64}", fullmatch=True).map(
                lambda p: json.dumps({"ephemeral_key": p}).encode()
            ),
        )
    )
    return Envelope(struct.pack("<I", len(ciphertext)) + ciphertext + bad, None, kind)


@V3_FUZZ
@given(data=st.data())
def test_any_onion_v4_envelope_gets_a_plain_400_or_a_sealed_bencoded_answer(
    server: ServerProcess,
    http: httpx.Client,
    tables: Tables,
    world: World,
    data: st.DataObject,
) -> None:
    """Whatever arrives at /oxen/v4/lsrpc: an envelope that cannot be opened is a plain
    400 (there is no key to seal an answer with); one that opens is HTTP 200 around a
    sealed ``l<meta><body>e`` whatever it holds, never a 5xx inside. Nothing is stored
    (no envelope here is signed)."""
    envelope = data.draw(envelopes(server.public_key), label="envelope")
    before = tables.fingerprint()
    resp = http.post(ONION_V4_PATH, content=envelope.body)
    assert not TRACEBACK.search(resp.content), envelope
    if envelope.key is None:
        # A wrong key or cipher opens nothing; a few random bytes might, by luck, never.
        assert resp.status_code in (400, 413), (resp.status_code, resp.content[:300], envelope)
        assert resp.headers["content-type"].startswith("text/plain"), envelope
    else:
        assert resp.status_code == 200, (resp.status_code, resp.content[:300], envelope)
        try:
            answer = parse_v4_reply(onion_decrypt(envelope.key, resp.content))
        except WireFormatError as exc:
            pytest.fail(f"the sealed answer is not a v4 reply: {exc} ({envelope})")
        assert_no_server_error(answer, envelope)
    assert tables.fingerprint() == before, envelope


def test_a_valid_signed_request_through_either_cipher_is_answered_sealed_the_same_way(
    server: ServerProcess, http: httpx.Client, world: World
) -> None:
    """Self-check of the envelope builder: a real request opens and is answered under
    both ciphers, and the answer does not open under the other cipher's key."""
    ciphers: tuple[EncType, ...] = ("aes-gcm", "xchacha20")
    for cipher in ciphers:
        ephemeral = X25519PrivateKey.generate()
        key = onion_key_for(cipher, ephemeral, server.public_key)
        plaintext = encode_v4_request("GET", "/capabilities", {})
        ciphertext = onion_encrypt(key, plaintext)
        meta = {
            "ephemeral_key": ephemeral.public_key().public_bytes_raw().hex(),
            "enc_type": cipher,
        }
        body = struct.pack("<I", len(ciphertext)) + ciphertext + desktop_json(meta)
        resp = http.post(ONION_V4_PATH, content=body)
        assert resp.status_code == 200, resp.content[:300]
        answer = parse_v4_reply(onion_decrypt(key, resp.content))
        assert answer.status == 200 and "sogs" in answer.body["capabilities"]
        other = OnionKey("xchacha20" if cipher == "aes-gcm" else "aes-gcm", key.key)
        with pytest.raises(WireFormatError):
            onion_decrypt(other, resp.content)


# --------------------------------------------------------------------------- the end


def test_after_the_fuzz_the_rooms_are_as_before(
    server: ServerProcess,
    clients: dict[str, CommunityClient],
    tables: Tables,
    world: World,
    rooms_before: list[list[str]],
) -> None:
    """Runs after the fuzzing: no fuzzed request (none signed by staff of `main` or the bystander)
    changed a room, the bystander's message or file, staff, bans or permissions; and the
    server still serves the bystander's message and file as they were."""
    assert tables.rooms_snapshot(world) == rooms_before
    c = clients["onion-xchacha"]
    message = c.get(f"{ROOM}/message/{world.bystander_message}", identity=world.alice)
    assert message.status == 200 and "deleted" not in message.body, message
    file = c.get(f"{ROOM}/file/{world.file_id}", identity=world.alice)
    assert file.status == 200 and file.body == b"bystander's file", file
    assert server.running


def test_the_fuzzer_can_tell_a_write_from_a_refusal(
    clients: dict[str, CommunityClient], tables: Tables, world: World
) -> None:
    """Self-check: a stored post changes the fingerprint, a staff write in STAFF_ROOM does
    not change the rooms' snapshot, a write by the bystander does."""
    before, snapshot = tables.fingerprint(), tables.rooms_snapshot(world)
    posted(clients["http"], world.staff, room=f"/room/{STAFF_ROOM}")
    assert tables.fingerprint() != before
    assert tables.rooms_snapshot(world) == snapshot
    extra = posted(clients["http"], world.bystander)
    assert tables.rooms_snapshot(world) != snapshot
    deleted = clients["http"].delete(f"{ROOM}/message/{extra['id']}", identity=world.bystander)
    assert deleted.status == 200, deleted
    assert tables.rooms_snapshot(world) != snapshot  # a deletion leaves its row, blanked


def test_the_onion_v3_client_tells_a_success_from_a_refusal(
    clients: dict[str, CommunityClient], world: World
) -> None:
    """Self-check of the onion v3 way in: an answer, a refusal, a signed request."""
    c = clients["onion3"]
    answer = c.request("GET", "/capabilities")
    assert (answer.status, answer.content_type) == (200, CONTENT_JSON), answer
    assert "sogs" in answer.body["capabilities"]
    assert c.request("GET", "/inbox").status == 401
    signed = c.request("GET", "/inbox", identity=world.alice)
    assert signed.status == 200 and isinstance(signed.body, list), signed
