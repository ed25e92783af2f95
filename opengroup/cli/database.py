"""``opengroup db``: database maintenance."""

from __future__ import annotations

from typing import Any

import click

from opengroup.cli.common import common_options, open_server


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@common_options
def db_upgrade(**options: Any) -> None:
    """Apply pending schema migrations (the server also does this on start)."""
    from opengroup.storage import migrate

    prepared = open_server(**options)
    click.echo(f"database at revision {migrate.current_revision(prepared.db)}")
