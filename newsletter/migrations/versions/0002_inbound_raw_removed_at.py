"""inbound_message.raw_removed_at: when retention removed a message's raw bytes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import newsletter.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_message") as batch_op:
        batch_op.add_column(
            sa.Column("raw_removed_at", newsletter.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("inbound_message") as batch_op:
        batch_op.drop_column("raw_removed_at")
