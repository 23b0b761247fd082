"""Instruction data from clip labels: LLark's Q/A families from offline templates, and its leakage filters.

    python preprocessing/instruct.py --clips data/pipeline/clips.jsonl --out data/pipeline/qa.jsonl

    from llark.instructions import TemplateGenerator, filter_pairs
    pairs, dropped = filter_pairs(TemplateGenerator(mir_per_clip=6, seed=0).generate(clip))

Families (LLark): `mir_qa` (factual, definite answers), `captioning` (one rich description),
`reasoning` (needs background knowledge, never a single-attribute lookup), and `transcription` (the
melody as ABC, only for clips rendered from an ABC tune). A `mir_qa` pair also names its `topic`, the
fact asked about (a key of `MIR_ASKS`: key, mode, tempo, meter, chords ...). Answers spell label
values exactly as the labels do, in phrasings the evaluators parse: the first "X major/minor" of a key answer is the key,
the first number of a tempo answer is the integer BPM, the first "N/M" of a meter answer is the meter,
and an instrument answer names every instrument of the label. No answer says "a major"/"a minor"
with a lower-case article, which a case-insensitive key parser would read as A major/A minor.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llark.instruction_facts import KEY_RE, METER_RE, Facts, LabelError, scale_notes, strip_inaudible_abc
from llark.instruction_phrasings import (CAPTION_QUESTIONS, CORE_FACTS, MIR_ASKS, REASONING, TRANSCRIPTION_QUESTIONS,
                                         _fields, caption)

__all__ = ["BANNED_PHRASES", "CAPTION_QUESTIONS", "INAUDIBLE_QUESTION", "MIR_ASKS", "ClipsFormatError", "Facts",
           "LabelError", "TemplateGenerator", "filter_pairs", "read_clips", "scale_notes", "KEY_RE", "METER_RE"]

FAMILIES = ("mir_qa", "captioning", "reasoning", "transcription")

# LLark dropped answers with these phrases: they betray that the answer was read, not heard, or refuse.
BANNED_PHRASES = (
    "metadata", "meta-data", "meta data", "based on the provided", "provided information", "information provided",
    "as an ai", "language model", "cannot determine", "can't determine", "unable to determine",
    "not possible to determine", "i'm sorry", "i am sorry", "i apologize", "the labels", "annotation", "json",
)
# Questions about facts no one can hear (LLark: title, artist, composer, album, movement, duration).
INAUDIBLE_QUESTION = re.compile(
    r"\b(titles?|titled|artists?|composers?|composed|album|movements?|duration|how long|length of (the|this)|"
    r"who (wrote|performed|sings|sang|recorded)|written by|songwriter|lyricist|record label)\b",
    re.IGNORECASE,
)
# ABC information fields that name inaudible facts (title, composer, source, history, lyrics ...) leave
# the transcription answer; the notes, meter, unit length, tempo and key stay.


class ClipsFormatError(ValueError):
    """A clips.jsonl line that cannot be used; the message names the file and line."""


def leakage_reason(pair: dict[str, str]) -> str | None:
    """Why LLark's filters drop this pair ("banned_phrase", "inaudible_question"), or None to keep it."""
    answer = pair["answer"].lower().replace("\u2019", "'")
    if any(phrase in answer for phrase in BANNED_PHRASES):
        return "banned_phrase"
    if INAUDIBLE_QUESTION.search(pair["question"]):
        return "inaudible_question"
    return None


def filter_pairs(pairs: list[dict[str, str]]) -> tuple[list[dict[str, str]], Counter]:
    """(kept pairs, drop counts by reason): the same filters for every backend."""
    kept, dropped = [], Counter()
    for pair in pairs:
        reason = leakage_reason(pair)
        if reason:
            dropped[reason] += 1
        else:
            kept.append(pair)
    return kept, dropped


# ----------------------------------------------------------------------------- the generator


