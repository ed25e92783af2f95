"""Auth tokens: challenge, claim, use, revoke, expiry (docs/spec/SPEC.md section 3, "auth tokens").

A client asks for a challenge with its Session id, decrypts it with its own
X25519 key to a 48-byte token, claims it, and then sends it hex-encoded in
`Authorization`. Tokens are per room, a key may hold several (devices), and
every token problem answers 401 so the client re-authenticates.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from harness import probe
from harness.expect import expect_error
from harness.flows import new_room, wait_until
from harness.server import ServerProcess
from harness.v2client import DEFAULT_ROOM, Client, Identity, decrypt_challenge

CliRunner = Callable[..., Any]
ServerFactory = Callable[..., ServerProcess]

TOKEN_BYTES = 48


# --------------------------------------------------------------------------- helpers


def request_challenge(client: Client, identity: Identity, room: str = DEFAULT_ROOM) -> str:
    """GET auth_token_challenge as clients do; returns the decrypted hex token (unclaimed)."""
    result = client.request(
        "GET", f"auth_token_challenge?public_key={identity.session_id}", room=room
    )
    assert result["status_code"] == 200, result
    challenge = result["challenge"]
    return decrypt_challenge(identity, challenge["ciphertext"], challenge["ephemeral_public_key"])


def claim(
    client: Client, token: str | None, public_key: str, room: str | None = DEFAULT_ROOM
) -> dict[str, Any]:
    """POST claim_auth_token with the token in Authorization."""
    return client.request(
        "POST", "claim_auth_token", body={"public_key": public_key}, room=room, token=token
    )


def member_count(
    client: Client, token: str | None, room: str | None = DEFAULT_ROOM
) -> dict[str, Any]:
    """GET member_count: the cheapest call that needs a valid token."""
    return client.request("GET", "member_count", room=room, token=token)


def token_works(client: Client, token: str, room: str = DEFAULT_ROOM) -> bool:
    """True if the token is accepted in the room, False on 401 (anything else fails)."""
    result = member_count(client, token, room)
    assert result["status_code"] in (200, 401), result
    return result["status_code"] == 200


def db_rows(server: ServerProcess, table: str, public_key: str) -> list[tuple[Any, ...]]:
    """All rows of `table` for one public key, read straight from the server's database."""
    assert table in ("tokens", "pending_tokens")
    return probe.run(server, f"SELECT * FROM {table} WHERE public_key = %s", public_key)


@pytest.fixture(scope="module")
def room_b(cli: CliRunner) -> str:
    """A second room of the module's server, to check that tokens are per room."""
    return new_room(cli, "auth_b")


@pytest.fixture
def fresh_room(cli: CliRunner) -> str:
    """A room nobody holds a token in yet (member_count starts from zero)."""
    return new_room(cli, "auth_count")


def clients_of(server: ServerProcess, stack: contextlib.ExitStack) -> dict[str, Client]:
    """An HTTP and an onion client of `server`, closed with the stack."""
    return {t: stack.enter_context(server.client(t)) for t in ("http", "onion")}


# --------------------------------------------------------------------------- the challenge


def test_challenge_answers_exactly_ciphertext_and_ephemeral_key(client: Client) -> None:
    identity = Identity.generate()
    result = client.request(
        "GET", f"auth_token_challenge?public_key={identity.session_id}", room=DEFAULT_ROOM
    )
    assert set(result) == {"status_code", "challenge"}
    assert result["status_code"] == 200
    assert set(result["challenge"]) == {"ciphertext", "ephemeral_public_key"}
    ephemeral = base64.b64decode(result["challenge"]["ephemeral_public_key"], validate=True)
    assert len(ephemeral) == 32
    base64.b64decode(result["challenge"]["ciphertext"], validate=True)


def test_challenge_decrypts_with_the_requesters_key_to_a_48_byte_token(client: Client) -> None:
    identity = Identity.generate()
    token = request_challenge(client, identity)
    assert len(token) == 2 * TOKEN_BYTES
    assert bytes.fromhex(token).hex() == token


def test_challenge_cannot_be_opened_with_another_key(client: Client) -> None:
    identity, stranger = Identity.generate(), Identity.generate()
    result = client.request(
        "GET", f"auth_token_challenge?public_key={identity.session_id}", room=DEFAULT_ROOM
    )
    challenge = result["challenge"]
    with pytest.raises(InvalidTag):
        decrypt_challenge(stranger, challenge["ciphertext"], challenge["ephemeral_public_key"])


