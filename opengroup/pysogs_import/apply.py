"""Copying what is new, section by section, in the caller's transaction.

Each function reads what our database holds already (nothing, if there is no
database yet: a dry run) and adds only what is missing, so a second run adds
nothing and a run stopped half-way is completed by the next. ``write`` false
counts without writing (``--dry-run``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from opengroup.config import Settings
from opengroup.domain import values
from opengroup.pysogs_import import plan
from opengroup.pysogs_import.plan import RoomCounts, ServerCounts
from opengroup.pysogs_import.source import PysogsDb, SourcePaths
from opengroup.storage import bulk, people, posts, roomdetails
from opengroup.storage import queries as q
from opengroup.storage.bulk import CopiedMessage

MESSAGE_BATCH = 500

Advance = Callable[[int], None]
Warn = Callable[[str], None]


@dataclass(frozen=True)
class SourceRoom:
    """A row of pysogs' ``rooms``."""

    pysogs_id: int
    token: str
    name: str
    description: str | None
    image: int | None
    created: float
    message_sequence: int
    info_updates: int
    read: bool
    accessible: bool
    write: bool
    upload: bool

    @classmethod
    def of(cls, row: Any) -> SourceRoom:
        return cls(
            int(row[0]), str(row[1]), str(row[2]), row[3], row[4], float(row[5]),
            int(row[6]), int(row[7]), bool(row[8]), bool(row[9]), bool(row[10]), bool(row[11]),
        )  # fmt: skip


@dataclass
class Run:
    """What every section needs: the source, our settings, the time, and whether to write."""

    db: PysogsDb
    paths: SourcePaths
    settings: Settings
    now: float
    write: bool
    warn: Warn


def room_conflict(conn: Connection | None, run: Run, room: SourceRoom) -> str | None:
    """Why the room cannot be imported, if it cannot."""
    if not values.is_room_token(room.token):
        return f"room {room.token!r} skipped: its token is not one the community API accepts"
    if conn is None:
        return None
    found = roomdetails.find_room(conn, room.token)
    if found is not None and found.id != room.token:
        return (
            f"room {room.token} skipped: our room {found.id} differs only in case "
            "(room tokens are matched without regard to case)"
        )
    if found is None:
        return None
    ours = bulk.message_fingerprints(conn, room.token)
    for row in run.db.stream(plan.MESSAGES, room=room.pysogs_id):
        here = ours.get(int(row[0]))
        if here is not None and here[:2] != (row[1], plan.v2_timestamp(row[2])):
            return (
                f"room {room.token} skipped: our room of that token holds other messages "
                f"under the same ids (e.g. {row[0]}); import into a fresh database"
            )
    return None


def import_room(
    conn: Connection | None, run: Run, room: SourceRoom, advance: Advance
) -> tuple[RoomCounts, bool]:
    """Copy one room (or count what would be); (counts, whether the room is new)."""
    counts = RoomCounts()
    token = room.token
    existing = roomdetails.find_room(conn, token) if conn is not None else None
    ours = bulk.message_fingerprints(conn, token) if existing is not None and conn else {}
    out = conn if run.write else None
    if out is not None:
        if existing is None:
            q.insert_room(out, token, room.name, run.now)
        q.lock_room(out, token)
        if not ours:  # a room of ours with no messages yet takes pysogs' details
            roomdetails.update_room(
                out,
                token,
                {
                    "name": room.name,
                    "description": room.description,
                    "created_at": room.created,
                    "default_read": room.read,
                    "default_accessible": room.accessible,
                    "default_write": room.write,
                    "default_upload": room.upload,
                },
            )

    copied = _copy_messages(conn, run, room, ours, counts, advance)
    reacted = _copy_reactions(conn, run, room, copied, counts)
    _copy_pins(conn, run, room, copied, counts)
    _copy_people(conn, run, room, counts)
    _copy_files(conn, run, room, existing, counts, advance)
    if out is not None:
        # Staff, pins and the image are room details, which servers keep by info_updates.
        changed = existing is not None and bool(
            counts.moderators or counts.pins or counts.room_image
        )
        _raise_counters(out, run, room, details_changed=changed)
        # A message we had already (a rerun) whose reactions grew takes a seqno past
        # every other: a server that is running shows the reactions to the clients past
        # its old seqno, and reads them anew (it keeps a message's reactors by seqno).
        for message_id in sorted(reacted & ours.keys()):
            posts.move_to_next_seqno(out, token, message_id)
    return counts, existing is None


