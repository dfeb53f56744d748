"""session_steps.extended_at: when a step's Extend button last gave it more time

A double click on a step's Extend button sends two presses a fraction of a second apart; the
second finds this recent and is taken for the first.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session_steps") as batch:
        batch.add_column(sa.Column("extended_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("session_steps") as batch:
        batch.drop_column("extended_at")
