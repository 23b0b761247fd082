"""ChatMusician-format text tasks from one ABC tune: text -> ABC, continuation, analysis, harmonisation.

    python preprocessing/make_abc_data.py --out data/abc          # builds every tune's pairs with this module

    from llark.abc_tasks import TaskConfig, build_pairs, describe_tune
    record = {"tune_id": "oneills1850-0012", "abc": clean, **describe_tune(clean, title="The Kesh", rhythm="jig")}
    pairs = build_pairs(record, TaskConfig(max_chars=600), random.Random("0-oneills1850-0012"))
    # [{"question": ..., "answer": ..., "family": "text2abc" | "continuation" | "analysis" | ...}, ...]

A tune record is a line of tunes.jsonl: `abc` (the tune as `abc.normalise` writes it: X:1, L:, M:, K:,
body) and the facts `describe_tune` reads from it (key "D major", meter "6/8", unit, rhythm from R:,
written bars, repeat signs, chord symbols). Families:

- `text2abc`: ChatMusician's text -> ABC. An instruction sentence, then the tune's header fields in words
  ("Meter 6/8", "Key D", "Note Length 1/8", "Rhythm jig", optionally "Title ...") -> the whole tune.
- `header`: the same description under its own instruction ("Write only the header ...") -> the tune's
  header alone (X:, L:, M:, K:). Not a ChatMusician task: a dense warm-up. In text2abc the key is one
  token of a few hundred, too little signal for a small model to learn to copy it from the prompt.
- `continuation`: the header and the first 2 or 4 full bars -> the rest, so question tune + answer == tune.
- `analysis`: the tune -> a short answer the evaluation parsers read: key "D major" (or "A dorian"), meter
  "6/8", rhythm "reel" (when R: exists), bars "32" (written, pickups not counted), repeat signs "2",
  repeats "Yes"/"No".
- `harmonisation` and `chord_conditioned` (tunes with chord symbols such as "Am" only): the melody without
  its chords -> the tune; the chord list ('Am', 'F', ...) -> the tune.

Transposition (training tunes only, `TaskConfig.transpositions` > 0): `transposed_variants` moves a tune
to other keys, and `variant_pairs` gives each copy its text2abc, continuation, key-analysis and header pairs,
marked with `"transposition": semitones`. The real tunes are mostly in G and D major, so without it a
model meets "Key A" by writing K:G anyway; in the copies the key can only be read from the prompt.

Generation families (text2abc, continuation, harmonisation) skip tunes longer than `max_chars`, so every
answer fits a small CPU model; analysis takes tunes up to `max_analysis_chars` (its answers are a few
characters); every tune has a header pair.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from llark import abc
from llark.abc.fields import FIELD_LINE
from llark.abc.lexer import ending_number, tokenize

FAMILIES = ("text2abc", "header", "continuation", "analysis", "harmonisation", "chord_conditioned")

# ---- phrasings ----------------------------------------------------------------------------------
# The first sentence is ChatMusician's own text -> ABC instruction (its README's prompt example and
# demo page); the others are our paraphrases (the paper says the SFT data used paraphrases of it).
TEXT2ABC_INSTRUCTIONS = (
    "Using ABC notation, recreate the given text as a musical score.",
    "Develop a tune in ABC notation from the given text.",
    "Compose a melody in ABC notation that fits the following description.",
    "Write a tune in ABC notation with these properties.",
    "Create sheet music in ABC notation based on the text below.",
    "Turn the following description into a tune in ABC notation.",
)
HEADER_INSTRUCTIONS = (
    "Write only the header of an ABC tune with these properties.",
    "Give just the ABC header fields (X:, L:, M:, K:) for this description.",
    "Start an ABC tune from the following description: write its header only.",
)
# ChatMusician's words for the header fields (README prompt: "Meter C", "Key D", "Note Length 1/8",
# "Rhythm reel"); "Title" is ours, for the optional title.
FIELD_WORDS = {"M": "Meter", "K": "Key", "L": "Note Length", "R": "Rhythm", "T": "Title"}
CONTINUATION_INSTRUCTIONS = (
    "Continue this tune in ABC notation.",
    "Here is the beginning of a tune in ABC notation. Write the rest of it.",
    "Complete the following ABC tune.",
    "Finish the melody that starts with these bars.",
    "The first {n} bars of a tune are given in ABC notation. Continue it to the end.",
)
# Analysis questions: kind -> phrasings. The kinds map to evaluation tasks in make_abc_data.py.
ANALYSIS_QUESTIONS = {
    "key": ("What key is this tune in?", "In which key is this piece written?", "Name the key of this melody.",
            "What is the key (tonic and mode) of this tune?"),
    "meter": ("What is the time signature of this tune?", "What meter is this piece in?",
              "Which time signature does this melody use?"),
    "rhythm": ("What kind of tune is this?", "What rhythm or dance type is this tune?",
               "Which dance form does this tune follow?"),
    "bars": ("How many bars are written in this tune?", "How many measures does this tune have as written?",
             "Count the written bars of this tune (repeats not played out, pickups not counted)."),
    "repeats": ("How many repeat signs (:|) does this tune have?",
                "How many sections of this tune end in a repeat sign?"),
    "has_repeats": ("Does this tune repeat any section?", "Does this tune contain repeat signs?"),
}
HARMONISATION_INSTRUCTIONS = (
    "Harmonize the following melody by adding chord symbols in ABC notation.",
    "Add chords to this melody written in ABC notation.",
    "Write chord symbols for this ABC melody.",
)
# The first two are verbatim from ChatMusician's demo page (chord-conditioned generation), chords quoted
# as there: 'Am', 'F', 'C', 'G'.
CHORD_INSTRUCTIONS = (
    "Craft musical works that follow the given chord alterations.",
    "Develop a musical piece using the given chord progression.",
    "Compose a tune in ABC notation over these chords.",
)

# A chord symbol as ABC tunes write it ("Am", "G7", "Bbmaj7", "D/F#"); annotations ("^Fine", "D.C.",
# "4", "p") are not chords.
CHORD_SYMBOL = re.compile(r"[A-G][#b]?(?:m|min|maj|dim|aug|sus|add|M|\+|o|°|ø|\d|\(|\)|b|#)*(?:/[A-G][#b]?)?")
PLAIN_METER = re.compile(r"\d+/\d+")
CANONICAL_METERS = {"C": "4/4", "C|": "2/2"}


@dataclass(frozen=True)
class TaskConfig:
    """What goes into each tune's pairs. Lengths are characters of ABC (a token-ish budget)."""

    max_chars: int = 600  # generation families: tunes longer than this are left out
    max_analysis_chars: int = 1200  # analysis: the tune is in the question
    continuation_bars: tuple[int, ...] = (2, 4)  # full bars given (a pickup comes with them)
    title_probability: float = 0.5  # text2abc prompts that also state the title
    transpositions: int = 0  # transposed copies of each training tune (see transposed_variants)


