"""Resource limits: each has a setting, a default and a clear answer (docs/SECURITY.md).

Every limit is checked at its boundary: exactly the limit is served, one more
is refused with the documented status. Small limits run on a module server
with tight settings (`tight`); the defaults are pinned on the default server.

| limit | setting (default) | over it |
| --- | --- | --- |
| direct HTTP body | max_request_body_bytes (16 MiB) | 413 |
| onion request body | max_onion_body_bytes (10 MiB) | plain HTTP 413 |
| rooms in one compact_poll | max_poll_rooms (256) | 413 |
| items in one compact_poll answer | max_poll_items (1,024) | the rest in the next poll |
| message bytes in one compact_poll answer | max_poll_answer_bytes (10 MiB) | the rest next poll |
| JSON nesting | max_json_depth (32) | 400 "JSON nested too deeply" |
| unclaimed challenges per key and room | max_pending_challenges_per_key (16) | 429 + retry hint |
| live tokens per key and room | max_tokens_per_key (32) | the key's oldest token there is revoked |

Message and upload sizes are pinned at their boundaries in test_messages.py and
test_files.py; rate limits in test_rate_limits.py.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness.expect import expect_error, expect_rate_limited
from harness.flows import challenge, new_room
from harness.server import Backend, ServerProcess, run_cli
from harness.v2client import (
    DEFAULT_ROOM,
    Client,
    Identity,
    decrypt_challenge,
    decrypt_onion_response,
    encode_visible_message,
    encrypt_onion_payload,
)

ServerFactory = Callable[..., ServerProcess]

DEEP_JSON = "JSON nested too deeply"
TIGHT_BODY_BYTES = 4000
TIGHT_ONION_BYTES = 6000
TIGHT_POLL_ROOMS = 3
TIGHT_POLL_ITEMS = 10
TIGHT_POLL_ANSWER_BYTES = 5000  # above TIGHT_POLL_ITEMS small messages, about 2 large ones
LARGE_TEXT = encode_visible_message("x" * 1500)  # about 2,200 bytes of data and signature
TIGHT_JSON_DEPTH = 5
TIGHT_PENDING = 3
TIGHT_TOKENS = 2
PENDING_TTL_SECONDS = 600
SECOND_ROOM = "second"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[ServerProcess]:
    """A server with every limit of this module small (challenge and post rate limits
    off)."""
    url = backend.new_database_url()
    proc = ServerProcess(
        tmp_path_factory.mktemp("tight") / "data",
        database_url=url,
        env={
            "OPENGROUP_MAX_REQUEST_BODY_BYTES": str(TIGHT_BODY_BYTES),
            "OPENGROUP_MAX_ONION_BODY_BYTES": str(TIGHT_ONION_BYTES),
            "OPENGROUP_MAX_POLL_ROOMS": str(TIGHT_POLL_ROOMS),
            "OPENGROUP_MAX_POLL_ITEMS": str(TIGHT_POLL_ITEMS),
            "OPENGROUP_MAX_POLL_ANSWER_BYTES": str(TIGHT_POLL_ANSWER_BYTES),
            "OPENGROUP_POST_RATE_LIMIT_SECONDS": "0",
            "OPENGROUP_MAX_JSON_DEPTH": str(TIGHT_JSON_DEPTH),
            "OPENGROUP_MAX_PENDING_CHALLENGES_PER_KEY": str(TIGHT_PENDING),
            "OPENGROUP_MAX_TOKENS_PER_KEY": str(TIGHT_TOKENS),
            "OPENGROUP_CHALLENGE_RATE_LIMIT_SECONDS": "0",
        },
    )
    proc.start()
    proc.cli("rooms", "add", SECOND_ROOM, "Second")
    yield proc
    proc.stop()
    backend.drop_database(url)


@pytest.fixture(params=["http", "onion"])
def tight_client(request: pytest.FixtureRequest, tight: ServerProcess) -> Iterator[Client]:
    """A client of the tight server, over each transport."""
    with tight.client(request.param) as c:
        yield c


# --------------------------------------------------------------------------- helpers


def nested_body(depth: int) -> str:
    """A compact_poll body (no rooms) whose JSON nests exactly ``depth`` levels."""
    return '{"requests": [], "pad": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def call_raw(
    client: Client, method: str, endpoint: str, body_text: str, headers: dict[str, str]
) -> dict[str, Any]:
    """Send body text as is (deeper than json.dumps can write) over the client's transport."""
    if client.transport == "http":
        resp = client.http.request(method, "/" + endpoint, content=body_text, headers=headers)
        result = resp.json()
        assert result["status_code"] == resp.status_code, result
        return result
    inner = {"endpoint": endpoint, "method": method, "body": body_text, "headers": headers}
    return onion_inner(client, json.dumps(inner))