def test_each_challenge_has_a_fresh_ephemeral_key_and_token(setup_client: Client) -> None:
    identity = Identity.generate()
    answers = [
        setup_client.request(
            "GET", f"auth_token_challenge?public_key={identity.session_id}", room=DEFAULT_ROOM
        )["challenge"]
        for _ in range(2)
    ]
    assert answers[0]["ephemeral_public_key"] != answers[1]["ephemeral_public_key"]
    tokens = [
        decrypt_challenge(identity, a["ciphertext"], a["ephemeral_public_key"]) for a in answers
    ]
    assert tokens[0] != tokens[1]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("", id="missing"),
        pytest.param("public_key=", id="empty"),
        pytest.param("public_key=" + "ab" * 32, id="64-hex-without-05"),
        pytest.param("public_key=06" + "ab" * 32, id="06-prefix"),
        pytest.param("public_key=05" + "ab" * 31 + "a", id="65-chars"),
        pytest.param("public_key=05" + "ab" * 32 + "a", id="67-chars"),
        pytest.param("public_key=05" + "zz" * 32, id="not-hex"),
    ],
)
def test_challenge_with_a_bad_public_key_is_400(client: Client, query: str) -> None:
    result = client.request("GET", f"auth_token_challenge?{query}", room=DEFAULT_ROOM)
    expect_error(result, 400)


# --------------------------------------------------------------------------- claiming


def test_claim_answers_200_and_the_token_then_works(client: Client) -> None:
    identity = Identity.generate()
    token = request_challenge(client, identity)
    assert member_count(client, token)["status_code"] == 401  # not before the claim
    assert claim(client, token, identity.session_id) == {"status_code": 200}
    assert member_count(client, token)["status_code"] == 200


def test_claiming_the_same_token_twice_is_harmless(client: Client) -> None:
    identity = Identity.generate()
    token = request_challenge(client, identity)
    assert claim(client, token, identity.session_id) == {"status_code": 200}
    assert claim(client, token, identity.session_id) == {"status_code": 200}
    assert token_works(client, token)


def test_claim_of_a_token_never_issued_is_401(client: Client) -> None:
    identity = Identity.generate()
    expect_error(claim(client, secrets.token_hex(TOKEN_BYTES), identity.session_id), 401)


def test_claim_naming_another_public_key_than_the_challenge_is_401(client: Client) -> None:
    identity, other = Identity.generate(), Identity.generate()
    token = request_challenge(client, identity)
    expect_error(claim(client, token, other.session_id), 401)
    assert not token_works(client, token)


def test_claim_of_a_token_claimed_by_another_key_is_401(client: Client) -> None:
    identity, other = Identity.generate(), Identity.generate()
    token = request_challenge(client, identity)
    assert claim(client, token, identity.session_id)["status_code"] == 200
    expect_error(claim(client, token, other.session_id), 401)


def test_claim_in_another_room_than_the_challenge_is_401(client: Client, room_b: str) -> None:
    identity = Identity.generate()
    token = request_challenge(client, identity, DEFAULT_ROOM)
    expect_error(claim(client, token, identity.session_id, room=room_b), 401)
    assert not token_works(client, token, room_b)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(None, id="no-authorization"),
        pytest.param("", id="empty-authorization"),
        pytest.param("not a hex token", id="not-hex"),
        pytest.param("abc", id="odd-length-hex"),
    ],
)
def test_claim_without_a_usable_token_is_401(client: Client, token: str | None) -> None:
    identity = Identity.generate()
    request_challenge(client, identity)
    expect_error(claim(client, token, identity.session_id), 401)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="missing-public-key"),
        pytest.param({"public_key": "ab" * 32}, id="without-05"),
        pytest.param({"public_key": 5}, id="number"),
        pytest.param({"public_key": "05" + "zz" * 32}, id="not-hex"),
    ],
)
def test_claim_with_a_bad_public_key_is_400(client: Client, body: dict[str, Any]) -> None:
    identity = Identity.generate()
    token = request_challenge(client, identity)
    result = client.request("POST", "claim_auth_token", body=body, room=DEFAULT_ROOM, token=token)
    expect_error(result, 400)


# --------------------------------------------------------------------------- using tokens


