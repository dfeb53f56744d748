"""The protocolbot command as an operator meets it (PRODUCT 4): a database it cannot open, or a
setting it cannot use, stops it with one line that says what to do, exit code 2, no traceback."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command as alembic_command
from sqlalchemy import create_engine, make_url, select, text

from bot.cli import _driver_reason, build_parser
from bot.export import export
from bot.protocols import BUILTIN_DIR, BUILTIN_IDS
from bot.settings import Settings
from bot.slack_standin import SlackStandin
from bot.store.db import Database
from bot.store.migrate import alembic_config, head_revision, upgrade
from bot.store.revision import HEAD
from tests.conftest import PG_ADMIN_URL
from tests.harness import TEACHERS, Bot
from tests.process import (
    CLI,
    REPO_ROOT,
    BotProcess,
    as_from_a_terminal,
    bot_environment,
    free_port,
    run_cli,
)

PASSWORD = "pw-Secret-4711"
REFUSED = f"postgresql://bot:{PASSWORD}@127.0.0.1:1/protocolbot"
NO_SUCH_HOST = f"postgresql://bot:{PASSWORD}@no-such-host.invalid/protocolbot"
NO_SUCH_DIR = "sqlite:////nonexistent-dir-of-protocolbot/bot.sqlite3"


def _run(
    args: list[str], database_url: str, cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    settings = bot_environment(
        SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="signing", DATABASE_URL=database_url
    )
    return run_cli(args, {**settings, **env}, cwd)


def _migrated(tmp_path: Path) -> str:
    """A SQLite database at the current schema, made in this process (a child's start-up
    takes a second or two)."""
    url = f"sqlite:///{tmp_path}/bot.sqlite3"
    db = Database(url)
    upgrade(db)
    db.dispose()
    return url


def _one_line(done: subprocess.CompletedProcess[str], password: str = PASSWORD) -> str:
    """The one line a refused command printed on stderr, checked for what must not be there."""
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert password not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "database_url", "reason"),
    [
        (["db", "upgrade"], NO_SUCH_DIR, "unable to open database file"),
        (["db", "upgrade"], REFUSED, "Connection refused"),
        (["export", "latest"], REFUSED, "Connection refused"),
        # Not waited for (see test_serve_and_clock_wait_for_a_postgresql_not_up_yet).
        (["clock", "--wait-for-database", "0"], NO_SUCH_HOST, "no-such-host.invalid"),
        (["serve", "--wait-for-database", "0"], REFUSED, "Connection refused"),
    ],
    ids=["upgrade-sqlite-no-dir", "upgrade-refused", "export-refused", "clock-no-host", "serve"],
)
def test_a_database_that_cannot_be_opened_stops_a_command_with_the_drivers_reason(
    args: list[str], database_url: str, reason: str, tmp_path: Path
) -> None:
    line = _one_line(_run(args, database_url, tmp_path))
    assert line.startswith("protocolbot: cannot open DATABASE_URL: "), line
    assert reason in line


@contextlib.contextmanager
def _coming_up(port: int, server: tuple[str, int]) -> Iterator[Callable[[], None]]:
    """A database server at 127.0.0.1:`port` not up yet (nothing listens there, so a connection
    is refused) until the function yielded is called: from then on it is the test's server."""
    listening = socket.socket()
    stopping = threading.Event()

    def pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def serve() -> None:
        while not stopping.is_set():
            try:
                client, _ = listening.accept()
            except OSError:
                return
            upstream = socket.create_connection(server)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    def up() -> None:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(("127.0.0.1", port))
        listening.listen(16)
        threading.Thread(target=serve, daemon=True).start()

    try:
        yield up
    finally:
        stopping.set()
        listening.close()


def _said(path: Path, words: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if words in (text := path.read_text()):
            return text
        time.sleep(0.05)
    raise AssertionError(f"{words!r} not said:\n{path.read_text()[-3000:]}")


@pytest.mark.postgres
@pytest.mark.skipif(
    not PG_ADMIN_URL, reason="needs a PostgreSQL server (PROTOCOLBOT_TEST_POSTGRES)"
)
@pytest.mark.parametrize(
    ("command", "running"), [("serve", "listening on"), ("clock", "clock running")]
)
def test_serve_and_clock_wait_for_a_postgresql_not_up_yet(
    command: str, running: str, database_url: str, slack_api: SlackStandin, tmp_path: Path
) -> None:
    # Started by compose or systemd beside the database, they stopped at once: it was not up.
    env = bot_environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET="signing",
        SLACK_API_URL=slack_api.url,
        DATABASE_URL=database_url,
        PORT=str(free_port()),
    )
    assert run_cli(["db", "upgrade"], env, tmp_path).returncode == 0
    real = make_url(database_url)
    port = free_port()
    env["DATABASE_URL"] = real.set(host="127.0.0.1", port=port).render_as_string(False)
    log = tmp_path / "bot.log"
    with _coming_up(port, (str(real.host), int(real.port or 5432))) as up, log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", CLI, command], env=env, cwd=tmp_path, stdout=out, stderr=out
        )
        try:
            said = _said(log, "the database is not up yet")
            assert "Connection refused" in said and "waiting up to 60 s" in said, said
            up()
            said = _said(log, running)
            assert said.index("the database is up") < said.index(running)
            process.terminate()
            assert process.wait(10) == 0, log.read_text()
        finally:
            process.kill()
            process.wait()
    assert "Traceback" not in log.read_text()
    # A server that is up and refuses (no such database, a wrong password) is not waited for.
    env["DATABASE_URL"] = real.set(database="no_such_protocolbot_db").render_as_string(False)
    began = time.monotonic()
    line = _one_line(run_cli([command], env, tmp_path), real.password or PASSWORD)
    assert time.monotonic() - began < 15
    assert line.startswith("protocolbot: cannot open DATABASE_URL: "), line
    assert "no_such_protocolbot_db" in line


