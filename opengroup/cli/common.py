"""What every ``opengroup`` command shares: the options naming the server's data, the
settings and data they resolve to, and one translation of a refusal into the
command's error message."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

import click

from opengroup.config import ConfigError, Settings, load_settings
from opengroup.domain.errors import Refusal
from opengroup.domain.room_settings import RoomSettings
from opengroup.keys import KeyFileError
from opengroup.startup import DatabaseUnavailable, Prepared, prepare
from opengroup.storage.migrate import MigrationRefused
from opengroup.urls import join_url


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
        with refusals_as_errors():
            return command(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def refusals_as_errors() -> Iterator[None]:
    """A refusal in the block (a bad setting or key file, a database that cannot be
    used, a migration that cannot be made, a domain refusal) as the command's one-line
    error, without a traceback."""
    try:
        yield
    except (ConfigError, KeyFileError, DatabaseUnavailable, MigrationRefused) as exc:
        raise click.ClickException(str(exc)) from None
    except Refusal as exc:
        raise click.ClickException(exc.reason) from None


def resolve_settings(config_file: str | None = None, **overrides: Any) -> Settings:
    return load_settings(overrides=overrides, config_file=config_file)


def open_server(with_keys: bool = False, **options: Any) -> Prepared:
    """The server's data. ``with_keys``: also its key pair, which linking a Session id
    to its blinded id needs (staff and bans)."""
    return prepare(resolve_settings(**options), with_keys=with_keys)


def room_settings(**options: Any) -> RoomSettings:
    prepared = open_server(**options)
    return RoomSettings(prepared.db, prepared.settings, time.time)


def print_join_urls(prepared: Prepared) -> None:
    assert prepared.keys is not None
    public_url = prepared.settings.effective_public_url
    for room in prepared.community().rooms.all():
        click.echo(f"{room.id}\t{join_url(public_url, room.id, prepared.keys.public_hex)}")
