"""Instruments: micro and macro F1 over instrument classes (llark/evaluation/instruments.py).

micro F1 = 2 TP / (2 TP + FP + FN), counts summed over all items. macro F1 = the mean over classes
(those in any gold or predicted set) of each class's F1 across items. An unparseable answer is an
empty set (every gold instrument a false negative).
"""

from __future__ import annotations

import numpy as np

from llark.evaluation import ItemCounts, fraction, summed_metrics
from llark.evaluation.instruments import instrument_class, instrument_classes


def _instrument_counts(predicted: list[frozenset[str] | None], gold: list[frozenset[str]]) -> np.ndarray:
    """[n, 3 * classes]: each item's (TP, FP, FN) for each class named in any predicted or gold set."""
    predicted = [p or frozenset() for p in predicted]
    classes = sorted(frozenset().union(*predicted, *gold))
    counts = [[(name in p and name in g, name in p and name not in g, name in g and name not in p) for name in classes]
              for p, g in zip(predicted, gold)]
    return np.array(counts, dtype=float).reshape(len(gold), 3 * len(classes))


def _instrument_metrics(sums: np.ndarray) -> dict[str, np.ndarray]:
    """Micro and macro F1 of summed (TP, FP, FN) per class; macro over the classes with any count (those
    a resample's answers or labels name), micro 1 where nothing was named or missed at all."""
    tp, fp, fn = np.moveaxis(sums.reshape(*sums.shape[:-1], -1, 3), -1, 0)  # each [..., classes]
    named = tp + fp + fn > 0
    per_class = np.where(named, fraction(2 * tp, 2 * tp + fp + fn), 0.0)
    classes = named.sum(-1)
    macro = np.where(classes > 0, fraction(per_class.sum(-1), classes), 0.0)
    micro_tp, micro_errors = tp.sum(-1), (fp + fn).sum(-1)
    micro = np.where(micro_tp + micro_errors > 0, fraction(2 * micro_tp, 2 * micro_tp + micro_errors), 1.0)
    return {"micro_f1": micro, "macro_f1": macro}


class InstrumentsTask:
    name = "instruments"
    constant = ["Acoustic Grand Piano"]
    item_counts = ItemCounts(_instrument_counts, _instrument_metrics)

    @staticmethod
    def agreement(predicted: frozenset[str], gold: frozenset[str]) -> float:
        """The set F1 of one item (its micro-F1 alone); 1 for two empty sets."""
        named = len(predicted) + len(gold)
        return 2 * len(predicted & gold) / named if named else 1.0

    def parse(self, answer: str) -> frozenset[str] | None:
        classes = instrument_classes(answer)
        return frozenset(classes) if classes else None

    def parse_gold(self, gold) -> frozenset[str]:
        names = gold if isinstance(gold, list) else str(gold).split(",")
        classes = frozenset(instrument_class(n) for n in names if str(n).strip())
        if not classes:
            raise ValueError(f"gold instruments {gold!r} name no instrument")
        return classes

    def metrics(self, predicted, gold) -> dict[str, float]:
        return summed_metrics(self.item_counts, predicted, gold)
