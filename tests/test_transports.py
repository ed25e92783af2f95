"""The v2 API is the same through either transport (docs/spec/SPEC.md section 2).

One table of requests, every endpoint and each kind of refusal, each with the status
it must get, is sent once directly (under `/legacy/`) and once through onion requests
(the `transport` parameter). Through either, a success is `status_code` 200 and every
error has the one shape, `{"status_code": N, "error": "<short text>"}`. The client
checks what each transport adds on every answer: directly, a JSON answer whose HTTP
status is its `status_code`; through onion, HTTP 200 outside with the status inside,
never 406 or 421 (desktop reads those as clock skew and a swarm change). And a request
whose answer does not change from one send to the next is answered through onion
exactly as directly.

What only one transport has stays in its own module: the direct body limit, paths
only a URL can spell and the home page (test_transport_http.py); the envelope, its
encryption and its limits (test_transport_onion.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest
from harness.expect import expect_error, expect_ok
from harness.v2client import DEFAULT_ROOM, Client, Identity, Persona, Transport, signed_message

SOMEONE = Identity.generate().session_id  # a well-formed session id nobody uses
TRANSPORTS = [pytest.param("http", id="direct"), pytest.param("onion", id="onion")]


@dataclass(frozen=True)
class Signed:
    """A POST messages body signed by the sender, of ``size`` random bytes if given."""

    size: int | None = None


@dataclass(frozen=True)
class Request:
    """One v2 request and the status it must get.

    who: the fixture of the sender ("user", "moderator", "banned_user"), whose room and
    token go in the headers; else room and token as given (None: no such header).
    """

    method: str
    endpoint: str
    status: int
    body: object = None
    who: str | None = None
    room: str | None = None
    token: str | None = None
    sent_before: int = 0  # accepted sends of the same request first (a rate limit)
    varies: bool = False  # its answer differs from one send to the next
    name: str = ""

    def label(self) -> str:
        return f"{self.status} {self.name}"


REQUESTS = [
    # successes
    Request("GET", "rooms", 200, name="GET rooms"),
    Request("GET", "rooms/main", 200, name="GET rooms/main"),
    Request("GET", "member_count", 200, who="user", name="GET member_count"),
    Request("POST", "compact_poll", 200, {"requests": []}, name="POST compact_poll"),
    Request("GET", "messages", 200, who="user", name="GET messages"),
    Request("POST", "messages", 200, Signed(), "user", varies=True, name="POST messages"),
    Request("GET", "deleted_messages", 200, who="user", name="GET deleted_messages"),
    Request("GET", "moderators", 200, who="user", name="GET moderators"),
    Request("GET", "block_list", 200, who="moderator", name="GET block_list"),
    # 400: the request itself is wrong
    Request(
        "GET",
        "auth_token_challenge?public_key=05zz",
        400,
        room=DEFAULT_ROOM,
        name="challenge of a bad public key",
    ),
    Request(
        "GET",
        "auth_token_challenge?public_key=zz",
        400,
        who="user",
        name="challenge of a bad public key, with a token",
    ),
    Request(
        "GET",
        "auth_token_challenge?public_key=05",
        400,
        room=DEFAULT_ROOM,
        name="challenge of a bare 05",
    ),
    Request("POST", "claim_auth_token", 400, {"public_key": "x"}, "user", name="claim"),
    Request("POST", "messages", 400, {}, "user", name="message without fields"),
    Request("POST", "messages", 400, {"data": 5}, "user", name="message data a number"),
    Request("POST", "delete_messages", 400, {"ids": []}, "user", name="delete no messages"),
    Request("POST", "files", 400, {"file": 5}, "user", name="file a number"),
    Request("DELETE", "auth_token", 400, name="DELETE auth_token without one"),
    # 401: no token, or one the server does not know
    Request("GET", "messages", 401, room=DEFAULT_ROOM, name="no token"),
    Request("GET", "messages", 401, room=DEFAULT_ROOM, token="ab" * 48, name="unknown token"),
    # 403: the sender may not
    Request("POST", "messages", 403, Signed(), "banned_user", name="banned"),
    Request("POST", "rooms/main/image", 403, {"file": "AA=="}, "user", name="room image"),
    Request("POST", "moderators", 403, {"public_key": SOMEONE}, "user", name="add moderator"),
    Request("DELETE", f"moderators/{SOMEONE}", 403, who="user", name="remove moderator"),
    Request("POST", "block_list", 403, {"public_key": SOMEONE}, "user", name="ban"),
    Request("DELETE", f"block_list/{SOMEONE}", 403, who="user", name="unban"),
    Request(
        "POST",
        "ban_and_delete_all",
        403,
        {"public_key": SOMEONE},
        "user",
        name="ban and delete all",
    ),
    # 404: no such thing
    Request("GET", "rooms/no_such_room", 404, name="unknown room"),
    Request("GET", "rooms/main/image", 404, name="room without an image"),
    Request("DELETE", "messages/999999", 404, who="user", name="unknown message"),
    Request("GET", "files/12345", 404, who="user", name="unknown file"),
    Request("GET", "no_such_endpoint", 404, name="unknown endpoint"),
    Request("GET", "rooms/main/members", 404, name="unknown below a room"),
    Request("GET", "rooms/main/image/extra", 404, name="too deep"),
    Request("GET", "messages/1/extra", 404, name="too deep below messages"),
    Request("GET", "loki/v3/lsrpc", 404, name="the onion endpoint is not a v2 path"),
    Request("GET", "capabilities", 404, name="a v3 path"),
    Request("GET", "legacy/rooms", 404, name="the prefix twice"),
    Request("GET", "favicon.ico", 404, name="favicon"),
    # 405: a known path, another method
    Request("PUT", "rooms", 405, name="PUT rooms"),
    Request("DELETE", "rooms", 405, name="DELETE rooms"),
    Request("OPTIONS", "rooms", 405, name="OPTIONS rooms"),
    Request("POST", "rooms/main", 405, name="POST rooms/main"),
    Request("PATCH", "messages", 405, name="PATCH messages"),
    Request("PUT", "messages", 405, name="PUT messages"),
    Request("PUT", "messages/1", 405, name="PUT messages/1"),
    Request("GET", "claim_auth_token", 405, name="GET claim_auth_token"),
    Request("GET", "compact_poll", 405, name="GET compact_poll"),
    Request("POST", "member_count", 405, name="POST member_count"),
    Request("DELETE", "files/1", 405, name="DELETE files/1"),
    # 413, 429: too much
    Request("POST", "messages", 413, Signed(100_001), "user", name="message too large"),
    Request(
        "POST", "messages", 429, Signed(), "user", sent_before=5, varies=True, name="rate limited"
    ),
]

SAME_EACH_TIME = [r for r in REQUESTS if not r.varies]


def send(
    client: Client, fixtures: pytest.FixtureRequest, r: Request, transport: Transport
) -> dict[str, Any]:
    """Send the request (and first its accepted sends) through ``transport``; the answer."""
    room, token = r.room, r.token
    sender: Persona | None = fixtures.getfixturevalue(r.who) if r.who else None
    if sender is not None:
        room, token = sender.room, sender.token

    def once() -> dict[str, Any]:
        body = r.body
        if isinstance(body, Signed):
            assert sender is not None, r
            text = None if body.size is None else os.urandom(body.size)
            body = signed_message(sender.identity, text)
        return client.request(
            r.method, r.endpoint, body=body, room=room, token=token, transport=transport
        )

    for _ in range(r.sent_before):
        expect_ok(once())
    return once()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("r", REQUESTS, ids=Request.label)
def test_each_request_has_its_status_through_either_transport(
    setup_client: Client, request: pytest.FixtureRequest, r: Request, transport: Transport
) -> None:
    answer = send(setup_client, request, r, transport)
    if r.status == 200:
        expect_ok(answer)
    else:
        expect_error(answer, r.status)


@pytest.mark.parametrize("r", SAME_EACH_TIME, ids=Request.label)
def test_through_onion_a_request_is_answered_exactly_as_directly(
    setup_client: Client, request: pytest.FixtureRequest, r: Request
) -> None:
    direct = send(setup_client, request, r, "http")
    assert direct["status_code"] == r.status, direct
    assert send(setup_client, request, r, "onion") == direct
