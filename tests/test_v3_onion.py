"""Onion requests v4 (`POST /oxen/v4/lsrpc`), what every current Session client sends,
and the community API through the older v3 onion endpoints.

docs/spec/SPEC-v3.md sections 1 (where v2 and v3 are reached: v4 carries the v3
API, and the v2 API under `/legacy/`; through `/loki/v3/lsrpc` and
`/oxen/v3/lsrpc` an endpoint with a leading `/` is a v3 request, answered the
v3-over-onion-v3 way) and 3 (content types exactly `application/json`,
`text/plain; charset=utf-8` or `application/octet-stream`, refusals included;
v4 answers are bencoded `l<n>:{"code","headers"}<n>:<body>e`, sealed, raw
bytes, HTTP 200); docs/spec/sogs-v3.md sections 3.1 to 3.3 (the envelope, the
ciphers, the v4 framing, the v3-over-v3 answer):

- the envelope is `u32le(N) | N bytes sealed | JSON {ephemeral_key, enc_type?,
  relay fields}`; `enc_type` `aes-gcm` (or `gcm`, or absent, as desktop) or
  `xchacha20` (or `xchacha20-poly1305`); the answer is sealed the same way;
- the outer answer of an envelope that opens is HTTP 200,
  `application/octet-stream`, the sealed bytes themselves (no base64), whatever
  the inner status; one that cannot be opened (short, not JSON, no ephemeral
  key, unknown cipher, sealed for another key) is a plain HTTP 400 in text;
- a request inside that is not a v4 request (not a bencoded list of one or two
  strings, metadata that is no JSON object, no method, an endpoint without `/`,
  headers that are no object) is answered, sealed, 400 text
  `Invalid v4 onion request: <why>` (pysogs: `Invalid v4 onion request`);
- header values may be strings, numbers, booleans or null (left out);
- `/legacy/...` through v4 is the v2 API with its JSON answers;
- through the v3 onion endpoints a v3 request answers the body of a 2xx, or
  `{"status_code": N}`, base64 of the sealed bytes.

Every test that uses `community` runs over direct HTTP and over onion v4 (here,
the v4 specifics are sent by hand; `community` checks the same answer directly).
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Callable
from typing import Any

import httpx
import pytest
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
    bencode_strings,
    build_onion_envelope,
    desktop_json,
    encode_v4_request,
    onion_decrypt,
    parse_v4_reply,
    relay_metadata,
    sogs_headers,
)
from harness.expect import expect_ok, expect_refused
from harness.flows import ROOM, message_body, posted, room_seqno
from harness.v2client import DEFAULT_ROOM, Persona

ALLOWED_CONTENT_TYPES = {CONTENT_JSON, CONTENT_TEXT, CONTENT_BINARY}
ONION_LIMIT = 10 * 1024 * 1024
OXEN_V3_PATH = "/oxen/v3/lsrpc"
CAPABILITIES = {"capabilities": ["blind", "reactions", "sogs"]}


# --------------------------------------------------------------------------- helpers


def seal(
    client: CommunityClient,
    plaintext: bytes,
    *,
    enc_type: EncType = "aes-gcm",
    enc_type_name: str | None = None,
    send_enc_type: bool = True,
    target: str = ONION_V4_PATH,
) -> tuple[bytes, OnionKey]:
    """An envelope as the last snode posts it; enc_type_name overrides the name sent."""
    relay: dict[str, object] = dict(relay_metadata(client.base_url, target))
    if enc_type_name is not None:
        relay["enc_type"] = enc_type_name
    return build_onion_envelope(
        client.server_pk, plaintext, enc_type=enc_type, relay=relay, send_enc_type=send_enc_type
    )


def send_v4(
    client: CommunityClient, plaintext: bytes, **options: Any
) -> tuple[httpx.Response, CommunityAnswer]:
    """Post a v4 envelope around ``plaintext``: the outer response, the opened answer."""
    envelope, key = seal(client, plaintext, **options)
    response = client.raw_onion(envelope)
    assert response.status_code == 200, response
    assert response.headers["content-type"] == CONTENT_BINARY
    return response, parse_v4_reply(onion_decrypt(key, response.content))


def v4(
    client: CommunityClient,
    method: str,
    endpoint: str,
    *,
    headers: dict[str, Any] | None = None,
    body: bytes = b"",
    **options: Any,
) -> CommunityAnswer:
    meta = json.dumps({"method": method, "endpoint": endpoint, "headers": headers or {}}).encode()
    return send_v4(client, bencode_strings([meta, body] if body else [meta]), **options)[1]


def v3_envelope(client: CommunityClient, inner: dict[str, Any], target: str) -> tuple[int, bytes]:
    """A v3 onion request: the outer status and the opened plaintext (or raw bytes)."""
    envelope, key = seal(client, desktop_json(inner), target=target)
    response = client.raw_onion(envelope, target=target)
    if response.status_code != 200:
        return response.status_code, response.content
    return 200, onion_decrypt(key, base64.b64decode(response.content, validate=True))


# --------------------------------------------------------------------------- the outer answer


def test_an_answer_is_http_200_with_the_sealed_bytes_themselves(
    community: CommunityClient,
) -> None:
    plaintext = encode_v4_request("GET", "/capabilities", {})

    response, answer = send_v4(community, plaintext)

    with pytest.raises(ValueError):
        base64.b64decode(response.content, validate=True)
    assert (answer.status, answer.content_type, answer.body) == (200, CONTENT_JSON, CAPABILITIES)
    assert answer.headers == {"content-type": CONTENT_JSON}
    assert answer.raw_body == community.get("/capabilities").raw_body


@pytest.mark.parametrize(
    ("endpoint", "status"),
    [
        pytest.param("/room/nosuch", 404, id="not-found"),
        pytest.param(f"{ROOM}/message", 401, id="unsigned-post"),
        pytest.param("/no/such/route", 404, id="no-route"),
    ],
)
def test_a_refusal_too_is_http_200_with_the_status_inside(
    community: CommunityClient, endpoint: str, status: int
) -> None:
    method = "POST" if endpoint.endswith("/message") else "GET"

    answer = v4(community, method, endpoint, body=b"{}" if method == "POST" else b"")

    direct = community.request(method, endpoint, json={} if method == "POST" else None)
    assert expect_refused(answer, status) == direct.body


def test_a_wrong_method_inside_is_an_encrypted_405(community: CommunityClient) -> None:
    answer = v4(community, "PATCH", ROOM)

    expect_refused(answer, 405)


@pytest.mark.parametrize(
    ("enc_type", "name", "send"),
    [
        pytest.param("aes-gcm", None, False, id="aes-gcm-unnamed-as-desktop"),
        pytest.param("aes-gcm", None, True, id="aes-gcm"),
        pytest.param("aes-gcm", "gcm", True, id="gcm"),
        pytest.param("xchacha20", None, True, id="xchacha20"),
        pytest.param("xchacha20", "xchacha20-poly1305", True, id="xchacha20-poly1305"),
    ],
)
def test_each_cipher_is_answered_under_the_same_cipher(
    community: CommunityClient,
    alice: BlindedIdentity,
    enc_type: EncType,
    name: str | None,
    send: bool,
) -> None:
    body = message_body(alice, community.server_pk)
    content = desktop_json(body)
    headers = sogs_headers(alice, community.server_pk, "POST", f"{ROOM}/message", content)
    plaintext = encode_v4_request("POST", f"{ROOM}/message", headers, content)

    _, answer = send_v4(
        community, plaintext, enc_type=enc_type, enc_type_name=name, send_enc_type=send
    )

    assert answer.status == 201
    assert answer.body["data"] == body["data"]


def test_a_signed_request_through_v4_is_answered_as_its_signer(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    stored = posted(community, alice)
    path = f"{ROOM}/message/{stored['id']}"
    headers = sogs_headers(alice, community.server_pk, "GET", path, b"")

    answer = v4(community, "GET", path, headers=headers, enc_type="xchacha20")

    assert answer.body == stored


def test_header_values_may_be_numbers_booleans_or_null(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    headers: dict[str, Any] = sogs_headers(alice, community.server_pk, "GET", "/capabilities", b"")
    headers.update({"X-Count": 5, "X-Flag": True, "X-Nothing": None, "X-Ratio": 1.5})

    answer = v4(community, "GET", "/capabilities", headers=headers)

    assert (answer.status, answer.body) == (200, CAPABILITIES)


def test_a_lower_case_method_is_accepted(community: CommunityClient) -> None:
    assert v4(community, "get", "/capabilities").body == CAPABILITIES


def test_a_json_body_needs_no_content_type(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    content = desktop_json(message_body(alice, community.server_pk))
    headers = sogs_headers(alice, community.server_pk, "POST", f"{ROOM}/message", content)

    answer = v4(community, "POST", f"{ROOM}/message", headers=headers, body=content)

    assert answer.status == 201


# --------------------------------------------------------------------------- malformed requests


def _meta(value: Any) -> bytes:
    return json.dumps(value).encode()


GOOD_META = _meta({"method": "GET", "endpoint": "/capabilities", "headers": {}})


@pytest.mark.parametrize(
    "plaintext",
    [
        pytest.param(b"garbage", id="not-bencode"),
        pytest.param(b"le", id="no-strings"),
        pytest.param(bencode_strings([GOOD_META, b"", b"x"]), id="three-strings"),
        pytest.param(bencode_strings([GOOD_META]) + b"x", id="bytes-after-the-list"),
        pytest.param(b"l999:" + GOOD_META + b"e", id="length-past-the-end"),
        pytest.param(b"l" + GOOD_META + b"e", id="no-length"),
        pytest.param(b"i5e", id="an-integer"),
        pytest.param(bencode_strings([b"{method"]), id="meta-not-json"),
        pytest.param(bencode_strings([_meta(["GET", "/capabilities"])]), id="meta-a-list"),
        pytest.param(bencode_strings([_meta({"endpoint": "/capabilities"})]), id="no-method"),
        pytest.param(bencode_strings([_meta({"method": "GET"})]), id="no-endpoint"),
        pytest.param(
            bencode_strings([_meta({"method": "GET", "endpoint": "capabilities"})]),
            id="endpoint-without-slash",
        ),
        pytest.param(
            bencode_strings(
                [_meta({"method": "GET", "endpoint": "/capabilities", "headers": ["a"]})]
            ),
            id="headers-a-list",
        ),
        pytest.param(
            bencode_strings([_meta({"method": 5, "endpoint": "/capabilities"})]),
            id="method-a-number",
        ),
    ],
)
def test_a_malformed_v4_request_is_answered_sealed_400_in_text(
    community: CommunityClient, plaintext: bytes
) -> None:
    _, answer = send_v4(community, plaintext)

    assert expect_refused(answer, 400).startswith("Invalid v4 onion request")


def test_a_malformed_post_stores_nothing(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    before = room_seqno(community)
    content = desktop_json(message_body(alice, community.server_pk))
    meta = _meta({"method": "POST", "endpoint": f"{ROOM}/message", "headers": ["a"]})

    _, answer = send_v4(community, bencode_strings([meta, content]))

    assert answer.status == 400
    assert room_seqno(community) == before


def _other_server_envelope(client: CommunityClient) -> bytes:
    other = CommunityClient(client.base_url, os.urandom(32), "http")
    try:
        return seal(other, encode_v4_request("GET", "/capabilities", {}))[0]
    finally:
        other.close()


def _with_metadata(client: CommunityClient, change: Callable[[dict[str, Any]], None]) -> bytes:
    envelope, _ = seal(client, encode_v4_request("GET", "/capabilities", {}))
    (size,) = struct.unpack_from("<I", envelope)
    metadata = json.loads(envelope[4 + size :])
    change(metadata)
    return envelope[: 4 + size] + json.dumps(metadata).encode()


def _truncated_ciphertext(client: CommunityClient) -> bytes:
    envelope, _ = seal(client, encode_v4_request("GET", "/capabilities", {}))
    (size,) = struct.unpack_from("<I", envelope)
    return struct.pack("<I", size - 1) + envelope[4 : 4 + size - 1] + envelope[4 + size :]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda c: b"", id="empty"),
        pytest.param(lambda c: b"\x05\x00", id="shorter-than-the-length"),
        pytest.param(lambda c: b"\x05\x00\x00\x00garbage{}", id="metadata-not-json"),
        pytest.param(lambda c: struct.pack("<I", 1000) + b"{}", id="length-past-the-end"),
        pytest.param(lambda c: struct.pack("<I", 0) + b"[]", id="metadata-a-list"),
        pytest.param(lambda c: _with_metadata(c, lambda m: m.pop("ephemeral_key")), id="no-key"),
        pytest.param(
            lambda c: _with_metadata(c, lambda m: m.update(ephemeral_key="zz" * 32)),
            id="key-not-hex",
        ),
        pytest.param(
            lambda c: _with_metadata(c, lambda m: m.update(ephemeral_key="ab" * 31)), id="key-short"
        ),
        pytest.param(
            lambda c: _with_metadata(c, lambda m: m.update(enc_type="rot13")), id="unknown-cipher"
        ),
        pytest.param(
            lambda c: _with_metadata(c, lambda m: m.update(enc_type="xchacha20")),
            id="cipher-named-wrongly",
        ),
        pytest.param(_other_server_envelope, id="sealed-for-another-key"),
        pytest.param(_truncated_ciphertext, id="truncated-ciphertext"),
    ],
)
def test_an_envelope_that_cannot_be_opened_is_a_plain_http_400(
    community: CommunityClient, make: Callable[[CommunityClient], bytes]
) -> None:
    response = community.raw_onion(make(community))

    assert response.status_code == 400
    assert response.headers["content-type"] == CONTENT_TEXT
    assert response.text


def test_an_envelope_over_10_mib_is_a_plain_413(community: CommunityClient) -> None:
    response = community.raw_onion(b"\x00" * (ONION_LIMIT + 1))

    assert response.status_code == 413
    assert response.headers["content-type"] == CONTENT_TEXT


def test_the_v4_endpoint_takes_only_post(community: CommunityClient) -> None:
    assert community.http.get(ONION_V4_PATH).status_code == 405


# --------------------------------------------------------------------------- the v2 API through v4


def test_legacy_endpoints_through_v4_reach_the_v2_api(community: CommunityClient) -> None:
    rooms = v4(community, "GET", "/legacy/rooms")
    room = v4(community, "GET", f"/legacy/rooms/{DEFAULT_ROOM}")
    unknown = v4(community, "GET", "/legacy/rooms/nosuch")

    assert (rooms.status, rooms.content_type) == (200, CONTENT_JSON)
    assert rooms.body["status_code"] == 200
    assert DEFAULT_ROOM in [r["id"] for r in rooms.body["rooms"]]
    assert room.body["room"]["id"] == DEFAULT_ROOM
    assert (unknown.status, unknown.content_type) == (404, CONTENT_JSON)
    assert unknown.body["status_code"] == 404


def test_a_v2_token_works_through_v4_under_legacy(
    community: CommunityClient, user: Persona
) -> None:
    headers = {"Room": DEFAULT_ROOM, "Authorization": user.token}

    answer = v4(community, "GET", "/legacy/messages?limit=1", headers=headers)
    unauthorised = v4(community, "GET", "/legacy/messages?limit=1", headers={"Room": DEFAULT_ROOM})

    assert (answer.status, answer.body["status_code"]) == (200, 200)
    assert isinstance(answer.body["messages"], list)
    assert unauthorised.status == unauthorised.body["status_code"] != 200


# --------------------------------------------------------------------------- v3 through onion v3


def test_a_v3_request_through_onion_v3_answers_the_body_of_a_success(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    body = message_body(alice, community.server_pk)

    capabilities = community.onion_v3("GET", "/capabilities")
    stored = community.onion_v3("POST", f"{ROOM}/message", identity=alice, json=body)

    assert (capabilities.http_status, capabilities.json()) == (200, CAPABILITIES)
    assert stored.http_status == 200
    message = stored.json()
    assert message["data"] == body["data"]
    assert message == expect_ok(community.get(f"{ROOM}/message/{message['id']}"))


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/room/nosuch", 404, id="not-found"),
        pytest.param("POST", f"{ROOM}/message", 401, id="unsigned"),
        pytest.param("GET", f"{ROOM}/pollInfo/x", 400, id="bad-request"),
    ],
)
def test_a_v3_refusal_through_onion_v3_is_its_bare_status(
    community: CommunityClient, method: str, path: str, status: int
) -> None:
    reply = community.onion_v3(method, path, json={} if method == "POST" else None)

    assert (reply.http_status, reply.json()) == (200, {"status_code": status})


def test_an_endpoint_without_a_slash_through_onion_v3_is_still_v2(
    community: CommunityClient,
) -> None:
    reply = community.onion_v3("GET", "rooms")

    answer = reply.json()
    assert answer["status_code"] == 200
    assert DEFAULT_ROOM in [r["id"] for r in answer["rooms"]]


@pytest.mark.parametrize("target", [ONION_V3_PATH, OXEN_V3_PATH])
def test_oxen_v3_lsrpc_works_like_loki_v3_lsrpc(
    community: CommunityClient, alice: BlindedIdentity, target: str
) -> None:
    headers = sogs_headers(alice, community.server_pk, "GET", ROOM, b"")

    v3_status, v3_body = v3_envelope(
        community, {"endpoint": ROOM, "method": "GET", "headers": headers}, target
    )
    v2_status, v2_body = v3_envelope(
        community, {"endpoint": f"rooms/{DEFAULT_ROOM}", "method": "GET", "body": ""}, target
    )

    assert v3_status == v2_status == 200
    assert json.loads(v3_body)["token"] == DEFAULT_ROOM
    assert json.loads(v2_body)["room"]["id"] == DEFAULT_ROOM


# --------------------------------------------------------------------------- content types


def test_every_answer_has_one_of_the_three_content_types(
    community: CommunityClient,
    alice: BlindedIdentity,
    room_moderator: BlindedIdentity,
) -> None:
    stored = posted(community, alice)
    requests: list[tuple[str, str, BlindedIdentity | None, Any]] = [
        ("GET", "/capabilities", None, None),
        ("GET", "/capabilities?required=x", None, None),
        ("GET", "/rooms", alice, None),
        ("GET", ROOM, alice, None),
        ("GET", f"{ROOM}/pollInfo/0", alice, None),
        ("GET", f"{ROOM}/messages/recent", None, None),
        ("GET", f"{ROOM}/messages/since/0?t=r", alice, None),
        ("GET", f"{ROOM}/message/{stored['id']}", alice, None),
        ("PUT", f"{ROOM}/reaction/{stored['id']}/👍", alice, None),
        ("GET", f"{ROOM}/reactors/{stored['id']}/👍", alice, None),
        ("DELETE", f"{ROOM}/reactions/{stored['id']}", room_moderator, None),
        ("POST", "/batch", alice, [{"method": "GET", "path": "/room/nosuch"}]),
        ("GET", "/room/nosuch", alice, None),
        ("GET", "/nowhere", None, None),
        ("PATCH", ROOM, None, None),
        ("POST", f"{ROOM}/message", None, {}),
        ("POST", f"{ROOM}/message", alice, {"data": "x"}),
        ("POST", f"{ROOM}/pin/{stored['id']}", alice, {}),
        ("POST", "/batch", alice, [{}] * 65),
        ("GET", f"{ROOM}/messages/recent?limit=0", None, None),
        ("DELETE", f"{ROOM}/message/{stored['id']}", alice, None),
    ]
    seen: set[str] = set()

    for method, path, identity, body in requests:
        answer = community.request(method, path, identity=identity, json=body)
        assert answer.content_type in ALLOWED_CONTENT_TYPES, (method, path, answer)
        if answer.status >= 400 and answer.status != 412:  # 412: capabilities, as JSON
            assert answer.content_type == CONTENT_TEXT, (method, path, answer)
        seen.add(answer.content_type)

    assert seen == {CONTENT_JSON, CONTENT_TEXT}


def test_a_refused_signature_through_v4_answers_plain_text(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    headers = sogs_headers(alice, community.server_pk, "GET", "/elsewhere", b"")

    answer = v4(community, "GET", "/capabilities", headers=headers)

    expect_refused(answer, 401, "Invalid authentication: X-SOGS-Signature verification failed")
