"""Instruments: micro and macro F1 over instrument classes (llark/evaluation/instruments.py).

micro F1 = 2 TP / (2 TP + FP + FN), counts summed over all items. macro F1 = the mean over classes
(those in any gold or predicted set) of each class's F1 across items. An unparseable answer is an
empty set (every gold instrument a false negative).
"""

from __future__ import annotations

import numpy as np

from llark.evaluation.instruments import instrument_class, instrument_classes


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


class InstrumentsTask:
    name = "instruments"
    constant = ["Acoustic Grand Piano"]

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
        predicted = [p or frozenset() for p in predicted]
        tp = sum(len(p & g) for p, g in zip(predicted, gold))
        fp = sum(len(p - g) for p, g in zip(predicted, gold))
        fn = sum(len(g - p) for p, g in zip(predicted, gold))
        per_class = []
        for name in sorted(set().union(*gold, *predicted)):
            c_tp = sum(name in p and name in g for p, g in zip(predicted, gold))
            c_fp = sum(name in p and name not in g for p, g in zip(predicted, gold))
            c_fn = sum(name not in p and name in g for p, g in zip(predicted, gold))
            per_class.append(_f1(c_tp, c_fp, c_fn))
        return {"micro_f1": _f1(tp, fp, fn), "macro_f1": float(np.mean(per_class)) if per_class else 0.0}