def test_a_token_works_only_in_the_room_it_was_claimed_in(client: Client, room_b: str) -> None:
    identity = Identity.generate()
    token_main = client.authenticate(identity, DEFAULT_ROOM)
    token_b = client.authenticate(identity, room_b)
    assert token_works(client, token_main, DEFAULT_ROOM)
    assert token_works(client, token_b, room_b)
    expect_error(member_count(client, token_main, room_b), 401)
    expect_error(member_count(client, token_b, DEFAULT_ROOM), 401)


def test_two_devices_of_one_key_both_hold_live_tokens(client: Client) -> None:
    identity = Identity.generate()
    phone = client.authenticate(identity, DEFAULT_ROOM)
    laptop = client.authenticate(identity, DEFAULT_ROOM)
    assert phone != laptop
    assert token_works(client, phone)
    assert token_works(client, laptop)


def test_revoking_a_token_ends_only_that_token(client: Client) -> None:
    identity = Identity.generate()
    phone = client.authenticate(identity, DEFAULT_ROOM)
    laptop = client.authenticate(identity, DEFAULT_ROOM)
    result = client.request("DELETE", "auth_token", room=DEFAULT_ROOM, token=phone)
    assert result == {"status_code": 200}
    expect_error(member_count(client, phone), 401)
    assert token_works(client, laptop)
    # A revoked token is unknown from then on, revoking included.
    expect_error(client.request("DELETE", "auth_token", room=DEFAULT_ROOM, token=phone), 401)
    assert token_works(client, laptop)


def test_revoking_in_another_room_does_not_touch_the_token(client: Client, room_b: str) -> None:
    identity = Identity.generate()
    token = client.authenticate(identity, DEFAULT_ROOM)
    expect_error(client.request("DELETE", "auth_token", room=room_b, token=token), 401)
    assert token_works(client, token)


@pytest.mark.parametrize(
    ("method", "endpoint"),
    [
        pytest.param("GET", "member_count", id="member_count"),
        pytest.param("DELETE", "auth_token", id="delete-auth_token"),
    ],
)
@pytest.mark.parametrize(
    "token",
    [
        pytest.param(None, id="no-authorization"),
        pytest.param("", id="empty-authorization"),
        pytest.param(secrets.token_hex(TOKEN_BYTES), id="unknown-token"),
        pytest.param("zz" * TOKEN_BYTES, id="not-hex"),
        pytest.param("Bearer " + "ab" * TOKEN_BYTES, id="bearer-prefix"),
    ],
)
def test_requests_without_a_valid_token_are_401(
    client: Client, method: str, endpoint: str, token: str | None
) -> None:
    expect_error(client.request(method, endpoint, room=DEFAULT_ROOM, token=token), 401)


# --------------------------------------------------------------------------- Room header, rooms

SOME_SESSION_ID = "05" + "ab" * 32
ROOM_SCOPED_CALLS = [
    pytest.param("GET", f"auth_token_challenge?public_key={SOME_SESSION_ID}", None, id="challenge"),
    pytest.param("POST", "claim_auth_token", {"public_key": SOME_SESSION_ID}, id="claim"),
    pytest.param("DELETE", "auth_token", None, id="delete-auth_token"),
    pytest.param("GET", "member_count", None, id="member_count"),
]


@pytest.mark.parametrize(
    ("method", "endpoint", "body"),
    ROOM_SCOPED_CALLS,
)
def test_missing_room_header_is_400(
    client: Client, method: str, endpoint: str, body: dict[str, Any] | None
) -> None:
    token = secrets.token_hex(TOKEN_BYTES)
    expect_error(client.request(method, endpoint, body=body, token=token), 400)


@pytest.mark.parametrize(
    ("method", "endpoint", "body"),
    ROOM_SCOPED_CALLS,
)
def test_unknown_room_is_404(
    client: Client, method: str, endpoint: str, body: dict[str, Any] | None
) -> None:
    token = secrets.token_hex(TOKEN_BYTES)
    result = client.request(method, endpoint, body=body, room="no_such_room", token=token)
    expect_error(result, 404)


# --------------------------------------------------------------------------- member_count


