"""Rate limits: configurable, on by default, shared through the database (docs/SECURITY.md).

| limit | settings `*_count`, `*_seconds` (default) | counted in |
| --- | --- | --- |
| posts per user per room | post_rate_limit (5 per 16 s) | messages |
| challenges per public key, all rooms | challenge_rate_limit (20 per 60 s) | rate_events |
| uploads per user per room | upload_rate_limit (10 per 60 s) | files |

Over a limit: 429 with `retry_after` (seconds, integer) in the body and a
`Retry-After` header over direct HTTP. Refused requests are not counted.
Moderators are exempt from all three in their rooms (from the challenge limit
so that nobody can keep them from signing in by asking for challenges for
their key; the 16 unclaimed challenges per key and room still apply). A 0 in
either setting of a limit turns it off. The posting limit's behaviour is
pinned in test_messages.py and test_multi_process.py.

The module's server runs with small limits and short windows; a second
process on the same data dir and database (`twin`) shows the state is shared.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness import probe
from harness.expect import expect_rate_limited
from harness.flows import challenge
from harness.server import Backend, ServerProcess
from harness.v2client import DEFAULT_ROOM, Client, Identity, Persona, Transport

ServerFactory = Callable[..., ServerProcess]

CHALLENGES = 4
UPLOADS = 3
WINDOW_SECONDS = 3
PRUNE_SECONDS = 1
SECOND_ROOM = "second"
TIGHT_ENV = {
    "OPENGROUP_CHALLENGE_RATE_LIMIT_COUNT": str(CHALLENGES),
    "OPENGROUP_CHALLENGE_RATE_LIMIT_SECONDS": str(WINDOW_SECONDS),
    "OPENGROUP_UPLOAD_RATE_LIMIT_COUNT": str(UPLOADS),
    "OPENGROUP_UPLOAD_RATE_LIMIT_SECONDS": str(WINDOW_SECONDS),
    "OPENGROUP_PRUNE_INTERVAL_SECONDS": str(PRUNE_SECONDS),
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, database_url: str | None
) -> Iterator[ServerProcess]:
    """This module's server: small limits, short windows, with a second room."""
    proc = ServerProcess(
        tmp_path_factory.mktemp("rates") / "data", database_url=database_url, env=TIGHT_ENV
    )
    proc.start()
    proc.cli("rooms", "add", SECOND_ROOM, "Second")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def module_moderator(make_persona: Callable[..., Persona], cli: Callable[..., Any]) -> Persona:
    """A moderator of `main` signed in once (so fixtures spend no challenges per test)."""
    identity = Identity.generate()
    cli("moderators", "add", identity.session_id, DEFAULT_ROOM)
    return make_persona(identity)


