"""The posting rules of opengroup.domain.spam, in-process, at their exact boundaries
(the server-level tests, tests/test_v3_spam_defences.py, cannot place a request at a
given microsecond).

* A room's own value wins over the server's default; None follows the default; 0 is
  off in that room whatever the default.
* The wait: a poster first seen exactly ``wait`` seconds ago posts; any later first
  sighting is refused (429) with the time left; no recorded sighting passes.
* Slow mode: a previous post exactly ``slow`` seconds ago no longer counts; a later one
  refuses with the time until it leaves the period.
* Staff are exempt (no rules at all); a room where nothing applies is not judged.
"""

from __future__ import annotations

import pytest

from opengroup.api.errors import status_of
from opengroup.config import Settings
from opengroup.domain.errors import RateLimited
from opengroup.domain.spam import PosterTooNew, PostRules, SlowModeLimited, post_rules
from opengroup.storage.postwriter import RoomRules

NOW = 1_000_000.0
NO_RATE = Settings(post_rate_limit_seconds=0)


def rules(settings: Settings = NO_RATE) -> PostRules:
    found = post_rules(settings, NOW, exempt=False)
    assert found is not None
    return found


def test_a_rooms_own_value_wins_and_none_follows_the_server() -> None:
    server = Settings(post_rate_limit_seconds=0, slow_mode_seconds=30)
    assert rules(server).slow_mode(RoomRules()) == 30
    assert rules(server).slow_mode(RoomRules(slow_mode_seconds=5)) == 5
    assert rules(server).slow_mode(RoomRules(slow_mode_seconds=0)) == 0


def test_the_wait_at_its_boundary() -> None:
    room = RoomRules(new_poster_wait_seconds=60)
    rules().judge(room, [], NOW - 60)
    rules().judge(room, [], None)  # never recorded: a v2 key from before the record
    with pytest.raises(PosterTooNew) as refused:
        rules().judge(room, [], NOW - 59.5)
    assert refused.value.retry_after_seconds == pytest.approx(0.5)
    assert status_of(refused.value) == 429


def test_slow_mode_at_its_boundary() -> None:
    room = RoomRules(slow_mode_seconds=10)
    rules().judge(room, [NOW - 10], None)
    with pytest.raises(SlowModeLimited) as refused:
        rules().judge(room, [NOW - 20, NOW - 9.75], None)
    assert refused.value.retry_after_seconds == pytest.approx(0.25)


def test_the_rate_limit_counts_its_own_window_only() -> None:
    """The writer hands the posts of the longest window; the rate limit looks at its own."""
    with_rate = rules(Settings(post_rate_limit_count=2, post_rate_limit_seconds=16))
    room = RoomRules(slow_mode_seconds=1)
    assert with_rate.posts_since(room) == NOW - 16
    slow_room = RoomRules(slow_mode_seconds=100)
    assert with_rate.posts_since(slow_room) == NOW - 100
    with_rate.judge(RoomRules(), [NOW - 50, NOW - 17, NOW - 8], None)
    with pytest.raises(RateLimited):
        with_rate.judge(RoomRules(), [NOW - 50, NOW - 8, NOW - 4], None)


def test_staff_are_exempt_and_a_room_without_rules_is_not_judged() -> None:
    strict = Settings(post_rate_limit_seconds=0, slow_mode_seconds=30, new_poster_wait_seconds=30)
    assert post_rules(strict, NOW, exempt=True) is None
    off = RoomRules(slow_mode_seconds=0, new_poster_wait_seconds=0)
    assert post_rules(NO_RATE, NOW, exempt=False, room=off) is None
    assert post_rules(strict, NOW, exempt=False, room=off) is None
    assert post_rules(strict, NOW, exempt=False, room=RoomRules()) is not None
    assert rules().posts_since(RoomRules()) is None
    assert not rules().needs_first_seen(RoomRules())
