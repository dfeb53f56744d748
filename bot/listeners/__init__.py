"""One register(app, runtime) per Slack surface."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners import actions, commands, dialog, events, home, prep, views
from bot.runtime import Runtime


def register_all(app: App, runtime: Runtime) -> None:
    # Bolt tries the listeners in this order and runs the first that matches; every try costs
    # the ack ~12 us (Bolt builds the matcher's arguments each time). So the busiest traffic
    # goes first: events (thread replies), which the catch-all stores, then `/protocol`. The
    # catch-all leaves the Home tab's event to its own listener, registered after it.
    events.register(app, runtime)
    commands.register(app, runtime)
    home.register(app, runtime)
    prep.register(app, runtime)
    actions.register(app, runtime)
    dialog.register(app, runtime)
    views.register(app, runtime)
