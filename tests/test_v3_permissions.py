"""One person's own permissions in a room, now and scheduled, through the community API.

docs/spec/SPEC-v3.md section 3 (room permissions and future permissions);
docs/spec/sogs-v3.md 1.2 (the routes, moderators only) and /tmp/peer/answers.md
section 9 (pysogs' shapes):

- `POST /room/:t/permissions/:sid` `{read?, write?, upload?, accessible?: bool,
  default_<p>?: true, unschedule?: bool}` grants or revokes a permission for that
  person, or returns it to the room's default; answers the person's entry with the
  `session_id` it applies to (pysogs' docstring promises that key; its answer
  leaves it out). `p` together with `default_p` is 400, and so is a body that
  changes nothing. A change drops the scheduled changes of the same permissions
  unless `unschedule` is false;
- `GET /room/:t/permissions` is `{session_id: entry}` of everyone with something of
  their own in the room: their overrides, `moderator` or `admin` (and `hidden`)
  for the room's own staff, `banned: true`; `GET .../permissions/:sid` one entry;
- `POST /room/:t/futurePermissions/:sid` `{read?, write?, upload?, in: seconds}`
  (0 < in < 10**9) schedules a change, applied by the server's loop within
  `future_permissions_interval_seconds` of its time; `GET /room/:t/futurePermissions`
  lists `{at, session_id, <p>: bool}` (and a timed ban's end as `banned: false`),
  soonest first; the per-person form has no `session_id`;
- the effect is the room access rule (domain/access.py): staff > bans > the
  person's overrides > the room's defaults. Without read and accessible the room
  does not exist for them (404, and `/rooms` leaves it out);
- every route here is for moderators of the room: 401 anonymous, 403 others.

Every test that uses `community` runs over direct HTTP and over onion v4.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from harness.communityclient import BlindedIdentity, CommunityAnswer, CommunityClient, Transport
from harness.expect import expect_ok, expect_refused
from harness.flows import wait_until
from harness.server import ServerProcess
from harness.v2client import DEFAULT_ROOM

from opengroup.api.v3.routes import ROUTES

# Scheduled changes are applied every second here (the default is 10).
SERVER_ENV = {
    "OPENGROUP_FUTURE_PERMISSIONS_INTERVAL_SECONDS": "1",
    # The matrix posts and uploads many times as one user.
    "OPENGROUP_POST_RATE_LIMIT_SECONDS": "0",
    "OPENGROUP_UPLOAD_RATE_LIMIT_SECONDS": "0",
}
INTERVAL = 1.0

MAIN = DEFAULT_ROOM
ROOM = f"/room/{MAIN}"


# --------------------------------------------------------------------------- helpers


def blinded(c: CommunityClient, person: BlindedIdentity) -> str:
    return person.blinded_id(c.server_pk)


def set_permissions(
    c: CommunityClient, by: BlindedIdentity, session_id: str, **body: Any
) -> CommunityAnswer:
    return c.post(f"{ROOM}/permissions/{session_id}", body, identity=by)


def schedule(
    c: CommunityClient, by: BlindedIdentity, session_id: str, **body: Any
) -> CommunityAnswer:
    return c.post(f"{ROOM}/futurePermissions/{session_id}", body, identity=by)


def post_status(c: CommunityClient, person: BlindedIdentity) -> int:
    data = os.urandom(8).hex().encode()
    signature = person.sign_message_data(data, c.server_pk)
    body = {
        "data": base64.b64encode(data).decode(),
        "signature": base64.b64encode(signature).decode(),
    }
    return c.post(f"{ROOM}/message", body, identity=person).status


def rights(c: CommunityClient, person: BlindedIdentity) -> dict[str, bool]:
    """What pollInfo says the person may do."""
    info = expect_ok(c.get(f"{ROOM}/pollInfo/0", identity=person))
    return {name: info[name] for name in ("read", "write", "upload")}


# --------------------------------------------------------------------------- overrides


def test_revoking_read_stops_reading_and_the_default_restores_it(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    sid = blinded(community, alice)
    entry = expect_ok(set_permissions(community, room_moderator, sid, read=False))
    assert entry == {"read": False, "session_id": sid}
    expect_refused(community.get(f"{ROOM}/messages/recent", identity=alice), 403)
    mine = expect_ok(community.get(ROOM, identity=alice))  # still accessible: the room shows
    assert mine["read"] is False
    entry = expect_ok(set_permissions(community, room_moderator, sid, default_read=True))
    assert entry == {"session_id": sid}
    expect_ok(community.get(f"{ROOM}/messages/recent", identity=alice))


def test_revoking_write_stops_posting_only(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    sid = blinded(community, alice)
    expect_ok(set_permissions(community, room_moderator, sid, write=False))
    assert post_status(community, alice) == 403
    assert rights(community, alice) == {"read": True, "write": False, "upload": True}
    expect_ok(community.get(f"{ROOM}/messages/recent", identity=alice))
    expect_ok(set_permissions(community, room_moderator, sid, default_write=True))
    assert post_status(community, alice) == 201


def test_revoking_upload_stops_uploads(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    sid = blinded(community, alice)
    expect_ok(set_permissions(community, room_moderator, sid, upload=False))
    assert rights(community, alice) == {"read": True, "write": True, "upload": False}
    expect_refused(community.post(f"{ROOM}/file", body=b"a file", identity=alice), 403)
    assert post_status(community, alice) == 201
    expect_ok(set_permissions(community, room_moderator, sid, default_upload=True))
    assert rights(community, alice)["upload"] is True
    assert community.post(f"{ROOM}/file", body=b"a file", identity=alice).status == 201


def test_without_read_and_accessible_the_room_does_not_exist_for_them(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    sid = blinded(community, alice)
    entry = expect_ok(set_permissions(community, room_moderator, sid, read=False, accessible=False))
    assert entry == {"read": False, "accessible": False, "session_id": sid}
    expect_refused(community.get(ROOM, identity=alice), 404)
    assert MAIN not in [
        room["token"] for room in expect_ok(community.get("/rooms", identity=alice))
    ]
    expect_ok(
        set_permissions(community, room_moderator, sid, default_read=True, default_accessible=True)
    )
    expect_ok(community.get(ROOM, identity=alice))


def test_granting_beats_the_room_default(
    community: CommunityClient,
    room_admin: BlindedIdentity,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    expect_ok(community.put(ROOM, {"default_write": False}, identity=room_admin))
    try:
        expect_ok(set_permissions(community, room_moderator, blinded(community, alice), write=True))
        assert post_status(community, alice) == 201
        assert post_status(community, bob) == 403
    finally:
        expect_ok(community.put(ROOM, {"default_write": True}, identity=room_admin))


def test_an_override_of_a_session_id_reaches_the_blinded_id(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    entry = expect_ok(set_permissions(community, room_moderator, alice.session_id, write=False))
    assert entry == {"write": False, "session_id": alice.session_id}  # not seen yet
    assert post_status(community, alice) == 403
    # Seen now: the entry shows the blinded id, and either id changes it.
    entry = expect_ok(
        set_permissions(community, room_moderator, alice.session_id, default_write=True)
    )
    assert entry == {"session_id": blinded(community, alice)}
    assert post_status(community, alice) == 201


def test_staff_are_not_held_back_by_overrides(
    community: CommunityClient, room_admin: BlindedIdentity, room_moderator: BlindedIdentity
) -> None:
    sid = blinded(community, room_moderator)
    expect_ok(set_permissions(community, room_admin, sid, read=False, write=False))
    try:
        assert post_status(community, room_moderator) == 201
    finally:
        expect_ok(
            set_permissions(community, room_admin, sid, default_read=True, default_write=True)
        )


def test_the_room_list_shows_staff_bans_and_overrides(
    community: CommunityClient,
    room_admin: BlindedIdentity,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    expect_ok(community.get("/capabilities", identity=room_admin))  # seen: listed by blinded id
    expect_ok(community.get("/capabilities", identity=room_moderator))
    a, b = blinded(community, alice), blinded(community, bob)
    expect_ok(set_permissions(community, room_moderator, a, write=False, upload=False))
    expect_ok(community.post(f"/user/{b}/ban", {"rooms": [MAIN]}, identity=room_moderator))
    try:
        listed = expect_ok(community.get(f"{ROOM}/permissions", identity=room_moderator))
        assert listed[a] == {"write": False, "upload": False}
        assert listed[b] == {"banned": True}
        assert listed[blinded(community, room_admin)] == {"admin": True}
        assert listed[blinded(community, room_moderator)] == {"moderator": True}
        one = expect_ok(community.get(f"{ROOM}/permissions/{a}", identity=room_moderator))
        assert one == {"write": False, "upload": False}
        nobody = BlindedIdentity.generate().session_id
        assert (
            expect_ok(community.get(f"{ROOM}/permissions/{nobody}", identity=room_moderator)) == {}
        )
    finally:
        expect_ok(community.post(f"/user/{b}/unban", {"rooms": [MAIN]}, identity=room_moderator))
        expect_ok(
            set_permissions(community, room_moderator, a, default_write=True, default_upload=True)
        )


def test_hidden_staff_are_marked_hidden(
    community: CommunityClient,
    room_admin: BlindedIdentity,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
) -> None:
    sid = blinded(community, alice)
    body = {"rooms": [MAIN], "moderator": True, "visible": False}
    expect_ok(community.post(f"/user/{sid}/moderator", body, identity=room_admin))
    try:
        one = expect_ok(community.get(f"{ROOM}/permissions/{sid}", identity=room_moderator))
        assert one == {"moderator": True, "hidden": True}
    finally:
        body = {"rooms": [MAIN], "moderator": False}
        expect_ok(community.post(f"/user/{sid}/moderator", body, identity=room_admin))


OVERRIDE_REFUSALS = [
    pytest.param({"read": True, "default_read": True}, id="p-and-default-p"),
    pytest.param({}, id="nothing"),
    pytest.param({"default_write": False}, id="only-a-false-default"),
    pytest.param({"write": "no"}, id="not-a-bool"),
    pytest.param({"write": False, "unschedule": "yes"}, id="unschedule-not-a-bool"),
]


@pytest.mark.parametrize("body", OVERRIDE_REFUSALS)
def test_bad_overrides_are_refused_and_change_nothing(
    community: CommunityClient,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    body: dict[str, Any],
) -> None:
    sid = blinded(community, alice)
    expect_refused(set_permissions(community, room_moderator, sid, **body), 400)
    assert expect_ok(community.get(f"{ROOM}/permissions/{sid}", identity=room_moderator)) == {}
    assert rights(community, alice) == {"read": True, "write": True, "upload": True}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("GET", f"{ROOM}/permissions", None, id="list"),
        pytest.param("GET", f"{ROOM}/permissions/SID", None, id="one"),
        pytest.param("POST", f"{ROOM}/permissions/SID", {"write": False}, id="set"),
        pytest.param("GET", f"{ROOM}/futurePermissions", None, id="future-list"),
        pytest.param("GET", f"{ROOM}/futurePermissions/SID", None, id="future-one"),
        pytest.param(
            "POST", f"{ROOM}/futurePermissions/SID", {"write": False, "in": 60}, id="plan"
        ),
    ],
)
def test_only_moderators_see_or_change_permissions(
    community: CommunityClient,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
    room_moderator: BlindedIdentity,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    path = path.replace("SID", blinded(community, alice))
    expect_refused(community.request(method, path, json=body), 401)
    expect_refused(community.request(method, path, json=body, identity=bob), 403)
    expect_refused(community.request(method, path, json=body, identity=alice), 403)
    assert (
        expect_ok(
            community.get(
                f"{ROOM}/futurePermissions/{blinded(community, alice)}", identity=room_moderator
            )
        )
        == []
    )
    assert rights(community, alice)["write"] is True


# --------------------------------------------------------------------------- scheduled changes


def test_a_scheduled_change_is_listed_and_applied_within_the_interval(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    sid = blinded(community, alice)
    expect_ok(set_permissions(community, room_moderator, sid, write=False))
    start = time.time()
    planned = expect_ok(schedule(community, room_moderator, sid, write=True, **{"in": 1.5}))
    assert planned == [{"at": pytest.approx(start + 1.5, abs=1), "write": True}]
    listed = expect_ok(community.get(f"{ROOM}/futurePermissions", identity=room_moderator))
    assert {"at": planned[0]["at"], "write": True, "session_id": sid} in listed
    assert post_status(community, alice) == 403

    wait_until(lambda: rights(community, alice)["write"], 1.5 + INTERVAL + 2)
    assert time.time() >= start + 1.5 - 0.1  # not before its time
    assert post_status(community, alice) == 201
    assert (
        expect_ok(community.get(f"{ROOM}/futurePermissions/{sid}", identity=room_moderator)) == []
    )
    entry = expect_ok(community.get(f"{ROOM}/permissions/{sid}", identity=room_moderator))
    assert entry == {"write": True}


def test_a_temporary_mute_of_several_permissions(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    """The pysogs recipe: revoke now, schedule the restore (here read stays revoked)."""
    sid = blinded(community, alice)
    expect_ok(
        set_permissions(community, room_moderator, sid, write=False, upload=False, read=False)
    )
    expect_ok(schedule(community, room_moderator, sid, write=True, upload=True, **{"in": 1}))
    wait_until(
        lambda: (
            community.get(f"{ROOM}/permissions/{sid}", identity=room_moderator).body
            == {"read": False, "write": True, "upload": True}
        ),
        1 + INTERVAL + 2,
    )
    expect_ok(
        set_permissions(
            community,
            room_moderator,
            sid,
            default_read=True,
            default_write=True,
            default_upload=True,
        )
    )


def test_a_new_change_unschedules_that_permission_unless_told_not_to(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    sid = blinded(community, alice)
    expect_ok(schedule(community, room_moderator, sid, write=False, **{"in": 3600}))
    expect_ok(schedule(community, room_moderator, sid, read=False, **{"in": 3600}))
    # unschedule false: the scheduled write change stays.
    expect_ok(set_permissions(community, room_moderator, sid, write=True, unschedule=False))
    planned = expect_ok(community.get(f"{ROOM}/futurePermissions/{sid}", identity=room_moderator))
    assert [{k: v for k, v in p.items() if k != "at"} for p in planned] == [
        {"write": False},
        {"read": False},
    ]
    # By default a change of write drops the scheduled write change, not the read one.
    expect_ok(set_permissions(community, room_moderator, sid, default_write=True))
    planned = expect_ok(community.get(f"{ROOM}/futurePermissions/{sid}", identity=room_moderator))
    assert [{k: v for k, v in p.items() if k != "at"} for p in planned] == [{"read": False}]
    expect_ok(set_permissions(community, room_moderator, sid, default_read=True))
    assert (
        expect_ok(community.get(f"{ROOM}/futurePermissions/{sid}", identity=room_moderator)) == []
    )


SCHEDULE_REFUSALS = [
    pytest.param({"write": True}, id="no-in"),
    pytest.param({"write": True, "in": 0}, id="in-zero"),
    pytest.param({"write": True, "in": -1}, id="in-negative"),
    pytest.param({"write": True, "in": 1_000_000_000}, id="in-a-timestamp"),
    pytest.param({"write": True, "in": "60"}, id="in-a-string"),
    pytest.param({"in": 60}, id="nothing-to-change"),
    pytest.param({"accessible": True, "in": 60}, id="accessible-is-not-scheduled"),
    pytest.param({"write": 1, "in": 60}, id="not-a-bool"),
]


@pytest.mark.parametrize("body", SCHEDULE_REFUSALS)
def test_bad_schedules_are_refused_and_schedule_nothing(
    community: CommunityClient,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    body: dict[str, Any],
) -> None:
    sid = blinded(community, alice)
    expect_refused(schedule(community, room_moderator, sid, **body), 400)
    assert (
        expect_ok(community.get(f"{ROOM}/futurePermissions/{sid}", identity=room_moderator)) == []
    )


# =========================================================================== the matrix
#
# Every route of the community API against every kind of caller, in a room of its own
# (`matrix`). The expected status of each (route, persona) is written below by hand from
# the contract (docs/spec/SPEC-v3.md sections 2 and 3, docs/spec/sogs-v3.md section 1):
# it is not computed from the server's routing table, only checked against the server's
# real answers, and the table must name every route of that table.
#
# The personas (each a fresh key; every signed one posted two messages before their
# restriction or role was given):
#
#   ano  anonymous (no signature)         unb  an unblinded ("00") key, blinding required
#   usr  a blinded user                   nrd  no read (accessible)     nac  no read, no access
#   nwr  no write                         nup  no upload
#   ban  banned from the room             bnt  ... for an hour          bno  ... whose ban ended
#   gbn  banned from the server           gbt  ... for an hour          gbo  ... whose ban ended
#   mod  room moderator                   hmd  hidden room moderator    adm  room admin
#   gmd  global moderator                 gad  global admin
#   5pr  moderator named by Session id before their blinded id appeared
#   5po  ... after it appeared
#   b5r  banned from the room by Session id before their blinded id appeared
#   b5o  ... after it appeared
#   g5r  banned from the server by Session id before their blinded id appeared
#
# Requests name: {msg} a message of another user, {own}/{own2} the caller's own messages
# (the other user's for the anonymous), {fresh} a new message of the other user, {file}
# an upload, {author} the other user, {target} a new key, {poster} a new key that posted
# once, {self} the caller. The last row deletes the caller's own messages.

MATRIX_ROOM = "matrix"
MR = f"/room/{MATRIX_ROOM}"
EMOJI = "\U0001f44d"

REQUESTS: dict[str, tuple[str, str, Any]] = {
    "capabilities": ("GET", "/capabilities", None),
    "batch": ("POST", "/batch", [{"method": "GET", "path": "/capabilities"}]),
    "sequence": ("POST", "/sequence", [{"method": "GET", "path": "/capabilities"}]),
    "rooms": ("GET", "/rooms", None),
    "room": ("GET", MR, None),
    "room update": ("PUT", MR, {"description": "the matrix"}),
    "pollInfo": ("GET", f"{MR}/pollInfo/0", None),
    "pin": ("POST", f"{MR}/pin/{{msg}}", {}),
    "unpin": ("POST", f"{MR}/unpin/{{msg}}", {}),
    "unpin all": ("POST", f"{MR}/unpin/all", {}),
    "since": ("GET", f"{MR}/messages/since/0", None),
    "recent": ("GET", f"{MR}/messages/recent", None),
    "before": ("GET", f"{MR}/messages/before/{{msg}}", None),
    "message": ("GET", f"{MR}/message/{{msg}}", None),
    "post": ("POST", f"{MR}/message", "a signed message"),
    "edit own": ("PUT", f"{MR}/message/{{own}}", "a signed message"),
    "delete own": ("DELETE", f"{MR}/message/{{own2}}", None),
    "delete other's": ("DELETE", f"{MR}/message/{{fresh}}", None),
    "react": ("PUT", f"{MR}/reaction/{{msg}}/{EMOJI}", None),
    "unreact": ("DELETE", f"{MR}/reaction/{{msg}}/{EMOJI}", None),
    "clear reactions": ("DELETE", f"{MR}/reactions/{{msg}}", None),
    "clear one kind": ("DELETE", f"{MR}/reactions/{{msg}}/{EMOJI}", None),
    "reactors": ("GET", f"{MR}/reactors/{{msg}}/{EMOJI}", None),
    "upload": ("POST", f"{MR}/file", b"matrix file"),
    "download": ("GET", f"{MR}/file/{{file}}", None),
    "download named": ("GET", f"{MR}/file/{{file}}/name.txt", None),
    "inbox": ("GET", "/inbox", None),
    "inbox since": ("GET", "/inbox/since/0", None),
    "outbox": ("GET", "/outbox", None),
    "outbox since": ("GET", "/outbox/since/0", None),
    "send DM": ("POST", "/inbox/{author}", {"message": "aGVsbG8="}),
    "clear inbox": ("DELETE", "/inbox", None),
    "room staff": (
        "POST",
        "/user/{target}/moderator",
        {"rooms": [MATRIX_ROOM], "moderator": False},
    ),
    "global staff": ("POST", "/user/{target}/moderator", {"global": True, "moderator": False}),
    "room ban": ("POST", "/user/{target}/ban", {"rooms": [MATRIX_ROOM]}),
    "room unban": ("POST", "/user/{target}/unban", {"rooms": [MATRIX_ROOM]}),
    "global ban": ("POST", "/user/{target}/ban", {"global": True}),
    "global unban": ("POST", "/user/{target}/unban", {"global": True}),
    "delete all of": ("DELETE", f"{MR}/all/{{poster}}", None),
    "everywhere of": ("DELETE", "/rooms/all/{poster}", None),
    "permissions": ("GET", f"{MR}/permissions", None),
    "permissions of": ("GET", f"{MR}/permissions/{{target}}", None),
    "set permissions": ("POST", f"{MR}/permissions/{{target}}", {"write": False}),
    "future": ("GET", f"{MR}/futurePermissions", None),
    "future of": ("GET", f"{MR}/futurePermissions/{{target}}", None),
    "schedule": ("POST", f"{MR}/futurePermissions/{{target}}", {"write": False, "in": 3600}),
    "delete all mine": ("DELETE", f"{MR}/all/{{self}}", None),
}

# Callers who are not staff. A global ban refuses every signed request (403); an unblinded
# key is refused before anything (400); a room ban refuses every route of that room (403;
# pysogs answers 404 for `GET /room/:t` there); without read and access the room does not
# exist (404). Writing and uploading need only their own permission (as pysogs).
PEOPLE_TABLE = """
route             ano unb usr nrd nac nwr nup ban bnt bno gbn gbt gbo b5r b5o g5r
capabilities      200 400 200 200 200 200 200 200 200 200 403 403 200 200 200 403
batch             200 400 200 200 200 200 200 200 200 200 403 403 200 200 200 403
sequence          200 400 200 200 200 200 200 200 200 200 403 403 200 200 200 403
rooms             200 400 200 200 200 200 200 200 200 200 403 403 200 200 200 403
room              200 400 200 200 404 200 200 403 403 200 403 403 200 403 403 403
room update       401 400 403 403 404 403 403 403 403 403 403 403 403 403 403 403
pollInfo          200 400 200 403 404 200 200 403 403 200 403 403 200 403 403 403
pin               401 400 403 403 404 403 403 403 403 403 403 403 403 403 403 403
unpin             401 400 403 403 404 403 403 403 403 403 403 403 403 403 403 403
unpin all         401 400 403 403 404 403 403 403 403 403 403 403 403 403 403 403
since             200 400 200 403 404 200 200 403 403 200 403 403 200 403 403 403
recent            200 400 200 403 404 200 200 403 403 200 403 403 200 403 403 403
before            200 400 200 403 404 200 200 403 403 200 403 403 200 403 403 403
message           200 400 200 403 404 200 200 403 403 200 403 403 200 403 403 403
post              401 400 201 201 404 403 201 403 403 201 403 403 201 403 403 403
edit own          401 400 200 200 404 403 200 403 403 200 403 403 200 403 403 403
delete own        401 400 200 200 404 403 200 403 403 200 403 403 200 403 403 403
delete other's    401 400 403 403 404 403 403 403 403 403 403 403 403 403 403 403
react             401 400 200 403 404 200 200 403 403 200 403 403 200 403 403 403
unreact           401 400 200 403 404 200 200 403 403 200 403 403 200 403 403 403
clear reactions   401 400 403 403 404 403 403 403 403 403 403 403 403 403 403 403
clear one kind    401 400 403 403 404 403 403 403 403 403 403 403 403 403 403 403
reactors          200 400 200 403 404 200 200 403 403 200 403 403 200 403 403 403
upload            401 400 201 201 404 201 403 403 403 201 403 403 201 403 403 403
download          200 400 200 403 404 200 200 403 403 200 403 403 200 403 403 403
download named    200 400 200 403 404 200 200 403 403 200 403 403 200 403 403 403
inbox             401 400 200 200 200 200 200 200 200 200 403 403 200 200 200 403
inbox since       401 400 304 304 304 304 304 304 304 304 403 403 304 304 304 403
outbox            401 400 200 200 200 200 200 200 200 200 403 403 200 200 200 403
outbox since      401 400 304 304 304 304 304 304 304 304 403 403 304 304 304 403
send DM           401 400 201 201 201 201 201 201 201 201 403 403 201 201 201 403
clear inbox       401 400 200 200 200 200 200 200 200 200 403 403 200 200 200 403
room staff        401 400 403 403 403 403 403 403 403 403 403 403 403 403 403 403
global staff      401 400 403 403 403 403 403 403 403 403 403 403 403 403 403 403
room ban          401 400 403 403 403 403 403 403 403 403 403 403 403 403 403 403
room unban        401 400 403 403 403 403 403 403 403 403 403 403 403 403 403 403
global ban        401 400 403 403 403 403 403 403 403 403 403 403 403 403 403 403
global unban      401 400 403 403 403 403 403 403 403 403 403 403 403 403 403 403
delete all of     401 400 403 403 404 403 403 403 403 403 403 403 403 403 403 403
everywhere of     401 400 200 200 200 200 200 200 200 200 403 403 200 200 200 403
permissions       401 400 403 403 404 403 403 403 403 403 403 403 403 403 403 403
permissions of    401 400 403 403 404 403 403 403 403 403 403 403 403 403 403 403
set permissions   401 400 403 403 404 403 403 403 403 403 403 403 403 403 403 403
future            401 400 403 403 404 403 403 403 403 403 403 403 403 403 403 403
future of         401 400 403 403 404 403 403 403 403 403 403 403 403 403 403 403
schedule          401 400 403 403 404 403 403 403 403 403 403 403 403 403 403 403
delete all mine   401 400 200 403 404 200 200 403 403 200 403 403 200 403 403 403
"""

# Staff may do everything a user may; moderators all a moderator may (pins, the room's
# settings and its staff are for admins; the server's staff and bans for global staff).
STAFF_TABLE = """
route             mod hmd adm gmd gad 5pr 5po
capabilities      200 200 200 200 200 200 200
batch             200 200 200 200 200 200 200
sequence          200 200 200 200 200 200 200
rooms             200 200 200 200 200 200 200
room              200 200 200 200 200 200 200
room update       403 403 200 403 200 403 403
pollInfo          200 200 200 200 200 200 200
pin               403 403 200 403 200 403 403
unpin             403 403 200 403 200 403 403
unpin all         403 403 200 403 200 403 403
since             200 200 200 200 200 200 200
recent            200 200 200 200 200 200 200
before            200 200 200 200 200 200 200
message           200 200 200 200 200 200 200
post              201 201 201 201 201 201 201
edit own          200 200 200 200 200 200 200
delete own        200 200 200 200 200 200 200
delete other's    200 200 200 200 200 200 200
react             200 200 200 200 200 200 200
unreact           200 200 200 200 200 200 200
clear reactions   200 200 200 200 200 200 200
clear one kind    200 200 200 200 200 200 200
reactors          200 200 200 200 200 200 200
upload            201 201 201 201 201 201 201
download          200 200 200 200 200 200 200
download named    200 200 200 200 200 200 200
inbox             200 200 200 200 200 200 200
inbox since       304 304 304 304 304 304 304
outbox            200 200 200 200 200 200 200
outbox since      304 304 304 304 304 304 304
send DM           201 201 201 201 201 201 201
clear inbox       200 200 200 200 200 200 200
room staff        403 403 200 403 200 403 403
global staff      403 403 403 403 200 403 403
room ban          200 200 200 200 200 200 200
room unban        200 200 200 200 200 200 200
global ban        403 403 403 200 200 403 403
global unban      403 403 403 200 200 403 403
delete all of     200 200 200 200 200 200 200
everywhere of     200 200 200 200 200 200 200
permissions       200 200 200 200 200 200 200
permissions of    200 200 200 200 200 200 200
set permissions   200 200 200 200 200 200 200
future            200 200 200 200 200 200 200
future of         200 200 200 200 200 200 200
schedule          200 200 200 200 200 200 200
delete all mine   200 200 200 200 200 200 200
"""


def parse_table(text: str) -> dict[tuple[str, str], int]:
    """(route label, persona) -> status, from a table as written above."""
    lines = [line for line in text.strip().splitlines()]
    personas = lines[0].split()[1:]
    table = {}
    for line in lines[1:]:
        label, codes = line[:18].strip(), line[18:].split()
        assert len(codes) == len(personas), line
        table.update({(label, p): int(c) for p, c in zip(personas, codes, strict=True)})
    return table


EXPECTED = {**parse_table(PEOPLE_TABLE), **parse_table(STAFF_TABLE)}
PEOPLE = PEOPLE_TABLE.split("\n")[1].split()[1:]  # the columns, as the tables name them
STAFF = STAFF_TABLE.split("\n")[1].split()[1:]


@dataclass
class Persona:
    """One caller of the matrix: a key (None: anonymous), how it signs, its messages."""

    name: str
    identity: BlindedIdentity | None
    blinded: bool = True
    own: list[int] = field(default_factory=list)


@dataclass
class Matrix:
    """The room's world: the personas, the other user and their message and file."""

    personas: dict[str, Persona]
    author: BlindedIdentity
    message: int
    file: int