@pytest.fixture(scope="module")
def default_server(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[ServerProcess]:
    """A server with every setting at its default, and a second room."""
    url = backend.new_database_url()
    proc = ServerProcess(tmp_path_factory.mktemp("defaults") / "data", database_url=url)
    proc.start()
    proc.cli("rooms", "add", SECOND_ROOM, "Second")
    yield proc
    proc.stop()
    backend.drop_database(url)


# --------------------------------------------------------------------------- helpers


def upload(client: Client, persona: Persona) -> dict[str, Any]:
    """POST files with a small random file, in the persona's room."""
    body = {"file": base64.b64encode(os.urandom(64)).decode()}
    return client.request("POST", "files", body=body, room=persona.room, token=persona.token)


def statuses(results: list[dict[str, Any]]) -> list[int]:
    """The status codes of some answers, in order."""
    return [r["status_code"] for r in results]


def rate_event_count(server: ServerProcess, bucket: str) -> int:
    """Rows of rate_events in a bucket, read straight from the database."""
    return int(probe.value(server, "SELECT count(*) FROM rate_events WHERE bucket = %s", bucket))


# --------------------------------------------------------------------------- challenges


def test_challenges_past_the_limit_are_429_with_a_retry_hint(client: Client) -> None:
    identity = Identity.generate()
    accepted = [challenge(client, identity) for _ in range(CHALLENGES)]

    refused = challenge(client, identity)

    assert statuses(accepted) == [200] * CHALLENGES
    expect_rate_limited(refused, WINDOW_SECONDS, "challenges")


def test_the_challenge_limit_counts_all_rooms_of_a_key(client: Client) -> None:
    identity = Identity.generate()
    half = CHALLENGES // 2
    accepted = [challenge(client, identity) for _ in range(half)]
    accepted += [challenge(client, identity, SECOND_ROOM) for _ in range(CHALLENGES - half)]

    assert statuses(accepted) == [200] * CHALLENGES
    expect_rate_limited(challenge(client, identity), WINDOW_SECONDS, "challenges")
    expect_rate_limited(challenge(client, identity, SECOND_ROOM), WINDOW_SECONDS, "challenges")


def test_the_challenge_limit_of_one_key_leaves_other_keys_alone(client: Client) -> None:
    identity = Identity.generate()
    for _ in range(CHALLENGES):
        challenge(client, identity)
    assert challenge(client, identity)["status_code"] == 429

    assert challenge(client, Identity.generate())["status_code"] == 200


def test_moderators_are_exempt_from_the_challenge_limit_in_their_room_only(
    client: Client, module_moderator: Persona
) -> None:
    identity = module_moderator.identity
    in_their_room = [challenge(client, identity) for _ in range(CHALLENGES + 2)]

    assert statuses(in_their_room) == [200] * (CHALLENGES + 2)
    expect_rate_limited(challenge(client, identity, SECOND_ROOM), WINDOW_SECONDS, "challenges")


def test_challenges_are_served_again_after_the_retry_hint(setup_client: Client) -> None:
    """If refused challenges were counted, the refused one would still block after the hint."""
    identity = Identity.generate()
    for _ in range(CHALLENGES):
        challenge(setup_client, identity)
    refused = challenge(setup_client, identity)
    assert refused["status_code"] == 429, refused

    time.sleep(refused["retry_after"] + 0.2)

    assert challenge(setup_client, identity)["status_code"] == 200


def test_challenge_events_are_pruned_once_out_of_the_window(
    server: ServerProcess, setup_client: Client
) -> None:
    identity = Identity.generate()
    bucket = f"challenge:{identity.session_id}"
    assert challenge(setup_client, identity)["status_code"] == 200
    assert rate_event_count(server, bucket) == 1

    deadline = time.monotonic() + WINDOW_SECONDS + 3 * PRUNE_SECONDS + 5
    while rate_event_count(server, bucket) and time.monotonic() < deadline:
        time.sleep(0.25)

    assert rate_event_count(server, bucket) == 0


# --------------------------------------------------------------------------- uploads


def test_uploads_past_the_limit_are_429_with_a_retry_hint(client: Client, user: Persona) -> None:
    accepted = [upload(client, user) for _ in range(UPLOADS)]

    refused = upload(client, user)

    assert statuses(accepted) == [200] * UPLOADS
    expect_rate_limited(refused, WINDOW_SECONDS, "uploads")


def test_the_upload_limit_is_per_room(
    client: Client, user: Persona, make_persona: Callable[..., Persona]
) -> None:
    for _ in range(UPLOADS):
        upload(client, user)
    assert upload(client, user)["status_code"] == 429

    elsewhere = make_persona(user.identity, room=SECOND_ROOM)
    assert upload(client, elsewhere)["status_code"] == 200


def test_the_upload_limit_of_one_user_leaves_others_alone(
    client: Client, user: Persona, other_user: Persona
) -> None:
    for _ in range(UPLOADS):
        upload(client, user)
    assert upload(client, user)["status_code"] == 429

    assert upload(client, other_user)["status_code"] == 200


def test_moderators_are_exempt_from_the_upload_limit(
    client: Client, module_moderator: Persona
) -> None:
    uploaded = [upload(client, module_moderator) for _ in range(UPLOADS + 2)]

    assert statuses(uploaded) == [200] * (UPLOADS + 2)


def test_uploads_are_served_again_after_the_retry_hint(setup_client: Client, user: Persona) -> None:
    for _ in range(UPLOADS):
        upload(setup_client, user)
    refused = upload(setup_client, user)
    assert refused["status_code"] == 429, refused

    time.sleep(refused["retry_after"] + 0.2)

    assert upload(setup_client, user)["status_code"] == 200


# --------------------------------------------------------------------------- retry header


@pytest.mark.parametrize("limit", ["challenge", "upload"])
def test_a_rate_limited_http_answer_carries_retry_after_equal_to_the_body(
    setup_client: Client, user: Persona, limit: str
) -> None:
    if limit == "challenge":
        identity = Identity.generate()
        for _ in range(CHALLENGES):
            challenge(setup_client, identity)
        resp = setup_client.http.get(
            "/auth_token_challenge",
            params={"public_key": identity.session_id},
            headers={"Room": DEFAULT_ROOM},
        )
    else:
        for _ in range(UPLOADS):
            upload(setup_client, user)
        resp = setup_client.http.post(
            "/files",
            json={"file": base64.b64encode(b"one too many").decode()},
            headers={"Room": DEFAULT_ROOM, "Authorization": user.token},
        )

    assert resp.status_code == 429, resp.text[:300]
    assert resp.headers["Retry-After"] == str(resp.json()["retry_after"])


# --------------------------------------------------------------------------- shared state


def test_the_limits_are_shared_by_two_server_processes_on_one_database(
    server: ServerProcess, twin: ServerProcess, user: Persona
) -> None:
    identity = Identity.generate()
    with server.client("http") as a, twin.client("onion") as b:
        asked = [challenge(c, identity) for c in (a, b) * (CHALLENGES // 2)]
        refused_challenges = [challenge(a, identity), challenge(b, identity)]
        uploaded = [upload(a, user), upload(b, user), upload(a, user)]
        refused_uploads = [upload(b, user), upload(a, user)]

    assert statuses(asked) == [200] * CHALLENGES
    assert statuses(refused_challenges) == [429, 429]
    assert statuses(uploaded) == [200] * UPLOADS
    assert statuses(refused_uploads) == [429, 429]


# --------------------------------------------------------------------------- switching off


@pytest.mark.parametrize(
    "count, seconds",
    [pytest.param("2", "0", id="zero-seconds"), pytest.param("0", "30", id="zero-count")],
)
def test_a_zero_in_either_setting_turns_a_limit_off(
    server_factory: ServerFactory, count: str, seconds: str
) -> None:
    off = server_factory(
        env={
            "OPENGROUP_CHALLENGE_RATE_LIMIT_COUNT": count,
            "OPENGROUP_CHALLENGE_RATE_LIMIT_SECONDS": seconds,
            "OPENGROUP_UPLOAD_RATE_LIMIT_COUNT": count,
            "OPENGROUP_UPLOAD_RATE_LIMIT_SECONDS": seconds,
            "OPENGROUP_POST_RATE_LIMIT_COUNT": count,
            "OPENGROUP_POST_RATE_LIMIT_SECONDS": seconds,
        }
    )
    identity = Identity.generate()
    with off.client("http") as c:
        asked = [challenge(c, identity) for _ in range(5)]
        persona = Persona(identity, c.authenticate(identity, DEFAULT_ROOM))
        uploaded = [upload(c, persona) for _ in range(5)]
        posted = [c.post_message(identity, persona.token, DEFAULT_ROOM) for _ in range(7)]

    assert statuses(asked) == [200] * 5
    assert statuses(uploaded) == [200] * 5
    assert statuses(posted) == [200] * 7


# --------------------------------------------------------------------------- defaults


@pytest.mark.parametrize("transport", ["http", "onion"])
def test_the_default_challenge_limit_is_20_per_minute_per_key(
    default_server: ServerProcess, transport: Transport
) -> None:
    """Spread over two rooms, so the 16 unclaimed challenges per room do not answer first."""
    identity = Identity.generate()
    with default_server.client(transport) as c:
        asked = [challenge(c, identity, room) for room in (DEFAULT_ROOM, SECOND_ROOM) * 10]
        refused = challenge(c, identity)

    assert statuses(asked) == [200] * 20
    expect_rate_limited(refused, 60, "challenges")


@pytest.mark.parametrize("transport", ["http", "onion"])
def test_the_default_upload_limit_is_10_per_minute_per_user_and_room(
    default_server: ServerProcess, transport: Transport
) -> None:
    identity = Identity.generate()
    with default_server.client(transport) as c:
        persona = Persona(identity, c.authenticate(identity, DEFAULT_ROOM))
        uploaded = [upload(c, persona) for _ in range(10)]
        refused = upload(c, persona)

    assert statuses(uploaded) == [200] * 10
    expect_rate_limited(refused, 60, "uploads")
