"""Direct HTTP (docs/spec/SPEC.md section 2.2) and the home page (section 4).

Every endpoint is also served at its own path, for operators, tests and
tools. The HTTP status always equals the body's `status_code`, and every
error has one shape: `{"status_code": N, "error": "<short text>"}`. `GET /`
is a human page listing the rooms with their join URLs and QR codes.

These tests use httpx directly, not the harness Client, so that the status
line, headers and raw body are what is asserted.
"""

from __future__ import annotations

import html
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import segno
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from serverprocess import ServerProcess
from sessionclient import (
    DEFAULT_ROOM,
    Client,
    Identity,
    Persona,
    encode_visible_message,
    make_message_body,
    pad_message,
)

DIRECT_LIMIT = 16 * 1024 * 1024
SOMEONE = Identity.generate().session_id  # a well-formed session id nobody uses


# --------------------------------------------------------------------------- helpers


@dataclass
class Scene:
    """What a request scenario needs: a raw HTTP client and a few members of `main`."""

    http: httpx.Client
    user: Persona
    banned: Persona


def auth(persona: Persona) -> dict[str, str]:
    """The Room and Authorization headers of persona."""
    return {"Room": persona.room, "Authorization": persona.token}


def message_body(persona: Persona, size: int | None = None) -> bytes:
    """A correctly signed POST /messages body (of about `size` decoded bytes if given)."""
    payload = encode_visible_message("x" * (size or 10))
    padded = pad_message(payload)
    body = make_message_body(persona.identity, padded, persona.identity.sign(padded), 1_700_000)
    return json.dumps(body).encode()


def json_of(resp: httpx.Response) -> dict[str, Any]:
    """The body as a JSON object, with application/json as its declared type."""
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body, dict), body
    return body


def assert_error(resp: httpx.Response, status: int) -> None:
    """HTTP status == status_code == status, and exactly the error shape, no traceback."""
    body = json_of(resp)
    assert resp.status_code == status, (resp.status_code, body)
    assert body["status_code"] == status, body
    allowed = {"status_code", "error", "retry_after"} if status == 429 else {"status_code", "error"}
    assert {"status_code", "error"} <= set(body) <= allowed, body
    assert isinstance(body["error"], str) and 0 < len(body["error"]) < 300, body
    for leak in ("Traceback", 'File "', "Exception", "sqlalchemy", "psycopg", "sqlite3"):
        assert leak not in resp.text, resp.text


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    """A plain HTTP client of the module's server."""
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30) as c:
        yield c


@pytest.fixture
def scene(http: httpx.Client, user: Persona, banned_user: Persona) -> Scene:
    """A fresh scene per test: fresh members, so no rate limit carries over."""
    return Scene(http, user, banned_user)


# --------------------------------------------------------------------------- status == status_code

SUCCESSES = [
    pytest.param(lambda s: s.http.get("/rooms"), id="GET rooms"),
    pytest.param(lambda s: s.http.get("/rooms/main"), id="GET rooms/main"),
    pytest.param(lambda s: s.http.get("/messages", headers=auth(s.user)), id="GET messages"),
    pytest.param(
        lambda s: s.http.post("/messages", content=message_body(s.user), headers=auth(s.user)),
        id="POST messages",
    ),
    pytest.param(
        lambda s: s.http.post("/compact_poll", content=b'{"requests": []}'), id="compact_poll"
    ),
    pytest.param(lambda s: s.http.get("/member_count", headers=auth(s.user)), id="member_count"),
]


@pytest.mark.parametrize("call", SUCCESSES)
def test_success_is_http_200_with_status_code_200(
    scene: Scene, call: Callable[[Scene], httpx.Response]
) -> None:
    resp = call(scene)
    assert resp.status_code == 200, resp.text[:300]
    assert json_of(resp)["status_code"] == 200


def _rate_limited(s: Scene) -> httpx.Response:
    for _ in range(5):
        first = s.http.post("/messages", content=message_body(s.user), headers=auth(s.user))
        assert first.status_code == 200, first.text
    return s.http.post("/messages", content=message_body(s.user), headers=auth(s.user))


