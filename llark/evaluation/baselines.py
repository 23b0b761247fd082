"""Baselines scored side by side with the model: majority class, constant answer, random, and the
classic MIR estimators (librosa key profiles and tempo) run on the same audio.

The majority and random baselines draw on the gold labels of the evaluated set itself, which is the
most favourable choice for them (a majority from a training set can only be worse on this set).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from llark.evaluation import Task


def majority(gold: list[Any]) -> list[Any]:
    value = Counter(gold).most_common(1)[0][0]
    return [value] * len(gold)


def constant(task: Task, gold: list[Any]) -> list[Any]:
    return [task.parse_gold(task.constant)] * len(gold)


def uniform_random(gold: list[Any], seed: int = 0) -> list[Any]:
    choices = sorted(set(gold), key=repr)
    rng = random.Random(seed)
    return [rng.choice(choices) for _ in gold]


def classic_estimates(task_name: str, items: list[dict], load_wave) -> list[Any] | None:
    """librosa estimates for key or tempo of each item's audio span; None for other tasks.

    `load_wave(item) -> (wave, sample_rate)` reads the same span the model hears.
    """
    if task_name not in ("key", "tempo"):
        return None
    from llark.annotate import classic_key, classic_tempo

    estimate = classic_key if task_name == "key" else classic_tempo
    values = []
    for item in items:
        wave, sample_rate = load_wave(item)
        values.append(estimate(wave, sample_rate))
    return values
