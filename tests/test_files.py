"""Files: upload into a room, download from it.

The contract: docs/spec/SPEC.md section 3 ("ids", "POST /files", "files").

`POST /files {"file": <base64>}` answers `{"status_code": 200, "result": <id>}`
with a random integer id in [2^31, 2^53); `GET /files/<id>` gives the bytes
back in the same room. Uploads over `max_upload_bytes` (decoded) are 413, and
files expire after `file_ttl_seconds`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from harness import probe
from harness.expect import expect_error
from harness.server import ServerProcess
from harness.v2client import DEFAULT_ROOM, Client, Identity, Persona

CliRunner = Callable[..., Any]
ServerFactory = Callable[..., ServerProcess]

FILE_ID_MIN = 2**31
FILE_ID_MAX = 2**53
DEFAULT_MAX_UPLOAD = 10_000_000


# --------------------------------------------------------------------------- helpers


def upload(
    client: Client, token: str | None, data: bytes, room: str | None = DEFAULT_ROOM
) -> dict[str, Any]:
    """POST files with the data base64-encoded, as clients do."""
    body = {"file": base64.b64encode(data).decode()}
    return client.request("POST", "files", body=body, room=room, token=token)


def download(
    client: Client, token: str | None, file_id: int | str, room: str | None = DEFAULT_ROOM
) -> dict[str, Any]:
    """GET files/<id> in a room."""
    return client.request("GET", f"files/{file_id}", room=room, token=token)


def uploaded_id(client: Client, token: str, data: bytes, room: str = DEFAULT_ROOM) -> int:
    """Upload and return the new file id (fails the test on refusal)."""
    result = upload(client, token, data, room)
    assert result["status_code"] == 200, result
    return int(result["result"])


def file_row_exists(server: ServerProcess, file_id: int) -> bool:
    """Whether the files table still holds file_id."""
    return bool(probe.value(server, "SELECT count(*) FROM files WHERE id = %s", file_id))


ALL_BYTES = bytes(range(256)) * 4


@pytest.fixture(scope="module")
def room_b(cli: CliRunner) -> str:
    """A second room of the module's server: files must not leak across rooms."""
    room_id = f"files_b_{secrets.token_hex(4)}"
    cli("rooms", "add", room_id, "Files B")
    return room_id


# --------------------------------------------------------------------------- upload and download


def test_upload_answers_an_integer_id_in_the_safe_range(client: Client, user: Persona) -> None:
    result = upload(client, user.token, b"hello file")
    assert set(result) == {"status_code", "result"}
    assert result["status_code"] == 200
    file_id = result["result"]
    assert type(file_id) is int
    assert FILE_ID_MIN <= file_id < FILE_ID_MAX


def test_download_returns_exactly_the_uploaded_bytes(client: Client, user: Persona) -> None:
    file_id = uploaded_id(client, user.token, ALL_BYTES)
    result = download(client, user.token, file_id)
    assert result == {"status_code": 200, "result": base64.b64encode(ALL_BYTES).decode()}


def test_each_upload_gets_its_own_id(client: Client, user: Persona) -> None:
    contents = [os.urandom(64) for _ in range(5)]
    ids = [uploaded_id(client, user.token, data) for data in contents]
    assert len(set(ids)) == len(ids)
    for file_id, data in zip(ids, contents, strict=True):
        assert base64.b64decode(download(client, user.token, file_id)["result"]) == data


def test_any_member_of_the_room_can_download(
    client: Client, user: Persona, other_user: Persona
) -> None:
    data = os.urandom(100)
    file_id = uploaded_id(client, user.token, data)
    assert base64.b64decode(download(client, other_user.token, file_id)["result"]) == data


def test_a_file_is_not_found_in_another_room(
    client: Client, user: Persona, make_persona: Callable[..., Persona], room_b: str
) -> None:
    file_id = uploaded_id(client, user.token, b"only in main")
    elsewhere = make_persona(user.identity, room_b)
    expect_error(download(client, elsewhere.token, file_id, room=room_b), 404)
    # And a token of the other room is unknown in the file's room.
    expect_error(download(client, elsewhere.token, file_id, room=DEFAULT_ROOM), 401)


@pytest.mark.parametrize(
    "file_id",
    [
        pytest.param(str(FILE_ID_MIN + 12345), id="never-uploaded"),
        pytest.param("1", id="small-number"),
        pytest.param(str(FILE_ID_MAX - 1), id="largest-id"),
    ],
)
def test_unknown_file_id_is_404(client: Client, user: Persona, file_id: str) -> None:
    expect_error(download(client, user.token, file_id), 404)