ERRORS = [
    pytest.param(
        lambda s: s.http.get("/auth_token_challenge?public_key=05zz", headers={"Room": "main"}),
        400,
        id="400 bad public key",
    ),
    pytest.param(
        lambda s: s.http.post("/messages", content=b"{}", headers=auth(s.user)),
        400,
        id="400 message without fields",
    ),
    pytest.param(
        lambda s: s.http.get("/messages", headers={"Room": "main"}), 401, id="401 no token"
    ),
    pytest.param(
        lambda s: s.http.get("/messages", headers={"Room": "main", "Authorization": "ab" * 48}),
        401,
        id="401 unknown token",
    ),
    pytest.param(
        lambda s: s.http.post("/messages", content=message_body(s.banned), headers=auth(s.banned)),
        403,
        id="403 banned",
    ),
    pytest.param(
        lambda s: s.http.post(
            "/block_list", content=json.dumps({"public_key": SOMEONE}), headers=auth(s.user)
        ),
        403,
        id="403 not a moderator",
    ),
    pytest.param(lambda s: s.http.get("/rooms/no_such_room"), 404, id="404 unknown room"),
    pytest.param(lambda s: s.http.get("/no_such_endpoint"), 404, id="404 unknown endpoint"),
    pytest.param(lambda s: s.http.put("/rooms"), 405, id="405 wrong method"),
    pytest.param(
        lambda s: s.http.post(
            "/messages", content=message_body(s.user, 100_001), headers=auth(s.user)
        ),
        413,
        id="413 message too large",
    ),
    pytest.param(
        lambda s: s.http.post("/files", content=b" " * (DIRECT_LIMIT + 1)), 413, id="413 body"
    ),
    pytest.param(_rate_limited, 429, id="429 rate limited"),
]


@pytest.mark.parametrize(("call", "status"), ERRORS)
def test_an_error_is_its_http_status_with_the_one_error_shape(
    scene: Scene, call: Callable[[Scene], httpx.Response], status: int
) -> None:
    assert_error(call(scene), status)


# --------------------------------------------------------------------------- routing


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/no_such_endpoint", id="unknown"),
        pytest.param("/rooms/main/members", id="unknown below a room"),
        pytest.param("/rooms/main/image/extra", id="too deep"),
        pytest.param("/messages/1/extra", id="too deep below messages"),
        pytest.param("/loki/v2/lsrpc", id="onion v2"),
        pytest.param("/oxen/v4/lsrpc", id="onion v4"),
        pytest.param("/legacy/rooms", id="pysogs legacy prefix"),
        pytest.param("/favicon.ico", id="favicon"),
        pytest.param("/%00", id="NUL byte"),
        pytest.param("/rooms/main/../../etc/passwd", id="dot segments"),
    ],
)
def test_unknown_path_is_404(http: httpx.Client, path: str) -> None:
    assert_error(http.get(path), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("PUT", "/rooms", id="PUT rooms"),
        pytest.param("DELETE", "/rooms", id="DELETE rooms"),
        pytest.param("POST", "/rooms/main", id="POST rooms/main"),
        pytest.param("PATCH", "/messages", id="PATCH messages"),
        pytest.param("PUT", "/messages/1", id="PUT messages/1"),
        pytest.param("GET", "/claim_auth_token", id="GET claim_auth_token"),
        pytest.param("GET", "/compact_poll", id="GET compact_poll"),
        pytest.param("POST", "/member_count", id="POST member_count"),
        pytest.param("DELETE", "/files/1", id="DELETE files/1"),
        pytest.param("OPTIONS", "/rooms", id="OPTIONS rooms"),
        pytest.param("GET", "/loki/v3/lsrpc", id="GET the onion endpoint"),
        pytest.param("POST", "/", id="POST the home page"),
    ],
)
def test_known_path_with_another_method_is_405(http: httpx.Client, method: str, path: str) -> None:
    assert_error(http.request(method, path), 405)


@pytest.mark.parametrize(
    ("path", "with_auth"),
    [
        pytest.param("/rooms", False, id="rooms"),
        pytest.param("/rooms/main", False, id="rooms/main"),
        pytest.param("/moderators", True, id="moderators"),
        pytest.param("/messages", True, id="messages"),
    ],
)
def test_trailing_slash_is_tolerated(
    http: httpx.Client, user: Persona, path: str, with_auth: bool
) -> None:
    headers = auth(user) if with_auth else {}
    plain, slashed = http.get(path, headers=headers), http.get(path + "/", headers=headers)
    assert plain.status_code == slashed.status_code == 200, slashed.text
    assert json_of(slashed) == json_of(plain)


