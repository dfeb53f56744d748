"""A reply's tag reaction goes from the commit that records the reply straight to an outbox
worker, without waiting for the sender's next round to claim it (slack.Handoff).

Each test first lets every post due go out, then makes the sender's rounds a minute apart: what
reaches the stand-in before then was handed over, not claimed by a round.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import SystemClock
from bot.engine.core import Engine
from bot.protocols import load_library
from bot.slack import OutboxSender, enqueue
from bot.slack_standin import SlackStandin
from bot.store.db import Database
from bot.store.models import OutboxMessage
from tests.harness import CHANNEL, PRESENTER, TEACHERS, Bot, wait_until
from tests.test_outbox_faults import _enqueue, _rows, _sender, db  # noqa: F401
from tests.test_processes import _unhandled


def _rounds_a_minute_apart(bot: Bot) -> None:
    bot.settle()  # the step posts are sent and recorded: replies to them can be placed
    bot.runtime.sender.gather = 60.0
    time.sleep(0.5)  # the loop's round under way ends; its next wait is the long one


def _reaction_rows(bot: Bot) -> list[OutboxMessage]:
    with bot.db.session() as s:
        return list(
            s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.method == "reactions.add")
                .order_by(OutboxMessage.id)
            )
        )


def _react(s: Session, sender: OutboxSender, ts: str, channel: str = CHANNEL) -> None:
    """What recording a reply enqueues for its tag, offered to `sender`."""
    enqueue(
        s,
        now=datetime.now(UTC),
        team_id="T_TEAM",
        channel=channel,
        method="reactions.add",
        payload={"channel": channel, "timestamp": ts, "name": "eyes"},
        at_once=True,
        hand_to=sender,
    )


def _open_step(bot: Bot) -> str:
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    return str(bot.step_posts()[1]["ts"])


def test_a_replys_tag_reaction_is_sent_at_its_commit_without_a_round(bot: Bot) -> None:
    describe = _open_step(bot)
    _rounds_a_minute_apart(bot)
    reply = bot.reply(TEACHERS[0], "I see a table with four rows.", describe)
    bot.wait_until(lambda: len(bot.standin.calls_to("reactions.add")) == 1, timeout=3)
    assert bot.standin.calls_to("reactions.add")[0].params["timestamp"] == reply
    (row,) = _reaction_rows(bot)
    # Written claimed; what became of it waits for the next round, as any worker's outcome.
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.in_flight_at is not None
    bot.runtime.sender.drain(5)
    (row,) = _reaction_rows(bot)
    assert row.status == "sent"
    assert len(bot.standin.calls_to("reactions.add")) == 1


def test_a_reaction_in_a_channel_someone_has_waits_for_them_then_goes_without_a_round(
    bot: Bot,
) -> None:
    describe = _open_step(bot)
    _rounds_a_minute_apart(bot)
    sender = bot.runtime.sender
    assert sender.hold(CHANNEL)  # as a transaction handing over a reaction of its own would
    bot.reply(TEACHERS[0], "The second row is blank.", describe)
    bot.wait_until(lambda: _unhandled(bot) == 0 and bot.runtime.inbox.idle(), timeout=5)
    (row,) = _reaction_rows(bot)
    # Written claimed: the channel stays busy until the call's outcome is written back, so no
    # round claims it again.
    assert (row.status, row.attempts) == ("pending", 1) and row.in_flight_at is not None
    sender.dispatch()  # a round leaves the channel to its holder
    assert bot.standin.calls_to("reactions.add") == []  # not while the channel is another's
    sender.let_go(CHANNEL)
    bot.wait_until(lambda: len(bot.standin.calls_to("reactions.add")) == 1, timeout=3)
    sender.drain(5)
    assert [r.status for r in _reaction_rows(bot)] == ["sent"]
    assert len(bot.standin.calls_to("reactions.add")) == 1
    assert sender.hold(CHANNEL)  # and the channel is free again
    sender.let_go(CHANNEL)


def test_a_reply_delivered_again_leaves_its_channel_free(bot: Bot) -> None:
    """A second delivery of a reply (a new event id, the same ts) records nothing and enqueues
    nothing. The reaction's channel is held before the insert finds the reply already there
    (on PostgreSQL the two go in as one statement): it is given back at once, not left busy
    until the next round."""
    describe = _open_step(bot)
    _rounds_a_minute_apart(bot)
    sender = bot.runtime.sender
    reply = bot.reply(TEACHERS[0], "Each column is labelled.", describe)
    bot.wait_until(lambda: len(bot.standin.calls_to("reactions.add")) == 1, timeout=3)
    sender.drain(5)  # the reaction's outcome is written back: the channel is free
    bot.reply(TEACHERS[0], "Each column is labelled.", describe, ts=reply)
    # Stored before its ack, noted handled in (SQLite: after) the transaction that handled it,
    # and out of the lane once that transaction has handed over what it held.
    bot.wait_until(lambda: _unhandled(bot) == 0 and bot.runtime.inbox.idle(), timeout=5)
    assert sender.hold(CHANNEL)  # no worker, and no held call, is on it
    sender.let_go(CHANNEL)
    assert bot.recorded() == [reply]
    assert [r.status for r in _reaction_rows(bot)] == ["sent"]
    assert len(bot.standin.calls_to("reactions.add")) == 1


@contextmanager
def _engine_with_sender(
    db: Database,  # noqa: F811
    workspace: SlackStandin,
    **sender_kw: Any,
) -> Iterator[tuple[Engine, OutboxSender]]:
    """An Engine whose transactions hand calls to a running sender whose rounds are a minute
    apart (its first is over); the sender stops at the end."""
    library, _ = load_library()
    engine = Engine(db, library, SystemClock())
    sender = _sender(db, workspace)
    for name, value in sender_kw.items():
        setattr(sender, name, value)
    sender.gather = 60.0
    sender.start()
    time.sleep(0.5)  # its first round is over; the next is a minute away
    engine.sender = sender
    try:
        yield engine, sender
    finally:
        sender.stop()


@pytest.mark.parametrize("joining", [False, True], ids=["holding", "joining"])
def test_a_unit_of_work_that_fails_lets_its_channel_go_and_sends_nothing(
    db: Database,  # noqa: F811
    workspace: SlackStandin,
    joining: bool,
) -> None:
    with _engine_with_sender(db, workspace) as (engine, sender):
        if joining:
            assert sender.hold(CHANNEL)  # someone has the channel: the transaction joins them
        with pytest.raises(RuntimeError), engine.transaction() as (s, _after):
            _react(s, sender, "1.000001")
            claimed = s.scalars(select(OutboxMessage.in_flight_at)).all()
            assert len(claimed) == 1 and claimed[0] is not None  # held for this transaction
            raise RuntimeError("the reply's handling failed after the reaction was written")
        if joining:
            sender.let_go(CHANNEL)
        # The channel is free again: held (or kept for a joiner gone), it would keep every
        # later row of it from a round.
        assert sender.hold(CHANNEL)
        sender.let_go(CHANNEL)
        sender.drain(3)
    assert _rows(db) == []
    assert workspace.calls_to("reactions.add") == []


def test_a_stopped_sender_takes_nothing_and_the_call_waits_in_the_outbox(
    db: Database,  # noqa: F811
    workspace: SlackStandin,
) -> None:
    library, _ = load_library()
    engine = Engine(db, library, SystemClock())
    sender = _sender(db, workspace).start()
    sender.stop()
    engine.sender = sender
    with engine.transaction() as (s, _after):
        _react(s, sender, "1.000002")
    ((status, attempts),) = [(r.status, r.attempts) for r in _rows(db)]
    assert (status, attempts) == ("pending", 0)
    fresh = _sender(db, workspace)  # the next start's
    try:
        fresh.drain(5)
    finally:
        fresh.stop()
    assert [r.status for r in _rows(db)] == ["sent"]
    assert len(workspace.calls_to("reactions.add")) == 1


def _hand_over_in(
    db: Database,  # noqa: F811
    workspace: SlackStandin,
    channels: list[str],
    **sender_kw: Any,
) -> dict[str, float]:
    """Commit one unit of work that reacts once in each of `channels`; when each call came."""
    with _engine_with_sender(db, workspace, **sender_kw) as (engine, sender):
        with engine.transaction() as (s, _after):
            for channel in channels:
                _react(s, sender, "1.000003", channel)
        wait_until(lambda: len(workspace.calls_to("reactions.add")) == len(channels), timeout=5)
    return {c.params["channel"]: c.at for c in workspace.calls_to("reactions.add")}


def test_a_commits_calls_in_several_channels_go_one_after_another_on_one_worker(
    db: Database,  # noqa: F811
    workspace: SlackStandin,
) -> None:
    """While its calls are quick, one worker makes a commit's calls: one wakeup, not one a
    channel. Each call here takes 0.15 s, so a call made before the last one's answer shows."""
    workspace.fail_next("reactions.add", times=3, delay=0.15)
    at = _hand_over_in(db, workspace, ["C_ONE", "C_TWO", "C_THREE"], spread_after=10.0)
    # In the order they were held, each once the one before was answered.
    assert at["C_TWO"] - at["C_ONE"] >= 0.12 and at["C_THREE"] - at["C_TWO"] >= 0.12, at


