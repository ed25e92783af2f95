"""One person's own permissions in a room, now and scheduled (a moderator of the room
asks; docs/spec/sogs-v3.md 1.2)."""

from __future__ import annotations

from typing import Any

from opengroup.api.v3.calls import Call


def list_permissions(call: Call) -> dict[str, dict[str, bool]]:
    """``{session_id: {read?, write?, upload?, accessible?, moderator|admin?, hidden?,
    banned?}}`` of everyone with something of their own in the room."""
    return call.community.staff.permissions(call.in_room)


def user_permissions(call: Call) -> dict[str, bool]:
    return call.community.staff.user_permissions(call.in_room, call.params["session_id"])


def set_permissions(call: Call) -> dict[str, Any]:
    """``{read?, write?, upload?, accessible?: bool, default_<p>?: true, unschedule?}``:
    the person's entry afterwards, with the ``session_id`` it applies to."""
    shown, entry = call.community.staff.set_permissions(
        call.in_room, call.params["session_id"], call.json_object()
    )
    return {**entry, "session_id": shown}


def future_permissions(call: Call) -> list[dict[str, Any]]:
    """``[{at, session_id, read?, write?, upload?, banned?}]``, soonest first."""
    return call.community.staff.future_permissions(call.in_room)


def user_future_permissions(call: Call) -> list[dict[str, Any]]:
    return call.community.staff.future_permissions(call.in_room, call.params["session_id"])


def schedule(call: Call) -> list[dict[str, Any]]:
    """``{read?, write?, upload?: bool, in: seconds}``: the person's scheduled changes."""
    return call.community.staff.schedule(
        call.in_room, call.params["session_id"], call.json_object()
    )