def onion_inner(client: Client, inner_text: str) -> dict[str, Any]:
    """Send an inner request text through the onion endpoint; the decrypted answer."""
    blob, key = encrypt_onion_payload(client.server_public_key, inner_text.encode())
    resp = client.raw_onion(blob)
    assert resp.status_code == 200, resp.text[:300]
    return decrypt_onion_response(key, resp.text)


def challenged_token(client: Client, identity: Identity, room: str = DEFAULT_ROOM) -> str:
    """A challenge's token, decrypted but not claimed."""
    result = challenge(client, identity, room)
    assert result["status_code"] == 200, result
    made = result["challenge"]
    return decrypt_challenge(identity, made["ciphertext"], made["ephemeral_public_key"])


def claim(client: Client, identity: Identity, token: str, room: str = DEFAULT_ROOM) -> int:
    """POST claim_auth_token; its status code."""
    body = {"public_key": identity.session_id}
    return client.request("POST", "claim_auth_token", body=body, room=room, token=token)[
        "status_code"
    ]


def token_status(client: Client, token: str, room: str = DEFAULT_ROOM) -> int:
    """What GET member_count answers with this token: 200 live, 401 not."""
    return client.request("GET", "member_count", room=room, token=token)["status_code"]


def poll_entries(count: int) -> list[dict[str, Any]]:
    """compact_poll entries for unknown rooms (each answers 404 on its own)."""
    return [{"room_id": f"nowhere_{i}", "auth_token": "00"} for i in range(count)]


# --------------------------------------------------------------------------- settings


EXPECTED_DEFAULTS = {
    "max_request_body_bytes": 16 * 1024 * 1024,
    "max_onion_body_bytes": 10 * 1024 * 1024,
    "max_poll_rooms": 256,
    "max_poll_items": 1024,
    "max_poll_answer_bytes": 10 * 1024 * 1024,
    "max_message_bytes": 100_000,
    "max_upload_bytes": 10_000_000,
    "max_json_depth": 32,
    "max_pending_challenges_per_key": 16,
    "max_tokens_per_key": 32,
}


def listed_defaults() -> dict[str, Any]:
    """`opengroup settings` prints every setting as a commented-out TOML line."""
    lines = run_cli(None, None, "settings").stdout.splitlines()
    assignments = [line[2:] for line in lines if re.match(r"# \w+ = ", line)]
    return tomllib.loads("\n".join(assignments))


def test_every_limit_is_a_listed_setting_with_its_documented_default() -> None:
    listed = listed_defaults()
    assert {name: listed.get(name) for name in EXPECTED_DEFAULTS} == EXPECTED_DEFAULTS


# --------------------------------------------------------------------------- body sizes


def padded_poll_body(size: int) -> bytes:
    """A valid compact_poll body (no rooms) of exactly ``size`` bytes."""
    head, tail = b'{"requests": [], "pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_a_direct_body_of_exactly_max_request_body_bytes_is_served_one_byte_more_is_413(
    tight: ServerProcess,
) -> None:
    with tight.client("http") as c:
        exact = c.http.post("/compact_poll", content=padded_poll_body(TIGHT_BODY_BYTES))
        over = c.http.post("/compact_poll", content=padded_poll_body(TIGHT_BODY_BYTES + 1))

    assert exact.status_code == 200, exact.text[:300]
    assert exact.json() == {"status_code": 200, "results": []}
    assert over.status_code == 413, over.text[:300]
    expect_error(over.json(), 413)


def onion_blob_of_size(server_public_key: bytes, size: int) -> tuple[bytes, bytes]:
    """An onion request for GET /rooms, padded (in its metadata) to exactly ``size`` bytes."""
    inner = json.dumps({"endpoint": "rooms", "method": "GET", "body": "", "headers": {}})
    blob, _ = encrypt_onion_payload(server_public_key, inner.encode(), metadata_extra={"p": ""})
    pad = "x" * (size - len(blob))
    blob, key = encrypt_onion_payload(server_public_key, inner.encode(), metadata_extra={"p": pad})
    assert len(blob) == size
    return blob, key


