"""Staff, bans and deleting everything someone posted, through the community API.

docs/spec/SPEC-v3.md sections 1 (the same moderators and bans for both APIs),
2 (a Session id named as staff or banned reaches that person's blinded id; staff
lists show the 05 id until the blinded id first appears, then the 15 id; room
staff visible by default, global staff hidden), 3 (`/user/:sid/moderator|ban|
unban`, `DELETE /room/:t/all/:sid`, `DELETE /rooms/all/:sid`) and 4 (an unknown
room in `/user/*` is 404; every refusal stores nothing); docs/spec/sogs-v3.md
1.2 and 1.4 (who may, the bodies, the answers); /tmp/peer/answers.md section 9:

- `POST /user/:sid/moderator` `{rooms: [...] | ["*"] xor global: true, moderator?,
  admin?, visible?}`: an admin of every room named (a global admin for `global`);
  answers `{"info_updates": {token: n}}` (every room for a global change);
  `admin: true` with `moderator: false`, neither flag, rooms with global: 400;
- `POST /user/:sid/ban` `{rooms | global, timeout?}` and `/unban`: a moderator of
  every room named (a global moderator for `global`); `{}`; a moderator cannot be
  banned (400, as v2); a ban with a timeout ends by itself; a ban removes nothing
  else; a global ban answers 403 `Banned` to every signed request;
- `DELETE /room/:t/all/:sid`: the person themself or a moderator, an admin's
  messages only by an admin; `{"deleted": n}` (pysogs answers `{}`, and 404 when
  there was nothing: docs/API.md); `DELETE /rooms/all/:sid` `{"total", "rooms"}`
  over the rooms the caller may do it in;
- the v2 API sees the same staff and bans: a v2 ban or moderator reaches the
  person's blinded id, a v3 ban or role their v2 tokens, deletions reach v2 polls.

Every test that uses `community` runs over direct HTTP and over onion v4.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from harness.communityclient import BlindedIdentity, CommunityAnswer, CommunityClient
from harness.expect import expect_ok, expect_refused
from harness.server import ServerProcess
from harness.v2client import DEFAULT_ROOM, Client, Identity, Persona

CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]
PersonaFactory = Callable[..., Persona]

MAIN = DEFAULT_ROOM
ROOM = f"/room/{MAIN}"


# --------------------------------------------------------------------------- helpers


def blinded(c: CommunityClient, person: BlindedIdentity) -> str:
    return person.blinded_id(c.server_pk)


def post(c: CommunityClient, person: BlindedIdentity, room: str = MAIN) -> int:
    """A signed message by ``person`` in ``room``; its id."""
    data = os.urandom(8).hex().encode() + b"\x80" + b"\x00" * 15
    signature = person.sign_message_data(data, c.server_pk)
    body = {
        "data": base64.b64encode(data).decode(),
        "signature": base64.b64encode(signature).decode(),
    }
    answer = c.post(f"/room/{room}/message", body, identity=person)
    assert answer.status == 201, answer
    return int(answer.body["id"])


def room_of(
    c: CommunityClient, person: BlindedIdentity | None = None, room: str = MAIN
) -> dict[str, Any]:
    info: dict[str, Any] = expect_ok(c.get(f"/room/{room}", identity=person))
    return info


def set_role(
    c: CommunityClient, by: BlindedIdentity, session_id: str, **body: Any
) -> CommunityAnswer:
    return c.post(f"/user/{session_id}/moderator", body, identity=by)


def ban(c: CommunityClient, by: BlindedIdentity, session_id: str, **body: Any) -> CommunityAnswer:
    return c.post(f"/user/{session_id}/ban", body, identity=by)


def unban(c: CommunityClient, by: BlindedIdentity, session_id: str, **body: Any) -> CommunityAnswer:
    return c.post(f"/user/{session_id}/unban", body, identity=by)


def may_read(c: CommunityClient, person: BlindedIdentity, room: str = MAIN) -> int:
    """The status of reading the room's newest messages as ``person``."""
    return c.get(f"/room/{room}/messages/recent", identity=person).status


