"""Request logs (operators' interface): one line per request, nothing secret in it.

At level `info` every request, through either transport, writes exactly one
line `<transport> <METHOD> <route pattern> <status> <ms>ms` to standard error
and, with `--log-file`, to that file. A line names the route pattern
(`/files/{file_id}`), never the raw path or query, so tokens, message
contents, file contents and public keys never reach the log. The level is a
setting (`log_level` / `OPENGROUP_LOG_LEVEL` / `--log-level`).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from harness.server import ServerProcess
from harness.v2client import DEFAULT_ROOM, Client, Identity

ServerFactory = Callable[..., ServerProcess]
Line = tuple[str, str, str, int]

REQUEST_LINE = re.compile(
    r" INFO opengroup\.requests: (http|onion) ([A-Z]+) (\S+) (\d{3}) \d+\.\dms(?: \(([^)]*)\))?$"
)


class LogReader:
    """Reads what a log file gained since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new_text(self) -> str:
        """The text appended since the previous call."""
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        return data.decode()

    def new_requests(self) -> list[Line]:
        """(transport, method, route, status) of each request line appended since last time."""
        found = [REQUEST_LINE.search(line) for line in self.new_text().splitlines()]
        return [(m[1], m[2], m[3], int(m[4])) for m in found if m]


@pytest.fixture(scope="module")
def log_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs") / "opengroup.log"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, database_url: str | None, log_file: Path
) -> Iterator[ServerProcess]:
    """The module's server, logging at info to standard error and to log_file."""
    proc = ServerProcess(
        tmp_path_factory.mktemp("server") / "data",
        database_url=database_url,
        extra_args=["--log-file", str(log_file)],
        env={"OPENGROUP_LOG_LEVEL": "info"},
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def log(server: ServerProcess, log_file: Path) -> LogReader:
    """The module's log file, read from now on."""
    reader = LogReader(log_file)
    reader.new_text()
    return reader


def test_a_full_flow_logs_one_line_per_request_and_no_secret(
    server: ServerProcess, client: Client, log: LogReader
) -> None:
    t = client.transport
    identity = Identity.generate()
    token = client.authenticate(identity, DEFAULT_ROOM)
    posted = client.post_message(identity, token, DEFAULT_ROOM)
    assert posted["status_code"] == 200, posted
    entry = {"room_id": DEFAULT_ROOM, "auth_token": token, "from_message_server_id": 0}
    assert client.compact_poll([entry])["results"][0]["status_code"] == 200
    got = client.request("GET", "messages?limit=5", room=DEFAULT_ROOM, token=token)
    assert got["status_code"] == 200
    content = f"FILE-CONTENT-{os.urandom(8).hex()}".encode()
    body = {"file": base64.b64encode(content).decode()}
    uploaded = client.request("POST", "files", body=body, room=DEFAULT_ROOM, token=token)
    assert uploaded["status_code"] == 200, uploaded
    file_id = uploaded["result"]
    fetched = client.request("GET", f"files/{file_id}", room=DEFAULT_ROOM, token=token)
    assert fetched["status_code"] == 200
    unban = client.request(
        "DELETE", f"block_list/{identity.session_id}", room=DEFAULT_ROOM, token=token
    )
    assert unban["status_code"] == 403
    query_secret = f"querysecret{os.urandom(4).hex()}"
    unknown = client.request("GET", f"no_such_endpoint?key={query_secret}")
    assert unknown["status_code"] == 404

    assert log.new_requests() == [
        (t, "GET", "/auth_token_challenge", 200),
        (t, "POST", "/claim_auth_token", 200),
        (t, "POST", "/messages", 200),
        (t, "POST", "/compact_poll", 200),
        (t, "GET", "/messages", 200),
        (t, "POST", "/files", 200),
        (t, "GET", "/files/{file_id}", 200),
        (t, "DELETE", "/block_list/{public_key}", 403),
        (t, "GET", "unmatched", 404),
    ]
    secrets = {
        "the token": token,
        "the message data": posted["message"]["data"],
        "the signature": posted["message"]["signature"],
        "the file content": content.decode(),
        "the file content (base64)": body["file"],
        "the file id": str(file_id),
        "the public key": identity.session_id,
        "a query value": query_secret,
    }
    everything = log.path.read_text() + server.output()
    for what, secret in secrets.items():
        assert secret.lower() not in everything.lower(), f"{what} is in the log"


def test_web_page_image_and_refused_onion_requests_are_logged_too(
    server: ServerProcess, log: LogReader
) -> None:
    with httpx.Client(base_url=server.base_url, trust_env=False) as http:
        assert http.get("/").status_code == 200
        assert http.get(f"/web/rooms/{DEFAULT_ROOM}/image").status_code == 404
        assert http.post("/loki/v3/lsrpc", content=b"\x00garbage").status_code == 400
        assert http.get("/loki/v3/lsrpc").status_code == 405
    assert log.new_requests() == [
        ("http", "GET", "/", 200),
        ("http", "GET", "/web/rooms/{room_id}/image", 404),
        ("onion", "POST", "/loki/v3/lsrpc", 400),
        ("http", "GET", "/loki/v3/lsrpc", 405),
    ]


def test_the_log_goes_to_standard_error_as_well(server: ServerProcess, log: LogReader) -> None:
    assert httpx.get(server.base_url + "/rooms", trust_env=False).status_code == 200
    [line] = [
        line
        for line in log.new_text().splitlines()
        if "opengroup.requests: http GET /rooms " in line
    ]
    assert line in server.output()


@pytest.mark.parametrize(
    ("how", "args", "env"),
    [
        pytest.param("env", [], {"OPENGROUP_LOG_LEVEL": "warning"}, id="env-warning"),
        pytest.param("flag", ["--log-level", "error"], {}, id="flag-error"),
    ],
)
def test_above_info_no_request_is_logged(
    server_factory: ServerFactory,
    tmp_path: Path,
    how: str,
    args: list[str],
    env: dict[str, str],
) -> None:
    path = tmp_path / f"{how}.log"
    quiet = server_factory(extra_args=["--log-file", str(path), *args], env=env)
    for _ in range(3):
        assert httpx.get(quiet.base_url + "/rooms", trust_env=False).status_code == 200
    assert "opengroup.requests" not in path.read_text()
    assert "opengroup.requests" not in quiet.output()
