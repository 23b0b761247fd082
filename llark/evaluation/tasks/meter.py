"""Meter (time signature): accuracy of the stated "n/d"."""

from __future__ import annotations

import numpy as np

from llark.evaluation import ItemCounts, fraction, summed_metrics
from llark.evaluation.parsing import parse_meter


def _meter_counts(predicted: list[str | None], gold: list[str]) -> np.ndarray:
    """[n, 2]: whether each item is right, and 1 (the item)."""
    return np.array([(p == g, 1) for p, g in zip(predicted, gold)], dtype=float).reshape(-1, 2)


class MeterTask:
    name = "meter"
    constant = "4/4"
    item_counts = ItemCounts(_meter_counts, lambda sums: {"accuracy": fraction(sums[..., 0], sums[..., 1])})

    def parse(self, answer: str) -> str | None:
        return parse_meter(answer)

    def parse_gold(self, gold) -> str:
        meter = parse_meter(str(gold))
        if meter is None:
            raise ValueError(f"gold meter {gold!r} is not 'n/d'")
        return meter

    def metrics(self, predicted: list[str | None], gold: list[str]) -> dict[str, float]:
        return summed_metrics(self.item_counts, predicted, gold)
