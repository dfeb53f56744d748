"""The notes of a big session, as the team gets them: every reply once, in order, each part a
message Slack shows as written (over signed HTTP, against the stand-in Slack)."""

from __future__ import annotations

from typing import Any

from tests.harness import PRESENTER, TEACHERS, Bot


def _sections(messages: list[dict[str, Any]]) -> list[str]:
    return [b["text"]["text"] for m in messages for b in m["blocks"] if b["type"] == "section"]


def _notes_parts(bot: Bot, header_ts: str) -> list[dict[str, Any]]:
    return [m for m in bot.posts() if m.get("thread_ts") == header_ts]


def test_replies_with_code_blocks_stay_whole_across_the_notes_parts(bot: Bot) -> None:
    step = bot.open_step()
    header_ts = str(bot.posts()[0]["ts"])
    code = "\n".join(f"    total = total + row[{k}]  # running sum of the column" for k in range(8))
    replies = [f"Reply {n:02d} has this:\n```\n{code}\n```\nand a line after" for n in range(40)]
    for n, text in enumerate(replies):
        bot.reply(TEACHERS[n % 3], text, step, ts=f"{1700000000 + n}.000100")
    bot.settle()
    bot.command("end")
    bot.settle()

    for parts in (_notes_parts(bot, header_ts), bot.standin.messages(f"D{PRESENTER[1:]}")):
        sections = _sections(parts)
        assert len(sections) > 2, "long enough to be split"
        for section in sections:
            # A block cut inside a code block shows its ``` as text, and turns the next block,
            # bullets and mentions included, into code.
            assert section.count("```") % 2 == 0, section[-200:]
        body = "\n".join(sections)
        shown = [n for n in range(40) for _ in range(body.count(f"Reply {n:02d} has this"))]
        assert shown == list(range(40)), "each reply once, in order"
        assert body.count(code) == 40
