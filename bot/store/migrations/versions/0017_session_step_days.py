"""sessions.step_days: how many of a step's whole days were typed as days

`step 24h` across a daylight-saving change closed at the same time of day, 23 or 25 hours on,
as `step 1d` does: a step's length was kept in seconds alone. The days typed as days are now
kept beside it, so that hours are counted as hours; a session from before (NULL) counts every
whole day on the calendar, as it did.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("step_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("step_days")
