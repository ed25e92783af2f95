"""Spam defences: the rules that hold back throwaway identities, each a setting, off
by default (docs/SECURITY.md "Spam defences").

- **Slow mode** (``slow_mode_seconds``, a room's own value first): one post per
  poster per room in that many seconds.
- **New posters wait** (``new_poster_wait_seconds``, a room's own value first): a
  poster must have been first seen on this server that long ago. Seen means: for a
  community API id, its first signed request; for a v2 key, its first claimed token
  (a v2 key holding a token from before that was recorded counts as seen long ago).
- **The cap on new identities** (``new_identities_per_minute``): an identity is new
  while it was first seen less than ``new_identity_seconds`` ago and has never posted
  or sent a direct message; at most that many new identities per 60 seconds may do
  so, server-wide. Once admitted, an identity is no longer new.
- **Direct messages** per sender (``dm_rate_limit_count`` per ``dm_rate_limit_seconds``).

Staff (moderators and admins of the room, or of every room) are exempt from the
posting rules. Every refusal is a 429 whose ``Retry-After`` says when the same post
would get through. The state is in the database (posts, ``users``, ``rate_events``),
so every process and server on it applies the same rules; slow mode and the wait are
judged in the post writer's transaction after the room's row is locked, so two
processes cannot both let a poster through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from opengroup.config import Settings
from opengroup.domain import limits
from opengroup.domain.errors import PostRateLimited, RateLimited
from opengroup.storage import people, queries
from opengroup.storage.database import Database
from opengroup.storage.postwriter import RoomRules

NEW_IDENTITY_WINDOW_SECONDS = 60
NEW_IDENTITIES_BUCKET = "new-identities"


class SlowModeLimited(RateLimited):
    """The poster posted in the room less than the room's slow mode ago."""


class PosterTooNew(RateLimited):
    """The poster was first seen on this server more recently than the room allows."""


class NewIdentitiesLimited(RateLimited):
    """As many new identities as the server admits per minute spoke already."""


def room_value(own: int | None, default: int) -> int:
    """A room's own value of a rule, or the server's default for it (None)."""
    return default if own is None else own


def _seconds(value: float) -> str:
    return f"{value:g} s"


@dataclass(frozen=True)
class PostRules:
    """The rules one post is judged by, in the post writer's transaction
    (:class:`opengroup.storage.postwriter.PostJudge`)."""

    rate: limits.Window
    slow_mode_seconds: int  # the server's defaults, for rooms without their own
    new_poster_wait_seconds: int
    now: float

    @classmethod
    def of(cls, settings: Settings, now: float) -> PostRules:
        rate = limits.Window(
            settings.post_rate_limit_count,
            settings.post_rate_limit_seconds,
            "posts",
            PostRateLimited,
        )
        return cls(rate, settings.slow_mode_seconds, settings.new_poster_wait_seconds, now)

    def slow_mode(self, room: RoomRules) -> int:
        return room_value(room.slow_mode_seconds, self.slow_mode_seconds)

    def wait(self, room: RoomRules) -> int:
        return room_value(room.new_poster_wait_seconds, self.new_poster_wait_seconds)

    def applies(self, room: RoomRules) -> bool:
        """Whether any rule holds back a post in a room with these rules."""
        return self.rate.enabled or self.slow_mode(room) > 0 or self.wait(room) > 0

    def posts_since(self, room: RoomRules) -> float | None:
        starts = [self.now - self.slow_mode(room)] if self.slow_mode(room) > 0 else []
        if self.rate.enabled:
            starts.append(self.rate.since(self.now))
        return min(starts) if starts else None

    def needs_first_seen(self, room: RoomRules) -> bool:
        return self.wait(room) > 0

    def judge(self, room: RoomRules, recent: Sequence[float], first_seen: float | None) -> None:
        wait = self.wait(room)
        if wait > 0 and first_seen is not None and self.now - first_seen < wait:
            left = first_seen + wait - self.now
            raise PosterTooNew(
                f"new here: this room takes posts from ids seen on this server for "
                f"{_seconds(wait)}; retry in {_seconds(round(left + 0.5))}",
                retry_after_seconds=left,
            )
        slow = self.slow_mode(room)
        if slow > 0:
            latest = max((t for t in recent if t > self.now - slow), default=None)
            if latest is not None:
                left = latest + slow - self.now
                raise SlowModeLimited(
                    f"slow mode: one post per {_seconds(slow)} in this room; "
                    f"retry in {_seconds(round(left + 0.5))}",
                    retry_after_seconds=left,
                )
        if self.rate.enabled:
            since = self.rate.since(self.now)
            self.rate.check([t for t in recent if t > since], self.now)


