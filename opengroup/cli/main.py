"""``opengroup``: run the server and administer its rooms and moderators.

Admin commands act on the database directly, so they work whether or not the
server is running (SQLite in WAL mode and PostgreSQL both allow it).
"""

from __future__ import annotations

import click

from opengroup.cli.database import db
from opengroup.cli.imports import import_legacy, import_pysogs
from opengroup.cli.rooms import rooms
from opengroup.cli.serve import serve, url
from opengroup.cli.show import show_settings, stats
from opengroup.cli.staff import bans, moderators


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="opengroup")
def main() -> None:
    """A server for Session communities (open groups): the community API of today's
    Session apps and the v2 API of 2021 clients, on the same rooms."""


for command in (
    serve,
    url,
    stats,
    show_settings,
    rooms,
    moderators,
    bans,
    db,
    import_legacy,
    import_pysogs,
):
    main.add_command(command)