def matrix_post(c: CommunityClient, who: BlindedIdentity) -> int:
    answer = c.post(f"{MR}/message", signed_message(c, who), identity=who)
    assert answer.status == 201, answer
    return int(answer.body["id"])


def signed_message(c: CommunityClient, who: BlindedIdentity) -> dict[str, str]:
    data = os.urandom(12)
    return {
        "data": base64.b64encode(data).decode(),
        "signature": base64.b64encode(who.sign_message_data(data, c.server_pk)).decode(),
    }


@pytest.fixture(scope="module")
def matrix(server: ServerProcess) -> Matrix:
    """The room `matrix` and its personas, arranged through the CLI and the API."""
    cli = server.cli
    cli("rooms", "add", MATRIX_ROOM, "Matrix")
    names = PEOPLE + STAFF
    personas = {n: Persona(n, None if n == "ano" else BlindedIdentity.generate()) for n in names}
    personas["unb"].blinded = False
    key = {n: p.identity for n, p in personas.items() if p.identity is not None}
    cli("moderators", "add", key["gmd"].session_id, "--global")
    cli("moderators", "add", key["gad"].session_id, "--global", "--admin")
    cli("moderators", "add", key["mod"].session_id, MATRIX_ROOM)
    cli("moderators", "add", key["hmd"].session_id, MATRIX_ROOM, "--hidden")
    cli("moderators", "add", key["adm"].session_id, MATRIX_ROOM, "--admin")
    cli("moderators", "add", key["5pr"].session_id, MATRIX_ROOM)  # before they ever sign
    with CommunityClient(server.base_url, server.public_key, "http") as c:
        admin, gadmin = key["adm"], key["gad"]
        by_session_id = {"rooms": [MATRIX_ROOM]}
        banned = c.post(f"/user/{key['b5r'].session_id}/ban", by_session_id, identity=admin)
        assert banned.status == 200, banned
        everywhere = {"global": True}
        banned = c.post(f"/user/{key['g5r'].session_id}/ban", everywhere, identity=gadmin)
        assert banned.status == 200, banned
        for p in personas.values():
            if p.identity is not None and p.blinded and p.name not in ("b5r", "g5r"):
                p.own = [matrix_post(c, p.identity) for _ in range(2)]
        cli("moderators", "add", key["5po"].session_id, MATRIX_ROOM)  # seen by now
        banned = c.post(f"/user/{key['b5o'].session_id}/ban", by_session_id, identity=admin)
        assert banned.status == 200, banned

        def act(by: BlindedIdentity, path: str, body: dict[str, Any]) -> None:
            answer = c.post(path, body, identity=by)
            assert answer.status == 200, (path, body, answer)

        def sid(name: str) -> str:
            return key[name].blinded_id(c.server_pk)

        for name, change in (
            ("nrd", {"read": False}),
            ("nac", {"read": False, "accessible": False}),
            ("nwr", {"write": False}),
            ("nup", {"upload": False}),
        ):
            act(admin, f"{MR}/permissions/{sid(name)}", change)
        act(admin, f"/user/{sid('ban')}/ban", {"rooms": [MATRIX_ROOM]})
        act(admin, f"/user/{sid('bnt')}/ban", {"rooms": [MATRIX_ROOM], "timeout": 3600})
        act(admin, f"/user/{sid('bno')}/ban", {"rooms": [MATRIX_ROOM], "timeout": 1})
        act(gadmin, f"/user/{sid('gbn')}/ban", {"global": True})
        act(gadmin, f"/user/{sid('gbt')}/ban", {"global": True, "timeout": 3600})
        act(gadmin, f"/user/{sid('gbo')}/ban", {"global": True, "timeout": 1})
        author = BlindedIdentity.generate()
        message = matrix_post(c, author)
        uploaded = c.post(f"{MR}/file", body=b"matrix file", identity=author)
        assert uploaded.status == 201, uploaded
        time.sleep(1.5)  # the one-second bans end
    return Matrix(personas, author, message, uploaded.body["id"])


