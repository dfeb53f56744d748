"""One register(app, runtime) per Slack surface."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners import actions, commands, dialog, events, home, prep, views
from bot.runtime import Runtime


def register_all(app: App, runtime: Runtime) -> None:
    # Bolt runs the first listener that matches. The Home tab's event listener goes ahead of
    # the events catch-all, which stores the rest; the busiest traffic (thread replies) then
    # matches second, ahead of every command's, button's and dialog's matcher.
    home.register(app, runtime)
    events.register(app, runtime)
    commands.register(app, runtime)
    prep.register(app, runtime)
    actions.register(app, runtime)
    dialog.register(app, runtime)
    views.register(app, runtime)
