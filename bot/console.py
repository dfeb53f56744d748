"""The `protocolbot` console script: bot.cli's main, with a Ctrl-C while Python is still
importing it (the first fifth of a second of any command) answered as one once it runs is."""

from __future__ import annotations

import sys

STOPPED = "protocolbot: stopped (Ctrl-C) before it finished: run it again"


def main(argv: list[str] | None = None) -> int:
    try:
        from bot.cli import main as run

        return run(argv)
    except KeyboardInterrupt:
        # An operator who stopped it knows why; a traceback would say it broke.
        print(STOPPED, file=sys.stderr)
        return 130
