"""Minimum-Bayes-risk (MBR) choice of an answer among answers sampled from the model.

Greedy decoding returns the likeliest next token at each step, which is not the answer the model
believes most. A small model spreads a tempo over neighbouring numbers ("112", "114", "116" BPM each a
little likely), and the likeliest single number is a noisy pick among them. MBR decoding samples
answers and returns the one that agrees best with all the others: the answer with the least expected
loss under the model's own distribution (Kumar & Byrne 2004; self-consistency, Wang et al. 2023, is the
special case of exact-match agreement).

Agreement between two answers is the F1 of their terms: words (lower-cased; "F#", "6/8" and
"(nylon)" are one term each) match when equal, and numbers match when within `number_tolerance` of
each other (relative). So for "The tempo is about N BPM." the chosen N is the one with the most
sampled numbers within 4 % of it, the value tempo accuracy (Acc1) rewards, and for a list of
instruments the chosen list is the one sharing the most names with the others.

    choose_answer(["The tempo is about 112 BPM.", "The tempo is about 114 BPM.", "The tempo is about 80 BPM."])
    -> 0 (112 and 114 agree within 4 %; 80 agrees with neither)
    llark ask --checkpoint DIR --audio song.wav --question "What is the tempo?" --mbr-samples 32
    llark ask ... --mbr-samples 16 --mbr-weighting probability   # distinct answers weighed by the model

Each distinct answer sampled weighs how often it was sampled ("count"), or the model's probability of
it ("probability", `log_probs`). Sampled at a temperature below 1, the counts follow a sharpened
distribution that overweighs the likeliest answer, which the expected agreement under the model's own
distribution (the exact MBR choice) does not.

Where the question's task is known (key, tempo, meter, instruments), agreement is the task's own score of
an answer against a truth instead (`choose_by_agreement`: the MIREX weight of two keys, a tempo within 4 %,
the same meter, the F1 of two sets of instrument classes), so "The time signature is 3/4." and "3/4." are
one answer, and an answer that states nothing the task can read is never chosen. The truth they are
weighed against can also mix in a label head's reading of the clip (`belief`; GenerationOptions.head_weight).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

# How a distinct sampled answer weighs (choose_answer): how often it was sampled, or the model's probability of it.
MBR_WEIGHTINGS = ("count", "probability")
# A number ("112", "0.5"), a ratio such as a meter ("6/8"), or a word with its #, ' or -.
_TERM = re.compile(r"\d+/\d+|\d+(?:\.\d+)?|[^\W\d_][\w#'\-]*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def answer_terms(text: str) -> list[str]:
    """The terms agreement counts, in order: "6/8 at 112 BPM" -> ["6/8", "at", "112", "bpm"]."""
    return _TERM.findall(text.lower())


@dataclass(frozen=True)
class Terms:
    """An answer's terms: the words as a multiset, the numbers as values (matched with a tolerance)."""

    words: Counter
    numbers: tuple[float, ...]

    @classmethod
    def of(cls, text: str) -> "Terms":
        terms = answer_terms(text)
        return cls(Counter(t for t in terms if not _NUMBER.fullmatch(t)),
                   tuple(float(t) for t in terms if _NUMBER.fullmatch(t)))

    def __len__(self) -> int:
        return sum(self.words.values()) + len(self.numbers)


def numbers_agree(x, y, tolerance: float):
    """Whether x and y (numbers, or numpy arrays that broadcast) lie within `tolerance` of the larger one."""
    return np.abs(x - y) <= tolerance * np.maximum(x, y)


def agreement(a: Terms, b: Terms, number_tolerance: float) -> float:
    """F1 of two answers' terms, each term matched at most once; 1.0 for two empty answers."""
    if not len(a) and not len(b):
        return 1.0
    matches = sum((a.words & b.words).values())
    unmatched = list(b.numbers)
    for x in a.numbers:
        for j, y in enumerate(unmatched):
            if numbers_agree(x, y, number_tolerance):
                matches += 1
                del unmatched[j]
                break
    return 2.0 * matches / (len(a) + len(b))


def answer_weights(candidates: list[str], log_probs: list[float] | None = None) -> dict[str, float]:
    """How much each distinct sampled answer weighs: how often it was sampled, or given `log_probs` (each
    candidate's log-probability under the model, `LLark.generate(log_probs=...)`) the model's probability of
    it, relative to the likeliest (a text the model can spell two ways: the likelier spelling)."""
    if not candidates:
        raise ValueError("MBR needs at least one candidate answer")
    if log_probs is None:
        return {text: float(n) for text, n in Counter(candidates).items()}
    if len(log_probs) != len(candidates):
        raise ValueError(f"{len(log_probs)} log-probabilities for {len(candidates)} candidates")
    best: dict[str, float] = {}
    for text, log_prob in zip(candidates, log_probs):
        best[text] = max(best.get(text, -math.inf), log_prob)
    top = max(best.values())
    return {text: math.exp(log_prob - top) for text, log_prob in best.items()}