def test_an_onion_body_of_exactly_max_onion_body_bytes_is_served_one_byte_more_is_413(
    tight: ServerProcess,
) -> None:
    with tight.client("onion") as c:
        blob, key = onion_blob_of_size(tight.public_key, TIGHT_ONION_BYTES)
        exact = c.raw_onion(blob)
        over_blob, _ = onion_blob_of_size(tight.public_key, TIGHT_ONION_BYTES + 1)
        over = c.raw_onion(over_blob)

    assert exact.status_code == 200, exact.text[:300]
    assert decrypt_onion_response(key, exact.text)["status_code"] == 200
    assert over.status_code == 413, over.text[:300]


# --------------------------------------------------------------------------- compact_poll rooms


def test_a_poll_of_exactly_max_poll_rooms_is_served_one_room_more_is_413(
    tight_client: Client,
) -> None:
    exact = tight_client.compact_poll(poll_entries(TIGHT_POLL_ROOMS))
    over = tight_client.compact_poll(poll_entries(TIGHT_POLL_ROOMS + 1))

    assert exact["status_code"] == 200, exact
    assert [r["status_code"] for r in exact["results"]] == [404] * TIGHT_POLL_ROOMS
    expect_error(over, 413)


def test_the_default_max_poll_rooms_is_256(client: Client) -> None:
    exact = client.compact_poll(poll_entries(256))
    over = client.compact_poll(poll_entries(257))

    assert exact["status_code"] == 200 and len(exact["results"]) == 256, exact["status_code"]
    expect_error(over, 413)


# --------------------------------------------------------------------------- compact_poll items


def room_with_messages(
    client: Client, server: ServerProcess, count: int, text: bytes | None = None
) -> tuple[str, str]:
    """A new room holding ``count`` messages (ids 1 to ``count``; short ones, or of
    protobuf ``text``); it and a token there."""
    room = new_room(server.cli, "items")
    identity = Identity.generate()
    token = client.authenticate(identity, room)
    for _ in range(count):
        assert client.post_message(identity, token, room, text)["status_code"] == 200
    return room, token


def message_ids(poll: dict[str, Any]) -> list[list[int]]:
    """Each result's message ids, in order."""
    assert poll["status_code"] == 200, poll
    return [[m["server_id"] for m in result["messages"]] for result in poll["results"]]


def test_a_poll_answers_at_most_max_poll_items_and_the_rest_in_the_next_poll(
    tight_client: Client, tight: ServerProcess
) -> None:
    room, token = room_with_messages(tight_client, tight, 8)

    def entry(after: int) -> dict[str, Any]:
        return {"room_id": room, "auth_token": token, "from_message_server_id": after}

    first = message_ids(tight_client.compact_poll([entry(0), entry(0), entry(0)]))
    assert first == [list(range(1, 9)), [1, 2], []]
    # (each entry from the cursor its answer left it at: nothing is skipped or repeated)
    second = message_ids(tight_client.compact_poll([entry(8), entry(2), entry(0)]))
    assert second == [[], list(range(3, 9)), [1, 2, 3, 4]]


def test_a_room_is_counted_at_no_more_than_the_messages_past_its_cursor(
    tight_client: Client, tight: ServerProcess
) -> None:
    room, token = room_with_messages(tight_client, tight, 8)
    entries = [
        {"room_id": room, "auth_token": token, "from_message_server_id": 7},
        {"room_id": room, "auth_token": token, "from_message_server_id": 0},
    ]
    assert message_ids(tight_client.compact_poll(entries)) == [[8], list(range(1, 9))]


def test_a_poll_answers_at_most_max_poll_answer_bytes_of_messages_and_the_rest_next(
    tight_client: Client, tight: ServerProcess
) -> None:
    room, token = room_with_messages(tight_client, tight, 4, LARGE_TEXT)

    def entry(after: int) -> dict[str, Any]:
        return {"room_id": room, "auth_token": token, "from_message_server_id": after}

    first = tight_client.compact_poll([entry(0), entry(0)])
    [message] = first["results"][0]["messages"][:1]
    size = len(message["data"]) + len(message["signature"])  # what the bound counts
    assert 2 * size <= TIGHT_POLL_ANSWER_BYTES < 3 * size  # (two such messages fit)
    assert message_ids(first) == [[1, 2], []]
    second = message_ids(tight_client.compact_poll([entry(2), entry(0)]))
    assert second == [[3, 4], []]
    third = message_ids(tight_client.compact_poll([entry(4), entry(0)]))
    assert third == [[], [1, 2]]


