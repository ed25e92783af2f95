"""The latest changes of each room, kept per process for the clients that poll it.

Today's clients poll each room they are in every few seconds with
``messages/since/<seqno>``, each from the seqno its last poll ended at. In a
busy room most of them ask for the same few dozen changes, and without this
each poll read them from the database again: in scenario (h), some fifty
messages a poll, and on PostgreSQL that read, waited for on the event loop,
was a quarter of the loop's time.

Why what is kept stays right. Every change to a message (post, edit, deletion,
reaction change) gives the message the room's next seqno, taken under the
lock of the room's row and committed with the change (the post writer's
``take_ids``, :func:`opengroup.storage.queries.next_seqno`). So a snapshot
whose room shows seqno ``H`` holds every change up to ``H``; a message at a
given seqno never changes; and of a message, the version with the highest
seqno is its current one.

A room's window is the room as one snapshot showed it, for the seqnos
``(lo, hi]``: for every message whose version in that snapshot has a seqno in
that range, that version. A poll after ``S`` whose room view showed ``H`` is
answered from the window when ``lo <= S`` and ``H <= hi``, filtered for the
reader as the statement filters (:func:`opengroup.storage.posts.shows_change`):
on PostgreSQL, where each statement sees every commit before it began, that is
the page a statement would give at ``hi``; on SQLite, where a batch's reads
share one read transaction begun with the view, only when ``H == hi``, so that
the page and the reactors read after it come from the same snapshot.
Otherwise the window first reads every change after ``hi`` (whispers too; the
reader's filter comes after), in statements begun after the view was read and
so in snapshots at least as new; once one brings fewer rows than asked for,
the window is complete up to ``H``. The read is taken in only if the window is
still as it was when the read began (two polls may read at once): a snapshot
plus what a later one adds past its end is the later snapshot, but not the
other way round.

A reader further behind than the window reaches (``lo``, some :data:`SPAN` to
four times that many seqnos back) gets the database's own page, as does every
reader when the room changes faster than the window can follow, or its
messages outweigh half of :data:`MAX_BYTES`.

The v2 API's polls ask for the live messages past a server id, not for changes
past a seqno (:data:`opengroup.storage.paging.MESSAGES_AFTER`). A window holds
the current version of every message posted within it (a post is a change), and
a room's server ids and creation seqnos are taken together, in the same order
(the post writer's ``take_ids``): so if the window holds the message with id
``n``, posted within it, it holds every message past ``n``, and answers every
cursor from ``n - 1`` on (:meth:`RecentChanges.live_after`).

A room deleted and made again under the same token is another room: windows
are known by the room's token and its creation time. The imports write
outside these rules (rows under the seqnos they bring, deletions blanked
without a new seqno): a server that is running when they write into a room
it serves may answer from its windows without those rows until it restarts
(README, "Moving from pysogs").
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from sqlalchemy import Connection

from opengroup.storage import posts
from opengroup.storage.posts import StoredMessage
from opengroup.storage.roomdetails import RoomDetails

# How far behind the room's seqno a window reaches when it is made, and the largest
# gap it reads to catch up (more than that, and it starts again). A window holds
# four times that many versions at most (superseded ones counted: past it, the
# oldest go).
SPAN = 256
# What the windows of one process hold at most, counted by the bytes of messages'
# text (the least recently polled rooms' windows go first).
MAX_BYTES = 16 * 1024 * 1024
# Changes read in one statement. A window reads more in further statements, each
# after the last change the one before brought, up to twice SPAN changes or
# MAX_BYTES: a room of the largest messages (some 133 kB of text each) never has
# more than that read for it at once.
READ_ROWS = 64
_ROW_OVERHEAD = 200  # bytes a kept row costs besides its data and signature

RoomKey = tuple[str, float]  # the room's token, when it was made
# Reads the room's changes after a seqno, at most so many, in seqno order, whoever may
# see them (posts.every_change_since, on the connection of the poll that asks).
ReadChanges = Callable[[int, int], list[StoredMessage]]
Page = TypeVar("Page")


class _Asked(NamedTuple):
    """A page of changes as a reader asks for it."""

    seqno: int
    limit: int
    keys: Sequence[str]
    moderator: bool
    with_reactions: bool

    def shows(self, message: StoredMessage) -> bool:
        """Whether the page shows ``message`` (:func:`opengroup.storage.posts.shows_change`)."""
        return posts.shows_change(
            message, self.seqno, self.keys, self.moderator, self.with_reactions
        )


@dataclass
class _Window:
    """A room's changes with seqnos in ``(lo, hi]`` (see the module docstring)."""

    lo: int
    hi: int
    rows: list[StoredMessage] = field(default_factory=list)  # seqno order
    seqnos: list[int] = field(default_factory=list)  # each row's seqno, for bisect
    current: dict[int, StoredMessage] = field(default_factory=dict)  # id -> newest held
    # The first and last server ids of the messages posted within the window (None:
    # none was), for the v2 API's pages.
    first_posted: int | None = None
    last_posted: int | None = None
    weight: int = 0

    # Bumped at each change of what the window holds: a read merges only into the
    # window, and the state of it, that it was begun from.
    generation: int = 0

    def answer(self, asked: _Asked, head: int, *, exact: bool) -> list[StoredMessage] | None:
        """The page of a poll whose view showed ``head``, if the window holds it, else
        None; ``exact``: only if it holds nothing past ``head`` (see
        :meth:`RecentChanges.changes_since`)."""
        if asked.seqno < self.lo or (head != self.hi if exact else head > self.hi):
            return None
        return self.page(asked)

    def page(self, asked: _Asked) -> list[StoredMessage]:
        found: list[StoredMessage] = []
        for n in range(bisect_right(self.seqnos, asked.seqno), len(self.rows)):
            message = self.rows[n]
            if self.current[message.id] is not message:
                continue  # superseded by a later change, further on
            if asked.shows(message):
                found.append(message)
                if len(found) == asked.limit:
                    break
        return found

    def extend(self, read: list[StoredMessage], head: int, complete: bool) -> None:
        """Take the changes read after ``hi``; ``complete``: nothing more was there when
        they were read, and the read began after a view showed ``head``."""
        self.generation += 1
        for message in read:
            self.rows.append(message)
            self.seqnos.append(message.seqno)
            self.current[message.id] = message
            self.weight += _weight(message)
            if message.seqno_created > self.lo:
                self._posted(message.id)
        if read:
            self.hi = max(self.hi, read[-1].seqno)
        if complete:
            self.hi = max(self.hi, head)

    def drop_oldest(self, keep: int) -> None:
        """Superseded versions out, then the oldest until ``keep`` rows are left."""
        self.generation += 1
        rows = [m for m in self.rows if self.current[m.id] is m]
        if len(rows) > keep:
            dropped, rows = rows[: len(rows) - keep], rows[len(rows) - keep :]
            self.lo = dropped[-1].seqno
            for message in dropped:
                del self.current[message.id]
        self.rows = rows
        self.seqnos = [m.seqno for m in rows]
        self.weight = sum(_weight(m) for m in rows)
        self.first_posted = self.last_posted = None
        for message in rows:
            if message.seqno_created > self.lo:
                self._posted(message.id)

    def _posted(self, message_id: int) -> None:
        """Count ``message_id`` among the messages posted within the window."""
        if self.first_posted is None or message_id < self.first_posted:
            self.first_posted = message_id
        if self.last_posted is None or message_id > self.last_posted:
            self.last_posted = message_id

    def live_after(self, after: int, limit: int, head: int) -> list[StoredMessage] | None:
        """:data:`opengroup.storage.paging.MESSAGES_AFTER` for a poll whose view
        showed ``head``: the live messages past ``after`` that are not whispers,
        oldest first, at most ``limit``; None if the window does not hold them all
        (see the module docstring)."""
        if head > self.hi or self.first_posted is None or self.last_posted is None:
            return None
        if after < self.first_posted - 1:
            return None  # some were posted before the window
        found: list[StoredMessage] = []
        for message_id in range(after + 1, self.last_posted + 1):
            message = self.current.get(message_id)
            if message is None or message.deleted or not posts.is_for_everyone(message):
                continue
            found.append(message)
            if len(found) == limit:
                break
        return found


