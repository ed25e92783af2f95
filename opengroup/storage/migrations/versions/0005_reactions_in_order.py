"""Reactions in the order a page shows them: an index on a message's reactions by
time, holding every column a page reads, so that reading the reactions of a page's
messages neither sorts them nor visits the table.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "reactions_in_order",
        "reactions",
        ["room_id", "message_id", "reacted_at", "public_key", "reaction"],
    )


def downgrade() -> None:
    op.drop_index("reactions_in_order", table_name="reactions")
