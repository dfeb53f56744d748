"""Sessions started ahead of time: who presents (the rotation, a look at Slack), and cancelling."""

from __future__ import annotations

from functools import partial
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select, update

from bot import commands as cmd
from bot import slack
from bot.blocks import render_message
from bot.engine import prep
from bot.engine.core import MAX_SCHEDULED_PER_CHANNEL, Actor, Engine, channel_sessions
from bot.engine.errors import Refusal, Reply
from bot.engine.pacing import working_start
from bot.engine.rotation import Profiles, in_channel, next_presenter
from bot.profiles import Zone
from bot.store.models import ACTIVE, ProtocolSession


def _scheduled_here(actor: Actor) -> list[ColumnElement[bool]]:
    return [*in_channel(actor), ProtocolSession.status == "scheduled"]


def _check_presenter(presenter: str, profiles: Profiles | None, from_rotation: bool) -> None:
    person = profiles.person(presenter) if profiles is not None else None
    if person is not None and person.gone:
        raise Refusal(
            "prep/refusals/presenter_gone.j2", presenter=presenter, rotation=from_rotation
        )
    if person is not None and person.is_bot:
        raise Refusal("prep/refusals/presenter_bot.j2", presenter=presenter, rotation=from_rotation)


def _check_facilitator(facilitator: str | None, profiles: Profiles | None) -> None:
    """A facilitator named in the command steers the session: an app, or someone who has
    left, never could, and only an admin could end it."""
    person = profiles.person(facilitator) if profiles and facilitator else None
    if person is not None and (person.gone or person.is_bot):
        raise Refusal(
            "prep/refusals/facilitator_not_person.j2", facilitator=facilitator, bot=person.is_bot
        )


def start(
    engine: Engine,
    actor: Actor,
    command: cmd.Start,
    *,
    tz: str = "UTC",
    zone: Zone | None = None,
    profiles: Profiles | None = None,
) -> Reply:
    """`/protocol start`: now or ahead; without a presenter, the rotation says who."""
    engine.protocol(command.protocol)
    if engine.directory.hidden(actor.team_id, actor.channel_id):
        # Slash commands and dialogs work everywhere, the bot's posts only where it is a member.
        raise Refusal("refusals/not_invited.j2")
    presenter, from_rotation = command.presenter, command.presenter is None
    if presenter is None:
        presenter = next_presenter(engine, actor)
        if presenter is None:
            raise Refusal("prep/refusals/missing_presenter.j2", protocol=command.protocol)
    _check_presenter(presenter, profiles, from_rotation)
    if command.facilitator != actor.user_id:
        _check_facilitator(command.facilitator, profiles)
    now = engine.clock.now()
    starts = command.start_at or now
    if command.weekdays:
        starts = working_start(starts, tz)  # a weekend start is carried to Monday (Engine.start)
    ahead = starts > now
    if ahead:
        with engine.db.session() as s:
            count = s.scalar(select(func.count(ProtocolSession.id)).where(*_scheduled_here(actor)))
        if (count or 0) >= MAX_SCHEDULED_PER_CHANNEL:
            raise Refusal("prep/refusals/too_many_scheduled.j2", limit=MAX_SCHEDULED_PER_CHANNEL)
    reply = engine.start(
        actor,
        protocol_id=command.protocol,
        presenter=presenter,
        facilitator=command.facilitator,
        step_seconds=command.step_seconds,
        step_days=command.step_days,
        start_at=command.start_at,
        weekdays=command.weekdays,
        remind_seconds=command.remind_seconds,
        tz=tz,
    )
    session: ProtocolSession = reply.context["session"]
    context = {**reply.context, "from_rotation": from_rotation, "zone": zone, "skipped": None}
    if command.skipped is not None:
        # The clocks go forward past the time asked: the start moved to the first minute after.
        moved_to = session.starts_at.astimezone(ZoneInfo(session.tz)).strftime("%H:%M")
        context["skipped"] = {"asked": command.skipped, "moved_to": moved_to, "zone": session.tz}
    if session.status != "scheduled":
        return Reply("prep/started.j2", context)
    plan = prep.plan(session) if engine.library[session.protocol_id].presenter_prep else None
    labels = {
        "starts": session.starts_at,
        "remind": plan.remind_at if plan else None,
        "followup": plan.followup_at if plan else None,
    }
    return Reply(
        "prep/scheduled.j2",
        {
            **context,
            "plan": plan,
            "labels": {k: prep.local_label(v, session.tz) for k, v in labels.items() if v},
        },
    )


