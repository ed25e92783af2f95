"""opengroup.domain.limits.Window: the one sliding-window rate limit rule.

Rules pinned here:

* A window allows ``count`` events per ``seconds``; 0 in either disables it, and a
  disabled window never refuses.
* ``since(now)`` is ``now - seconds``: the events after it are the window's.
* With ``count - 1`` events in the window the next one is allowed (it is the
  ``count``-th); with ``count`` (or more) it is refused with 429 and a reason naming
  the limit.
* ``retry_after_seconds`` is when the event that keeps the window full leaves it (the
  ``count``-th newest), never negative; a client that waits exactly that long gets
  through, and one that comes back a moment earlier does not.
* The events may come in any order.
"""

from __future__ import annotations

import random

import pytest

from opengroup.api.errors import status_of
from opengroup.domain.errors import RateLimited
from opengroup.domain.limits import Window

NOW = 1_700_000_000.0


def in_window(window: Window, events: list[float], now: float) -> list[float]:
    """What the storage hands :meth:`Window.check`: the events after ``since(now)``."""
    return [t for t in events if t > window.since(now)]


@pytest.mark.parametrize(
    "count, seconds, enabled",
    [
        pytest.param(5, 16, True, id="5 per 16 s"),
        pytest.param(1, 0.5, True, id="1 per half a second"),
        pytest.param(0, 16, False, id="count 0"),
        pytest.param(5, 0, False, id="seconds 0"),
        pytest.param(0, 0, False, id="both 0"),
    ],
)
def test_a_window_is_enabled_only_with_a_count_and_seconds(
    count: int, seconds: float, enabled: bool
) -> None:
    assert Window(count, seconds, "posts").enabled is enabled


@pytest.mark.parametrize(
    "window",
    [
        pytest.param(Window(0, 16, "posts"), id="count 0"),
        pytest.param(Window(5, 0, "posts"), id="seconds 0"),
    ],
)
def test_a_disabled_window_never_refuses(window: Window) -> None:
    window.check([NOW] * 1000, NOW)


def test_since_is_now_minus_the_window() -> None:
    assert Window(5, 16, "posts").since(NOW) == NOW - 16
    assert Window(5, 0.25, "posts").since(10.0) == 9.75


@pytest.mark.parametrize(
    "count", [pytest.param(1, id="1 allowed"), pytest.param(5, id="5 allowed")]
)
def test_the_count_th_event_is_allowed_and_the_next_is_refused(count: int) -> None:
    window = Window(count, 16, "posts")
    events = [NOW - 10 + i for i in range(count - 1)]
    window.check(events, NOW)  # the count-th is allowed
    events.append(NOW)
    with pytest.raises(RateLimited) as refused:
        window.check(events, NOW)
    assert status_of(refused.value) == 429
    assert refused.value.reason == f"at most {count} posts per 16 s"


def test_no_events_is_allowed() -> None:
    Window(1, 16, "uploads").check([], NOW)


@pytest.mark.parametrize(
    "events, retry_after",
    [
        pytest.param([NOW - 10, NOW - 5, NOW], 6.0, id="the oldest leaves in 6 s"),
        pytest.param([NOW, NOW, NOW], 16.0, id="all now: a whole window"),
        pytest.param([NOW - 15.5, NOW - 1, NOW - 1], 0.5, id="the oldest leaves in half a second"),
        pytest.param(
            [NOW - 14, NOW - 12, NOW - 4, NOW - 2],
            4.0,
            id="more than count: the count-th newest decides",
        ),
        pytest.param([NOW - 16, NOW - 3, NOW - 2], 0.0, id="never negative"),
        pytest.param([NOW - 20, NOW - 3, NOW - 2], 0.0, id="an old event is not negative either"),
    ],
)
def test_retry_after_is_when_the_event_keeping_the_window_full_leaves(
    events: list[float], retry_after: float
) -> None:
    with pytest.raises(RateLimited) as refused:
        Window(3, 16, "posts").check(events, NOW)
    assert refused.value.retry_after_seconds == pytest.approx(retry_after)


def test_the_events_may_come_in_any_order() -> None:
    events = [NOW - 14, NOW - 12, NOW - 4, NOW - 2]
    random.Random(7).shuffle(events)
    with pytest.raises(RateLimited) as refused:
        Window(3, 16, "posts").check(events, NOW)
    assert refused.value.retry_after_seconds == pytest.approx(4.0)


@pytest.mark.parametrize(
    "count, seconds",
    [
        pytest.param(1, 16, id="1 per 16 s"),
        pytest.param(5, 16, id="5 per 16 s"),
        pytest.param(3, 0.75, id="3 per 0.75 s"),
    ],
)
def test_a_client_that_waits_as_told_gets_through_and_not_a_moment_sooner(
    count: int, seconds: float
) -> None:
    window = Window(count, seconds, "posts")
    rng = random.Random(count)
    # Times in 1/64 s, exact in binary, so "exactly as long as told" is exact too.
    steps = int(seconds * 64)
    events = sorted(NOW - rng.randrange(steps) / 64 for _ in range(count + 2))
    with pytest.raises(RateLimited) as refused:
        window.check(in_window(window, events, NOW), NOW)
    later = NOW + refused.value.retry_after_seconds
    window.check(in_window(window, events, later), later)
    sooner = later - seconds / 1000
    with pytest.raises(RateLimited):
        window.check(in_window(window, events, sooner), sooner)


def test_the_reason_names_the_events_and_the_window() -> None:
    with pytest.raises(RateLimited, match=r"^at most 10 uploads per 2\.5 s$"):
        Window(10, 2.5, "uploads").check([NOW] * 10, NOW)
