"""``opengroup import-legacy`` and ``opengroup import-pysogs``: taking over another
server's data."""

from __future__ import annotations

import sys
from typing import Any

import click

from opengroup.cli.common import common_options, resolve_settings
from opengroup.pysogs_import.errors import PysogsImportError


@click.command("import-legacy")
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


@click.command("import-pysogs")
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