def test_the_default_max_poll_items_is_1024(server: ServerProcess, client: Client) -> None:
    room, token = room_with_messages(client, server, 5)  # (the post rate limit's 5)
    entries = [{"room_id": room, "auth_token": token, "from_message_server_id": 0}] * 256

    counts = [len(ids) for ids in message_ids(client.compact_poll(entries))]

    assert sum(counts) == 1024
    assert counts == [5] * 204 + [4] + [0] * 51


# --------------------------------------------------------------------------- JSON nesting


def test_a_body_nested_exactly_max_json_depth_is_served_one_level_more_is_400(
    tight_client: Client,
) -> None:
    exact = call_raw(tight_client, "POST", "compact_poll", nested_body(TIGHT_JSON_DEPTH), {})
    over = call_raw(tight_client, "POST", "compact_poll", nested_body(TIGHT_JSON_DEPTH + 1), {})

    assert exact == {"status_code": 200, "results": []}
    expect_error(over, 400, DEEP_JSON)


def test_the_default_max_json_depth_is_32(client: Client) -> None:
    exact = call_raw(client, "POST", "compact_poll", nested_body(32), {})
    over = call_raw(client, "POST", "compact_poll", nested_body(33), {})

    assert exact == {"status_code": 200, "results": []}
    expect_error(over, 400, DEEP_JSON)


def test_brackets_inside_strings_do_not_count_as_nesting(tight_client: Client) -> None:
    """More ``{`` and ``[`` than the limit, all in strings: shallow JSON, served."""
    brackets = "{[" * (TIGHT_JSON_DEPTH * 4)
    body = json.dumps({"requests": [], "pad": brackets})
    result = call_raw(tight_client, "POST", "compact_poll", body, {"X-Pad": brackets})

    assert result == {"status_code": 200, "results": []}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("[" * 100_000 + "]" * 100_000, id="100000-levels"),
        pytest.param("[" * 100_000, id="100000-unclosed"),
        pytest.param('{"a":' * 2000 + "1" + "}" * 2000, id="2000-objects"),
    ],
)
def test_json_nested_far_past_the_limit_is_the_same_400(client: Client, body: str) -> None:
    """Past the JSON parser's own depth limit (1024) the answer does not change."""
    expect_error(call_raw(client, "POST", "compact_poll", body, {}), 400, DEEP_JSON)


def inner_request_with_headers_of_depth(depth: int) -> str:
    """An inner GET /rooms whose JSON (body aside) nests exactly ``depth`` levels."""
    # inner object (1) > headers object (2) > the value's nested lists (depth - 2)
    value = "[" * (depth - 2) + "]" * (depth - 2)
    return '{"endpoint": "rooms", "method": "GET", "headers": {"X-Pad": ' + value + "}}"


def test_an_onion_inner_request_nested_one_level_past_the_limit_is_an_encrypted_400(
    tight: ServerProcess,
) -> None:
    with tight.client("onion") as c:
        exact = onion_inner(c, inner_request_with_headers_of_depth(TIGHT_JSON_DEPTH))
        over = onion_inner(c, inner_request_with_headers_of_depth(TIGHT_JSON_DEPTH + 1))
        far = onion_inner(c, '{"endpoint": "rooms", "headers": ' + "[" * 2000 + "]" * 2000 + "}")

    assert exact["status_code"] == 200, exact
    expect_error(over, 400, DEEP_JSON)
    expect_error(far, 400, DEEP_JSON)


def test_an_onion_body_sent_as_an_object_has_the_same_depth_limit_as_a_direct_body(
    tight: ServerProcess,
) -> None:
    """Some clients put the body object itself in the inner request, not its text."""

    def send(depth: int) -> dict[str, Any]:
        body = json.loads(nested_body(depth))
        inner = {"endpoint": "compact_poll", "method": "POST", "body": body, "headers": {}}
        return onion_inner(c, json.dumps(inner))

    with tight.client("onion") as c:
        exact, over = send(TIGHT_JSON_DEPTH), send(TIGHT_JSON_DEPTH + 1)

    assert exact == {"status_code": 200, "results": []}
    expect_error(over, 400, DEEP_JSON)


# --------------------------------------------------------------------------- pending challenges


