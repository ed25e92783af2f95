"""Spam defences (docs/SECURITY.md "Spam defences"), each at its boundary, on the real
server through both ways in of the community API (direct HTTP, onion v4) and, where a
room rule applies to them too, the v2 API.

- Slow mode (a room's ``--slow-mode``, else ``slow_mode_seconds``): one post per
  poster per N seconds; the next is 429 with ``Retry-After`` and a short reason, and
  gets through once that time has passed; moderators are exempt; v2 posts too.
- New posters wait (``--new-poster-wait``, else ``new_poster_wait_seconds``): a post
  from an id first seen less than N seconds ago is 429 with the time left; v2 keys are
  seen from their first claimed token.
- The cap on new identities (``new_identities_per_minute``): new ids beyond the cap may
  neither post nor send DMs (429); an id that spoke before, or was first seen
  ``new_identity_seconds`` ago, is not new.
- DMs: a globally banned key can neither send nor be written to (404 as for an
  unknown id), until the ban runs out; a recipient must have been seen; a per-sender
  rate (``dm_rate_limit_count`` per ``dm_rate_limit_seconds``).
- Banning from every room and deleting everything someone posted in one request: a
  ``/sequence`` of the global ban and ``DELETE /rooms/all/:sid``; the CLI's
  ``bans add SID --global --delete-messages``; both APIs see the deletions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from harness import probe
from harness.communityclient import BlindedIdentity, CommunityAnswer, CommunityClient
from harness.expect import expect_ok, expect_rate_limited, expect_refused
from harness.flows import b64, post_message, posted, start_server
from harness.server import Backend, ServerProcess
from harness.v2client import Client, Identity

SLOW_ROOM, WAIT_ROOM, OTHER_ROOM = "slow", "fresh", "other"
SLOW_SECONDS = 2
WAIT_SECONDS = 3
DM_COUNT, DM_SECONDS = 3, 4
BAN_SECONDS = 5
SERVER_ENV = {
    "OPENGROUP_DM_RATE_LIMIT_COUNT": str(DM_COUNT),
    "OPENGROUP_DM_RATE_LIMIT_SECONDS": str(DM_SECONDS),
}

CliRunner = Callable[..., Any]


# --------------------------------------------------------------------------- helpers


def room_path(token: str) -> str:
    return f"/room/{token}"


def seen(client: CommunityClient, identity: BlindedIdentity) -> str:
    """The identity signs one request (so the server has seen it); its blinded id."""
    assert client.get("/capabilities", identity=identity).status == 200
    return identity.blinded_id(client.server_pk)


def v2_identity(person: BlindedIdentity) -> Identity:
    """The same person as a v2 client: their X25519 key, their 05 id."""
    identity = Identity(X25519PrivateKey.from_private_bytes(person.x25519_private))
    assert identity.session_id == person.session_id
    return identity


def live_ids(client: CommunityClient, reader: BlindedIdentity, token: str) -> set[int]:
    found = expect_ok(client.get(f"{room_path(token)}/messages/recent?limit=256", identity=reader))
    return {m["id"] for m in found if not m.get("deleted")}


def v2_deleted(setup_client: Client, token: str, room: str) -> set[int]:
    answer = setup_client.request("GET", "deleted_messages", room=room, token=token)
    assert answer["status_code"] == 200, answer
    ids = answer["ids"]
    return {item["deleted_message_id"] if isinstance(item, dict) else item for item in ids}


def v2_message_ids(setup_client: Client, token: str, room: str) -> set[int]:
    answer = setup_client.request("GET", "messages", room=room, token=token)
    assert answer["status_code"] == 200, answer
    return {m["server_id"] for m in answer["messages"]}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def rooms(cli: CliRunner) -> None:
    """A room in slow mode, one that makes new posters wait, and one with neither."""
    cli("rooms", "add", SLOW_ROOM, "Slow")
    cli("rooms", "update", SLOW_ROOM, "--slow-mode", str(SLOW_SECONDS))
    cli("rooms", "add", WAIT_ROOM, "Fresh")
    cli("rooms", "update", WAIT_ROOM, "--new-poster-wait", str(WAIT_SECONDS))
    cli("rooms", "add", OTHER_ROOM, "Other")


@pytest.fixture(scope="module")
def room_staff(server: ServerProcess, rooms: None) -> BlindedIdentity:
    """A moderator of the slow and the waiting room."""
    identity = BlindedIdentity.generate()
    server.cli("moderators", "add", identity.session_id, SLOW_ROOM, WAIT_ROOM)
    return identity


@pytest.fixture(scope="module")
def global_moderator(server: ServerProcess) -> BlindedIdentity:
    identity = BlindedIdentity.generate()
    server.cli("moderators", "add", identity.session_id, "--global")
    return identity


@pytest.fixture(scope="module")
def v2(server: ServerProcess) -> Iterator[Client]:
    with server.client("http") as client:
        yield client


# --------------------------------------------------------------------------- slow mode


def test_slow_mode_lets_one_post_through_per_period(
    community: CommunityClient, rooms: None, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    slow = room_path(SLOW_ROOM)
    first = posted(community, alice, room=slow)
    refused = post_message(community, alice, room=slow)
    expect_rate_limited(refused, SLOW_SECONDS)
    assert refused.body.startswith("slow mode: one post per 2 s in this room"), refused.body
    # Someone else is not held back by alice's post, nor alice elsewhere.
    posted(community, bob, room=slow)
    posted(community, alice, room=room_path(OTHER_ROOM))
    # The refusal stored nothing, and once the period has passed the next post goes in.
    assert live_ids(community, bob, SLOW_ROOM) >= {first["id"]}
    time.sleep(first["posted"] + SLOW_SECONDS - time.time() + 0.05)
    second = posted(community, alice, room=slow)
    assert second["id"] > first["id"]


def test_slow_mode_exempts_the_rooms_moderators(
    community: CommunityClient, room_staff: BlindedIdentity
) -> None:
    for _ in range(3):
        posted(community, room_staff, room=room_path(SLOW_ROOM))


def test_slow_mode_holds_v2_posts_too(v2: Client, rooms: None) -> None:
    person = Identity.generate()
    token = v2.authenticate(person, SLOW_ROOM)
    first = v2.post_message(person, token, SLOW_ROOM)
    assert first["status_code"] == 200, first
    refused = v2.post_message(person, token, SLOW_ROOM)
    expect_rate_limited(refused, SLOW_SECONDS, "slow mode")
    time.sleep(SLOW_SECONDS + 0.05)
    assert v2.post_message(person, token, SLOW_ROOM)["status_code"] == 200


def test_a_room_set_back_to_the_default_follows_the_server(
    cli: CliRunner, community: CommunityClient, alice: BlindedIdentity
) -> None:
    token = f"back{os.urandom(3).hex()}"
    cli("rooms", "add", token, "Back")
    shown = cli("rooms", "update", token, "--slow-mode", "60").stdout
    assert "slow mode: 60 s" in shown
    posted(community, alice, room=room_path(token))
    assert post_message(community, alice, room=room_path(token)).status == 429
    shown = cli("rooms", "update", token, "--slow-mode", "default").stdout
    assert "slow mode: off (the server's default)" in shown
    posted(community, alice, room=room_path(token))


@pytest.mark.parametrize("value", ["-1", "soon", str(365 * 24 * 3600 + 1)])
def test_the_cli_refuses_a_bad_rule_value(cli: CliRunner, rooms: None, value: str) -> None:
    result = cli("rooms", "update", OTHER_ROOM, "--slow-mode", value, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and result.stderr.strip()


# --------------------------------------------------------------------------- new posters wait


def test_a_new_poster_waits_until_seen_long_enough(
    community: CommunityClient, rooms: None, alice: BlindedIdentity
) -> None:
    fresh = room_path(WAIT_ROOM)
    seen(community, alice)
    seen_at = time.time()
    refused = post_message(community, alice, room=fresh)
    expect_rate_limited(refused, WAIT_SECONDS)
    assert refused.body.startswith("new here: this room takes posts from ids seen on this server")
    # Elsewhere alice posts at once.
    posted(community, alice, room=room_path(OTHER_ROOM))
    time.sleep(max(seen_at + WAIT_SECONDS - time.time() - 1.0, 0))
    assert post_message(community, alice, room=fresh).status == 429  # a second before
    time.sleep(max(seen_at + WAIT_SECONDS - time.time() + 0.2, 0))
    posted(community, alice, room=fresh)


def test_the_rooms_moderators_need_not_wait(
    community: CommunityClient, room_staff: BlindedIdentity
) -> None:
    posted(community, room_staff, room=room_path(WAIT_ROOM))


def test_a_new_v2_key_waits_from_its_first_token(v2: Client, rooms: None) -> None:
    person = Identity.generate()
    token = v2.authenticate(person, WAIT_ROOM)
    claimed_at = time.time()
    refused = v2.post_message(person, token, WAIT_ROOM)
    expect_rate_limited(refused, WAIT_SECONDS)
    time.sleep(max(claimed_at + WAIT_SECONDS - time.time() + 0.2, 0))
    assert v2.post_message(person, token, WAIT_ROOM)["status_code"] == 200


# --------------------------------------------------------------------------- direct messages


def send_dm(client: CommunityClient, sender: BlindedIdentity, to: str) -> CommunityAnswer:
    return client.post(f"/inbox/{to}", {"message": b64(os.urandom(40))}, identity=sender)


def test_a_dm_goes_only_to_someone_seen_here(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    bob_id = bob.blinded_id(community.server_pk)
    expect_refused(send_dm(community, alice, bob_id), 404, "no such user")
    seen(community, bob)
    assert send_dm(community, alice, bob_id).status == 201


def test_the_dm_rate_limit_per_sender(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    bob_id = seen(community, bob)
    for _ in range(DM_COUNT):
        assert send_dm(community, alice, bob_id).status == 201
    refused = send_dm(community, alice, bob_id)
    expect_rate_limited(refused, DM_SECONDS)
    assert refused.body == f"at most {DM_COUNT} direct messages per {DM_SECONDS} s"
    sent = expect_ok(community.get("/outbox", identity=alice))
    assert len(sent) == DM_COUNT  # the refused one was not stored
    # Served again once the first leaves the window (by the server's clock).
    time.sleep(max(sent[0]["posted_at"] + DM_SECONDS - time.time() + 0.1, 0))
    assert send_dm(community, alice, bob_id).status == 201


def test_a_globally_banned_key_neither_sends_nor_receives_dms(
    community: CommunityClient,
    cli: CliRunner,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    alice_id, bob_id = seen(community, alice), seen(community, bob)
    unknown = BlindedIdentity.generate().blinded_id(community.server_pk)
    cli("bans", "add", bob.session_id, "--global", "--timeout", str(BAN_SECONDS))
    banned_at = time.time()
    # To bob: exactly what an id never seen gets.
    to_banned, to_unknown = send_dm(community, alice, bob_id), send_dm(community, alice, unknown)
    expect_refused(to_banned, 404, "no such user")
    assert (to_banned.status, to_banned.body) == (to_unknown.status, to_unknown.body)
    # From bob, and bob's inbox: refused.
    expect_refused(send_dm(community, bob, alice_id), 403)
    expect_refused(community.get("/inbox", identity=bob), 403)
    # Once the ban has run out, both ways work again.
    time.sleep(max(banned_at + BAN_SECONDS - time.time() + 0.2, 0))
    assert send_dm(community, alice, bob_id).status == 201
    assert send_dm(community, bob, alice_id).status == 201


# --------------------------------------------------------------------------- ban everywhere


def test_one_sequence_bans_from_the_server_and_deletes_everywhere(
    community: CommunityClient,
    v2: Client,
    rooms: None,
    global_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    sid = seen(community, alice)
    mine = {
        token: {posted(community, alice, room=room_path(token))["id"]}
        for token in ("main", OTHER_ROOM)
    }
    reader = Identity.generate()
    reader_token = v2.authenticate(reader, OTHER_ROOM)
    answer = community.sequence(
        [
            {"method": "POST", "path": f"/user/{sid}/ban", "json": {"global": True}},
            {"method": "DELETE", "path": f"/rooms/all/{sid}"},
        ],
        global_moderator,
    )
    items = expect_ok(answer)
    assert [item["code"] for item in items] == [200, 200], items
    deleted = items[1]["body"]
    assert deleted["total"] == 2
    assert deleted["rooms"]["main"] == 1 and deleted["rooms"][OTHER_ROOM] == 1
    for token, ids in mine.items():
        assert not ids & live_ids(community, bob, token)
    assert mine[OTHER_ROOM] <= v2_deleted(v2, reader_token, OTHER_ROOM)
    assert not mine[OTHER_ROOM] & v2_message_ids(v2, reader_token, OTHER_ROOM)
    expect_refused(post_message(community, alice), 403)


def test_the_cli_bans_from_the_server_and_deletes_everything(
    community: CommunityClient,
    v2: Client,
    cli: CliRunner,
    rooms: None,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    """alice posts as a blinded id in two rooms and as her 05 id through v2; the
    operator names her 05 id: everything goes, and both APIs see it."""
    v3_posts = {
        token: posted(community, alice, room=room_path(token))["id"]
        for token in ("main", OTHER_ROOM)
    }
    as_v2 = v2_identity(alice)
    v2_token = v2.authenticate(as_v2, OTHER_ROOM)
    v2_post = v2.post_message(as_v2, v2_token, OTHER_ROOM)
    assert v2_post["status_code"] == 200, v2_post
    reader = Identity.generate()
    reader_token = v2.authenticate(reader, OTHER_ROOM)

    shown = cli("bans", "add", alice.session_id, "--global", "--delete-messages").stdout
    assert f"{alice.session_id} is banned from the whole server (global)" in shown
    assert "deleted 3 messages" in shown, shown

    assert v3_posts["main"] not in live_ids(community, bob, "main")
    gone = {v3_posts[OTHER_ROOM], v2_post["message"]["server_id"]}
    assert not gone & live_ids(community, bob, OTHER_ROOM)
    assert gone <= v2_deleted(v2, reader_token, OTHER_ROOM)
    assert not gone & v2_message_ids(v2, reader_token, OTHER_ROOM)
    expect_refused(post_message(community, alice), 403)
    refused = v2.post_message(as_v2, v2_token, OTHER_ROOM)
    assert refused["status_code"] == 403, refused


def test_the_cli_deletes_in_the_rooms_named(
    community: CommunityClient, cli: CliRunner, rooms: None, alice: BlindedIdentity
) -> None:
    here = posted(community, alice, room=room_path(OTHER_ROOM))["id"]
    there = posted(community, alice)["id"]
    shown = cli("bans", "add", alice.session_id, OTHER_ROOM, "--delete-messages").stdout
    assert "deleted 1 messages (other 1)" in shown, shown
    reader = BlindedIdentity.generate()
    assert here not in live_ids(community, reader, OTHER_ROOM)
    assert there in live_ids(community, reader, "main")


# --------------------------------------------------------------------------- new identities


NEW_CAP = 2
NEW_SECONDS = 6


@pytest.fixture(scope="module")
def capped_server(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[ServerProcess]:
    """At most 2 new identities (seen less than 6 s ago, never spoke) speak a minute;
    slow mode of 30 s by default, except where a room says otherwise; 100 DMs per 2 s;
    pruned every second."""
    yield from start_server(
        tmp_path_factory,
        backend,
        {
            "OPENGROUP_NEW_IDENTITIES_PER_MINUTE": str(NEW_CAP),
            "OPENGROUP_NEW_IDENTITY_SECONDS": str(NEW_SECONDS),
            "OPENGROUP_SLOW_MODE_SECONDS": "30",
            "OPENGROUP_DM_RATE_LIMIT_COUNT": "100",
            "OPENGROUP_DM_RATE_LIMIT_SECONDS": "2",
            "OPENGROUP_PRUNE_INTERVAL_SECONDS": "1",
        },
    )


@pytest.fixture
def capped(capped_server: ServerProcess) -> Iterator[CommunityClient]:
    with CommunityClient(capped_server.base_url, capped_server.public_key, "http") as client:
        yield client


def test_new_identities_beyond_the_cap_wait(capped_server: ServerProcess) -> None:
    with CommunityClient(capped_server.base_url, capped_server.public_key, "onion") as client:
        recipient = BlindedIdentity.generate()
        dm_to = seen(client, recipient)
        newcomers = [BlindedIdentity.generate() for _ in range(NEW_CAP + 2)]
        for person in newcomers:
            seen(client, person)
        posted(client, newcomers[0])
        assert send_dm(client, newcomers[1], dm_to).status == 201  # a DM speaks too
        refused = post_message(client, newcomers[2])
        expect_rate_limited(refused, 60)
        assert refused.body.startswith("too many new ids are posting: at most 2 new ids a minute")
        expect_rate_limited(send_dm(client, newcomers[3], dm_to), 60)
        # Admitted ids are no longer new: they speak again (a DM; the room is slow).
        assert send_dm(client, newcomers[0], dm_to).status == 201
        # Once first seen NEW_SECONDS ago an id is no longer new, though it never spoke.
        time.sleep(NEW_SECONDS + 0.2)
        posted(client, newcomers[2])
        posted(client, recipient)


def test_the_server_default_slow_mode_and_a_rooms_own_zero(
    capped: CommunityClient, capped_server: ServerProcess
) -> None:
    person = BlindedIdentity.generate()
    seen(capped, person)
    time.sleep(NEW_SECONDS + 0.2)  # not new any more: the cap does not apply
    posted(capped, person)
    refused = post_message(capped, person)
    assert expect_rate_limited(refused, 30) >= 25
    shown = capped_server.cli("rooms", "update", "main", "--slow-mode", "0").stdout
    assert "\nslow mode: off\n" in shown  # the room's own 0, not the server's 30
    posted(capped, person)


def rate_events(server: ServerProcess, prefix: str) -> int:
    """How many ``rate_events`` rows have a bucket starting with ``prefix``, read straight
    from the server's database."""
    query = "SELECT COUNT(*) FROM rate_events WHERE bucket LIKE %s"
    return int(probe.value(server, query, prefix + "%"))


