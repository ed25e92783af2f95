"""The reactors of the messages a page shows, kept between requests while unchanged.

Every change to a message's reactions gives the message the room's next seqno
(a reaction added or taken back, a moderator's clearing, the message's
deletion: :mod:`opengroup.domain.posts`, :func:`opengroup.storage.queries.mark_deleted`).
So the reactors read for a message at one seqno hold for as long as the message
keeps it, and every client that polls after a reaction is read the same list:
the message comes back to each of them with its new seqno. Without this, each
of those polls read every reactor of every such message again (in scenario (i),
some twenty messages of fifteen reactors each, a fifth of a poll's time on
PostgreSQL).

A page's messages are read before their reactors, in the same request: on
PostgreSQL each statement sees what was committed before it began, so the
reactors kept for a seqno may be a later change's (never an earlier one's),
which the next page brings under its own seqno anyway. A message is known by
its room, its id and when it was posted (a room deleted and made again under
the same token numbers its messages afresh).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from sqlalchemy import Connection

from opengroup.storage import posts
from opengroup.storage.posts import StoredMessage

# Reactors kept per process, counted one per reactor (a message without any counts
# one): some 120 bytes each, so about 6 MB at most.
MAX_KEPT = 50_000

Reactors = dict[str, list[str]]  # each kind, in order of first use: its reactors, oldest first


class ReactorsCache:
    """The reactors of recently read messages, by the message's seqno (least recently
    used dropped first). Shared by the event loop and the request threads."""

    def __init__(self, max_kept: int = MAX_KEPT) -> None:
        self._max_kept = max_kept
        self._kept: OrderedDict[tuple[str, int], tuple[int, float, Reactors, int]] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    def of_messages(
        self, conn: Connection, room_id: str, messages: Sequence[StoredMessage]
    ) -> dict[int, Reactors]:
        """The reactors of each live message of ``messages`` that has any, by id (as
        :func:`posts.reactors_by_message`): those kept for its seqno, the others read
        (one statement) and kept."""
        found: dict[int, Reactors] = {}
        missing: list[StoredMessage] = []
        with self._lock:
            for message in messages:
                if message.deleted:
                    continue
                key = (room_id, message.id)
                kept = self._kept.get(key)
                if kept is None or kept[0] != message.seqno or kept[1] != message.posted:
                    missing.append(message)
                    continue
                self._kept.move_to_end(key)
                if kept[2]:
                    found[message.id] = kept[2]
        if not missing:
            return found
        read = posts.reactors_by_message(conn, room_id, [m.id for m in missing])
        with self._lock:
            for message in missing:
                reactors = read.get(message.id, {})
                self._keep((room_id, message.id), message, reactors)
        found.update(read)
        return found

    def _keep(self, key: tuple[str, int], message: StoredMessage, reactors: Reactors) -> None:
        weight = max(1, sum(len(who) for who in reactors.values()))
        if weight > self._max_kept // 4:
            return  # (one message must not push out all the others)
        old = self._kept.pop(key, None)
        if old is not None:
            self._count -= old[3]
        self._kept[key] = (message.seqno, message.posted, reactors, weight)
        self._count += weight
        while self._count > self._max_kept:
            _, dropped = self._kept.popitem(last=False)
            self._count -= dropped[3]
