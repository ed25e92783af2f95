"""``opengroup moderators`` and ``opengroup bans``: the staff and the bans, of rooms
or of the whole server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from opengroup.cli.common import common_options, open_server
from opengroup.domain.staff import RoleChange, Scope
from opengroup.domain.users import parse_session_id

# How listings name the whole server where others name a room.
GLOBAL = "(global)"


def scope_of(rooms: tuple[str, ...], server: bool) -> Scope:
    """ROOM... or --global, exactly one of them."""
    if server == bool(rooms):
        raise click.UsageError("name one or more rooms, or give --global (not both)")
    return Scope.everywhere() if server else Scope.of_rooms(rooms)


def where(scope: Scope, room_ids: list[str] | None = None) -> str:
    if scope.server:
        return "the whole server (global)"
    return ", ".join(room_ids if room_ids is not None else scope.rooms)


@click.group()
def moderators() -> None:
    """Add, delete and list moderators and admins, of rooms or of the whole server.

    SESSION_ID is a Session id (05...), which also names that person's blinded id
    (15...) on this server, or a blinded id."""


@moderators.command("add")
@click.argument("session_id")
@click.argument("rooms", nargs=-1)
@click.option("--global", "server", is_flag=True, help="Of every room (the server's staff).")
@click.option("--admin", is_flag=True, help="An admin (may also change the room and its staff).")
@click.option(
    "--hidden/--visible",
    default=None,
    help="Left out of what users see (default: room staff visible, global staff hidden).",
)
@common_options
def moderators_add(
    session_id: str,
    rooms: tuple[str, ...],
    server: bool,
    admin: bool,
    hidden: bool | None,
    **options: Any,
) -> None:
    """Make SESSION_ID a moderator (or --admin) of ROOM... or of every room (--global).

    Someone who already holds a role there gets this one instead. A ban there is lifted."""
    scope = scope_of(rooms, server)
    sid = parse_session_id(session_id)
    staff = open_server(with_keys=True, **options).community().staff
    change = RoleChange(moderator=True, admin=admin, visible=None if hidden is None else not hidden)
    info = staff.set_role(None, sid, scope, change)
    role = "admin" if admin else "moderator"
    shown = "" if hidden is None else ("hidden " if hidden else "visible ")
    article = "an" if f"{shown}{role}".startswith("a") else "a"
    rooms_changed = list(info) if rooms else None
    click.echo(f"{sid} is now {article} {shown}{role} of {where(scope, rooms_changed)}")


@moderators.command("delete")
@click.argument("session_id")
@click.argument("rooms", nargs=-1)
@click.option("--global", "server", is_flag=True, help="Of the server's staff.")
@common_options
def moderators_delete(
    session_id: str, rooms: tuple[str, ...], server: bool, **options: Any
) -> None:
    """Remove SESSION_ID's role (moderator or admin) in ROOM... or on the server (--global)."""
    scope = scope_of(rooms, server)
    sid = parse_session_id(session_id)
    staff = open_server(with_keys=True, **options).community().staff
    removed = staff.remove_role(None, sid, scope)
    if not removed:
        raise click.ClickException(f"{sid} is not a moderator of {where(scope)}")
    names = [room if room is not None else GLOBAL for room in removed]
    click.echo(f"{sid} is no longer a moderator of {', '.join(names)}")


@moderators.command("list")
@click.argument("room_id", required=False)
@common_options
def moderators_list(room_id: str | None, **options: Any) -> None:
    """With ROOM_ID: its own moderators and admins, one Session id a line. Without:
    every role as ROOM<TAB>SESSION_ID<TAB>moderator|admin<TAB>visible|hidden, the
    server's staff with ROOM (global)."""
    lines = open_server(**options).community().staff.staff_lines(room_id)
    for line in lines:
        if room_id is not None:
            click.echo(line.public_key)
            continue
        role = "admin" if line.admin else "moderator"
        shown = "visible" if line.visible else "hidden"
        click.echo(f"{line.room_id or GLOBAL}\t{line.public_key}\t{role}\t{shown}")


@click.group()
def bans() -> None:
    """Ban people from rooms or from the whole server, lift bans, list them.

    SESSION_ID is a Session id (05...), which also names that person's blinded id
    (15...) on this server, or a blinded id."""


@bans.command("add")
@click.argument("session_id")
@click.argument("rooms", nargs=-1)
@click.option("--global", "server", is_flag=True, help="From the whole server.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True, max=1_000_000_000, max_open=True),
    default=None,
    help="Lift the ban by itself after this many seconds (default: never).",
)
@click.option(
    "--delete-messages",
    is_flag=True,
    help="Also delete every message they posted there (in every room with --global).",
)
@common_options
def bans_add(
    session_id: str,
    rooms: tuple[str, ...],
    server: bool,
    timeout: float | None,
    delete_messages: bool,
    **options: Any,
) -> None:
    """Ban SESSION_ID from ROOM... or from the whole server (--global), and with
    --delete-messages delete everything they posted there. Staff cannot be banned:
    remove their role first."""
    scope = scope_of(rooms, server)
    sid = parse_session_id(session_id)
    staff = open_server(with_keys=True, **options).community().staff
    staff.ban(None, sid, scope, timeout)
    until = f" for {timeout:g} seconds" if timeout is not None else ""
    click.echo(f"{sid} is banned from {where(scope)}{until}")
    if delete_messages:
        counts = staff.operator_delete_all(sid, scope)
        rooms_deleted = ", ".join(f"{room} {n}" for room, n in counts.items() if n)
        click.echo(
            f"deleted {sum(counts.values())} messages"
            + (f" ({rooms_deleted})" if rooms_deleted else "")
        )


@bans.command("delete")
@click.argument("session_id")
@click.argument("rooms", nargs=-1)
@click.option("--global", "server", is_flag=True, help="The server-wide ban.")
@common_options
def bans_delete(session_id: str, rooms: tuple[str, ...], server: bool, **options: Any) -> None:
    """Lift SESSION_ID's ban from ROOM... or from the whole server (--global)."""
    scope = scope_of(rooms, server)
    sid = parse_session_id(session_id)
    lifted = open_server(with_keys=True, **options).community().staff.unban(None, sid, scope)
    if not lifted:
        raise click.ClickException(f"{sid} is not banned from {where(scope)}")
    click.echo(f"{sid} is no longer banned from {where(scope)}")


@bans.command("list")
@common_options
def bans_list(**options: Any) -> None:
    """Every ban in force as ROOM<TAB>SESSION_ID<TAB>UNTIL (an ISO 8601 UTC time, or
    "permanent"); server-wide bans with ROOM (global)."""
    for line in open_server(**options).community().staff.ban_lines():
        if line.expires_at is None:
            until = "permanent"
        else:
            until = datetime.fromtimestamp(line.expires_at, UTC).isoformat(timespec="seconds")
        click.echo(f"{line.room_id or GLOBAL}\t{line.public_key}\t{until}")
