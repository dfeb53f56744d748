"""Many workspaces: Bolt's OAuth install flow over our database, and each workspace's bot token."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from slack_bolt.authorization.authorize import InstallationStoreAuthorize
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.errors import SlackTokenRotationError
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from slack_sdk.oauth.token_rotation import TokenRotator
from sqlalchemy import delete, desc, select, union

from bot.settings import Settings
from bot.slack import RETRY_ERRORS, make_client
from bot.store.db import Database
from bot.store.models import ProtocolSession

log = logging.getLogger(__name__)

# What manifest.yml asks for (a test keeps the two the same); no user scopes, so no user tokens.
BOT_SCOPES = (
    "channels:history",
    "channels:join",
    "channels:read",
    "chat:write",
    "commands",
    "files:write",
    "groups:history",
    "groups:read",
    "im:history",
    "im:write",
    "reactions:read",
    "reactions:write",
    "team:read",
    "users:read",
)
STATE_SECONDS = 600
# A rotating token is refreshed this long before it expires (Bolt's default), so a refresh that
# fails is tried again on later uses while the old token still works.
ROTATE_MINUTES = 120

Found = Installation | Bot
# (enterprise_id, team_id) as the installation store keys an installation; team None: org-wide.
StoreKey = tuple[str | None, str | None]


class Installations:
    """The app's installations in slack_sdk's SQLAlchemy stores, on our database engine."""

    def __init__(self, settings: Settings, db: Database) -> None:
        if not (settings.slack_client_id and settings.slack_client_secret):
            raise ValueError("OAuth needs SLACK_CLIENT_ID and SLACK_CLIENT_SECRET")
        self.client_id = settings.slack_client_id
        self._client_secret = settings.slack_client_secret
        self.api_url = settings.slack_api_url
        self.db = db
        # Their tables come from our migrations (0003), never from create_tables().
        self.store = SQLAlchemyInstallationStore(
            client_id=self.client_id, engine=db.engine, logger=log
        )
        self.states = _States(expiration_seconds=STATE_SECONDS, engine=db.engine, logger=log)
        # oauth.v2.access (install and refresh) goes to SLACK_API_URL like every other call.
        self.api = make_client(None, settings.slack_api_url)
        self.rotator = _PatientRotator(
            client_id=self.client_id, client_secret=self._client_secret, client=self.api
        )
        self._rotating = threading.Lock()

    def oauth_settings(self) -> OAuthSettings:
        """/slack/install and /slack/oauth_redirect, and how Bolt finds a request's token."""
        bolt_log = logging.getLogger("bot.bolt")
        settings = OAuthSettings(
            client_id=self.client_id,
            client_secret=self._client_secret,
            scopes=list(BOT_SCOPES),
            user_scopes=[],
            installation_store=self.store,
            state_store=self.states,
            state_expiration_seconds=STATE_SECONDS,
            token_rotation_expiration_minutes=ROTATE_MINUTES,
            logger=bolt_log,
        )
        # Bolt's default refreshes tokens through slack.com; this one through SLACK_API_URL. With
        # no user scopes a cached auth.test result holds no one's user token, so it is safe to keep.
        authorize = _Authorize(
            logger=bolt_log,
            installation_store=self.store,
            client_id=self.client_id,
            client_secret=self._client_secret,
            token_rotation_expiration_minutes=ROTATE_MINUTES,
            cache_enabled=True,
            client=self.api,
        )
        authorize.token_rotator = self.rotator
        settings.authorize = authorize
        return settings

    # -- a workspace's bot token -----------------------------------------------------------------
    def client_for(self, team_id: str, *, rotate: bool = True) -> WebClient | None:
        """A client with the workspace's bot token and no client-side retries (the outbox retries);
        None when the app is not installed there. Without `rotate`, a token about to expire is
        used as it is (it still works), and nothing is written."""
        token = self.bot_token(team_id, rotate=rotate)
        return make_client(token, self.api_url, retries=False) if token else None

    def bot_token(self, team_id: str, *, rotate: bool = True) -> str | None:
        key = self._key(team_id)
        if key is None:
            return None
        found = self._find(key)
        if rotate and found is not None and _expiring(found):
            found = self._rotate(key)
        return found.bot_token if found is not None else None

    def _key(self, team_id: str) -> StoreKey | None:
        """Where the store keeps the workspace's bot: outbox rows carry only the team id."""
        bots = self.store.bots.c
        with self.db.engine.connect() as conn:
            row = conn.execute(
                select(bots.enterprise_id)
                .where(bots.client_id == self.client_id, bots.team_id == team_id)
                .order_by(desc(bots.installed_at))
                .limit(1)
            ).first()
            if row is not None:
                return row.enterprise_id, team_id
            # An org-wide install has no team id: the workspace's sessions name its org.
            org = conn.scalar(
                select(ProtocolSession.enterprise_id)
                .where(ProtocolSession.team_id == team_id, ProtocolSession.enterprise_id != "")
                .limit(1)
            )
            if not org:
                # A workspace with no session yet (someone opened the Home tab): Slack let its
                # request through, so an org-wide install covers it; if only one org made one,
                # that is the one.
                orgs = conn.scalars(
                    select(bots.enterprise_id)
                    .where(
                        bots.client_id == self.client_id,
                        bots.team_id.is_(None),
                        bots.enterprise_id.is_not(None),
                    )
                    .distinct()
                    .limit(2)
                ).all()
                org = orgs[0] if len(orgs) == 1 else None
        return (org, None) if org else None

    def _find(self, key: StoreKey) -> Found | None:
        """As Bolt's authorize does: the latest installation, else the latest bot."""
        enterprise_id, team_id = key
        org = team_id is None
        installation = self.store.find_installation(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=org
        )
        if installation is not None and installation.bot_token:
            return installation
        return self.store.find_bot(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=org
        )

    def _rotate(self, key: StoreKey) -> Found | None:
        with self._rotating:
            found = self._find(key)  # another thread may have refreshed it meanwhile
            if found is None or not _expiring(found):
                return found
            try:
                if isinstance(found, Installation):
                    installation = self.rotator.perform_token_rotation(
                        installation=found, minutes_before_expiration=ROTATE_MINUTES
                    )
                    if installation is not None:
                        self.store.save(installation)  # both tables, as Bolt's authorize does
                    return installation or found
                bot = self.rotator.perform_bot_token_rotation(
                    bot=found, minutes_before_expiration=ROTATE_MINUTES
                )
                if bot is not None:
                    self.store.save_bot(bot)
                return bot or found
            except SlackTokenRotationError as error:
                # Expired, and the refresh failed (see _PatientRotator): the next use tries again.
                log.warning(
                    "could not refresh a workspace's bot token: %s",
                    error.api_error.response.get("error"),
                )
                return found

    # -- a workspace leaves ------------------------------------------------------------------------
    def forget(self, team_id: str, before: datetime | None = None) -> None:
        """Delete every token the workspace gave us (for an org id: the org-wide install's);
        with `before`, unless it installed the app again since."""
        for enterprise_id, team in self._keys(team_id):
            if before is None or not self._installed_since((enterprise_id, team), before):
                self.store.delete_all(enterprise_id=enterprise_id, team_id=team)

    def _installed_since(self, key: StoreKey, moment: datetime) -> bool:
        enterprise_id, team_id = key
        bots = self.store.bots.c
        naive = moment.astimezone(UTC).replace(tzinfo=None)  # the store keeps naive UTC
        with self.db.engine.connect() as conn:
            later = conn.scalar(
                select(bots.id)
                .where(
                    bots.client_id == self.client_id,
                    bots.enterprise_id.is_(None)
                    if enterprise_id is None
                    else bots.enterprise_id == enterprise_id,
                    bots.team_id.is_(None) if team_id is None else bots.team_id == team_id,
                    bots.installed_at > naive,
                )
                .limit(1)
            )
        return later is not None

    def forget_users(self, team_id: str, users: list[str]) -> None:
        """Delete the installations of people whose user tokens were revoked."""
        for enterprise_id, team in self._keys(team_id):
            for user in users:
                self.store.delete_installation(
                    enterprise_id=enterprise_id, team_id=team, user_id=user
                )

    def _keys(self, team_id: str) -> list[StoreKey]:
        """Every key the store files the workspace under (its team, in whichever org), and for
        an org id the org-wide install's: a workspace's own event never reaches its org's."""
        tables = (self.store.installations.c, self.store.bots.c)
        workspace = union(
            *(
                select(c.enterprise_id).where(c.client_id == self.client_id, c.team_id == team_id)
                for c in tables
            )
        )
        org = union(
            *(
                select(c.enterprise_id).where(
                    c.client_id == self.client_id, c.enterprise_id == team_id, c.team_id.is_(None)
                )
                for c in tables
            )
        )
        with self.db.engine.connect() as conn:
            keys: list[StoreKey] = [(e, team_id) for e in conn.scalars(workspace)]
            keys += [(e, None) for e in conn.scalars(org)]
        return keys


