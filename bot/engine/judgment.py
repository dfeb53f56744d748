"""Offline rules that read a reply: judgment or description, context question, tag prefix."""

from __future__ import annotations

import re

# --- Tag prefixes --------------------------------------------------------------------------------


def _es(word: str) -> tuple[str, ...]:
    """A Spanish prefix as written, and without its accent, as often typed."""
    return word, word.replace("ó", "o")


# Each tag with the prefixes that select it (PRODUCT.md 3.3, with "Question:" spelt out as the
# others are and "Imp:"/"Implication:" for the one kind it gives none), matched case-insensitively.
# No "Note:" or "Reflection:": people open ordinary sentences with them, and they would move a reply
# out of its step's column unasked. A plural heads a list of that kind ("Observations:" and a
# line each), with its colon only. Spanish, which many teachers write in, names the kinds too.
_TAG_ALIASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("observation", ("o", "obs", "observation", "observations", *_es("observación"))),
    (
        "interpretation",
        ("i", "interp", "interpretation", "interpretations", *_es("interpretación")),
    ),
    ("implication", ("imp", "implication", "implications", *_es("implicación"))),
    ("question", ("q", "qs", "question", "questions", "pregunta")),
    ("warm", ("warm", "warm feedback", "cálido", "cálida", "calido", "calida")),
    ("cool", ("cool", "cool feedback", "frío", "fría", "frio", "fria")),
)
TAG_PREFIXES: dict[str, str] = {alias: tag for tag, aliases in _TAG_ALIASES for alias in aliases}

# Slack mrkdwn wrappers people put around a prefix: *bold*, _italic_, ~strike~ (and ** from
# Markdown habits). They may close before the colon ("*O*:") or after it ("*O:*").
_WRAP = r"[*_~]{0,2}"
# The prefix's colon is not the first of an emoji's two: "I :heart: how she labelled the axes".
_NOT_EMOJI = r"(?![\w+'-]+:)"
# What may come before a prefix and show nothing: spaces, and the invisible characters that a
# paste or a keyboard puts there (zero-width spaces and joiners, direction marks, byte order marks).
_UNSEEN = r"[\s\u200b-\u200f\u2060\ufeff]*"
# A prefix ends with a colon or, after a word spelt out or shortened ("Obs - two handwritings"),
# with a dash and a space, as people write a label, or with its line ("*Obs*" over a list). Not
# after a letter alone ("I - I mean", "Q - 3 has no work shown" are sentences; "O - " before a
# word is one, _dashed_o) nor after Warm or Cool ("Cool - I see"); after "Warm feedback" or
# "Cool feedback", as the Tuning Protocol names them, it is one. A dash on the next line is a
# list's first bullet, and stays.
_PREFIX_RE = re.compile(
    rf"^{_UNSEEN}(?P<open>{_WRAP})\s*(?P<word>[^\W\d_]+(?:\s+feedback)?)\s*(?P<mid>{_WRAP})"
    rf"(?:\s*(?P<colon>:){_NOT_EMOJI}|[ \t]*(?P<dash>--?|\u2013|\u2014)(?=\s)|[ \t]*(?=\n))"
    rf"\s*(?P<close>{_WRAP})\s*",
    re.IGNORECASE,
)
# The full-width forms of ASCII, and the ideographic space, that Chinese, Japanese and Korean
# input methods type for the plain ones ("Ｏ：" for "O:"): read one for one, so that a prefix
# typed so is found where it stands, and the words after it are kept as typed.
_PLAIN = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
# How far into a reply a prefix may end: far past "**Interpretation** :" after a few unseen.
_PREFIX_REACH = 64
# A shortened prefix may end with its abbreviation's full stop, as notes are written ("Obs. two
# handwritings", "Q. was it timed?", "Interp.: rushing"): read as its colon. Not "Q." before a
# number ("Q. 3 has no work shown" names a question on the page).
_DOTTED = re.compile(
    rf"^({_UNSEEN}{_WRAP}\s*(?:obs|interp|imp|q(?!\.\s*\d))\s*{_WRAP})\.(?=[\s:*_~])",
    re.IGNORECASE,
)
_DASHED = frozenset(
    {"obs", "observation", "interp", "interpretation", "imp", "implication", "question"}
    | {"warm feedback", "cool feedback", "pregunta", *_es("observación")}
    | {*_es("interpretación"), *_es("implicación")}
)


