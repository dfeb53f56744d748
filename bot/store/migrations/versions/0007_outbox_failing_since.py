"""outbox.failing_since: when Slack first failed a call, to give it up by time, not by count

A call was given up after 25 failed attempts, about 20 minutes of a Slack outage, and the step
message or the notes were lost. It is now tried for a day from its first failure.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("failing_since")
