"""Moderation: moderators and bans, per room.

docs/spec/SPEC.md section 3 ("idempotence", `GET /block_list`, public keys)
and its "Later additions" paragraph (`POST /moderators`,
`DELETE /moderators/:pk`, `POST /ban_and_delete_all`);
docs/spec/client-protocol.md section 7 (which clients call what, and read
only `status_code`). Who may call what, endpoint by endpoint, is pinned by
test_permissions.py; this file checks what the moderation calls do.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from harness.expect import expect_error, expect_ok
from harness.v2client import DEFAULT_ROOM, Client, Identity, Persona, decrypt_challenge

PersonaFactory = Callable[..., Persona]
CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]

MAIN = DEFAULT_ROOM
LOBBY = "lobby"
QUIET = "quiet"


# --------------------------------------------------------------------------- helpers


def moderators_of(c: Client, reader: Persona) -> list[str]:
    """GET /moderators of the reader's room."""
    result = expect_ok(c.request("GET", "moderators", room=reader.room, token=reader.token))
    return result["moderators"]


def block_list_of(c: Client, reader: Persona) -> list[str]:
    """GET /block_list of the reader's room (the reference server's key)."""
    result = expect_ok(c.request("GET", "block_list", room=reader.room, token=reader.token))
    return result["banned_members"]


def poll_entries(c: Client, *personas: Persona) -> list[dict[str, Any]]:
    """One compact_poll with an entry per persona (its room and token), no cursors."""
    result = expect_ok(
        c.compact_poll([{"room_id": p.room, "auth_token": p.token} for p in personas])
    )
    return result["results"]


def ban(c: Client, moderator: Persona, public_key: str) -> dict[str, Any]:
    """POST /block_list in the moderator's room."""
    return c.request(
        "POST",
        "block_list",
        body={"public_key": public_key},
        room=moderator.room,
        token=moderator.token,
    )


def unban(c: Client, moderator: Persona, public_key: str) -> dict[str, Any]:
    """DELETE /block_list/:pk in the moderator's room."""
    return c.request(
        "DELETE", f"block_list/{public_key}", room=moderator.room, token=moderator.token
    )


def add_moderator(c: Client, by: Persona, public_key: str, room: str | None = None) -> dict:
    """POST /moderators; the body's room_id defaults to the caller's room."""
    return c.request(
        "POST",
        "moderators",
        body={"public_key": public_key, "room_id": room or by.room},
        room=by.room,
        token=by.token,
    )


def remove_moderator(c: Client, by: Persona, public_key: str) -> dict[str, Any]:
    """DELETE /moderators/:pk, the room taken from the Room header."""
    return c.request("DELETE", f"moderators/{public_key}", room=by.room, token=by.token)


def post(c: Client, author: Persona) -> int:
    """Post a fresh message as the author; returns its server_id."""
    result = expect_ok(c.post_message(author.identity, author.token, author.room))
    return result["message"]["server_id"]


def message_ids(c: Client, reader: Persona) -> list[int]:
    """server_ids of the newest messages of the reader's room."""
    result = expect_ok(c.request("GET", "messages", room=reader.room, token=reader.token))
    return [m["server_id"] for m in result["messages"]]


def can_moderate(c: Client, persona: Persona) -> bool:
    """Whether the persona's token may ban (tried on a throwaway key)."""
    result = ban(c, persona, Identity.generate().session_id)
    assert result["status_code"] in (200, 403), result
    return result["status_code"] == 200


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lobby(cli: CliRunner) -> str:
    """A second room, to show that moderators and bans are per room."""
    cli("rooms", "add", LOBBY, "Lobby")
    return LOBBY


@pytest.fixture(scope="module")
def lobby_moderator_identity(cli: CliRunner, lobby: str) -> Identity:
    """A moderator of the lobby only."""
    identity = Identity.generate()
    cli("moderators", "add", identity.session_id, lobby)
    return identity


@pytest.fixture
def lobby_moderator(make_persona: PersonaFactory, lobby_moderator_identity: Identity) -> Persona:
    """The lobby's moderator, with a fresh lobby token."""
    return make_persona(lobby_moderator_identity, room=LOBBY)


