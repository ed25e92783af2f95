"""Spam defences: a room's own slow mode and wait for new posters, and when an
identity first spoke (posted or sent a direct message). Existing rooms follow the
server's settings (NULL); nothing else changes.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rooms", sa.Column("slow_mode_seconds", sa.Integer, nullable=True))
    op.add_column("rooms", sa.Column("new_poster_wait_seconds", sa.Integer, nullable=True))
    op.add_column("users", sa.Column("first_spoke", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("first_spoke")
    with op.batch_alter_table("rooms") as batch:
        batch.drop_column("new_poster_wait_seconds")
        batch.drop_column("slow_mode_seconds")