def test_the_challenge_past_max_pending_challenges_per_key_is_429_with_a_retry_hint(
    tight_client: Client,
) -> None:
    identity = Identity.generate()
    accepted = [challenge(tight_client, identity)["status_code"] for _ in range(TIGHT_PENDING)]

    refused = challenge(tight_client, identity)

    assert accepted == [200] * TIGHT_PENDING
    expect_rate_limited(refused, PENDING_TTL_SECONDS)
    assert refused["retry_after"] > PENDING_TTL_SECONDS - 60, "hint: when the oldest expires"


def test_claiming_a_challenge_frees_its_pending_slot(tight_client: Client) -> None:
    identity = Identity.generate()
    first = challenged_token(tight_client, identity)
    for _ in range(TIGHT_PENDING - 1):
        challenged_token(tight_client, identity)
    assert challenge(tight_client, identity)["status_code"] == 429

    assert claim(tight_client, identity, first) == 200

    assert challenge(tight_client, identity)["status_code"] == 200
    assert challenge(tight_client, identity)["status_code"] == 429


def test_pending_challenges_are_counted_per_key_and_per_room(tight_client: Client) -> None:
    identity = Identity.generate()
    for _ in range(TIGHT_PENDING):
        challenged_token(tight_client, identity)
    assert challenge(tight_client, identity)["status_code"] == 429

    assert challenge(tight_client, identity, SECOND_ROOM)["status_code"] == 200
    assert challenge(tight_client, Identity.generate())["status_code"] == 200


def test_the_default_max_pending_challenges_per_key_is_16(client: Client) -> None:
    identity = Identity.generate()
    accepted = [challenge(client, identity)["status_code"] for _ in range(16)]

    refused = challenge(client, identity)

    assert accepted == [200] * 16
    expect_rate_limited(refused, PENDING_TTL_SECONDS)


def test_a_refused_challenge_over_http_carries_a_retry_after_header(
    tight: ServerProcess,
) -> None:
    identity = Identity.generate()
    with tight.client("http") as c:
        for _ in range(TIGHT_PENDING):
            challenged_token(c, identity)
        resp = c.http.get(
            "/auth_token_challenge",
            params={"public_key": identity.session_id},
            headers={"Room": DEFAULT_ROOM},
        )

    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == str(resp.json()["retry_after"])


# --------------------------------------------------------------------------- tokens per key


def test_claiming_past_max_tokens_per_key_revokes_that_keys_oldest_token_in_the_room(
    tight_client: Client,
) -> None:
    identity = Identity.generate()
    tokens = [tight_client.authenticate(identity, DEFAULT_ROOM) for _ in range(TIGHT_TOKENS)]
    assert [token_status(tight_client, t) for t in tokens] == [200] * TIGHT_TOKENS

    newest = tight_client.authenticate(identity, DEFAULT_ROOM)

    assert token_status(tight_client, tokens[0]) == 401
    assert [token_status(tight_client, t) for t in [*tokens[1:], newest]] == [200] * TIGHT_TOKENS


def test_token_eviction_spares_other_keys_and_other_rooms(tight_client: Client) -> None:
    identity, neighbour = Identity.generate(), Identity.generate()
    elsewhere = tight_client.authenticate(identity, SECOND_ROOM)
    neighbours = tight_client.authenticate(neighbour, DEFAULT_ROOM)

    for _ in range(TIGHT_TOKENS + 2):
        tight_client.authenticate(identity, DEFAULT_ROOM)

    assert token_status(tight_client, elsewhere, SECOND_ROOM) == 200
    assert token_status(tight_client, neighbours) == 200


def test_reclaiming_a_live_token_evicts_nothing(tight_client: Client) -> None:
    identity = Identity.generate()
    tokens = [tight_client.authenticate(identity, DEFAULT_ROOM) for _ in range(TIGHT_TOKENS)]

    assert claim(tight_client, identity, tokens[-1]) == 200

    assert [token_status(tight_client, t) for t in tokens] == [200] * TIGHT_TOKENS


def test_the_default_max_tokens_per_key_is_32(server_factory: ServerFactory) -> None:
    """33 sign-ins of one key: the first token goes, the other 32 stay (rate limit off)."""
    server = server_factory(env={"OPENGROUP_CHALLENGE_RATE_LIMIT_SECONDS": "0"})
    identity = Identity.generate()
    with server.client("http") as c:
        tokens = [c.authenticate(identity, DEFAULT_ROOM) for _ in range(33)]
        statuses = [token_status(c, t) for t in tokens]

    assert statuses == [401] + [200] * 32