def cell_request(
    c: CommunityClient, matrix: Matrix, persona: Persona, label: str
) -> CommunityAnswer:
    """Send the row's request as the persona, its blanks filled in for this cell."""
    method, template, body = REQUESTS[label]
    who = persona.identity
    author = matrix.author
    blanks = {
        "msg": str(matrix.message),
        "own": str(persona.own[0] if persona.own else matrix.message),
        "own2": str(persona.own[1] if persona.own else matrix.message),
        "file": str(matrix.file),
        "author": author.blinded_id(c.server_pk),
        "target": BlindedIdentity.generate().blinded_id(c.server_pk),
        "self": (who or author).blinded_id(c.server_pk),
    }
    if "{fresh}" in template:
        blanks["fresh"] = str(matrix_post(c, author))
    if "{poster}" in template:
        poster = BlindedIdentity.generate()
        matrix_post(c, poster)
        blanks["poster"] = poster.blinded_id(c.server_pk)
    path = template.format(**blanks)
    if body == "a signed message":
        body = signed_message(c, who or author)
    if isinstance(body, bytes):
        return c.request(method, path, identity=who, body=body, blinded=persona.blinded)
    return c.request(method, path, identity=who, json=body, blinded=persona.blinded)


def test_the_matrix_names_every_route_and_every_persona() -> None:
    routes = {(method, re.sub(r"\{\w+\}", "*", path)) for method, path, _ in REQUESTS.values()}
    table_routes = {(route.method, re.sub(r"\{\w+(:path)?\}", "*", route.path)) for route in ROUTES}
    fill = {"/room/matrix": "/room/*", "/pollInfo/0": "/pollInfo/*", "/since/0": "/since/*"}
    named = set()
    for method, path in routes:
        for literal, star in fill.items():
            path = path.replace(literal, star)
        path = re.sub(r"/(\U0001f44d|name\.txt)", "/*", path)
        named.add((method, path))
    named.add(("POST", "/room/*/unpin/all"))
    assert table_routes <= named, table_routes - named
    assert {label for label, _ in EXPECTED} == set(REQUESTS)
    assert {p for _, p in EXPECTED} == set(PEOPLE + STAFF)


