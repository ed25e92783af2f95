"""``opengroup import-pysogs``: the command line of the pysogs import (opengroup/pysogs_import)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from opengroup.config import Settings
from opengroup.pysogs_import import ImportReport, PysogsImport, PysogsImportError, SourcePaths
from opengroup.pysogs_import.apply import Advance


def source_paths(
    path: str | None, db_url: str | None, key: str | None, uploads: str | None
) -> SourcePaths:
    """PATH (pysogs' data directory), or --db with --key and --uploads."""
    if path is not None and db_url is not None:
        raise click.UsageError("give the pysogs data directory PATH or --db URL, not both")
    if path is None:
        if db_url is None or key is None or uploads is None:
            raise click.UsageError(
                "give the pysogs data directory PATH, or --db URL with --key FILE and --uploads DIR"
            )
        uploads_dir = Path(uploads)
        return SourcePaths(db_url, Path(key), uploads_dir, uploads_dir.parent, None)
    paths = SourcePaths.of_data_dir(Path(path))
    return SourcePaths(
        paths.database_url,
        Path(key) if key else paths.key_file,
        Path(uploads) if uploads else paths.uploads,
        paths.base,
        paths.ini,
    )


def run_import(paths: SourcePaths, settings: Settings, dry_run: bool) -> None:
    def warn(text: str) -> None:
        click.echo(f"warning: {text}", err=True)

    @contextmanager
    def progress(token: str, length: int) -> Iterator[Advance]:
        label = f"{'checking' if dry_run else 'importing'} {token}"
        with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
            yield bar.update

    try:
        run = PysogsImport(paths, settings, dry_run=dry_run, warn=warn)
        carried = run.ini_settings()
        report = run.run(progress)
    except PysogsImportError as exc:
        raise click.ClickException(str(exc)) from None
    print_report(report, dry_run)
    if carried is not None:
        click.echo("\n# From sogs.ini: paste into the TOML file given with --config")
        for line in carried.toml or ["# (no setting with an equivalent here)"]:
            click.echo(line)
        if carried.not_carried:
            click.echo("\nsogs.ini settings not carried over:")
            for line in carried.not_carried:
                click.echo(f"  {line}")


def print_report(report: ImportReport, dry_run: bool) -> None:
    verb = "would import" if dry_run else "imported"
    keys = "would write" if dry_run else "written"
    click.echo(
        f"key: {keys if report.keys_written else 'already in place'} "
        f"(public key {report.public_key})"
    )
    click.echo(f"server: {verb} {report.server.describe()}")
    for room in report.rooms:
        if room.skip_reason:
            click.echo(f"room {room.token}: skipped")
            continue
        heading = f"room {room.token} ({room.name}, {room.state})"
        click.echo(f"{heading}: {verb} {room.counts.describe()}")
    click.echo(f"total: {verb} {report.total.describe()}")
    for note in report.notes:
        click.echo(f"note: {note}")
    if dry_run:
        click.echo("dry run: nothing was written")
