"""One room through both APIs: what the v2 API does is seen through the community API
(v3), and the other way round.

docs/spec/SPEC-v3.md sections 1 ("the v3 API and the v2 API serve the same rooms,
messages, files, moderators and bans. A message posted through either is read
through both; a deletion through either is seen by both"; "a v2 `server_id` is
the v3 `id`"; "a v2 message's v3 `posted` is its server arrival time; a v3
message's v2 `timestamp` is `posted` in milliseconds") and 2 (a moderator named
by Session id applies to that person's blinded identity):

- a v2 post reads through v3 under its `server_id`, by its `05` Session id, with
  `posted` the server's arrival time in seconds (not the client's timestamp),
  `data` and `signature` as posted, and moves the room's seqno;
- a v3 post reads through v2 under its `id` as `server_id`, by its blinded id,
  with `timestamp` = `posted` in whole milliseconds, `data` and `signature` as
  posted; a v3 whisper never reaches v2;
- a v2 deletion is a deletion row in v3's `since`; a v3 deletion is in v2's
  deleted messages (and the message leaves v2's lists);
- a moderator added by Session id with the v2 CLI (`opengroup moderators add
  05... main`) moderates through v3 signing with their blinded id, and through
  v2 with their Session id.

Every test that uses `community` runs the v3 side over direct HTTP and over onion
v4; the v2 side goes over direct HTTP (its own tests cover its transports).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from harness.communityclient import BlindedIdentity, CommunityClient
from harness.expect import expect_ok, expect_refused
from harness.flows import (
    DELETION_KEYS,
    MESSAGE_KEYS,
    ROOM,
    CliRunner,
    posted,
    room_info,
    room_seqno,
    since,
)
from harness.v2client import DEFAULT_ROOM, Client, Identity, Persona

PersonaFactory = Callable[..., Persona]
OLD_CLIENT_TIMESTAMP = 1_600_000_000_123  # a client clock far from the server's


# --------------------------------------------------------------------------- helpers


def v2_post(client: Client, persona: Persona) -> dict[str, Any]:
    """A v2 post (stamped with a client clock far in the past); the stored message."""
    result = client.post_message(
        persona.identity, persona.token, persona.room, timestamp=OLD_CLIENT_TIMESTAMP
    )
    assert result["status_code"] == 200, result
    message: dict[str, Any] = result["message"]
    return message


def v2_messages_from(client: Client, persona: Persona, first_id: int) -> list[dict[str, Any]]:
    result = client.request(
        "GET", f"messages?from_server_id={first_id - 1}", room=persona.room, token=persona.token
    )
    assert result["status_code"] == 200, result
    found: list[dict[str, Any]] = result["messages"]
    return found


def v2_deletions_from(client: Client, persona: Persona, first_id: int) -> list[Any]:
    result = client.request(
        "GET",
        f"deleted_messages?from_server_id={first_id - 1}",
        room=persona.room,
        token=persona.token,
    )
    assert result["status_code"] == 200, result
    found: list[Any] = result["ids"]
    return found


def v2_identity_of(person: BlindedIdentity) -> Identity:
    """The same person as the v2 API knows them: the X25519 key behind their Session id."""
    identity = Identity(X25519PrivateKey.from_private_bytes(person.x25519_private))
    assert identity.session_id == person.session_id
    return identity


# --------------------------------------------------------------------------- posts


def test_a_v2_post_reads_through_v3_under_its_server_id_and_arrival_time(
    community: CommunityClient, setup_client: Client, user: Persona, alice: BlindedIdentity
) -> None:
    cursor = room_seqno(community)
    started = time.time()

    message = v2_post(setup_client, user)

    finished = time.time()
    seen = expect_ok(community.get(f"{ROOM}/message/{message['server_id']}", identity=alice))
    assert set(seen) == MESSAGE_KEYS
    assert seen["id"] == message["server_id"]
    assert seen["session_id"] == user.session_id
    assert (seen["data"], seen["signature"]) == (message["data"], message["signature"])
    assert isinstance(seen["posted"], float)
    assert started - 1 <= seen["posted"] <= finished + 1
    assert seen["seqno"] == cursor + 1 == room_seqno(community)
    assert [m for m in since(community, alice, cursor) if m["id"] == seen["id"]] == [seen]


def test_a_v3_post_reads_through_v2_with_posted_in_milliseconds(
    community: CommunityClient, setup_client: Client, user: Persona, alice: BlindedIdentity
) -> None:
    stored = posted(community, alice)

    [seen] = [
        m
        for m in v2_messages_from(setup_client, user, stored["id"])
        if m["server_id"] == stored["id"]
    ]

    assert seen == {
        "server_id": stored["id"],
        "public_key": alice.blinded_id(community.server_pk),
        "timestamp": int(stored["posted"] * 1000),
        "data": stored["data"],
        "signature": stored["signature"],
    }


def test_a_v3_whisper_never_reaches_v2(
    community: CommunityClient,
    setup_client: Client,
    user: Persona,
    room_moderator: BlindedIdentity,
) -> None:
    whisper = posted(community, room_moderator, whisper_mods=True)
    after = posted(community, room_moderator)

    listed = [m["server_id"] for m in v2_messages_from(setup_client, user, whisper["id"])]
    polled = setup_client.compact_poll(
        [
            {
                "room_id": DEFAULT_ROOM,
                "auth_token": user.token,
                "from_message_server_id": whisper["id"] - 1,
            }
        ]
    )

    assert listed == [after["id"]]
    assert [m["server_id"] for m in polled["results"][0]["messages"]] == [after["id"]]


def test_v2_and_v3_posts_share_one_sequence_of_ids(
    community: CommunityClient, setup_client: Client, user: Persona, alice: BlindedIdentity
) -> None:
    first = posted(community, alice)["id"]
    second = v2_post(setup_client, user)["server_id"]
    third = posted(community, alice)["id"]

    assert first < second < third
    assert [m["server_id"] for m in v2_messages_from(setup_client, user, first)] == [
        first,
        second,
        third,
    ]
    recent = expect_ok(community.get(f"{ROOM}/messages/recent?limit=3", identity=alice))
    assert [m["id"] for m in recent] == [third, second, first]


def test_a_v3_reaction_to_a_v2_post_is_kept(
    community: CommunityClient, setup_client: Client, user: Persona, alice: BlindedIdentity
) -> None:
    message = v2_post(setup_client, user)

    answer = expect_ok(community.put(f"{ROOM}/reaction/{message['server_id']}/👍", identity=alice))

    assert answer["added"] is True
    reactions = expect_ok(community.get(f"{ROOM}/message/{message['server_id']}"))["reactions"]
    assert reactions["👍"]["count"] == 1


# --------------------------------------------------------------------------- deletions


def test_a_v2_deletion_is_a_deletion_row_in_v3(
    community: CommunityClient, setup_client: Client, user: Persona, alice: BlindedIdentity
) -> None:
    message = v2_post(setup_client, user)
    cursor = room_seqno(community)

    result = setup_client.request(
        "DELETE", f"messages/{message['server_id']}", room=user.room, token=user.token
    )

    assert result["status_code"] == 200, result
    [row] = [m for m in since(community, alice, cursor) if m["id"] == message["server_id"]]
    assert set(row) == DELETION_KEYS
    assert (row["data"], row["deleted"], row["seqno"]) == (None, True, cursor + 1)
    assert row["session_id"] == user.session_id
    expect_refused(community.get(f"{ROOM}/message/{message['server_id']}"), 404)


def test_a_v3_deletion_is_in_v2s_deleted_messages(
    community: CommunityClient, setup_client: Client, user: Persona, alice: BlindedIdentity
) -> None:
    stored = posted(community, alice)
    assert [m["server_id"] for m in v2_messages_from(setup_client, user, stored["id"])] == [
        stored["id"]
    ]

    expect_ok(community.delete(f"{ROOM}/message/{stored['id']}", identity=alice))

    assert stored["id"] in v2_deletions_from(setup_client, user, stored["id"])
    assert v2_messages_from(setup_client, user, stored["id"]) == []


def test_a_v2_moderator_deletes_a_v3_post(
    community: CommunityClient, setup_client: Client, moderator: Persona, alice: BlindedIdentity
) -> None:
    stored = posted(community, alice)
    cursor = room_seqno(community)

    result = setup_client.request(
        "DELETE", f"messages/{stored['id']}", room=moderator.room, token=moderator.token
    )

    assert result["status_code"] == 200, result
    assert [m["id"] for m in since(community, alice, cursor)] == [stored["id"]]


# --------------------------------------------------------------------------- moderators


def test_a_moderator_named_by_session_id_in_the_cli_moderates_through_both_apis(
    community: CommunityClient,
    setup_client: Client,
    cli: CliRunner,
    make_persona: PersonaFactory,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    person = BlindedIdentity.generate()
    cli("moderators", "add", person.session_id, DEFAULT_ROOM)
    first, second = posted(community, alice), posted(community, bob)

    v3_delete = community.delete(f"{ROOM}/message/{first['id']}", identity=person)
    v2_person = make_persona(v2_identity_of(person))
    v2_delete = setup_client.request(
        "DELETE", f"messages/{second['id']}", room=DEFAULT_ROOM, token=v2_person.token
    )

    assert expect_ok(v3_delete) == {}
    assert v2_delete["status_code"] == 200, v2_delete
    info = room_info(community, person)
    assert info["moderator"] is True
    assert person.blinded_id(community.server_pk) in info["moderators"]
    listed = setup_client.request("GET", "moderators", room=DEFAULT_ROOM, token=v2_person.token)
    assert person.session_id in listed["moderators"]


@pytest.mark.parametrize("v2_first", [True, False], ids=["v2-token-first", "v3-first"])
@pytest.mark.parametrize("scope", ["room", "global"])
def test_a_ban_of_someones_blinded_id_bans_their_v2_tokens_too(
    community: CommunityClient,
    setup_client: Client,
    cli: CliRunner,
    make_persona: PersonaFactory,
    v2_first: bool,
    scope: str,
) -> None:
    """Today's clients show moderators a blinded id: whoever it belongs to cannot carry
    on through the v2 API under their Session id (a v2 token's claim links the two),
    whichever of the two they used first."""
    person, moderator = BlindedIdentity.generate(), BlindedIdentity.generate()
    cli("moderators", "add", moderator.session_id, "--global")
    v2_person = make_persona(v2_identity_of(person)) if v2_first else None
    posted(community, person)  # their blinded id signs here
    if v2_person is None:
        v2_person = make_persona(v2_identity_of(person))
    assert (
        setup_client.request("GET", "messages", room=DEFAULT_ROOM, token=v2_person.token)[
            "status_code"
        ]
        == 200
    )

    where = {"rooms": [DEFAULT_ROOM]} if scope == "room" else {"global": True}
    blinded_id = person.blinded_id(community.server_pk)
    expect_ok(community.post(f"/user/{blinded_id}/ban", where, identity=moderator))

    for answer in (
        setup_client.request("GET", "messages", room=DEFAULT_ROOM, token=v2_person.token),
        setup_client.post_message(v2_person.identity, v2_person.token, DEFAULT_ROOM),
    ):
        assert answer["status_code"] == 403, answer
    expect_ok(community.post(f"/user/{blinded_id}/unban", where, identity=moderator))
    assert (
        setup_client.request("GET", "messages", room=DEFAULT_ROOM, token=v2_person.token)[
            "status_code"
        ]
        == 200
    )


def test_a_v2_only_moderator_is_listed_by_session_id_in_v3(
    community: CommunityClient, moderator_identity: Identity
) -> None:
    assert moderator_identity.session_id in room_info(community)["moderators"]


@pytest.mark.parametrize("api", ["v2", "v3"])
def test_a_plain_user_of_either_api_may_not_delete_the_others_post(
    community: CommunityClient,
    setup_client: Client,
    user: Persona,
    alice: BlindedIdentity,
    api: str,
) -> None:
    if api == "v2":
        stored = posted(community, alice)
        result = setup_client.request(
            "DELETE", f"messages/{stored['id']}", room=user.room, token=user.token
        )
        assert result["status_code"] == 403, result
        assert expect_ok(community.get(f"{ROOM}/message/{stored['id']}"))["id"] == stored["id"]
    else:
        message = v2_post(setup_client, user)
        answer = community.delete(f"{ROOM}/message/{message['server_id']}", identity=alice)
        expect_refused(answer, 403)
        seen = expect_ok(community.get(f"{ROOM}/message/{message['server_id']}"))
        assert base64.b64decode(seen["data"]) == base64.b64decode(message["data"])
