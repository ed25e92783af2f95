"""Onion requests: the `/loki/v3/lsrpc` envelope (also at `/oxen/v3/lsrpc`).

The contract: docs/spec/SPEC.md section 2.1 and docs/spec/client-protocol.md section 1.

Every Session client reaches the server only through this endpoint: a 4-byte
little-endian length, the AES-GCM ciphertext of the inner request, then JSON
metadata naming the client's ephemeral X25519 key. Whatever the inner request
does, a decryptable envelope is answered HTTP 200 with the encrypted inner
JSON (which carries the real status); an envelope that cannot be opened is a
plain HTTP 400.

An inner endpoint without a leading `/` (what every 2021 client sends) is a
v2 request; with a leading `/` it is the community (v3) API, unless it is under
`/legacy/` (docs/spec/SPEC-v3.md section 1).
"""

from __future__ import annotations

import base64
import binascii
import json
import socket
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from harness.expect import expect_error
from harness.server import ServerProcess
from harness.v2client import (
    DEFAULT_ROOM,
    IV_SIZE,
    ONION_PATH,
    Client,
    Identity,
    Persona,
    build_onion_request,
    decrypt_aes_gcm,
    decrypt_challenge,
    decrypt_onion_response,
    derive_symmetric_key,
    encode_visible_message,
    encrypt_aes_gcm,
    encrypt_onion_payload,
    signed_message,
)

TAG_SIZE = 16
ONION_LIMIT = 10 * 1024 * 1024
DIGIT_ROOM = "12345"


# --------------------------------------------------------------------------- helpers


def inner_json(
    endpoint: str,
    method: str = "GET",
    *,
    body: object = "null",
    headers: Mapping[str, object] | None = None,
) -> bytes:
    """The plaintext of an inner request; body=... (Ellipsis) leaves the "body" key out."""
    inner: dict[str, object] = {"endpoint": endpoint, "method": method}
    if body is not ...:
        inner["body"] = body
    inner["headers"] = dict(headers or {})
    return json.dumps(inner).encode()


def envelope(ciphertext: bytes, metadata: bytes, *, length: int | None = None) -> bytes:
    """Assemble an lsrpc body from its three parts; length overrides the prefix."""
    prefix = struct.pack("<I", len(ciphertext) if length is None else length)
    return prefix + ciphertext + metadata


def sealed_parts(
    server_public: bytes, plaintext: bytes, ephemeral: X25519PrivateKey | None = None
) -> tuple[bytes, bytes, bytes]:
    """(ciphertext, metadata JSON, symmetric key) of a correct envelope for plaintext."""
    eph = ephemeral or X25519PrivateKey.generate()
    key = derive_symmetric_key(eph, server_public)
    metadata = {"ephemeral_key": eph.public_key().public_bytes_raw().hex()}
    return encrypt_aes_gcm(key, plaintext), json.dumps(metadata).encode(), key


def is_base64(text: str) -> bool:
    """Whether text is standard padded base64 (what an encrypted answer always is)."""
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return bool(text)


def post_onion(server: ServerProcess, blob: bytes) -> httpx.Response:
    """POST raw bytes to the onion endpoint with no extra headers."""
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30) as http:
        return http.post(ONION_PATH, content=blob)


def onion_answer(server: ServerProcess, plaintext: bytes, **extra: Any) -> dict[str, Any]:
    """Send plaintext as a correct envelope; check outer 200 and return the inner JSON."""
    blob, key = encrypt_onion_payload(server.public_key, plaintext, **extra)
    resp = post_onion(server, blob)
    assert resp.status_code == 200, resp.text[:300]
    answer = decrypt_onion_response(key, resp.text)
    assert isinstance(answer.get("status_code"), int), answer
    assert answer["status_code"] not in (406, 421), answer
    return answer


def assert_plain_400(resp: httpx.Response) -> None:
    """A refused envelope: HTTP 400 with a short readable text, not an encrypted body."""
    assert resp.status_code == 400, (resp.status_code, resp.text[:300])
    assert not is_base64(resp.text), resp.text[:300]
    assert "Traceback" not in resp.text
    assert len(resp.text) < 1000