def test_every_route_answers_every_persona_as_the_table_says(
    server: ServerProcess, matrix: Matrix
) -> None:
    """One request per cell, in the table's order; every difference is listed."""
    differences = []
    with CommunityClient(server.base_url, server.public_key, "http") as c:
        for label in REQUESTS:
            for name in PEOPLE + STAFF:
                answer = cell_request(c, matrix, matrix.personas[name], label)
                expected = EXPECTED[(label, name)]
                if answer.status != expected:
                    differences.append(f"{label:16} {name}: {answer.status} {answer.body!r:.80}")
                elif answer.status >= 400:
                    expect_refused(answer, expected)
    assert differences == [], "\n" + "\n".join(differences)


# --------------------------------------------------------------------------- whispers, hidden staff

READERS = [
    "ano",
    "usr",
    "nwr",
    "nup",
    "bno",
    "gbo",
    "mod",
    "hmd",
    "adm",
    "gmd",
    "gad",
    "5pr",
    "5po",
]
ROOM_STAFF = {"mod", "hmd", "adm", "gmd", "gad", "5pr", "5po"}


def whisper(c: CommunityClient, by: BlindedIdentity, **to: Any) -> int:
    answer = c.post(f"{MR}/message", {**signed_message(c, by), **to}, identity=by)
    assert answer.status == 201, answer
    return int(answer.body["id"])


