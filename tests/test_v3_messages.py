"""Messages through the community API: posting, reading, editing, deleting, whispers
and reactions, and the room's seqno that clients poll by.

docs/spec/SPEC-v3.md sections 2 (message signatures are verified; `data` and
`signature` come back byte for byte), 3 (the surface; a reaction-only row has
exactly `id`, `seqno`, `reactions`; `seqno` grows with every post, edit,
deletion and reaction change; extra keys in a post are ignored) and 4 (posts
5 per 16 s per poster per room, moderators exempt; message size; reactions of
1 to 12 code points; at most 20 reactors; `limit` 1 to 256, larger capped; ids
beyond 64 bits are 400, never 500; every refusal stores nothing);
docs/spec/sogs-v3.md sections 1.3 and 1.7 (routes and shapes) and
/tmp/peer/answers.md "Messages" and "Reactions" (pysogs' answers):

- `POST /room/:t/message` answers 201 with exactly `id, session_id, posted,
  seqno, data, signature, reactions` (a whisper adds `whisper`, `whisper_mods`
  and, if targeted, `whisper_to`); a signature that is not 64 bytes or does not
  verify over `data` under the poster's key is 400; data above
  `max_message_bytes` is 413; the sixth post in 16 s is 429 with `Retry-After`;
- only moderators whisper (403 otherwise); a whisper to one user is seen by that
  user and its sender, one to moderators by every moderator; nobody else sees it
  in `recent`, `since` or `message/:id` (404), nor its deletion;
- `recent` and `before/:id` are newest first without deletions; `since/:seqno`
  answers, in seqno order, new messages, edits (with `edited`), deletions
  (`data: null, deleted: true`, for messages created by the cursor only) and,
  with `t=r` only, reaction changes as exactly `{id, seqno, reactions}`;
- `limit`: 1 to 256, default 100, larger values capped at 256; 0, negative or
  not a number is 400 (pysogs clamps 0 to 1: we refuse it, as for any value
  outside the documented range);
- edits by the author only (a moderator too gets 403), of live messages (404);
  deletions by the author or a moderator (403 for others, 404 the second time);
- reactions: `PUT|DELETE reaction/:id/:emoji` (emoji raw or percent-encoded)
  answer `{"added"|"removed": bool, "seqno"}`; 1 to 12 code points (400
  beyond); entries are `{index, count, reactors?, you?}` (`index` by first use,
  `reactors` the first `reactors=N` (default 4, at most 20) reactors, left out
  for 0, `you` only for the caller's own); a moderator clears all or one kind
  (`{"removed": count, "seqno"}`); `reactors/:id/:emoji` lists `[session_id,
  time]` oldest first; made on the event loop or from a thread (SQLite, when the
  loop may not write at once), a reaction is answered the same.

Every test that uses `community` runs over direct HTTP and over onion v4.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness.communityclient import BlindedIdentity, CommunityAnswer, CommunityClient
from harness.expect import expect_ok, expect_rate_limited, expect_refused
from harness.flows import (
    AUTH_REQUIRED,
    DELETION_KEYS,
    MESSAGE_KEYS,
    REACTION_ONLY_KEYS,
    ROOM,
    CliRunner,
    add_room,
    b64,
    message_body,
    new_room,
    post_message,
    posted,
    room_seqno,
    session_padded,
    since,
)
from harness.server import ServerProcess

MAX_MESSAGE_BYTES = 2000
SERVER_ENV = {"OPENGROUP_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES)}

RATE_LIMIT_COUNT = 5
RATE_LIMIT_SECONDS = 16
MAX_PAGE = 256
DEFAULT_PAGE = 100
MAX_REACTORS = 20
DEFAULT_REACTORS = 4
CROWDED = "crowded"
CROWD = MAX_PAGE + 4
BEYOND_64_BITS = 2**64
THUMBS = "👍"
HEART = "❤️"


# --------------------------------------------------------------------------- helpers


def message(
    client: CommunityClient, identity: BlindedIdentity | None, message_id: int, query: str = ""
) -> CommunityAnswer:
    return client.get(
        f"{ROOM}/message/{message_id}" + (f"?{query}" if query else ""), identity=identity
    )


def recent(
    client: CommunityClient,
    identity: BlindedIdentity | None = None,
    query: str = "",
    room: str = ROOM,
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = expect_ok(
        client.get(f"{room}/messages/recent" + (f"?{query}" if query else ""), identity=identity)
    )
    return found


def ids(messages: list[dict[str, Any]]) -> list[int]:
    return [m["id"] for m in messages]


def react(
    client: CommunityClient, identity: BlindedIdentity, message_id: int, emoji: str = THUMBS
) -> dict[str, Any]:
    answer: dict[str, Any] = expect_ok(
        client.put(f"{ROOM}/reaction/{message_id}/{emoji}", identity=identity)
    )
    return answer


def unreact(
    client: CommunityClient, identity: BlindedIdentity, message_id: int, emoji: str = THUMBS
) -> dict[str, Any]:
    answer: dict[str, Any] = expect_ok(
        client.delete(f"{ROOM}/reaction/{message_id}/{emoji}", identity=identity)
    )
    return answer


def edit(
    client: CommunityClient, identity: BlindedIdentity, message_id: int, data: bytes
) -> CommunityAnswer:
    body = message_body(identity, client.server_pk, data)
    return client.put(f"{ROOM}/message/{message_id}", body, identity=identity)


def seen_by(
    client: CommunityClient, identity: BlindedIdentity | None, message_id: int, cursor: int
) -> dict[str, bool]:
    """Where ``identity`` sees the message: in recent, in since/cursor, as message/:id."""
    return {
        "recent": message_id in ids(recent(client, identity)),
        "since": message_id in ids(since(client, identity, cursor)),
        "message": message(client, identity, message_id).status == 200,
    }


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def crowded_room(
    cli: CliRunner, setup_community: CommunityClient, room_moderator: BlindedIdentity
) -> Iterator[str]:
    """A room with more messages than one page can hold (posted by a moderator, who is
    not rate limited, through /batch)."""
    add_room(cli, CROWDED, "Crowded")
    cli("moderators", "add", room_moderator.session_id, CROWDED)
    room = f"/room/{CROWDED}"
    left = CROWD
    while left:
        items = [
            {
                "method": "POST",
                "path": f"{room}/message",
                "json": message_body(room_moderator, setup_community.server_pk, os.urandom(8)),
            }
            for _ in range(min(left, 64))
        ]
        answers = expect_ok(setup_community.batch(items, room_moderator))
        assert [a["code"] for a in answers] == [201] * len(items), answers
        left -= len(items)
    yield room


# --------------------------------------------------------------------------- posting


def test_a_post_answers_201_with_exactly_the_message_keys(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    data = session_padded("hi there")
    body = message_body(alice, community.server_pk, data)
    started = time.time()

    answer = community.post(f"{ROOM}/message", body, identity=alice)

    posted_message = expect_ok(answer, 201)
    assert set(posted_message) == MESSAGE_KEYS
    assert posted_message["session_id"] == alice.blinded_id(community.server_pk)
    assert posted_message["data"] == body["data"]
    assert posted_message["signature"] == body["signature"]
    assert posted_message["reactions"] == {}
    assert isinstance(posted_message["posted"], float)
    assert started - 1 <= posted_message["posted"] <= time.time() + 1
    assert posted_message["seqno"] == room_seqno(community)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(session_padded("padded"), id="session-padding"),
        pytest.param(bytes(range(256)), id="every-byte"),
        pytest.param(b"\x00" * 33, id="zeros-needing-base64-padding"),
        pytest.param(b"\x80", id="one-byte"),
    ],
)
def test_data_and_signature_are_served_byte_for_byte_everywhere(
    community: CommunityClient, alice: BlindedIdentity, data: bytes
) -> None:
    cursor = room_seqno(community)

    stored = posted(community, alice, data)

    assert base64.b64decode(stored["data"]) == data
    assert expect_ok(message(community, alice, stored["id"])) == stored
    assert [m for m in recent(community, alice) if m["id"] == stored["id"]] == [stored]
    assert [m for m in since(community, alice, cursor) if m["id"] == stored["id"]] == [stored]


def test_extra_keys_in_a_post_are_ignored(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    extra: dict[str, Any] = {
        "timestamp": 1_700_000_000_000,
        "session_id": bob.blinded_id(community.server_pk),
        "posted": 5.0,
        "reactions": {THUMBS: {"count": 9}},
        "seqno": 1,
        "id": 1,
    }

    stored = posted(community, alice, **extra)

    assert stored["session_id"] == alice.blinded_id(community.server_pk)
    assert stored["reactions"] == {}
    assert stored["posted"] > 1_700_000_000
    assert expect_ok(message(community, alice, stored["id"])) == stored


def test_file_ids_may_be_given_as_decimal_strings(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    stored = posted(community, alice, files=["12345", 678])

    assert set(stored) == MESSAGE_KEYS


@pytest.mark.parametrize(
    "change",
    [
        pytest.param("other-signer", id="signed-by-someone-else"),
        pytest.param("other-data", id="signature-over-other-data"),
        pytest.param("unblinded", id="xeddsa-of-the-session-id"),
        pytest.param("zeros", id="64-zero-bytes"),
    ],
)
def test_a_signature_that_does_not_verify_is_400_and_stores_nothing(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity, change: str
) -> None:
    data = os.urandom(48)
    signature = {
        "other-signer": bob.sign_message_data(data, community.server_pk),
        "other-data": alice.sign_message_data(data + b"!", community.server_pk),
        "unblinded": alice.sign_xeddsa(data),
        "zeros": bytes(64),
    }[change]
    before = room_seqno(community)

    answer = community.post(
        f"{ROOM}/message", {"data": b64(data), "signature": b64(signature)}, identity=alice
    )

    expect_refused(answer, 400)
    assert room_seqno(community) == before


@pytest.mark.parametrize(
    "size", [pytest.param(63, id="63"), pytest.param(65, id="65"), pytest.param(32, id="32")]
)
def test_a_signature_that_is_not_64_bytes_is_400(
    community: CommunityClient, alice: BlindedIdentity, size: int
) -> None:
    data = os.urandom(48)
    signature = (alice.sign_message_data(data, community.server_pk) * 2)[:size]
    before = room_seqno(community)

    answer = community.post(
        f"{ROOM}/message", {"data": b64(data), "signature": b64(signature)}, identity=alice
    )

    expect_refused(answer, 400)
    assert room_seqno(community) == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"signature": b64(bytes(64))}, id="no-data"),
        pytest.param({"data": "aGk="}, id="no-signature"),
        pytest.param({"data": "", "signature": b64(bytes(64))}, id="empty-data"),
        pytest.param({"data": "***", "signature": b64(bytes(64))}, id="data-not-base64"),
        pytest.param({"data": "aGk=", "signature": "!!"}, id="signature-not-base64"),
        pytest.param({"data": 5, "signature": b64(bytes(64))}, id="data-a-number"),
        pytest.param([], id="a-list"),
        pytest.param("hello", id="a-string"),
    ],
)
def test_a_malformed_post_is_400_and_stores_nothing(
    community: CommunityClient, alice: BlindedIdentity, body: Any
) -> None:
    before = room_seqno(community)

    answer = community.post(f"{ROOM}/message", body, identity=alice)

    expect_refused(answer, 400)
    assert room_seqno(community) == before


@pytest.mark.parametrize(
    "raw", [pytest.param(b"{data:", id="broken-json"), pytest.param(b"null", id="null")]
)
def test_a_post_that_is_no_json_object_is_400(
    community: CommunityClient, alice: BlindedIdentity, raw: bytes
) -> None:
    answer = community.post(
        f"{ROOM}/message", body=raw, identity=alice, headers={"Content-Type": "application/json"}
    )

    expect_refused(answer, 400)


def test_data_of_the_largest_size_is_stored_and_one_byte_more_is_413(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    stored = posted(community, alice, os.urandom(MAX_MESSAGE_BYTES))
    before = room_seqno(community)

    answer = post_message(community, alice, os.urandom(MAX_MESSAGE_BYTES + 1))

    assert len(base64.b64decode(stored["data"])) == MAX_MESSAGE_BYTES
    expect_refused(answer, 413)
    assert room_seqno(community) == before


# --------------------------------------------------------------------------- rate limit


def test_the_sixth_post_within_16_seconds_is_429_with_retry_after(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    for _ in range(RATE_LIMIT_COUNT):
        posted(community, alice)
    before = room_seqno(community)

    answer = post_message(community, alice)

    expect_rate_limited(answer, RATE_LIMIT_SECONDS)
    assert room_seqno(community) == before


def test_the_rate_limit_is_per_room(
    community: CommunityClient, alice: BlindedIdentity, cli: CliRunner
) -> None:
    other = add_room(cli, f"calm_{os.urandom(4).hex()}", "Calm")
    for _ in range(RATE_LIMIT_COUNT):
        posted(community, alice)
    expect_refused(post_message(community, alice), 429)

    assert posted(community, alice, room=f"/room/{other}")["id"] >= 1


def test_moderators_and_admins_are_not_rate_limited(
    community: CommunityClient, room_moderator: BlindedIdentity, room_admin: BlindedIdentity
) -> None:
    for identity in (room_moderator, room_admin):
        for _ in range(RATE_LIMIT_COUNT + 2):
            posted(community, identity)


def test_other_posters_are_not_held_back_by_one_posters_limit(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    for _ in range(RATE_LIMIT_COUNT):
        posted(community, alice)
    expect_refused(post_message(community, alice), 429)

    posted(community, bob)


# --------------------------------------------------------------------------- whispers


def test_a_whisper_to_one_user_is_seen_by_that_user_and_its_sender_only(
    community: CommunityClient,
    room_moderator: BlindedIdentity,
    room_admin: BlindedIdentity,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    cursor = room_seqno(community)
    to_alice = alice.blinded_id(community.server_pk)

    whisper = posted(community, room_moderator, whisper_to=to_alice)

    assert set(whisper) == MESSAGE_KEYS | {"whisper", "whisper_mods", "whisper_to"}
    assert (whisper["whisper"], whisper["whisper_mods"], whisper["whisper_to"]) == (
        True,
        False,
        to_alice,
    )
    everywhere = {"recent": True, "since": True, "message": True}
    nowhere = dict.fromkeys(everywhere, False)
    assert seen_by(community, alice, whisper["id"], cursor) == everywhere
    assert seen_by(community, room_moderator, whisper["id"], cursor) == everywhere
    assert seen_by(community, bob, whisper["id"], cursor) == nowhere
    assert seen_by(community, room_admin, whisper["id"], cursor) == nowhere
    assert seen_by(community, None, whisper["id"], cursor) == nowhere
    assert expect_ok(message(community, alice, whisper["id"])) == whisper


def test_a_whisper_to_a_session_id_reaches_the_blinded_id_it_signs_in_as(
    community: CommunityClient, room_moderator: BlindedIdentity, bob: BlindedIdentity
) -> None:
    # Named by its "05" Session id, never seen linked: the post links it first (a write
    # of its own before the post's, so not answered where only reads may run).
    carol = BlindedIdentity.generate()
    cursor = room_seqno(community)
    whisper = posted(community, room_moderator, whisper_to=carol.session_id)
    assert whisper["whisper_to"] == carol.session_id
    assert seen_by(community, carol, whisper["id"], cursor)["message"] is True
    assert seen_by(community, bob, whisper["id"], cursor)["message"] is False


def test_a_whisper_to_moderators_is_seen_by_every_moderator_only(
    community: CommunityClient,
    room_moderator: BlindedIdentity,
    room_admin: BlindedIdentity,
    alice: BlindedIdentity,
) -> None:
    cursor = room_seqno(community)

    whisper = posted(community, room_admin, whisper_mods=True)

    assert set(whisper) == MESSAGE_KEYS | {"whisper", "whisper_mods"}
    assert (whisper["whisper"], whisper["whisper_mods"]) == (True, True)
    everywhere = {"recent": True, "since": True, "message": True}
    assert seen_by(community, room_moderator, whisper["id"], cursor) == everywhere
    assert seen_by(community, room_admin, whisper["id"], cursor) == everywhere
    assert seen_by(community, alice, whisper["id"], cursor) == dict.fromkeys(everywhere, False)
    served = expect_ok(message(community, room_moderator, whisper["id"]))
    assert served["whisper_mods"] is True  # a boolean on every path (pysogs sends 0 here)


def test_a_whisper_to_a_user_and_the_moderators_is_seen_by_both(
    community: CommunityClient,
    room_moderator: BlindedIdentity,
    room_admin: BlindedIdentity,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    to_alice = alice.blinded_id(community.server_pk)

    whisper = posted(community, room_moderator, whisper_to=to_alice, whisper_mods=True)

    for identity in (alice, room_admin, room_moderator):
        assert expect_ok(message(community, identity, whisper["id"]))["whisper_to"] == to_alice
    expect_refused(message(community, bob, whisper["id"]), 404)


def test_the_deletion_of_a_whisper_is_seen_only_by_those_who_saw_it(
    community: CommunityClient,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    whisper = posted(community, room_moderator, whisper_to=alice.blinded_id(community.server_pk))
    cursor = room_seqno(community)

    expect_ok(community.delete(f"{ROOM}/message/{whisper['id']}", identity=room_moderator))

    assert ids(since(community, alice, cursor)) == [whisper["id"]]
    assert whisper["id"] not in ids(since(community, bob, cursor))
    assert whisper["id"] not in ids(since(community, None, cursor))


@pytest.mark.parametrize(
    "whisper",
    [
        pytest.param({"whisper_mods": True}, id="to-moderators"),
        pytest.param("to-user", id="to-user"),
    ],
)
def test_a_user_may_not_whisper(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity, whisper: Any
) -> None:
    extra = (
        whisper
        if isinstance(whisper, dict)
        else {"whisper_to": bob.blinded_id(community.server_pk)}
    )
    before = room_seqno(community)

    answer = post_message(community, alice, **extra)

    expect_refused(answer, 403)
    assert room_seqno(community) == before


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"whisper_to": "15abc"}, id="whisper-to-short"),
        pytest.param({"whisper_to": 15}, id="whisper-to-number"),
        pytest.param({"whisper_mods": "yes"}, id="whisper-mods-text"),
    ],
)
def test_a_malformed_whisper_is_400(
    community: CommunityClient, room_moderator: BlindedIdentity, extra: dict[str, Any]
) -> None:
    expect_refused(post_message(community, room_moderator, **extra), 400)


# --------------------------------------------------------------------------- reading


def test_recent_is_newest_first_without_deletions(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    first, second, third = (posted(community, alice) for _ in range(3))
    expect_ok(community.delete(f"{ROOM}/message/{second['id']}", identity=alice))

    found = recent(community, alice, "limit=2")

    assert ids(found) == [third["id"], first["id"]]


def test_before_answers_older_messages_newest_first(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    first, second, third = (posted(community, alice) for _ in range(3))

    found = expect_ok(
        community.get(f"{ROOM}/messages/before/{third['id']}?limit=2", identity=alice)
    )

    assert ids(found) == [second["id"], first["id"]]
    assert found[0] == expect_ok(message(community, alice, second["id"]))


def test_one_message_is_answered_as_in_the_lists(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    stored = posted(community, alice)

    assert expect_ok(message(community, None, stored["id"])) == stored


@pytest.mark.parametrize("kind", ["deleted", "unknown"])
def test_a_deleted_or_unknown_message_is_404(
    community: CommunityClient, alice: BlindedIdentity, kind: str
) -> None:
    message_id = 2**40
    if kind == "deleted":
        message_id = posted(community, alice)["id"]
        expect_ok(community.delete(f"{ROOM}/message/{message_id}", identity=alice))

    expect_refused(message(community, alice, message_id), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", f"{ROOM}/message/{BEYOND_64_BITS}", id="get"),
        pytest.param("PUT", f"{ROOM}/message/{BEYOND_64_BITS}", id="edit"),
        pytest.param("DELETE", f"{ROOM}/message/{BEYOND_64_BITS}", id="delete"),
        pytest.param("GET", f"{ROOM}/messages/since/{BEYOND_64_BITS}", id="since"),
        pytest.param("GET", f"{ROOM}/messages/before/{BEYOND_64_BITS}", id="before"),
        pytest.param("GET", f"{ROOM}/messages/recent?limit={BEYOND_64_BITS}", id="limit"),
        pytest.param("GET", f"{ROOM}/messages/recent?reactors={BEYOND_64_BITS}", id="reactors"),
        pytest.param("PUT", f"{ROOM}/reaction/{BEYOND_64_BITS}/{THUMBS}", id="react"),
        pytest.param("DELETE", f"{ROOM}/reaction/{BEYOND_64_BITS}/{THUMBS}", id="unreact"),
        pytest.param("GET", f"{ROOM}/reactors/{BEYOND_64_BITS}/{THUMBS}", id="reactors-list"),
        pytest.param("GET", f"{ROOM}/messages/since/-1", id="negative-seqno"),
        pytest.param("GET", f"{ROOM}/message/1e3", id="not-an-integer"),
    ],
)
def test_an_id_beyond_64_bits_or_not_a_number_is_400_never_500(
    community: CommunityClient, room_moderator: BlindedIdentity, method: str, path: str
) -> None:
    body = message_body(room_moderator, community.server_pk) if method == "PUT" else None

    answer = community.request(method, path, identity=room_moderator, json=body)

    expect_refused(answer, 400)


def test_clearing_reactions_of_an_id_beyond_64_bits_is_400(
    community: CommunityClient, room_moderator: BlindedIdentity
) -> None:
    answer = community.delete(f"{ROOM}/reactions/{BEYOND_64_BITS}", identity=room_moderator)

    expect_refused(answer, 400)


# --------------------------------------------------------------------------- limit


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("limit=0", id="zero"),
        pytest.param("limit=-1", id="negative"),
        pytest.param("limit=ten", id="word"),
        pytest.param("limit=1.5", id="fraction"),
    ],
)
@pytest.mark.parametrize("page", ["recent", "since/0", "before/100"])
def test_a_limit_below_one_or_not_a_number_is_400(
    community: CommunityClient, page: str, query: str
) -> None:
    expect_refused(community.get(f"{ROOM}/messages/{page}?{query}"), 400)


def test_limit_one_answers_one_message(community: CommunityClient, crowded_room: str) -> None:
    assert len(recent(community, None, "limit=1", crowded_room)) == 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("", DEFAULT_PAGE, id="default"),
        pytest.param("limit=256", MAX_PAGE, id="largest"),
        pytest.param("limit=300", MAX_PAGE, id="capped"),
        pytest.param("limit=99999", MAX_PAGE, id="far-above"),
    ],
)
def test_pages_hold_100_by_default_and_at_most_256(
    community: CommunityClient, crowded_room: str, query: str, expected: int
) -> None:
    newest = recent(community, None, query, crowded_room)
    oldest = expect_ok(
        community.get(f"{crowded_room}/messages/since/0" + (f"?{query}" if query else ""))
    )

    assert len(newest) == expected
    assert len(oldest) == expected
    assert ids(newest) == sorted(ids(newest), reverse=True)
    assert [m["seqno"] for m in oldest] == list(range(1, expected + 1))


# --------------------------------------------------------------------------- since


def test_since_answers_new_messages_in_seqno_order(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    cursor = room_seqno(community)
    first, second = posted(community, alice), posted(community, alice)

    found = since(community, alice, cursor)

    assert [m for m in found if m["id"] in (first["id"], second["id"])] == [first, second]
    assert [m["seqno"] for m in found] == sorted(m["seqno"] for m in found)


def test_since_answers_an_edit_as_the_whole_message_with_edited(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    stored = posted(community, alice)
    cursor = room_seqno(community)
    new_data = session_padded("edited")

    assert expect_ok(edit(community, alice, stored["id"], new_data)) == {}

    [changed] = [m for m in since(community, alice, cursor) if m["id"] == stored["id"]]
    assert set(changed) == MESSAGE_KEYS | {"edited"}
    assert base64.b64decode(changed["data"]) == new_data
    assert changed["seqno"] == cursor + 1
    assert changed["posted"] == stored["posted"]
    assert isinstance(changed["edited"], float) and changed["edited"] >= stored["posted"]
    assert expect_ok(message(community, alice, stored["id"])) == changed


def test_since_answers_the_deletion_of_a_message_posted_before_the_cursor(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    stored = posted(community, alice)
    cursor = room_seqno(community)

    expect_ok(community.delete(f"{ROOM}/message/{stored['id']}", identity=alice))

    [row] = [m for m in since(community, None, cursor) if m["id"] == stored["id"]]
    assert set(row) == DELETION_KEYS
    assert (row["data"], row["deleted"]) == (None, True)
    assert row["seqno"] == cursor + 1
    assert (row["session_id"], row["posted"]) == (stored["session_id"], stored["posted"])


def test_since_leaves_out_a_message_posted_and_deleted_after_the_cursor(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    cursor = room_seqno(community)
    stored = posted(community, alice)
    expect_ok(community.delete(f"{ROOM}/message/{stored['id']}", identity=alice))

    assert stored["id"] not in ids(since(community, alice, cursor))
    assert stored["id"] not in ids(since(community, alice, 0))


def test_a_reaction_change_is_a_row_of_exactly_id_seqno_reactions_with_t_r_only(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    stored = posted(community, alice)
    cursor = room_seqno(community)

    react(community, bob, stored["id"])

    with_reactions = [m for m in since(community, alice, cursor, "t=r") if m["id"] == stored["id"]]
    without = [m for m in since(community, alice, cursor) if m["id"] == stored["id"]]
    assert without == []
    [row] = with_reactions
    assert set(row) == REACTION_ONLY_KEYS
    assert row["seqno"] == cursor + 1
    assert row["reactions"] == {
        THUMBS: {"index": 0, "count": 1, "reactors": [bob.blinded_id(community.server_pk)]}
    }


def test_a_message_posted_after_the_cursor_and_reacted_to_is_sent_whole(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    cursor = room_seqno(community)
    stored = posted(community, alice)
    react(community, alice, stored["id"])

    [row] = [m for m in since(community, alice, cursor, "t=r") if m["id"] == stored["id"]]

    assert set(row) == MESSAGE_KEYS
    assert row["data"] == stored["data"]
    assert row["seqno"] == cursor + 2
    assert row["reactions"][THUMBS]["you"] is True


def test_since_the_current_seqno_is_empty(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    posted(community, alice)

    assert since(community, alice, room_seqno(community), "t=r") == []


# --------------------------------------------------------------------------- edits and deletions


@pytest.mark.parametrize("editor", ["other-user", "moderator", "admin"])
def test_only_the_author_may_edit(
    community: CommunityClient,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
    room_moderator: BlindedIdentity,
    room_admin: BlindedIdentity,
    editor: str,
) -> None:
    stored = posted(community, alice)
    identity = {"other-user": bob, "moderator": room_moderator, "admin": room_admin}[editor]

    answer = edit(community, identity, stored["id"], b"not yours")

    expect_refused(answer, 403)
    assert expect_ok(message(community, alice, stored["id"])) == stored


def test_an_edit_whose_signature_does_not_verify_is_400_and_changes_nothing(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    stored = posted(community, alice)
    data = os.urandom(20)
    body = {"data": b64(data), "signature": b64(bob.sign_message_data(data, community.server_pk))}
    before = room_seqno(community)

    answer = community.put(f"{ROOM}/message/{stored['id']}", body, identity=alice)

    expect_refused(answer, 400)
    assert room_seqno(community) == before
    assert expect_ok(message(community, alice, stored["id"])) == stored


@pytest.mark.parametrize("kind", ["deleted", "unknown"])
def test_editing_a_deleted_or_unknown_message_is_404(
    community: CommunityClient, alice: BlindedIdentity, kind: str
) -> None:
    message_id = 2**40
    if kind == "deleted":
        message_id = posted(community, alice)["id"]
        expect_ok(community.delete(f"{ROOM}/message/{message_id}", identity=alice))

    expect_refused(edit(community, alice, message_id, b"again"), 404)


def test_an_edited_whisper_stays_a_whisper(
    community: CommunityClient, room_moderator: BlindedIdentity, alice: BlindedIdentity
) -> None:
    whisper = posted(community, room_moderator, whisper_mods=True)

    expect_ok(edit(community, room_moderator, whisper["id"], b"still secret"))

    expect_refused(message(community, alice, whisper["id"]), 404)
    assert expect_ok(message(community, room_moderator, whisper["id"]))["whisper_mods"] is True


def test_the_author_deletes_their_message(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    stored = posted(community, alice)

    assert expect_ok(community.delete(f"{ROOM}/message/{stored['id']}", identity=alice)) == {}

    assert stored["id"] not in ids(recent(community, alice))
    expect_refused(community.delete(f"{ROOM}/message/{stored['id']}", identity=alice), 404)


def test_a_moderator_deletes_anyones_message(
    community: CommunityClient, alice: BlindedIdentity, room_moderator: BlindedIdentity
) -> None:
    stored = posted(community, alice)

    assert (
        expect_ok(community.delete(f"{ROOM}/message/{stored['id']}", identity=room_moderator)) == {}
    )

    expect_refused(message(community, alice, stored["id"]), 404)


@pytest.mark.parametrize(("who", "status"), [("other-user", 403), ("anonymous", 401)])
def test_nobody_else_deletes_a_message(
    community: CommunityClient,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
    who: str,
    status: int,
) -> None:
    stored = posted(community, alice)
    before = room_seqno(community)

    answer = community.delete(
        f"{ROOM}/message/{stored['id']}", identity=bob if who == "other-user" else None
    )

    expect_refused(answer, status, AUTH_REQUIRED if status == 401 else None)
    assert room_seqno(community) == before
    assert expect_ok(message(community, alice, stored["id"])) == stored


# --------------------------------------------------------------------------- reactions


@pytest.mark.parametrize(
    "emoji_path",
    [pytest.param(THUMBS, id="raw"), pytest.param("%F0%9F%91%8D", id="percent-encoded")],
)
def test_a_reaction_is_added_once_and_removed_once(
    community: CommunityClient, alice: BlindedIdentity, emoji_path: str
) -> None:
    stored = posted(community, alice)
    seqno = room_seqno(community)

    assert react(community, alice, stored["id"], emoji_path) == {"added": True, "seqno": seqno + 1}
    assert react(community, alice, stored["id"], emoji_path) == {"added": False, "seqno": seqno + 1}
    assert unreact(community, alice, stored["id"], emoji_path) == {
        "removed": True,
        "seqno": seqno + 2,
    }
    assert unreact(community, alice, stored["id"], emoji_path) == {
        "removed": False,
        "seqno": seqno + 2,
    }
    assert expect_ok(message(community, alice, stored["id"]))["reactions"] == {}


def test_reaction_entries_count_order_and_mark_the_callers_own(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    stored = posted(community, alice)
    alice_id, bob_id = (p.blinded_id(community.server_pk) for p in (alice, bob))
    react(community, alice, stored["id"], THUMBS)
    react(community, bob, stored["id"], HEART)
    react(community, bob, stored["id"], THUMBS)

    as_alice = expect_ok(message(community, alice, stored["id"]))["reactions"]
    as_bob = expect_ok(message(community, bob, stored["id"]))["reactions"]
    anonymous = expect_ok(message(community, None, stored["id"]))["reactions"]

    assert as_alice == {
        THUMBS: {"index": 0, "count": 2, "reactors": [alice_id, bob_id], "you": True},
        HEART: {"index": 1, "count": 1, "reactors": [bob_id]},
    }
    assert as_bob[THUMBS]["you"] is True and as_bob[HEART]["you"] is True
    assert all("you" not in entry for entry in anonymous.values())
    assert list(as_alice) == [THUMBS, HEART]


def test_pages_read_in_turn_mark_each_readers_own_reactions(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    """A worker keeps the JSON of the messages it sent last for the next reader (see
    opengroup/api/v3/shapes.py). Pages read by one reader after another still mark
    each one's own reactions, show as many reactors as each asks for, and follow a
    change of reactions, in both forms (whole messages, and reaction changes)."""
    stored = posted(community, alice)
    cursor = room_seqno(community)
    react(community, bob, stored["id"], THUMBS)
    carol = BlindedIdentity.generate()
    alice_id, bob_id = (p.blinded_id(community.server_pk) for p in (alice, bob))

    def reactions(who: BlindedIdentity | None, path: str) -> dict[str, Any]:
        rows = expect_ok(community.get(f"{ROOM}/messages/{path}", identity=who))
        [row] = [row for row in rows if row["id"] == stored["id"]]
        if path.startswith("since/"):
            assert set(row) == {"id", "seqno", "reactions"}  # (a change of reactions only)
        found: dict[str, Any] = row["reactions"]
        return found

    for path in ("recent?limit=5", f"since/{cursor}?t=r"):
        for _ in range(2):  # (the second round finds the first's kept)
            assert reactions(carol, path) == {
                THUMBS: {"index": 0, "count": 1, "reactors": [bob_id]}
            }
            assert reactions(bob, path)[THUMBS]["you"] is True
            assert reactions(None, path + "&reactors=0") == {THUMBS: {"index": 0, "count": 1}}
            assert "you" not in reactions(carol, path)[THUMBS]

    react(community, alice, stored["id"], THUMBS)
    for path in ("recent?limit=5", f"since/{cursor}?t=r"):
        assert reactions(carol, path) == {
            THUMBS: {"index": 0, "count": 2, "reactors": [bob_id, alice_id]}
        }
        assert reactions(alice, path)[THUMBS] == {
            "index": 0,
            "count": 2,
            "reactors": [bob_id, alice_id],
            "you": True,
        }


def test_the_same_id_and_seqno_in_two_rooms_are_two_messages(
    server: ServerProcess, community: CommunityClient, alice: BlindedIdentity
) -> None:
    """Ids and seqnos are each room's own: the first message of two new rooms, read
    in turn (each worker keeps the JSON of the messages it sent last)."""
    rooms = [new_room(server.cli, "twin") for _ in range(2)]
    sent = [os.urandom(12) for _ in rooms]
    for token, data in zip(rooms, sent, strict=True):
        assert posted(community, alice, data, room=f"/room/{token}")["id"] == 1
    for _ in range(2):
        for token, data in zip(rooms, sent, strict=True):
            [row] = recent(community, alice, room=f"/room/{token}")
            assert (row["id"], row["seqno"]) == (1, 1)
            assert base64.b64decode(row["data"]) == data


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        pytest.param("", DEFAULT_REACTORS, id="default"),
        pytest.param("reactors=0", 0, id="none"),
        pytest.param("reactors=2", 2, id="two"),
        pytest.param("reactors=20", 6, id="all"),
    ],
)
def test_the_reactors_parameter_chooses_how_many_reactors_are_listed(
    community: CommunityClient, alice: BlindedIdentity, query: str, shown: int
) -> None:
    stored = posted(community, alice)
    reactors = [BlindedIdentity.generate() for _ in range(6)]
    for identity in reactors:
        react(community, identity, stored["id"])

    entry = expect_ok(message(community, None, stored["id"], query))["reactions"][THUMBS]

    assert entry["count"] == 6
    expected = [r.blinded_id(community.server_pk) for r in reactors[:shown]]
    assert entry.get("reactors", []) == expected
    assert ("reactors" in entry) == (shown > 0)


def test_at_most_20_reactors_are_listed(community: CommunityClient, alice: BlindedIdentity) -> None:
    stored = posted(community, alice)
    reactors = [BlindedIdentity.generate() for _ in range(MAX_REACTORS + 2)]
    for identity in reactors:
        react(community, identity, stored["id"])

    entry = expect_ok(message(community, None, stored["id"], "reactors=99"))["reactions"][THUMBS]

    assert entry["count"] == MAX_REACTORS + 2
    assert entry["reactors"] == [r.blinded_id(community.server_pk) for r in reactors[:MAX_REACTORS]]


@pytest.mark.parametrize(
    "reaction",
    [
        pytest.param("a" * 12, id="12-letters"),
        pytest.param("😀" * 12, id="12-emoji"),
        pytest.param("\U0001f468\u200d\U0001f469\u200d\U0001f467", id="joined-family"),
        pytest.param("a", id="one-letter"),
    ],
)
def test_a_reaction_of_1_to_12_code_points_is_accepted(
    community: CommunityClient, alice: BlindedIdentity, reaction: str
) -> None:
    stored = posted(community, alice)

    assert react(community, alice, stored["id"], reaction)["added"] is True

    assert list(expect_ok(message(community, alice, stored["id"]))["reactions"]) == [reaction]


@pytest.mark.parametrize(
    "reaction",
    [
        pytest.param("a" * 13, id="13-letters"),
        pytest.param("😀" * 13, id="13-emoji"),
        pytest.param("%00", id="a-NUL"),
    ],
)
def test_a_reaction_of_13_code_points_or_a_control_character_is_400(
    community: CommunityClient, alice: BlindedIdentity, reaction: str
) -> None:
    stored = posted(community, alice)
    before = room_seqno(community)

    answer = community.put(f"{ROOM}/reaction/{stored['id']}/{reaction}", identity=alice)

    expect_refused(answer, 400)
    assert room_seqno(community) == before


@pytest.mark.parametrize("kind", ["deleted", "unknown", "whisper"])
def test_reacting_to_a_message_the_caller_cannot_see_is_404(
    community: CommunityClient,
    alice: BlindedIdentity,
    room_moderator: BlindedIdentity,
    kind: str,
) -> None:
    if kind == "deleted":
        message_id = posted(community, alice)["id"]
        expect_ok(community.delete(f"{ROOM}/message/{message_id}", identity=alice))
    elif kind == "whisper":
        message_id = posted(community, room_moderator, whisper_mods=True)["id"]
    else:
        message_id = 2**40

    expect_refused(community.put(f"{ROOM}/reaction/{message_id}/{THUMBS}", identity=alice), 404)


def test_reactions_are_made_from_threads_when_none_may_be_made_on_the_loop(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """A reaction is first tried on the event loop, its write made at once; when that
    cannot be (here never: ``writes_on_event_loop_per_second`` 0; else SQLite's write
    lock or a PostgreSQL row held by another, or the second's rate reached), nothing of
    it is written and it is made from a thread instead, with the same answers."""
    server = server_factory(env={"OPENGROUP_WRITES_ON_EVENT_LOOP_PER_SECOND": "0"})
    alice = BlindedIdentity.generate()
    with CommunityClient(server.base_url, server.public_key, "onion") as client:
        stored = posted(client, alice)
        seqno = room_seqno(client)
        assert react(client, alice, stored["id"]) == {"added": True, "seqno": seqno + 1}
        assert react(client, alice, stored["id"]) == {"added": False, "seqno": seqno + 1}
        assert unreact(client, alice, stored["id"]) == {"removed": True, "seqno": seqno + 2}
        assert expect_ok(message(client, alice, stored["id"]))["reactions"] == {}


def test_reacting_needs_a_signature(community: CommunityClient, alice: BlindedIdentity) -> None:
    stored = posted(community, alice)

    expect_refused(community.put(f"{ROOM}/reaction/{stored['id']}/{THUMBS}"), 401, AUTH_REQUIRED)


def test_the_reactors_of_a_reaction_are_listed_oldest_first_with_times(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    stored = posted(community, alice)
    started = time.time()
    react(community, bob, stored["id"])
    react(community, alice, stored["id"])
    path = f"{ROOM}/reactors/{stored['id']}/{THUMBS}"

    listed = expect_ok(community.get(path, identity=alice))
    first_only = expect_ok(community.get(f"{path}?limit=1"))
    unknown = expect_ok(community.get(f"{ROOM}/reactors/{stored['id']}/{HEART}"))

    assert [who for who, _ in listed] == [p.blinded_id(community.server_pk) for p in (bob, alice)]
    assert all(isinstance(at, float) and started - 1 <= at <= time.time() + 1 for _, at in listed)
    assert first_only == listed[:1]
    assert unknown == []


def test_a_moderator_clears_every_reaction_or_one_kind(
    community: CommunityClient,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
    room_moderator: BlindedIdentity,
) -> None:
    stored = posted(community, alice)
    for identity in (alice, bob):
        react(community, identity, stored["id"], THUMBS)
    react(community, bob, stored["id"], HEART)
    seqno = room_seqno(community)

    one_kind = expect_ok(
        community.delete(f"{ROOM}/reactions/{stored['id']}/{THUMBS}", identity=room_moderator)
    )
    assert one_kind == {"removed": 2, "seqno": seqno + 1}
    assert list(expect_ok(message(community, alice, stored["id"]))["reactions"]) == [HEART]

    everything = expect_ok(
        community.delete(f"{ROOM}/reactions/{stored['id']}", identity=room_moderator)
    )
    assert everything == {"removed": 1, "seqno": seqno + 2}
    nothing = expect_ok(
        community.delete(f"{ROOM}/reactions/{stored['id']}", identity=room_moderator)
    )
    assert nothing == {"removed": 0, "seqno": seqno + 2}
    assert expect_ok(message(community, alice, stored["id"]))["reactions"] == {}


@pytest.mark.parametrize(("who", "status"), [("user", 403), ("anonymous", 401)])
def test_only_a_moderator_clears_reactions(
    community: CommunityClient, alice: BlindedIdentity, who: str, status: int
) -> None:
    stored = posted(community, alice)
    react(community, alice, stored["id"])

    answer = community.delete(
        f"{ROOM}/reactions/{stored['id']}", identity=alice if who == "user" else None
    )

    expect_refused(answer, status)
    assert expect_ok(message(community, alice, stored["id"]))["reactions"][THUMBS]["count"] == 1


def test_a_deleted_message_loses_its_reactions(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    stored = posted(community, alice)
    react(community, bob, stored["id"])
    expect_ok(community.delete(f"{ROOM}/message/{stored['id']}", identity=alice))

    expect_refused(community.get(f"{ROOM}/reactors/{stored['id']}/{THUMBS}"), 404)


# --------------------------------------------------------------------------- seqno


def test_seqno_grows_by_one_with_each_post_edit_deletion_and_reaction_change(
    community: CommunityClient, alice: BlindedIdentity, room_moderator: BlindedIdentity
) -> None:
    start = room_seqno(community)
    stored = posted(community, room_moderator)
    assert stored["seqno"] == start + 1

    steps = [
        lambda: edit(community, room_moderator, stored["id"], b"v2"),
        lambda: community.put(f"{ROOM}/reaction/{stored['id']}/{THUMBS}", identity=alice),
        lambda: community.put(f"{ROOM}/reaction/{stored['id']}/{HEART}", identity=alice),
        lambda: community.delete(f"{ROOM}/reaction/{stored['id']}/{HEART}", identity=alice),
        lambda: community.delete(f"{ROOM}/reactions/{stored['id']}", identity=room_moderator),
        lambda: community.delete(f"{ROOM}/message/{stored['id']}", identity=room_moderator),
    ]
    for number, step in enumerate(steps, start=2):
        assert step().status == 200
        assert room_seqno(community) == start + number

    no_change = [
        lambda: community.put(f"{ROOM}/reaction/{stored['id']}/{THUMBS}", identity=alice),
        lambda: community.delete(f"{ROOM}/message/{stored['id']}", identity=room_moderator),
    ]
    for step in no_change:
        assert step().status == 404
    assert room_seqno(community) == start + len(steps) + 1