def raw_http(server: ServerProcess, request: bytes) -> tuple[bytes, bytes]:
    """Send one raw HTTP/1.1 request and read until the server closes: (head, body)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return head, body


def header_lines(head: bytes) -> dict[str, str]:
    """Response header names (lower case) to values, from a raw response head."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


def message_count(setup_client: Client, persona: Persona) -> int:
    """How many messages `persona` currently sees in its room (direct HTTP)."""
    result = setup_client.request("GET", "messages", room=persona.room, token=persona.token)
    assert result["status_code"] == 200, result
    return len(result["messages"])


def message_blob(server: ServerProcess, persona: Persona) -> tuple[bytes, bytes]:
    """A correct onion envelope of a signed POST /messages by persona: (blob, key)."""
    return build_onion_request(
        server.public_key,
        "messages",
        "POST",
        json.dumps(signed_message(persona.identity)),
        {"Room": persona.room, "Authorization": persona.token},
    )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def onion(server: ServerProcess) -> Iterator[Client]:
    """A client that speaks only onion requests."""
    with server.client("onion") as c:
        yield c


@pytest.fixture(scope="module")
def digit_room(cli: Callable[..., Any]) -> str:
    """A room whose id is all digits: Android sends its Room header as a JSON number."""
    cli("rooms", "add", DIGIT_ROOM, "Digits")
    return DIGIT_ROOM


# --------------------------------------------------------------------------- same answer as direct

# Every request's status through either transport, and the same answer through onion as
# directly: test_transports.py.


def test_a_posted_message_reads_back_the_same_through_both_transports(
    setup_client: Client, user: Persona
) -> None:
    posted = setup_client.post_message(user.identity, user.token, user.room, transport="onion")
    assert posted["status_code"] == 200, posted
    server_id = posted["message"]["server_id"]
    query = f"messages?from_server_id={server_id - 1}"
    direct = setup_client.request("GET", query, room=user.room, token=user.token, transport="http")
    via_onion = setup_client.request(
        "GET", query, room=user.room, token=user.token, transport="onion"
    )
    assert via_onion == direct
    assert [m["server_id"] for m in direct["messages"]] == [server_id]
    assert direct["messages"][0] == posted["message"]


# --------------------------------------------------------------------------- the answer


def test_success_is_http_200_with_base64_of_iv_ciphertext_and_tag(server: ServerProcess) -> None:
    blob, key = encrypt_onion_payload(server.public_key, inner_json("rooms"))
    resp = post_onion(server, blob)
    assert resp.status_code == 200
    raw = base64.b64decode(resp.text, validate=True)
    assert resp.text == base64.b64encode(raw).decode(), "standard, padded base64"
    answer = json.loads(decrypt_aes_gcm(key, raw))
    assert len(raw) == IV_SIZE + len(json.dumps(answer, separators=(",", ":"))) + TAG_SIZE
    assert answer["status_code"] == 200
    assert {"id": "main", "name": "Main"} in answer["rooms"]


def test_errors_too_are_http_200_with_the_encrypted_status_inside(server: ServerProcess) -> None:
    blob, key = encrypt_onion_payload(server.public_key, inner_json("no_such_endpoint"))
    resp = post_onion(server, blob)
    assert resp.status_code == 200, resp.text[:300]
    expect_error(decrypt_onion_response(key, resp.text), 404)


def test_each_answer_has_a_fresh_iv_even_for_a_replayed_envelope(server: ServerProcess) -> None:
    blob, key = encrypt_onion_payload(server.public_key, inner_json("rooms"))
    first, second = post_onion(server, blob), post_onion(server, blob)
    assert first.status_code == second.status_code == 200
    iv1 = base64.b64decode(first.text)[:IV_SIZE]
    iv2 = base64.b64decode(second.text)[:IV_SIZE]
    assert iv1 != iv2
    assert decrypt_onion_response(key, first.text) == decrypt_onion_response(key, second.text)


