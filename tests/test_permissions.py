"""Who may call what: one table over every endpoint of opengroup/api/routes.py.

Each row is (endpoint, persona, expected status), run over both transports
(direct HTTP under `/legacy/`, the v2 API's home: `GET /rooms` at the root is
the community API's room list, docs/spec/SPEC-v3.md section 1).
The expectations come from docs/spec/SPEC.md section 3 ("no auth", errors,
room image) and the "Authorization" column of docs/spec/seed-api.txt:

- `GET /rooms`, `GET /rooms/:id`, `GET /rooms/:id/image` need no token;
  `GET /auth_token_challenge` needs none either, but refuses a banned key;
- everything else needs a token of the room (401 without one, or with a
  token of another room: tokens are per room);
- moderator-only calls answer 403 to members;
- a banned key gets 403 wherever a token is checked.

Personas: an anonymous caller (no token), a member, a moderator of the room,
a banned member, and a moderator of ANOTHER room (the lobby), once with their
lobby token and once with a member token of this room. Every case builds its
own callers and targets (throwaway keys, fresh messages), so the mutating calls
never depend on each other.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness.v2client import (
    DEFAULT_ROOM,
    Client,
    Identity,
    Persona,
    encode_visible_message,
    signed_message,
)

PersonaFactory = Callable[..., Persona]
CliRunner = Callable[..., Any]

MAIN = DEFAULT_ROOM
LOBBY = "lobby"
ROUTES_FILE = Path(__file__).resolve().parent.parent / "opengroup" / "api" / "routes.py"
IMAGE_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n not really an image").decode()
FILE_B64 = base64.b64encode(b"an attachment").decode()


# --------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class Scene:
    """A room with a moderator whose token is used only to arrange state."""

    room: str
    setup: Client
    make_persona: PersonaFactory
    moderator: Persona

    def ok(self, method: str, endpoint: str, body: object | None = None) -> dict[str, Any]:
        """An arranging call as the room's moderator; it must succeed."""
        result = self.setup.request(
            method, endpoint, body=body, room=self.room, token=self.moderator.token
        )
        assert result["status_code"] == 200, (method, endpoint, result)
        return result

    def member(self, identity: Identity | None = None) -> Persona:
        """A freshly authenticated member (or the given key) in this room."""
        return self.make_persona(identity, room=self.room)

    def post(self, author: Persona) -> int:
        """A fresh message by the author; returns its server_id."""
        result = self.setup.post_message(author.identity, author.token, self.room)
        assert result["status_code"] == 200, result
        return int(result["message"]["server_id"])

    def ban(self, public_key: str) -> None:
        """Ban the key in this room."""
        self.ok("POST", "block_list", {"public_key": public_key})

    def add_moderator(self, public_key: str) -> None:
        """Make the key a moderator of this room."""
        self.ok("POST", "moderators", {"public_key": public_key, "room_id": self.room})


@dataclass(frozen=True)
class Caller:
    """Who makes the call under test: a key (always), a token (or none), and the
    id of a message of theirs in the room under test, when the case needs one."""

    identity: Identity
    token: str | None
    own_message: int | None = None


ANONYMOUS = "anonymous"
MEMBER = "member"
MODERATOR = "moderator"
BANNED = "banned"
OTHER_MOD_OWN_TOKEN = "lobby-moderator-with-lobby-token"
OTHER_MOD_AS_MEMBER = "lobby-moderator-with-member-token"
PERSONAS = (ANONYMOUS, MEMBER, MODERATOR, BANNED, OTHER_MOD_OWN_TOKEN, OTHER_MOD_AS_MEMBER)


