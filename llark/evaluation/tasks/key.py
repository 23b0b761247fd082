"""Key: MIREX weighted score (mir_eval: 1.0 same key, 0.5 fifth, 0.3 relative, 0.2 parallel) and exact accuracy."""

from __future__ import annotations

from functools import lru_cache

import mir_eval
import numpy as np

from llark.evaluation import ItemCounts, fraction, summed_metrics
from llark.evaluation.parsing import parse_key


def _key_counts(predicted: list[str | None], gold: list[str]) -> np.ndarray:
    """[n, 3]: each item's MIREX score, whether it is the same key, and 1 (the item)."""
    scores = [_weighted_score(g, p) if p else 0.0 for p, g in zip(predicted, gold)]
    return np.array([(s, s == 1.0, 1.0) for s in scores], dtype=float).reshape(-1, 3)  # 1.0: enharmonics too


def _key_metrics(sums: np.ndarray) -> dict[str, np.ndarray]:
    return {"mirex": fraction(sums[..., 0], sums[..., 2]), "accuracy": fraction(sums[..., 1], sums[..., 2])}


class KeyTask:
    name = "key"
    constant = "C major"
    item_counts = ItemCounts(_key_counts, _key_metrics)

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
