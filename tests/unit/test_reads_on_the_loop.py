"""Which community API requests are answered on the event loop (the setting
``reads_on_event_loop``), and the guard that keeps writes off it.

Rules pinned here (ARCHITECTURE.md, "Threads"):

* A ``GET`` reads only, except a file download (its answer may be megabytes): that
  one goes to a request thread.
* A ``/batch`` or ``/sequence`` reads only if every item is a ``GET`` of a route that
  reads only (an unknown path is answered 404 without a read). An item with another
  method, or whose path has ``%`` escapes (it cannot be told without decoding it),
  sends the whole batch to a thread. Malformed bodies and items are refused without a
  read, so they stay on the loop.
* Any other method goes to a thread.
* Inside :meth:`Database.reads_only` a write transaction raises
  :class:`WriteOnEventLoop` and writes nothing; reads go on as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from opengroup.api.exchange import ApiRequest
from opengroup.api.v3.routes import router
from opengroup.storage import migrate
from opengroup.storage.database import Database, WriteOnEventLoop
from opengroup.storage.schema import rooms


def reads_only(method: str, path: str, body: Any = None) -> bool:
    raw = body if isinstance(body, bytes) else orjson.dumps(body) if body is not None else b""
    route, _params = router.match(method, path)
    return router._reads_only(route, ApiRequest(method=method, path=path, body=raw))


def get(path: str) -> dict[str, str]:
    return {"method": "GET", "path": path}


@pytest.mark.parametrize(
    "path", ["/capabilities", "/room/lobby/pollInfo/0", "/room/lobby/messages/since/5", "/inbox"]
)
def test_a_get_reads_only(path: str) -> None:
    assert reads_only("GET", path)


@pytest.mark.parametrize("path", ["/room/lobby/file/7", "/room/lobby/file/7/cat.jpg"])
def test_a_file_download_goes_to_a_thread(path: str) -> None:
    assert not reads_only("GET", path)


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/room/lobby/message"), ("PUT", "/room/lobby/reaction/1/x"), ("DELETE", "/inbox")],
)
def test_other_methods_go_to_a_thread(method: str, path: str) -> None:
    assert not reads_only(method, path)


POLL = [
    get("/capabilities"),
    get("/room/lobby/pollInfo/0"),
    get("/room/lobby/messages/since/5?t=r&reactors=5"),
    get("/inbox/since/0"),
    get("/outbox/since/0"),
]


@pytest.mark.parametrize("path", ["/batch", "/sequence"])
def test_a_batch_of_gets_reads_only(path: str) -> None:
    assert reads_only("POST", path, POLL)
    assert reads_only("POST", path, [*POLL, get("/no/such/route"), get("/batch")])


@pytest.mark.parametrize(
    "item",
    [
        {"method": "POST", "path": "/room/lobby/message", "json": {}},
        {"method": "DELETE", "path": "/inbox"},
        {"method": "get", "path": "/capabilities"},  # (refused, but not a GET)
        get("/room/lobby/file/7"),
        get("/room/lobby/file/7/cat.jpg?x=1"),
        get("/room/lob%62y/pollInfo/0"),
    ],
)
def test_one_item_that_may_write_sends_the_batch_to_a_thread(item: dict[str, Any]) -> None:
    assert not reads_only("POST", "/batch", [*POLL, item])
    assert not reads_only("POST", "/sequence", [item, *POLL])


@pytest.mark.parametrize(
    "body", [b"{not json", {"a": 1}, [], [1, "x", None], [{"method": "GET"}, {"path": 5}]]
)
def test_malformed_batches_are_refused_on_the_loop(body: Any) -> None:
    assert reads_only("POST", "/batch", body)


def test_a_write_transaction_where_only_reads_may_run_is_refused(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'og.db'}")
    migrate.upgrade(db)
    try:
        with db.reads_only():
            with pytest.raises(WriteOnEventLoop), db.write() as conn:
                conn.execute(rooms.insert().values(id="lobby", name="Lobby", created_at=1.0))
            with db.read() as conn:
                assert ("lobby",) not in conn.execute(select(rooms.c.id)).all()
        with db.write() as conn:  # and once out of it, writes go on
            conn.execute(rooms.insert().values(id="lobby", name="Lobby", created_at=1.0))
        with db.read() as conn:
            assert ("lobby",) in conn.execute(select(rooms.c.id)).all()
    finally:
        db.dispose()
