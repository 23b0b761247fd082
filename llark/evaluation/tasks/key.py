"""Key: MIREX weighted score (mir_eval: 1.0 same key, 0.5 fifth, 0.3 relative, 0.2 parallel) and exact accuracy."""

from __future__ import annotations

from functools import lru_cache

import mir_eval

from llark.evaluation import mean_over_items, summed_metrics
from llark.evaluation.parsing import parse_key


def _key_scores(predicted: list[str | None], gold: list[str]) -> list[tuple[float, bool]]:
    """Each item's MIREX score and whether it is the same key (a score of 1: enharmonic spellings too)."""
    scores = [_weighted_score(g, p) if p else 0.0 for p, g in zip(predicted, gold)]
    return [(score, score == 1.0) for score in scores]


class KeyTask:
    name = "key"
    constant = "C major"
    item_counts = mean_over_items(("mirex", "accuracy"), _key_scores)

    @staticmethod
    def agreement(predicted: str, gold: str) -> float:
        return _weighted_score(gold, predicted)

    def parse(self, answer: str) -> str | None:
        return parse_key(answer)

    def parse_gold(self, gold) -> str:
        key = parse_key(str(gold))
        if key is None:
            raise ValueError(f"gold key {gold!r} is not '<tonic> major|minor'")
        return key

    def metrics(self, predicted: list[str | None], gold: list[str]) -> dict[str, float]:
        return summed_metrics(self.item_counts, predicted, gold)


@lru_cache(maxsize=4096)  # a few hundred distinct pairs among every system's and every group's answers
def _weighted_score(reference: str, estimated: str) -> float:
    return mir_eval.key.weighted_score(reference, estimated)
