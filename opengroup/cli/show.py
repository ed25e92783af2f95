"""``opengroup stats`` and ``opengroup settings``: what the server holds, and every
setting with its default."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import click

from opengroup.cli.common import common_options, open_server
from opengroup.config import SETTINGS


@click.command()
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
def stats(as_json: bool, **options: Any) -> None:
    """Rooms, messages, active users (1/7/30 days) and files, per room and in total."""
    counts = open_server(**options).community().rooms.stats()
    if as_json:
        click.echo(json.dumps(counts.as_json(), indent=2))
        return
    total = counts.total
    windows = "/".join(total.active_users)
    click.echo(f"rooms: {len(counts.rooms)}")
    click.echo(f"messages: {total.messages} live, {total.deleted_messages} deleted")
    click.echo(
        f"active users ({windows}, distinct over all rooms): "
        + "/".join(str(n) for n in total.active_users.values())
    )
    click.echo(
        f"files: {total.uploads} uploads ({total.upload_bytes} bytes), "
        f"{total.room_images} room images ({total.room_image_bytes} bytes)"
    )
    click.echo(f"\nroom\tmessages\tdeleted\tactive {windows}\tuploads\tupload bytes\timage bytes")
    for room in counts.rooms:
        active = "/".join(str(n) for n in room.active_users.values())
        click.echo(
            f"{room.room_id}\t{room.messages}\t{room.deleted_messages}\t{active}\t"
            f"{room.uploads}\t{room.upload_bytes}\t{room.room_image_bytes}"
        )


@click.command("settings")
def show_settings() -> None:
    """List every setting with its default, as a commented TOML config file."""
    click.echo("# opengroup settings, each with its default (printed by `opengroup settings`).")
    click.echo("# Uncomment what you change; command-line flags and OPENGROUP_* variables win.\n")
    for setting in SETTINGS:
        for line in textwrap.wrap(setting.help, 76):
            click.echo(f"# {line}")
        if setting.choices:
            click.echo(f"# One of: {', '.join(setting.choices)}.")
        if setting.least or setting.most is not None:
            click.echo(f"# From {setting.least} to {setting.largest}.")
        click.echo(f"# Environment: OPENGROUP_{setting.name.upper()}")
        default = setting.default
        text = str(default).lower() if isinstance(default, bool) else repr(default)
        if isinstance(default, str):
            text = '"' + default.replace('"', '\\"') + '"'
        click.echo(f"# {setting.name} = {text}\n")
