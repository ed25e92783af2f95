"""Fixtures that run the real server as a subprocess on loopback.

Tests talk to a real `python -m opengroup serve` over real sockets, so what is
checked is what a Session client would see (routing, onion envelope, status
codes), not in-process shortcuts. Nothing here imports the server package.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import psycopg
import pytest
from harness.communityclient import BlindedIdentity, CommunityClient
from harness.server import DEFAULT_POSTGRES_ADMIN_URL, Backend, ServerProcess
from harness.v2client import DEFAULT_ROOM, Client, Identity, Persona

CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]
PersonaFactory = Callable[..., Persona]


# --------------------------------------------------------------------------- options and header


def pytest_addoption(parser: pytest.Parser) -> None:
    """--backend chooses the storage every server of the run uses."""
    group = parser.getgroup("opengroup")
    group.addoption(
        "--backend",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="database backend of the servers under test (default: sqlite)",
    )
    group.addoption(
        "--postgres-admin-url",
        default=DEFAULT_POSTGRES_ADMIN_URL,
        help="PostgreSQL URL used to create/drop the per-module test databases",
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which backend ran: a green run on SQLite says nothing about PostgreSQL."""
    name = config.getoption("--backend")
    if name == "sqlite":
        return [f"opengroup backend: sqlite (SQLite {sqlite3.sqlite_version})"]
    return [f"opengroup backend: postgresql ({config.getoption('--postgres-admin-url')})"]


def pytest_sessionstart(session: pytest.Session) -> None:
    """With --backend postgresql an unreachable database must fail the run, never skip."""
    config = session.config
    if config.getoption("--backend") != "postgresql":
        return
    admin_url = config.getoption("--postgres-admin-url")
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.exit(
            f"--backend postgresql: cannot reach PostgreSQL at {admin_url}: {exc}",
            returncode=3,
        )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The run's backend (from --backend); drops any database left at the end."""
    b = Backend(
        request.config.getoption("--backend"), request.config.getoption("--postgres-admin-url")
    )
    yield b
    b.drop_all()


@pytest.fixture(scope="module")
def database_url(backend: Backend) -> Iterator[str | None]:
    """A fresh database per test module (None: SQLite in the data dir)."""
    url = backend.new_database_url()
    yield url
    backend.drop_database(url)