@dataclass
class TemplateGenerator:
    """Offline, seeded Q/A pairs from labels; the same seed and clip always give the same pairs.

    Each family draws from its own random stream (seed, clip id and family), so changing
    `mir_per_clip` leaves a clip's captions and reasoning as they were.
    """

    mir_per_clip: int = 6
    captions: int = 1
    reasoning: int = 1
    transcriptions: int = 1
    seed: int = 0

    def generate(self, clip: dict[str, Any]) -> list[dict[str, str]]:
        facts = Facts.from_labels(clip.get("labels") or {})
        if not facts.audible():
            return []

        def rng(family: str) -> random.Random:
            return random.Random(f"{self.seed}/{clip['clip_id']}/{family}")  # str seeds are stable across processes

        return [*self.mir_pairs(facts, rng("mir_qa")), *self.caption_pairs(facts, rng("captioning")),
                *self.reasoning_pairs(facts, rng("reasoning")), *self.transcription_pairs(facts, rng("transcription"))]

    def mir_pairs(self, facts: Facts, rng: random.Random) -> list[dict[str, str]]:
        fields = _fields(facts, rng)
        options = {fact: [(q.format(**fields), ask) for ask in asks if ask.when(facts) for q in ask.questions]
                   for fact, asks in MIR_ASKS.items()}
        options = {fact: choices for fact, choices in options.items() if choices}
        core, extra = [f for f in options if f in CORE_FACTS], [f for f in options if f not in CORE_FACTS]
        rng.shuffle(core)
        rng.shuffle(extra)
        order, pairs, used, turn = core + extra, [], set(), 0
        while len(pairs) < self.mir_per_clip and order:  # round robin over the facts, no question twice
            fact = order[turn % len(order)]
            fresh = [(q, ask) for q, ask in options[fact] if q not in used]
            if not fresh:
                order.remove(fact)
                continue
            question, ask = rng.choice(fresh)
            used.add(question)
            turn += 1
            pairs.append(_pair(question, rng.choice(ask.answers).format(**fields), "mir_qa", topic=fact))
        return pairs

    def caption_pairs(self, facts: Facts, rng: random.Random) -> list[dict[str, str]]:
        if not any((facts.key, facts.tempo, facts.meter, facts.instruments, facts.genre, facts.melody)):
            return []  # too little to describe
        questions = rng.sample(CAPTION_QUESTIONS, min(self.captions, len(CAPTION_QUESTIONS)))
        return [_pair(q, caption(facts, rng), "captioning") for q in questions]

    def reasoning_pairs(self, facts: Facts, rng: random.Random) -> list[dict[str, str]]:
        usable = [r for r in REASONING if r.when(facts)]
        chosen = rng.sample(usable, min(self.reasoning, len(usable)))
        return [_pair(rng.choice(r.questions(facts)), r.answer(facts, rng), "reasoning") for r in chosen]

    def transcription_pairs(self, facts: Facts, rng: random.Random) -> list[dict[str, str]]:
        if not facts.abc:
            return []
        questions = list(TRANSCRIPTION_QUESTIONS)
        if facts.melody:
            questions += [f"Transcribe the {facts.melody} melody in ABC notation.",
                          f"Write the {facts.melody} part in ABC notation."]
        answer = strip_inaudible_abc(facts.abc)
        return [_pair(q, answer, "transcription") for q in rng.sample(questions, min(self.transcriptions, len(questions)))]


def _pair(question: str, answer: str, family: str, topic: str | None = None) -> dict[str, str]:
    """A Q/A pair; MIR pairs also name their `topic` (the fact asked about: key, tempo, chords ...), which a
    training curriculum can select with `data.topics`."""
    pair = {"question": question, "answer": answer, "family": family}
    if topic is not None:
        pair["topic"] = topic
    return pair


def read_clips(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, clip) for each clips.jsonl line; a bad line is a ClipsFormatError naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: clips file not found")
    clips, first_seen = [], {}
    with path.open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                clip = json.loads(line)
            except json.JSONDecodeError as err:
                raise ClipsFormatError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            if not isinstance(clip, dict):
                raise ClipsFormatError(f"{path}:{number}: expected a JSON object")
            clip_id = clip.get("clip_id")
            if not isinstance(clip_id, str) or not clip_id:
                raise ClipsFormatError(f"{path}:{number}: missing or empty 'clip_id'")
            if not isinstance(clip.get("labels", {}), dict):
                raise ClipsFormatError(f"{path}:{number}: 'labels' must be an object")
            if clip_id in first_seen:
                raise ClipsFormatError(f"{path}:{number}: duplicate clip_id {clip_id!r} "
                                       f"(first on line {first_seen[clip_id]})")
            first_seen[clip_id] = number
            clips.append((number, clip))
    return clips
