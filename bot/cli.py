"""The protocolbot command: serve, clock, demo, export, sessions, db upgrade, protocols
list|check|docs."""

from __future__ import annotations

import argparse
import errno
import gc
import logging
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

from bot.console import STOPPED
from bot.settings import Settings, SettingsError, load_settings, sqlite_file

if TYPE_CHECKING:
    from datetime import date

    from slack_bolt import App

    from bot.protocols import Protocol
    from bot.runtime import Runtime
    from bot.store.db import Database

log = logging.getLogger("bot")


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        print(f"protocolbot: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _logging(settings: Settings) -> None:
    from bot.logs import configure

    configure(
        settings.log_level,
        secrets=(
            settings.slack_bot_token,
            settings.slack_signing_secret,
            settings.slack_app_token,
            settings.slack_client_secret,
        ),
    )


def _settle_heap() -> None:
    """Once started, set aside what the process keeps for its whole life (modules, the app, the
    protocol library, SQLAlchemy's compiled statements) so the collector stops walking it.
    A full collection over that heap took 57 ms, measured under load, and every request
    arriving meanwhile waited; afterwards it walks only what was made since."""
    gc.collect()
    gc.freeze()


MIN_DEMO_STEP = 2
# An hour a step is a demo of half a day: longer is not a demo (and past the 90 days a session's
# step may take, the demo's start was refused and it waited for ever).
MAX_DEMO_STEP = 3600
# serve and clock started beside their database (compose, systemd) wait this long for it.
DATABASE_WAIT, MAX_DATABASE_WAIT = 60, 3600
# SIGHUP too: the terminal it was started from closing stops it as Ctrl-C does.
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
STOPPED_AT_ONCE = 1  # the exit status of a stop cut short by a second stop signal


def _hold_stop_signals() -> None:
    """Block SIGTERM and SIGINT in this thread before any other starts; every thread started
    later inherits the mask. The kernel may hand a process's signal to any thread that does not
    block it, and Python then runs the handler only when the main thread next runs bytecode:
    a main thread asleep in a wait could miss the stop for good (a test saw it sleep 20 s).
    Held like this, the signal stays pending until `_wait_for_stop` takes it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _wait_for_stop() -> None:
    signal.sigwait(STOP_SIGNALS)
    # Stopping waits for what is in flight (a Slack call may take its 10 s): a second stop
    # signal, an operator's second Ctrl-C, ends the process then and there.
    threading.Thread(target=_stop_again, name="stop-again", daemon=True).start()


def _stop_again() -> None:
    """Exit at once at the next stop signal. Nothing is lost by it: an event acknowledged is in
    the inbox, a call not yet known sent is in the outbox, and the next start takes them up."""
    signal.sigwait(STOP_SIGNALS)
    log.warning("asked again to stop: stopping now; the next start takes up what was in flight")
    logging.shutdown()
    os._exit(STOPPED_AT_ONCE)


def _stop_asked() -> bool:
    """A stop signal is pending, held until `_wait_for_stop` would take it: for a wait before
    then (a second clock standing by) to give up on."""
    return not STOP_SIGNALS.isdisjoint(signal.sigpending())


def _stop(problem: str) -> NoReturn:
    """Stop the command with one line on stderr, as a settings error does."""
    print(f"protocolbot: {problem}", file=sys.stderr)
    raise SystemExit(2)


def _driver_reason(error: Exception, settings: Settings) -> str:
    """The first line of what the database driver said (no statement, never the password)."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import DBAPIError

    cause = error.orig if isinstance(error, DBAPIError) else error
    reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    password = make_url(settings.database_url).password
    if not password:
        return reason
    # Where a driver would show it: in a URL, or a connection string's password=. Not every
    # occurrence of its letters: a password "n" or "5432" turned "connection refused" and
    # "port 5432" into nonsense.
    for shown in {str(password), quote(str(password), safe="")}:
        reason = re.sub(rf"(?<=:){re.escape(shown)}(?=@)", "***", reason)
        reason = re.sub(rf"(?<=password=){re.escape(shown)}(?=\s|'|\"|$)", "***", reason)
    return reason


def _not_up_yet(error: Exception) -> bool:
    """A PostgreSQL server not (yet) there, or still starting up; not one that answered with
    a refusal (a wrong password, a database that does not exist), nor settings in the URL the
    driver will never take (`?sslmode=bogus`, `?foo=bar`, `?connect_timeout=abc`: refused before
    connecting), nor a server that answered it has no SSL where the URL asks for it."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    said = str(error.orig if isinstance(error, DBAPIError) else error)
    if not isinstance(error, OperationalError) or said.startswith("connection is bad:"):
        return False
    if "server does not support SSL" in said:
        return False
    return "FATAL:" not in said or "the database system is" in said


def _connect(db: Database, settings: Settings, wait: float) -> None:
    """Connect to the database once. A PostgreSQL server not up yet (compose or systemd started
    it beside this process) is tried again every second for `wait` seconds, said in one line;
    a stop signal meanwhile ends the command (serve and clock hold theirs, so it is taken here
    rather than missed). The last error is raised once `wait` is over."""
    from sqlalchemy.exc import SQLAlchemyError

    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            with db.engine.connect():
                pass
        except SQLAlchemyError as error:
            left = deadline - time.monotonic()
            if left <= 0 or not db.is_postgres or not _not_up_yet(error):
                raise
            if not told:
                reason = _driver_reason(error, settings)
                log.warning("the database is not up yet (%s): waiting up to %.0f s", reason, wait)
                told = True
            if signal.sigtimedwait(STOP_SIGNALS, min(1.0, left)) is not None:
                log.info("stopped while waiting for the database")
                raise SystemExit(0) from None
            continue
        if told:
            log.info("the database is up")
        return


def _open_database(settings: Settings, *, create: bool = False, wait: float = 0.0) -> Database:
    """The database at DATABASE_URL, connected to once: a problem stops the command with one
    line giving the driver's reason (never the password). Without `create`, a SQLite file that
    is not there is not made (connecting would leave an empty one behind). With `wait` (serve
    and clock, their stop signals held), a PostgreSQL server not up yet is waited for that many
    seconds first."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from bot.store.db import Database

    url = make_url(settings.database_url)
    path = url.database if url.get_backend_name() == "sqlite" else None
    if not create and path not in (None, "", ":memory:") and not Path(path or "").exists():
        # In full: a relative path is read from the working directory, which may not be the
        # one `db upgrade` ran in.
        where = Path(path or "").resolve()
        _stop(f"there is no database at {where} (DATABASE_URL): run `protocolbot db upgrade` first")
    try:
        db = Database(settings.database_url)
    except ImportError as error:
        if error.name != "psycopg":
            raise
        _stop(
            "DATABASE_URL is a PostgreSQL URL but its driver, psycopg, is not installed: "
            "install the postgres extra (pip install -e '.[postgres]')"
        )
    try:
        _connect(db, settings, wait)
    except SQLAlchemyError as error:
        db.dispose()
        reason = _driver_reason(error, settings)
        if path not in (None, "", ":memory:"):
            where = Path(path or "").resolve()
            if where.is_dir():
                _stop(
                    f"DATABASE_URL names a folder, {where}: name a file in it "
                    f"(sqlite:///{where / 'protocolbot.sqlite3'})"
                )
            if "not a database" in reason:
                _stop(
                    f"{where} is not a SQLite database (DATABASE_URL): name the bot's database "
                    "file, or a new path for `protocolbot db upgrade` to make one at"
                )
            # SQLite writes its journal beside the file: the folder must be writable too.
            _stop(
                f"cannot open DATABASE_URL: {reason} at {where}: make sure {where.parent} "
                "exists and this user can write to it and to the file"
            )
        _stop(f"cannot open DATABASE_URL: {reason}")
    return db


# Slack's answers to a token that will never work, as against Slack being out of reach.
REFUSED_TOKEN = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
    }
)
BOT_TOKEN_HINT = (
    "set it to the app's Bot User OAuth Token (xoxb-...) from its OAuth & Permissions page"
)
SOCKET_MODE_FAILED = "Slack would not open a Socket Mode connection"
SOCKET_MODE_HINT = "start the bot again in a minute; if this goes on, see https://status.slack.com"
APP_TOKEN_HINT = (
    "set it to an app-level token (xapp-...) with the connections:write scope, "
    "from the app's Basic Information page"
)


