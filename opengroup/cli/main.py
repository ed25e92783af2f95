"""``opengroup``: run the server and administer its rooms and moderators.

Admin commands act on the database directly, so they work whether or not the
server is running (SQLite in WAL mode and PostgreSQL both allow it).
"""

from __future__ import annotations

import functools
import json
import logging.config
import os
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, BinaryIO

import click

from opengroup.app import Prepared, prepare
from opengroup.config import SETTINGS, ConfigError, Settings, load_settings
from opengroup.domain.errors import Refusal
from opengroup.domain.room_settings import RoomSettings
from opengroup.domain.staff import RoleChange, Scope
from opengroup.domain.users import parse_session_id
from opengroup.keys import KeyFileError
from opengroup.logs import log_config
from opengroup.metrics import multiprocess_directory
from opengroup.pysogs_import.errors import PysogsImportError
from opengroup.urls import HTTPS_NOTE, join_url


def common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--data-dir, --database-url and --config, accepted by every command."""

    @click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        default=None,
        help="TOML file of settings (see `opengroup settings`).",
    )
    @click.option(
        "--database-url", default=None, help="Database URL; default SQLite in the data dir."
    )
    @click.option("--data-dir", default=None, help="Data directory (default ./data).")
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ConfigError, KeyFileError) as exc:
            raise click.ClickException(str(exc)) from None
        except Refusal as exc:
            raise click.ClickException(exc.reason) from None

    return wrapper


def resolve_settings(config_file: str | None = None, **overrides: Any) -> Settings:
    return load_settings(overrides=overrides, config_file=config_file)


def open_server(with_keys: bool = False, **options: Any) -> Prepared:
    """The server's data. ``with_keys``: also its key pair, which linking a Session id
    to its blinded id needs (staff and bans)."""
    return prepare(resolve_settings(**options), with_keys=with_keys)


def room_settings(**options: Any) -> RoomSettings:
    prepared = open_server(**options)
    return RoomSettings(prepared.db, prepared.settings, time.time)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="opengroup")
def main() -> None:
    """A server for Session open groups (the v2 open group API)."""


def print_join_urls(prepared: Prepared) -> None:
    assert prepared.keys is not None
    public_url = prepared.settings.effective_public_url
    for room in prepared.community().rooms():
        click.echo(f"{room.id}\t{join_url(public_url, room.id, prepared.keys.public_hex)}")


@main.command()
@common_options
@click.option("--host", default=None, help="Address to listen on (default 0.0.0.0).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8080).")
@click.option("--workers", type=int, default=None, help="Worker processes (default 1).")
@click.option("--public-url", default=None, help="Base URL clients reach us at, for join URLs.")
@click.option("--log-level", default=None, help="debug, info, warning, error or critical.")
@click.option("--log-file", default=None, help="Also log to this file.")
def serve(**options: Any) -> None:
    """Run the server."""
    settings = resolve_settings(**options)
    run_server(settings)


def run_server(
    settings: Settings, *, tls_certificate: str | None = None, tls_key: str | None = None
) -> None:
    """Serve until stopped; with TLS when both a certificate and its key are given."""
    import uvicorn  # imported here: admin commands do not need it

    logging_config = log_config(settings)
    logging.config.dictConfig(logging_config)
    prepared = prepare(settings)
    assert prepared.keys is not None
    prepared.db.dispose()
    click.echo(
        f"opengroup listening on {settings.host}:{settings.port} "
        f"with {settings.workers} worker(s), database {prepared.db.dialect}"
    )
    click.echo("Join URLs (http://HOST[:PORT]/ROOM?public_key=KEY):")
    print_join_urls(prepared)
    click.echo(HTTPS_NOTE)
    os.environ.update(settings.as_env())
    # With metrics on: a fresh directory the workers add their counters up in.
    with multiprocess_directory(settings):
        uvicorn.run(
            "opengroup.app:app_factory",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers if settings.workers > 1 else None,
            log_config=logging_config,
            access_log=False,
            server_header=False,
            timeout_keep_alive=settings.keep_alive_seconds,
            # The client's address matters only to /metrics' allow-list; without
            # metrics, X-Forwarded-For is not even looked at.
            proxy_headers=settings.metrics_enabled,
            ssl_certfile=tls_certificate,
            ssl_keyfile=tls_key,
        )


@main.command()
@common_options
def url(**options: Any) -> None:
    """Print the join URL of every room."""
    prepared = open_server(with_keys=True, **options)
    print_join_urls(prepared)
    click.echo(f"# server public key: {prepared.keys.public_hex if prepared.keys else ''}")
    click.echo(f"# {HTTPS_NOTE}")


@main.command()
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
def stats(as_json: bool, **options: Any) -> None:
    """Rooms, messages, active users (1/7/30 days) and files, per room and in total."""
    counts = open_server(**options).community().stats()
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


@main.command("settings")
def show_settings() -> None:
    """List every setting with its default, as a commented TOML config file."""
    click.echo("# opengroup settings, each with its default (printed by `opengroup settings`).")
    click.echo("# Uncomment what you change; command-line flags and OPENGROUP_* variables win.\n")
    for setting in SETTINGS:
        for line in textwrap.wrap(setting.help, 76):
            click.echo(f"# {line}")
        if setting.choices:
            click.echo(f"# One of: {', '.join(setting.choices)}.")
        click.echo(f"# Environment: OPENGROUP_{setting.name.upper()}")
        default = setting.default
        text = str(default).lower() if isinstance(default, bool) else repr(default)
        if isinstance(default, str):
            text = '"' + default.replace('"', '\\"') + '"'
        click.echo(f"# {setting.name} = {text}\n")


@main.group()
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
    if open_server(**options).community().delete_room(room_id):
        click.echo(f"deleted room {room_id}")
    else:
        raise click.ClickException(f"no such room: {room_id}")


@rooms.command("list")
@common_options
def rooms_list(**options: Any) -> None:
    """List rooms as ID<TAB>NAME."""
    for room in open_server(**options).community().rooms():
        click.echo(f"{room.id}\t{room.name}")


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


@main.group()
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


@main.group()
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


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@common_options
def db_upgrade(**options: Any) -> None:
    """Apply pending schema migrations (the server also does this on start)."""
    from opengroup.storage import migrate

    prepared = open_server(**options)
    click.echo(f"database at revision {migrate.current_revision(prepared.db)}")


@main.command("import-legacy")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--dry-run", is_flag=True, help="Only report what would be imported.")
@common_options
def import_legacy(path: str, dry_run: bool, **options: Any) -> None:
    """Import the data directory PATH of the reference server (session-open-group-server).

    Keeps the key pair, room ids, message server_ids, deletions, moderators, bans,
    live tokens and files, so the same join URLs keep working. Safe to run again.
    """
    from pathlib import Path

    from opengroup.legacy_import import LegacyImport, LegacyImportError

    def warn(text: str) -> None:
        click.echo(f"warning: {text}", err=True)

    try:
        run = LegacyImport(Path(path), resolve_settings(**options), dry_run=dry_run, warn=warn)
        label = "checking" if dry_run else "importing"
        with click.progressbar(length=run.work(), label=label, file=sys.stderr) as bar:
            report = run.run(bar.update)
    except LegacyImportError as exc:
        raise click.ClickException(str(exc)) from None
    verb = "would import" if dry_run else "imported"
    keys = "would copy" if dry_run else "copied"
    click.echo(
        f"key pair: {keys if report.keys_copied else 'already in place'} "
        f"(public key {report.public_key})"
    )
    for room in report.rooms:
        if room.skip_reason:
            click.echo(f"room {room.room_id}: skipped")
            continue
        click.echo(
            f"room {room.room_id} ({room.name}, {room.state}): {verb} {room.counts.describe()}"
        )
    click.echo(f"total: {verb} {report.total.describe()}")
    if dry_run:
        click.echo("dry run: nothing was written")


@main.command("import-pysogs")
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--db", "db_url", default=None, help="pysogs database URL, instead of PATH.")
@click.option("--key", default=None, type=click.Path(dir_okay=False), help="pysogs key_x25519.")
@click.option("--uploads", default=None, type=click.Path(file_okay=False), help="pysogs uploads/.")
@click.option("--dry-run", is_flag=True, help="Only report what would be imported.")
@common_options
def import_pysogs(
    path: str | None,
    db_url: str | None,
    key: str | None,
    uploads: str | None,
    dry_run: bool,
    **options: Any,
) -> None:
    """Import a pysogs server: its data directory PATH (sogs.db, key_x25519, uploads/,
    sogs.ini), or --db URL --key FILE --uploads DIR for a PostgreSQL database.

    Keeps the key, room tokens, messages with their ids and seqnos, reactions, pins,
    staff, bans, permissions, files, direct messages and nonces. Safe to run again.
    """
    from opengroup.cli.pysogs import run_import, source_paths

    try:
        paths = source_paths(path, db_url, key, uploads)
    except PysogsImportError as exc:
        raise click.ClickException(str(exc)) from None
    run_import(paths, resolve_settings(**options), dry_run)
