"""contributions.edited_ts: which edit of a reply its text is

Slack may deliver a reply's edits out of order (an earlier edit retried after a later one went
through), and the earlier one overwrote the author's last words. The Slack ts of the edit a row
holds is now kept, and an older edit changes nothing. Rows recorded before hold none: the first
edit handled after the upgrade sets it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    with op.batch_alter_table("contributions") as batch:
        batch.add_column(sa.Column("edited_ts", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contributions") as batch:
        batch.drop_column("edited_ts")
