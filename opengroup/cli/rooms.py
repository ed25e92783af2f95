"""``opengroup rooms``: add, update, set the permissions of, delete and list rooms."""

from __future__ import annotations

from typing import Any, BinaryIO

import click

from opengroup.cli.common import common_options, open_server, room_settings


@click.group()
def rooms() -> None:
    """Add, delete and list rooms."""


@rooms.command("add")
@click.argument("room_id")
@click.argument("name")
@click.option("--description", default=None, help="What the room is about.")
@common_options
def rooms_add(room_id: str, name: str, description: str | None, **options: Any) -> None:
    """Create room ROOM_ID called NAME.

    ROOM_ID: 1 to 64 of A-Z, a-z, 0-9, _ and -; no two rooms differ only in case."""
    if room_settings(**options).create(room_id, name, description):
        click.echo(f"added room {room_id} ({name.strip()})")
    else:
        raise click.ClickException(f"room {room_id} exists already")


@rooms.command("update")
@click.argument("room_id")
@click.option("--name", default=None, help="The new name.")
@click.option("--description", default=None, help='The new description ("" removes it).')
@click.option(
    "--image",
    type=click.File("rb"),
    default=None,
    help="The room's new image (a file; the old image is dropped).",
)
@click.option(
    "--slow-mode",
    "slow_mode",
    metavar="SECONDS|default",
    default=None,
    help="One post per user in this many seconds (moderators exempt); 0: off; "
    "default: the server's slow_mode_seconds.",
)
@click.option(
    "--new-poster-wait",
    "new_poster_wait",
    metavar="SECONDS|default",
    default=None,
    help="Posts only from ids first seen on this server this long ago (moderators exempt); "
    "0: off; default: the server's new_poster_wait_seconds.",
)
@common_options
def rooms_update(
    room_id: str,
    name: str | None,
    description: str | None,
    image: BinaryIO | None,
    slow_mode: str | None,
    new_poster_wait: str | None,
    **options: Any,
) -> None:
    """Change the name, description, image or spam rules of ROOM_ID."""
    data = image.read() if image is not None else None
    rules = {
        rule: rule_seconds(value, flag)
        for rule, value, flag in (
            ("slow_mode_seconds", slow_mode, "--slow-mode"),
            ("new_poster_wait_seconds", new_poster_wait, "--new-poster-wait"),
        )
        if value is not None
    }
    settings = room_settings(**options)
    room = settings.update(room_id, name=name, description=description, image=data, rules=rules)
    click.echo(f"updated room {room.id} ({room.name})")
    if room.description:
        click.echo(f"description: {room.description}")
    if room.image_file_id is not None:
        click.echo(f"image: file {room.image_file_id}")
    server = settings.settings
    for label, own, default in (
        ("slow mode", room.slow_mode_seconds, server.slow_mode_seconds),
        ("new poster wait", room.new_poster_wait_seconds, server.new_poster_wait_seconds),
    ):
        value = own if own is not None else default
        shown = f"{value} s" if value else "off"
        click.echo(f"{label}: {shown}" + (" (the server's default)" if own is None else ""))


def rule_seconds(value: str, flag: str) -> int | None:
    """A spam rule's value on the command line: whole seconds, or "default" (None)."""
    if value.strip().lower() == "default":
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither whole seconds nor default", param_hint=flag
        ) from None


PERMISSION_NAMES = ("read", "write", "upload", "accessible")


@rooms.command("permissions")
@click.argument("room_id")
@click.option("--read/--no-read", default=None, help="May users read the room's messages?")
@click.option("--write/--no-write", default=None, help="May users post?")
@click.option("--upload/--no-upload", default=None, help="May users upload files?")
@click.option(
    "--accessible/--no-accessible",
    default=None,
    help="May users without read see that the room exists?",
)
@common_options
def rooms_permissions(
    room_id: str,
    read: bool | None,
    write: bool | None,
    upload: bool | None,
    accessible: bool | None,
    **options: Any,
) -> None:
    """Show or change what users of ROOM_ID may do by default (moderators may give
    someone other permissions of their own)."""
    given = {"read": read, "write": write, "upload": upload, "accessible": accessible}
    changes = {name: value for name, value in given.items() if value is not None}
    room = room_settings(**options).set_default_permissions(room_id, changes)
    defaults = " ".join(
        ("+" if getattr(room, f"default_{name}") else "-") + name for name in PERMISSION_NAMES
    )
    click.echo(f"{room.id}: {defaults}")


@rooms.command("delete")
@click.argument("room_id")
@common_options
def rooms_delete(room_id: str, **options: Any) -> None:
    """Delete room ROOM_ID with all its messages, files, moderators and bans."""
    if open_server(**options).community().rooms.delete(room_id):
        click.echo(f"deleted room {room_id}")
    else:
        raise click.ClickException(f"no such room: {room_id}")


@rooms.command("list")
@common_options
def rooms_list(**options: Any) -> None:
    """List rooms as ID<TAB>NAME."""
    for room in open_server(**options).community().rooms.all():
        click.echo(f"{room.id}\t{room.name}")
