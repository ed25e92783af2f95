"""The operator's commands for the community API: rooms with descriptions, images and
default permissions; moderators and admins of rooms or of the whole server; bans.

docs/spec/SPEC-v3.md sections 1 (room ids are tokens `[A-Za-z0-9_-]{1,64}`, no two
differing only in case), 2 (a Session id names that person's blinded id; room staff
visible by default, global staff hidden) and 5 (the commands):

- `opengroup rooms add ID NAME [--description TEXT]`, `rooms update ID [--name]
  [--description] [--image FILE]`, `rooms permissions ID [--read/--no-read]
  [--write/--no-write] [--upload/--no-upload] [--accessible/--no-accessible]`;
- `opengroup moderators add SESSION_ID (ROOM... | --global) [--admin]
  [--hidden|--visible]`, `moderators delete SESSION_ID (ROOM... | --global)`,
  `moderators list [ROOM]` (with ROOM: one id a line, as before; without: every
  role as ROOM, id, role, visibility, the server's staff as `(global)`);
- `opengroup bans add|delete SESSION_ID (ROOM... | --global) [--timeout SECONDS]`,
  `bans list` (ROOM, id, until: ISO 8601 UTC or `permanent`).

Every change is seen by clients at once (the commands write the database the
running server reads), and each refusal exits non-zero with a message, no traceback.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from harness.communityclient import BlindedIdentity, CommunityClient
from harness.expect import expect_cli_refused
from harness.v2client import DEFAULT_ROOM, Client, Persona

CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]
PersonaFactory = Callable[..., Persona]

MAIN = DEFAULT_ROOM


# --------------------------------------------------------------------------- helpers


def new_token(prefix: str = "Room") -> str:
    """A fresh room token in the wider alphabet (upper case and a hyphen)."""
    return f"{prefix}-{os.urandom(3).hex()}"


def room(c: CommunityClient, token: str, person: BlindedIdentity | None = None) -> dict[str, Any]:
    answer = c.get(f"/room/{token}", identity=person)
    assert answer.status == 200, answer
    info: dict[str, Any] = answer.body
    return info


def roles(cli: CliRunner) -> list[list[str]]:
    """`moderators list` as rows of ROOM, SESSION_ID, ROLE, VISIBILITY."""
    return [line.split("\t") for line in cli("moderators", "list").stdout.splitlines() if line]


def bans(cli: CliRunner) -> dict[tuple[str, str], str]:
    """`bans list` as {(room, session id): until}."""
    rows = [line.split("\t") for line in cli("bans", "list").stdout.splitlines() if line]
    return {(r[0], r[1]): r[2] for r in rows}


def may_read(c: CommunityClient, person: BlindedIdentity, token: str = MAIN) -> int:
    return c.get(f"/room/{token}/messages/recent", identity=person).status


# --------------------------------------------------------------------------- rooms


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("x", id="1-char"),
        pytest.param("Lobby", id="uppercase"),
        pytest.param("lob-by", id="hyphen"),
        pytest.param("A_9-" * 16, id="64-chars"),
    ],
)
def test_rooms_add_takes_community_api_tokens(
    cli: CliRunner, setup_community: CommunityClient, token: str
) -> None:
    cli("rooms", "add", token, "Tokens")
    assert room(setup_community, token)["token"] == token


def test_rooms_add_with_a_description_is_served_at_once(
    cli: CliRunner, community: CommunityClient
) -> None:
    token = new_token()
    out = cli("rooms", "add", token, "Described", "--description", "What we talk about").stdout
    assert token in out
    info = room(community, token)
    assert (info["name"], info["description"]) == ("Described", "What we talk about")
    assert info["info_updates"] >= 1
    # Found without regard to case; answered in its own spelling.
    assert room(community, token.lower())["token"] == token


def test_names_and_descriptions_follow_the_admins_rule_from_the_command_line_too(
    cli: CliRunner, community: CommunityClient
) -> None:
    """As an admin's PUT /room (tests/test_v3_rooms.py): control characters go, but a
    description's line breaks and tabs; other spaces and joiners stay."""
    token = new_token()
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one emoji, joined by U+200D
    name = f"{family}\u00a0Caf\u00e9 \u00ab\u202fx\u202f\u00bb"
    cli("rooms", "add", token, f" {name}\x1b\x7f\x85 ", "--description", "Line 1\nLine\t2\x07")
    info = room(community, token)
    assert (info["name"], info["description"]) == (name, "Line 1\nLine\t2")
    cli("rooms", "update", token, "--name", "Lobby\u0007 two\n", "--description", "\x1b\n")
    info = room(community, token)
    assert info["name"] == "Lobby two"
    assert "description" not in info