# How long start-up waits for each of Slack's answers about the tokens. Slack gives them in well
# under a second; on the client's own 10 s, a Slack that took the connection and never answered
# held start-up for 10 s a check, and Socket Mode asked apps.connections.open twice.
CHECK_SECONDS = 3


def _slack_ready(settings: Settings, *, socket_mode: bool) -> str | None:
    """Ask Slack whether the tokens are good before serving: a token it refuses stops start-up
    with one line (else every user is told to reinstall the app, and the operator only a log
    line per request). Slack out of reach stops Socket Mode, which cannot run without its
    connection; the bot token's check is only logged (HTTP requests, and the clock's outbox,
    wait for Slack; the token is asked about again once requests come). Without
    `socket_mode` (the clock) only the bot token is checked. Returns the Socket Mode
    connection's address that apps.connections.open gave, for the connection to use."""
    from urllib.error import URLError

    from slack_sdk.errors import SlackApiError

    from bot.profiles import impatient
    from bot.slack import make_client

    client = impatient(make_client(None, settings.slack_api_url), CHECK_SECONDS)
    checks = []
    if socket_mode and settings.slack_app_token:
        checks.append(("SLACK_APP_TOKEN", APP_TOKEN_HINT, settings.slack_app_token))
    if settings.slack_bot_token and not settings.oauth:
        checks.append(("SLACK_BOT_TOKEN", BOT_TOKEN_HINT, settings.slack_bot_token))
    address = None
    for name, hint, token in checks:
        try:
            if name == "SLACK_APP_TOKEN":
                address = str(client.apps_connections_open(app_token=token)["url"])
            else:
                client.auth_test(token=token)
        except SlackApiError as error:
            reason = str(error.response.get("error") or f"HTTP {error.response.status_code}")
            if reason in REFUSED_TOKEN:
                _stop(f"Slack refused {name} ({reason}): {hint}")
            if name == "SLACK_APP_TOKEN":
                # Socket Mode cannot run without the connection Slack would not open.
                _stop(f"{SOCKET_MODE_FAILED} ({reason}): {SOCKET_MODE_HINT}")
            log.warning("could not check %s with Slack: %s", name, reason)
        except (URLError, OSError) as error:
            if name == "SLACK_APP_TOKEN":
                _stop(f"cannot reach Slack at SLACK_API_URL: {type(error).__name__}")
            log.warning(
                "could not check %s: Slack is out of reach (%s)", name, type(error).__name__
            )
    return address


