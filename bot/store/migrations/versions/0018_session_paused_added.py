"""sessions.paused_added, paused_added_days: the time `extend` added to a paused step

`step 24h` paused, given `extend 1d`, and resumed across a daylight-saving change closed an hour
off the time of day: a paused step kept only the seconds it had left, and on resume all of them
were counted as its own length was typed (here in hours, the day typed as a day too). The time
added while paused, and the whole days of it typed as days, are now kept beside them, and on
resume run after the step's own time left as an `extend` would have then. A session paused
before (NULL) resumes as it did.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("paused_added", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("paused_added_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("paused_added_days")
        batch.drop_column("paused_added")