def test_a_database_still_not_up_after_the_wait_stops_serve_as_before(tmp_path: Path) -> None:
    began = time.monotonic()
    done = _run(["serve", "--wait-for-database", "2"], REFUSED, tmp_path)
    assert 2 <= time.monotonic() - began < 15
    assert done.returncode == 2 and "Traceback" not in done.stderr and PASSWORD not in done.stderr
    waiting, line = done.stderr.splitlines()
    assert "WARNING bot: the database is not up yet (" in waiting
    assert waiting.endswith("Connection refused): waiting up to 2 s"), waiting
    assert line.startswith("protocolbot: cannot open DATABASE_URL: "), line
    assert "Connection refused" in line


@contextlib.contextmanager
def _server_without_ssl() -> Iterator[int]:
    """A PostgreSQL server's first answer, that it has no SSL ('N' to each SSL or GSS request),
    on a port of 127.0.0.1: yields the port."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()

    def answer() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = listening.accept()
                with connection:
                    while len(connection.recv(8)) == 8:
                        connection.sendall(b"N")

    threading.Thread(target=answer, daemon=True).start()
    try:
        yield listening.getsockname()[1]
    finally:
        listening.close()


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("sslmode=bogus", 'invalid sslmode value: "bogus"'),
        ("foo=bar", 'invalid connection option "foo"'),
        ("connect_timeout=abc", "connect_timeout"),
        ("sslmode=require", "server does not support SSL, but SSL was required"),
    ],
    ids=["sslmode-bogus", "unknown-option", "timeout-no-number", "ssl-the-server-has-not"],
)
@pytest.mark.parametrize("command", ["serve", "clock"])
def test_a_setting_in_the_url_the_driver_refuses_stops_at_once_not_waited_for(
    command: str, query: str, reason: str, tmp_path: Path
) -> None:
    with _server_without_ssl() as port:
        url = f"postgresql://bot:{PASSWORD}@127.0.0.1:{port}/protocolbot?{query}"
        began = time.monotonic()
        line = _one_line(_run([command, "--wait-for-database", "30"], url, tmp_path))
    assert time.monotonic() - began < 15
    assert line.startswith("protocolbot: cannot open DATABASE_URL: "), line
    assert reason in line


@contextlib.contextmanager
def _interruptible(
    command: list[str], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], socket.socket]]:
    """`command` run as from a terminal (Ctrl-C not ignored), its DATABASE_URL a server that
    takes the connection and never answers; both ended on the way out."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    listening.settimeout(30)
    url = f"postgresql://bot:{PASSWORD}@127.0.0.1:{listening.getsockname()[1]}/protocolbot"
    process = subprocess.Popen(
        command,
        env=bot_environment(DATABASE_URL=url),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_terminal,
    )
    try:
        yield process, listening
    finally:
        process.kill()
        process.wait()
        listening.close()


@pytest.mark.parametrize(
    "args",
    [["db", "upgrade"], ["export", "latest"], ["sessions"], ["forget-user", "U0123ABCD"]],
    ids=["upgrade", "export", "sessions", "forget-user"],
)
def test_ctrl_c_in_a_command_stops_it_with_one_line_not_a_traceback(
    args: list[str], tmp_path: Path
) -> None:
    # The command is surely under way, waiting on the database, when it has connected.
    with _interruptible([sys.executable, "-c", CLI, *args], tmp_path) as (process, listening):
        connection, _ = listening.accept()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    connection.close()
    assert process.returncode == 130, err
    assert "Traceback" not in err and PASSWORD not in err
    assert err.splitlines() == ["protocolbot: stopped (Ctrl-C) before it finished: run it again"]