# --------------------------------------------------------------------------- what real clients send


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param("rooms/main", id="no leading slash (all clients)"),
        pytest.param("/legacy/rooms/main", id="leading slash under /legacy/"),
        pytest.param("rooms/main/", id="trailing slash"),
        pytest.param("rooms/main?unused=1", id="with a query string"),
    ],
)
def test_endpoint_forms_all_reach_the_same_handler(server: ServerProcess, endpoint: str) -> None:
    answer = onion_answer(server, inner_json(endpoint))
    assert answer == {"status_code": 200, "room": {"id": "main", "name": "Main"}}


def onion_v3_api_plaintext(server: ServerProcess, endpoint: str, path: str = ONION_PATH) -> bytes:
    """A v3-API request through an onion v3 envelope: outer 200, base64 of the sealed
    body; returns the opened plaintext."""
    blob, key = encrypt_onion_payload(server.public_key, inner_json(endpoint))
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30) as http:
        resp = http.post(path, content=blob)
    assert resp.status_code == 200, resp.text[:300]
    assert is_base64(resp.text), resp.text[:300]
    return decrypt_aes_gcm(key, base64.b64decode(resp.text, validate=True))


def test_a_leading_slash_is_the_v3_api_answered_with_its_body(server: ServerProcess) -> None:
    """docs/spec/SPEC-v3.md section 1: with a leading `/` an onion v3 endpoint is the v3
    API (pysogs' rule); a success is answered with the v3 body itself, sealed."""
    rooms = json.loads(onion_v3_api_plaintext(server, "/rooms"))
    assert isinstance(rooms, list), rooms
    assert DEFAULT_ROOM in [room["token"] for room in rooms], rooms
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30) as http:
        assert rooms == http.get("/rooms").json()
    v2 = onion_answer(server, inner_json("rooms"))
    assert v2["status_code"] == 200 and DEFAULT_ROOM in [r["id"] for r in v2["rooms"]], v2


def test_a_v3_api_refusal_through_onion_v3_is_its_bare_status(server: ServerProcess) -> None:
    plain = onion_v3_api_plaintext(server, "/room/no_such_room")
    assert json.loads(plain) == {"status_code": 404}, plain


@pytest.mark.parametrize("endpoint", ["rooms/main", "/room/main"])
def test_oxen_v3_lsrpc_is_the_same_onion_v3_endpoint(server: ServerProcess, endpoint: str) -> None:
    via_loki = json.loads(onion_v3_api_plaintext(server, endpoint))
    via_oxen = json.loads(onion_v3_api_plaintext(server, endpoint, "/oxen/v3/lsrpc"))
    assert via_oxen == via_loki
    assert via_loki.get("status_code", 200) == 200, via_loki


def test_query_string_of_the_endpoint_is_honoured(
    setup_client: Client, onion: Client, user: Persona
) -> None:
    ids = [
        setup_client.post_message(user.identity, user.token, user.room)["message"]["server_id"]
        for _ in range(3)
    ]
    after_first = onion.request(
        "GET", f"messages?from_server_id={ids[0]}", room=user.room, token=user.token
    )
    assert [m["server_id"] for m in after_first["messages"]] == ids[1:]
    limited = onion.request(
        "GET", f"messages?from_server_id={ids[0]}&limit=1", room=user.room, token=user.token
    )
    assert [m["server_id"] for m in limited["messages"]] == ids[1:2]


def test_challenge_public_key_comes_from_the_endpoint_query(onion: Client) -> None:
    identity = Identity.generate()
    token = onion.authenticate(identity, DEFAULT_ROOM)  # challenge + claim, all via onion
    answer = onion.request("GET", "member_count", room=DEFAULT_ROOM, token=token)
    assert answer["status_code"] == 200 and answer["member_count"] >= 1


NO_BODY = [
    pytest.param("", id='body "" (desktop)'),
    pytest.param("null", id='body "null" (Android, iOS)'),
    pytest.param(..., id="body absent"),
    pytest.param(None, id="body JSON null"),
]


@pytest.mark.parametrize("body", NO_BODY)
def test_get_accepts_every_empty_body_form(
    server: ServerProcess, user: Persona, body: object
) -> None:
    headers = {"Room": user.room, "Authorization": user.token}
    answer = onion_answer(server, inner_json("messages", "GET", body=body, headers=headers))
    assert answer["status_code"] == 200, answer
    assert isinstance(answer["messages"], list)


