"""What the team wrote, as the bot shows it again: in the notes, a step's parked lists, the
presenter's copy and private notes, and the exports (over signed HTTP, against the stand-in)."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bot.cli import main
from bot.export import export
from bot.slack_standin import SlackStandin
from bot.store.models import ProtocolSession
from tests.harness import CHANNEL, PRESENTER, TEACHERS, Bot
from tests.process import SETTINGS_NAMES

T1, T2, T3 = TEACHERS

# `@word` as Slack would read it in a mrkdwn text object: a mention of that name, or of everyone.
_PINGS = re.compile(r"(?<![\w@])@(channel|here|everyone|teacher2|math-team|lee)\b")


def _texts(messages: list[dict[str, Any]]) -> list[str]:
    """Every piece of mrkdwn the messages show: their text and their blocks' text."""
    shown = []
    for message in messages:
        shown.append(str(message.get("text") or ""))
        for block in message.get("blocks") or []:
            if block["type"] in ("section", "header"):
                shown.append(block["text"]["text"])
            elif block["type"] == "context":
                shown.extend(e.get("text", "") for e in block["elements"])
    return shown


def _to_step(bot: Bot, step: int) -> str:
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    for k in range(2, step + 1):
        bot.command("next")
        bot.wait_until(lambda k=k: len(bot.step_posts()) == k)  # type: ignore[misc]
    return str(bot.step_posts()[step - 1]["ts"])


def _say(bot: Bot, thread: str, said: dict[str, str]) -> None:
    """Each person's reply in the thread, recorded."""
    for user, text in said.items():
        bot.reply(user, text, thread)
    bot.wait_until(lambda: len(bot.recorded()) == len(said))


def _ended(bot: Bot) -> None:
    bot.command("end")
    bot.wait_until(lambda: any("Notes from" in str(m.get("text")) for m in bot.posts()))
    bot.settle()


def test_mentions_and_broadcasts_quoted_back_ping_nobody_again(bot: Bot) -> None:
    describe = _to_step(bot, 2)
    said = {
        T1: "I: <!channel> she might be guessing, ask <@U_T2|teacher2>",
        T2: "<!here> the title is underlined, as <!subteam^S1|@math-team> said",
        T3: "Obs: <!everyone> look at (<@U_T3|lee>) the margin",
        PRESENTER: "<!channel> remember to ask about the second draft",
    }
    _say(bot, describe, said)
    bot.command("next")  # step 3 lists the parked interpretation
    bot.wait_until(lambda: len(bot.step_posts()) == 3)
    _ended(bot)  # the presenter's copy has the notes they kept while listening

    channel, dm = bot.posts(), bot.standin.messages(f"D{PRESENTER[1:]}")
    shown = _texts(channel) + _texts(dm) + _texts(bot.standin.ephemerals(CHANNEL))
    pinging = [text for text in shown if _PINGS.search(text)]
    assert not pinging
    # The words are all there to read, the @ included.
    everything = "\n".join(shown).replace("\u200b", "")
    for words in ("@channel she might", "@here the title", "@everyone look at (@lee)"):
        assert words in everything
    assert "@math-team said" in everything and "ask @teacher2" in everything
    assert "@channel remember to ask" in "\n".join(_texts(dm)).replace("\u200b", "")
    parked = "\n".join(_texts([bot.step_posts()[2]])).replace("\u200b", "")
    assert "@channel she might be guessing" in parked


def test_a_mention_slack_sends_by_id_alone_keeps_the_name_people_saw(bot: Bot) -> None:
    describe = _to_step(bot, 2)
    # Slack's message events name nobody: <@U123>, not <@U123|lee>; <#C123|>, not <#C123|math>.
    bot.reply(T1, "Like <@U_T2> said in <#C_TEAM|>, and <@U_GONE> in <#C_SECRET|>", describe)
    bot.wait_until(lambda: len(bot.recorded()) == 1)
    bot.reply(T2, "I agree with <@U_T1>", describe)
    bot.wait_until(lambda: len(bot.recorded()) == 2)
    _ended(bot)

    notes = "\n".join(_texts([m for m in bot.posts() if m.get("thread_ts")]))
    notes = notes.replace("\u200b", "")
    assert "Like @teacher2 said in #team, and @someone in a channel" in notes
    assert "I agree with @teacher1" in notes
    assert "U_GONE" not in notes and "C_SECRET" not in notes