class TokenNotRenewed(Exception):
    """A request from a workspace that installed the app, whose token has expired and which
    Slack failed to renew just now (a 5xx, a rate limit): not a workspace without the app (see
    app.py's on_error). A renewal Slack refuses (invalid_refresh_token) is as an uninstall."""


# Set by _keep_while_it_works, on the thread of the request whose token it could not renew.
_renewal = threading.local()


class _Authorize(InstallationStoreAuthorize):
    """Bolt's authorize, but a request it finds no token for because the installation's token
    expired and its renewal failed raises TokenNotRenewed: Bolt answered it as from a workspace
    without the app, with a 200 that an event is never sent again for (a reply lost), and told
    a command's author to have the app installed."""

    def __call__(self, **kwargs: Any) -> Any:
        _renewal.failed_for_now = False
        found = super().__call__(**kwargs)
        if found is None and _renewal.failed_for_now:
            raise TokenNotRenewed
        return found


class _PatientRotator(TokenRotator):
    """slack_sdk's rotator, but a refresh Slack fails while the token still works keeps that
    token (the next use tries again): Bolt's authorize gave a request up at one failed refresh
    in the two hours before expiry, and told its author the app was not installed."""

    def perform_token_rotation(
        self, *, installation: Installation, minutes_before_expiration: int = ROTATE_MINUTES
    ) -> Installation | None:
        try:
            return super().perform_token_rotation(
                installation=installation, minutes_before_expiration=minutes_before_expiration
            )
        except SlackTokenRotationError as error:
            _keep_while_it_works(installation, error)
            return None

    def perform_bot_token_rotation(
        self, *, bot: Bot, minutes_before_expiration: int = ROTATE_MINUTES
    ) -> Bot | None:
        try:
            return super().perform_bot_token_rotation(
                bot=bot, minutes_before_expiration=minutes_before_expiration
            )
        except SlackTokenRotationError as error:
            _keep_while_it_works(bot, error)
            return None


def _keep_while_it_works(found: Found, error: SlackTokenRotationError) -> None:
    """Say that the refresh failed, if the old token still works; else raise the error."""
    expires_at = found.bot_token_expires_at
    if expires_at is not None and expires_at <= time.time():
        response = error.api_error.response
        _renewal.failed_for_now = (
            response.status_code >= 500
            or response.status_code == 429
            or response.get("error") in RETRY_ERRORS
        )
        raise error
    log.warning(
        "could not refresh a workspace's bot token: %s", error.api_error.response.get("error")
    )


class _States(SQLAlchemyOAuthStateStore):
    """slack_sdk's state store, which never deletes a state nobody came back with: this one
    clears the expired ones as it issues, so opening /slack/install cannot fill the table."""

    def issue(self, *args: Any, **kwargs: Any) -> str:
        now = datetime.now(UTC).replace(tzinfo=None)  # the store keeps naive UTC
        with self.engine.begin() as conn:
            conn.execute(delete(self.oauth_states).where(self.oauth_states.c.expire_at < now))
        return str(super().issue(*args, **kwargs))


def _expiring(found: Found) -> bool:
    expires_at = found.bot_token_expires_at
    return expires_at is not None and expires_at <= time.time() + ROTATE_MINUTES * 60