@pytest.mark.parametrize("body", NO_BODY)
def test_delete_accepts_every_empty_body_form(
    server: ServerProcess, setup_client: Client, user: Persona, body: object
) -> None:
    posted = setup_client.post_message(user.identity, user.token, user.room)
    server_id = posted["message"]["server_id"]
    headers = {"Room": user.room, "Authorization": user.token}
    answer = onion_answer(
        server, inner_json(f"messages/{server_id}", "DELETE", body=body, headers=headers)
    )
    assert answer == {"status_code": 200}
    remaining = setup_client.request("GET", "messages", room=user.room, token=user.token)
    assert server_id not in [m["server_id"] for m in remaining["messages"]]


@pytest.mark.parametrize(
    ("room_name", "auth_name"),
    [
        pytest.param("Room", "Authorization", id="as documented"),
        pytest.param("room", "authorization", id="lower case"),
        pytest.param("ROOM", "AUTHORIZATION", id="upper case"),
        pytest.param("rOoM", "aUtHoRiZaTiOn", id="mixed case"),
    ],
)
def test_header_names_are_case_insensitive(
    server: ServerProcess, user: Persona, room_name: str, auth_name: str
) -> None:
    headers = {room_name: user.room, auth_name: user.token}
    answer = onion_answer(server, inner_json("messages", headers=headers))
    assert answer["status_code"] == 200, answer


def test_numeric_room_header_from_android_is_accepted(
    server: ServerProcess, onion: Client, digit_room: str
) -> None:
    identity = Identity.generate()
    room_as_number = int(digit_room)
    challenge = onion.request(
        "GET",
        f"auth_token_challenge?public_key={identity.session_id}",
        headers={"Room": room_as_number},
    )
    assert challenge["status_code"] == 200, challenge
    token = decrypt_challenge(
        identity,
        challenge["challenge"]["ciphertext"],
        challenge["challenge"]["ephemeral_public_key"],
    )
    claim = onion.request(
        "POST",
        "claim_auth_token",
        body={"public_key": identity.session_id},
        headers={"Room": room_as_number, "Authorization": token},
    )
    assert claim == {"status_code": 200}
    posted = onion.request(
        "POST",
        "messages",
        body=signed_message(identity, encode_visible_message("from android")),
        headers={"Room": room_as_number, "Authorization": token},
    )
    assert posted["status_code"] == 200, posted
    messages = onion.request(
        "GET", "messages", headers={"Room": room_as_number, "Authorization": token}
    )
    assert [m["server_id"] for m in messages["messages"]] == [posted["message"]["server_id"]]
    # the room really is "12345", not some other room the number was mistaken for
    direct = server.client("http")
    with direct:
        same = direct.request("GET", "messages", room=digit_room, token=token)
    assert same["messages"] == messages["messages"]


def test_boolean_and_numeric_values_of_other_headers_are_accepted(
    server: ServerProcess, user: Persona
) -> None:
    headers: dict[str, object] = {
        "Room": user.room,
        "Authorization": user.token,
        "X-Is-Retry": True,
        "X-Flag": False,
        "X-Attempt": 3,
        "content-type": "application/json; charset=utf-8",
    }
    answer = onion_answer(server, inner_json("messages", headers=headers))
    assert answer["status_code"] == 200, answer


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"host": "sog.example.org", "target": ONION_PATH}, id="desktop https"),
        pytest.param(
            {
                "host": "1.2.3.4",
                "target": ONION_PATH,
                "method": "POST",
                "protocol": "http",
                "port": 80,
            },
            id="android/iOS http",
        ),
        pytest.param({"enc_type": "aes-gcm", "something_new": [1, {"a": None}]}, id="unknown"),
    ],
)
def test_unknown_metadata_fields_are_ignored(server: ServerProcess, extra: dict[str, Any]) -> None:
    answer = onion_answer(server, inner_json("rooms/main"), metadata_extra=extra)
    assert answer == {"status_code": 200, "room": {"id": "main", "name": "Main"}}


