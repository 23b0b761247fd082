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


class Task(Protocol):
    name: str
    constant: Any  # the constant-answer baseline's value
    # Optional (read with number_answer(task)): for a task whose answer is one number (tempo), the numbers it
    # may be and where an answer states it (GenerationOptions.exact_number_mbr).
    # number_answer: NumberAnswer

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


def number_answer(task: Task) -> NumberAnswer | None:
    """The task's NumberAnswer (tempo: 30..300 BPM), or None for a task that answers in words."""
    return getattr(task, "number_answer", None)


def get_task(name: str) -> Task:
    from llark.evaluation.tasks import TASKS

    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]
