"""sessions.names: what Slack called the presenter and the facilitator

The notes file names a presenter or facilitator who wrote nothing by the name Slack gave when
the session was started. The name was kept in the process's memory only, so a session that
ended after a restart (a deploy during a week of day-long steps) named them by their Slack id.
It is now kept with the session, and cleared with what people wrote when retention says so.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("names", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("names")
