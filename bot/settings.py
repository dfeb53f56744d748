"""Settings: the only place that reads the environment (and a .env file)."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream

DEFAULT_DATABASE_URL = "sqlite:///protocolbot.sqlite3"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ENV_NAME = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


class SettingsError(Exception):
    """A missing or malformed setting; the message is one line naming it."""


@dataclass(frozen=True)
class Settings:
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_client_id: str | None = None
    slack_client_secret: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    database_url: str = DEFAULT_DATABASE_URL
    port: int = 3000
    protocols_dir: Path | None = None
    log_level: str = "INFO"
    data_retention_days: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    @property
    def oauth(self) -> bool:
        return bool(self.slack_client_id and self.slack_client_secret)

    def require_token(self) -> None:
        """Check there is one way to post to Slack: a bot token, or the OAuth installations'."""
        if not self.slack_bot_token and not self.oauth:
            raise SettingsError(
                "SLACK_BOT_TOKEN is missing: set it to the app's Bot User OAuth Token (xoxb-...)"
            )
        if self.slack_bot_token and self.oauth:
            # With OAuth each workspace's token comes from its installation and the bot token
            # goes unused: every request from a workspace not installed was answered "not
            # installed", with an error logged for each.
            raise SettingsError(
                "SLACK_BOT_TOKEN and SLACK_CLIENT_ID/SLACK_CLIENT_SECRET (OAuth) are both set: "
                "unset SLACK_BOT_TOKEN to install workspaces by OAuth, or unset SLACK_CLIENT_ID "
                "and SLACK_CLIENT_SECRET to serve the token's one workspace"
            )

    def require_slack(self) -> None:
        """Check what talking to a real Slack needs; raise SettingsError naming the first gap."""
        self.require_token()
        if self.socket_mode and self.oauth:
            # Workspaces install at /slack/install, an HTTP page Socket Mode does not serve.
            raise SettingsError(
                "SLACK_APP_TOKEN (Socket Mode) cannot install workspaces by OAuth: unset it to "
                "serve /slack/install over HTTP, or unset SLACK_CLIENT_ID and SLACK_CLIENT_SECRET "
                "and set SLACK_BOT_TOKEN"
            )
        if self.socket_mode:
            return
        if not self.slack_signing_secret:
            raise SettingsError(
                "SLACK_SIGNING_SECRET is missing: set it from the app's Basic Information page "
                "(or set SLACK_APP_TOKEN to use Socket Mode)"
            )