def _copy_messages(
    conn: Connection | None,
    run: Run,
    room: SourceRoom,
    ours: dict[int, tuple[str, int, bool]],
    counts: RoomCounts,
    advance: Advance,
) -> set[int]:
    """The new messages, in batches; returns the ids of the room's messages now here
    (live ones), which reactions and pins may name."""
    live: set[int] = set()
    batch: list[CopiedMessage] = []
    deletions: list[tuple[int, int]] = []
    filtered = 0
    out = conn if run.write else None

    def flush() -> None:
        if out is not None and batch:
            bulk.insert_copied_messages(out, room.token, batch)
        advance(len(batch))
        batch.clear()

    for row in run.db.stream(plan.MESSAGES, room=room.pysogs_id):
        if row[10]:  # filtered: pysogs accepted it but never showed it to anyone
            filtered += 1
            advance(1)
            continue
        message = plan.copied_message(row)
        if not message.deleted:
            live.add(message.server_id)
        if message.server_id in ours:
            advance(1)
            continue
        counts.messages += 1
        counts.deleted += message.deleted
        counts.whispers += message.whisper_to is not None or message.whisper_mods
        if message.deleted:
            # pysogs' v2 API numbers a deletion by the deleted message's seqno.
            deletions.append((message.seqno, message.server_id))
        batch.append(message)
        if len(batch) >= MESSAGE_BATCH:
            flush()
    flush()
    if out is not None:
        for number, message_id in deletions:
            bulk.insert_deletion(out, room.token, number, message_id)
    if filtered and not ours:
        run.warn(
            f"room {room.token}: {filtered} filtered message(s) (accepted by pysogs' "
            "filters but never shown) are not carried over"
        )
    return live


def _copy_reactions(
    conn: Connection | None, run: Run, room: SourceRoom, live: set[int], counts: RoomCounts
) -> set[int]:
    """The reactions to the room's live messages that are not here yet; returns the ids
    of the messages that gained one."""
    reacted: set[int] = set()
    for message_id, reaction, session_id, at in run.db.rows(plan.REACTIONS, room=room.pysogs_id):
        if message_id not in live:
            continue
        if not run.write or conn is None:  # counting: is it here already?
            known = conn is not None and (session_id, float(at)) in {
                (r.public_key, r.reacted_at)
                for r in posts.reactions_of(conn, room.token, [message_id])
                if r.reaction == reaction
            }
            counts.reactions += not known
            continue
        added = posts.add_reaction(
            conn, room.token, int(message_id), str(reaction), session_id, float(at)
        )
        counts.reactions += added
        if added:
            reacted.add(int(message_id))
    return reacted


def _copy_pins(
    conn: Connection | None, run: Run, room: SourceRoom, live: set[int], counts: RoomCounts
) -> None:
    pinned = (
        {p.message_id for p in roomdetails.room_pins(conn, room.token)}
        if conn is not None
        else set()
    )
    for message_id, pinned_at, by in run.db.rows(plan.PINS, room=room.pysogs_id):
        if message_id in pinned or message_id not in live:
            continue
        counts.pins += 1
        if run.write and conn is not None:
            roomdetails.pin(conn, room.token, int(message_id), by, float(pinned_at))