def _schema_known(db: Database) -> None:
    """Stop at a schema migrated by a newer protocolbot, which this one cannot read or upgrade."""
    from bot.store.migrate import current_revision, head_revision, is_known

    revision = current_revision(db)
    if not is_known(revision):
        db.dispose()
        _stop(
            f"the database schema ({revision}) is from a newer protocolbot than this one "
            f"(up to {head_revision()}): run that version, or restore the backup taken before "
            "it upgraded the database"
        )


def _schema_ready(settings: Settings, wait: float = 0.0) -> None:
    from bot.store.revision import at_head

    db = _open_database(settings, wait=wait)
    if at_head(db):
        db.dispose()
        return
    from bot.store.migrate import current_revision, head_revision

    _schema_known(db)
    try:
        revision = current_revision(db)
    finally:
        db.dispose()
    empty = revision is None
    ready = revision == head_revision()
    if empty:
        # Not "out of date": nothing of the bot's is there (a new database, or DATABASE_URL
        # naming another program's), and an upgrade would make every table in it.
        from sqlalchemy import make_url

        url = make_url(settings.database_url)
        where = url.database
        if url.get_backend_name() != "sqlite":
            where = f"{url.database} on {url.host}"
        _stop(
            f"the database {where} (DATABASE_URL) has no protocolbot tables yet: if it is the "
            "bot's, run `protocolbot db upgrade` first to create them"
        )
    if not ready:
        _stop("the database schema is out of date: run `protocolbot db upgrade` first")


def _check_handle_events(args: argparse.Namespace, settings: Settings) -> None:
    """--handle-events changes only a web process on PostgreSQL, which otherwise leaves its
    events to the clock: anywhere else it was taken and did nothing."""
    if not args.handle_events:
        return
    if not args.no_scheduler:
        _stop(
            "--handle-events is for a web process (serve --no-scheduler) beside "
            "`protocolbot clock`: a serve that runs the timers handles its events already; "
            "leave it out, or add --no-scheduler"
        )
    if not settings.database_url.startswith("postgresql"):
        _stop(
            "--handle-events is for PostgreSQL: on SQLite (DATABASE_URL) a web process handles "
            "the events it stores already; leave it out"
        )