def _dashed_o(word: str, match: re.Match[str], text: str) -> bool:
    """ "O - the dates are out of order": the Observation prefix and a dash, as "Obs - " is, the
    way notes are jotted. Not before a number ("O - 3 has no label" names a point or an item, as
    "Q - 3" does), nor on a line of its own; "I - " stays a sentence ("I - I mean ...")."""
    return word == "o" and match["dash"] is not None and text[match.end() :][:1].isalpha()


# A list's bullet or number before a prefix: Slack's composer makes a list of "- O: ..." or
# "1. O: ...", and sends its text as "• O: ..." (a nested item's as "◦"); phones send the typed
# "- " as it is. Not "*O:*": a bullet is followed by a space.
_BULLET = re.compile(rf"^{_UNSEEN}(?:[•◦▪‣]|[-*](?=\s)|\d{{1,2}}[.)])[ \t]+")


# Emoji before a prefix (":snowflake: Cool: no units"), by code or as a phone types them
# ("🤔 I: ..."), with their skin tones and joiners: they say something, and stay in the words.
_EMOJI_FIRST = re.compile(
    rf"^{_UNSEEN}(?::[\w+'-]+:|[\u2600-\u27bf\U0001f000-\U0001faff][\ufe0f\u200d\U0001f3fb-\U0001f3ff]*)+"
    r"[ \t]+"
)


# What marks a reply as warm or cool feedback in a step that takes feedback, when it opens with
# it: the emoji the bot marks that kind with, by code or as typed (":snowflake: no exemplar"),
# or the kind's name and a dash ("Cool - no exemplar"), which elsewhere is as often a sentence.
_FEEDBACK_MARK = re.compile(
    rf"^{_UNSEEN}(?::(?P<code>sunny|snowflake):|(?P<symbol>[\u2600\u2744])\ufe0f?"
    r"|(?P<word>warm|cool)\s*(?:--?|\u2013|\u2014)\s)",
    re.IGNORECASE,
)


def feedback_mark(text: str) -> str | None:
    """The kind of feedback ("warm" or "cool") a reply is marked as at its start, if any."""
    match = _FEEDBACK_MARK.match(text)
    if match is None:
        return None
    if match["word"]:
        return match["word"].lower()
    warm = (match["code"] or "").lower() == "sunny" or match["symbol"] == "\u2600"
    return "warm" if warm else "cool"


def strip_tag_prefix(text: str) -> tuple[str | None, str]:
    """Return (tag or None, text without the tag prefix), reading Slack's bold/italic wrappers,
    and a list's bullet or emoji before it. The bullet goes with the prefix from a list of one
    item, and stays at the head of a longer list; the emoji stay."""
    emoji = _EMOJI_FIRST.match(text)
    if emoji is not None:
        tag, rest = strip_tag_prefix(text[emoji.end() :])
        if tag is None:
            return None, text.strip()
        return tag, f"{emoji.group().strip()} {rest}" if rest else ""  # "" : a prefix alone
    bullet = _BULLET.match(text)
    tag, rest = _strip_prefix(text[bullet.end() :] if bullet else text)
    if tag is None:
        return None, text.strip()
    if bullet is None or not any(_BULLET.match(line) for line in rest.split("\n")[1:]):
        return tag, rest
    return tag, f"{bullet.group().strip()} {rest}"


def _strip_prefix(text: str) -> tuple[str | None, str]:
    """strip_tag_prefix for text that opens with its prefix, if it has one."""
    dotted = _DOTTED.match(text)
    if dotted is not None:
        rest = text[dotted.end() :]
        text = f"{dotted[1]}{'' if rest.startswith(':') else ':'}{rest}"
    # A prefix is at the start: its first characters read (a long reply is not translated).
    match = _PREFIX_RE.match(text[:_PREFIX_REACH].translate(_PLAIN))
    word = " ".join(match["word"].lower().split()) if match else ""
    if match is None or word not in TAG_PREFIXES:
        return None, text.strip()
    if match["colon"] is None and word not in _DASHED and not _dashed_o(word, match, text):
        return None, text.strip()
    # A marker after the colon closes the prefix's own ("*O:* text"), and no more: one that
    # opens the words ("O: *two* rows") is theirs.
    close = match["close"][: max(0, len(match["open"]) - len(match["mid"]))]
    rest = text[match.start("close") + len(close) :]
    # Whole-message emphasis ("*Q: is this a draft?*") leaves the closing marker at the end.
    unclosed = match["open"][len(match["mid"]) + len(close) :]
    if unclosed and rest.rstrip().endswith(unclosed):
        rest = rest.rstrip()[: -len(unclosed)]
    return TAG_PREFIXES[word], rest.strip()


# --- Shared normalisation ------------------------------------------------------------------------