def test_counted_events_are_pruned_each_by_its_own_window(
    capped: CommunityClient, capped_server: ServerProcess
) -> None:
    """A sender's DMs are counted for 2 s here, new identities' admissions for 60 s."""
    sender, recipient = BlindedIdentity.generate(), BlindedIdentity.generate()
    seen(capped, sender)
    to = seen(capped, recipient)
    if not rate_events(capped_server, "new-identities"):  # run alone: admit one
        assert send_dm(capped, recipient, seen(capped, sender)).status == 201
    time.sleep(NEW_SECONDS + 0.2)  # not new: no admission needed
    assert send_dm(capped, sender, to).status == 201
    sender_id = sender.blinded_id(capped.server_pk)
    assert rate_events(capped_server, f"dm:{sender_id}") == 1
    admissions = rate_events(capped_server, "new-identities")
    assert admissions >= 1
    deadline = time.monotonic() + 2 + 5
    while rate_events(capped_server, f"dm:{sender_id}") and time.monotonic() < deadline:
        time.sleep(0.25)
    assert rate_events(capped_server, f"dm:{sender_id}") == 0
    assert rate_events(capped_server, "new-identities") == admissions


def test_two_processes_on_one_database_share_the_rules(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """Slow mode and the cap on new identities count in the database: a post through
    one process holds back the next through another, and so does an admission."""
    env = {"OPENGROUP_SLOW_MODE_SECONDS": "30", "OPENGROUP_NEW_IDENTITIES_PER_MINUTE": "1"}
    first = server_factory(env=env)
    second = server_factory(data_dir=first.data_dir, database_url=first.database_url, env=env)
    with (
        CommunityClient(first.base_url, first.public_key, "http") as one,
        CommunityClient(second.base_url, second.public_key, "onion") as two,
    ):
        alice, bob = BlindedIdentity.generate(), BlindedIdentity.generate()
        seen(one, alice)
        seen(two, bob)
        posted(one, alice)  # admitted: the minute's one new identity
        refused = post_message(two, bob)
        assert refused.body.startswith("too many new ids are posting"), refused.body
        assert expect_rate_limited(refused, 60) >= 50
        slow = post_message(two, alice)
        assert slow.body.startswith("slow mode: one post per 30 s"), slow.body
        assert expect_rate_limited(slow, 30) >= 25
