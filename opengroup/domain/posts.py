"""Messages as the community API sees them: reading by seqno or id, posting (through
the same group-commit writer as the v2 API), editing, deleting and reactions.

Both APIs store into one ``messages`` table: a v2 post is read here with its
``posted`` time, a post made here is read by v2 clients, and a deletion through
either is seen by both (:func:`opengroup.storage.queries.mark_deleted`).
"""

from __future__ import annotations

import base64
import contextlib
import unicodedata
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from sqlalchemy import Connection

from opengroup import crypto
from opengroup.config import Settings
from opengroup.domain import spam, values
from opengroup.domain.access import RoomView, check_may_delete
from opengroup.domain.errors import (
    InvalidInput,
    MessageTooLarge,
    NoSuchMessage,
    NoSuchRoom,
    NotPermitted,
)
from opengroup.domain.users import User, Users, parse_session_id
from opengroup.storage import posts, queries
from opengroup.storage.database import Database
from opengroup.storage.posts import StoredMessage
from opengroup.storage.postwriter import NewPost, PostWriter, RoomRules
from opengroup.storage.queries import Message
from opengroup.storage.reactors import ReactorsCache, Summaries
from opengroup.storage.recentchanges import RecentChanges

MAX_PAGE = 256
DEFAULT_PAGE = 100
MAX_REACTORS = 20
MAX_REACTION_CODE_POINTS = 12


NO_REACTIONS: Summaries = MappingProxyType({})


class MessageView(NamedTuple):
    """A message with the reactions to it, as one caller sees them (a named tuple, as
    :class:`StoredMessage` is: one is built for every message of a page)."""

    message: StoredMessage
    reactions: Summaries = NO_REACTIONS
    reader_reacted: bool = False  # whether the caller is among its reactors (``you``)


def reaction_text(value: str) -> str:
    """A reaction: 1 to 12 code points, none of them a control character."""
    if not 1 <= len(value) <= MAX_REACTION_CODE_POINTS:
        raise InvalidInput(f"a reaction is 1 to {MAX_REACTION_CODE_POINTS} characters")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise InvalidInput("a reaction holds no control characters")
    return value


def verify_post_signature(session_id: str, data: bytes, signature: bytes) -> bool:
    """A blinded poster signs ``data`` with Ed25519 under the blinded key; an
    unblinded one with XEdDSA under their X25519 key."""
    key = bytes.fromhex(session_id[2:])
    if session_id.startswith("15"):
        try:
            VerifyKey(key).verify(data, signature)
        except (BadSignatureError, ValueError):
            return False
        return True
    return crypto.verify_signature(key, data, signature)


@dataclass(frozen=True)
class ReadyPost:
    """A post that passed its checks: :meth:`write` stores it (on the event loop),
    :meth:`view_of` shows what was stored."""

    writer: PostWriter
    post: NewPost

    def write(self) -> Coroutine[Any, Any, Message | None]:
        return self.writer.write(self.post)

    def view_of(self, stored: Message | None) -> MessageView:
        """The stored post as its author sees it; 404 if the room went meanwhile."""
        if stored is None:
            raise NoSuchRoom(self.post.room_id)
        post = self.post
        message = StoredMessage(
            stored.server_id,
            post.public_key,
            post.posted_at,
            None,
            stored.seqno,
            stored.seqno,
            stored.seqno,
            post.data,
            post.signature,
            False,
            post.whisper_to,
            post.whisper_mods,
            post.timestamp,
        )
        return MessageView(message)


