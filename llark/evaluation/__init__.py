"""Evaluation: tasks behind one interface, answer parsers, baselines, bootstrap intervals, reports.

A task turns free-text answers into values (`parse`, None when unparseable), checks gold labels
(`parse_gold`) and scores lists of values (`metrics`). Baselines produce values directly, so they
are scored by the same code. `evaluate.py` runs any task of `TASKS`.

    task = get_task("key")
    task.metrics([task.parse("It's in F sharp minor.")], [task.parse_gold("F# minor")])   # {"mirex": 1.0, ...}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np


class Task(Protocol):
    name: str
    constant: Any  # the constant-answer baseline's value
    # Optional (read with number_answer(task)): for a task whose answer is one number (tempo), the numbers it
    # may be and where an answer states it (GenerationOptions.exact_number_mbr).
    # number_answer: NumberAnswer
    # Optional (read with item_counts(task)): for a task whose metrics are functions of counts summed over the
    # items, those counts (the bootstrap then resamples them instead of scoring every resample again).
    # item_counts: ItemCounts
    # Optional (read with answer_agreement(task)): for a task whose answers are scored one by one, the score of
    # one parsed answer against one parsed truth (key: the MIREX weight; tempo: within 4 %; meter: equal;
    # instruments: the set F1). MBR decoding then chooses the sampled answer with the best expected score.
    # agreement: Callable[[Any, Any], float]

    def parse(self, answer: str) -> Any | None:
        """The value a free-text answer states, or None when it states none."""
        ...

    def parse_gold(self, gold: Any) -> Any:
        """The gold label as a value; raises ValueError for a malformed label."""
        ...

    def metrics(self, predicted: list[Any | None], gold: list[Any]) -> dict[str, float]:
        """Metrics over parallel lists (None predictions count as wrong)."""
        ...


@dataclass(frozen=True)
class NumberAnswer:
    """What exact number MBR (GenerationOptions.exact_number_mbr) needs of a task whose answer is one number:
    the whole numbers it may be, and where an answer states it (the span of the text the task's parser
    reads, or None), so that number and no other is restated ("In 3/4 at 112 BPM." -> the 112).

        NumberAnswer(range(30, 301), tempo_span)
    """

    values: Sequence[int]
    locate: Callable[[str], tuple[int, int] | None]


@dataclass(frozen=True)
class ItemCounts:
    """A task whose metrics are functions of counts summed over its items (an accuracy: right answers and
    items; an F1: true positives, false positives, false negatives): each item's counts, and the metrics
    of their sums. The task's `metrics` is `summed_metrics` of them, and the bootstrap
    (llark/evaluation/bootstrap.py) sums each resample's counts in one matrix product rather than
    scoring its answers again.

        ItemCounts(lambda p, g: np.array([[a == b, 1] for a, b in zip(p, g)], float),
                   lambda sums: {"accuracy": sums[..., 0] / sums[..., 1]})
    """

    counts: Callable[[list, list], np.ndarray]  # (predicted, gold) -> [n items, k]
    of_sums: Callable[[np.ndarray], dict[str, np.ndarray]]  # [..., k] sums over items -> {metric: [...]}


def summed_metrics(counts: ItemCounts, predicted: list, gold: list) -> dict[str, float]:
    """The metrics of the items' summed counts."""
    sums = counts.counts(predicted, gold).sum(axis=0)
    return {name: float(value) for name, value in counts.of_sums(sums).items()}


def fraction(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """part / whole elementwise; nan where whole is 0 (no items: the mean of none)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(part, dtype=float) / whole


def mean_over_items(names: Sequence[str], values: Callable[[list, list], np.ndarray]) -> ItemCounts:
    """ItemCounts of metrics that are means over the items of per-item values (an accuracy, a mean score):
    `values(predicted, gold)` gives each item's [n, len(names)] values; a count of items is summed beside them.

        mean_over_items(["accuracy"], lambda p, g: [[a == b] for a, b in zip(p, g)])
    """
    width = len(names)

    def counts(predicted: list, gold: list) -> np.ndarray:
        per_item = np.asarray(values(predicted, gold), dtype=float).reshape(len(gold), width)
        return np.concatenate([per_item, np.ones((len(gold), 1))], axis=1)

    def of_sums(sums: np.ndarray) -> dict[str, np.ndarray]:
        return {name: fraction(sums[..., column], sums[..., width]) for column, name in enumerate(names)}

    return ItemCounts(counts, of_sums)


def item_counts(task: Task) -> ItemCounts | None:
    """The task's ItemCounts, or None for a task whose metrics do not sum over items (captions, ABC)."""
    return getattr(task, "item_counts", None)


def answer_agreement(task: Task) -> Callable[[Any, Any], float] | None:
    """The task's per-item score of an answer against a truth (parsed values), or None for a task without one."""
    return getattr(task, "agreement", None)


def number_answer(task: Task) -> NumberAnswer | None:
    """The task's NumberAnswer (tempo: 30..300 BPM), or None for a task that answers in words."""
    return getattr(task, "number_answer", None)


def get_task(name: str) -> Task:
    from llark.evaluation.tasks import TASKS

    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]
