"""``opengroup db``: database maintenance."""

from __future__ import annotations

from typing import Any

import click

from opengroup.cli.common import common_options, open_server, resolve_settings
from opengroup.startup import existing_database


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


@db.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@common_options
def db_downgrade(revision: str, yes: bool, **options: Any) -> None:
    """Take the schema back to REVISION, to run an older version of the server on this
    database (stop the server first). What the later revisions added is dropped,
    with its data; the newer version upgrades it again on its next start."""
    from opengroup.storage import migrate

    db = existing_database(resolve_settings(**options))  # (opening it would upgrade it)
    if db is None:
        raise click.ClickException("there is no database here to take back")
    current = migrate.current_revision(db)
    if current == revision:
        click.echo(f"database at revision {current}")
        return
    if not yes:
        click.confirm(
            f"Take the database from revision {current} back to {revision}, dropping what "
            "the later revisions added, with its data?",
            abort=True,
        )
    undone = migrate.downgrade(db, revision)
    for number, description in undone:
        click.echo(f"undid {number}: {description}")
    click.echo(f"database at revision {migrate.current_revision(db)}")
