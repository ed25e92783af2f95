"""Messages: posting, reading, deleting, and the list of deletions.

docs/spec/SPEC.md section 3 ("messages", "paging", "limits", "idempotence")
and docs/spec/client-protocol.md section 3. What clients depend on: the POST answer echoes
`data`, `signature` and the client's `timestamp` exactly (clients de-duplicate
on them and verify the signature over the served bytes), `server_id`s are
integers counting up from 1 per room, the sender is the token's key whatever
the body says, forgeries are refused, and every limit answers a clear status.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness.flows import (
    b64,
    new_room,
    start_server,
)
from harness.server import Backend, ServerProcess
from harness.v2client import (
    DEFAULT_ROOM,
    Client,
    Identity,
    Persona,
    encode_visible_message,
    make_message_body,
    pad_message,
)

MESSAGE_KEYS = {"server_id", "public_key", "timestamp", "data", "signature"}
MAX_PAGE = 256
NEVER_USED_ID = 2**31 - 1  # a valid server_id no room of these tests reaches
PAGING_MESSAGES = 300
Body = dict[str, Any]
BodyEdit = Callable[[Body], object]


# --------------------------------------------------------------------------- helpers


def now_ms() -> int:
    """The current time in milliseconds, as clients stamp their messages."""
    return int(time.time() * 1000)


def signed_body(
    identity: Identity,
    *,
    padded: bytes | None = None,
    timestamp: int | None = None,
    legacy: bool = False,
) -> Body:
    """A POST /messages body signed by identity (a fresh padded message by default)."""
    if padded is None:
        padded = pad_message(encode_visible_message(f"hello {os.urandom(8).hex()}"))
    signature = identity.sign_legacy(padded) if legacy else identity.sign(padded)
    return make_message_body(
        identity, padded, signature, now_ms() if timestamp is None else timestamp
    )


def post(client: Client, persona: Persona, body: object) -> dict[str, Any]:
    """POST /messages as persona in its room; returns the whole answer."""
    return client.request("POST", "messages", body=body, room=persona.room, token=persona.token)


def post_ok(client: Client, persona: Persona, body: Body | None = None) -> dict[str, Any]:
    """Post a (fresh, validly signed) message and return the stored message object."""
    result = post(client, persona, body if body is not None else signed_body(persona.identity))
    assert result["status_code"] == 200, result
    return result["message"]


def get_messages(client: Client, persona: Persona, query: str = "") -> list[dict[str, Any]]:
    """GET /messages[?query] in persona's room; asserts 200 and returns the list."""
    endpoint = f"messages?{query}" if query else "messages"
    result = client.request("GET", endpoint, room=persona.room, token=persona.token)
    assert result["status_code"] == 200, result
    assert set(result) == {"status_code", "messages"}, result
    return result["messages"]


def all_messages(client: Client, persona: Persona) -> list[dict[str, Any]]:
    """Every live message of persona's room, paging from the start with from_server_id."""
    out: list[dict[str, Any]] = []
    cursor = 0
    while page := get_messages(client, persona, f"from_server_id={cursor}"):
        out += page
        cursor = page[-1]["server_id"]
    return out


def deleted_messages(client: Client, persona: Persona, query: str = "") -> list[Any]:
    """GET /deleted_messages[?query] in persona's room; asserts 200 and returns `ids`."""
    endpoint = f"deleted_messages?{query}" if query else "deleted_messages"
    result = client.request("GET", endpoint, room=persona.room, token=persona.token)
    assert result["status_code"] == 200, result
    assert set(result) == {"status_code", "ids"}, result
    return result["ids"]


def delete_one(client: Client, persona: Persona, server_id: int | str) -> dict[str, Any]:
    """DELETE /messages/:id as persona (Android's and iOS's way to delete)."""
    return client.request("DELETE", f"messages/{server_id}", room=persona.room, token=persona.token)


def delete_many(client: Client, persona: Persona, ids: object) -> dict[str, Any]:
    """POST /delete_messages {"ids": ids} as persona (desktop's way to delete)."""
    return client.request(
        "POST", "delete_messages", body={"ids": ids}, room=persona.room, token=persona.token
    )


def live_ids(client: Client, persona: Persona) -> list[int]:
    """server_ids of the live messages of persona's room, ascending."""
    return [m["server_id"] for m in all_messages(client, persona)]


