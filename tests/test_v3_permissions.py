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
import os
import time
from typing import Any

import pytest
from communityclient import BlindedIdentity, CommunityAnswer, CommunityClient
from sessionclient import DEFAULT_ROOM

# Scheduled changes are applied every second here (the default is 10).
SERVER_ENV = {"OPENGROUP_FUTURE_PERMISSIONS_INTERVAL_SECONDS": "1"}
INTERVAL = 1.0

MAIN = DEFAULT_ROOM
ROOM = f"/room/{MAIN}"
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


# --------------------------------------------------------------------------- helpers


def ok(answer: CommunityAnswer) -> Any:
    assert answer.status == 200, answer
    assert answer.content_type == JSON, answer
    return answer.body


def refused(answer: CommunityAnswer, status: int) -> None:
    assert answer.status == status, answer
    assert answer.content_type == TEXT, answer
    assert isinstance(answer.body, str) and answer.body, answer


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
    info = ok(c.get(f"{ROOM}/pollInfo/0", identity=person))
    return {name: info[name] for name in ("read", "write", "upload")}


def wait_until(condition: Any, seconds: float) -> float:
    """Poll ``condition()`` until true; how long it took. Fails after ``seconds``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > seconds:
            pytest.fail(f"not within {seconds} s")
        time.sleep(0.1)
    return time.monotonic() - start


# --------------------------------------------------------------------------- overrides


def test_revoking_read_stops_reading_and_the_default_restores_it(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    sid = blinded(community, alice)
    entry = ok(set_permissions(community, room_moderator, sid, read=False))
    assert entry == {"read": False, "session_id": sid}
    refused(community.get(f"{ROOM}/messages/recent", identity=alice), 403)
    mine = ok(community.get(ROOM, identity=alice))  # still accessible: the room shows
    assert mine["read"] is False
    entry = ok(set_permissions(community, room_moderator, sid, default_read=True))
    assert entry == {"session_id": sid}
    ok(community.get(f"{ROOM}/messages/recent", identity=alice))


def test_revoking_write_stops_posting_only(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    sid = blinded(community, alice)
    ok(set_permissions(community, room_moderator, sid, write=False))
    assert post_status(community, alice) == 403
    assert rights(community, alice) == {"read": True, "write": False, "upload": True}
    ok(community.get(f"{ROOM}/messages/recent", identity=alice))
    ok(set_permissions(community, room_moderator, sid, default_write=True))
    assert post_status(community, alice) == 201


def test_revoking_upload_stops_uploads(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    sid = blinded(community, alice)
    ok(set_permissions(community, room_moderator, sid, upload=False))
    assert rights(community, alice) == {"read": True, "write": True, "upload": False}
    refused(community.post(f"{ROOM}/file", body=b"a file", identity=alice), 403)
    assert post_status(community, alice) == 201
    ok(set_permissions(community, room_moderator, sid, default_upload=True))
    assert rights(community, alice)["upload"] is True
    assert community.post(f"{ROOM}/file", body=b"a file", identity=alice).status == 201


def test_without_read_and_accessible_the_room_does_not_exist_for_them(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    sid = blinded(community, alice)
    entry = ok(set_permissions(community, room_moderator, sid, read=False, accessible=False))
    assert entry == {"read": False, "accessible": False, "session_id": sid}
    refused(community.get(ROOM, identity=alice), 404)
    assert MAIN not in [room["token"] for room in ok(community.get("/rooms", identity=alice))]
    ok(set_permissions(community, room_moderator, sid, default_read=True, default_accessible=True))
    ok(community.get(ROOM, identity=alice))


def test_granting_beats_the_room_default(
    community: CommunityClient,
    room_admin: BlindedIdentity,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    ok(community.put(ROOM, {"default_write": False}, identity=room_admin))
    try:
        ok(set_permissions(community, room_moderator, blinded(community, alice), write=True))
        assert post_status(community, alice) == 201
        assert post_status(community, bob) == 403
    finally:
        ok(community.put(ROOM, {"default_write": True}, identity=room_admin))


def test_an_override_of_a_session_id_reaches_the_blinded_id(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    entry = ok(set_permissions(community, room_moderator, alice.session_id, write=False))
    assert entry == {"write": False, "session_id": alice.session_id}  # not seen yet
    assert post_status(community, alice) == 403
    # Seen now: the entry shows the blinded id, and either id changes it.
    entry = ok(set_permissions(community, room_moderator, alice.session_id, default_write=True))
    assert entry == {"session_id": blinded(community, alice)}
    assert post_status(community, alice) == 201


def test_staff_are_not_held_back_by_overrides(
    community: CommunityClient, room_admin: BlindedIdentity, room_moderator: BlindedIdentity
) -> None:
    sid = blinded(community, room_moderator)
    ok(set_permissions(community, room_admin, sid, read=False, write=False))
    try:
        assert post_status(community, room_moderator) == 201
    finally:
        ok(set_permissions(community, room_admin, sid, default_read=True, default_write=True))


def test_the_room_list_shows_staff_bans_and_overrides(
    community: CommunityClient,
    room_admin: BlindedIdentity,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    ok(community.get("/capabilities", identity=room_admin))  # seen: listed by blinded id
    ok(community.get("/capabilities", identity=room_moderator))
    a, b = blinded(community, alice), blinded(community, bob)
    ok(set_permissions(community, room_moderator, a, write=False, upload=False))
    ok(community.post(f"/user/{b}/ban", {"rooms": [MAIN]}, identity=room_moderator))
    try:
        listed = ok(community.get(f"{ROOM}/permissions", identity=room_moderator))
        assert listed[a] == {"write": False, "upload": False}
        assert listed[b] == {"banned": True}
        assert listed[blinded(community, room_admin)] == {"admin": True}
        assert listed[blinded(community, room_moderator)] == {"moderator": True}
        one = ok(community.get(f"{ROOM}/permissions/{a}", identity=room_moderator))
        assert one == {"write": False, "upload": False}
        nobody = BlindedIdentity.generate().session_id
        assert ok(community.get(f"{ROOM}/permissions/{nobody}", identity=room_moderator)) == {}
    finally:
        ok(community.post(f"/user/{b}/unban", {"rooms": [MAIN]}, identity=room_moderator))
        ok(set_permissions(community, room_moderator, a, default_write=True, default_upload=True))


def test_hidden_staff_are_marked_hidden(
    community: CommunityClient,
    room_admin: BlindedIdentity,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
) -> None:
    sid = blinded(community, alice)
    body = {"rooms": [MAIN], "moderator": True, "visible": False}
    ok(community.post(f"/user/{sid}/moderator", body, identity=room_admin))
    try:
        one = ok(community.get(f"{ROOM}/permissions/{sid}", identity=room_moderator))
        assert one == {"moderator": True, "hidden": True}
    finally:
        body = {"rooms": [MAIN], "moderator": False}
        ok(community.post(f"/user/{sid}/moderator", body, identity=room_admin))


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
    refused(set_permissions(community, room_moderator, sid, **body), 400)
    assert ok(community.get(f"{ROOM}/permissions/{sid}", identity=room_moderator)) == {}
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
    refused(community.request(method, path, json=body), 401)
    refused(community.request(method, path, json=body, identity=bob), 403)
    refused(community.request(method, path, json=body, identity=alice), 403)
    assert (
        ok(
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
    ok(set_permissions(community, room_moderator, sid, write=False))
    start = time.time()
    planned = ok(schedule(community, room_moderator, sid, write=True, **{"in": 1.5}))
    assert planned == [{"at": pytest.approx(start + 1.5, abs=1), "write": True}]
    listed = ok(community.get(f"{ROOM}/futurePermissions", identity=room_moderator))
    assert {"at": planned[0]["at"], "write": True, "session_id": sid} in listed
    assert post_status(community, alice) == 403

    wait_until(lambda: rights(community, alice)["write"], 1.5 + INTERVAL + 2)
    assert time.time() >= start + 1.5 - 0.1  # not before its time
    assert post_status(community, alice) == 201
    assert ok(community.get(f"{ROOM}/futurePermissions/{sid}", identity=room_moderator)) == []
    entry = ok(community.get(f"{ROOM}/permissions/{sid}", identity=room_moderator))
    assert entry == {"write": True}


def test_a_temporary_mute_of_several_permissions(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    """The pysogs recipe: revoke now, schedule the restore (here read stays revoked)."""
    sid = blinded(community, alice)
    ok(set_permissions(community, room_moderator, sid, write=False, upload=False, read=False))
    ok(schedule(community, room_moderator, sid, write=True, upload=True, **{"in": 1}))
    wait_until(
        lambda: (
            community.get(f"{ROOM}/permissions/{sid}", identity=room_moderator).body
            == {"read": False, "write": True, "upload": True}
        ),
        1 + INTERVAL + 2,
    )
    ok(
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
    ok(schedule(community, room_moderator, sid, write=False, **{"in": 3600}))
    ok(schedule(community, room_moderator, sid, read=False, **{"in": 3600}))
    # unschedule false: the scheduled write change stays.
    ok(set_permissions(community, room_moderator, sid, write=True, unschedule=False))
    planned = ok(community.get(f"{ROOM}/futurePermissions/{sid}", identity=room_moderator))
    assert [{k: v for k, v in p.items() if k != "at"} for p in planned] == [
        {"write": False},
        {"read": False},
    ]
    # By default a change of write drops the scheduled write change, not the read one.
    ok(set_permissions(community, room_moderator, sid, default_write=True))
    planned = ok(community.get(f"{ROOM}/futurePermissions/{sid}", identity=room_moderator))
    assert [{k: v for k, v in p.items() if k != "at"} for p in planned] == [{"read": False}]
    ok(set_permissions(community, room_moderator, sid, default_read=True))
    assert ok(community.get(f"{ROOM}/futurePermissions/{sid}", identity=room_moderator)) == []


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
    refused(schedule(community, room_moderator, sid, **body), 400)
    assert ok(community.get(f"{ROOM}/futurePermissions/{sid}", identity=room_moderator)) == []
