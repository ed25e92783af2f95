"""Admitting the signers of community API requests in groups (``Users.admit_all``), on
the real database of the run's backend.

Rules pinned here (ARCHITECTURE.md, "One request of the community API"):

* The answers come back in the order of the requests, one each.
* A nonce is accepted once: the second use within a group is refused (425's
  ``NotFresh``), and so is any use in a later group; a banned signer's nonce is
  recorded too, so the request cannot get in by a replay once the ban is over.
* A server ban of a Session id reaches the blinded id linked to it; the linked id
  is one of the admitted user's keys.
* A new signer is recorded once, however often it signs in the group.
* A group larger than one set of statements takes (``ADMISSIONS_PER_STATEMENT``)
  follows the same rules across the boundary.
* A nonce is kept with the time its request was signed at, until that time leaves
  the window (not its arrival: a request may be stamped a window ahead). The same
  nonce signed at another time is another request (the signature covers both).
* Nonces kept without their request's time (the pysogs import's) refuse any request
  that carries them until they expire.
* On PostgreSQL an admission's commit does not wait for the disk (docs/SECURITY.md,
  "Signed requests and replays"); the connection's other writes still do.
* A group deletes up to two expired nonces for each of its requests
  (``EXPIRED_NONCES_CLEARED_PER_REQUEST``), those that expired first, and no live one;
  a pruning pass's write deletes up to the number it is given.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text

from opengroup import blinding
from opengroup.config import Settings, load_settings
from opengroup.domain.errors import Banned, NotFresh
from opengroup.domain.signed_requests import SignedRequest
from opengroup.domain.users import (
    ADMISSIONS_PER_STATEMENT,
    EXPIRED_NONCES_CLEARED_PER_REQUEST,
    User,
    Users,
)
from opengroup.storage import bulk, migrate, people
from opengroup.storage.database import Database
from opengroup.storage.schema import blinded_ids, global_bans, request_nonces, users

NOW = 1_000_000.0
_nonces = itertools.count(1)


def blinded(n: int) -> str:
    return "15" + f"{n:02x}" * 32


def request(session_id: str, nonce: bytes | None = None) -> SignedRequest:
    return SignedRequest(session_id, nonce or next(_nonces).to_bytes(16, "big"), int(NOW))


ALICE, BOB, CAROL, BANNED = blinded(1), blinded(2), blinded(3), blinded(4)
BANNED_SESSION_ID = "05" + "44" * 32


def process_at(db: Database, settings: Settings, now: float) -> Users:
    """The admissions of a process (a new one: it knows nothing yet) whose clock says
    ``now``."""
    return Users(db, settings, b"\x01" * 32, lambda: now)


@pytest.fixture(scope="module")
def admissions(
    tmp_path_factory: pytest.TempPathFactory, database_url: str | None
) -> Iterator[tuple[Users, Database]]:
    tmp: Path = tmp_path_factory.mktemp("admission")
    db = Database(database_url or f"sqlite:///{tmp / 'opengroup.db'}")
    migrate.upgrade(db)
    with db.write() as conn:
        for who in (ALICE, BOB):
            conn.execute(insert(users).values(session_id=who, first_seen=1.0, last_seen=NOW))
        conn.execute(
            insert(blinded_ids).values(
                session_id=BANNED_SESSION_ID, blinded_abs=blinding.blinded_abs(BANNED)
            )
        )
        conn.execute(insert(global_bans).values(public_key=BANNED_SESSION_ID, banned_at=1.0))
    settings = load_settings(overrides={"data_dir": str(tmp)}, env={})
    yield process_at(db, settings, NOW), db
    db.dispose()


def test_a_group_is_answered_in_order_each_nonce_once(admissions: tuple[Users, Database]) -> None:
    admit, db = admissions
    reused = request(ALICE)
    group = [reused, request(BOB), reused, request(CAROL), request(CAROL), request(BANNED)]
    answers = admit.admit_all(group)
    assert [type(a) for a in answers] == [User, User, NotFresh, User, User, Banned]
    assert [a.session_id for a in answers if isinstance(a, User)] == [ALICE, BOB, CAROL, CAROL]
    with db.read() as conn:
        seen = conn.execute(select(func.count()).where(users.c.session_id == CAROL)).scalar()
    assert seen == 1

    banned_nonce = group[5].nonce
    again = admit.admit_all([request(BOB, group[1].nonce), request(BANNED, banned_nonce)])
    assert [type(a) for a in again] == [NotFresh, NotFresh]


def test_a_ban_of_the_linked_session_id_refuses_the_blinded_id(
    admissions: tuple[Users, Database],
) -> None:
    admit, _db = admissions
    assert isinstance(admit.admit_all([request(BANNED)])[0], Banned)
    alice = admit.admit_all([request(ALICE)])[0]
    assert isinstance(alice, User) and alice.keys == (ALICE,)


def test_a_group_larger_than_one_set_of_statements_keeps_the_rules(
    admissions: tuple[Users, Database],
) -> None:
    admit, _db = admissions
    size = ADMISSIONS_PER_STATEMENT * 2 + 10
    group = [request(blinded(10 + n % 200)) for n in range(size)]
    early = group[5]
    group[ADMISSIONS_PER_STATEMENT + 3] = request(early.session_id, early.nonce)
    answers = admit.admit_all(group)
    assert len(answers) == size
    refused = [n for n, a in enumerate(answers) if not isinstance(a, User)]
    assert refused == [ADMISSIONS_PER_STATEMENT + 3]
    assert isinstance(answers[refused[0]], NotFresh)


def stored_nonces(db: Database) -> set[bytes]:
    with db.read() as conn:
        return {bytes(row[0]) for row in conn.execute(select(request_nonces.c.nonce))}


def expired_requests(db: Database, count: int, label: bytes) -> list[tuple[int, bytes]]:
    """``count`` stored (signed at, nonce) pairs of requests long out of the window,
    the oldest first."""
    rows = [(int(NOW) - 200_000 + n, label + b"%010d" % n) for n in range(count)]
    with db.write() as conn:
        people.take_nonces(conn, rows)
    return rows


def test_a_group_deletes_two_expired_nonces_per_request_the_longest_expired_first(
    admissions: tuple[Users, Database],
) -> None:
    admit, db = admissions
    expired = expired_requests(db, 30, b"early-")
    process = process_at(db, admit.settings, NOW)  # (new: looks from 0)
    group = [request(ALICE) for _ in range(5)]

    assert all(isinstance(a, User) for a in process.admit_all(group))

    cleared = EXPIRED_NONCES_CLEARED_PER_REQUEST * len(group)
    stored = stored_nonces(db)
    assert stored.isdisjoint(nonce for _at, nonce in expired[:cleared])
    assert stored >= {nonce for _at, nonce in expired[cleared:]} | {r.nonce for r in group}


def test_a_pruning_write_deletes_at_most_the_expired_nonces_it_is_given(
    admissions: tuple[Users, Database],
) -> None:
    admit, db = admissions
    live = request(BOB)
    assert isinstance(admit.admit_all([live])[0], User)
    admit.prune_nonces(1000)  # (what earlier tests left expired)
    expired = expired_requests(db, 25, b"pruned")

    counts, signed_from = [], 0
    for _ in range(4):
        count, signed_from = admit.prune_nonces(10, signed_from)
        counts.append(count)
    assert counts == [10, 10, 5, 0]
    stored = stored_nonces(db)
    assert live.nonce in stored and stored.isdisjoint(nonce for _at, nonce in expired)


def test_deletions_look_from_where_the_process_reached_and_a_pass_sweeps_from_the_start(
    admissions: tuple[Users, Database],
) -> None:
    """A process's deletions of expired nonces search from where its last ones reached
    (on PostgreSQL, searching from the oldest end steps over every row deleted since
    the last vacuum); the first write of a pruning pass sweeps from the oldest end, for
    a row another process left (its deletion rolled back)."""
    admit, db = admissions
    admit.prune_nonces(1000)  # (what earlier tests left expired)
    assert isinstance(admit.admit_all([request(ALICE)])[0], User)  # (reached the cut)
    left = expired_requests(db, 3, b"left--")

    assert isinstance(admit.admit_all([request(BOB)])[0], User)
    assert stored_nonces(db) >= {nonce for _at, nonce in left}
    assert admit.prune_nonces(1000)[0] == 3
    assert stored_nonces(db).isdisjoint(nonce for _at, nonce in left)


def test_a_request_signed_at_the_far_edge_of_the_window_keeps_its_nonce_until_it_is_out(
    admissions: tuple[Users, Database],
) -> None:
    """A request may be stamped up to the window ahead: its nonce stays until its own
    time, not its arrival, has left the window."""
    admit, db = admissions
    window = admit.settings.request_time_window_seconds
    ahead = SignedRequest(CAROL, b"from-the-future!", int(NOW) + window)
    assert isinstance(admit.admit_all([ahead])[0], User)
    later = process_at(db, admit.settings, NOW + 2 * window)
    later.prune_nonces(1000)
    assert ahead.nonce in stored_nonces(db)
    assert isinstance(later.admit_all([ahead])[0], NotFresh)

    gone = process_at(db, admit.settings, NOW + 2 * window + 1)
    gone.prune_nonces(1000)
    assert ahead.nonce not in stored_nonces(db)


def test_the_same_nonce_signed_at_another_time_is_another_request(
    admissions: tuple[Users, Database],
) -> None:
    admit, _db = admissions
    first = request(ALICE)
    again = SignedRequest(ALICE, first.nonce, first.timestamp)
    other_time = SignedRequest(BOB, first.nonce, first.timestamp + 1)
    answers = admit.admit_all([first, again, other_time])
    assert [type(a) for a in answers] == [User, NotFresh, User]


def test_a_nonce_kept_without_its_time_refuses_every_request_that_carries_it(
    admissions: tuple[Users, Database],
) -> None:
    """Nonces the pysogs import brings (and those stored before schema revision 0006)
    are kept without their request's time: any request carrying one is refused until
    it expires, whenever it was signed."""
    admit, db = admissions
    assert isinstance(admit.admit_all([request(ALICE)])[0], User)  # (it found none kept)
    untimed = b"seen-by-pysogs!!"
    with db.write() as conn:
        bulk.insert_untimed_nonces(conn, [(untimed, NOW + 100)])
    fresh_process = process_at(db, admit.settings, NOW)
    for signed_at in (int(NOW) - 50, int(NOW), int(NOW) + 50):
        answer = fresh_process.admit_all([SignedRequest(ALICE, untimed, signed_at)])[0]
        assert isinstance(answer, NotFresh), signed_at
    # a process that found none when it started learns of them at its next pruning pass
    admit.prune_nonces(1000)
    assert isinstance(admit.admit_all([SignedRequest(BOB, untimed, int(NOW) + 7)])[0], NotFresh)

    after = process_at(db, admit.settings, NOW + 100)
    assert isinstance(after.admit_all([SignedRequest(ALICE, untimed, int(NOW) + 100)])[0], User)
    assert after.prune_nonces(1000)[0] >= 1
    with db.read() as conn:
        assert people.untimed_nonces_until(conn) is None


def test_an_empty_group_admits_nobody_and_deletes_nothing(
    admissions: tuple[Users, Database],
) -> None:
    admit, db = admissions
    before = stored_nonces(db)
    assert admit.admit_all([]) == []
    assert stored_nonces(db) == before


def wal_flushes(db: Database) -> int:
    """How many times PostgreSQL has flushed its write-ahead log to disk, counting the
    flushes of this thread's connection (its counts are sent when it goes idle)."""
    with db.one_statement_write() as conn:
        conn.execute(text("SELECT pg_stat_force_next_flush()"))
    with db.read() as conn:
        return int(conn.execute(text("SELECT wal_sync FROM pg_stat_wal")).scalar_one())


