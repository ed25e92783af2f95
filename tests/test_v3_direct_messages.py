"""Blinded direct messages ("message requests") of the community API.

docs/spec/SPEC-v3.md section 3 (blinded DMs: `/inbox`, `/outbox`, `since`,
`POST /inbox/:sid`, `DELETE /inbox`) and section 4 (DM size, `limit` 1 to 256
with larger values capped, `DELETE /inbox` removes the messages for both sides,
every refusal stores nothing); docs/spec/sogs-v3.md 1.5 for the shapes.

What clients depend on: a message comes back byte for byte (the server cannot
read it: clients encrypt it for the recipient), oldest first, with the sender's
and recipient's blinded ids; polling `since/:id` answers 304 with no body when
there is nothing new (through /batch: `{"code": 304, "headers": {}, "body": ""}`);
sending answers 201 with the id and times; only a recipient seen on this server
and not banned from it can be written to (404 otherwise, the same for both);
messages expire after `dm_ttl_seconds` and are then pruned.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness import probe
from harness.communityclient import BlindedIdentity, CommunityAnswer, CommunityClient
from harness.expect import expect_refused
from harness.flows import ROOM, b64, wait_until
from harness.server import Backend, ServerProcess

MAX_DM_BYTES = 2000
SERVER_ENV = {"OPENGROUP_MAX_DM_BYTES": str(MAX_DM_BYTES)}

DEFAULT_TTL_SECONDS = 15 * 24 * 3600
DEFAULT_PAGE = 100
MAX_PAGE = 256
BATCH_MOST = 64
SHORT_TTL_SECONDS = 2
SENT_KEYS = {"id", "posted_at", "expires_at", "sender", "recipient"}
BOX_KEYS = SENT_KEYS | {"message"}
NOT_MODIFIED_ITEM = {"code": 304, "headers": {}, "body": ""}

CliRunner = Callable[..., Any]


# --------------------------------------------------------------------------- helpers


def blinded(client: CommunityClient, identity: BlindedIdentity) -> str:
    return identity.blinded_id(client.server_pk)


def seen(client: CommunityClient, *identities: BlindedIdentity) -> None:
    """Each identity signs a request, so the server knows them (and they may get DMs)."""
    for identity in identities:
        answer = client.get("/inbox", identity=identity)
        assert answer.status == 200, answer


def send(
    client: CommunityClient,
    sender: BlindedIdentity,
    recipient: BlindedIdentity | str,
    data: bytes | None = None,
) -> CommunityAnswer:
    """POST /inbox/<recipient's blinded id> with ``data`` (fresh random bytes by default)."""
    to = recipient if isinstance(recipient, str) else blinded(client, recipient)
    message = data if data is not None else os.urandom(48)
    return client.post(f"/inbox/{to}", {"message": b64(message)}, identity=sender)


def send_ok(
    client: CommunityClient,
    sender: BlindedIdentity,
    recipient: BlindedIdentity,
    data: bytes | None = None,
) -> dict[str, Any]:
    answer = send(client, sender, recipient, data)
    assert answer.status == 201, answer
    assert answer.content_type == "application/json"
    return answer.body


def box(
    client: CommunityClient, identity: BlindedIdentity, path: str = "/inbox"
) -> list[dict[str, Any]]:
    answer = client.get(path, identity=identity)
    assert answer.status == 200, answer
    assert answer.content_type == "application/json"
    assert isinstance(answer.body, list)
    return answer.body


def ids(messages: list[dict[str, Any]]) -> list[int]:
    return [m["id"] for m in messages]


def assert_not_modified(answer: CommunityAnswer) -> None:
    """304 with nothing at all: no body and no content type."""
    assert answer.status == 304, answer
    assert answer.raw_body == b""
    assert "content-type" not in answer.headers, answer.headers
    assert answer.headers.get("content-length", "0") == "0", answer.headers


def numbered(i: int) -> bytes:
    """The i-th of many messages: two bytes."""
    return i.to_bytes(2, "big")


