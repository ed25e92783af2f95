"""Files through the community API: upload, download, expiry, room images, and the
files both APIs share.

docs/spec/SPEC-v3.md sections 1 (file ids are shared by both APIs), 3
(`POST /room/:t/file`, `GET /room/:t/file/:id[/:name]`; uploads live an hour
unless a post names them in `files`, a room image never expires) and 4 (upload
size on every upload route, 413; ids beyond 64 bits are 400, never 500);
docs/spec/sogs-v3.md section 1 (the shapes and headers pysogs answers with).

- `POST /room/:t/file` takes the raw body (any Content-Type), an optional name in
  `Content-Disposition` (`filename*=UTF-8''...` or `filename="..."`), and answers
  201 `{"id": N}`. Anonymous: 401; without the upload right: 403; an empty file:
  400; above `max_upload_bytes`: 413 (through /batch's `b64` too).
- `GET /room/:t/file/:id` (and `/:id/<anything>`) answers the bytes as
  `application/octet-stream` with `content-disposition` (`attachment`, with
  `filename*=UTF-8''<upper-case percent-encoding>` when the uploader named it) and
  `expires` (none for a room image); 404 when missing, expired, or of another room.
- The v2 API's `POST /files` obeys the same size and rate rules, and a file of
  either API downloads through the other in the same room.

Every test that uses `community` runs over direct HTTP and over onion v4.
"""

from __future__ import annotations

import base64
import email.utils
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from harness.communityclient import BlindedIdentity, CommunityAnswer, CommunityClient
from harness.expect import expect_refused
from harness.server import Backend, ServerProcess
from harness.v2client import DEFAULT_ROOM, Client, Persona

MAX_UPLOAD = 3000
DEFAULT_MAX_UPLOAD = 10_000_000
SERVER_ENV = {"OPENGROUP_MAX_UPLOAD_BYTES": str(MAX_UPLOAD)}

UPLOAD_TTL = 3600  # the default: an upload no post names lives an hour
FILE_TTL = 15 * 24 * 3600  # the default file_ttl_seconds: once a post names it
SHORT_UPLOAD_TTL = 2  # the short-lived server's upload_ttl_seconds
UPLOAD_RATE_LIMIT = 10  # the default: uploads per user per room per minute

ROOM = f"/room/{DEFAULT_ROOM}"
OTHER_ROOM = "other_files"
CLOSED_ROOM = "no_uploads"
EVERY_BYTE = bytes(range(256)) * 4 + bytes(range(255, -1, -1))

AUTH_REQUIRED = "X-SOGS-* request authentication required"


# --------------------------------------------------------------------------- helpers


def upload(
    client: CommunityClient,
    identity: BlindedIdentity | None,
    data: bytes,
    *,
    room: str = DEFAULT_ROOM,
    headers: dict[str, str] | None = None,
) -> CommunityAnswer:
    return client.post(f"/room/{room}/file", body=data, identity=identity, headers=headers)


def uploaded_id(
    client: CommunityClient,
    identity: BlindedIdentity,
    data: bytes,
    *,
    room: str = DEFAULT_ROOM,
    headers: dict[str, str] | None = None,
) -> int:
    answer = upload(client, identity, data, room=room, headers=headers)
    assert answer.status == 201, answer
    assert answer.content_type == "application/json"
    assert set(answer.body) == {"id"}, answer.body
    file_id = answer.body["id"]
    assert isinstance(file_id, int) and not isinstance(file_id, bool)
    return file_id


def download(
    client: CommunityClient,
    file_id: int | str,
    identity: BlindedIdentity | None = None,
    *,
    room: str = DEFAULT_ROOM,
    suffix: str = "",
) -> CommunityAnswer:
    return client.get(f"/room/{room}/file/{file_id}{suffix}", identity=identity)


def downloaded(client: CommunityClient, file_id: int, *, room: str = DEFAULT_ROOM) -> bytes:
    answer = download(client, file_id, room=room)
    assert answer.status == 200, answer
    assert answer.content_type == "application/octet-stream"
    assert isinstance(answer.body, bytes)
    return answer.body


def http_date(value: str) -> float:
    parsed = email.utils.parsedate_to_datetime(value)
    assert parsed.tzinfo is not None, value
    return parsed.timestamp()


def post_naming(
    client: CommunityClient, identity: BlindedIdentity, files: list[Any]
) -> dict[str, Any]:
    data = os.urandom(40)
    signature = identity.sign_message_data(data, client.server_pk)
    body = {
        "data": base64.b64encode(data).decode(),
        "signature": base64.b64encode(signature).decode(),
        "files": files,
    }
    answer = client.post(f"{ROOM}/message", body, identity=identity)
    assert answer.status == 201, answer
    return dict(answer.body)


