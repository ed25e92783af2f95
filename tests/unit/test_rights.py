"""The order a user's rights in a room are decided in (``opengroup.rights``), which
the domain (``domain/access.py``, both APIs) and the v2 room head both apply:

* staff may do everything, whatever a ban or an override says;
* a banned user who is not staff may do nothing;
* otherwise each right is the user's override where they have one, else the
  room's default.
"""

from __future__ import annotations

import itertools

import pytest

from opengroup.rights import decide

DEFAULTS = (True, True, False, False)  # read, accessible, write, upload
OVERRIDES = list(itertools.product((None, False, True), repeat=4))


@pytest.mark.parametrize("banned", [False, True])
@pytest.mark.parametrize("overrides", OVERRIDES[::7])
def test_staff_may_do_everything(banned: bool, overrides: tuple[bool | None, ...]) -> None:
    rights = decide(staff=True, banned=banned, defaults=DEFAULTS, overrides=overrides)
    assert rights == (True, True, True, True)


@pytest.mark.parametrize("overrides", OVERRIDES[::7])
def test_a_banned_user_may_do_nothing(overrides: tuple[bool | None, ...]) -> None:
    rights = decide(staff=False, banned=True, defaults=DEFAULTS, overrides=overrides)
    assert rights == (False, False, False, False)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ((False, None, None, None), (False, True, False, False)),  # muted from reading
        ((None, None, True, None), (True, True, True, False)),  # allowed to write
        ((None, False, None, True), (True, False, False, True)),  # each right on its own
        ((True, True, False, False), DEFAULTS),  # an override equal to the default
    ],
)
def test_an_override_wins_over_the_default_right_by_right(
    overrides: tuple[bool | None, ...], expected: tuple[bool, ...]
) -> None:
    assert decide(staff=False, banned=False, defaults=DEFAULTS, overrides=overrides) == expected


def test_without_overrides_the_defaults_hold() -> None:
    none = (None, None, None, None)
    assert decide(staff=False, banned=False, defaults=DEFAULTS, overrides=none) == DEFAULTS