def test_once_calls_prove_slow_the_channels_left_get_a_worker_each(
    db: Database,  # noqa: F811
    workspace: SlackStandin,
) -> None:
    workspace.fail_next("reactions.add", times=4, delay=0.25)
    at = _hand_over_in(db, workspace, ["C_ONE", "C_TWO", "C_THREE", "C_FOUR"], spread_after=0.05)
    rest = [at["C_TWO"], at["C_THREE"], at["C_FOUR"]]
    assert min(rest) - at["C_ONE"] >= 0.2, at  # the first call's 0.25 s is over the 0.05 allowed
    # The other three went out together rather than 0.25 s apart.
    assert max(rest) - min(rest) < 0.15, at


def test_a_reaction_committed_while_a_round_is_under_way_is_handed_over(
    db: Database,  # noqa: F811
    workspace: SlackStandin,
) -> None:
    # Rounds come often under load (each writes back what workers did): a reaction turned
    # away during every one went the round's way, half of them at 600 replies a second.
    with _engine_with_sender(db, workspace) as (engine, sender):
        with sender._round:  # a round under way, and none can follow while it is
            with engine.transaction() as (s, _after):
                _react(s, sender, "1.000004")
            wait_until(lambda: len(workspace.calls_to("reactions.add")) == 1, timeout=5)
            ((status, attempts),) = [(r.status, r.attempts) for r in _rows(db)]
            assert (status, attempts) == ("pending", 1)  # written claimed, sent by a worker
        sender.drain(5)
        assert [r.status for r in _rows(db)] == ["sent"]
        assert len(workspace.calls_to("reactions.add")) == 1


