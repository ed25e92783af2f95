"""What a current Session desktop client does with a community, end to end, against
a server with default settings (docs/spec/sogs-v3.md section 4): join by URL, poll
with one signed /batch, post, react, upload an image, get a message request, and a
moderator bans a user and deletes everything they wrote with one /sequence.

Requests are built the way the desktop builds them (tests/harness/communityclient.py): 15-
blinded signatures, onion v4 framing (and, for comparison, the same over direct HTTP).
"""

from __future__ import annotations

import base64
import os
from typing import Any

from harness.communityclient import BlindedIdentity, CommunityClient
from harness.expect import expect_ok
from harness.flows import b64, session_padded

ROOM = "main"


def poll(client: CommunityClient, who: BlindedIdentity, since: int | None) -> list[Any]:
    """The desktop's poll of one room: capabilities, pollInfo/0, messages, inbox, outbox."""
    messages = f"/room/{ROOM}/messages/" + (
        "recent?reactors=5" if since is None else f"since/{since}?t=r&reactors=5"
    )
    items = [
        {"method": "GET", "path": "/capabilities"},
        {"method": "GET", "path": f"/room/{ROOM}/pollInfo/0"},
        {"method": "GET", "path": messages},
        {"method": "GET", "path": "/inbox"},
        {"method": "GET", "path": "/outbox"},
    ]
    answers = expect_ok(client.batch(items, who), 200)
    assert [a["code"] for a in answers][:3] == [200, 200, 200], answers
    return list(answers)


def post(client: CommunityClient, who: BlindedIdentity, text: str, **extra: Any) -> Any:
    data = session_padded(text)
    signature = who.sign_message_data(data, client.server_pk)
    body = {"data": b64(data), "signature": b64(signature), "timestamp": 1, **extra}
    return expect_ok(client.post(f"/room/{ROOM}/message", body, identity=who), 201)


def test_a_desktop_client_joins_polls_posts_reacts_uploads_and_gets_a_request(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    # Join: capabilities (must not be empty), then the room (token and name).
    capabilities = expect_ok(community.get("/capabilities", identity=alice), 200)
    assert {"sogs", "blind", "reactions"} <= set(capabilities["capabilities"])
    room = expect_ok(community.get(f"/room/{ROOM}", identity=alice), 200)
    assert room["token"] == ROOM and room["name"]

    # First poll: details come with pollInfo/0; recent messages; empty boxes.
    first = poll(community, alice, None)
    assert "details" in first[1]["body"] and first[1]["body"]["read"] is True
    assert first[3]["code"] == 200 and first[4]["code"] == 200
    seqno = max([m["seqno"] for m in first[2]["body"]], default=0)

    # Post; bob's poll sees it byte for byte, signed by alice's blinded id.
    posted = post(community, alice, "hello from desktop")
    assert posted["session_id"] == alice.blinded_id(community.server_pk)
    seen = poll(community, bob, seqno)[2]["body"]
    assert [m["id"] for m in seen] == [posted["id"]]
    assert base64.b64decode(seen[0]["data"]) == session_padded("hello from desktop")

    # React; alice's next poll sees exactly a reaction-only row.
    reacted = expect_ok(
        community.put(f"/room/{ROOM}/reaction/{posted['id']}/👍", identity=bob), 200
    )
    assert reacted["added"] is True
    rows = poll(community, alice, seen[0]["seqno"])[2]["body"]
    assert rows == [
        {
            "id": posted["id"],
            "seqno": reacted["seqno"],
            "reactions": {
                "👍": {"index": 0, "count": 1, "reactors": [bob.blinded_id(community.server_pk)]}
            },
        }
    ]

    # Upload an image (raw bytes, no name), post it, and bob downloads it.
    image = os.urandom(2048)
    uploaded = community.post(
        f"/room/{ROOM}/file",
        body=image,
        identity=alice,
        headers={"Content-Type": "application/octet-stream"},
    )
    file_id = expect_ok(uploaded, 201)["id"]
    post(community, alice, "a picture", files=[str(file_id)])
    downloaded = community.get(f"/room/{ROOM}/file/{file_id}", identity=bob)
    assert downloaded.status == 200, downloaded
    assert downloaded.content_type == "application/octet-stream"
    assert downloaded.body == image

    # A message request from bob reaches alice's next poll.
    request = os.urandom(300)
    to_alice = f"/inbox/{alice.blinded_id(community.server_pk)}"
    expect_ok(community.post(to_alice, {"message": b64(request)}, identity=bob), 201)
    inbox = poll(community, alice, None)[3]["body"]
    assert [base64.b64decode(m["message"]) for m in inbox] == [request]
    assert inbox[0]["sender"] == bob.blinded_id(community.server_pk)


def test_a_moderator_named_by_session_id_bans_and_deletes_with_one_sequence(
    community: CommunityClient,
    room_moderator: BlindedIdentity,
    alice: BlindedIdentity,
) -> None:
    spam = [post(community, alice, f"spam {n}")["id"] for n in range(3)]
    alice_id = alice.blinded_id(community.server_pk)
    # The desktop's ban-and-delete: POST /user/:sid/ban then DELETE /room/:t/all/:sid.
    answers = expect_ok(
        community.sequence(
            [
                {"method": "POST", "path": f"/user/{alice_id}/ban", "json": {"rooms": [ROOM]}},
                {"method": "DELETE", "path": f"/room/{ROOM}/all/{alice_id}"},
            ],
            room_moderator,
        ),
        200,
    )
    assert [a["code"] for a in answers] == [200, 200], answers
    # Her messages are gone for everyone, and she can no longer read or post.
    for message_id in spam:
        gone = community.get(f"/room/{ROOM}/message/{message_id}", identity=room_moderator)
        assert gone.status == 404
    assert community.get(f"/room/{ROOM}/pollInfo/0", identity=alice).status == 403
    refused = community.post(
        f"/room/{ROOM}/message",
        {"data": b64(b"x"), "signature": b64(alice.sign_message_data(b"x", community.server_pk))},
        identity=alice,
    )
    assert refused.status == 403