# Quoted words belong to the student ('wrote "I think the plant will grow"'), not to the speaker,
# so they must not trigger a judgment. Straight single quotes only count when they sit at word
# edges, so apostrophes in "didn't" or "students'" stay put. Words given after a colon, as
# the page has them ("The last line reads: it was a good day"), are quoted to the line's end, and
# so are words given as a title is, capitalised after what says them ("The title says Good
# Times", "She titled it My Perfect Day", "The title is My Best Day"; not "I", as in "It says I
# should"): those words, and what follows them in lower case ("... says Great Lakes and the map
# is messy") is read.
_QUOTED_RE = re.compile(
    r"\"[^\"]*\"|“[^”]*”|‘[^’]*’|`[^`]*`|(?<!\w)'.+?'(?!\w)|^\s*(?:>|&gt;).*$"
    r"|\b(?:wrote|writes|says|said|reads|asks|asked|answered|titled|labell?ed|states)\s*:.*$"
    r"|\b(?:says|said|reads|titled|called|named|labell?ed|(?:title|heading|caption|headline)"
    r"\s+(?:is|was))(?:\s+(?:it|this|them))?\s+"
    r"(?!I\b)(?:[A-Z][\w'’-]*[,.!?]?(?:[ \t]+|$))+"
    # What the page says in its writer's first person ("It says I did a good job", "Her note
    # reads I worked hard and my graph is neat"), to the end of that clause (a comma, or "and"
    # before other words than "I" or "my"); not the speaker's own ("I said I liked it").
    r"|(?<!\bI )(?<!\b[Ww]e )\b(?:says|said|reads|writes|wrote)\s+(?=I\b)"
    r"(?:(?!,|\s(?:and|but|so|because)\s+(?!(?:I|my)\b))[^.!?;\n])*",
    re.MULTILINE,
)

# The student's words are theirs without quote marks too, where the reply names one as a mark on
# the page ("Good is underlined twice", "Nice appears three times", "the word wrong in red"):
# the subject of how it is marked (or subjects: "Good, nice and great are circled"), "the word"
# named or "the words" listed ("the words good and nice"; not "the words carefully"), or a word
# written or marked a number of times ("wrote good three times", "circled nice twice"; not
# "wrote good sentences three times", which judges them).
_LISTED = r"(?:(?:,\s*(?:and|or)\s+|,\s*|\s+(?:and|or)\s+)[\w']+)*"
_PLACE = (
    r"(?:at|in|on|along|across|under|below|above|beside|next to|near) the (?:very )?"
    r"(?:end|top|bottom|start|beginning|margins?|back|front|side|corner|title|heading)\b"
)
_TIMES = (
    r"(?:(?:once|twice|thrice|(?:\d+|two|three|four|five|six|seven|eight|nine|ten|several|many"
    r"|multiple|a few|a couple of|a dozen|a lot of|lots of) times|a lot|often|repeatedly"
    r"|over and over|throughout|(?:in|on) (?:every|each) (?:line|sentence|paragraph|page))\b"
    r"|" + _PLACE + ")"
)
# A word (or words) written or marked a number of times: the verb (kept, the predicate) and the
# words; not how it was done ("writes well in every paragraph", "wrote it neatly twice"). Or a
# word written in a place on the page ("wrote nice at the end", "good in the margin").
_COUNTED_RE = re.compile(
    r"\b((?:wrote|write|writes|written|typed|types|used|uses|repeated|repeats|spelled|spelt"
    r"|spells|printed|prints|underlined|circled|highlighted|boxed|erased|crossed out|copied"
    r"|traced|capitali[sz]ed|misspelled|misspelt)\s+)"
    r"(?!(?:well|badly|it|this|them)\b|[\w']+ly\b)[\w']+"
    + _LISTED
    + r"(?=\s+(?:again\s+)?"
    + _TIMES
    + r")",
    re.IGNORECASE,
)
# The place first, and the word last in its sentence: "In the margin she wrote nice".
_PLACED_RE = re.compile(
    r"\b(" + _PLACE + r",?\s+(?:[\w']+\s+){1,3}?(?:wrote|writes|typed|printed|underlined|circled"
    r"|highlighted|boxed)\s+)(?!(?:well|badly|it|this|them)\b|[\w']+ly\b)[\w']+(?=\s*[.!]?\s*$)",
    re.IGNORECASE | re.MULTILINE,
)
_MENTIONED_RE = re.compile(
    r"(?:^|(?<=[.!?;:]\s))(?!(?:he|she|they|i|we|you)\b)[\w']+"
    + _LISTED
    + r"(?=\s+(?:(?:is|was|are|were)\s+(?:also\s+|\w+ly\s+)?"
    r"(?:underlined|circled|highlighted|boxed|bolded|crossed out|struck through|scratched out"
    r"|written|printed|typed|spelt|spelled|misspelt|misspelled|capitali[sz]ed|erased|repeated"
    r"|copied|traced|scribbled|used|in (?:bold|capitals|caps|all caps|red|blue|green|pencil|pen))"
    r"|appears|occurs|shows up|comes up)\b)"
    r"|\bthe word [\w']+|\bthe words (?![\w']*ly\b)[\w']+" + _LISTED.replace(")*", ")+"),
    re.IGNORECASE | re.MULTILINE,
)