# ---- facts of a tune ----------------------------------------------------------------------------
def key_name(spec: abc.KeySpec) -> str | None:
    """'D major', 'E minor', 'A dorian' (what the key evaluator and answers say); None without a tonic."""
    return None if spec.tonic is None else f"{spec.tonic} {spec.mode}"


def meter_name(value: str | None) -> str | None:
    """An M: value as "n/d" (C -> 4/4, C| -> 2/2); None for free, absent or compound (2+3/8) meters."""
    if value is None:
        return None
    text = CANONICAL_METERS.get(value.replace(" ", ""), value.replace(" ", ""))
    return text if PLAIN_METER.fullmatch(text) else None


def body_lines(abc_text: str) -> list[tuple[int, str]]:
    """(offset in abc_text, line) of every line after the K: line that ends the header."""
    lines, offset, in_body = [], 0, False
    for line in abc_text.splitlines(keepends=True):
        if in_body:
            lines.append((offset, line.rstrip("\n")))
        elif line.startswith("K:"):
            in_body = True
        offset += len(line)
    if not in_body:
        raise abc.AbcError("no K: field ends the header")
    return lines


def _is_field_line(line: str) -> bool:
    """A body line that is a field (M:3/4, P:B), not music."""
    return bool(FIELD_LINE.match(line)) and not line.startswith("|")


def _music_lines(abc_text: str) -> list[tuple[int, str]]:
    """(offset, line) of the body lines that hold music."""
    return [(offset, line) for offset, line in body_lines(abc_text) if not _is_field_line(line)]


def chord_symbols(abc_text: str) -> list[str]:
    """The chord symbols of the body in order: '"Am"' -> 'Am' (annotations are left out)."""
    return [token.text.strip('"') for _, line in _music_lines(abc_text) for token in tokenize(line)
            if token.kind == "string" and CHORD_SYMBOL.fullmatch(token.text.strip('"'))]


