"""The v2 API's pages of messages and deletions, written once: the ordinary paths
run them through SQLAlchemy (:mod:`opengroup.storage.queries`), the polls compile
them for the driver (:mod:`opengroup.storage.pollreader`).

Each binds ``room_id`` and ``limit``; the ``*_AFTER`` ones also ``after``. A page
after a cursor is the oldest ``limit`` past it, ascending; a page without one is
the newest ``limit``, read newest first (callers reverse it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BindParameter, Select, bindparam, false, select

from opengroup.storage.schema import deletions, messages

_room_id: BindParameter[str] = bindparam("room_id")
_limit: BindParameter[int] = bindparam("limit")
_after: BindParameter[int] = bindparam("after")

# Live messages, without whispers (those are the community API's; v2 never shows them).
_LIVE_MESSAGES = select(
    messages.c.server_id,
    messages.c.public_key,
    messages.c.timestamp,
    messages.c.data,
    messages.c.signature,
).where(
    messages.c.room_id == _room_id,
    messages.c.deleted == false(),
    messages.c.whisper_to.is_(None),
    messages.c.whisper_mods == false(),
)
MESSAGES_AFTER = (
    _LIVE_MESSAGES.where(messages.c.server_id > _after).order_by(messages.c.server_id).limit(_limit)
)
MESSAGES_NEWEST = _LIVE_MESSAGES.order_by(messages.c.server_id.desc()).limit(_limit)


def _deletion_pages(by_number: bool) -> tuple[Select[Any], Select[Any]]:
    """(after a cursor, the newest) of (deletion number, deleted message id) rows,
    paged by the deletion number (``by_number``) or by the deleted message's id."""
    key = deletions.c.id if by_number else deletions.c.message_id
    query = select(deletions.c.id, deletions.c.message_id).where(deletions.c.room_id == _room_id)
    return (
        query.where(key > _after).order_by(key).limit(_limit),
        query.order_by(key.desc()).limit(_limit),
    )


# by_number -> (deletions after a cursor, the newest deletions)
DELETIONS = {by_number: _deletion_pages(by_number) for by_number in (True, False)}
