"""The notes already out in Slack (the header's thread, the presenter's copy, the Markdown file)
after the session ended: they follow an edit or a deletion of a reply, and a reply that came
late, as `/protocol notes` and the exports do (over signed HTTP, against the stand-in Slack)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sqlalchemy import select

from bot.export import export
from bot.store.models import OutboxMessage
from tests.harness import CHANNEL, PRESENTER, TEACHERS, Bot, tables_holding
from tests.process import bot_environment, run_cli
from tests.test_forget_user import _forget

DM = f"D{PRESENTER[1:]}"


def _edit(bot: Bot, user: str, ts: str, thread_ts: str, text: str, k: int = 1) -> None:
    """Slack's message_changed event for a reply edited (the `k`th time)."""
    message = {"type": "message", "user": user, "ts": ts, "thread_ts": thread_ts, "text": text}
    edited = {"user": user, "ts": f"{float(ts) + k:.6f}"}
    event = {
        "type": "message",
        "subtype": "message_changed",
        "channel": CHANNEL,
        "message": {**message, "edited": edited},
        "previous_message": {"ts": ts, "thread_ts": thread_ts, "user": user, "text": ""},
        "ts": f"{float(ts) + k:.6f}",
        "hidden": True,
    }
    assert bot.event(event) == 200


def _delete(bot: Bot, user: str, ts: str, thread_ts: str) -> None:
    event = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": CHANNEL,
        "deleted_ts": ts,
        "previous_message": {"ts": ts, "thread_ts": thread_ts, "user": user, "text": "gone"},
        "ts": f"{time.time():.6f}",
        "hidden": True,
    }
    assert bot.event(event) == 200


def _thread(bot: Bot, header_ts: str) -> str:
    return json.dumps([m for m in bot.posts() if m.get("thread_ts") == header_ts])


def _dm(bot: Bot) -> str:
    return json.dumps(bot.standin.messages(DM))


def _files(bot: Bot) -> list[str]:
    return [bytes(f["content"]).decode() for f in bot.standin.files]


def _at_describing(bot: Bot) -> tuple[str, str]:
    """An ATLAS session on hour-long steps, moved on to Describing: its header's ts and the
    step's."""
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    return str(bot.posts()[0]["ts"]), str(bot.step_posts()[1]["ts"])


def _ended(bot: Bot, *replies: str) -> tuple[str, str, list[str]]:
    """An ATLAS session with `replies` in step 1, ended: the step's ts, the header's, the
    replies'."""
    step = bot.open_step()
    header_ts = str(bot.posts()[0]["ts"])
    said = [bot.reply(TEACHERS[n % 3], text, step) for n, text in enumerate(replies)]
    bot.settle()
    bot.command("end")
    bot.settle()
    assert all(text in _thread(bot, header_ts) for text in replies)
    return step, header_ts, said


def test_a_reply_edited_after_the_end_is_edited_in_every_copy_of_the_notes(bot: Bot) -> None:
    step, header_ts, (ts, _other) = _ended(
        bot, "The student drew two graphs.", "Units in every row."
    )
    _edit(bot, TEACHERS[0], ts, step, "The student drew three graphs.")
    bot.settle()
    for shown in (_thread(bot, header_ts), _dm(bot)):
        assert "three graphs" in shown and "two graphs" not in shown
        assert "Units in every row." in shown
    (notes_file,) = _files(bot)
    assert "three graphs" in notes_file and "two graphs" not in notes_file
    # Edited where they were: nothing new was posted for it but the file.
    assert not [m for m in bot.posts() if "more repl" in str(m.get("text"))]


def test_a_reply_deleted_after_the_end_is_gone_from_every_copy_of_the_notes(bot: Bot) -> None:
    step, header_ts, (ts, _other) = _ended(
        bot, "Maria's student Jake wrote this.", "Units in every row."
    )
    _delete(bot, TEACHERS[0], ts, step)
    bot.settle()
    for shown in (_thread(bot, header_ts), _dm(bot), *_files(bot)):
        assert "Jake" not in shown
        assert "Units in every row." in shown
    assert len(_files(bot)) == 1


