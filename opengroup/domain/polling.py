"""Polling: ``compact_poll``, the hot path (see :mod:`opengroup.storage.pollreader`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opengroup import crypto
from opengroup.config import Settings
from opengroup.domain.errors import NoSuchRoom, Refusal
from opengroup.domain.parts import (
    MAX_PAGE,
    ActivityRecords,
    Member,
    OnDemandPollReader,
    member_of,
    parse_token,
)
from opengroup.domain.values import could_be_room_id
from opengroup.storage.pollreader import Pages, PollLookup
from opengroup.storage.queries import Message
from opengroup.storage.roomhead import TokenHolder
from opengroup.threads import Threads


@dataclass(frozen=True)
class PollRequest:
    """One ``compact_poll`` entry: a room, the caller's token there, and their cursors."""

    room_id: str
    token: str | None
    messages_after: int | None
    deletions_after: int | None


@dataclass(frozen=True)
class RoomPoll:
    """What one ``compact_poll`` entry answers for a room."""

    messages: list[Message]
    deletions: list[tuple[int, int]]
    moderators: list[str]


class Polling:
    """Many rooms' news in one request."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float],
        poll_reader: OnDemandPollReader,
        activity: ActivityRecords,
        threads: Threads,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.poll_reader = poll_reader
        self.activity = activity
        self.threads = threads

    async def poll(self, requests: Sequence[PollRequest]) -> list[RoomPoll | Refusal]:
        """The entries of one ``compact_poll``, in order, read together (see the
        readers for what shares a snapshot). An entry that is refused gets its error;
        the others still get their answer.

        The hot path: it runs on the event loop and reads through
        :mod:`opengroup.storage.pollreader`, not SQLAlchemy. Only a stale activity
        record (at most once per ``activity_interval_seconds`` per member and room)
        is written, in a worker thread.
        """
        now = self.clock()
        lookups: list[PollLookup] = []
        refused: dict[int, Refusal] = {}
        for index, request in enumerate(requests):
            try:
                if not could_be_room_id(request.room_id):
                    raise NoSuchRoom(request.room_id)
                token_hash = crypto.token_hash(parse_token(request.token))
            except Refusal as exc:
                refused[index] = exc
                continue
            lookups.append(
                PollLookup(
                    request.room_id, token_hash, request.messages_after, request.deletions_after
                )
            )
        settings = self.settings
        pages = Pages(
            MAX_PAGE,
            settings.deletions_format.by_number,
            settings.max_poll_items,
            settings.max_poll_answer_bytes,
        )
        found = iter(await self.poll_reader.get().read(lookups, now, pages) if lookups else [])
        results: list[RoomPoll | Refusal] = []
        seen: list[tuple[Member, TokenHolder | None]] = []
        for index, request in enumerate(requests):
            if index in refused:
                results.append(refused[index])
                continue
            rows = next(found)
            try:
                if not rows.room_exists:
                    raise NoSuchRoom(request.room_id)
                member = member_of(request.room_id, rows.holder)
            except Refusal as exc:
                results.append(exc)
                continue
            seen.append((member, rows.holder))
            results.append(RoomPoll(rows.messages, rows.deletions, rows.moderators))
        if self.activity.stale(seen, now):
            await self.threads.run(self.activity.note_all, seen, now)
        return results