def test_on_postgresql_an_admission_commits_without_waiting_for_the_disk(
    admissions: tuple[Users, Database], database_url: str | None
) -> None:
    if database_url is None:
        pytest.skip("PostgreSQL's commits")
    admit, db = admissions
    times = 100

    def flushes_of(write: Callable[[], object]) -> int:
        before = wal_flushes(db)
        for _ in range(times):
            write()
        return wal_flushes(db) - before

    def nonce_alone() -> object:
        with db.one_statement_write() as conn:
            return people.take_nonces(conn, [(int(NOW), next(_nonces).to_bytes(16, "big"))])

    admitted = flushes_of(lambda: admit.admit_all([request(ALICE)]))
    # (the same autocommit connection writing a nonce by a statement of its own: each
    # commit waits; other tests' commits add to both counts alike)
    waited = flushes_of(nonce_alone)
    assert waited >= times / 2
    assert admitted < waited / 2
    with db.read() as conn:
        assert conn.execute(text("SHOW synchronous_commit")).scalar_one() == "on"


@pytest.mark.parametrize(
    ("url", "reads_on_loop", "loop_writes", "on_loop"),
    [
        # SQLite: when its write lock is free that moment (see the next test)
        ("sqlite:///{tmp}/opengroup.db", True, 200, True),
        ("sqlite:///{tmp}/opengroup.db", True, 0, False),  # no writes on the loop at all
        ("sqlite:///{tmp}/opengroup.db", False, 200, False),
        ("postgresql://postgres@127.0.0.1:5432/opengroup", True, 200, True),
        ("postgresql://postgres@/opengroup?host=/run/postgresql", True, 200, True),
        ("postgresql://postgres@127.0.0.1:5432/opengroup", False, 200, False),
        ("postgresql://postgres@db.internal:5432/opengroup", True, 200, False),  # a network wait
    ],
)
def test_admissions_run_on_the_event_loop_where_reads_do(
    tmp_path: Path, url: str, reads_on_loop: bool, loop_writes: int, on_loop: bool
) -> None:
    url = url.format(tmp=tmp_path)
    settings = load_settings(
        overrides={
            "data_dir": str(tmp_path),
            "database_url": url,
            "reads_on_event_loop": reads_on_loop,
        },
        env={},
    )
    # (not connected: an engine connects on first use)
    db = Database(url, loop_writes_per_second=loop_writes)
    try:
        assert process_at(db, settings, NOW).admits_on_loop is on_loop
    finally:
        db.dispose()


