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


def _room_fk() -> Column:
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
    PrimaryKeyConstraint("room_id", "server_id"),
    Index("messages_by_sender", "room_id", "public_key", "posted_at"),
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
    PrimaryKeyConstraint("room_id", "public_key"),
)

bans = Table(
    "bans",
    metadata,
    _room_fk(),
    Column("public_key", String(66), nullable=False),
    Column("banned_at", Float, nullable=False),
    PrimaryKeyConstraint("room_id", "public_key"),
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