def live_since(client: Client, persona: Persona, first_id: int) -> list[int]:
    """Live server_ids from first_id on: in a shared room, those of the current test."""
    page = get_messages(client, persona, f"from_server_id={first_id - 1}")
    return [m["server_id"] for m in page]


def deleted_since(client: Client, persona: Persona, first_id: int) -> list[Any]:
    """Deletions (`ids` format) of messages from first_id on: the current test's own."""
    return deleted_messages(client, persona, f"from_server_id={first_id - 1}")


def last_deletion_number(client: Client, persona: Persona) -> int:
    """The room's latest deletion number in the `objects` format (0 when none)."""
    latest = deleted_messages(client, persona, "limit=1")
    return int(latest[-1]["id"]) if latest else 0


def join(client: Client, room: str = DEFAULT_ROOM, identity: Identity | None = None) -> Persona:
    """Authenticate a (new) identity in a room of client's server."""
    ident = identity or Identity.generate()
    return Persona(ident, client.authenticate(ident, room), room)


def is_int(value: object) -> bool:
    """A JSON integer (bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def second_room(server: ServerProcess) -> str:
    """Another room on the module's server, beside `main`."""
    return new_room(server.cli, "r")


@pytest.fixture(scope="module")
def paging_server(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[ServerProcess]:
    """A server without posting rate limit, for filling a room quickly."""
    yield from start_server(tmp_path_factory, backend, {"OPENGROUP_POST_RATE_LIMIT_SECONDS": "0"})


@pytest.fixture(scope="module")
def paging_posted(paging_server: ServerProcess) -> list[dict[str, Any]]:
    """300 messages posted over direct HTTP into `main` of paging_server (POST answers)."""
    with paging_server.client("http") as c:
        author = join(c)
        return [post_ok(c, author) for _ in range(PAGING_MESSAGES)]


@pytest.fixture(params=["http", "onion"], ids=["http", "onion"])
def paging_client(request: pytest.FixtureRequest, paging_server: ServerProcess) -> Iterator[Client]:
    """A client of paging_server, over each transport."""
    with paging_server.client(request.param) as c:
        yield c


@pytest.fixture(scope="module")
def objects_server(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[ServerProcess]:
    """A server whose deletions use the format released clients read."""
    yield from start_server(tmp_path_factory, backend, {"OPENGROUP_DELETIONS_FORMAT": "objects"})


@pytest.fixture(params=["http", "onion"], ids=["http", "onion"])
def objects_client(
    request: pytest.FixtureRequest, objects_server: ServerProcess
) -> Iterator[Client]:
    """A client of objects_server, over each transport."""
    with objects_server.client(request.param) as c:
        yield c


# --------------------------------------------------------------------------- POST /messages


def test_post_answers_the_stored_message_with_data_signature_and_timestamp_as_sent(
    client: Client, user: Persona
) -> None:
    body = signed_body(user.identity, timestamp=1_600_000_000_123)

    result = post(client, user, body)

    assert set(result) == {"status_code", "message"}
    assert result["status_code"] == 200
    message = result["message"]
    assert set(message) == MESSAGE_KEYS
    assert is_int(message["server_id"]) and 1 <= message["server_id"] < 2**31
    assert message["public_key"] == user.session_id
    assert message["timestamp"] == 1_600_000_000_123
    assert message["data"] == body["data"]
    assert message["signature"] == body["signature"]


def test_posted_message_is_served_by_polls_exactly_as_answered(
    client: Client, user: Persona
) -> None:
    # Arbitrary bytes whose base64 needs padding: the server must not re-encode or re-pad.
    raw = os.urandom(160)
    body = signed_body(user.identity, padded=raw)
    assert body["data"].endswith("==")

    message = post_ok(client, user, body)

    served = [m for m in all_messages(client, user) if m["server_id"] == message["server_id"]]
    assert served == [message]
    assert base64.b64decode(served[0]["data"]) == raw


def test_stored_public_key_is_the_tokens_even_when_the_body_names_another_key(
    client: Client, user: Persona, other_user: Persona
) -> None:
    body = {**signed_body(user.identity), "public_key": other_user.session_id}

    message = post_ok(client, user, body)

    assert message["public_key"] == user.session_id
    served = [m for m in all_messages(client, user) if m["server_id"] == message["server_id"]]
    assert [m["public_key"] for m in served] == [user.session_id]


def test_public_key_may_be_left_out_as_ios_does(client: Client, user: Persona) -> None:
    body = signed_body(user.identity)
    del body["public_key"]

    message = post_ok(client, user, body)

    assert message["public_key"] == user.session_id
    assert message["data"] == body["data"]


def test_server_ids_are_integers_counting_up_from_one_per_room(
    server: ServerProcess, make_persona: Callable[..., Persona]
) -> None:
    first_room, other_room = new_room(server.cli, "r"), new_room(server.cli, "r")
    author = make_persona(room=first_room)
    elsewhere = make_persona(author.identity, room=other_room)
    with server.client("http") as http, server.client("onion") as onion:
        ids = [post_ok(http, author)["server_id"] for _ in range(2)]
        ids.append(post_ok(onion, author)["server_id"])
        assert ids == [1, 2, 3]
        assert all(is_int(i) for i in ids)

        assert post_ok(onion, elsewhere)["server_id"] == 1
        assert post_ok(http, author)["server_id"] == 4


@pytest.mark.parametrize("legacy", [False, True], ids=["current-xeddsa", "legacy-sign-bit"])
def test_both_signature_styles_are_accepted(client: Client, user: Persona, legacy: bool) -> None:
    body = signed_body(user.identity, legacy=legacy)

    message = post_ok(client, user, body)

    assert message["signature"] == body["signature"]


def _signed_by_someone_else(body: Body, identity: Identity) -> Body:
    """The data signed by another identity than the token's."""
    data = base64.b64decode(body["data"])
    return {**body, "signature": b64(Identity.generate().sign(data))}


def _data_changed_after_signing(body: Body, identity: Identity) -> Body:
    """The signature is the sender's, but over other bytes than those sent."""
    data = bytearray(base64.b64decode(body["data"]))
    data[0] ^= 0x01
    return {**body, "data": b64(bytes(data))}


def _signature_of_the_claimed_other_key(body: Body, identity: Identity) -> Body:
    """Signed by the key the body names, which is not the token's key."""
    other = Identity.generate()
    data = base64.b64decode(body["data"])
    return {**body, "public_key": other.session_id, "signature": b64(other.sign(data))}


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(_signed_by_someone_else, id="signed-by-another-identity"),
        pytest.param(_data_changed_after_signing, id="data-changed-after-signing"),
        pytest.param(_signature_of_the_claimed_other_key, id="signed-by-the-key-the-body-names"),
    ],
)
def test_forged_signature_is_refused_and_nothing_is_stored(
    client: Client, user: Persona, forge: Callable[[Body, Identity], Body]
) -> None:
    body = forge(signed_body(user.identity), user.identity)

    result = post(client, user, body)

    assert result["status_code"] == 400, result
    assert isinstance(result.get("error"), str) and result["error"]
    assert [m for m in all_messages(client, user) if m["public_key"] == user.session_id] == []