def batch_send_items(recipient_id: str, first: int, count: int) -> list[dict[str, object]]:
    """Items sending the messages ``numbered(first)`` to ``numbered(first + count - 1)``."""
    return [
        {"method": "POST", "path": f"/inbox/{recipient_id}", "json": {"message": b64(numbered(i))}}
        for i in range(first, first + count)
    ]


def send_many(
    client: CommunityClient, sender: BlindedIdentity, recipient: BlindedIdentity, count: int
) -> None:
    """``count`` messages, ``numbered(0)`` first, through batches of 64."""
    recipient_id = blinded(client, recipient)
    for start in range(0, count, BATCH_MOST):
        items = batch_send_items(recipient_id, start, min(BATCH_MOST, count - start))
        answer = client.batch(items, sender)
        assert answer.status == 200, answer
        assert [item["code"] for item in answer.body] == [201] * len(items), answer.body


def global_ban(cli: CliRunner, session_id: str) -> None:
    """Ban from the whole server through the operator's CLI."""
    cli("bans", "add", session_id, "--global")


def dm_rows(server: ServerProcess, recipient: str) -> int:
    """How many rows of direct_messages are addressed to ``recipient``, read straight
    from the server's database."""
    query = "SELECT COUNT(*) FROM direct_messages WHERE recipient = %s"
    return int(probe.value(server, query, recipient))


@pytest.fixture
def carol() -> BlindedIdentity:
    return BlindedIdentity.generate()


def _extra_server(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend, env: dict[str, str]
) -> Iterator[ServerProcess]:
    url = backend.new_database_url()
    proc = ServerProcess(tmp_path_factory.mktemp("dm-server") / "data", database_url=url, env=env)
    proc.start()
    yield proc
    proc.stop()
    backend.drop_database(url)