@pytest.fixture
def fresh_database_url(backend: Backend) -> Iterator[str | None]:
    """A fresh database for one test (None: SQLite in the data dir), dropped afterwards."""
    url = backend.new_database_url()
    yield url
    backend.drop_database(url)


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    database_url: str | None,
) -> Iterator[ServerProcess]:
    """One server per test module, on a fresh data dir (and fresh database).

    A module sets other settings with module-level ``SERVER_ENV`` (environment
    variables) and ``SERVER_ARGS`` (extra ``serve`` arguments).
    """
    data_dir = tmp_path_factory.mktemp("server") / "data"
    proc = ServerProcess(
        data_dir,
        database_url=database_url,
        extra_args=getattr(request.module, "SERVER_ARGS", ()),
        env=getattr(request.module, "SERVER_ENV", None),
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def cli(server: ServerProcess) -> CliRunner:
    """cli("rooms", "add", "lobby", "Lobby"): admin CLI on the module's server data."""
    return server.cli


@pytest.fixture
def server_factory(tmp_path: Path, backend: Backend) -> Iterator[Callable[..., ServerProcess]]:
    """Extra servers with their own settings (restarts, options, several processes).

    server_factory(extra_args=[...], env={...}) gets a fresh data dir and database;
    pass data_dir= and database_url= of another server to share its storage;
    start=False returns it unstarted. All are stopped at teardown.
    """
    made: list[ServerProcess] = []
    own_dbs: list[str | None] = []

    def factory(
        *,
        data_dir: Path | None = None,
        database_url: str | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        start: bool = True,
    ) -> ServerProcess:
        if database_url is None:
            database_url = backend.new_database_url()
            own_dbs.append(database_url)
        proc = ServerProcess(
            data_dir if data_dir is not None else tmp_path / f"server{len(made)}" / "data",
            database_url=database_url,
            extra_args=extra_args,
            env=env,
            port=port,
        )
        made.append(proc)
        if start:
            proc.start()
        return proc

    yield factory
    for proc in made:
        proc.stop()
    for url in own_dbs:
        backend.drop_database(url)


@pytest.fixture(params=["http", "onion"], ids=["http", "onion"])
def client(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[Client]:
    """A client of the module's server, once over direct HTTP and once over onion requests."""
    with server.client(request.param) as c:
        yield c


@pytest.fixture(scope="module")
def setup_client(server: ServerProcess) -> Iterator[Client]:
    """Direct-HTTP client for arranging state, independent of the transport under test."""
    with server.client("http") as c:
        yield c


@pytest.fixture(scope="module")
def make_persona(setup_client: Client) -> PersonaFactory:
    """make_persona(identity=None, room="main"): authenticate a (new) user in a room."""

    def factory(identity: Identity | None = None, room: str = DEFAULT_ROOM) -> Persona:
        ident = identity or Identity.generate()
        return Persona(ident, setup_client.authenticate(ident, room), room)

    return factory


@pytest.fixture
def user(make_persona: PersonaFactory) -> Persona:
    """A fresh ordinary member of `main` (fresh per test: no rate-limit carry-over)."""
    return make_persona()


@pytest.fixture
def other_user(make_persona: PersonaFactory) -> Persona:
    """A second, distinct member of `main`."""
    return make_persona()


@pytest.fixture(scope="module")
def moderator_identity(server: ServerProcess) -> Identity:
    """A key made moderator of `main` through the admin CLI, once per module."""
    identity = Identity.generate()
    server.cli("moderators", "add", identity.session_id, DEFAULT_ROOM)
    return identity


@pytest.fixture
def moderator(make_persona: PersonaFactory, moderator_identity: Identity) -> Persona:
    """The module's moderator of `main`, with a fresh token."""
    return make_persona(moderator_identity)


@pytest.fixture
def banned_user(make_persona: PersonaFactory, moderator: Persona, setup_client: Client) -> Persona:
    """A member of `main` who authenticated, then was banned by the moderator."""
    victim = make_persona()
    result = setup_client.request(
        "POST",
        "block_list",
        body={"public_key": victim.session_id},
        room=DEFAULT_ROOM,
        token=moderator.token,
    )
    if result["status_code"] != 200:
        pytest.fail(f"banning {victim.session_id} failed: {result!r}", pytrace=False)
    return victim


# --------------------------------------------------------------------------- the community API


@pytest.fixture(params=["http", "onion"], ids=["http", "onion4"])
def community(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[CommunityClient]:
    """A community API client of the module's server, once over direct HTTP and once
    through onion v4 requests (what every current Session client sends)."""
    with CommunityClient(server.base_url, server.public_key, request.param) as c:
        yield c


@pytest.fixture(scope="module")
def twin(server: ServerProcess) -> Iterator[ServerProcess]:
    """A second process on the module server's data dir, database and settings (another
    port)."""
    proc = ServerProcess(
        server.data_dir,
        database_url=server.database_url,
        extra_args=server.extra_args,
        env=server.env,
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def setup_community(server: ServerProcess) -> Iterator[CommunityClient]:
    """Direct-HTTP community client for arranging state, whatever the transport under test."""
    with CommunityClient(server.base_url, server.public_key, "http") as c:
        yield c


@pytest.fixture
def alice() -> BlindedIdentity:
    """A fresh Session user, who signs with her 15-blinded key."""
    return BlindedIdentity.generate()


@pytest.fixture
def bob() -> BlindedIdentity:
    return BlindedIdentity.generate()


@pytest.fixture(scope="module")
def room_admin(server: ServerProcess, setup_community: CommunityClient) -> BlindedIdentity:
    """Admin of `main`, named by their Session id (05) through the CLI, once per module,
    who has signed in once (their first sighting moves the room's `info_updates`)."""
    identity = BlindedIdentity.generate()
    server.cli("moderators", "add", identity.session_id, DEFAULT_ROOM, "--admin")
    setup_community.get("/capabilities", identity=identity)
    return identity


@pytest.fixture(scope="module")
def room_moderator(server: ServerProcess, setup_community: CommunityClient) -> BlindedIdentity:
    """Moderator of `main`, named by their Session id (05) through the CLI, once per module,
    who has signed in once."""
    identity = BlindedIdentity.generate()
    server.cli("moderators", "add", identity.session_id, DEFAULT_ROOM)
    setup_community.get("/capabilities", identity=identity)
    return identity
