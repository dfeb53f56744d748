"""Facilitator controls that bend the schedule: extend, pause, resume; and forget."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot import retention
from bot.blocks import render_message
from bot.commands import DAY, MAX_AHEAD_SECONDS
from bot.engine import posted_notes, warnings
from bot.engine.core import Actor, Engine, Pressed, channel_sessions, pause_note
from bot.engine.errors import Refusal, Reply
from bot.engine.home import send_notes
from bot.engine.pacing import (
    after_working_time,
    button_extension,
    calendar_days,
    days_left,
    later,
    later_on_weekdays,
    step_seconds,
    time_left,
    warning_time,
)
from bot.engine.replies import DELETED
from bot.store.models import ACTIVE, Contribution, OutboxMessage, ProtocolSession, StepRun


def _thread_note(
    engine: Engine,
    s: Session,
    session: ProtocolSession,
    template: str,
    ref: str | None = None,
    **context: object,
) -> None:
    """A line in the current step's thread saying what the facilitator changed."""
    engine.post(
        s,
        session,
        render_message(template, session=session, **context),
        ref=ref,
        thread_ref=f"step:{session.id}:{session.current_step}",
    )


def _show(engine: Engine, s: Session, session: ProtocolSession, plan: bool = True) -> None:
    """The open step's message, and the header's `plan`, as they now stand."""
    protocol = engine.installed(session)
    if protocol is None:
        return  # a session held for its protocol: nothing to show its steps with
    engine.show_step(s, session, protocol, session.current_step)
    warnings.rewarn(engine, s, session, protocol)
    if plan:
        engine.show_plan(s, session, protocol)


def _require_runnable(engine: Engine, session: ProtocolSession) -> None:
    """A session whose protocol it can't run on (gone, cut short of its step, or its id given
    to other steps) is held at its step's close and can't resume: more time, or a pause to
    resume from, would promise what can't happen. The facilitator hears what can (`end`)."""
    if engine.installed(session) is None:
        raise engine.cannot_run(session)


def _move_warning(
    engine: Engine,
    s: Session,
    after: Callable[[Callable[[], None]], None],
    session: ProtocolSession,
    run: StepRun | None,
) -> None:
    """The step's close moved (extend, resume): a warning not given yet comes the same time before
    the new close as it would have before the old one, so the team hears before the step closes
    however long it was paused."""
    if run is None or run.warn_at is None:
        return  # given already, or no time for it: _show brings one given up to date
    protocol = engine.shown_protocol(s, session)
    seconds = step_seconds(protocol, run.index, session.step_seconds)
    at = warning_time(
        run.started_at, run.closes_at, seconds, weekdays=session.weekdays, tz=session.tz
    )
    run.warn_at = at
    if at is None:
        return
    warn_at = at
    sid, step = session.id, run.index
    after(lambda: engine.timers.step_warning(sid, step, warn_at))


# Two presses of one Extend button this close together are a double click, not a request for
# twice the time.
DOUBLE_PRESS = timedelta(seconds=3)