def strip_chord_symbols(abc_text: str) -> str:
    """The tune without its chord symbols (annotations, header, field lines and line breaks stay)."""
    lines = abc_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("K:")) + 1
    out = lines[:start]
    for line in lines[start:]:
        if not _is_field_line(line):
            kept = [t.text for t in tokenize(line)
                    if not (t.kind == "string" and CHORD_SYMBOL.fullmatch(t.text.strip('"')))]
            line = re.sub(r" {2,}", " ", "".join(kept)).strip()
        out.append(line)
    return "\n".join(out) + "\n"


def body_changes(abc_text: str) -> list[str]:
    """Header fields the body changes (K, M, L), as body lines or inline fields: a tune in two meters
    has no single meter to ask about."""
    changed = set()
    for _, line in body_lines(abc_text):
        field_line = FIELD_LINE.match(line)
        if field_line and field_line.group(1) in "KML":
            changed.add(field_line.group(1))
        changed.update(re.findall(r"\[([KML]):", line))
    return sorted(changed)


def count_bars(tune: abc.Tune) -> int:
    """Bars as a musician counts them on the page: every written bar of the first voice (a multi-bar
    rest counts its bars, repeats are not played out) except pickups, the short bars that open the tune
    or a section (the short bar that completes a pickup at a section's end counts)."""
    bars = next(iter(tune.voices.values()), [])
    return sum(bar.rest_bars or 1 for bar in bars if not _is_pickup(bar))


def _is_pickup(bar: abc.Bar) -> bool:
    return bar.meter is not None and bar.duration < bar.meter and bar.starts_section and not bar.rest_bars


def has_pickup(tune: abc.Tune) -> bool:
    """Whether the first bar is shorter than its meter (an anacrusis)."""
    bars = next(iter(tune.voices.values()), [])
    return bool(bars) and _is_pickup(bars[0])


def describe_tune(abc_text: str, title: str | None = None, rhythm: str | None = None,
                  where: str = "tune") -> dict[str, Any]:
    """The facts of a normalised tune that tasks and evaluation use (title and rhythm come from the
    source header, which `abc.normalise` drops).

        describe_tune("X:1\\nL:1/8\\nM:6/8\\nK:D\\n|:dAF DFA:|\\n", rhythm="jig")
        # {'key': 'D major', 'meter': '6/8', 'unit': '1/8', 'rhythm': 'jig', 'bars': 1, 'repeats': 1, ...}
    """
    tune = abc.parse_tune(abc_text, where)
    return {
        "title": " ".join(title.split()) if title else None,
        "key": key_name(tune.key),
        "meter": meter_name(tune.field("M")),
        "unit": tune.field("L"),
        "rhythm": " ".join(rhythm.lower().split()) if rhythm and rhythm.strip() else None,
        "bars": count_bars(tune),
        "pickup": has_pickup(tune),
        "repeats": tune.repeats,
        "has_chords": bool(chord_symbols(abc_text)),
        "changes": body_changes(abc_text),
    }


# ---- continuation -------------------------------------------------------------------------------
def split_after_bars(abc_text: str, bars: int, pickup: bool | None = None) -> tuple[str, str] | None:
    """(beginning, rest) with beginning + rest == abc_text: the header and the first `bars` full bars
    (a pickup comes with them, and the barlines and blanks that close the last one), then the rest.
    None when nothing would be left to continue. `pickup` (whether the tune starts with one) is read
    from the tune when not given.

        split_after_bars("X:1\\nL:1/8\\nM:2/4\\nK:G\\nG|AB cd|ef ga|bc' d'2|]\\n", 1)
        # ('X:1\\nL:1/8\\nM:2/4\\nK:G\\nG|AB cd|', 'ef ga|bc\\' d\\'2|]\\n')
    """
    wanted = bars + (has_pickup(abc.parse_tune(abc_text)) if pickup is None else pickup)
    count, cut = 0, None
    sounding, in_grace = False, False  # a bar may run over a line break: these carry on to the next line
    for offset, line in _music_lines(abc_text):
        tokens = tokenize(line)
        for i, token in enumerate(tokens):
            if token.kind in ("grace_start", "grace_end"):
                in_grace = token.kind == "grace_start"
            elif token.kind in ("note", "rest", "chord_end") and not in_grace:
                sounding = True
            elif token.kind == "barline" and sounding:
                count, sounding = count + 1, False
                if count == wanted:
                    cut = offset + _closing_end(tokens, i)
                    if cut == offset + len(line):
                        cut += 1  # the line break goes with the beginning: the rest starts a line
                    break
        if cut is not None:
            break
    if cut is None or not abc_text[cut:].strip():
        return None
    return abc_text[:cut], abc_text[cut:]


