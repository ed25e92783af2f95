"""Shared rate-limit events, upload-rate index, and per-room user activity.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_events",
        sa.Column("bucket", sa.String(200), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("rate_events_by_bucket", "rate_events", ["bucket", "at"])
    op.create_index("files_by_uploader", "files", ["room_id", "uploader", "created_at"])
    op.create_table(
        "room_activity",
        sa.Column(
            "room_id",
            sa.String(64),
            sa.ForeignKey("rooms.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("public_key", sa.String(66), nullable=False),
        sa.Column("last_active", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("room_id", "public_key"),
    )
    op.create_index("room_activity_by_time", "room_activity", ["room_id", "last_active"])


def downgrade() -> None:
    op.drop_table("room_activity")
    op.drop_index("files_by_uploader", "files")
    op.drop_table("rate_events")
