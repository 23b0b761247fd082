"""Tempo: Acc1 (within 4 % of the gold BPM) and Acc2 (also accepting x2, x3, x1/2, x1/3 of it)."""

from __future__ import annotations

from llark.evaluation import NumberAnswer, mean_over_items, summed_metrics
from llark.evaluation.parsing import parse_tempo, tempo_span

TOLERANCE = 0.04
OCTAVE_FACTORS = (1.0, 2.0, 3.0, 1 / 2, 1 / 3)


def within(predicted: float, gold: float, factor: float = 1.0) -> bool:
    return abs(predicted - gold * factor) <= TOLERANCE * gold * factor


def _tempo_hits(predicted: list[float | None], gold: list[float]) -> list[tuple[bool, bool]]:
    """Whether each item is right within 4 % (Acc1), and at one of OCTAVE_FACTORS of the truth (Acc2)."""
    return [(p is not None and within(p, g), p is not None and any(within(p, g, f) for f in OCTAVE_FACTORS))
            for p, g in zip(predicted, gold)]


class TempoTask:
    name = "tempo"
    constant = 120.0
    # The whole-number BPMs an answer may state, scored one by one with --exact-number-mbr (llark/inference.py).
    number_answer = NumberAnswer(range(30, 301), tempo_span)
    item_counts = mean_over_items(("acc1", "acc2"), _tempo_hits)

    @staticmethod
    def agreement(predicted: float, gold: float) -> float:
        return float(within(predicted, gold))  # Acc1

    def parse(self, answer: str) -> float | None:
        return parse_tempo(answer)

    def parse_gold(self, gold) -> float:
        value = float(gold) if not isinstance(gold, str) else parse_tempo(gold)
        if value is None or not value > 0:
            raise ValueError(f"gold tempo {gold!r} is not a positive BPM")
        return value

    def metrics(self, predicted: list[float | None], gold: list[float]) -> dict[str, float]:
        return summed_metrics(self.item_counts, predicted, gold)