def choose_answer(candidates: list[str], number_tolerance: float = 0.04, log_probs: list[float] | None = None) -> int:
    """Index of the candidate with the highest total agreement with all candidates (the first on a tie).

    Samples often repeat an answer word for word, so each distinct answer is compared once and
    weighted by how often it was sampled; or, given `log_probs`, by the model's probability of it
    (`answer_weights`): the expected agreement under the model's distribution restricted to the answers
    sampled, which sampling at a low temperature would otherwise sharpen towards the likeliest one.
    """
    weights = answer_weights(candidates, log_probs)
    distinct = list(weights)
    terms = [Terms.of(c) for c in distinct]
    totals = {text: sum(weights[other] * agreement(t, u, number_tolerance) for other, u in zip(distinct, terms))
              for text, t in zip(distinct, terms)}
    return max(range(len(candidates)), key=lambda i: (totals[candidates[i]], -i))


# A belief about the truth: values it may be (in a task's parsed form) and the probability of each.
Belief = list[tuple[Any, float]]


def choose_by_agreement(candidates: list[str], parse: Callable[[str], Any | None], agreement: Callable[[Any, Any], float],
                        belief: Belief | None = None, belief_weight: float = 0.0,
                        log_probs: list[float] | None = None) -> int | None:
    """Index of the candidate with the highest expected score under a task's own per-item metric, or None
    when no candidate parses: MBR with the metric as its utility, where `choose_answer` counts shared words.

    `parse` gives a candidate's value (None: it states none; never chosen, and no evidence of the truth);
    `agreement(value, truth)` scores it. The truth is taken as distributed like the candidates that parse,
    each distinct one weighed as `answer_weights` says, or with `belief` (a label head's reading of the
    clip: llark/label_targets.py, head_belief) as the mixture (1 - belief_weight) x those + belief_weight x
    belief. The first on a tie.

        choose_by_agreement(["3/4.", "6/8.", "In 6/8."], MeterTask().parse, MeterTask.agreement)         -> 1
        choose_by_agreement(["3/4.", "6/8.", "In 6/8."], MeterTask().parse, MeterTask.agreement,
                            [("3/4", 0.9), ("6/8", 0.1)], 0.5)                                             -> 0
    """
    if not 0.0 <= belief_weight <= 1.0:
        raise ValueError(f"belief_weight must be in [0, 1], got {belief_weight}")
    if belief_weight > 0 and not belief:
        raise ValueError("belief_weight > 0 needs a belief")
    weights = answer_weights(candidates, log_probs)
    values = {text: parse(text) for text in weights}
    stated = {text: weight for text, weight in weights.items() if values[text] is not None}
    if not stated:
        return None
    total = sum(stated.values())
    truths = [(values[text], (1.0 - belief_weight) * weight / total) for text, weight in stated.items()]
    if belief_weight > 0:
        believed = sum(w for _, w in belief)
        truths += [(value, belief_weight * w / believed) for value, w in belief]
    expected: dict[Any, float] = {}  # each distinct value once, however many texts state it
    for text in stated:
        if values[text] not in expected:
            expected[values[text]] = sum(w * agreement(values[text], truth) for truth, w in truths if w)
    return max((i for i, text in enumerate(candidates) if text in stated),
               key=lambda i: (expected[values[candidates[i]]], -i))


def most_probable_number(values: np.ndarray, log_probs: np.ndarray, tolerance: float,
                         belief: Belief | None = None, belief_weight: float = 0.0) -> int:
    """Index of the value most likely to be right, taking the model's distribution over the values as the
    truth's and an answer as right within `tolerance` of the truth, relative to the truth (tempo Acc1:
    |answer - gold| <= 0.04 gold): the exact MBR choice, where sampled answers only estimate it (the first
    on a tie). The tolerance is the metric's, not `numbers_agree`'s: 125 is within 4 % of 120 relative
    to 125, but not relative to 120, so it would not be right for a truth of 120.

    values: [n] the numbers an answer may state; log_probs: [n] the model's log-probability of stating each.
        most_probable_number(np.array([100, 103, 130]), np.log([0.3, 0.3, 0.4]), 0.04)  -> 0 (0.6 within 4 %)

    With `belief` (numbers the truth may be and their probabilities: the tempo head's classes), the truth is
    taken as distributed like the mixture (1 - belief_weight) x the model's answers + belief_weight x belief.
    """
    values, log_probs = np.asarray(values, dtype=float), np.asarray(log_probs, dtype=float)
    if values.shape != log_probs.shape or values.ndim != 1 or not len(values):
        raise ValueError(f"need matching 1-D values and log-probabilities, got {values.shape} and {log_probs.shape}")
    if not 0.0 <= belief_weight <= 1.0:
        raise ValueError(f"belief_weight must be in [0, 1], got {belief_weight}")
    probabilities = np.exp(log_probs - log_probs.max())
    truths, weights = values, probabilities / probabilities.sum()
    if belief_weight > 0:
        if not belief:
            raise ValueError("belief_weight > 0 needs a belief")
        believed = np.array([w for _, w in belief], dtype=float)
        truths = np.concatenate([values, [float(v) for v, _ in belief]])
        weights = np.concatenate([(1.0 - belief_weight) * weights, belief_weight * believed / believed.sum()])
    right = np.abs(values[:, None] - truths[None, :]) <= tolerance * truths[None, :]  # [answer, truth]
    return int((right @ weights).argmax())
