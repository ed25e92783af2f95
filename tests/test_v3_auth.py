"""Signed requests of the community API: the four X-SOGS-* headers, and each refusal.

docs/spec/SPEC-v3.md section 2 (identities and authentication) and
docs/spec/sogs-v3.md section 2 (the signed message, the header formats, the
order of the checks); the refusal texts are pysogs' own, word for word
(/tmp/peer/answers.md, "Auth errors"), as plain text:

- no headers at all: anonymous; a route that needs a user then answers 401
  `X-SOGS-* request authentication required`;
- some but not all four (an empty value counts as missing): 400
  `Invalid authentication headers: missing N/4 required X-SOGS-* headers`;
- `X-SOGS-Pubkey`: 66 hex digits (400 `... is not a valid 66-hex digit id`),
  prefixed `15` (blinded) or `00` (400 `... must be 00- or 15- prefixed`, also
  for `05` and `25`), a canonical point of the prime-order group (400 `given
  X-SOGS-Pubkey is not a valid Ed25519 pubkey`: the identity, a low-order
  point, a non-canonical encoding);
- `X-SOGS-Nonce`: 16 bytes as hex or base64, padded or not (400 otherwise);
- `X-SOGS-Signature`: 64 bytes as base64 or hex (400 `... is not base64[88]`),
  over `server X25519 key | nonce | timestamp | METHOD | decoded path [? raw
  query] | BLAKE2b-512(body)`; anything else signed (another path, method,
  query or body, another key) is 401 `... verification failed`;
- `X-SOGS-Timestamp`: decimal seconds (400 otherwise; milliseconds are refused
  as malformed, 400, where pysogs answers 425), within 24 h of the server's
  time either way (425 beyond);
- a nonce is accepted once with its timestamp, whoever signs, and never again, not
  even after a restart (425 `... cannot be reused`); signed at another second it is
  another request (the signature covers both), accepted; a request refused for its
  signature does not use it up;
- a `00` (unblinded) key: 400 with exactly `Invalid authentication: this
  server requires the use of blinded ids` on every route, unless the server
  runs with `require_blinded_ids = false` (then the capabilities lack `blind`
  and such a poster's `session_id` is their `05` Session id);
- the path is signed percent-decoded (a reaction's emoji raw or encoded), the
  query as sent.

Every test that uses `community` runs over direct HTTP and over onion v4.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness.communityclient import (
    BlindedIdentity,
    CommunityAnswer,
    CommunityClient,
    Transport,
    desktop_json,
    sogs_headers,
)
from harness.expect import expect_ok, expect_refused
from harness.flows import (
    AUTH_REQUIRED,
    BLINDING_REQUIRED,
    ROOM,
    b64,
    message_body,
    posted,
    room_seqno,
    start_server,
)
from harness.server import Backend, ServerProcess

DAY = 24 * 3600
HEADER_NAMES = ("X-SOGS-Pubkey", "X-SOGS-Nonce", "X-SOGS-Timestamp", "X-SOGS-Signature")
RECENT = f"{ROOM}/messages/recent"

BAD_PUBKEY_FORMAT = "Invalid authentication: X-SOGS-Pubkey is not a valid 66-hex digit id"
BAD_PUBKEY_PREFIX = "Invalid authentication: X-SOGS-Pubkey must be 00- or 15- prefixed"
BAD_POINT = "Invalid authentication: given X-SOGS-Pubkey is not a valid Ed25519 pubkey"
BAD_NONCE = "Invalid authentication: X-SOGS-Nonce must be 16 bytes (encoded as base64 or hex)"
BAD_SIGNATURE_FORMAT = "Invalid authentication: X-SOGS-Signature is not base64[88]"
BAD_TIMESTAMP = "Invalid authentication: X-SOGS-Timestamp is not a valid timestamp"
TIMESTAMP_OFF = "Invalid authentication: X-SOGS-Timestamp is too far from current time"
NONCE_REUSED = "Invalid authentication: X-SOGS-Nonce cannot be reused"
SIGNATURE_FAILED = "Invalid authentication: X-SOGS-Signature verification failed"

# Ed25519 encodings that are no key anyone can sign with (the y coordinate, little-endian,
# sign of x in the top bit).
IDENTITY_POINT = "01" + "00" * 31
ORDER_8_POINT = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
ORDER_2_POINT = "ec" + "ff" * 30 + "7f"  # y = -1
NON_CANONICAL_Y = "ee" + "ff" * 30 + "7f"  # y = p + 1: the identity written with y >= p
NEGATIVE_ZERO_X = "01" + "00" * 30 + "80"  # the identity with the sign bit of x = 0 set


# --------------------------------------------------------------------------- helpers


def signed_headers(
    client: CommunityClient,
    identity: BlindedIdentity,
    method: str = "GET",
    path: str = RECENT,
    body: bytes = b"",
    **options: Any,
) -> dict[str, str]:
    """The four headers a client sends for this request (options: nonce, timestamp,
    blinded)."""
    return sogs_headers(identity, client.server_pk, method, path, body, **options)


def get_with(
    client: CommunityClient, headers: dict[str, str], path: str = RECENT
) -> CommunityAnswer:
    """GET path carrying exactly these X-SOGS headers (the client adds none)."""
    return client.get(path, headers=headers)


def flip_bit(b64_text: str) -> str:
    raw = bytearray(base64.b64decode(b64_text))
    raw[7] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def unblinded_server(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[ServerProcess]:
    """A server that lets people sign with their plain Ed25519 ("00") key."""
    yield from start_server(tmp_path_factory, backend, {"OPENGROUP_REQUIRE_BLINDED_IDS": "false"})


@pytest.fixture(params=["http", "onion"], ids=["http", "onion4"])
def unblinded(
    request: pytest.FixtureRequest, unblinded_server: ServerProcess
) -> Iterator[CommunityClient]:
    """A client of unblinded_server, over each transport."""
    with CommunityClient(
        unblinded_server.base_url, unblinded_server.public_key, request.param
    ) as client:
        yield client


# --------------------------------------------------------------------------- who must sign


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("POST", f"{ROOM}/message", id="post-message"),
        pytest.param("PUT", f"{ROOM}/message/1", id="edit-message"),
        pytest.param("DELETE", f"{ROOM}/message/1", id="delete-message"),
        pytest.param("PUT", f"{ROOM}/reaction/1/👍", id="react"),
        pytest.param("DELETE", f"{ROOM}/reaction/1/👍", id="unreact"),
        pytest.param("PUT", ROOM, id="update-room"),
        pytest.param("POST", f"{ROOM}/pin/1", id="pin"),
    ],
)
def test_an_unsigned_request_to_a_route_for_users_is_401_with_pysogs_text(
    community: CommunityClient, method: str, path: str
) -> None:
    answer = community.request(method, path, json={})

    expect_refused(answer, 401, AUTH_REQUIRED)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/capabilities", id="capabilities"),
        pytest.param("/rooms", id="rooms"),
        pytest.param(ROOM, id="room"),
        pytest.param(RECENT, id="recent"),
        pytest.param(f"{ROOM}/pollInfo/0", id="poll-info"),
    ],
)
def test_an_unsigned_request_to_a_public_route_is_answered_anonymously(
    community: CommunityClient, path: str
) -> None:
    expect_ok(community.get(path))


def test_a_signed_request_is_answered_as_its_signer(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    message = posted(community, alice)

    assert message["session_id"] == alice.blinded_id(community.server_pk)


def test_a_bad_signature_is_refused_even_where_no_signature_is_needed(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    headers = signed_headers(community, alice, path="/capabilities")
    headers["X-SOGS-Signature"] = flip_bit(headers["X-SOGS-Signature"])

    expect_refused(get_with(community, headers, "/capabilities"), 401, SIGNATURE_FAILED)


# --------------------------------------------------------------------------- the headers' presence


@pytest.mark.parametrize(
    "left_out",
    [pytest.param((name,), id=f"without-{name[7:].lower()}") for name in HEADER_NAMES]
    + [
        pytest.param(HEADER_NAMES[:2], id="without-two"),
        pytest.param(HEADER_NAMES[1:], id="pubkey-only"),
    ],
)
def test_a_partial_set_of_headers_is_400_counting_the_missing_ones(
    community: CommunityClient, alice: BlindedIdentity, left_out: tuple[str, ...]
) -> None:
    headers = signed_headers(community, alice)
    for name in left_out:
        del headers[name]

    answer = get_with(community, headers)

    expect_refused(
        answer,
        400,
        f"Invalid authentication headers: missing {len(left_out)}/4 required X-SOGS-* headers",
    )


def test_an_empty_header_counts_as_missing(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    headers = signed_headers(community, alice)
    headers["X-SOGS-Nonce"] = ""

    answer = get_with(community, headers)

    expect_refused(
        answer, 400, "Invalid authentication headers: missing 1/4 required X-SOGS-* headers"
    )


def test_header_names_are_matched_without_regard_to_case(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    headers = {name.lower(): value for name, value in signed_headers(community, alice).items()}

    expect_ok(get_with(community, headers))


# --------------------------------------------------------------------------- X-SOGS-Pubkey


def _blinded_hex(client: CommunityClient, identity: BlindedIdentity) -> str:
    return identity.blinded_id(client.server_pk)[2:]


@pytest.mark.parametrize(
    ("make_pubkey", "text"),
    [
        pytest.param(lambda key: "15" + key[:-2], BAD_PUBKEY_FORMAT, id="64-hex-digits"),
        pytest.param(lambda key: "15" + key + "00", BAD_PUBKEY_FORMAT, id="68-hex-digits"),
        pytest.param(lambda key: "15" + "zz" + key[2:], BAD_PUBKEY_FORMAT, id="not-hex"),
        pytest.param(lambda key: "05" + key, BAD_PUBKEY_PREFIX, id="prefix-05"),
        pytest.param(lambda key: "25" + key, BAD_PUBKEY_PREFIX, id="prefix-25"),
        pytest.param(lambda key: "ff" + key, BAD_PUBKEY_PREFIX, id="prefix-ff"),
        pytest.param(lambda key: "15" + IDENTITY_POINT, BAD_POINT, id="identity-point"),
        pytest.param(lambda key: "15" + ORDER_8_POINT, BAD_POINT, id="order-8-point"),
        pytest.param(lambda key: "15" + ORDER_2_POINT, BAD_POINT, id="order-2-point"),
        pytest.param(lambda key: "15" + NON_CANONICAL_Y, BAD_POINT, id="non-canonical-y"),
        pytest.param(lambda key: "15" + NEGATIVE_ZERO_X, BAD_POINT, id="non-canonical-sign"),
    ],
)
def test_a_pubkey_that_is_no_blinded_key_is_400_with_pysogs_text(
    community: CommunityClient,
    alice: BlindedIdentity,
    make_pubkey: Callable[[str], str],
    text: str,
) -> None:
    headers = signed_headers(community, alice)
    headers["X-SOGS-Pubkey"] = make_pubkey(_blinded_hex(community, alice))

    expect_refused(get_with(community, headers), 400, text)


def test_a_pubkey_in_upper_case_hex_is_the_same_key(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    body = message_body(alice, community.server_pk)
    content = desktop_json(body)
    headers = signed_headers(community, alice, "POST", f"{ROOM}/message", content)
    headers["X-SOGS-Pubkey"] = headers["X-SOGS-Pubkey"].upper()

    answer = community.post(f"{ROOM}/message", body, headers=headers)

    assert expect_ok(answer, 201)["session_id"] == alice.blinded_id(community.server_pk)


def test_a_valid_key_of_someone_else_is_401(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    headers = signed_headers(community, alice)
    headers["X-SOGS-Pubkey"] = bob.blinded_id(community.server_pk)

    expect_refused(get_with(community, headers), 401, SIGNATURE_FAILED)


# --------------------------------------------------------------------------- X-SOGS-Nonce


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda nonce: base64.b64encode(nonce).decode(), id="base64"),
        pytest.param(lambda nonce: base64.b64encode(nonce).decode().rstrip("="), id="unpadded"),
        pytest.param(lambda nonce: nonce.hex(), id="hex"),
        pytest.param(lambda nonce: nonce.hex().upper(), id="upper-hex"),
    ],
)
def test_a_well_formed_nonce_is_accepted_in_hex_or_base64(
    community: CommunityClient, alice: BlindedIdentity, encode: Callable[[bytes], str]
) -> None:
    nonce = os.urandom(16)
    headers = signed_headers(community, alice, nonce=nonce)
    headers["X-SOGS-Nonce"] = encode(nonce)

    expect_ok(get_with(community, headers))


@pytest.mark.parametrize(
    "nonce_text",
    [
        pytest.param(base64.b64encode(os.urandom(15)).decode(), id="15-bytes-base64"),
        pytest.param(base64.b64encode(os.urandom(17)).decode(), id="17-bytes-base64"),
        pytest.param(os.urandom(15).hex(), id="15-bytes-hex"),
        pytest.param(os.urandom(24).hex(), id="24-bytes-hex"),
        pytest.param("!" * 24, id="not-base64"),
    ],
)
def test_a_nonce_that_is_not_16_bytes_is_400(
    community: CommunityClient, alice: BlindedIdentity, nonce_text: str
) -> None:
    headers = signed_headers(community, alice)
    headers["X-SOGS-Nonce"] = nonce_text

    expect_refused(get_with(community, headers), 400, BAD_NONCE)


# --------------------------------------------------------------------------- X-SOGS-Signature


@pytest.mark.parametrize(
    "reencode",
    [
        pytest.param(lambda sig: sig.hex(), id="hex"),
        pytest.param(lambda sig: base64.b64encode(sig).decode().rstrip("="), id="unpadded"),
    ],
)
def test_a_signature_is_accepted_as_hex_or_unpadded_base64(
    community: CommunityClient, alice: BlindedIdentity, reencode: Callable[[bytes], str]
) -> None:
    headers = signed_headers(community, alice)
    headers["X-SOGS-Signature"] = reencode(base64.b64decode(headers["X-SOGS-Signature"]))

    expect_ok(get_with(community, headers))


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda sig: base64.b64encode(sig[:32]).decode(), id="32-bytes"),
        pytest.param(lambda sig: base64.b64encode(sig[:63]).decode(), id="63-bytes"),
        pytest.param(lambda sig: base64.b64encode(sig + b"\x00").decode(), id="65-bytes"),
        pytest.param(lambda sig: sig.hex()[:-2], id="63-bytes-hex"),
        pytest.param(lambda sig: "*" * 88, id="not-base64"),
    ],
)
def test_a_signature_that_is_not_64_bytes_is_400(
    community: CommunityClient, alice: BlindedIdentity, cut: Callable[[bytes], str]
) -> None:
    headers = signed_headers(community, alice)
    headers["X-SOGS-Signature"] = cut(base64.b64decode(headers["X-SOGS-Signature"]))

    expect_refused(get_with(community, headers), 400, BAD_SIGNATURE_FORMAT)


def test_a_signature_with_one_bit_changed_is_401(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    headers = signed_headers(community, alice)
    headers["X-SOGS-Signature"] = flip_bit(headers["X-SOGS-Signature"])

    expect_refused(get_with(community, headers), 401, SIGNATURE_FAILED)


@pytest.mark.parametrize(
    ("signed_method", "signed_path"),
    [
        pytest.param("GET", f"{ROOM}/messages/since/0", id="another-path"),
        pytest.param("POST", RECENT, id="another-method"),
        pytest.param("GET", f"{RECENT}?limit=5", id="a-query-not-sent"),
        pytest.param("GET", "/room/other/messages/recent", id="another-room"),
    ],
)
def test_a_signature_over_another_request_is_401(
    community: CommunityClient, alice: BlindedIdentity, signed_method: str, signed_path: str
) -> None:
    headers = signed_headers(community, alice, signed_method, signed_path)

    expect_refused(get_with(community, headers, RECENT), 401, SIGNATURE_FAILED)


def test_a_query_other_than_the_one_signed_is_401(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    headers = signed_headers(community, alice, path=f"{RECENT}?limit=5")

    expect_refused(get_with(community, headers, f"{RECENT}?limit=6"), 401, SIGNATURE_FAILED)


def test_a_signature_for_another_server_is_401(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    other_server = os.urandom(32)
    headers = sogs_headers(alice, other_server, "GET", RECENT, b"")
    headers["X-SOGS-Pubkey"] = alice.blinded_id(community.server_pk)

    expect_refused(get_with(community, headers), 401, SIGNATURE_FAILED)


def test_a_body_other_than_the_one_signed_is_401_and_nothing_is_posted(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    before = room_seqno(community)
    signed_body = message_body(alice, community.server_pk)
    sent_body = message_body(alice, community.server_pk)
    headers = signed_headers(community, alice, "POST", f"{ROOM}/message", desktop_json(signed_body))

    answer = community.post(f"{ROOM}/message", sent_body, headers=headers)

    expect_refused(answer, 401, SIGNATURE_FAILED)
    assert room_seqno(community) == before


def test_a_body_sent_with_a_signature_made_without_it_is_401(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    headers = signed_headers(community, alice, "POST", f"{ROOM}/message", b"")

    answer = community.post(
        f"{ROOM}/message", message_body(alice, community.server_pk), headers=headers
    )

    expect_refused(answer, 401, SIGNATURE_FAILED)


# --------------------------------------------------------------------------- X-SOGS-Timestamp


@pytest.mark.parametrize(
    "offset",
    [
        pytest.param(-(DAY + 120), id="a-day-and-2-minutes-ago"),
        pytest.param(DAY + 120, id="a-day-and-2-minutes-ahead"),
        pytest.param(-30 * DAY, id="a-month-ago"),
        pytest.param(-int(time.time()), id="zero"),
    ],
)
def test_a_timestamp_more_than_a_day_off_is_425(
    community: CommunityClient, alice: BlindedIdentity, offset: int
) -> None:
    headers = signed_headers(community, alice, timestamp=int(time.time()) + offset)

    expect_refused(get_with(community, headers), 425, TIMESTAMP_OFF)


@pytest.mark.parametrize(
    "offset",
    [
        pytest.param(-(DAY - 600), id="23-hours-50-ago"),
        pytest.param(DAY - 600, id="23-hours-50-ahead"),
        pytest.param(-60, id="a-minute-ago"),
    ],
)
def test_a_timestamp_within_a_day_either_way_is_accepted(
    community: CommunityClient, alice: BlindedIdentity, offset: int
) -> None:
    headers = signed_headers(community, alice, timestamp=int(time.time()) + offset)

    expect_ok(get_with(community, headers))


@pytest.mark.parametrize(
    "timestamp_text",
    [
        pytest.param("soon", id="word"),
        pytest.param("-5", id="negative"),
        pytest.param("1.5e9", id="float"),
        pytest.param(str(int(time.time() * 1000)), id="milliseconds"),
    ],
)
def test_a_timestamp_that_is_not_decimal_seconds_is_400(
    community: CommunityClient, alice: BlindedIdentity, timestamp_text: str
) -> None:
    headers = signed_headers(community, alice)
    headers["X-SOGS-Timestamp"] = timestamp_text

    expect_refused(get_with(community, headers), 400, BAD_TIMESTAMP)


# --------------------------------------------------------------------------- replays


def test_a_replayed_request_is_425_and_stores_nothing_more(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    body = message_body(alice, community.server_pk)
    headers = signed_headers(community, alice, "POST", f"{ROOM}/message", desktop_json(body))
    first = community.post(f"{ROOM}/message", body, headers=headers)
    assert first.status == 201, first
    after_first = room_seqno(community)

    replay = community.post(f"{ROOM}/message", body, headers=headers)

    expect_refused(replay, 425, NONCE_REUSED)
    assert room_seqno(community) == after_first


def test_a_nonce_used_by_one_user_is_refused_to_another(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    nonce, now = os.urandom(16), int(time.time())
    expect_ok(get_with(community, signed_headers(community, alice, nonce=nonce, timestamp=now)))

    answer = get_with(community, signed_headers(community, bob, nonce=nonce, timestamp=now))

    expect_refused(answer, 425, NONCE_REUSED)


def test_a_nonce_is_refused_in_another_request_too(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    nonce, now = os.urandom(16), int(time.time())
    expect_ok(get_with(community, signed_headers(community, alice, nonce=nonce, timestamp=now)))

    answer = get_with(
        community,
        signed_headers(community, alice, path=ROOM, nonce=nonce, timestamp=now),
        path=ROOM,
    )

    expect_refused(answer, 425, NONCE_REUSED)


def test_a_nonce_signed_at_another_second_is_another_request(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    """The server keeps each nonce with its request's time (so that a day of them is
    stored and pruned in the order of time); the signature covers both, so only the
    signer can make such a request, and a replay always carries both unchanged."""
    nonce, now = os.urandom(16), int(time.time())
    expect_ok(get_with(community, signed_headers(community, alice, nonce=nonce, timestamp=now)))

    answer = get_with(community, signed_headers(community, alice, nonce=nonce, timestamp=now - 1))

    expect_ok(answer)


def test_a_request_refused_for_its_signature_does_not_use_up_its_nonce(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    nonce = os.urandom(16)
    forged = signed_headers(community, alice, nonce=nonce)
    forged["X-SOGS-Signature"] = flip_bit(forged["X-SOGS-Signature"])
    expect_refused(get_with(community, forged), 401, SIGNATURE_FAILED)

    expect_ok(get_with(community, signed_headers(community, alice, nonce=nonce)))


@pytest.mark.parametrize("transport", ["http", "onion"], ids=["http", "onion4"])
def test_a_nonce_stays_used_after_a_restart(
    server_factory: Callable[..., ServerProcess], transport: Transport
) -> None:
    alice = BlindedIdentity.generate()
    srv = server_factory()
    with CommunityClient(srv.base_url, srv.public_key, transport) as client:
        headers = signed_headers(client, alice)
        expect_ok(get_with(client, headers))
        srv.restart()

        expect_refused(get_with(client, headers), 425, NONCE_REUSED)
        expect_ok(get_with(client, signed_headers(client, alice)))


# --------------------------------------------------------------------------- unblinded keys


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/capabilities", id="capabilities"),
        pytest.param("GET", ROOM, id="room"),
        pytest.param("GET", RECENT, id="recent"),
        pytest.param("POST", f"{ROOM}/message", id="post"),
    ],
)
def test_an_unblinded_key_is_400_with_the_text_clients_look_for(
    community: CommunityClient, alice: BlindedIdentity, method: str, path: str
) -> None:
    body = message_body(alice, community.server_pk, blinded=False) if method == "POST" else None

    answer = community.request(method, path, identity=alice, json=body, blinded=False)

    expect_refused(answer, 400, BLINDING_REQUIRED)


def test_capabilities_say_blind_by_default(community: CommunityClient) -> None:
    assert expect_ok(community.get("/capabilities")) == {
        "capabilities": ["blind", "reactions", "sogs"]
    }


def test_without_required_blinding_capabilities_lack_blind(unblinded: CommunityClient) -> None:
    assert expect_ok(unblinded.get("/capabilities")) == {"capabilities": ["reactions", "sogs"]}


def test_without_required_blinding_an_unblinded_poster_is_their_session_id(
    unblinded: CommunityClient, alice: BlindedIdentity
) -> None:
    message = posted(unblinded, alice, blinded=False)

    assert message["session_id"] == alice.session_id
    seen = expect_ok(
        unblinded.get(f"{ROOM}/message/{message['id']}", identity=alice, blinded=False)
    )
    assert seen["session_id"] == alice.session_id
    assert seen["signature"] == message["signature"]


def test_without_required_blinding_blinded_keys_still_sign_in(
    unblinded: CommunityClient, alice: BlindedIdentity
) -> None:
    message = posted(unblinded, alice)

    assert message["session_id"] == alice.blinded_id(unblinded.server_pk)


def test_without_required_blinding_an_unblinded_post_signed_by_another_key_is_400(
    unblinded: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    before = room_seqno(unblinded)
    data = os.urandom(40)
    body = {"data": b64(data), "signature": b64(bob.sign_xeddsa(data))}

    answer = unblinded.post(f"{ROOM}/message", body, identity=alice, blinded=False)

    expect_refused(answer, 400)
    assert room_seqno(unblinded) == before


# --------------------------------------------------------------------------- the signed path


@pytest.mark.parametrize(
    "emoji_path",
    [
        pytest.param("👍", id="raw-utf8"),
        pytest.param("%F0%9F%91%8D", id="percent-encoded"),
        pytest.param("%f0%9f%91%8d", id="lower-case-percent-encoded"),
    ],
)
def test_a_reaction_path_is_signed_decoded_however_it_is_sent(
    community: CommunityClient, alice: BlindedIdentity, emoji_path: str
) -> None:
    message = posted(community, alice)

    answer = community.put(f"{ROOM}/reaction/{message['id']}/{emoji_path}", identity=alice)

    assert expect_ok(answer)["added"] is True
    seen = expect_ok(community.get(f"{ROOM}/message/{message['id']}", identity=alice))
    assert list(seen["reactions"]) == ["👍"]


def test_a_signature_over_the_encoded_path_is_401(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    message = posted(community, alice)
    path = f"{ROOM}/reaction/{message['id']}/%F0%9F%91%8D"
    headers = signed_headers(community, alice, "PUT", path.replace("%", "%25"))

    answer = community.put(path, headers=headers)

    expect_refused(answer, 401, SIGNATURE_FAILED)


def test_a_percent_sign_in_a_reaction_is_decoded_once(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    message = posted(community, alice)

    answer = community.put(f"{ROOM}/reaction/{message['id']}/%2541", identity=alice)

    assert expect_ok(answer)["added"] is True
    seen = expect_ok(community.get(f"{ROOM}/message/{message['id']}", identity=alice))
    assert list(seen["reactions"]) == ["%41"]


@pytest.mark.parametrize(
    "reaction", [pytest.param("?", id="question-mark"), pytest.param("#", id="hash")]
)
def test_a_reaction_that_reads_as_url_syntax_once_decoded_is_signed_decoded(
    community: CommunityClient, alice: BlindedIdentity, reaction: str
) -> None:
    message = posted(community, alice)
    encoded = "%3F" if reaction == "?" else "%23"

    answer = community.put(f"{ROOM}/reaction/{message['id']}/{encoded}", identity=alice)

    assert expect_ok(answer)["added"] is True
    seen = expect_ok(community.get(f"{ROOM}/message/{message['id']}", identity=alice))
    assert list(seen["reactions"]) == [reaction]


def test_the_query_is_signed_as_sent_not_decoded(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    path = "/capabilities?required=sogs%2Creactions"
    expect_ok(community.get(path, identity=alice))

    decoded_signed = signed_headers(community, alice, path="/capabilities?required=sogs,reactions")
    expect_refused(get_with(community, decoded_signed, path), 401, SIGNATURE_FAILED)


def test_an_unsigned_post_stores_nothing(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    before = room_seqno(community)

    answer = community.post(f"{ROOM}/message", message_body(alice, community.server_pk))

    expect_refused(answer, 401, AUTH_REQUIRED)
    assert room_seqno(community) == before
