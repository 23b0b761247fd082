"""Key: MIREX weighted score (mir_eval: 1.0 same key, 0.5 fifth, 0.3 relative, 0.2 parallel) and exact accuracy."""

from __future__ import annotations

from functools import lru_cache

import mir_eval
import numpy as np

from llark.evaluation.parsing import parse_key


class KeyTask:
    name = "key"
    constant = "C major"

    def parse(self, answer: str) -> str | None:
        return parse_key(answer)

    def parse_gold(self, gold) -> str:
        key = parse_key(str(gold))
        if key is None:
            raise ValueError(f"gold key {gold!r} is not '<tonic> major|minor'")
        return key

    def metrics(self, predicted: list[str | None], gold: list[str]) -> dict[str, float]:
        scores = [_weighted_score(g, p) if p else 0.0 for p, g in zip(predicted, gold)]
        exact = [p is not None and _same_key(p, g) for p, g in zip(predicted, gold)]
        return {"mirex": float(np.mean(scores)), "accuracy": float(np.mean(exact))}


@lru_cache(maxsize=4096)  # a few hundred distinct pairs, scored again on each of the bootstrap's resamples
def _weighted_score(reference: str, estimated: str) -> float:
    return mir_eval.key.weighted_score(reference, estimated)


def _same_key(a: str, b: str) -> bool:
    return _weighted_score(a, b) == 1.0  # enharmonic spellings are the same key