def test_uppercase_ephemeral_key_hex_is_accepted(server: ServerProcess) -> None:
    ciphertext, metadata, key = sealed_parts(server.public_key, inner_json("rooms/main"))
    upper = json.dumps({"ephemeral_key": json.loads(metadata)["ephemeral_key"].upper()})
    resp = post_onion(server, envelope(ciphertext, upper.encode()))
    assert resp.status_code == 200, resp.text[:300]
    assert decrypt_onion_response(key, resp.text)["status_code"] == 200


# --------------------------------------------------------------------------- broken envelopes


def _valid(pub: bytes) -> tuple[bytes, bytes]:
    ciphertext, metadata, _ = sealed_parts(pub, inner_json("rooms"))
    return ciphertext, metadata


def _with_ephemeral(pub: bytes, value: object) -> bytes:
    ciphertext, _ = _valid(pub)
    return envelope(ciphertext, json.dumps({"ephemeral_key": value}).encode())


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def _tampered(pub: bytes, index: int) -> bytes:
    ciphertext, metadata = _valid(pub)
    return envelope(_flip(ciphertext, index), metadata)


def _to_wrong_server(_pub: bytes) -> bytes:
    other = X25519PrivateKey.generate().public_key().public_bytes_raw()
    ciphertext, metadata = _valid(other)
    return envelope(ciphertext, metadata)


def _key_of_another_ephemeral(pub: bytes) -> bytes:
    ciphertext, _ = _valid(pub)
    stranger = X25519PrivateKey.generate().public_key().public_bytes_raw().hex()
    return envelope(ciphertext, json.dumps({"ephemeral_key": stranger}).encode())


BROKEN_ENVELOPES = [
    pytest.param(lambda pub: b"", id="empty body"),
    pytest.param(lambda pub: b"\x10\x00\x00", id="shorter than the length prefix"),
    pytest.param(lambda pub: b"\x00\x00\x00\x00", id="only a zero length prefix"),
    pytest.param(
        lambda pub: envelope(*_valid(pub), length=len(b"".join(_valid(pub))) + 1),
        id="length prefix larger than the body",
    ),
    pytest.param(lambda pub: envelope(*_valid(pub), length=0xFFFFFFFF), id="length prefix 2^32-1"),
    pytest.param(
        lambda pub: envelope(_valid(pub)[0][: IV_SIZE + TAG_SIZE - 1], _valid(pub)[1]),
        id="ciphertext shorter than IV+tag",
    ),
    pytest.param(lambda pub: envelope(b"", _valid(pub)[1]), id="empty ciphertext"),
    pytest.param(lambda pub: envelope(_valid(pub)[0], b""), id="no metadata"),
    pytest.param(lambda pub: envelope(_valid(pub)[0], b"ephemeral_key"), id="metadata not JSON"),
    pytest.param(lambda pub: envelope(_valid(pub)[0], b"\xff\xfe{}"), id="metadata not UTF-8"),
    pytest.param(lambda pub: envelope(_valid(pub)[0], b"[]"), id="metadata a JSON list"),
    pytest.param(
        lambda pub: envelope(_valid(pub)[0], b'{"host": "x", "target": "/loki/v3/lsrpc"}'),
        id="metadata without ephemeral_key",
    ),
    pytest.param(lambda pub: _with_ephemeral(pub, None), id="ephemeral_key null"),
    pytest.param(lambda pub: _with_ephemeral(pub, 12345), id="ephemeral_key a number"),
    pytest.param(lambda pub: _with_ephemeral(pub, "zz" * 32), id="ephemeral_key not hex"),
    pytest.param(lambda pub: _with_ephemeral(pub, "ab" * 31), id="ephemeral_key 62 hex"),
    pytest.param(lambda pub: _with_ephemeral(pub, "ab" * 33), id="ephemeral_key 66 hex"),
    pytest.param(
        lambda pub: _with_ephemeral(pub, base64.b64encode(b"\x01" * 32).decode()),
        id="ephemeral_key base64",
    ),
    pytest.param(lambda pub: _with_ephemeral(pub, "00" * 32), id="ephemeral_key low-order point"),
    pytest.param(_to_wrong_server, id="encrypted to another server's key"),
    pytest.param(_key_of_another_ephemeral, id="ephemeral_key of another key pair"),
    pytest.param(lambda pub: _tampered(pub, 0), id="tampered IV"),
    pytest.param(lambda pub: _tampered(pub, IV_SIZE + 3), id="tampered ciphertext"),
    pytest.param(lambda pub: _tampered(pub, -1), id="tampered tag"),
]


