"""The community API ("v3"): room details and counters, seqnos, whispers, edits,
reactions, pins, staff and bans of every kind, permissions, users, blinded ids,
request nonces and direct messages. Every existing room, message and token stays.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _room_id() -> sa.Column[str]:
    return sa.Column(
        "room_id", sa.String(64), sa.ForeignKey("rooms.id", ondelete="CASCADE"), nullable=False
    )


def _flag(name: str, default: bool) -> sa.Column[bool]:
    return sa.Column(
        name, sa.Boolean, nullable=False, server_default=sa.true() if default else sa.false()
    )


def _counter(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


def _autoincrement_id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)


def upgrade() -> None:
    op.add_column("rooms", sa.Column("description", sa.Text, nullable=True))
    op.add_column("rooms", _counter("seqno"))
    op.add_column("rooms", _counter("info_updates"))
    for name in ("default_read", "default_accessible", "default_write", "default_upload"):
        op.add_column("rooms", _flag(name, True))

    for name in ("seqno", "seqno_data", "seqno_created"):
        op.add_column("messages", _counter(name))
    op.add_column("messages", sa.Column("edited_at", sa.Float, nullable=True))
    op.add_column("messages", sa.Column("whisper_to", sa.String(66), nullable=True))
    op.add_column("messages", _flag("whisper_mods", False))
    # Existing messages took their seqnos in the order of their ids.
    op.execute(
        "UPDATE messages SET seqno = server_id, seqno_data = server_id, seqno_created = server_id"
    )
    # info_updates starts at 1: clients that ask with 0 (desktop always does) get the details.
    op.execute("UPDATE rooms SET seqno = message_seq, info_updates = 1")
    op.create_index("messages_by_seqno", "messages", ["room_id", "seqno"])

    op.add_column("moderators", _flag("admin", False))
    op.add_column("moderators", _flag("visible", True))
    op.create_table(
        "global_moderators",
        sa.Column("public_key", sa.String(66), primary_key=True),
        sa.Column("added_at", sa.Float, nullable=False),
        _flag("admin", False),
        _flag("visible", False),
    )
    op.add_column("bans", sa.Column("expires_at", sa.Float, nullable=True))
    op.create_table(
        "global_bans",
        sa.Column("public_key", sa.String(66), primary_key=True),
        sa.Column("banned_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
    )
    op.add_column("files", sa.Column("filename", sa.Text, nullable=True))

    op.create_table(
        "permission_overrides",
        _room_id(),
        sa.Column("public_key", sa.String(66), nullable=False),
        sa.Column("read", sa.Boolean, nullable=True),
        sa.Column("accessible", sa.Boolean, nullable=True),
        sa.Column("write", sa.Boolean, nullable=True),
        sa.Column("upload", sa.Boolean, nullable=True),
        sa.PrimaryKeyConstraint("room_id", "public_key"),
    )
    op.create_table(
        "future_permissions",
        _autoincrement_id(),
        _room_id(),
        sa.Column("public_key", sa.String(66), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("read", sa.Boolean, nullable=True),
        sa.Column("write", sa.Boolean, nullable=True),
        sa.Column("upload", sa.Boolean, nullable=True),
    )
    op.create_index("future_permissions_by_time", "future_permissions", ["at"])
    op.create_table(
        "users",
        sa.Column("session_id", sa.String(66), primary_key=True),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
    )
    op.create_table(
        "blinded_ids",
        sa.Column("session_id", sa.String(66), primary_key=True),
        sa.Column("blinded_abs", sa.String(66), nullable=False),
        sa.Column("blinded_id", sa.String(66), nullable=True),
    )
    op.create_index("blinded_ids_by_abs", "blinded_ids", ["blinded_abs"])
    op.create_table(
        "request_nonces",
        sa.Column("nonce", sa.LargeBinary(16), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("request_nonces_by_expiry", "request_nonces", ["expires_at"])
    op.create_table(
        "reactions",
        _room_id(),
        sa.Column("message_id", sa.BigInteger, nullable=False),
        sa.Column("reaction", sa.Text, nullable=False),
        sa.Column("public_key", sa.String(66), nullable=False),
        sa.Column("reacted_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("room_id", "message_id", "reaction", "public_key"),
    )
    op.create_table(
        "pins",
        _room_id(),
        sa.Column("message_id", sa.BigInteger, nullable=False),
        sa.Column("pinned_at", sa.Float, nullable=False),
        sa.Column("pinned_by", sa.String(66), nullable=False),
        sa.PrimaryKeyConstraint("room_id", "message_id"),
    )
    op.create_table(
        "direct_messages",
        _autoincrement_id(),
        sa.Column("sender", sa.String(66), nullable=False),
        sa.Column("recipient", sa.String(66), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("posted_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("direct_messages_by_recipient", "direct_messages", ["recipient", "id"])
    op.create_index("direct_messages_by_sender", "direct_messages", ["sender", "id"])
    op.create_index("direct_messages_by_expiry", "direct_messages", ["expires_at"])


def downgrade() -> None:
    for table in (
        "direct_messages",
        "pins",
        "reactions",
        "request_nonces",
        "blinded_ids",
        "users",
        "future_permissions",
        "permission_overrides",
        "global_bans",
        "global_moderators",
    ):
        op.drop_table(table)
    with op.batch_alter_table("files") as batch:
        batch.drop_column("filename")
    with op.batch_alter_table("bans") as batch:
        batch.drop_column("expires_at")
    with op.batch_alter_table("moderators") as batch:
        batch.drop_column("visible")
        batch.drop_column("admin")
    op.drop_index("messages_by_seqno", "messages")
    with op.batch_alter_table("messages") as batch:
        for name in (
            "whisper_mods",
            "whisper_to",
            "edited_at",
            "seqno_created",
            "seqno_data",
            "seqno",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("rooms") as batch:
        for name in (
            "default_upload",
            "default_write",
            "default_accessible",
            "default_read",
            "info_updates",
            "seqno",
            "description",
        ):
            batch.drop_column(name)