def test_feedback_edited_warm_or_cool_after_the_end_moves_to_its_kind_in_the_notes(
    bot: Bot,
) -> None:
    # Tuning's feedback step: the notes went out, then a teacher's :snowflake: became :sunny:
    # (and another's the other way). Its words changed in the notes, under Cool feedback still,
    # where "Cool:" edited to "Warm:" moved.
    bot.command(f"start tuning <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    for k in (2, 3, 4):
        bot.command("next")
        bot.wait_until(lambda k=k: len(bot.step_posts()) == k)  # type: ignore[misc]
    header_ts, step = str(bot.posts()[0]["ts"]), str(bot.step_posts()[3]["ts"])
    was = {
        TEACHERS[0]: ":snowflake: The evidence doesn't tie back to the claim",
        TEACHERS[1]: ":sunny: Every row has its units",
    }
    now = {
        TEACHERS[0]: ":sunny: The evidence ties back to the claim in para 2",
        TEACHERS[1]: ":snowflake: Two rows have no units",
    }
    said = {user: bot.reply(user, text, step) for user, text in was.items()}
    bot.settle()
    bot.command("end")
    bot.settle()
    for user, ts in said.items():
        message = {"type": "message", "user": user, "ts": ts, "thread_ts": step}
        edited = {"user": user, "ts": f"{float(ts) + 1:.6f}"}
        event = {
            "type": "message",
            "subtype": "message_changed",
            "channel": CHANNEL,
            "message": {**message, "text": now[user], "edited": edited},
            "previous_message": {**message, "text": was[user]},
            "ts": f"{float(ts) + 1:.6f}",
            "hidden": True,
        }
        assert bot.event(event) == 200
    bot.settle()

    def headed(shown: str, words: str) -> str:
        """The section the words are in: the last of the two headings before them."""
        before = shown[: shown.index(words)]
        return max(("Warm", "Cool"), key=lambda kind: before.rfind(f"{kind} feedback"))

    *_, notes_file = _files(bot)
    for shown in (_thread(bot, header_ts), _dm(bot), notes_file):
        assert headed(shown, "ties back to the claim") == "Warm"
        assert headed(shown, "Two rows have no units") == "Cool"


def test_edits_one_after_another_are_gathered(bot: Bot) -> None:
    step, header_ts, (ts,) = _ended(bot, "Version 0 of what I saw.")
    for k in range(1, 11):
        _edit(bot, TEACHERS[0], ts, step, f"Version {k} of what I saw.", k)
    bot.settle()
    assert "Version 10 of" in _thread(bot, header_ts) and "Version 10 of" in _dm(bot)
    (notes_file,) = _files(bot)
    assert "Version 10 of" in notes_file
    # Not a file shared again for every edit: the channel takes about one a second.
    shared = bot.standin.calls_to("files.completeUploadExternal")
    assert len(shared) < 11, len(shared)


def test_a_late_reply_is_in_the_notes_file(bot: Bot) -> None:
    step = bot.open_step()
    written = f"{time.time():.6f}"
    bot.wait_until(lambda: time.time() > float(written) + 0.01)
    bot.command("end")
    bot.settle()
    bot.reply(TEACHERS[0], "Last thought: ask them first.", step, ts=written)
    bot.settle()
    (notes_file,) = _files(bot)
    assert "Last thought: ask them first." in notes_file


def test_notes_that_shrink_after_the_end_lose_their_extra_parts(bot: Bot) -> None:
    words = "the student wrote the equation again beside the table, " * 40
    replies = [f"Reply {n:03d}: {words}" for n in range(30)]
    step, header_ts, said = _ended(bot, *replies)
    before = len([m for m in bot.posts() if m.get("thread_ts") == header_ts])
    assert before > 2, "long enough to be split"
    for n, ts in enumerate(said[1:], start=1):
        _delete(bot, TEACHERS[n % 3], ts, step)
    bot.settle(30)
    thread = [m for m in bot.posts() if m.get("thread_ts") == header_ts]
    # The parts the notes no longer need are deleted.
    assert len(thread) == 1, [m["text"] for m in thread]
    for shown in (json.dumps(thread), _dm(bot), *_files(bot)):
        assert "Reply 000" in shown and "Reply 001" not in shown and "Reply 029" not in shown


def test_an_edit_in_long_notes_edits_only_the_part_that_holds_it(bot: Bot) -> None:
    words = "the student wrote the equation again beside the table, " * 40
    replies = [f"Reply {n:03d}: {words}" for n in range(30)]
    step, header_ts, said = _ended(bot, *replies)
    assert len([m for m in bot.posts() if m.get("thread_ts") == header_ts]) > 2
    before = len(bot.standin.calls_to("chat.update"))
    # A word fixed (as long as it was: the parts keep their replies).
    fixed = f"Reply 000: {words.replace('equation', 'formulae', 1)}"
    _edit(bot, TEACHERS[0], said[0], step, fixed)
    bot.settle()
    # One part in the thread, one in the presenter's copy: Slack takes about 50 edits a minute.
    assert len(bot.standin.calls_to("chat.update")) - before == 2
    assert "formulae" in _thread(bot, header_ts) and "formulae" in _dm(bot)


def test_a_late_reply_deleted_is_gone_from_its_word_below_the_notes(bot: Bot) -> None:
    # It reached the bot after the notes went out, and was added below them as one more reply
    # (in the header's thread and to the presenter); deleted since, that word stayed.
    step = bot.open_step()
    header_ts = str(bot.posts()[0]["ts"])
    bot.reply(TEACHERS[1], "On time: two drafts.", step)
    written = [f"{time.time() - n / 1000:.6f}" for n in range(2)]
    bot.wait_until(lambda: time.time() > float(written[0]) + 0.01)
    bot.settle()
    bot.command("end")
    bot.settle()
    bot.reply(TEACHERS[0], "Late: Jake's name is on page 2.", step, ts=written[0])
    bot.settle()
    assert "Jake" in _thread(bot, header_ts) and "Jake" in _dm(bot)
    _delete(bot, TEACHERS[0], written[0], step)
    bot.settle()
    for shown in (_thread(bot, header_ts), _dm(bot), *_files(bot)):
        assert "Jake" not in shown and "two drafts" in shown
    # The word that held it alone is gone with it.
    assert not [m for m in bot.posts() if "more repl" in str(m.get("text"))]
    assert not [m for m in bot.standin.messages(DM) if "more repl" in str(m.get("text"))]


def test_forget_after_late_replies_and_edits_leaves_no_copy_of_them(bot: Bot) -> None:
    # The presenter's copy of a late reply's word kept its words after the forget: its rows
    # were not counted as the session's.
    step = bot.open_step()
    secret = "Kept-in-at-lunch-Jake"
    written = f"{time.time():.6f}"
    bot.wait_until(lambda: time.time() > float(written) + 0.01)
    bot.command("end")
    bot.settle()
    bot.reply(TEACHERS[0], f"Late: {secret} wrote it.", step, ts=written)
    bot.settle()
    _edit(bot, TEACHERS[0], written, step, f"Late: {secret} wrote it twice.")
    bot.settle()
    assert "Deleted 1 stored reply" in bot.command("forget")["text"]
    bot.settle()
    assert tables_holding(bot, secret) == []


def test_forget_user_deletes_one_person_s_replies_in_every_session_and_in_the_notes_out(
    bot: Bot,
) -> None:
    # A teacher asks for their words to be deleted: `/protocol forget` took a channel's last
    # session whole, and an older session or one person's replies only by SQL.
    secret = "Jake-from-period-3"
    _step, header_ts, _said = _ended(bot, f"{secret} wrote two graphs.", "Units in every row.")
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    # Its ts written back: a reply before that waits for the clock's next sweep (NotYet).
    bot.runtime.sender.drain(5)
    bot.reply(TEACHERS[0], f"{secret} again, in the next session.", bot.step_posts()[-1]["ts"])
    bot.reply(TEACHERS[1], "Crossed out twice.", bot.step_posts()[-1]["ts"])
    bot.wait_until(lambda: len(bot.recorded()) == 4)
    bot.settle()
    env = bot_environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET="signing",
        DATABASE_URL=bot.settings.database_url,
    )
    done = run_cli(["forget-user", TEACHERS[0]], env, Path.cwd())
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        f"deleted 2 replies by {TEACHERS[0]} in 2 sessions; the running bot edits the notes it "
        "posted in Slack to match\n"
    )
    # The running bot edits the notes already out, as for a reply deleted in Slack.
    bot.wait_until(lambda: secret not in _thread(bot, header_ts) + _dm(bot))
    bot.settle()
    for shown in (_thread(bot, header_ts), _dm(bot), *_files(bot)):
        assert secret not in shown
        assert "Units in every row." in shown
    assert tables_holding(bot, secret) == []
    # Nor the name Slack gave them, kept with each reply for the exports.
    assert tables_holding(bot, "teacher1") == []
    assert "contributions" in tables_holding(bot, "Crossed out twice.")
    again = run_cli(["forget-user", TEACHERS[0]], env, Path.cwd())
    assert again.stdout == f"no replies by {TEACHERS[0]} are kept in this database\n"
    refused = run_cli(["forget-user", "@maria"], env, Path.cwd())
    assert refused.returncode == 2
    assert "expected a Slack member id like U0123ABCD, got '@maria'" in refused.stderr