def test_while_slack_leaves_a_name_unanswered_the_next_replies_do_not_wait_on_theirs(
    bot: Bot,
) -> None:
    # Each new author's name was asked of Slack as their reply was handled: while Slack did not
    # answer, every reply (and those queued behind it in its lane) waited a second for nothing.
    step = bot.open_step()
    # The start's own work after its ack (who is in the channel, and who they are) is done
    # first: under load it asked users.info after the faults were set, and took one of them.
    bot.settle()
    bot.standin.fail_next("users.info", delay=3.0, times=3)  # longer than the bot waits
    replies = [
        bot.reply(user, f"Reply {n}: four columns.", step) for n, user in enumerate(TEACHERS)
    ]
    bot.wait_until(lambda: sorted(bot.recorded()) == sorted(replies))
    assert bot.standin.faults_left("users.info") == 2  # asked once, then left be a while


def test_someone_who_wrote_nothing_is_named_after_a_restart_too(
    workspace: SlackStandin, database_url: str
) -> None:
    # Their names were kept in the process's memory: a session that ended after a restart (a
    # deploy in a week of day-long steps) named them by their Slack ids.
    first = Bot(workspace, database_url).start()
    try:
        first.command(f"start atlas <@{PRESENTER}> step 1d")
        first.wait_until(lambda: bool(first.step_posts()))
        first.settle()
    finally:
        first.stop()
    second = Bot(workspace, database_url).start()
    try:
        second.command("end")
        second.wait_until(lambda: second.standin.files)
        uploaded = second.standin.files[0]["content"].decode().splitlines()
        exported = export(second.settings, "latest", "md").splitlines()
        for notes in (uploaded, exported):
            assert "- Presenter: maria" in notes and "- Facilitator: dana" in notes
    finally:
        second.stop()


def test_the_notes_name_their_authors_and_keep_a_replys_lines_in_its_item(bot: Bot) -> None:
    bot.reply(PRESENTER, "Graph the survey results", _to_step(bot, 1))
    bot.wait_until(lambda: len(bot.recorded()) == 1)
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    describe = str(bot.step_posts()[1]["ts"])
    # Slack sends a list typed in a reply as lines that open with a bullet.
    lines = "The title is underlined\n• The axes have no labels\n\n• The key is missing"
    bot.reply(T1, lines, describe)
    bot.wait_until(lambda: len(bot.recorded()) == 2)
    bot.reply(T2, "# of graphs with a title: 4", describe)  # a count, not a heading
    bot.wait_until(lambda: len(bot.recorded()) == 3)
    _ended(bot)

    bot.wait_until(lambda: bot.standin.files)
    uploaded = bot.standin.files[0]["content"].decode()
    # The facilitator wrote nothing: the file names them as Slack did when the session was
    # started, and so does the operator's export.
    exported = export(bot.settings, "latest", "md")
    assert "- Facilitator: dana" in uploaded.splitlines()
    assert "- Facilitator: dana" in exported.splitlines()
    for notes in (uploaded, exported):
        lines = notes.splitlines()
        assert "- Presenter: maria" in lines
        item = lines.index("- The title is underlined  ")
        assert lines[item : item + 4] == [
            "- The title is underlined  ",
            "  • The axes have no labels  ",
            "    ",
            "  • The key is missing (teacher1)",
        ]
        assert "- Graph the survey results (maria)" in lines
        assert "- \\# of graphs with a title: 4 (teacher2)" in lines
    exported = json.loads(export(bot.settings, "latest", "json"))
    names = ["maria", "teacher1", "teacher2"]
    assert [c["user_name"] for c in exported["contributions"]] == names
    # In Slack, the reply's own bullets sit under its item, not as other items of the notes.
    in_slack = "\n".join(_texts([m for m in bot.posts() if m.get("thread_ts")]))
    assert (
        "• The title is underlined\n\u2003• The axes have no labels\n\n"
        "\u2003• The key is missing - <@U_T1>"
    ) in in_slack


def test_a_reply_that_ends_in_a_code_block_keeps_its_author_out_of_the_code(bot: Bot) -> None:
    # In the notes file the author's name followed the closing ```: a fence with words after it
    # closes nothing, and the name showed as the last line of the code.
    describe = _to_step(bot, 2)
    bot.reply(T1, "She wrote:\n```\nx = 3/4\n```", describe)
    bot.wait_until(lambda: len(bot.recorded()) == 1)
    _ended(bot)
    bot.wait_until(lambda: bot.standin.files)
    for written in (bot.standin.files[0]["content"].decode(), export(bot.settings, "latest", "md")):
        lines = written.splitlines()
        item = lines.index("- She wrote:  ")
        assert [line.rstrip() for line in lines[item : item + 5]] == [
            "- She wrote:",
            "  ```",
            "  x = 3/4",
            "  ```",
            "  (teacher1)",
        ]