@pytest.fixture(scope="module")
def quiet_moderator_identity(cli: CliRunner) -> Identity:
    """The one and only moderator of a room no test changes: its list is known exactly."""
    cli("rooms", "add", QUIET, "Quiet")
    identity = Identity.generate()
    cli("moderators", "add", identity.session_id, QUIET)
    return identity


# --------------------------------------------------------------------------- GET /moderators


def test_member_reads_the_exact_moderator_list(
    client: Client, make_persona: PersonaFactory, quiet_moderator_identity: Identity
) -> None:
    member = make_persona(room=QUIET)
    result = client.request("GET", "moderators", room=QUIET, token=member.token)
    assert result == {"status_code": 200, "moderators": [quiet_moderator_identity.session_id]}


def test_compact_poll_carries_the_same_moderator_list(
    client: Client, make_persona: PersonaFactory, quiet_moderator_identity: Identity
) -> None:
    member = make_persona(room=QUIET)
    (entry,) = poll_entries(client, member)
    assert entry["status_code"] == 200, entry
    assert entry["moderators"] == [quiet_moderator_identity.session_id]


# --------------------------------------------------------------------------- POST /moderators


def test_moderator_adds_a_moderator_listed_by_get_moderators_and_compact_poll(
    client: Client, setup_client: Client, moderator: Persona, user: Persona
) -> None:
    assert user.session_id not in moderators_of(setup_client, user)

    assert add_moderator(client, moderator, user.session_id) == {"status_code": 200}

    listed = moderators_of(setup_client, user)
    assert user.session_id in listed
    assert moderator.session_id in listed
    (entry,) = poll_entries(setup_client, user)
    assert user.session_id in entry["moderators"]


def test_new_moderator_has_the_rights_at_once_with_the_token_it_holds(
    client: Client, setup_client: Client, moderator: Persona, user: Persona
) -> None:
    assert not can_moderate(setup_client, user)
    expect_ok(add_moderator(client, moderator, user.session_id))
    assert can_moderate(setup_client, user)


def test_adding_an_existing_moderator_again_answers_200_and_lists_it_once(
    client: Client, setup_client: Client, moderator: Persona, user: Persona
) -> None:
    assert add_moderator(client, moderator, user.session_id) == {"status_code": 200}
    assert add_moderator(client, moderator, user.session_id) == {"status_code": 200}
    assert moderators_of(setup_client, user).count(user.session_id) == 1


def test_member_cannot_add_a_moderator(
    client: Client, setup_client: Client, user: Persona, other_user: Persona
) -> None:
    expect_error(add_moderator(client, user, other_user.session_id), 403)
    assert other_user.session_id not in moderators_of(setup_client, user)
    expect_error(add_moderator(client, user, user.session_id), 403)
    assert user.session_id not in moderators_of(setup_client, user)


def test_add_moderator_acts_in_the_room_named_in_the_body(
    client: Client,
    setup_client: Client,
    make_persona: PersonaFactory,
    moderator: Persona,
    lobby_moderator: Persona,
) -> None:
    """The right is checked, and the key added, in the body's room_id (the reference
    server's rule), whatever the Room header says."""
    target = Identity.generate().session_id
    lobby_reader = make_persona(room=LOBBY)
    # The main moderator's token is a main token: in the lobby it is unknown.
    expect_error(add_moderator(client, moderator, target, room=LOBBY), 401)
    # Authenticated in the lobby, the main moderator is only a member there.
    as_lobby_member = make_persona(moderator.identity, room=LOBBY)
    expect_error(add_moderator(client, as_lobby_member, target, room=LOBBY), 403)
    assert target not in moderators_of(setup_client, lobby_reader)

    # The lobby's moderator, sending Room: main, adds to the lobby and not to main.
    result = client.request(
        "POST",
        "moderators",
        body={"public_key": target, "room_id": LOBBY},
        room=MAIN,
        token=lobby_moderator.token,
    )
    assert result == {"status_code": 200}
    assert target in moderators_of(setup_client, lobby_reader)
    assert target not in moderators_of(setup_client, moderator)


