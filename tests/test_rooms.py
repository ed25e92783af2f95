"""Rooms: the public list, one room's details, and the room image.

`GET /rooms`, `GET /rooms/:id` and `GET /rooms/:id/image` need no token
(clients send none). Setting the image takes a moderator of the room named in
the path; the `Room` header is not needed. Room images never expire.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest
from harness.expect import expect_error
from harness.flows import new_room
from harness.server import ServerProcess
from harness.v2client import DEFAULT_ROOM, Client, Identity, Persona

CliRunner = Callable[..., Any]
ServerFactory = Callable[..., ServerProcess]


# --------------------------------------------------------------------------- helpers


def set_image(
    client: Client, room_id: str, token: str | None, data: bytes, *, room: str | None = None
) -> dict[str, Any]:
    """POST rooms/<id>/image with the file base64-encoded, as desktop does."""
    body = {"file": base64.b64encode(data).decode()}
    return client.request("POST", f"rooms/{room_id}/image", body=body, token=token, room=room)


def get_image(client: Client, room_id: str) -> dict[str, Any]:
    """GET rooms/<id>/image with no headers at all."""
    return client.request("GET", f"rooms/{room_id}/image")


def image_bytes(size: int) -> bytes:
    """A fake image: a PNG signature then random bytes (every byte value can occur)."""
    return (b"\x89PNG\r\n\x1a\n" + os.urandom(size))[:size]


ModeratedRoom = tuple[str, Persona]


def create_moderated_room(cli: CliRunner, make_persona: Callable[..., Persona]) -> ModeratedRoom:
    """A fresh room and a moderator of it (made through the CLI) with a token there."""
    room_id = new_room(cli, "img")
    identity = Identity.generate()
    cli("moderators", "add", identity.session_id, room_id)
    return room_id, make_persona(identity, room_id)


@pytest.fixture(scope="module")
def image_room(cli: CliRunner, make_persona: Callable[..., Persona]) -> ModeratedRoom:
    """A room whose moderator sets images (tests check what they just set)."""
    return create_moderated_room(cli, make_persona)


@pytest.fixture(scope="module")
def imageless_room(cli: CliRunner, make_persona: Callable[..., Persona]) -> ModeratedRoom:
    """A room that no test gives an image: refused attempts must leave it without one."""
    return create_moderated_room(cli, make_persona)


@pytest.fixture(scope="module")
def other_room(cli: CliRunner, make_persona: Callable[..., Persona]) -> ModeratedRoom:
    """Yet another room with its own moderator, who has no rights in the rooms above."""
    return create_moderated_room(cli, make_persona)


# --------------------------------------------------------------------------- listing


def test_rooms_list_needs_no_headers_and_has_the_exact_shape(client: Client) -> None:
    result = client.request("GET", "rooms")
    assert set(result) == {"status_code", "rooms"}
    assert result["status_code"] == 200
    assert isinstance(result["rooms"], list)
    for room in result["rooms"]:
        assert set(room) == {"id", "name"}, room
        assert isinstance(room["id"], str) and isinstance(room["name"], str)
    assert {"id": DEFAULT_ROOM, "name": "Main"} in result["rooms"]


def test_one_room_needs_no_headers_and_has_the_exact_shape(client: Client) -> None:
    result = client.request("GET", f"rooms/{DEFAULT_ROOM}")
    assert result == {"status_code": 200, "room": {"id": DEFAULT_ROOM, "name": "Main"}}


def test_room_endpoints_ignore_a_bogus_token(client: Client) -> None:
    bogus = secrets.token_hex(48)
    assert client.request("GET", "rooms", token=bogus, room=DEFAULT_ROOM)["status_code"] == 200
    result = client.request("GET", f"rooms/{DEFAULT_ROOM}", token=bogus, room=DEFAULT_ROOM)
    assert result["status_code"] == 200


def test_rooms_added_with_the_cli_appear_and_deleted_ones_go(
    client: Client, cli: CliRunner
) -> None:
    name = "Café du Commerce — 24/7"
    room_id = new_room(cli, "lobby", name)
    listed = client.request("GET", "rooms")["rooms"]
    assert {"id": room_id, "name": name} in listed
    assert [r["id"] for r in listed].count(room_id) == 1
    assert client.request("GET", f"rooms/{room_id}") == {
        "status_code": 200,
        "room": {"id": room_id, "name": name},
    }

    cli("rooms", "delete", room_id)
    assert room_id not in [r["id"] for r in client.request("GET", "rooms")["rooms"]]
    expect_error(client.request("GET", f"rooms/{room_id}"), 404)


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param("rooms/no_such_room", id="room"),
        pytest.param("rooms/no_such_room/image", id="room-image"),
    ],
)
def test_unknown_room_is_404(client: Client, endpoint: str) -> None:
    expect_error(client.request("GET", endpoint), 404)


# --------------------------------------------------------------------------- room image


def test_room_without_an_image_answers_404(client: Client, imageless_room: ModeratedRoom) -> None:
    expect_error(get_image(client, imageless_room[0]), 404)


def test_moderator_sets_the_image_without_a_room_header_and_anyone_gets_it(
    client: Client, image_room: ModeratedRoom
) -> None:
    room_id, mod = image_room
    data = image_bytes(5000)
    assert set_image(client, room_id, mod.token, data) == {"status_code": 200, "room_id": room_id}
    result = get_image(client, room_id)
    assert result == {"status_code": 200, "result": base64.b64encode(data).decode()}


def test_a_new_image_replaces_the_old_one(client: Client, image_room: ModeratedRoom) -> None:
    room_id, mod = image_room
    first, second = image_bytes(300), image_bytes(200)
    assert set_image(client, room_id, mod.token, first)["status_code"] == 200
    assert set_image(client, room_id, mod.token, second)["status_code"] == 200
    assert base64.b64decode(get_image(client, room_id)["result"]) == second


def test_the_room_header_does_not_redirect_the_image(
    client: Client, image_room: ModeratedRoom
) -> None:
    room_id, mod = image_room
    data = image_bytes(100)
    result = set_image(client, room_id, mod.token, data, room=DEFAULT_ROOM)
    assert result == {"status_code": 200, "room_id": room_id}
    assert base64.b64decode(get_image(client, room_id)["result"]) == data
    expect_error(get_image(client, DEFAULT_ROOM), 404)  # no test of this module sets main's


def test_a_member_who_is_not_moderator_cannot_set_the_image(
    client: Client, imageless_room: ModeratedRoom, make_persona: Callable[..., Persona]
) -> None:
    room_id, _ = imageless_room
    member = make_persona(room=room_id)
    expect_error(set_image(client, room_id, member.token, image_bytes(100)), 403)
    expect_error(get_image(client, room_id), 404)


def test_setting_the_image_needs_a_token(client: Client, imageless_room: ModeratedRoom) -> None:
    room_id, _ = imageless_room
    expect_error(set_image(client, room_id, None, image_bytes(100)), 401)
    expect_error(set_image(client, room_id, secrets.token_hex(48), image_bytes(100)), 401)
    expect_error(get_image(client, room_id), 404)


def test_a_moderator_of_another_room_cannot_set_the_image(
    client: Client,
    imageless_room: ModeratedRoom,
    other_room: ModeratedRoom,
    make_persona: Callable[..., Persona],
) -> None:
    room_id = imageless_room[0]
    other_mod = other_room[1]
    # Tokens are per room: the other room's token is unknown here.
    expect_error(set_image(client, room_id, other_mod.token, image_bytes(100)), 401)
    # With a token of this room, the same key is an ordinary member here.
    here = make_persona(other_mod.identity, room_id)
    expect_error(set_image(client, room_id, here.token, image_bytes(100)), 403)
    expect_error(get_image(client, room_id), 404)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"file": "not base64!"}, id="not-base64"),
        pytest.param({"file": 12345}, id="number"),
        pytest.param({}, id="missing-file"),
        pytest.param({"file": None}, id="null-file"),
    ],
)
def test_a_bad_image_body_is_400(
    client: Client, imageless_room: ModeratedRoom, body: dict[str, Any]
) -> None:
    room_id, mod = imageless_room
    result = client.request("POST", f"rooms/{room_id}/image", body=body, token=mod.token)
    expect_error(result, 400)
    expect_error(get_image(client, room_id), 404)


def test_setting_the_image_of_an_unknown_room_is_404(client: Client, moderator: Persona) -> None:
    expect_error(set_image(client, "no_such_room", moderator.token, image_bytes(100)), 404)


def test_an_image_over_the_upload_limit_is_413(server_factory: ServerFactory) -> None:
    small = server_factory(env={"OPENGROUP_MAX_UPLOAD_BYTES": "1000"})
    identity = Identity.generate()
    small.cli("moderators", "add", identity.session_id, DEFAULT_ROOM)
    for transport in ("http", "onion"):
        with small.client(transport) as c:
            token = c.authenticate(identity, DEFAULT_ROOM)
            exact = image_bytes(1000)
            assert set_image(c, DEFAULT_ROOM, token, exact)["status_code"] == 200
            expect_error(set_image(c, DEFAULT_ROOM, token, image_bytes(1001)), 413)
            assert base64.b64decode(get_image(c, DEFAULT_ROOM)["result"]) == exact


def test_room_images_never_expire_while_files_do(server_factory: ServerFactory) -> None:
    short = server_factory(
        env={"OPENGROUP_FILE_TTL_SECONDS": "1", "OPENGROUP_PRUNE_INTERVAL_SECONDS": "1"}
    )
    identity = Identity.generate()
    short.cli("moderators", "add", identity.session_id, DEFAULT_ROOM)
    with short.client("http") as c:
        token = c.authenticate(identity, DEFAULT_ROOM)
        image = image_bytes(500)
        assert set_image(c, DEFAULT_ROOM, token, image)["status_code"] == 200
        upload = c.request(
            "POST",
            "files",
            body={"file": base64.b64encode(b"ordinary file").decode()},
            room=DEFAULT_ROOM,
            token=token,
        )
        assert upload["status_code"] == 200, upload
        file_endpoint = f"files/{upload['result']}"
        assert c.request("GET", file_endpoint, room=DEFAULT_ROOM, token=token)["status_code"] == 200

        time.sleep(3)

        expect_error(c.request("GET", file_endpoint, room=DEFAULT_ROOM, token=token), 404)
        assert get_image(c, DEFAULT_ROOM) == {
            "status_code": 200,
            "result": base64.b64encode(image).decode(),
        }