# Praise as a teacher writes it on the page, or a sticker or stamp puts it there ("The sticker
# says great work", "She wrote good job at the top"): stock words of a comment, which describe
# the page as any words written on it do. After what the page says, "great work" is one; after
# "wrote", not ("The student wrote good work" judges what the student wrote), while "good job"
# can't be what a student writes but as words.
_PRAISED = (
    r"(?:good|great|nice|excellent|awesome|super|fantastic|amazing|wonderful|terrific"
    r"|outstanding|brilliant|fabulous|perfect|superb)"
)
_STOCK = r"|well done|way to go|keep it up|nice going"
_STOCK_PRAISE_RE = re.compile(
    r"\b((?:says|reads|stamped|printed)\s+)(?:"
    + _PRAISED
    + r"\s+(?:job|work|effort|try|thinking)"
    + _STOCK
    + r")\b!*"
    r"|\b((?:wrote|writes|typed)\s+)(?:" + _PRAISED + r"\s+(?:job|effort|try)" + _STOCK + r")\b!*",
    re.IGNORECASE,
)


def _normalise(text: str) -> str:
    """Drop the tag prefix and quoted spans (and the words named as marks on the page),
    lower-case, and straighten apostrophes."""
    _, body = strip_tag_prefix(text)
    body = _MENTIONED_RE.sub(" ", _QUOTED_RE.sub(" ", body))
    body = _PLACED_RE.sub(r"\1 ", _COUNTED_RE.sub(r"\1 ", body))
    body = _STOCK_PRAISE_RE.sub(lambda m: f"{m[1] or m[2]} ", body)
    return " ".join(body.replace("’", "'").lower().split())


_TOKEN_RE = re.compile(r"[a-z']+")


def _words(*patterns: str) -> re.Pattern[str]:
    """Compile alternatives as whole words/phrases."""
    return re.compile(r"\b(?:" + "|".join(patterns) + r")\b")


def _lexicon(words: str) -> frozenset[str]:
    """Whitespace-separated words as a frozenset: long lexicons stay readable in the source."""
    return frozenset(words.split())


# --- Interpretation ------------------------------------------------------------------------------

# Evaluative words: judgments about quality. Deliberately absent: words that are also ordinary
# subject vocabulary ("organized into a table", "persuasive essay", "sound waves", "basic facts",
# "original passage"), and "correctly", which usually reports a checkable fact such as spelling.
EVALUATIVE: frozenset[str] = _lexicon(
    """
    good great nice strong stronger weak weaker excellent outstanding exceptional exemplary superb
    poor poorly bad worse worst better best sloppy messy mess neat neatly careless carelessly
    careful carefully lazy impressive impressed beautiful beautifully lovely wonderful amazing
    awesome fantastic brilliant terrible awful horrible creative unoriginal generic cliche cliched
    thoughtful insightful vague shallow superficial simplistic confusing unclear disorganized
    repetitive redundant incomplete rushed accurate accurately inaccurate correct incorrect
    incorrectly wrong effective effectively ineffective solid sophisticated clever fluent fluently
    mature immature advanced compelling convincing unconvincing powerful vivid engaging boring
    bland dull awkward clunky choppy disjointed coherent incoherent cohesive logical illogical
    circular decent perfect perfectly flawless adequate inadequate sufficient insufficient
    appropriate inappropriate properly nicely successful successfully unsuccessful talented
    gifted smart bright intelligent diligent hardworking meticulous wordy concise precise
    imprecise interesting mistake mistakes misconception misconceptions typical typically
    atypical unusual missing flat rich thin sparse underdeveloped overdone cluttered balanced
    unbalanced clash clashes sharp skilled skillful unskilled polished rough solidly
    """
)