def test_on_sqlite_a_group_is_admitted_on_the_loop_unless_the_write_lock_is_taken(
    tmp_path: Path,
) -> None:
    """With the write lock free, the loop admits the group itself: its thread is not
    even needed (it is shut down here). With the lock held elsewhere, the loop
    writes nothing and waits for nothing: the group waits in the admissions' thread,
    and is admitted once the lock is free, each nonce once. (Past the loop's writes
    of the second, too: :meth:`Database.one_write_at_once`, tested with posts.)"""
    db = Database(f"sqlite:///{tmp_path / 'opengroup.db'}", loop_writes_per_second=10)
    migrate.upgrade(db)
    with db.write() as conn:  # (signers seen lately: none to record in a thread)
        for who in (ALICE, BOB):
            conn.execute(insert(users).values(session_id=who, first_seen=1.0, last_seen=NOW))
    settings = load_settings(overrides={"data_dir": str(tmp_path)}, env={})

    async def admitted_together(process: Users, group: list[SignedRequest]) -> list[Any]:
        return await asyncio.gather(*(process.admit_soon(r) for r in group), return_exceptions=True)

    async def on_the_loop() -> None:
        on_loop = process_at(db, settings, NOW)
        assert on_loop.admits_on_loop
        on_loop._thread.close()  # (any hand-off to it would now fail)
        first = [request(ALICE), request(BOB)]
        assert [a.session_id for a in await admitted_together(on_loop, first)] == [ALICE, BOB]

        waiting = process_at(db, settings, NOW)
        taken, go = threading.Event(), threading.Event()
        holder = threading.Thread(target=hold_the_write_lock, args=(db, taken, go))
        holder.start()
        taken.wait()
        answers = asyncio.ensure_future(admitted_together(waiting, [request(CAROL), first[0]]))
        await asyncio.sleep(0.2)
        assert not answers.done()  # (the loop kept turning: this sleep ended)
        go.set()
        carol, replay = await answers
        holder.join()
        assert isinstance(carol, User) and carol.session_id == CAROL
        assert isinstance(replay, NotFresh)  # (first[0] again)

        await waiting.close()

    try:
        asyncio.run(on_the_loop())
        assert nonces_stored(db) == 3
    finally:
        db.dispose()


def hold_the_write_lock(db: Database, taken: threading.Event, go: threading.Event) -> None:
    with db.write():
        taken.set()
        go.wait(10)


def nonces_stored(db: Database) -> int:
    with db.read() as conn:
        return conn.execute(select(func.count()).select_from(request_nonces)).scalar_one()