def test_rooms_differing_only_in_case_are_refused(
    cli: CliRunner, setup_community: CommunityClient
) -> None:
    token = new_token()
    cli("rooms", "add", token, "First")
    expect_cli_refused(cli("rooms", "add", token.lower(), "Second", check=False), "exists")
    expect_cli_refused(cli("rooms", "add", token.upper(), "Third", check=False), "exists")
    assert room(setup_community, token)["name"] == "First"


def test_rooms_update_changes_name_description_and_image(
    cli: CliRunner,
    community: CommunityClient,
    tmp_path: Path,
    setup_client: Client,
    make_persona: PersonaFactory,
) -> None:
    token = new_token()
    cli("rooms", "add", token, "Before", "--description", "old words")
    before = room(community, token)["info_updates"]
    cli("rooms", "update", token, "--name", "After", "--description", "new words")
    info = room(community, token)
    assert (info["name"], info["description"]) == ("After", "new words")
    assert info["info_updates"] > before

    image = tmp_path / "room.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    cli("rooms", "update", token.lower(), "--image", str(image))
    info = room(community, token)
    assert isinstance(info["image_id"], int)
    # The same image for v2 clients.
    member = make_persona(room=token)
    result = setup_client.request("GET", f"rooms/{token}/image", room=token, token=member.token)
    assert result["status_code"] == 200, result
    assert base64.b64decode(result["result"]) == image.read_bytes()

    cli("rooms", "update", token, "--description", "")
    assert "description" not in room(community, token)


def test_rooms_update_refuses_bad_input(cli: CliRunner, tmp_path: Path) -> None:
    token = new_token()
    cli("rooms", "add", token, "Target")
    expect_cli_refused(cli("rooms", "update", token, check=False), "nothing to change")
    expect_cli_refused(
        cli("rooms", "update", "no_such_room", "--name", "X", check=False), "no such room"
    )
    expect_cli_refused(cli("rooms", "update", token, "--name", "  ", check=False), "name")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    expect_cli_refused(cli("rooms", "update", token, "--image", str(empty), check=False), "empty")
    # A file that is not an image (a wrong path, say) is refused, not shown as a broken one.
    text = tmp_path / "notes.txt"
    text.write_bytes(b"not an image\n")
    refused = cli("rooms", "update", token, "--image", str(text), check=False)
    expect_cli_refused(refused, "PNG, JPEG, GIF or WebP")


def test_rooms_permissions_sets_what_users_may_do_by_default(
    cli: CliRunner, community: CommunityClient, alice: BlindedIdentity
) -> None:
    token = new_token()
    cli("rooms", "add", token, "Read only")
    assert cli("rooms", "permissions", token).stdout.strip() == (
        f"{token}: +read +write +upload +accessible"
    )
    out = cli("rooms", "permissions", token, "--no-write", "--no-upload").stdout
    assert out.strip() == f"{token}: +read -write -upload +accessible"
    info = room(community, token, alice)
    assert (info["read"], info["write"], info["upload"]) == (True, False, False)

    cli("rooms", "permissions", token, "--no-read", "--no-accessible")
    assert community.get(f"/room/{token}", identity=alice).status == 404
    cli("rooms", "permissions", token, "--read", "--accessible", "--write")
    info = room(community, token, alice)
    assert (info["read"], info["write"], info["upload"]) == (True, True, False)
    expect_cli_refused(cli("rooms", "permissions", "no_such_room", check=False), "no such room")