def test_a_reply_that_quotes_the_student_keeps_its_own_words_and_author_out_of_the_quote(
    bot: Bot,
) -> None:
    # Teachers quote the student's words (`> `, which Slack sends as `&gt; `). The author's name
    # after a quote on the last line showed inside the quote, as if the student had written it;
    # in the notes file, every line after a quote (the name too) joined the quote.
    describe = _to_step(bot, 2)
    bot.reply(T1, "She wrote:\n&gt; 5/8 is bigger\n&gt; because 5 &gt; 3\nNo drawing.", describe)
    bot.wait_until(lambda: len(bot.recorded()) == 1)
    bot.reply(T2, "The last line:\n&gt; I checked it", describe)
    bot.wait_until(lambda: len(bot.recorded()) == 2)
    _ended(bot)
    in_slack = "\n".join(_texts([m for m in bot.posts() if m.get("thread_ts")]))
    assert (
        "• She wrote:\n&gt; 5/8 is bigger\n&gt; because 5 &gt; 3\n\u2003No drawing. - <@U_T1>"
    ) in in_slack
    assert "• The last line:\n&gt; I checked it\n\u2003 - <@U_T2>" in in_slack
    bot.wait_until(lambda: bot.standin.files)
    for written in (bot.standin.files[0]["content"].decode(), export(bot.settings, "latest", "md")):
        lines = [line.rstrip() for line in written.splitlines()]
        item = lines.index("- She wrote:")
        assert lines[item : item + 9] == [
            "- She wrote:",
            "  > 5/8 is bigger",
            "  > because 5 > 3",
            "",
            "  No drawing. (teacher1)",
            "- The last line:",
            "  > I checked it",
            "",
            "  (teacher2)",
        ]


def test_words_in_angle_brackets_stay_words_in_the_notes_file(bot: Bot) -> None:
    # A computer science team's replies name tags (`<div>`), a math team's compare (`a<b and
    # b>c`): a Markdown viewer read them as HTML, and showed nothing of them (or hid the rest of
    # the file in an unclosed `<details>`). Written as code, they are code already.
    describe = _to_step(bot, 2)
    said = [
        "Her <div> tags are never closed, and <details> is misspelt",
        "He wrote a<b and b>c, then </3",
        "She typed `<br>` and\n```\n<p>hello</p>\n```",
    ]
    for n, text in enumerate(said):
        bot.reply(TEACHERS[n], text.replace("<", "&lt;").replace(">", "&gt;"), describe)
        bot.wait_until(lambda n=n: len(bot.recorded()) == n + 1)  # type: ignore[misc]
    _ended(bot)
    bot.wait_until(lambda: bot.standin.files)
    for written in (bot.standin.files[0]["content"].decode(), export(bot.settings, "latest", "md")):
        lines = [line.rstrip() for line in written.splitlines()]
        assert (
            "- Her \\<div> tags are never closed, and \\<details> is misspelt (teacher1)" in lines
        )
        assert "- He wrote a\\<b and b>c, then \\</3 (teacher2)" in lines
        item = lines.index("- She typed `<br>` and")
        assert lines[item : item + 5] == [
            "- She typed `<br>` and",
            "  ```",
            "  <p>hello</p>",
            "  ```",
            "  (teacher3)",
        ]


def test_bold_and_struck_words_in_slack_stay_so_in_the_notes_file(bot: Bot) -> None:
    # Slack's *bold* is Markdown's italics: a teacher's bold showed in italics in the notes file,
    # and ~struck~ words as written, tildes and all. Code and links are shown as written.
    describe = _to_step(bot, 2)
    said = [
        "The *thesis* is _clear_ but ~wrong~, (*twice*) and _*both*_",
        "Kept: `*as code*`, <https://example.org/files/*draft*/page>, 5 * 3 and 2*3*4",
        "*Her words:*\n```\n*stays*\n```",
    ]
    for n, text in enumerate(said):
        bot.reply(TEACHERS[n], text, describe)
        bot.wait_until(lambda n=n: len(bot.recorded()) == n + 1)  # type: ignore[misc]
    _ended(bot)
    bot.wait_until(lambda: bot.standin.files)
    for written in (bot.standin.files[0]["content"].decode(), export(bot.settings, "latest", "md")):
        lines = [line.rstrip() for line in written.splitlines()]
        said = "- The **thesis** is _clear_ but ~~wrong~~, (**twice**) and _**both**_ (teacher1)"
        assert said in lines
        assert (
            "- Kept: `*as code*`, https://example.org/files/*draft*/page, 5 * 3 and 2*3*4"
            " (teacher2)"
        ) in lines
        item = lines.index("- **Her words:**")
        assert lines[item : item + 5] == [
            "- **Her words:**",
            "  ```",
            "  *stays*",
            "  ```",
            "  (teacher3)",
        ]


