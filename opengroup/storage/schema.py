"""The database tables, as SQLAlchemy Core metadata (SQLite and PostgreSQL alike).

Everything that matters lives here, not in a process: tokens, pending
challenges, the counters that number messages and deletions, files and room
images. Any number of server processes can then share one database.

Times are float seconds since the epoch; message ``timestamp`` is the
client's integer milliseconds, served back untouched. Tokens are stored only
as SHA-256 hashes. Changing a table means adding an Alembic revision under
``migrations/versions``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()


def _room_fk() -> Column[str]:
    return Column("room_id", String(64), ForeignKey("rooms.id", ondelete="CASCADE"), nullable=False)


rooms = Table(
    "rooms",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    # Last handed-out message server_id / deletion number of this room. Bumped
    # with UPDATE ... RETURNING inside the posting transaction, which locks the
    # row: ids are unique and become visible in increasing order.
    Column("message_seq", BigInteger, nullable=False, default=0),
    Column("deletion_seq", BigInteger, nullable=False, default=0),
    Column("image_file_id", BigInteger, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("description", Text, nullable=True),
    # The community API's counters: ``seqno`` grows with every post, edit, deletion
    # and reaction change (each changed message takes the new value);
    # ``info_updates`` with every change of name, description, image, pins or staff.
    Column("seqno", BigInteger, nullable=False, default=0),
    Column("info_updates", BigInteger, nullable=False, default=0),
    # What a user without an override of their own may do in the room.
    Column("default_read", Boolean, nullable=False, default=True),
    Column("default_accessible", Boolean, nullable=False, default=True),
    Column("default_write", Boolean, nullable=False, default=True),
    Column("default_upload", Boolean, nullable=False, default=True),
    # The room's own spam rules (NULL: the server's default setting of the same name).
    Column("slow_mode_seconds", Integer, nullable=True),
    Column("new_poster_wait_seconds", Integer, nullable=True),
)

messages = Table(
    "messages",
    metadata,
    _room_fk(),
    Column("server_id", BigInteger, nullable=False),
    Column("public_key", String(66), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("data", Text, nullable=False),
    Column("signature", Text, nullable=False),
    Column("posted_at", Float, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    # The room seqno of the message's latest change of any kind, of its latest change
    # of data (post, edit, deletion), and of its posting: what messages/since pages by
    # and tells apart (a new message, an edit or deletion, or new reactions only).
    Column("seqno", BigInteger, nullable=False, default=0),
    Column("seqno_data", BigInteger, nullable=False, default=0),
    Column("seqno_created", BigInteger, nullable=False, default=0),
    Column("edited_at", Float, nullable=True),
    # A whisper: to one session id, and/or to the room's moderators.
    Column("whisper_to", String(66), nullable=True),
    Column("whisper_mods", Boolean, nullable=False, default=False),
    PrimaryKeyConstraint("room_id", "server_id"),
    Index("messages_by_sender", "room_id", "public_key", "posted_at"),
    Index("messages_by_seqno", "room_id", "seqno"),
)

deletions = Table(
    "deletions",
    metadata,
    _room_fk(),
    Column("id", BigInteger, nullable=False),
    Column("message_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("room_id", "id"),
    Index("deletions_by_message", "room_id", "message_id", unique=True),
)

moderators = Table(
    "moderators",
    metadata,
    _room_fk(),
    Column("public_key", String(66), nullable=False),
    Column("added_at", Float, nullable=False),
    # An admin is a moderator who may also change the room and its staff. A hidden
    # one is left out of the staff lists that non-moderators see.
    Column("admin", Boolean, nullable=False, default=False),
    Column("visible", Boolean, nullable=False, default=True),
    PrimaryKeyConstraint("room_id", "public_key"),
)

# Moderators and admins of every room (hidden by default).
global_moderators = Table(
    "global_moderators",
    metadata,
    Column("public_key", String(66), primary_key=True),
    Column("added_at", Float, nullable=False),
    Column("admin", Boolean, nullable=False, default=False),
    Column("visible", Boolean, nullable=False, default=False),
)

bans = Table(
    "bans",
    metadata,
    _room_fk(),
    Column("public_key", String(66), nullable=False),
    Column("banned_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),  # NULL: until lifted
    PrimaryKeyConstraint("room_id", "public_key"),
)

# Bans from every room (and from sending or receiving direct messages).
global_bans = Table(
    "global_bans",
    metadata,
    Column("public_key", String(66), primary_key=True),
    Column("banned_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
)

pending_tokens = Table(
    "pending_tokens",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    _room_fk(),
    Column("public_key", String(66), nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("pending_tokens_by_key", "room_id", "public_key"),
    Index("pending_tokens_by_expiry", "expires_at"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    _room_fk(),
    Column("public_key", String(66), nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("tokens_by_key", "room_id", "public_key"),
    Index("tokens_by_expiry", "expires_at"),
)

files = Table(
    "files",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    _room_fk(),
    Column("uploader", String(66), nullable=True),
    Column("data", LargeBinary, nullable=False),
    Column("size", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    # NULL: never expires (room images).
    Column("expires_at", Float, nullable=True),
    Column("filename", Text, nullable=True),  # as the uploader named it, if they did
    Index("files_by_expiry", "expires_at"),
    Index("files_by_uploader", "room_id", "uploader", "created_at"),
)

# One row per counted event of a shared rate limit; ``bucket`` names the limit
# and the key it applies to (e.g. "challenge:05ab..."). Old rows are pruned.
rate_events = Table(
    "rate_events",
    metadata,
    Column("bucket", String(200), nullable=False),
    Column("at", Float, nullable=False),
    Index("rate_events_by_bucket", "bucket", "at"),
)

# When each key last used a token in a room (refreshed at most every few
# minutes, so polls stay read-only); feeds "active users" statistics.
room_activity = Table(
    "room_activity",
    metadata,
    _room_fk(),
    Column("public_key", String(66), nullable=False),
    Column("last_active", Float, nullable=False),
    PrimaryKeyConstraint("room_id", "public_key"),
    Index("room_activity_by_time", "room_id", "last_active"),
)


def _autoincrement_id() -> Column[int]:
    # SQLite numbers rows by itself only for a column declared INTEGER PRIMARY KEY.
    return Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True)


# One user's permissions in one room where they differ from the room's defaults
# (NULL: the default).
permission_overrides = Table(
    "permission_overrides",
    metadata,
    _room_fk(),
    Column("public_key", String(66), nullable=False),
    Column("read", Boolean, nullable=True),
    Column("accessible", Boolean, nullable=True),
    Column("write", Boolean, nullable=True),
    Column("upload", Boolean, nullable=True),
    PrimaryKeyConstraint("room_id", "public_key"),
)

# Permission overrides to apply at a later time (NULL: left as it is then).
future_permissions = Table(
    "future_permissions",
    metadata,
    _autoincrement_id(),
    _room_fk(),
    Column("public_key", String(66), nullable=False),
    Column("at", Float, nullable=False),
    Column("read", Boolean, nullable=True),
    Column("write", Boolean, nullable=True),
    Column("upload", Boolean, nullable=True),
    Index("future_permissions_by_time", "at"),
)

# Identities seen here: community API signers as they first and last signed a
# request, v2 keys as they first claimed a token. ``first_spoke``: when the identity
# first posted or sent a direct message while the cap on new identities was on
# (NULL: not recorded), see opengroup/domain/spam.py.
users = Table(
    "users",
    metadata,
    Column("session_id", String(66), primary_key=True),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("first_spoke", Float, nullable=True),
)

# A Session id ("05...") named by the operator or a moderator, and the blinded id
# ("15...") it signs in as on this server. ``blinded_abs`` is the blinded key with
# its sign bit cleared, the same for both candidates; ``blinded_id`` is the one
# seen, once it is.
blinded_ids = Table(
    "blinded_ids",
    metadata,
    Column("session_id", String(66), primary_key=True),
    Column("blinded_abs", String(66), nullable=False),
    Column("blinded_id", String(66), nullable=True),
    Index("blinded_ids_by_abs", "blinded_abs"),
)

# The nonce of every signed request with the time it was signed at (its
# X-SOGS-Timestamp), kept until that time leaves the accepted window: a request can
# never be replayed. In the order of time (no row id on SQLite), so the pages an
# admission writes are the newest and those pruning deletes the oldest.
request_nonces = Table(
    "request_nonces",
    metadata,
    Column("signed_at", BigInteger, primary_key=True),
    Column("nonce", LargeBinary(16), primary_key=True),
    sqlite_with_rowid=False,
)

# Nonces whose request time is unknown: brought by the pysogs import, or stored before
# schema revision 0006. A request whose nonce is here is refused until it expires.
untimed_nonces = Table(
    "untimed_nonces",
    metadata,
    Column("nonce", LargeBinary(16), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Index("untimed_nonces_by_expiry", "expires_at"),
)

reactions = Table(
    "reactions",
    metadata,
    _room_fk(),
    Column("message_id", BigInteger, nullable=False),
    Column("reaction", Text, nullable=False),
    Column("public_key", String(66), nullable=False),
    Column("reacted_at", Float, nullable=False),
    PrimaryKeyConstraint("room_id", "message_id", "reaction", "public_key"),
    # A page's reactions, each message's in time order, without visiting the table.
    Index("reactions_in_order", "room_id", "message_id", "reacted_at", "public_key", "reaction"),
)

pins = Table(
    "pins",
    metadata,
    _room_fk(),
    Column("message_id", BigInteger, nullable=False),
    Column("pinned_at", Float, nullable=False),
    Column("pinned_by", String(66), nullable=False),
    PrimaryKeyConstraint("room_id", "message_id"),
)

# Blinded direct messages ("message requests"): opaque to the server.
direct_messages = Table(
    "direct_messages",
    metadata,
    _autoincrement_id(),
    Column("sender", String(66), nullable=False),
    Column("recipient", String(66), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("posted_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("direct_messages_by_recipient", "recipient", "id"),
    Index("direct_messages_by_sender", "sender", "id"),
    Index("direct_messages_by_expiry", "expires_at"),
)