def _weight(message: StoredMessage) -> int:
    return len(message.data) + len(message.signature) + _ROW_OVERHEAD


class RecentChanges:
    """The windows of recently polled rooms (least recently polled dropped first).
    Shared by the event loop and the request threads."""

    def __init__(
        self, span: int = SPAN, max_bytes: int = MAX_BYTES, read_rows: int = READ_ROWS
    ) -> None:
        self._span = span
        self._read_ahead = 2 * span
        self._max_rows = 4 * span
        self._max_bytes = max_bytes
        self._read_rows = read_rows
        self._windows: OrderedDict[RoomKey, _Window] = OrderedDict()
        self._lock = threading.Lock()

    def changes_since(
        self,
        conn: Connection,
        room: RoomDetails,
        seqno: int,
        limit: int,
        keys: Sequence[str],
        moderator: bool,
        *,
        with_reactions: bool,
    ) -> list[StoredMessage]:
        """:func:`opengroup.storage.posts.changes_since` for ``room`` as read before
        this call on ``conn`` (its seqno ``head``): from the room's window where it
        holds them, else from the database.

        On PostgreSQL each statement of ``conn`` sees every commit before it began, so
        a window that holds changes past ``head`` (another request read them since)
        answers as a statement would now, and what the caller reads next (the
        reactors) is at least as new. On SQLite ``conn`` may be in a read transaction
        begun with the view: then the window answers only if it holds exactly up to
        ``head``, so that the page and what the caller reads next agree."""
        asked = _Asked(seqno, limit, keys, moderator, with_reactions)
        head, exact = room.seqno, conn.dialect.name == "sqlite"
        page = self._from_window(
            (room.id, room.created_at),
            head,
            lambda window: window.answer(asked, head, exact=exact),
            lambda after, most: posts.every_change_since(conn, room.id, after, most),
            reader_seqno=seqno,
        )
        if page is None:
            page = posts.changes_since(
                conn, room.id, seqno, limit, keys, moderator, with_reactions=with_reactions
            )
        return page

    def live_after(
        self, room: RoomKey, head: int, after: int, limit: int, read: ReadChanges
    ) -> list[StoredMessage] | None:
        """The v2 API's page of ``room`` (:data:`opengroup.storage.paging.MESSAGES_AFTER`)
        for a poll whose room head showed the seqno ``head``: the live messages past
        ``after`` that are not whispers, oldest first, at most ``limit``; None where
        the window does not hold them (the caller reads the database's page). The
        poll's reads, ``read`` among them, come from snapshots at least as new as its
        head's; the page may be newer still (another poll's read), as the poll's own
        reads after the head may be."""
        return self._from_window(room, head, lambda w: w.live_after(after, limit, head), read)

    def _from_window(
        self,
        key: RoomKey,
        head: int,
        answer: Callable[[_Window], Page | None],
        read: ReadChanges,
        *,
        reader_seqno: int | None = None,
    ) -> Page | None:
        """A poll's page from the room's window (None: the database's is wanted): at
        once if the window ``answer``s it, else after reading the changes past the
        window's end with ``read``. ``reader_seqno``: the seqno the reader is at
        (None: not known, the v2 API's cursors are ids)."""
        with self._lock:
            window = self._windows.get(key)
            page = None if window is None else answer(window)
            if page is not None:
                self._windows.move_to_end(key)
                return page
            if window is not None and head <= window.hi:
                return None  # the window is as new as the poll, and does not hold it
            seen, seen_generation = window, 0 if window is None else window.generation
            start = self._read_from(window, reader_seqno, head)
        if start is None:
            return None
        changes, complete = self._read_changes(read, start)
        with self._lock:
            window = self._windows.get(key)
            if window is not seen or (window is not None and window.generation != seen_generation):
                # Another read changed the window meanwhile: this one is dropped, so that
                # every read is taken into the very state it was begun from.
                return None if window is None else answer(window)
            if window is None or start != window.hi:  # (none, or too far behind: anew)
                window = self._windows[key] = _Window(lo=start, hi=start)
            window.extend(changes, head, complete)
            self._windows.move_to_end(key)
            self._bound(window)
            return answer(window)

    def _read_changes(self, read: ReadChanges, start: int) -> tuple[list[StoredMessage], bool]:
        """The room's changes after ``start``, in seqno order, and whether that is all
        of them (each statement sees every commit before it began, so a later one may
        bring a newer version of a message an earlier one brought: the window keeps the
        newer)."""
        changes: list[StoredMessage] = []
        weight = 0
        after = start
        while len(changes) < self._read_ahead and weight <= self._max_bytes // 2:
            more = read(after, self._read_rows)
            changes += more
            if len(more) < self._read_rows:
                return changes, True
            weight += sum(_weight(message) for message in more)
            after = more[-1].seqno
        return changes, False

    def _read_from(self, window: _Window | None, seqno: int | None, head: int) -> int | None:
        """Where to read the room's changes from so that its window holds a poll at
        ``seqno`` (None: not known) whose view showed ``head``: the window's end, or
        ``SPAN`` before ``head`` for a window made anew; or None for the database's own
        page: the reader is further behind than the window reaches, or than a new one
        would."""
        if window is not None and head - window.hi <= self._span:
            return window.hi if seqno is None or window.lo <= seqno else None
        if seqno is not None and head - seqno > self._span:
            return None
        return max(0, head - self._span)

    def _bound(self, window: _Window) -> None:
        """Keep ``window`` within its rows and half the bytes, then every window within
        the bytes (the least recently polled go first)."""
        if len(window.rows) > self._max_rows:
            window.drop_oldest(self._max_rows // 2)
        while window.weight > self._max_bytes // 2 and window.rows:
            window.drop_oldest(len(window.rows) // 2)
        total = sum(w.weight for w in self._windows.values())
        while total > self._max_bytes and len(self._windows) > 1:
            _, dropped = self._windows.popitem(last=False)
            total -= dropped.weight