def test_bad_signature_is_accepted_when_verification_is_turned_off(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(env={"OPENGROUP_VERIFY_SIGNATURES": "false"})
    for transport in ("http", "onion"):
        with server.client(transport) as c:
            author = join(c)
            body = _signed_by_someone_else(signed_body(author.identity), author.identity)

            message = post_ok(c, author, body)

            assert message["signature"] == body["signature"]
            assert message in all_messages(c, author)


def _without(key: str) -> BodyEdit:
    """Drop one field of a valid body."""
    return lambda body: {k: v for k, v in body.items() if k != key}


def _with(key: str, value: object) -> BodyEdit:
    """Replace one field of a valid body."""
    return lambda body: {**body, key: value}


BAD_POSTS = [
    pytest.param(_without("data"), id="data-missing"),
    pytest.param(_with("data", "this is not base64!"), id="data-not-base64"),
    pytest.param(_with("data", "QUJD="), id="data-bad-base64-padding"),
    pytest.param(_with("data", ""), id="data-empty"),
    pytest.param(_with("data", 12345), id="data-a-number"),
    pytest.param(_without("signature"), id="signature-missing"),
    pytest.param(_with("signature", "%%not base64%%"), id="signature-not-base64"),
    pytest.param(_with("signature", b64(bytes(63))), id="signature-63-bytes"),
    pytest.param(_with("signature", b64(bytes(65))), id="signature-65-bytes"),
    pytest.param(_with("signature", ""), id="signature-empty"),
    pytest.param(_without("timestamp"), id="timestamp-missing"),
    pytest.param(_with("timestamp", None), id="timestamp-null"),
    pytest.param(_with("timestamp", str(1_634_567_890_123)), id="timestamp-string"),
    pytest.param(_with("timestamp", 1_634_567_890_123.5), id="timestamp-float"),
    pytest.param(_with("timestamp", 0), id="timestamp-zero"),
    pytest.param(_with("timestamp", -1_634_567_890_123), id="timestamp-negative"),
    pytest.param(_with("timestamp", True), id="timestamp-boolean"),
    pytest.param(_with("public_key", "05" + "zz" * 32), id="public-key-not-hex"),
    pytest.param(_with("public_key", "05" + "ab" * 31), id="public-key-too-short"),
    pytest.param(_with("public_key", "06" + "ab" * 32), id="public-key-wrong-prefix"),
    pytest.param(_with("public_key", ""), id="public-key-empty"),
    pytest.param(_with("public_key", 5), id="public-key-a-number"),
    pytest.param(lambda body: [body], id="body-a-list"),
    pytest.param(lambda body: "hello", id="body-a-string"),
    pytest.param(lambda body: 42, id="body-a-number"),
    pytest.param(lambda body: None, id="body-missing"),
]


@pytest.mark.parametrize("edit", BAD_POSTS)
def test_malformed_post_is_refused_with_400_and_nothing_is_stored(
    client: Client, user: Persona, edit: BodyEdit
) -> None:
    result = post(client, user, edit(signed_body(user.identity)))

    assert result["status_code"] == 400, result
    assert isinstance(result.get("error"), str) and result["error"]
    assert [m for m in all_messages(client, user) if m["public_key"] == user.session_id] == []


def test_message_over_the_size_limit_is_refused_with_413_and_not_stored(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(env={"OPENGROUP_MAX_MESSAGE_BYTES": "1000"})
    for transport in ("http", "onion"):
        with server.client(transport) as c:
            author = join(c)

            too_large = post(c, author, signed_body(author.identity, padded=os.urandom(1001)))
            at_limit = post(c, author, signed_body(author.identity, padded=os.urandom(1000)))

            assert too_large["status_code"] == 413, too_large
            assert isinstance(too_large.get("error"), str) and too_large["error"]
            assert at_limit["status_code"] == 200, at_limit
            mine = [m for m in all_messages(c, author) if m["public_key"] == author.session_id]
            assert mine == [at_limit["message"]]


# --------------------------------------------------------------------------- rate limit


def test_sixth_post_in_a_burst_is_rate_limited_with_a_retry_hint(
    client: Client, user: Persona
) -> None:
    accepted = [post_ok(client, user) for _ in range(5)]

    sixth = post(client, user, signed_body(user.identity))

    assert sixth["status_code"] == 429, sixth
    assert is_int(sixth.get("retry_after")) and 1 <= sixth["retry_after"] <= 16, sixth
    mine = [m for m in all_messages(client, user) if m["public_key"] == user.session_id]
    assert mine == accepted


def test_rate_limited_http_answer_carries_a_retry_after_header(
    setup_client: Client, user: Persona
) -> None:
    for _ in range(5):
        post_ok(setup_client, user)

    resp = setup_client.http.post(
        "/messages",
        json=signed_body(user.identity),
        headers={"Room": user.room, "Authorization": user.token},
    )

    assert resp.status_code == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 16
    assert resp.json()["retry_after"] == int(resp.headers["Retry-After"])


def test_moderator_is_exempt_from_the_rate_limit(client: Client, moderator: Persona) -> None:
    for _ in range(8):
        post_ok(client, moderator)


def test_rate_limit_of_one_user_does_not_affect_another(
    client: Client, user: Persona, other_user: Persona
) -> None:
    for _ in range(5):
        post_ok(client, user)
    assert post(client, user, signed_body(user.identity))["status_code"] == 429

    post_ok(client, other_user)


def test_rate_limit_is_per_room(
    client: Client, user: Persona, make_persona: Callable[..., Persona], second_room: str
) -> None:
    for _ in range(5):
        post_ok(client, user)
    assert post(client, user, signed_body(user.identity))["status_code"] == 429

    post_ok(client, make_persona(user.identity, room=second_room))


def test_posting_is_allowed_again_once_the_window_has_passed(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(env={"OPENGROUP_POST_RATE_LIMIT_SECONDS": "2"})
    with server.client("http") as c:
        author = join(c)
        for _ in range(5):
            post_ok(c, author)
        limited = post(c, author, signed_body(author.identity))
        assert limited["status_code"] == 429, limited
        assert 1 <= limited["retry_after"] <= 2, limited

        time.sleep(limited["retry_after"] + 0.2)

        post_ok(c, author)


# --------------------------------------------------------------------------- GET /messages


def test_server_ids_count_up_without_gaps(paging_posted: list[dict[str, Any]]) -> None:
    assert [m["server_id"] for m in paging_posted] == list(range(1, PAGING_MESSAGES + 1))


def test_without_cursor_the_newest_256_are_returned_ascending(
    paging_client: Client, paging_posted: list[dict[str, Any]]
) -> None:
    reader = join(paging_client)

    assert get_messages(paging_client, reader) == paging_posted[-MAX_PAGE:]


def test_without_cursor_limit_returns_the_newest_that_many_ascending(
    paging_client: Client, paging_posted: list[dict[str, Any]]
) -> None:
    reader = join(paging_client)

    assert get_messages(paging_client, reader, "limit=10") == paging_posted[-10:]
    assert get_messages(paging_client, reader, "limit=1") == paging_posted[-1:]


@pytest.mark.parametrize("limit", [256, 257, 1000, 10**6])
def test_limit_over_256_is_clamped_to_256(
    paging_client: Client, paging_posted: list[dict[str, Any]], limit: int
) -> None:
    reader = join(paging_client)

    assert get_messages(paging_client, reader, f"limit={limit}") == paging_posted[-MAX_PAGE:]


@pytest.mark.parametrize(
    ("query", "first", "count"),
    [
        pytest.param("from_server_id=0", 1, 256, id="from-0-gives-the-oldest-256"),
        pytest.param("from_server_id=256", 257, 44, id="from-256-gives-the-rest"),
        pytest.param("from_server_id=100&limit=5", 101, 5, id="from-100-limit-5"),
        pytest.param("from_server_id=10&limit=1000", 11, 256, id="from-10-limit-clamped"),
        pytest.param("from_server_id=299", 300, 1, id="from-the-last-but-one"),
        pytest.param("from_server_id=300", 0, 0, id="from-the-newest-gives-nothing"),
        pytest.param("from_server_id=100000", 0, 0, id="from-beyond-gives-nothing"),
    ],
)
def test_with_from_server_id_the_next_ones_after_it_are_returned_ascending(
    paging_client: Client,
    paging_posted: list[dict[str, Any]],
    query: str,
    first: int,
    count: int,
) -> None:
    reader = join(paging_client)

    page = get_messages(paging_client, reader, query)

    assert page == paging_posted[first - 1 : first - 1 + count]


def test_paging_with_from_server_id_walks_every_message_once(
    paging_client: Client, paging_posted: list[dict[str, Any]]
) -> None:
    reader = join(paging_client)

    assert all_messages(paging_client, reader) == paging_posted


BAD_PAGING = [
    pytest.param("from_server_id=abc", id="from-not-a-number"),
    pytest.param("from_server_id=-1", id="from-negative"),
    pytest.param("from_server_id=1.5", id="from-a-fraction"),
    pytest.param("from_server_id=1e3", id="from-exponent"),
    pytest.param("limit=abc", id="limit-not-a-number"),
    pytest.param("limit=0", id="limit-zero"),
    pytest.param("limit=-5", id="limit-negative"),
    pytest.param("limit=2.5", id="limit-a-fraction"),
    pytest.param("from_server_id=1&limit=x", id="limit-bad-with-cursor"),
]


@pytest.mark.parametrize("endpoint", ["messages", "deleted_messages"])
@pytest.mark.parametrize("query", BAD_PAGING)
def test_bad_paging_parameters_are_refused_with_400(
    client: Client, user: Persona, endpoint: str, query: str
) -> None:
    result = client.request("GET", f"{endpoint}?{query}", room=user.room, token=user.token)

    assert result["status_code"] == 400, result
    assert isinstance(result.get("error"), str) and result["error"]


def test_deleted_messages_never_appear_in_messages(client: Client, user: Persona) -> None:
    posted = [post_ok(client, user) for _ in range(4)]
    first = posted[0]["server_id"]
    assert delete_one(client, user, posted[1]["server_id"])["status_code"] == 200
    assert delete_many(client, user, [posted[3]["server_id"]])["status_code"] == 200
    expected = [posted[0], posted[2]]
    gone = {posted[1]["server_id"], posted[3]["server_id"]}

    newest = get_messages(client, user)
    assert newest[-2:] == expected
    assert not gone & {m["server_id"] for m in newest}
    assert get_messages(client, user, "limit=2") == expected
    assert get_messages(client, user, f"from_server_id={first - 1}") == expected
    assert get_messages(client, user, f"from_server_id={first}") == [posted[2]]
    assert not gone & {m["server_id"] for m in all_messages(client, user)}


# --------------------------------------------------------------------------- DELETE /messages/:id


def test_sender_deletes_own_message(client: Client, user: Persona) -> None:
    message = post_ok(client, user)

    assert delete_one(client, user, message["server_id"]) == {"status_code": 200}

    assert message["server_id"] not in live_ids(client, user)


def test_another_user_may_not_delete_a_message(
    client: Client, user: Persona, other_user: Persona
) -> None:
    message = post_ok(client, user)

    result = delete_one(client, other_user, message["server_id"])

    assert result["status_code"] == 403, result
    assert message in all_messages(client, user)


def test_moderator_deletes_anyones_message(
    client: Client, user: Persona, moderator: Persona
) -> None:
    message = post_ok(client, user)

    assert delete_one(client, moderator, message["server_id"]) == {"status_code": 200}

    assert message["server_id"] not in live_ids(client, user)


def test_deleting_an_unknown_message_is_404(client: Client, moderator: Persona) -> None:
    result = delete_one(client, moderator, NEVER_USED_ID)

    assert result["status_code"] == 404, result


def test_deleting_with_a_non_numeric_id_is_400(client: Client, user: Persona) -> None:
    result = delete_one(client, user, "abc")

    assert result["status_code"] == 400, result


# --------------------------------------------------------------------------- POST /delete_messages


def test_sender_deletes_several_own_messages_at_once(client: Client, user: Persona) -> None:
    posted = [post_ok(client, user)["server_id"] for _ in range(3)]

    assert delete_many(client, user, [posted[0], posted[2]]) == {"status_code": 200}

    assert live_since(client, user, posted[0]) == [posted[1]]
    assert deleted_since(client, user, posted[0]) == [posted[0], posted[2]]


def test_moderator_deletes_several_users_messages_at_once(
    client: Client, user: Persona, other_user: Persona, moderator: Persona
) -> None:
    ids = [post_ok(client, user)["server_id"], post_ok(client, other_user)["server_id"]]

    assert delete_many(client, moderator, ids) == {"status_code": 200}

    assert not set(ids) & set(live_ids(client, user))


def test_delete_messages_is_atomic_when_one_id_is_not_the_callers(
    client: Client, user: Persona, other_user: Persona
) -> None:
    own = post_ok(client, user)["server_id"]
    theirs = post_ok(client, other_user)["server_id"]

    result = delete_many(client, user, [own, theirs])

    assert result["status_code"] == 403, result
    assert live_since(client, user, own) == [own, theirs]
    assert deleted_since(client, user, own) == []


def test_delete_messages_with_a_never_existing_id_is_404_and_deletes_nothing(
    client: Client, user: Persona
) -> None:
    own = post_ok(client, user)["server_id"]

    result = delete_many(client, user, [own, NEVER_USED_ID])

    assert result["status_code"] == 404, result
    assert live_since(client, user, own) == [own]
    assert deleted_since(client, user, own) == []


def test_already_deleted_ids_are_skipped_without_a_second_deletion_entry(
    client: Client, user: Persona, moderator: Persona
) -> None:
    first, second = (post_ok(client, user)["server_id"] for _ in range(2))
    assert delete_many(client, user, [first])["status_code"] == 200

    assert delete_many(client, user, [first, second]) == {"status_code": 200}
    assert delete_many(client, moderator, [first, second]) == {"status_code": 200}

    assert deleted_since(client, user, first) == [first, second]
    assert live_since(client, user, first) == []


BAD_DELETE_BODIES = [
    pytest.param({"ids": []}, id="ids-empty"),
    pytest.param({"ids": "1"}, id="ids-a-string"),
    pytest.param({"ids": 1}, id="ids-a-number"),
    pytest.param({"ids": ["x"]}, id="ids-not-numbers"),
    pytest.param({"ids": [1.5]}, id="ids-fractions"),
    pytest.param({}, id="ids-missing"),
    pytest.param([1], id="body-a-list"),
]


@pytest.mark.parametrize("body", BAD_DELETE_BODIES)
def test_malformed_delete_messages_is_refused_with_400(
    client: Client, user: Persona, body: object
) -> None:
    result = client.request("POST", "delete_messages", body=body, room=user.room, token=user.token)

    assert result["status_code"] == 400, result


# --------------------------------------------------------------------------- GET /deleted_messages


def test_deleted_messages_lists_deleted_message_ids_ascending_by_default(
    client: Client, user: Persona
) -> None:
    ids = [post_ok(client, user)["server_id"] for _ in range(5)]
    for server_id in (ids[3], ids[0], ids[2]):
        assert delete_one(client, user, server_id)["status_code"] == 200

    deleted = deleted_messages(client, user)

    assert deleted[-3:] == [ids[0], ids[2], ids[3]]
    assert deleted == sorted(deleted)
    assert all(is_int(i) for i in deleted)
    assert deleted_messages(client, user, "limit=2") == [ids[2], ids[3]]


def test_deleted_messages_cursor_means_deleted_message_ids_greater_than_it(
    client: Client, user: Persona
) -> None:
    author = user
    ids = [post_ok(client, author)["server_id"] for _ in range(5)]
    assert delete_many(client, author, [ids[1], ids[3]])["status_code"] == 200

    assert deleted_messages(client, author, f"from_server_id={ids[1]}") == [ids[3]]
    assert deleted_messages(client, author, f"from_server_id={ids[0]}") == [ids[1], ids[3]]
    assert deleted_messages(client, author, f"from_server_id={ids[3]}") == []

    # The seed shape's blind spot: a late deletion of an older message lies behind the cursor.
    assert delete_one(client, author, ids[0])["status_code"] == 200
    assert deleted_messages(client, author, f"from_server_id={ids[3]}") == []
    assert deleted_messages(client, author, "limit=3") == [ids[0], ids[1], ids[3]]


def test_objects_format_lists_deletion_numbers_with_the_deleted_message_ids(
    objects_client: Client,
) -> None:
    author = join(objects_client)
    ids = [post_ok(objects_client, author)["server_id"] for _ in range(3)]
    before = last_deletion_number(objects_client, author)
    assert delete_one(objects_client, author, ids[2])["status_code"] == 200
    assert delete_many(objects_client, author, [ids[0]])["status_code"] == 200

    deleted = deleted_messages(objects_client, author)

    assert deleted[-2:] == [
        {"id": before + 1, "deleted_message_id": ids[2]},
        {"id": before + 2, "deleted_message_id": ids[0]},
    ]
    assert [d["id"] for d in deleted] == list(range(1, before + 3))
    assert all(is_int(d["id"]) and is_int(d["deleted_message_id"]) for d in deleted)
    assert deleted_messages(objects_client, author, "limit=1") == deleted[-1:]
    assert deleted_messages(objects_client, author, f"from_server_id={before}") == deleted[-2:]


def test_objects_format_cursor_runs_over_deletion_numbers_so_late_deletions_show_up(
    objects_client: Client,
) -> None:
    author = join(objects_client)
    ids = [post_ok(objects_client, author)["server_id"] for _ in range(4)]
    assert delete_one(objects_client, author, ids[3])["status_code"] == 200
    seen = deleted_messages(objects_client, author)
    cursor = seen[-1]["id"]
    assert deleted_messages(objects_client, author, f"from_server_id={cursor}") == []

    # A late deletion of an old message still comes after the cursor.
    assert delete_one(objects_client, author, ids[0])["status_code"] == 200

    assert deleted_messages(objects_client, author, f"from_server_id={cursor}") == [
        {"id": cursor + 1, "deleted_message_id": ids[0]}
    ]


def test_objects_format_records_one_deletion_entry_per_message(
    objects_client: Client,
) -> None:
    author = join(objects_client)
    first, second = (post_ok(objects_client, author)["server_id"] for _ in range(2))
    before = last_deletion_number(objects_client, author)
    assert delete_many(objects_client, author, [first])["status_code"] == 200
    assert delete_many(objects_client, author, [first, second])["status_code"] == 200
    assert delete_many(objects_client, author, [second, first])["status_code"] == 200
    assert delete_one(objects_client, author, first)["status_code"] in (200, 404)

    assert deleted_messages(objects_client, author, f"from_server_id={before}") == [
        {"id": before + 1, "deleted_message_id": first},
        {"id": before + 2, "deleted_message_id": second},
    ]
