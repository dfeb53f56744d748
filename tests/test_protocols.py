"""Tests for loading and validating protocol YAML, the built-in library, and its generated docs."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import render
from bot.protocol_docs import DOCS_PATH, render_docs
from bot.protocols import (
    BUILTIN_DIR,
    BUILTIN_IDS,
    PREP_KINDS,
    PRESENTER_MODES,
    TAGS,
    ProtocolError,
    load_library,
    load_protocol,
)

LIBRARY, LIBRARY_ERRORS = load_library()

GOOD: dict[str, Any] = {
    "id": "mini",
    "name": "Mini protocol",
    "source": "a test",
    "summary": "Two steps.",
    "presenter_prep": "standard",
    "steps": [
        {
            "id": "describe",
            "title": "Describe",
            "minutes": 10,
            "prompt": "What do you see?",
            "guidance": ["Only what is in the work."],
            "presenter": "silent",
            "collects": "observation",
        },
        {
            "id": "debrief",
            "title": "Debrief",
            "minutes": 5,
            "prompt": "How did it go?",
            "guidance": [],
            "presenter": "speaks",
            "collects": "debrief",
            "everyone": True,
        },
    ],
}


def write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def good(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    data.update(changes)
    return data


def with_step(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    data["steps"][0].update(changes)
    return data


def without(key: str) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    del data[key]
    return data


def without_step_key(key: str) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    del data["steps"][0][key]
    return data


# --- the built-in library --------------------------------------------------------------------


def test_builtin_library_loads_with_no_errors() -> None:
    assert LIBRARY_ERRORS == []
    # A protocol added to protocols/ is named in BUILTIN_IDS too, or checks count it apart.
    assert set(LIBRARY) == BUILTIN_IDS
    assert all(p.path is not None and p.path.parent == BUILTIN_DIR for p in LIBRARY.values())


def test_atlas_follows_the_source() -> None:
    atlas = LIBRARY["atlas"]
    assert [s.id for s in atlas.steps] == [
        "getting-started",
        "describe",
        "interpret",
        "implications",
        "reflect",
        "debrief",
    ]
    assert [s.title for s in atlas.steps] == [
        "Getting Started",
        "Describing the Student Work",
        "Interpreting the Student Work",
        "Implications for Classroom Practice",
        "Reflecting on the ATLAS",
        "Debriefing the Process",
    ]
    assert atlas.step(2).prompt == "What do you see?"
    assert atlas.step(3).prompt == "From the student's perspective, what is the student working on?"
    assert (
        atlas.step(4).prompt
        == "What are the implications of this work for teaching and assessment?"
    )
    silent = [n for n, s in enumerate(atlas.steps, 1) if s.presenter == "silent"]
    assert silent == [2, 3, 4]
    assert atlas.step(1).presenter == atlas.step(5).presenter == "speaks"
    assert [s.collects for s in atlas.steps] == [
        "note",
        "observation",
        "interpretation",
        "implication",
        "reflection",
        "debrief",
    ]
    assert [n for n, s in enumerate(atlas.steps, 1) if s.everyone] == [2, 3, 4, 6]
    assert [s.minutes for s in atlas.steps[1:4]] == [10, 10, 10]
    assert atlas.presenter_prep == "standard"


def test_atlas_equity_is_atlas_with_the_equity_question_sets() -> None:
    atlas, equity = LIBRARY["atlas"], LIBRARY["atlas-equity"]
    shape = ("id", "title", "minutes", "prompt", "presenter", "collects", "everyone")
    for plain, woven in zip(atlas.steps, equity.steps, strict=True):
        assert [getattr(plain, f) for f in shape] == [getattr(woven, f) for f in shape]
    assert equity.presenter_prep == "equity"
    asked = {step.id: " ".join(step.questions) for step in equity.steps}
    assert "What does the student see in his or her work?" in asked["interpret"]
    assert "students' perception of quality" in asked["implications"]
    assert "How does my conception of equity impact what I assign?" in asked["debrief"]
    # ATLAS's moves are kept beside the equity questions: the student as a silent member of
    # the group, inferring their thinking, asking each other (they were left out).
    guided = {step.id: " ".join(step.guidance) for step in equity.steps}
    assert "silent member of the group" in guided["getting-started"]
    assert "Infer what the student was thinking" in guided["interpret"]
    assert "Ask each other questions" in guided["interpret"]


def test_dese_everyday_has_the_three_questions_and_times() -> None:
    everyday = LIBRARY["dese-everyday"]
    assert [s.minutes for s in everyday.steps] == [10, 15, 15]
    assert [s.prompt for s in everyday.steps] == [
        "What are our expectations for student work for this lesson and task?",
        "To what extent did students meet the learning goals of the lesson?",
        "What will we do to both shift our instructional practice and address specific areas "
        "for growth?",
    ]


def test_dese_deep_dive_spends_most_of_its_hour_on_the_last_three_steps() -> None:
    deep = LIBRARY["dese-deep-dive"]
    assert [s.title for s in deep.steps][2] == "Pause and Check: Consider Your Biases"
    assert 50 <= deep.live_minutes <= 70
    assert sum(s.minutes for s in deep.steps[-3:]) > deep.live_minutes / 2
    assert deep.step(3).questions


@pytest.mark.parametrize(
    ("protocol_id", "step_id", "presenter", "collects"),
    [
        ("tuning", "feedback", "silent", "warm"),
        ("collaborative-assessment", "questions", "silent", "question"),
        ("consultancy", "discussion", "silent", "interpretation"),
    ],
)
def test_presenter_listens_where_the_protocol_says(
    protocol_id: str, step_id: str, presenter: str, collects: str
) -> None:
    step = next(s for s in LIBRARY[protocol_id].steps if s.id == step_id)
    assert (step.presenter, step.collects) == (presenter, collects)


@pytest.mark.parametrize("protocol_id", sorted(BUILTIN_IDS))
def test_builtin_steps_fit_a_slack_thread(protocol_id: str) -> None:
    protocol = LIBRARY[protocol_id]
    assert protocol.presenter_prep in PREP_KINDS
    for step in protocol.steps:
        assert len(step.prompt) < 300, step.id
        assert 2 <= len(step.guidance) <= 4, step.id
        assert all(len(bullet) < 200 for bullet in step.guidance), step.id
        assert step.presenter in PRESENTER_MODES and step.collects in TAGS
        if step.template is not None:
            assert (render.MESSAGES_DIR / step.template).is_file()


def test_step_is_numbered_from_one() -> None:
    atlas = LIBRARY["atlas"]
    assert atlas.step(1) is atlas.steps[0]
    assert atlas.step(6) is atlas.steps[-1]
    assert atlas.live_minutes == sum(s.minutes for s in atlas.steps)
    for index in (0, 7, -1):
        with pytest.raises(IndexError):
            atlas.step(index)


def test_loaded_protocols_are_frozen() -> None:
    atlas = LIBRARY["atlas"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        atlas.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        atlas.steps[0].minutes = 1  # type: ignore[misc]


# --- validation ------------------------------------------------------------------------------

TAG_LIST = ", ".join(TAGS)

BROKEN: list[tuple[str, Any, str, str]] = [
    ("not-yaml", "id: mini\nsteps: [\n", "(file)", "invalid YAML"),
    ("bad-indent", "id: mini\n name: x\n", "(file)", "invalid YAML"),
    ("empty", "", "(file)", "must be a mapping of protocol fields (got nothing)"),
    ("a-list", "- id: mini\n", "(file)", "must be a mapping of protocol fields (got a list)"),
    ("no-name", without("name"), "name", "is required"),
    ("no-steps", without("steps"), "steps", "is required"),
    ("null-source", good(source=None), "source", "is required"),
    ("unknown-key", good(colour="red"), "colour", "unknown field"),
    ("bad-id", good(id="ATLAS 2"), "id", "must match ^[a-z0-9][a-z0-9-]*$"),
    ("id-number", good(id=7), "id", "(got 7)"),
    ("name-number", good(name=12), "name", "must be text (got 12)"),
    ("two-line-name", good(name="Mini\nprotocol"), "name", "must be one line"),
    (
        "block-name",
        yaml.safe_dump(GOOD).replace("name: Mini protocol", "name: |\n  Mini\n  protocol", 1),
        "name",
        "must be one line",
    ),
    ("empty-summary", good(summary="  "), "summary", "must not be empty"),
    ("bad-prep", good(presenter_prep="fancy"), "presenter_prep", "standard, equity"),
    ("no-step", good(steps=[]), "steps", "must list at least one step"),
    ("steps-mapping", good(steps={"id": "x"}), "steps", "must be a list"),
    ("step-text", good(steps=["describe"]), "steps[1]", "must be a mapping of step fields"),
    ("step-no-prompt", without_step_key("prompt"), "steps[1].prompt", "is required"),
    ("step-unknown-key", with_step(colour="red"), "steps[1].colour", "unknown field"),
    ("step-bad-id", with_step(id="Describe"), "steps[1].id", "must match"),
    ("dup-step-id", with_step(id="debrief"), "steps[2].id", "duplicate step id 'debrief'"),
    (
        "dup-step-title",
        with_step(title=GOOD["steps"][1]["title"]),
        "steps[2].title",
        f"duplicate step title {GOOD['steps'][1]['title']!r} (also steps[1])",
    ),
    ("two-line-title", with_step(title="Describe\r\nthe work"), "steps[1].title", "one line"),
    ("zero-minutes", with_step(minutes=0), "steps[1].minutes", "must be from 1 to 600 (got 0)"),
    ("many-minutes", with_step(minutes=601), "steps[1].minutes", "from 1 to 600"),
    ("text-minutes", with_step(minutes="10"), "steps[1].minutes", "(got '10')"),
    ("float-minutes", with_step(minutes=2.5), "steps[1].minutes", "whole number"),
    (
        "bool-minutes",
        with_step(minutes=True),
        "steps[1].minutes",
        "whole number of minutes (got true)",
    ),
    (
        "bad-collects",
        with_step(collects="obs"),
        "steps[1].collects",
        f"must be one of {TAG_LIST} (got 'obs')",
    ),
    ("bad-presenter", with_step(presenter="quiet"), "steps[1].presenter", "silent, speaks, only"),
    ("guidance-text", with_step(guidance="Look."), "steps[1].guidance", "must be a list"),
    ("guidance-item", with_step(guidance=["ok", 3]), "steps[1].guidance[2]", "must be text"),
    ("long-prompt", with_step(prompt="x" * 301), "steps[1].prompt", "at most 300 characters"),
    ("bad-everyone", with_step(everyone="yes"), "steps[1].everyone", "true or false (got 'yes')"),
    ("questions-null", with_step(questions=None), "steps[1].questions", "must be a list"),
    ("no-template", with_step(template="nope.j2"), "steps[1].template", "no such template"),
    ("escape-template", with_step(template="../pyproject.toml"), "steps[1].template", "inside"),
    ("bad-statement", with_step(statement="yes"), "steps[1].statement", "true or false"),
    (
        "key-twice",
        yaml.safe_dump(GOOD).replace("  prompt:", "  prompt: What do you see?\n  prompt:", 1),
        "(file)",
        "invalid YAML: found the key 'prompt' twice (line",
    ),
    (
        "two-statements",
        good(steps=[{**step, "statement": True} for step in GOOD["steps"]]),
        "steps[2].statement",
        "only one step can open with the statement (steps[1] does)",
    ),
]


def test_the_statement_opens_step_1_unless_a_step_says_otherwise(tmp_path: Path) -> None:
    assert load_protocol(write(tmp_path / "mini.yaml", GOOD)).statement_step == 1
    marked = good(steps=[GOOD["steps"][0], {**GOOD["steps"][1], "statement": True}])
    assert load_protocol(write(tmp_path / "marked.yaml", marked)).statement_step == 2
    assert LIBRARY["collaborative-assessment"].statement_step == 5
    assert {p.statement_step for k, p in LIBRARY.items() if k != "collaborative-assessment"} == {1}


@pytest.mark.parametrize(
    ("name", "content", "field", "problem"), BROKEN, ids=[case[0] for case in BROKEN]
)
def test_broken_file_names_file_field_and_problem(
    tmp_path: Path, name: str, content: Any, field: str, problem: str
) -> None:
    path = write(tmp_path / f"{name}.yaml", content)
    with pytest.raises(ProtocolError) as caught:
        load_protocol(path)
    error = caught.value
    assert (error.file, error.field) == (str(path), field)
    assert problem in error.problem
    assert str(error) == f"{path}: {field}: {error.problem}"


def test_good_file_loads(tmp_path: Path) -> None:
    protocol = load_protocol(write(tmp_path / "mini.yaml", GOOD))
    assert protocol.id == "mini" and protocol.live_minutes == 15
    assert protocol.step(1).everyone is False and protocol.step(2).everyone is True
    assert protocol.step(2).guidance == () and protocol.step(1).questions == ()
    assert protocol.path == tmp_path / "mini.yaml"


def test_presenter_prep_may_be_null_or_absent(tmp_path: Path) -> None:
    assert (
        load_protocol(write(tmp_path / "a.yaml", good(presenter_prep=None))).presenter_prep is None
    )
    assert (
        load_protocol(write(tmp_path / "b.yaml", without("presenter_prep"))).presenter_prep is None
    )


def test_template_must_exist_in_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    messages = tmp_path / "messages"
    messages.mkdir()
    (messages / "custom_step.j2").write_text("{{ step.title }}")
    monkeypatch.setattr(render, "MESSAGES_DIR", messages)
    protocol = load_protocol(write(tmp_path / "t.yaml", with_step(template="custom_step.j2")))
    assert protocol.step(1).template == "custom_step.j2"


# --- the library ----------------------------------------------------------------------------


def test_a_bad_file_does_not_stop_the_others(tmp_path: Path) -> None:
    write(tmp_path / "a-good.yaml", good(id="first"))
    write(tmp_path / "b-bad.yaml", with_step(collects="obs"))
    write(tmp_path / "c-good.yml", good(id="second"))
    (tmp_path / "notes.txt").write_text("not a protocol")
    protocols, errors = load_library([tmp_path])
    assert list(protocols) == ["first", "second"]
    assert [(e.file, e.field) for e in errors] == [
        (str(tmp_path / "b-bad.yaml"), "steps[1].collects")
    ]


def test_operator_dir_adds_protocols_and_duplicates_are_reported(tmp_path: Path) -> None:
    write(tmp_path / "ours.yaml", good(id="ours"))
    write(tmp_path / "atlas-again.yaml", good(id="atlas"))
    protocols, errors = load_library([BUILTIN_DIR, tmp_path])
    assert set(protocols) == BUILTIN_IDS | {"ours"}
    assert protocols["atlas"].path == BUILTIN_DIR / "atlas.yaml"
    assert len(errors) == 1
    error = errors[0]
    assert (error.file, error.field) == (str(tmp_path / "atlas-again.yaml"), "id")
    assert "duplicate protocol id 'atlas'" in error.problem
    assert str(BUILTIN_DIR / "atlas.yaml") in error.problem


def test_missing_directory_is_an_error_not_a_crash(tmp_path: Path) -> None:
    protocols, errors = load_library([tmp_path / "absent", BUILTIN_DIR])
    assert set(protocols) == BUILTIN_IDS
    assert [(e.field, e.problem) for e in errors] == [("(directory)", "not found")]


# --- generated docs --------------------------------------------------------------------------


def test_docs_are_up_to_date() -> None:
    expected = render_docs(LIBRARY)
    actual = DOCS_PATH.read_text(encoding="utf-8") if DOCS_PATH.exists() else ""
    assert actual == expected, "docs/protocols.md is out of date: run `protocolbot protocols docs`"


def test_docs_show_every_step_and_a_diagram() -> None:
    docs = render_docs(LIBRARY)
    assert docs.count("```mermaid") == len(LIBRARY)
    for protocol in LIBRARY.values():
        assert f"`{protocol.id}`" in docs
        for step in protocol.steps:
            assert step.title in docs
    assert "| 2 | Describing the Student Work | What do you see? | group; presenter silent" in docs


def test_a_step_written_from_another_with_a_merge_key_loads(tmp_path: Path) -> None:
    # `- <<: *describe` (YAML's way to write a step like another) was "invalid YAML: could
    # not determine a constructor for the tag 'tag:yaml.org,2002:merge'".
    text = yaml.safe_dump(GOOD, sort_keys=False)
    text = text.replace("- id: describe", "- &describe\n  id: describe")
    text += "- <<: *describe\n  id: again\n  title: Describe again\n"
    protocol = load_protocol(write(tmp_path / "mini.yaml", text))
    assert [step.id for step in protocol.steps] == ["describe", "debrief", "again"]
    again = protocol.step(3)
    assert (again.title, again.prompt, again.minutes) == ("Describe again", "What do you see?", 10)
    with pytest.raises(ProtocolError, match="found the key 'title' twice"):
        load_protocol(write(tmp_path / "mini.yaml", text + "  title: Twice\n"))
