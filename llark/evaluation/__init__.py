"""Evaluation: tasks behind one interface, answer parsers, baselines, bootstrap intervals, reports.

A task turns free-text answers into values (`parse`, None when unparseable), checks gold labels
(`parse_gold`) and scores lists of values (`metrics`). Baselines produce values directly, so they
are scored by the same code. `evaluate.py` runs any task of `TASKS`.

    task = get_task("key")
    task.metrics([task.parse("It's in F sharp minor.")], [task.parse_gold("F# minor")])   # {"mirex": 1.0, ...}
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence


class Task(Protocol):
    name: str
    constant: Any  # the constant-answer baseline's value
    # Optional (read with answer_numbers(task)): the whole numbers an answer states, for a task whose answer
    # is one number (tempo); exact MBR decoding scores each (GenerationOptions.exact_number_mbr).
    # answer_numbers: Sequence[int]

    def parse(self, answer: str) -> Any | None:
        """The value a free-text answer states, or None when it states none."""
        ...

    def parse_gold(self, gold: Any) -> Any:
        """The gold label as a value; raises ValueError for a malformed label."""
        ...

    def metrics(self, predicted: list[Any | None], gold: list[Any]) -> dict[str, float]:
        """Metrics over parallel lists (None predictions count as wrong)."""
        ...


def answer_numbers(task: Task) -> Sequence[int] | None:
    """The numbers the task's answers state (tempo: 30..300 BPM), or None for a task that answers in words."""
    return getattr(task, "answer_numbers", None)


def get_task(name: str) -> Task:
    from llark.evaluation.tasks import TASKS

    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]