def cmd_serve(args: argparse.Namespace) -> int:
    _hold_stop_signals()
    settings = _settings()
    _check_handle_events(args, settings)
    _logging(settings)
    try:
        settings.require_slack()
    except SettingsError as error:
        print(f"protocolbot: {error}", file=sys.stderr)
        return 2
    _schema_ready(settings, wait=args.wait_for_database)
    address = _slack_ready(settings, socket_mode=True)

    from bot.app import build_app
    from bot.runtime import Runtime

    # Python's own GIL switch interval (5 ms) is kept: acks go first by other means
    # (bot/foreground.py), and a shorter one cost CPU under load. At 0.25 ms, 900 replies/s on
    # SQLite took 1.08 times the CPU per reply, and the highest rate held end to end was 800/s
    # against 1,000/s; at 100/s the ack p99 was the same within noise.
    # --no-scheduler: a web process; the one `protocolbot clock` runs the timers and the sender.
    runtime = Runtime(
        settings, with_scheduler=not args.no_scheduler, handle_events=args.handle_events
    )
    app = build_app(runtime)
    if not runtime.start(stopping=_stop_asked, serving=True).started:
        log.info("stopped while standing by")
        return 0
    # Bound once started: a second serve standing by on one SQLite file may share the port.
    listening = None if settings.socket_mode else _listen(app, runtime, args, settings)
    _log_protocols(runtime)
    _settle_heap()
    try:
        if settings.socket_mode:
            from slack_sdk.errors import SlackApiError

            from bot.socket_mode import SocketModeHandler

            handler = SocketModeHandler(app, settings.slack_app_token or "")
            # The address the check was given: not another apps.connections.open to wait for.
            handler.client.wss_uri = address
            try:
                handler.connect()
            except SlackApiError as error:
                # Asked again, and refused this time (the address given went stale).
                reason = str(error.response.get("error") or f"HTTP {error.response.status_code}")
                _stop(f"{SOCKET_MODE_FAILED} ({reason}): {SOCKET_MODE_HINT}")
            log.info("connected to Slack in Socket Mode")
            _wait_for_stop()
            handler.close()
        else:
            from bot.server import BackgroundServer

            server = BackgroundServer(listening).start()
            log.info("listening on http://%s:%s/slack/events", args.host, server.port)
            _wait_for_stop()
            # Refuse new connections (Slack retries them elsewhere), answer the ones in flight.
            log.info("stopping: finishing in-flight requests")
            server.stop()
    finally:
        log.info("stopping: finishing in-flight work")
        runtime.stop()
    log.info("stopped")
    return 0


def _log_protocols(runtime: Runtime) -> None:
    """The ids this process loaded, once it runs (a start that fails says one line only): a web
    process and the clock must load the same ones, or a session started by one is held by the
    other."""
    log.info("protocols loaded: %s", ", ".join(sorted(runtime.library)))


def _listen(app: App, runtime: Runtime, args: argparse.Namespace, settings: Settings) -> Any:
    """The HTTP server, bound to its port; a port it cannot have stops the started runtime and
    the command with one line."""
    from bot.server import make_server

    port = args.port or settings.port
    # Where the operator gave it: --port, else PORT.
    setting = "--port" if args.port else "PORT"
    try:
        return make_server(app, runtime, host=args.host, port=port)
    except ValueError:
        # waitress's word for a host name that resolves to no address.
        runtime.stop()
        _stop(f"cannot listen on {args.host}: give --host an address of this machine (0.0.0.0)")
    except OSError as error:
        runtime.stop()
        if error.errno == errno.EADDRINUSE:
            _stop(
                f"port {port} is in use by another process: stop it, or set {setting} to a free "
                "port"
            )
        reason = error.strerror or type(error).__name__
        _stop(
            f"cannot listen on {args.host}:{port} ({reason}): set {setting} to a port you may open"
        )


def cmd_clock(args: argparse.Namespace) -> int:
    _hold_stop_signals()
    settings = _settings()
    _logging(settings)
    # The clock posts everything the bot says: without a token Slack would refuse every post.
    try:
        settings.require_token()
    except SettingsError as error:
        _stop(str(error))
    _schema_ready(settings, wait=args.wait_for_database)
    _slack_ready(settings, socket_mode=False)
    from bot.runtime import Runtime

    runtime = Runtime(settings).start(stopping=_stop_asked)
    if not runtime.started:
        log.info("stopped while standing by")
        return 0
    _log_protocols(runtime)
    _settle_heap()
    log.info("clock running: timers and the outbox")
    _wait_for_stop()
    log.info("stopping: finishing in-flight work")
    runtime.stop()
    log.info("stopped")
    return 0


# PostgreSQL's code for a missing privilege: since PostgreSQL 15 only a database's owner may
# create tables in its public schema unless granted.
INSUFFICIENT_PRIVILEGE = "42501"