def _closing_end(tokens: list, index: int) -> int:
    """Column after the barline at `index` and the blanks and closing barlines right after it (':|'
    after '|'); a barline that opens something (|:, |1, [2) belongs to the next bar."""
    end = tokens[index].start + len(tokens[index].text)
    for token in tokens[index + 1:]:
        opens = token.kind == "barline" and (token.text.endswith(":") or ending_number(token.text) is not None)
        if token.kind == "space" or (token.kind == "barline" and not opens):
            end = token.start + len(token.text)
        else:
            break
    return end


# ---- the families -------------------------------------------------------------------------------
def pair(question: str, answer: str, family: str) -> dict[str, str]:
    return {"question": question, "answer": answer, "family": family}


# Shifts a transposed copy may take: a fourth down to a fifth up (11 other keys, none an octave away), so
# no copy moves the melody far from the range the tunes were written for.
TRANSPOSITION_SHIFTS = (-5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6)


def text2abc_prompt(record: dict[str, Any], rng: random.Random, title_probability: float = 0.5,
                    instructions: tuple[str, ...] = TEXT2ABC_INSTRUCTIONS) -> tuple[str, bool]:
    """ChatMusician's text -> ABC prompt from a tune's header fields, and whether it states the title
    (`instructions`: the sentences to choose the first line from).

    The fields come in a shuffled order, one per line ("Meter 6/8") or with colons ("Key: D major") or
    all on one line; the key is written as in K: ("Ador") or in words ("A dorian")."""
    tune = record["abc"]
    with_title = bool(record.get("title")) and rng.random() < title_probability
    key_value = abc.first_field(tune, "K") if rng.random() < 0.5 else record.get("key")
    values = {"M": abc.first_field(tune, "M"), "K": key_value, "L": record.get("unit"), "R": record.get("rhythm"),
              "T": record.get("title") if with_title else None}
    fields = [(FIELD_WORDS[letter], value) for letter, value in values.items() if value]
    rng.shuffle(fields)
    style = rng.choice(("lines", "colons", "one line"))
    if style == "lines":
        text = "\n".join(f"{word} {value}" for word, value in fields)
    elif style == "colons":
        text = "\n".join(f"{word}: {value}" for word, value in fields)
    else:
        text = ", ".join(f"{word} {value}" for word, value in fields)
    return f"{rng.choice(instructions)}\n{text}", with_title


def text2abc_pairs(record: dict[str, Any], config: TaskConfig, rng: random.Random) -> list[dict[str, str]]:
    if len(record["abc"]) > config.max_chars:
        return []
    question, _ = text2abc_prompt(record, rng, config.title_probability)
    return [pair(question, record["abc"], "text2abc")]


def tune_header(abc_text: str) -> str:
    """The header of a normalised tune, through its K: line: 'X:1\\nL:1/8\\nM:6/8\\nK:D\\n'."""
    return abc.split_header_body(abc_text)[0] + "\n"


def header_pairs(record: dict[str, Any], config: TaskConfig, rng: random.Random) -> list[dict[str, str]]:
    question, _ = text2abc_prompt(record, rng, config.title_probability, HEADER_INSTRUCTIONS)
    return [pair(question, tune_header(record["abc"]), "header")]


def continuation_pairs(record: dict[str, Any], config: TaskConfig, rng: random.Random) -> list[dict[str, str]]:
    if len(record["abc"]) > config.max_chars:
        return []
    bars = rng.choice(config.continuation_bars)
    split = split_after_bars(record["abc"], bars, record.get("pickup"))
    if split is None:
        return []
    beginning, rest = split
    instruction = rng.choice(CONTINUATION_INSTRUCTIONS).format(n=bars)
    return [pair(f"{instruction}\n{beginning}", rest, "continuation")]


def analysis_answers(record: dict[str, Any]) -> dict[str, str]:
    """Kind -> the short answer, for every kind this tune can answer (a tune that changes key or meter
    in its body has no single key or meter)."""
    changes = record.get("changes", [])
    answers = {}
    if record.get("key") and "K" not in changes:
        answers["key"] = record["key"]
    if record.get("meter") and "M" not in changes:
        answers["meter"] = record["meter"]
    if record.get("rhythm"):
        answers["rhythm"] = record["rhythm"]
    answers["bars"] = str(record["bars"])
    answers["repeats"] = str(record["repeats"])
    answers["has_repeats"] = "Yes" if record["repeats"] else "No"
    return answers