def test_add_moderator_to_an_unknown_room_is_404(client: Client, moderator: Persona) -> None:
    target = Identity.generate().session_id
    expect_error(add_moderator(client, moderator, target, room="no_such_room"), 404)


@pytest.mark.parametrize(
    "room_id",
    [
        pytest.param(5, id="number"),
        pytest.param(["main"], id="list"),
        pytest.param({"id": "main"}, id="object"),
    ],
)
def test_add_moderator_with_a_room_id_that_is_not_a_string_is_400(
    client: Client, moderator: Persona, room_id: object
) -> None:
    result = client.request(
        "POST",
        "moderators",
        body={"public_key": Identity.generate().session_id, "room_id": room_id},
        room=MAIN,
        token=moderator.token,
    )
    expect_error(result, 400)


# --------------------------------------------------------------------------- DELETE /moderators


def test_moderator_removes_a_moderator_who_loses_the_rights_at_once(
    client: Client, setup_client: Client, moderator: Persona, user: Persona
) -> None:
    expect_ok(add_moderator(setup_client, moderator, user.session_id))
    assert can_moderate(setup_client, user)

    assert remove_moderator(client, moderator, user.session_id) == {"status_code": 200}

    assert user.session_id not in moderators_of(setup_client, user)
    (entry,) = poll_entries(setup_client, user)
    assert user.session_id not in entry["moderators"]
    assert not can_moderate(setup_client, user)


def test_member_cannot_remove_a_moderator(
    client: Client, setup_client: Client, user: Persona, moderator: Persona
) -> None:
    expect_error(remove_moderator(client, user, moderator.session_id), 403)
    assert moderator.session_id in moderators_of(setup_client, user)
    assert can_moderate(setup_client, moderator)


def test_remove_moderator_acts_in_the_room_of_the_room_header(
    client: Client,
    setup_client: Client,
    make_persona: PersonaFactory,
    moderator: Persona,
    lobby_moderator: Persona,
) -> None:
    both = make_persona()
    expect_ok(add_moderator(setup_client, moderator, both.session_id))
    expect_ok(add_moderator(setup_client, lobby_moderator, both.session_id))

    assert remove_moderator(client, moderator, both.session_id) == {"status_code": 200}

    assert both.session_id not in moderators_of(setup_client, moderator)
    assert both.session_id in moderators_of(setup_client, lobby_moderator)


# --------------------------------------------------------------------------- bans


def test_ban_locks_the_key_out_of_every_call_and_out_of_new_tokens(
    client: Client, setup_client: Client, moderator: Persona, user: Persona
) -> None:
    post(setup_client, user)

    assert ban(client, moderator, user.session_id) == {"status_code": 200}

    def as_victim(method: str, endpoint: str, body: object | None = None) -> int:
        return client.request(method, endpoint, body=body, room=MAIN, token=user.token)[
            "status_code"
        ]

    (entry,) = poll_entries(client, user)
    seen = {
        "GET messages": as_victim("GET", "messages"),
        "POST messages": client.post_message(user.identity, user.token, MAIN)["status_code"],
        "GET deleted_messages": as_victim("GET", "deleted_messages"),
        "GET member_count": as_victim("GET", "member_count"),
        "GET moderators": as_victim("GET", "moderators"),
        "GET block_list": as_victim("GET", "block_list"),
        "POST files": as_victim("POST", "files", {"file": "aGVsbG8="}),
        "compact_poll entry": entry["status_code"],
        "auth_token_challenge": client.request(
            "GET", f"auth_token_challenge?public_key={user.session_id}", room=MAIN
        )["status_code"],
    }
    assert seen == dict.fromkeys(seen, 403)
    assert {k: entry.get(k) for k in ("room_id", "messages", "deletions", "moderators")} == {
        "room_id": MAIN,
        "messages": [],
        "deletions": [],
        "moderators": [],
    }
    assert user.session_id in block_list_of(setup_client, moderator)