# Hedges and first-person stances mark an inference even when the rest is neutral.
_HEDGE_RE = _words(
    r"i (?:really |honestly )?(?:don't |do not )?(?:think|believe|feel|suspect|bet|guess|assume)",
    r"i'm (?:guessing|not sure|sure|assuming)|i'd (?:say|guess|bet|argue)",
    r"i (?:have a|get the) (?:feeling|sense)",
    # Saying what one likes is a judgment of the work, however plainly put.
    r"i (?:really |just |also )?(?:don't |do not )?(?:like|liked|dislike|disliked|love|loved)",
    r"(?:my|the) favou?rite|i (?:really )?(?:appreciate|admire)",
    r"my (?:guess|sense|hunch|impression|read)|i wonder (?:if|whether|why)",
    r"seems?|seemed|seemingly|appears? to|it appears|apparently",
    r"probably|maybe|perhaps|possibly|likely|presumably",
    r"must have|might (?:be|have)|may (?:be|have)|could be",
    r"(?:looks|sounds|reads) like(?: (?:he|she|they|it|the (?:student|kid|child|writer|author)))?",
    r"you can (?:tell|see that)|obviously|obvious|clearly|it's clear|it is clear|evidently",
    r"no doubt|suggests?|implies|indicates that",
)

# Claims about what the student understands, intends, feels or did off the page.
_MIND_RE = _words(
    r"understand(?:s|ing)?|understood|misunderst\w*|comprehen\w*",
    r"(?:doesn't|didn't|does not|did not|don't|do not) (?:really )?get",
    r"gets? it|got (?:it|confused|lost|stuck)",
    r"knows?|knew|no idea|aware|realiz\w*|realis\w*|grasp\w*|master(?:y|ed|s)",
    r"struggl\w*|tr(?:y|ies|ied|ying) (?:hard|to)|trying|effort",
    r"rushed|rushing|rush(?:es)? through|hurr(?:y|ied)|ran out of time|out of time",
    r"confus(?:ed|ion)|misread|mistook|mixed up|forg[oe]t\w*|guess(?:ing|ed)|gave up|gives? up",
    r"avoid(?:s|ed|ing)?|want(?:s|ed)? to|meant to|intend\w*|(?:over)?think(?:s|ing)?",
    r"thought(?! bubble)|frustrat\w*|bored|nervous|anxious|afraid|proud|cares?|caring|engaged",
    r"distract\w*|motivat\w*|confiden\w*|comfortable|bother(?:ed)?|capable|learner|natural",
    r"loves?|enjoy\w*|seriously|(?:couldn't|could not|can't|cannot) (?:figure|explain|tell|decide)",
    r"figured? out|memori[sz]\w*|copied (?:from|off)|cheat\w*|stud(?:y|ied) for|showing off",
    r"(?:didn't|did not|doesn't|does not|failed to) (?:follow|read|check|proofread|try|listen)",
    r"needs? (?:more|to|help|practice|support|work)|still (?:developing|learning|working on)",
    r"(?:is|was|'s) working on|paying attention|attention to detail|overgenerali[sz]\w*",
)

# Overall verdicts and comparisons to a standard or to an expected level.
_VERDICT_RE = _words(
    r"makes? (?:no )?sense|(?:hard|difficult|easy|tough) to \w+",
    # How the work reads or holds together, or how it was done: "the essay reads well", "it
    # flows smoothly", "he writes well", "she explained it well".
    r"(?:reads?|flows?|works?|hangs? together|holds? together|comes? across|writes?|wrote"
    r"|written|explains?|explained)(?: it| this| them)? (?:well|badly|smoothly|naturally|easily)",
    r"too (?:many|much|short|long|few|simple)|not enough|lacks?|lacking|falls? apart",
    r"well[- ](?:done|written|organized|developed|thought|crafted|structured|reasoned|supported)",
    # Subject words ("organized into a table", "a detailed diagram") said to a degree are a
    # verdict on the work: "very organized work", "so detailed".
    r"(?:very|so|really|extremely|highly|super|quite|pretty|nicely|beautifully|incredibly)"
    r" (?:organi[sz]ed|structured|detailed|thorough|developed|clear|complete|thought[- ]out"
    r"|laid out|presented|put together)",
    r"almost there|not there yet|on the right track|(?:shows|showing) growth|improve(?:d|ment)",
    r"(?:below|above|at|approaching|on) grade[- ]level|grade[- ]level|standards?|proficien\w*",
    r"(?:meets?|met|exceeds?|exceeded|approaching|approaches) (?:the )?expectations?",
    # The rubric as a measure of the work; as a sheet on the page ("the rubric is stapled to
    # the back"), it is described.
    r"(?:meets?|met|exceeds?|hits?) (?:the |every |all )?rubric",
    r"according to the rubric|by the rubric|(?:a|an|the) [0-9] on the rubric",
    r"would (?:score|get|earn)|(?:is|are|was) sound|sound reasoning",
    r"an? [a-f][+-]? (?:paper|essay|piece)",
    r"for an? (?:[\w-]+ )?(?:grader|student|kid|child)|for (?:his|her|their|this) (?:age|grade)",
    r"(?:than|what) (?:i'd|i would|you'd|i) expect|expected|off[- ]topic|one[- ]sided",
    r"what (?:the )?(?:assignment|task|prompt|question) (?:was )?"
    r"(?:asking|asked|asks|called|wanted)",
    r"supports? (?:the|his|her|their|its) (?:claim|thesis|argument|answer|conclusion)",
)

