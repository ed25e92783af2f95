"""The first schema, and the default room ``main`` a new server starts with.

Revision ID: 0001
Revises:
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _room_id() -> sa.Column[str]:
    return sa.Column(
        "room_id", sa.String(64), sa.ForeignKey("rooms.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    rooms = op.create_table(
        "rooms",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("message_seq", sa.BigInteger, nullable=False),
        sa.Column("deletion_seq", sa.BigInteger, nullable=False),
        sa.Column("image_file_id", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "messages",
        _room_id(),
        sa.Column("server_id", sa.BigInteger, nullable=False),
        sa.Column("public_key", sa.String(66), nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("posted_at", sa.Float, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("room_id", "server_id"),
    )
    op.create_index("messages_by_sender", "messages", ["room_id", "public_key", "posted_at"])
    op.create_table(
        "deletions",
        _room_id(),
        sa.Column("id", sa.BigInteger, nullable=False),
        sa.Column("message_id", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("room_id", "id"),
    )
    op.create_index("deletions_by_message", "deletions", ["room_id", "message_id"], unique=True)
    for name, time_column in (("moderators", "added_at"), ("bans", "banned_at")):
        op.create_table(
            name,
            _room_id(),
            sa.Column("public_key", sa.String(66), nullable=False),
            sa.Column(time_column, sa.Float, nullable=False),
            sa.PrimaryKeyConstraint("room_id", "public_key"),
        )
    for name in ("pending_tokens", "tokens"):
        op.create_table(
            name,
            sa.Column("token_hash", sa.LargeBinary(32), primary_key=True),
            _room_id(),
            sa.Column("public_key", sa.String(66), nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False),
        )
        op.create_index(f"{name}_by_key", name, ["room_id", "public_key"])
        op.create_index(f"{name}_by_expiry", name, ["expires_at"])
    op.create_table(
        "files",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        _room_id(),
        sa.Column("uploader", sa.String(66), nullable=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
    )
    op.create_index("files_by_expiry", "files", ["expires_at"])
    op.bulk_insert(
        rooms,
        [
            {
                "id": "main",
                "name": "Main",
                "message_seq": 0,
                "deletion_seq": 0,
                "image_file_id": None,
                "created_at": time.time(),
            }
        ],
    )


def downgrade() -> None:
    for name in (
        "files",
        "tokens",
        "pending_tokens",
        "bans",
        "moderators",
        "deletions",
        "messages",
        "rooms",
    ):
        op.drop_table(name)