def test_the_notes_say_what_work_the_team_looked_at(bot: Bot) -> None:
    # The record of a session: what the student was asked to do, and where the work is, as the
    # presenter gave them in their prep.
    statement = "Explain why <the seasons> change.\nOne paragraph & a diagram."
    link = "https://docs.example/work?a=1&b=2"
    step = _to_step(bot, 1)
    with bot.db.session() as s:
        prep = {"reason": "wondering", "link": link, "deidentified": True}
        s.execute(update(ProtocolSession).values(statement=statement, prep=prep))
    bot.reply(T1, "Two diagrams, one labelled.", step)
    bot.wait_until(lambda: len(bot.recorded()) == 1)
    _ended(bot)
    notes = next(m for m in bot.posts() if str(m.get("text")).startswith("Notes from"))
    shown = "\n".join(_texts([notes]))
    assert (
        "*The assignment, in the presenter's words:*\n"
        ">Explain why &lt;the seasons&gt; change.\n>One paragraph &amp; a diagram."
    ) in shown
    assert "<https://docs.example/work?a=1&amp;b=2|The student work>" in shown
    bot.wait_until(lambda: bot.standin.files)
    for written in (bot.standin.files[0]["content"].decode(), export(bot.settings, "latest", "md")):
        lines = written.splitlines()
        # A < that would open HTML in a Markdown viewer is written \< (it shows as typed).
        assert (
            "- The assignment, in the presenter's words: Explain why \\<the seasons> change.  "
            in lines
        )
        assert "  One paragraph & a diagram." in lines
        assert f"- The student work: {link}" in lines
    exported = json.loads(export(bot.settings, "latest", "json"))["session"]
    assert (exported["statement"], exported["link"]) == (statement, link)


def _whole_markup(section: str) -> bool:
    """No `<...>` and no `&amp;`-style escape cut in two at either end of a section."""
    opened = section.count("<") == section.count(">")
    escapes = re.sub(r"&(amp|lt|gt);", "", section)
    return opened and "&" not in escapes


def test_a_long_link_or_markup_is_never_cut_between_two_parts_of_the_notes(bot: Bot) -> None:
    describe = _to_step(bot, 2)
    link = "https://docs.example.org/d/" + "a1B2c3D4e5" * 190
    said = {
        # A link too long to end the part it starts in: it goes whole to the next one.
        T1: "See the rubric " + "and the student work " * 40 + link + " for the scoring",
        # One word longer than a part, of escapes: cut, but never inside one (Slack sends a
        # typed &, < and > as these).
        T2: "x&amp;y&lt;z&gt;" * 700,
    }
    for user, text in said.items():
        bot.reply(user, text, describe)
        bot.wait_until(lambda user=user: len(bot.recorded()) == list(said).index(user) + 1)  # type: ignore[misc]
    _ended(bot)

    header_ts = str(bot.posts()[0]["ts"])
    parts = [m for m in bot.posts() if m.get("thread_ts") == header_ts]
    sections = [b["text"]["text"] for m in parts for b in m["blocks"] if b["type"] == "section"]
    assert len(sections) > 3, "long enough to be split"
    assert all(_whole_markup(section) for section in sections), [s[-40:] for s in sections]
    assert any(link in section for section in sections)


# Slack's inline markup, whole: bold, italics, strikethrough and code, each within one line.
_SPAN = re.compile(r"\*[^*\n]+\*|_[^_\n]+_|~[^~\n]+~|`[^`\n]+`")


def test_a_long_paragraph_is_never_cut_inside_its_bold_italics_or_code(bot: Bot) -> None:
    # A reflection pasted as one paragraph, longer than a block holds, with words marked all
    # through it: cut at a space inside a marked phrase, each part showed its half of the
    # phrase between a stray `*` (or `_`, `~`, `` ` ``) and the end of the part.
    describe = _to_step(bot, 2)
    marked = ("*the table has units* ", "_every row adds up_ ", "~not quite~ ", "`x = 3 y` ")
    bot.reply(T1, "Obs: " + "".join(marked) * 80, describe)
    bot.wait_until(lambda: len(bot.recorded()) == 1)
    _ended(bot)

    header_ts = str(bot.posts()[0]["ts"])
    parts = [m for m in bot.posts() if m.get("thread_ts") == header_ts]
    sections = [b["text"]["text"] for m in parts for b in m["blocks"] if b["type"] == "section"]
    body = [s for s in sections if "the table has units" in s]
    assert len(body) > 1, "long enough to be split"
    unmarked = [re.sub(r"<[^<>]*>", "", _SPAN.sub("", s)) for s in body]  # and the author
    stray = [s[-60:] for s in unmarked if re.search(r"[*_~`]", s)]
    assert not stray
    assert sum(s.count("*the table has units*") for s in body) == 80


