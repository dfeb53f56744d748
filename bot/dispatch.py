"""From a parsed /protocol command to the engine, and back as a Reply to render."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot import commands as cmd
from bot.engine import ahead, controls, rotation
from bot.engine.core import Actor, Engine, channel_sessions
from bot.engine.errors import Refusal, Reply
from bot.engine.preview import preview, protocol_list
from bot.profiles import Zone
from bot.store.models import ACTIVE


def parse(
    text: str, *, now: datetime, tz: str, engine: Engine, actor: Actor | None = None
) -> cmd.Command | Reply:
    """`actor`: who typed it, where (`presenter me`); an unknown word's suggestion may hang on
    their channel's session (`restart`)."""
    names: dict[str, str] = {}
    for protocol_id, protocol in engine.library.items():
        names.setdefault(protocol.name, protocol_id)  # of two of one name, the first (built-in)
    caller = actor.user_id if actor is not None else None
    typed = cmd.with_protocol_ids(text, engine.library, names)
    parsed = cmd.parse(typed, now=now, tz=tz, caller=caller)
    if isinstance(parsed, cmd.ParseError):
        if parsed.code == "unknown_subcommand":
            parsed = cmd.protocol_first(text, engine.library, names) or parsed
        if actor is not None and cmd.needs_status(parsed):
            parsed = cmd.meant_here(parsed, _status(engine, actor))
        return Reply("errors/render.j2", {"message": parsed.message()})
    name = getattr(parsed, "protocol", None)
    if name is not None and name not in engine.library:
        error = cmd.unknown_protocol(name, engine.library, text)
        return Reply("errors/render.j2", {"message": error.message()})
    return parsed


def _status(engine: Engine, actor: Actor) -> str | None:
    """The status of the channel's running or paused session; None if it has none."""
    with engine.db.reading() as s:  # a read: no write lock queued for on SQLite
        session = channel_sessions(s, actor, ACTIVE).first()
        return session.status if session is not None else None


def run(
    command: cmd.Command,
    actor: Actor,
    engine: Engine,
    *,
    tz: str = "UTC",
    zone: Zone | None = None,
    profiles: rotation.Profiles | None = None,
) -> Reply:
    """Carry out a command; a Refusal becomes the reply that explains it."""
    try:
        if isinstance(command, cmd.Start):
            return ahead.start(engine, actor, command, tz=tz, zone=zone, profiles=profiles)
        if isinstance(command, cmd.Rotation):
            if command.clear:
                return rotation.clear(engine, actor)
            return rotation.rotation(engine, actor, command.users, profiles)
        return _run(command, actor, engine, tz)
    except Refusal as refusal:
        return refusal.reply


def _run(command: cmd.Command, actor: Actor, engine: Engine, tz: str) -> Reply:
    simple: dict[type, Callable[[], Reply]] = {
        cmd.Status: lambda: rotation.status(engine, actor),
        cmd.Next: lambda: engine.next_step(actor),
        cmd.End: lambda: engine.end(actor),
        cmd.Help: lambda: Reply("replies/help.j2", {"library": engine.library}),
        cmd.ListProtocols: lambda: protocol_list(engine, actor),
        cmd.Pause: lambda: controls.pause(engine, actor),
        cmd.Resume: lambda: controls.resume(engine, actor),
        cmd.Forget: lambda: controls.forget(engine, actor),
    }
    if type(command) in simple:
        return simple[type(command)]()
    if isinstance(command, cmd.Notes):
        return engine.notes(actor, command.session_number)
    if isinstance(command, cmd.Extend):
        return controls.extend(
            engine, actor, command.seconds, days=command.days, until=command.until
        )
    if isinstance(command, cmd.Cancel):
        return ahead.cancel(engine, actor, command.session_number)
    if isinstance(command, cmd.Preview):
        return preview(engine, actor, command.protocol)
    raise Refusal("refusals/not_yet.j2", command=type(command).__name__.lower())
