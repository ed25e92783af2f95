"""Request nonces stored by the time their request was signed.

A busy server keeps a day of nonces (some 250 million at 3,000 signed requests a
second). Keyed by the random nonce alone, every admission touched a random page of
that index, which then had to stay in memory whole: with a day of them, a poll
waited on the disk. Keyed by (signed time, nonce), the pages written are the newest
and those deleted the oldest.

The nonces stored before this revision, whose request time is unknown, move to
``untimed_nonces``, where the pysogs import puts the ones it brings too: a request
is refused if its nonce is there, until they have all expired.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("request_nonces_by_expiry", table_name="request_nonces")
    op.rename_table("request_nonces", "untimed_nonces")
    if op.get_bind().dialect.name == "postgresql":  # (constraint names are per schema)
        _rename_primary_key("untimed_nonces", "request_nonces_pkey", "untimed_nonces_pkey")
    op.create_index("untimed_nonces_by_expiry", "untimed_nonces", ["expires_at"])
    op.create_table(
        "request_nonces",
        sa.Column("signed_at", sa.BigInteger, nullable=False),
        sa.Column("nonce", sa.LargeBinary(16), nullable=False),
        sa.PrimaryKeyConstraint("signed_at", "nonce"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    # (kept as long as the default window would keep them; SQLite parses an upsert's
    # SELECT only with a WHERE clause)
    op.execute(
        "INSERT INTO untimed_nonces (nonce, expires_at) "
        "SELECT nonce, signed_at + 86401 FROM request_nonces WHERE true ON CONFLICT DO NOTHING"
    )
    op.drop_table("request_nonces")
    op.drop_index("untimed_nonces_by_expiry", table_name="untimed_nonces")
    if op.get_bind().dialect.name == "postgresql":
        _rename_primary_key("untimed_nonces", "untimed_nonces_pkey", "request_nonces_pkey")
    op.rename_table("untimed_nonces", "request_nonces")
    op.create_index("request_nonces_by_expiry", "request_nonces", ["expires_at"])


def _rename_primary_key(table: str, old: str, new: str) -> None:
    op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {old} TO {new}")
