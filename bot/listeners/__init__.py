"""One register(app, runtime) per Slack surface."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners import actions, commands, dialog, events, home, prep, views
from bot.runtime import Runtime


def register_all(app: App, runtime: Runtime) -> None:
    commands.register(app, runtime)
    prep.register(app, runtime)
    home.register(app, runtime)
    actions.register(app, runtime)
    dialog.register(app, runtime)
    views.register(app, runtime)
    # Last: its catch-all acknowledges every event type nobody above claimed.
    events.register(app, runtime)