def test_forget_user_takes_their_parked_reply_out_of_the_step_that_listed_it(bot: Bot) -> None:
    # Their interpretation, parked while the group described, was quoted in the interpreting
    # step's message, and stayed there for the channel to read after `forget-user`.
    secret = "Jake-from-period-3"
    _header_ts, describe = _at_describing(bot)
    bot.reply(TEACHERS[0], f"I: {secret} probably guessed", describe)
    bot.reply(TEACHERS[1], "I: the units row was copied", describe)
    bot.settle()
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 3)
    bot.settle()
    assert secret in json.dumps(bot.step_posts()[2])
    env = bot_environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET="signing",
        DATABASE_URL=bot.settings.database_url,
    )
    done = run_cli(["forget-user", TEACHERS[0]], env, Path.cwd())
    assert (done.returncode, done.stderr) == (0, "")
    bot.wait_until(lambda: secret not in json.dumps(bot.step_posts()[2]))
    interpreting = json.dumps(bot.step_posts()[2])
    assert "the units row was copied" in interpreting and "Next step" in interpreting


def test_forget_user_leaves_no_copy_of_their_parked_reply_in_the_steps_posted(bot: Bot) -> None:
    # The interpreting step's message went out quoting their parked interpretation, and again
    # when the step closed: after `forget-user` Slack showed it without them, but the outbox
    # kept both messages as sent, their words in them, in the database.
    secret = "Jake-from-period-3"
    _header_ts, describe = _at_describing(bot)
    bot.reply(TEACHERS[0], f"I: {secret} probably guessed", describe)
    bot.reply(TEACHERS[1], "I: the units row was copied", describe)
    bot.settle()
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 3)
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 4)
    bot.settle()
    assert "outbox" in tables_holding(bot, secret)
    env = bot_environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET="signing",
        DATABASE_URL=bot.settings.database_url,
    )
    done = run_cli(["forget-user", TEACHERS[0]], env, Path.cwd())
    assert (done.returncode, done.stderr) == (0, "")
    # The step's message shown again without them, still to send then, goes out.
    bot.wait_until(lambda: secret not in json.dumps(bot.step_posts()[2]))
    interpreting = json.dumps(bot.step_posts()[2])
    assert "the units row was copied" in interpreting and "Next step" not in interpreting
    bot.settle()
    assert tables_holding(bot, secret) == []
    # The session runs on: the open step's message is still edited as it moves.
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 5)
    assert "Next step" not in json.dumps(bot.step_posts()[3])


