"""compact_poll: messages, deletions and moderators of many rooms in one request.

docs/spec/SPEC.md section 3 (last paragraphs) and docs/spec/client-protocol.md
section 4. Clients match results by position and drop (or choke on) a result that lacks one of
the five keys, so: exactly one result per entry, in request order, each with
`room_id`, `status_code`, `messages`, `deletions` and `moderators` (empty lists
on error). A broken entry fails alone; missing, null or empty tokens and
cursors are a per-room 401 / "no cursor", never a failure of the whole poll.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness.flows import new_room
from harness.server import ServerProcess
from harness.v2client import DEFAULT_ROOM, Client, Identity, Persona

RESULT_KEYS = {"room_id", "status_code", "messages", "deletions", "moderators"}
UNKNOWN_ROOM = "no_such_room"
Entry = dict[str, Any]
PersonaFactory = Callable[..., Persona]


# --------------------------------------------------------------------------- helpers


def entry(persona: Persona, **extra: object) -> Entry:
    """One request entry for persona's room with its token (plus cursors or overrides)."""
    return {"room_id": persona.room, "auth_token": persona.token, **extra}


def poll(client: Client, entries: list[Any], **kwargs: Any) -> list[dict[str, Any]]:
    """POST compact_poll; checks the envelope and every result's shape, returns the results."""
    answer = client.compact_poll(entries, **kwargs)
    assert answer["status_code"] == 200, answer
    assert set(answer) == {"status_code", "results"}, answer
    results = answer["results"]
    assert isinstance(results, list) and len(results) == len(entries), answer
    for result in results:
        assert set(result) >= RESULT_KEYS, result
        assert isinstance(result["room_id"], str), result
        assert isinstance(result["status_code"], int), result
        for key in ("messages", "deletions", "moderators"):
            assert isinstance(result[key], list), result
    return results


def poll_one(client: Client, one: Any) -> dict[str, Any]:
    """Poll a single entry; returns its result."""
    return poll(client, [one])[0]


def assert_failed(result: dict[str, Any], status: int, room_id: str | None = None) -> None:
    """A per-room error: its status and empty lists (clients still read all five keys)."""
    assert result["status_code"] == status, result
    assert result["messages"] == [] and result["deletions"] == [] and result["moderators"] == []
    if room_id is not None:
        assert result["room_id"] == room_id, result


def post(client: Client, persona: Persona) -> dict[str, Any]:
    """Post a fresh signed message as persona; returns the stored message."""
    answer = client.post_message(persona.identity, persona.token, persona.room)
    assert answer["status_code"] == 200, answer
    return answer["message"]


def delete(client: Client, persona: Persona, ids: list[int]) -> None:
    """POST /delete_messages as persona, expecting success."""
    answer = client.request(
        "POST", "delete_messages", body={"ids": ids}, room=persona.room, token=persona.token
    )
    assert answer["status_code"] == 200, answer


def get_list(client: Client, persona: Persona, endpoint: str, key: str) -> list[Any]:
    """A GET list endpoint in persona's room (messages, deleted_messages, moderators)."""
    answer = client.request("GET", endpoint, room=persona.room, token=persona.token)
    assert answer["status_code"] == 200, answer
    return answer[key]


def join(client: Client, room: str = DEFAULT_ROOM) -> Persona:
    """Authenticate a new identity in a room of client's server."""
    identity = Identity.generate()
    return Persona(identity, client.authenticate(identity, room), room)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def second_room(server: ServerProcess) -> str:
    """A second room on the module's server; no test makes anyone its moderator."""
    return new_room(server.cli, "r")


@pytest.fixture(scope="module")
def moderated_room(server: ServerProcess) -> tuple[str, str]:
    """(room id, session id of its only moderator)."""
    room_id = new_room(server.cli, "r")
    moderator = Identity.generate().session_id
    server.cli("moderators", "add", moderator, room_id)
    return room_id, moderator


@pytest.fixture
def second_user(make_persona: PersonaFactory, second_room: str) -> Persona:
    """A fresh member of the second room."""
    return make_persona(room=second_room)


# --------------------------------------------------------------------------- one result per entry


def test_each_entry_gets_one_result_in_request_order_with_all_five_keys(
    client: Client, user: Persona, second_user: Persona
) -> None:
    entries: list[Any] = [
        entry(user),
        {"room_id": UNKNOWN_ROOM, "auth_token": user.token},
        entry(second_user),
        {"room_id": DEFAULT_ROOM, "auth_token": ""},
        "not an object",
    ]

    results = poll(client, entries)

    assert [r["status_code"] for r in results] == [200, 404, 200, 401, 400]
    assert [r["room_id"] for r in results[:4]] == [
        DEFAULT_ROOM,
        UNKNOWN_ROOM,
        second_user.room,
        DEFAULT_ROOM,
    ]