def build_caller(persona: str, scene: Scene, other: Scene, *, own_message: bool) -> Caller:
    """The persona, freshly made for one case. A banned caller posts (if asked)
    before the ban; the other room's moderator is a fresh key each time."""
    if persona == ANONYMOUS:
        return Caller(Identity.generate(), None)
    if persona == OTHER_MOD_OWN_TOKEN:
        identity = Identity.generate()
        other.add_moderator(identity.session_id)
        return Caller(identity, other.member(identity).token)
    if persona == MODERATOR:
        member = scene.member(scene.moderator.identity)
    elif persona == OTHER_MOD_AS_MEMBER:
        identity = Identity.generate()
        other.add_moderator(identity.session_id)
        member = scene.member(identity)
    elif persona in (MEMBER, BANNED):
        member = scene.member()
    else:
        raise ValueError(f"unknown persona {persona!r}")
    message = scene.post(member) if own_message else None
    if persona == BANNED:
        scene.ban(member.session_id)
    return Caller(member.identity, member.token, message)


# --------------------------------------------------------------------------- the calls

Call = Callable[[Scene, Client, Caller], dict[str, Any]]


def _req(
    scene: Scene, c: Client, who: Caller, method: str, endpoint: str, body: object | None = None
) -> dict[str, Any]:
    """The call as clients make it: Room header of the scene, the caller's token if any."""
    return c.request(method, endpoint, body=body, room=scene.room, token=who.token)


def _someone_elses_message(scene: Scene) -> int:
    """A fresh message by a fresh member."""
    return scene.post(scene.member())


def _own_message(scene: Scene, who: Caller) -> int:
    """The caller's own message; callers with no token in the room get someone else's."""
    return who.own_message if who.own_message is not None else _someone_elses_message(scene)