def v2_upload(setup_client: Client, persona: Persona, data: bytes) -> dict[str, Any]:
    body = {"file": base64.b64encode(data).decode()}
    return setup_client.request("POST", "files", body=body, room=persona.room, token=persona.token)


def v2_download(setup_client: Client, persona: Persona, file_id: int) -> dict[str, Any]:
    return setup_client.request("GET", f"files/{file_id}", room=persona.room, token=persona.token)


def make_admin(server: ServerProcess, identity: BlindedIdentity, room: str) -> None:
    server.cli("moderators", "add", identity.session_id, room, "--admin")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def other_room(server: ServerProcess) -> str:
    """A second room, for files of another room."""
    server.cli("rooms", "add", OTHER_ROOM, "Other files")
    return OTHER_ROOM


@pytest.fixture(scope="module")
def closed_room(server: ServerProcess, room_admin: BlindedIdentity) -> str:
    """A room whose admin took away the upload right (room default)."""
    server.cli("rooms", "add", CLOSED_ROOM, "No uploads")
    make_admin(server, room_admin, CLOSED_ROOM)
    with CommunityClient(server.base_url, server.public_key, "http") as c:
        answer = c.put(f"/room/{CLOSED_ROOM}", {"default_upload": False}, identity=room_admin)
        assert answer.status == 200, answer
    return CLOSED_ROOM


