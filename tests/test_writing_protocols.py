"""docs/protocols.md followed as an operator follows it: write a protocol from its example,
check it with `protocolbot protocols check`, and run it in Slack."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.protocol_docs import DOCS_PATH
from bot.protocols import BUILTIN_DIR, load_library, load_protocol
from bot.slack_standin import SlackStandin
from tests.harness import PRESENTER, Bot
from tests.process import REPO_ROOT, bot_environment, run_cli


def _example() -> str:
    """The YAML under the docs' 'Writing your own protocol'."""
    docs = DOCS_PATH.read_text(encoding="utf-8")
    section = docs.split("## Writing your own protocol", 1)[1]
    found = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert found, "docs/protocols.md shows no example protocol to copy"
    return found.group(1)


BUILT_IN = len(list(BUILTIN_DIR.glob("*.yaml")))


def _check(folder: Path, tmp_path: Path) -> tuple[int, str, str]:
    env = bot_environment(SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="signing")
    done = run_cli(["protocols", "check", str(folder)], env, tmp_path)
    return done.returncode, done.stdout, done.stderr


def test_listing_a_folder_with_no_protocol_files_says_so(tmp_path: Path) -> None:
    # `protocolbot protocols list my-protocols` on a folder whose files were not there yet (or
    # not YAML) printed nothing at all, and exited 0.
    folder = tmp_path / "my-protocols"
    folder.mkdir()
    (folder / "peer-feedback.txt").write_text("id: peer-feedback\n")
    env = bot_environment(SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="signing")
    done = run_cli(["protocols", "list", str(folder)], env, tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"protocolbot: {folder} holds no protocol files\n"


def _one_ok(folder: Path) -> str:
    return f"{BUILT_IN + 1} protocols ok: 1 in {folder.resolve()}, {BUILT_IN} built-in\n"


def test_the_docs_example_checks_and_runs(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "protocols"
    folder.mkdir()
    (folder / "peer-feedback.yaml").write_text(_example(), encoding="utf-8")
    assert _check(folder, tmp_path) == (0, _one_ok(folder), "")

    bot = Bot(workspace, database_url, protocols_dir=folder).start()
    try:
        preview = bot.command("preview peer-feedback")
        assert "Describing the Draft" in json.dumps(preview)
        bot.command(f"start peer-feedback <@{PRESENTER}|maria> step 1h")
        bot.wait_until(lambda: bool(bot.step_posts()))
        assert bot.step_posts()[0]["text"].startswith("Step 1 of 3 - The Assignment")
    finally:
        bot.stop()


def test_check_counts_what_it_read_whether_the_folder_is_named_or_set(tmp_path: Path) -> None:
    # With the folder named it said "1 protocol ok", with PROTOCOLS_DIR set "8 protocols ok",
    # for the same files: both read the built-in protocols beside the folder's.
    folder = tmp_path / "protocols"
    folder.mkdir()
    (folder / "peer-feedback.yaml").write_text(_example(), encoding="utf-8")
    env = bot_environment(SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="signing")
    named = run_cli(["protocols", "check", str(folder)], env, tmp_path)
    setting = {**env, "PROTOCOLS_DIR": str(folder)}
    set_ = run_cli(["protocols", "check"], setting, tmp_path)
    assert named.stdout == set_.stdout == _one_ok(folder)
    alone = run_cli(["protocols", "check"], env, tmp_path)
    assert alone.stdout == f"{BUILT_IN} protocols ok: {BUILT_IN} built-in\n"


def test_check_counts_a_file_added_to_the_built_in_folder_apart_from_the_built_in_ones(
    tmp_path: Path,
) -> None:
    # Dropped into protocols/ beside the built-in files, peer-feedback.yaml was counted as
    # one of them: "8 protocols ok: 8 built-in". In a copy of protocolbot, to leave ours as is.
    copy = tmp_path / "protocolbot"
    shutil.copytree(REPO_ROOT / "bot", copy / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(BUILTIN_DIR, copy / "protocols")
    (copy / "messages").symlink_to(REPO_ROOT / "messages")
    (copy / "protocols" / "peer-feedback.yaml").write_text(_example(), encoding="utf-8")
    env = bot_environment(PYTHONPATH=str(copy))
    done = run_cli(["protocols", "check"], env, tmp_path)
    added = f"1 added to {copy / 'protocols'}"
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"{BUILT_IN + 1} protocols ok: {added}, {BUILT_IN} built-in\n"


def test_check_names_a_file_whose_id_a_built_in_protocol_has(tmp_path: Path) -> None:
    # The bot skips such a file at start-up; the check the docs tell operators to run said
    # "1 protocols ok" for it.
    folder = tmp_path / "protocols"
    folder.mkdir()
    mine = folder / "atlas.yaml"
    mine.write_text(_example().replace("id: peer-feedback", "id: atlas", 1), encoding="utf-8")
    status, out, err = _check(folder, tmp_path)
    assert (status, out) == (1, "")
    first = BUILTIN_DIR / "atlas.yaml"
    expected = (
        f"error: {mine}: id: duplicate protocol id 'atlas': the bot runs the built-in one in "
        f"{first} and skips this file (give this protocol an id of its own)"
    )
    assert err.splitlines() == [expected]


def test_a_file_with_other_problems_is_told_its_id_is_taken_too(tmp_path: Path) -> None:
    # A file of `id: atlas` alone was told of the fields it lacked, and once they were written,
    # that the id was taken all along.
    folder = tmp_path / "protocols"
    folder.mkdir()
    mine = folder / "atlas.yaml"
    mine.write_text("id: atlas\n", encoding="utf-8")
    status, out, err = _check(folder, tmp_path)
    assert (status, out) == (1, "")
    first = BUILTIN_DIR / "atlas.yaml"
    assert [line.removeprefix(f"error: {mine}: ") for line in err.splitlines()] == [
        "name: is required",
        "source: is required",
        "summary: is required",
        "steps: is required",
        f"id: duplicate protocol id 'atlas': the bot runs the built-in one in {first} and skips "
        "this file (give this protocol an id of its own)",
    ]


def test_a_link_to_a_file_that_is_not_there_is_named(tmp_path: Path) -> None:
    # A link left behind when its file moved was passed over without a word, and the check
    # said the folder was ok with one protocol fewer than the operator had written.
    folder = tmp_path / "protocols"
    folder.mkdir()
    (folder / "peer-feedback.yaml").write_text(_example(), encoding="utf-8")
    broken = folder / "broken.yaml"
    broken.symlink_to(tmp_path / "moved" / "broken.yaml")
    status, out, err = _check(folder, tmp_path)
    assert (status, out) == (1, "")
    assert err == (
        f"error: {broken}: (file): cannot be read: it links to {tmp_path}/moved/broken.yaml, "
        "which is not there (fix or remove it)\n"
    )


def test_a_folder_that_is_a_file_or_a_pipe_is_said_to_be_no_directory(tmp_path: Path) -> None:
    # Both were "not found", though there they were; serve says PROTOCOLS_DIR is not a directory.
    pipe = tmp_path / "protocols.fifo"
    os.mkfifo(pipe)
    plain = tmp_path / "peer-feedback.yaml"
    plain.write_text(_example(), encoding="utf-8")
    for given in (pipe, plain):
        status, out, err = _check(given, tmp_path)
        assert (status, out) == (1, "")
        problem = "not a directory: name the folder that holds the protocol files"
        assert err == f"error: {given}: (directory): {problem}\n"
    status, out, err = _check(tmp_path / "absent", tmp_path)
    assert (status, err) == (1, f"error: {tmp_path / 'absent'}: (directory): not found\n")


def test_a_file_not_named_after_its_id_passes_with_a_warning(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # The docs ask for one file per protocol named after its id; other.yaml holding
    # peer-feedback was checked ok without a word. The bot runs it, so the check still passes.
    folder = tmp_path / "protocols"
    folder.mkdir()
    other = folder / "other.yaml"
    other.write_text(_example(), encoding="utf-8")
    warning = (
        f"warning: {other}: id: is 'peer-feedback', not the file's name: rename the file "
        "peer-feedback.yaml\n"
    )
    assert _check(folder, tmp_path) == (0, _one_ok(folder), warning)
    with _operator_bot(workspace, database_url, folder) as bot:
        assert "Describing the Draft" in json.dumps(bot.command("preview peer-feedback"))


def test_a_presenter_silent_where_their_statement_is_asked_for_passes_with_a_warning(
    tmp_path: Path,
) -> None:
    # Step 1 asked the presenter for their statement and said they listened there: their reply
    # was kept as a private note, with the norm recalled to them.
    folder = tmp_path / "protocols"
    folder.mkdir()
    mine = folder / "peer-feedback.yaml"
    first = _example().split("  - id: ", 2)[1]
    silent = first.replace(
        first[first.index("    presenter: ") :].split("\n")[0], "    presenter: silent"
    )
    mine.write_text(_example().replace(first, silent, 1), encoding="utf-8")
    warning = (
        f"warning: {mine}: steps[1].presenter: the presenter listens in the step that opens"
        " with their statement of the assignment, which asks them for it: set presenter:"
        " speaks or only here, or statement: true on the step where they speak first\n"
    )
    assert _check(folder, tmp_path) == (0, _one_ok(folder), warning)


def test_a_key_written_twice_is_named_not_silently_replaced(tmp_path: Path) -> None:
    # safe_load kept the second `prompt:` of a step and dropped the first without a word.
    folder = tmp_path / "protocols"
    folder.mkdir()
    mine = folder / "peer-feedback.yaml"
    twice = _example().replace(
        "    prompt: What do you see?\n",
        "    prompt: What do you see?\n    prompt: What is there?\n",
        1,
    )
    mine.write_text(twice, encoding="utf-8")
    status, out, err = _check(folder, tmp_path)
    assert (status, out) == (1, "")
    line = twice.splitlines().index("    prompt: What is there?") + 1
    problem = f"invalid YAML: found the key 'prompt' twice (line {line}, column 5)"
    assert err.splitlines() == [f"error: {mine}: (file): {problem}"]


def test_an_id_longer_than_the_database_keeps_is_named(tmp_path: Path) -> None:
    # sessions.protocol_id holds 64 characters: an operator's protocol with a longer id was
    # checked "ok" and listed, and starting it failed on PostgreSQL.
    long_id = "grade-8-science-department-looking-at-lab-reports-with-the-new-rubric"
    folder = tmp_path / "protocols"
    folder.mkdir()
    mine = folder / "lab-reports.yaml"
    mine.write_text(_example().replace("id: peer-feedback", f"id: {long_id}", 1), encoding="utf-8")
    status, out, err = _check(folder, tmp_path)
    assert (status, out) == (1, "")
    assert err == f"error: {mine}: id: must be at most 64 characters (got {len(long_id)})\n"


def _wordy_protocol(guidance: int, questions: int) -> str:
    """An operator's protocol of one step with `guidance` lines and `questions` near their
    limits (about 200 and 270 characters)."""
    line = "look at the work closely and say what you see, " * 4
    question = "what would you ask about the work in front of you? " * 5
    lines = [
        "id: wordy",
        "name: Wordy",
        "source: Our district's own",
        "summary: One long look.",
        "steps:",
        "  - id: look",
        "    title: Look",
        "    minutes: 5",
        "    prompt: What do you see?",
        "    guidance:",
        *(f"      - {json.dumps(f'{n}. {line}'.strip())}" for n in range(guidance)),
        "    questions:",
        *(f"      - {json.dumps(f'{n}. {question}'.strip())}" for n in range(questions)),
        "    presenter: speaks",
        "    collects: observation",
    ]
    return "\n".join(lines) + "\n"


def test_a_step_with_more_words_than_its_message_holds_is_named(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # 40 lines of guidance and 30 questions were checked ok, and the step's message, past the
    # 13,000 characters of blocks Slack takes, was refused: step 1 never reached the channel.
    folder = tmp_path / "protocols"
    folder.mkdir()
    mine = folder / "wordy.yaml"
    mine.write_text(_wordy_protocol(40, 30), encoding="utf-8")
    status, out, err = _check(folder, tmp_path)
    assert (status, out) == (1, "")
    assert err.startswith(f"error: {mine}: steps[1]: prompt, guidance and questions come to ")
    # Just within: the step is posted whole.
    mine.write_text(_wordy_protocol(12, 9), encoding="utf-8")
    assert _check(folder, tmp_path) == (0, _one_ok(folder), "")
    with _operator_bot(workspace, database_url, folder) as bot:
        bot.command(f"start wordy <@{PRESENTER}> step 1h")
        bot.wait_until(lambda: bool(bot.step_posts()))
        assert "8. what would you ask" in json.dumps(bot.step_posts()[0]["blocks"])


def test_presenter_prep_none_is_no_prep_and_a_wrong_value_reads_as_written(
    tmp_path: Path,
) -> None:
    # PRODUCT 2 gives the choices as `standard` | `equity` | none: `none` was refused, and a
    # list or a YAML `yes` came back as Python wrote it (['a', 'b'], True).
    folder = tmp_path / "protocols"
    folder.mkdir()
    (folder / "peer-feedback.yaml").write_text(
        _example().replace("presenter_prep: standard", "presenter_prep: none"), encoding="utf-8"
    )
    assert _check(folder, tmp_path) == (0, _one_ok(folder), "")
    wrong = folder / "peer-feedback.yaml"
    wrong.write_text(
        _example()
        .replace("presenter_prep: standard", "presenter_prep: yes")
        .replace("collects: implication", "collects: [implication, question]"),
        encoding="utf-8",
    )
    status, _out, err = _check(folder, tmp_path)
    assert status == 1
    # Both problems, each as written.
    first, second = err.splitlines()
    assert (
        first == f"error: {wrong}: presenter_prep: must be one of standard, equity, none (got true)"
    )
    assert second.startswith(f"error: {wrong}: steps[") and second.endswith("(got a list)")
    wrong.write_text(
        _example().replace("collects: implication", "collects: [implication, question]"),
        encoding="utf-8",
    )
    status, _out, err = _check(folder, tmp_path)
    assert err.endswith("debrief, note (got a list)\n")


def test_a_check_names_every_problem_of_a_file_at_once(tmp_path: Path) -> None:
    # It named the first only: a file with three mistakes took three rounds of fix and check.
    problems = _problems_of(
        tmp_path,
        _example()
        .replace("presenter_prep: standard", "presenter_prep: sometimes")
        .replace("minutes: 10", "minutes: ten", 1)
        .replace("title: Next Steps", "title: The Assignment"),
    )
    assert len(problems) == 3, problems
    assert problems[0].startswith("presenter_prep: must be one of standard, equity, none")
    assert problems[1].startswith("steps[2].minutes: must be a whole number of minutes")
    assert problems[2] == "steps[3].title: duplicate step title 'The Assignment' (also steps[1])"
    (problem,) = _problems_of(
        tmp_path,
        _example().replace("presenter_prep:", "asks_statement: no thanks\npresenter_prep:"),
    )
    assert problem == "asks_statement: must be true or false (got 'no thanks')"
    (problem,) = _problems_of(
        tmp_path,
        _example().replace("presenter_prep:", "presenter_brings: a class set\npresenter_prep:"),
    )
    assert problem == (
        "presenter_brings: must be a list of text (got 'a class set'): write each item on a "
        'line of its own below presenter_brings:, starting with "- "'
    )


def test_unknown_and_missing_fields_do_not_hide_the_other_problems(tmp_path: Path) -> None:
    problems = _problems_of(
        tmp_path,
        _example()
        .replace("source: ", "extra: 1\nsourc: ", 1)
        .replace("    minutes: 5\n", "    colects: note\n    minutes: 0\n", 1)
        .replace("    collects: note\n", "", 1)
        .replace("    presenter: silent\n", "    presenter: silent\n    statement: true\n", 1)
        .replace("    presenter: speaks\n", "    presenter: speaks\n    statement: true\n", 1),
    )
    assert problems == [
        "extra: unknown field (expected one of id, name, source, summary, steps, presenter_prep, "
        "asks_statement, presenter_brings)",
        "sourc: unknown field: write it source",
        "steps[1].colects: unknown field: write it collects",
        "steps[1].minutes: must be from 1 to 600 (got 0)",
        "steps[3].statement: only one step can open with the statement (steps[2] does)",
    ]
    # A YAML key that is a list is a problem with the file, not a traceback.
    (problem,) = _problems_of(tmp_path, _example().replace("steps:\n", "? [a, b]\n: 1\nsteps:\n"))
    assert problem.startswith("(file): invalid YAML: found a key that is a list")


def test_two_steps_with_one_id_are_named_beside_the_steps_other_problems(tmp_path: Path) -> None:
    # A step with a problem of its own (its minutes) was left out of the comparison: its id,
    # the same as step 1's, was named only once the minutes were fixed.
    problems = _problems_of(
        tmp_path,
        _example()
        .replace("id: peer-feedback", "id: Bad_ID", 1)
        .replace("id: describe", "id: context", 1)
        .replace("minutes: 10", "minutes: ten", 1),
    )
    assert problems == [
        "id: must match ^[a-z0-9][a-z0-9-]*$: lowercase letters, digits and hyphens (got 'Bad_ID')"
        ": write it bad-id",
        "steps[2].minutes: must be a whole number of minutes (got 'ten')",
        "steps[2].id: duplicate step id 'context' (also steps[1])",
    ]


def test_a_line_with_a_colon_left_unquoted_is_told_to_be_quoted(tmp_path: Path) -> None:
    # YAML reads `- Presenter: do this` as a mapping: "must be text (got a mapping)" left the
    # operator looking at what was plainly text.
    problems = _problems_of(
        tmp_path,
        _example()
        .replace('- "Presenter: a very brief statement', "- Presenter: a very brief statement", 1)
        .replace('name removed."', "name removed.", 1)
        .replace("- What would you say to the student first?", "- Student:", 1),
    )
    hint = 'must be text (got a mapping): quote a line that has ": " in it'
    assert problems == [
        f'steps[1].guidance[1]: {hint}: "Presenter: ..."',
        f'steps[3].questions[1]: {hint}: "Student:"',
    ]


def _problems_of(tmp_path: Path, text: str) -> list[str]:
    """`protocols check` of a folder holding one file of `text`: its problems, a line each."""
    folder = tmp_path / "protocols"
    folder.mkdir(exist_ok=True)
    mine = folder / "peer-feedback.yaml"
    mine.write_text(text, "utf-8")
    status, out, err = _check(folder, tmp_path)
    assert (status, out) == (1, "")
    lines = err.splitlines()
    assert all(line.startswith(f"error: {mine}: ") for line in lines), err
    return [line.removeprefix(f"error: {mine}: ") for line in lines]


def test_two_steps_with_one_title_are_named(tmp_path: Path) -> None:
    # Each message tells steps apart by title ("parked for step 3, *Describing the Draft*").
    folder = tmp_path / "protocols"
    folder.mkdir()
    mine = folder / "peer-feedback.yaml"
    mine.write_text(_example().replace("title: Next Steps", "title: The Assignment"), "utf-8")
    status, out, err = _check(folder, tmp_path)
    assert (status, out) == (1, "")
    problem = "duplicate step title 'The Assignment' (also steps[1])"
    assert err == f"error: {mine}: steps[3].title: {problem}\n"


def _long_protocol(steps: int, protocol_id: str = "long-walk", name: str = "The Long Walk") -> str:
    """An operator's protocol of many steps, each with a title and question near their limits."""
    lines = [
        f"id: {protocol_id}",
        f"name: {json.dumps(name)}",
        "source: Our district's own",
        "summary: Many short looks at one piece of work.",
        "steps:",
    ]
    question = "what do you notice here, and where? " * 7
    for n in range(1, steps + 1):
        lines += [
            f"  - id: look-{n}",
            f"    title: {json.dumps(f'Look number {n} ' + 'at the work, closely, ' * 5)}",
            "    minutes: 5",
            f"    prompt: {json.dumps(f'Question {n}: ' + question)}",
            "    guidance: []",
            "    presenter: speaks",
            "    collects: observation",
        ]
    return "\n".join(lines) + "\n"


def _long_walk(tmp_path: Path, steps: int = 70) -> Path:
    """The operator's folder holding long-walk: 70 steps, titles near their limit."""
    folder = tmp_path / "protocols"
    folder.mkdir()
    (folder / "long-walk.yaml").write_text(_long_protocol(steps), encoding="utf-8")
    return folder


def test_the_preview_of_a_protocol_of_many_steps_shows_every_step(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # Slack takes 50 blocks and about 13,000 characters of blocks a message: the answer was cut
    # at the 47th step (header, summary, and the rest past 50).
    with _operator_bot(workspace, database_url, _long_walk(tmp_path)) as bot:
        answer = bot.command("preview long-walk")
        assert "The Long Walk has 70 steps" in answer["text"]
        parts = re.search(r"in (\d+) parts", answer["text"])
        assert parts is not None
        bot.wait_until(lambda: len(bot.posts("D_FAC")) == int(parts[1]))
        sent = bot.posts("D_FAC")
        for message in sent:
            assert len(message["blocks"]) <= 50
            assert len(json.dumps(message["blocks"])) <= 13_000
        shown = "\n".join(json.dumps(message["blocks"]) for message in sent)
        titles = re.findall(r"\*(\d+)\. Look number (\d+) ", shown)
        assert titles == [(str(n), str(n)) for n in range(1, 71)]
        assert shown.count("Start it with `/protocol start long-walk") == 1
        # A protocol that fits one message is still the answer itself.
        assert "Describing the Student Work" in json.dumps(bot.command("preview atlas"))


def test_the_session_header_of_a_protocol_of_many_steps_is_posted(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # The header's plan had a line for each of 70 steps, past the 13,000 characters of blocks
    # Slack takes in one message: it was refused, and the facilitator told it could not post.
    with _operator_bot(workspace, database_url, _long_walk(tmp_path)) as bot:
        bot.command(f"start long-walk <@{PRESENTER}> step 1h")
        bot.wait_until(lambda: bool(bot.step_posts()))
        bot.settle()
        assert bot.posts("D_FAC") == []  # no word of a post Slack refused
        (header,) = [m for m in bot.posts() if m["text"].startswith("The Long Walk starts now")]
        plan = json.dumps(header["blocks"])
        assert "30. Look number 30 " in plan and "31. Look number 31 " not in plan
        assert "and 40 more steps, running until <!date^" in plan
        assert "`/protocol preview long-walk` shows every step" in plan

        # Far along, the plan shows the open step and a few before it, not the first 30.
        for _ in range(10):
            bot.command("next")
        bot.wait_until(lambda: len(bot.step_posts()) == 11, timeout=30)  # a post a second
        bot.settle()
        (header,) = [m for m in bot.posts() if m["text"].startswith("The Long Walk starts now")]
        plan = json.dumps(header["blocks"], ensure_ascii=False)
        assert "\u20267 earlier steps, closed." in plan
        assert "7. Look number 7 " not in plan and "8. Look number 8 " in plan
        assert re.search(r"11\. Look number 11 [^\\]*\u00b7 until <!date\^", plan)
        assert "37. Look number 37 " in plan and "38. Look number 38 " not in plan
        assert "and 33 more steps, running until <!date^" in plan
        bot.command("end")
        bot.settle()
        (header,) = [m for m in bot.posts() if m["text"].startswith("The Long Walk has ended")]
        plan = json.dumps(header["blocks"], ensure_ascii=False)
        assert re.search(r"11\. Look number 11 [^\\]*\u00b7 closed <!date\^", plan)
        assert re.search(r"12\. Look number 12 [^\\]*\u00b7 not reached", plan)
        assert "and 33 more steps, not reached." in plan


def _many_protocols(tmp_path: Path, count: int, name: str) -> Path:
    """An operator's folder of `count` protocols of 3 steps, team-protocol-000 and on."""
    folder = tmp_path / "protocols"
    folder.mkdir()
    for n in range(count):
        mine = _long_protocol(3, f"team-protocol-{n:03d}", f"{name} {n}")
        (folder / f"team-{n}.yaml").write_text(mine, encoding="utf-8")
    return folder


@contextmanager
def _operator_bot(workspace: SlackStandin, database_url: str, folder: Path) -> Iterator[Bot]:
    """A running bot with an operator's folder of protocols besides the built-in ones."""
    bot = Bot(workspace, database_url, protocols_dir=folder).start()
    try:
        yield bot
    finally:
        bot.stop()


def test_the_list_of_an_operator_s_many_protocols_shows_every_one(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # 60 protocols of the operator's and the 7 built in: the answer was cut at the 50th
    # protocol, silently, and its blocks were far past what Slack takes in one message.
    with _operator_bot(
        workspace,
        database_url,
        _many_protocols(tmp_path, 60, "Grade-level team protocol for looking at work" * 2),
    ) as bot:
        answer = bot.command("list")  # held to Slack's limits for a message
        assert "There are 67 protocols here" in answer["text"]
        parts = re.search(r"in (\d+) parts", answer["text"])
        assert parts is not None
        bot.wait_until(lambda: len(bot.posts("D_FAC")) == int(parts[1]))
        shown = "\n".join(json.dumps(message["blocks"]) for message in bot.posts("D_FAC"))
        listed = re.findall(r"\(`([a-z0-9-]+)`\)", shown)
        assert listed == sorted([*bot.runtime.library]), listed
        assert shown.count("Look number 3 at the work") == 60


def test_the_start_dialog_offers_every_one_of_an_operator_s_many_protocols(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # Slack takes no more than 100 options in a menu: with 120 of the operator's protocols
    # views.open was refused and /protocol alone answered that the dialog could not open.
    with _operator_bot(
        workspace, database_url, _many_protocols(tmp_path, 120, "Team protocol")
    ) as bot:
        assert bot.command("") == {}
        (opened,) = bot.standin.calls_to("views.open")
        assert opened.response["ok"], opened.response
        menu = opened.params["view"]["blocks"][0]["element"]
        groups = menu["option_groups"]
        assert [g["label"]["text"] for g in groups] == [
            "atlas to team-protocol-093",
            "team-protocol-094 to tuning",
        ]
        offered = [option["value"] for group in groups for option in group["options"]]
        assert offered == sorted(bot.runtime.library)
        assert menu["initial_option"]["value"] == "atlas"


def test_help_and_an_unknown_name_show_some_of_very_many_protocols_and_say_how_many_more(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # /protocol help listed every id in one line, which was cut at Slack's 3,000 characters
    # ("`team-protocol-136`, `te…") with no word of the rest; a name not found listed all 157.
    with _operator_bot(
        workspace, database_url, _many_protocols(tmp_path, 150, "Team protocol")
    ) as bot:
        line = bot.command("help")["blocks"][-1]["elements"][0]["text"]
        assert "…" not in line
        assert line.endswith(", `team-protocol-023` and 127 more (`/protocol list` shows them all)")
        for typo in ("preview team-protocl-7", "start team-protocl-7 <@U_PRE>"):
            said = bot.command(typo)["text"]
            assert "did you mean `team-protocol-" in said  # the closest one still named
            assert "team-protocol-023 and 127 more (`/protocol list` shows them all)" in said


def test_a_long_protocol_name_in_the_start_menu_ends_with_an_ellipsis(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # A menu option's text holds 75 characters: a longer name was cut mid-word with no sign,
    # and two names alike in their first 75 characters looked the same.
    long_name = "Looking closely at student writing across the grade-level team " * 2
    with _operator_bot(workspace, database_url, _many_protocols(tmp_path, 1, long_name)) as bot:
        assert bot.command("") == {}
        (opened,) = bot.standin.calls_to("views.open")
        assert opened.response["ok"], opened.response
        shown = {
            option["value"]: option["text"]["text"]
            for option in opened.params["view"]["blocks"][0]["element"]["options"]
        }
        mine = shown["team-protocol-000"]
        assert len(mine) == 75 and mine.endswith("…")
        assert long_name.startswith(mine[:-1])
        assert shown["atlas"] == bot.runtime.library["atlas"].name  # short names are whole


def test_protocols_whose_names_the_start_menu_would_cut_alike_show_their_ids(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # Two names the same in their first 74 characters (a team's protocol and its 2nd version)
    # were cut to the same option in the start menu: nobody could tell which one they picked.
    long_name = "Looking closely at student writing across the grade-level team " * 2
    folder = _many_protocols(tmp_path, 2, long_name)
    (folder / "twin.yaml").write_text(
        _long_protocol(3, "atlas-twin", "ATLAS - Learning from Student Work"), "utf-8"
    )
    with _operator_bot(workspace, database_url, folder) as bot:
        assert bot.command("") == {}
        (opened,) = bot.standin.calls_to("views.open")
        assert opened.response["ok"], opened.response
        menu = opened.params["view"]["blocks"][0]["element"]
        shown = {option["value"]: option["text"]["text"] for option in menu["options"]}
        assert len(set(shown.values())) == len(shown), shown
        for pid in ("team-protocol-000", "team-protocol-001"):
            assert len(shown[pid]) == 75 and shown[pid].endswith(f"… ({pid})"), shown[pid]
            assert long_name.startswith(shown[pid][: -len(f"… ({pid})")])
        assert shown["atlas-twin"] == "ATLAS - Learning from Student Work (atlas-twin)"
        assert shown["atlas"] == "ATLAS - Learning from Student Work (atlas)"
        assert menu["initial_option"] == {
            "text": {"type": "plain_text", "text": shown["atlas"]},
            "value": "atlas",
        }
        assert shown["tuning"] == bot.runtime.library["tuning"].name  # names unlike stay whole


def test_status_late_in_a_long_protocol_with_a_busy_channel_fits_one_answer(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # A line for each step begun, naming up to 15 who replied: late in a session of 35 steps
    # with 15 people replying in each, the facilitator's /protocol status was far past what
    # Slack takes in one message, and was refused (through response_url, then privately).
    folder = _long_walk(tmp_path, 35)
    people = [f"U0B{n:08d}" for n in range(15)]
    for user in people:
        workspace.add_user(user, f"teacher {user}")
        workspace.add_member("C_TEAM", user)
    with _operator_bot(workspace, database_url, folder) as bot:
        bot.command(f"start long-walk <@{PRESENTER}> step 1h")
        for step in range(1, 36):
            bot.wait_until(lambda step=step: len(bot.step_posts()) == step)  # type: ignore[misc]
            thread = str(bot.step_posts()[-1]["ts"])
            for user in people[: 15 if step > 1 else 3]:
                bot.reply(user, "The title is underlined", thread)
            if step < 35:
                bot.command("next")
        bot.wait_until(lambda: len(bot.recorded()) == 513)
        answer = bot.command("status")
        bot.settle()
        answers = workspace.calls_to("response_url") + workspace.calls_to("chat.postEphemeral")
        assert [c.response for c in answers if c.status != 200 or not c.response["ok"]] == []
        shown = json.dumps(answer["blocks"])
        assert "step 35 of 35" in shown
        assert "35. Look number 35 at the work" in shown
        assert "15 replies from 15 people (<@U0B00000000>" in shown
        left_out = re.search(r"Steps 1 to (\d+): (\d+) replies from 15 people in all", shown)
        assert left_out is not None, shown
        last = int(left_out[1])
        assert int(left_out[2]) == 3 + 15 * (last - 1)
        assert f"{last}. Look number {last} " not in shown
        assert f"{last + 1}. Look number {last + 1} " in shown
        # A session that fits shows every step's line.
        assert "Steps 1 to" not in json.dumps(bot.command("status", user=PRESENTER)["blocks"])


def test_the_notes_of_a_protocol_of_many_steps_give_every_steps_figures(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # The notes end with a line of figures for the debrief, a step after another: past 3,000
    # characters (a context block's most; 20 steps with long titles) it was cut with an
    # ellipsis, the figures of the last steps gone without a word.
    with _operator_bot(workspace, database_url, _long_walk(tmp_path, 20)) as bot:
        bot.command(f"start long-walk <@{PRESENTER}> step 1h")
        for step in range(2, 21):
            bot.command("next")
            bot.wait_until(lambda step=step: len(bot.step_posts()) == step)  # type: ignore[misc]
        bot.command("end")
        bot.wait_until(lambda: any("Notes from" in str(m.get("text")) for m in bot.posts()))
        bot.settle()
        notes = [m for m in bot.posts() if m.get("thread_ts")]
        shown = " ".join(
            element["text"]
            for message in notes
            for block in message["blocks"]
            if block["type"] == "context"
            for element in block["elements"]
        )
        assert "…" not in shown
        for n in range(1, 21):
            assert f"Look number {n} at the work" in shown, n
        assert re.search(r"Look number 20 [^;]*: no replies in [^;]*\.$", shown)


def test_a_step_template_that_is_no_step_message_is_named(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # `template: header.j2` (a file in messages/, but the session header's) was checked ok and
    # loaded; every /protocol start of it then answered "Something went wrong on my side".
    folder = tmp_path / "protocols"
    folder.mkdir()
    mine = folder / "peer-feedback.yaml"
    named = "    collects: note\n    template: header.j2\n"
    mine.write_text(_example().replace("    collects: note\n", named, 1), encoding="utf-8")
    status, out, err = _check(folder, tmp_path)
    assert (status, out) == (1, "")
    assert err.startswith(
        f"error: {mine}: steps[1].template: header.j2 is not a step's message: it uses "
    )
    with _operator_bot(workspace, database_url, folder) as bot:
        answer = json.dumps(bot.command(f"start peer-feedback <@{PRESENTER}|maria> step 1h"))
        assert "There is no protocol `peer-feedback`" in answer
        assert not bot.step_posts()
    mine.write_text(_example().replace("    collects: note\n", named.replace("header", "step")))
    assert _check(folder, tmp_path) == (0, _one_ok(folder), "")


def test_a_tab_or_an_unquoted_colon_in_a_line_is_told_how_to_fix(tmp_path: Path) -> None:
    # A line indented with a tab was "found character '\t' that cannot start any token", and a
    # prompt with ": " in it "mapping values are not allowed here": neither said what to change.
    tab = _example().replace("    prompt: What do you see?", "\tprompt: What do you see?", 1)
    assert _problems_of(tmp_path, tab) == [
        "(file): invalid YAML: while scanning for the next token, found character '\\t' that "
        "cannot start any token (line 20, column 1): YAML takes no tabs: write spaces instead"
    ]
    colon = _example().replace("prompt: What do you see?", "prompt: Group: what do you see?")
    assert _problems_of(tmp_path, colon) == [
        "(file): invalid YAML: mapping values are not allowed here (line 20, column 18): "
        'quote a line that has ": " in it, or indent it as the lines around it'
    ]


def test_a_file_not_saved_as_utf_8_is_told_so_at_its_line(tmp_path: Path) -> None:
    # An accent saved by an editor in Windows-1252 was "cannot be read ('utf-8' codec can't
    # decode byte 0xe9 in position 14: invalid continuation byte)".
    folder = tmp_path / "protocols"
    folder.mkdir()
    mine = folder / "peer-feedback.yaml"
    text = _example().replace("name: Peer Feedback", "name: Rétroaction", 1)
    mine.write_bytes(text.encode("cp1252"))
    status, out, err = _check(folder, tmp_path)
    assert (status, out) == (1, "")
    assert err == f"error: {mine}: (file): is not UTF-8 at line 2: save it as UTF-8\n"


def test_guidance_left_empty_is_told_to_be_written_as_an_empty_list(tmp_path: Path) -> None:
    # `guidance:` with nothing after it, meant as none, was "steps[3].guidance: is required".
    text = _example().replace("    guidance: []\n", "    guidance:\n", 1)
    assert _problems_of(tmp_path, text) == ["steps[3].guidance: is empty: write [] for none"]


def test_of_two_files_with_one_id_the_one_named_after_it_runs(tmp_path: Path) -> None:
    # Which of two files holding peer-feedback ran depended on their names' alphabetical
    # order: a copy saved as draft.yaml took the place of peer-feedback.yaml, and the check
    # said only that peer-feedback.yaml's id was "already loaded".
    folder = tmp_path / "protocols"
    folder.mkdir()
    mine = folder / "peer-feedback.yaml"
    mine.write_text(_example(), encoding="utf-8")
    for name in ("draft.yaml", "zz-old.yaml"):  # before and after it by name
        copy = folder / name
        copy.write_text(_example().replace("Peer Feedback on a Draft", name), encoding="utf-8")
        status, out, err = _check(folder, tmp_path)
        assert (status, out) == (1, "")
        assert err.splitlines() == [
            f"error: {copy}: id: duplicate protocol id 'peer-feedback': the bot runs the one in "
            f"{mine} and skips this file (give this protocol an id of its own, or remove one "
            "of the two)",
        ]
        library, _errors = load_library([BUILTIN_DIR, folder])
        assert library["peer-feedback"].path == mine
        copy.unlink()


def test_a_file_not_named_after_its_id_is_not_told_to_take_the_name_of_a_file_there(
    tmp_path: Path,
) -> None:
    # other.yaml holding peer-feedback, and peer-feedback.yaml another protocol: other.yaml
    # was told to be renamed peer-feedback.yaml, which would have written it over the other.
    folder = tmp_path / "protocols"
    folder.mkdir()
    other, mine = folder / "other.yaml", folder / "peer-feedback.yaml"
    other.write_text(_example(), encoding="utf-8")
    review = _example().replace("id: peer-feedback", "id: peer-review", 1)
    mine.write_text(review.replace("name: Peer Feedback", "name: Peer Review", 1))
    status, out, err = _check(folder, tmp_path)
    assert (status, out) == (
        0,
        f"{BUILT_IN + 2} protocols ok: 2 in {folder.resolve()}, {BUILT_IN} built-in\n",
    )
    assert err.splitlines() == [
        f"warning: {other}: id: is 'peer-feedback', not the file's name, and peer-feedback.yaml"
        " is there already: give this protocol an id of its own, or remove one of the two files",
        f"warning: {mine}: id: is 'peer-review', not the file's name: rename the file "
        "peer-review.yaml",
    ]


def test_a_step_template_that_only_defines_names_for_others_is_named(tmp_path: Path) -> None:
    # `template: _tags.j2` (a file in messages/ that other templates include for its names)
    # was checked ok and loaded, and its step was then posted with nothing in it.
    folder = tmp_path / "protocols"
    folder.mkdir()
    mine = folder / "peer-feedback.yaml"
    named = "    collects: note\n    template: _tags.j2\n"
    mine.write_text(_example().replace("    collects: note\n", named, 1), encoding="utf-8")
    status, out, err = _check(folder, tmp_path)
    assert (status, out) == (1, "")
    assert err == (
        f"error: {mine}: steps[1].template: _tags.j2 writes nothing of its own (it only sets "
        "names and macros for other templates to include): name a step's message, such as "
        "step.j2\n"
    )
    library, errors = load_library([folder])
    assert "peer-feedback" not in library
    assert [(e.file, e.field) for e in errors] == [(str(mine), "steps[1].template")]


def test_docs_of_a_folder_are_those_of_its_protocols(tmp_path: Path) -> None:
    # `protocolbot protocols docs /srv/protocols` ignored the folder and rewrote the built-in
    # docs/protocols.md: an operator got no page of their own protocols.
    folder = tmp_path / "protocols"
    folder.mkdir()
    (folder / "peer-feedback.yaml").write_text(_example(), encoding="utf-8")
    before = DOCS_PATH.stat().st_mtime_ns
    env = bot_environment(SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="signing")
    done = run_cli(["protocols", "docs", str(folder)], env, tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith(f"# Protocols in {folder}\n")
    assert "## Peer Feedback on a Draft (`peer-feedback`)" in done.stdout
    assert "| 2 | Describing the Draft | What do you see? |" in done.stdout
    assert done.stdout.count("```mermaid") == 1
    assert "(`atlas`)" not in done.stdout
    assert DOCS_PATH.stat().st_mtime_ns == before
    (folder / "peer-feedback.yaml").write_text(_example().replace("minutes: 10", "minutes: x"))
    broken = run_cli(["protocols", "docs", str(folder)], env, tmp_path)
    assert (broken.returncode, broken.stdout) == (1, "")
    assert "steps[2].minutes: must be a whole number of minutes" in broken.stderr


def test_a_value_yaml_reads_as_a_number_or_a_date_is_told_to_be_quoted(tmp_path: Path) -> None:
    # `id: 2024` (an id may be digits) was "must match ...: lowercase letters, digits and
    # hyphens (got 2024)", and `title: 2024-01-01` "must be text (got a date)": neither said
    # that YAML had read them as a number and a date, or that quotes make them text.
    quote = ": YAML read it as a number, true/false or a date: write it in quotes"
    text = _example().replace("id: peer-feedback", "id: 2024", 1)
    text = text.replace("title: The Assignment", "title: 2024-01-01", 1)
    assert _problems_of(tmp_path, text) == [
        "id: must match ^[a-z0-9][a-z0-9-]*$: lowercase letters, digits and hyphens (got 2024)"
        + quote,
        "steps[1].title: must be text (got a date)" + quote,
    ]
    quoted = text.replace("id: 2024", 'id: "2024"').replace("title: 2024-01-01", 'title: "2024"')
    (tmp_path / "2024.yaml").write_text(quoted, encoding="utf-8")
    protocol = load_protocol(tmp_path / "2024.yaml")
    assert (protocol.id, protocol.step(1).title) == ("2024", "2024")


def test_minutes_written_as_people_write_a_length_are_told_the_number_to_write(
    tmp_path: Path,
) -> None:
    # `minutes: 1:30` loaded as a 90-minute step without a word (YAML reads 1:30 as a number
    # in base 60), whether its writer meant an hour and a half or a minute and a half; and
    # `minutes: 10 min` or `minutes: "5"` (quoted, as a line with a colon is told to be) were
    # "must be a whole number of minutes" and no more, beside a 5 that looked whole.
    text = _example().replace("minutes: 5", "minutes: 1:30", 1)
    last = "minutes: 10\n    prompt: What could"
    text = text.replace(last, last.replace("10", '"5"'))
    text = text.replace("minutes: 10", "minutes: 10 min", 1)
    whole = "must be a whole number of minutes"
    assert _problems_of(tmp_path, text) == [
        f"steps[1].minutes: {whole} (got '1:30'): write 90 for 1 h 30 min, or 2 for 1 min 30 s",
        f"steps[2].minutes: {whole} (got '10 min'): write the number alone, minutes: 10",
        f"steps[3].minutes: {whole} (got '5'): write it without quotes, minutes: 5",
    ]
    # Written as text, `title: 10:30` is the title it looks like, not 630.
    (tmp_path / "peer-feedback.yaml").write_text(
        _example().replace("title: The Assignment", "title: 10:30", 1), encoding="utf-8"
    )
    assert load_protocol(tmp_path / "peer-feedback.yaml").step(1).title == "10:30"


def test_a_copy_of_a_built_in_protocol_keeping_its_name_is_warned_and_the_name_runs_the_built_in(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # A coach copied atlas.yaml, gave it an id of its own and changed its steps, but kept its
    # name: the check said "ok" without a word, `/protocol list` showed two protocols of one
    # name, and `start ATLAS - Learning from Student Work ...` ran the copy, not the built-in.
    folder = tmp_path / "protocols"
    folder.mkdir()
    mine = folder / "atlas-ours.yaml"
    text = (BUILTIN_DIR / "atlas.yaml").read_text(encoding="utf-8")
    text = text.replace("id: atlas\n", "id: atlas-ours\n", 1)
    mine.write_text(text.replace("title: Getting Started", "title: Our Start", 1), "utf-8")
    warning = (
        f"warning: {mine}: name: 'ATLAS - Learning from Student Work' is the name of atlas "
        f"too ({BUILTIN_DIR / 'atlas.yaml'}), and a start by that name runs atlas: give this "
        "protocol a name of its own\n"
    )
    assert _check(folder, tmp_path) == (0, _one_ok(folder), warning)
    with _operator_bot(workspace, database_url, folder) as bot:
        start = f"start ATLAS - Learning from Student Work <@{PRESENTER}|maria> step 1h"
        assert "is starting" in json.dumps(bot.command(start))
        bot.wait_until(lambda: bool(bot.step_posts()))
        assert bot.step_posts()[0]["text"].startswith("Step 1 of 6 - Getting Started")


def test_a_field_name_mistyped_is_told_the_name_to_write(tmp_path: Path) -> None:
    # `promt:` was two problems, an unknown field followed by the eleven a step may have, and
    # `prompt` required: one slip, told as one line that names the field to write.
    text = _example().replace("    prompt: What do you see?", "    promt: What do you see?", 1)
    text = text.replace("    guidance: []", "    Guidance: []", 1)
    text = text.replace("presenter_prep: standard", "presenter-prep: standard", 1)
    assert _problems_of(tmp_path, text) == [
        "presenter-prep: unknown field: write it presenter_prep",
        "steps[2].promt: unknown field: write it prompt",
        "steps[3].Guidance: unknown field: write it guidance",
    ]


def test_guidance_written_as_one_line_of_text_is_told_how_to_write_a_list(tmp_path: Path) -> None:
    # `guidance: Say only what is in the work.` was "must be a list of text (got '...')",
    # which did not say how a list is written in YAML.
    text = _example().replace("    guidance: []", "    guidance: Say what could come next.", 1)
    text = text.replace(
        "    questions:\n      - What would you say to the student first?",
        "    questions: What would you say first?",
        1,
    )
    assert _problems_of(tmp_path, text) == [
        "steps[3].guidance: must be a list of text (got 'Say what could come next.'): "
        'write each item on a line of its own below guidance:, starting with "- "',
        "steps[3].questions: must be a list of text (got 'What would you say first?'): "
        'write each item on a line of its own below questions:, starting with "- "',
    ]


def test_a_step_of_a_day_written_in_minutes_is_told_how_a_session_runs_over_days(
    tmp_path: Path,
) -> None:
    # A coach writing a protocol for a team that meets over a week wrote `minutes: 1440` for a
    # day: "must be from 1 to 600 (got 1440)", with no word of how steps of days are had.
    text = _example().replace("minutes: 10", "minutes: 1440", 1)
    assert _problems_of(tmp_path, text) == [
        "steps[2].minutes: must be from 1 to 600 (got 1440): minutes are the step's length in "
        "a live meeting; for steps of hours or days, start the session with `step`, as in "
        "`/protocol start <id> @presenter step 1d`"
    ]


def test_an_id_written_as_words_is_told_the_id_to_write(tmp_path: Path) -> None:
    # `id: Describe the work` and `id: Café_Feedback` were told the pattern an id must match,
    # in a regular expression, and not the id that would do.
    text = _example().replace("id: peer-feedback", "id: Café_Feedback", 1)
    text = text.replace("id: describe", "id: Describe the work", 1)
    pattern = "must match ^[a-z0-9][a-z0-9-]*$: lowercase letters, digits and hyphens"
    assert _problems_of(tmp_path, text) == [
        f"id: {pattern} (got 'Café_Feedback'): write it cafe-feedback",
        f"steps[2].id: {pattern} (got 'Describe the work'): write it describe-the-work",
    ]


def test_a_protocol_whose_name_has_an_emoji_starts_by_its_name_typed_with_or_without_it(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # A coach named their protocol "Retroalimentación en el café 🎯": typed in Slack, whose
    # messages carry an emoji as its :code:, or typed without the emoji, the name was taken for
    # a protocol id `retroalimentación`, and the start refused.
    folder = tmp_path / "protocols"
    folder.mkdir()
    text = _example().replace(
        "name: Peer Feedback on a Draft", "name: Retroalimentación en el café 🎯", 1
    )
    (folder / "peer-feedback.yaml").write_text(text, encoding="utf-8")
    with _operator_bot(workspace, database_url, folder) as bot:
        for typed in ("Retroalimentación en el café :dart:", "retroalimentación en el café"):
            preview = json.dumps(bot.command(f"preview {typed}"), ensure_ascii=False)
            assert "Describing the Draft" in preview, preview
