"""Meter (time signature): accuracy of the stated "n/d"."""

from __future__ import annotations

from llark.evaluation import mean_over_items, summed_metrics
from llark.evaluation.parsing import parse_meter


class MeterTask:
    name = "meter"
    constant = "4/4"
    item_counts = mean_over_items(("accuracy",), lambda predicted, gold: [[p == g] for p, g in zip(predicted, gold)])

    @staticmethod
    def agreement(predicted: str, gold: str) -> float:
        return float(predicted == gold)

    def parse(self, answer: str) -> str | None:
        return parse_meter(answer)

    def parse_gold(self, gold) -> str:
        meter = parse_meter(str(gold))
        if meter is None:
            raise ValueError(f"gold meter {gold!r} is not 'n/d'")
        return meter

    def metrics(self, predicted: list[str | None], gold: list[str]) -> dict[str, float]:
        return summed_metrics(self.item_counts, predicted, gold)
