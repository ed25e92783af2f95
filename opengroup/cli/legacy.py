"""``session-open-group-server``: the reference server's flags, so old units keep working.

Like the reference server, it listens on port 80 unless ``--port`` says
otherwise, and an admin flag (``--add-room`` and friends) does its one job
and exits instead of serving. Data goes where ``opengroup`` puts it (the
``OPENGROUP_*`` variables and ``--data-dir`` work here too).
"""

from __future__ import annotations

import os
import time
from typing import Any

import click

from opengroup.cli.common import print_join_urls, refusals_as_errors, resolve_settings
from opengroup.cli.serve import run_server
from opengroup.domain import values
from opengroup.domain.room_settings import RoomSettings
from opengroup.startup import prepare


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--add-room", nargs=2, metavar="ID NAME", help="Add a room and exit.")
@click.option("--delete-room", metavar="ID", help="Delete a room and exit.")
@click.option("--add-moderator", nargs=2, metavar="KEY ROOM", help="Add a moderator and exit.")
@click.option(
    "--delete-moderator", nargs=2, metavar="KEY ROOM", help="Remove a moderator and exit."
)
@click.option("--print-url", is_flag=True, help="Print the join URLs and exit.")
@click.option("-P", "--port", type=int, default=None, help="Port to listen on (default 80).")
@click.option("-H", "--host", default=None, help="Address to listen on (default 0.0.0.0).")
@click.option("--x25519-public-key", default=None, help="Path of the X25519 public key PEM.")
@click.option("--x25519-private-key", default=None, help="Path of the X25519 private key PEM.")
@click.option("--log-file", default=None, help="Also log to this file.")
@click.option("--tls", is_flag=True, help="Serve HTTPS (with --tls-certificate/-private-key).")
@click.option("--tls-certificate", default=None, help="PEM certificate for --tls.")
@click.option("--tls-private-key", default=None, help="PEM key for --tls.")
@click.option("--data-dir", default=None, help="Data directory (default ./data).")
@click.option("--database-url", default=None, help="Database URL (default SQLite).")
def main(
    add_room: tuple[str, str] | None,
    delete_room: str | None,
    add_moderator: tuple[str, str] | None,
    delete_moderator: tuple[str, str] | None,
    print_url: bool,
    port: int | None,
    tls: bool,
    tls_certificate: str | None,
    tls_private_key: str | None,
    **options: Any,
) -> None:
    """Session open group server (compatible command line)."""
    with refusals_as_errors():
        if port is None and "OPENGROUP_PORT" not in os.environ:
            port = 80
        settings = resolve_settings(port=port, **options)
        admin = add_room or delete_room or add_moderator or delete_moderator or print_url
        if not admin:
            if tls and not (tls_certificate and tls_private_key):
                raise click.UsageError("--tls needs --tls-certificate and --tls-private-key")
            if tls:
                run_server(settings, tls_certificate=tls_certificate, tls_key=tls_private_key)
            else:
                run_server(settings)
            return
        # Naming a moderator links their Session id to its blinded id: that needs the keys.
        prepared = prepare(settings, with_keys=bool(print_url or add_moderator))
        community = prepared.community()
        if add_room:
            room_id = values.room_id(add_room[0])
            added = RoomSettings(prepared.db, settings, time.time).create(room_id, add_room[1])
            click.echo(f"added room {room_id}" if added else f"room {room_id} exists already")
        if delete_room:
            if not community.rooms.delete(delete_room):
                raise click.ClickException(f"no such room: {delete_room}")
            click.echo(f"deleted room {delete_room}")
        if add_moderator:
            key = values.session_id(add_moderator[0], "KEY")
            community.moderation.add_moderator(add_moderator[1], key)
            click.echo(f"added moderator {key} to {add_moderator[1]}")
        if delete_moderator:
            key = values.session_id(delete_moderator[0], "KEY")
            community.moderation.remove_moderator(delete_moderator[1], key)
            click.echo(f"removed moderator {key} from {delete_moderator[1]}")
        if print_url:
            print_join_urls(prepared)
