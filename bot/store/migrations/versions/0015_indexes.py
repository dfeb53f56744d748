"""Indexes: the outbox's head in a partial index (ix_outbox_due); sessions by channel alone

ix_outbox_due, the rows still to send in id order.
The sender reads the oldest pending rows every round. With ix_outbox_pending (status,
not_before) over every row, PostgreSQL chose by its statistics: taken while most rows were
pending (a burst of sessions starting), they sent it along the primary key through every row
already sent, 60 ms a read at 67,000 rows against 0.05 ms. A partial index of the pending rows
alone, in id order, is the one plan whatever the statistics say, and a row sent leaves it.

ix_sessions_channel_id: an event from a channel workspaces share (Slack Connect, an Enterprise Grid
org) is looked up by its channel alone, in every workspace's sessions; ix_sessions_channel leads
with the workspace, so that read went through every session.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_pending")
        batch.create_index("ix_outbox_due", ["id"], postgresql_where=PENDING, sqlite_where=PENDING)
    with op.batch_alter_table("sessions") as batch:
        batch.create_index("ix_sessions_channel_id", ["channel_id"])


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_index("ix_sessions_channel_id")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_due")
        batch.create_index("ix_outbox_pending", ["status", "not_before"])