def live_ids(c: CommunityClient, reader: BlindedIdentity, room: str = MAIN) -> set[int]:
    return {
        m["id"]
        for m in expect_ok(c.get(f"/room/{room}/messages/recent?limit=256", identity=reader))
    }


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    """Poll until ``condition()`` holds (a ban's end: checked on every request)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)


def v2_identity(person: BlindedIdentity) -> Identity:
    """The same person as a v2 client holds them: the X25519 key behind their Session id."""
    identity = Identity(X25519PrivateKey.from_private_bytes(person.x25519_private))
    assert identity.session_id == person.session_id
    return identity


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def second_room(server: ServerProcess) -> str:
    """A second room, with a token in the community API's wider alphabet."""
    server.cli("rooms", "add", "Second-Room", "Second")
    return "Second-Room"


@pytest.fixture(scope="module")
def global_admin(server: ServerProcess) -> BlindedIdentity:
    """A (hidden) global admin, named by Session id through the CLI."""
    identity = BlindedIdentity.generate()
    server.cli("moderators", "add", identity.session_id, "--global", "--admin")
    return identity


@pytest.fixture
def carol() -> BlindedIdentity:
    return BlindedIdentity.generate()


# --------------------------------------------------------------------------- roles


def test_a_room_admin_adds_and_removes_a_moderator(
    community: CommunityClient, room_admin: BlindedIdentity, alice: BlindedIdentity
) -> None:
    sid = blinded(community, alice)
    before = room_of(community)["info_updates"]
    info = expect_ok(set_role(community, room_admin, sid, rooms=[MAIN], moderator=True))
    assert info == {"info_updates": {MAIN: before + 1}}
    listed = room_of(community, alice)
    assert sid in listed["moderators"] and listed["moderator"] is True
    assert "admin" not in listed
    expect_ok(community.get(f"{ROOM}/permissions", identity=alice))  # a moderator's route

    info = expect_ok(set_role(community, room_admin, sid, rooms=[MAIN], moderator=False))
    assert info == {"info_updates": {MAIN: before + 2}}
    listed = room_of(community, alice)
    assert sid not in listed["moderators"] and "moderator" not in listed
    expect_refused(community.get(f"{ROOM}/permissions", identity=alice), 403)


def test_an_admin_is_listed_as_admin_and_may_do_what_admins_do(
    community: CommunityClient, room_admin: BlindedIdentity, alice: BlindedIdentity
) -> None:
    sid = blinded(community, alice)
    expect_ok(set_role(community, room_admin, sid, rooms=[MAIN], admin=True))
    listed = room_of(community, alice)
    assert sid in listed["admins"] and sid not in listed["moderators"]
    assert listed["admin"] is True and listed["moderator"] is True
    expect_ok(community.put(ROOM, {"description": "set by a new admin"}, identity=alice))
    # admin false, moderator omitted: back to a moderator, not out.
    expect_ok(set_role(community, room_admin, sid, rooms=[MAIN], admin=False))
    listed = room_of(community, alice)
    assert sid in listed["moderators"] and "admin" not in listed
    expect_refused(community.put(ROOM, {"description": "no longer"}, identity=alice), 403)
    expect_ok(set_role(community, room_admin, sid, rooms=[MAIN], moderator=False))


@pytest.mark.parametrize(
    "admin", [pytest.param(False, id="moderator"), pytest.param(True, id="admin")]
)
def test_hidden_staff_are_shown_to_moderators_only(
    community: CommunityClient,
    room_admin: BlindedIdentity,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
    admin: bool,
) -> None:
    sid = blinded(community, alice)
    role = {"admin": True} if admin else {"moderator": True}
    expect_ok(set_role(community, room_admin, sid, rooms=[MAIN], visible=False, **role))
    hidden_key = "hidden_admins" if admin else "hidden_moderators"
    seen_by_moderator = room_of(community, room_moderator)
    assert sid in seen_by_moderator[hidden_key]
    assert sid not in seen_by_moderator["admins"] + seen_by_moderator["moderators"]
    seen_by_user = room_of(community, bob)
    assert sid not in seen_by_user["admins"] + seen_by_user["moderators"]
    assert sid not in seen_by_user.get("hidden_admins", []) + seen_by_user.get(
        "hidden_moderators", []
    )
    anonymous = room_of(community)
    assert sid not in str(anonymous)
    # Hidden or not, they have the role.
    assert room_of(community, alice)["moderator"] is True
    expect_ok(set_role(community, room_admin, sid, rooms=[MAIN], moderator=False))