@pytest.mark.parametrize("transport", ["http", "onion"], ids=["http", "onion4"])
def test_whispers_reach_only_their_addressees(
    server: ServerProcess, matrix: Matrix, transport: Transport
) -> None:
    """A whisper to someone reaches them and its sender (not the other moderators); one to
    the moderators reaches every moderator, hidden and global ones too; in every read."""
    people = matrix.personas
    with CommunityClient(server.base_url, server.public_key, transport) as c:
        mod, usr = people["mod"].identity, people["usr"].identity
        assert mod is not None and usr is not None
        seqno = room_seqno_of(c)
        to_usr = whisper(c, mod, whisper_to=usr.blinded_id(c.server_pk))
        to_mods = whisper(c, mod, whisper_mods=True)
        to_both = whisper(c, mod, whisper_to=usr.blinded_id(c.server_pk), whisper_mods=True)
        from_user = c.post(
            f"{MR}/message", {**signed_message(c, usr), "whisper_mods": True}, identity=usr
        )
        assert from_user.status == 403, from_user  # only moderators whisper
        expected = {
            to_usr: {"usr", "mod"},
            to_mods: ROOM_STAFF,
            to_both: ROOM_STAFF | {"usr"},
        }
        for name in READERS:
            who = people[name].identity
            since = c.get(f"{MR}/messages/since/{seqno}?limit=256", identity=who)
            recent = c.get(f"{MR}/messages/recent?limit=256", identity=who)
            assert since.status == recent.status == 200, (name, since, recent)
            for message_id, readers in expected.items():
                shown = name in readers
                assert (message_id in {m["id"] for m in since.body}) == shown, (name, message_id)
                assert (message_id in {m["id"] for m in recent.body}) == shown, (name, message_id)
                one = c.get(f"{MR}/message/{message_id}", identity=who)
                assert one.status == (200 if shown else 404), (name, message_id, one)
                reactors = c.get(f"{MR}/reactors/{message_id}/{EMOJI}", identity=who)
                assert reactors.status == (200 if shown else 404), (name, message_id, reactors)
                if who is not None:  # nor can one react to what one cannot see
                    react = c.put(f"{MR}/reaction/{message_id}/{EMOJI}", identity=who)
                    assert react.status == (200 if shown else 404), (name, message_id, react)


