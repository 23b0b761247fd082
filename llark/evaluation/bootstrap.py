"""95 % bootstrap intervals: resample items with replacement and recompute each metric.

    intervals = bootstrap(task.metrics, predicted, gold, samples=1000)   # {"mirex": (0.61, 0.74), ...}
    intervals = bootstrap(task.metrics, predicted, gold, counts=item_counts(task))   # the same, summed counts

A task whose metrics are functions of counts summed over items (llark.evaluation.ItemCounts: key, tempo,
meter, instruments) is resampled by its counts: each item's counts are computed once, and every
resample's sums are one matrix product of how often it drew each item. The draws are the same either
way, so are the intervals (to rounding). On answers of the demo's shape (4 tasks; 6 systems on 191 items
and 2 on each of 4 groups) that took the intervals from 12.0 s to 0.15 s (benchmarks/bootstrap.py).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from llark.evaluation import ItemCounts

DRAWS_PER_BLOCK = 1_000_000  # item draws held at once: resamples come in blocks of this many draws


def bootstrap(
    metrics: Callable[[list, list], dict[str, float]],
    predicted: list[Any],
    gold: list[Any],
    samples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    counts: ItemCounts | None = None,
) -> dict[str, tuple[float, float]]:
    """Percentile interval of every metric over `samples` resamples of the n items (n = len(gold)): scored
    by `metrics` on each resample, or, given the task's `counts`, from each resample's summed counts."""
    n = len(gold)
    if n == 0:
        return {}
    draws: dict[str, list[np.ndarray]] = {}
    if counts is None:
        for block in resampled_items(n, samples, seed):
            for index in block:
                for name, value in metrics([predicted[i] for i in index], [gold[i] for i in index]).items():
                    draws.setdefault(name, []).append(np.atleast_1d(value))
    else:
        per_item = counts.counts(predicted, gold)  # [n, k]
        for block in resampled_items(n, samples, seed):
            offsets = n * np.arange(len(block))[:, None]
            times = np.bincount((block + offsets).ravel(), minlength=block.size).reshape(block.shape)  # [rows, n]
            for name, values in counts.of_sums(times @ per_item).items():
                draws.setdefault(name, []).append(np.asarray(values, dtype=float))
    tail = (1 - level) / 2 * 100
    ends = {name: np.percentile(np.concatenate(values), [tail, 100 - tail]) for name, values in draws.items()}
    return {name: (float(low), float(high)) for name, (low, high) in ends.items()}


def resampled_items(n: int, samples: int, seed: int) -> Iterator[np.ndarray]:
    """`samples` resamples of n item indices with replacement, in [rows, n] blocks of at most
    DRAWS_PER_BLOCK draws (seeded: the same blocks for the same n, samples and seed)."""
    rng = np.random.default_rng(seed)
    rows = max(1, DRAWS_PER_BLOCK // n)
    for start in range(0, samples, rows):
        yield rng.integers(0, n, (min(rows, samples - start), n))
