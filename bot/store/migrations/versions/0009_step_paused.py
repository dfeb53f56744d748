"""session_steps.paused_at, paused_seconds: the time a step spent paused

A step's length in the notes' debrief figures ran from its start to its end, so a step run for an
hour before a weekend pause read as two days. The time it is paused is now kept with the step and
counted out. Steps that ran before have none recorded.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    with op.batch_alter_table("session_steps") as batch:
        batch.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("paused_seconds", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("session_steps") as batch:
        batch.drop_column("paused_seconds")
        batch.drop_column("paused_at")