@pytest.fixture(scope="module")
def short_ttl_server(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[ServerProcess]:
    """A server whose direct messages live 2 s, pruned every second."""
    yield from _extra_server(
        tmp_path_factory,
        backend,
        {
            "OPENGROUP_DM_TTL_SECONDS": str(SHORT_TTL_SECONDS),
            "OPENGROUP_PRUNE_INTERVAL_SECONDS": "1",
        },
    )


@pytest.fixture(scope="module")
def unblinded_server(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[ServerProcess]:
    """A server that also accepts unblinded ('00') keys."""
    yield from _extra_server(tmp_path_factory, backend, {"OPENGROUP_REQUIRE_BLINDED_IDS": "false"})


@pytest.fixture(params=["http", "onion"], ids=["http", "onion4"])
def transport(request: pytest.FixtureRequest) -> str:
    """The transport of a test that makes its own clients (of an extra server)."""
    return str(request.param)


# --------------------------------------------------------------------------- sending and reading


def test_a_message_is_delivered_byte_for_byte_and_listed_in_both_boxes(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    seen(community, bob)
    data = os.urandom(777)  # opaque to the server: any bytes at all
    before = time.time()
    sent = send_ok(community, alice, bob, data)
    after = time.time()
    assert set(sent) == SENT_KEYS
    assert sent["sender"] == blinded(community, alice)
    assert sent["recipient"] == blinded(community, bob)
    assert isinstance(sent["id"], int) and sent["id"] >= 1
    assert before - 1 <= sent["posted_at"] <= after + 1
    assert sent["expires_at"] == pytest.approx(sent["posted_at"] + DEFAULT_TTL_SECONDS, abs=1e-3)

    [received] = box(community, bob, "/inbox")
    assert set(received) == BOX_KEYS
    assert base64.b64decode(received["message"], validate=True) == data
    assert {k: received[k] for k in SENT_KEYS} == sent
    assert box(community, alice, "/outbox") == [received]
    # Neither sees the other's side.
    assert box(community, alice, "/inbox") == []
    assert box(community, bob, "/outbox") == []


def test_messages_come_oldest_first_from_every_sender(
    community: CommunityClient,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
    carol: BlindedIdentity,
) -> None:
    seen(community, bob, carol)
    first = send_ok(community, alice, bob, b"\x00first")
    second = send_ok(community, carol, bob, b"\x00second")
    third = send_ok(community, alice, carol, b"\x00third")
    fourth = send_ok(community, alice, bob, b"\x00fourth")
    assert first["id"] < second["id"] < third["id"] < fourth["id"]

    inbox = box(community, bob, "/inbox")
    assert ids(inbox) == [first["id"], second["id"], fourth["id"]]
    assert [base64.b64decode(m["message"]) for m in inbox] == [
        b"\x00first",
        b"\x00second",
        b"\x00fourth",
    ]
    assert ids(box(community, alice, "/outbox")) == [first["id"], third["id"], fourth["id"]]
    assert ids(box(community, carol, "/inbox")) == [third["id"]]
    assert ids(box(community, carol, "/outbox")) == [second["id"]]


def test_a_message_of_exactly_the_size_limit_is_accepted(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    seen(community, bob)
    data = os.urandom(MAX_DM_BYTES)
    send_ok(community, alice, bob, data)
    [received] = box(community, bob)
    assert base64.b64decode(received["message"]) == data


def test_extra_keys_in_the_body_are_ignored(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    seen(community, bob)
    body = {"message": b64(b"\x00hi"), "timestamp": 1700000000000, "sender": "15" + "ab" * 32}
    answer = community.post(f"/inbox/{blinded(community, bob)}", body, identity=alice)
    assert answer.status == 201, answer
    assert answer.body["sender"] == blinded(community, alice)


def test_a_message_to_oneself_is_in_both_own_boxes(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    seen(community, alice)
    sent = send_ok(community, alice, alice)
    assert ids(box(community, alice, "/inbox")) == [sent["id"]]
    assert ids(box(community, alice, "/outbox")) == [sent["id"]]


# --------------------------------------------------------------------------- polling


@pytest.mark.parametrize("which", ["inbox", "outbox"])
def test_since_answers_newer_messages_or_304_without_a_body(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity, which: str
) -> None:
    seen(community, bob)
    reader = bob if which == "inbox" else alice
    first = send_ok(community, alice, bob)
    second = send_ok(community, alice, bob)

    def since(message_id: int) -> CommunityAnswer:
        return community.get(f"/{which}/since/{message_id}", identity=reader)

    assert ids(since(0).body) == [first["id"], second["id"]]
    newer = since(first["id"])
    assert newer.status == 200 and newer.content_type == "application/json"
    assert ids(newer.body) == [second["id"]]
    assert newer.body == box(community, reader, f"/{which}")[1:]
    assert_not_modified(since(second["id"]))
    assert_not_modified(since(2**63 - 1))
    third = send_ok(community, alice, bob)
    assert ids(since(second["id"]).body) == [third["id"]]


def test_an_empty_box_is_an_empty_list_not_304(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    for path in ("/inbox", "/outbox"):
        answer = community.get(path, identity=alice)
        assert (answer.status, answer.content_type, answer.body) == (200, "application/json", [])
    assert_not_modified(community.get("/inbox/since/0", identity=alice))


@pytest.mark.parametrize("message_id", ["-1", "abc", str(2**64)], ids=["negative", "text", "huge"])
def test_since_a_malformed_id_is_400(
    community: CommunityClient, alice: BlindedIdentity, message_id: str
) -> None:
    expect_refused(community.get(f"/inbox/since/{message_id}", identity=alice), 400)


def test_a_batch_polls_the_boxes_with_a_304_item_as_pysogs_answers_it(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    seen(community, bob)
    sent = send_ok(community, alice, bob)
    answer = community.batch(
        [
            {"method": "GET", "path": f"/inbox/since/{sent['id']}"},
            {"method": "GET", "path": "/inbox/since/0"},
            {"method": "GET", "path": "/outbox/since/0"},
        ],
        bob,
    )
    assert answer.status == 200, answer
    not_modified, inbox, outbox = answer.body
    assert not_modified == NOT_MODIFIED_ITEM
    assert inbox["code"] == 200 and ids(inbox["body"]) == [sent["id"]]
    assert outbox["code"] == 304 and outbox == NOT_MODIFIED_ITEM


def test_each_page_a_batch_asks_for_is_the_page_asked_for_alone(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    """The items share one read (the batch's), yet each gets its own page, a malformed
    one its own 400, and the same page twice the same answer."""
    seen(community, alice, bob)
    first = send_ok(community, alice, bob)
    send_ok(community, alice, bob)
    send_ok(community, alice, bob)
    send_ok(community, bob, alice)
    paths = [
        f"/inbox/since/{first['id']}?limit=1",
        "/inbox/since/0",
        "/outbox/since/0",
        "/outbox/since/0?limit=ten",
        f"/inbox/since/{first['id']}",
        "/inbox?limit=2",
        "/outbox/since/99999999",
        "/inbox/since/0",  # the same page twice
    ]
    answer = community.batch([{"method": "GET", "path": path} for path in paths], bob)
    assert answer.status == 200, answer
    codes = []
    for path, item in zip(paths, answer.body, strict=True):
        alone = community.get(path, identity=bob)
        assert item["code"] == alone.status, path
        if alone.status == 200:
            assert item["body"] == alone.body, path
        codes.append(item["code"])
    assert codes == [200, 200, 200, 400, 200, 200, 304, 200]


def test_a_poll_of_a_room_and_both_boxes_answers_each_box_as_polled_alone(
    community: CommunityClient, alice: BlindedIdentity, carol: BlindedIdentity
) -> None:
    """What every client sends: a room and both boxes since their cursors. (With a room
    to read, the statement that reads it also says whether either box holds anything
    past its cursor, and the pages are read only then.) Each box's answer is the one it
    gets alone, whichever box has something new."""
    seen(community, alice, carol)

    def poll(inbox_after: int, outbox_after: int) -> tuple[list[int] | None, list[int] | None]:
        paths = [f"{ROOM}/pollInfo/0", f"/inbox/since/{inbox_after}",
                 f"/outbox/since/{outbox_after}"]  # fmt: skip
        answer = community.batch([{"method": "GET", "path": path} for path in paths], carol)
        assert answer.status == 200, answer
        room, *boxes = answer.body
        assert room["code"] == 200, room
        pages: list[list[int] | None] = []
        for path, item in zip(paths[1:], boxes, strict=True):
            alone = community.get(path, identity=carol)
            assert item["code"] == alone.status, path
            if alone.status == 304:
                assert item == NOT_MODIFIED_ITEM
                pages.append(None)
            else:
                assert item["body"] == alone.body, path
                pages.append(ids(item["body"]))
        return pages[0], pages[1]

    assert poll(0, 0) == (None, None)
    first = send_ok(community, alice, carol)["id"]
    assert poll(0, 0) == ([first], None)
    assert poll(first, 0) == (None, None)
    reply = send_ok(community, carol, alice)["id"]
    assert poll(first, 0) == (None, [reply])
    assert poll(first, reply) == (None, None)
    later = send_ok(community, alice, carol)["id"]
    assert poll(first, reply) == ([later], None)
    assert poll(0, 0) == ([first, later], [reply])


def test_a_message_sent_in_a_batch_is_in_the_pages_its_later_items_read(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    seen(community, alice)
    poll = [
        {"method": "GET", "path": "/outbox/since/0"},
        {"method": "GET", "path": "/inbox/since/0"},
    ]
    note = {"method": "POST", "path": f"/inbox/{blinded(community, alice)}",
            "json": {"message": b64(b"\x00note")}}  # fmt: skip
    answer = community.batch([*poll, note, *poll], alice)
    assert answer.status == 200, answer
    outbox_before, inbox_before, sent, outbox_after, inbox_after = answer.body
    assert outbox_before == inbox_before == NOT_MODIFIED_ITEM
    assert sent["code"] == 201, sent
    assert ids(outbox_after["body"]) == ids(inbox_after["body"]) == [sent["body"]["id"]]


# --------------------------------------------------------------------------- limits


def test_limit_pages_from_the_oldest_default_100_and_larger_values_are_capped(
    community: CommunityClient,
    setup_community: CommunityClient,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    seen(setup_community, bob)
    total = MAX_PAGE + 4
    send_many(setup_community, alice, bob, total)
    everything = box(community, alice, f"/outbox?limit={MAX_PAGE}")
    assert [base64.b64decode(m["message"]) for m in everything] == [
        numbered(i) for i in range(MAX_PAGE)
    ]

    assert box(community, bob) == everything[:DEFAULT_PAGE]
    assert box(community, bob, "/inbox?limit=1") == everything[:1]
    assert box(community, bob, "/inbox?limit=1000") == everything
    assert box(community, alice, "/outbox?limit=1000") == everything
    rest = box(community, bob, f"/inbox/since/{everything[-1]['id']}?limit=1000")
    assert [base64.b64decode(m["message"]) for m in rest] == [
        numbered(i) for i in range(MAX_PAGE, total)
    ]
    assert ids(box(community, bob, f"/inbox/since/{everything[1]['id']}?limit=2")) == ids(
        everything[2:4]
    )


@pytest.mark.parametrize("limit", ["0", "-5", "ten"])
def test_a_limit_below_1_or_not_a_number_is_400(
    community: CommunityClient, alice: BlindedIdentity, limit: str
) -> None:
    for path in ("/inbox", "/outbox", "/inbox/since/0", "/outbox/since/0"):
        expect_refused(community.get(f"{path}?limit={limit}", identity=alice), 400)


def test_a_message_over_the_size_limit_is_413_and_not_stored(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    seen(community, bob)
    expect_refused(send(community, alice, bob, os.urandom(MAX_DM_BYTES + 1)), 413)
    assert box(community, bob) == []
    assert box(community, alice, "/outbox") == []


# --------------------------------------------------------------------------- refusals


def test_a_recipient_never_seen_here_is_404(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    expect_refused(send(community, alice, bob), 404)
    seen(community, bob)
    assert box(community, bob) == []  # nothing was kept for later
    send_ok(community, alice, bob)


@pytest.mark.parametrize(
    "make_id",
    [
        pytest.param(lambda client, who: who.session_id, id="session-id-05"),
        pytest.param(lambda client, who: "25" + who.blinded_id(client.server_pk)[2:], id="25"),
        pytest.param(lambda client, who: who.blinded_id(client.server_pk)[:-2], id="short"),
        pytest.param(
            lambda client, who: who.blinded_id(client.server_pk)[:-2] + "zz", id="not-hex"
        ),
    ],
)
def test_a_recipient_that_is_not_a_blinded_id_is_404(
    community: CommunityClient,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
    make_id: Callable[[CommunityClient, BlindedIdentity], str],
) -> None:
    seen(community, bob)
    expect_refused(send(community, alice, make_id(community, bob)), 404)
    assert box(community, bob) == []


def test_an_upper_case_blinded_id_reaches_its_recipient(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    seen(community, bob)
    sent = send(community, alice, blinded(community, bob).upper())
    assert sent.status == 201, sent
    assert sent.body["recipient"] == blinded(community, bob)
    assert ids(box(community, bob)) == [sent.body["id"]]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{}", id="no-message"),
        pytest.param(b'{"message": null}', id="null"),
        pytest.param(b'{"message": ""}', id="empty"),
        pytest.param(b'{"message": 12}', id="number"),
        pytest.param(b'{"message": "not base64!"}', id="bad-base64"),
        pytest.param(b'["AAEC"]', id="list"),
        pytest.param(b'{"message": ', id="bad-json"),
        pytest.param(b"", id="no-body"),
    ],
)
def test_a_missing_or_malformed_message_is_400_and_nothing_is_stored(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity, body: bytes
) -> None:
    seen(community, bob)
    answer = community.request(
        "POST",
        f"/inbox/{blinded(community, bob)}",
        identity=alice,
        body=body,
        headers={"Content-Type": "application/json"},
    )
    expect_refused(answer, 400)
    assert box(community, bob) == []


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/inbox"),
        ("GET", "/outbox"),
        ("GET", "/inbox/since/0"),
        ("GET", "/outbox/since/0"),
        ("DELETE", "/inbox"),
        ("POST", "/inbox/15" + "ab" * 32),
    ],
)
def test_an_unsigned_request_is_401(community: CommunityClient, method: str, path: str) -> None:
    body = {"message": b64(b"\x00x")} if method == "POST" else None
    expect_refused(community.request(method, path, json=body), 401)


def test_a_recipient_banned_from_the_server_is_404(
    community: CommunityClient,
    cli: CliRunner,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    seen(community, bob)
    send_ok(community, alice, bob)
    global_ban(cli, bob.session_id)  # named by Session id, as an operator does
    expect_refused(send(community, alice, bob), 404)


def test_a_sender_banned_from_the_server_is_403(
    community: CommunityClient,
    cli: CliRunner,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
) -> None:
    seen(community, alice, bob)
    global_ban(cli, blinded(community, alice))
    expect_refused(send(community, alice, bob), 403)
    assert box(community, bob) == []


def test_an_unblinded_caller_may_send_but_has_no_boxes(
    unblinded_server: ServerProcess, transport: str, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    """Boxes are for blinded ids (what clients use); sending needs only a signature."""
    with CommunityClient(
        unblinded_server.base_url,
        unblinded_server.public_key,
        transport,  # type: ignore[arg-type]
    ) as client:
        seen(client, bob)
        for method, path in (
            ("GET", "/inbox"),
            ("GET", "/outbox"),
            ("GET", "/inbox/since/0"),
            ("GET", "/outbox/since/0"),
            ("DELETE", "/inbox"),
        ):
            expect_refused(client.request(method, path, identity=alice, blinded=False), 401)
        answer = client.post(
            f"/inbox/{blinded(client, bob)}",
            {"message": b64(b"\x00from 05")},
            identity=alice,
            blinded=False,
        )
        assert answer.status == 201, answer
        assert answer.body["sender"] == alice.session_id
        [received] = box(client, bob)
        assert received["sender"] == alice.session_id
        assert base64.b64decode(received["message"]) == b"\x00from 05"


# --------------------------------------------------------------------------- clearing


def test_clearing_the_inbox_removes_the_messages_from_their_senders_outboxes_too(
    community: CommunityClient,
    alice: BlindedIdentity,
    bob: BlindedIdentity,
    carol: BlindedIdentity,
) -> None:
    seen(community, bob, carol)
    send_ok(community, alice, bob)
    send_ok(community, carol, bob)
    to_carol = send_ok(community, alice, carol)
    to_alice = send_ok(community, bob, alice)

    answer = community.delete("/inbox", identity=bob)
    assert (answer.status, answer.content_type, answer.body) == (
        200,
        "application/json",
        {"deleted": 2},
    )
    assert box(community, bob) == []
    assert ids(box(community, alice, "/outbox")) == [to_carol["id"]]
    assert box(community, carol, "/outbox") == []
    # What bob sent, and what others received, stays.
    assert ids(box(community, bob, "/outbox")) == [to_alice["id"]]
    assert ids(box(community, carol)) == [to_carol["id"]]
    assert community.delete("/inbox", identity=bob).body == {"deleted": 0}


def test_the_inbox_is_cleared_in_a_batch_as_desktop_does(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    seen(community, bob)
    send_ok(community, alice, bob)
    answer = community.batch([{"method": "DELETE", "path": "/inbox"}], bob)
    assert answer.body == [
        {"code": 200, "headers": {"content-type": "application/json"}, "body": {"deleted": 1}}
    ]
    assert box(community, bob) == []


# --------------------------------------------------------------------------- expiry


def test_messages_expire_after_the_ttl_and_are_pruned(
    short_ttl_server: ServerProcess, transport: str, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    with CommunityClient(
        short_ttl_server.base_url,
        short_ttl_server.public_key,
        transport,  # type: ignore[arg-type]
    ) as client:
        seen(client, bob)
        sent = send_ok(client, alice, bob)
        assert sent["expires_at"] == pytest.approx(sent["posted_at"] + SHORT_TTL_SECONDS, abs=1e-3)
        assert ids(box(client, bob)) == [sent["id"]]
        assert dm_rows(short_ttl_server, blinded(client, bob)) == 1

        wait_until(lambda: box(client, bob) == [], SHORT_TTL_SECONDS + 3, "the inbox emptied")
        assert time.time() >= sent["expires_at"] - 0.1
        assert box(client, alice, "/outbox") == []
        assert_not_modified(client.get("/inbox/since/0", identity=bob))
        wait_until(lambda: dm_rows(short_ttl_server, blinded(client, bob)) == 0, 5, "rows pruned")
