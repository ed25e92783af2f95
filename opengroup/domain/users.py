"""Users of the community API: who signed a request, under which keys they are
known, and the link from a Session id to its blinded id.

An operator or moderator names people by their Session id (``05...``), but
today's clients sign in with a blinded id (``15...``) that only the server
with this key can derive from it (:mod:`opengroup.blinding`). Naming a
Session id records the link, so a role or ban given to it applies to the
blinded id whenever that first appears; a blinded id given directly applies
to it alone.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection

from opengroup import blinding
from opengroup.config import Settings
from opengroup.domain.errors import Banned, InvalidInput, NotFresh, Refusal
from opengroup.domain.signed_requests import SignedRequest
from opengroup.storage import people, roomdetails
from opengroup.storage.batching import Batcher
from opengroup.storage.database import Database, WriteOnEventLoop
from opengroup.threads import Threads

# Requests admitted by one set of statements (a larger group takes several): their
# keys stay well within both databases' limits on a statement's parameters.
ADMISSIONS_PER_STATEMENT = 256
# Expired nonces an admission deletes for each request it admits: the store sheds as
# many as it gains, a little at a time in the admissions' own write (a pruning pass
# deleting a busy server's ten minutes of them at once held the write lock for
# seconds), and a backlog shrinks while requests come in.
EXPIRED_NONCES_CLEARED_PER_REQUEST = 2


@dataclass(frozen=True)
class User:
    """The signer of a request: their id, and every key they are known under here."""

    session_id: str
    keys: tuple[str, ...]

    @property
    def blinded(self) -> bool:
        return self.session_id.startswith("15")


def parse_session_id(value: object, field: str = "session id") -> str:
    """A ``05`` Session id or a ``15`` blinded id: 66 hex digits (folded to lower case)."""
    if isinstance(value, str) and len(value) == 66 and value[:2] in ("05", "15"):
        try:
            key = bytes.fromhex(value[2:])  # (fromhex skips spaces: hence the length check)
        except ValueError:
            key = b""
        if len(key) == 32:
            return value.lower()
    raise InvalidInput(f"{field} must be 66 hex digits starting with 05 or 15")


@dataclass
class _Sightings:
    """The signers an admission group is to record: those new (with the Session ids
    linked to each), and those last seen long enough ago (``due``)."""

    new: dict[str, list[str]] = field(default_factory=dict)
    due: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.new or self.due)


class Users:
    """Admitting signed requests, and linking Session ids to blinded ids."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        server_public_key: bytes,
        clock: Callable[[], float],
    ) -> None:
        self.db = db
        self.settings = settings
        self.server_public_key = server_public_key
        self.clock = clock
        # One group of admissions at a time per process; those that wait meanwhile are
        # the next group. Its own thread, so request threads never hold it up.
        self._admissions: Batcher[SignedRequest, User] = Batcher(self._admit_group, 1)
        self._thread = Threads(1, "admissions")
        # Whether a group's admission runs on the event loop, where the loop reads too:
        # on PostgreSQL (one statement, no lock held past it; no network wait), and
        # on SQLite when it may write there at once (else in the admissions' thread,
        # which waits for the write lock). See _admit_group.
        self.admits_on_loop = settings.effective_reads_on_event_loop and (
            db.writes_on_loop or not db.is_sqlite
        )
        # When the last nonce kept without its request's time expires (0: there are
        # none; inf: not read yet). Only the upgrade to schema revision 0006 and the
        # pysogs import keep such nonces: the former before the server starts, the
        # latter maybe while it runs (read again by every pruning pass).
        self._untimed_until = math.inf
        # The nonces of requests signed before this time are deleted, as far as this
        # process knows: its deletions search from here.
        self._cleared_before = 0

    def prune_nonces(self, most: int, signed_from: int = 0) -> tuple[int, int]:
        """One write of a pruning pass: delete up to ``most`` expired nonces, of requests
        signed from ``signed_from`` on (a pass begins at 0: a nonce another process was
        deleting is left if its transaction failed); how many, and where the pass's next
        write is to look from."""
        now = self.clock()
        cut = self._signed_before(now)
        with self.db.write() as conn:
            signed = people.clear_expired_nonces(conn, signed_from, cut, most)
            count = len(signed)
            if count < most:
                count += people.clear_expired_untimed_nonces(conn, now, most - count)
                self._untimed_until = people.untimed_nonces_until(conn) or 0.0
        return count, self._cleared(signed, cut, most)

    def _signed_before(self, now: float) -> int:
        """The nonces of requests signed before this time can go: those requests are
        outside the window now, and will stay so."""
        return math.floor(now) - self.settings.request_time_window_seconds

    def _cleared(self, signed: list[int], cut: int, most: int) -> int:
        """How far a committed deletion of expired nonces reached, noted: all of them
        before ``cut`` if it deleted fewer than ``most``, else those before the latest
        it deleted (it deletes the oldest first)."""
        if len(signed) < most:
            reached = cut
        elif signed:
            reached = max(signed)
        else:  # (none looked for)
            return self._cleared_before
        self._cleared_before = max(self._cleared_before, reached)
        return reached

    def admit(self, signed: SignedRequest) -> User:
        """The user behind a request whose signature checked out: 425 if its nonce was
        used before, 403 if they are banned from the server. Records the nonce (until
        the request's timestamp leaves the window), a banned user's too (the request
        must not get in by a replay once the ban is over), and when the user was last
        seen."""
        admitted = self.admit_all([signed])[0]
        if isinstance(admitted, Refusal):
            raise admitted
        return admitted

    async def admit_soon(self, signed: SignedRequest) -> User:
        """:meth:`admit`, from the event loop, together with the other requests waiting
        to be admitted in this process at that moment: one write for them all (on SQLite
        one turn of the write lock instead of one each, in the admissions' thread; on
        PostgreSQL one statement, on the event loop)."""
        return await self._admissions.submit(signed)

    async def close(self) -> None:
        await self._admissions.close()
        self._thread.close()

    async def _admit_group(self, group: list[SignedRequest]) -> list[User | Refusal]:
        """On the loop where it may (:attr:`admits_on_loop`), else in the admissions'
        thread. On PostgreSQL one statement, one round trip on the loop as its reads
        are: it waits for no lock held past a statement, only for another statement
        taking the same nonce. On SQLite one write, if it can be had at once (the
        write lock free this moment, and the loop's writes a second not spent:
        :meth:`Database.one_write_at_once`); else the thread waits for the lock. The
        hand-offs to a thread and back cost more than the write, above all when
        requests come one at a time; the loop's writes a second leave the rest of a
        burst to the thread, which writes beside the loop. The sightings' write
        waits on users' row locks: always a thread's."""
        now = self.clock()
        if self.admits_on_loop and (
            not self.db.is_sqlite or len(group) <= ADMISSIONS_PER_STATEMENT
        ):
            try:
                with self._write_on_loop():
                    admitted, sightings = self._admit_without_sightings(group, now)
            except WriteOnEventLoop:  # (SQLite's write lock was taken: nothing was written)
                pass
            else:
                if sightings:
                    await self._thread.run(self._record_sightings, sightings, now)
                return admitted
        return await self._thread.run(self.admit_all, group)

    def _write_on_loop(self) -> contextlib.AbstractContextManager[None]:
        """Where the loop writes a group's admission: SQLite's one write only if it can
        be had at once; PostgreSQL's as any other."""
        if self.db.is_sqlite:
            return self.db.one_write_at_once()
        return contextlib.nullcontext()

    def admit_all(self, requests: Sequence[SignedRequest]) -> list[User | Refusal]:
        """Admit the requests: each one's user, or its refusal (a nonce used twice in the
        group is refused the second time). One write for up to
        ``ADMISSIONS_PER_STATEMENT`` requests (on PostgreSQL one statement, see
        :func:`people.admit`), and one more if any signer is new or due to be marked as
        seen again."""
        now = self.clock()
        admitted, sightings = self._admit_without_sightings(requests, now)
        self._record_sightings(sightings, now)
        return admitted

    def _admit_without_sightings(
        self, requests: Sequence[SignedRequest], now: float
    ) -> tuple[list[User | Refusal], _Sightings]:
        """:meth:`admit_all` but for the write of the signers' sightings: those to record."""
        admitted: list[User | Refusal] = []
        sightings = _Sightings()
        for start in range(0, len(requests), ADMISSIONS_PER_STATEMENT):
            chunk = requests[start : start + ADMISSIONS_PER_STATEMENT]
            admitted += self._admit_chunk(chunk, now, sightings)
        return admitted, sightings

    def _record_sightings(self, sightings: _Sightings, now: float) -> None:
        """Record new signers, and that those due were seen ``now`` (one write, if any)."""
        if not sightings:
            return
        with self.db.write() as conn:
            for session_id, linked in sightings.new.items():
                self._first_seen(conn, session_id, linked, now)
            # (sorted: rows locked in one order)
            people.touch_users(conn, sorted(sightings.due), now)

    def _admit_chunk(
        self, requests: Sequence[SignedRequest], now: float, sightings: _Sightings
    ) -> list[User | Refusal]:
        """:meth:`admit_all` for at most ``ADMISSIONS_PER_STATEMENT`` requests; their
        signers' sightings to record go into ``sightings``."""
        signers = {s.session_id: self._signer(s.session_id) for s in requests}
        most = EXPIRED_NONCES_CLEARED_PER_REQUEST * len(requests)
        cut = self._signed_before(now)
        with self.db.one_statement_write() as conn:
            done = people.admit(
                conn,
                [(s.timestamp, s.nonce) for s in requests],
                list(signers.values()),
                now,
                clear_from=self._cleared_before,
                clear_before=cut,
                most_cleared=most,
            )
            fresh = done.fresh
            if fresh and self._untimed_nonces_live(conn, now):
                seen = people.known_untimed_nonces(conn, [nonce for _, nonce in fresh], now)
                fresh = {key for key in fresh if key[1] not in seen}
        self._cleared(done.cleared, cut, most)
        admitted: list[User | Refusal] = []
        for signed in requests:
            key = (signed.timestamp, signed.nonce)
            if key not in fresh:
                admitted.append(NotFresh("Invalid authentication: X-SOGS-Nonce cannot be reused"))
                continue
            fresh.discard(key)  # (a second use in this group is a replay)
            signer = signers[signed.session_id]
            admitted.append(self._admit(signer, done.facts[signer.session_id], now, sightings))
        return admitted

    def _untimed_nonces_live(self, conn: Connection, now: float) -> bool:
        if self._untimed_until == math.inf:
            self._untimed_until = people.untimed_nonces_until(conn) or 0.0
        return now < self._untimed_until

    def _admit(
        self,
        signer: people.Signer,
        known: people.SignerFacts,
        now: float,
        sightings: _Sightings,
    ) -> User | Refusal:
        """The signer of a fresh request, or its refusal; a new signer, or one last seen
        long enough ago, goes into ``sightings``."""
        if known.globally_banned:  # (refused, but the nonce stays used)
            return Banned("Banned")
        if known.last_seen is None:
            sightings.new[signer.session_id] = known.linked_session_ids
        elif now - known.last_seen >= self.settings.activity_interval_seconds:
            sightings.due.add(signer.session_id)
        return User(signer.session_id, (*signer.keys, *known.linked_session_ids))

    def _signer(self, session_id: str) -> people.Signer:
        blinded_abs = blinding.blinded_abs(session_id) if session_id.startswith("15") else None
        return people.Signer(session_id, blinded_abs, self._own_keys(session_id))

    def user(self, conn: Connection, session_id: str) -> User:
        """The person ``session_id`` names, with every key they are known under here: a
        blinded id with the Session ids linked to it; a Session id with both blinded ids
        it may sign in as (so a role or ban given to either form reaches the other)."""
        return self._user(conn, session_id)

    def _user(self, conn: Connection, session_id: str) -> User:
        keys = self._own_keys(session_id)
        if session_id.startswith("15"):
            keys += people.session_ids_of_blinded(conn, blinding.blinded_abs(session_id))
        return User(session_id, tuple(keys))

    def _own_keys(self, session_id: str) -> list[str]:
        """The id, and for a ``05`` id both blinded ids it may sign in as."""
        keys = [session_id]
        if session_id.startswith("05") and self.server_public_key:
            with contextlib.suppress(ValueError):  # not a point: no blinded id matches it
                keys += blinding.blinded_candidates(session_id, self.server_public_key)
        return keys

    def _first_seen(
        self, conn: Connection, session_id: str, linked: Sequence[str], now: float
    ) -> None:
        """Record a new signer. Staff named by a linked ``05`` id now show under this
        blinded id: the rooms they staff count that as a change of their details."""
        if not people.insert_user(conn, session_id, now) or not session_id.startswith("15"):
            return
        people.set_seen_blinded_id(conn, blinding.blinded_abs(session_id), session_id)
        if linked:
            staffed = people.rooms_staffed_by(conn, linked)
            if staffed is None:
                staffed = [room.id for room in roomdetails.all_rooms(conn)]
            for room_id in staffed:
                roomdetails.bump_info_updates(conn, room_id)

    def link(self, conn: Connection, session_id: str) -> None:
        """Record the blinded form of a ``05`` Session id named as staff or banned (and
        the blinded id it was already seen under, if it was); nothing for a ``15`` id."""
        if not session_id.startswith("05"):
            return
        positive, negative = blinding.blinded_candidates(session_id, self.server_public_key)
        abs_id = blinding.blinded_abs(positive)
        people.link_session_id(conn, session_id, abs_id)
        for candidate in (positive, negative):
            if people.user_last_seen(conn, candidate) is not None:
                people.set_seen_blinded_id(conn, abs_id, candidate)

    def link_named_people(self) -> int:
        """Link every Session id already named as staff or banned (as by the v2 API or an
        older version), or holding a v2 token claimed before claims linked them; run at
        start-up. How many were linked."""
        with self.db.write() as conn:
            unlinked = people.unlinked_session_ids(conn)
            for session_id in unlinked:
                try:
                    self.link(conn, session_id)
                except ValueError:  # not a point: no blinded id can ever match it
                    continue
        return len(unlinked)

    def display_ids(self, conn: Connection, keys: Sequence[str]) -> dict[str, str]:
        """How staff lists show each key: a ``05`` id as the blinded id it was seen
        under once it was, otherwise as it is."""
        seen = people.seen_blinded_ids(conn, [k for k in keys if k.startswith("05")])
        return {key: seen.get(key, key) for key in keys}