def post_rules(
    settings: Settings, now: float, exempt: bool, room: RoomRules | None = None
) -> PostRules | None:
    """The rules a post is held to: None for staff, or where ``room`` (its rules, when
    known already) leaves nothing to judge; the post writer then skips the room's lock."""
    if exempt:
        return None
    rules = PostRules.of(settings, now)
    if room is not None and not rules.applies(room):
        return None
    return rules


def is_new_identity(conn: Connection, settings: Settings, session_id: str, now: float) -> bool:
    """Whether the cap on new identities is on and ``session_id`` counts as new: first
    seen less than ``new_identity_seconds`` ago, never admitted to speak. Reads the
    user's row only while the cap is on."""
    if settings.new_identities_per_minute <= 0:
        return False
    seen = people.user_first_seen_and_spoke(conn, session_id)
    if seen is None:  # a v2 key whose first token predates the record: seen long ago
        return False
    first_seen, first_spoke = seen
    return first_spoke is None and now - first_seen < settings.new_identity_seconds


def admit_speaker(conn: Connection, settings: Settings, session_id: str, now: float) -> None:
    """The cap on new identities, in a write transaction (a direct message's own, or
    one before a post is queued): 429 if ``session_id`` is new and the minute's
    admissions are used up; otherwise a new identity is admitted (counted, and never
    new again). Nothing for an identity that is not new."""
    if not is_new_identity(conn, settings, session_id, now):
        return
    most = settings.new_identities_per_minute
    queries.lock_name(conn, NEW_IDENTITIES_BUCKET)
    admitted = queries.rate_event_times(
        conn, NEW_IDENTITIES_BUCKET, now - NEW_IDENTITY_WINDOW_SECONDS
    )
    if len(admitted) >= most:
        left = admitted[len(admitted) - most] + NEW_IDENTITY_WINDOW_SECONDS - now
        raise NewIdentitiesLimited(
            f"too many new ids are posting: at most {most} new ids a minute may post or "
            f"send messages; retry in {_seconds(round(max(left, 0.0) + 0.5))}",
            retry_after_seconds=max(left, 0.0),
        )
    if people.set_first_spoke(conn, session_id, now):
        queries.add_rate_event(conn, NEW_IDENTITIES_BUCKET, now)


def admit_poster(db: Database, settings: Settings, session_id: str, now: float) -> None:
    """:func:`admit_speaker` before a post is queued: a read, and a write only for a new
    identity (so posters that are not new never queue for the write lock)."""
    if settings.new_identities_per_minute <= 0:
        return
    with db.read() as conn:
        if not is_new_identity(conn, settings, session_id, now):
            return
    with db.write() as conn:
        admit_speaker(conn, settings, session_id, now)


def check_direct_message_rate(
    conn: Connection, settings: Settings, sender: str, now: float
) -> None:
    """429 if ``sender`` sent ``dm_rate_limit_count`` messages in the window; otherwise
    count this one (in the transaction that stores it)."""
    window = limits.Window(
        settings.dm_rate_limit_count, settings.dm_rate_limit_seconds, "direct messages"
    )
    if not window.enabled:
        return
    bucket = f"dm:{sender}"
    queries.lock_name(conn, bucket)
    window.check(queries.rate_event_times(conn, bucket, window.since(now)), now)
    queries.add_rate_event(conn, bucket, now)


def rate_events_kept(settings: Settings) -> dict[str, float]:
    """How long the counted events of each kind are kept (bucket prefix -> seconds):
    as long as the window that counts them."""
    return {
        "challenge:": settings.challenge_rate_limit_seconds,
        "dm:": settings.dm_rate_limit_seconds,
        NEW_IDENTITIES_BUCKET: NEW_IDENTITY_WINDOW_SECONDS,
    }
