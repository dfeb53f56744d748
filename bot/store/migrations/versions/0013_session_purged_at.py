"""sessions.purged_at: when retention deleted what the session's people wrote

With DATA_RETENTION_DAYS set, housekeeping deletes an ended session's replies. Its notes then
read as if nothing had been written (`/protocol notes`, `protocolbot export`); the time of the
deletion is now kept with the session, so that they say what happened.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("purged_at")