@pytest.mark.parametrize(
    "file_id",
    [
        pytest.param("abc", id="letters"),
        pytest.param("1.5", id="decimal"),
        pytest.param("1e3", id="exponent"),
        pytest.param("0x10", id="hex"),
    ],
)
def test_non_integer_file_id_is_400(client: Client, user: Persona, file_id: str) -> None:
    expect_error(download(client, user.token, file_id), 400)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(None, id="no-authorization"),
        pytest.param(secrets.token_hex(48), id="unknown-token"),
        pytest.param("not hex", id="not-hex"),
    ],
)
def test_upload_and_download_need_a_token(client: Client, user: Persona, token: str | None) -> None:
    file_id = uploaded_id(client, user.token, b"members only")
    expect_error(upload(client, token, b"x"), 401)
    expect_error(download(client, token, file_id), 401)


def test_missing_room_header_is_400(client: Client, user: Persona) -> None:
    file_id = uploaded_id(client, user.token, b"x")
    expect_error(upload(client, user.token, b"x", room=None), 400)
    expect_error(download(client, user.token, file_id, room=None), 400)


def test_unknown_room_is_404(client: Client, user: Persona) -> None:
    expect_error(upload(client, user.token, b"x", room="no_such_room"), 404)
    expect_error(download(client, user.token, FILE_ID_MIN, room="no_such_room"), 404)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"file": "not base64!"}, id="not-base64"),
        pytest.param({"file": "aGVsbG8=" + "*"}, id="trailing-junk"),
        pytest.param({"file": 12345}, id="number"),
        pytest.param({"file": None}, id="null"),
        pytest.param({"file": ["aGVsbG8="]}, id="list"),
        pytest.param({}, id="missing-file"),
        pytest.param({"data": "aGVsbG8="}, id="other-field-name"),
    ],
)
def test_bad_upload_body_is_400(client: Client, user: Persona, body: dict[str, Any]) -> None:
    result = client.request("POST", "files", body=body, room=DEFAULT_ROOM, token=user.token)
    expect_error(result, 400)


def test_banned_user_can_neither_upload_nor_download(
    client: Client, user: Persona, banned_user: Persona
) -> None:
    file_id = uploaded_id(client, user.token, b"not for the banned")
    expect_error(upload(client, banned_user.token, b"x"), 403)
    expect_error(download(client, banned_user.token, file_id), 403)


# --------------------------------------------------------------------------- size limit


def test_upload_of_exactly_the_limit_is_accepted_and_one_byte_more_is_413(
    server_factory: ServerFactory,
) -> None:
    small = server_factory(env={"OPENGROUP_MAX_UPLOAD_BYTES": "1000"})
    for transport in ("http", "onion"):
        with small.client(transport) as c:
            token = c.authenticate(Identity.generate(), DEFAULT_ROOM)
            exact = os.urandom(1000)
            file_id = uploaded_id(c, token, exact)
            assert base64.b64decode(download(c, token, file_id)["result"]) == exact
            expect_error(upload(c, token, os.urandom(1001)), 413)


def test_default_limit_is_10_000_000_bytes(server: ServerProcess, user: Persona) -> None:
    """Direct HTTP only: base64 of 10 MB is larger than the onion body limit."""
    data = os.urandom(DEFAULT_MAX_UPLOAD)
    headers = {"Room": DEFAULT_ROOM, "Authorization": user.token}
    with httpx.Client(base_url=server.base_url, timeout=60.0, trust_env=False) as http:
        body = {"file": base64.b64encode(data).decode()}
        resp = http.post("/files", json=body, headers=headers)
        assert resp.status_code == 200, resp.text[:300]
        file_id = resp.json()["result"]

        body = {"file": base64.b64encode(data + b"\x00").decode()}
        resp = http.post("/files", json=body, headers=headers)
        assert resp.status_code == 413, resp.text[:300]
        assert resp.json()["status_code"] == 413

        resp = http.get(f"/files/{file_id}", headers=headers)
        assert resp.status_code == 200
        served = base64.b64decode(resp.json()["result"])
        assert hashlib.sha256(served).digest() == hashlib.sha256(data).digest()


# --------------------------------------------------------------------------- expiry


def test_expired_files_are_404_and_pruned(server_factory: ServerFactory) -> None:
    short = server_factory(
        env={"OPENGROUP_FILE_TTL_SECONDS": "1", "OPENGROUP_PRUNE_INTERVAL_SECONDS": "1"}
    )
    with contextlib.ExitStack() as stack:
        clients = {t: stack.enter_context(short.client(t)) for t in ("http", "onion")}
        token = clients["http"].authenticate(Identity.generate(), DEFAULT_ROOM)
        file_id = uploaded_id(clients["http"], token, b"short-lived")
        for c in clients.values():
            assert download(c, token, file_id)["status_code"] == 200
        assert file_row_exists(short, file_id)

        time.sleep(1.5)

        for c in clients.values():
            expect_error(download(c, token, file_id), 404)
        deadline = time.monotonic() + 6.0
        while file_row_exists(short, file_id) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not file_row_exists(short, file_id)