def test_an_entry_repeated_with_another_token_gets_its_own_result(
    client: Client, user: Persona, other_user: Persona, banned_user: Persona
) -> None:
    post(client, user)
    entries = [
        entry(user),
        entry(banned_user),
        entry(user, auth_token="ab" * 48),
        entry(other_user),
    ]

    results = poll(client, entries)

    assert [r["status_code"] for r in results] == [200, 403, 401, 200]
    assert [r["room_id"] for r in results] == [DEFAULT_ROOM] * 4
    assert results[0]["messages"] and results[0]["messages"] == results[3]["messages"]
    assert_failed(results[1], 403)
    assert_failed(results[2], 401)


def test_empty_request_list_answers_no_results(client: Client) -> None:
    assert poll(client, []) == []


# --------------------------------------------------------------------------- per-room errors


def test_unknown_room_is_a_per_room_404(client: Client, user: Persona) -> None:
    results = poll(client, [{"room_id": UNKNOWN_ROOM, "auth_token": user.token}, entry(user)])

    assert_failed(results[0], 404, UNKNOWN_ROOM)
    assert results[1]["status_code"] == 200


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(..., id="missing"),
        pytest.param(None, id="null"),
        pytest.param("", id="empty"),
        pytest.param("ab" * 48, id="unknown"),
        pytest.param("not hex", id="not-hex"),
    ],
)
def test_missing_or_unknown_auth_token_is_a_per_room_401(
    client: Client, user: Persona, token: object
) -> None:
    bad: Entry = {"room_id": DEFAULT_ROOM}
    if token is not ...:
        bad["auth_token"] = token

    results = poll(client, [bad, entry(user)])

    assert_failed(results[0], 401, DEFAULT_ROOM)
    assert results[1]["status_code"] == 200


def test_revoked_token_is_a_per_room_401(client: Client, make_persona: PersonaFactory) -> None:
    member = make_persona()
    revoked = client.request("DELETE", "auth_token", room=member.room, token=member.token)
    assert revoked["status_code"] == 200, revoked

    assert_failed(poll_one(client, entry(member)), 401, DEFAULT_ROOM)


def test_banned_user_gets_a_per_room_403(
    client: Client, banned_user: Persona, user: Persona
) -> None:
    post(client, user)

    results = poll(client, [entry(banned_user), entry(user)])

    assert_failed(results[0], 403, DEFAULT_ROOM)
    assert results[1]["status_code"] == 200 and results[1]["messages"]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("main", id="a-string"),
        pytest.param(5, id="a-number"),
        pytest.param(None, id="null"),
        pytest.param([DEFAULT_ROOM], id="a-list"),
        pytest.param({"auth_token": "ab" * 48}, id="room-id-missing"),
        pytest.param({"room_id": None, "auth_token": "ab" * 48}, id="room-id-null"),
        pytest.param({"room_id": 5, "auth_token": "ab" * 48}, id="room-id-a-number"),
        pytest.param({"room_id": "", "auth_token": "ab" * 48}, id="room-id-empty"),
    ],
)
def test_a_malformed_entry_fails_alone_with_400(client: Client, user: Persona, bad: Any) -> None:
    results = poll(client, [entry(user), bad, entry(user)])

    assert_failed(results[1], 400)
    assert [results[0]["status_code"], results[2]["status_code"]] == [200, 200]


@pytest.mark.parametrize("key", ["from_message_server_id", "from_deletion_server_id"])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("abc", id="not-a-number"),
        pytest.param(-1, id="negative"),
        pytest.param(1.5, id="a-fraction"),
        pytest.param([1], id="a-list"),
        pytest.param(True, id="a-boolean"),
    ],
)
def test_a_malformed_cursor_fails_its_entry_alone_with_400(
    client: Client, user: Persona, key: str, value: object
) -> None:
    results = poll(client, [entry(user, **{key: value}), entry(user)])

    assert_failed(results[0], 400, DEFAULT_ROOM)
    assert results[1]["status_code"] == 200


# --------------------------------------------------------------------------- cursors and content


