"""The team's presenter rotation: the order, who presents next, who presented what."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import inspect, select

from bot.profiles import Person
from bot.store.db import Database
from bot.store.migrate import alembic_config, current_revision, head_revision, upgrade
from bot.store.models import Contribution, ProtocolSession
from tests.harness import FACILITATOR, PRESENTER, TEACHERS, Bot
from tests.prep_world import NOW, World, make_world, message_text

A, B, C = "U_A", "U_B", "U_C"


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    w = make_world(database_url, NOW)
    try:
        yield w
    finally:
        w.db.dispose()


def _presenters(world: World) -> list[str]:
    with world.db.session() as s:
        return list(s.scalars(select(ProtocolSession.presenter_id).order_by(ProtocolSession.id)))


def test_rotation_is_shown_and_set(world: World) -> None:
    assert "no presenter rotation yet" in world.command("rotation")
    answer = world.command(f"rotation <@{A}|ana> <@{B}> <@{C}> <@{A}>")
    assert "Saved the presenter rotation" in answer
    assert f"1. <@{A}> :point_left: next" in answer and f"3. <@{C}>" in answer
    assert "4." not in answer  # a name given twice is kept once
    assert f"<@{A}> :point_left: next" in world.command("rotation")


def test_rotation_clear_removes_it_and_booked_sessions_keep_their_presenters(
    world: World,
) -> None:
    # There was no way to clear one: `clear` was answered as a mention not picked from the list.
    assert "no presenter rotation to clear" in world.command("rotation clear")
    world.command(f"rotation <@{A}> <@{B}>")
    world.command("start atlas in 1d")
    assert "Cleared this channel's presenter rotation" in world.command("rotation Clear")
    assert "no presenter rotation yet" in world.command("rotation")
    assert "/protocol rotation" in world.command("start atlas in 2d")  # no one to take
    assert _presenters(world) == [A]
    world.command(f"rotation <@{C}>")
    assert "Cleared" in world.command("rotation none")


def test_rotation_clear_in_smart_quotes_clears_it(world: World) -> None:
    # Typed with smart punctuation on, as a start's protocol name may be: it was answered as
    # a mention not picked from Slack's list.
    world.command(f"rotation <@{A}> <@{B}>")
    assert "Cleared" in world.command("rotation \u201cclear\u201d")
    assert "no presenter rotation yet" in world.command("rotation")


def test_start_without_a_presenter_takes_the_next_one(world: World) -> None:
    assert "/protocol rotation" in world.command("start atlas in 1d")  # no rotation yet
    world.command(f"rotation <@{A}> <@{B}> <@{C}>")
    assert "next in the rotation" in world.command("start atlas in 1d")
    world.command("start atlas in 2d")
    world.command("start atlas in 3d")
    world.command("start atlas in 4d")
    assert _presenters(world) == [A, B, C, A]
    # The presenter taken from the rotation gets the prep reminder like anyone else.
    assert world.dm_refs(A) == ["prep:1:scheduled", "prep:4:scheduled"]


def test_a_cancelled_session_gives_its_turn_back(world: World) -> None:
    world.command(f"rotation <@{A}> <@{B}> <@{C}>")
    world.command("start atlas in 1d")
    world.command("start atlas in 2d")
    world.command("cancel 2")
    world.command("start atlas in 3d")
    assert _presenters(world) == [A, B, B]


def test_an_earlier_cancelled_session_gives_its_turn_back(world: World) -> None:
    world.command(f"rotation <@{A}> <@{B}> <@{C}>")
    world.command("start atlas at tue 15:00")
    world.command("start atlas at wed 15:00")
    world.command("cancel 1")
    assert f"<@{A}> :point_left: next" in world.command("rotation")
    world.command("start atlas at thu 15:00")
    world.command("start atlas at fri 15:00")  # the order goes on after the turn given back
    assert _presenters(world) == [A, B, A, C]


def test_a_session_ended_at_once_with_no_reply_gives_its_turn_back(world: World) -> None:
    """Started by mistake (the wrong protocol, the wrong day) and ended within the minute,
    before anyone wrote: it was no one's turn."""
    world.command(f"rotation <@{A}> <@{B}> <@{C}>")
    world.command("start atlas")  # A
    world.clock.advance(seconds=40)
    world.command("end")
    assert f"<@{A}> :point_left: next" in world.command("rotation")
    assert f"<@{A}>, ATLAS" not in world.command("status")  # not shown as presented either
    world.command("start tuning")  # A again, and this time it runs
    world.clock.advance(minutes=2)
    world.command("end")
    world.command("start atlas")  # a reply, however quick the end, makes it a turn
    with world.db.session() as s:
        session = s.scalars(select(ProtocolSession).order_by(ProtocolSession.id.desc())).first()
        assert session is not None
        now = world.clock.now()
        s.add(
            Contribution(
                session_id=session.id,
                step_index=1,
                team_id=session.team_id,
                channel_id=session.channel_id,
                user_id=C,
                ts="1.000001",
                thread_ts="1.000000",
                text="Is this a first draft?",
                tag="question",
                created_at=now,
                updated_at=now,
            )
        )
        s.commit()
    world.clock.advance(seconds=20)
    world.command("end")
    world.command("start atlas in 1d")
    assert _presenters(world) == [A, A, B, C]