def get_rooms(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    return _req(s, c, who, "GET", "rooms")


def get_room(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    return _req(s, c, who, "GET", f"rooms/{s.room}")


def get_room_image(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    s.ok("POST", f"rooms/{s.room}/image", {"file": IMAGE_B64})
    return _req(s, c, who, "GET", f"rooms/{s.room}/image")


def set_room_image(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    return _req(s, c, who, "POST", f"rooms/{s.room}/image", {"file": IMAGE_B64})


def challenge(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    return _req(s, c, who, "GET", f"auth_token_challenge?public_key={who.identity.session_id}")


def claim(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    """Claiming the token the caller holds (a repeated claim of one's own token is fine)."""
    return _req(s, c, who, "POST", "claim_auth_token", {"public_key": who.identity.session_id})


def revoke(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    return _req(s, c, who, "DELETE", "auth_token")


def member_count(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    return _req(s, c, who, "GET", "member_count")


def compact_poll(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    """The per-room result is what counts: the poll as a whole always answers 200."""
    entry: dict[str, Any] = {"room_id": s.room}
    if who.token is not None:
        entry["auth_token"] = who.token
    result = c.compact_poll([entry])
    assert result["status_code"] == 200, result
    (room_result,) = result["results"]
    return room_result


def post_message(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    """A correctly signed message by the caller's key."""
    body = signed_message(who.identity, encode_visible_message("permission check"))
    return _req(s, c, who, "POST", "messages", body)


def get_messages(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    return _req(s, c, who, "GET", "messages")


def delete_own_message(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    return _req(s, c, who, "DELETE", f"messages/{_own_message(s, who)}")


def delete_someone_elses_message(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    return _req(s, c, who, "DELETE", f"messages/{_someone_elses_message(s)}")


def delete_own_messages(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    return _req(s, c, who, "POST", "delete_messages", {"ids": [_own_message(s, who)]})


def delete_someone_elses_messages(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    return _req(s, c, who, "POST", "delete_messages", {"ids": [_someone_elses_message(s)]})


def get_deleted_messages(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    return _req(s, c, who, "GET", "deleted_messages")


def upload(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    return _req(s, c, who, "POST", "files", {"file": FILE_B64})


def download(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    file_id = s.ok("POST", "files", {"file": FILE_B64})["result"]
    return _req(s, c, who, "GET", f"files/{file_id}")


def get_moderators(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    return _req(s, c, who, "GET", "moderators")


def add_moderator(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    body = {"public_key": Identity.generate().session_id, "room_id": s.room}
    return _req(s, c, who, "POST", "moderators", body)


def remove_moderator(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    throwaway = Identity.generate().session_id
    s.add_moderator(throwaway)
    return _req(s, c, who, "DELETE", f"moderators/{throwaway}")


def get_block_list(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    return _req(s, c, who, "GET", "block_list")


def ban(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    return _req(s, c, who, "POST", "block_list", {"public_key": Identity.generate().session_id})


def unban(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    throwaway = Identity.generate().session_id
    s.ban(throwaway)
    return _req(s, c, who, "DELETE", f"block_list/{throwaway}")


def ban_and_delete_all(s: Scene, c: Client, who: Caller) -> dict[str, Any]:
    victim = s.member()
    s.post(victim)
    return _req(s, c, who, "POST", "ban_and_delete_all", {"public_key": victim.session_id})


# --------------------------------------------------------------------------- the table

OPEN = dict.fromkeys(PERSONAS, 200)
MEMBERS_ONLY = {
    ANONYMOUS: 401,
    MEMBER: 200,
    MODERATOR: 200,
    BANNED: 403,
    OTHER_MOD_OWN_TOKEN: 401,
    OTHER_MOD_AS_MEMBER: 200,
}
MODERATORS_ONLY = {**MEMBERS_ONLY, MEMBER: 403, OTHER_MOD_AS_MEMBER: 403}
CHALLENGE = {**OPEN, BANNED: 403}


@dataclass(frozen=True)
class Endpoint:
    """One row group of the matrix. label is "METHOD /path" as in routes.py, with
    :params, plus an optional "(variant)" when one route is checked two ways."""

    label: str
    call: Call
    expect: Mapping[str, int]
    needs_own_message: bool = False


ENDPOINTS = [
    Endpoint("GET /rooms", get_rooms, OPEN),
    Endpoint("GET /rooms/:id", get_room, OPEN),
    Endpoint("GET /rooms/:id/image", get_room_image, OPEN),
    Endpoint("POST /rooms/:id/image", set_room_image, MODERATORS_ONLY),
    Endpoint("GET /auth_token_challenge", challenge, CHALLENGE),
    Endpoint("POST /claim_auth_token", claim, MEMBERS_ONLY),
    Endpoint("DELETE /auth_token", revoke, MEMBERS_ONLY),
    Endpoint("GET /member_count", member_count, MEMBERS_ONLY),
    Endpoint("POST /compact_poll", compact_poll, MEMBERS_ONLY),
    Endpoint("POST /messages", post_message, MEMBERS_ONLY),
    Endpoint("GET /messages", get_messages, MEMBERS_ONLY),
    Endpoint("DELETE /messages/:id(own)", delete_own_message, MEMBERS_ONLY, True),
    Endpoint("DELETE /messages/:id(someone else's)", delete_someone_elses_message, MODERATORS_ONLY),
    Endpoint("POST /delete_messages(own)", delete_own_messages, MEMBERS_ONLY, True),
    Endpoint(
        "POST /delete_messages(someone else's)", delete_someone_elses_messages, MODERATORS_ONLY
    ),
    Endpoint("GET /deleted_messages", get_deleted_messages, MEMBERS_ONLY),
    Endpoint("POST /files", upload, MEMBERS_ONLY),
    Endpoint("GET /files/:id", download, MEMBERS_ONLY),
    Endpoint("GET /moderators", get_moderators, MEMBERS_ONLY),
    Endpoint("POST /moderators", add_moderator, MODERATORS_ONLY),
    Endpoint("DELETE /moderators/:pk", remove_moderator, MODERATORS_ONLY),
    Endpoint("GET /block_list", get_block_list, MEMBERS_ONLY),
    Endpoint("POST /block_list", ban, MODERATORS_ONLY),
    Endpoint("DELETE /block_list/:pk", unban, MODERATORS_ONLY),
    Endpoint("POST /ban_and_delete_all", ban_and_delete_all, MODERATORS_ONLY),
]

MATRIX = [
    pytest.param(endpoint, persona, status, id=f"{endpoint.label}-{persona}-{status}")
    for endpoint in ENDPOINTS
    for persona, status in endpoint.expect.items()
]


# --------------------------------------------------------------------------- fixtures


# The per-key sign-in limits are off here: the table signs the same moderator keys
# in a hundred times in a minute while keeping their first tokens, which those
# limits rightly refuse (they are pinned in test_limits.py and test_rate_limits.py).
SERVER_ENV = {"OPENGROUP_CHALLENGE_RATE_LIMIT_SECONDS": "0", "OPENGROUP_MAX_TOKENS_PER_KEY": "0"}


@pytest.fixture(scope="module")
def main_scene(
    setup_client: Client, make_persona: PersonaFactory, moderator_identity: Identity
) -> Scene:
    """The room under test, `main`, with the module's moderator."""
    return Scene(MAIN, setup_client, make_persona, make_persona(moderator_identity))


@pytest.fixture(scope="module")
def lobby_scene(cli: CliRunner, setup_client: Client, make_persona: PersonaFactory) -> Scene:
    """The other room, with a moderator of its own (made with the admin CLI)."""
    cli("rooms", "add", LOBBY, "Lobby")
    identity = Identity.generate()
    cli("moderators", "add", identity.session_id, LOBBY)
    return Scene(LOBBY, setup_client, make_persona, make_persona(identity, room=LOBBY))


# --------------------------------------------------------------------------- tests


def _route_key(label: str) -> str:
    """A label ("GET /files/:id(x)") or a routes.py route ("GET /files/{id}") as "GET /files/*"."""
    label = re.sub(r"\(.*\)$", "", label)
    return re.sub(r"\{\w+\}|:\w+", "*", label)


def test_the_matrix_covers_every_route_of_the_routing_table() -> None:
    routes = re.findall(r'Route\("(\w+)", "([^"]+)"', ROUTES_FILE.read_text())
    assert len(routes) >= 20, "routes.py no longer looks like the routing table"
    in_table = {_route_key(f"{method} {path}") for method, path in routes}
    in_matrix = {_route_key(endpoint.label) for endpoint in ENDPOINTS}
    assert in_matrix == in_table


@pytest.mark.parametrize(("endpoint", "persona", "expected"), MATRIX)
def test_permission_matrix(
    client: Client,
    main_scene: Scene,
    lobby_scene: Scene,
    endpoint: Endpoint,
    persona: str,
    expected: int,
) -> None:
    caller = build_caller(persona, main_scene, lobby_scene, own_message=endpoint.needs_own_message)
    result = endpoint.call(main_scene, client, caller)
    assert result["status_code"] == expected, result
    if expected != 200:
        assert isinstance(result.get("error"), str) and result["error"], result


MODERATOR_ACTIONS = [e for e in ENDPOINTS if e.expect is MODERATORS_ONLY]


@pytest.mark.parametrize("endpoint", [pytest.param(e, id=e.label) for e in MODERATOR_ACTIONS])
def test_a_moderator_of_one_room_has_no_power_in_another(
    client: Client, main_scene: Scene, lobby_scene: Scene, endpoint: Endpoint
) -> None:
    """The lobby's moderator can do it in the lobby; in main, the lobby token is
    unknown (401) and a main token is only a member's (403)."""
    lobby_moderator = lobby_scene.moderator.identity
    with_lobby_token = Caller(lobby_moderator, lobby_scene.member(lobby_moderator).token)
    with_main_token = Caller(lobby_moderator, main_scene.member(lobby_moderator).token)

    in_lobby = endpoint.call(lobby_scene, client, with_lobby_token)
    in_main_with_lobby_token = endpoint.call(main_scene, client, with_lobby_token)
    in_main_as_member = endpoint.call(main_scene, client, with_main_token)

    statuses = [r["status_code"] for r in (in_lobby, in_main_with_lobby_token, in_main_as_member)]
    assert statuses == [200, 401, 403], (in_lobby, in_main_with_lobby_token, in_main_as_member)