def cmd_db(args: argparse.Namespace) -> int:
    settings = _settings()
    from sqlalchemy import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from bot.store.migrate import current_revision, upgrade

    db = _open_database(settings, create=True)
    _schema_known(db)
    try:
        upgrade(db)
    except SQLAlchemyError as error:
        db.dispose()
        reason = _driver_reason(error, settings)
        if getattr(getattr(error, "orig", None), "sqlstate", None) == INSUFFICIENT_PRIVILEGE:
            user = make_url(settings.database_url).username
            _stop(
                f"cannot upgrade the database: {reason}: the user {user} needs to own the "
                f"database, or be granted CREATE on its schema (GRANT CREATE ON SCHEMA public "
                f"TO {user})"
            )
        _stop(f"cannot upgrade the database: {reason}")
    print(f"database is at revision {current_revision(db)}")
    db.dispose()
    return 0


def cmd_protocols(args: argparse.Namespace) -> int:
    from bot.protocols import BUILTIN_DIR, advice, load_library

    if args.action == "docs" and args.dir is None:
        return _protocol_docs()
    settings = _settings()
    dirs = [BUILTIN_DIR]
    extra = Path(args.dir) if args.dir else settings.protocols_dir
    if extra is not None and extra.resolve() != BUILTIN_DIR:
        dirs.append(extra)
    # A folder named here is loaded beside the built-ins, as the bot loads it, so that an id
    # taken by a built-in protocol is an error here and not a file skipped at start-up.
    library, errors = load_library(dirs)
    shown = [
        p
        for p in library.values()
        if args.dir is None
        or (p.path is not None and p.path.parent.resolve() == dirs[-1].resolve())
    ]
    if args.action == "docs":
        # An operator's own page, of the folder named: docs/protocols.md is the built-ins'.
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        if errors:
            return 1
        if not shown:
            print(f"protocolbot: {args.dir} holds no protocol files", file=sys.stderr)
            return 1
        from bot.protocol_docs import render_folder_docs

        print(render_folder_docs({p.id: p for p in shown}, args.dir), end="")
        return 0
    if args.action == "list":
        for protocol in shown:
            steps = ", ".join(step.title for step in protocol.steps)
            print(f"{protocol.id:26} {protocol.live_minutes:4} min  {protocol.name}: {steps}")
        if args.dir is not None and not shown and not errors:
            # A folder named, and nothing listed: say so, as `docs` does, rather than nothing.
            print(f"protocolbot: {args.dir} holds no protocol files", file=sys.stderr)
            return 1
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if args.action == "check":
        # The bot runs such a file: a warning, and the check still passes.
        for warning in [*advice(library), *_stranded(settings, library)]:
            print(f"warning: {warning}", file=sys.stderr)
    if args.action == "check" and not errors:
        print(_checked(library, dirs))
    return 1 if errors else 0


def _stranded(settings: Settings, library: dict[str, Protocol]) -> list[str]:
    """The sessions in DATABASE_URL that a bot loading `library` could not run on: an operator
    checking an edit to a protocol before restarting hears which sessions it would hold (or
    call off at their start). None without a database to read (a protocol author's checkout)."""
    path = sqlite_file(settings.database_url)
    if path is not None and not Path(path).is_file():
        return []
    from sqlalchemy import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        return []
    # Imported only with a database to read: a protocol author's check, with none, takes about
    # half the CPU without the models and the engine.
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import selectinload

    from bot.engine import notes
    from bot.store.db import Database
    from bot.store.models import ACTIVE, ProtocolSession

    db = Database(settings.database_url)
    try:
        with db.session() as s:
            sessions = s.scalars(
                select(ProtocolSession)
                .where(ProtocolSession.status.in_((*ACTIVE, "scheduled")))
                .order_by(ProtocolSession.id)
                .options(selectinload(ProtocolSession.steps))  # compared with the protocol's
            ).all()
    except SQLAlchemyError:
        return []  # not reachable, or no schema yet: nothing to say about its sessions
    finally:
        db.dispose()
    said = []
    for session in sessions:
        if notes.installed(library, session) is not None:
            continue
        kept = library.get(session.protocol_id)
        where = f"session #{session.id} in channel {session.channel_id}"
        if session.status == "scheduled":
            said.append(
                f"{where} is scheduled to run '{session.protocol_id}', which is not installed "
                "here: the bot will call it off at its start"
            )
        elif kept is None:
            said.append(
                f"{where} runs '{session.protocol_id}', which is not installed here: the bot "
                "will hold it at its step's close (`/protocol end` finishes it)"
            )
        elif notes.replaced(kept, session):
            said.append(
                f"{where} ran steps of '{session.protocol_id}' that it no longer has here (their "
                "ids differ): the bot will hold it at its step's close (put the steps back, or "
                "`/protocol end` finishes it)"
            )
        else:
            said.append(
                f"{where} is on step {session.current_step} of '{session.protocol_id}', which "
                f"has {len(kept.steps)} steps here: the bot will hold it at its step's close "
                "(put the steps back, or `/protocol end` finishes it)"
            )
    return said


