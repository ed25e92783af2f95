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
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

from sqlalchemy import Connection

from opengroup.storage import posts
from opengroup.storage.posts import StoredMessage

# Reactors kept per process, counted one per reactor (a message without any counts
# one): some 200 bytes each with the summaries shown of them, so about 10 MB at most.
MAX_KEPT = 50_000

Reactors = dict[str, list[str]]  # each kind, in order of first use: its reactors, oldest first


class ReactionSummary(NamedTuple):
    """One kind of reaction to a message as a page shows it (a named tuple: one is
    built for each kind on each message of a page)."""

    place: int  # among the message's kinds, by first use (the API's "index")
    total: int  # how many reacted so (the API's "count")
    reactors: list[str]
    you: bool  # whether the reader is among them


Summaries = Mapping[str, ReactionSummary]  # by kind, in order of first use


class MessageReactors:
    """A message's reactors as read at one seqno, and how a page shows them.

    A page shows the same summary of them to every reader who is not among them
    (the first reactors of each kind are all it names), so that summary is made
    once for each number of reactors asked for, and shared; a reader among them
    gets one of their own, which says ``you``."""

    __slots__ = ("_for_others", "by_kind", "everyone")

    def __init__(self, by_kind: Reactors) -> None:
        self.by_kind = by_kind
        self.everyone = frozenset(key for who in by_kind.values() for key in who)
        self._for_others: dict[int, Summaries] = {}

    def summaries(self, keys: frozenset[str], reactors: int) -> tuple[Summaries, bool]:
        """Each kind with its place, count, first ``reactors`` reactors and whether the
        reader (known under ``keys``) is among them; and whether the reader is among
        any."""
        if not keys.isdisjoint(self.everyone):
            return self._summarise(keys, reactors), True
        shown = self._for_others.get(reactors)
        if shown is None:
            # (two threads may both make it: the same summary, and either is kept)
            shown = self._for_others[reactors] = MappingProxyType(
                self._summarise(frozenset(), reactors)
            )
        return shown, False

    def _summarise(self, keys: frozenset[str], reactors: int) -> dict[str, ReactionSummary]:
        return {
            kind: ReactionSummary(place, len(who), who[:reactors], not keys.isdisjoint(who))
            for place, (kind, who) in enumerate(self.by_kind.items())
        }


# A message's entry, by its room and id: its seqno, when it was posted, its reactors
# (None: it had none) and its weight against MAX_KEPT.
_Kept = tuple[int, float, MessageReactors | None, int]


class ReactorsCache:
    """The reactors of recently read messages, by the message's seqno (least recently
    used dropped first). Shared by the event loop and the request threads."""

    def __init__(self, max_kept: int = MAX_KEPT) -> None:
        self._max_kept = max_kept
        self._kept: OrderedDict[tuple[str, int], _Kept] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    def of_messages(
        self, conn: Connection, room_id: str, messages: Sequence[StoredMessage]
    ) -> dict[int, MessageReactors]:
        """The reactors of each live message of ``messages`` that has any, by id: those
        kept for its seqno, the others read (one statement) and kept."""
        found: dict[int, MessageReactors] = {}
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
                if kept[2] is not None:
                    found[message.id] = kept[2]
        if not missing:
            return found
        read = posts.reactors_by_message(conn, room_id, [m.id for m in missing])
        with self._lock:
            for message in missing:
                by_kind = read.get(message.id)
                reactors = MessageReactors(by_kind) if by_kind else None
                self._keep((room_id, message.id), message, reactors)
                if reactors is not None:
                    found[message.id] = reactors
        return found

    def _keep(
        self, key: tuple[str, int], message: StoredMessage, reactors: MessageReactors | None
    ) -> None:
        weight = sum(len(who) for who in reactors.by_kind.values()) if reactors else 1
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
