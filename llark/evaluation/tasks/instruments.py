"""Instruments: micro and macro F1 over instrument classes (llark/evaluation/instruments.py).

micro F1 = 2 TP / (2 TP + FP + FN), counts summed over all items. macro F1 = the mean over classes
(those in any gold or predicted set) of each class's F1 across items. An unparseable answer is an
empty set (every gold instrument a false negative).
"""

from __future__ import annotations

from collections import Counter

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
        tp, fp, fn = Counter(), Counter(), Counter()  # per class, over the items
        for p, g in zip(predicted, gold):
            p = p or frozenset()
            tp.update(p & g)
            fp.update(p - g)
            fn.update(g - p)
        per_class = [_f1(tp[name], fp[name], fn[name]) for name in sorted(tp.keys() | fp.keys() | fn.keys())]
        micro = _f1(sum(tp.values()), sum(fp.values()), sum(fn.values()))
        return {"micro_f1": micro, "macro_f1": float(np.mean(per_class)) if per_class else 0.0}