def test_a_challenge_fetched_before_the_ban_cannot_be_claimed_after_it(
    client: Client, setup_client: Client, moderator: Persona
) -> None:
    identity = Identity.generate()
    challenge = expect_ok(
        client.request("GET", f"auth_token_challenge?public_key={identity.session_id}", room=MAIN)
    )["challenge"]
    token = decrypt_challenge(identity, challenge["ciphertext"], challenge["ephemeral_public_key"])
    expect_ok(ban(setup_client, moderator, identity.session_id))

    claim = client.request(
        "POST", "claim_auth_token", body={"public_key": identity.session_id}, room=MAIN, token=token
    )
    expect_error(claim, 403)
    # Nothing was claimed: the token is no live token of the room.
    expect_error(client.request("GET", "messages", room=MAIN, token=token), 401)


def test_member_cannot_ban(
    client: Client, setup_client: Client, user: Persona, other_user: Persona, moderator: Persona
) -> None:
    expect_error(ban(client, user, other_user.session_id), 403)
    assert other_user.session_id not in block_list_of(setup_client, moderator)
    assert expect_ok(setup_client.request("GET", "messages", room=MAIN, token=other_user.token))


def test_banning_a_banned_key_answers_200_with_a_json_body(
    client: Client, setup_client: Client, moderator: Persona, user: Persona
) -> None:
    assert ban(client, moderator, user.session_id) == {"status_code": 200}
    assert ban(client, moderator, user.session_id) == {"status_code": 200}
    assert block_list_of(setup_client, moderator).count(user.session_id) == 1


@pytest.mark.parametrize(
    "ever_seen", [pytest.param(True, id="known-member"), pytest.param(False, id="unknown-key")]
)
def test_unbanning_a_key_that_is_not_banned_answers_200_with_a_json_body(
    client: Client, moderator: Persona, make_persona: PersonaFactory, ever_seen: bool
) -> None:
    key = make_persona().session_id if ever_seen else Identity.generate().session_id
    assert unban(client, moderator, key) == {"status_code": 200}


def test_block_list_answers_the_same_list_under_both_keys(
    client: Client, setup_client: Client, moderator: Persona, user: Persona
) -> None:
    victims = [Identity.generate().session_id for _ in range(2)]
    before = set(block_list_of(setup_client, moderator))
    for key in victims:
        expect_ok(ban(setup_client, moderator, key))

    result = client.request("GET", "block_list", room=MAIN, token=user.token)

    assert set(result) == {"status_code", "banned_members", "moderators"}
    assert result["status_code"] == 200
    assert result["banned_members"] == result["moderators"]
    assert len(set(result["banned_members"])) == len(result["banned_members"])
    assert set(result["banned_members"]) == before | set(victims)


def test_unban_lets_the_key_back_in_with_its_old_token_and_new_ones(
    client: Client, setup_client: Client, moderator: Persona, user: Persona
) -> None:
    expect_ok(ban(setup_client, moderator, user.session_id))
    expect_error(setup_client.request("GET", "messages", room=MAIN, token=user.token), 403)

    assert unban(client, moderator, user.session_id) == {"status_code": 200}

    expect_ok(setup_client.request("GET", "messages", room=MAIN, token=user.token))
    new_token = setup_client.authenticate(user.identity, MAIN)
    expect_ok(setup_client.request("GET", "messages", room=MAIN, token=new_token))
    assert user.session_id not in block_list_of(setup_client, moderator)


def test_member_cannot_unban(
    client: Client, setup_client: Client, moderator: Persona, user: Persona, banned_user: Persona
) -> None:
    expect_error(unban(client, user, banned_user.session_id), 403)
    assert banned_user.session_id in block_list_of(setup_client, moderator)
    expect_error(setup_client.request("GET", "messages", room=MAIN, token=banned_user.token), 403)


