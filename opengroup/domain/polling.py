"""Polling: ``compact_poll``, the hot path (see :mod:`opengroup.storage.pollreader`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anyio.to_thread

from opengroup import crypto
from opengroup.domain.errors import NoSuchRoom, Refusal
from opengroup.domain.parts import MAX_PAGE, CommunityPart, Member, parse_token
from opengroup.storage.pollreader import PollLookup
from opengroup.storage.queries import Message
from opengroup.storage.roomhead import TokenHolder


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


class Polling(CommunityPart):
    """Many rooms' news in one request."""

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
                if "\x00" in request.room_id:  # in no room id; PostgreSQL text cannot hold it
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
        by_number = self.settings.deletions_format.by_number
        found = iter(
            await self.poll_reader().read(lookups, now, MAX_PAGE, by_number) if lookups else []
        )
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
                member = self._member(request.room_id, rows.holder)
            except Refusal as exc:
                results.append(exc)
                continue
            seen.append((member, rows.holder))
            results.append(RoomPoll(rows.messages, rows.deletions, rows.moderators))
        if self._stale_activities(seen, now):
            await anyio.to_thread.run_sync(self._note_activities, seen, now)
        return results