class Posts:
    """Reading, posting, editing and deleting messages, and reacting to them."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        writer: PostWriter,
        users: Users,
        clock: Callable[[], float],
        recent: RecentChanges,
    ) -> None:
        """``recent``: the process's rooms' latest changes (shared with the v2 API's polls)."""
        self.db = db
        self.settings = settings
        self.writer = writer
        self.users = users
        self.clock = clock
        # The reactors of the messages pages show, kept while the messages are unchanged.
        self._reactors = ReactorsCache()
        self._recent = recent

    # -- reading ----------------------------------------------------------------------

    def since(
        self,
        view: RoomView,
        user: User | None,
        seqno: int,
        limit: int,
        reactors: int,
        *,
        with_reactions: bool,
    ) -> list[MessageView]:
        if seqno >= view.room.seqno:
            # Every change takes the room's next seqno, and the view was read in this
            # request's read transaction: a caught-up client's poll reads nothing more.
            return []
        keys = user.keys if user else ()
        with self.db.read() as conn:
            found = self._recent.changes_since(
                conn, view.room, seqno, limit, keys, view.access.moderator,
                with_reactions=with_reactions,
            )  # fmt: skip
            return self._with_reactions(conn, view.id, found, keys, reactors)

    def newest(
        self,
        view: RoomView,
        user: User | None,
        limit: int,
        reactors: int,
        before: int | None = None,
    ) -> list[MessageView]:
        keys = user.keys if user else ()
        with self.db.read() as conn:
            found = posts.newest(conn, view.id, limit, keys, view.access.moderator, before)
            return self._with_reactions(conn, view.id, found, keys, reactors)

    def one(self, view: RoomView, user: User | None, message_id: int, reactors: int) -> MessageView:
        keys = user.keys if user else ()
        with self.db.read() as conn:
            message = self._visible_message(conn, view, keys, message_id)
            return self._with_reactions(conn, view.id, [message], keys, reactors)[0]

    @staticmethod
    def _visible_message(
        conn: Connection, view: RoomView, keys: Sequence[str], message_id: int
    ) -> StoredMessage:
        """A live message the caller may see: 404 otherwise (whispers to others too)."""
        message = posts.one(conn, view.id, message_id)
        moderator = view.access.moderator
        if message is None or message.deleted or not posts.visible_to(message, keys, moderator):
            raise NoSuchMessage(message_id)
        return message

    def _with_reactions(
        self,
        conn: Connection,
        room_id: str,
        found: list[StoredMessage],
        keys: Sequence[str],
        reactors: int,
    ) -> list[MessageView]:
        reacted = self._reactors.of_messages(conn, room_id, found)
        mine = frozenset(keys)
        return [
            MessageView(m, *reacted[m.id].summaries(mine, reactors))
            if m.id in reacted
            else MessageView(m)
            for m in found
        ]

    # -- posting and editing ----------------------------------------------------------

    def _checked_content(self, user: User, body: dict[str, object]) -> tuple[str, str]:
        """``data`` and ``signature`` of a post or edit, as canonical base64; 400 or 413
        if they are malformed, too large, or the signature does not verify."""
        raw = values.base64_bytes(body.get("data"), "data")
        signature = values.base64_bytes(body.get("signature"), "signature")
        if not raw:
            raise InvalidInput("data is empty")
        if len(signature) != crypto.SIGNATURE_SIZE:
            raise InvalidInput("signature must be 64 bytes")
        if len(raw) > self.settings.max_message_bytes:
            raise MessageTooLarge(
                f"message data is {len(raw)} bytes; the limit is {self.settings.max_message_bytes}"
            )
        if self.settings.verify_signatures and not verify_post_signature(
            user.session_id, raw, signature
        ):
            raise InvalidInput("signature does not match the data and the sender's key")
        return base64.b64encode(raw).decode(), base64.b64encode(signature).decode()

    def prepare(self, view: RoomView, user: User, body: dict[str, object]) -> ReadyPost:
        """A post checked and ready for the event loop's group-commit writer (400, 403,
        413, 429 if not): the router awaits its write (see ``api.v3.calls.Later``)."""
        data, signature = self._checked_content(user, body)
        whisper_to = body.get("whisper_to")
        whisper_mods = body.get("whisper_mods", False)
        if whisper_to is not None:
            whisper_to = parse_session_id(whisper_to, "whisper_to")
        if not isinstance(whisper_mods, bool):
            raise InvalidInput("whisper_mods must be true or false")
        if (whisper_to is not None or whisper_mods) and not view.access.moderator:
            raise NotPermitted("only moderators may whisper")
        if whisper_to is not None and whisper_to.startswith("05"):
            # Named by their Session id: linked, so that their blinded id reads it.
            with self.db.write() as conn, contextlib.suppress(ValueError):  # (not a point)
                self.users.link(conn, whisper_to)
        file_ids = _file_ids(body.get("files"))
        now = self.clock()
        exempt = view.access.moderator
        if not exempt:
            spam.admit_poster(self.db, self.settings, user.session_id, now)
        room_rules = RoomRules(view.room.slow_mode_seconds, view.room.new_poster_wait_seconds)
        post = NewPost(
            view.id,
            user.session_id,
            int(now * 1000),
            data,
            signature,
            posted_at=now,
            whisper_to=whisper_to,
            whisper_mods=whisper_mods,
            judge=spam.post_rules(self.settings, now, exempt, room_rules),
            file_ids=tuple(file_ids),
            uploader_keys=tuple(user.keys),
            files_until=now + self.settings.file_ttl_seconds,
        )
        return ReadyPost(self.writer, post)

    def edit(self, view: RoomView, user: User, message_id: int, body: dict[str, object]) -> None:
        data, signature = self._checked_content(user, body)
        file_ids = _file_ids(body.get("files"))
        now = self.clock()
        with self.db.write() as conn:
            _, message = _locked_live_message(conn, view.id, message_id)
            if message.session_id not in user.keys:
                raise NotPermitted("only the author may edit a message")
            seqno = queries.next_seqno(conn, view.id)
            posts.edit(conn, view.id, message_id, data, signature, seqno, now)
            posts.keep_files(
                conn, view.id, user.keys, file_ids, now + self.settings.file_ttl_seconds
            )

    def delete(self, view: RoomView, user: User, message_id: int) -> None:
        with self.db.write() as conn:
            _, message = _locked_live_message(conn, view.id, message_id)
            check_may_delete(message.session_id, user.keys, view.access.moderator, message_id)
            queries.mark_deleted(conn, view.id, message_id)

    def delete_all_by(self, view: RoomView, keys: Sequence[str]) -> int:
        """Delete every live message of the keys in the room, and expire their uploads
        (not the room image); how many messages."""
        with self.db.write() as conn:
            queries.lock_room(conn, view.id)
            doomed = posts.live_ids_by(conn, view.id, keys)
            for message_id in doomed:
                queries.mark_deleted(conn, view.id, message_id)
            posts.expire_files_of(conn, view.id, keys, self.clock(), view.room.image_file_id)
        return len(doomed)

    # -- reactions --------------------------------------------------------------------

    def react(
        self, view: RoomView, user: User, message_id: int, reaction: str, add: bool
    ) -> tuple[bool, int]:
        """Add or remove the user's reaction: (whether anything changed, the room's seqno)."""
        reaction = reaction_text(reaction)
        with self.db.write() as conn:
            room_seqno, message = _locked_live_message(conn, view.id, message_id)
            if not posts.visible_to(message, user.keys, view.access.moderator):
                raise NoSuchMessage(message_id)
            if add:
                changed = posts.add_reaction(
                    conn, view.id, message_id, reaction, user.session_id, self.clock()
                )
            else:
                changed = posts.remove_reactions(conn, view.id, message_id, reaction, user.keys) > 0
            seqno = _seqno_after(conn, view.id, message_id, room_seqno, changed=changed)
        return changed, seqno

    def clear_reactions(
        self, view: RoomView, message_id: int, reaction: str | None
    ) -> tuple[int, int]:
        """A moderator removes every reaction (of one kind) from a message: (how many,
        the room's seqno)."""
        if reaction is not None:
            reaction = reaction_text(reaction)
        with self.db.write() as conn:
            room_seqno, _ = _locked_live_message(conn, view.id, message_id)
            removed = posts.remove_reactions(conn, view.id, message_id, reaction)
            seqno = _seqno_after(conn, view.id, message_id, room_seqno, changed=removed > 0)
        return removed, seqno

    def reactors(
        self, view: RoomView, user: User | None, message_id: int, reaction: str, limit: int
    ) -> list[tuple[str, float]]:
        reaction = reaction_text(reaction)
        keys = user.keys if user else ()
        with self.db.read() as conn:
            self._visible_message(conn, view, keys, message_id)
            return posts.reactors(conn, view.id, message_id, reaction, limit)


def _locked_live_message(
    conn: Connection, room_id: str, message_id: int
) -> tuple[int, StoredMessage]:
    """Take the room's row lock (a concurrent deletion of the message waits, or went
    first) and read the message: the room's seqno (a change to the message's
    reactions moves it to the next one) and the message; 404 if it is missing or
    deleted."""
    locked = posts.one_in_locked_room(conn, room_id, message_id)
    if locked is None or locked.message is None or locked.message.deleted:
        raise NoSuchMessage(message_id)
    return locked.seqno, locked.message


def _seqno_after(
    conn: Connection, room_id: str, message_id: int, room_seqno: int, *, changed: bool
) -> int:
    """The room's seqno after a change to a message's reactions: the message takes the
    next one if they changed, else the room's (``room_seqno``, read under its lock)
    stays as it is."""
    return posts.move_to_next_seqno(conn, room_id, message_id) if changed else room_seqno


def _file_ids(value: object) -> list[int]:
    """The ``files`` of a post: ids as numbers or as their decimal text."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput("files must be a list of file ids")
    if len(value) > MAX_PAGE:
        raise InvalidInput(f"at most {MAX_PAGE} files")
    return [values.integer(item, "files[]") for item in value]