def test_a_presenter_note_edited_after_the_end_is_edited_in_their_copy_alone(bot: Bot) -> None:
    # The group's notes file was shared again in the header's thread (the old one deleted) for
    # an edit of words it never held: the presenter's private note from a listening step.
    header_ts, describing = _at_describing(bot)
    note = bot.reply(PRESENTER, "Ask them about the calculator rule", describing)
    bot.reply(TEACHERS[0], "The table has four rows.", describing)
    bot.settle()
    bot.command("end")
    bot.settle()
    assert "calculator rule" in _dm(bot)
    _edit(bot, PRESENTER, note, describing, "Ask them about the ruler rule")
    bot.settle()
    assert "ruler rule" in _dm(bot) and "calculator rule" not in _dm(bot)
    assert "ruler rule" not in _thread(bot, header_ts)
    (notes_file,) = _files(bot)
    assert "four rows" in notes_file and "rule" not in notes_file
    assert len(bot.standin.calls_to("files.completeUploadExternal")) == 1
    assert bot.standin.calls_to("files.delete") == []


def test_a_presenter_note_that_came_late_is_in_their_copy(bot: Bot) -> None:
    # Written while they listened, delivered after the end (Slack's retry): it was recorded,
    # and `/protocol notes` showed it them, but the copy they were sent went without it.
    header_ts, describing = _at_describing(bot)
    written = f"{time.time():.6f}"
    bot.wait_until(lambda: time.time() > float(written) + 0.01)
    bot.command("end")
    bot.settle()
    bot.reply(PRESENTER, "Ask them about the calculator rule", describing, ts=written)
    bot.settle()
    assert "calculator rule" in _dm(bot)
    assert "calculator rule" not in _thread(bot, header_ts)
    assert not [m for m in bot.posts() if "more repl" in str(m.get("text"))]
    assert len(bot.standin.calls_to("files.completeUploadExternal")) == 1