def _console_script() -> str:
    """What the `protocolbot` script pip writes runs: the entry point pyproject.toml names."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        module, name = tomllib.load(file)["project"]["scripts"]["protocolbot"].split(":")
    return f"import sys; from {module} import {name}; sys.exit({name}())"


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.06])
def test_ctrl_c_while_python_is_still_importing_the_command_is_one_line_too(
    delay: float, tmp_path: Path
) -> None:
    # Ctrl-C in the first fifth of a second of a command, while Python was still importing it,
    # printed a traceback. The signal is sent `delay` after the command's imports are under way
    # (its first, argparse, done): not in Python's own start, its site module, which no
    # program's code can answer for.
    command = [sys.executable, "-X", "importtime", "-c", _console_script(), "sessions"]
    with _interruptible(command, tmp_path) as (process, _listening):
        assert process.stderr is not None
        # -X importtime writes a line as each import ends.
        while (line := process.stderr.readline()).rsplit("|", 1)[-1].strip() != "argparse":
            assert line, "the command ended before it imported argparse"
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    said = [line for line in err.splitlines() if not line.startswith("import time:")]
    assert "Traceback" not in err, said
    assert said == ["protocolbot: stopped (Ctrl-C) before it finished: run it again"], said
    assert process.returncode == 130


def test_a_stop_while_waiting_for_the_database_stops_at_once(tmp_path: Path) -> None:
    log = tmp_path / "clock.log"
    env = bot_environment(SLACK_BOT_TOKEN="xoxb-test", DATABASE_URL=REFUSED)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", CLI, "clock"], env=env, cwd=tmp_path, stdout=out, stderr=out
        )
        try:
            _said(log, "the database is not up yet")
            process.terminate()
            assert process.wait(3) == 0
        finally:
            process.kill()
            process.wait()
    assert "stopped while waiting for the database" in log.read_text()


def test_a_sqlite_file_that_cannot_be_made_names_its_folder(tmp_path: Path) -> None:
    # A relative path is read from the working directory: the line says which one that was.
    line = _one_line(_run(["db", "upgrade"], "sqlite:///data/bot.sqlite3", tmp_path))
    assert line == (
        "protocolbot: cannot open DATABASE_URL: unable to open database file at "
        f"{tmp_path}/data/bot.sqlite3: make sure {tmp_path}/data exists and this user can "
        "write to it and to the file"
    )


@pytest.mark.postgres
@pytest.mark.skipif(
    not PG_ADMIN_URL, reason="needs a PostgreSQL server (PROTOCOLBOT_TEST_POSTGRES)"
)
def test_a_postgresql_database_that_does_not_exist_is_named(tmp_path: Path) -> None:
    assert PG_ADMIN_URL
    url = make_url(PG_ADMIN_URL).set(database="no_such_protocolbot_db")
    done = _run(["db", "upgrade"], url.render_as_string(hide_password=False), tmp_path)
    line = _one_line(done, url.password or PASSWORD)
    assert line.startswith("protocolbot: cannot open DATABASE_URL: "), line
    assert "no_such_protocolbot_db" in line


@pytest.mark.postgres
@pytest.mark.skipif(
    not PG_ADMIN_URL, reason="needs a PostgreSQL server (PROTOCOLBOT_TEST_POSTGRES)"
)
def test_an_upgrade_by_a_user_who_may_not_create_tables_says_what_to_grant(
    tmp_path: Path,
) -> None:
    # PostgreSQL 15: a database owned by someone else takes no tables from this user.
    assert PG_ADMIN_URL
    name = f"pb_{tmp_path.name[-20:].lower().replace('-', '_')}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {name} LOGIN PASSWORD '{PASSWORD}'"))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(PG_ADMIN_URL).set(username=name, password=PASSWORD, database=name)
        done = _run(["db", "upgrade"], url.render_as_string(hide_password=False), tmp_path)
        assert _one_line(done) == (
            "protocolbot: cannot upgrade the database: permission denied for schema public: "
            f"the user {name} needs to own the database, or be granted CREATE on its schema "
            f"(GRANT CREATE ON SCHEMA public TO {name})"
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f"DROP ROLE IF EXISTS {name}"))
        admin.dispose()


@pytest.mark.skipif(
    not PG_ADMIN_URL, reason="needs a PostgreSQL server (PROTOCOLBOT_TEST_POSTGRES)"
)
def test_two_upgrades_run_at_once_both_leave_the_database_migrated(
    database_url: str, tmp_path: Path
) -> None:
    """Two `protocolbot db upgrade` at once on a new database (a release step on two machines,
    every container running it as it starts): the second failed with PostgreSQL's 'duplicate
    key value violates unique constraint "pg_type_typname_nsp_index"', and so did the deploy."""
    name = database_url.rsplit("/", 1)[1]
    admin = create_engine(database_url)
    holder = admin.connect()
    # Both get as far as the first table and wait there, until this uncommitted one goes.
    holder.execute(text("CREATE TABLE alembic_version (version_num varchar(32))"))

    def upgrading() -> subprocess.Popen[str]:
        env = bot_environment(
            SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="signing", DATABASE_URL=database_url
        )
        return subprocess.Popen(
            [sys.executable, "-c", CLI, "db", "upgrade"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = :name AND wait_event_type = 'Lock'"
    )
    runs = [upgrading(), upgrading()]
    try:
        with admin.connect() as conn:
            deadline = time.monotonic() + 30
            while conn.execute(waiting, {"name": name}).scalar() != 2:
                assert time.monotonic() < deadline, "the upgrades did not reach the first table"
                assert all(run.poll() is None for run in runs)
                conn.rollback()  # pg_stat_activity holds still within a transaction
                time.sleep(0.05)
        holder.rollback()
        done = [run.communicate(timeout=60) for run in runs]
    finally:
        holder.close()
        admin.dispose()
        for run in runs:
            if run.poll() is None:
                run.kill()
    assert [run.returncode for run in runs] == [0, 0], done
    assert [out for out, _err in done] == [f"database is at revision {head_revision()}\n"] * 2


def test_a_postgresql_url_without_its_driver_says_which_extra_to_install(tmp_path: Path) -> None:
    # A venv installed without the `postgres` extra: psycopg cannot be imported.
    shim = tmp_path / "without_psycopg" / "psycopg"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n"
    )
    pythonpath = os.pathsep.join([str(shim.parent), bot_environment()["PYTHONPATH"]])
    for args in (["db", "upgrade"], ["export", "latest"]):
        line = _one_line(_run(args, REFUSED, tmp_path, PYTHONPATH=pythonpath))
        assert "psycopg" in line and "pip install -e '.[postgres]'" in line, line


def test_a_database_url_that_is_no_url_is_named_without_quoting_it(tmp_path: Path) -> None:
    line = _one_line(_run(["db", "upgrade"], f"postgresql://bot:{PASSWORD}@host:port/x", tmp_path))
    assert line.startswith("protocolbot: DATABASE_URL is malformed: "), line


