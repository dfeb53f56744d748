"""Where a benchmark runs: a scratch directory, a database per run (SQLite or PostgreSQL)."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

from bot.store.db import Database
from bot.store.migrate import upgrade

DOCS = Path(__file__).resolve().parent.parent / "docs"


@dataclass
class Context:
    """What every benchmark is given: where to write, and how to get an empty, migrated database.

    `postgres_admin_url` is a URL to a PostgreSQL server on which the bench may create and drop
    its own databases; without it every run gets a fresh SQLite file.
    """

    out: Path = DOCS
    postgres_admin_url: str | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-")))
    quiet: bool = False
    profile: Path | None = None  # py-spy profiles of our bot go here, when given
    _databases: list[str] = field(default_factory=list)
    _began: float = field(default_factory=time.monotonic)

    @property
    def production_shape(self) -> bool:
        """Run ours as a web process and the clock: PostgreSQL's production shape (PRODUCT 4).
        SQLite is one process."""
        return self.postgres_admin_url is not None

    @property
    def database_kind(self) -> str:
        return "PostgreSQL" if self.postgres_admin_url else "SQLite"

    def fresh_database(self, *, migrate: bool = True) -> str:
        """An empty database; with `migrate`, brought to this tree's schema (bench/ab.py's
        variants bring theirs to their own)."""
        name = f"bench_{uuid.uuid4().hex[:10]}"
        if self.postgres_admin_url is None:
            url = f"sqlite:///{self.workdir}/{name}.sqlite3"
        else:
            admin = create_engine(self.postgres_admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            url = f"{self.postgres_admin_url.rsplit('/', 1)[0]}/{name}"
            self._databases.append(name)
        if migrate:
            db = Database(url)
            upgrade(db)
            db.dispose()
        return url

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - self._began:6.1f}s] {message}", flush=True)

    def close(self) -> None:
        if self.postgres_admin_url and self._databases:
            admin = create_engine(self.postgres_admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                for name in self._databases:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(self.workdir, ignore_errors=True)