def room_seqno_of(c: CommunityClient) -> int:
    return int(expect_ok(c.get(MR))["message_sequence"])


def test_hidden_staff_stay_hidden_from_everyone_but_moderators(
    server: ServerProcess, matrix: Matrix
) -> None:
    """Not in the staff lists (room details, the room list, pollInfo), and not as the
    one who pinned a message (only admins pin: that would tell)."""
    people = matrix.personas
    with CommunityClient(server.base_url, server.public_key, "onion") as c:

        def sid(name: str) -> str:
            who = people[name].identity
            assert who is not None
            return who.blinded_id(c.server_pk)

        hidden = {sid("hmd"), sid("gmd"), sid("gad")}  # global staff are hidden by default
        visible = {sid("mod"), sid("adm"), sid("5pr"), sid("5po")}
        # Pinned by a hidden admin (and by a visible one): who pinned is staff.
        hidden_pin, visible_pin = (matrix_post(c, matrix.author) for _ in range(2))
        for pin, by in ((hidden_pin, "gad"), (visible_pin, "adm")):
            expect_ok(c.post(f"{MR}/pin/{pin}", {}, identity=people[by].identity))
        for name in READERS:
            who = people[name].identity
            info = expect_ok(c.get(MR, identity=who))
            listed = next(
                r for r in expect_ok(c.get("/rooms", identity=who)) if r["token"] == MATRIX_ROOM
            )
            polled = expect_ok(c.get(f"{MR}/pollInfo/0", identity=who))["details"]
            for shown in (info, listed, polled):
                staff = set(shown["moderators"]) | set(shown["admins"])
                secret = set(shown.get("hidden_moderators", [])) | set(
                    shown.get("hidden_admins", [])
                )
                assert staff == visible, (name, shown)
                pinners = {p["id"]: p.get("pinned_by") for p in shown["pinned_messages"]}
                assert pinners[visible_pin] == sid("adm"), (name, shown)
                if name in ROOM_STAFF:
                    assert secret == hidden, (name, shown)
                    assert pinners[hidden_pin] == sid("gad"), (name, shown)
                else:
                    assert "hidden_moderators" not in shown and "hidden_admins" not in shown
                    assert not (hidden & set(json.dumps(shown).split('"'))), (name, shown)
                    assert hidden_pin in pinners, (name, shown)  # the pin itself is public
        expect_ok(c.post(f"{MR}/unpin/all", {}, identity=people["adm"].identity))


@pytest.mark.parametrize("seen_before", [True, False], ids=["seen-before", "seen-after"])
def test_a_whisper_to_a_session_id_reaches_that_persons_blinded_id(
    server: ServerProcess, matrix: Matrix, seen_before: bool
) -> None:
    """Moderators name people by their Session id (what users see in their app): a whisper
    to it reaches the person's blinded id, whether it was seen before or first appears
    after, and nobody else."""
    person, other = BlindedIdentity.generate(), BlindedIdentity.generate()
    mod = matrix.personas["mod"].identity
    assert mod is not None
    with CommunityClient(server.base_url, server.public_key, "http") as c:
        if seen_before:
            expect_ok(c.get("/capabilities", identity=person))
        to_person = whisper(c, mod, whisper_to=person.session_id)

        assert c.get(f"{MR}/message/{to_person}", identity=person).status == 200
        recent = expect_ok(c.get(f"{MR}/messages/recent?limit=256", identity=person))
        assert to_person in [m["id"] for m in recent]
        for nobody in (other, None):
            assert c.get(f"{MR}/message/{to_person}", identity=nobody).status == 404