def _checked(library: dict[str, Protocol], dirs: list[Path]) -> str:
    """What a clean check read, the same with a folder named or PROTOCOLS_DIR set:
    '8 protocols ok: 1 in /srv/protocols, 7 built-in'. A file added to the built-in folder is
    counted apart: '8 protocols ok: 1 added to /opt/protocolbot/protocols, 7 built-in'."""
    from bot.protocols import BUILTIN_IDS

    folders = [folder.resolve() for folder in dirs]
    counts = dict.fromkeys(folders, 0)
    added = 0
    for protocol in library.values():
        folder = protocol.path.parent.resolve() if protocol.path is not None else None
        if folder == folders[0] and protocol.id not in BUILTIN_IDS:
            added += 1
        elif folder in counts:
            counts[folder] += 1
    parts = [f"{counts[folder]} in {folder}" for folder in folders[1:]]
    if added:
        parts.append(f"{added} added to {folders[0]}")
    parts.append(f"{counts[folders[0]]} built-in")
    total = len(library)
    return f"{total} {'protocol' if total == 1 else 'protocols'} ok: {', '.join(parts)}"


def _protocol_docs() -> int:
    """Regenerate docs/protocols.md from the built-in protocols (a contributor's command)."""
    from bot.protocol_docs import DOCS_PATH, render_docs
    from bot.protocols import load_library

    library, errors = load_library()
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if errors:
        return 1
    DOCS_PATH.write_text(render_docs(library), encoding="utf-8")
    print(f"wrote {DOCS_PATH}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bot.export import export

    settings = _settings()
    _schema_ready(settings)
    try:
        exported = export(
            settings,
            args.session,
            args.format,
            say=lambda line: print(f"protocolbot: {line}", file=sys.stderr),
        )
    except LookupError as error:
        print(f"protocolbot: {error}", file=sys.stderr)
        return 1
    if args.format == "csv" and args.bom:
        # Excel reads a CSV without a byte order mark in the machine's code page: Arabic, CJK
        # and emoji would come out garbled.
        exported = "\ufeff" + exported
    # A file's bytes, UTF-8 whatever the terminal's encoding (Windows' redirected stdout is
    # cp1252): a reply in Arabic or with an emoji is written, not a traceback.
    out = getattr(sys.stdout, "buffer", None)
    if out is None:  # a stdout that takes text only
        print(exported, end="")
        return 0
    sys.stdout.flush()
    out.write(exported.encode("utf-8"))
    out.flush()
    return 0


def cmd_sessions(args: argparse.Namespace) -> int:
    from bot.export import list_sessions

    if args.since and args.until and args.until < args.since:
        # Else an empty list, read as no sessions in the year asked for.
        _stop(
            f"--until {args.until} is before --since {args.since}: no session could be in both; "
            "give the first day with --since and the last with --until"
        )
    settings = _settings()
    _schema_ready(settings)
    print(list_sessions(settings, args.since, args.until), end="")
    return 0


# A Slack member id: what the person's profile gives (⋮ → Copy member ID).
MEMBER_ID = re.compile(r"[UW][A-Z0-9_]{2,31}")


def cmd_forget_user(args: argparse.Namespace) -> int:
    if not MEMBER_ID.fullmatch(args.user):
        _stop(
            f"expected a Slack member id like U0123ABCD, got {args.user!r}: in Slack, open the "
            "person's profile, then ⋮ → Copy member ID"
        )
    settings = _settings()
    _schema_ready(settings)
    from bot.clock import SystemClock
    from bot.engine.core import Engine
    from bot.engine.replies import Replies
    from bot.protocols import BUILTIN_DIR, load_library
    from bot.store.db import Database

    dirs = [BUILTIN_DIR] + ([settings.protocols_dir] if settings.protocols_dir else [])
    library, _errors = load_library(dirs)
    db = Database(settings.database_url)
    try:
        replies, sessions, led = Replies(Engine(db, library, SystemClock())).forget_user(
            args.user, args.team
        )
    finally:
        db.dispose()
    if not replies and not led:
        print(f"no replies by {args.user} are kept in this database")
        return 0
    done = []
    if replies:
        done.append(
            f"deleted {replies} {'reply' if replies == 1 else 'replies'} by {args.user} in "
            f"{sessions} {'session' if sessions == 1 else 'sessions'}"
        )
    if led:
        done.append(
            f"forgot their name, and what they wrote as presenter, in {led} "
            f"{'session' if led == 1 else 'sessions'}"
        )
    print("; ".join(done) + "; the running bot edits the notes it posted in Slack to match")
    return 0


def _day(raw: str) -> date:
    from datetime import date

    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, got {raw!r}") from None


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    # Only PROTOCOLS_DIR is taken: the demo has its own stand-in Slack and database.
    settings = _settings()

    # Stopped another way than Ctrl-C (`timeout`, a closed terminal): tidily too, its
    # temporary folder removed.
    for stop in STOP_SIGNALS - {signal.SIGINT}:
        signal.signal(stop, _interrupt)
    try:
        return run_demo(
            args.protocol,
            step_seconds=args.step,
            out=sys.stdout,
            protocols_dir=settings.protocols_dir,
        )
    except KeyboardInterrupt:  # Ctrl-C while it was still setting up
        return 130


def _interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def _demo_step(raw: str) -> float:
    """--step: the scripted team needs a couple of seconds a step to say its lines."""
    try:
        seconds = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {raw!r}") from None
    if not MIN_DEMO_STEP <= seconds <= MAX_DEMO_STEP or not seconds.is_integer():
        raise argparse.ArgumentTypeError(
            f"a step takes a whole number of seconds from {MIN_DEMO_STEP} to {MAX_DEMO_STEP} "
            f"(try --step 3), got {raw!r}"
        )
    return seconds


def _port(raw: str) -> int:
    """--port, read as PORT is: a port number to listen on."""
    try:
        port = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {raw!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected 1 to 65535, got {port}")
    return port


def _seconds_to_wait(raw: str) -> int:
    """--wait-for-database: whole seconds, up to an hour."""
    try:
        seconds = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {raw!r}") from None
    if not 0 <= seconds <= MAX_DATABASE_WAIT:
        raise argparse.ArgumentTypeError(f"expected 0 to {MAX_DATABASE_WAIT}, got {seconds}")
    return seconds


def _wait_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait-for-database",
        type=_seconds_to_wait,
        default=DATABASE_WAIT,
        metavar="SECONDS",
        help=f"at start, how long to wait for a PostgreSQL server that is not up yet (default "
        f"{DATABASE_WAIT}; 0 to stop at once)",
    )


def _command(sub: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """A subcommand: `summary` in protocolbot --help, both in its own --help."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=f"{summary[0].upper()}{summary[1:]}. {description}"
    )
    return parser


def _version() -> str:
    """The installed package's version (what an operator reports with a problem)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("protocolbot")
    except PackageNotFoundError:  # run from a source tree never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="protocolbot", description=__doc__)
    parser.add_argument(
        "--version",
        action="version",
        version=f"protocolbot {_version()}",
        help="the installed version, and nothing else",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = _command(
        sub,
        "serve",
        "run the bot (Socket Mode if SLACK_APP_TOKEN is set, else HTTP on PORT)",
        "Answer Slack and, unless --no-scheduler, run the timers and the outbox too.",
    )
    serve.add_argument(
        "--no-scheduler",
        action="store_true",
        help="web process only: a separate `protocolbot clock` runs the timers",
    )
    serve.add_argument(
        "--handle-events",
        action="store_true",
        help="with --no-scheduler on PostgreSQL: handle the events this process stores, instead "
        "of leaving them to the clock (for more events than one clock keeps up with)",
    )
    serve.add_argument(
        "--host", default="0.0.0.0", help="the address to listen on over HTTP (default 0.0.0.0)"
    )
    serve.add_argument(
        "--port", type=_port, default=None, help="the port to listen on over HTTP (default PORT)"
    )
    _wait_option(serve)
    serve.set_defaults(func=cmd_serve)

    clock = _command(
        sub,
        "clock",
        "run the timers and the outbox (one per deployment)",
        "Post each step on time and everything the bot says, beside web processes started with "
        "`protocolbot serve --no-scheduler`. Run exactly one; a second one stands by.",
    )
    _wait_option(clock)
    clock.set_defaults(func=cmd_clock)

    demo = _command(
        sub,
        "demo",
        "an offline rehearsal with a scripted team, no Slack needed",
        "A whole session against a local stand-in for Slack, printed as a transcript.",
    )
    demo.add_argument("protocol", nargs="?", default="atlas", help="a protocol id (default atlas)")
    demo.add_argument(
        "--step", type=_demo_step, default=3.0, help="seconds per step, 2 to 3600 (default 3)"
    )
    demo.set_defaults(func=cmd_demo)

    export = _command(
        sub,
        "export",
        "a session's notes as md, csv or json",
        "Write a session's notes to stdout, from the database at DATABASE_URL.",
    )
    export.add_argument("session", help="a session id, or 'latest'")
    export.add_argument(
        "--format", choices=("md", "csv", "json"), default="md", help="default md (Markdown)"
    )
    export.add_argument(
        "--no-bom",
        dest="bom",
        action="store_false",
        help="csv without the UTF-8 byte order mark that spreadsheet programs need",
    )
    export.set_defaults(func=cmd_export)

    sessions = _command(
        sub,
        "sessions",
        "list the sessions in the database, one a line",
        "Each session's id (for `protocolbot export`), team, channel, protocol, status, start "
        "(or when it is due), end (UTC) and replies kept, tab-separated, oldest first.",
    )
    sessions.add_argument(
        "--since", type=_day, default=None, help="only sessions starting on or after YYYY-MM-DD"
    )
    sessions.add_argument(
        "--until", type=_day, default=None, help="only sessions starting on or before YYYY-MM-DD"
    )
    sessions.set_defaults(func=cmd_sessions)

    forget_user = _command(
        sub,
        "forget-user",
        "delete one person's words in every session",
        "For a person who asks for their words to be deleted: each of their replies is deleted "
        "as if they deleted it in Slack, what they wrote as presenter (the statement, the link "
        "to the work) and the name Slack gave them go, and the running bot edits the notes it "
        "posted.",
    )
    forget_user.add_argument(
        "user", help="their Slack member id (profile → ⋮ → Copy member ID), like U0123ABCD"
    )
    forget_user.add_argument(
        "--team", default=None, help="only in this workspace (its id, T0123ABCD)"
    )
    forget_user.set_defaults(func=cmd_forget_user)

    db = _command(
        sub,
        "db",
        "create or migrate the database schema",
        "Create the database at DATABASE_URL, or bring an older one up to date (nothing is lost).",
    )
    db.add_argument("action", choices=("upgrade",), help="upgrade: create or migrate the schema")
    db.set_defaults(func=cmd_db)

    protocols = _command(
        sub,
        "protocols",
        "list or check protocol files, or regenerate docs/protocols.md",
        "list and check read the built-in protocols and the folder given (or PROTOCOLS_DIR).",
    )
    protocols.add_argument(
        "action",
        choices=("list", "check", "docs"),
        help="list: each protocol and its steps; check: validate the files; docs: rewrite "
        "docs/protocols.md, or with a folder print the Markdown page of its protocols",
    )
    protocols.add_argument(
        "dir", nargs="?", default=None, help="a folder of protocol files (default PROTOCOLS_DIR)"
    )
    protocols.set_defaults(func=cmd_protocols)
    return parser


# What the bot reads from its clone beside the package: an install that is not editable
# (`pip install .`, a wheel) copies bot/ alone, and the first message would fail to render.
CLONE = Path(__file__).resolve().parent.parent
BESIDE_THE_PACKAGE = ("messages", "protocols")
# The processes that run until stopped, and log to stderr: a broken pipe there is news.
RUNS_ON = ("serve", "clock")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    missing = [f"{name}/" for name in BESIDE_THE_PACKAGE if not (CLONE / name).is_dir()]
    if missing:
        _stop(
            f"{' and '.join(missing)} not found in {CLONE}: protocolbot runs from its clone, "
            "installed there with `pip install -e .`"
        )
    if args.command in RUNS_ON:
        return int(args.func(args))
    try:
        status = int(args.func(args))
        sys.stdout.flush()  # what is still buffered goes now, where a closed pipe is caught
    except BrokenPipeError:
        # The output's reader went before its end (`protocolbot sessions | head`): it has what
        # it wanted. Nothing more is written there (Python flushes stdout again on exit).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        # Ctrl-C: an operator who stopped it knows why; a traceback would say it broke.
        print(STOPPED, file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    raise SystemExit(main())