@pytest.mark.parametrize(
    "cursors",
    [
        pytest.param({}, id="left-out"),
        pytest.param({"from_message_server_id": None, "from_deletion_server_id": None}, id="null"),
        pytest.param({"from_message_server_id": "", "from_deletion_server_id": ""}, id="empty"),
    ],
)
def test_missing_null_or_empty_cursors_mean_no_cursor(
    client: Client, user: Persona, cursors: Entry
) -> None:
    first = post(client, user)["server_id"]
    second = post(client, user)["server_id"]
    delete(client, user, [first])

    result = poll_one(client, entry(user, **cursors))

    assert result["status_code"] == 200, result
    assert result["messages"] == get_list(client, user, "messages", "messages")
    assert result["messages"][-1]["server_id"] == second
    assert result["deletions"] == get_list(client, user, "deleted_messages", "ids")
    assert result["deletions"][-1] == first


def test_with_from_message_server_id_the_messages_after_it_come_ascending(
    client: Client, user: Persona
) -> None:
    posted = [post(client, user) for _ in range(3)]
    first = posted[0]["server_id"]

    def after(cursor: int) -> list[dict[str, Any]]:
        result = poll_one(client, entry(user, from_message_server_id=cursor))
        assert result["status_code"] == 200, result
        return result["messages"]

    assert after(first - 1) == posted
    assert after(first) == posted[1:]
    assert after(posted[-1]["server_id"]) == []


def test_polled_messages_carry_integers_and_the_posted_timestamp(
    client: Client, user: Persona
) -> None:
    answer = client.post_message(user.identity, user.token, user.room, timestamp=1_600_000_000_007)
    posted = answer["message"]

    result = poll_one(client, entry(user, from_message_server_id=posted["server_id"] - 1))

    assert result["messages"] == [posted]
    (message,) = result["messages"]
    assert set(message) == {"server_id", "public_key", "timestamp", "data", "signature"}
    assert message["timestamp"] == 1_600_000_000_007
    assert type(message["server_id"]) is int and type(message["timestamp"]) is int


def test_deletions_in_the_default_format_are_deleted_message_ids(
    client: Client, user: Persona
) -> None:
    ids = [post(client, user)["server_id"] for _ in range(3)]
    delete(client, user, [ids[2], ids[0]])

    result = poll_one(
        client,
        entry(user, from_message_server_id=ids[0] - 1, from_deletion_server_id=ids[0] - 1),
    )

    assert result["deletions"] == [ids[0], ids[2]]
    assert [m["server_id"] for m in result["messages"]] == [ids[1]]
    later = poll_one(client, entry(user, from_deletion_server_id=ids[0]))
    assert later["deletions"] == [ids[2]]
    assert poll_one(client, entry(user, from_deletion_server_id=ids[2]))["deletions"] == []


def test_without_a_deletion_cursor_a_poll_gets_the_rooms_newest_deletions(
    client: Client, server: ServerProcess, make_persona: PersonaFactory
) -> None:
    """Before its first deletion a room has none to give; after it, every poll
    without a deletion cursor gets it, whatever the message cursor."""
    member = make_persona(room=new_room(server.cli, "r"))
    ids = [post(client, member)["server_id"] for _ in range(2)]
    before = poll_one(client, entry(member))
    delete(client, member, [ids[0]])

    after = poll_one(client, entry(member))
    up_to_date = poll_one(client, entry(member, from_message_server_id=ids[1]))

    assert before["deletions"] == []
    assert after["deletions"] == [ids[0]]
    assert up_to_date["deletions"] == [ids[0]] and up_to_date["messages"] == []


