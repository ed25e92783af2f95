"""The order in which a user's rights in a room are decided, written once.

Strongest first: staff may do everything, and no ban or override holds them
back; a live ban (of the room, or of the server) allows nothing; then each of
the user's own overrides; then the room's defaults. The domain applies it to
both APIs (:mod:`opengroup.domain.access`), and the v2 room head
(:mod:`opengroup.storage.roomhead`) to a token's holder, where a v2 poll learns
whether to read the room at all; this module depends on nothing, so both can.
"""

from __future__ import annotations

from collections.abc import Sequence


def decide(
    *, staff: bool, banned: bool, defaults: Sequence[bool], overrides: Sequence[bool | None]
) -> tuple[bool, ...]:
    """Each right (in the order of ``defaults``): the room's default unless the user's
    override for it (None: none) says otherwise, all of them for staff, none for a
    banned user who is not staff."""
    if staff:
        return tuple(True for _ in defaults)
    if banned:
        return tuple(False for _ in defaults)
    return tuple(
        default if override is None else override
        for default, override in zip(defaults, overrides, strict=True)
    )
