"""Modal submissions and closes, shortcuts and option lists: unknown ones are acknowledged."""

from __future__ import annotations

import re

from slack_bolt import Ack, App

from bot.runtime import Runtime


def register(app: App, runtime: Runtime) -> None:
    @app.view(re.compile(".*"))
    def any_view(ack: Ack) -> None:
        ack()

    @app.view_closed(re.compile(".*"))
    def any_view_closed(ack: Ack) -> None:
        ack()

    @app.shortcut(re.compile(".*"))
    def any_shortcut(ack: Ack) -> None:
        ack()

    @app.options(re.compile(".*"))
    def any_options(ack: Ack) -> None:
        # No select of ours asks the app for its options: a list asked for is an empty one.
        ack(options=[])