# Spanish, which many teachers write in (their tags are read in it too): the same hedges and
# stances, claims about the student's mind, and verdicts, as whole words, with their accents or
# without. Not "error" (English as well, where "a units error" describes).
_SPANISH_RE = _words(
    r"creo|pienso|supongo|sospecho|me parece|parecen?|parec[ií]a|al parecer",
    r"probablemente|quiz[aá]s?|tal vez|a lo mejor|seguramente|obviamente|claramente|se nota",
    r"me gust(?:a|[oó])|me encant(?:a|[oó])",
    r"entiende|entienden|entendi[oó]|entend[ií]a|comprend\w*|confundid[oa]s?|se confundi[oó]",
    r"sabe|saben|sab[ií]a|se esforz[oó]|esfuerzo|le cost[oó]|se apur[oó]|se apresur[oó]",
    r"con prisa|se le olvid[oó]|olvid[oó]|no le importa|quer[ií]a|intent[oó]|flojo|perezos[oa]",
    r"bien|mal|buen[oa]?s?|mal[oa]s?|excelente|d[eé]bil|fuerte|correct[oa]s?|incorrect[oa]s?",
    r"perfect[oa]s?|pobre|mejor|peor|desordenad[oa]s?|descuidad[oa]s?|creativ[oa]s?|interesante",
    r"errores|le falta|tiene sentido|bien hecho|nivel de grado",
)

# Descriptions with the student as subject report marks on the page: wrote, drew, erased. Any
# other predicate about the student ("she doesn't see", "he's treating the point like a comma",
# "the student is comfortable with") is a claim about their mind or character.
OBSERVABLE_VERBS: frozenset[str] = _lexicon(
    """
    write wrote written draw drew drawn use label quote subtract add multiply divide spell spelt
    color colour paint refer mention name answer erase circle underline cross shade round ask
    restate repeat sign put place leave left list number start begin began begun end include
    cite count copy check trace glue tape staple cut fold measure record graph plot type print
    highlight box mark change switch move rewrite rewrote revise skip skipped indent capitalize
    translate conjugate punctuate sketch build built make made solve attempt show shown give gave
    respond reply state say said call called title introduce identify explain describe compare
    choose chose chosen select pick represent convert calculate compute estimate misspell misspelt
    """
)
_SUBJECT_RE = re.compile(
    r"\b(?:(?:he|she|they)(?:'s|'d|'re)?|(?:the|this) (?:student|kid|child|writer|author|artist))"
    r"\s+(.*)"
)
_FILLERS: frozenset[str] = _lexicon(
    "do does did don't doesn't didn't not never also then just only even first again always "
    "later once both all each instead"
)


# Inflection endings; the stem is then tried as-is, with "e" or "y" put back, and with a doubled
# final consonant undone: erased -> erase, copies -> copy, skipped -> skip.
_SUFFIXES = ("ing", "ies", "ied", "es", "ed", "s", "d")


def _lemma_candidates(word: str) -> set[str]:
    """Cheap de-inflection: the forms of `word` worth looking up among the base verbs."""
    out = {word}
    for suffix in _SUFFIXES:
        if word.endswith(suffix):
            stem = word[: -len(suffix)]
            out |= {stem, stem + "e", stem + "y", stem[:-1]}
    return out


# Helpers before a participle ("is counting", "has written"): the participle is the predicate,
# if it names a mark made by hand. Not one of these, which as often name what the student is
# taken to be doing ("is making connections", "is showing growth", "is choosing to..."):
_AUXILIARIES: frozenset[str] = _lexicon("is are was were be been being has have had")
_ABSTRACT_VERBS: frozenset[str] = _lexicon(
    """
    make made build built show shown give gave attempt change switch move respond reply explain
    describe compare identify represent choose chose chosen select pick introduce state say said
    call called answer ask restate repeat solve start begin began begun end leave left
    """
)


