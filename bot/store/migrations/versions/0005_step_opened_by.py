"""session_steps.opened_by: who opened a step with `/protocol next` or its Next button

Two people sending `/protocol next` at nearly the same moment (the facilitator and a workspace
admin) would move the session two steps; the second finds the step just opened by someone else
and is turned away.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session_steps") as batch:
        batch.add_column(sa.Column("opened_by", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("session_steps") as batch:
        batch.drop_column("opened_by")
