"""A room's permissions bind the v2 API as they bind the community API.

docs/spec/SPEC-v3.md section 2 (a room's default read, write and upload
permissions, and a moderator's per-user overrides of them) on the rooms both
APIs share (section 1): what a room does not allow through one API, it does not
allow through the other. The v2 API itself (docs/spec/SPEC.md) knows only
tokens, moderators and bans; its answers for what a room forbids are those of
its other refusals, 403 with a reason:

- without read, a token is good for nothing in the room: its messages,
  deletions and posting are 403, and `compact_poll` answers the room 403 with
  empty lists;
- without write, the holder reads but a post is 403 and stores nothing;
- without upload, the holder reads and posts but a file is 403 and stores
  nothing;
- a moderator's override for the holder's key wins over the room's defaults,
  either way; staff (of the room or of every room) may always do everything;
- a room anonymous callers may not see (neither readable nor accessible by
  default) is left out of `GET /rooms`, and its details and image are 404.

The defaults are set with the operator's CLI (`opengroup rooms permissions`),
the overrides through the community API. The v2 side runs over direct HTTP and
over onion requests.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from harness import probe
from harness.communityclient import BlindedIdentity, CommunityClient
from harness.expect import expect_ok
from harness.flows import CliRunner
from harness.server import ServerProcess
from harness.v2client import Client, Identity, Persona

PersonaFactory = Callable[..., Persona]


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def room(cli: CliRunner) -> str:
    """A fresh room of this test's own (its permissions change no other test's room)."""
    token = f"perm_{uuid.uuid4().hex[:10]}"
    cli("rooms", "add", token, "Permissions")
    return token


def set_defaults(cli: CliRunner, room: str, *flags: str) -> None:
    cli("rooms", "permissions", room, *flags)


def override(
    community: CommunityClient, cli: CliRunner, room: str, session_id: str, **rights: bool
) -> None:
    """A moderator of ``room`` overrides ``session_id``'s rights there (community API)."""
    moderator = BlindedIdentity.generate()
    cli("moderators", "add", moderator.session_id, room)
    expect_ok(community.post(f"/room/{room}/permissions/{session_id}", rights, identity=moderator))


def post(client: Client, persona: Persona) -> dict[str, Any]:
    return client.post_message(persona.identity, persona.token, persona.room)


def get(client: Client, persona: Persona, path: str) -> dict[str, Any]:
    return client.request("GET", path, room=persona.room, token=persona.token)


def upload(client: Client, persona: Persona) -> dict[str, Any]:
    body = {"file": base64.b64encode(b"a file").decode()}
    return client.request("POST", "files", body=body, room=persona.room, token=persona.token)


def poll(client: Client, persona: Persona) -> dict[str, Any]:
    answer = client.compact_poll([{"room_id": persona.room, "auth_token": persona.token}])
    assert answer["status_code"] == 200, answer
    result: dict[str, Any] = answer["results"][0]
    return result


def refused(answer: dict[str, Any], reason: str) -> None:
    assert answer["status_code"] == 403, answer
    assert reason in str(answer.get("error", answer)), answer


def stored_messages(server: ServerProcess, room: str) -> int:
    return int(probe.value(server, "SELECT COUNT(*) FROM messages WHERE room_id = %s", room))


def stored_files(server: ServerProcess, room: str) -> int:
    return int(probe.value(server, "SELECT COUNT(*) FROM files WHERE room_id = %s", room))


# --------------------------------------------------------------------------- defaults


def test_without_read_a_token_reads_posts_and_polls_nothing(
    client: Client,
    setup_client: Client,
    make_persona: PersonaFactory,
    cli: CliRunner,
    server: ServerProcess,
    room: str,
) -> None:
    reader = make_persona(room=room)
    assert post(setup_client, reader)["status_code"] == 200  # before: a message to hide
    set_defaults(cli, room, "--no-read")
    for path in ("messages", "deleted_messages", "moderators"):
        refused(get(client, reader, path), "may not read")
    refused(post(client, reader), "may not read")
    result = poll(client, reader)
    assert result["status_code"] == 403, result
    assert result["messages"] == result["deletions"] == result["moderators"] == []
    assert stored_messages(server, room) == 1

    set_defaults(cli, room, "--read")
    assert len(get(client, reader, "messages")["messages"]) == 1


