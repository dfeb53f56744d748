"""session_steps.warn_at: when a step's closing warning is due, None once given

The warning was placed at 80 % of the time from the step's opening to its close, so a long pause
put it before the resume, and it was never given. It is now kept with the step and moves with
its close. Steps open now get the time the old rule gave them, unless they were warned already.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

WARN_AT, WARN_MIN_SECONDS = 0.8, 120

steps = sa.table(
    "session_steps",
    sa.column("id", sa.Integer),
    sa.column("session_id", sa.Integer),
    sa.column("index", sa.Integer),
    sa.column("started_at", sa.DateTime(timezone=True)),
    sa.column("closes_at", sa.DateTime(timezone=True)),
    sa.column("ended_at", sa.DateTime(timezone=True)),
    sa.column("warn_at", sa.DateTime(timezone=True)),
)
sessions = sa.table(
    "sessions", sa.column("id", sa.Integer), sa.column("team_id", sa.String), sa.column("status")
)
outbox = sa.table("outbox", sa.column("team_id", sa.String), sa.column("ref", sa.String))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def upgrade() -> None:
    with op.batch_alter_table("session_steps") as batch:
        batch.add_column(sa.Column("warn_at", sa.DateTime(timezone=True), nullable=True))
    conn = op.get_bind()
    open_steps = conn.execute(
        sa.select(steps.c.id, steps.c.session_id, steps.c.index, steps.c.started_at)
        .add_columns(steps.c.closes_at, sessions.c.team_id)
        .join(sessions, sessions.c.id == steps.c.session_id)
        .where(steps.c.ended_at.is_(None), sessions.c.status.in_(("running", "paused")))
    ).all()
    for step_id, session_id, index, started_at, closes_at, team_id in open_steps:
        opened, closes = _utc(started_at), _utc(closes_at)
        if (closes - opened).total_seconds() < WARN_MIN_SECONDS:
            continue
        warned = conn.execute(
            sa.select(sa.literal(1)).where(
                outbox.c.team_id == team_id, outbox.c.ref == f"warning:{session_id}:{index}"
            )
        ).first()
        if warned is None:
            warn_at = opened + (closes - opened) * WARN_AT
            conn.execute(steps.update().where(steps.c.id == step_id).values(warn_at=warn_at))


def downgrade() -> None:
    with op.batch_alter_table("session_steps") as batch:
        batch.drop_column("warn_at")