def test_trailing_slash_is_tolerated_on_post(http: httpx.Client, user: Persona) -> None:
    resp = http.post("/messages/", content=message_body(user), headers=auth(user))
    assert resp.status_code == 200, resp.text
    assert json_of(resp)["message"]["public_key"] == user.session_id


def test_query_parameters_are_read_from_the_url(
    http: httpx.Client, setup_client: Client, user: Persona
) -> None:
    ids = [setup_client.post_message(user.identity, user.token, user.room) for _ in range(3)]
    first = ids[0]["message"]["server_id"]
    resp = http.get(f"/messages?from_server_id={first}&limit=1", headers=auth(user))
    assert [m["server_id"] for m in json_of(resp)["messages"]] == [first + 1]


# --------------------------------------------------------------------------- bodies

BAD_BODIES = [
    pytest.param(b"", id="empty"),
    pytest.param(b"not json", id="not JSON"),
    pytest.param(b'{"requests": [', id="truncated JSON"),
    pytest.param(b"\xff\xfe{}", id="not UTF-8"),
    pytest.param(b"[]", id="a list"),
    pytest.param(b'"text"', id="a string"),
    pytest.param(b"5", id="a number"),
    pytest.param(b"null", id="null"),
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_compact_poll_body_that_is_not_a_json_object_is_400(
    http: httpx.Client, body: bytes
) -> None:
    assert_error(http.post("/compact_poll", content=body), 400)


@pytest.mark.parametrize("body", BAD_BODIES)
def test_message_body_that_is_not_a_json_object_is_400(
    http: httpx.Client, user: Persona, body: bytes
) -> None:
    assert_error(http.post("/messages", content=body, headers=auth(user)), 400)


@pytest.mark.parametrize("body", BAD_BODIES)
def test_claim_body_that_is_not_a_json_object_is_400(http: httpx.Client, body: bytes) -> None:
    headers = {"Room": DEFAULT_ROOM, "Authorization": "ab" * 48}
    assert_error(http.post("/claim_auth_token", content=body, headers=headers), 400)


def test_no_content_type_is_needed_for_a_json_body(http: httpx.Client, user: Persona) -> None:
    resp = http.post("/messages", content=message_body(user), headers=auth(user))
    assert "content-type" not in resp.request.headers
    assert resp.status_code == 200, resp.text


def test_body_over_the_limit_is_413_even_when_streamed_without_length(
    http: httpx.Client,
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(DIRECT_LIMIT // (1024 * 1024) + 1):
            yield b" " * (1024 * 1024)

    resp = http.post("/compact_poll", content=chunks())
    assert "content-length" not in resp.request.headers
    assert_error(resp, 413)


def test_body_at_the_limit_is_read_and_judged_on_its_content(http: httpx.Client) -> None:
    body = b'{"requests": []}'
    resp = http.post("/compact_poll", content=body + b" " * (DIRECT_LIMIT - len(body)))
    assert resp.status_code == 200, resp.text[:300]
    assert json_of(resp) == {"status_code": 200, "results": []}


# --------------------------------------------------------------------------- the home page


def svg_modules(svg: str) -> set[tuple[int, int]]:
    """Dark modules (row, column) of a segno-style SVG QR code, origin at the top-left one.

    The path draws each row of dark modules as horizontal strokes ("M x y",
    relative "m dx dy", "h n"); y is the row's centre line.
    """
    found = re.search(r'\sd="([^"]+)"', svg)
    assert found, svg[:300]
    x = y = 0.0
    dark: set[tuple[int, int]] = set()
    for cmd, args in re.findall(r"([A-Za-z])([^A-Za-z]*)", found.group(1)):
        nums = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", args)]
        if cmd == "M":
            x, y = nums
        elif cmd == "m":
            x, y = x + nums[0], y + nums[1]
        elif cmd == "h":
            dark.update((int(y), int(x) + i) for i in range(int(nums[0])))
            x += nums[0]
        else:
            raise AssertionError(f"unexpected SVG path command {cmd!r}")
    top, left = min(r for r, _ in dark), min(c for _, c in dark)
    return {(r - top, c - left) for r, c in dark}


def qr_encodes(svg: str, text: str) -> bool:
    """Whether the SVG's QR symbol is a QR encoding of text (at some error level)."""
    drawn = svg_modules(svg)
    for level in "lmqh":
        for boost in (True, False):
            matrix = segno.make(text, error=level, boost_error=boost, micro=False).matrix
            expected = {(r, c) for r, row in enumerate(matrix) for c, v in enumerate(row) if v}
            if drawn == expected:
                return True
    return False


def join_url_of(base: str, room: str, server: ServerProcess) -> str:
    """The join URL docs/spec/SPEC.md section 4 prescribes: BASE/ROOM?public_key=<64 hex>."""
    return f"{base}/{room}?public_key={server.public_key.hex()}"


def test_home_page_lists_main_with_its_join_url_and_qr_code(
    http: httpx.Client, server: ServerProcess
) -> None:
    resp = http.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    page = resp.text
    url = join_url_of(f"http://127.0.0.1:{server.port}", DEFAULT_ROOM, server)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/main\?public_key=[0-9a-f]{64}", url)
    assert url in page
    assert "Main" in page
    svgs = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    assert svgs, "no inline SVG on the page"
    assert any(qr_encodes(svg, url) for svg in svgs), "no QR code of the join URL"
    assert "<img" not in page, "the QR code must be inline, not an external image"


def test_home_page_follows_the_rooms_and_escapes_their_names(
    http: httpx.Client, server: ServerProcess, cli: Callable[..., Any]
) -> None:
    cli("rooms", "add", "lobby", "<b>Lobby & friends</b>")
    page = http.get("/").text
    url = join_url_of(f"http://127.0.0.1:{server.port}", "lobby", server)
    assert url in page
    assert html.escape("<b>Lobby & friends</b>") in page
    assert "<b>Lobby" not in page
    assert any(qr_encodes(svg, url) for svg in re.findall(r"<svg\b.*?</svg>", page, flags=re.S))
    cli("rooms", "delete", "lobby")
    assert url not in http.get("/").text


def test_home_page_reveals_no_secret(http: httpx.Client, server: ServerProcess) -> None:
    pem = (server.data_dir / "x25519_private_key.pem").read_bytes()
    private = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(private, X25519PrivateKey)
    raw = private.private_bytes_raw()
    page = http.get("/").text
    for secret in (raw.hex(), raw.hex().upper(), pem.decode().splitlines()[1]):
        assert secret not in page
    assert "PRIVATE KEY" not in page


def test_home_page_uses_the_configured_public_url(
    server_factory: Callable[..., ServerProcess],
) -> None:
    other = server_factory(env={"OPENGROUP_PUBLIC_URL": "https://chat.example.org/"})
    with httpx.Client(base_url=other.base_url, trust_env=False) as c:
        page = c.get("/").text
    url = join_url_of("https://chat.example.org", DEFAULT_ROOM, other)
    assert url in page
    assert f"127.0.0.1:{other.port}/main" not in page


# --------------------------------------------------------------------------- connections


def idle_seconds_until_closed(port: int, wait_at_most: float) -> float | None:
    """Send one keep-alive request on a raw socket, read the answer, then wait: the
    seconds until the server closed the idle connection, or None if it did not."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_at_most) as sock:
        sock.sendall(b"GET /rooms HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
        answered = time.monotonic()
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            return None
        assert closed
        return time.monotonic() - answered


def test_an_idle_connection_is_closed_after_keep_alive_seconds(
    server_factory: Callable[..., ServerProcess], server: ServerProcess
) -> None:
    short = server_factory(env={"OPENGROUP_KEEP_ALIVE_SECONDS": "1"})

    idle_short = idle_seconds_until_closed(short.port, wait_at_most=10)
    idle_default = idle_seconds_until_closed(server.port, wait_at_most=2.5)

    assert idle_short is not None and 0.8 <= idle_short < 3, idle_short
    assert idle_default is None  # the default keeps it 5 s