def test_notes_of_a_session_ended_early_say_at_which_step(bot: Bot) -> None:
    # Ended at step 2 of 6 with `/protocol end`, the notes read like a whole session's: the
    # presenter could not tell why there was no reflection or debrief in them.
    step, header_ts, _said = _ended(bot, "The student drew two graphs.")
    for shown in (_thread(bot, header_ts), _dm(bot), *_files(bot)):
        assert "ended early, at step 1 of 6" in shown, shown
    assert "ended early, at step 1 of 6" in export(bot.settings, "latest", "md")


def test_notes_of_a_session_run_to_its_end_say_nothing_of_ending_early(bot: Bot) -> None:
    bot.open_step()
    header_ts = str(bot.posts()[0]["ts"])
    for k in range(2, 7):
        bot.command("next")
        bot.wait_until(lambda k=k: len(bot.step_posts()) == k)
    bot.command("next")
    bot.settle()
    assert "Notes from" in _thread(bot, header_ts)
    for shown in (_thread(bot, header_ts), _dm(bot), *_files(bot)):
        assert "ended early" not in shown


def _outbox_sent(bot: Bot) -> bool:
    with bot.db.session() as s:
        pending = select(OutboxMessage).where(OutboxMessage.status == "pending")
        return s.scalars(pending).first() is None


def test_forget_user_drops_an_edit_of_a_step_still_to_send_that_quoted_them(bot: Bot) -> None:
    # The interpreting step's edit as it closed, quoting their parked reply, was held back by
    # Slack (a rate limit) when forget-user ran: it went out later with their words, before
    # the message shown again without them, and stayed in the outbox as sent.
    secret = "Jake-from-period-3"
    _header_ts, describe = _at_describing(bot)
    bot.reply(TEACHERS[0], f"I: {secret} probably guessed", describe)
    bot.reply(TEACHERS[1], "I: the units row was copied", describe)
    bot.settle()
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 3)
    bot.settle()
    bot.standin.fail_next(
        "chat.update", status=429, retry_after=10, where=lambda p: secret in json.dumps(p)
    )
    bot.command("next")
    bot.wait_until(lambda: bot.standin.faults_left("chat.update") == 0)
    held = len(bot.standin.calls)
    _forget(bot, TEACHERS[0])
    bot.wait_until(lambda: len(bot.step_posts()) == 4)
    bot.wait_until(lambda: _outbox_sent(bot))
    bot.settle()
    assert [c.method for c in bot.standin.calls[held:] if secret in json.dumps(c.params)] == []
    interpreting = json.dumps(bot.step_posts()[2])
    assert secret not in interpreting and "the units row was copied" in interpreting
    assert "Next step" not in interpreting
    assert tables_holding(bot, secret) == []


def test_forget_user_takes_their_words_out_of_a_step_post_still_to_send(bot: Bot) -> None:
    # The interpreting step's post, listing their parked reply, was held back by Slack (a rate
    # limit) when forget-user ran: it went out with their words, then was edited without them,
    # and the outbox kept it as sent, words and all.
    secret = "Jake-from-period-3"
    _header_ts, describe = _at_describing(bot)
    bot.reply(TEACHERS[0], f"I: {secret} probably guessed", describe)
    bot.reply(TEACHERS[1], "I: the units row was copied", describe)
    bot.settle()
    bot.standin.fail_next(
        "chat.postMessage", status=429, retry_after=10, where=lambda p: secret in json.dumps(p)
    )
    bot.command("next")
    bot.wait_until(lambda: bot.standin.faults_left("chat.postMessage") == 0)
    held = len(bot.standin.calls)
    _forget(bot, TEACHERS[0])
    bot.wait_until(lambda: _outbox_sent(bot))
    bot.settle()
    assert [c.method for c in bot.standin.calls[held:] if secret in json.dumps(c.params)] == []
    interpreting = json.dumps(bot.step_posts()[2])
    assert secret not in interpreting and "the units row was copied" in interpreting
    assert tables_holding(bot, secret) == []
    # The session runs on: the step's message is edited as it closes.
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 4)
    bot.wait_until(lambda: "Next step" not in json.dumps(bot.step_posts()[2]))
