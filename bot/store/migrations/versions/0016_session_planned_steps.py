"""sessions.planned_steps: how many steps the session's header planned when it began

An operator who cut a protocol's file short, down to the step a running session was on, ended
the session at that step's close; its header had planned more steps, and nobody was told why
they never came. The count the session began with is now kept, so that its end can say so.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("planned_steps", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("planned_steps")