def test_without_write_the_holder_reads_but_may_not_post(
    client: Client, make_persona: PersonaFactory, cli: CliRunner, server: ServerProcess, room: str
) -> None:
    writer = make_persona(room=room)
    set_defaults(cli, room, "--no-write")
    refused(post(client, writer), "may not post")
    assert stored_messages(server, room) == 0
    assert get(client, writer, "messages")["status_code"] == 200
    assert poll(client, writer)["status_code"] == 200
    assert upload(client, writer)["status_code"] == 200  # uploading is its own right


def test_without_upload_the_holder_posts_but_may_not_upload(
    client: Client, make_persona: PersonaFactory, cli: CliRunner, server: ServerProcess, room: str
) -> None:
    uploader = make_persona(room=room)
    set_defaults(cli, room, "--no-upload")
    refused(upload(client, uploader), "may not upload")
    assert stored_files(server, room) == 0
    assert post(client, uploader)["status_code"] == 200


def test_staff_may_do_everything_whatever_the_defaults(
    client: Client, make_persona: PersonaFactory, cli: CliRunner, room: str
) -> None:
    room_mod, global_mod = Identity.generate(), Identity.generate()
    cli("moderators", "add", room_mod.session_id, room)
    cli("moderators", "add", global_mod.session_id, "--global")
    set_defaults(cli, room, "--no-read", "--no-write", "--no-upload")
    for identity in (room_mod, global_mod):
        staff = make_persona(identity, room=room)
        assert get(client, staff, "messages")["status_code"] == 200
        assert poll(client, staff)["status_code"] == 200
        assert post(client, staff)["status_code"] == 200
        assert upload(client, staff)["status_code"] == 200


def test_a_room_closed_to_anonymous_callers_is_not_listed_nor_shown(
    client: Client, cli: CliRunner, room: str
) -> None:
    """As on the web page and in the community API: a room anyone may see is one its
    defaults let read or at least know of ("accessible")."""

    def listed() -> bool:
        answer = client.request("GET", "rooms")
        assert answer["status_code"] == 200, answer
        return room in [r["id"] for r in answer["rooms"]]

    assert listed()
    set_defaults(cli, room, "--no-read")  # still accessible: known, not read
    assert listed()
    assert client.request("GET", f"rooms/{room}")["status_code"] == 200
    set_defaults(cli, room, "--no-accessible")
    assert not listed()
    for path in (f"rooms/{room}", f"rooms/{room}/image"):
        assert client.request("GET", path)["status_code"] == 404, path


# --------------------------------------------------------------------------- overrides


def test_an_override_of_the_holders_key_wins_over_the_defaults_either_way(
    client: Client,
    community: CommunityClient,
    make_persona: PersonaFactory,
    cli: CliRunner,
    room: str,
) -> None:
    speaker, silenced, other = (make_persona(room=room) for _ in range(3))
    set_defaults(cli, room, "--no-write")
    override(community, cli, room, speaker.identity.session_id, write=True)
    assert post(client, speaker)["status_code"] == 200
    refused(post(client, other), "may not post")

    set_defaults(cli, room, "--write")
    override(community, cli, room, silenced.identity.session_id, write=False, read=False)
    refused(get(client, silenced, "messages"), "may not read")
    assert poll(client, silenced)["status_code"] == 403
    assert post(client, other)["status_code"] == 200


def test_an_override_under_the_holders_blinded_id_binds_their_v2_token_too(
    client: Client,
    community: CommunityClient,
    make_persona: PersonaFactory,
    cli: CliRunner,
    room: str,
) -> None:
    """Today's clients show moderators blinded ids: muting one there mutes the same
    person's v2 token (its claim linked the two), and lifting it (here by their
    Session id, stored under the blinded id it was seen as) lets it post again."""
    person = BlindedIdentity.generate()
    v2_person = make_persona(
        Identity(X25519PrivateKey.from_private_bytes(person.x25519_private)), room=room
    )
    expect_ok(community.get(f"/room/{room}", identity=person))  # their blinded id signs here
    blinded_id = person.blinded_id(community.server_pk)
    override(community, cli, room, blinded_id, write=False)
    refused(post(client, v2_person), "may not post")
    override(community, cli, room, person.session_id, write=True)
    assert post(client, v2_person)["status_code"] == 200