def _read_env_file(path: Path) -> str:
    """The .env file's text, read once. Stops at a line that cannot be read, naming it and its
    setting (never its value, which may be a secret). python-dotenv only warns of such a line
    and skips it: a DATABASE_URL with an unclosed quote ran the bot on a new SQLite file in the
    working directory instead of the PostgreSQL it named."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise SettingsError(
            f"{path} is not UTF-8 at line {line}: save it as UTF-8 (or write that value in "
            "plain ASCII)"
        ) from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.line
            name = ENV_NAME.match(binding.original.string)
            setting = f" ({name.group(1)})" if name else ""
            raise SettingsError(
                f"{path} cannot be read at line {line}{setting}: write it as NAME=value, "
                "closing any quote it opens"
            )
    return text


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


# Slack's other tokens, each by what it is and where it goes: pasted into the wrong setting, it
# is named for what it is, not only refused.
OTHER_TOKENS = {
    "xapp-": "an app-level token, for SLACK_APP_TOKEN (Socket Mode)",
    "xoxb-": "the bot token, for SLACK_BOT_TOKEN",
    "xoxp-": "a user token, which the bot does not use: SLACK_BOT_TOKEN takes the app's Bot User"
    " OAuth Token (xoxb-...), SLACK_APP_TOKEN an app-level token (xapp-...)",
}


def _token(env: Mapping[str, str], name: str, prefix: str) -> str | None:
    value = _optional(env, name)
    if value is not None and not value.startswith(prefix):
        said = f"{name} is malformed: it should start with '{prefix}'"
        other = next((k for k in OTHER_TOKENS if k != prefix and value.startswith(k)), None)
        if other is not None:
            said += f"; an {other}... token is {OTHER_TOKENS[other]}"
        raise SettingsError(said)
    return value


def _int(env: Mapping[str, str], name: str, default: int | None, low: int, high: int) -> int | None:
    raw = _optional(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} is malformed: expected a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} is out of range: expected {low} to {high}, got {value}")
    return value


# `sqlite:///PATH`, PATH holding no `?` (a query) nor `%` (a quoted character) and not `:memory:`:
# what SQLAlchemy reads as the SQLite file PATH, with its default driver and no host: a URL with
# nothing more to check.
_SQLITE_FILE_URL = re.compile(r"sqlite:///([^?%]+)\Z")


def sqlite_file(url: str) -> str | None:
    """The PATH of a `sqlite:///PATH` URL in that plain form; None for any other URL. Read
    without SQLAlchemy, whose import is half of what a command that opens no database (protocols
    check, list, docs) takes to start."""
    found = _SQLITE_FILE_URL.match(url)
    return None if found is None or found.group(1) == ":memory:" else found.group(1)


def _check_database_url(url: str) -> None:
    if sqlite_file(url) is not None:
        return
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # Not quoted: the URL may hold a password.
        raise SettingsError(
            "DATABASE_URL is malformed: expected sqlite:///PATH or "
            "postgresql://user:password@host:port/database"
        ) from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if "@" in (parsed.host or ""):
        # An @ in the password not written as %40 ends the password there, and the rest of it
        # is read as the host's name, which the driver's error would then show.
        raise SettingsError(
            "DATABASE_URL is malformed: it has more than one @ before the host: write an @ in "
            "the password (or the user name) as %40"
        )
    if backend == "postgresql" and driver != "psycopg":
        raise SettingsError(
            f"DATABASE_URL asks for the {driver} driver, which protocolbot does not use: write "
            "postgresql://user:password@host:port/database"
        )
    if backend == "postgresql":
        # Read as the engine will read it, without connecting: a port that is no number
        # (?port=abc), or hosts and ports that do not pair up, would stop it with a traceback.
        try:
            parsed.get_dialect()().create_connect_args(parsed)
        except ArgumentError as error:
            # SQLAlchemy's words name the host or port, never the password.
            raise SettingsError(
                f"DATABASE_URL is malformed: {error}: write "
                "postgresql://user:password@host:port/database"
            ) from None
    if backend == "sqlite" and driver != "pysqlite":
        raise SettingsError(
            f"DATABASE_URL asks for the {driver} driver, which protocolbot does not use: write "
            "sqlite:///PATH"
        )
    if backend == "sqlite" and parsed.host:
        # sqlite://bot.sqlite3 reads bot.sqlite3 as a host name and opens a database in memory.
        raise SettingsError(
            "DATABASE_URL has two slashes after sqlite: where a file needs three: "
            "sqlite:///protocolbot.sqlite3 (relative), sqlite:////var/lib/protocolbot.sqlite3 "
            "(absolute)"
        )
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise SettingsError(
            "DATABASE_URL names an in-memory SQLite database, which keeps nothing once the "
            "process stops: give a file, e.g. sqlite:///protocolbot.sqlite3"
        )


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> Settings:
    """Read settings from the environment, falling back to a .env file for unset names."""
    env: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        text = _read_env_file(Path(env_file))
        env.update(
            {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}
        )
    env.update(os.environ if environ is None else environ)

    api_url = _optional(env, "SLACK_API_URL") or DEFAULT_SLACK_API_URL
    if not api_url.startswith(("http://", "https://")):
        raise SettingsError("SLACK_API_URL is malformed: expected an http(s) URL")
    if not api_url.endswith("/"):
        api_url += "/"

    database_url = _optional(env, "DATABASE_URL") or DEFAULT_DATABASE_URL
    if database_url.startswith("postgres://"):
        database_url = "postgresql://" + database_url.removeprefix("postgres://")
    # SQLAlchemy's documented form for psycopg2 reads the same with psycopg (3), ours.
    if database_url.startswith("postgresql+psycopg2://"):
        database_url = "postgresql://" + database_url.removeprefix("postgresql+psycopg2://")
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    if not database_url.startswith(("sqlite", "postgresql")):
        raise SettingsError("DATABASE_URL is malformed: expected sqlite:///... or postgresql://...")
    _check_database_url(database_url)

    protocols_dir = _optional(env, "PROTOCOLS_DIR")
    if protocols_dir is not None and not Path(protocols_dir).is_dir():
        raise SettingsError(f"PROTOCOLS_DIR is not a directory: {protocols_dir}")

    log_level = (_optional(env, "LOG_LEVEL") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL is malformed: expected one of {', '.join(LOG_LEVELS)}")

    client_id = _optional(env, "SLACK_CLIENT_ID")
    client_secret = _optional(env, "SLACK_CLIENT_SECRET")
    if bool(client_id) != bool(client_secret):
        missing = "SLACK_CLIENT_SECRET" if client_id else "SLACK_CLIENT_ID"
        raise SettingsError(f"{missing} is missing: OAuth install needs both client id and secret")

    port = _int(env, "PORT", 3000, 1, 65535)
    assert port is not None
    return Settings(
        slack_bot_token=_token(env, "SLACK_BOT_TOKEN", "xoxb-"),
        slack_signing_secret=_optional(env, "SLACK_SIGNING_SECRET"),
        slack_app_token=_token(env, "SLACK_APP_TOKEN", "xapp-"),
        slack_client_id=client_id,
        slack_client_secret=client_secret,
        slack_api_url=api_url,
        database_url=database_url,
        port=port,
        protocols_dir=Path(protocols_dir) if protocols_dir else None,
        log_level=log_level,
        data_retention_days=_int(env, "DATA_RETENTION_DAYS", None, 1, 36500),
    )
