"""``opengroup import-legacy``: take over a data directory of the Rust reference server.

The reference server's data dir and tables are described in ``opengroup/legacy_import/source.py``.

What the import does, and its decisions:

- The key pair is copied to our key paths (unchanged bytes, private key mode
  0600). If we already have a *different* key pair, nothing at all is done:
  the join URLs would change. The same pair is fine.
- Room ids are kept. Ours are ``[a-z0-9_]{2,64}`` (what desktop clients
  accept); the reference accepted more (upper case, ``-``). A room whose id is
  not valid here is skipped with a warning: a renamed room would break its join
  URL anyway. A listed room without its database file is skipped too. An
  existing room (e.g. the default ``main``) takes the reference's name.
- Messages keep server_id, sender, timestamp, data and signature. Deleted
  ones (``is_deleted`` or named in ``deleted_messages``) are stored deleted
  (blank); deletions keep their numbers (a duplicate deletion of one message
  keeps the first). The room's counters are raised to
  the largest imported server_id / deletion number, so new posts and new
  deletions continue after them. A room that already holds *different*
  messages under the same server_ids is left alone (reported).
- Moderators and bans are copied (a key both moderator and banned stays both:
  the ban wins, as it did in the reference).
- Claimed tokens that are still live are stored as SHA-256 hashes of their
  bytes, expiring 7 days after they were claimed (the reference's rule), so
  logged-in clients stay logged in; live pending tokens likewise (10 minutes).
- Files keep their ids and expire ``file_ttl_seconds`` after their upload
  time (15 days by default, as in the reference); expired or missing ones
  are skipped. The room image becomes the room's image (never expires) if
  the room has none yet.
- Idempotent: whatever exists already is skipped, so a second run changes
  nothing, and a run stopped half-way is finished by the next one. Each room
  is imported in one transaction (on SQLite it holds the write lock meanwhile:
  stop the servers for a big import). A dry run reads only and creates
  nothing, not even the data dir.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from opengroup.config import Settings
from opengroup.domain import values
from opengroup.legacy_import.apply import Advance, apply_plan
from opengroup.legacy_import.errors import LegacyImportError
from opengroup.legacy_import.keys import check_keys, install_keys
from opengroup.legacy_import.plan import Counts, RoomPlan, Warn, plan_room
from opengroup.legacy_import.source import LegacyDataDir, LegacyRoom, reading
from opengroup.startup import import_target
from opengroup.storage.database import Database

__all__ = ["ImportReport", "LegacyImport", "LegacyImportError", "RoomReport"]


@dataclass
class RoomReport:
    room_id: str
    name: str
    counts: Counts
    state: str  # new room, existing room, renamed, or no database yet (dry run)
    skip_reason: str | None = None


@dataclass
class ImportReport:
    public_key: str
    keys_copied: bool
    rooms: list[RoomReport]
    total: Counts


class LegacyImport:
    """One import run: ``work()`` sizes the progress bar, ``run()`` does it."""

    def __init__(self, path: Path, settings: Settings, *, dry_run: bool, warn: Warn) -> None:
        self.legacy = LegacyDataDir(path)
        self.settings = settings
        self.dry_run = dry_run
        self.warn = warn
        self.public_key, self.keys_needed = check_keys(self.legacy, settings)
        mode = self.legacy.private_key_path.stat().st_mode & 0o777
        if mode & 0o077:
            warn(
                f"{self.legacy.private_key_path} is mode {mode:04o} (others may read it); "
                "our copy is kept 0600"
            )
        self.rooms: list[LegacyRoom] = []
        for room in self.legacy.rooms():
            if not values.is_room_id(room.id):
                warn(
                    f"room {room.id!r} skipped: room ids here are 2 to 64 of a-z, 0-9 and _ "
                    "(what Session desktop accepts)"
                )
            elif not room.db_path.is_file():
                warn(f"room {room.id} skipped: its database {room.db_path} does not exist")
            else:
                self.rooms.append(room)

    def work(self) -> int:
        """Progress units: source messages and files, plus one per room."""
        units = 0
        for room in self.rooms:
            with reading(room) as src:
                units += src.count("messages") + src.count("files") + 1
        return units

    def _target(self) -> Database | None:
        return import_target(self.settings, dry_run=self.dry_run)

    def run(self, advance: Advance) -> ImportReport:
        if self.keys_needed and not self.dry_run:
            install_keys(self.legacy, self.settings)
        db = self._target()
        reports: list[RoomReport] = []
        total = Counts()
        try:
            for room in self.rooms:
                plan = self._import_room(db, room, advance)
                if plan.skip_reason:
                    self.warn(plan.skip_reason)
                else:
                    total.add(plan.counts)
                state = (
                    "no database yet"
                    if db is None
                    else "new room"
                    if plan.new_room
                    else "renamed"
                    if plan.rename
                    else "existing room"
                )
                counts = plan.counts if not plan.skip_reason else Counts()
                reports.append(RoomReport(room.id, room.name, counts, state, plan.skip_reason))
        finally:
            if db is not None:
                db.dispose()
        return ImportReport(self.public_key, self.keys_needed, reports, total)

    def _import_room(self, db: Database | None, room: LegacyRoom, advance: Advance) -> RoomPlan:
        now = time.time()
        with reading(room) as src:
            if db is None:
                plan = plan_room(None, self.legacy, room, src, self.settings, now, self.warn)
            elif self.dry_run:
                with db.read() as conn:
                    plan = plan_room(conn, self.legacy, room, src, self.settings, now, self.warn)
            else:
                with db.write() as conn:
                    plan = plan_room(conn, self.legacy, room, src, self.settings, now, self.warn)
                    if not plan.skip_reason:
                        apply_plan(conn, plan, src, now, advance)
            advance(src.count("messages") + src.count("files") + 1 - _applied_units(plan, self))
        return plan


def _applied_units(plan: RoomPlan, run: LegacyImport) -> int:
    """Progress already reported while applying (new messages and files)."""
    if run.dry_run or plan.skip_reason:
        return 0
    return len(plan.messages) + len(plan.files)