def test_the_csv_export_opens_in_a_spreadsheet_as_written_and_runs_nothing(
    bot: Bot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: Any
) -> None:
    describe = _to_step(bot, 2)
    said = [
        '=HYPERLINK("https://evil.example","click")',
        "+1 to the axes",
        "-the key is missing",
        "<@U_T3> look at the margin",
        "الطالب كتب 🎉 三次",
    ]
    for n, text in enumerate(said):
        bot.reply(TEACHERS[n % 3], text, describe, ts=f"{1900000000 + n}.000100")
    bot.wait_until(lambda: len(bot.recorded()) == len(said))
    # `protocolbot export` as an operator runs it, in a folder without a .env file.
    monkeypatch.chdir(tmp_path)
    for name in SETTINGS_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", bot.settings.database_url)

    def exported(*options: str) -> bytes:
        assert main(["export", "latest", "--format", "csv", *options]) == 0
        return bytes(capsysbinary.readouterr().out)

    written = exported()
    # A byte order mark first, or Excel reads UTF-8 as the machine's code page.
    assert written.startswith(b"\xef\xbb\xbfstep,")
    rows = list(csv.DictReader(io.StringIO(written.decode("utf-8-sig"))))
    assert [row["text"] for row in rows] == [
        '\'=HYPERLINK("https://evil.example","click")',
        "'+1 to the axes",
        "'-the key is missing",
        "'@teacher3 look at the margin",
        "الطالب كتب 🎉 三次",
    ]
    assert exported("--no-bom") == written.removeprefix(b"\xef\xbb\xbf")


def test_the_csv_keeps_each_replys_slack_ts_whole_in_a_spreadsheet(bot: Bot) -> None:
    # A reply's ts (1796639254.123456, sixteen digits) opened in a spreadsheet as a number, which
    # keeps fifteen: the cell showed 1.79664E+09, and the last digit was gone from it for good,
    # so no one could find the reply by it. It shows as text, whole, as a formula-like cell does.
    describe = _to_step(bot, 2)
    ts = f"{int(time.time()) + 1}.123456"
    bot.reply(T1, "The graph has no labels.", describe, ts=ts)
    bot.wait_until(lambda: len(bot.recorded()) == 1)
    (row,) = csv.DictReader(io.StringIO(export(bot.settings, "latest", "csv")))
    assert row["ts"] == f"'{ts}"
    with pytest.raises(ValueError):
        float(row["ts"])  # as a spreadsheet reads a cell: not a number
    # For programs, the JSON keeps Slack's ts as it is.
    (item,) = json.loads(export(bot.settings, "latest", "json"))["contributions"]
    assert item["ts"] == ts


def test_right_to_left_text_emoji_and_mentions_slack_sends_bare_read_well_in_the_notes(
    bot: Bot,
) -> None:
    describe = _to_step(bot, 2)
    # As Slack's message events send them: mentions by id alone, no label. Broadcasts quoted
    # back ping nobody (a zero-width space after the @), and the words read as people saw them.
    said = {
        T1: "العنوان مسطّر :tada: <!subteam^S0123ABC> should see it",
        T2: "הכותרת <!here> מודגשת, <@U_T1> :white_check_mark:",
        T3: "The key <!channel> is missing, see <#C_TEAM> and <!everyone>",
    }
    _say(bot, describe, said)
    _ended(bot)
    notes = _texts([m for m in bot.posts() if m.get("thread_ts")])
    # A broadcast or a group's mention: not the day the notes give (`<!date^...>`), no ping.
    broadcasts = [text.replace("<!date^", "") for text in notes]
    assert not [text for text in broadcasts if _PINGS.search(text) or "<!" in text]
    shown = "\n".join(notes).replace("\u200b", "")
    # A user group Slack gave by id was shown as "@subteam", as if a group of that name.
    assert "• العنوان مسطّر :tada: a user group should see it - <@U_T1>" in shown
    assert "• הכותרת @here מודגשת, @teacher1 :white_check_mark: - <@U_T2>" in shown
    assert "• The key @channel is missing, see #team and @everyone - <@U_T3>" in shown
    exported = json.loads(export(bot.settings, "latest", "json"))
    assert exported["contributions"][0]["text"] == "العنوان مسطّر :tada: a user group should see it"