def _student_predicate_is_inference(body: str) -> bool:
    """True when some clause has the student as subject and a non-observable predicate."""
    for match in _SUBJECT_RE.finditer(body):
        words = _TOKEN_RE.findall(match.group(1))
        # An adverb before the verb ("she correctly spelled") says how, not what: the verb
        # after it is the predicate (the adverbs that judge are EVALUATIVE, or hedges).
        verbs = [
            w
            for i, w in enumerate(words)
            if w not in _FILLERS and not (w.endswith("ly") and i + 1 < len(words))
        ][:2]
        if (
            len(verbs) == 2
            and verbs[0] in _AUXILIARIES
            and verbs[1].endswith(("ing", "ed", "en"))
            and not _lemma_candidates(verbs[1]) & _ABSTRACT_VERBS
        ):
            verbs = verbs[1:]
        if verbs and not _lemma_candidates(verbs[0]) & OBSERVABLE_VERBS:
            return True
    return False


def reads_as_interpretation(text: str) -> bool:
    """True when a reply in a describing step reads as a judgment or inference rather than a plain description."""  # noqa: E501 - verbatim from the interface spec
    body = _normalise(text)
    if any(token.strip("'") in EVALUATIVE for token in _TOKEN_RE.findall(body)):
        return True
    if any(rx.search(body) for rx in (_HEDGE_RE, _MIND_RE, _VERDICT_RE, _SPANISH_RE)):
        return True
    return _student_predicate_is_inference(body)


# --- Quest for context ---------------------------------------------------------------------------

# After the name of whoever is asked ("Maria, was this timed", "@maria was this timed").
_INTERROGATIVE_START = re.compile(
    r"^(?:@?[\w.'-]+,\s*|@[\w.'-]+:?\s+)?(?:is|are|was|were|did|do|does|had|has|have|can|could|would|will|should|how|what|when"
    r"|where|why|which|who|whose)\b"
)
_SOFT_QUESTION_RE = _words(
    r"(?:i'm |i am )?(?:curious|wondering) (?:if|whether|about|what|how|why|when)",
    r"i wonder (?:if|whether|what|how|why|when|about)",
    r"(?:love|like|want|good|helpful|useful|nice) to (?:know|hear|find out)"
    r" (?:if|whether|what|how|why|when|about|more)",
    r"(?:can|could|would) you (?:tell|say|share|explain|remind|clarify)",
)

# Questions put to the group (or the facilitator), not to the presenter. "tell us" is removed
# first because "Can you tell us what the prompt was?" is addressed to the presenter.
_GROUP_RE = _words(
    r"anyone|anybody|everyone|everybody|someone|somebody|others|people|folks|y'all|you all",
    r"you guys|we|let's|our|who (?:else|wants|would like)",
    # Running the session is the facilitator's business, not context about the work.
    r"keeping time|time (?:left|remaining)|next step|move on|scroll|zoom",
)
_TELL_US_RE = _words(r"(?:tell|show|give|remind) us")

# Rhetorical asides: exclamations shaped like questions, and tag questions.
_RHETORICAL_RE = re.compile(
    r"^(?:isn't|aren't|wasn't|weren't|don't|doesn't) (?:it|that|this|they|the|those|these)\b.*\b(?:"
    + "|".join(sorted(EVALUATIVE))
    + r"|cool|neat|fun|lovely)\b"
    r"|^how (?:cool|great|neat|fun|amazing|awesome|interesting|beautiful|wonderful|clever)\b"
    r"|^who doesn't|^what an?\b(?!.*\b(?:is|was|were|did)\b)|\bis it just me\b"
    r"|,\s*(?:right|huh|no|yes|eh)\s*\?*$|\byou know\?|\bwhy would (?:you|anyone) ever\b"
)

# Questions about the student's mind are interpretations phrased as questions, for the group.
_MIND_QUESTION_RE = _words(
    r"understand\w*|(?:over)?think(?:s|ing)?|trying|confused|get it|got it|meant|mean",
    r"what if|could it be|could (?:this|that|the [\w/]+) (?:come|be)|come from|perspective",
    r"do you think|(?:do|did) you (?:see|notice)|stands? out",
)

# Wondering aloud ("I wonder if she ran out of time") is the speaker's guess, and what is
# wondered about decides whose: the student's mind (_MIND_RE) makes it an interpretation for the
# group, the conditions of the work ("I wonder if this was timed") a question for the presenter.
_WONDERING_RE = _words(r"(?:i'm |i am |i )?(?:wonder(?:ing)?|curious) (?:if|whether)")


def _wonders_about_the_student(body: str) -> bool:
    wondering = _WONDERING_RE.search(body)
    return wondering is not None and bool(_MIND_RE.search(body, wondering.end()))


