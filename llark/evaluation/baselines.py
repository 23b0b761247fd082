"""Baselines scored side by side with the model: majority class, constant answer, random, and the
classic MIR estimators (librosa key profiles and tempo) run on the same audio.

The majority and random baselines draw on the gold labels of the evaluated set itself, which is the
most favourable choice for them (a majority from a training set can only be worse on this set).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import random
from collections import Counter
from concurrent.futures import Executor, ProcessPoolExecutor
from functools import partial
from typing import Any

import numpy as np

from llark.evaluation import Task


def hashable(value: Any) -> Any:
    """A label as a dictionary key: arrays (a parsed ABC transcription is a pair of them) by shape and bytes."""
    if isinstance(value, np.ndarray):
        return value.shape, value.dtype.str, value.tobytes()
    if isinstance(value, (tuple, list)):
        return tuple(hashable(v) for v in value)
    return value


def majority(gold: list[Any]) -> list[Any]:
    """The commonest label, answered for every item; for set labels (instruments), `commonest_members`."""
    if gold and all(isinstance(value, frozenset) for value in gold):
        value = commonest_members(gold)
    else:
        keys = [hashable(v) for v in gold]
        value = gold[keys.index(Counter(keys).most_common(1)[0][0])]
    return [value] * len(gold)


def commonest_members(gold: list[frozenset]) -> frozenset:
    """The set of the k commonest members, k chosen for the best micro-F1 on `gold`.

    The commonest whole set would be a poor majority answer for sets: nearly every clip's instrument set
    is its own (131 of the demo's 136 val clips), so a tie between sets seen once or twice decides it
    (a lone harp scored micro-F1 0.06 on val, while the three commonest instruments score 0.40).
    """
    ranked = [member for member, _ in Counter(m for value in gold for m in value).most_common()]

    def micro_f1(answer: frozenset) -> float:
        tp = sum(len(answer & value) for value in gold)
        wrong = sum(len(answer ^ value) for value in gold)  # false positives + false negatives
        return 2 * tp / (2 * tp + wrong) if tp + wrong else 1.0

    candidates = [frozenset(ranked[:k]) for k in range(1, len(ranked) + 1)]
    return max(candidates, key=micro_f1) if candidates else frozenset()


def constant(task: Task, gold: list[Any]) -> list[Any]:
    return [task.parse_gold(task.constant)] * len(gold)


def uniform_random(gold: list[Any], seed: int = 0) -> list[Any]:
    distinct = {hashable(v): v for v in gold}
    choices = [distinct[key] for key in sorted(distinct, key=repr)]
    rng = random.Random(seed)
    return [rng.choice(choices) for _ in gold]


def classic_estimates(task_name: str, items: list[dict], load_wave, pool: Executor | None = None) -> list[Any] | None:
    """librosa estimates for key or tempo of each item's audio span; None for other tasks.

    `load_wave(item) -> (wave, sample_rate)` reads the same span the model hears. With a `pool`
    (`classic_pool`) the items are estimated in its processes, in order; `load_wave` must then pickle
    (a module-level function, or a partial of one: `load_span`).
    """
    if task_name not in ("key", "tempo"):
        return None
    from llark.annotate import classic_key, classic_tempo

    one = partial(_estimate, classic_key if task_name == "key" else classic_tempo, load_wave)
    if pool is None:
        return [one(item) for item in items]
    return list(pool.map(one, items, chunksize=8))


def classic_pool(workers: int) -> contextlib.AbstractContextManager[Executor | None]:
    """`workers` processes of one thread each for `classic_estimates` (None for 1: in this process). The
    estimators are single-threaded numpy and Python, so on 2 cores two processes take about half the time
    (evaluate.py, README). Spawned, not forked: the caller holds torch's thread pool, which a fork copies
    in a state that can hang."""
    if workers <= 1:
        return contextlib.nullcontext()
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread)


def load_span(item: dict, sample_rate: int = 22050) -> tuple[np.ndarray, int]:
    """An evaluation item's audio span (its `audio`, `start` and `end`; the first 25 s by default), mono at
    `sample_rate`: what `classic_estimates` reads."""
    from llark.audio import CLIP_SECONDS, load_audio

    start = float(item.get("start", 0.0))
    end = float(item.get("end", start + CLIP_SECONDS))
    return load_audio(item["audio"], sample_rate, start=start, end=end), sample_rate


def _estimate(estimate, load_wave, item: dict) -> Any:
    wave, sample_rate = load_wave(item)
    return estimate(wave, sample_rate)


def _one_thread() -> None:
    import os

    from llark.extraction import limit_threads

    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"  # for the libraries a task loads later (scipy's BLAS, with librosa)
    limit_threads(1)  # for those already loaded (numpy's)