def test_a_round_leaves_a_channel_held_since_it_began_to_the_holder(
    db: Database,  # noqa: F811
    workspace: SlackStandin,
) -> None:
    with _engine_with_sender(db, workspace) as (engine, sender):
        with sender._round:
            with engine.transaction() as (s, _after):
                enqueue(
                    s,
                    now=datetime.now(UTC),
                    team_id="T_TEAM",
                    channel=CHANNEL,
                    method="chat.postMessage",
                    payload={"channel": CHANNEL, "text": "a step"},
                )
            (row,) = _rows(db)
            # The round has read the channel's due row; a transaction holds the channel
            # before the round claims it.
            assert sender.hold(CHANNEL)
            with db.session() as s:
                assert sender._claim(s, {CHANNEL: [row.id]}, done=set()) == {}
            ((status, in_flight),) = [(r.status, r.in_flight_at) for r in _rows(db)]
            assert (status, in_flight) == ("pending", None)  # left for a later round
            assert not sender.hold(CHANNEL)  # still the holder's
        sender.let_go(CHANNEL)
        sender.drain(5)
        assert [r.status for r in _rows(db)] == ["sent"]
        assert len(workspace.calls_to("chat.postMessage")) == 1


def _post_now(db: Database, sender: OutboxSender) -> None:  # noqa: F811
    """A step's post, claimed by a round at once: a worker is on the channel while it's sent."""
    _enqueue(db, CHANNEL, ["a step"])
    sender.wake(soon=True)
    wait_until(lambda: CHANNEL in sender._busy, timeout=3)


