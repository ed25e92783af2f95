"""Rooms through the community API: capabilities, the room list, one room, polling
for changes, an admin's edits and pins.

docs/spec/SPEC-v3.md sections 1 (room tokens matched without regard to case, the
room's own spelling answered) and 3 (`/capabilities` with `?required=`, `/rooms`,
`/room/:t`, `PUT /room/:t`, `pollInfo/:info_updated`, pins; a trailing `/` is
answered as without it); docs/spec/sogs-v3.md sections 1.1, 1.2, 1.3 and 1.7 (the
shapes), and /tmp/peer/answers.md "Rooms / pollInfo" (pysogs' answers):

- `/capabilities` is `{"capabilities": ["blind", "reactions", "sogs"]}`; with
  `?required=a,b` naming one we lack: 412 with `missing` added;
- a room object has exactly `token, name, info_updates, message_sequence,
  created, active_users, active_users_cutoff, admins, moderators, read, write,
  upload`, plus `description`, `image_id`, `pinned_messages` when set; a
  moderator also gets `moderator: true` and the four `default_*`; an admin also
  `admin: true`. `read`/`write`/`upload` are the caller's own rights: an
  anonymous caller may read but never write or upload (pysogs shows the room's
  defaults there; nobody can post unsigned);
- a moderator named by Session id is listed by it until their blinded id first
  signs a request, then by the blinded id (as pysogs);
- `/rooms` lists the rooms the caller may see; a room neither readable nor
  accessible by default is left out for ordinary users and answered 404 to them;
- `pollInfo/:n` is `{token, active_users, read, write, upload}` (plus the
  moderator's and admin's flags), and `details` (the room object) whenever `n`
  is not the room's `info_updates`: a new room starts at 1, so the desktop's
  `pollInfo/0` always gets details; a signed pollInfo counts the caller as active;
- `PUT /room/:t` (admins only: 401 anonymous, 403 moderators and users, 400 for a
  value of the wrong type or nothing to change) sets `name`, `description`
  (null or "" removes it) and `default_read|accessible|write|upload`, answers
  `{"info_updates": N}` one more than before; control characters are stripped
  (all from a name; a description keeps line breaks and tabs), nothing else
  (emoji joiners stay);
- pins (admins only; anonymous 401, where pysogs answers 403): `pin/:id` answers
  `{"info_updates"}`, `unpin/:id` `{"unpinned": bool, "info_updates"}`,
  `unpin/all` `{"unpinned": count, "info_updates"}`; `pinned_messages` lists
  `{id, pinned_at, pinned_by}` in pin order (a re-pin moves to the end);
  info_updates grows with every change, also when a pinned message is deleted
  (it is unpinned); a deleted, unknown or whispered message cannot be pinned (404).

Every test that uses `community` runs over direct HTTP and over onion v4.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from harness.communityclient import BlindedIdentity, CommunityClient
from harness.expect import expect_ok, expect_refused
from harness.flows import AUTH_REQUIRED, ROOM, CliRunner, add_room, posted, room_info
from harness.v2client import DEFAULT_ROOM

ROOM_KEYS = {
    "token",
    "name",
    "info_updates",
    "message_sequence",
    "created",
    "active_users",
    "active_users_cutoff",
    "admins",
    "moderators",
    "read",
    "write",
    "upload",
}
DEFAULTS = {"default_read", "default_accessible", "default_write", "default_upload"}
MODERATOR_KEYS = ROOM_KEYS | DEFAULTS | {"moderator"}
ADMIN_KEYS = MODERATOR_KEYS | {"admin"}
POLL_KEYS = {"token", "active_users", "read", "write", "upload"}
ACTIVE_USERS_CUTOFF = 7 * 24 * 3600

LOBBY = "Lobby-3"  # a room whose details tests change (admin: room_admin)
CLOSED = "closed_room"  # neither readable nor accessible by default


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lobby(cli: CliRunner, room_admin: BlindedIdentity, room_moderator: BlindedIdentity) -> str:
    """A second room with a capitalised token, administered by room_admin and moderated
    by room_moderator (named by Session id, through the CLI)."""
    add_room(cli, LOBBY, "Lobby")
    cli("moderators", "add", room_admin.session_id, LOBBY, "--admin")
    cli("moderators", "add", room_moderator.session_id, LOBBY)
    return f"/room/{LOBBY}"


@pytest.fixture(scope="module")
def closed(cli: CliRunner, room_admin: BlindedIdentity, setup_community: CommunityClient) -> str:
    """A room only its staff may see: no default read, no default access."""
    add_room(cli, CLOSED, "Closed")
    cli("moderators", "add", room_admin.session_id, CLOSED, "--admin")
    answer = setup_community.put(
        f"/room/{CLOSED}",
        {"default_read": False, "default_accessible": False},
        identity=room_admin,
    )
    expect_ok(answer)
    return f"/room/{CLOSED}"


def update(
    client: CommunityClient, room: str, identity: BlindedIdentity | None, **changes: Any
) -> Any:
    return client.put(room, changes, identity=identity)


# --------------------------------------------------------------------------- /capabilities


def test_capabilities_are_blind_reactions_and_sogs(community: CommunityClient) -> None:
    assert expect_ok(community.get("/capabilities")) == {
        "capabilities": ["blind", "reactions", "sogs"]
    }


@pytest.mark.parametrize(
    "required",
    [
        pytest.param("sogs", id="one"),
        pytest.param("sogs,blind,reactions", id="all"),
        pytest.param("", id="empty"),
    ],
)
def test_capabilities_we_have_are_answered_200(community: CommunityClient, required: str) -> None:
    answer = community.get(f"/capabilities?required={required}")

    assert expect_ok(answer) == {"capabilities": ["blind", "reactions", "sogs"]}


@pytest.mark.parametrize(
    ("required", "missing"),
    [
        pytest.param("blind25", ["blind25"], id="one-missing"),
        pytest.param("sogs,x,blind,y", ["x", "y"], id="two-missing-among-present"),
    ],
)
def test_a_required_capability_we_lack_is_412_naming_it(
    community: CommunityClient, required: str, missing: list[str]
) -> None:
    answer = community.get(f"/capabilities?required={required}")

    assert expect_ok(answer, 412) == {
        "capabilities": ["blind", "reactions", "sogs"],
        "missing": missing,
    }


def test_capabilities_answer_a_signed_request_too(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    assert expect_ok(community.get("/capabilities", identity=alice))["capabilities"] == [
        "blind",
        "reactions",
        "sogs",
    ]


# --------------------------------------------------------------------------- GET /room/:t


def test_an_anonymous_caller_gets_the_room_keys_and_may_only_read(
    community: CommunityClient,
) -> None:
    info = room_info(community)

    assert set(info) == ROOM_KEYS
    assert info["token"] == DEFAULT_ROOM
    assert (info["read"], info["write"], info["upload"]) == (True, False, False)
    assert isinstance(info["created"], float) and info["created"] < time.time()
    assert info["active_users_cutoff"] == ACTIVE_USERS_CUTOFF
    assert isinstance(info["info_updates"], int) and info["info_updates"] >= 1
    assert isinstance(info["message_sequence"], int)


def test_a_user_gets_the_same_keys_with_the_rooms_default_rights(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    info = room_info(community, alice)

    assert set(info) == ROOM_KEYS
    assert (info["read"], info["write"], info["upload"]) == (True, True, True)


def test_a_moderator_also_gets_the_moderator_flag_and_the_defaults(
    community: CommunityClient, room_moderator: BlindedIdentity
) -> None:
    info = room_info(community, room_moderator)

    assert set(info) == MODERATOR_KEYS
    assert info["moderator"] is True
    assert {k: info[k] for k in DEFAULTS} == dict.fromkeys(DEFAULTS, True)
    assert (info["read"], info["write"], info["upload"]) == (True, True, True)


def test_an_admin_also_gets_the_admin_flag(
    community: CommunityClient, room_admin: BlindedIdentity
) -> None:
    info = room_info(community, room_admin)

    assert set(info) == ADMIN_KEYS
    assert info["admin"] is True and info["moderator"] is True


def test_staff_named_by_session_id_are_listed_by_blinded_id_once_they_signed_in(
    community: CommunityClient, cli: CliRunner
) -> None:
    token = f"staff_{int(time.time() * 1000) % 10**9}"
    admin, moderator = BlindedIdentity.generate(), BlindedIdentity.generate()
    add_room(cli, token, "Staff")
    cli("moderators", "add", admin.session_id, token, "--admin")
    cli("moderators", "add", moderator.session_id, token)
    room = f"/room/{token}"

    before = room_info(community, room=room)
    room_info(community, moderator, room=room)  # the moderator signs a request
    after = room_info(community, room=room)

    assert (before["admins"], before["moderators"]) == ([admin.session_id], [moderator.session_id])
    blinded = moderator.blinded_id(community.server_pk)
    assert (after["admins"], after["moderators"]) == ([admin.session_id], [blinded])


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param("MAIN", id="upper"),
        pytest.param("Main", id="capitalised"),
        pytest.param("main/", id="trailing-slash"),
    ],
)
def test_a_room_is_found_whatever_the_case_and_answers_its_own_spelling(
    community: CommunityClient, spelling: str
) -> None:
    info = expect_ok(community.get(f"/room/{spelling}"))

    assert info["token"] == DEFAULT_ROOM
    assert info == room_info(community)


def test_a_capitalised_token_is_answered_as_created(community: CommunityClient, lobby: str) -> None:
    info = expect_ok(community.get(lobby.lower()))

    assert info["token"] == LOBBY


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/room/nosuch", id="room"),
        pytest.param("/room/nosuch/pollInfo/0", id="poll-info"),
        pytest.param("/room/nosuch/messages/recent", id="messages"),
        pytest.param("/room/a.b", id="not-a-token"),
    ],
)
def test_an_unknown_room_is_404(community: CommunityClient, path: str) -> None:
    expect_refused(community.get(path), 404)


def test_trailing_slashes_are_answered_as_without(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    info = room_info(community, alice)

    poll = expect_ok(community.get(f"{ROOM}/pollInfo/{info['info_updates']}/", identity=alice))
    recent = expect_ok(community.get(f"{ROOM}/messages/recent/", identity=alice))

    assert set(poll) == POLL_KEYS
    assert isinstance(recent, list)


# --------------------------------------------------------------------------- GET /rooms


def test_the_room_list_holds_each_visible_room_as_get_room_answers_it(
    community: CommunityClient, lobby: str, closed: str
) -> None:
    rooms = expect_ok(community.get("/rooms"))

    by_token = {r["token"]: r for r in rooms}
    assert DEFAULT_ROOM in by_token and LOBBY in by_token
    assert CLOSED not in by_token
    for token, listed in by_token.items():
        assert listed == room_info(community, room=f"/room/{token}")


def test_a_closed_room_is_404_to_users_and_listed_for_its_admin(
    community: CommunityClient, closed: str, alice: BlindedIdentity, room_admin: BlindedIdentity
) -> None:
    expect_refused(community.get(closed, identity=alice), 404)
    expect_refused(community.get(closed), 404)

    listed = {r["token"] for r in expect_ok(community.get("/rooms", identity=room_admin))}

    assert CLOSED in listed
    info = room_info(community, room_admin, closed)
    assert (info["default_read"], info["default_accessible"]) == (False, False)


# --------------------------------------------------------------------------- pollInfo


def test_poll_info_at_the_current_info_updates_has_no_details(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    current = room_info(community, alice)["info_updates"]

    poll = expect_ok(community.get(f"{ROOM}/pollInfo/{current}", identity=alice))

    assert set(poll) == POLL_KEYS
    assert poll["token"] == DEFAULT_ROOM
    assert (poll["read"], poll["write"], poll["upload"]) == (True, True, True)


@pytest.mark.parametrize(
    "behind", [pytest.param(1, id="one-behind"), pytest.param(None, id="zero")]
)
def test_poll_info_at_another_info_updates_has_the_room_as_details(
    community: CommunityClient, behind: int | None
) -> None:
    current = room_info(community)["info_updates"]
    known = 0 if behind is None else current - behind

    poll = expect_ok(community.get(f"{ROOM}/pollInfo/{known}"))

    assert set(poll) == POLL_KEYS | {"details"}
    assert poll["details"] == room_info(community)
    assert (poll["read"], poll["write"], poll["upload"]) == (True, False, False)


def test_a_new_room_answers_details_to_poll_info_zero(
    community: CommunityClient, cli: CliRunner
) -> None:
    token = f"fresh_{int(time.time() * 1000) % 10**9}"
    add_room(cli, token, "Fresh")

    poll = expect_ok(community.get(f"/room/{token}/pollInfo/0"))

    assert poll["details"]["token"] == token
    assert poll["details"]["info_updates"] >= 1
    assert poll["details"]["message_sequence"] == 0


def test_a_signed_poll_counts_the_caller_as_active(
    community: CommunityClient, cli: CliRunner, alice: BlindedIdentity
) -> None:
    token = f"active_{int(time.time() * 1000) % 10**9}"
    add_room(cli, token, "Active")
    assert room_info(community, room=f"/room/{token}")["active_users"] == 0

    poll = expect_ok(community.get(f"/room/{token}/pollInfo/0", identity=alice))

    assert room_info(community, room=f"/room/{token}")["active_users"] == 1
    assert poll["active_users"] in (0, 1)


def test_poll_info_of_a_moderator_and_an_admin_carries_their_flags(
    community: CommunityClient, room_moderator: BlindedIdentity, room_admin: BlindedIdentity
) -> None:
    current = room_info(community)["info_updates"]

    moderator = expect_ok(community.get(f"{ROOM}/pollInfo/{current}", identity=room_moderator))
    admin = expect_ok(community.get(f"{ROOM}/pollInfo/{current}", identity=room_admin))

    assert set(moderator) == POLL_KEYS | DEFAULTS | {"moderator"}
    assert set(admin) == POLL_KEYS | DEFAULTS | {"moderator", "admin"}


@pytest.mark.parametrize(
    "known",
    [
        pytest.param("abc", id="word"),
        pytest.param("-1", id="negative"),
        pytest.param(str(2**64), id="beyond-64-bits"),
    ],
)
def test_poll_info_of_something_that_is_no_counter_is_400(
    community: CommunityClient, known: str
) -> None:
    expect_refused(community.get(f"{ROOM}/pollInfo/{known}"), 400)


# --------------------------------------------------------------------------- PUT /room/:t


def test_an_admin_renames_and_describes_the_room(
    community: CommunityClient, lobby: str, room_admin: BlindedIdentity
) -> None:
    before = room_info(community, room=lobby)["info_updates"]

    answer = update(
        community, lobby, room_admin, name="Lobby\u0007 two\n", description="Line 1\nLine\t2\x00"
    )

    assert expect_ok(answer) == {"info_updates": before + 1}
    info = room_info(community, room=lobby)
    assert info["name"] == "Lobby two"
    assert info["description"] == "Line 1\nLine\t2"
    assert info["info_updates"] == before + 1


def test_only_control_characters_are_stripped(
    community: CommunityClient, lobby: str, room_admin: BlindedIdentity
) -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one emoji, joined by U+200D
    name = f"{family}\u00a0Caf\u00e9 \u00ab\u202fx\u202f\u00bb"

    expect_ok(update(community, lobby, room_admin, name=name + "\x1b\x7f\x85", description=name))

    info = room_info(community, room=lobby)
    assert info["name"] == name
    assert info["description"] == name


@pytest.mark.parametrize(
    "description", [pytest.param(None, id="null"), pytest.param("", id="empty")]
)
def test_a_null_or_empty_description_removes_it(
    community: CommunityClient, lobby: str, room_admin: BlindedIdentity, description: str | None
) -> None:
    expect_ok(update(community, lobby, room_admin, description="something"))
    assert "description" in room_info(community, room=lobby)

    expect_ok(update(community, lobby, room_admin, description=description))

    assert "description" not in room_info(community, room=lobby)


def test_an_admin_sets_default_permissions_that_users_get(
    community: CommunityClient,
    lobby: str,
    room_admin: BlindedIdentity,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
) -> None:
    room = lobby
    try:
        expect_ok(update(community, room, room_admin, default_write=False, default_upload=False))

        user = room_info(community, alice, room)
        moderator = room_info(community, room_moderator, room)
        assert (user["read"], user["write"], user["upload"]) == (True, False, False)
        assert (moderator["default_write"], moderator["default_upload"]) == (False, False)
        assert moderator["write"] is True
        expect_refused(
            community.post(f"{room}/message", {"data": "aGk=", "signature": "x"}, identity=alice),
            403,
        )
        assert posted(community, room_moderator, room=room)["id"] > 0
    finally:
        expect_ok(update(community, room, room_admin, default_write=True, default_upload=True))
    assert room_info(community, alice, room)["write"] is True


def test_without_default_read_polls_are_403_and_the_room_still_shows(
    community: CommunityClient, lobby: str, room_admin: BlindedIdentity, alice: BlindedIdentity
) -> None:
    try:
        expect_ok(update(community, lobby, room_admin, default_read=False))

        info = room_info(community, alice, lobby)
        assert info["read"] is False
        expect_refused(community.get(f"{lobby}/pollInfo/0", identity=alice), 403)
        expect_refused(community.get(f"{lobby}/messages/recent", identity=alice), 403)
    finally:
        expect_ok(update(community, lobby, room_admin, default_read=True))


@pytest.mark.parametrize(
    ("who", "status"),
    [
        pytest.param("moderator", 403, id="moderator"),
        pytest.param("user", 403, id="user"),
        pytest.param("anonymous", 401, id="anonymous"),
    ],
)
def test_only_an_admin_may_change_the_room(
    community: CommunityClient,
    lobby: str,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    who: str,
    status: int,
) -> None:
    identity = {"moderator": room_moderator, "user": alice, "anonymous": None}[who]
    before = room_info(community, room=lobby)

    answer = update(community, lobby, identity, name="Taken over")

    expect_refused(answer, status, AUTH_REQUIRED if status == 401 else None)
    assert room_info(community, room=lobby) == before


def test_an_admin_of_another_room_may_not_change_this_one(
    community: CommunityClient, lobby: str, cli: CliRunner
) -> None:
    other_admin = BlindedIdentity.generate()
    token = add_room(cli, f"other_{int(time.time() * 1000) % 10**9}", "Other")
    cli("moderators", "add", other_admin.session_id, token, "--admin")
    assert expect_ok(update(community, f"/room/{token}", other_admin, name="Mine")) is not None

    expect_refused(update(community, lobby, other_admin, name="Mine"), 403)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": 5}, id="name-number"),
        pytest.param({"name": None}, id="name-null"),
        pytest.param({"name": ""}, id="name-empty"),
        pytest.param({"name": "\x07\x08"}, id="name-only-controls"),
        pytest.param({"description": 5}, id="description-number"),
        pytest.param({"description": ["x"]}, id="description-list"),
        pytest.param({"default_read": "yes"}, id="default-read-text"),
        pytest.param({"default_write": 1}, id="default-write-number"),
        pytest.param({"default_upload": None}, id="default-upload-null"),
        pytest.param({}, id="nothing"),
        pytest.param({"colour": "blue"}, id="only-unknown-keys"),
        pytest.param({"image": 2**64 - 1}, id="image-beyond-64-bits"),
        pytest.param({"image": "x"}, id="image-not-a-number"),
        pytest.param({"image": True}, id="image-a-boolean"),
        pytest.param(["name"], id="a-list"),
        pytest.param("Lobby", id="a-string"),
    ],
)
def test_a_room_change_of_the_wrong_type_is_400_and_changes_nothing(
    community: CommunityClient, lobby: str, room_admin: BlindedIdentity, body: Any
) -> None:
    before = room_info(community, room=lobby)

    answer = community.put(lobby, body, identity=room_admin)

    expect_refused(answer, 400)
    assert room_info(community, room=lobby) == before


def test_a_room_change_that_is_not_json_is_400(
    community: CommunityClient, lobby: str, room_admin: BlindedIdentity
) -> None:
    answer = community.put(lobby, body=b"{name: Lobby}", identity=room_admin)

    expect_refused(answer, 400)


# --------------------------------------------------------------------------- pins


def pins_of(client: CommunityClient, room: str = ROOM) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = room_info(client, room=room).get("pinned_messages", [])
    return found


def test_an_admin_pins_and_unpins_and_info_updates_grows_each_time(
    community: CommunityClient, room_admin: BlindedIdentity, alice: BlindedIdentity
) -> None:
    expect_ok(community.post(f"{ROOM}/unpin/all", {}, identity=room_admin))
    message = posted(community, alice)
    before = room_info(community)["info_updates"]
    started = time.time()

    pinned = expect_ok(community.post(f"{ROOM}/pin/{message['id']}", {}, identity=room_admin))

    assert pinned == {"info_updates": before + 1}
    [pin] = pins_of(community)
    assert set(pin) == {"id", "pinned_at", "pinned_by"}
    assert pin["id"] == message["id"]
    assert pin["pinned_by"] == room_admin.blinded_id(community.server_pk)
    assert isinstance(pin["pinned_at"], float) and started - 1 <= pin["pinned_at"] <= time.time()

    unpinned = expect_ok(community.post(f"{ROOM}/unpin/{message['id']}", {}, identity=room_admin))

    assert unpinned == {"unpinned": True, "info_updates": before + 2}
    assert pins_of(community) == []
    again = expect_ok(community.post(f"{ROOM}/unpin/{message['id']}", {}, identity=room_admin))
    assert again == {"unpinned": False, "info_updates": before + 2}


def test_pins_are_listed_in_pin_order_and_a_repin_moves_to_the_end(
    community: CommunityClient, room_admin: BlindedIdentity, alice: BlindedIdentity
) -> None:
    expect_ok(community.post(f"{ROOM}/unpin/all", {}, identity=room_admin))
    first, second = posted(community, alice), posted(community, alice)
    for message in (second, first, second):
        expect_ok(community.post(f"{ROOM}/pin/{message['id']}", {}, identity=room_admin))

    assert [p["id"] for p in pins_of(community)] == [first["id"], second["id"]]

    before = room_info(community)["info_updates"]
    answer = expect_ok(community.post(f"{ROOM}/unpin/all", {}, identity=room_admin))

    assert answer == {"unpinned": 2, "info_updates": before + 1}
    assert pins_of(community) == []


def test_deleting_a_pinned_message_unpins_it_and_moves_info_updates(
    community: CommunityClient, room_admin: BlindedIdentity, alice: BlindedIdentity
) -> None:
    message = posted(community, alice)
    expect_ok(community.post(f"{ROOM}/pin/{message['id']}", {}, identity=room_admin))
    before = room_info(community)["info_updates"]

    expect_ok(community.delete(f"{ROOM}/message/{message['id']}", identity=alice))

    info = room_info(community)
    assert message["id"] not in [p["id"] for p in info.get("pinned_messages", [])]
    assert info["info_updates"] == before + 1


@pytest.mark.parametrize(
    ("who", "status"),
    [
        pytest.param("moderator", 403, id="moderator"),
        pytest.param("user", 403, id="user"),
        pytest.param("anonymous", 401, id="anonymous"),
    ],
)
@pytest.mark.parametrize("action", ["pin/{id}", "unpin/{id}", "unpin/all"])
def test_only_an_admin_may_pin_or_unpin(
    community: CommunityClient,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    who: str,
    status: int,
    action: str,
) -> None:
    message = posted(community, alice)
    identity = {"moderator": room_moderator, "user": alice, "anonymous": None}[who]
    before = room_info(community)

    answer = community.post(f"{ROOM}/{action.format(id=message['id'])}", {}, identity=identity)

    expect_refused(answer, status)
    assert room_info(community) == before


@pytest.mark.parametrize("kind", ["deleted", "unknown", "whisper", "beyond-64-bits"])
def test_a_message_that_is_not_there_for_everyone_cannot_be_pinned(
    community: CommunityClient,
    room_admin: BlindedIdentity,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    kind: str,
) -> None:
    if kind == "deleted":
        message_id = posted(community, alice)["id"]
        expect_ok(community.delete(f"{ROOM}/message/{message_id}", identity=alice))
    elif kind == "whisper":
        message_id = posted(community, room_moderator, whisper_mods=True)["id"]
    elif kind == "unknown":
        message_id = 2**31 - 1
    else:
        message_id = 2**64
    before = room_info(community)

    answer = community.post(f"{ROOM}/pin/{message_id}", {}, identity=room_admin)

    expect_refused(answer, 400 if kind == "beyond-64-bits" else 404)
    assert room_info(community) == before
