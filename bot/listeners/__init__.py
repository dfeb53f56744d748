"""One register(app, runtime) per Slack surface."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners import actions, commands, dialog, events, home, prep, views
from bot.runtime import Runtime


def register_all(app: App, runtime: Runtime) -> None:
    # Bolt tries listeners in order and thread replies are the busiest traffic, so the events
    # listener comes first: a reply matches at once instead of after other listeners' matchers.
    events.register(app, runtime)
    home.register(app, runtime)
    commands.register(app, runtime)
    prep.register(app, runtime)
    actions.register(app, runtime)
    dialog.register(app, runtime)
    views.register(app, runtime)