def test_deletions_in_the_objects_format_page_by_deletion_number(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(env={"OPENGROUP_DELETIONS_FORMAT": "objects"})
    for transport in ("http", "onion"):
        with server.client(transport) as c:
            author = join(c)
            ids = [post(c, author)["server_id"] for _ in range(3)]
            before = get_list(c, author, "deleted_messages?limit=1", "ids")
            base = before[-1]["id"] if before else 0
            delete(c, author, [ids[1]])

            first = poll_one(c, entry(author, from_deletion_server_id=base))
            assert first["deletions"] == [{"id": base + 1, "deleted_message_id": ids[1]}]
            assert first["deletions"] == get_list(c, author, "deleted_messages", "ids")[-1:]

            # A late deletion of an older message still comes after the client's cursor.
            delete(c, author, [ids[0]])
            later = poll_one(c, entry(author, from_deletion_server_id=base + 1))
            assert later["deletions"] == [{"id": base + 2, "deleted_message_id": ids[0]}]
            assert poll_one(c, entry(author))["deletions"][-2:] == [
                *first["deletions"],
                *later["deletions"],
            ]


def test_moderators_of_the_room_are_listed(
    client: Client,
    user: Persona,
    moderator_identity: Identity,
    make_persona: PersonaFactory,
    moderated_room: tuple[str, str],
    second_user: Persona,
) -> None:
    room_id, room_moderator = moderated_room
    member = make_persona(room=room_id)

    main, moderated, unmoderated = poll(client, [entry(user), entry(member), entry(second_user)])

    assert moderator_identity.session_id in main["moderators"]
    assert sorted(main["moderators"]) == sorted(get_list(client, user, "moderators", "moderators"))
    assert moderated["moderators"] == [room_moderator]
    assert unmoderated["moderators"] == []


# --------------------------------------------------------------------------- whole-poll errors


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"requests": DEFAULT_ROOM}, id="requests-a-string"),
        pytest.param({"requests": {"room_id": DEFAULT_ROOM}}, id="requests-an-object"),
        pytest.param({"requests": None}, id="requests-null"),
        pytest.param({"requests": 3}, id="requests-a-number"),
        pytest.param({}, id="requests-missing"),
        pytest.param([{"room_id": DEFAULT_ROOM}], id="body-a-list"),
        pytest.param(None, id="body-missing"),
    ],
)
def test_requests_not_a_list_is_400(client: Client, body: object) -> None:
    answer = client.request("POST", "compact_poll", body=body)

    assert answer["status_code"] == 400, answer
    assert isinstance(answer.get("error"), str) and answer["error"]


def test_more_entries_than_max_poll_rooms_is_413(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(env={"OPENGROUP_MAX_POLL_ROOMS": "3"})
    for transport in ("http", "onion"):
        with server.client(transport) as c:
            member = join(c)

            assert [r["status_code"] for r in poll(c, [entry(member)] * 3)] == [200] * 3
            too_many = c.compact_poll([entry(member)] * 4)

            assert too_many["status_code"] == 413, too_many
            assert "results" not in too_many


# --------------------------------------------------------------------------- several rooms


def test_multi_room_poll_returns_each_rooms_own_messages(
    client: Client, user: Persona, make_persona: PersonaFactory, second_room: str
) -> None:
    elsewhere = make_persona(user.identity, room=second_room)
    in_main = [post(client, user) for _ in range(2)]
    in_second = [post(client, elsewhere) for _ in range(2)]

    main, second = poll(
        client,
        [
            entry(user, from_message_server_id=in_main[0]["server_id"] - 1),
            entry(elsewhere, from_message_server_id=in_second[0]["server_id"] - 1),
        ],
    )

    assert (main["room_id"], second["room_id"]) == (DEFAULT_ROOM, second_room)
    assert main["messages"] == in_main
    assert second["messages"] == in_second


# --------------------------------------------------------------------- as real clients send it


@pytest.fixture
def desktop(server: ServerProcess) -> Iterator[Client]:
    """An onion client sending "" as the body of GET/DELETE, as desktop does."""
    with server.client("onion", null_body_style="empty") as c:
        yield c


def test_desktop_style_poll_over_onion(desktop: Client, user: Persona, second_room: str) -> None:
    message = post(desktop, user)
    # Desktop: cursor keys left out when unknown, auth_token "" for a room without a token.
    entries = [
        {"room_id": DEFAULT_ROOM, "auth_token": user.token, "from_deletion_server_id": 0},
        {"room_id": second_room, "auth_token": ""},
    ]

    main, unauthenticated = poll(desktop, entries)

    assert main["status_code"] == 200, main
    assert main["messages"][-1] == message
    assert_failed(unauthenticated, 401, second_room)


def test_android_style_poll_over_onion(server: ServerProcess, user: Persona) -> None:
    with server.client("onion") as android:
        message = post(android, user)
        entries = [
            {
                "room_id": DEFAULT_ROOM,
                "auth_token": user.token,
                "from_deletion_server_id": None,
                "from_message_server_id": None,
            },
            {
                "room_id": DEFAULT_ROOM,
                "auth_token": user.token,
                "from_deletion_server_id": None,
                "from_message_server_id": message["server_id"] - 1,
            },
        ]

        answer = android.request(
            "POST",
            "compact_poll",
            body={"requests": entries},
            headers={"content-type": "application/json; charset=utf-8"},
        )

    assert answer["status_code"] == 200, answer
    full, newer = answer["results"]
    assert full["status_code"] == 200 and full["messages"][-1] == message
    assert newer["status_code"] == 200 and newer["messages"] == [message]
    assert set(full) >= RESULT_KEYS and set(newer) >= RESULT_KEYS