def test_an_explicit_presenter_takes_their_turn(world: World) -> None:
    world.command(f"rotation <@{A}> <@{B}> <@{C}>")
    world.command(f"start atlas <@{B}> in 1d")  # B goes early
    world.command("start atlas in 2d")
    world.command("start atlas <@U_GUEST> in 3d")  # a guest is outside the rotation
    world.command("start atlas in 4d")
    assert _presenters(world) == [B, C, "U_GUEST", A]


def test_a_new_order_starts_with_whoever_it_lists_first(world: World) -> None:
    world.command(f"rotation <@{A}> <@{B}> <@{C}>")
    world.command("start atlas in 1d")
    world.clock.advance(minutes=1)
    world.command(f"rotation <@{C}> <@{A}> <@{B}>")
    world.command("start atlas in 2d")
    assert _presenters(world) == [A, C]


def test_the_next_presenter_who_left_is_refused(world: World) -> None:
    world.command(f"rotation <@{A}> <@{B}>")
    world.profiles.people[A] = Person(A, None, gone=True, is_bot=False)
    answer = world.command("start atlas in 1d")
    assert "is next in the rotation but has left" in answer and "/protocol rotation" in answer
    assert _presenters(world) == []


def test_a_rotation_listing_an_app_or_someone_who_left_is_refused(world: World) -> None:
    world.profiles.people["U_APP"] = Person("U_APP", None, gone=False, is_bot=True)
    world.profiles.people["U_GONE"] = Person("U_GONE", None, gone=True, is_bot=False)
    answer = world.command(f"rotation <@U_APP> <@{A}> <@U_GONE>")
    assert "didn't save" in answer and "<@U_APP> is an app" in answer
    assert "<@U_GONE> has left" in answer and f"<@{A}>" not in answer
    assert "/protocol rotation @maria" in answer
    assert "no presenter rotation yet" in world.command("rotation")
    world.command(f"rotation <@{A}> <@{B}>")
    assert "didn't save" in world.command(f"rotation <@{B}> <@U_APP>")
    assert f"<@{A}> :point_left: next" in world.command("rotation")  # the order is kept


def test_a_saved_rotation_whose_next_is_an_app_says_so(world: World) -> None:
    world.command(f"rotation <@{A}> <@{B}>")
    world.profiles.people[A] = Person(A, None, gone=False, is_bot=True)
    answer = world.command("start atlas in 1d")
    assert "is next in the rotation but is an app" in answer and "/protocol rotation" in answer


def test_status_shows_who_presents_next_and_who_presented_what(world: World) -> None:
    world.command(f"rotation <@{A}> <@{B}> <@{C}>")
    world.command("start atlas")  # now: A presents
    world.clock.advance(minutes=5)
    world.command("end")
    world.clock.advance(days=1)
    world.command("start tuning in 1d")  # B, scheduled
    status = world.command("status")
    assert f"*Presenting next:* <@{C}>" in status
    assert f"<@{A}>, ATLAS - Learning from Student Work" in status
    assert "#2 Tuning Protocol" in status and "prep not in yet" in status
    world.clock.advance(days=1)
    world.engine.begin(2)
    assert f"<@{B}>, Tuning Protocol" in world.command("status")


def test_each_channel_and_workspace_keeps_its_own_rotation(world: World) -> None:
    world.command(f"rotation <@{A}> <@{B}>")
    assert "no presenter rotation yet" in world.command("rotation", channel="C_OTHER")
    world.command(f"rotation <@{C}>", channel="C_OTHER")
    world.command("start atlas in 1d", channel="C_OTHER")
    world.command("start atlas in 1d")
    assert _presenters(world) == [C, A]


def test_the_migration_adds_and_removes_the_rotation_table(database_url: str) -> None:
    db = Database(database_url)
    try:
        upgrade(db)
        assert current_revision(db) == head_revision()
        assert "presenter_rotations" in inspect(db.engine).get_table_names()
        config = alembic_config(db.url)
        with db.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
        assert "presenter_rotations" not in inspect(db.engine).get_table_names()
        upgrade(db)
        assert "presenter_rotations" in inspect(db.engine).get_table_names()
    finally:
        db.dispose()


def test_e2e_rotation_over_signed_http(bot: Bot) -> None:
    t1, t2, _ = TEACHERS
    refused = message_text(bot.command(f"rotation <@U_BOT|protocolbot> <@{PRESENTER}|maria>"))
    assert "didn't save" in refused and "<@U_BOT> is an app" in refused
    answer = message_text(bot.command(f"rotation <@{PRESENTER}|maria> <@{t1}> <@{t2}>"))
    assert "Saved the presenter rotation" in answer
    assert "scheduled for" in message_text(bot.command("start atlas in 2d"))
    assert "next in the rotation" in message_text(bot.command("start tuning in 3d", user=t2))
    with bot.db.session() as s:
        rows = s.execute(
            select(ProtocolSession.presenter_id, ProtocolSession.facilitator_id).order_by(
                ProtocolSession.id
            )
        ).all()
    assert [tuple(r) for r in rows] == [(PRESENTER, FACILITATOR), (t1, t2)]
    bot.wait_until(lambda: len(bot.posts(f"D{t1[1:]}")) == 1)
    assert "keeps you up at night" in message_text(bot.posts(f"D{t1[1:]}")[0])
    status = message_text(bot.command("status", user=t1))
    assert f"*Presenting next:* <@{t2}>" in status and "prep not in yet" in status