@pytest.fixture(scope="module")
def short_lived(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[ServerProcess]:
    """A second server whose uploads live SHORT_UPLOAD_TTL seconds until a post names them."""
    url = backend.new_database_url()
    proc = ServerProcess(
        tmp_path_factory.mktemp("short_lived") / "data",
        database_url=url,
        env={"OPENGROUP_UPLOAD_TTL_SECONDS": str(SHORT_UPLOAD_TTL)},
    )
    proc.start()
    yield proc
    proc.stop()
    backend.drop_database(url)


@pytest.fixture(params=["http", "onion"], ids=["http", "onion4"])
def short_community(
    request: pytest.FixtureRequest, short_lived: ServerProcess
) -> Iterator[CommunityClient]:
    with CommunityClient(short_lived.base_url, short_lived.public_key, request.param) as c:
        yield c


@pytest.fixture(scope="module")
def short_admin(short_lived: ServerProcess) -> BlindedIdentity:
    identity = BlindedIdentity.generate()
    make_admin(short_lived, identity, DEFAULT_ROOM)
    return identity


# --------------------------------------------------------------------------- upload and download


def test_upload_answers_201_with_an_id_and_the_download_is_byte_for_byte(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    file_id = uploaded_id(community, alice, EVERY_BYTE)
    assert 2**31 <= file_id < 2**53
    for reader in (alice, bob, None):  # any reader of the room, anonymous too
        answer = download(community, file_id, reader)
        assert answer.status == 200, answer
        assert answer.content_type == "application/octet-stream"
        assert answer.raw_body == EVERY_BYTE
        assert answer.headers["content-disposition"] == "attachment"


def test_each_upload_gets_its_own_id(community: CommunityClient, alice: BlindedIdentity) -> None:
    ids = {uploaded_id(community, alice, b"same bytes") for _ in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("application/octet-stream", id="octet-stream"),
        pytest.param("image/png", id="image-png"),
        pytest.param("application/json", id="json-that-is-not-json"),
    ],
)
def test_the_request_content_type_is_ignored(
    community: CommunityClient, alice: BlindedIdentity, content_type: str
) -> None:
    data = b"\x89PNG\r\n\x1a\n not really {"
    file_id = uploaded_id(community, alice, data, headers={"Content-Type": content_type})
    assert downloaded(community, file_id) == data


def test_download_headers_say_attachment_and_when_it_expires(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    before = time.time()
    file_id = uploaded_id(community, alice, b"headers")
    after = time.time()
    answer = download(community, file_id)
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-disposition"] == "attachment"
    expires = http_date(answer.headers["expires"])
    assert before + UPLOAD_TTL - 1 <= expires <= after + UPLOAD_TTL + 1
    if community.transport == "http":
        assert answer.headers["content-length"] == str(len(b"headers"))


def test_the_name_after_the_id_is_ignored(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    name = "attachment; filename*=UTF-8''real.txt"
    file_id = uploaded_id(community, alice, b"named", headers={"Content-Disposition": name})
    plain = download(community, file_id)
    suffixed = download(community, file_id, suffix="/anything.bin")
    assert suffixed.status == 200
    assert suffixed.raw_body == plain.raw_body == b"named"
    assert suffixed.headers["content-disposition"] == plain.headers["content-disposition"]


def test_files_round_trip_through_batch(community: CommunityClient, alice: BlindedIdentity) -> None:
    items = [
        {
            "method": "POST",
            "path": f"{ROOM}/file",
            "b64": base64.b64encode(EVERY_BYTE).decode(),
            "headers": {"Content-Disposition": "attachment; filename*=UTF-8''b.bin"},
        }
    ]
    answer = community.batch(items, alice)
    assert answer.status == 200, answer
    (item,) = answer.body
    assert item["code"] == 201, item
    file_id = item["body"]["id"]
    answer = community.batch([{"method": "GET", "path": f"{ROOM}/file/{file_id}"}], alice)
    (item,) = answer.body
    assert item["code"] == 200, item
    assert item["headers"]["content-type"] == "application/octet-stream"
    assert item["headers"]["content-disposition"] == "attachment; filename*=UTF-8''b.bin"
    assert base64.b64decode(item["body"]) == EVERY_BYTE


# --------------------------------------------------------------------------- filenames


@pytest.mark.parametrize(
    ("disposition", "served"),
    [
        pytest.param(
            "attachment; filename*=UTF-8''my%20%f0%9f%8e%82.txt",
            "attachment; filename*=UTF-8''my%20%F0%9F%8E%82.txt",
            id="rfc5987-lower-case-hex-comes-back-upper-case",
        ),
        pytest.param(
            "attachment; filename*=UTF-8''caf%C3%A9%20%F0%9F%8E%89%20party.jpg",
            "attachment; filename*=UTF-8''caf%C3%A9%20%F0%9F%8E%89%20party.jpg",
            id="rfc5987-utf8-space-emoji",
        ),
        pytest.param(
            'attachment; filename="a b.png"',
            "attachment; filename*=UTF-8''a%20b.png",
            id="plain-quoted-filename",
        ),
        pytest.param(
            "attachment; filename=plain.txt",
            "attachment; filename*=UTF-8''plain.txt",
            id="plain-token-filename",
        ),
        pytest.param(
            "attachment; filename=\"fallback.txt\"; filename*=UTF-8''wins%20%E2%9C%93.txt",
            "attachment; filename*=UTF-8''wins%20%E2%9C%93.txt",
            id="extended-name-wins-over-plain",
        ),
        pytest.param(
            "attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd",
            "attachment; filename*=UTF-8''.._.._etc_passwd",
            id="path-separators-are-replaced",
        ),
        pytest.param("attachment", "attachment", id="no-name"),
        pytest.param("inline; filename*=UTF-8''", "attachment", id="empty-name"),
    ],
)
def test_filename_round_trip(
    community: CommunityClient, alice: BlindedIdentity, disposition: str, served: str
) -> None:
    headers = {"Content-Disposition": disposition}
    file_id = uploaded_id(community, alice, b"a named file", headers=headers)
    answer = download(community, file_id)
    assert answer.status == 200
    assert answer.headers["content-disposition"] == served


# --------------------------------------------------------------------------- refusals


def test_anonymous_upload_is_401_and_stores_nothing(community: CommunityClient) -> None:
    answer = upload(community, None, b"who am I")
    assert answer.status == 401
    assert answer.body == AUTH_REQUIRED


def test_upload_without_the_upload_right_is_403(
    community: CommunityClient,
    alice: BlindedIdentity,
    room_admin: BlindedIdentity,
    closed_room: str,
) -> None:
    expect_refused(upload(community, alice, b"not here", room=closed_room), 403)
    # Staff keep the right the room's default takes away.
    file_id = uploaded_id(community, room_admin, b"admins may", room=closed_room)
    assert downloaded(community, file_id, room=closed_room) == b"admins may"


def test_an_empty_file_is_400(community: CommunityClient, alice: BlindedIdentity) -> None:
    answer = upload(community, alice, b"")
    assert answer.status == 400
    assert answer.body == "file is empty"


def test_upload_of_exactly_the_limit_is_201_and_one_byte_more_is_413(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    exact = os.urandom(MAX_UPLOAD)
    file_id = uploaded_id(community, alice, exact)
    assert downloaded(community, file_id) == exact
    expect_refused(upload(community, alice, exact + b"!"), 413)


def test_the_size_limit_holds_inside_a_batch(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    def item(size: int) -> dict[str, Any]:
        data = base64.b64encode(os.urandom(size)).decode()
        return {"method": "POST", "path": f"{ROOM}/file", "b64": data}

    answer = community.batch([item(MAX_UPLOAD + 1), item(MAX_UPLOAD)], alice)
    assert answer.status == 200, answer
    assert [i["code"] for i in answer.body] == [413, 201]


def test_default_limit_is_10_000_000_bytes_directly_and_through_onion_v4(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """A raw upload of the full size fits in an onion v4 request (max_onion_body_bytes)."""
    default = server_factory()
    exact = os.urandom(DEFAULT_MAX_UPLOAD)
    uploader = BlindedIdentity.generate()
    for transport in ("http", "onion"):
        with CommunityClient(default.base_url, default.public_key, transport) as c:
            file_id = uploaded_id(c, uploader, exact)
            assert downloaded(c, file_id) == exact
            assert upload(c, uploader, exact + b"!").status == 413


@pytest.mark.parametrize(
    ("file_id", "statuses"),
    [
        pytest.param("2", {404}, id="never-used"),
        pytest.param(str(2**53 + 5), {404}, id="beyond-the-id-range"),
        pytest.param(str(2**63 - 1), {404}, id="largest-int64"),
        pytest.param(str(2**64), {400, 404}, id="beyond-64-bits"),
        pytest.param("9" * 40, {400, 404}, id="forty-digits"),
        pytest.param("-1", {400, 404}, id="negative"),
        pytest.param("abc", {400, 404}, id="not-a-number"),
    ],
)
def test_an_unknown_or_malformed_file_id_is_404_or_400(
    community: CommunityClient, file_id: str, statuses: set[int]
) -> None:
    answer = download(community, file_id)
    assert answer.status in statuses, answer
    assert answer.content_type == "text/plain; charset=utf-8"


def test_a_file_of_another_room_is_404(
    community: CommunityClient, alice: BlindedIdentity, other_room: str
) -> None:
    file_id = uploaded_id(community, alice, b"only in main")
    answer = download(community, file_id, room=other_room)
    assert answer.status == 404
    other_id = uploaded_id(community, alice, b"only in other", room=other_room)
    assert download(community, other_id).status == 404
    assert downloaded(community, other_id, room=other_room) == b"only in other"


def test_an_unknown_room_is_404(community: CommunityClient, alice: BlindedIdentity) -> None:
    assert upload(community, alice, b"x", room="no_such_room").status == 404
    assert download(community, 2**40, room="no_such_room").status == 404


def test_uploads_are_rate_limited_and_moderators_are_exempt(
    community: CommunityClient, alice: BlindedIdentity, room_moderator: BlindedIdentity
) -> None:
    for n in range(UPLOAD_RATE_LIMIT):
        uploaded_id(community, alice, b"upload %d" % n)
    answer = upload(community, alice, b"one too many")
    assert answer.status == 429
    assert int(answer.headers["retry-after"]) >= 1
    for n in range(UPLOAD_RATE_LIMIT + 2):
        uploaded_id(community, room_moderator, b"moderator upload %d" % n)


# --------------------------------------------------------------------------- lifetime


def test_a_post_naming_an_upload_gives_it_the_file_lifetime(
    community: CommunityClient, alice: BlindedIdentity
) -> None:
    by_number = uploaded_id(community, alice, b"named by number")
    by_text = uploaded_id(community, alice, b"named by text")
    not_named = uploaded_id(community, alice, b"not named")
    posted = time.time()
    post_naming(community, alice, [by_number, str(by_text)])
    for file_id in (by_number, by_text):
        expires = http_date(download(community, file_id).headers["expires"])
        assert abs(expires - (posted + FILE_TTL)) < 10
    expires = http_date(download(community, not_named).headers["expires"])
    assert expires < posted + UPLOAD_TTL + 10


def test_a_post_cannot_keep_someone_elses_upload(
    community: CommunityClient, alice: BlindedIdentity, bob: BlindedIdentity
) -> None:
    file_id = uploaded_id(community, alice, b"alice's")
    post_naming(community, bob, [file_id])
    expires = http_date(download(community, file_id).headers["expires"])
    assert expires < time.time() + UPLOAD_TTL + 10


def test_an_unnamed_upload_expires_and_uploads_named_by_a_post_survive(
    short_community: CommunityClient, alice: BlindedIdentity
) -> None:
    """upload_ttl_seconds = 2 on this server."""
    c = short_community
    unnamed = uploaded_id(c, alice, b"nobody names me")
    by_number = uploaded_id(c, alice, b"named by number")
    by_text = uploaded_id(c, alice, b"named by text")
    post_naming(c, alice, [by_number])
    post_naming(c, alice, [str(by_text)])
    assert downloaded(c, unnamed) == b"nobody names me"
    time.sleep(SHORT_UPLOAD_TTL + 1)
    assert download(c, unnamed).status == 404
    assert downloaded(c, by_number) == b"named by number"
    assert downloaded(c, by_text) == b"named by text"


# --------------------------------------------------------------------------- room images


def test_room_image_set_by_put_never_expires_and_replacing_it_drops_the_old_one(
    short_community: CommunityClient,
    short_lived: ServerProcess,
    short_admin: BlindedIdentity,
    alice: BlindedIdentity,
) -> None:
    """upload_ttl_seconds = 2 on this server."""
    c = short_community
    first = b"\x89PNG\r\n\x1a\n first image"
    image_id = uploaded_id(c, short_admin, first)
    answer = c.put(ROOM, {"image": image_id}, identity=short_admin)
    assert answer.status == 200, answer
    assert set(answer.body) == {"info_updates"}
    room = c.get(ROOM, identity=alice)
    assert room.body["image_id"] == image_id
    served = download(c, image_id)
    assert served.raw_body == first
    assert "expires" not in served.headers  # never expires

    time.sleep(SHORT_UPLOAD_TTL + 1)
    assert downloaded(c, image_id) == first
    web = httpx.get(f"{short_lived.base_url}/web/rooms/{DEFAULT_ROOM}/image", trust_env=False)
    assert web.status_code == 200 and web.content == first

    second = b"GIF89a second image"
    new_id = uploaded_id(c, short_admin, second)
    assert c.put(ROOM, {"image": new_id}, identity=short_admin).status == 200
    assert c.get(ROOM, identity=alice).body["image_id"] == new_id
    assert download(c, image_id).status == 404  # the old image is gone
    assert downloaded(c, new_id) == second
    web = httpx.get(f"{short_lived.base_url}/web/rooms/{DEFAULT_ROOM}/image", trust_env=False)
    assert web.status_code == 200 and web.content == second


def test_an_expired_upload_cannot_become_the_room_image(
    short_community: CommunityClient, short_admin: BlindedIdentity
) -> None:
    file_id = uploaded_id(short_community, short_admin, b"too late")
    time.sleep(SHORT_UPLOAD_TTL + 1)
    answer = short_community.put(ROOM, {"image": file_id}, identity=short_admin)
    assert answer.status in (400, 404, 406), answer
    assert short_community.get(ROOM).body.get("image_id") != file_id


# --------------------------------------------------------------------------- both APIs


def test_a_v3_upload_downloads_through_v2_and_a_v2_upload_through_v3(
    community: CommunityClient,
    alice: BlindedIdentity,
    setup_client: Client,
    user: Persona,
) -> None:
    file_id = uploaded_id(community, alice, EVERY_BYTE)
    result = v2_download(setup_client, user, file_id)
    assert result["status_code"] == 200, result
    assert base64.b64decode(result["result"]) == EVERY_BYTE

    result = v2_upload(setup_client, user, EVERY_BYTE[::-1])
    assert result["status_code"] == 200, result
    answer = download(community, result["result"])
    assert answer.status == 200
    assert answer.raw_body == EVERY_BYTE[::-1]
    assert answer.headers["content-disposition"] == "attachment"


def test_a_file_of_either_api_stays_in_its_room(
    community: CommunityClient,
    alice: BlindedIdentity,
    setup_client: Client,
    user: Persona,
    other_room: str,
) -> None:
    other_id = uploaded_id(community, alice, b"other room", room=other_room)
    assert v2_download(setup_client, user, other_id)["status_code"] == 404
    result = v2_upload(setup_client, user, b"main room, v2")
    assert download(community, result["result"], room=other_room).status == 404


def test_both_apis_share_the_size_limit(
    setup_client: Client, user: Persona, setup_community: CommunityClient, alice: BlindedIdentity
) -> None:
    assert v2_upload(setup_client, user, os.urandom(MAX_UPLOAD))["status_code"] == 200
    assert v2_upload(setup_client, user, os.urandom(MAX_UPLOAD + 1))["status_code"] == 413
    assert upload(setup_community, alice, os.urandom(MAX_UPLOAD)).status == 201
    assert upload(setup_community, alice, os.urandom(MAX_UPLOAD + 1)).status == 413


def test_v2_uploads_keep_their_rate_limit(setup_client: Client, user: Persona) -> None:
    for n in range(UPLOAD_RATE_LIMIT):
        assert v2_upload(setup_client, user, b"v2 upload %d" % n)["status_code"] == 200
    assert v2_upload(setup_client, user, b"one too many")["status_code"] == 429