@pytest.mark.parametrize("make_blob", BROKEN_ENVELOPES)
def test_an_envelope_that_cannot_be_opened_is_a_plain_400(
    server: ServerProcess, make_blob: Callable[[bytes], bytes]
) -> None:
    assert_plain_400(post_onion(server, make_blob(server.public_key)))


def test_a_broken_envelope_does_not_disturb_the_next_request(server: ServerProcess) -> None:
    assert_plain_400(post_onion(server, _tampered(server.public_key, IV_SIZE)))
    assert onion_answer(server, inner_json("rooms"))["status_code"] == 200


def test_a_tampered_post_stores_nothing(
    server: ServerProcess, setup_client: Client, user: Persona
) -> None:
    before = message_count(setup_client, user)
    blob, key = message_blob(server, user)
    n = struct.unpack_from("<I", blob)[0]
    tampered = _flip(blob, 4 + n - 1)  # last byte of the tag
    assert_plain_400(post_onion(server, tampered))
    truncated_prefix = struct.pack("<I", n + 1000) + blob[4:]
    assert_plain_400(post_onion(server, truncated_prefix))
    assert message_count(setup_client, user) == before
    # the same envelope untouched is a valid post: the refusal was the tampering
    resp = post_onion(server, blob)
    assert resp.status_code == 200
    assert decrypt_onion_response(key, resp.text)["status_code"] == 200
    assert message_count(setup_client, user) == before + 1


# --------------------------------------------------------------------------- broken inner requests

BROKEN_INNER = [
    pytest.param(b"not json at all", id="not JSON"),
    pytest.param(b"", id="empty plaintext"),
    pytest.param(b"\xff\xfe\x00{", id="not UTF-8"),
    pytest.param(b'{"endpoint": "rooms", "method": "GET"', id="truncated JSON"),
    pytest.param(b"[]", id="a JSON list"),
    pytest.param(b'"rooms"', id="a JSON string"),
    pytest.param(b"42", id="a JSON number"),
    pytest.param(b"null", id="JSON null"),
    pytest.param(b'{"method": "GET", "body": "", "headers": {}}', id="no endpoint"),
    pytest.param(b'{"endpoint": "rooms", "body": "", "headers": {}}', id="no method"),
    pytest.param(b'{"endpoint": 5, "method": "GET", "headers": {}}', id="endpoint a number"),
    pytest.param(b'{"endpoint": "", "method": "GET", "headers": {}}', id="endpoint empty"),
    pytest.param(b'{"endpoint": "rooms", "method": 1, "headers": {}}', id="method a number"),
    pytest.param(b'{"endpoint": "rooms", "method": "GET", "headers": []}', id="headers a list"),
    pytest.param(
        b'{"endpoint": "rooms", "method": "GET", "headers": "Room: main"}', id="headers a string"
    ),
]


@pytest.mark.parametrize("plaintext", BROKEN_INNER)
def test_a_malformed_inner_request_is_an_encrypted_400(
    server: ServerProcess, plaintext: bytes
) -> None:
    expect_error(onion_answer(server, plaintext), 400)


# --------------------------------------------------------------------------- size limit


def test_a_body_over_10_mib_is_a_plain_413(server: ServerProcess) -> None:
    blob, _ = encrypt_onion_payload(server.public_key, inner_json("rooms"))
    oversized = blob + b" " * (ONION_LIMIT + 1 - len(blob))
    resp = post_onion(server, oversized)
    assert resp.status_code == 413
    assert not is_base64(resp.text)


def test_a_body_of_exactly_10_mib_is_served(server: ServerProcess) -> None:
    """Trailing whitespace after the metadata JSON is still valid JSON: pad to the limit."""
    blob, key = encrypt_onion_payload(server.public_key, inner_json("rooms/main"))
    exact = blob + b" " * (ONION_LIMIT - len(blob))
    assert len(exact) == ONION_LIMIT
    resp = post_onion(server, exact)
    assert resp.status_code == 200, resp.text[:300]
    assert decrypt_onion_response(key, resp.text)["status_code"] == 200