def extend(
    engine: Engine,
    actor: Actor,
    seconds: int | None,
    pressed: Pressed | None = None,
    *,
    days: int | None = None,
    until: datetime | None = None,
) -> Reply:
    """Move the current step's close later; the steps after it move with it. `seconds` None:
    the Extend button's quarter of the step, on the step it was `pressed` on. `days`: of
    `seconds`, the whole days typed as days (`extend 1d`: the same time a day on, across a
    clock change; `extend 24h`: 24 hours); None, as many whole days as `seconds` holds.
    `until`: the close asked for instead (`extend until 3pm`), later than the step's own."""
    with engine.transaction() as (s, after):
        session = engine._require_active(s, actor, pressed)
        engine.require_facilitator(session, actor, "extend")
        now = engine.clock.now()
        run = engine._step_run(s, session.id, session.current_step)
        if pressed is not None:
            stale = pressed.stale(session)
            if stale is not None:
                return stale
            if run is not None and run.extended_at and now - run.extended_at < DOUBLE_PRESS:
                return Reply("replies/extended_just_now.j2", {"session": session})
        _require_runnable(engine, session)
        if until is not None:
            seconds, days = _seconds_until(session, until), 0
        if seconds is None:
            protocol = engine.shown_protocol(s, session)
            seconds = button_extension(
                step_seconds(protocol, session.current_step, session.step_seconds)
            )
        if session.status == "paused":
            if (session.paused_remaining or 0) + seconds > MAX_AHEAD_SECONDS:
                raise Refusal("refusals/extend_too_far.j2", days=MAX_AHEAD_SECONDS // DAY)
            if run is not None and pressed is not None:
                run.extended_at = now
            session.paused_remaining = (session.paused_remaining or 0) + seconds
            # Kept apart from the step's own time left, to be counted as typed on resume
            # (`extend 1d` the same time a day on, `extend 24h` 24 hours), whichever way the
            # step's own length was typed.
            typed = seconds // DAY if days is None else days
            session.paused_added = (session.paused_added or 0) + seconds
            session.paused_added_days = (session.paused_added_days or 0) + typed
            _thread_note(engine, s, session, "step_extended.j2", seconds=seconds, closes_at=None)
            _show(engine, s, session, plan=False)
            return Reply("replies/extended_paused.j2", {"session": session, "seconds": seconds})
        assert session.step_closes_at is not None
        if session.weekdays:
            closes = later_on_weekdays(session.step_closes_at, seconds, session.tz, days)
        else:
            closes = later(session.step_closes_at, seconds, session.tz, days)
        # One extend is held to 14 days; many are held together to a step's own limit.
        if closes - now > timedelta(seconds=MAX_AHEAD_SECONDS):
            raise Refusal("refusals/extend_too_far.j2", days=MAX_AHEAD_SECONDS // DAY)
        if run is not None and pressed is not None:
            run.extended_at = now
        session.step_closes_at = closes
        if run is not None:
            run.closes_at = closes
        protocol = engine.shown_protocol(s, session)
        last = session.current_step >= len(protocol.steps)
        _thread_note(
            engine, s, session, "step_extended.j2", seconds=seconds, closes_at=closes, last=last
        )
        _show(engine, s, session)
        sid, step = session.id, session.current_step
        after(lambda: engine.timers.step_deadline(sid, step, closes))
        _move_warning(engine, s, after, session, run)
        return Reply("replies/extended.j2", {"session": session, "closes_at": closes})


def _seconds_until(session: ProtocolSession, until: datetime) -> int:
    """What `extend until` adds to the open step: from its close to `until`, in whole seconds
    that reach it (a close shown as 3:00 PM, not 2:59)."""
    if session.status == "paused" or session.step_closes_at is None:
        # A paused step has time left, not a close: when it resumes is not known.
        raise Refusal("refusals/extend_until_paused.j2", until=until)
    closes = session.step_closes_at
    if until <= closes:
        # Plain values: the refusal rolls the transaction back, which expires the row.
        step = session.current_step
        raise Refusal("refusals/extend_until_earlier.j2", step=step, closes_at=closes)
    return math.ceil((until - closes).total_seconds())


def extend_step(engine: Engine, actor: Actor, pressed: Pressed) -> Reply:
    """The Extend button: a quarter of the step's length more, on the step it was pressed on;
    a second press straight after the first (a double click) adds nothing."""
    return extend(engine, actor, None, pressed)


def pause(engine: Engine, actor: Actor, pressed: Pressed | None = None) -> Reply:
    """Freeze the time left in the current step (the one its button was on, if pressed)."""
    with engine.transaction() as (s, after):
        session = engine._require_active(s, actor, pressed)
        engine.require_facilitator(session, actor, "pause")
        stale = pressed.stale(session) if pressed is not None else None
        if stale is not None:
            return stale
        _require_runnable(engine, session)
        if session.status == "paused":
            raise Refusal("refusals/already_paused.j2")
        assert session.step_closes_at is not None
        now = engine.clock.now()
        left = time_left(now, session.step_closes_at, weekdays=session.weekdays, tz=session.tz)
        engine.pause_step(s, session, left)
        ref = pause_note(session)
        _thread_note(engine, s, session, "step_paused.j2", ref, over=None)
        _show(engine, s, session)
        sid = session.id
        after(lambda: engine.timers.clear(sid))
        return Reply("replies/paused.j2", {"session": session})


def resume(engine: Engine, actor: Actor, pressed: Pressed | None = None) -> Reply:
    """Restore the time that was left when the step was paused."""
    if _kept_out(engine, actor):
        raise Refusal("refusals/not_invited.j2", resume=True)
    with engine.transaction() as (s, after):
        session = engine._require_active(s, actor, pressed)
        engine.require_facilitator(session, actor, "resume")
        # A Resume button from an earlier pause of this session still resumes it.
        stale = pressed.stale(session, check_step=False) if pressed is not None else None
        if stale is not None:
            return stale
        if session.status != "paused":
            raise Refusal("refusals/not_paused.j2")
        protocol = engine.installed(session)
        if protocol is None:
            raise engine.cannot_run(session)
        # Whole days left are counted on the calendar, as a step's length is (pacing.later): a
        # day's step resumed across a daylight-saving change keeps its time of day. What `extend`
        # added while it was paused runs on after that, as if added to the close then, its days
        # counted as they were typed (`step 24h`, then `extend 1d`: a day on from the 24 hours).
        now = engine.clock.now()
        added = session.paused_added or 0
        days = days_left(calendar_days(session.step_seconds, session.step_days))
        closes = _run_on(session, now, (session.paused_remaining or 0) - added, days)
        if added and session.weekdays:
            # As `extend` of that close: a day that lands at the weekend goes on to Monday at
            # its time of day (not a day of working time from Friday, Monday night).
            closes = later_on_weekdays(closes, added, session.tz, session.paused_added_days)
        elif added:
            closes = _run_on(session, closes, added, session.paused_added_days)
        session.status = "running"
        session.step_closes_at = closes
        session.paused_remaining = session.paused_added = session.paused_added_days = None
        run = engine._step_run(s, session.id, session.current_step)
        if run is not None:
            run.closes_at = closes
            if run.paused_at is not None:
                run.paused_seconds += int((now - run.paused_at).total_seconds())
                run.paused_at = None
        engine.unpaused(s, session)
        if run is not None and run.message_ts is None and _never_posted(s, session):
            # Held because its channel could not be reached: the step is posted now, in full.
            engine.post_step(s, session, protocol, session.current_step, closes)
            engine.show_plan(s, session, protocol)
        else:
            _thread_note(engine, s, session, "step_resumed.j2", closes_at=closes)
            _show(engine, s, session)
        sid, step = session.id, session.current_step
        after(lambda: engine.timers.step_deadline(sid, step, closes))
        _move_warning(engine, s, after, session, run)
        # Replies written meanwhile in any of its steps' threads: the open step's first.
        threads = _step_threads(s, session.id, session.current_step)
        if threads:
            where = (session.team_id, session.enterprise_id, session.channel_id)
            after(lambda: engine.on_resumed(*where, threads))
        return Reply("replies/resumed.j2", {"session": session, "closes_at": closes})


def _run_on(session: ProtocolSession, at: datetime, seconds: int, days: int | None) -> datetime:
    """When `seconds` of a resumed step's time left have run from `at`; `days` as for later."""
    if session.weekdays:
        # The time left was counted without weekends (time_left): it runs without them too.
        return after_working_time(at, seconds, session.tz, days)
    return later(at, seconds, session.tz, days)


def _step_threads(s: Session, session_id: int, current: int) -> list[str]:
    """The ts of each step message of a session posted so far: the open step's, then the
    earlier ones' from the latest back."""
    found = s.scalars(
        select(StepRun.message_ts)
        .where(
            StepRun.session_id == session_id,
            StepRun.message_ts.is_not(None),
            StepRun.index <= current,
        )
        .order_by(StepRun.index.desc())
    )
    return [str(ts) for ts in found]


def _kept_out(engine: Engine, actor: Actor) -> bool:
    """A session is paused here, and Slack hides the channel from the bot (a private one it was
    taken out of): resumed, its step would run on where the bot can neither post nor hear.
    Asked of Slack outside the transaction, which would hold the session's row meanwhile."""
    with engine.db.session() as s:
        paused = channel_sessions(s, actor, ("paused",)).first() is not None
    return paused and engine.directory.hidden(actor.team_id, actor.channel_id)


def end_away(engine: Engine, actor: Actor, session_id: int) -> Reply:
    """End a session from the facilitator's note that its channel could not be reached (its
    button): the notes go to the presenter as at any end, and to the facilitator here, since
    the channel may never show them."""
    with engine.db.session() as s:
        session = s.get(ProtocolSession, session_id)
        where = (session.channel_id, session.enterprise_id) if session else None
        active = session is not None and session.status in ACTIVE
    if session is None or where is None or session.team_id != actor.team_id or not active:
        notes_out = True  # as ever, of a session that is not the workspace's
        if session is not None and session.team_id == actor.team_id:
            with engine.db.session() as s:
                notes_out = posted_notes.went_out(s, session_id)
        raise Refusal("refusals/session_over.j2", notes_out=notes_out)
    if session.status == "running":
        # Resumed in its channel since the note was sent: the team is there, and sees the end.
        raise Refusal("refusals/running_again.j2", session=session)
    # The channel has one active session at most: this one, which `end` finds there.
    there = replace(actor, channel_id=where[0], enterprise_id=where[1])
    with engine.batch():  # one commit: notes kept out of the channel then find this copy
        engine.end(there)
        send_notes(engine, there, session_id)
    return Reply("replies/ended_away.j2", {"session": session})


def _never_posted(s: Session, session: ProtocolSession) -> bool:
    """Whether Slack refused the current step's message for good (see delivery.hold_unreachable),
    rather than it being on its way."""
    ref = f"step:{session.id}:{session.current_step}"
    last = s.scalars(
        select(OutboxMessage.status)
        .where(OutboxMessage.team_id == session.team_id, OutboxMessage.ref == ref)
        .order_by(OutboxMessage.id.desc())
        .limit(1)
    ).first()
    return last == "failed"


def forget(engine: Engine, actor: Actor) -> Reply:
    """Delete the stored replies of the channel's last session to end (the facilitator's
    call). Never a running one's: it would carry on without what its team had written, and
    its notes come out short; a reply to take back at once is deleted in Slack."""
    with engine.transaction() as (s, _after):
        session = engine.latest_session(s, actor, ended=True)
        current = engine.latest_session(s, actor)
        # By number: a refusal rolls the transaction back, and its rows with it.
        running = current.id if current is not None and current.status in ACTIVE else None
        if session is None and current is not None and running is not None:
            # Only who may end it is told to end it first.
            steers = actor.user_id == current.facilitator_id or actor.is_admin()
            raise Refusal("refusals/forget_running.j2", running=running, steers=steers)
        if session is None:
            raise Refusal("refusals/no_notes.j2")
        engine.require_facilitator(session, actor, "forget the replies of", by_number=True)
        count = s.scalar(
            select(func.count())
            .select_from(Contribution)
            .where(Contribution.session_id == session.id, Contribution.audience != DELETED)
        )
        # Each reply's row stays, empty and marked deleted, as a reply deleted in Slack does: an
        # edit, or Slack's unfurl of a link in it (an edit too), must not bring it back.
        s.execute(
            update(Contribution)
            .where(Contribution.session_id == session.id)
            .values(text="", audience=DELETED, updated_at=engine.clock.now())
        )
        # What retention would delete in time: the presenter's statement and link, the outbox's
        # copies.
        session.statement = None
        if session.prep:
            session.prep = retention.without_written(session.prep)
        retention.forget_copies(s, session.id)
        reply = Reply(
            "replies/forgotten.j2", {"session": session, "count": count or 0, "running": running}
        )
    retention.forget_events(engine.db, actor.team_id, actor.channel_id)
    return reply
