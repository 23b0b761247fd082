"""Tunes generated from a text prompt (ChatMusician's text -> ABC), judged against the prompt.

Per generated tune, each a yes/no averaged over the prompts (an unparseable answer is a no everywhere):

| metric           | yes when                                                                        |
|------------------|---------------------------------------------------------------------------------|
| parse            | abc2midi writes MIDI with at least 8 notes and no fatal message (abc.validate)   |
| bars             | every bar fills its meter; pickups, repeats and endings allowed (abc.check_bars) |
| bar_consistency  | (not yes/no) the share of the tune's bars that fill their meter                  |
| key              | K: names the prompted tonic (any spelling of the pitch) and mode                 |
| meter            | M: is the prompted meter (C = 4/4, C| = 2/2)                                     |
| repeats          | repeat marks are well formed: no |: inside an open section, none left open       |
| repeats_like_ref | it repeats a section exactly when the held-out tune of the prompt does           |
| novel            | its note text shares under NOVELTY_THRESHOLD of its 8-grams with every training tune |

`nearest_similarity` (mean over prompts) is the Jaccard similarity of character 8-grams of the note
text (header, spaces and bar lines removed) to the most similar training tune; a verbatim copy is 1.0.

Manifest gold: {"key": "D major", "meter": "6/8", "reference_abc": <the held-out real tune the prompt
was written from>, "novelty_reference": <JSONL of training tunes with an "abc" field, relative to the
manifest>}. evaluate.py scores, side by side with the model: the held-out real tunes themselves, a
copy of a training tune in the prompted key and meter (novelty must catch it) and a fixed tune.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from llark import abc
from llark.abc.fields import pitch_class
from llark.jsonl import read_jsonl

NOVELTY_THRESHOLD = 0.5
NGRAM = 8
TRIVIAL_TUNE = "X:1\nL:1/8\nM:4/4\nK:C\nCDEF GABc|cBAG FEDC|CDEF GABc|c8|]\n"
METRICS = ("parse", "bars", "bar_consistency", "key", "meter", "repeats", "repeats_like_ref", "novel",
           "nearest_similarity")
_CANONICAL_METERS = {"C": "4/4", "C|": "2/2"}


def canonical_meter(value: str) -> str:
    text = value.strip().replace(" ", "")
    return _CANONICAL_METERS.get(text, text)


def key_identity(spec: abc.KeySpec) -> tuple[int, str] | None:
    """(tonic pitch class, mode) of a key; None without a tonic."""
    return None if spec.tonic is None else (pitch_class(spec.tonic), spec.mode)


def note_text(tune_text: str) -> str:
    """The body without spaces, bar lines, chord symbols and comments: what two copies share."""
    _, body = abc.split_header_body(tune_text)
    body = "\n".join(line for line in body.splitlines() if not re.match(r"^[A-Za-z]:|^%", line))
    body = re.sub(r'"[^"]*"', "", body)
    return re.sub(r"[\s|:\[\]\\]", "", body)


def ngrams(text: str) -> frozenset[str]:
    return frozenset(text[i:i + NGRAM] for i in range(max(1, len(text) - NGRAM + 1)))


def well_formed_repeats(tune: abc.Tune) -> bool:
    """Every |: opens a section that a :| closes before the next |:; a :| without |: repeats from the
    start or the last double bar, as ABC allows."""
    for barlines in tune.barlines.values():
        open_section = False
        for barline in barlines:
            bar = barline.strip("[]0123456789,-")
            if bar.startswith(":"):
                open_section = False
            if bar.endswith(":"):
                if open_section:
                    return False
                open_section = True
        if open_section:
            return False
    return True


@dataclass(frozen=True)
class GenerationGold:
    key: tuple[int, str]
    meter: str
    reference_abc: str
    novelty_reference: str | None


class AbcGenerationTask:
    name = "abc_generation"
    constant = TRIVIAL_TUNE

    def __init__(self) -> None:
        self._references: dict[str, list[frozenset[str]]] = {}  # novelty_reference path -> training 8-gram sets
        self._copies: dict[str, dict[tuple, str]] = {}  # novelty_reference path -> {(key, meter): a training tune}
        self._judged: dict[tuple[str, GenerationGold], dict[str, float]] = {}

    def parse(self, answer: str) -> str | None:
        """The first tune in the answer (X: added when missing); None when there is no K: line at all."""
        text = abc.extract_tune(answer)
        return text if re.search(r"^K:", text, flags=re.MULTILINE) else None

    def parse_gold(self, gold: Any) -> GenerationGold:
        if not isinstance(gold, dict) or not {"key", "meter", "reference_abc"} <= set(gold):
            raise ValueError(f"abc_generation gold needs key, meter and reference_abc, got {gold!r}")
        key = key_identity(abc.parse_key(str(gold["key"]), "gold key"))
        if key is None:
            raise ValueError(f"gold key {gold['key']!r} names no tonic")
        return GenerationGold(key, canonical_meter(str(gold["meter"])), str(gold["reference_abc"]),
                              gold.get("novelty_reference"))

    def metrics(self, predicted: list[str | None], gold: list[GenerationGold]) -> dict[str, float]:
        rows = [self.judge(tune, g) for tune, g in zip(predicted, gold)]
        return {name: float(np.mean([row[name] for row in rows])) for name in METRICS}

    def baselines(self, gold: list[GenerationGold]) -> dict[str, list[str]]:
        """Scored like the model: the held-out tunes, a copied training tune, a fixed tune."""
        return {"held-out real tunes": [g.reference_abc for g in gold],
                "copy of a training tune": [self._training_copy(g) for g in gold],
                "fixed tune": [TRIVIAL_TUNE] * len(gold)}

    # --- one tune -------------------------------------------------------------------------------

    def judge(self, tune: str | None, gold: GenerationGold) -> dict[str, float]:
        """Every metric of one tune (memoised: bootstrap resamples ask again)."""
        if tune is None:
            return dict.fromkeys(METRICS, 0.0)
        cache_key = (tune, gold)
        if cache_key not in self._judged:
            self._judged[cache_key] = self._judge(tune, gold)
        return self._judged[cache_key]

    def _judge(self, tune: str, gold: GenerationGold) -> dict[str, float]:
        row = dict.fromkeys(METRICS, 0.0)
        try:
            row["parse"] = float(abc.validate(tune).ok)
            parsed = abc.parse_tune(tune, "generated tune")
            bars = abc.check_bars(parsed)
            row["bars"], row["bar_consistency"] = float(bars.ok), bars.consistency
            row["key"] = float(key_identity(parsed.key) == gold.key)
            row["meter"] = float(canonical_meter(parsed.field("M", "")) == gold.meter)
            row["repeats"] = float(well_formed_repeats(parsed))
            reference = abc.parse_tune(gold.reference_abc, "reference tune")
            row["repeats_like_ref"] = float((parsed.repeats > 0) == (reference.repeats > 0))
        except abc.AbcError:
            return row | {"parse": 0.0}  # a tune we cannot even read counts as not parsed
        similarity = self.nearest_similarity(tune, gold.novelty_reference)
        row["nearest_similarity"] = similarity
        row["novel"] = float(row["parse"] == 1.0 and similarity < NOVELTY_THRESHOLD)
        return row

    def nearest_similarity(self, tune: str, reference_path: str | None) -> float:
        if reference_path is None:
            return 0.0
        mine = ngrams(note_text(tune))
        return max((len(mine & theirs) / len(mine | theirs) for theirs in self._reference(reference_path)),
                   default=0.0)

    def _reference(self, path: str) -> list[frozenset[str]]:
        if path not in self._references:
            self._references[path] = [ngrams(note_text(line["abc"])) for line in read_jsonl(path, required=("abc",))]
        return self._references[path]

    def _training_copy(self, gold: GenerationGold) -> str:
        """A training tune in the prompted key and meter (the fixed tune when none matches)."""
        if gold.novelty_reference is None:
            return TRIVIAL_TUNE
        if gold.novelty_reference not in self._copies:
            copies: dict[tuple, str] = {}
            for line in read_jsonl(gold.novelty_reference, required=("abc",)):
                parsed = abc.parse_tune(line["abc"], "training tune")
                copies.setdefault((key_identity(parsed.key), canonical_meter(parsed.field("M", ""))), line["abc"])
            self._copies[gold.novelty_reference] = copies
        return self._copies[gold.novelty_reference].get((gold.key, gold.meter), TRIVIAL_TUNE)