def _copy_people(conn: Connection | None, run: Run, room: SourceRoom, counts: RoomCounts) -> None:
    """Moderators, bans (with the unban pysogs scheduled), overrides, future
    permissions, and who was active when."""
    token, out = room.token, conn if run.write else None
    staff = (
        {s.public_key for s in people.room_staff(conn, token) if not s.is_global}
        if conn is not None
        else set()
    )
    banned = {key for key, _ in people.room_bans(conn, token, 0)} if conn is not None else set()
    overridden = set(people.all_overrides(conn, token)) if conn is not None else set()
    ban_futures: dict[str, list[tuple[float, bool]]] = {}
    for session_id, at, ban in run.db.rows(plan.ROOM_BAN_FUTURES, room=room.pysogs_id):
        ban_futures.setdefault(session_id, []).append((float(at), bool(ban)))
    future_bans = sum(1 for futures in ban_futures.values() for _, ban in futures if ban)
    if future_bans:
        run.warn(
            f"room {token}: {future_bans} ban(s) pysogs had scheduled for later are not "
            "carried over (we schedule only the end of a ban)"
        )

    for row in run.db.rows(plan.OVERRIDES, room=room.pysogs_id):
        session_id, is_banned, read, accessible, write_, upload, moderator, admin, visible = row
        if (moderator or admin) and session_id not in staff:
            counts.moderators += 1
            if out is not None:
                people.set_room_staff(out, token, session_id, bool(admin), bool(visible), run.now)
        futures = ban_futures.get(session_id, [])
        if is_banned and session_id not in banned and not plan.ban_is_over(futures, run.now):
            counts.bans += 1
            if out is not None:
                people.set_room_ban(out, token, session_id, run.now, plan.ban_expiry(futures))
        perms = {
            name: None if value is None else bool(value)
            for name, value in zip(
                people.PERMISSIONS, (read, accessible, write_, upload), strict=True
            )
        }
        if any(v is not None for v in perms.values()) and session_id not in overridden:
            counts.overrides += 1
            if out is not None:
                people.set_overrides(out, token, session_id, perms)

    scheduled = (
        {
            (c.public_key, c.at, tuple(sorted(c.changes.items())))
            for c in people.future_changes(conn, token)
        }
        if conn is not None
        else set()
    )
    for session_id, at, read, write_, upload in run.db.rows(
        plan.PERMISSION_FUTURES, room=room.pysogs_id
    ):
        changes = {
            name: bool(value)
            for name, value in zip(people.FUTURE_PERMISSIONS, (read, write_, upload), strict=True)
            if value is not None
        }
        if not changes or (session_id, float(at), tuple(sorted(changes.items()))) in scheduled:
            continue
        counts.future_permissions += 1
        if out is not None:
            people.add_future_permissions(out, token, session_id, float(at), changes)

    for session_id, last_active in run.db.rows(plan.ROOM_USERS, room=room.pysogs_id):
        seen = q.last_activity(conn, token, session_id) if conn is not None else None
        if seen is not None and seen >= float(last_active):
            continue
        counts.activity += 1
        if out is not None:
            q.touch_activity(out, token, session_id, float(last_active))


def upload_path(paths: SourcePaths, token: str, stored: str) -> Path | None:
    """The file pysogs wrote: its ``path`` (relative to pysogs' directory), or, for an
    uploads directory given apart, the same name in ``<uploads>/<room token>/``."""
    stored_path = Path(stored)
    for candidate in (
        stored_path if stored_path.is_absolute() else paths.base / stored_path,
        paths.uploads / token / stored_path.name,
        paths.uploads / stored_path.name,
    ):
        if candidate.is_file():
            return candidate
    return None


def _copy_files(
    conn: Connection | None,
    run: Run,
    room: SourceRoom,
    existing: roomdetails.RoomDetails | None,
    counts: RoomCounts,
    advance: Advance,
) -> None:
    """Uploads still alive, under their ids, and the room image."""
    rows = run.db.rows(plan.FILES, room=room.pysogs_id)
    ids = [int(r[0]) for r in rows]
    taken = bulk.file_rooms(conn, ids) if conn is not None else {}
    image_here = existing is not None and existing.image_file_id is not None
    for file_id, uploader, uploaded, expiry, filename, stored in rows:
        advance(1)
        is_image = file_id == room.image
        if expiry is not None and float(expiry) <= run.now and not is_image:
            continue  # expired: pysogs would delete it at its next clean-up
        if file_id in taken:
            if taken[file_id] != room.token:
                run.warn(f"file {file_id} of room {room.token} skipped: that id is taken here")
            continue
        path = upload_path(run.paths, room.token, str(stored))
        if path is None:
            run.warn(f"file {file_id} of room {room.token} skipped: {stored} is missing")
            continue
        counts.files += 1
        if is_image and not image_here:
            counts.room_image = 1
        if not run.write or conn is None:
            continue
        q.insert_file(
            conn,
            int(file_id),
            room.token,
            uploader,
            path.read_bytes(),
            float(uploaded),
            None if expiry is None or is_image else float(expiry),
            filename,
        )
        if is_image and not image_here:
            roomdetails.set_image(conn, room.token, int(file_id))