@pytest.mark.parametrize(
    "query", ["port=abc", "host=a,b&port=1,2,3"], ids=["port-no-number", "hosts-and-ports"]
)
@pytest.mark.parametrize("args", [["db", "upgrade"], ["sessions"]], ids=["upgrade", "sessions"])
def test_a_port_in_the_url_s_query_that_cannot_be_read_is_named_without_a_traceback(
    args: list[str], query: str, tmp_path: Path
) -> None:
    line = _one_line(_run(args, f"{REFUSED}?{query}", tmp_path))
    assert line.startswith("protocolbot: DATABASE_URL is malformed: "), line
    assert "port" in line


@pytest.mark.parametrize("args", [["db", "upgrade"], ["serve"]], ids=["upgrade", "serve"])
def test_a_password_with_an_at_sign_not_written_as_percent_40_is_not_shown(
    args: list[str], tmp_path: Path
) -> None:
    # Read as it stands, the password ends at its @ and the rest of it is taken for the host.
    password = "pw@Secret-4711"
    url = f"postgresql://bot:{password}@127.0.0.1:1/protocolbot"
    line = _one_line(_run(args, url, tmp_path), password="Secret-4711")
    assert line.startswith("protocolbot: DATABASE_URL is malformed: "), line
    assert "%40" in line


def test_an_in_memory_database_is_refused_for_it_keeps_nothing(tmp_path: Path) -> None:
    for url in ("sqlite://", "sqlite:///:memory:"):
        line = _one_line(_run(["db", "upgrade"], url, tmp_path))
        assert line.startswith("protocolbot: DATABASE_URL names an in-memory SQLite"), line


@pytest.mark.parametrize(
    ("database_url", "said"),
    [
        ("sqlite://bot.sqlite3", "DATABASE_URL has two slashes after sqlite: where a file needs"),
        (
            f"postgresql+asyncpg://bot:{PASSWORD}@127.0.0.1:1/x",
            "DATABASE_URL asks for the asyncpg driver, which protocolbot does not use: write "
            "postgresql://",
        ),
        ("sqlite+aiosqlite:///bot.sqlite3", "DATABASE_URL asks for the aiosqlite driver"),
    ],
    ids=["sqlite-two-slashes", "asyncpg", "aiosqlite"],
)
def test_a_database_url_in_a_form_we_cannot_use_says_which_to_write(
    database_url: str, said: str, tmp_path: Path
) -> None:
    line = _one_line(_run(["db", "upgrade"], database_url, tmp_path))
    assert line.startswith(f"protocolbot: {said}"), line
    assert list(tmp_path.iterdir()) == []


def test_a_psycopg2_url_as_sqlalchemy_documents_it_is_read_with_our_driver(tmp_path: Path) -> None:
    url = REFUSED.replace("postgresql://", "postgresql+psycopg2://")
    line = _one_line(_run(["db", "upgrade"], url, tmp_path))
    assert line.startswith("protocolbot: cannot open DATABASE_URL: "), line
    assert "Connection refused" in line


def test_export_of_a_session_that_is_not_there_says_so(tmp_path: Path) -> None:
    url = _migrated(tmp_path)
    for wanted in ("7", "99999999999999999999999"):
        done = _run(["export", wanted], url, tmp_path)
        assert (done.returncode, done.stderr) == (
            1,
            f"protocolbot: no session {wanted!r} in this database\n",
        )


@pytest.mark.parametrize("args", [["export", "latest"], ["clock"]])
def test_a_command_in_a_directory_without_the_database_says_so_and_makes_no_file(
    args: list[str], tmp_path: Path
) -> None:
    env = bot_environment(SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="signing")
    line = _one_line(run_cli(args, env, tmp_path))  # DATABASE_URL unset: protocolbot.sqlite3
    assert line == (
        f"protocolbot: there is no database at {tmp_path}/protocolbot.sqlite3 (DATABASE_URL): "
        "run `protocolbot db upgrade` first"
    )
    assert list(tmp_path.iterdir()) == []


def test_every_command_and_argument_says_what_it_is_in_help() -> None:
    commands = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    for name, parser in commands.choices.items():
        assert parser.description, f"protocolbot {name} --help says nothing of what it does"
        for action in parser._actions:
            assert action.help, f"protocolbot {name} --help: {action.dest} is not explained"


@pytest.mark.parametrize("args", [["db", "upgrade"], ["export", "latest"], ["serve"], ["clock"]])
def test_a_database_a_newer_version_migrated_is_named_not_sent_to_db_upgrade(
    args: list[str], tmp_path: Path
) -> None:
    # Rolled back after a newer version's `db upgrade`: upgrading again cannot help.
    url = _migrated(tmp_path)
    with sqlite3.connect(tmp_path / "bot.sqlite3") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    line = _one_line(_run(args, url, tmp_path))
    assert line == (
        f"protocolbot: the database schema (9999) is from a newer protocolbot than this one "
        f"(up to {head_revision()}): run that version, or restore the backup taken before it "
        "upgraded the database"
    )


def test_the_revision_serve_and_clock_look_for_is_the_newest_migration() -> None:
    # They read the database's revision without Alembic: a migration added without moving
    # HEAD would have them refuse every database `db upgrade` brought up to date.
    assert head_revision() == HEAD


@pytest.mark.parametrize("args", [["serve"], ["clock"]])
def test_serve_and_clock_on_a_database_one_migration_behind_say_to_upgrade(
    args: list[str], tmp_path: Path
) -> None:
    url = _migrated(tmp_path)
    db = Database(url)
    alembic_command.downgrade(alembic_config(url), "-1")
    db.dispose()
    line = _one_line(_run(args, url, tmp_path))
    assert line == (
        "protocolbot: the database schema is out of date: run `protocolbot db upgrade` first"
    )


