"""Users: making someone staff, banning and unbanning them (in rooms or on the whole
server), and deleting everything someone posted (docs/spec/sogs-v3.md 1.2, 1.4)."""

from __future__ import annotations

from typing import Any

from opengroup.api.v3.calls import Call
from opengroup.domain.staff import RoleChange, Scope, seconds


def set_moderator(call: Call) -> dict[str, Any]:
    """``{rooms: [...] | ["*"] | global: true, moderator?, admin?, visible?}``: the
    ``info_updates`` of every room touched."""
    body = call.json_object()
    scope, change = Scope.from_body(body), RoleChange.from_body(body)
    info = call.community.staff.set_role(call.signer, call.params["session_id"], scope, change)
    return {"info_updates": info}


def ban(call: Call) -> dict[str, Any]:
    """``{rooms | global, timeout?: seconds}``."""
    body = call.json_object()
    scope = Scope.from_body(body)
    timeout = body.get("timeout")
    duration = seconds(timeout, "timeout") if timeout is not None else None
    call.community.staff.ban(call.signer, call.params["session_id"], scope, duration)
    return {}


def unban(call: Call) -> dict[str, Any]:
    """``{rooms | global}``."""
    scope = Scope.from_body(call.json_object())
    call.community.staff.unban(call.signer, call.params["session_id"], scope)
    return {}


def delete_all_in_room(call: Call) -> dict[str, Any]:
    """Every message of the person in the room: ``{"deleted": n}`` (0 too)."""
    staff = call.community.staff
    deleted = staff.delete_all(call.in_room, call.signer, call.params["session_id"])
    return {"deleted": deleted}


def delete_all_everywhere(call: Call) -> dict[str, Any]:
    """The same in every room the caller may do it in: ``{"total", "rooms": {token: n}}``."""
    counts = call.community.staff.delete_everywhere(call.signer, call.params["session_id"])
    return {"total": sum(counts.values()), "rooms": counts}
