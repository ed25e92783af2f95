"""``opengroup import-pysogs``: take over a pysogs server (oxen-io/session-pysogs).

Where pysogs keeps things, and how its current schema is recognised, is in
``source.py``; what each row becomes here is in ``plan.py``; the copy itself,
section by section, in ``apply.py``; ``sogs.ini`` in ``settings.py``.

What the import does, and its decisions:

- Nothing is written before every check passed: the database is pysogs' current
  schema (an older one is refused: pysogs upgrades its database itself when it
  starts), its key file is readable, and our key paths hold the same key or none.
  The key (32 raw bytes) becomes our PEM pair, private one mode 0600, so join URLs
  and every client's blinded id stay the same.
- Rooms keep their tokens exactly, their name, description, creation time,
  default permissions, ``info_updates`` and ``message_sequence`` (our seqno). A
  room of ours with the same token and no messages (the default ``main``) takes
  pysogs' details; one holding other messages under the same ids is skipped.
- Messages keep their ids, poster, ``posted``/``edited`` times, seqnos, and data
  and signature as pysogs' API serves them (padding restored); whispers keep their
  recipient. A deleted one (data NULL) is stored deleted and gets the v2 deletion
  entry pysogs' v2 API showed (numbered by the message's seqno). Filtered messages
  (never shown by pysogs) are not copied. Edit history is not copied.
- Reactions keep their reactors and times (their order on a message follows the
  first reactor's time), pins their time and pinner.
- Room and global moderators and admins, hidden or visible; room and global bans,
  ending when pysogs had scheduled the unban (``user_ban_futures``); permission
  overrides; scheduled permission changes; room activity; users with their first
  and last times; ``needs_blinding`` rows as links from the ``05`` id to its blinded
  key, so a role reaches the blinded id when it first signs a request.
- Files keep their ids, uploader, name, upload time and expiry (expired ones are
  skipped); the room image never expires. Direct messages not yet expired keep
  their ids (clients page their inbox by id). Request nonces not yet expired are
  kept, for as long again as our time window, so no request can be replayed.
- Idempotent: what is here already is skipped, so a second run adds nothing and a
  run stopped half-way is completed by the next one. Rows already here are not
  compared with pysogs' again: stop pysogs before the import, not after it. The
  server-wide part is one transaction and each room another (on SQLite the write
  lock is held meanwhile: stop the servers for the import). A dry run reads only
  and creates nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from opengroup.config import Settings
from opengroup.pysogs_import import plan
from opengroup.pysogs_import.apply import (
    Advance,
    Run,
    SourceRoom,
    Warn,
    import_room,
    import_server,
    room_conflict,
)
from opengroup.pysogs_import.errors import PysogsImportError
from opengroup.pysogs_import.keys import check_keys, install_keys
from opengroup.pysogs_import.plan import RoomCounts, ServerCounts
from opengroup.pysogs_import.settings import CarriedSettings, carry_settings
from opengroup.pysogs_import.source import (
    PysogsDb,
    SourcePaths,
    check_schema,
    read_ini,
    read_key,
)
from opengroup.startup import import_target
from opengroup.storage.database import Database

__all__ = ["ImportReport", "PysogsImport", "PysogsImportError", "RoomReport", "SourcePaths"]

RoomProgress = Callable[[str, int], AbstractContextManager[Advance]]


@dataclass
class RoomReport:
    token: str
    name: str
    counts: RoomCounts
    state: str  # new room, existing room, or no database yet (dry run)
    skip_reason: str | None = None


@dataclass
class ImportReport:
    public_key: str
    keys_written: bool
    server: ServerCounts
    rooms: list[RoomReport] = field(default_factory=list)
    total: RoomCounts = field(default_factory=RoomCounts)
    notes: list[str] = field(default_factory=list)


class PysogsImport:
    """One import run: the constructor checks everything, ``run()`` copies."""

    def __init__(
        self, paths: SourcePaths, settings: Settings, *, dry_run: bool, warn: Warn
    ) -> None:
        self.paths = paths
        self.settings = settings
        self.dry_run = dry_run
        self.warn = warn
        self.db = PysogsDb(paths.database_url)
        try:
            missing = check_schema(self.db.tables)
            if missing:
                raise PysogsImportError(
                    "the pysogs database has an older schema than the last pysogs release "
                    f"(missing: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}). "
                    "Start pysogs (0.3.x) once so it upgrades its own database, stop it, and "
                    "run the import again. Nothing was written."
                )
            self.key = read_key(paths.key_file)
            public, self.keys_needed = check_keys(self.key, paths.key_file, settings)
            self.public_key = public.hex()
            if paths.key_file.stat().st_mode & 0o077:
                warn(f"{paths.key_file} may be read by others; our copy is kept 0600")
            if "room_import_hacks" in self.db.tables or "file_id_hacks" in self.db.tables:
                warn(
                    "pysogs kept id mappings from its own import of a 0.1 server "
                    "(room_import_hacks/file_id_hacks); they are not carried over: v2 clients "
                    "that still name those old ids get current ids instead"
                )
            self.rooms = [SourceRoom.of(row) for row in self.db.rows(plan.ROOMS)]
        except BaseException:
            self.db.dispose()
            raise

    def ini_settings(self) -> CarriedSettings | None:
        if self.paths.ini is None:
            return None
        return carry_settings(read_ini(self.paths.ini))

    def room_units(self, room: SourceRoom) -> int:
        """Progress units of a room: its messages and files."""
        messages = self.db.scalar("SELECT COUNT(*) FROM messages WHERE room = :r", r=room.pysogs_id)
        files = self.db.scalar("SELECT COUNT(*) FROM files WHERE room = :r", r=room.pysogs_id)
        return int(messages or 0) + int(files or 0)

    def _target(self) -> Database | None:
        return import_target(self.settings, dry_run=self.dry_run)

    def run(self, progress: RoomProgress) -> ImportReport:
        try:
            return self._run(progress)
        finally:
            self.db.dispose()

    def _run(self, progress: RoomProgress) -> ImportReport:
        if self.keys_needed and not self.dry_run:
            install_keys(self.key, self.settings)
        target = self._target()
        run = Run(self.db, self.paths, self.settings, time.time(), not self.dry_run, self.warn)
        try:
            if target is None:
                report = ImportReport(self.public_key, self.keys_needed, import_server(None, run))
            elif self.dry_run:
                with target.read() as conn:
                    report = ImportReport(
                        self.public_key, self.keys_needed, import_server(conn, run)
                    )
            else:
                with target.write() as conn:
                    report = ImportReport(
                        self.public_key, self.keys_needed, import_server(conn, run)
                    )
            for room in self.rooms:
                room_report = self._room(target, run, room, progress)
                report.rooms.append(room_report)
                report.total.add(room_report.counts)
            pysogs_tokens = {r.token for r in self.rooms}
            if target is not None and "main" not in pysogs_tokens:
                from opengroup.storage import posts, roomdetails

                with target.read() as conn:
                    ours = roomdetails.find_room(conn, "main")
                    empty = ours is not None and posts.count_live(conn, "main") == 0
                if empty:
                    report.notes.append(
                        "our default room main is not a pysogs room and is empty: "
                        "remove it with `opengroup rooms delete main` if you do not want it"
                    )
        finally:
            if target is not None:
                target.dispose()
        return report

    def _room(
        self, target: Database | None, run: Run, room: SourceRoom, progress: RoomProgress
    ) -> RoomReport:
        with progress(room.token, self.room_units(room)) as advance:
            if target is None:
                reason = room_conflict(None, run, room)
                if reason is not None:
                    self.warn(reason)
                    return RoomReport(room.token, room.name, RoomCounts(), "skipped", reason)
                counts, _ = import_room(None, run, room, advance)
                return RoomReport(room.token, room.name, counts, "no database yet")
            context = target.read() if self.dry_run else target.write()
            with context as conn:
                reason = room_conflict(conn, run, room)
                if reason is not None:
                    self.warn(reason)
                    return RoomReport(room.token, room.name, RoomCounts(), "skipped", reason)
                counts, new = import_room(conn, run, room, advance)
        run.now = time.time()
        return RoomReport(room.token, room.name, counts, "new room" if new else "existing room")
