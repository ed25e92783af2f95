"""Many requests in one: `/batch` and `/sequence` of the community API.

docs/spec/SPEC-v3.md sections 3 ("`/batch` answers one item per request, in
order, each with `code`, `headers` and `body` (JSON when the sub-answer is JSON,
base64 otherwise), even when a sub-request fails") and 4 (at most 64
sub-requests, 413 beyond; a nested `/batch` is 400; a failing or malformed
sub-request gets its own error in its place and the others are still answered);
docs/spec/sogs-v3.md sections 1.1 and 4 (the desktop's poll is one batch whose
answers it matches by position) and /tmp/peer/answers.md "/batch and /sequence":

- an item is `{method: GET|POST|PUT|DELETE, path: "/...", headers?, json? |
  b64? | bytes?}`; its answer `{"code", "headers": {lower-case names, with
  content-type}, "body"}`, the body the JSON value of a JSON answer, otherwise
  base64 of its bytes (a plain-text refusal too);
- a malformed item (unknown method, not an object, a path without `/`, more than
  one body, bad base64, headers that are not an object, a nested `/batch` or
  `/sequence`) is answered 400 in its place. pysogs refuses the whole batch
  instead: a client that matches answers by position would lose its whole poll;
- the body must be a JSON list (400 otherwise); `[]` answers `[]`; more than 64
  items is 413 and runs none of them;
- every item runs, in order, as the signer of the outer request; an item's own
  X-SOGS headers are not read (an anonymous batch stays anonymous); paths are
  percent-decoded as the transports decode them;
- `/sequence` stops after the first answer that is not 2xx, which it includes;
- once the answers add up to `max_batch_answer_bytes`, the items left are not
  run and are each 413 in their places (the first item always runs; pysogs has
  no such bound);
- the desktop's poll (capabilities, pollInfo/0, messages since/recent with
  `t=r&reactors=5`, and inbox/outbox where served) is answered item by item.

Every test that uses `community` runs over direct HTTP and over onion v4.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from harness.communityclient import (
    CONTENT_JSON,
    CONTENT_TEXT,
    BlindedIdentity,
    CommunityClient,
    Transport,
    desktop_json,
    sogs_headers,
)
from harness.expect import expect_ok, expect_refused
from harness.flows import AUTH_REQUIRED, ROOM, b64, message_body, posted, room_seqno
from harness.server import ServerProcess
from harness.v2client import DEFAULT_ROOM

MAX_BATCH = 64
THUMBS = "👍"
CAPABILITIES = {"method": "GET", "path": "/capabilities"}
ITEM_KEYS = {"code", "headers", "body"}


# --------------------------------------------------------------------------- helpers


def batch(
    client: CommunityClient, items: list[Any], identity: BlindedIdentity | None = None
) -> list[dict[str, Any]]:
    """POST /batch (items sent as given, malformed ones too); the answered items."""
    answers: list[dict[str, Any]] = expect_ok(client.post("/batch", items, identity=identity))
    for answer in answers:
        assert set(answer) == ITEM_KEYS, answer
        assert all(name == name.lower() for name in answer["headers"]), answer
        assert "content-length" not in answer["headers"], answer
    return answers


def sequence(
    client: CommunityClient, items: list[Any], identity: BlindedIdentity | None = None
) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = expect_ok(client.post("/sequence", items, identity=identity))
    return answers


def text_of(item: dict[str, Any]) -> str:
    """The plain text of a refusal answered in a batch (base64 of its bytes)."""
    assert item["headers"]["content-type"] == CONTENT_TEXT, item
    return base64.b64decode(item["body"]).decode()


def post_item(client: CommunityClient, identity: BlindedIdentity, **extra: Any) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": f"{ROOM}/message",
        "json": message_body(identity, client.server_pk, **extra),
    }


def outbox_served(client: CommunityClient, identity: BlindedIdentity) -> bool:
    """Whether this server has the direct-message routes (another part of the API)."""
    return client.get("/outbox", identity=identity).status != 404


# --------------------------------------------------------------------------- the answers


def test_each_request_is_answered_in_order_with_code_headers_and_body(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    stored = posted(community, alice)
    items = [
        CAPABILITIES,
        {"method": "GET", "path": f"{ROOM}/message/{stored['id']}"},
        {"method": "GET", "path": ROOM},
    ]

    answers = batch(community, items, alice)

    assert [a["code"] for a in answers] == [200, 200, 200]
    assert all(a["headers"] == {"content-type": CONTENT_JSON} for a in answers)
    assert answers[0]["body"] == expect_ok(community.get("/capabilities"))
    assert answers[1]["body"] == stored
    assert answers[2]["body"]["token"] == DEFAULT_ROOM


def test_a_failing_request_is_answered_in_its_place_as_base64_text(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    items = [
        CAPABILITIES,
        {"method": "GET", "path": "/room/nosuch"},
        {"method": "GET", "path": f"{ROOM}/message/{2**40}"},
        {"method": "POST", "path": f"{ROOM}/pin/1", "json": {}},
        CAPABILITIES,
    ]

    answers = batch(community, items, alice)

    assert [a["code"] for a in answers] == [200, 404, 404, 403, 200]
    for refused in answers[1:4]:
        assert text_of(refused)
    assert answers[4]["body"] == answers[0]["body"]


def test_an_anonymous_batch_gets_401_for_what_needs_a_user(community: CommunityClient) -> None:
    answers = batch(community, [{"method": "PUT", "path": f"{ROOM}/reaction/1/{THUMBS}"}])

    assert answers[0]["code"] == 401
    assert text_of(answers[0]) == AUTH_REQUIRED


def test_a_post_in_a_batch_answers_201_with_the_message(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    item = post_item(community, alice)

    [answer] = batch(community, [item], alice)

    assert answer["code"] == 201
    assert answer["body"]["data"] == item["json"]["data"]
    assert answer["body"]["session_id"] == alice.blinded_id(community.server_pk)


@pytest.mark.parametrize("key", ["b64", "bytes"])
def test_a_body_may_come_as_base64_or_as_text(
    community: CommunityClient, alice: BlindedIdentity, key: str
) -> None:
    raw = desktop_json(message_body(alice, community.server_pk))
    body = b64(raw) if key == "b64" else raw.decode()

    [answer] = batch(community, [{"method": "POST", "path": f"{ROOM}/message", key: body}], alice)

    assert answer["code"] == 201, answer


def test_the_items_run_in_order(community: CommunityClient, alice: BlindedIdentity) -> None:
    stored = posted(community, alice)
    path = f"{ROOM}/message/{stored['id']}"
    items = [
        {"method": "PUT", "path": f"{ROOM}/reaction/{stored['id']}/{THUMBS}"},
        {"method": "GET", "path": path},
        {"method": "DELETE", "path": path},
        {"method": "GET", "path": path},
    ]

    answers = batch(community, items, alice)

    assert [a["code"] for a in answers] == [200, 200, 200, 404]
    assert answers[0]["body"]["added"] is True
    assert answers[1]["body"]["reactions"][THUMBS]["you"] is True


@pytest.mark.parametrize(
    "emoji_path",
    [pytest.param(THUMBS, id="raw"), pytest.param("%F0%9F%91%8D", id="percent-encoded")],
)
def test_an_items_path_is_percent_decoded_like_a_requests(
    community: CommunityClient, alice: BlindedIdentity, emoji_path: str
) -> None:
    stored = posted(community, alice)
    item = {"method": "PUT", "path": f"{ROOM}/reaction/{stored['id']}/{emoji_path}"}

    [answer] = batch(community, [item], alice)

    assert answer["body"]["added"] is True
    reactions = expect_ok(community.get(f"{ROOM}/message/{stored['id']}"))["reactions"]
    assert list(reactions) == [THUMBS]


def test_an_items_query_string_is_read(community: CommunityClient, alice: BlindedIdentity) -> None:
    for _ in range(3):
        posted(community, alice)

    [answer] = batch(community, [{"method": "GET", "path": f"{ROOM}/messages/recent?limit=2"}])

    assert len(answer["body"]) == 2


def test_a_rate_limited_item_carries_retry_after(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    items = [post_item(community, alice) for _ in range(6)]

    answers = batch(community, items, alice)

    assert [a["code"] for a in answers] == [201] * 5 + [429]
    assert 1 <= int(answers[5]["headers"]["retry-after"]) <= 16


# --------------------------------------------------------------------------- malformed items


@pytest.mark.parametrize(
    "item",
    [
        pytest.param({"method": "PATCH", "path": ROOM}, id="method-patch"),
        pytest.param({"method": "get", "path": "/capabilities"}, id="method-lower-case"),
        pytest.param({"path": "/capabilities"}, id="no-method"),
        pytest.param({"method": "GET"}, id="no-path"),
        pytest.param({"method": "GET", "path": "capabilities"}, id="path-without-slash"),
        pytest.param({"method": "GET", "path": 5}, id="path-a-number"),
        pytest.param(5, id="a-number"),
        pytest.param("GET /capabilities", id="a-string"),
        pytest.param(None, id="null"),
        pytest.param(
            {"method": "POST", "path": f"{ROOM}/message", "json": {}, "b64": ""}, id="two-bodies"
        ),
        pytest.param({"method": "POST", "path": f"{ROOM}/message", "b64": "***"}, id="bad-b64"),
        pytest.param({"method": "POST", "path": f"{ROOM}/message", "bytes": 5}, id="bytes-number"),
        pytest.param(
            {"method": "GET", "path": "/capabilities", "headers": ["a"]}, id="headers-list"
        ),
        pytest.param(
            {"method": "POST", "path": "/batch", "json": [CAPABILITIES]}, id="nested-batch"
        ),
        pytest.param(
            {"method": "POST", "path": "/sequence", "json": [CAPABILITIES]}, id="nested-sequence"
        ),
        pytest.param({"method": "POST", "path": "/batch/", "json": []}, id="nested-batch-slash"),
        pytest.param({"method": "POST", "path": "/batch?x=1", "json": []}, id="nested-batch-query"),
        pytest.param({"method": "POST", "path": "/%62atch", "json": []}, id="nested-batch-encoded"),
        pytest.param(
            {"method": "POST", "path": "//batch", "json": []}, id="nested-batch-2-slashes"
        ),
        pytest.param(
            {"method": "POST", "path": "/%2Fsequence", "json": []}, id="nested-sequence-enc-slash"
        ),
    ],
)
def test_a_malformed_item_is_answered_400_in_its_place(
    community: CommunityClient, alice: BlindedIdentity, item: Any
) -> None:
    before = room_seqno(community)

    answers = batch(community, [CAPABILITIES, item, CAPABILITIES], alice)

    assert [a["code"] for a in answers] == [200, 400, 200]
    assert text_of(answers[1])
    assert room_seqno(community) == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"method": "GET", "path": "/capabilities"}, id="an-object"),
        pytest.param("[]", id="a-string"),
        pytest.param(None, id="null"),
    ],
)
def test_a_batch_that_is_not_a_list_is_400(community: CommunityClient, body: Any) -> None:
    raw = desktop_json(body)

    answer = community.post("/batch", body=raw, headers={"Content-Type": CONTENT_JSON})

    expect_refused(answer, 400)


def test_a_batch_that_is_not_json_is_400(community: CommunityClient) -> None:
    answer = community.post("/batch", body=b"[{", headers={"Content-Type": CONTENT_JSON})

    expect_refused(answer, 400)


def test_an_empty_batch_answers_an_empty_list(community: CommunityClient) -> None:
    assert batch(community, []) == []


def test_64_items_are_answered_and_65_are_413_running_none(
    community: CommunityClient, room_moderator: BlindedIdentity
) -> None:
    assert len(batch(community, [CAPABILITIES] * MAX_BATCH)) == MAX_BATCH
    before = room_seqno(community)

    answer = community.post(
        "/batch", [post_item(community, room_moderator)] * (MAX_BATCH + 1), identity=room_moderator
    )

    expect_refused(answer, 413)
    assert room_seqno(community) == before


# --------------------------------------------------------------------------- who the items run as


def test_items_run_as_the_outer_signer_whatever_their_own_headers_say(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    item = post_item(community, alice)  # alice's post, with bob's request signature
    item["headers"] = sogs_headers(
        bob, community.server_pk, "POST", f"{ROOM}/message", desktop_json(item["json"])
    )

    [answer] = batch(community, [item], alice)

    assert answer["code"] == 201
    assert answer["body"]["session_id"] == alice.blinded_id(community.server_pk)


def test_an_anonymous_batch_stays_anonymous_with_signed_items(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    item = post_item(community, alice)
    item["headers"] = sogs_headers(
        alice, community.server_pk, "POST", f"{ROOM}/message", desktop_json(item["json"])
    )
    before = room_seqno(community)

    [answer] = batch(community, [item])

    assert answer["code"] == 401
    assert room_seqno(community) == before


def test_the_outer_signature_covers_the_batch_body(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    signed = desktop_json([CAPABILITIES])
    headers = sogs_headers(alice, community.server_pk, "POST", "/batch", signed)

    answer = community.post("/batch", [CAPABILITIES, CAPABILITIES], headers=headers)

    expect_refused(answer, 401)


def test_a_moderators_batch_moderates(
    community: CommunityClient, alice: BlindedIdentity, room_moderator: BlindedIdentity
) -> None:
    stored = posted(community, alice)

    answers = batch(
        community,
        [
            {"method": "DELETE", "path": f"{ROOM}/reactions/{stored['id']}"},
            {"method": "DELETE", "path": f"{ROOM}/message/{stored['id']}"},
        ],
        room_moderator,
    )

    assert [a["code"] for a in answers] == [200, 200]


def test_the_items_after_a_write_see_what_it_changed(
    community: CommunityClient, alice: BlindedIdentity, room_admin: BlindedIdentity
) -> None:
    """A room's details and the signer's rights are read once for the GET items of a
    batch; an item of another method may change them, so the GETs after it read anew."""
    stored = posted(community, alice)
    room = {"method": "GET", "path": ROOM}
    pin = {"method": "POST", "path": f"{ROOM}/pin/{stored['id']}"}

    answers = batch(community, [room, room, pin, room], room_admin)

    assert [a["code"] for a in answers] == [200, 200, 200, 200]
    before, again, pinned, after = (a["body"] for a in answers)
    assert again["info_updates"] == before["info_updates"]
    assert after["info_updates"] == pinned["info_updates"] > before["info_updates"]
    assert stored["id"] in [p["id"] for p in after["pinned_messages"]]
    expect_ok(community.post(f"{ROOM}/unpin/{stored['id']}", {}, identity=room_admin))


# --------------------------------------------------------------------------- /sequence


ANSWER_CAP = 100_000  # max_batch_answer_bytes of the server below
BIG = 20_000  # bytes of a large message: a page of two (in base64) is over half the cap


@pytest.mark.parametrize("transport", ["http", "onion"], ids=["http", "onion4"])
def test_items_past_the_answer_cap_are_413_unrun_and_answered_when_asked_again(
    server_factory: Callable[..., ServerProcess], transport: Transport
) -> None:
    """A batch stops running items once their answers reach ``max_batch_answer_bytes``
    (the item that crosses it is answered whole): the rest are 413 in their places,
    nothing they would have written is written, and asked for again they are
    answered. A /sequence stops at its first 413."""
    server = server_factory(env={"OPENGROUP_MAX_BATCH_ANSWER_BYTES": str(ANSWER_CAP)})
    alice = BlindedIdentity.generate()
    with CommunityClient(server.base_url, server.public_key, transport) as client:
        for n in range(2):
            posted(client, alice, bytes([n]) * BIG)
        page = {"method": "GET", "path": f"{ROOM}/messages/recent?limit=2"}
        capped = batch(client, [page, page, page, CAPABILITIES, post_item(client, alice)], alice)
        assert [item["code"] for item in capped] == [200, 200, 413, 413, 413]
        assert capped[0]["body"] == capped[1]["body"]  # the second, crossing the cap, whole
        assert "answer is full" in text_of(capped[2])
        assert room_seqno(client) == 2  # the post past the cap never ran

        stopped = sequence(client, [page, page, page, CAPABILITIES], alice)
        assert [item["code"] for item in stopped] == [200, 200, 413]

        rest = batch(client, [CAPABILITIES, post_item(client, alice)], alice)
        assert [item["code"] for item in rest] == [200, 201]
        assert room_seqno(client) == 3


def test_the_first_item_runs_whatever_the_answer_cap(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(env={"OPENGROUP_MAX_BATCH_ANSWER_BYTES": "0"})
    with CommunityClient(server.base_url, server.public_key, "onion") as client:
        answered = batch(client, [CAPABILITIES, CAPABILITIES], BlindedIdentity.generate())
    assert [item["code"] for item in answered] == [200, 413]


def test_a_sequence_stops_after_the_first_failure_and_includes_it(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    first, last = post_item(community, alice), post_item(community, alice)
    before = room_seqno(community)

    answers = sequence(
        community,
        [first, {"method": "POST", "path": f"{ROOM}/pin/1", "json": {}}, last],
        alice,
    )

    assert [a["code"] for a in answers] == [201, 403]
    assert room_seqno(community) == before + 1
    assert answers[0]["body"]["data"] == first["json"]["data"]


def test_a_sequence_of_successes_answers_them_all(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    answers = sequence(community, [CAPABILITIES, post_item(community, alice), CAPABILITIES], alice)

    assert [a["code"] for a in answers] == [200, 201, 200]


def test_a_sequence_stops_at_a_malformed_item(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    answers = sequence(community, [CAPABILITIES, {"method": "PATCH", "path": "/"}, CAPABILITIES])

    assert [a["code"] for a in answers] == [200, 400]


def test_a_sequence_holds_at_most_64_items(community: CommunityClient) -> None:
    expect_refused(community.post("/sequence", [CAPABILITIES] * (MAX_BATCH + 1)), 413)


# --------------------------------------------------------------------------- the desktop's poll


@pytest.mark.parametrize("first_poll", [True, False], ids=["first-poll", "later-poll"])
def test_the_desktops_poll_is_answered_item_by_item(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity, first_poll: bool
) -> None:
    cursor = room_seqno(community)
    stored = posted(community, bob)
    expect_ok(community.put(f"{ROOM}/reaction/{stored['id']}/{THUMBS}", identity=bob))
    messages_path = (
        f"{ROOM}/messages/recent?reactors=5"
        if first_poll
        else f"{ROOM}/messages/since/{cursor}?t=r&reactors=5"
    )
    items: list[dict[str, Any]] = [
        CAPABILITIES,
        {"method": "GET", "path": f"{ROOM}/pollInfo/0"},
        {"method": "GET", "path": messages_path},
    ]
    with_dms = outbox_served(community, alice)
    if with_dms:
        items += [{"method": "GET", "path": "/inbox"}, {"method": "GET", "path": "/outbox"}]

    answers = batch(community, items, alice)

    assert [a["code"] for a in answers[:3]] == [200, 200, 200]
    assert answers[0]["body"]["capabilities"] == ["blind", "reactions", "sogs"]
    assert answers[1]["body"]["details"]["token"] == DEFAULT_ROOM
    assert answers[1]["body"]["write"] is True
    found = [m for m in answers[2]["body"] if m["id"] == stored["id"]]
    assert len(found) == 1
    assert found[0]["reactions"][THUMBS]["reactors"] == [bob.blinded_id(community.server_pk)]
    if with_dms:
        assert [a["code"] for a in answers[3:]] == [200, 200]
        assert answers[3]["body"] == [] and answers[4]["body"] == []


def test_a_poll_batch_through_onion_matches_the_same_batch_sent_directly(
    community: CommunityClient, setup_community: CommunityClient, alice: BlindedIdentity
) -> None:
    posted(community, alice)
    items = [CAPABILITIES, {"method": "GET", "path": f"{ROOM}/messages/recent?limit=3"}]

    through = batch(community, items, alice)
    direct = batch(setup_community, items, alice)

    assert through == direct


def test_an_unknown_route_in_a_batch_is_404_in_place(community: CommunityClient) -> None:
    answers = batch(community, [{"method": "GET", "path": f"/no/such/{os.urandom(2).hex()}"}])

    assert answers[0]["code"] == 404


# --------------------------------------------------------------------------- many at once

AT_ONCE = 24


def test_simultaneous_polls_each_get_their_signers_rights_and_direct_messages(
    server: ServerProcess, setup_community: CommunityClient
) -> None:
    """Polls answered on the event loop read their rooms and DM boxes ahead together
    (on PostgreSQL in one round trip for all those waiting, see docs/ARCHITECTURE.md):
    each answer is still its own signer's. A third of the pollers are banned from the
    room, a third have a direct message waiting, all poll at the same moment."""
    pollers = [BlindedIdentity.generate() for _ in range(AT_ONCE)]
    for who in pollers:  # (known here: DMs may be sent to them)
        expect_ok(setup_community.get("/capabilities", identity=who))
    banned = pollers[::3]
    for who in banned:
        server.cli("bans", "add", who.session_id, DEFAULT_ROOM)
    sender = BlindedIdentity.generate()
    waiting: dict[str, bytes] = {}
    for who in pollers[1::3]:
        to = who.blinded_id(setup_community.server_pk)
        waiting[to] = os.urandom(24)
        message = {"message": base64.b64encode(waiting[to]).decode()}
        expect_ok(setup_community.post(f"/inbox/{to}", message, identity=sender), 201)
    items = [
        {"method": "GET", "path": f"{ROOM}/pollInfo/0"},
        {"method": "GET", "path": f"{ROOM}/messages/recent?limit=1"},
        {"method": "GET", "path": "/inbox"},
        {"method": "GET", "path": "/outbox"},
    ]
    start = threading.Barrier(AT_ONCE)

    def poll(who: BlindedIdentity) -> list[dict[str, Any]]:
        with CommunityClient(server.base_url, server.public_key, "onion", timeout=60) as c:
            c.get("/capabilities")  # (the connection is open before the barrier)
            start.wait()
            return batch(c, items, who)

    with ThreadPoolExecutor(AT_ONCE) as pool:
        answers = list(pool.map(poll, pollers))

    for who, answer in zip(pollers, answers, strict=True):
        me = who.blinded_id(setup_community.server_pk)
        codes = [item["code"] for item in answer]
        assert codes == ([403, 403, 200, 200] if who in banned else [200] * 4), (me, answer)
        if who not in banned:
            assert answer[0]["body"]["token"] == DEFAULT_ROOM
        inbox, outbox = answer[2]["body"], answer[3]["body"]
        expected = [waiting[me]] if me in waiting else []
        assert [base64.b64decode(m["message"]) for m in inbox] == expected, me
        assert all(m["recipient"] == me for m in inbox)
        assert outbox == []
