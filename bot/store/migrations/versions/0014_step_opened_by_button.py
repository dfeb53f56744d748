"""session_steps.opened_by_button: whether a step was opened by a Next button, not a typed `next`

A facilitator who pressed Next step and typed `/protocol next` a moment later (both meant for the
step they were looking at) moved the session two steps: a step was skipped. A typed `next` that
arrives straight after its sender's own button press now leaves the new step open.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    with op.batch_alter_table("session_steps") as batch:
        batch.add_column(
            sa.Column("opened_by_button", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("session_steps") as batch:
        batch.drop_column("opened_by_button")