@pytest.mark.parametrize("args", [["serve"], ["clock"], ["sessions"]])
def test_a_database_with_nothing_of_the_bot_s_in_it_is_named_not_called_out_of_date(
    args: list[str], tmp_path: Path
) -> None:
    # A database made by hand for the bot, or DATABASE_URL naming another program's.
    with contextlib.closing(sqlite3.connect(tmp_path / "other.sqlite3")) as other:
        other.execute("CREATE TABLE grades (id INTEGER)")
    line = _one_line(_run(args, "sqlite:///other.sqlite3", tmp_path))
    assert line == (
        "protocolbot: the database other.sqlite3 (DATABASE_URL) has no protocolbot tables "
        "yet: if it is the bot's, run `protocolbot db upgrade` first to create them"
    )


@pytest.mark.parametrize("step", ["0", "-1", "nan", "2.5", "inf", "3601", "1e9"])
def test_a_demo_step_it_cannot_run_is_refused(step: str, tmp_path: Path) -> None:
    # 1e9 was refused by the start the demo sends, and the demo waited for ever; 2.5 ran as 2.
    done = run_cli(["demo", f"--step={step}"], bot_environment(), tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert "Traceback" not in done.stderr
    assert (
        "argument --step: a step takes a whole number of seconds from 2 to 3600 (try --step 3), "
        f"got '{step}'"
    ) in done.stderr


@pytest.mark.parametrize(
    ("command", "tokens", "refused", "name", "what"),
    [
        ("serve", {}, "auth.test", "SLACK_BOT_TOKEN", "Bot User OAuth Token (xoxb-...)"),
        (
            "serve",
            {"SLACK_APP_TOKEN": "xapp-1-A1-1-revoked"},
            "apps.connections.open",
            "SLACK_APP_TOKEN",
            "app-level token (xapp-...)",
        ),
        ("clock", {}, "auth.test", "SLACK_BOT_TOKEN", "Bot User OAuth Token (xoxb-...)"),
    ],
    ids=["bot-token", "socket-mode-app-token", "clock-bot-token"],
)
def test_serve_with_a_token_slack_refuses_stops_with_one_line_naming_it(
    command: str,
    tokens: dict[str, str],
    refused: str,
    name: str,
    what: str,
    slack_api: SlackStandin,
    tmp_path: Path,
) -> None:
    url = _migrated(tmp_path)
    slack_api.fail_next(refused, error="invalid_auth")
    done = _run([command], url, tmp_path, SLACK_API_URL=slack_api.url, **tokens)
    line = _one_line(done, password="xoxb-test")
    assert line.startswith(f"protocolbot: Slack refused {name} (invalid_auth): "), line
    assert what in line and "revoked" not in line
    assert slack_api.calls[-1].method == refused


def test_a_clock_without_a_bot_token_stops_before_posting_anything(
    slack_api: SlackStandin, tmp_path: Path
) -> None:
    # The clock posts every step and the notes: with no token, Slack refused each one.
    url = _migrated(tmp_path)
    env = bot_environment(DATABASE_URL=url, SLACK_API_URL=slack_api.url)
    line = _one_line(run_cli(["clock"], env, tmp_path))
    assert line.startswith("protocolbot: SLACK_BOT_TOKEN is missing: "), line
    assert slack_api.calls == []


def _http_bot(tmp_path: Path, slack_api_url: str) -> BotProcess:
    """`python -m bot` over HTTP on a migrated database, with Slack at `slack_api_url`."""
    url = _migrated(tmp_path)
    port = free_port()
    env = bot_environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET="signing",
        DATABASE_URL=url,
        SLACK_API_URL=slack_api_url,
        PORT=str(port),
    )
    return BotProcess(env, tmp_path, port)


def test_serve_over_http_starts_while_slack_is_out_of_reach(tmp_path: Path) -> None:
    process = _http_bot(tmp_path, f"http://127.0.0.1:{free_port()}/api/")
    try:
        process.start()
        assert process.healthy()
    finally:
        process.stop()
    assert "could not check SLACK_BOT_TOKEN: Slack is out of reach" in process.log_path.read_text()


