"""A workspace leaves (app_uninstalled, or its bot token revoked): its sessions stop, its tokens go.
An org-wide install taken from some of the org's workspaces (team_access_revoked): their sessions
stop, and the org's token stays for the others.

Nothing is posted: the bot can no longer speak there. Sessions end where they are (scheduled ones
are cancelled), their timers are cleared, the workspace's unsent outbox rows are dropped, and the
installation store forgets its tokens. Handling the same event twice changes nothing more.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial
from typing import Any
from typing import Protocol as TypingProtocol

from sqlalchemy import or_, select, update

from bot.engine.core import Engine
from bot.store.models import OutboxMessage, ProtocolSession, StepRun

log = logging.getLogger(__name__)

WORKSPACE_EVENTS = frozenset({"app_uninstalled", "tokens_revoked", "team_access_revoked"})
STOPPABLE = ("running", "paused", "scheduled")


class Tokens(TypingProtocol):
    """The installation store's side (absent with a single SLACK_BOT_TOKEN)."""

    def forget(self, team_id: str, before: datetime | None = None) -> None: ...
    def forget_users(self, team_id: str, users: list[str]) -> None: ...


class Workspaces:
    def __init__(self, engine: Engine, tokens: Tokens | None = None) -> None:
        self.engine, self.tokens = engine, tokens

    def handle(self, team_id: str, event: dict[str, Any]) -> None:
        kind = event.get("type")
        # What came after the workspace left (a reinstall, its sessions) stays. Slack gives the
        # time in whole seconds: what began in that second is taken to have come before.
        at = event.get("event_time")
        before = datetime.fromtimestamp(at + 1, UTC) if isinstance(at, int | float) else None
        if kind == "team_access_revoked":
            # The event names the workspaces, its envelope none (it comes to the org's install).
            for team in event.get("team_ids") or []:
                if team and isinstance(team, str):
                    self.leave(team, reason=kind, before=before)
            return
        if not team_id:
            return
        if kind == "app_uninstalled":
            self.leave(team_id, reason=kind, before=before)
            if self.tokens is not None:
                self.tokens.forget(team_id, before)
        elif kind == "tokens_revoked":
            revoked = event.get("tokens") or {}
            users = [str(user) for user in revoked.get("oauth") or []]
            if users and self.tokens is not None:
                self.tokens.forget_users(team_id, users)
            if revoked.get("bot"):
                # The bot cannot speak there any more: as good as uninstalled. The installation
                # rows carry the same revoked bot token, so they go with the bot's.
                self.leave(team_id, reason=kind, before=before)
                if self.tokens is not None:
                    self.tokens.forget(team_id, before)

    def leave(self, team_id: str, *, reason: str, before: datetime | None = None) -> int:
        """Stop the workspace's sessions (an org id: the org's) and drop its unsent posts; with
        `before`, only those it had by then."""
        engine = self.engine
        now = engine.clock.now()
        until = before or now
        with engine.transaction() as (s, after):
            sessions = s.scalars(
                select(ProtocolSession)
                .where(
                    or_(
                        ProtocolSession.team_id == team_id, ProtocolSession.enterprise_id == team_id
                    ),
                    ProtocolSession.status.in_(STOPPABLE),
                    ProtocolSession.created_at <= until,
                )
                .with_for_update()
            ).all()
            teams = {team_id}
            for session in sessions:
                teams.add(session.team_id)
                if session.status == "scheduled":
                    session.status = "cancelled"
                else:
                    session.status = "ended"
                    current = s.scalars(
                        select(StepRun).where(
                            StepRun.session_id == session.id,
                            StepRun.index == session.current_step,
                            StepRun.ended_at.is_(None),
                        )
                    ).first()
                    if current is not None:
                        current.ended_at = now
                session.ended_at = now
                session.step_closes_at = None
                session.paused_remaining = None
                after(partial(engine.timers.clear, session.id))
            s.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.team_id.in_(teams),
                    OutboxMessage.status == "pending",
                    OutboxMessage.created_at <= until,
                )
                .values(status="failed", error=reason, sent_at=now)
            )
        log.info("workspace left (%s): %d sessions stopped", reason, len(sessions))
        return len(sessions)