def test_ban_and_delete_all_bans_and_deletes_every_message_of_the_key(
    client: Client,
    setup_client: Client,
    moderator: Persona,
    user: Persona,
    other_user: Persona,
) -> None:
    doomed = [post(setup_client, user), post(setup_client, user)]
    kept = post(setup_client, other_user)

    result = client.request(
        "POST",
        "ban_and_delete_all",
        body={"public_key": user.session_id},
        room=MAIN,
        token=moderator.token,
    )
    assert result == {"status_code": 200}

    remaining = message_ids(setup_client, other_user)
    assert kept in remaining
    assert not set(doomed) & set(remaining)
    deleted = expect_ok(
        setup_client.request(
            "GET",
            f"deleted_messages?from_server_id={min(doomed) - 1}",
            room=MAIN,
            token=other_user.token,
        )
    )["ids"]
    assert set(doomed) <= set(deleted)
    assert kept not in deleted
    (entry,) = poll_entries(setup_client, other_user)
    assert set(doomed) <= set(entry["deletions"])
    assert not set(doomed) & {m["server_id"] for m in entry["messages"]}
    # ... and the key is banned.
    assert user.session_id in block_list_of(setup_client, other_user)
    challenge = setup_client.request(
        "GET", f"auth_token_challenge?public_key={user.session_id}", room=MAIN
    )
    expect_error(challenge, 403)


def test_member_cannot_ban_and_delete_all(
    client: Client,
    setup_client: Client,
    moderator: Persona,
    user: Persona,
    other_user: Persona,
) -> None:
    target = post(setup_client, other_user)
    result = client.request(
        "POST",
        "ban_and_delete_all",
        body={"public_key": other_user.session_id},
        room=MAIN,
        token=user.token,
    )
    expect_error(result, 403)
    assert target in message_ids(setup_client, user)
    assert other_user.session_id not in block_list_of(setup_client, moderator)


@pytest.mark.parametrize("endpoint", ["block_list", "ban_and_delete_all"])
def test_a_moderator_cannot_be_banned(
    client: Client,
    setup_client: Client,
    moderator: Persona,
    user: Persona,
    endpoint: str,
) -> None:
    """Banning a moderator of the room is 400 (community.ban): remove them first."""
    expect_ok(add_moderator(setup_client, moderator, user.session_id))
    message = post(setup_client, user)

    result = client.request(
        "POST", endpoint, body={"public_key": user.session_id}, room=MAIN, token=moderator.token
    )
    expect_error(result, 400)
    # Not even oneself.
    result = client.request(
        "POST",
        endpoint,
        body={"public_key": moderator.session_id},
        room=MAIN,
        token=moderator.token,
    )
    expect_error(result, 400)

    assert not {user.session_id, moderator.session_id} & set(block_list_of(setup_client, moderator))
    assert message in message_ids(setup_client, user)
    assert can_moderate(setup_client, user)


def test_making_a_banned_key_moderator_lifts_the_ban(
    client: Client, setup_client: Client, moderator: Persona, banned_user: Persona
) -> None:
    assert add_moderator(client, moderator, banned_user.session_id) == {"status_code": 200}
    assert banned_user.session_id not in block_list_of(setup_client, moderator)
    assert can_moderate(setup_client, banned_user)


# --------------------------------------------------------------------------- per room


def test_a_ban_applies_only_to_its_room(
    client: Client,
    setup_client: Client,
    make_persona: PersonaFactory,
    moderator: Persona,
    lobby_moderator: Persona,
) -> None:
    in_main = make_persona()
    in_lobby = make_persona(in_main.identity, room=LOBBY)

    expect_ok(ban(client, moderator, in_main.session_id))

    main_entry, lobby_entry = poll_entries(client, in_main, in_lobby)
    assert (main_entry["room_id"], main_entry["status_code"]) == (MAIN, 403)
    assert (lobby_entry["room_id"], lobby_entry["status_code"]) == (LOBBY, 200)
    post(client, in_lobby)
    client.authenticate(in_main.identity, LOBBY)  # a new lobby token: fails if refused
    assert in_main.session_id not in block_list_of(client, lobby_moderator)
    assert in_main.session_id in block_list_of(client, moderator)