def test_serve_and_the_clock_log_the_protocols_they_loaded(
    slack_api: SlackStandin, tmp_path: Path
) -> None:
    # A web process and a clock started with different PROTOCOLS_DIR: nothing in either log
    # showed that they ran different protocols.
    folder = tmp_path / "protocols"
    folder.mkdir()
    everyday = (BUILTIN_DIR / "dese-everyday.yaml").read_text(encoding="utf-8")
    ours = everyday.replace("id: dese-everyday", "id: peer-feedback", 1)
    (folder / "peer-feedback.yaml").write_text(ours, encoding="utf-8")
    process = _http_bot(tmp_path, slack_api.url)
    process.env["PROTOCOLS_DIR"] = str(folder)
    try:
        process.start()
    finally:
        process.stop()
    loaded = ", ".join(sorted([*BUILTIN_IDS, "peer-feedback"]))
    said = process.log_path.read_text()
    assert said.count("protocols loaded: ") == 1 and f"protocols loaded: {loaded}\n" in said
    clock_log = tmp_path / "clock.log"
    with clock_log.open("wb") as out:
        clock = subprocess.Popen(
            [sys.executable, "-c", CLI, "clock"],
            env={k: v for k, v in process.env.items() if k != "PROTOCOLS_DIR"},
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while "clock running" not in clock_log.read_text() and time.monotonic() < deadline:
            assert clock.poll() is None, clock_log.read_text()
            time.sleep(0.1)
    finally:
        clock.terminate()
        clock.wait(20)
    said = clock_log.read_text()
    assert f"protocols loaded: {', '.join(sorted(BUILTIN_IDS))}\n" in said, said


@pytest.mark.parametrize("given", ["PORT", "--port"])
def test_serve_on_a_port_in_use_stops_with_one_line(
    given: str, slack_api: SlackStandin, tmp_path: Path
) -> None:
    url = _migrated(tmp_path)
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if given == "PORT":
            done = _run(["serve"], url, tmp_path, SLACK_API_URL=slack_api.url, PORT=str(port))
        else:
            done = _run(["serve", "--port", str(port)], url, tmp_path, SLACK_API_URL=slack_api.url)
    line = _one_line(done, password="signing")
    assert line == (
        f"protocolbot: port {port} is in use by another process: stop it, "
        f"or set {given} to a free port"
    )


def test_serve_on_a_host_it_cannot_listen_on_stops_with_one_line(
    slack_api: SlackStandin, tmp_path: Path
) -> None:
    url = _migrated(tmp_path)
    done = _run(
        ["serve", "--host", "no-such-host.invalid"], url, tmp_path, SLACK_API_URL=slack_api.url
    )
    line = _one_line(done, password="signing")
    assert line == (
        "protocolbot: cannot listen on no-such-host.invalid: give --host an address of this "
        "machine (0.0.0.0)"
    )


@pytest.mark.parametrize("port", ["99999", "0", "http"])
def test_serve_on_a_port_that_is_no_port_is_refused_before_starting(
    port: str, tmp_path: Path
) -> None:
    # waitress took 99999 for a random free port, where Slack would never find the bot.
    done = _run(["serve", "--port", port], "sqlite:///bot.sqlite3", tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "protocolbot serve: error: argument --port: expected " in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_socket_mode_with_an_oauth_install_is_refused_for_nobody_could_install(
    tmp_path: Path,
) -> None:
    url = _migrated(tmp_path)
    oauth = {"SLACK_CLIENT_ID": "1111.2222", "SLACK_CLIENT_SECRET": "client-secret"}
    env = {**bot_environment(DATABASE_URL=url, SLACK_APP_TOKEN="xapp-1-A1-1-secret"), **oauth}
    line = _one_line(run_cli(["serve"], env, tmp_path), password="client-secret")
    assert line.startswith("protocolbot: SLACK_APP_TOKEN (Socket Mode) cannot install"), line


@pytest.mark.parametrize("command", ["serve", "clock"])
def test_a_bot_token_beside_an_oauth_install_is_refused_for_one_of_them_goes_unused(
    command: str, slack_api: SlackStandin, tmp_path: Path
) -> None:
    # Started, every command from Slack was answered "not installed" and logged an error.
    url = _migrated(tmp_path)
    oauth = {"SLACK_CLIENT_ID": "1111.2222", "SLACK_CLIENT_SECRET": "client-secret"}
    done = _run([command], url, tmp_path, SLACK_API_URL=slack_api.url, **oauth)
    line = _one_line(done, password="client-secret")
    assert line == (
        "protocolbot: SLACK_BOT_TOKEN and SLACK_CLIENT_ID/SLACK_CLIENT_SECRET (OAuth) are both "
        "set: unset SLACK_BOT_TOKEN to install workspaces by OAuth, or unset SLACK_CLIENT_ID "
        "and SLACK_CLIENT_SECRET to serve the token's one workspace"
    )
    assert "xoxb-test" not in done.stderr
    assert slack_api.calls == []


@pytest.mark.parametrize(
    ("args", "database_url", "said"),
    [
        (
            ["serve", "--handle-events"],
            REFUSED,
            "--handle-events is for a web process (serve --no-scheduler) beside `protocolbot "
            "clock`: a serve that runs the timers handles its events already; leave it out, or "
            "add --no-scheduler",
        ),
        (
            ["serve", "--no-scheduler", "--handle-events"],
            "sqlite:///bot.sqlite3",
            "--handle-events is for PostgreSQL: on SQLite (DATABASE_URL) a web process handles "
            "the events it stores already; leave it out",
        ),
    ],
    ids=["with-the-timers", "on-sqlite"],
)
def test_handle_events_where_it_would_change_nothing_is_refused(
    args: list[str], database_url: str, said: str, tmp_path: Path
) -> None:
    # It was taken and did nothing: the operator thought events were shared out.
    line = _one_line(_run(args, database_url, tmp_path), password="signing")
    assert line == f"protocolbot: {said}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["md", "csv", "json"])
def test_export_is_utf_8_whatever_the_terminal_speaks(bot: Bot, tmp_path: Path, fmt: str) -> None:
    # Windows' redirected stdout is cp1252; an old server's locale may be Latin-1.
    step = bot.open_step()
    said = "الطالب كتب 🎉 三次"
    bot.reply(TEACHERS[0], said, step)
    bot.settle()
    bot.command("end")
    bot.settle()
    env = bot_environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET="signing",
        DATABASE_URL=bot.settings.database_url,
        PYTHONIOENCODING="latin-1",
    )
    done = subprocess.run(
        [sys.executable, "-c", CLI, "export", "latest", "--format", fmt],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, b"")
    # A CSV opens with a byte order mark, for spreadsheet programs (test_written_words).
    bom = "\ufeff" if fmt == "csv" else ""
    assert done.stdout.decode("utf-8") == bom + export(bot.settings, "latest", fmt)
    assert said in done.stdout.decode("utf-8")


def test_protocolbot_version_says_the_installed_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    done = run_cli(["--version"], bot_environment(), tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"protocolbot {version('protocolbot')}\n"


def test_protocolbot_help_names_every_action_of_every_command() -> None:
    # `protocols docs` was left out of the top-level --help: a contributor told to run it
    # there did not find it.
    parser = build_parser()
    overview = " ".join(parser.format_help().split())
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        assert name in overview
        for action in command._actions:
            if action.choices and action.dest == "action":
                usage = f"{name} {'|'.join(action.choices)}"
                assert usage in overview, f"protocolbot --help does not show {usage}"


def test_serve_over_http_starts_promptly_while_slack_does_not_answer(
    slack_api: SlackStandin, tmp_path: Path
) -> None:
    # Slack taking the connection and never answering (a network that drops its packets, an
    # outage): the token check waited out the client's 10 s before the bot would listen.
    process = _http_bot(tmp_path, slack_api.url)
    try:
        # Beside a start whose check Slack answers, on this machine as loaded as it is now: the
        # check gives up after CHECK_SECONDS (3 s) where it waited 10 s.
        began = time.time()
        answered = process.start() - began
        process.stop()
        slack_api.fail_next("auth.test", delay=15)
        began = time.time()
        unanswered = process.start() - began
        assert unanswered - answered < 7, (answered, unanswered)
    finally:
        process.stop()
    said = process.log_path.read_text()
    assert "could not check SLACK_BOT_TOKEN: Slack is out of reach (TimeoutError)" in said


@pytest.mark.parametrize("password", ["n", "p", "5432", "postgres"])
def test_the_password_is_masked_where_it_is_shown_and_nowhere_else(password: str) -> None:
    # A short or common password is in many words: only the password itself is masked.
    settings = Settings(database_url=f"postgresql://u:{password}@127.0.0.1:5432/postgres")
    refused = (
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
        "Connection refused; is the server running on /var/run/postgresql/.s.PGSQL.5432?"
    )
    assert _driver_reason(OSError(refused), settings) == refused
    shown = f"invalid dsn: postgresql://u:{password}@127.0.0.1/x and password={password} given"
    assert _driver_reason(OSError(shown), settings) == (
        "invalid dsn: postgresql://u:***@127.0.0.1/x and password=*** given"
    )


def test_a_sqlite_path_that_is_a_folder_or_no_database_says_so(tmp_path: Path) -> None:
    # Both were told to make sure the folder above exists and is writable, which it was.
    folder = tmp_path / "data"
    folder.mkdir()
    line = _one_line(_run(["db", "upgrade"], f"sqlite:///{folder}", tmp_path))
    assert line == (
        f"protocolbot: DATABASE_URL names a folder, {folder}: name a file in it "
        f"(sqlite:///{folder}/protocolbot.sqlite3)"
    )
    garbage = tmp_path / "notes.txt"
    garbage.write_text("not a database, just words\n" * 100)
    for args in (["db", "upgrade"], ["serve"]):
        line = _one_line(_run(args, f"sqlite:///{garbage}", tmp_path))
        assert line == (
            f"protocolbot: {garbage} is not a SQLite database (DATABASE_URL): name the bot's "
            "database file, or a new path for `protocolbot db upgrade` to make one at"
        ), line
    assert garbage.read_text() == "not a database, just words\n" * 100  # left as it was


@pytest.mark.parametrize("args", [["db", "upgrade"], ["serve"]])
def test_a_line_of_the_env_file_that_cannot_be_read_stops_the_command_naming_it(
    args: list[str], tmp_path: Path
) -> None:
    # python-dotenv skips such a line with a warning: the quote left open made the bot run on a
    # new protocolbot.sqlite3 here instead of the PostgreSQL the operator named.
    (tmp_path / ".env").write_text(
        "SLACK_BOT_TOKEN=xoxb-test\n"
        "SLACK_SIGNING_SECRET=signing\n"
        f'DATABASE_URL="postgresql://bot:{PASSWORD}@127.0.0.1:1/protocolbot\n'
        "PORT=3999\n"
    )
    line = _one_line(run_cli(args, bot_environment(), tmp_path))
    assert line == (
        "protocolbot: .env cannot be read at line 3 (DATABASE_URL): write it as NAME=value, "
        "closing any quote it opens"
    )
    assert [p.name for p in tmp_path.iterdir()] == [".env"]


def test_an_env_file_not_in_utf_8_stops_the_command_naming_the_line(tmp_path: Path) -> None:
    # Saved as Latin-1 (an older Windows editor): a traceback from the decoder.
    (tmp_path / ".env").write_bytes(
        b"SLACK_BOT_TOKEN=xoxb-test\nSLACK_SIGNING_SECRET=caf\xe9-secret\n"
    )
    line = _one_line(run_cli(["db", "upgrade"], bot_environment(), tmp_path))
    assert line == (
        "protocolbot: .env is not UTF-8 at line 2: save it as UTF-8 (or write that value in "
        "plain ASCII)"
    )
    assert [p.name for p in tmp_path.iterdir()] == [".env"]


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        (
            "SLACK_BOT_TOKEN",
            "xapp-1-A1-1-secret",
            "SLACK_BOT_TOKEN is malformed: it should start with 'xoxb-'; an xapp-... token is an "
            "app-level token, for SLACK_APP_TOKEN (Socket Mode)",
        ),
        (
            "SLACK_APP_TOKEN",
            "xoxb-1-secret",
            "SLACK_APP_TOKEN is malformed: it should start with 'xapp-'; an xoxb-... token is the "
            "bot token, for SLACK_BOT_TOKEN",
        ),
        (
            "SLACK_BOT_TOKEN",
            "xoxp-1-secret",
            "SLACK_BOT_TOKEN is malformed: it should start with 'xoxb-'; an xoxp-... token is a "
            "user token, which the bot does not use: SLACK_BOT_TOKEN takes the app's Bot User "
            "OAuth Token (xoxb-...), SLACK_APP_TOKEN an app-level token (xapp-...)",
        ),
        (
            # Not told to put the bot token in the app token's place.
            "SLACK_APP_TOKEN",
            "xoxp-1-secret",
            "SLACK_APP_TOKEN is malformed: it should start with 'xapp-'; an xoxp-... token is a "
            "user token, which the bot does not use: SLACK_BOT_TOKEN takes the app's Bot User "
            "OAuth Token (xoxb-...), SLACK_APP_TOKEN an app-level token (xapp-...)",
        ),
        ("SLACK_BOT_TOKEN", "secret", "SLACK_BOT_TOKEN is malformed: it should start with 'xoxb-'"),
    ],
    ids=[
        "app-token-as-bot-token",
        "bot-token-as-app-token",
        "user-token",
        "user-token-as-app-token",
        "no-prefix",
    ],
)
def test_a_token_in_the_wrong_setting_is_named_for_where_it_belongs(
    name: str, value: str, said: str, tmp_path: Path
) -> None:
    # An xapp- token in SLACK_BOT_TOKEN was told only to start with xoxb-: the operator had the
    # right token in the wrong place and went looking for another.
    line = _one_line(_run(["serve"], _migrated(tmp_path), tmp_path, **{name: value}), "secret")
    assert line == f"protocolbot: {said}"