# --------------------------------------------------------------------------- HTTP manners


def _raw_post(server: ServerProcess, path: str, body: bytes, extra_headers: str = "") -> bytes:
    """A raw HTTP/1.1 POST with only Host and Content-Length (plus extra_headers)."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Length: {len(body)}\r\n{extra_headers}\r\n"
    ).encode() + body


def test_no_content_type_is_needed(server: ServerProcess) -> None:
    blob, key = encrypt_onion_payload(server.public_key, inner_json("rooms/main"))
    head, body = raw_http(server, _raw_post(server, ONION_PATH, blob, "Connection: close\r\n"))
    assert head.startswith(b"HTTP/1.1 200"), head
    assert decrypt_onion_response(key, body.decode())["status_code"] == 200


@pytest.mark.parametrize(
    "content_type",
    ["application/octet-stream", "application/json", "text/plain", "multipart/form-data"],
)
def test_any_content_type_is_accepted(server: ServerProcess, content_type: str) -> None:
    blob, key = encrypt_onion_payload(server.public_key, inner_json("rooms/main"))
    with httpx.Client(base_url=server.base_url, trust_env=False) as http:
        resp = http.post(ONION_PATH, content=blob, headers={"Content-Type": content_type})
    assert resp.status_code == 200
    assert decrypt_onion_response(key, resp.text)["status_code"] == 200


def _onion_ok(server: ServerProcess) -> bytes:
    blob, _ = encrypt_onion_payload(server.public_key, inner_json("rooms"))
    return _raw_post(server, ONION_PATH, blob, "Connection: close\r\n")


def _onion_refused(server: ServerProcess) -> bytes:
    return _raw_post(server, ONION_PATH, b"\x01\x02", "Connection: close\r\n")


def _direct_get(server: ServerProcess) -> bytes:
    host = f"127.0.0.1:{server.port}"
    return f"GET /rooms HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def _direct_error(server: ServerProcess) -> bytes:
    return _raw_post(server, "/no_such_endpoint", b"{}", "Connection: close\r\n")


@pytest.mark.parametrize(
    ("make_request", "status"),
    [
        pytest.param(_onion_ok, 200, id="onion answered"),
        pytest.param(_onion_refused, 400, id="onion refused"),
        pytest.param(_direct_get, 200, id="direct GET rooms"),
        pytest.param(_direct_error, 404, id="direct error"),
    ],
)
def test_connection_close_is_answered_in_kind_and_the_socket_closed(
    server: ServerProcess, make_request: Callable[[ServerProcess], bytes], status: int
) -> None:
    head, _ = raw_http(server, make_request(server))  # returns only once the server closed
    assert head.startswith(f"HTTP/1.1 {status}".encode()), head
    assert header_lines(head).get("connection", "").lower() == "close", head


@pytest.mark.parametrize("path", [ONION_PATH, "/rooms"])
def test_connection_close_reaches_httpx_too(server: ServerProcess, path: str) -> None:
    blob, _ = encrypt_onion_payload(server.public_key, inner_json("rooms"))
    with httpx.Client(base_url=server.base_url, trust_env=False) as http:
        if path == ONION_PATH:
            resp = http.post(path, content=blob, headers={"Connection": "close"})
        else:
            resp = http.get(path, headers={"Connection": "close"})
    assert resp.status_code == 200
    assert resp.headers.get("connection", "").lower() == "close"


def test_without_connection_close_the_connection_is_kept_alive(server: ServerProcess) -> None:
    blob, key = encrypt_onion_payload(server.public_key, inner_json("rooms"))
    request = _raw_post(server, ONION_PATH, blob)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for _ in range(2):  # two requests on one socket
            sock.sendall(request)
            status_line = reader.readline()
            assert status_line.startswith(b"HTTP/1.1 200"), status_line
            headers: dict[str, str] = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            assert headers.get("connection", "").lower() != "close"
            body = reader.read(int(headers["content-length"]))
            assert decrypt_onion_response(key, body.decode())["status_code"] == 200