# What the presenter was asked to withhold: assignment, conditions, supports, history, choices.
_CONTEXT_RE = _words(
    r"drafts?|versions?|revis\w*|rubric|prompt|assign\w*|task|directions|instruct\w*|told",
    r"allowed|permitted|required|minimum|expected|expectations?|standards?|cite",
    r"calculators?|dictionar(?:y|ies)|notes|manipulatives|textbook|computers?|access|materials",
    r"time|timed|minutes|hours|days|weeks|long|homework|home|class|classroom|lesson|unit",
    r"taught|teach|model(?:ed|led)?|mentor|examples?|organizer|word bank|scaffold\w*|support",
    r"partners?|groups?|alone|independently|aloud|grade|graded|grading|year|age|feedback",
    r"english learner|ell|esl|iep|504|accommodations?|absent|typical|usually|normally",
    r"before|after|beforehand|earlier|previously|first|final|choose|chose|chosen|pick|picked",
    r"select\w*|topic|test|quiz|assessment|practice|story|passage|texts?|level|board",
    r"(?:did|do|have|had|were|would) you|you (?:chose|picked|assigned|gave|taught|modeled|asked)",
)
_CONDITIONS_START = re.compile(r"^(?:were|did|had|have|do) (?:they|the (?:students|kids|class))\b")

# The same in Spanish, which many teachers write in: "¿Fue un borrador?", "¿Tenían rúbrica?",
# "Me pregunto si fue cronometrado"; "¿Alguien más ve la flecha?" is for the group, and
# "¿Crees que entendió?" about the student's mind.
_SPANISH_SOFT_QUESTION_RE = _words(
    r"me pregunto (?:si|qu[eé]|c[oó]mo|cu[aá]nto|cu[aá]ndo|d[oó]nde)|tengo curiosidad",
    r"(?:quisiera|me gustar[ií]a|quiero) saber",
)
_SPANISH_GROUP_RE = _words(
    r"alguien|todos|todas|ustedes|nosotros|nosotras|nuestr[oa]s?|vamos|los dem[aá]s|otros|otras",
)
_SPANISH_MIND_QUESTION_RE = _words(
    r"entend\w*|entiend\w*|comprend\w*|pens\w*|piens\w*|crees|creen|confund\w*",
    r"quis[oe] decir|significa",
)
_SPANISH_CONTEXT_RE = _words(
    r"borrador(?:es)?|versi[oó]n|versiones|revis\w*|r[uú]brica|instrucci[oó]n(?:es)?|consigna",
    r"tareas?|permitid[oa]s?|pod[ií]an|calculadoras?|diccionarios?|apuntes|materiales",
    r"tiempo|minutos|horas|d[ií]as|semanas|cronometrad[oa]|en casa|en clase|clase|lecci[oó]n",
    r"unidad|enseñ\w*|ense[nñ]\w*|modelo|ejemplos?|organizador|banco de palabras|apoyos?",
    r"parejas?|grupos?|solos|solas|independiente\w*|grado|calificad[oa]|año|edad",
    r"retroalimentaci[oó]n|examen|prueba|evaluaci[oó]n|pr[aá]ctica|lectura|texto|tema",
    r"antes|despu[eé]s|final|eligi\w*|escogi\w*|usaron|tuvieron|ten[ií]an|hicieron|fue en",
)


def asks_presenter_for_context(text: str) -> bool:
    """True when a reply is a question seeking context from the presenter ("Is this the first draft?", "Were they allowed to use a calculator?", "What did the rubric say?"), as opposed to a statement or a rhetorical aside."""  # noqa: E501 - verbatim from the interface spec
    tag, _ = strip_tag_prefix(text)
    body = _normalise(text)
    tagged = tag == "question"
    is_question = (
        tagged
        or "?" in body
        or bool(_INTERROGATIVE_START.match(body) or _SOFT_QUESTION_RE.search(body))
        or bool(_SPANISH_SOFT_QUESTION_RE.search(body))
    )
    if not is_question:
        return False
    if _GROUP_RE.search(_TELL_US_RE.sub(" ", body)) or _RHETORICAL_RE.search(body):
        return False
    if _SPANISH_GROUP_RE.search(body) or _SPANISH_MIND_QUESTION_RE.search(body):
        return False
    if _MIND_QUESTION_RE.search(body) or _wonders_about_the_student(body):
        return False
    context = _CONTEXT_RE.search(body) or _SPANISH_CONTEXT_RE.search(body)
    return tagged or bool(context or _CONDITIONS_START.match(body))
