"""95 % bootstrap intervals: resample items with replacement and recompute each metric.

    intervals = bootstrap(task.metrics, predicted, gold, samples=1000)   # {"mirex": (0.61, 0.74), ...}
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def bootstrap(
    metrics: Callable[[list, list], dict[str, float]],
    predicted: list[Any],
    gold: list[Any],
    samples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile interval of every metric over `samples` resamples of the n items (n = len(gold))."""
    n = len(gold)
    if n == 0:
        return {}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(samples):
        index = rng.integers(0, n, n)
        for name, value in metrics([predicted[i] for i in index], [gold[i] for i in index]).items():
            draws.setdefault(name, []).append(value)
    tail = (1 - level) / 2 * 100
    return {name: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))) for name, v in draws.items()}
