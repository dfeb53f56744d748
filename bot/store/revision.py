"""The schema revision this code runs on, known without loading Alembic and its migrations.

`serve` and `clock` check the database's revision at every start; Alembic's way (import it, read
every migration script) was a fifth of a cold start. `HEAD` is the newest migration's revision:
tests/test_cli.py fails when a new migration leaves it behind.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from bot.store.db import Database

HEAD = "0018"


def at_head(db: Database) -> bool:
    """Whether the database is at HEAD, in one query; False when it cannot tell (no version
    table yet), for Alembic to say what is wrong."""
    try:
        with db.engine.connect() as conn:
            revisions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:
        return False
    return [row[0] for row in revisions] == [HEAD]