def test_an_unban_applies_only_to_its_room(
    client: Client,
    setup_client: Client,
    make_persona: PersonaFactory,
    moderator: Persona,
    lobby_moderator: Persona,
) -> None:
    in_main = make_persona()
    in_lobby = make_persona(in_main.identity, room=LOBBY)
    expect_ok(ban(setup_client, moderator, in_main.session_id))
    expect_ok(ban(setup_client, lobby_moderator, in_main.session_id))

    expect_ok(unban(client, lobby_moderator, in_main.session_id))

    main_entry, lobby_entry = poll_entries(client, in_main, in_lobby)
    assert (main_entry["status_code"], lobby_entry["status_code"]) == (403, 200)


def test_moderators_are_per_room(
    client: Client,
    make_persona: PersonaFactory,
    moderator: Persona,
    lobby_moderator: Persona,
) -> None:
    member = make_persona()
    member_in_lobby = make_persona(member.identity, room=LOBBY)

    main_entry, lobby_entry = poll_entries(client, member, member_in_lobby)

    assert moderator.session_id in main_entry["moderators"]
    assert moderator.session_id not in lobby_entry["moderators"]
    assert lobby_moderator.session_id in lobby_entry["moderators"]
    assert lobby_moderator.session_id not in main_entry["moderators"]
    assert lobby_entry["moderators"] == moderators_of(client, member_in_lobby)


# --------------------------------------------------------------------------- admin CLI


def test_moderator_added_and_removed_with_the_cli_takes_effect_at_once(
    client: Client, cli: CliRunner, user: Persona
) -> None:
    """The running server keeps nothing in memory: the CLI's change applies to the
    very next request, on the token the user already holds."""
    assert not can_moderate(client, user)

    cli("moderators", "add", user.session_id, MAIN)
    assert can_moderate(client, user)
    assert user.session_id in moderators_of(client, user)

    cli("moderators", "delete", user.session_id, MAIN)
    assert not can_moderate(client, user)
    assert user.session_id not in moderators_of(client, user)


# --------------------------------------------------------------------------- malformed keys

_BAD_KEYS_IN_TEXT = [
    pytest.param("05" + "a" * 63, id="65-chars"),
    pytest.param("05" + "a" * 65, id="67-chars"),
    pytest.param("a" * 64, id="no-05-prefix"),
    pytest.param("06" + "a" * 64, id="06-prefix"),
    pytest.param("05" + "g" * 64, id="not-hex"),
    pytest.param("hello", id="word"),
]
_BAD_KEYS_IN_JSON_ONLY = [
    pytest.param("", id="empty"),
    pytest.param(5, id="number"),
    pytest.param(None, id="null"),
    pytest.param(["05" + "a" * 64], id="list"),
]
_MISSING = object()


def _bad_key_cases() -> list[Any]:
    """(method, endpoint template, where the key goes, the key) for each bad key."""
    cases = []
    for endpoint in ("block_list", "ban_and_delete_all", "moderators"):
        for key_param in [*_BAD_KEYS_IN_TEXT, *_BAD_KEYS_IN_JSON_ONLY]:
            label = f"POST /{endpoint}-{key_param.id}"
            cases.append(pytest.param("POST", endpoint, key_param.values[0], id=label))
        cases.append(pytest.param("POST", endpoint, _MISSING, id=f"POST /{endpoint}-missing"))
    for endpoint in ("block_list", "moderators"):
        for key_param in _BAD_KEYS_IN_TEXT:
            label = f"DELETE /{endpoint}/:pk-{key_param.id}"
            cases.append(pytest.param("DELETE", endpoint, key_param.values[0], id=label))
    return cases


@pytest.mark.parametrize(("method", "endpoint", "key"), _bad_key_cases())
def test_malformed_public_key_is_400(
    client: Client, moderator: Persona, method: str, endpoint: str, key: object
) -> None:
    if method == "DELETE":
        result = client.request("DELETE", f"{endpoint}/{key}", room=MAIN, token=moderator.token)
    else:
        body: dict[str, object] = {} if key is _MISSING else {"public_key": key}
        if endpoint == "moderators":
            body["room_id"] = MAIN
        result = client.request("POST", endpoint, body=body, room=MAIN, token=moderator.token)
    expect_error(result, 400)