def test_member_count_counts_distinct_keys_with_a_live_token(
    client: Client, fresh_room: str
) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    alice_phone = client.authenticate(alice, fresh_room)
    assert member_count(client, alice_phone, fresh_room) == {"status_code": 200, "member_count": 1}
    alice_laptop = client.authenticate(alice, fresh_room)
    assert member_count(client, alice_laptop, fresh_room)["member_count"] == 1
    bob_token = client.authenticate(bob, fresh_room)
    assert member_count(client, bob_token, fresh_room)["member_count"] == 2

    # Pending (unclaimed) challenges do not count.
    request_challenge(client, Identity.generate(), fresh_room)
    assert member_count(client, bob_token, fresh_room)["member_count"] == 2

    # A key counts while any of its tokens lives.
    client.request("DELETE", "auth_token", room=fresh_room, token=alice_phone)
    assert member_count(client, bob_token, fresh_room)["member_count"] == 2
    client.request("DELETE", "auth_token", room=fresh_room, token=alice_laptop)
    assert member_count(client, bob_token, fresh_room)["member_count"] == 1


def test_member_count_is_per_room(client: Client, fresh_room: str, room_b: str) -> None:
    token = client.authenticate(Identity.generate(), fresh_room)
    watcher = client.authenticate(Identity.generate(), room_b)
    before = member_count(client, watcher, room_b)["member_count"]
    client.authenticate(Identity.generate(), fresh_room)
    assert member_count(client, token, fresh_room)["member_count"] == 2
    assert member_count(client, watcher, room_b)["member_count"] == before


def test_member_count_needs_a_token(client: Client) -> None:
    expect_error(member_count(client, None), 401)


# --------------------------------------------------------------------------- storage


def test_tokens_are_stored_hashed(server: ServerProcess, setup_client: Client) -> None:
    identity = Identity.generate()
    claimed = setup_client.authenticate(identity, DEFAULT_ROOM)
    pending = request_challenge(setup_client, identity)
    for table, token in (("tokens", claimed), ("pending_tokens", pending)):
        rows = db_rows(server, table, identity.session_id)
        assert len(rows) == 1, (table, rows)
        raw, text = bytes.fromhex(token), token.encode()
        for value in rows[0]:
            stored = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
            assert raw not in stored, (table, value)
            assert text not in stored.lower(), (table, value)


# --------------------------------------------------------------------------- expiry and pruning


def test_expired_challenges_and_tokens_answer_401_and_the_client_reauthenticates(
    server_factory: ServerFactory,
) -> None:
    short = server_factory(
        env={"OPENGROUP_PENDING_TOKEN_TTL_SECONDS": "1", "OPENGROUP_TOKEN_TTL_SECONDS": "2"}
    )
    with contextlib.ExitStack() as stack:
        clients = clients_of(short, stack)
        state: dict[str, tuple[Identity, str, str]] = {}
        for name, c in clients.items():
            identity = Identity.generate()
            pending = request_challenge(c, identity)
            claimed = c.authenticate(identity, DEFAULT_ROOM)
            assert token_works(c, claimed)
            state[name] = (identity, pending, claimed)

        time.sleep(2.5)

        for name, c in clients.items():
            identity, pending, claimed = state[name]
            expect_error(claim(c, pending, identity.session_id), 401)
            expect_error(member_count(c, claimed), 401)
            fresh = c.authenticate(identity, DEFAULT_ROOM)
            # Expired tokens no longer count as members; only the fresh one does.
            assert member_count(c, fresh) == {"status_code": 200, "member_count": 1}
            c.request("DELETE", "auth_token", room=DEFAULT_ROOM, token=fresh)


def test_expired_tokens_are_pruned_from_the_database(server_factory: ServerFactory) -> None:
    short = server_factory(
        env={
            "OPENGROUP_PENDING_TOKEN_TTL_SECONDS": "1",
            "OPENGROUP_TOKEN_TTL_SECONDS": "2",
            "OPENGROUP_PRUNE_INTERVAL_SECONDS": "1",
        }
    )
    identity = Identity.generate()
    with short.client("http") as c:
        c.authenticate(identity, DEFAULT_ROOM)
        request_challenge(c, identity)
    assert len(db_rows(short, "tokens", identity.session_id)) == 1
    assert len(db_rows(short, "pending_tokens", identity.session_id)) == 1

    def pruned() -> bool:
        return not db_rows(short, "tokens", identity.session_id) and not db_rows(
            short, "pending_tokens", identity.session_id
        )

    wait_until(pruned, 8.0, "the expired tokens pruned")