def test_a_reaction_committed_while_a_worker_is_on_its_channel_is_its_next_call(
    db: Database,  # noqa: F811
    workspace: SlackStandin,
) -> None:
    # 16 replies a second in a channel kept a worker on it much of the time: at 800 replies a
    # second 2,040 of 4,800 reactions went the round's way, waiting for it to read and claim
    # them after the worker's outcome was written back.
    workspace.fail_next("chat.postMessage", delay=0.3)  # a post that takes Slack 0.3 s
    with _engine_with_sender(db, workspace) as (engine, sender):
        _post_now(db, sender)
        with engine.transaction() as (s, _after):
            _react(s, sender, "1.000005")
        reaction = [r for r in _rows(db) if r.method == "reactions.add"]
        assert [(r.status, r.attempts) for r in reaction] == [("pending", 1)]  # written claimed
        # No round comes for a minute: the worker that made the post makes the reaction too.
        wait_until(lambda: len(workspace.calls_to("reactions.add")) == 1, timeout=3)
        (post,) = workspace.calls_to("chat.postMessage")
        assert workspace.calls_to("reactions.add")[0].at >= post.at
        sender.drain(5)
        assert [r.status for r in _rows(db)] == ["sent", "sent"]
        assert len(workspace.calls_to("reactions.add")) == 1
        assert len(workspace.calls_to("chat.postMessage")) == 1


def test_a_reaction_queued_behind_a_call_slack_turned_away_waits_its_turn_and_goes_once(
    db: Database,  # noqa: F811
    workspace: SlackStandin,
) -> None:
    workspace.fail_next("chat.postMessage", status=429, retry_after=1, delay=0.3)
    with _engine_with_sender(db, workspace) as (engine, sender):
        _post_now(db, sender)
        with engine.transaction() as (s, _after):
            _react(s, sender, "1.000006")
        wait_until(lambda: sender._finished, timeout=3)  # the worker is done with the channel
        # The worker left the reaction when Slack asked it to wait.
        assert workspace.calls_to("reactions.add") == []

        def all_sent() -> bool:
            sender.drain(1)  # rounds, while the post waits out Slack's second
            return all(r.status == "sent" for r in _rows(db))

        wait_until(all_sent, timeout=10)
        assert sorted((r.method, r.status) for r in _rows(db)) == [
            ("chat.postMessage", "sent"),
            ("reactions.add", "sent"),
        ]
        assert len(workspace.calls_to("reactions.add")) == 1
        assert [c.status for c in workspace.calls_to("chat.postMessage")] == [429, 200]


def test_a_round_leaves_a_channel_with_joiners_to_them(
    db: Database,  # noqa: F811
    workspace: SlackStandin,
) -> None:
    with _engine_with_sender(db, workspace) as (engine, sender):
        _enqueue(db, CHANNEL, ["a step"])
        (row,) = _rows(db)
        with sender._round:
            assert sender.hold(CHANNEL) and sender.join(CHANNEL)
            sender.let_go(CHANNEL)  # its holder is done; a joiner has yet to commit
            # A round that finds the channel done with (kept for its joiner) claims nothing.
            with db.session() as s:
                assert sender._claim(s, {CHANNEL: [row.id]}, done={CHANNEL}) == {}
            ((status, in_flight),) = [(r.status, r.in_flight_at) for r in _rows(db)]
            assert (status, in_flight) == ("pending", None)
            # Nobody joins it now: a reply every second would keep the post from a round.
            assert not sender.join(CHANNEL)
        sender.leave(CHANNEL)  # the joiner ended with nothing to send
        sender.drain(5)
        assert [r.status for r in _rows(db)] == ["sent"]
        assert len(workspace.calls_to("chat.postMessage")) == 1