def tell_absent(engine: Engine, actor: Actor, started: Reply) -> None:
    """After a start or a schedule, once it is answered (Slack is asked, which the answer must
    not wait on): tell whoever asked if the presenter, or the facilitator they named, is not in
    the channel. Slack shows the steps only to members, so they would never see them. Their
    names are asked too, for the notes file."""
    session: ProtocolSession | None = started.context.get("session")
    if session is None:
        return
    people = [session.presenter_id]
    if session.facilitator_id not in (session.presenter_id, actor.user_id):
        people.append(session.facilitator_id)
    # Whoever typed the command is in the channel.
    people = [person for person in people if person != actor.user_id]
    absent = engine.directory.absent(actor.team_id, actor.channel_id, people) if people else []
    # Their names, for the notes file at the end (asked now: its transaction asks nothing),
    # kept with the session so that a restart before the end keeps them too.
    names = engine.directory.names(actor.team_id, [session.presenter_id, session.facilitator_id])
    if names:
        with engine.transaction() as (s, _after):
            s.execute(
                update(ProtocolSession).where(ProtocolSession.id == session.id).values(names=names)
            )
    if absent:
        message = render_message(
            "prep/not_in_channel.j2",
            absent=absent,
            presenter=session.presenter_id,
            scheduled=session.status == "scheduled",
        )
        engine.tell(actor, message)


def tell_absent_at_start(engine: Engine, session_id: int) -> None:
    """Once a session scheduled ahead has started on its timer: tell its facilitator, by DM and
    once, if the presenter is not in the channel. They were looked for when it was scheduled,
    and may have left since: the facilitator was told then (bot/engine/presence.py), and is
    reminded now, when it matters; a leave Slack never told the bot of (while it was out of
    the channel itself) is found here too."""
    with engine.db.session() as s:
        session = s.get(ProtocolSession, session_id)
        if session is None or session.status not in ACTIVE or session.started_at is None:
            return
        s.expunge(session)
    team, channel, presenter = session.team_id, session.channel_id, session.presenter_id
    if not engine.directory.absent(team, channel, [presenter], fresh=True):
        return
    message = render_message(
        "prep/not_in_channel_at_start.j2",
        session=session,
        protocol=engine.protocol_name(session.protocol_id),
    )
    ref = f"absent:{session_id}"
    with engine.transaction() as (s, _after):
        if not slack.enqueued(s, team, ref):
            engine.post(s, session, message, channel=session.facilitator_id, ref=ref)


def cancel(engine: Engine, actor: Actor, number: int | None) -> Reply:
    """`/protocol cancel [n]`: the facilitator, whoever booked it, or an admin calls off a
    session not yet started."""
    with engine.transaction() as (s, after):
        scheduled = s.scalars(
            select(ProtocolSession)
            .where(*_scheduled_here(actor))
            .order_by(ProtocolSession.starts_at)
            .with_for_update()
        ).all()
        # A bare `cancel` while a session runs here most likely means that one: it does not
        # call off the next one, whose presenter would be told not to prepare.
        running = None
        if number is None:
            active = channel_sessions(s, actor, ACTIVE).first()
            running = active.id if active is not None else None
        if number is not None:
            session = next((x for x in scheduled if x.id == number), None)
        elif len(scheduled) == 1 and running is None:
            session = scheduled[0]
        else:
            session = None
        if session is None:
            other = None
            if number is not None:
                other = s.scalars(
                    select(ProtocolSession.status).where(
                        *in_channel(actor), ProtocolSession.id == number
                    )
                ).first()
            listed = [engine.scheduled_view(x) for x in scheduled]
            raise Refusal(
                "prep/refusals/cancel_what.j2",
                number=number,
                other=other,
                scheduled=listed,
                running=running,
            )
        if actor.user_id != session.created_by:
            # Who booked it for someone else to facilitate may call it off too.
            engine.require_facilitator(session, actor, "cancel")
        session.status = "cancelled"
        session.ended_at = engine.clock.now()
        after(partial(engine.timers.clear, session.id))
        by = actor.user_id
        told = bool(((session.prep or {}).get("sent") or {}).get("scheduled"))
        told = told and session.presenter_id != by
        if told:
            prep.dm(
                engine,
                s,
                session,
                session.presenter_id,
                "prep/cancelled_presenter.j2",
                "cancelled",
                by=by,
            )
        # An admin cancelled someone else's session: its facilitator hears it from the bot.
        told_facilitator = session.facilitator_id != by and not (
            told and session.facilitator_id == session.presenter_id
        )
        if told_facilitator:
            prep.dm(
                engine,
                s,
                session,
                session.facilitator_id,
                "prep/cancelled_facilitator.j2",
                "cancelled_facilitator",
                by=by,
            )
        return Reply(
            "prep/cancelled.j2",
            {
                "session": session,
                "protocol": engine.library.get(session.protocol_id),
                "told": told,
                "told_facilitator": told_facilitator,
            },
        )