def _raise_counters(conn: Connection, run: Run, room: SourceRoom, *, details_changed: bool) -> None:
    """Our counters continue after pysogs': message ids, deletion numbers, seqno,
    info_updates (never moved back; moved on if the room's details changed)."""
    token = room.token
    ids = bulk.message_fingerprints(conn, token)
    message_seq, deletion_seq = bulk.room_counters(conn, token)
    top_deletion = max(bulk.room_deletions(conn, token), default=0)
    details = roomdetails.find_room(conn, token)
    assert details is not None
    roomdetails.update_room(
        conn,
        token,
        {
            "message_seq": max(message_seq, max(ids, default=0)),
            "deletion_seq": max(deletion_seq, top_deletion),
            "seqno": max(details.seqno, room.message_sequence),
            "info_updates": max(details.info_updates + details_changed, room.info_updates),
        },
    )


def import_server(conn: Connection | None, run: Run) -> ServerCounts:
    """Users, global staff and bans, blinded-id links, direct messages and nonces."""
    counts = ServerCounts()
    out = conn if run.write else None
    staff = {s.public_key for s in people.global_staff(conn)} if conn is not None else set()
    banned = {key for key, _ in people.server_bans(conn, 0)} if conn is not None else set()
    ban_futures: dict[str, list[tuple[float, bool]]] = {}
    for session_id, at, ban in run.db.rows(plan.SERVER_BAN_FUTURES):
        ban_futures.setdefault(session_id, []).append((float(at), bool(ban)))

    for session_id, created, last_active, is_banned, moderator, admin, visible in run.db.rows(
        plan.USERS
    ):
        known = people.user_first_seen(conn, session_id) is not None if conn else False
        if not known:
            counts.users += 1
            if out is not None:
                people.insert_user(out, session_id, float(created))
        if out is not None:
            people.touch_users(out, [session_id], float(last_active))
        if (moderator or admin) and session_id not in staff:
            counts.global_moderators += 1
            if out is not None:
                people.set_global_staff(out, session_id, bool(admin), bool(visible), run.now)
        futures = ban_futures.get(session_id, [])
        if is_banned and session_id not in banned and not plan.ban_is_over(futures, run.now):
            counts.global_bans += 1
            if out is not None:
                people.set_global_ban(out, session_id, run.now, plan.ban_expiry(futures))

    if out is not None and counts.global_moderators:
        for details in roomdetails.all_rooms(out):  # global staff are every room's staff
            roomdetails.bump_info_updates(out, details.id)

    for session_id, blinded_abs in run.db.rows(plan.NEEDS_BLINDING):
        if conn is not None and session_id in people.session_ids_of_blinded(conn, blinded_abs):
            continue
        counts.blinded_links += 1
        if out is not None:
            people.link_session_id(out, session_id, blinded_abs)

    dms = [r for r in run.db.rows(plan.INBOX) if r[5] is None or float(r[5]) > run.now]
    present = bulk.direct_message_ids(conn, [int(r[0]) for r in dms]) if conn else set()
    for dm_id, sender, recipient, body, posted_at, expiry in dms:
        if int(dm_id) in present:
            continue
        counts.direct_messages += 1
        if out is not None:
            posted = float(posted_at) if posted_at is not None else run.now
            expires = float(expiry) if expiry is not None else posted + run.settings.dm_ttl_seconds
            bulk.insert_direct_message(
                out, int(dm_id), sender, recipient, bytes(body), posted, expires
            )
    if out is not None and counts.direct_messages:
        bulk.continue_direct_message_ids(out)

    # pysogs keeps a nonce 24 h after the request; the request's own time may be up to
    # our window ahead of that, so the nonce is kept the window longer here. Its
    # request's time is unknown: it is kept by value alone (untimed_nonces).
    window = run.settings.request_time_window_seconds
    nonces = [
        (bytes(nonce), float(expiry) + window)
        for nonce, expiry in run.db.rows(plan.NONCES, now=run.now)
        if nonce is not None and len(bytes(nonce)) == 16
    ]
    brought = [n for n, _ in nonces]
    known_nonces = people.known_untimed_nonces(conn, brought, run.now) if conn else set()
    fresh = [(n, at) for n, at in nonces if n not in known_nonces]
    counts.nonces = len(fresh)
    if out is not None:
        bulk.insert_untimed_nonces(out, fresh)
    return counts