# --------------------------------------------------------------------------- moderators


def test_moderators_add_in_several_rooms_and_delete(
    cli: CliRunner, community: CommunityClient, alice: BlindedIdentity
) -> None:
    first, second = new_token(), new_token()
    cli("rooms", "add", first, "First")
    cli("rooms", "add", second, "Second")
    before = room(community, first)["info_updates"]
    cli("moderators", "add", alice.session_id, first, second)
    for token in (first, second):
        info = room(community, token, alice)  # alice signs: seen, listed by her 15 id
        assert info["moderator"] is True and "admin" not in info
        assert alice.blinded_id(community.server_pk) in room(community, token)["moderators"]
    assert room(community, first)["info_updates"] > before
    assert cli("moderators", "list", first).stdout.splitlines() == [alice.session_id]
    assert [first, alice.session_id, "moderator", "visible"] in roles(cli)

    cli("moderators", "delete", alice.session_id, first)
    assert "moderator" not in room(community, first, alice)
    assert room(community, second, alice)["moderator"] is True
    expect_cli_refused(
        cli("moderators", "delete", alice.session_id, first, check=False), "not a moderator"
    )


def test_moderators_add_admin_hidden_and_visible(
    cli: CliRunner, community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    token = new_token()
    cli("rooms", "add", token, "Staffed")
    cli("moderators", "add", alice.session_id, token, "--admin", "--hidden")
    assert [token, alice.session_id, "admin", "hidden"] in roles(cli)
    mine = room(community, token, alice)
    assert mine["admin"] is True
    sid = alice.blinded_id(community.server_pk)
    assert sid in mine["hidden_admins"] and sid not in mine["admins"]
    assert sid not in str(room(community, token, bob))
    # Again without --admin: a moderator now; --visible shows her.
    cli("moderators", "add", alice.session_id, token, "--visible")
    assert [token, alice.session_id, "moderator", "visible"] in roles(cli)
    assert sid in room(community, token, bob)["moderators"]


def test_global_staff_are_hidden_by_default(
    cli: CliRunner, community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    cli("moderators", "add", alice.session_id, "--global")
    try:
        assert ["(global)", alice.session_id, "moderator", "hidden"] in roles(cli)
        mine = room(community, MAIN, alice)
        assert mine["global_moderator"] is True and mine["moderator"] is True
        assert alice.blinded_id(community.server_pk) not in str(room(community, MAIN, bob))
        cli("moderators", "add", alice.session_id, "--global", "--admin", "--visible")
        assert ["(global)", alice.session_id, "admin", "visible"] in roles(cli)
        assert room(community, MAIN, alice)["global_admin"] is True
        assert alice.blinded_id(community.server_pk) in room(community, MAIN, bob)["admins"]
    finally:
        cli("moderators", "delete", alice.session_id, "--global")
    assert "moderator" not in room(community, MAIN, alice)
    assert not [row for row in roles(cli) if row[1] == alice.session_id]


def test_a_blinded_id_can_be_named_too(
    cli: CliRunner, community: CommunityClient, alice: BlindedIdentity
) -> None:
    sid = alice.blinded_id(community.server_pk)
    cli("moderators", "add", sid.upper(), MAIN)  # upper-case hex is folded
    assert room(community, MAIN, alice)["moderator"] is True
    cli("moderators", "delete", alice.session_id, MAIN)  # the same person, by the other id
    assert "moderator" not in room(community, MAIN, alice)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(("add", "SID"), ("--global",), id="add-no-room"),
        pytest.param(("add", "SID", MAIN, "--global"), ("--global",), id="add-room-and-global"),
        pytest.param(("delete", "SID"), ("--global",), id="delete-no-room"),
        pytest.param(("add", "05zz", MAIN), ("session id",), id="bad-id"),
        pytest.param(("add", "SID", "no_such_room"), ("no_such_room",), id="unknown-room"),
        pytest.param(("list", "no_such_room"), ("no_such_room",), id="list-unknown-room"),
    ],
)
def test_moderator_commands_refuse_bad_input(
    cli: CliRunner, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    sid = BlindedIdentity.generate().session_id
    args = tuple(sid if a == "SID" else a for a in args)
    expect_cli_refused(cli("moderators", *args, check=False), *words)
    assert sid not in cli("moderators", "list").stdout


# --------------------------------------------------------------------------- bans


def test_bans_add_list_and_delete(
    cli: CliRunner, community: CommunityClient, alice: BlindedIdentity
) -> None:
    cli("bans", "add", alice.session_id, MAIN)
    assert bans(cli)[(MAIN, alice.session_id)] == "permanent"
    assert may_read(community, alice) == 403
    cli("bans", "delete", alice.session_id, MAIN)
    assert (MAIN, alice.session_id) not in bans(cli)
    assert may_read(community, alice) == 200
    expect_cli_refused(cli("bans", "delete", alice.session_id, MAIN, check=False), "not banned")


def test_a_ban_with_a_timeout_ends_by_itself(
    cli: CliRunner, community: CommunityClient, alice: BlindedIdentity
) -> None:
    start = time.time()
    cli("bans", "add", alice.session_id, MAIN, "--timeout", "6")
    assert may_read(community, alice) == 403
    while may_read(community, alice) == 403:
        assert time.time() < start + 60, "the ban did not end"
        time.sleep(0.2)
    assert time.time() >= start + 6  # not before its time (counted from the command)
    assert (MAIN, alice.session_id) not in bans(cli)


def test_bans_list_shows_when_a_ban_ends(
    cli: CliRunner, setup_community: CommunityClient, alice: BlindedIdentity
) -> None:
    start = time.time()
    cli("bans", "add", alice.session_id, MAIN, "--timeout", "3600")
    until = bans(cli)[(MAIN, alice.session_id)]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", until), until
    ends = datetime.fromisoformat(until).timestamp()  # whole seconds, rounded down
    assert start + 3599 <= ends <= time.time() + 3600
    cli("bans", "delete", alice.session_id, MAIN)
    assert may_read(setup_community, alice) == 200


def test_a_global_ban_refuses_every_request(
    cli: CliRunner, community: CommunityClient, alice: BlindedIdentity
) -> None:
    cli("bans", "add", alice.session_id, "--global")
    assert bans(cli)[("(global)", alice.session_id)] == "permanent"
    answer = community.get("/capabilities", identity=alice)
    assert (answer.status, answer.body) == (403, "Banned")
    cli("bans", "delete", alice.session_id, "--global")
    assert community.get("/capabilities", identity=alice).status == 200


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(("SID",), ("--global",), id="no-room"),
        pytest.param(("SID", MAIN, "--timeout", "0"), ("timeout",), id="timeout-zero"),
        pytest.param(("SID", MAIN, "--timeout", "x"), ("timeout",), id="timeout-not-a-number"),
        pytest.param(("SID", "no_such_room"), ("no_such_room",), id="unknown-room"),
        pytest.param(("MOD", MAIN), ("cannot be banned",), id="a-moderator"),
        pytest.param(("MOD", "--global"), ("cannot be banned",), id="a-moderator-globally"),
    ],
)
def test_ban_commands_refuse_bad_input(
    cli: CliRunner,
    room_moderator: BlindedIdentity,
    args: tuple[str, ...],
    words: tuple[str, ...],
) -> None:
    sid = BlindedIdentity.generate().session_id
    args = tuple(
        sid if a == "SID" else room_moderator.session_id if a == "MOD" else a for a in args
    )
    expect_cli_refused(cli("bans", "add", *args, check=False), *words)
    listed = cli("bans", "list").stdout
    assert sid not in listed and room_moderator.session_id not in listed