def test_a_copy_of_the_package_without_its_clone_says_to_install_from_the_clone(
    tmp_path: Path,
) -> None:
    # `pip install .` (a wheel, a Docker image) copies bot/ alone: every message failed to
    # render at the first command, with a traceback.
    import shutil

    import bot

    site = tmp_path / "site"
    shutil.copytree(Path(bot.__file__).parent, site / "bot")
    done = subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main(['protocols', 'check'])"],
        env={**bot_environment(), "PYTHONPATH": str(site)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    line = _one_line(done)
    assert line == (
        f"protocolbot: messages/ and protocols/ not found in {site}: protocolbot runs from its "
        "clone, installed there with `pip install -e .`"
    )


def test_sessions_lists_every_session_for_a_district_s_export_of_a_school_year(
    bot: Bot, tmp_path: Path
) -> None:
    # A district asks for everything of a school year: the operator needs the ids to export.
    from bot.store.models import ProtocolSession
    from tests.harness import CHANNEL, PRESENTER, TEAM

    step = bot.open_step()
    bot.reply(TEACHERS[0], "Three crossed-out attempts at the top.", step)
    bot.settle()
    bot.command("end")
    bot.settle()
    bot.command(f"start tuning <@{PRESENTER}|maria> in 30d")
    with bot.db.session() as s:
        ran, later = s.scalars(select(ProtocolSession).order_by(ProtocolSession.id)).all()
        started, due = ran.started_at, later.starts_at
    assert started is not None
    ended = ran.ended_at
    assert ended is not None

    def listed(*args: str) -> list[str]:
        done = _run(["sessions", *args], bot.settings.database_url, tmp_path)
        assert (done.returncode, done.stderr) == (0, "")
        return done.stdout.splitlines()

    # Whose work each was: a district asks for "Maria's session in October" (columns an
    # operator's script knows keep their place).
    header = "id\tteam\tchannel\tprotocol\tstatus\tstarts\tended\treplies\tpresenter"
    row = (
        f"{ran.id}\t{TEAM}\t{CHANNEL}\tatlas\tended\t{started:%Y-%m-%d %H:%M}\t"
        f"{ended:%Y-%m-%d %H:%M}\t1\tmaria ({PRESENTER})"
    )
    ahead = (
        f"{later.id}\t{TEAM}\t{CHANNEL}\ttuning\tscheduled\t{due:%Y-%m-%d %H:%M}\t\t0\t"
        f"maria ({PRESENTER})"
    )
    assert listed() == [header, row, ahead]
    assert listed("--until", f"{started:%Y-%m-%d}") == [header, row]
    assert listed("--since", f"{due:%Y-%m-%d}") == [header, ahead]
    done = _run(["sessions", "--since", "last year"], bot.settings.database_url, tmp_path)
    assert done.returncode == 2
    assert "expected a day as YYYY-MM-DD, got 'last year'" in done.stderr


def test_sessions_with_the_days_the_wrong_way_round_says_so_not_an_empty_list(
    tmp_path: Path,
) -> None:
    url = _migrated(tmp_path)
    done = run_cli(
        ["sessions", "--since", "2027-06-30", "--until", "2026-08-15"],
        bot_environment(DATABASE_URL=url),
        tmp_path,
    )
    line = _one_line(done)
    assert line.startswith("protocolbot: --until 2026-08-15 is before --since 2027-06-30"), line


@pytest.mark.parametrize("args", [["protocols", "list"], ["sessions"], ["export", "latest"]])
def test_output_whose_reader_stops_early_ends_without_a_traceback(
    bot: Bot, database_url: str, tmp_path: Path, args: list[str]
) -> None:
    # `protocolbot sessions | head -3`: head exits once it has its lines, and the rest of the
    # output met a closed pipe with a traceback of BrokenPipeError.
    bot.open_step()
    env = bot_environment(DATABASE_URL=database_url)
    reader, writer = os.pipe()
    os.close(reader)  # the reader gone before the first line is written
    try:
        done = subprocess.run(
            [sys.executable, "-c", CLI, *args],
            env=env,
            cwd=tmp_path,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)
    assert done.stderr == ""
    assert done.returncode == 1
