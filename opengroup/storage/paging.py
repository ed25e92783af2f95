"""The v2 API's pages of messages and deletions, written once: the ordinary paths
run them through SQLAlchemy (:mod:`opengroup.storage.queries`), the polls compile
them for the driver (:mod:`opengroup.storage.pollreader`).

Each binds ``room_id`` and ``limit``; the ``*_AFTER`` ones also ``after``. A page
after a cursor is the oldest ``limit`` past it, ascending; a page without one is
the newest ``limit``, read newest first (callers reverse it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    BindParameter,
    Select,
    String,
    bindparam,
    false,
    func,
    select,
    true,
)

from opengroup.storage.schema import deletions, messages

_room_id: BindParameter[str] = bindparam("room_id")
_limit: BindParameter[int] = bindparam("limit")
_after: BindParameter[int] = bindparam("after")


def _live_messages(room_id: Any) -> Select[Any]:
    """Live messages of the room ``room_id`` (a parameter, or a column of an outer
    query), without whispers (those are the community API's; v2 never shows them)."""
    return select(
        messages.c.server_id,
        messages.c.public_key,
        messages.c.timestamp,
        messages.c.data,
        messages.c.signature,
    ).where(
        messages.c.room_id == room_id,
        messages.c.deleted == false(),
        messages.c.whisper_to.is_(None),
        messages.c.whisper_mods == false(),
    )


def _messages_after(room_id: Any, after: Any, limit: Any) -> Select[Any]:
    query = _live_messages(room_id).where(messages.c.server_id > after)
    return query.order_by(messages.c.server_id).limit(limit)


MESSAGES_AFTER = _messages_after(_room_id, _after, _limit)
MESSAGES_NEWEST = _live_messages(_room_id).order_by(messages.c.server_id.desc()).limit(_limit)


def _many_messages_after() -> Select[Any]:
    """PostgreSQL: :data:`MESSAGES_AFTER` of many rooms in one statement, from the
    arrays ``room_ids``, ``afters`` and ``limits`` (a page each), each row led by the
    position of its page in them (from 1). A batch of polls reads its pages so: one
    round trip, not one statement each in a pipeline."""
    pages = (
        func.unnest(
            bindparam("room_ids", type_=ARRAY(String)),
            bindparam("afters", type_=ARRAY(BigInteger)),
            bindparam("limits", type_=ARRAY(BigInteger)),
        )
        .table_valued("room_id", "after", "limit", with_ordinality="position")
        .render_derived()
    )
    page = _messages_after(pages.c.room_id, pages.c.after, pages.c.limit).lateral()
    query = select(pages.c.position, *page.c).select_from(pages.join(page, true()))
    return query.order_by(pages.c.position, page.c.server_id)


MANY_MESSAGES_AFTER = _many_messages_after()


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