def analysis_question(kind: str, tune: str, rng: random.Random) -> str:
    """A seeded phrasing of `kind`, with the tune before or after it."""
    question = rng.choice(ANALYSIS_QUESTIONS[kind])
    return f"{question}\n{tune}" if rng.random() < 0.5 else f"{tune}{question}"


def analysis_pairs(record: dict[str, Any], config: TaskConfig, rng: random.Random) -> list[dict[str, str]]:
    if len(record["abc"]) > config.max_analysis_chars:
        return []
    return [pair(analysis_question(kind, record["abc"], rng), answer, "analysis")
            for kind, answer in analysis_answers(record).items()]


def harmonisation_pairs(record: dict[str, Any], config: TaskConfig, rng: random.Random) -> list[dict[str, str]]:
    """Melody -> the tune with its chords, and the chord list -> the tune (tunes with chords only)."""
    if not record.get("has_chords") or len(record["abc"]) > config.max_chars:
        return []
    tune = record["abc"]
    chords = ", ".join(f"'{name}'" for name in chord_symbols(tune))
    return [pair(f"{rng.choice(HARMONISATION_INSTRUCTIONS)}\n{strip_chord_symbols(tune)}", tune, "harmonisation"),
            pair(f"{rng.choice(CHORD_INSTRUCTIONS)} {chords}", tune, "chord_conditioned")]


def transposed_variants(record: dict[str, Any], config: TaskConfig,
                        rng: random.Random) -> tuple[list[dict[str, Any]], list[str]]:
    """`config.transpositions` copies of a tune record in other keys (distinct seeded shifts from
    TRANSPOSITION_SHIFTS), each with its new `abc` and `key`, `transposed_from` and `transposition`;
    and the reasons copies could not be made (abc.transpose refuses K:none and triple accidentals).
    A tune whose body changes key is not copied: it has no single key to state.

        variants, skipped = transposed_variants(record, TaskConfig(transpositions=3), random.Random("0-t"))
        # [{'tune_id': 'oneills1850-0012+5', 'abc': '...K:G...', 'key': 'G major', 'transposition': 5, ...}]
    """
    if config.transpositions <= 0 or record.get("key") is None or "K" in record.get("changes", []):
        return [], []
    variants, skipped = [], []
    for semitones in rng.sample(TRANSPOSITION_SHIFTS, min(config.transpositions, len(TRANSPOSITION_SHIFTS))):
        where = f"{record['tune_id']} moved {semitones:+d}"
        try:
            text = abc.transpose(record["abc"], semitones, where)
            key = key_name(abc.parse_tune(text, where).key)
        except abc.AbcError as err:
            skipped.append(str(err))
            continue
        variants.append(record | {"tune_id": f"{record['tune_id']}{semitones:+d}", "abc": text, "key": key,
                                  "transposed_from": record["tune_id"], "transposition": semitones})
    return variants, skipped


def variant_pairs(variant: dict[str, Any], config: TaskConfig, rng: random.Random) -> list[dict[str, Any]]:
    """A transposed copy's pairs: text2abc, continuation, the key question and the header (what
    transposition changes; meter, bars and repeats would only repeat the real tune's analysis)."""
    key_pairs = []
    if "key" in analysis_answers(variant) and len(variant["abc"]) <= config.max_analysis_chars:
        key_pairs = [pair(analysis_question("key", variant["abc"], rng), variant["key"], "analysis")]
    pairs = [*text2abc_pairs(variant, config, rng), *continuation_pairs(variant, config, rng), *key_pairs,
             *header_pairs(variant, config, rng)]
    return [p | {"transposition": variant["transposition"]} for p in pairs]


def build_pairs(record: dict[str, Any], config: TaskConfig, rng: random.Random) -> list[dict[str, str]]:
    """Every family's pairs for one tune record (see the module docstring), seeded by `rng`."""
    return [*text2abc_pairs(record, config, rng), *continuation_pairs(record, config, rng),
            *analysis_pairs(record, config, rng), *harmonisation_pairs(record, config, rng),
            *header_pairs(record, config, rng)]  # last, so adding it left the other families' draws as they were
