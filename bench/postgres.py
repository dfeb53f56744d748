"""A throwaway PostgreSQL cluster (initdb and pg_ctl in a temporary directory) for `--postgres`."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.processes import free_port


def _bin_dir() -> Path:
    found = shutil.which("initdb")
    candidates = [Path(found).parent] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found")


class TemporaryPostgres:
    """initdb, start on a free loopback port, and remove it all on exit. As root, runs as
    the `postgres` user, which initdb requires."""

    def __init__(self, statements: bool = False) -> None:
        self.statements = statements  # load pg_stat_statements (for --profile)
        self.bin = _bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        self.port = free_port()
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            subprocess.run(["useradd", "-r", "-M", "postgres"], capture_output=True, check=False)
            shutil.chown(self.dir, "postgres")
            self.run_as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://protocolbot@127.0.0.1:{self.port}/postgres"

    def _pg(self, tool: str, *args: str) -> None:
        subprocess.run([*self.run_as, str(self.bin / tool), *args], check=True, capture_output=True)

    def start(self) -> TemporaryPostgres:
        data = str(self.dir / "data")
        self._pg("initdb", "-D", data, "-U", "protocolbot", "--auth=trust", "-E", "UTF8")
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c max_connections=300 -c shared_buffers=256MB"
        )
        if self.statements:
            options += " -c shared_preload_libraries=pg_stat_statements"
        self._pg("pg_ctl", "-D", data, "-l", str(self.dir / "log"), "-w", "-o", options, "start")
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pg("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    @classmethod
    @contextlib.contextmanager
    def maybe(cls, wanted: bool, statements: bool = False) -> Iterator[str | None]:
        """A running cluster's admin URL when `wanted`, else None; with `statements`, its
        databases can `CREATE EXTENSION pg_stat_statements` (bench/profiling.py does)."""
        if not wanted:
            yield None
            return
        cluster = cls(statements).start()
        try:
            yield cluster.url
        finally:
            cluster.stop()
