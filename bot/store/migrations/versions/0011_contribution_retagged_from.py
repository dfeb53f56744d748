"""contributions.retagged_from: the tag a reaction replaced

A facilitator or author who re-tags a reply with a reaction and then takes the reaction away
meant to undo it; the reply kept the new tag. The tag before the first such re-tag is now kept,
and taking that reaction away gives it back. Rows recorded before hold none: their re-tags stay.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    with op.batch_alter_table("contributions") as batch:
        batch.add_column(sa.Column("retagged_from", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contributions") as batch:
        batch.drop_column("retagged_from")
