"""A clip's labels as classification targets, for the optional label loss (`model.label_loss_weight`).

The LM answers key, tempo, meter and instrument questions in words; this turns the same labels into
class indices, so small heads on the LM's hidden states at the audio positions can be trained on every
example, whatever its question (model.py, `LLark.label_loss`). -1 marks a label the clip lacks.

    encode_label_targets({"key": "F# minor", "tempo": 121.0, "meter": "6/8", "instruments": ["Flute", "Drums"]})
    -> {"target_key": 18, "target_tempo": 36, "target_meter": 4, "target_instruments": [0., ..., 1., ...]}
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from llark.corpus.theory import KEYS_24, TheoryError, parse_key
from llark.evaluation.instruments import CLASSES, instrument_class

MIN_BPM, MAX_BPM = 30.0, 300.0
TEMPO_BIN_RATIO = 1.04  # a class per 4 % of tempo, the width of Acc1's tolerance band
TEMPO_CLASSES = math.ceil(math.log(MAX_BPM / MIN_BPM) / math.log(TEMPO_BIN_RATIO)) + 1
METERS = ("2/2", "2/4", "3/4", "4/4", "6/8", "9/8", "12/8", "3/8", "5/4", "7/8")
INSTRUMENT_CLASSES = tuple(sorted(CLASSES))

# head name -> number of outputs; single-label heads use cross-entropy, "instruments" is multi-label.
HEAD_SIZES = {"key": 24, "tempo": TEMPO_CLASSES, "meter": len(METERS), "instruments": len(INSTRUMENT_CLASSES)}
TARGET_KEYS = tuple(f"target_{name}" for name in HEAD_SIZES)
MULTI_LABEL_HEADS = ("instruments",)  # a sigmoid per class (binary cross-entropy); the others a softmax
BELIEF_DRAWS = 128  # sets drawn from the instrument head's per-class probabilities (head_belief)
TEMPO_BELIEF_POINTS = 8  # tempos a tempo class's probability is spread over, evenly across its 4 % (head_belief)
MISSING = -1


def tempo_class(bpm: float) -> int:
    bpm = min(max(float(bpm), MIN_BPM), MAX_BPM)
    return int(round(math.log(bpm / MIN_BPM) / math.log(TEMPO_BIN_RATIO)))


def key_class(name: str) -> int:
    """0-11 major keys by tonic pitch class, 12-23 minor keys."""
    key = parse_key(name)
    return key.pc + (12 if key.mode == "minor" else 0)


def key_target(name: str | None) -> int:
    """key_class of a labelled key, or MISSING where there is none or it is not one of the 24 (a mode, a typo)."""
    if not name:
        return MISSING
    try:
        return key_class(name)
    except TheoryError:  # not one of the 24 keys: the label is missing for the key head, not an error for the clip
        return MISSING


def encode_label_targets(labels: dict[str, Any]) -> dict[str, Any]:
    """Class targets of one clip; a missing or unrecognised label is MISSING (its loss term is skipped)."""
    targets: dict[str, Any] = {name: MISSING for name in TARGET_KEYS}
    targets["target_key"] = key_target(labels.get("key"))  # a key none of the 24: the other labels still count
    if labels.get("tempo"):
        targets["target_tempo"] = tempo_class(labels["tempo"])
    if labels.get("meter") in METERS:
        targets["target_meter"] = METERS.index(labels["meter"])
    instruments = np.full(len(INSTRUMENT_CLASSES), float(MISSING), np.float32)
    if labels.get("instruments"):
        instruments[:] = 0.0
        for name in labels["instruments"]:
            found = instrument_class(name)
            if found in CLASSES:
                instruments[INSTRUMENT_CLASSES.index(found)] = 1.0
    targets["target_instruments"] = instruments
    return targets


def head_belief(name: str, probabilities: np.ndarray, draws: int = BELIEF_DRAWS, seed: int = 0,
                tempo_points: int = TEMPO_BELIEF_POINTS) -> list[tuple[Any, float]]:
    """The head's reading of one clip as values of its evaluation task (what the task's `parse` gives) and
    the probability of each: MBR decoding weighs sampled answers against it (llark/mbr.py, `head_weight`).

    probabilities: the head's softmax (key, tempo, meter) or per-class sigmoid (instruments). A tempo class
    stands for every tempo in its 4 %: its probability is spread over `tempo_points` tempos evenly across
    it (in log tempo; 1: its centre alone). As one point at its centre, a class would be as wide as the 4 %
    Acc1 window, and the exact-number choice (llark/mbr.py, most_probable_number) would pick the number whose
    window reaches two neighbouring centres rather than the likeliest tempo. The instruments' are `draws`
    sets drawn with those per-class probabilities (each 1/draws; seeded, so the same clip gets the same belief).

        head_belief("meter", np.array([0, 0.1, 0.9, 0, 0, 0, 0, 0, 0, 0]))   -> [("2/2", 0.0), ("2/4", 0.1), ("3/4", 0.9), ...]
    """
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.shape != (HEAD_SIZES[name],):
        raise ValueError(f"the {name} head has {HEAD_SIZES[name]} classes, got probabilities of shape {probabilities.shape}")
    if name == "key":
        return [(key.name, p) for key, p in zip(KEYS_24, probabilities.tolist())]  # the order of key_class
    if name == "tempo":
        offsets = (np.arange(tempo_points) + 0.5) / tempo_points - 0.5  # within (-1/2, 1/2) of a class
        return [(MIN_BPM * TEMPO_BIN_RATIO ** (c + offset), p / tempo_points)
                for c, p in enumerate(probabilities.tolist()) for offset in offsets.tolist()]
    if name == "meter":
        return list(zip(METERS, probabilities.tolist()))
    drawn = np.random.default_rng(seed).random((draws, len(probabilities))) < probabilities
    return [(frozenset(INSTRUMENT_CLASSES[i] for i in np.flatnonzero(row)), 1.0 / draws) for row in drawn]
