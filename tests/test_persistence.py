"""Nothing acknowledged is lost across restarts (docs/spec/SPEC.md section 5).

The module's server is arranged with a bit of everything (messages, a
deletion, tokens, a moderator, a ban, a file, a room image) and then
restarted: once gracefully (SIGTERM, as systemd does) and once by SIGKILL
right after the last acknowledged write. Everything must still be there, and
the counters must go on where they were.

The server runs with deletions_format = objects so the deletion numbers (a
sequence of their own) can be checked to continue too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from harness.expect import expect_ok
from harness.flows import b64
from harness.server import Backend, ServerProcess
from harness.v2client import Client, Identity, Persona

ROOM = "persist"
FILE_BYTES = b"a file that must outlive the server\x00\xff"
IMAGE_BYTES = b"\x89PNG\r\n\x1a\n not really, but bytes all the same"


@dataclass(frozen=True)
class Before:
    """What the server acknowledged before it went down."""

    member: Persona
    moderator: Persona
    banned: Persona
    messages: list[dict[str, Any]]  # the live ones, as the POST answers returned them
    deleted_server_id: int
    file_id: int
    member_count: int


@pytest.fixture(scope="module", params=["graceful-restart", "sigkill-restart"])
def graceful(request: pytest.FixtureRequest) -> bool:
    """How the server goes down: SIGTERM (True) or SIGKILL (False)."""
    return request.param == "graceful-restart"


@pytest.fixture(scope="module")
def server(
    graceful: bool, tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[ServerProcess]:
    """This module's server, once per way of going down, each on its own storage."""
    database_url = backend.new_database_url()
    proc = ServerProcess(
        tmp_path_factory.mktemp("persist") / "data",
        database_url=database_url,
        env={"OPENGROUP_DELETIONS_FORMAT": "objects"},
    )
    proc.start()
    yield proc
    proc.stop()
    backend.drop_database(database_url)


@pytest.fixture(scope="module")
def before(graceful: bool, server: ServerProcess, setup_client: Client) -> Before:
    """Arrange the state, then take the server down and bring it back."""
    server.cli("rooms", "add", ROOM, "Persistence")
    mod_identity = Identity.generate()
    server.cli("moderators", "add", mod_identity.session_id, ROOM)
    moderator = Persona(mod_identity, setup_client.authenticate(mod_identity, ROOM), ROOM)
    member_identity = Identity.generate()
    member = Persona(member_identity, setup_client.authenticate(member_identity, ROOM), ROOM)
    banned_identity = Identity.generate()
    banned = Persona(banned_identity, setup_client.authenticate(banned_identity, ROOM), ROOM)

    posted = [
        expect_ok(setup_client.post_message(member_identity, member.token, ROOM))["message"]
        for _ in range(3)
    ]
    file_id = expect_ok(
        setup_client.request(
            "POST", "files", body={"file": b64(FILE_BYTES)}, room=ROOM, token=member.token
        )
    )["result"]
    expect_ok(
        setup_client.request(
            "POST", f"rooms/{ROOM}/image", body={"file": b64(IMAGE_BYTES)}, token=moderator.token
        )
    )
    expect_ok(
        setup_client.request(
            "POST",
            "block_list",
            body={"public_key": banned.session_id},
            room=ROOM,
            token=moderator.token,
        )
    )
    member_count = expect_ok(
        setup_client.request("GET", "member_count", room=ROOM, token=member.token)
    )["member_count"]

    # Last acknowledged write: delete the newest message (its id must never come back).
    newest = posted[-1]["server_id"]
    expect_ok(setup_client.request("DELETE", f"messages/{newest}", room=ROOM, token=member.token))

    server.restart(graceful=graceful)
    return Before(member, moderator, banned, posted[:-1], newest, file_id, member_count)


def test_messages_survive(client: Client, before: Before) -> None:
    result = client.request(
        "GET", "messages?from_server_id=0", room=ROOM, token=before.member.token
    )
    assert result == {"status_code": 200, "messages": before.messages}


def test_deletions_survive(client: Client, before: Before) -> None:
    result = client.request("GET", "deleted_messages", room=ROOM, token=before.member.token)
    assert result == {
        "status_code": 200,
        "ids": [{"id": 1, "deleted_message_id": before.deleted_server_id}],
    }


def test_old_tokens_still_work(client: Client, before: Before) -> None:
    result = client.request("GET", "member_count", room=ROOM, token=before.member.token)
    assert result == {"status_code": 200, "member_count": before.member_count}
    poll = client.compact_poll(
        [{"room_id": ROOM, "auth_token": before.member.token, "from_message_server_id": 0}]
    )
    assert poll["status_code"] == 200
    [entry] = poll["results"]
    assert (entry["room_id"], entry["status_code"]) == (ROOM, 200)
    assert entry["messages"] == before.messages
    assert entry["moderators"] == [before.moderator.session_id]


def test_moderators_survive_with_their_rights(client: Client, before: Before) -> None:
    result = client.request("GET", "moderators", room=ROOM, token=before.member.token)
    assert result == {"status_code": 200, "moderators": [before.moderator.session_id]}
    block_list = client.request("GET", "block_list", room=ROOM, token=before.moderator.token)
    assert block_list["status_code"] == 200


def test_bans_survive(client: Client, before: Before) -> None:
    result = client.request("GET", "block_list", room=ROOM, token=before.moderator.token)
    assert result == {
        "status_code": 200,
        "banned_members": [before.banned.session_id],
        "moderators": [before.banned.session_id],
    }
    refused = client.request("GET", "messages", room=ROOM, token=before.banned.token)
    assert refused["status_code"] == 403
    challenge = client.request(
        "GET", f"auth_token_challenge?public_key={before.banned.session_id}", room=ROOM
    )
    assert challenge["status_code"] == 403


def test_files_survive(client: Client, before: Before) -> None:
    result = client.request("GET", f"files/{before.file_id}", room=ROOM, token=before.member.token)
    assert result == {"status_code": 200, "result": b64(FILE_BYTES)}


def test_room_image_survives(client: Client, before: Before) -> None:
    result = client.request("GET", f"rooms/{ROOM}/image")
    assert result == {"status_code": 200, "result": b64(IMAGE_BYTES)}


def test_server_ids_and_deletion_numbers_continue(setup_client: Client, before: Before) -> None:
    member = before.member
    posted = setup_client.post_message(
        member.identity, member.token, ROOM, timestamp=int(time.time() * 1000)
    )
    assert posted["status_code"] == 200, posted
    new_id = posted["message"]["server_id"]
    assert new_id == before.deleted_server_id + 1  # no id handed out twice
    expect_ok(setup_client.request("DELETE", f"messages/{new_id}", room=ROOM, token=member.token))
    deletions = setup_client.request("GET", "deleted_messages", room=ROOM, token=member.token)
    assert deletions["ids"] == [
        {"id": 1, "deleted_message_id": before.deleted_server_id},
        {"id": 2, "deleted_message_id": new_id},
    ]
