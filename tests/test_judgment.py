"""Offline reply classifiers: labelled-set quality bars, explicit examples, and tag prefixes."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.judgment import Row, load, score
from bot.engine.judgment import (
    asks_presenter_for_context,
    reads_as_interpretation,
    strip_tag_prefix,
)

REMARKS = load("remarks.tsv")
QUESTIONS = load("context_questions.tsv")


# --- The labelled sets themselves ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "labels", "minimum"),
    [
        (REMARKS, {"description", "interpretation"}, 240),
        (QUESTIONS, {"context", "other"}, 80),
    ],
)
def test_labelled_set_is_well_formed(rows: list[Row], labels: set[str], minimum: int) -> None:
    assert len(rows) >= minimum
    assert {r.label for r in rows} == labels
    assert {r.split for r in rows} == {"train", "heldout"}
    texts = Counter(r.text.lower() for r in rows)
    assert [t for t, n in texts.items() if n > 1] == []
    # Roughly balanced, so precision and recall both mean something.
    share = Counter(r.label for r in rows).most_common(1)[0][1] / len(rows)
    assert share <= 0.6


def test_remarks_keep_a_real_heldout_split() -> None:
    assert sum(r.split == "heldout" for r in REMARKS) >= 60


# --- Quality bars --------------------------------------------------------------------------------


def test_interpretation_bar_on_whole_set() -> None:
    s = score(REMARKS, "interpretation", reads_as_interpretation)
    assert s.precision >= 0.9, s
    assert s.recall >= 0.85, s


def test_context_bar_on_whole_set() -> None:
    s = score(QUESTIONS, "context", asks_presenter_for_context)
    assert s.precision >= 0.85, s
    assert s.recall >= 0.85, s


def test_heldout_does_not_regress() -> None:
    # A floor under today's held-out figures (bench prints the real ones), not the target bar:
    # tuning rules until held-out rows pass would stop them being held out.
    heldout = [r for r in REMARKS if r.split == "heldout"]
    s = score(heldout, "interpretation", reads_as_interpretation)
    assert s.precision >= 0.9, s
    assert s.recall >= 0.75, s


# --- Explicit examples ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I notice the student wrote 3/4 + 1/4 = 4/8", False),
        ("The essay is disorganized.", True),
        ("I see three crossed-out attempts", False),
        ("She clearly understands place value", True),
        ("Strong thesis.", True),
        ("I think he ran out of time.", True),
        ("It looks like he didn't understand regrouping.", True),
        ("This is below grade level.", True),
        ("The rubric is stapled to the back", False),
        ("It meets the rubric in every row", True),
        ("There are no units on the final answer.", False),
        # Words inside quotes are the student's, not the speaker's.
        ('The hypothesis says "I think the plant will grow."', False),
        ("The student wrote “probably” twice.", False),
        # ...and so is a word named as a mark on the page, as typed without quote marks.
        ("Good is underlined twice", False),
        ("Nice appears three times on page 2", False),
        ("The word wrong is circled in red", False),
        ("Good work is underlined", True),
        # ...a word the student wrote a number of times, and the words named as a list.
        ("The student wrote good three times", False),
        ("She used nice twice on page 2", False),
        ("He circled nice and great three times", False),
        ("She used nice a lot", False),
        ("He wrote good in every paragraph", False),
        ("She wrote nice at the end", False),
        ("He wrote great in the margin", False),
        ("She wrote good sentences at the end", True),
        ("She wrote well at the end", True),
        ("In the margin she wrote nice", False),
        ("At the top the student wrote great.", False),
        ("At the end she wrote good sentences", True),
        ("At the end she wrote well", True),
        ("She used good strategies a lot", True),
        # A word misspelt is a checkable fact, as one spelt correctly is.
        ("She misspelled wrong twice", False),
        ('She misspelt "because" in every paragraph', False),
        ("The words good and nice are circled", False),
        ("Good, nice and great are underlined", False),
        ("The words good, nice, and great are boxed", False),
        ("She chose the words carefully", True),
        ("She wrote good sentences three times", True),
        ("The words are good and the ending is nice", True),
        # So are the page's words given after a colon, to the end of their line.
        ("The last line reads: it was a good day", False),
        ("He wrote: 12\nGood thinking though", True),
        # ...and words given capitalised, as a title is, after what says them.
        ("The title says Good Times", False),
        ("She titled it My Perfect Day", False),
        ("The heading reads Wrong Answers", False),
        ("The title is My Best Day", False),
        ("The caption was Great Lakes", False),
        ("The title is good", True),
        ("The label says Great Lakes and the map is messy", True),
        # ...and words the page says in its writer's first person, to the clause's end.
        ("It says I did a good job", False),
        ("Her reflection reads I worked hard and my graph is neat", False),
        ("It says I did a good job, and the essay is sloppy", True),
        ("It says I did a good job and the essay is sloppy", True),
        ("I said I liked it", True),
        # ...and praise written on the page, by a teacher or a sticker or stamp, in its stock words.
        ("The sticker says great work", False),
        ("She wrote good job at the top", False),
        ("The stamp reads well done!", False),
        ("Her teacher wrote great effort", False),
        ("The sticker says great work and the essay is sloppy", True),
        ("The student wrote good work", True),
        ("She did a good job", True),
        ("I said great job", True),
        # How the work reads is a verdict on it.
        ("The essay reads well", True),
        ("It flows smoothly from the claim to the evidence", True),
        ("The argument works well", True),
        ("He writes well in every paragraph", True),
        ("She explained it well", True),
        ("She wrote a title as well", False),
        ("The graph works as a summary of the table", False),
        ("The student's map has a compass rose but no key.", False),
        ("She doesn't see the connection between the documents.", True),
        # A helper verb before a mark made by hand is a description; before anything else, not.
        ("The student is counting by 5s", False),
        ("She correctly spelled all 10 words", False),
        ("She's friendly", True),
        ("They are subtracting in column 2 and have circled the answers", False),
        ("She is making connections between the two texts", True),
        ("He is confused by the second question", True),
        ("O: she gets it", True),
        # Saying what one likes is a judgment too (the Collaborative Assessment Conference:
        # describe "without judging its quality or saying what you like").
        ("I like how she labelled the axes.", True),
        ("I really like the drawing", True),
        ("I don't like the last paragraph", True),
        ("My favorite part is the diagram", True),
        ("The student drew a tree like the one in the book", False),
        # Subject words said to a degree are a verdict; said plainly, a description.
        ("Very organized work", True),
        ("The diagram is so detailed", True),
        ("The table is organized into three columns", False),
        # In Spanish, as many teachers write: judgments and inferences, and descriptions.
        ("Creo que no entendió la pregunta", True),
        ("Parece que se confundió con las fracciones", True),
        ("El título está bien escrito", True),
        ("La conclusión es débil", True),
        ("Me gustó el dibujo", True),
        ("El estudiante escribió tres párrafos y subrayó el título", False),
        ("Hay dos dibujos en la primera página", False),
        ("La respuesta dice 4/8 y no tiene unidades", False),
        ("There is a units error in row 2", False),
        ("", False),
    ],
)
def test_reads_as_interpretation(text: str, expected: bool) -> None:
    assert reads_as_interpretation(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Is this the first draft?", True),
        ("Were they allowed to use a calculator?", True),
        ("What did the rubric say?", True),
        ("Can you tell us what the prompt was?", True),
        ("Q: was there a word bank?", True),
        ("I'm curious whether this was a timed write.", True),
        ("What do others notice about the margins?", False),
        ("Does anyone else see the arrow on page 2?", False),
        ("Isn't it interesting how she used color?", False),
        ("That's a lot of crossed-out work, right?", False),
        ("This is the first draft.", False),
        ("Does she understand what a variable is?", False),
        ("Is that a 7 or a 1 in the second row?", False),
        ("Maria, is this the final draft", True),
        ("@maria was this done in class", True),
        # In Spanish, as many teachers write.
        ("¿Fue un borrador?", True),
        ("¿Tenían rúbrica?", True),
        ("¿Cuánto tiempo tuvieron?", True),
        ("Maria, ¿fue en clase?", True),
        ("Me pregunto si fue cronometrado", True),
        ("¿Alguien más ve la flecha?", False),
        ("¿Crees que entendió la consigna?", False),
        ("El título está subrayado.", False),
        ("", False),
    ],
)
def test_asks_presenter_for_context(text: str, expected: bool) -> None:
    assert asks_presenter_for_context(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Wondering aloud about the student's mind is an interpretation, not a question...
        ("I wonder if she ran out of time", False),
        ("I wonder if she ran out of time?", False),
        ("I'm wondering whether he understood the prompt.", False),
        ("I wonder if he rushed the last part", False),
        ("Wondering if they got confused by the directions", False),
        ("I wonder whether she forgot to carry the one.", False),
        ("I'm curious if he knew the formula already", False),
        # ...and wondering about the conditions of the work is one for the presenter.
        ("I wonder if this was a timed write.", True),
        ("I wonder whether they had a word bank", True),
        ("I'm wondering if students could use their notes?", True),
        ("I wonder if she had a calculator.", True),
        ("I wonder about the time limit", True),
        ("I'd love to know if they had a rubric", True),
        ("I'd love to know what she was thinking", False),
        ("I wonder about her understanding of fractions", False),
        ("Curious whether this is the first draft", True),
    ],
)
def test_wondering_about_the_student_is_not_a_question_for_the_presenter(
    text: str, expected: bool
) -> None:
    assert asks_presenter_for_context(text) is expected
    if not expected:
        assert reads_as_interpretation(text)


# --- Tag prefixes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The margins are full of doodles.", (None, "The margins are full of doodles.")),
        ("Q: is this a draft?", ("question", "is this a draft?")),
        ("obs : three paragraphs", ("observation", "three paragraphs")),
        ("*I:* she gets it", ("interpretation", "she gets it")),
        ("_Q:_ was it timed?", ("question", "was it timed?")),
        ("*O*: two handwritings", ("observation", "two handwritings")),
        ("*Q: was it timed?*", ("question", "was it timed?")),
        ("**Obs:** no units", ("observation", "no units")),
        ("  Observation:   the title is underlined  ", ("observation", "the title is underlined")),
        ("Interp: rushing", ("interpretation", "rushing")),
        ("INTERPRETATION: rushing", ("interpretation", "rushing")),
        ("Imp: more number talks", ("implication", "more number talks")),
        ("Implication: reteach", ("implication", "reteach")),
        ("Question: which draft?", ("question", "which draft?")),
        ("Qs: timed? word bank?", ("question", "timed? word bank?")),
        ("warm: lovely labels", ("warm", "lovely labels")),
        ("Cool:the thesis", ("cool", "the thesis")),
        # Ordinary openers, not prefixes: the reply keeps its step's tag.
        ("Reflection: I learned a lot", (None, "Reflection: I learned a lot")),
        ("Note: follow up", (None, "Note: follow up")),
        ("I: ", ("interpretation", "")),
        ("Observations show a pattern", (None, "Observations show a pattern")),
        ("Pregunta: ¿fue con tiempo?", ("question", "¿fue con tiempo?")),
        ("Observé: dos colores", (None, "Observé: dos colores")),
        ("Cálido: el gancho", ("warm", "el gancho")),
        ("Frio - no hay rúbrica", (None, "Frio - no hay rúbrica")),
        ("Observations:\n- no title", ("observation", "- no title")),
        ("Questions - which draft?", (None, "Questions - which draft?")),
        ("Quiet: please", (None, "Quiet: please")),
        ("I think: maybe", (None, "I think: maybe")),
        ("See page 2: the graph", (None, "See page 2: the graph")),
        # An emoji after the first word is not a prefix's colon.
        ("I :heart: how she labelled both axes", (None, "I :heart: how she labelled both axes")),
        ("Warm :fire: the hook", (None, "Warm :fire: the hook")),
        ("O :+1::skin-tone-2: same", (None, "O :+1::skin-tone-2: same")),
        ("Warm: :fire: the hook", ("warm", ":fire: the hook")),
        ("O::eyes: three attempts", ("observation", ":eyes: three attempts")),
        # A dash and a space end a prefix spelt out or shortened; after a letter alone, or
        # warm or cool, it is a sentence.
        ("Obs - two handwritings", ("observation", "two handwritings")),
        ("Interp -- she rushed the end", ("interpretation", "she rushed the end")),
        ("Interpretation – she rushed", ("interpretation", "she rushed")),
        ("Question— was it timed?", ("question", "was it timed?")),
        ("*Imp* - more number talks", ("implication", "more number talks")),
        ("I — like Sam — noticed no units", (None, "I — like Sam — noticed no units")),
        ("Q - 3 has no work shown", (None, "Q - 3 has no work shown")),
        ("I - I mean, she did try", (None, "I - I mean, she did try")),
        # "O - " before a word labels an observation as "Obs - " does; not before a number.
        ("O - two handwritings", ("observation", "two handwritings")),
        ("O - the dates are out of order", ("observation", "the dates are out of order")),
        ("O - 3 has no label", (None, "O - 3 has no label")),
        ("Cool - I see what you mean", (None, "Cool - I see what you mean")),
        ("Warm - thanks all", (None, "Warm - thanks all")),
        ("Cool feedback - no units", ("cool", "no units")),
        ("*Warm feedback:* the hook", ("warm", "the hook")),
        ("Obs-rings", (None, "Obs-rings")),
        (
            "*Obs*\n- three paragraphs\n- no title",
            ("observation", "- three paragraphs\n- no title"),
        ),
        ("O\nthe student", (None, "O\nthe student")),
        # A shortened prefix's full stop ends it as a colon would; not "Q." before a number.
        ("Obs. two handwritings", ("observation", "two handwritings")),
        ("*Obs.* two handwritings", ("observation", "two handwritings")),
        ("Q. was it timed?", ("question", "was it timed?")),
        ("Interp.: rushing", ("interpretation", "rushing")),
        ("Q. 3 has no work shown", (None, "Q. 3 has no work shown")),
        ("I. she rushed", (None, "I. she rushed")),
        # A list's bullet or number before the prefix (Slack sends a list made in its composer
        # as "• ..."; a phone sends "- " as typed) goes with it, and heads a longer list still.
        ("• I: she rushed the end", ("interpretation", "she rushed the end")),
        ("- Q: was it timed?", ("question", "was it timed?")),
        ("1. Cool: the thesis", ("cool", "the thesis")),
        ("  ◦ *Obs:* no units", ("observation", "no units")),
        ("• O: two circles\n• four parts", ("observation", "• two circles\n• four parts")),
        ("• The margins are full", (None, "• The margins are full")),
        ("3. I think so", (None, "3. I think so")),
        # Emoji before a prefix stay in the words: they say something too.
        (":snowflake: Cool: no units", ("cool", ":snowflake: no units")),
        (":eyes::pencil2: O: two circles", ("observation", ":eyes::pencil2: two circles")),
        (":+1::skin-tone-2: Warm: the hook", ("warm", ":+1::skin-tone-2: the hook")),
        (":snowflake: no units", (None, ":snowflake: no units")),
        ("\U0001f440 O: two circles", ("observation", "\U0001f440 two circles")),
        (
            "\U0001f469\u200d\U0001f3eb\ufe0f Q: timed?",
            ("question", "\U0001f469\u200d\U0001f3eb\ufe0f timed?"),
        ),
        ("\u2744\ufe0f no units", (None, "\u2744\ufe0f no units")),
        (":snowflake: Cool:", ("cool", "")),  # a prefix alone, its words to come in an edit
    ],
)
def test_strip_tag_prefix(text: str, expected: tuple[str | None, str]) -> None:
    assert strip_tag_prefix(text) == expected