def test_global_staff_are_hidden_by_default_and_moderate_every_room(
    community: CommunityClient,
    global_admin: BlindedIdentity,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
    second_room: str,
) -> None:
    sid = blinded(community, alice)
    rooms = expect_ok(community.get("/rooms"))
    info = expect_ok(set_role(community, global_admin, sid, **{"global": True}, moderator=True))
    assert set(info["info_updates"]) == {r["token"] for r in rooms}
    for room in (MAIN, second_room):
        mine = room_of(community, alice, room)
        assert mine["moderator"] is True and mine["global_moderator"] is True
        assert "global_admin" not in mine
        assert sid in mine["hidden_moderators"]
    assert sid in room_of(community, room_moderator)["hidden_moderators"]
    assert sid not in str(room_of(community, bob))
    # Visible global staff are listed to everyone.
    expect_ok(
        set_role(community, global_admin, sid, **{"global": True}, moderator=True, visible=True)
    )
    assert sid in room_of(community, bob, second_room)["moderators"]

    expect_ok(set_role(community, global_admin, sid, **{"global": True}, moderator=False))
    mine = room_of(community, alice, second_room)
    assert "moderator" not in mine and "global_moderator" not in mine


def test_a_moderator_named_by_session_id_is_listed_by_it_until_their_blinded_id_appears(
    community: CommunityClient,
    room_admin: BlindedIdentity,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    expect_ok(set_role(community, room_admin, bob.session_id, rooms=[MAIN], moderator=True))
    seen_by_alice = room_of(community, alice)
    listed = seen_by_alice["moderators"]
    assert bob.session_id in listed and blinded(community, bob) not in listed

    # bob signs in with his blinded id: the same person, now listed by it, and a moderator;
    # the staff list changed, so the room's details did (as when a role changes).
    assert room_of(community, bob)["moderator"] is True
    seen_after = room_of(community, alice)
    listed = seen_after["moderators"]
    assert blinded(community, bob) in listed and bob.session_id not in listed
    assert seen_after["info_updates"] > seen_by_alice["info_updates"]
    message = post(community, alice)
    expect_ok(community.delete(f"{ROOM}/message/{message}", identity=bob))
    assert message not in live_ids(community, alice)

    # Removing him by either id removes the person.
    expect_ok(
        set_role(community, room_admin, blinded(community, bob), rooms=[MAIN], moderator=False)
    )
    assert "moderator" not in room_of(community, bob)


def test_rooms_star_means_every_room_the_caller_is_admin_of(
    community: CommunityClient,
    room_admin: BlindedIdentity,
    alice: BlindedIdentity,
    second_room: str,
) -> None:
    sid = blinded(community, alice)
    info = expect_ok(set_role(community, room_admin, sid, rooms=["*"], moderator=True))
    assert list(info["info_updates"]) == [MAIN]
    assert room_of(community, alice)["moderator"] is True
    assert "moderator" not in room_of(community, alice, second_room)
    expect_ok(set_role(community, room_admin, sid, rooms=["*"], moderator=False))


def test_a_room_token_is_matched_without_regard_to_case(
    community: CommunityClient,
    global_admin: BlindedIdentity,
    alice: BlindedIdentity,
    second_room: str,
) -> None:
    sid = blinded(community, alice)
    info = expect_ok(
        set_role(community, global_admin, sid, rooms=[second_room.lower()], moderator=True)
    )
    assert list(info["info_updates"]) == [second_room]  # the room's own spelling
    assert room_of(community, alice, second_room)["moderator"] is True
    expect_ok(set_role(community, global_admin, sid, rooms=[second_room], moderator=False))


ROLE_REFUSALS = [
    pytest.param(
        {"rooms": [MAIN], "admin": True, "moderator": False}, 400, id="admin-not-moderator"
    ),
    pytest.param({"rooms": [MAIN]}, 400, id="neither-flag"),
    pytest.param({"rooms": [MAIN], "global": True, "moderator": True}, 400, id="rooms-and-global"),
    pytest.param({"moderator": True}, 400, id="no-rooms-nor-global"),
    pytest.param({"rooms": [], "moderator": True}, 400, id="empty-rooms"),
    pytest.param({"rooms": ["*", MAIN], "moderator": True}, 400, id="star-with-others"),
    pytest.param({"rooms": MAIN, "moderator": True}, 400, id="rooms-not-a-list"),
    pytest.param({"rooms": [MAIN], "moderator": "yes"}, 400, id="flag-not-a-bool"),
    pytest.param({"rooms": ["no_such_room"], "moderator": True}, 404, id="unknown-room"),
    pytest.param({"rooms": [MAIN, "no_such_room"], "moderator": True}, 404, id="one-unknown"),
    pytest.param({"global": True, "moderator": True}, 403, id="global-by-room-admin"),
]


@pytest.mark.parametrize(("body", "status"), ROLE_REFUSALS)
def test_bad_or_unpermitted_role_changes_are_refused_and_change_nothing(
    community: CommunityClient,
    room_admin: BlindedIdentity,
    alice: BlindedIdentity,
    body: dict[str, Any],
    status: int,
) -> None:
    before = room_of(community)
    expect_refused(set_role(community, room_admin, blinded(community, alice), **body), status)
    after = room_of(community, alice)
    assert after["info_updates"] == before["info_updates"]
    assert "moderator" not in after


@pytest.mark.parametrize(
    "who", [pytest.param("user", id="plain-user"), pytest.param("moderator", id="room-moderator")]
)
def test_only_an_admin_changes_roles(
    community: CommunityClient,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
    who: str,
) -> None:
    caller = room_moderator if who == "moderator" else bob
    expect_refused(
        set_role(community, caller, blinded(community, alice), rooms=[MAIN], moderator=True), 403
    )
    assert "moderator" not in room_of(community, alice)


def test_anonymous_role_changes_and_bad_session_ids_are_refused(
    community: CommunityClient, room_admin: BlindedIdentity, alice: BlindedIdentity
) -> None:
    body = {"rooms": [MAIN], "moderator": True}
    sid = blinded(community, alice)
    expect_refused(community.post(f"/user/{sid}/moderator", body), 401)
    for bad in ("15" + "ab" * 31, "06" + "ab" * 32, "15" + "zz" * 32, "00" + "ab" * 32):
        expect_refused(set_role(community, room_admin, bad, **body), 400)


# --------------------------------------------------------------------------- bans


def test_a_moderator_bans_and_unbans_someone_in_a_room(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    message = post(community, alice)
    assert expect_ok(ban(community, room_moderator, blinded(community, alice), rooms=[MAIN])) == {}
    assert may_read(community, alice) == 403
    expect_refused(community.get(ROOM, identity=alice), 403)
    data = b"banned?"
    body = {
        "data": base64.b64encode(data).decode(),
        "signature": base64.b64encode(alice.sign_message_data(data, community.server_pk)).decode(),
    }
    expect_refused(community.post(f"{ROOM}/message", body, identity=alice), 403)
    # A ban removes nothing else: the message stays.
    assert message in live_ids(community, room_moderator)
    permissions = expect_ok(community.get(f"{ROOM}/permissions", identity=room_moderator))
    assert permissions[blinded(community, alice)] == {"banned": True}

    assert (
        expect_ok(unban(community, room_moderator, blinded(community, alice), rooms=[MAIN])) == {}
    )
    assert may_read(community, alice) == 200
    assert post(community, alice) > message


def test_a_ban_of_a_session_id_reaches_the_blinded_id(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    expect_ok(ban(community, room_moderator, alice.session_id, rooms=[MAIN]))
    assert may_read(community, alice) == 403
    expect_ok(unban(community, room_moderator, alice.session_id, rooms=[MAIN]))
    assert may_read(community, alice) == 200


def test_a_ban_with_a_timeout_ends_by_itself(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    sid = blinded(community, alice)
    start = time.time()
    expect_ok(ban(community, room_moderator, sid, rooms=[MAIN], timeout=2))
    assert may_read(community, alice) == 403
    scheduled = expect_ok(community.get(f"{ROOM}/futurePermissions", identity=room_moderator))
    mine = [item for item in scheduled if item["session_id"] == sid]
    assert mine == [{"at": pytest.approx(start + 2, abs=1.5), "banned": False, "session_id": sid}]
    wait_for(lambda: may_read(community, alice) == 200)
    assert time.time() >= start + 2  # not before its time


def test_a_ban_again_replaces_the_timeout(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    sid = blinded(community, alice)
    expect_ok(ban(community, room_moderator, sid, rooms=[MAIN], timeout=1))
    expect_ok(ban(community, room_moderator, sid, rooms=[MAIN]))  # now until lifted
    time.sleep(1.3)
    assert may_read(community, alice) == 403
    expect_ok(unban(community, room_moderator, sid, rooms=[MAIN]))


def test_a_global_ban_refuses_every_signed_request(
    community: CommunityClient,
    global_admin: BlindedIdentity,
    alice: BlindedIdentity,
    second_room: str,
) -> None:
    sid = blinded(community, alice)
    expect_ok(ban(community, global_admin, sid, **{"global": True}))
    for path in ("/capabilities", ROOM, f"/room/{second_room}/messages/recent", "/rooms"):
        expect_refused(community.get(path, identity=alice), 403, "Banned")
    expect_refused(
        community.post("/room/main/message", {"data": "", "signature": ""}, identity=alice), 403
    )
    expect_ok(unban(community, global_admin, sid, **{"global": True}))
    expect_ok(community.get("/capabilities", identity=alice))
    assert may_read(community, alice, second_room) == 200


def test_a_global_ban_with_a_timeout_ends_by_itself(
    community: CommunityClient, global_admin: BlindedIdentity, alice: BlindedIdentity
) -> None:
    start = time.time()
    expect_ok(ban(community, global_admin, alice.session_id, **{"global": True}, timeout=1.5))
    expect_refused(community.get("/capabilities", identity=alice), 403, "Banned")
    wait_for(lambda: community.get("/capabilities", identity=alice).status == 200)
    assert time.time() >= start + 1.5


@pytest.mark.parametrize(
    "target", [pytest.param("moderator", id="a-moderator"), pytest.param("admin", id="an-admin")]
)
def test_staff_cannot_be_banned(
    community: CommunityClient,
    room_moderator: BlindedIdentity,
    room_admin: BlindedIdentity,
    global_admin: BlindedIdentity,
    target: str,
) -> None:
    victim = room_admin if target == "admin" else room_moderator
    for sid in (victim.session_id, blinded(community, victim)):
        expect_refused(ban(community, room_moderator, sid, rooms=[MAIN]), 400)
        expect_refused(ban(community, global_admin, sid, **{"global": True}), 400)
    expect_refused(ban(community, room_admin, global_admin.session_id, rooms=[MAIN]), 400)
    assert may_read(community, victim) == 200


BAN_REFUSALS = [
    pytest.param({"rooms": [MAIN], "timeout": "x"}, 400, id="timeout-not-a-number"),
    pytest.param({"rooms": [MAIN], "timeout": 0}, 400, id="timeout-zero"),
    pytest.param({"rooms": [MAIN], "timeout": -5}, 400, id="timeout-negative"),
    pytest.param({"rooms": [MAIN], "timeout": True}, 400, id="timeout-bool"),
    pytest.param({}, 400, id="no-rooms-nor-global"),
    pytest.param({"rooms": [MAIN], "global": True}, 400, id="rooms-and-global"),
    pytest.param({"rooms": ["no_such_room"]}, 404, id="unknown-room"),
    pytest.param({"global": True}, 403, id="global-by-room-moderator"),
]


@pytest.mark.parametrize(("body", "status"), BAN_REFUSALS)
def test_bad_or_unpermitted_bans_are_refused_and_ban_nobody(
    community: CommunityClient,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    body: dict[str, Any],
    status: int,
) -> None:
    expect_refused(ban(community, room_moderator, blinded(community, alice), **body), status)
    assert may_read(community, alice) == 200
    expect_ok(community.get("/capabilities", identity=alice))


def test_only_a_moderator_bans_or_unbans(
    community: CommunityClient,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
    second_room: str,
) -> None:
    sid = blinded(community, alice)
    expect_refused(ban(community, bob, sid, rooms=[MAIN]), 403)
    expect_refused(community.post(f"/user/{sid}/ban", {"rooms": [MAIN]}), 401)
    # A moderator of main only: not of every room named.
    expect_refused(ban(community, room_moderator, sid, rooms=[MAIN, second_room]), 403)
    assert may_read(community, alice) == 200
    expect_ok(ban(community, room_moderator, sid, rooms=[MAIN]))
    expect_refused(unban(community, bob, sid, rooms=[MAIN]), 403)
    expect_refused(unban(community, room_moderator, sid, **{"global": True}), 403)
    assert may_read(community, alice) == 403
    expect_ok(unban(community, room_moderator, sid, rooms=[MAIN]))


# --------------------------------------------------------------------------- deleting everything


def test_a_moderator_deletes_everything_someone_posted_in_a_room(
    community: CommunityClient,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
    make_persona: PersonaFactory,
    setup_client: Client,
) -> None:
    watcher = make_persona()  # a v2 client of the room
    mine = [post(community, alice) for _ in range(3)]
    theirs = post(community, bob)
    sid = blinded(community, alice)
    answer = expect_ok(community.delete(f"{ROOM}/all/{sid}", identity=room_moderator))
    assert answer == {"deleted": 3}
    live = live_ids(community, bob)
    assert theirs in live and not set(mine) & live
    changes = expect_ok(community.get(f"{ROOM}/messages/since/0?limit=256", identity=bob))
    assert not {m["id"] for m in changes} & set(mine)  # since/0 leaves deletions out
    # A v2 client sees them as deletions.
    deleted = setup_client.request(
        "GET", "deleted_messages?limit=256", room=MAIN, token=watcher.token
    )
    assert deleted["status_code"] == 200, deleted
    assert set(mine) <= set(deleted["ids"])
    # Again: nothing left to delete.
    assert expect_ok(community.delete(f"{ROOM}/all/{sid}", identity=room_moderator)) == {
        "deleted": 0
    }


def test_someone_deletes_everything_they_posted(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    mine = {post(community, alice), post(community, alice)}
    sid = blinded(community, alice)
    assert expect_ok(community.delete(f"{ROOM}/all/{sid}", identity=alice)) == {"deleted": 2}
    assert not mine & live_ids(community, bob)
    # Their Session id names them too.
    post(community, alice)
    assert expect_ok(community.delete(f"{ROOM}/all/{alice.session_id}", identity=alice)) == {
        "deleted": 1
    }


def test_only_an_admin_deletes_everything_an_admin_posted(
    community: CommunityClient,
    room_moderator: BlindedIdentity,
    room_admin: BlindedIdentity,
    global_admin: BlindedIdentity,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    sid = blinded(community, alice)
    expect_ok(set_role(community, room_admin, sid, rooms=[MAIN], admin=True))
    message = post(community, alice)
    expect_refused(community.delete(f"{ROOM}/all/{sid}", identity=room_moderator), 403)
    expect_refused(community.delete(f"{ROOM}/all/{sid}", identity=bob), 403)
    expect_refused(community.delete(f"{ROOM}/all/{sid}"), 401)
    assert message in live_ids(community, bob)
    assert expect_ok(community.delete(f"{ROOM}/all/{sid}", identity=global_admin)) == {"deleted": 1}
    expect_ok(set_role(community, room_admin, sid, rooms=[MAIN], moderator=False))


def test_a_user_cannot_delete_everything_someone_else_posted(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    message = post(community, alice)
    expect_refused(community.delete(f"{ROOM}/all/{blinded(community, alice)}", identity=bob), 403)
    expect_refused(community.delete(f"{ROOM}/all/not-an-id", identity=bob), 400)
    assert message in live_ids(community, bob)


def test_delete_everywhere_covers_the_rooms_the_caller_moderates(
    community: CommunityClient,
    room_moderator: BlindedIdentity,
    global_admin: BlindedIdentity,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
    second_room: str,
) -> None:
    sid = blinded(community, alice)
    here = [post(community, alice), post(community, alice)]
    there = post(community, alice, second_room)
    # A moderator of main only: main's, and the other room is left out of the answer.
    assert expect_ok(community.delete(f"/rooms/all/{sid}", identity=room_moderator)) == {
        "total": 2,
        "rooms": {MAIN: 2},
    }
    assert not set(here) & live_ids(community, bob)
    assert there in live_ids(community, bob, second_room)
    # A global admin: every room.
    answer = expect_ok(community.delete(f"/rooms/all/{sid}", identity=global_admin))
    assert answer["total"] == 1 and answer["rooms"][second_room] == 1
    assert answer["rooms"][MAIN] == 0
    assert there not in live_ids(community, bob, second_room)
    # Someone else's, by a user: no room qualifies.
    assert expect_ok(community.delete(f"/rooms/all/{sid}", identity=bob)) == {
        "total": 0,
        "rooms": {},
    }
    expect_refused(community.delete(f"/rooms/all/{sid}"), 401)


def test_someone_deletes_everything_they_posted_everywhere(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity, second_room: str
) -> None:
    post(community, alice)
    post(community, alice, second_room)
    answer = expect_ok(community.delete(f"/rooms/all/{blinded(community, alice)}", identity=alice))
    assert answer["total"] == 2
    assert answer["rooms"][MAIN] == 1 and answer["rooms"][second_room] == 1


# --------------------------------------------------------------------------- with the v2 API


def test_a_v2_ban_reaches_the_same_persons_blinded_id(
    community: CommunityClient,
    moderator: Persona,
    setup_client: Client,
    alice: BlindedIdentity,
) -> None:
    assert may_read(community, alice) == 200
    body = {"public_key": alice.session_id}
    result = setup_client.request("POST", "block_list", body=body, room=MAIN, token=moderator.token)
    assert result["status_code"] == 200, result
    assert may_read(community, alice) == 403
    result = setup_client.request(
        "DELETE", f"block_list/{alice.session_id}", room=MAIN, token=moderator.token
    )
    assert result["status_code"] == 200, result
    assert may_read(community, alice) == 200


def test_a_v2_moderator_added_is_a_visible_room_moderator_of_the_blinded_id(
    community: CommunityClient,
    moderator: Persona,
    setup_client: Client,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    body = {"public_key": alice.session_id, "room_id": MAIN}
    result = setup_client.request("POST", "moderators", body=body, room=MAIN, token=moderator.token)
    assert result["status_code"] == 200, result
    mine = room_of(community, alice)
    assert mine["moderator"] is True and "admin" not in mine
    assert blinded(community, alice) in room_of(community, bob)["moderators"]
    result = setup_client.request(
        "DELETE", f"moderators/{alice.session_id}", room=MAIN, token=moderator.token
    )
    assert result["status_code"] == 200, result
    assert "moderator" not in room_of(community, alice)


def test_community_api_staff_and_bans_reach_v2_tokens(
    community: CommunityClient,
    room_admin: BlindedIdentity,
    room_moderator: BlindedIdentity,
    global_admin: BlindedIdentity,
    make_persona: PersonaFactory,
    setup_client: Client,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    v2_alice = make_persona(v2_identity(alice))
    v2_bob = make_persona(v2_identity(bob))

    def v2_ban_status(persona: Persona) -> int:
        body = {"public_key": Identity.generate().session_id}
        result = setup_client.request(
            "POST", "block_list", body=body, room=MAIN, token=persona.token
        )
        return int(result["status_code"])

    assert v2_ban_status(v2_alice) == 403
    # Made a room moderator (by 05 id) through the community API: a v2 moderator too.
    expect_ok(set_role(community, room_admin, alice.session_id, rooms=[MAIN], moderator=True))
    assert v2_ban_status(v2_alice) == 200
    expect_ok(set_role(community, room_admin, alice.session_id, rooms=[MAIN], moderator=False))
    assert v2_ban_status(v2_alice) == 403
    # A global moderator is a v2 moderator of every room.
    expect_ok(
        set_role(community, global_admin, alice.session_id, **{"global": True}, moderator=True)
    )
    assert v2_ban_status(v2_alice) == 200
    expect_ok(
        set_role(community, global_admin, alice.session_id, **{"global": True}, moderator=False)
    )

    # Banned through the community API (by 05 id): the v2 token is refused.
    expect_ok(ban(community, room_moderator, bob.session_id, rooms=[MAIN]))
    result = setup_client.request("GET", "messages", room=MAIN, token=v2_bob.token)
    assert result["status_code"] == 403, result
    expect_ok(unban(community, room_moderator, bob.session_id, rooms=[MAIN]))
    result = setup_client.request("GET", "messages", room=MAIN, token=v2_bob.token)
    assert result["status_code"] == 200, result


def test_a_v2_moderator_cannot_ban_a_community_api_admin(
    moderator: Persona, setup_client: Client, room_admin: BlindedIdentity
) -> None:
    body = {"public_key": room_admin.session_id}
    result = setup_client.request("POST", "block_list", body=body, room=MAIN, token=moderator.token)
    assert result["status_code"] == 400, result
    result = setup_client.request(
        "DELETE", f"moderators/{room_admin.session_id}", room=MAIN, token=moderator.token
    )
    assert result["status_code"] == 403, result  # only an admin removes an admin
